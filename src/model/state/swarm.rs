//! Swarm tasks (`replicas`, `quorum`, `vote`; event schema 8): `task_expanded` makes the
//! replicas `TASK[0]` .. `TASK[N-1]` (plain tasks the swarm task does not depend on, so a
//! failed replica sweeps nothing); `quorum_reached` records which replicas' outputs count;
//! the swarm task then succeeds with attempt 0 (`task_output` + `task_succeeded`, no vote)
//! or becomes ready to run its vote; `task_failed` with attempt 0 and `no_quorum` fails it.
//!
//! Which outputs agree is the scheduler's call (outputs live in the journal, not in the
//! state): the fold checks what it can see — the task is a waiting swarm, the replicas named
//! succeeded, and there are enough of them — so a replayed journal decides nothing twice.

use super::change::Change;
use super::error::ApplyError;
use super::run::Run;
use crate::model::event::{Event, Failure};
use crate::model::ids::{TaskId, TaskIndex};
use crate::model::run::RunState;
use crate::model::spec::Expansion;
use crate::model::task::TaskState;
use crate::model::time::Timestamp;

impl Run {
    /// The replicas of swarm task `t` (indices, in replica order), once it was expanded.
    pub fn replicas(&self, t: TaskIndex) -> Option<Vec<TaskIndex>> {
        let wf = self.workflow();
        let Some(Expansion::Swarm { replicas }) = wf.task(t).expansion() else {
            return None;
        };
        let id = wf.task_id(t);
        Some(
            (0..replicas)
                .filter_map(|i| wf.task_index(TaskId::instance(id, i).as_str()))
                .collect(),
        )
    }

    /// The swarm task a replica `t` belongs to.
    pub fn swarm_of(&self, t: TaskIndex) -> Option<TaskIndex> {
        let wf = self.workflow();
        let Some(Expansion::Replica { .. }) = wf.task(t).expansion() else {
            return None;
        };
        let (base, _) = wf.task_id(t).split_instance()?;
        wf.task_index(base)
    }

    /// Whether `t` is an expanded swarm task still waiting for its quorum.
    pub fn swarm_waiting(&self, t: TaskIndex) -> bool {
        matches!(
            self.workflow().task(t).expansion(),
            Some(Expansion::Swarm { .. })
        ) && self.tasks[t as usize].state == TaskState::Pending
    }

    /// Replicas of swarm task `t` that succeeded.
    fn replicas_succeeded(&self, t: TaskIndex) -> usize {
        self.replicas(t).map_or(0, |rs| {
            rs.iter()
                .filter(|&&r| self.tasks[r as usize].state == TaskState::Succeeded)
                .count()
        })
    }

    /// Checks an attempt-0 event of a swarm task (`task_output`, `task_succeeded` without a
    /// vote; `task_failed` with `no_quorum`): the task waits for its quorum and, for a
    /// success, at least `quorum` replicas succeeded.
    pub(super) fn require_swarm_end(
        &self,
        event: &Event,
        t: TaskIndex,
        success: bool,
    ) -> Result<(), ApplyError> {
        self.require_run_state(event, &[RunState::Running])?;
        if !self.swarm_waiting(t) {
            return Err(self.not_allowed(
                event,
                "attempt 0 ends only a swarm task waiting for its replicas' quorum",
            ));
        }
        let swarm = self.workflow().task(t).swarm().expect("a swarm task");
        if success {
            if swarm.vote.is_some() {
                return Err(self.not_allowed(
                    event,
                    "a swarm task with a vote succeeds by its vote's attempt",
                ));
            }
            let ok = self.replicas_succeeded(t);
            if ok < swarm.quorum as usize {
                return Err(self.not_allowed(
                    event,
                    format!(
                        "{ok} replicas succeeded, fewer than the quorum ({})",
                        swarm.quorum
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `quorum_reached`.
    pub(super) fn apply_swarm(
        &mut self,
        event: &Event,
        t: Option<TaskIndex>,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        let t = t.expect("task event");
        let Event::QuorumReached { replicas, .. } = event else {
            unreachable!("routed by Run::apply")
        };
        self.require_run_state(event, &[RunState::Running])?;
        if !self.swarm_waiting(t) {
            return Err(self.not_allowed(event, "the task is not a swarm waiting for a quorum"));
        }
        let swarm = self
            .workflow()
            .task(t)
            .swarm()
            .expect("a swarm task")
            .clone();
        let all = self.replicas(t).unwrap_or_default();
        if !replicas.windows(2).all(|w| w[0] < w[1]) {
            return Err(self.not_allowed(event, "replicas must be distinct and ascending"));
        }
        if replicas.len() < swarm.quorum as usize {
            return Err(self.not_allowed(
                event,
                format!(
                    "{} replicas is fewer than the quorum ({})",
                    replicas.len(),
                    swarm.quorum
                ),
            ));
        }
        for &i in replicas {
            let ok = all
                .get(i as usize)
                .is_some_and(|&r| self.tasks[r as usize].state == TaskState::Succeeded);
            if !ok {
                return Err(self.not_allowed(event, format!("replica {i} has not succeeded")));
            }
        }
        if swarm.vote.is_some() {
            // The vote runs as the swarm task's own attempts.
            self.settle(t, time, changes);
        }
        Ok(())
    }

    /// Whether replica `t` ended without its result counting against the run: its swarm
    /// task succeeded (losing, failed or cancelled replicas of a swarm that reached its
    /// quorum do not fail the run).
    pub(super) fn spare_replica(&self, t: TaskIndex) -> bool {
        self.swarm_of(t)
            .is_some_and(|s| self.tasks[s as usize].state == TaskState::Succeeded)
    }

    /// A `no_quorum` failure message: `most` agreed of `needed`, with the outputs seen.
    pub fn no_quorum(most: usize, needed: u32, seen: &[(String, usize)]) -> Failure {
        let mut message = format!("at most {most} replicas agreed, {needed} needed");
        if !seen.is_empty() {
            message.push_str("; outputs seen:");
            for (output, n) in seen {
                let shown: String = output.chars().take(200).collect();
                let more = if shown.len() < output.len() {
                    "…"
                } else {
                    ""
                };
                message.push_str(&format!(" {shown}{more} (×{n})"));
            }
        }
        Failure::NoQuorum { message }
    }
}
