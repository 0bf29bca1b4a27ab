//! [`ProcessExecutor`]: one attempt as an OS process, with its handoff.
//!
//! Before the process starts: the templates of `command` and `env` are resolved (a missing
//! path fails the attempt without retries, naming the expression), `TROUPE_INPUTS` is
//! written, and the environment gains `TROUPE_OUTPUT`, `TROUPE_INPUTS`, `TROUPE_USAGE` (and
//! `TROUPE_ITEM` for an instance of a mapped task). While it runs, `TROUPE_USAGE` is read
//! every [`USAGE_POLL`]. After it exits 0: the output is read and checked, then the gate
//! (if any) runs with the output on stdin. The handoff files are removed at the end.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::handoff::{read_output, read_usage};
use super::{AttemptContext, AttemptFuture, Executor};
use crate::messages::scheduler::{AttemptKind, AttemptOutcome};
use crate::model::decide::Handed;
use crate::model::template;
use crate::model::{Command, Counters, Failure, ResourceUsage};
use crate::process::{run_process, ProcessEnd, ProcessSpec, Program};

/// How often a running attempt's `TROUPE_USAGE` is read (for live figures).
pub const USAGE_POLL: Duration = Duration::from_secs(1);

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

fn program(command: &Command) -> Program {
    match command {
        Command::Argv(argv) => Program::Argv(argv.clone()),
        Command::Shell(text) => Program::Shell(text.clone()),
    }
}

fn failed(failure: Failure, usage: Option<ResourceUsage>, retryable: bool) -> AttemptOutcome {
    AttemptOutcome::Failed {
        failure,
        usage,
        retryable,
        counters: Counters::new(),
    }
}

/// Everything known before the process starts, or why the attempt fails at once.
struct Prepared {
    program: Program,
    env: Vec<(String, String)>,
    /// A swarm task's vote: the ballot file (the process's stdin) and the outputs it may
    /// choose from.
    vote: Option<(PathBuf, Vec<serde_json::Value>)>,
}

/// Where a vote attempt's ballot is written: beside its output file.
fn ballot_path(ctx: &AttemptContext) -> PathBuf {
    ctx.files.output.with_extension("ballot")
}

