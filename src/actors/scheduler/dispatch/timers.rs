//! Retry timers: when the next `Tick` is due, and which retries came due.

use std::time::Duration;

use ractor::ActorRef;

use super::*;
use crate::messages::scheduler::SchedulerMsg;

impl SchedulerState {
    /// Schedules a `Tick` for the earliest retry timer, if not already scheduled earlier.
    pub(crate) fn arm(&mut self, myself: &ActorRef<SchedulerMsg>) {
        let first = self.timers.first().map(|&(at, _, _)| at);
        let Some(at) = first
            .into_iter()
            .chain(self.sagas.next_timer())
            .chain(self.next_breaker_timer())
            .min()
        else {
            return;
        };
        if self.armed.is_some_and(|a| a <= at) {
            return;
        }
        self.armed = Some(at);
        let wait = at.saturating_since(now()) + Duration::from_millis(1);
        myself.send_after(wait, || SchedulerMsg::Tick);
    }

    /// Moves due retries into the queue.
    pub(crate) fn due_timers(&mut self) {
        let t = now();
        if self.armed.is_some_and(|a| a <= t) {
            self.armed = None;
        }
        while let Some(&(at, run, task)) = self.timers.first() {
            if at > t {
                break;
            }
            self.timers.pop_first();
            self.enqueue(run, task);
        }
        self.sagas.due_timers(t);
    }
}
