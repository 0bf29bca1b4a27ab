//! Executors: what actually runs an attempt.
//!
//! A worker actor hands each attempt to the node's [`Executor`]. The default,
//! [`ProcessExecutor`], runs the task's command as an OS process (see [`crate::process`]).
//! Embedders can supply their own (in-process tasks); [`NoopExecutor`] succeeds at once and
//! is what `troupe bench tasks` uses to measure the runtime's own overhead.
//!
//! # Layout
//! - this file: [`Executor`], [`AttemptContext`] (with what an attempt may read: its
//!   inputs, its item, its templates resolved), [`NoopExecutor`].
//! - `process`: [`ProcessExecutor`]: the handoff files (`TROUPE_OUTPUT`, `TROUPE_INPUTS`,
//!   `TROUPE_USAGE`), templates, the quality gate.
//! - `handoff`: reading and checking an output file and a usage file.
//! - `hook`: [`run_hook`]: one attempt of a hook call as a process.

mod agent;
mod handoff;
mod hook;
mod process;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use crate::messages::scheduler::{AttemptKind, AttemptOutcome};
use crate::model::decide::Handed;
use crate::model::template::{self, Scope};
use crate::model::{Counters, RunId, TaskId, TaskIndex, Workflow};
use crate::read::facts::WriteFacts;
use crate::read::outputs::Outputs;

pub use agent::{AgentContext, ChildSpec};
pub use handoff::{read_output, read_usage, MAX_COUNTERS};
pub use hook::{run_hook, HookOrder};
pub use process::ProcessExecutor;

/// Everything an executor needs to know about one attempt.
#[derive(Debug, Clone)]
pub struct AttemptContext {
    /// The run.
    pub run: RunId,
    /// The run's workflow.
    pub workflow: Arc<Workflow>,
    /// The task's index in the workflow.
    pub task: TaskIndex,
    /// The attempt number (1-based; compensation attempts count separately).
    pub attempt: u32,
    /// A forward attempt runs the task's `command`, a compensation its `compensate`.
    pub kind: AttemptKind,
    /// `DATA_DIR/logs/RUN/TASK/ATTEMPT.log` (`compensate-ATTEMPT.log` for compensations).
    pub log_path: PathBuf,
    /// `DATA_DIR/logs/RUN/TASK/ATTEMPT.pid`: the process id and start time while it runs,
    /// read at boot to terminate attempts a crashed node left behind.
    pub pid_path: PathBuf,
    /// Bytes of output kept in the log.
    pub log_cap: u64,
    /// Between SIGTERM and SIGKILL when an attempt is stopped.
    pub grace: Duration,
    /// Where upstream outputs are read (inputs, templates, the item of an instance).
    pub outputs: Outputs,
    /// `TROUPE_OUTPUT`, `TROUPE_INPUTS` and `TROUPE_USAGE` of a process attempt:
    /// `logs/RUN/TASK/ATTEMPT.{output,inputs,usage}.json`.
    pub files: HandoffFiles,
    /// Where usage reported while the attempt runs is published (status, dashboard).
    pub facts: Option<Arc<WriteFacts>>,
    /// The attempt as an agent: token, depth, input, spawning children (forward attempts
    /// run by a node; `None` for compensations).
    pub agent: Option<AgentContext>,
    /// Where the values of the task's `secret_env` come from (the node's or worker's
    /// `[secrets]` files and environment); looked up when the process starts.
    pub secrets: Arc<crate::config::Secrets>,
}

/// The handoff files of one process attempt (removed when it ends: what they hold is
/// journaled).
#[derive(Debug, Clone)]
pub struct HandoffFiles {
    /// `TROUPE_OUTPUT`: the attempt may write one JSON value here.
    pub output: PathBuf,
    /// `TROUPE_INPUTS`: the node writes the direct dependencies' outputs here.
    pub inputs: PathBuf,
    /// `inputs` is shared by every instance of a mapped task
    /// (`logs/RUN/TASK/instances.inputs.json`): written once, kept after the attempt.
    pub shared_inputs: bool,
    /// `TROUPE_INPUT`: the node writes the run's input here (a spawned run's).
    pub input: PathBuf,
    /// `TROUPE_USAGE`: the attempt may write a JSON object of numbers here, as often as it
    /// likes.
    pub usage: PathBuf,
}

/// Why a template could not be resolved.
enum Unresolved {
    /// The path names nothing in a journaled output: will not change (no retry).
    Missing(String),
    /// The journal could not be read: may work next time (retried).
    Unreadable(String),
}

/// The values templates and `TROUPE_INPUTS` need, read once per attempt.
struct Resolved {
    /// Outputs of the upstream tasks named, by id.
    outputs: HashMap<TaskId, Arc<Value>>,
    /// For an instance: its element and index.
    item: Option<(Value, u32)>,
    /// The run's input (`null` if none).
    input: Value,
}

impl Scope for Resolved {
    fn output(&self, id: &TaskId) -> Option<&Value> {
        self.outputs.get(id).map(|v| &**v)
    }
    fn item(&self) -> Option<(&Value, u32)> {
        self.item.as_ref().map(|(v, i)| (v, *i))
    }
    fn input(&self) -> &Value {
        &self.input
    }
}

