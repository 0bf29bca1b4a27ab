//! The invariants every state the fold can reach satisfies, checked by the property tests after
//! every event and by replay on a snapshot before trusting it.

use super::run::Run;
use crate::model::ids::TaskIndex;
use crate::model::run::RunState;
use crate::model::spec::Expansion;
use crate::model::task::{CompensationState, TaskState};

impl Run {
    /// Checks this run's invariants; `Err` describes the first violation.
    pub(super) fn check_invariants(&self) -> Result<(), String> {
        let id = self.id;
        let wf = &self.workflow;
        let plan = wf.plan();
        if self.tasks.len() != wf.len() {
            return Err(format!(
                "{id}: {} task states for a workflow of {} tasks",
                self.tasks.len(),
                wf.len()
            ));
        }
        if self
            .completion_order
            .iter()
            .any(|&t| t as usize >= wf.len())
        {
            return Err(format!("{id}: completion order names a task out of range"));
        }
        let mut counts = [0u32; 11];
        for (i, task) in self.tasks.iter().enumerate() {
            let t = i as TaskIndex;
            let name = wf.task_id(t);
            let err = |what: &str| Err(format!("{id}/{name} ({}): {what}", task.state));
            counts[task.state as usize] += 1;
            let waiting = plan
                .upstream(t)
                .filter(|&u| {
                    !matches!(
                        self.tasks[u as usize].state,
                        TaskState::Succeeded | TaskState::Compensated
                    )
                })
                .count() as u32;
            if waiting != task.waiting_on {
                return err(&format!(
                    "waiting_on {} but {waiting} deps open",
                    task.waiting_on
                ));
            }
            let blocked = plan
                .upstream(t)
                .any(|u| self.tasks[u as usize].state.blocks_dependents());
            let dispatchable = matches!(
                task.state,
                TaskState::Ready | TaskState::Retrying | TaskState::AwaitingApproval
            );
            if dispatchable && (task.waiting_on > 0 || self.suspended || task.suspended) {
                return err("dispatchable while waiting or suspended");
            }
            if dispatchable && self.state != RunState::Running {
                return err("dispatchable in a run that is not running");
            }
            match task.state {
                // An expanded swarm task waits for its quorum with no dependency open.
                TaskState::Pending
                    if task.waiting_on == 0
                        && !self.awaits_expansion(t)
                        && !self.swarm_waiting(t) =>
                {
                    return err("pending with no deps open")
                }
                TaskState::Pending if blocked => return err("pending behind a failed dep"),
                TaskState::Ready if wf.requires_approval(t) && !task.approved => {
                    return err("ready without approval")
                }
                TaskState::Ready if task.retry_at.is_some() => return err("ready with retry_at"),
                TaskState::Retrying if task.retry_at.is_none() => {
                    return err("retrying without retry_at")
                }
                TaskState::AwaitingApproval if task.approved || !wf.requires_approval(t) => {
                    return err("awaiting approval it does not need")
                }
                TaskState::Running if task.attempts == 0 => return err("running attempt 0"),
                TaskState::Suspended if !(task.suspended || self.suspended) => {
                    return err("suspended without a suspension")
                }
                TaskState::UpstreamFailed if !blocked => {
                    return err("upstream_failed with no failed dep")
                }
                _ => {}
            }
            if let Some(Expansion::Swarm { replicas }) = wf.task(t).expansion() {
                if self.replicas(t).map_or(0, |r| r.len()) != replicas as usize {
                    return err("a swarm task without all its replicas");
                }
            }
            if self.swarm_of(t).is_none()
                && matches!(wf.task(t).expansion(), Some(Expansion::Replica { .. }))
            {
                return err("a replica without its swarm task");
            }
            if task.attempts < task.budget_base {
                return err("budget base beyond attempts");
            }
            let has_comp = task.compensation.is_some();
            if has_comp && (wf.task(t).compensate.is_none() || !self.compensation_began()) {
                return err("compensation where none is due");
            }
            if task.state == TaskState::Compensated
                && task.compensation.as_ref().map(|c| c.state) != Some(CompensationState::Succeeded)
            {
                return err("compensated without a successful compensation");
            }
        }
        if counts != self.counts {
            return Err(format!(
                "{id}: counts {:?} but tasks say {counts:?}",
                self.counts
            ));
        }
        let mut seen = vec![false; self.tasks.len()];
        for &t in &self.completion_order {
            if std::mem::replace(&mut seen[t as usize], true) {
                return Err(format!("{id}: task {t} completed twice"));
            }
            if !matches!(
                self.tasks[t as usize].state,
                TaskState::Succeeded | TaskState::Compensated
            ) {
                return Err(format!(
                    "{id}: completion order holds a task that is not succeeded"
                ));
            }
        }
        let succeeded =
            (self.count(TaskState::Succeeded) + self.count(TaskState::Compensated)) as usize;
        if succeeded != self.completion_order.len() {
            return Err(format!("{id}: completion order misses succeeded tasks"));
        }
        let open = self.tasks.iter().filter(|t| !t.state.is_terminal()).count();
        let running = self.count(TaskState::Running);
        match self.state {
            RunState::Running if open == 0 => {
                return Err(format!("{id}: running with nothing open"))
            }
            // Replicas of a swarm task that succeeded need not have succeeded themselves.
            RunState::Succeeded
                if (0..self.tasks.len() as TaskIndex).any(|t| {
                    self.tasks[t as usize].state != TaskState::Succeeded && !self.spare_replica(t)
                }) =>
            {
                return Err(format!("{id}: succeeded with unsucceeded tasks"))
            }
            RunState::Failed | RunState::Cancelled if open != 0 => {
                return Err(format!("{id}: finished with open tasks"))
            }
            RunState::Compensating | RunState::Compensated | RunState::CompensationFailed
                if open != running as usize =>
            {
                return Err(format!(
                    "{id}: compensating with tasks that have not started"
                ))
            }
            RunState::Compensated if running > 0 || self.current_compensation().is_some() => {
                return Err(format!("{id}: compensated with work left"))
            }
            _ => {}
        }
        if self.state.is_finished() != self.finished_at.is_some() {
            return Err(format!("{id}: finished_at disagrees with {}", self.state));
        }
        if self.compensation_began() {
            // Every step after the cursor is undone or has nothing to undo.
            let len = self.completion_order.len();
            for k in 0..self.compensation_cursor as usize {
                let t = self.completion_order[len - 1 - k];
                if let Some(c) = &self.tasks[t as usize].compensation {
                    if c.state != CompensationState::Succeeded {
                        return Err(format!("{id}: cursor skipped an open compensation"));
                    }
                }
            }
            let active = self
                .tasks
                .iter()
                .filter(|t| {
                    t.compensation.as_ref().is_some_and(|c| {
                        matches!(
                            c.state,
                            CompensationState::Running
                                | CompensationState::Retrying
                                | CompensationState::Failed
                        )
                    })
                })
                .count();
            if active > 1 {
                return Err(format!("{id}: more than one compensation in progress"));
            }
            let failed = self.tasks.iter().any(|t| {
                t.compensation
                    .as_ref()
                    .is_some_and(|c| c.state == CompensationState::Failed)
            });
            if failed != (self.state == RunState::CompensationFailed) {
                return Err(format!("{id}: compensation_failed disagrees with steps"));
            }
        }
        Ok(())
    }
}
