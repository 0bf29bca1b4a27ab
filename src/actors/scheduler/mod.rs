//! The scheduler, the write side: it owns the folded state of every run, the ready queue,
//! retry timers, the worker link and the halt flag; it decides, journals, then acts. It answers
//! no reads: those come from the read model ([`crate::read`]), to which it publishes the facts
//! only it knows.
//!
//! # The loop
//! `message → decide (model::decide, the fold as validator) → apply → journal → effects`.
//! A decided event is applied to the in-memory [`crate::model::State`] at once (so the next
//! decision sees it, and an event the fold refuses is never journaled), then sent to the
//! journal actor with
//! [`JournalMsg::AppendThen`](crate::messages::journal::JournalMsg::AppendThen). Effects —
//! dispatching an attempt, terminating one, answering a command — wait in a queue tagged with
//! the sequence number they depend on and run only once the journal acknowledged it ("persist,
//! then act"). Acks arrive in sequence order and an ack for `n` means everything up to `n` is
//! durable.
//!
//! Because the scheduler applies before the journal confirms, a failed append leaves its
//! state ahead of the journal: it then stops deciding and dispatching (`fault`: the node is
//! halted with the reason, e.g. a full disk) until `troupe unhalt` finds the journal
//! writable again and restarts it from a fresh replay.
//!
//! # Dispatch
//! Ready tasks wait in one max-heap ordered by score (weighted priority, deadline, age and
//! label boosts; a static rank computed at enqueue, [`crate::model::score`]), then age (FIFO
//! among equal ranks; see [`crate::model::decide::QueueKey`]). A task whose run is at
//! `max_concurrency` or whose pool is full ([`crate::model::caps::admit`]) is parked per (run,
//! pool) and moved back when an attempt of that run (pool) ends. Nothing is dispatched while
//! the node is halted, a `STOP` file exists in the data dir, or the node is draining for
//! shutdown. Attempts go to workers through a [`crate::workers::WorkerLink`].
//!
//! # Layout
//! - this file: the actor, a thin `match` over [`SchedulerMsg`].
//! - `state`: what it holds between messages; `recovery`: every start (replay, orphans,
//!   interrupted attempts).
//! - `pipeline`: decide → apply → stage → flush; `effects`: the interpreter of effects once
//!   durable; `observe`: metrics, rollups, notices, published facts.
//! - `commands/`: one file per command family; `attempts`: an attempt's end; `handoff`: the
//!   expansion of mapped tasks (dynamic fan-out); `agents`: spawning child runs, tokens, and
//!   the rules of agent trees (cancel cascade, escalation); `budgets`: wall-clock
//!   deadlines, subtrees over budget, escalations to a human.
//! - `dispatch/`: fill (`mod`), the queue and parked heaps, slots, saga steps, timers.
//! - `cluster`: worker nodes' joins, leases, results and their fencing, draining.
//! - `breakers`: circuit breakers: held tasks, counted ends, journaled transitions.
//! - `hooks`: hook calls queued with their triggers, veto holds, hook attempts and their
//!   retries (beside the task worker slots).
//! - `fault`: after a failed append (disk full): halted with the reason until `unhalt`.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::NodeContext;
use crate::messages::approval::ApprovalMsg;
use crate::messages::control::{ControlError, Request, Response};
use crate::messages::scheduler::{SchedulerMsg, WorkerMsg};
use crate::model::Event;

use crate::workers::WorkerLink;

mod agents;
mod attempts;
mod breakers;
mod budgets;
mod cluster;
mod commands;
mod dispatch;
mod effects;
mod fault;
mod handoff;
mod hooks;
mod observe;
mod pipeline;
mod recovery;
mod state;
mod swarm;

use dispatch::queue::Entry;
use effects::Effect;
use observe::pool_handles;
pub use state::SchedulerState;
use state::{now, Running};

/// How often the scheduler looks for the `STOP` file.
pub const STOP_FILE_POLL: Duration = Duration::from_millis(250);

/// The scheduler actor.
#[derive(Clone)]
pub struct Scheduler {
    /// Node-wide settings and handles.
    pub shared: Arc<NodeContext>,
}

pub use crate::read::views::{run_summary, run_view};

