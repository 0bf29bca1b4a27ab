//! Durable storage: the event journal on RocksDB.
//!
//! # Layout
//! - [`codec`]: the record envelope (format version, schema version, CRC32C, bincode
//!   payload); the only place bincode is used.
//! - [`journal`]: the [`journal::Journal`] handle (open, lock, column families), one file
//!   per job: the single [`journal::JournalWriter`] (stage + commit = group commit), reads
//!   by sequence range and by run/task stream, snapshots and compaction, rollup buckets,
//!   key layout, errors.
//! - [`feed`]: the committed-event feed: each committed batch, published to listeners that
//!   can catch up from the journal after a gap.
//! - [`replay`](mod@replay): latest snapshot + tail → [`crate::model::State`].
//! - [`backup`]: online backup (a RocksDB checkpoint plus the logs) and restore.
//!
//! The on-disk format is described in `docs/journal-format.md`.

pub mod backup;
pub mod codec;
pub mod feed;
pub mod journal;
pub mod replay;

pub use codec::CodecError;
pub use journal::{Durability, Journal, JournalError, JournalOptions, JournalWriter};
pub use replay::{replay, ReplayError, Replayed};
