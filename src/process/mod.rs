//! Running one attempt of a workflow task as an OS process, and cleaning up
//! after an attempt whose supervising node crashed.
//!
//! # Layout
//! - `mod.rs`: what to run and how it ended ([`ProcessSpec`], [`Program`],
//!   [`ProcessOutcome`], [`ProcessEnd`], [`Usage`]).
//! - `run`: [`run_process`]: one attempt from spawn to outcome (timeout, cancellation,
//!   grace, pid file and log lifetimes).
//! - `spawn`: starting the program as the leader of a new process group, its output on one
//!   pipe.
//! - `output`: the attempt log: copying the pipe, the cap and the truncation marker.
//! - `leader`: the spawned leader: signalling its group while the group id is still ours,
//!   reaping it with `wait4` (exit status, rusage).
//! - `pid_file`: the `"{pid} {starttime} {mark}"` record of a running attempt.
//! - `proc_stat`: what `/proc/PID/stat` says (start time, group, state).
//! - `orphan`: [`terminate_orphan`]: ending the group a crashed node left behind
//!   ([`terminate_orphans_under`]: every group recorded under a folder).
//! - `tree`: the processes that left the group: the attempt's mark ([`MARK_VAR`]), the
//!   sweep that ends them, the child subreaper ([`become_subreaper`], [`reap_adopted`]).
//!
//! # Running an attempt: [`run_process`]
//!
//! [`run_process`] spawns the [`ProcessSpec`]'s [`Program`] and resolves to a
//! [`ProcessOutcome`] once the attempt is over. It never returns an error:
//! everything that can go wrong is a [`ProcessEnd`] variant.
//!
//! * **Program.** [`Program::Argv`] is executed directly (`argv[0]` is looked
//!   up in `PATH`; a relative path containing `/` is resolved against `cwd`
//!   when one is given). [`Program::Shell`] runs `/bin/sh -c TEXT`.
//! * **Environment.** The child inherits this process's environment plus
//!   [`ProcessSpec::env`] (later entries win). stdin is [`ProcessSpec::stdin`] (a file),
//!   else `/dev/null`.
//!   std resets `SIGPIPE` and the signal mask in the child.
//! * **Process group.** The child is the leader of a new process group whose
//!   id equals its pid (`setpgid(0, 0)`). Everything it forks stays in that
//!   group unless it deliberately leaves (`setsid`, `setpgid`).
//! * **Output.** stdout and stderr are the write end of *one* pipe, so their
//!   output is interleaved in the order the child wrote it. A blocking thread
//!   copies the pipe, byte for byte (no UTF-8 assumption), into
//!   [`ProcessSpec::log_path`] (created or truncated — appended to with
//!   [`ProcessSpec::append_log`]; parent directories are created). Only the first [`ProcessSpec::log_cap`] bytes are kept; the
//!   rest is read and discarded so the child never blocks on a full pipe, and
//!   the line `"\n[troupe: output truncated: kept {cap} of {total} bytes]\n"`
//!   is appended. [`ProcessOutcome::log_bytes`] is the total number of bytes
//!   the attempt wrote (kept or not), [`ProcessOutcome::truncated`] is
//!   `log_bytes > log_cap`. Failing to write the log is logged with
//!   `tracing::warn!` and otherwise ignored (the pipe is still drained).
//! * **Pid file.** Right after spawning, [`ProcessSpec::pid_path`] is written
//!   (via a `.tmp` file and `rename`, parent directories created) as
//!   `"{pid} {starttime} {mark}\n"`, `starttime` being field 22 of `/proc/PID/stat`
//!   (clock ticks since boot; see [`process_start_time`]). The pair
//!   identifies the attempt even after the pid is reused. The file is removed
//!   when the attempt ends. If it cannot be written, the attempt is killed and
//!   reported as [`ProcessEnd::SpawnFailed`], because it could not be
//!   recovered after a crash. (There is an unavoidable window between spawn
//!   and write in which a crash leaves an unrecorded orphan.)
//! * **Timeout and cancellation.** When [`ProcessSpec::timeout`] elapses
//!   (measured from spawn) or `cancel` receives a value, the whole group gets
//!   `SIGTERM`; if the leader has not exited after [`ProcessSpec::grace`] the
//!   group gets `SIGKILL`. The outcome is then [`ProcessEnd::TimedOut`] /
//!   [`ProcessEnd::Cancelled`] whatever the exit status. **Only an explicit
//!   `send(())` cancels; dropping the sender does not** (it merely disables
//!   cancellation for this attempt).
//! * **No survivors** (like systemd's `KillMode=control-group`): once the
//!   leader has exited, for whatever reason including success, the whole
//!   group gets `SIGKILL`, so background processes of the attempt do not
//!   outlive it. This is done while the leader is still an unreaped zombie
//!   (`waitid(WNOWAIT)` first, then `killpg`, then `wait4`), so the group id
//!   cannot have been reused by then.
//! * **The whole process tree.** Processes that left the group (`setsid`, a
//!   double fork, a daemon) still carry `TROUPE_ATTEMPT_MARK=<mark>` in their
//!   environment ([`MARK_VAR`], set on the leader, inherited by descendants);
//!   they get `SIGTERM` together with the group on timeout and cancellation,
//!   and `SIGKILL` once the leader is reaped, looked for again until none is
//!   left (`tree` module). In a process that called [`become_subreaper`], the
//!   orphans this adopts are reaped ([`reap_adopted`]). Out of reach: a
//!   process that both left the group and dropped the mark from its
//!   environment (`env -i`), or runs as a user whose `/proc/PID/environ` the
//!   node cannot read; if one of them keeps the output pipe open, the log
//!   stops being copied [`DRAIN_TIMEOUT`] after the group died.
//! * **Exit status and usage.** The leader is reaped with `wait4`, giving
//!   [`ProcessEnd::Exited`] (`code` 0–255) or [`ProcessEnd::Signaled`]
//!   (signal number) and a [`Usage`] from its `rusage`: CPU times in
//!   microseconds, peak resident set size in KiB. The rusage covers the
//!   leader and the descendants it waited for, not orphaned grandchildren.
//!   **Caveat:** Linux carries the memory high-water mark of the image the
//!   child had *before* `exec` over into `ru_maxrss`, and std spawns with
//!   vfork semantics (the child shares this process's memory until `exec`),
//!   so `max_rss_kib` is at least this process's own peak RSS at spawn time.
//!   It only measures the task when the task's peak is larger than that.
//! * **Spawn failures** ([`ProcessEnd::SpawnFailed`]): missing or unusable
//!   `cwd` (`"cwd `/x/y`: No such file or directory (os error 2)"`), program
//!   not found or not executable (``"`prog`: No such file or directory (os
//!   error 2)"``; the program is `/bin/sh` for [`Program::Shell`]), empty
//!   argv, a log or pid file that cannot be written, or pipe creation
//!   failure. The log gets a line `"[troupe: could not start: {message}]\n"`
//!   when it could be opened. `SpawnFailed` is also reported, with usage
//!   `None`, in the should-not-happen case that the child cannot be waited
//!   for (`wait4` failing with `ECHILD` because something else reaped it, e.g.
//!   `SIGCHLD` set to `SIG_IGN` or a `waitpid(-1)` elsewhere in the process).
//!
//! Must be called inside a Tokio runtime with timers enabled. Each running
//! attempt occupies two threads of Tokio's blocking pool (reaper and output
//! copier) for its whole lifetime; with the default limit of 512 blocking
//! threads, attempts beyond ~256 concurrent ones wait for a thread (their
//! output is not copied and they are not reaped meanwhile), so raise
//! `max_blocking_threads` if more are expected. Dropping the future before it
//! resolves kills the process group with `SIGKILL` and removes the pid file;
//! the child is still reaped in the background.
//!
//! # Recovering after a crash: [`terminate_orphan`]
//!
//! After a node crash the attempt's processes may still run, reparented to
//! init. [`terminate_orphan`] reads the pid file and ends the recorded
//! process group; see its documentation for the exact rules and
//! [`OrphanOutcome`] for the results. The reasoning relies on a Linux
//! guarantee: a pid is not handed out again while it is still in use as a
//! process group id (or session id). So as long as any member of the recorded
//! group is alive (or a zombie), the pid cannot belong to an unrelated new
//! process, and if the pid *does* belong to a live process with a different
//! start time, the recorded group has no members left.

