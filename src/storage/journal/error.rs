//! [`JournalError`]: what went wrong opening, reading or writing the journal, and the CLI exit
//! code of each cause.

use std::path::PathBuf;

use super::JOURNAL_FORMAT_VERSION;
use crate::model::Seq;
use crate::storage::codec::CodecError;

/// What went wrong opening, reading or writing the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Another process (or another open in this one) holds the journal. Stop that node
    /// first, or use another data dir.
    #[error("journal {} is already in use{}", path.display(), pid.map(|p| format!(" by pid {p}")).unwrap_or_default())]
    Locked {
        /// The journal directory.
        path: PathBuf,
        /// The holder's pid, as it wrote it into the lock file (if readable).
        pid: Option<u32>,
    },
    /// A filesystem operation failed (permissions, missing directory, disk full).
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What troupe was doing ("create directory", "lock", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// RocksDB refused an operation. Writes failing here were not acknowledged.
    #[error("RocksDB error in {}: {source}", path.display())]
    Rocks {
        /// The journal directory.
        path: PathBuf,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// A stored record is unreadable (corrupt, or from a newer troupe).
    #[error("journal {}: {source}", path.display())]
    Codec {
        /// The journal directory.
        path: PathBuf,
        /// Which record and why.
        source: CodecError,
    },
    /// The journal was written in a layout this troupe does not read.
    #[error("journal {} has format version {found}; this troupe reads version {JOURNAL_FORMAT_VERSION}", path.display())]
    UnsupportedFormat {
        /// The journal directory.
        path: PathBuf,
        /// The stored format version.
        found: u32,
    },
    /// Sequence numbers are not consecutive: an event is missing.
    #[error("journal {}: event {expected} is missing (the next stored event is {found})", path.display())]
    Gap {
        /// The journal directory.
        path: PathBuf,
        /// The sequence number that should come next.
        expected: Seq,
        /// The sequence number found instead.
        found: Seq,
    },
    /// A request that the journal's state does not allow (e.g. compacting past the latest
    /// snapshot).
    #[error("journal {}: {message}", path.display())]
    Refused {
        /// The journal directory.
        path: PathBuf,
        /// What is not allowed and why.
        message: String,
    },
}

impl JournalError {
    /// The CLI exit code for this error, one per cause whichever command meets it
    /// (DESIGN.md): 2 when the data dir itself is unusable as given (permissions, not a
    /// directory, read-only) or the request is not allowed, 3 for everything else (another
    /// node holds it, storage failed, a damaged record).
    pub fn exit_code(&self) -> i32 {
        use std::io::ErrorKind as K;
        match self {
            JournalError::Io { source, .. }
                if matches!(
                    source.kind(),
                    K::PermissionDenied
                        | K::NotADirectory
                        | K::AlreadyExists
                        | K::ReadOnlyFilesystem
                        | K::InvalidInput
                ) =>
            {
                2
            }
            JournalError::Refused { .. } => 2,
            _ => 3,
        }
    }
}
