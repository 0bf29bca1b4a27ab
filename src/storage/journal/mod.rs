//! The journal: RocksDB column families, the single writer, and reads.
//!
//! # Layout
//! - `mod.rs`: the [`Journal`] handle: open (format version, node id), column families,
//!   RocksDB options, WAL sync and flush.
//! - `error`: [`JournalError`] and its CLI exit codes.
//! - `lock`: the `troupe.lock` flock and who holds it.
//! - `keys`: the byte layout of every key (sequence numbers, stream keys, rollup buckets).
//! - `writer`: [`JournalWriter`] (stage + commit = group commit), [`Durability`] and the
//!   batch caps of [`JournalOptions`].
//! - `read`: reads by sequence range ([`EventIter`]) and by run/task stream, bounds
//!   (`first_seq`, `last_seq`), the raw scan.
//! - `snapshot`: storing and loading snapshots, and compaction of the events they cover.
//! - `rollups`: rollup buckets: staging into a commit, reading, dropping old minutes.
//! - `verify`: [`Journal::verify`], every record, index entry and snapshot checked
//!   (`troupe journal verify`).
//!
//! # Column families
//! | name | key | value |
//! |---|---|---|
//! | `events` | sequence number, u64 big-endian | [`codec`](super::codec) envelope of an [`EventRecord`](crate::model::EventRecord) |
//! | `streams` | `R` + run id (u128 BE) + seq (u64 BE), and `T` + run id + task id + `0x00` + seq | empty |
//! | `snapshots` | sequence number the snapshot was taken at, u64 BE | envelope of a [`State`](crate::model::State) |
//! | `meta` | `format_version`, `node_id`, `first_seq` | u32 BE / ULID text / u64 BE |
//! | `rollups` | minute (ms since the epoch / 60,000, u64 BE) + pool name (UTF-8, empty for no pool) | [`codec::encode_rollup`](super::codec::encode_rollup) of a [`Bucket`](crate::model::rollup::Bucket) |
//!
//! Big-endian keys sort numerically, so a forward scan of `events` is the journal in order
//! and a prefix scan of `streams` yields one run's (or task's) sequence numbers in order.
//!
//! # Writing
//! There is one [`JournalWriter`] per open journal (the journal actor owns it). It *stages*
//! appends into one `WriteBatch`, assigning consecutive sequence numbers, and *commits* the
//! batch with a single write and, under [`Durability::Sync`], a single fsync of the WAL. A
//! caller is acknowledged only after the commit that holds its records returned. That is
//! group commit; the journal actor (`troupe::actors::journal`) decides when to commit (never
//! on a timer).
//!
//! Rollup buckets ([`crate::model::rollup`]) staged with an append are added to the stored
//! buckets in the same `WriteBatch` as its events, so they are exactly as durable. The
//! writer is the only one that changes them; it keeps the buckets it wrote last in memory
//! to avoid reading them back.
//!
//! # Locking
//! Opening takes an exclusive `flock` on `troupe.lock` in the journal directory and writes
//! the process id into it; a second open (from another process, or the same one) fails with
//! [`JournalError::Locked`] naming that pid. The kernel drops the lock when the process
//! dies, even by SIGKILL.
//!
//! # Retention
//! Events are kept until [`JournalWriter::compact_before`] removes those covered by a
//! snapshot. `streams` entries of removed events are left behind (about 30 bytes each) and
//! skipped by stream reads.

mod error;
mod keys;
mod lock;
mod read;
mod rollups;
mod snapshot;
mod verify;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options, WriteBatch, WriteOptions, DB,
};

use super::codec::CodecError;
use lock::take_lock;

pub use error::JournalError;
pub use read::EventIter;
pub use verify::{Problem, VerifyReport};
pub use writer::{Durability, JournalOptions, JournalWriter};

/// Column family of events, keyed by sequence number.
pub const CF_EVENTS: &str = "events";
/// Column family of per-run and per-task stream index keys.
pub const CF_STREAMS: &str = "streams";
/// Column family of snapshots, keyed by the sequence number they cover.
pub const CF_SNAPSHOTS: &str = "snapshots";
/// Column family of journal metadata.
pub const CF_META: &str = "meta";
/// Column family of per-minute, per-pool rollup buckets (`troupe metrics`).
pub const CF_ROLLUPS: &str = "rollups";
/// Every column family of the journal, in the order they are opened.
pub const COLUMN_FAMILIES: [&str; 5] = [CF_EVENTS, CF_STREAMS, CF_SNAPSHOTS, CF_META, CF_ROLLUPS];
/// Journal layout version written to `meta/format_version`.
pub const JOURNAL_FORMAT_VERSION: u32 = 1;
/// Name of the lock file inside the journal directory.
pub const LOCK_FILE: &str = "troupe.lock";

