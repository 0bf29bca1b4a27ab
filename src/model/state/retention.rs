//! Retention: which finished runs may be removed, and `runs_removed`, which removes them.
//!
//! A run is removed only with its whole agent tree: a root (a run no task spawned) whose
//! every run — itself and all descendants — is finished, the last of them before the cutoff.
//! Removing part of a tree would leave a parent naming a child that no longer exists (or the
//! reverse), which [`State::check_invariants`] forbids.

use super::{ApplyError, State};
use crate::model::ids::RunId;
use crate::model::time::Timestamp;

impl State {
    /// The runs retention removes at cutoff `finished_before`: every run of each agent tree
    /// whose runs are all finished, the last before the cutoff; roots before descendants,
    /// trees oldest first. O(runs).
    pub fn removable_runs(&self, finished_before: Timestamp) -> Vec<RunId> {
        let mut out = Vec::new();
        for run in self.runs.values().filter(|r| r.parent().is_none()) {
            let start = out.len();
            let mut ok = true;
            let mut stack = vec![run.id];
            while let Some(id) = stack.pop() {
                match self.runs.get(&id) {
                    Some(r)
                        if r.state().is_finished()
                            && r.finished_at().is_some_and(|t| t < finished_before) =>
                    {
                        out.push(id);
                        if let Some(l) = r.lineage() {
                            stack.extend(l.children.iter().rev().copied());
                        }
                    }
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok {
                out.truncate(start);
            }
        }
        out
    }

    /// Folds `runs_removed`: all of `runs` leave the state, or (if any is unknown, not
    /// finished, or part of a tree not removed whole) none does.
    pub(super) fn remove_runs(&mut self, runs: &[RunId]) -> Result<(), ApplyError> {
        let removing: std::collections::HashSet<RunId> = runs.iter().copied().collect();
        let refuse = |run: RunId, reason: String| ApplyError::NotAllowed {
            event: "runs_removed",
            run: Some(run),
            task: None,
            reason,
        };
        for &id in runs {
            let r = self.runs.get(&id).ok_or(ApplyError::UnknownRun(id))?;
            if !r.state().is_finished() {
                return Err(refuse(id, format!("the run is {}", r.state())));
            }
            if let Some((parent, _)) = r.parent() {
                if !removing.contains(&parent) {
                    return Err(refuse(id, format!("its parent run {parent} stays")));
                }
            }
            if let Some(l) = r.lineage() {
                if let Some(child) = l.children.iter().find(|c| !removing.contains(c)) {
                    return Err(refuse(id, format!("its child run {child} stays")));
                }
            }
        }
        for id in runs {
            if let Some(r) = self.runs.remove(id) {
                if let Some(origin) = &r.workflow().spec().origin {
                    if self.origins.get(origin) == Some(id) {
                        self.origins.remove(origin);
                    }
                }
            }
        }
        Ok(())
    }
}