/// Resolves templates and writes `TROUPE_INPUTS` (blocking: reads the journal).
fn prepare(ctx: &AttemptContext) -> Result<Prepared, AttemptOutcome> {
    let wf = &ctx.workflow;
    let t = ctx.task;
    let spec = wf.task(t);
    let command = match ctx.kind {
        AttemptKind::Forward => wf.vote(t).unwrap_or(&spec.command),
        AttemptKind::Compensation => match &spec.compensate {
            Some(c) => c,
            None => {
                let failure = Failure::Error {
                    message: "the task declares no compensation".into(),
                };
                return Err(failed(failure, None, false));
            }
        },
    };
    let templated = |s: &str| template::has_exprs(s);
    let env_map = wf.env(t);
    let argv_templates = ctx.kind == AttemptKind::Forward
        && matches!(command, Command::Argv(argv) if argv.iter().any(|a| templated(a)));
    let texts: Vec<&str> = env_map
        .values()
        .copied()
        .chain(match command {
            Command::Argv(argv) if argv_templates => argv.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        })
        .filter(|s| templated(s))
        .collect();
    let template_failed =
        |message: String| failed(Failure::TemplateFailed { message }, None, false);
    let resolved = ctx.resolver(texts.into_iter()).map_err(|e| match e {
        super::Unresolved::Missing(message) => template_failed(message),
        super::Unresolved::Unreadable(message) => failed(Failure::Error { message }, None, true),
    })?;
    let mut env: Vec<(String, String)> = Vec::with_capacity(env_map.len() + 8);
    for (k, v) in env_map {
        let v = if templated(v) {
            template::resolve(v, &resolved).map_err(template_failed)?
        } else {
            v.to_owned()
        };
        env.push((k.to_owned(), v));
    }
    let program = match command {
        Command::Argv(argv) if argv_templates => {
            let mut out = Vec::with_capacity(argv.len());
            for a in argv {
                out.push(template::resolve(a, &resolved).map_err(template_failed)?);
            }
            Program::Argv(out)
        }
        other => program(other),
    };
    // Secret values enter here, in memory, on their way to the process: never into the
    // spec, the journal or a message (only the names are there).
    for name in &spec.secret_env {
        match ctx.secrets.get(name) {
            Some(value) => env.push((name.clone(), value)),
            None => {
                let message = format!(
                    "secret `{name}` of task `{}` is not set on the node that runs it \
                     (neither in its [secrets] files nor in its environment)",
                    wf.task_id(t)
                );
                return Err(failed(Failure::Error { message }, None, false));
            }
        }
    }
    env.push(("TROUPE_RUN_ID".into(), ctx.run.to_string()));
    env.push(("TROUPE_TASK_ID".into(), wf.task_id(t).to_string()));
    env.push(("TROUPE_ATTEMPT".into(), ctx.attempt.to_string()));
    if let Some((item, _)) = &resolved.item {
        env.push(("TROUPE_ITEM".into(), item.to_string()));
    }
    if ctx.kind == AttemptKind::Compensation {
        env.push(("TROUPE_COMPENSATION".into(), "1".into()));
        return Ok(Prepared {
            program,
            env,
            vote: None,
        });
    }
    let files = &ctx.files;
    // The instances of a mapped task share one inputs file (their dependencies are the
    // same): written by the first, read by all, so a fan-out over a large upstream output
    // does not copy it once per instance.
    let shared_ready = files.shared_inputs
        && std::fs::symlink_metadata(&files.inputs).is_ok_and(|m| m.file_type().is_file());
    let written = (|| -> Result<(), String> {
        if shared_ready {
            return Ok(());
        }
        let inputs = ctx.inputs()?;
        let text = serde_json::to_string(&inputs).map_err(|e| e.to_string())?;
        let io = |e: std::io::Error| e.to_string();
        // No stale output or usage file can be there: an attempt number is never reused.
        if let Some(dir) = files.inputs.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        if files.shared_inputs {
            // Written aside and renamed: a concurrent instance sees all of it or none.
            let tmp = files
                .inputs
                .with_extension(format!("{}.{}.tmp", ctx.attempt, ctx.task));
            write_fresh(&tmp, &text).map_err(io)?;
            std::fs::rename(&tmp, &files.inputs).map_err(io)
        } else {
            write_fresh(&files.inputs, &text).map_err(io)
        }
    })();
    if let Err(e) = written {
        let message = format!(
            "cannot prepare TROUPE_INPUTS ({}): {e}",
            files.inputs.display()
        );
        return Err(failed(Failure::Error { message }, None, true));
    }
    let path = |p: &PathBuf| p.to_string_lossy().into_owned();
    if let Some(agent) = &ctx.agent {
        env.push(("TROUPE_TOKEN".into(), agent.caller.token.clone()));
        env.push(("TROUPE_DEPTH".into(), agent.depth.to_string()));
        env.push(("TROUPE_DATA_DIR".into(), path(&agent.data_dir)));
        if let Some(input) = &agent.input {
            if let Err(e) = write_fresh(&files.input, input) {
                let message = format!(
                    "cannot prepare TROUPE_INPUT ({}): {e}",
                    files.input.display()
                );
                return Err(failed(Failure::Error { message }, None, true));
            }
            env.push(("TROUPE_INPUT".into(), path(&files.input)));
        }
    }
    env.push(("TROUPE_OUTPUT".into(), path(&files.output)));
    env.push(("TROUPE_INPUTS".into(), path(&files.inputs)));
    env.push(("TROUPE_USAGE".into(), path(&files.usage)));
    let vote = match wf.vote(t) {
        None => None,
        Some(_) => Some(write_ballot(ctx)?),
    };
    Ok(Prepared { program, env, vote })
}

/// Writes the ballot of a swarm task's vote (its replicas' outputs, D67) for its stdin.
fn write_ballot(ctx: &AttemptContext) -> Result<(PathBuf, Vec<serde_json::Value>), AttemptOutcome> {
    let ballot = ctx
        .outputs
        .ballot(ctx.run, &ctx.workflow, ctx.task)
        .map_err(|e| {
            let message = format!("cannot read the replicas' outputs for the vote: {e}");
            failed(Failure::Error { message }, None, true)
        })?;
    let path = ballot_path(ctx);
    if let Err(e) = write_fresh(&path, &ballot.to_string()) {
        let message = format!("cannot write the vote's ballot ({}): {e}", path.display());
        return Err(failed(Failure::Error { message }, None, true));
    }
    let choices = match ballot {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|mut b| b.get_mut("output").map(serde_json::Value::take))
            .collect(),
        _ => Vec::new(),
    };
    Ok((path, choices))
}

/// A cancel receiver for one process of the attempt, fired when `flag` becomes true.
fn cancel_for(
    flag: &watch::Receiver<bool>,
) -> (oneshot::Receiver<()>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = oneshot::channel();
    let mut flag = flag.clone();
    let forward = tokio::spawn(async move {
        if flag.wait_for(|cancelled| *cancelled).await.is_ok() {
            let _ = tx.send(());
        }
    });
    (rx, forward)
}

