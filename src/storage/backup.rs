//! Online backup and restore of a data dir: the journal through a RocksDB checkpoint (a
//! consistent copy of the database at one moment, taken while the node writes; SST files
//! are hard links when the destination is on the same file system, copies otherwise), the
//! attempt logs and `troupe.toml` copied beside it, and `backup.json` naming what was taken.
//!
//! ```text
//! DEST/
//! ├── backup.json    {"seq", "node_id", "created", "troupe_version", "log_files", "bytes"}
//! ├── journal/       the checkpoint: a RocksDB database a node can open
//! ├── logs/          DATA_DIR/logs at the time of the backup (pid files left out)
//! └── troupe.toml    if the data dir has one
//! ```
//! A backup is itself the layout of a data dir, so `troupe --data-dir DEST journal verify`
//! checks it. [`restore`] copies one into a new data dir after verifying it.
//!
//! Logs are copied after the checkpoint, so a log can hold more output than the journal at
//! `seq` knows of (never less for an attempt that had ended).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::journal::{Journal, JournalError, VerifyReport};
use crate::layout::DataDir;
use crate::model::Seq;

/// What `backup.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    /// The last journal sequence number the backup holds.
    pub seq: Seq,
    /// The id of the node whose data dir was backed up.
    pub node_id: String,
    /// When the checkpoint was taken (RFC 3339).
    pub created: String,
    /// The troupe version that wrote it.
    pub troupe_version: String,
    /// Attempt log files copied.
    pub log_files: u64,
    /// Bytes under DEST (hard-linked SST files counted at full size).
    pub bytes: u64,
    /// The backup folder (absolute).
    pub path: PathBuf,
}

