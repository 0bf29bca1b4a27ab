//! Executors: what actually runs an attempt.
//!
//! A worker actor hands each attempt to the node's [`Executor`]. The default,
//! [`ProcessExecutor`], runs the task's command as an OS process (see [`crate::process`]).
//! Embedders can supply their own (in-process tasks); [`NoopExecutor`] succeeds at once and
//! is what `troupe bench tasks` uses to measure the runtime's own overhead.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::messages::scheduler::{AttemptKind, AttemptOutcome};
use crate::model::{Command, Failure, ResourceUsage, RunId, TaskIndex, Workflow};
use crate::process::{run_process, ProcessEnd, ProcessSpec, Program};

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
}

/// A boxed attempt future.
pub type AttemptFuture = Pin<Box<dyn Future<Output = AttemptOutcome> + Send>>;

/// Runs attempts. `cancel` receives `()` when the attempt must stop (cancel, halt --kill,
/// shutdown); the executor then returns [`AttemptOutcome::Terminated`]. A dropped `cancel`
/// sender does not mean cancel.
pub trait Executor: Send + Sync + 'static {
    /// Runs one attempt to its end.
    fn execute(&self, ctx: AttemptContext, cancel: oneshot::Receiver<()>) -> AttemptFuture;
}

/// Runs each attempt as an OS process in its own process group (see [`crate::process`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessExecutor;

fn usage(u: Option<crate::process::Usage>) -> Option<ResourceUsage> {
    u.map(|u| ResourceUsage {
        user_cpu_us: u.user_cpu_us,
        system_cpu_us: u.system_cpu_us,
        max_rss_kib: u.max_rss_kib,
    })
}

impl Executor for ProcessExecutor {
    fn execute(&self, ctx: AttemptContext, cancel: oneshot::Receiver<()>) -> AttemptFuture {
        let wf = &ctx.workflow;
        let t = ctx.task;
        let spec = wf.task(t);
        let command = match ctx.kind {
            AttemptKind::Forward => Some(&spec.command),
            AttemptKind::Compensation => spec.compensate.as_ref(),
        };
        let program = match command {
            Some(Command::Argv(argv)) => Program::Argv(argv.clone()),
            Some(Command::Shell(text)) => Program::Shell(text.clone()),
            None => {
                let failure = Failure::Error {
                    message: "the task declares no compensation".into(),
                };
                return Box::pin(std::future::ready(AttemptOutcome::Failed {
                    failure,
                    usage: None,
                    retryable: false,
                }));
            }
        };
        let mut env: Vec<(String, String)> = wf
            .env(t)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        env.push(("TROUPE_RUN_ID".into(), ctx.run.to_string()));
        env.push(("TROUPE_TASK_ID".into(), wf.task_id(t).to_string()));
        env.push(("TROUPE_ATTEMPT".into(), ctx.attempt.to_string()));
        if ctx.kind == AttemptKind::Compensation {
            env.push(("TROUPE_COMPENSATION".into(), "1".into()));
        }
        let spec = ProcessSpec {
            program,
            env,
            cwd: wf.cwd(t).map(PathBuf::from),
            log_path: ctx.log_path,
            log_cap: ctx.log_cap,
            pid_path: ctx.pid_path,
            timeout: wf.timeout(t),
            grace: ctx.grace,
        };
        Box::pin(async move {
            let out = run_process(spec, cancel).await;
            let usage = usage(out.usage);
            let failed = |failure, retryable| AttemptOutcome::Failed {
                failure,
                usage,
                retryable,
            };
            match out.end {
                ProcessEnd::Exited { code: 0 } => AttemptOutcome::Succeeded { usage },
                ProcessEnd::Exited { code } => failed(Failure::Exit { code }, true),
                ProcessEnd::Signaled { signal } => failed(Failure::Signal { signal }, true),
                ProcessEnd::TimedOut => failed(Failure::TimedOut, true),
                ProcessEnd::Cancelled => AttemptOutcome::Terminated { usage },
                // A missing program or cwd stays missing: no retry (D20).
                ProcessEnd::SpawnFailed { message } => {
                    failed(Failure::SpawnFailed { message }, false)
                }
            }
        })
    }
}

/// Succeeds every attempt at once without running anything (benchmarks, tests of the
/// runtime itself).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopExecutor;

impl Executor for NoopExecutor {
    fn execute(&self, _ctx: AttemptContext, _cancel: oneshot::Receiver<()>) -> AttemptFuture {
        Box::pin(std::future::ready(AttemptOutcome::Succeeded {
            usage: None,
        }))
    }
}
