//! Effects collected while deciding and executed by one interpreter once the journal holds
//! the events they depend on.

use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};

use super::*;
use crate::messages::approval::{ApprovalChange, ApprovalMsg};
use crate::messages::control::Response;
use crate::messages::scheduler::{AgentGrant, AttemptOrder, ReportPort, SchedulerMsg};
use crate::messages::scheduler::{AttemptId, Slot};
use crate::model::rollup::Counts;
use crate::model::{RunId, RunState};
use crate::webhooks::Notice;
use crate::workers::WorkerLink;
use compact_str::CompactString;

/// Something to do once the journal holds everything up to a sequence number.
pub(crate) enum Effect {
    /// Send an attempt to a worker.
    Dispatch {
        /// The attempt.
        id: AttemptId,
        /// The slot reserved for it.
        slot: Slot,
    },
    /// Terminate these attempts.
    Terminate(Vec<(Slot, AttemptId)>),
    /// Answer a request.
    Reply(RpcReplyPort<Response>, Response),
    /// Answer a barrier.
    Ack(RpcReplyPort<()>),
    /// Tell waiters a run finished.
    Finished(RunId, RunState),
    /// Tell the approval gate what changed.
    Approvals(Vec<ApprovalChange>),
    /// Add a durable bucket's counts to a pool's counters.
    Count(CompactString, Counts),
    /// Hand notices to the webhook sender.
    Notify(Vec<Notice>),
    /// Add durable usage counters to a pool's `troupe_task_usage_total`.
    Usage(CompactString, crate::model::Counters),
    /// Expand a mapped task whose dependencies' success is durable.
    Expand(RunId, crate::model::TaskIndex),
    /// Add durable usage of an agent tree to `troupe_budget_used_total`.
    BudgetUsed(crate::model::Counters),
    /// Send a message to a worker node.
    Wire(super::cluster::Wire),
    /// Start the process of a hook attempt (its `hook_started` is durable).
    RunHook {
        /// The call.
        id: u64,
        /// The attempt.
        attempt: u32,
    },
    /// Count a finished hook call (`troupe_hook_calls_total{hook, outcome}`).
    HookCall(String, &'static str),
    /// Judge a swarm task whose replica's end is durable.
    Swarm(RunId, crate::model::TaskIndex),
}

impl SchedulerState {
    /// Runs the effects whose events are durable.
    pub(crate) fn run_effects(&mut self, myself: &ActorRef<SchedulerMsg>) {
        while self
            .effects
            .front()
            .is_some_and(|(seq, _)| *seq <= self.durable)
        {
            let (_, effect) = self.effects.pop_front().expect("checked");
            match effect {
                Effect::Dispatch { id, slot } => {
                    let Some(r) = self.state.run(id.run) else {
                        continue;
                    };
                    let agent = (id.kind == crate::messages::scheduler::AttemptKind::Forward)
                        .then(|| self.running.get(&(id.run, id.task)))
                        .flatten()
                        .filter(|running| running.id == id)
                        .map(|running| {
                            let l = r.lineage();
                            Box::new(AgentGrant {
                                token: format!("{:032x}", running.token),
                                depth: l.map_or(0, |l| l.depth),
                                input: l.and_then(|l| l.input.clone()),
                            })
                        });
                    let order = AttemptOrder {
                        workflow: Arc::clone(r.workflow()),
                        report: ReportPort::new(myself.clone(), id, slot),
                        agent,
                    };
                    self.workers.dispatch(slot, order);
                }
                Effect::Terminate(list) => {
                    if self.shared.config.test_hooks
                        && std::env::var_os("TROUPE_TEST_SKIP_TERMINATE").is_some()
                    {
                        // Test hook: a crash between a durable cancel and the termination.
                        continue;
                    }
                    for (slot, id) in list {
                        self.workers.terminate(slot, id, false);
                    }
                }
                Effect::Reply(port, response) => {
                    let _ = port.send(response);
                }
                Effect::Ack(port) => {
                    let _ = port.send(());
                }
                Effect::Finished(run, state) => self.shared.run_finished(run, state),
                Effect::Approvals(changes) => {
                    if let Some(gate) = &self.gate {
                        let _ = gate.cast(ApprovalMsg::Changed(changes));
                    }
                }
                Effect::Count(pool, counts) => {
                    pool_handles(&mut self.pool_metrics, &self.metrics, &pool).count(&counts);
                }
                Effect::Notify(notices) => {
                    for n in notices {
                        self.shared.webhooks.send(n);
                    }
                }
                Effect::Usage(pool, counters) => self.metrics.task_usage(&pool, &counters),
                Effect::BudgetUsed(counters) => self.metrics.budget_used(&counters),
                Effect::Wire(w) => {
                    self.workers.remote.node_mut(w.node).send(w.message);
                }
                Effect::RunHook { id, attempt } => self.start_hook(myself, id, attempt),
                Effect::HookCall(hook, outcome) => self.metrics.hook_call(&hook, outcome),
                Effect::Expand(run, task) => {
                    self.expand_mapped(run, task);
                    self.schedule_flush(myself);
                }
                Effect::Swarm(run, task) => {
                    self.judge_swarm(run, task);
                    self.schedule_flush(myself);
                }
            }
        }
    }
}
