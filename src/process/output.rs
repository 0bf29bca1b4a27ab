//! The attempt log: copying the output pipe into it, byte for byte, up to the cap, then the
//! truncation marker. A log that cannot be written (the disk is full) is cut with a marker
//! where possible; the attempt goes on and its output pipe keeps being drained.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use tracing::warn;

/// Size of the buffer used to copy the output pipe.
const COPY_BUF: usize = 64 * 1024;

/// Copies the (non-blocking) output pipe into `log` until EOF, keeping at
/// most `cap` bytes, or until `wake` becomes readable/hung up, after which
/// only what is already buffered is drained. Returns (total bytes, truncated).
pub(super) fn copy_output(mut pipe: File, wake: OwnedFd, mut log: File, cap: u64) -> (u64, bool) {
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
                            // Best effort: a full disk often still has room in the last block.
                            let marker = format!("\n[troupe: log cut after {total} bytes: {e}]\n");
                            let _ = log.write_all(marker.as_bytes());
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

/// Creates (or truncates) the attempt log, and its parent directories.
pub(super) fn open_log(path: &Path, append: bool) -> io::Result<File> {
    create_parent(path)?;
    OpenOptions::new()
        .write(true)
        .create(true)
        .append(append)
        .truncate(!append)
        .open(path)
}

/// Creates the parent directories of `path`.
pub(super) fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::create_dir_all(dir),
        _ => Ok(()),
    }
}