impl AttemptContext {
    /// The task's id.
    pub fn task_id(&self) -> &TaskId {
        self.workflow.task_id(self.task)
    }

    /// The outputs of the task's direct dependencies, by task id (`null` for one that wrote
    /// none; for a mapped dependency the list of its instances' outputs, in index order):
    /// what `TROUPE_INPUTS` holds.
    pub fn inputs(&self) -> Result<serde_json::Map<String, Value>, String> {
        let mut map = serde_json::Map::new();
        for d in self.workflow.plan().upstream(self.task) {
            let id = self.workflow.task_id(d);
            if id.split_instance().is_some() {
                // A mapped task depends on its own instances: those are not its inputs.
                continue;
            }
            let v = self
                .outputs
                .value(self.run, &self.workflow, d)
                .map_err(|e| e.to_string())?;
            map.insert(id.to_string(), (*v).clone());
        }
        Ok(map)
    }

    /// For an instance of a mapped task: its element of the `for_each` array and its index.
    pub fn item(&self) -> Result<Option<(Value, u32)>, String> {
        self.instance_item().map_err(|e| match e {
            Unresolved::Missing(m) | Unresolved::Unreadable(m) => m,
        })
    }

    fn instance_item(&self) -> Result<Option<(Value, u32)>, Unresolved> {
        use Unresolved::Missing;
        let spec = self.workflow.task(self.task);
        let Some(crate::model::Expansion::Instance { index }) = spec.expansion() else {
            return Ok(None);
        };
        let expr =
            template::parse_for_each(spec.for_each().unwrap_or_default()).map_err(Missing)?;
        let template::Root::Output(source) = &expr.root else {
            return Err(Missing("for_each names no task".into()));
        };
        let s = self
            .workflow
            .task_index(source.as_str())
            .ok_or_else(|| Missing(format!("no task `{source}`")))?;
        let value = self
            .outputs
            .value(self.run, &self.workflow, s)
            .map_err(|e| Unresolved::Unreadable(e.to_string()))?;
        let array =
            template::follow(&value, &expr.path).map_err(|e| Missing(format!("{expr}: {e}")))?;
        let item = array
            .get(index as usize)
            .ok_or_else(|| Missing(format!("{expr}: no element [{index}]")))?;
        Ok(Some((item.clone(), index)))
    }

    /// Reads what the templates of `texts` name (and the item of an instance).
    fn resolver<'t>(&self, texts: impl Iterator<Item = &'t str>) -> Result<Resolved, Unresolved> {
        use Unresolved::Missing;
        let mut outputs = HashMap::new();
        for text in texts {
            for e in template::exprs(text).map_err(Missing)? {
                if let template::Root::Output(id) = &e.root {
                    if outputs.contains_key(id) {
                        continue;
                    }
                    let t = self
                        .workflow
                        .task_index(id.as_str())
                        .ok_or_else(|| Missing(format!("{e}: no task `{id}`")))?;
                    let v = self
                        .outputs
                        .value(self.run, &self.workflow, t)
                        .map_err(|err| Unresolved::Unreadable(format!("{e}: {err}")))?;
                    outputs.insert(id.clone(), v);
                }
            }
        }
        Ok(Resolved {
            outputs,
            item: self.instance_item()?,
            input: self
                .agent
                .as_ref()
                .map_or(Value::Null, AgentContext::input_value),
        })
    }

    /// Publishes usage counters reported so far (shown live by `status` and the dashboard
    /// until the attempt's end journals the final figures).
    pub fn report_usage(&self, counters: Counters) {
        if let Some(facts) = &self.facts {
            facts.set_live_usage(self.run, self.task, self.attempt, Some(counters));
        }
    }
}

/// A boxed attempt future.
pub type AttemptFuture = Pin<Box<dyn Future<Output = AttemptOutcome> + Send>>;

/// Runs attempts. `cancel` receives `()` when the attempt must stop (cancel, halt --kill,
/// shutdown); the executor then returns [`AttemptOutcome::Terminated`]. A dropped `cancel`
/// sender does not mean cancel.
///
/// An attempt hands its output back in [`AttemptOutcome::Succeeded`]'s `handed` (compact JSON
/// text); the node refuses one that is not one JSON value or is over the task's
/// `max_output` (`output_invalid`) before journaling it. The task's `gate` and the
/// `TROUPE_*` files are [`ProcessExecutor`]'s: an in-process executor that wants a gate
/// checks its output itself before returning it.
pub trait Executor: Send + Sync + 'static {
    /// Runs one attempt to its end.
    fn execute(&self, ctx: AttemptContext, cancel: oneshot::Receiver<()>) -> AttemptFuture;
}

/// Succeeds every attempt at once without running anything (benchmarks, tests of the
/// runtime itself).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopExecutor;

impl Executor for NoopExecutor {
    fn execute(&self, _ctx: AttemptContext, _cancel: oneshot::Receiver<()>) -> AttemptFuture {
        Box::pin(std::future::ready(AttemptOutcome::Succeeded {
            usage: None,
            handed: Handed::default(),
        }))
    }
}