impl Executor for ProcessExecutor {
    fn execute(&self, ctx: AttemptContext, cancel: oneshot::Receiver<()>) -> AttemptFuture {
        Box::pin(async move {
            let prep_ctx = ctx.clone();
            let prepared = match tokio::task::spawn_blocking(move || prepare(&prep_ctx)).await {
                Ok(Ok(p)) => p,
                Ok(Err(outcome)) => return outcome,
                Err(e) => {
                    return failed(
                        Failure::Error {
                            message: e.to_string(),
                        },
                        None,
                        true,
                    )
                }
            };
            let outcome = run_attempt(&ctx, prepared, cancel).await;
            if ctx.kind == AttemptKind::Forward {
                let _ = std::fs::remove_file(&ctx.files.output);
                let _ = std::fs::remove_file(&ctx.files.usage);
                let _ = std::fs::remove_file(&ctx.files.input);
                if ctx.workflow.vote(ctx.task).is_some() {
                    let _ = std::fs::remove_file(ballot_path(&ctx));
                }
                if !ctx.files.shared_inputs {
                    let _ = std::fs::remove_file(&ctx.files.inputs);
                }
                if let Some(facts) = &ctx.facts {
                    facts.set_live_usage(ctx.run, ctx.task, ctx.attempt, None);
                }
            }
            outcome
        })
    }
}

