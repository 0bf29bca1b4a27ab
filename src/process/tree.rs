//! An attempt's whole process tree: the processes that left its process group (`setsid`,
//! double fork, daemons) are found by a mark in their environment and ended with the
//! attempt; when the node is a child subreaper, the orphans it adopts are reaped.
//!
//! * **Mark.** Every process [`run_process`](super::run_process) spawns gets
//!   `TROUPE_ATTEMPT_MARK=<mark>` ([`MARK_VAR`]) in its environment, `<mark>` unique to
//!   that spawn (`{node pid}.{node start time}.{counter}`). Descendants inherit the
//!   environment, so a daemon that left the group still carries it. The mark is also the
//!   third word of the attempt's pid file, so a node that restarts after a crash finds
//!   them too ([`terminate_orphan`](super::terminate_orphan)).
//! * **Sweep.** [`sweep_marked`] reads `/proc/PID/environ` of every process started no
//!   earlier than the attempt's leader (`/proc/PID/stat` field 22: older processes cannot
//!   be its descendants) and signals those carrying the mark, through a pidfd opened
//!   before the environment is read (a pid reused in between cannot be hit).
//! * **Subreaper.** [`become_subreaper`] makes this process a child subreaper
//!   (`PR_SET_CHILD_SUBREAPER`): orphans of its attempts are re-parented to it instead of
//!   init. [`reap_adopted`] then reaps those that are zombies, by pid (`waitpid(pid,
//!   WNOHANG)`), never with `waitpid(-1)`, and never a child this process spawned itself:
//!   attempt leaders are registered in [`OWN_CHILDREN`] from spawn until their `wait4`.
//!   Only the `troupe` binary turns it on (`node start`, `run`, `worker start`); a host
//!   application embedding troupe may have children of its own that it waits for.
//!
//! Out of reach: a process that drops the mark from its environment (`env -i`, an `exec`
//! with a fresh environment) *and* leaves the process group; a process running as another
//! user whose `/proc/PID/environ` this node cannot read (a setuid program); a process in
//! another pid namespace. Such processes are not killed; cgroups would reach them.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::getpid;
use tracing::{debug, warn};

use super::proc_stat::{is_dead, read_stat};

/// The environment variable carrying an attempt's mark.
pub const MARK_VAR: &str = "TROUPE_ATTEMPT_MARK";

/// Rounds of [`sweep_marked`] (signal, wait [`SWEEP_POLL`], look again) before giving up on
/// a process that keeps forking.
const SWEEP_ROUNDS: usize = 50;
/// Pause between two rounds of [`sweep_marked`].
const SWEEP_POLL: Duration = Duration::from_millis(10);

/// Whether [`become_subreaper`] succeeded in this process.
static SUBREAPER: AtomicBool = AtomicBool::new(false);
/// Makes marks unique within this process.
static MARKS: AtomicU64 = AtomicU64::new(0);
/// Pids this process spawned and reaps itself (attempt leaders), from spawn to `wait4`:
/// [`reap_adopted`] must leave them alone. Locked across `spawn` and the insert, so a leader
/// that exits at once is never seen unregistered.
pub(super) static OWN_CHILDREN: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// Locks [`OWN_CHILDREN`].
pub(super) fn own_children() -> MutexGuard<'static, Option<HashSet<i32>>> {
    OWN_CHILDREN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Forgets leader `pid` once it has been reaped.
pub(super) fn forget_child(pid: i32) {
    if let Some(set) = own_children().as_mut() {
        set.remove(&pid);
    }
}

/// Makes this process a child subreaper (`prctl(PR_SET_CHILD_SUBREAPER, 1)`), so the
/// descendants of its attempts that lose their parent are re-parented to it rather than to
/// init, and lets [`reap_adopted`] reap them. Call it only in a process whose other
/// children (if any) are not waited for by pid elsewhere.
///
/// # Errors
/// The `prctl` failed (not Linux ≥ 3.4).
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    SUBREAPER.store(true, Ordering::SeqCst);
    Ok(())
}

/// Whether this process is a child subreaper through [`become_subreaper`].
pub fn is_subreaper() -> bool {
    SUBREAPER.load(Ordering::SeqCst)
}

