//! Worker actors: each runs one attempt at a time, handed to the node's
//! [`crate::executor::Executor`].
//!
//! The attempt itself runs in a task the worker spawns, so the worker stays responsive to
//! `Terminate` while a process runs. The attempt task reports straight to the scheduler.
//! When a worker stops (its supervisor restarts it, or the node shuts down) it terminates
//! its attempt and waits for it (the grace period plus a second), so no attempt outlives
//! the actor that owns it. An order that is never run (it died in a stopped worker's
//! mailbox) reports itself as interrupted when dropped (see
//! [`crate::messages::scheduler::ReportPort`]); a restarted worker announces itself with
//! `WorkerUp`.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::context::NodeContext;
use crate::executor::{AttemptContext, HandoffFiles};
use crate::messages::scheduler::{AttemptId, AttemptOrder, SchedulerMsg, WorkerMsg};

/// The worker actor.
#[derive(Clone)]
pub struct Worker {
    /// Node-wide settings and handles.
    pub shared: Arc<NodeContext>,
    /// This worker's slot.
    pub slot: u32,
}

/// The attempt a worker is running.
struct Current {
    /// The attempt.
    attempt: AttemptId,
    /// Fires the executor's cancel.
    cancel: Option<oneshot::Sender<()>>,
    /// The attempt's pid file (a process attempt's group), for [`WorkerMsg::Kill`].
    pid_path: std::path::PathBuf,
    /// The attempt task, awaited when the worker stops.
    task: JoinHandle<()>,
}

/// A worker's state: the attempt its slot holds, plus any attempt that gave the slot back
/// while it waits for its children (see [`crate::workers::WorkerLink::lend`]).
pub struct WorkerState {
    /// The running attempts (one, unless some lent the slot).
    current: Vec<Current>,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<WorkerMsg>,
        _args: (),
    ) -> Result<WorkerState, ActorProcessingErr> {
        let scheduler = self
            .shared
            .scheduler()
            .ok_or("worker started without a scheduler")?;
        scheduler.cast(SchedulerMsg::WorkerUp {
            slot: self.slot,
            worker: myself,
        })?;
        Ok(WorkerState {
            current: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        message: WorkerMsg,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkerMsg::Run(order) => {
                let AttemptOrder {
                    workflow,
                    report,
                    agent,
                } = *order;
                let id = report.id;
                let task_id = workflow.task_id(id.task);
                tracing::debug!(run_id = %id.run, task_id = %task_id, attempt = id.attempt, kind = ?id.kind, slot = self.slot, "attempt starts");
                let cfg = &self.shared.config;
                let layout = cfg.layout();
                let file = |name| layout.attempt_file(id.run, task_id, id.kind, id.attempt, name);
                let ctx = AttemptContext {
                    outputs: self.shared.outputs.clone(),
                    files: {
                        // Instances of a mapped task share one inputs file (same dependencies).
                        let base = match workflow.task(id.task).expansion() {
                            Some(crate::model::Expansion::Instance { .. }) => task_id
                                .split_instance()
                                .and_then(|(b, _)| crate::model::TaskId::new(b).ok()),
                            _ => None,
                        };
                        HandoffFiles {
                            output: file("output"),
                            inputs: match &base {
                                Some(b) => {
                                    layout.task_logs(id.run, b).join("instances.inputs.json")
                                }
                                None => file("inputs"),
                            },
                            shared_inputs: base.is_some(),
                            input: file("input"),
                            usage: file("usage"),
                        }
                    },
                    facts: Some(Arc::clone(&self.shared.facts)),
                    agent: agent.map(|g| crate::executor::AgentContext {
                        caller: crate::messages::control::Caller {
                            run: id.run,
                            task: task_id.clone(),
                            attempt: id.attempt,
                            token: g.token,
                        },
                        depth: g.depth,
                        input: g.input,
                        // Absolute: the attempt runs in its own working directory.
                        data_dir: std::path::absolute(&cfg.data_dir)
                            .unwrap_or_else(|_| cfg.data_dir.clone()),
                        node: Arc::downgrade(&self.shared),
                        task_index: Some(id.task),
                        lent: Default::default(),
                    }),
                    run: id.run,
                    workflow: Arc::clone(&workflow),
                    task: id.task,
                    attempt: id.attempt,
                    kind: id.kind,
                    log_path: layout.attempt_log(id.run, task_id, id.kind, id.attempt),
                    pid_path: layout.attempt_pid(id.run, task_id, id.kind, id.attempt),
                    log_cap: cfg.log_cap,
                    grace: cfg.grace,
                    secrets: Arc::clone(&cfg.secrets),
                };
                let pid_path = ctx.pid_path.clone();
                let (cancel_tx, cancel_rx) = oneshot::channel();
                let fut = self.shared.executor.execute(ctx, cancel_rx);
                let task = tokio::spawn(async move {
                    let outcome = fut.await;
                    report.send(outcome);
                    let _ = myself.cast(WorkerMsg::Finished { attempt: id });
                });
                state.current.push(Current {
                    attempt: id,
                    cancel: Some(cancel_tx),
                    pid_path,
                    task,
                });
            }
            WorkerMsg::Terminate { attempt } => {
                if let Some(c) = state.current.iter_mut().find(|c| c.attempt == attempt) {
                    if let Some(cancel) = c.cancel.take() {
                        let _ = cancel.send(());
                    }
                }
            }
            WorkerMsg::Kill { attempt } => {
                if let Some(c) = state.current.iter_mut().find(|c| c.attempt == attempt) {
                    if let Some(cancel) = c.cancel.take() {
                        let _ = cancel.send(());
                    }
                    // SIGKILL to the group now (no pid file: an in-process attempt, which
                    // the cancel alone stops).
                    let pid_path = c.pid_path.clone();
                    tokio::spawn(async move {
                        let _ = crate::process::terminate_orphan(&pid_path, Duration::ZERO).await;
                    });
                }
            }
            WorkerMsg::Finished { attempt } => {
                state.current.retain(|c| c.attempt != attempt);
            }
            WorkerMsg::Panic => panic!("test hook: worker {} panics", self.slot),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WorkerMsg>,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        let mut all = std::mem::take(&mut state.current);
        for c in &mut all {
            if let Some(cancel) = c.cancel.take() {
                let _ = cancel.send(());
            }
        }
        let wait = self.shared.config.grace + Duration::from_secs(1);
        for mut c in all {
            if tokio::time::timeout(wait, &mut c.task).await.is_err() {
                c.task.abort();
            }
        }
        Ok(())
    }
}
