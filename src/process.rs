//! Running one attempt of a workflow task as an OS process, and cleaning up
//! after an attempt whose supervising node crashed.
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
//!   [`ProcessSpec::env`] (later entries win). stdin is `/dev/null`.
//!   std resets `SIGPIPE` and the signal mask in the child.
//! * **Process group.** The child is the leader of a new process group whose
//!   id equals its pid (`setpgid(0, 0)`). Everything it forks stays in that
//!   group unless it deliberately leaves (`setsid`, `setpgid`).
//! * **Output.** stdout and stderr are the write end of *one* pipe, so their
//!   output is interleaved in the order the child wrote it. A blocking thread
//!   copies the pipe, byte for byte (no UTF-8 assumption), into
//!   [`ProcessSpec::log_path`] (created or truncated; parent directories are
//!   created). Only the first [`ProcessSpec::log_cap`] bytes are kept; the
//!   rest is read and discarded so the child never blocks on a full pipe, and
//!   the line `"\n[troupe: output truncated: kept {cap} of {total} bytes]\n"`
//!   is appended. [`ProcessOutcome::log_bytes`] is the total number of bytes
//!   the attempt wrote (kept or not), [`ProcessOutcome::truncated`] is
//!   `log_bytes > log_cap`. Failing to write the log is logged with
//!   `tracing::warn!` and otherwise ignored (the pipe is still drained).
//! * **Pid file.** Right after spawning, [`ProcessSpec::pid_path`] is written
//!   (via a `.tmp` file and `rename`, parent directories created) as
//!   `"{pid} {starttime}\n"`, `starttime` being field 22 of `/proc/PID/stat`
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
//!   cannot have been reused by then. Processes that left the group (`setsid`)
//!   are not killed; if one of them keeps the output pipe open, the log stops
//!   being copied [`DRAIN_TIMEOUT`] after the group died.
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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{access, getpgrp, getpid, pipe2, AccessFlags, Pid};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, warn};

/// The shell used for [`Program::Shell`].
const SHELL: &str = "/bin/sh";

/// How long [`run_process`] keeps copying output after the process group
/// has been killed, before giving up on a pipe held open by a process that
/// escaped the group.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Poll interval of [`terminate_orphan`] while it waits for the leader.
const ORPHAN_POLL: Duration = Duration::from_millis(20);

/// Size of the buffer used to copy the output pipe.
const COPY_BUF: usize = 64 * 1024;

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
    /// File holding `"{pid} {starttime}\n"` while the attempt runs.
    pub pid_path: PathBuf,
    /// Wall-clock limit measured from spawn; `None` means no limit.
    pub timeout: Option<Duration>,
    /// Time between `SIGTERM` and `SIGKILL` of the process group.
    pub grace: Duration,
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

/// Start time of process `pid`: field 22 of `/proc/PID/stat`, in clock ticks
/// since boot. `None` if the process does not exist (zombies still have one).
pub fn process_start_time(pid: i32) -> Option<u64> {
    read_stat(pid).map(|s| s.start)
}

/// The fields of `/proc/PID/stat` this module needs.
struct Stat {
    state: u8,
    pgrp: i32,
    start: u64,
}

fn read_stat(pid: i32) -> Option<Stat> {
    if pid <= 0 {
        return None;
    }
    let raw = fs::read(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) is in parentheses and may contain anything, even ')'.
    let close = raw.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&raw[close + 1..]).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    Some(Stat {
        state: *fields.first()?.as_bytes().first()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

fn is_dead(state: u8) -> bool {
    matches!(state, b'Z' | b'X' | b'x')
}

/// `killpg`, ignoring `ESRCH` (nobody left in the group).
fn killpg_quiet(pgid: Pid, sig: Signal) {
    match killpg(pgid, sig) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => warn!(pgid = pgid.as_raw(), ?sig, "killpg failed: {e}"),
    }
}

/// The spawned leader. `reaped` is locked while signalling and while reaping
/// so that the group is never signalled after its id may have been freed.
struct Leader {
    pid: Pid,
    reaped: Mutex<bool>,
}

impl Leader {
    fn signal_group(&self, sig: Signal) {
        let reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        if !*reaped {
            killpg_quiet(self.pid, sig);
        }
    }
}

/// Blocks until the leader exits, kills the rest of its group while the
/// zombie leader still pins the group id, then reaps it with `wait4`.
fn reap(leader: &Leader) -> io::Result<(libc::c_int, libc::rusage)> {
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
            return Ok((status, usage));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            *reaped = true;
            return Err(e);
        }
    }
}

fn decode_status(status: libc::c_int) -> ProcessEnd {
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

fn usage_of(ru: &libc::rusage) -> Usage {
    let us = |tv: libc::timeval| (tv.tv_sec.max(0) as u64) * 1_000_000 + tv.tv_usec.max(0) as u64;
    Usage {
        user_cpu_us: us(ru.ru_utime),
        system_cpu_us: us(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss.max(0) as u64,
    }
}

/// Copies the (non-blocking) output pipe into `log` until EOF, keeping at
/// most `cap` bytes, or until `wake` becomes readable/hung up, after which
/// only what is already buffered is drained. Returns (total bytes, truncated).
fn copy_output(mut pipe: File, wake: OwnedFd, mut log: File, cap: u64) -> (u64, bool) {
    let mut buf = vec![0u8; COPY_BUF];
    let mut total: u64 = 0;
    let mut log_ok = true;
    let mut stopping = false;
    'copy: loop {
        let mut reads = 0;
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break 'copy,
                Ok(n) => {
                    let keep = (n as u64).min(cap.saturating_sub(total)) as usize;
                    if keep > 0 && log_ok {
                        if let Err(e) = log.write_all(&buf[..keep]) {
                            warn!("writing the attempt log failed, output is discarded: {e}");
                            log_ok = false;
                        }
                    }
                    total += n as u64;
                    reads += 1;
                    if stopping && reads >= 16 {
                        break 'copy;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("reading the output pipe failed: {e}");
                    break 'copy;
                }
            }
        }
        if stopping {
            break;
        }
        let mut fds = [
            libc::pollfd {
                fd: pipe.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds is a valid array of two pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                warn!("poll on the output pipe failed: {e}");
                break;
            }
        } else if fds[1].revents != 0 {
            stopping = true;
        }
    }
    let truncated = total > cap;
    if truncated && log_ok {
        let marker = format!("\n[troupe: output truncated: kept {cap} of {total} bytes]\n");
        if let Err(e) = log.write_all(marker.as_bytes()) {
            warn!("writing the truncation marker failed: {e}");
        }
    }
    (total, truncated)
}

