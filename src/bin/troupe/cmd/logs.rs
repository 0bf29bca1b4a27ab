//! `troupe logs RUN/TASK [--attempt N] [--compensation] [--follow]`: an attempt's output
//! (stdout and stderr) from `DATA_DIR/logs`, followed while the attempt runs.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::ExitCode;

use troupe::messages::control::{Request, Response, Target};
use troupe::messages::scheduler::AttemptKind;
use troupe::model::TaskState;

use crate::common::{block, connect, unexpected, EXIT_INTERNAL, EXIT_INVALID, POLL};

/// `troupe logs RUN/TASK [--attempt N] [--follow]`: prints the attempt's log file from the
/// data dir (the latest attempt by default).
pub(crate) fn logs(
    data_dir: &Path,
    target: Target,
    attempt: Option<u32>,
    compensation: bool,
    follow: bool,
) -> ExitCode {
    let kind = if compensation {
        AttemptKind::Compensation
    } else {
        AttemptKind::Forward
    };
    let Target::Task(run, task) = target else {
        eprintln!("troupe logs: give a task as RUN/TASK");
        return ExitCode::from(EXIT_INVALID);
    };
    let layout = troupe::layout::DataDir::new(data_dir);
    let dir = layout.task_logs(run, &task);
    let attempt = match attempt {
        Some(a) => a,
        None => match latest_attempt(&dir, kind) {
            Some(a) => a,
            None => {
                eprintln!(
                    "troupe logs: no logs for {run}/{task} in {} (has it started?)",
                    dir.display()
                );
                return ExitCode::from(EXIT_INVALID);
            }
        },
    };
    let path = layout.attempt_log(run, &task, kind, attempt);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("troupe logs: {}: {e}", path.display());
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let mut out = std::io::stdout().lock();
    let mut copy =
        |file: &mut std::fs::File| -> std::io::Result<u64> { std::io::copy(file, &mut out) };
    if let Err(e) = copy(&mut file) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
        eprintln!("troupe logs: {e}");
        return ExitCode::from(EXIT_INTERNAL);
    }
    if !follow {
        return ExitCode::SUCCESS;
    }
    let task_name = task.clone();
    block("logs", async move {
        let mut conn = connect(data_dir).await?;
        loop {
            let running = match conn.request(Request::Run(run)).await? {
                Response::Run(v) => {
                    v.tasks
                        .iter()
                        .find(|t| t.id == task_name)
                        .is_some_and(|t| match kind {
                            AttemptKind::Forward => {
                                t.state == TaskState::Running && t.attempts == attempt
                            }
                            AttemptKind::Compensation => t.compensation.as_ref().is_some_and(|c| {
                                c.state == troupe::model::CompensationState::Running
                                    && c.attempts == attempt
                            }),
                        })
                }
                r => return Err(unexpected(r)),
            };
            let pos = file.stream_position().unwrap_or(0);
            let mut buf = Vec::new();
            let _ = file.read_to_end(&mut buf);
            if !buf.is_empty() {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&buf);
                let _ = out.flush();
            } else {
                let _ = file.seek(SeekFrom::Start(pos));
            }
            if !running && buf.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

/// The highest attempt number of `kind` with a log file in `dir`.
fn latest_attempt(dir: &Path, kind: AttemptKind) -> Option<u32> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".log")?;
            let number = match kind {
                AttemptKind::Forward => stem,
                AttemptKind::Compensation => stem.strip_prefix("compensate-")?,
            };
            number.parse::<u32>().ok()
        })
        .max()
}

/// Most bytes [`tail`] reads from the end of a log: the last lines of any sane output fit,
/// and a log of many megabytes is not read whole to show ten lines.
const TAIL_BYTES: u64 = 64 * 1024;

/// The last `lines` lines of the log at `path` (at most the last [`TAIL_BYTES`] of it; a
/// line cut by that window is dropped), invalid UTF-8 replaced. A missing file is
/// `NotFound`.
pub(crate) fn tail(path: &Path, lines: usize) -> std::io::Result<Vec<String>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.take(TAIL_BYTES).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let mut all: Vec<&str> = text.lines().collect();
    if start > 0 && !all.is_empty() {
        all.remove(0);
    }
    let keep = all.len().saturating_sub(lines);
    Ok(all[keep..].iter().map(|l| (*l).to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines_and_drops_a_line_cut_by_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.log");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        assert_eq!(tail(&path, 2).unwrap(), ["two", "three"]);
        assert_eq!(tail(&path, 10).unwrap(), ["one", "two", "three"]);
        assert!(tail(&path, 0).unwrap().is_empty());
        let long = format!("{}\nlast\n", "x".repeat(TAIL_BYTES as usize));
        std::fs::write(&path, long).unwrap();
        assert_eq!(tail(&path, 10).unwrap(), ["last"]);
        assert_eq!(
            tail(&dir.path().join("2.log"), 1).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
    }
}
