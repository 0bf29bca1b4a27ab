//! The pid file of a running attempt: `"{pid} {starttime}\n"`, written via a `.tmp` file and
//! `rename`, removed when the attempt ends, read back by
//! [`terminate_orphan`](super::terminate_orphan).

use std::fs;
use std::io;
use std::path::Path;

use nix::unistd::Pid;

use super::output::create_parent;
use super::process_start_time;

/// Writes the pid file of leader `pid`.
pub(super) fn write_pid_file(path: &Path, pid: Pid) -> io::Result<()> {
    let start = process_start_time(pid.as_raw())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no /proc/{pid}/stat")))?;
    create_parent(path)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    fs::write(&tmp, format!("{pid} {start}\n"))?;
    fs::rename(&tmp, path)
}

/// Removes the pid file; one that is already gone is fine.
pub(super) fn remove_pid_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `(pid, starttime)` of a pid file's text; `None` if malformed or `pid <= 1`.
pub(super) fn parse_pid_record(text: &str) -> Option<(i32, u64)> {
    let mut words = text.split_ascii_whitespace();
    let pid = words.next()?.parse().ok()?;
    let start = words.next()?.parse().ok()?;
    (words.next().is_none() && pid > 1).then_some((pid, start))
}
