//! Observation: gauges and histograms, rollup counts, webhook notices, and the facts the
//! write side publishes for the read model.

use std::collections::HashMap;

use super::*;
use crate::actors::approval::pending_approval;
use crate::actors::metrics::{Metrics, PoolHandles};
use crate::messages::scheduler::AttemptKind;
use crate::model::{Change, CompensationState, EventRecord, TaskIndex, TaskState};
use crate::read::facts::Lingering;
use crate::webhooks::{Notice, WebhookEvent};
use compact_str::CompactString;

/// The gauge handles of `pool`, created on first use.
pub(crate) fn pool_handles<'a>(
    cache: &'a mut HashMap<CompactString, PoolHandles>,
    metrics: &Metrics,
    pool: &str,
) -> &'a PoolHandles {
    if !cache.contains_key(pool) {
        cache.insert(CompactString::from(pool), metrics.pool(pool));
    }
    cache.get(pool).expect("just inserted")
}

impl SchedulerState {
    /// Updates gauges now and stages samples, completions and notices for `change` (caused
    /// by `record`, already applied).
    pub(crate) fn measure(&mut self, change: &Change, record: &EventRecord, collect: bool) {
        match *change {
            Change::Task {
                run,
                task,
                from,
                to,
            } => {
                let Some(r) = self.state.run(run) else { return };
                if collect {
                    let pool = r.workflow().pool(task).unwrap_or("");
                    pool_handles(&mut self.pool_metrics, &self.metrics, pool).moved(from, to);
                    if to == TaskState::AwaitingApproval {
                        self.metrics.approvals_pending.inc();
                    } else if from == TaskState::AwaitingApproval {
                        self.metrics.approvals_pending.dec();
                    }
                }
                let t = r.task(task);
                if collect && from == TaskState::Running && to != TaskState::Suspended {
                    if let Some(started) = t.started_at {
                        self.metrics.attempt_ended(
                            to == TaskState::Succeeded,
                            record.time.saturating_since(started).as_secs_f64(),
                        );
                    }
                }
                if to == TaskState::Failed && self.shared.webhooks.wants(WebhookEvent::TaskFailed) {
                    self.notices.push(Notice::TaskFailed {
                        run,
                        workflow: r.workflow().spec().name.clone(),
                        task: r.workflow().task_id(task).clone(),
                        attempt: t.attempts,
                        failure: t
                            .last_failure
                            .as_ref()
                            .map(|f| f.to_string())
                            .unwrap_or_else(|| record.event.type_name().to_string()),
                    });
                }
                if to == TaskState::AwaitingApproval
                    && self.shared.webhooks.wants(WebhookEvent::ApprovalRequested)
                {
                    if let Some(p) = pending_approval(r, task, self.approval_timeout) {
                        self.notices.push(Notice::ApprovalRequested {
                            run,
                            workflow: r.workflow().spec().name.clone(),
                            task: r.workflow().task_id(task).clone(),
                            expires_at: p.expires_at,
                        });
                    }
                }
            }
            Change::Run { run, from, to } => {
                let Some(r) = self.state.run(run) else { return };
                if r.parent().is_some() && from.is_finished() != to.is_finished() {
                    if to.is_finished() {
                        self.metrics.child_runs_active.dec();
                    } else {
                        self.metrics.child_runs_active.inc();
                    }
                }
                if collect && to.is_finished() && !from.is_finished() {
                    self.metrics.run_ended(
                        to,
                        record.time.saturating_since(r.submitted_at()).as_secs_f64(),
                    );
                }
                if to.is_finished()
                    && !from.is_finished()
                    && self.shared.webhooks.wants(WebhookEvent::RunFinished)
                {
                    self.notices.push(Notice::RunFinished {
                        run,
                        workflow: r.workflow().spec().name.clone(),
                        state: to,
                    });
                }
            }
            Change::Compensation { .. } | Change::ExpansionDue { .. } => {}
        }
    }

    /// Recounts the task gauges from the state (at start: the registry outlives us).
    pub(crate) fn count_gauges(&mut self) {
        // An earlier incarnation's counts are stale: start from nothing.
        self.pool_metrics.clear();
        self.metrics.reset_task_gauges();
        let (mut approvals, mut children) = (0, 0);
        let (cache, metrics) = (&mut self.pool_metrics, &self.metrics);
        for r in self.state.runs() {
            if r.state().is_finished() {
                continue;
            }
            if r.parent().is_some() {
                children += 1;
            }
            approvals += i64::from(r.count(TaskState::AwaitingApproval));
            for (i, t) in r.tasks().iter().enumerate() {
                if !t.state.is_terminal() {
                    let pool = r.workflow().pool(i as TaskIndex).unwrap_or("");
                    pool_handles(cache, metrics, pool).add(t.state);
                }
            }
        }
        self.metrics.approvals_pending.set(approvals);
        self.metrics.child_runs_active.set(children);
        self.metrics.running.set(self.running.len() as i64);
    }

    /// Publishes the facts only the write side has: slots held, and the attempts the
    /// journal closed that still hold one (recomputed only when they may have changed).
    /// Publishes the cluster's nodes (`troupe nodes`), if the node has `[cluster]`.
    pub(crate) fn publish_nodes(&self) {
        if self.shared.config.cluster.is_some() {
            self.shared.facts.set_nodes(self.node_infos());
        }
    }

    pub(crate) fn publish_facts(&mut self) {
        let facts = &self.shared.facts;
        facts.set_in_flight(self.running.len() as u32);
        if !self.lingering_dirty {
            return;
        }
        self.lingering_dirty = false;
        let list: Vec<Lingering> = self
            .running
            .iter()
            .filter(|((run, task), r)| {
                let Some(t) = self.state.run(*run).map(|x| x.task(*task)) else {
                    return true;
                };
                match r.id.kind {
                    AttemptKind::Forward => t.state != TaskState::Running,
                    AttemptKind::Compensation => t
                        .compensation
                        .as_deref()
                        .is_none_or(|c| c.state != CompensationState::Running),
                }
            })
            .map(|(&(run, task), r)| Lingering {
                run,
                task,
                kind: r.id.kind,
            })
            .collect();
        if list.len() != self.lingering || !list.is_empty() {
            self.lingering = list.len();
            facts.set_lingering(list);
        }
    }
}
