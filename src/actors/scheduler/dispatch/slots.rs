//! Worker slots: a free one, an attempt booked on it, its release when the attempt ends.

use super::*;
use crate::messages::scheduler::{AttemptKind, AttemptReport};
use crate::model::caps::Load;
use crate::model::{RunId, TaskIndex};

impl SchedulerState {
    /// A free slot whose worker is alive, if any. A worker that died is not given work: its
    /// slot comes back with the restarted worker's `WorkerUp` (an order sent to it would
    /// only come back interrupted).
    pub(crate) fn take_slot(&mut self) -> Option<u32> {
        while let Some(slot) = self.free.pop() {
            let alive = self.workers[slot as usize].as_ref().is_some_and(|w| {
                !matches!(
                    w.get_status(),
                    ractor::ActorStatus::Draining
                        | ractor::ActorStatus::Stopping
                        | ractor::ActorStatus::Stopped
                )
            });
            if alive {
                return Some(slot);
            }
            self.workers[slot as usize] = None;
        }
        None
    }

    /// Books a decided attempt start on `slot` and dispatches it once durable.
    pub(crate) fn occupy(
        &mut self,
        run: RunId,
        task: TaskIndex,
        attempt: u32,
        kind: AttemptKind,
        slot: u32,
        pool: Option<String>,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        self.busy[slot as usize] = Some(token);
        self.running.insert(
            (run, task),
            Running {
                token,
                slot,
                pool,
                kind,
            },
        );
        self.after_persist(Effect::Dispatch {
            run,
            task,
            attempt,
            kind,
            token,
            slot,
        });
    }

    /// Books the end of a reported attempt: frees its worker slot and caps.
    pub(crate) fn release(&mut self, report: &AttemptReport) -> bool {
        if self.busy[report.slot as usize] == Some(report.token) {
            self.busy[report.slot as usize] = None;
            if self.workers[report.slot as usize].is_some() {
                self.free.push(report.slot);
            }
        }
        let key = (report.run, report.task);
        if self.running.get(&key).map(|r| r.token) != Some(report.token) {
            return false;
        }
        let running = self.running.remove(&key).expect("checked");
        if self.lingering > 0 {
            self.lingering_dirty = true;
        }
        if running.kind == AttemptKind::Compensation {
            return true;
        }
        if let Some(n) = self.run_load.get_mut(&report.run) {
            *n -= 1;
            if *n == 0 {
                self.run_load.remove(&report.run);
            }
        }
        self.unpark(&(report.run, None));
        if let Some(p) = running.pool {
            let k = (report.run, p);
            if let Some(n) = self.pool_load.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.pool_load.remove(&k);
                }
            }
            if let Some(n) = self.node_pool_load.get_mut(&k.1) {
                *n = n.saturating_sub(1);
                self.unpark_node(&k.1);
            }
            self.unpark(&(report.run, Some(k.1)));
        }
        true
    }

    /// Tokens of running attempts matching `pred`.
    pub(crate) fn running_where(&self, pred: impl Fn(RunId, TaskIndex) -> bool) -> Vec<(u32, u64)> {
        self.running
            .iter()
            .filter(|((run, task), _)| pred(*run, *task))
            .map(|(_, r)| (r.slot, r.token))
            .collect()
    }

    /// Attempts holding slots where a task of `run` in `pool` would start.
    pub(crate) fn load_at(&self, run: RunId, pool: Option<&str>) -> Load {
        Load {
            run: self.run_load.get(&run).copied().unwrap_or(0),
            pool: pool.map_or(0, |p| {
                self.pool_load
                    .get(&(run, p.to_owned()))
                    .copied()
                    .unwrap_or(0)
            }),
            node_pool: pool.map_or(0, |p| self.node_pool_load.get(p).copied().unwrap_or(0)),
        }
    }
}