mod leader;
mod orphan;
mod output;
mod pid_file;
mod proc_stat;
mod run;
mod spawn;
mod tree;

use std::path::PathBuf;
use std::time::Duration;

pub use orphan::{terminate_orphan, terminate_orphans_under, OrphanOutcome};
pub use proc_stat::process_start_time;
pub use run::{run_process, DRAIN_TIMEOUT};
pub use tree::{become_subreaper, is_subreaper, reap_adopted, MARK_VAR};

/// What to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// `argv[0]` is the program (searched in `PATH`), the rest its arguments.
    /// Never goes through a shell.
    Argv(Vec<String>),
    /// Shell command text, run as `/bin/sh -c TEXT`.
    Shell(String),
}

/// Everything needed to run one attempt.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// What to execute.
    pub program: Program,
    /// Variables added on top of the inherited environment.
    pub env: Vec<(String, String)>,
    /// Working directory; `None` inherits this process's.
    pub cwd: Option<PathBuf>,
    /// File receiving stdout and stderr (interleaved); created or truncated.
    pub log_path: PathBuf,
    /// Maximum number of output bytes kept in `log_path`.
    pub log_cap: u64,
    /// File holding `"{pid} {starttime} {mark}\n"` while the attempt runs.
    pub pid_path: PathBuf,
    /// Wall-clock limit measured from spawn; `None` means no limit.
    pub timeout: Option<Duration>,
    /// Time between `SIGTERM` and `SIGKILL` of the process group.
    pub grace: Duration,
    /// File fed to stdin (a quality gate reads the output there); `None`: `/dev/null`.
    pub stdin: Option<PathBuf>,
    /// Append to `log_path` instead of truncating it (a gate writes after its attempt).
    pub append_log: bool,
}

