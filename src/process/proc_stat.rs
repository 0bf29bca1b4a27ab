//! What `/proc/PID/stat` says about a process: its start time (which, with the pid,
//! identifies it across pid reuse), its parent, its process group and whether it is dead.

use std::fs;

/// Start time of process `pid`: field 22 of `/proc/PID/stat`, in clock ticks
/// since boot. `None` if the process does not exist (zombies still have one).
pub fn process_start_time(pid: i32) -> Option<u64> {
    read_stat(pid).map(|s| s.start)
}

/// The fields of `/proc/PID/stat` this module needs.
pub(super) struct Stat {
    pub(super) state: u8,
    pub(super) ppid: i32,
    pub(super) pgrp: i32,
    pub(super) start: u64,
}

/// The fields of `/proc/PID/stat` of `pid`; `None` if there is no such process.
pub(super) fn read_stat(pid: i32) -> Option<Stat> {
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
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Whether a `/proc/PID/stat` state is a zombie or a dead process.
pub(super) fn is_dead(state: u8) -> bool {
    matches!(state, b'Z' | b'X' | b'x')
}
