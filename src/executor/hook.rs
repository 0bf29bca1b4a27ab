//! [`run_hook`]: one attempt of a hook call as an OS process ([`crate::process::run_process`],
//! the same way a task attempt runs), the event as JSON on stdin.
//!
//! The process gets `TROUPE_HOOK` (the hook's name), `TROUPE_HOOK_EVENT` (its `on`),
//! `TROUPE_HOOK_CALL` (the call's id), `TROUPE_HOOK_ATTEMPT`, and `TROUPE_RUN_ID` /
//! `TROUPE_TASK_ID` when the event is about a run or a task. Its output goes to
//! `DATA_DIR/logs/hooks/ID/ATTEMPT.log`; its process group is recorded in
//! `DATA_DIR/logs/hooks/ID/ATTEMPT.pid` while it runs (so a node restart can end it).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::layout::DataDir;
use crate::model::decide::HookEnd;
use crate::model::{Command, Failure};
use crate::process::{run_process, ProcessEnd, ProcessSpec, Program};

/// Everything one hook attempt needs.
#[derive(Debug, Clone)]
pub struct HookOrder {
    /// The call's id.
    pub id: u64,
    /// The attempt (1-based).
    pub attempt: u32,
    /// The hook's name (`TROUPE_HOOK`).
    pub name: String,
    /// Its event (`TROUPE_HOOK_EVENT`).
    pub on: &'static str,
    /// What runs.
    pub command: Command,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// The event as JSON (stdin).
    pub payload: String,
    /// `TROUPE_RUN_ID`, if the event is about a run.
    pub run: Option<String>,
    /// `TROUPE_TASK_ID`, if it is about a task.
    pub task: Option<String>,
    /// Working directory (`None`: the node's).
    pub cwd: Option<PathBuf>,
    /// SIGTERM → SIGKILL grace.
    pub grace: Duration,
    /// Bytes of output kept.
    pub log_cap: u64,
}

/// Runs one attempt of a hook call to its end. `cancel`: sending `()` terminates it (the
/// node's shutdown grace ran out), reported as [`Failure::Interrupted`].
pub async fn run_hook(
    layout: &DataDir,
    order: HookOrder,
    cancel: oneshot::Receiver<()>,
) -> HookEnd {
    let stdin = layout.hook_payload(order.id);
    let log_path = layout.hook_log(order.id, order.attempt);
    if let Err(e) = write_payload(&stdin, &order.payload) {
        return HookEnd::Failed {
            failure: Failure::SpawnFailed {
                message: format!("payload `{}`: {e}", stdin.display()),
            },
            last_line: None,
        };
    }
    let mut env = vec![
        ("TROUPE_HOOK".to_owned(), order.name.clone()),
        ("TROUPE_HOOK_EVENT".to_owned(), order.on.to_owned()),
        ("TROUPE_HOOK_CALL".to_owned(), order.id.to_string()),
        ("TROUPE_HOOK_ATTEMPT".to_owned(), order.attempt.to_string()),
    ];
    if let Some(run) = &order.run {
        env.push(("TROUPE_RUN_ID".to_owned(), run.clone()));
    }
    if let Some(task) = &order.task {
        env.push(("TROUPE_TASK_ID".to_owned(), task.clone()));
    }
    let spec = ProcessSpec {
        program: match &order.command {
            Command::Argv(argv) => Program::Argv(argv.clone()),
            Command::Shell(text) => Program::Shell(text.clone()),
        },
        env,
        cwd: order.cwd.clone(),
        log_path: log_path.clone(),
        log_cap: order.log_cap,
        pid_path: layout.hook_pid(order.id, order.attempt),
        timeout: Some(order.timeout),
        grace: order.grace,
        stdin: Some(stdin),
        append_log: false,
    };
    let outcome = run_process(spec, cancel).await;
    let failure = match outcome.end {
        ProcessEnd::Exited { code: 0 } => return HookEnd::Succeeded,
        ProcessEnd::Exited { code } => Failure::Exit { code },
        ProcessEnd::Signaled { signal } => Failure::Signal { signal },
        ProcessEnd::TimedOut => Failure::TimedOut,
        ProcessEnd::Cancelled => Failure::Interrupted,
        ProcessEnd::SpawnFailed { message } => Failure::SpawnFailed { message },
    };
    let path = log_path.clone();
    let last_line = tokio::task::spawn_blocking(move || last_line(&path))
        .await
        .ok()
        .flatten();
    HookEnd::Failed { failure, last_line }
}

fn write_payload(path: &Path, payload: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, payload)
}

/// Most characters of a hook's last line kept in a veto's message.
const MAX_LINE_CHARS: usize = 500;

/// The last non-empty line of the log at `path` (its last 4 KiB are read), without the
/// lines troupe itself adds (`[troupe: ...]`).
fn last_line(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .map(str::trim)
        .rev()
        .find(|l| !l.is_empty() && !l.starts_with("[troupe:"))
        .map(|l| l.chars().take(MAX_LINE_CHARS).collect())
}
