//! [`terminate_orphan`]: after a crash, ending the process group a node's
//! [`run_process`](super::run_process) recorded in a pid file.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpgrp, getpid, Pid};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::leader::killpg_quiet;
use super::pid_file::{parse_pid_record, remove_pid_file};
use super::proc_stat::{is_dead, read_stat};
use super::tree::sweep_marked;

/// Poll interval of [`terminate_orphan`] while it waits for the leader.
const ORPHAN_POLL: Duration = Duration::from_millis(20);

/// The result of [`terminate_orphan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanOutcome {
    /// There was no pid file.
    NoRecord,
    /// Nothing of the recorded attempt was alive; nothing was signalled.
    Gone,
    /// The leader exited within the grace period after `SIGTERM`
    /// (remaining group members were then sent `SIGKILL`).
    Terminated {
        /// The recorded pid (= process group id).
        pid: i32,
    },
    /// Processes had to be sent `SIGKILL`: the leader outlived the grace
    /// period, or the leader was already gone but group members survived.
    Killed {
        /// The recorded pid (= process group id).
        pid: i32,
    },
}

/// Live (non-zombie) processes in process group `pgrp` that started at or
/// after `min_start`, excluding this process.
fn group_members(pgrp: i32, min_start: u64) -> Vec<Pid> {
    let me = getpid().as_raw();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            read_stat(pid)
                .is_some_and(|s| s.pgrp == pgrp && s.start >= min_start && !is_dead(s.state))
        })
        .map(Pid::from_raw)
        .collect()
}

/// Terminates the process group recorded in `pid_path` by a crashed node's
/// [`run_process`](super::run_process), then removes the pid file.
///
/// * No pid file → [`OrphanOutcome::NoRecord`].
/// * The recorded pid is a live process with a *different* start time: the
///   pid was reused, so (pids are not reused while still a group id) the
///   recorded group has no members left → [`OrphanOutcome::Gone`], nothing
///   signalled.
/// * The recorded pid is alive (not a zombie) with the recorded start time:
///   `SIGTERM` to the group, poll every 20 ms up to `grace` until the leader
///   is gone (we are not its parent, so a zombie counts as gone), then
///   `SIGKILL` to the group anyway → [`OrphanOutcome::Terminated`] if the
///   leader went within `grace`, else [`OrphanOutcome::Killed`].
/// * The leader is absent or a zombie: surviving members (processes of group
///   `pid` started no earlier than the recorded start time) get `SIGKILL`,
///   repeated until none is left (bounded) → [`OrphanOutcome::Killed`], or
///   [`OrphanOutcome::Gone`] if there were none.
/// * Then, whatever the case, when the file records the attempt's mark (third word),
///   every process carrying it in its environment that started no earlier than the
///   recorded start time (the attempt's daemons, which left the group) gets `SIGKILL`
///   (see the process module's "whole process tree"); if any did, the outcome is
///   [`OrphanOutcome::Killed`].
///
/// The current process and its own process group are never signalled.
/// Start times count from boot, so records must not outlive a reboot (keep
/// them on a tmpfs such as `/run`, or discard them at startup after a
/// reboot): a new process could match a stale record by coincidence.
///
/// # Errors
/// Reading or removing the pid file failed, or its content is not
/// `"{pid} {starttime}"` with `pid > 1` (`InvalidData`; the file is then left
/// in place). Signalling failures are logged, not returned.
pub async fn terminate_orphan(pid_path: &Path, grace: Duration) -> io::Result<OrphanOutcome> {
    let text = match fs::read_to_string(pid_path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(OrphanOutcome::NoRecord),
        Err(e) => return Err(e),
    };
    let (pid, start, mark) = parse_pid_record(&text).ok_or_else(|| {
        let msg = format!("malformed pid file `{}`: {text:?}", pid_path.display());
        io::Error::new(io::ErrorKind::InvalidData, msg)
    })?;
    let mut outcome = terminate_group(pid, start, grace).await;
    if let Some(mark) = mark {
        // The processes that left the group (daemons) carry the mark.
        let swept = tokio::task::spawn_blocking(move || sweep_marked(&mark, start))
            .await
            .unwrap_or(0);
        if swept > 0 && matches!(outcome, OrphanOutcome::Gone) {
            outcome = OrphanOutcome::Killed { pid };
        }
    }
    debug!(pid, start, ?outcome, "orphan handled");
    remove_pid_file(pid_path)?;
    Ok(outcome)
}

async fn terminate_group(pid: i32, start: u64, grace: Duration) -> OrphanOutcome {
    let pgid = Pid::from_raw(pid);
    if pid == getpid().as_raw() || pid == getpgrp().as_raw() {
        warn!(
            pid,
            "pid file names this process or its group; not signalling"
        );
        return OrphanOutcome::Gone;
    }
    match read_stat(pid) {
        Some(s) if s.start != start => {
            debug!(pid, "pid reused by another process; recorded group is gone");
            OrphanOutcome::Gone
        }
        Some(s) if !is_dead(s.state) => {
            killpg_quiet(pgid, Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            let exited = loop {
                let gone = read_stat(pid).is_none_or(|s| is_dead(s.state) || s.start != start);
                if gone {
                    break true;
                }
                if Instant::now() >= deadline {
                    break false;
                }
                tokio::time::sleep(ORPHAN_POLL).await;
            };
            killpg_quiet(pgid, Signal::SIGKILL);
            if exited {
                OrphanOutcome::Terminated { pid }
            } else {
                OrphanOutcome::Killed { pid }
            }
        }
        _ => {
            let mut killed = false;
            for _ in 0..50 {
                let members = group_members(pid, start);
                if members.is_empty() {
                    break;
                }
                for member in members {
                    debug!(
                        pid,
                        member = member.as_raw(),
                        "killing surviving group member"
                    );
                    match kill(member, Signal::SIGKILL) {
                        Ok(()) => killed = true,
                        Err(Errno::ESRCH) => {}
                        Err(e) => warn!(member = member.as_raw(), "kill failed: {e}"),
                    }
                }
                tokio::time::sleep(ORPHAN_POLL).await;
            }
            if killed {
                OrphanOutcome::Killed { pid }
            } else {
                OrphanOutcome::Gone
            }
        }
    }
}

/// Terminates every process group recorded in a pid file (`*.pid`) anywhere under `dir`
/// ([`terminate_orphan`] with `grace` for each), and removes the pid files. What a worker
/// node does at start with the attempts a previous run of it left behind, and what
/// `troupe bench cluster` does after killing a worker with `SIGKILL`.
pub async fn terminate_orphans_under(dir: &Path, grace: Duration) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pid") {
                match terminate_orphan(&p, grace).await {
                    Ok(outcome) => {
                        tracing::info!(path = %p.display(), ?outcome, "attempt left behind")
                    }
                    Err(e) => {
                        warn!(path = %p.display(), error = %e, "could not check a left-over attempt")
                    }
                }
                let _ = fs::remove_file(&p);
            }
        }
    }
}
