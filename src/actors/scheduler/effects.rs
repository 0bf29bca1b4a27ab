//! Effects collected while deciding and executed by one interpreter once the journal holds
//! the events they depend on.

use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};

use super::*;
use crate::messages::approval::{ApprovalChange, ApprovalMsg};
use crate::messages::control::Response;
use crate::messages::scheduler::{AttemptKind, AttemptOrder, ReportPort, SchedulerMsg, WorkerMsg};
use crate::model::rollup::Counts;
use crate::model::{RunId, RunState, TaskIndex};
use crate::webhooks::Notice;
use compact_str::CompactString;

/// Something to do once the journal holds everything up to a sequence number.
pub(crate) enum Effect {
    /// Send an attempt to a worker.
    Dispatch {
        run: RunId,
        task: TaskIndex,
        attempt: u32,
        kind: AttemptKind,
        token: u64,
        slot: u32,
    },
    /// Terminate the attempts with these tokens.
    Terminate(Vec<(u32, u64)>),
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
                Effect::Dispatch {
                    run,
                    task,
                    attempt,
                    kind,
                    token,
                    slot,
                } => {
                    let Some(r) = self.state.run(run) else {
                        continue;
                    };
                    let order = AttemptOrder {
                        workflow: Arc::clone(r.workflow()),
                        report: ReportPort::new(
                            myself.clone(),
                            token,
                            slot,
                            run,
                            task,
                            attempt,
                            kind,
                        ),
                    };
                    match &self.workers[slot as usize] {
                        // If the worker is gone, the dropped order reports itself interrupted.
                        Some(w) => {
                            let _ = w.cast(WorkerMsg::Run(Box::new(order)));
                        }
                        None => drop(order),
                    }
                }
                Effect::Terminate(list) => {
                    for (slot, token) in list {
                        if let Some(w) = &self.workers[slot as usize] {
                            let _ = w.cast(WorkerMsg::Terminate { token });
                        }
                    }
                }
                Effect::Reply(port, response) => {
                    let _ = port.send(response);
                }
                Effect::Ack(port) => {
                    let _ = port.send(());
                }
                Effect::Finished(run, state) => {
                    let _ = self.finished.send((run, state));
                }
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
            }
        }
    }
}