impl Actor for Scheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<SchedulerMsg>,
        _args: (),
    ) -> Result<SchedulerState, ActorProcessingErr> {
        SchedulerState::recover(&self.shared, &myself).await
    }

    async fn handle(
        &self,
        myself: ActorRef<SchedulerMsg>,
        message: SchedulerMsg,
        s: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(why) = s.frozen.clone() {
            return fault::while_frozen(&why, message, s).await;
        }
        match message {
            SchedulerMsg::Persisted(result) => match result {
                Ok(range) => {
                    if range.end > range.start {
                        s.durable = s.durable.max(range.end - 1);
                    }
                    s.run_effects(&myself);
                    s.maybe_snapshot();
                }
                Err(e) => {
                    s.freeze(&self.shared, e.to_string());
                    return Ok(());
                }
            },
            SchedulerMsg::AttemptEnded(report) => s.attempt_ended(report),
            SchedulerMsg::HookEnded { id, attempt, end } => s.hook_ended(id, attempt, end),
            SchedulerMsg::Cluster(m) => {
                s.cluster_message(m);
                s.publish_nodes();
            }
            SchedulerMsg::WorkerUp { slot, worker } => s.workers.local.worker_up(slot, worker),
            SchedulerMsg::Waiting { run, task, attempt } => s.waiting(run, task, attempt),
            SchedulerMsg::Tick => {
                let stop = self.shared.stop_file().exists();
                if stop && !s.state.is_halted() {
                    tracing::warn!(path = %self.shared.stop_file().display(), "STOP file found: halting");
                    s.decide(Event::NodeHalted { kill: false })?;
                }
                s.stop_file = stop;
                self.shared.facts.set_stop_file(stop);
                s.due_timers();
                s.due_breakers();
                s.due_deadlines();
                s.check_leases();
                s.publish_nodes();
            }
            SchedulerMsg::Request { request, reply } => match request {
                Request::Submit(workflow) => {
                    let response = match s.submit(*workflow, &self.shared.config.approval_rules) {
                        Ok((run, attached)) => Response::Submitted { run, attached },
                        Err(e) => Response::Error(e),
                    };
                    s.reply(reply, response);
                }
                Request::Spawn(req) => {
                    let response = match s.spawn(*req) {
                        Ok((run, attached)) => Response::Submitted { run, attached },
                        Err(e) => Response::Error(e),
                    };
                    s.run_agent_rules();
                    s.reply(reply, response);
                }
                Request::Delegate(req) => {
                    let response = match s.delegate(*req) {
                        Ok((run, attached, agent, reason)) => Response::Delegated {
                            run,
                            attached,
                            agent,
                            reason,
                        },
                        Err(e) => Response::Error(e),
                    };
                    s.run_agent_rules();
                    s.reply(reply, response);
                }
                Request::CheckChildren { caller, runs } => {
                    let response = match s.check_children(&caller, &runs) {
                        Ok(()) => Response::Done,
                        Err(e) => Response::Error(e),
                    };
                    let _ = reply.send(response);
                }
                Request::Command(cmd) => {
                    let response = match s.command(cmd, &self.shared.stop_file()) {
                        Ok(()) => Response::Done,
                        Err(e) => Response::Error(e),
                    };
                    s.reply(reply, response);
                }
                Request::Gc {
                    older_than,
                    dry_run,
                } => s.gc(&myself, older_than, dry_run, reply),
                Request::InjectPanic(actor) if actor == "scheduler" => {
                    panic!("test hook: scheduler panics")
                }
                Request::InjectPanic(actor) if actor == "worker" => {
                    let worker = s.workers.local.any_worker();
                    let response = match worker {
                        Some(w) => {
                            let _ = w.cast(WorkerMsg::Panic);
                            Response::Done
                        }
                        None => Response::Error(ControlError::Refused("no worker".into())),
                    };
                    s.reply(reply, response);
                }
                other => {
                    let _ = reply.send(Response::Error(ControlError::BadRequest(format!(
                        "the scheduler does not answer {other:?}"
                    ))));
                }
            },
            SchedulerMsg::Barrier(port) => s.after_persist(Effect::Ack(port)),
            SchedulerMsg::Drain(port) => {
                s.draining = true;
                self.shared.facts.set_draining(true);
                s.queue_session_hooks(crate::model::resilience::HookOn::NodeStopping);
                s.fill_hooks();
                s.drained.push(port);
                s.answer_drain();
            }
            SchedulerMsg::AbandonRunning | SchedulerMsg::KillRunning => {
                s.abandon = true;
                s.abandon_hooks();
                let kill = matches!(message, SchedulerMsg::KillRunning);
                let all = s.running_where(|_, _| true);
                for (slot, id) in all {
                    s.workers.terminate(slot, id, kill);
                }
            }
            SchedulerMsg::Flush => {
                s.flush_scheduled = false;
                s.flush(&myself);
                s.maybe_snapshot();
            }
            SchedulerMsg::ApprovalGateUp(gate) => {
                let _ = gate.cast(ApprovalMsg::Reset(s.pending_approvals()));
                s.gate = Some(gate);
            }
            SchedulerMsg::ExpireApproval {
                run,
                task,
                requested_at,
            } => s.expire_approval(run, task, requested_at),
            SchedulerMsg::Panic => panic!("test hook: scheduler panics"),
        }
        s.run_agent_rules();
        s.fill();
        s.fill_hooks();
        s.flush_approval_changes();
        s.schedule_flush(&myself);
        s.arm(&myself);
        s.arm_hooks(&myself);
        s.run_effects(&myself);
        s.publish_facts();
        Ok(())
    }
}

impl Drop for SchedulerState {
    /// Runs when the actor stops for any reason, a panic included: reads that need the
    /// write side's facts wait for the restart instead of trusting this incarnation's.
    fn drop(&mut self) {
        self.shared.facts.scheduler_stopped();
    }
}
