//! [`run_process`]: one attempt from spawn to outcome. The full contract is in the
//! [process module docs](super).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::leader::{decode_status, joined, reap, usage_of, Leader};
use super::output::{copy_output, open_log};
use super::pid_file::{remove_pid_file, write_pid_file};
use super::spawn::{start, Started};
use super::tree::{new_mark, signal_marked, sweep_marked};
use super::{process_start_time, ProcessEnd, ProcessOutcome, ProcessSpec};

/// How long [`run_process`] keeps copying output after the process group
/// has been killed, before giving up on a pipe held open by a process that
/// escaped the group.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

fn spawn_failed(message: String, log: Option<&mut File>) -> ProcessOutcome {
    debug!("attempt could not start: {message}");
    if let Some(log) = log {
        if let Err(e) = writeln!(log, "[troupe: could not start: {message}]") {
            warn!("writing the attempt log failed: {e}");
        }
    }
    ProcessOutcome {
        end: ProcessEnd::SpawnFailed { message },
        usage: None,
        log_bytes: 0,
        truncated: false,
    }
}

/// Kills the group and removes the pid file if [`run_process`] is dropped
/// before the attempt is over.
struct DropGuard {
    leader: Arc<Leader>,
    pid_path: PathBuf,
    /// The attempt's mark and its leader's start time, once known.
    mark: Option<(String, u64)>,
    armed: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if self.armed {
            warn!(
                pid = self.leader.pid.as_raw(),
                "run_process dropped; killing its process group"
            );
            self.leader.signal_group(Signal::SIGKILL);
            if let Some((mark, start)) = &self.mark {
                signal_marked(mark, *start, Signal::SIGKILL);
            }
            let _ = remove_pid_file(&self.pid_path);
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs one attempt to completion; see the [module documentation](super) for
/// the full contract.
///
/// `cancel`: sending `()` terminates the attempt (result
/// [`ProcessEnd::Cancelled`]); dropping the sender does **not** cancel.
pub async fn run_process(spec: ProcessSpec, mut cancel: oneshot::Receiver<()>) -> ProcessOutcome {
    let mut log = match open_log(&spec.log_path, spec.append_log) {
        Ok(log) => log,
        Err(e) => return spawn_failed(format!("log `{}`: {e}", spec.log_path.display()), None),
    };
    let mark = new_mark();
    let started = match start(&spec, &mark) {
        Ok(s) => s,
        Err(message) => return spawn_failed(message, Some(&mut log)),
    };
    let Started {
        pid,
        output,
        wake_rx,
        wake_tx,
    } = started;
    let leader = Arc::new(Leader {
        pid,
        reaped: Mutex::new(false),
    });
    let deadline = spec.timeout.map(|t| Instant::now() + t);
    let mut guard = DropGuard {
        leader: leader.clone(),
        pid_path: spec.pid_path.clone(),
        mark: None,
        armed: true,
    };
    debug!(pid = pid.as_raw(), program = ?spec.program, "attempt spawned");
    // The pid file is written before the reaper starts: until it is reaped, the leader (even
    // if it already exited) is still in /proc, so its start time can be read.
    let written = write_pid_file(&spec.pid_path, pid, &mark);
    let reaper = leader.clone();
    let mut waiter = tokio::task::spawn_blocking(move || reap(&reaper));
    // Descendants start no earlier than the leader: the sweep skips older processes.
    let min_start = match &written {
        Ok(start) => *start,
        Err(_) => process_start_time(pid.as_raw()).unwrap_or(0),
    };
    guard.mark = Some((mark.clone(), min_start));
    if let Err(e) = written {
        guard.armed = false;
        leader.signal_group(Signal::SIGKILL);
        let _ = waiter.await;
        let (m, _) = guard.mark.take().expect("set above");
        let _ = tokio::task::spawn_blocking(move || sweep_marked(&m, min_start)).await;
        let _ = remove_pid_file(&spec.pid_path);
        let message = format!("pid file `{}`: {e}", spec.pid_path.display());
        return spawn_failed(message, Some(&mut log));
    }
    let cap = spec.log_cap;
    let mut copier = tokio::task::spawn_blocking(move || copy_output(output, wake_rx, log, cap));

    let mut stop = None;
    let mut cancel_live = true;
    let early = loop {
        tokio::select! {
            r = &mut waiter => break Some(joined(r)),
            _ = sleep_until_opt(deadline) => {
                stop = Some(ProcessEnd::TimedOut);
                break None;
            }
            r = &mut cancel, if cancel_live => match r {
                Ok(()) => {
                    stop = Some(ProcessEnd::Cancelled);
                    break None;
                }
                Err(_) => {
                    debug!(pid = pid.as_raw(), "cancel sender dropped; cancellation disabled");
                    cancel_live = false;
                }
            },
        }
    };
    let reaped = match early {
        Some(r) => r,
        None => {
            debug!(pid = pid.as_raw(), why = ?stop, "sending SIGTERM to the process group");
            leader.signal_group(Signal::SIGTERM);
            let (m, s) = (mark.clone(), min_start);
            let _ =
                tokio::task::spawn_blocking(move || signal_marked(&m, s, Signal::SIGTERM)).await;
            match tokio::time::timeout(spec.grace, &mut waiter).await {
                Ok(r) => joined(r),
                Err(_) => {
                    debug!(pid = pid.as_raw(), "grace period over; sending SIGKILL");
                    leader.signal_group(Signal::SIGKILL);
                    joined(waiter.await)
                }
            }
        }
    };

    // The leader is reaped and its group killed; now the processes that left the group.
    let (m, s) = (mark.clone(), min_start);
    match tokio::task::spawn_blocking(move || sweep_marked(&m, s)).await {
        Ok(0) => {}
        Ok(n) => debug!(
            pid = pid.as_raw(),
            n, "killed processes that left the group"
        ),
        Err(e) => warn!("sweeping the attempt's processes failed: {e}"),
    }
    let (log_bytes, truncated) = match tokio::time::timeout(DRAIN_TIMEOUT, &mut copier).await {
        Ok(r) => r,
        Err(_) => {
            warn!(
                pid = pid.as_raw(),
                "output pipe still open after the group died (a process left the group?); \
                 abandoning it"
            );
            drop(wake_tx);
            copier.await
        }
    }
    .unwrap_or_else(|e| {
        warn!("output copier failed: {e}");
        (0, false)
    });
    if let Err(e) = remove_pid_file(&spec.pid_path) {
        warn!(path = %spec.pid_path.display(), "cannot remove pid file: {e}");
    }
    guard.armed = false;

    let end = match (stop, &reaped) {
        (Some(end), _) => end,
        (None, Ok((status, _))) => decode_status(*status),
        (None, Err(e)) => ProcessEnd::SpawnFailed {
            message: format!("lost track of pid {pid}: {e}"),
        },
    };
    let usage = reaped.as_ref().ok().map(|(_, ru)| usage_of(ru));
    debug!(pid = pid.as_raw(), ?end, ?usage, log_bytes, "attempt ended");
    ProcessOutcome {
        end,
        usage,
        log_bytes,
        truncated,
    }
}
