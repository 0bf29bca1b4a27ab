//! Starting an attempt: checking `cwd`, building the command, and spawning it as the
//! leader of a new process group with stdout and stderr on one pipe.

use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::{access, pipe2, AccessFlags, Pid};

use super::tree::{own_children, MARK_VAR};
use super::{ProcessSpec, Program};

/// The shell used for [`Program::Shell`].
const SHELL: &str = "/bin/sh";

/// A spawned attempt before the output copier runs.
pub(super) struct Started {
    pub(super) pid: Pid,
    pub(super) output: File,
    pub(super) wake_rx: OwnedFd,
    pub(super) wake_tx: OwnedFd,
}

fn check_cwd(cwd: &Path) -> io::Result<()> {
    if !fs::metadata(cwd)?.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    access(cwd, AccessFlags::X_OK).map_err(io::Error::from)
}

/// Spawns `spec`'s program with `mark` in its environment ([`MARK_VAR`]) and registers the
/// leader in [`own_children`] (the caller forgets it once reaped); the message of a spawn
/// failure on error.
pub(super) fn start(spec: &ProcessSpec, mark: &str) -> Result<Started, String> {
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
    let stdin = match &spec.stdin {
        Some(path) => Stdio::from(
            std::fs::File::open(path).map_err(|e| format!("stdin `{}`: {e}", path.display()))?,
        ),
        None => Stdio::null(),
    };
    cmd.stdin(stdin)
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2))
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(MARK_VAR, mark)
        .process_group(0);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    // Registered under the lock it is spawned under: a sweep of adopted orphans never sees
    // the leader unregistered.
    let child = {
        let mut own = own_children();
        let child = cmd.spawn().map_err(|e| format!("`{name}`: {e}"))?;
        own.get_or_insert_with(Default::default)
            .insert(child.id() as i32);
        child
    };
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
