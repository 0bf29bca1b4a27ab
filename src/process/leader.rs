//! The spawned leader of an attempt's process group: signalling the group only while the
//! group id is certainly still ours, and reaping the leader with `wait4` (exit status and
//! rusage).

use std::io;
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tracing::warn;

use super::{ProcessEnd, Usage};

/// `killpg`, ignoring `ESRCH` (nobody left in the group).
pub(super) fn killpg_quiet(pgid: Pid, sig: Signal) {
    match killpg(pgid, sig) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => warn!(pgid = pgid.as_raw(), ?sig, "killpg failed: {e}"),
    }
}

/// The spawned leader. `reaped` is locked while signalling and while reaping
/// so that the group is never signalled after its id may have been freed.
pub(super) struct Leader {
    pub(super) pid: Pid,
    pub(super) reaped: Mutex<bool>,
}

impl Leader {
    /// Sends `sig` to the group unless the leader has been reaped.
    pub(super) fn signal_group(&self, sig: Signal) {
        let reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        if !*reaped {
            killpg_quiet(self.pid, sig);
        }
    }
}

/// Blocks until the leader exits, kills the rest of its group while the
/// zombie leader still pins the group id, then reaps it with `wait4`.
pub(super) fn reap(leader: &Leader) -> Reaped {
    let pid = leader.pid.as_raw();
    let waited = loop {
        // SAFETY: siginfo_t is plain data; waitid only writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOWAIT;
        // SAFETY: valid pointer to a live siginfo_t.
        if unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) } == 0 {
            break Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            break Err(e);
        }
    };
    let mut reaped = leader.reaped.lock().unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = waited {
        *reaped = true; // we cannot know whether the pid is still ours
        super::tree::forget_child(pid);
        return Err(e);
    }
    killpg_quiet(leader.pid, Signal::SIGKILL);
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            *reaped = true;
            super::tree::forget_child(pid);
            return Ok((status, usage));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            *reaped = true;
            super::tree::forget_child(pid);
            return Err(e);
        }
    }
}

/// The [`ProcessEnd`] of a `wait4` status.
pub(super) fn decode_status(status: libc::c_int) -> ProcessEnd {
    if libc::WIFSIGNALED(status) {
        ProcessEnd::Signaled {
            signal: libc::WTERMSIG(status),
        }
    } else {
        // wait4 without WUNTRACED/WCONTINUED only reports terminations.
        ProcessEnd::Exited {
            code: libc::WEXITSTATUS(status),
        }
    }
}

/// The [`Usage`] of a `wait4` rusage.
pub(super) fn usage_of(ru: &libc::rusage) -> Usage {
    let us = |tv: libc::timeval| (tv.tv_sec.max(0) as u64) * 1_000_000 + tv.tv_usec.max(0) as u64;
    Usage {
        user_cpu_us: us(ru.ru_utime),
        system_cpu_us: us(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss.max(0) as u64,
    }
}

/// What [`reap`] returns: the wait status and the rusage.
pub(super) type Reaped = io::Result<(libc::c_int, libc::rusage)>;

/// The result of the reaper task, a failed join counting as an error.
pub(super) fn joined(r: Result<Reaped, tokio::task::JoinError>) -> Reaped {
    r.map_err(io::Error::other).and_then(|r| r)
}
