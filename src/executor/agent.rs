//! What an attempt needs to act as an agent: its capability token, its place in the tree,
//! its run's input, and — for an in-process [`super::Executor`] — a way to spawn children
//! and wait for them through the node it runs on (the same requests `troupe spawn` and
//! `troupe wait` send over the socket).

use std::sync::{Arc, Weak};

use serde_json::Value;

use crate::context::NodeContext;
use crate::messages::control::{
    Caller, ControlError, Request, Response, RunResultView, SpawnRequest,
};
use crate::model::authority::AuthorityAsk;
use crate::model::{OnFailure, OnParentExit, RunId, TaskId, Workflow};

/// The agent side of one attempt (forward attempts only).
#[derive(Clone, Debug)]
pub struct AgentContext {
    /// The run, task and attempt, with the attempt's token: what every request shows.
    pub caller: Caller,
    /// 0 for a root run, parent's depth + 1 below.
    pub depth: u32,
    /// The run's input (one compact JSON value), if it was spawned with one.
    pub input: Option<Arc<str>>,
    /// The node's data dir (`TROUPE_DATA_DIR`: where `troupe spawn` finds the socket).
    pub data_dir: std::path::PathBuf,
    /// The node, for in-process spawns (weak: an attempt does not keep its node alive).
    pub(crate) node: Weak<NodeContext>,
    /// The task's index in its workflow (to tell the scheduler which attempt waits).
    pub(crate) task_index: Option<crate::model::TaskIndex>,
    /// Whether this attempt already told the scheduler it waits (its slot is lent once).
    pub(crate) lent: Arc<std::sync::atomic::AtomicBool>,
}

/// A child to start: what `troupe spawn` takes as arguments.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// The idempotency key: the same key from the same task returns the same child.
    pub key: String,
    /// The child's workflow.
    pub workflow: Workflow,
    /// Its input (`TROUPE_INPUT`, `{{ input }}`).
    pub input: Option<Value>,
    /// Asked authority, over the workflow's `[authority]`.
    pub authority: AuthorityAsk,
    /// See [`OnFailure`].
    pub on_failure: OnFailure,
    /// See [`OnParentExit`].
    pub on_parent_exit: OnParentExit,
    /// See [`crate::model::OnBudgetExhausted`].
    pub on_budget_exhausted: crate::model::OnBudgetExhausted,
}

impl ChildSpec {
    /// A child running `workflow` with `input` under `key`, default policies.
    pub fn new(key: impl Into<String>, workflow: Workflow, input: Option<Value>) -> Self {
        ChildSpec {
            key: key.into(),
            workflow,
            input,
            authority: AuthorityAsk::default(),
            on_failure: OnFailure::default(),
            on_parent_exit: OnParentExit::default(),
            on_budget_exhausted: Default::default(),
        }
    }
}

impl ChildSpec {
    /// The request that spawns this child for `caller` (`None`: a root run).
    pub fn into_request(self, caller: Option<Caller>) -> SpawnRequest {
        SpawnRequest {
            caller,
            key: self.key,
            workflow: Box::new(self.workflow),
            input: self.input.map(|v| v.to_string()),
            authority: self.authority,
            on_failure: self.on_failure,
            on_parent_exit: self.on_parent_exit,
            on_budget_exhausted: self.on_budget_exhausted,
        }
    }
}

impl AgentContext {
    /// The run's input (`null` if none).
    pub fn input_value(&self) -> Value {
        self.input
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    }

    fn node(&self) -> Result<Arc<NodeContext>, ControlError> {
        self.node
            .upgrade()
            .ok_or_else(|| ControlError::Internal("the node stopped".into()))
    }

    async fn ask(&self, request: Request) -> Result<Response, ControlError> {
        let node = self.node()?;
        match node.request(request).await {
            Ok(Response::Error(e)) => Err(e),
            Ok(r) => Ok(r),
            Err(e) => Err(ControlError::Internal(e.to_string())),
        }
    }

    /// Spawns (or re-attaches to) a child of this attempt's task: its run id, and whether
    /// the key already named it.
    pub async fn spawn(&self, child: ChildSpec) -> Result<(RunId, bool), ControlError> {
        let request = Request::Spawn(Box::new(child.into_request(Some(self.caller.clone()))));
        match self.ask(request).await? {
            Response::Submitted { run, attached } => Ok((run, attached)),
            other => Err(ControlError::Internal(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Waits until child `run` finished: its state and output. Only a child of this
    /// attempt's task (checked against the read model: an in-process executor is code of
    /// the node's own process, its context came from the node).
    pub async fn wait(&self, run: RunId) -> Result<RunResultView, ControlError> {
        loop {
            let node = self.node()?;
            // Registered before looking, so an end between the look and the wait is not
            // missed; the look is the projection's summary (no journal read).
            let finished = node.watch_run(run);
            drop(node);
            let Response::Runs(summary) = self.ask(Request::Summary(run)).await? else {
                return Err(ControlError::Internal("unexpected answer".into()));
            };
            let s = summary
                .first()
                .ok_or_else(|| ControlError::NotFound(format!("no run {run}")))?;
            let mine = s
                .parent
                .as_ref()
                .is_some_and(|(r, t)| *r == self.caller.run && *t == self.caller.task);
            if !mine {
                return Err(ControlError::Denied(format!(
                    "run {run} is not a child of {}/{}",
                    self.caller.run, self.caller.task
                )));
            }
            if s.state.is_finished() && s.asking.is_none() {
                return self.result(run).await;
            }
            self.lend_slot();
            // Woken once the end is durable, or an escalation decided (then look again).
            let _ = finished.await;
        }
    }

    /// Tells the scheduler this attempt waits, so its worker slot can take other attempts
    /// (its own children among them) meanwhile. Idempotent.
    fn lend_slot(&self) {
        if self.lent.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let Some(node) = self.node.upgrade() else {
            return;
        };
        let Some(scheduler) = node.scheduler() else {
            return;
        };
        let Some(task) = self.task_index else { return };
        let _ = scheduler.cast(crate::messages::scheduler::SchedulerMsg::Waiting {
            run: self.caller.run,
            task,
            attempt: self.caller.attempt,
        });
    }

    async fn result(&self, run: RunId) -> Result<RunResultView, ControlError> {
        match self.ask(Request::Result(run)).await? {
            Response::Result(view) => Ok(*view),
            _ => Err(ControlError::Internal("unexpected answer".into())),
        }
    }

    /// The task id (for building keys).
    pub fn task(&self) -> &TaskId {
        &self.caller.task
    }
}