struct Inner {
    /// The RocksDB instance, shared by every clone of the handle and by the writer.
    db: DB,
    /// The journal directory, for error messages.
    path: PathBuf,
    /// `meta/node_id`, read once at open.
    node_id: String,
    /// Set while a [`JournalWriter`] exists: there is only ever one.
    writer_taken: AtomicBool,
    /// Held for the life of the journal; dropping it releases the flock.
    _lock: nix::fcntl::Flock<File>,
}

/// A read handle on an open journal. Cheap to clone; all clones share one RocksDB instance.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// RocksDB options of the journal database (also used by `troupe bench journal`'s raw
/// RocksDB baseline, so both are measured with the same tuning).
pub fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    // Keep RocksDB's informational LOG small; the journal is what matters here.
    o.set_keep_log_file_num(2);
    o.set_max_log_file_size(1 << 20);
    o
}

fn cf_options() -> Options {
    let mut o = Options::default();
    o.set_compression_type(DBCompressionType::Lz4);
    o
}

impl Journal {
    /// Opens (creating if missing) the journal in directory `dir`.
    ///
    /// Errors: [`JournalError::Locked`] if another open holds it, [`JournalError::Io`] if the
    /// directory cannot be created or locked (permissions), [`JournalError::UnsupportedFormat`]
    /// for a journal from a newer troupe, [`JournalError::Rocks`] for RocksDB failures.
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(|source| JournalError::Io {
            action: "create journal directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = take_lock(dir)?;
        let mut db_opts = db_options();
        db_opts.create_missing_column_families(true);
        let cfs = COLUMN_FAMILIES
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options()));
        let rocks = |source| JournalError::Rocks {
            path: dir.to_path_buf(),
            source,
        };
        let db = DB::open_cf_descriptors(&db_opts, dir, cfs).map_err(rocks)?;
        let meta = db.cf_handle(CF_META).expect("meta cf exists");
        match db.get_cf(meta, b"format_version").map_err(rocks)? {
            Some(v) => {
                let found = v
                    .as_slice()
                    .try_into()
                    .map(u32::from_be_bytes)
                    .unwrap_or(u32::MAX);
                if found != JOURNAL_FORMAT_VERSION {
                    return Err(JournalError::UnsupportedFormat {
                        path: dir.to_path_buf(),
                        found,
                    });
                }
            }
            None => {
                let mut batch = WriteBatch::default();
                batch.put_cf(
                    meta,
                    b"format_version",
                    JOURNAL_FORMAT_VERSION.to_be_bytes(),
                );
                batch.put_cf(meta, b"node_id", ulid::Ulid::new().to_string());
                let mut wo = WriteOptions::default();
                wo.set_sync(true);
                db.write_opt(batch, &wo).map_err(rocks)?;
            }
        }
        let node_id = db
            .get_cf(meta, b"node_id")
            .map_err(rocks)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        Ok(Journal {
            inner: Arc::new(Inner {
                db,
                path: dir.to_path_buf(),
                node_id,
                writer_taken: AtomicBool::new(false),
                _lock: lock,
            }),
        })
    }

    /// The journal directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The id minted when this journal was created (a ULID), identifying the node.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    fn db(&self) -> &DB {
        &self.inner.db
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db().cf_handle(name).expect("column family opened")
    }

    fn rocks(&self, source: rocksdb::Error) -> JournalError {
        JournalError::Rocks {
            path: self.inner.path.clone(),
            source,
        }
    }

    fn codec(&self, source: CodecError) -> JournalError {
        JournalError::Codec {
            path: self.inner.path.clone(),
            source,
        }
    }

    /// Writes and fsyncs the write-ahead log, making `buffered` appends durable (node
    /// shutdown).
    pub fn sync_wal(&self) -> Result<(), JournalError> {
        self.db().flush_wal(true).map_err(|e| self.rocks(e))
    }

    /// Flushes memtables to SST files (used before measuring on-disk reads).
    pub fn flush(&self) -> Result<(), JournalError> {
        for cf in COLUMN_FAMILIES {
            self.db().flush_cf(self.cf(cf)).map_err(|e| self.rocks(e))?;
        }
        Ok(())
    }
}
