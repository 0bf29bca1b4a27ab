//! The data dir's layout: every path troupe reads or writes under `DATA_DIR`, built in one
//! place ([`DataDir`]).
//!
//! ```text
//! DATA_DIR/
//! ├── journal/                 the RocksDB journal (see [`crate::storage`])
//! │   ├── LOCK                 RocksDB's lock, held by the process that has the journal open
//! │   ├── CURRENT              RocksDB's manifest pointer: exists once a journal was created
//! │   └── troupe.lock          troupe's own lock ([`crate::storage::journal::LOCK_FILE`])
//! ├── logs/RUN/TASK/
//! │   ├── STEM.log             an attempt's output (capped at `log_cap` bytes)
//! │   └── STEM.pid             its process group, while it runs (orphans are killed on boot)
//! ├── logs/hooks/ID/           hook call ID: ATTEMPT.log, ATTEMPT.pid, payload.json (stdin)
//! ├── troupe.sock              the control socket (mode 0600)
//! ├── http.addr                the address of /metrics /healthz /readyz, while the node runs
//! ├── STOP                     while it exists, the node dispatches nothing
//! ├── troupe.toml              the node config file (optional)
//! └── bench-*-PID/             scratch folders of `troupe bench` (removed afterwards)
//! ```
//! `STEM` is [`AttemptKind::file_stem`]: `N` for forward attempt `N`, `compensate-N` for
//! compensation attempt `N`.

use std::path::{Path, PathBuf};

use crate::messages::scheduler::AttemptKind;
use crate::model::{RunId, TaskId};

/// A node's data dir, and the path of everything in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    /// The folder itself (as given: relative paths stay relative).
    root: PathBuf,
}

impl DataDir {
    /// The layout of the data dir at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// The data dir itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `DATA_DIR/journal`: the journal's RocksDB folder.
    pub fn journal(&self) -> PathBuf {
        self.root.join("journal")
    }

    /// `DATA_DIR/journal/LOCK`: RocksDB's lock file, locked by whichever process has the
    /// journal open (a node, or a command reading a stopped node's journal).
    pub fn journal_lock(&self) -> PathBuf {
        self.journal().join("LOCK")
    }

    /// `DATA_DIR/journal/CURRENT`: exists once a journal was created there.
    pub fn journal_current(&self) -> PathBuf {
        self.journal().join("CURRENT")
    }

    /// `DATA_DIR/logs`: attempt logs and pid files.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// `DATA_DIR/logs/RUN`: everything logged for one run (what `retention.logs` removes).
    pub fn run_logs(&self, run: RunId) -> PathBuf {
        self.logs().join(run.to_string())
    }

    /// `DATA_DIR/logs/RUN/TASK`: the logs and pid files of one task's attempts.
    pub fn task_logs(&self, run: RunId, task: &TaskId) -> PathBuf {
        self.run_logs(run).join(task.as_str())
    }

    /// `DATA_DIR/logs/RUN/TASK/STEM.log`: the output of one attempt.
    pub fn attempt_log(
        &self,
        run: RunId,
        task: &TaskId,
        kind: AttemptKind,
        attempt: u32,
    ) -> PathBuf {
        self.task_logs(run, task)
            .join(format!("{}.log", kind.file_stem(attempt)))
    }

    /// `DATA_DIR/logs/RUN/TASK/STEM.pid`: the process group of one attempt while it runs.
    pub fn attempt_pid(
        &self,
        run: RunId,
        task: &TaskId,
        kind: AttemptKind,
        attempt: u32,
    ) -> PathBuf {
        self.task_logs(run, task)
            .join(format!("{}.pid", kind.file_stem(attempt)))
    }

    /// `DATA_DIR/logs/RUN/TASK/STEM.NAME.json`: a handoff file of one attempt, `NAME` being
    /// `output` (`TROUPE_OUTPUT`), `inputs` (`TROUPE_INPUTS`) or `usage` (`TROUPE_USAGE`).
    /// Removed when the attempt ends (what they hold is journaled).
    pub fn attempt_file(
        &self,
        run: RunId,
        task: &TaskId,
        kind: AttemptKind,
        attempt: u32,
        name: &str,
    ) -> PathBuf {
        self.task_logs(run, task)
            .join(format!("{}.{name}.json", kind.file_stem(attempt)))
    }

    /// `DATA_DIR/logs/hooks`: the logs, pid files and payloads of hook calls.
    pub fn hooks_logs(&self) -> PathBuf {
        self.logs().join("hooks")
    }

    /// `DATA_DIR/logs/hooks/ID`: everything of hook call `id`.
    pub fn hook_call(&self, id: u64) -> PathBuf {
        self.hooks_logs().join(id.to_string())
    }

    /// `DATA_DIR/logs/hooks/ID/ATTEMPT.log`: the output of one attempt of hook call `id`.
    pub fn hook_log(&self, id: u64, attempt: u32) -> PathBuf {
        self.hook_call(id).join(format!("{attempt}.log"))
    }

    /// `DATA_DIR/logs/hooks/ID/ATTEMPT.pid`: its process group while it runs.
    pub fn hook_pid(&self, id: u64, attempt: u32) -> PathBuf {
        self.hook_call(id).join(format!("{attempt}.pid"))
    }

    /// `DATA_DIR/logs/hooks/ID/payload.json`: what the hook reads on stdin.
    pub fn hook_payload(&self, id: u64) -> PathBuf {
        self.hook_call(id).join("payload.json")
    }

    /// `DATA_DIR/troupe.sock`: the control socket.
    pub fn socket(&self) -> PathBuf {
        self.root.join("troupe.sock")
    }

    /// `DATA_DIR/http.addr`: the address the node's HTTP endpoints listen on (while it runs).
    pub fn http_addr_file(&self) -> PathBuf {
        self.root.join("http.addr")
    }

    /// `DATA_DIR/STOP`: while it exists the node dispatches nothing.
    pub fn stop_file(&self) -> PathBuf {
        self.root.join("STOP")
    }

    /// `DATA_DIR/troupe.toml`: the config file read when no `--config` is given.
    pub fn config_file(&self) -> PathBuf {
        self.root.join("troupe.toml")
    }

    /// `DATA_DIR/NAME-PID`: the scratch folder of a `troupe bench` run (`name`: `bench`,
    /// `bench-tasks`, `bench-metrics`, `bench-saga`) by process `pid`.
    pub fn bench_dir(&self, name: &str, pid: u32) -> PathBuf {
        self.root.join(format!("{name}-{pid}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_files_sit_under_their_task() {
        let d = DataDir::new("/d");
        let run = RunId::from_ulid(ulid::Ulid::from_parts(1, 1));
        let task = TaskId::new("build").unwrap();
        let dir = format!("/d/logs/{run}/build");
        assert_eq!(
            d.attempt_log(run, &task, AttemptKind::Forward, 3),
            PathBuf::from(format!("{dir}/3.log"))
        );
        assert_eq!(
            d.attempt_pid(run, &task, AttemptKind::Compensation, 2),
            PathBuf::from(format!("{dir}/compensate-2.pid"))
        );
        assert_eq!(d.socket(), PathBuf::from("/d/troupe.sock"));
        assert_eq!(d.journal_lock(), PathBuf::from("/d/journal/LOCK"));
        assert_eq!(
            d.bench_dir("bench-saga", 7),
            PathBuf::from("/d/bench-saga-7")
        );
    }
}
