//! The pid file of a running attempt: `"{pid} {starttime} {mark}\n"` (files written before
//! the mark existed have two words), written via a `.tmp` file and
//! `rename`, removed when the attempt ends, read back by
//! [`terminate_orphan`](super::terminate_orphan).

use std::fs;
use std::io;
use std::path::Path;

use nix::unistd::Pid;

use super::output::create_parent;
use super::process_start_time;

/// Writes the pid file of leader `pid`, whose processes carry `mark`; returns the leader's
/// start time.
pub(super) fn write_pid_file(path: &Path, pid: Pid, mark: &str) -> io::Result<u64> {
    let start = process_start_time(pid.as_raw())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no /proc/{pid}/stat")))?;
    create_parent(path)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    fs::write(&tmp, format!("{pid} {start} {mark}\n"))?;
    fs::rename(&tmp, path)?;
    Ok(start)
}

/// Removes the pid file; one that is already gone is fine.
pub(super) fn remove_pid_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `(pid, starttime, mark)` of a pid file's text (no mark in a file of an older troupe);
/// `None` if malformed or `pid <= 1`.
pub(super) fn parse_pid_record(text: &str) -> Option<(i32, u64, Option<String>)> {
    let mut words = text.split_ascii_whitespace();
    let pid = words.next()?.parse().ok()?;
    let start = words.next()?.parse().ok()?;
    let mark = words.next().map(str::to_owned);
    (words.next().is_none() && pid > 1).then_some((pid, start, mark))
}