async fn run_attempt(
    ctx: &AttemptContext,
    prepared: Prepared,
    cancel: oneshot::Receiver<()>,
) -> AttemptOutcome {
    let wf = &ctx.workflow;
    let t = ctx.task;
    let forward = ctx.kind == AttemptKind::Forward;
    let (flag_tx, flag_rx) = watch::channel(false);
    let watcher = tokio::spawn(async move {
        if cancel.await.is_ok() {
            let _ = flag_tx.send(true);
        }
    });
    let _watcher = AbortOnDrop(watcher);
    let spec = ProcessSpec {
        program: prepared.program,
        env: prepared.env,
        cwd: wf.cwd(t).map(PathBuf::from),
        log_path: ctx.log_path.clone(),
        log_cap: ctx.log_cap,
        pid_path: ctx.pid_path.clone(),
        timeout: wf.timeout(t),
        grace: ctx.grace,
        stdin: prepared.vote.as_ref().map(|(path, _)| path.clone()),
        append_log: false,
    };
    let choices = prepared.vote.map(|(_, choices)| choices);
    let gate_base = spec.clone();
    let (rx, fwd) = cancel_for(&flag_rx);
    let _fwd = AbortOnDrop(fwd);
    let started = std::time::Instant::now();
    let run = run_process(spec, rx);
    tokio::pin!(run);
    // Live usage: read TROUPE_USAGE while the process runs (a half-written file is skipped).
    let out = if forward {
        let mut tick = tokio::time::interval(USAGE_POLL);
        tick.tick().await;
        let mut last: Option<Counters> = None;
        loop {
            tokio::select! {
                // run_process is not cancel-safe, but it is pinned and polled to completion.
                out = &mut run => break out,
                // interval ticks are cancel-safe.
                _ = tick.tick() => {
                    if let Ok(c) = read_usage(&ctx.files.usage) {
                        if !c.is_empty() && last.as_ref() != Some(&c) {
                            ctx.report_usage(c.clone());
                            last = Some(c);
                        }
                    }
                }
            }
        }
    } else {
        run.await
    };
    let usage = usage(out.usage);
    let end_failure = match out.end {
        ProcessEnd::Exited { code: 0 } => None,
        ProcessEnd::Exited { code } => Some((Failure::Exit { code }, true)),
        ProcessEnd::Signaled { signal } => Some((Failure::Signal { signal }, true)),
        ProcessEnd::TimedOut => Some((Failure::TimedOut, true)),
        ProcessEnd::Cancelled => return AttemptOutcome::Terminated { usage },
        // A missing program or cwd stays missing: no retry (D20).
        ProcessEnd::SpawnFailed { message } => Some((Failure::SpawnFailed { message }, false)),
    };
    if !forward {
        return match end_failure {
            None => AttemptOutcome::Succeeded {
                usage,
                handed: Handed::default(),
            },
            Some((failure, retryable)) => failed(failure, usage, retryable),
        };
    }
    if let Some((failure, retryable)) = end_failure {
        // The failure is what the exit says; usage is kept if it reads (a process killed
        // while rewriting TROUPE_USAGE must not turn a timeout into `usage_invalid`).
        return AttemptOutcome::Failed {
            failure,
            usage,
            retryable,
            counters: read_usage(&ctx.files.usage).unwrap_or_default(),
        };
    }
    let usage_failed = |message: String, usage| {
        note(&ctx.log_path, &format!("usage invalid: {message}"));
        failed(Failure::UsageInvalid { message }, usage, true)
    };
    let output = match read_output(&ctx.files.output, wf.max_output(t)) {
        Ok(o) => o,
        Err(message) => {
            note(&ctx.log_path, &format!("output invalid: {message}"));
            return AttemptOutcome::Failed {
                failure: Failure::OutputInvalid { message },
                usage,
                retryable: true,
                counters: read_usage(&ctx.files.usage).unwrap_or_default(),
            };
        }
    };
    if let Some(choices) = &choices {
        // A vote must pick one of the replicas' outputs (JSON equality).
        let picked: serde_json::Value = output
            .as_deref()
            .map_or(Ok(serde_json::Value::Null), serde_json::from_str)
            .unwrap_or(serde_json::Value::Null);
        if !choices.contains(&picked) {
            let message = format!(
                "the vote wrote {}, which is none of the {} replica outputs on its ballot",
                output.as_deref().unwrap_or("no output"),
                choices.len()
            );
            note(&ctx.log_path, &format!("output invalid: {message}"));
            return AttemptOutcome::Failed {
                failure: Failure::OutputInvalid { message },
                usage,
                retryable: true,
                counters: read_usage(&ctx.files.usage).unwrap_or_default(),
            };
        }
        note(&ctx.log_path, "the vote picked a replica's output");
    }
    if let Some(gate) = wf.gate(t) {
        // The gate reads on stdin the output as journaled (compact JSON; `null` if none),
        // from a file the node creates afresh (never through a link the task left there).
        if let Err(e) = write_fresh(&ctx.files.output, output.as_deref().unwrap_or("null")) {
            let message = format!("cannot hand the output to the gate: {e}");
            return failed(Failure::GateFailed { message }, usage, true);
        }
        note(&ctx.log_path, &format!("gate: {gate}"));
        // Within the attempt's timeout: the gate gets what is left of it.
        let timeout = wf.timeout(t).map(|limit| {
            limit
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(1))
        });
        let spec = ProcessSpec {
            program: program(gate),
            stdin: Some(ctx.files.output.clone()),
            append_log: true,
            timeout,
            ..gate_base
        };
        let (rx, fwd) = cancel_for(&flag_rx);
        let _fwd = AbortOnDrop(fwd);
        let g = run_process(spec, rx).await;
        let verdict = match g.end {
            ProcessEnd::Exited { code: 0 } => None,
            ProcessEnd::Exited { code } => {
                Some((format!("the gate exited with status {code}"), true))
            }
            ProcessEnd::Signaled { signal } => {
                Some((format!("the gate was killed by signal {signal}"), true))
            }
            ProcessEnd::TimedOut => Some((
                "the gate timed out (it runs within the attempt's timeout)".to_owned(),
                true,
            )),
            ProcessEnd::Cancelled => return AttemptOutcome::Terminated { usage },
            ProcessEnd::SpawnFailed { message } => {
                Some((format!("the gate could not start: {message}"), false))
            }
        };
        if let Some((message, retryable)) = verdict {
            note(
                &ctx.log_path,
                &format!("gate rejected the output: {message}"),
            );
            return AttemptOutcome::Failed {
                failure: Failure::GateFailed { message },
                usage,
                retryable,
                counters: read_usage(&ctx.files.usage).unwrap_or_default(),
            };
        }
        note(&ctx.log_path, "gate accepted the output");
    }
    // Final usage, read after the gate (which shares the attempt's TROUPE_USAGE).
    let counters = match read_usage(&ctx.files.usage) {
        Ok(c) => c,
        Err(message) => return usage_failed(message, usage),
    };
    AttemptOutcome::Succeeded {
        usage,
        handed: Handed { output, counters },
    }
}

/// Writes `text` to a file created afresh at `path` (whatever was there removed first, and
/// never followed if it is a link).
fn write_fresh(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.flush()
}

/// Appends `[troupe: TEXT]` to the attempt log (best effort).
fn note(log: &std::path::Path, text: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
    {
        let _ = writeln!(f, "[troupe: {text}]");
    }
}

/// Aborts a helper task when the attempt is over (or its future dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