/// Why a backup or restore did not happen. Each names the path concerned.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination exists: backups never overwrite. Give a new path (exit 2).
    #[error("{}: already exists; give a path that does not exist yet", path.display())]
    Exists {
        /// The destination.
        path: PathBuf,
    },
    /// A file or folder could not be read or written (permissions, no space): fix and retry
    /// (exit 2 for permissions and missing folders, else 3).
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The source is not a backup `troupe backup` wrote (exit 2).
    #[error("{}: not a troupe backup ({reason})", path.display())]
    NotABackup {
        /// The source.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The target data dir already holds a journal, or a node uses it (exit 2).
    #[error("{}: {reason}", path.display())]
    TargetInUse {
        /// The target data dir.
        path: PathBuf,
        /// Why it cannot be restored into.
        reason: String,
    },
    /// `journal verify` found problems in the backup: nothing was restored (exit 1).
    #[error("{}: the backup's journal has {} problem(s), the first: {}", path.display(), report.problems.len(), report.problems.first().map(|p| p.message.as_str()).unwrap_or(""))]
    Damaged {
        /// The backup.
        path: PathBuf,
        /// What verify found.
        report: Box<VerifyReport>,
    },
    /// RocksDB or the journal failed (see [`JournalError`]).
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl BackupError {
    /// The CLI exit code (DESIGN.md).
    pub fn exit_code(&self) -> i32 {
        use io::ErrorKind as K;
        match self {
            BackupError::Exists { .. }
            | BackupError::NotABackup { .. }
            | BackupError::TargetInUse { .. } => 2,
            BackupError::Io { source, .. }
                if matches!(
                    source.kind(),
                    K::PermissionDenied | K::NotFound | K::ReadOnlyFilesystem | K::NotADirectory
                ) =>
            {
                2
            }
            BackupError::Damaged { .. } => 1,
            BackupError::Journal(e) => e.exit_code(),
            BackupError::Io { .. } => 3,
        }
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BackupError + 'a {
    move |source| BackupError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The name of the manifest in a backup folder.
pub const MANIFEST: &str = "backup.json";

/// Backs up the data dir `data` (whose journal is open as `journal`, by a running node or
/// offline) into `dest`, which must not exist (its parent must). Returns what was written.
pub fn backup(journal: &Journal, data: &DataDir, dest: &Path) -> Result<BackupInfo, BackupError> {
    let dest = std::path::absolute(dest).map_err(io_err("resolve", dest))?;
    match fs::create_dir(&dest) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(BackupError::Exists { path: dest })
        }
        Err(e) => return Err(io_err("create backup folder", &dest)(e)),
    }
    let result = take(journal, data, &dest);
    if result.is_err() {
        // Never leave a half-written backup that looks like a whole one.
        let _ = fs::remove_dir_all(&dest);
    }
    result
}

fn take(journal: &Journal, data: &DataDir, dest: &Path) -> Result<BackupInfo, BackupError> {
    let journal_dest = dest.join("journal");
    journal.checkpoint(&journal_dest)?;
    // The checkpoint is a database of its own: open it (nobody else can) for its last seq.
    let seq = Journal::open(&journal_dest)?.last_seq()?;
    let log_files = copy_tree(&data.logs(), &dest.join("logs"), &|p| {
        p.extension().is_some_and(|e| e == "pid")
    })?;
    let config = data.root().join("troupe.toml");
    if config.exists() {
        fs::copy(&config, dest.join("troupe.toml")).map_err(io_err("copy", &config))?;
    }
    let mut info = BackupInfo {
        seq,
        node_id: journal.node_id().to_string(),
        created: crate::model::Timestamp::from_system_time(std::time::SystemTime::now())
            .to_string(),
        troupe_version: env!("CARGO_PKG_VERSION").to_string(),
        log_files,
        bytes: 0,
        path: dest.to_path_buf(),
    };
    info.bytes = tree_bytes(dest)?;
    let manifest = dest.join(MANIFEST);
    let text = serde_json::to_string_pretty(&info).expect("backup info serialises");
    fs::write(&manifest, text + "\n").map_err(io_err("write", &manifest))?;
    sync_dir(dest)?;
    Ok(info)
}

/// Restores the backup at `src` into the data dir `data`, which must not hold a journal
/// (and no node may use it). The backup is verified first ([`Journal::verify`]); nothing is
/// written if it has problems. Returns the backup's manifest.
pub fn restore(src: &Path, data: &DataDir) -> Result<BackupInfo, BackupError> {
    let manifest = src.join(MANIFEST);
    let text = fs::read_to_string(&manifest).map_err(|e| BackupError::NotABackup {
        path: src.to_path_buf(),
        reason: format!("cannot read {MANIFEST}: {e}"),
    })?;
    let info: BackupInfo = serde_json::from_str(&text).map_err(|e| BackupError::NotABackup {
        path: src.to_path_buf(),
        reason: format!("{MANIFEST}: {e}"),
    })?;
    if !src.join("journal").join("CURRENT").exists() {
        return Err(BackupError::NotABackup {
            path: src.to_path_buf(),
            reason: "no journal/ database in it".into(),
        });
    }
    if data.journal().exists() {
        let reason = match Journal::open(&data.journal()) {
            Err(JournalError::Locked { pid, .. }) => format!(
                "a node{} is using this data dir; restore into a new data dir",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ),
            _ => "already holds a journal; restore into a new or empty data dir (nothing was changed)"
                .into(),
        };
        return Err(BackupError::TargetInUse {
            path: data.root().to_path_buf(),
            reason,
        });
    }
    {
        let backup = Journal::open(&src.join("journal"))?;
        let report = backup.verify()?;
        if !report.ok() {
            return Err(BackupError::Damaged {
                path: src.to_path_buf(),
                report: Box::new(report),
            });
        }
    }
    fs::create_dir_all(data.root()).map_err(io_err("create data dir", data.root()))?;
    let skip_lock = |p: &Path| {
        p.file_name()
            .is_some_and(|n| n == super::journal::LOCK_FILE)
    };
    copy_tree(&src.join("journal"), &data.journal(), &skip_lock)?;
    copy_tree(&src.join("logs"), &data.logs(), &|_| false)?;
    let config = src.join("troupe.toml");
    if config.exists() {
        let to = data.root().join("troupe.toml");
        if !to.exists() {
            fs::copy(&config, &to).map_err(io_err("copy", &config))?;
        }
    }
    sync_dir(&data.journal())?;
    sync_dir(data.root())?;
    // What a node will boot from: it must open and hold what the manifest says.
    let restored = Journal::open(&data.journal())?.last_seq()?;
    if restored != info.seq {
        return Err(BackupError::NotABackup {
            path: src.to_path_buf(),
            reason: format!(
                "{MANIFEST} says seq {} but the restored journal ends at {restored}",
                info.seq
            ),
        });
    }
    Ok(info)
}

/// Copies the files under `from` into `to` (created), leaving out those `skip` names;
/// returns how many files were copied. A missing `from` copies nothing.
fn copy_tree(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<u64, BackupError> {
    let entries = match fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err("read", from)(e)),
    };
    fs::create_dir_all(to).map_err(io_err("create", to))?;
    let mut n = 0;
    for entry in entries {
        let entry = entry.map_err(io_err("read", from))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err("read", &path))?;
        if kind.is_dir() {
            n += copy_tree(&path, &to.join(entry.file_name()), skip)?;
        } else if kind.is_file() && !skip(&path) {
            let target = to.join(entry.file_name());
            match fs::copy(&path, &target) {
                Ok(_) => n += 1,
                // A log or handoff file removed while we copied (its attempt ended).
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("copy", &path)(e)),
            }
        }
    }
    Ok(n)
}

/// Total size of the files under `dir`.
fn tree_bytes(dir: &Path) -> Result<u64, BackupError> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(io_err("read", dir))? {
        let entry = entry.map_err(io_err("read", dir))?;
        let meta = entry.metadata().map_err(io_err("read", &entry.path()))?;
        total += if meta.is_dir() {
            tree_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// fsyncs a directory, so the names created in it are durable.
fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}