/// A spawned attempt before the output copier runs.
struct Started {
    pid: Pid,
    output: File,
    wake_rx: OwnedFd,
    wake_tx: OwnedFd,
}

fn check_cwd(cwd: &Path) -> io::Result<()> {
    if !fs::metadata(cwd)?.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    access(cwd, AccessFlags::X_OK).map_err(io::Error::from)
}

fn start(spec: &ProcessSpec) -> Result<Started, String> {
    if let Some(cwd) = &spec.cwd {
        check_cwd(cwd).map_err(|e| format!("cwd `{}`: {e}", cwd.display()))?;
    }
    let (mut cmd, name) = match &spec.program {
        Program::Argv(argv) => {
            let (prog, args) = argv.split_first().ok_or("empty argv")?;
            let mut cmd = Command::new(prog);
            cmd.args(args);
            (cmd, prog.as_str())
        }
        Program::Shell(text) => {
            let mut cmd = Command::new(SHELL);
            cmd.arg("-c").arg(text);
            (cmd, SHELL)
        }
    };
    // O_CLOEXEC everywhere: attempts spawned concurrently must not inherit
    // our pipe ends, or EOF would only come when they exit.
    let pipe_err = |e: Errno| format!("cannot create pipe: {}", io::Error::from(e));
    let (read, write) = pipe2(OFlag::O_CLOEXEC).map_err(pipe_err)?;
    fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(pipe_err)?;
    let (wake_rx, wake_tx) = pipe2(OFlag::O_CLOEXEC).map_err(pipe_err)?;
    let write2 = write
        .try_clone()
        .map_err(|e| format!("cannot create pipe: {e}"))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2))
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .process_group(0);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let child = cmd.spawn().map_err(|e| format!("`{name}`: {e}"))?;
    // Dropping the Command closes our copies of the write end, so the copier
    // sees EOF once the attempt's processes are gone.
    drop(cmd);
    let pid = Pid::from_raw(child.id() as i32);
    // std's Child neither kills nor reaps on drop; we reap with wait4.
    drop(child);
    Ok(Started {
        pid,
        output: File::from(read),
        wake_rx,
        wake_tx,
    })
}

fn open_log(path: &Path) -> io::Result<File> {
    create_parent(path)?;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

fn write_pid_file(path: &Path, pid: Pid) -> io::Result<()> {
    let start = process_start_time(pid.as_raw())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no /proc/{pid}/stat")))?;
    create_parent(path)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    fs::write(&tmp, format!("{pid} {start}\n"))?;
    fs::rename(&tmp, path)
}

fn remove_pid_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

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

type Reaped = io::Result<(libc::c_int, libc::rusage)>;

fn joined(r: Result<Reaped, tokio::task::JoinError>) -> Reaped {
    r.map_err(io::Error::other).and_then(|r| r)
}

/// Runs one attempt to completion; see the [module documentation](self) for
/// the full contract.
///
/// `cancel`: sending `()` terminates the attempt (result
/// [`ProcessEnd::Cancelled`]); dropping the sender does **not** cancel.
pub async fn run_process(spec: ProcessSpec, mut cancel: oneshot::Receiver<()>) -> ProcessOutcome {
    let mut log = match open_log(&spec.log_path) {
        Ok(log) => log,
        Err(e) => return spawn_failed(format!("log `{}`: {e}", spec.log_path.display()), None),
    };
    let started = match start(&spec) {
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
        armed: true,
    };
    debug!(pid = pid.as_raw(), program = ?spec.program, "attempt spawned");
    // The pid file is written before the reaper starts: until it is reaped, the leader (even
    // if it already exited) is still in /proc, so its start time can be read.
    let written = write_pid_file(&spec.pid_path, pid);
    let reaper = leader.clone();
    let mut waiter = tokio::task::spawn_blocking(move || reap(&reaper));
    if let Err(e) = written {
        guard.armed = false;
        leader.signal_group(Signal::SIGKILL);
        let _ = waiter.await;
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

fn parse_pid_record(text: &str) -> Option<(i32, u64)> {
    let mut words = text.split_ascii_whitespace();
    let pid = words.next()?.parse().ok()?;
    let start = words.next()?.parse().ok()?;
    (words.next().is_none() && pid > 1).then_some((pid, start))
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
/// [`run_process`], then removes the pid file.
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
    let (pid, start) = parse_pid_record(&text).ok_or_else(|| {
        let msg = format!("malformed pid file `{}`: {text:?}", pid_path.display());
        io::Error::new(io::ErrorKind::InvalidData, msg)
    })?;
    let outcome = terminate_group(pid, start, grace).await;
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
