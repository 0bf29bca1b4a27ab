//! Saga steps: the due compensations of compensating runs, started on free slots before any
//! new work (the coordinator, [`crate::actors::saga::SagaCoordinator`], says which is next).

use super::*;
use crate::messages::scheduler::{AttemptId, AttemptKind};
use crate::model::{Event, Timestamp};
use crate::workers::WorkerLink;

impl SchedulerState {
    /// Starts due compensations while slots are free.
    pub(crate) fn fill_compensations(&mut self, t_now: Timestamp) {
        self.sagas.due_timers(t_now);
        while self.workers.has_free() && self.sagas.has_ready() {
            let Some((run, task, attempt)) = self.sagas.next_due(&self.state, t_now) else {
                break;
            };
            // A forward attempt cancelled while running is `cancelled` in the fold at once,
            // but its process may still be in its grace period: undo nothing until it ended
            // (its end touches the run again).
            if self
                .running
                .iter()
                .any(|((r, _), x)| *r == run && x.id.kind == AttemptKind::Forward)
            {
                continue;
            }
            let id = AttemptId {
                run,
                task,
                kind: AttemptKind::Compensation,
                attempt,
            };
            let Some(slot) = self.workers.reserve(id, &[]) else {
                self.sagas.put_back(run);
                break;
            };
            let r = self
                .state
                .run(run)
                .expect("due compensations name live runs");
            let event = Event::CompensationStarted {
                run,
                task: r.workflow().task_id(task).clone(),
                attempt,
            };
            if let Err(e) = self.decide(event) {
                tracing::error!(error = %e, "scheduler decided a compensation the fold refuses");
                self.workers.release(slot, id);
                continue;
            }
            self.occupy(id, slot, None);
        }
    }
}
