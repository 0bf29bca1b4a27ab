//! The journal's lock: an exclusive `flock` on [`LOCK_FILE`] holding the owner's pid, so a
//! second open names who holds the journal.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{JournalError, LOCK_FILE};

/// Takes the lock of the journal in `dir`, writing this process's pid into it.
pub(super) fn take_lock(dir: &Path) -> Result<nix::fcntl::Flock<File>, JournalError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| JournalError::Io {
            action: "open lock file",
            path: path.clone(),
            source,
        })?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let pid = std::process::id().to_string();
            let io = |source| JournalError::Io {
                action: "write lock file",
                path: path.clone(),
                source,
            };
            lock.set_len(0).map_err(io)?;
            lock.seek(SeekFrom::Start(0)).map_err(io)?;
            lock.write_all(pid.as_bytes()).map_err(io)?;
            Ok(lock)
        }
        Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Err(JournalError::Locked {
                path: dir.to_path_buf(),
                pid: text.trim().parse().ok(),
            })
        }
        Err((_, errno)) => Err(JournalError::Io {
            action: "lock",
            path,
            source: errno.into(),
        }),
    }
}