/// Resource usage of the attempt's leader (and the children it waited for),
/// from `wait4`'s `rusage`. See the module docs for why `max_rss_kib` is a
/// lower-bounded (by this process's peak RSS) figure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// User CPU time in microseconds (`ru_utime`).
    pub user_cpu_us: u64,
    /// System CPU time in microseconds (`ru_stime`).
    pub system_cpu_us: u64,
    /// Peak resident set size in KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEnd {
    /// The leader exited with this status code (0–255).
    Exited {
        /// Exit status.
        code: i32,
    },
    /// The leader was killed by this signal number (not by us).
    Signaled {
        /// Signal number, e.g. 9 for `SIGKILL`.
        signal: i32,
    },
    /// [`ProcessSpec::timeout`] elapsed and the group was terminated.
    TimedOut,
    /// Cancellation was requested and the group was terminated.
    Cancelled,
    /// The attempt could not be started (or, exceptionally, not waited for).
    SpawnFailed {
        /// Human-readable reason naming the program, cwd or file involved.
        message: String,
    },
}

/// The result of [`run_process`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutcome {
    /// How the attempt ended.
    pub end: ProcessEnd,
    /// Resource usage; `None` if the process never ran or was not reaped.
    pub usage: Option<Usage>,
    /// Total bytes of output produced, including discarded ones.
    pub log_bytes: u64,
    /// Whether output beyond [`ProcessSpec::log_cap`] was discarded.
    pub truncated: bool,
}
