//! Attempts on worker slots: one booked on its reserved slot, its release when it ends, the
//! loads the caps count.

use super::*;
use crate::messages::scheduler::{AttemptId, Slot};
use crate::messages::scheduler::{AttemptKind, AttemptReport};
use crate::model::caps::Load;
use crate::model::{RunId, TaskIndex};
use crate::workers::WorkerLink;

impl SchedulerState {
    /// Books a decided attempt start on its reserved `slot` and dispatches it once durable.
    pub(crate) fn occupy(&mut self, id: AttemptId, slot: Slot, pool: Option<String>) {
        self.hold(id, slot, pool);
        self.after_persist(Effect::Dispatch { id, slot });
    }

    /// Records `id` as holding `slot` (a fresh capability token, slot not lent).
    fn hold(&mut self, id: AttemptId, slot: Slot, pool: Option<String>) {
        self.running.insert(
            (id.run, id.task),
            Running {
                id,
                slot,
                pool,
                token: super::super::agents::new_token(),
                lent: false,
            },
        );
    }

    /// Books a decided forward attempt on its reserved `slot` with the loads its caps
    /// count (no dispatch: [`Self::occupy`] adds that).
    pub(crate) fn book(&mut self, id: AttemptId, slot: Slot, pool: Option<String>) {
        *self.run_load.entry(id.run).or_default() += 1;
        if let Some(p) = &pool {
            *self.pool_load.entry((id.run, p.clone())).or_default() += 1;
            if self.node_pools.contains_key(p) {
                *self.node_pool_load.entry(p.clone()).or_default() += 1;
            }
        }
        self.hold(id, slot, pool);
    }

    /// Books the end of a reported attempt: frees its worker slot and caps.
    pub(crate) fn release(&mut self, report: &AttemptReport) -> bool {
        self.workers.release(report.slot, report.id);
        if crate::workers::RemoteNodes::of(report.slot).is_some() {
            self.unpark_labels();
        }
        let run = report.id.run;
        let key = (run, report.id.task);
        if self.running.get(&key).map(|r| r.id) != Some(report.id) {
            return false;
        }
        let running = self.running.remove(&key).expect("checked");
        if self.lingering > 0 {
            self.lingering_dirty = true;
        }
        if running.id.kind == AttemptKind::Compensation {
            return true;
        }
        if let Some(n) = self.run_load.get_mut(&run) {
            *n -= 1;
            if *n == 0 {
                self.run_load.remove(&run);
            }
        }
        self.unpark(&(run, None));
        if let Some(p) = running.pool {
            let k = (run, p);
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
            self.unpark(&(run, Some(k.1)));
        }
        true
    }

    /// The running attempts (with their slots) matching `pred`.
    pub(crate) fn running_where(
        &self,
        pred: impl Fn(RunId, TaskIndex) -> bool,
    ) -> Vec<(Slot, AttemptId)> {
        self.running
            .iter()
            .filter(|((run, task), _)| pred(*run, *task))
            .map(|(_, r)| (r.slot, r.id))
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