/// A fresh mark: `{pid}.{start time}.{counter}` of this process, unique on this boot.
pub(super) fn new_mark() -> String {
    let me = getpid().as_raw();
    let start = read_stat(me).map_or(0, |s| s.start);
    let n = MARKS.fetch_add(1, Ordering::Relaxed);
    format!("{me}.{start}.{n}")
}

/// Whether a `/proc/PID/environ` (NUL-separated) holds `MARK_VAR=mark`.
fn carries(environ: &[u8], mark: &str) -> bool {
    let entry = format!("{MARK_VAR}={mark}");
    environ.split(|&b| b == 0).any(|e| e == entry.as_bytes())
}

/// A pidfd of `pid` (`pidfd_open`); `None` if it is gone or the kernel has none.
fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags, returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative return is a fresh fd we own.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends `sig` through `fd`; false if the process is gone.
fn pidfd_signal(fd: &std::os::fd::OwnedFd, sig: Signal) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_send_signal(fd, sig, NULL, 0).
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig as i32,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    r == 0
}

/// Signals every live process (other than this one) carrying `mark` that started at or
/// after `min_start` (clock ticks since boot); returns how many were signalled.
pub(super) fn signal_marked(mark: &str, min_start: u64, sig: Signal) -> usize {
    let me = getpid().as_raw();
    let Ok(dir) = fs::read_dir("/proc") else {
        return 0;
    };
    let mut hit = 0;
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        if pid == me {
            continue;
        }
        if !read_stat(pid).is_some_and(|s| s.start >= min_start && !is_dead(s.state)) {
            continue;
        }
        // The pidfd first: the environment read next is then surely that process's.
        let Some(fd) = pidfd_open(pid) else { continue };
        let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if carries(&environ, mark) && pidfd_signal(&fd, sig) {
            debug!(
                pid,
                mark,
                ?sig,
                "signalled a process of the attempt outside its group"
            );
            hit += 1;
        }
    }
    hit
}

/// Ends every process carrying `mark` (started at or after `min_start`): `SIGKILL`, then
/// looks again (a process may have forked meanwhile) until none is left or
/// [`SWEEP_ROUNDS`] rounds have passed; then [`reap_adopted`]. Blocking (reads `/proc`).
/// Returns how many processes were killed.
pub(super) fn sweep_marked(mark: &str, min_start: u64) -> usize {
    let mut killed = 0;
    for round in 0..SWEEP_ROUNDS {
        let n = signal_marked(mark, min_start, Signal::SIGKILL);
        if n == 0 {
            break;
        }
        killed += n;
        if round + 1 == SWEEP_ROUNDS {
            warn!(
                mark,
                "processes of the attempt still appear after {SWEEP_ROUNDS} rounds"
            );
        }
        std::thread::sleep(SWEEP_POLL);
    }
    reap_adopted();
    killed
}

/// Reaps the zombies among this process's children that it did not spawn itself (the
/// orphans it adopted as a subreaper), each by pid. Does nothing unless
/// [`become_subreaper`] succeeded. Returns how many were reaped.
pub fn reap_adopted() -> usize {
    if !is_subreaper() {
        return 0;
    }
    let me = getpid().as_raw();
    // Held throughout: no leader can be spawned (and be unregistered) meanwhile.
    let own = own_children();
    let Ok(dir) = fs::read_dir("/proc") else {
        return 0;
    };
    let mut reaped = 0;
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        if own.as_ref().is_some_and(|s| s.contains(&pid)) {
            continue;
        }
        if !read_stat(pid).is_some_and(|s| s.ppid == me && s.state == b'Z') {
            continue;
        }
        let mut status = 0;
        // SAFETY: waitpid on one pid with a valid status pointer.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            debug!(pid, "reaped an adopted orphan");
            reaped += 1;
        }
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_environ_carries_the_exact_mark_only() {
        let env = format!("A=1\0{MARK_VAR}=12.34.5\0B=2\0");
        assert!(carries(env.as_bytes(), "12.34.5"));
        assert!(!carries(env.as_bytes(), "12.34"));
        assert!(!carries(env.as_bytes(), "12.34.56"));
        assert!(!carries(b"", "12.34.5"));
    }

    #[test]
    fn marks_are_unique() {
        assert_ne!(new_mark(), new_mark());
    }
}
