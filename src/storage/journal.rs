//! The journal: RocksDB column families, the single writer, and reads.
//!
//! # Column families
//! | name | key | value |
//! |---|---|---|
//! | `events` | sequence number, u64 big-endian | [`codec`] envelope of an [`EventRecord`] |
//! | `streams` | `R` + run id (u128 BE) + seq (u64 BE), and `T` + run id + task id + `0x00` + seq | empty |
//! | `snapshots` | sequence number the snapshot was taken at, u64 BE | envelope of a [`State`] |
//! | `meta` | `format_version`, `node_id`, `first_seq` | u32 BE / ULID text / u64 BE |
//! | `rollups` | minute (ms since the epoch / 60,000, u64 BE) + pool name (UTF-8, empty for no pool) | [`codec::encode_rollup`] of a [`Bucket`] |
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

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Options, ReadOptions, WriteBatch,
    WriteOptions, DB,
};
use serde::{Deserialize, Serialize};

use super::codec::{self, CodecError};
use crate::model::rollup::{Bucket, BucketKey, RollupDelta};
use crate::model::{EventRecord, RunId, Seq, State, TaskId};

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

/// When an append counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// fsync the write-ahead log before acknowledging (survives power loss). The default.
    #[default]
    Sync,
    /// Acknowledge once RocksDB has written the WAL to the OS (survives a crash or `kill -9`
    /// of troupe, not a power loss or kernel crash). For tests and benchmarks.
    Buffered,
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sync" => Ok(Durability::Sync),
            "buffered" => Ok(Durability::Buffered),
            other => Err(format!(
                "unknown durability `{other}` (expected `sync` or `buffered`)"
            )),
        }
    }
}

/// How the journal is opened and how big a group commit may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalOptions {
    /// See [`Durability`].
    pub durability: Durability,
    /// A batch is committed early once it holds this many events (default 4096).
    pub max_batch_events: usize,
    /// ... or this many encoded bytes (default 4 MiB).
    pub max_batch_bytes: usize,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            durability: Durability::Sync,
            max_batch_events: 4096,
            max_batch_bytes: 4 << 20,
        }
    }
}

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

struct Inner {
    db: DB,
    path: PathBuf,
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

fn take_lock(dir: &Path) -> Result<nix::fcntl::Flock<File>, JournalError> {
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

/// Key of a rollup bucket: minute (u64 BE) + pool name.
fn bucket_key_bytes((minute, pool): &BucketKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + pool.len());
    k.extend_from_slice(&minute.to_be_bytes());
    k.extend_from_slice(pool.as_bytes());
    k
}

/// Inverse of [`bucket_key_bytes`] (a pool name that is not UTF-8 is shown lossily).
fn bucket_key_of(k: &[u8]) -> BucketKey {
    let minute = k
        .get(..8)
        .and_then(|m| m.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0);
    let pool = String::from_utf8_lossy(k.get(8..).unwrap_or_default());
    (minute, pool.as_ref().into())
}

/// Key of the run stream entry for `seq`.
fn run_stream_key(run: RunId, seq: Seq) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = b'R';
    k[1..17].copy_from_slice(&run.as_u128().to_be_bytes());
    k[17..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn task_stream_prefix(run: RunId, task: &TaskId, out: &mut Vec<u8>) {
    out.clear();
    out.push(b'T');
    out.extend_from_slice(&run.as_u128().to_be_bytes());
    out.extend_from_slice(task.as_str().as_bytes());
    out.push(0);
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

    /// The journal's one writer. Fails with [`JournalError::Refused`] while another writer of
    /// this journal exists (dropping a writer frees the slot, e.g. when the journal actor is
    /// restarted). The writer starts after the last durable event.
    pub fn writer(&self, options: &JournalOptions) -> Result<JournalWriter, JournalError> {
        if self.inner.writer_taken.swap(true, Ordering::AcqRel) {
            return Err(JournalError::Refused {
                path: self.inner.path.clone(),
                message: "the journal already has a writer".into(),
            });
        }
        let last = match self.last_seq() {
            Ok(last) => last,
            Err(e) => {
                self.inner.writer_taken.store(false, Ordering::Release);
                return Err(e);
            }
        };
        let mut write_options = WriteOptions::default();
        write_options.set_sync(options.durability == Durability::Sync);
        Ok(JournalWriter {
            journal: self.clone(),
            options: *options,
            write_options,
            committed: last,
            next_seq: last + 1,
            batch: WriteBatch::default(),
            staged_events: 0,
            staged_bytes: 0,
            value_buf: Vec::with_capacity(4096),
            key_buf: Vec::with_capacity(64),
            rollup: RollupDelta::default(),
            rollup_cache: std::collections::HashMap::new(),
            failed: false,
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

    fn last_key(&self, cf: &str) -> Result<Option<Seq>, JournalError> {
        let mut it = self.db().raw_iterator_cf(self.cf(cf));
        it.seek_to_last();
        it.status().map_err(|e| self.rocks(e))?;
        Ok(it.key().map(seq_of_key))
    }

    /// The rollup buckets of minutes `from..=to` (every pool), in key order.
    ///
    /// Errors: [`JournalError::Codec`] naming the minute of a bucket that does not decode.
    pub fn rollups(&self, from: u64, to: u64) -> Result<Vec<(BucketKey, Bucket)>, JournalError> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound((to + 1).to_be_bytes().to_vec());
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_ROLLUPS), opts);
        it.seek(from.to_be_bytes());
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let key = bucket_key_of(k);
            let b = codec::decode_rollup(key.0, v).map_err(|e| self.codec(e))?;
            out.push((key, b));
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        Ok(out)
    }

    /// Sequence number of the last durable event (0 for an empty journal). Also correct
    /// after compaction removed every event (the latest snapshot's seq then counts).
    pub fn last_seq(&self) -> Result<Seq, JournalError> {
        let events = self.last_key(CF_EVENTS)?.unwrap_or(0);
        let snapshots = self.last_key(CF_SNAPSHOTS)?.unwrap_or(0);
        Ok(events
            .max(snapshots)
            .max(self.first_seq()?.saturating_sub(1)))
    }

    /// Lowest sequence number still stored (1 unless compacted).
    pub fn first_seq(&self) -> Result<Seq, JournalError> {
        Ok(self
            .db()
            .get_cf(self.cf(CF_META), b"first_seq")
            .map_err(|e| self.rocks(e))?
            .and_then(|v| v.as_slice().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(1))
    }

    /// The event at `seq`, if stored.
    pub fn get(&self, seq: Seq) -> Result<Option<EventRecord>, JournalError> {
        let value = self
            .db()
            .get_pinned_cf(self.cf(CF_EVENTS), seq.to_be_bytes())
            .map_err(|e| self.rocks(e))?;
        value
            .map(|v| codec::decode_event(seq, &v).map_err(|e| self.codec(e)))
            .transpose()
    }

    /// Events with `from <= seq < to`, in order. The iterator yields an error (and then
    /// stops) at the first record that does not decode or at a missing sequence number.
    pub fn range(&self, from: Seq, to: Seq) -> EventIter<'_> {
        let mut opts = ReadOptions::default();
        // Sequential scans should not evict the block cache's hot entries.
        opts.fill_cache(false);
        opts.set_readahead_size(2 << 20);
        opts.set_iterate_upper_bound(to.to_be_bytes().to_vec());
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_EVENTS), opts);
        let from = from.max(1);
        it.seek(from.to_be_bytes());
        // The first event must be `from` itself, unless retention removed it.
        let expect = match self.first_seq() {
            Ok(first) => Some(from.max(first)),
            Err(_) => None,
        };
        EventIter {
            journal: self,
            it,
            expect,
            done: false,
        }
    }

    /// All events from `from` on.
    pub fn events_from(&self, from: Seq) -> EventIter<'_> {
        self.range(from, Seq::MAX)
    }

    fn stream(&self, prefix: &[u8]) -> Result<Vec<(Seq, EventRecord)>, JournalError> {
        self.stream_range(prefix, 0, usize::MAX)
    }

    /// At most `limit` events of run `run` with a sequence number above `after`, in order.
    /// Seeks straight to `after + 1` in the run's stream.
    pub fn run_events_after(
        &self,
        run: RunId,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<(Seq, EventRecord)>, JournalError> {
        let mut prefix = Vec::with_capacity(17);
        prefix.push(b'R');
        prefix.extend_from_slice(&run.as_u128().to_be_bytes());
        self.stream_range(&prefix, after, limit)
    }

    fn stream_range(
        &self,
        prefix: &[u8],
        after: Seq,
        limit: usize,
    ) -> Result<Vec<(Seq, EventRecord)>, JournalError> {
        let first = self.first_seq()?.max(after.saturating_add(1));
        let mut it = self.db().raw_iterator_cf(self.cf(CF_STREAMS));
        let mut start = prefix.to_vec();
        start.extend_from_slice(&first.to_be_bytes());
        it.seek(&start);
        let mut seqs = Vec::new();
        while let Some(key) = it.key() {
            if seqs.len() >= limit {
                break;
            }
            if !key.starts_with(prefix) || key.len() != prefix.len() + 8 {
                break;
            }
            let seq = seq_of_key(&key[prefix.len()..]);
            if seq >= first {
                seqs.push(seq);
            }
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        let events = self.cf(CF_EVENTS);
        let keys: Vec<[u8; 8]> = seqs.iter().map(|s| s.to_be_bytes()).collect();
        let values = self.db().batched_multi_get_cf(events, &keys, true);
        let mut out = Vec::with_capacity(seqs.len());
        for (seq, value) in seqs.into_iter().zip(values) {
            match value.map_err(|e| self.rocks(e))? {
                Some(v) => out.push((
                    seq,
                    codec::decode_event(seq, &v).map_err(|e| self.codec(e))?,
                )),
                None => {
                    return Err(JournalError::Refused {
                        path: self.inner.path.clone(),
                        message: format!("stream index names event {seq}, which is not stored"),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Every stored event of run `run`, in order.
    pub fn run_events(&self, run: RunId) -> Result<Vec<(Seq, EventRecord)>, JournalError> {
        let mut prefix = Vec::with_capacity(17);
        prefix.push(b'R');
        prefix.extend_from_slice(&run.as_u128().to_be_bytes());
        self.stream(&prefix)
    }

    /// Every stored event of task `task` of run `run`, in order.
    pub fn task_events(
        &self,
        run: RunId,
        task: &TaskId,
    ) -> Result<Vec<(Seq, EventRecord)>, JournalError> {
        let mut prefix = Vec::new();
        task_stream_prefix(run, task, &mut prefix);
        self.stream(&prefix)
    }

    /// The newest snapshot, if any, as `(seq, state)`.
    pub fn latest_snapshot(&self) -> Result<Option<(Seq, State)>, JournalError> {
        let mut it = self.db().raw_iterator_cf(self.cf(CF_SNAPSHOTS));
        it.seek_to_last();
        it.status().map_err(|e| self.rocks(e))?;
        match it.item() {
            None => Ok(None),
            Some((key, value)) => {
                let seq = seq_of_key(key);
                let state = codec::decode_snapshot(seq, value).map_err(|e| self.codec(e))?;
                Ok(Some((seq, state)))
            }
        }
    }

    /// Reads every stored event's key and value without decoding; returns how many. The
    /// floor replay is measured against (`troupe bench journal`).
    pub fn scan_raw(&self) -> Result<u64, JournalError> {
        let mut opts = ReadOptions::default();
        opts.fill_cache(false);
        opts.set_readahead_size(2 << 20);
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_EVENTS), opts);
        it.seek_to_first();
        let mut n = 0u64;
        let mut sink = 0u64;
        while let Some((k, v)) = it.item() {
            sink = sink.wrapping_add(k.len() as u64 + v.len() as u64);
            n += 1;
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        std::hint::black_box(sink);
        Ok(n)
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

fn seq_of_key(key: &[u8]) -> Seq {
    key.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// Iterator over stored events in sequence order; see [`Journal::range`].
pub struct EventIter<'j> {
    journal: &'j Journal,
    it: rocksdb::DBRawIteratorWithThreadMode<'j, DB>,
    expect: Option<Seq>,
    done: bool,
}

impl Iterator for EventIter<'_> {
    type Item = Result<(Seq, EventRecord), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let Some((key, value)) = self.it.item() else {
            self.done = true;
            return match self.it.status() {
                Ok(()) => None,
                Err(e) => Some(Err(self.journal.rocks(e))),
            };
        };
        let seq = seq_of_key(key);
        if let Some(expected) = self.expect {
            if seq != expected {
                self.done = true;
                return Some(Err(JournalError::Gap {
                    path: self.journal.inner.path.clone(),
                    expected,
                    found: seq,
                }));
            }
        }
        let decoded = codec::decode_event(seq, value).map_err(|e| self.journal.codec(e));
        if decoded.is_err() {
            self.done = true;
        }
        self.expect = Some(seq + 1);
        self.it.next();
        Some(decoded.map(|r| (seq, r)))
    }
}

/// The journal's only writer: stages appends into one `WriteBatch` and commits them with
/// one write (and one fsync under [`Durability::Sync`]). Owned by the journal actor.
pub struct JournalWriter {
    /// Read handle (for the DB and error paths).
    journal: Journal,
    /// Batch caps.
    options: JournalOptions,
    /// `sync` per the durability setting.
    write_options: WriteOptions,
    /// Last sequence number known durable.
    committed: Seq,
    /// Sequence number the next staged event gets.
    next_seq: Seq,
    /// Staged, uncommitted writes.
    batch: WriteBatch,
    /// Events staged in `batch`.
    staged_events: usize,
    /// Encoded bytes staged in `batch`.
    staged_bytes: usize,
    /// Encoding scratch, reused across appends.
    value_buf: Vec<u8>,
    /// Stream-key scratch.
    key_buf: Vec<u8>,
    /// Rollup changes of the staged appends, added to the stored buckets at commit.
    rollup: RollupDelta,
    /// The buckets this writer last stored (the current minutes), so a commit need not read
    /// them back. Only this writer changes buckets, so the copy is never stale.
    rollup_cache: std::collections::HashMap<BucketKey, Bucket>,
    /// A commit failed: the failed batch may or may not be in the WAL, so sequence numbers
    /// after `committed` are unknown and this writer refuses to go on. A new writer (after
    /// this one is dropped) starts from what the journal really holds.
    failed: bool,
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        self.journal
            .inner
            .writer_taken
            .store(false, Ordering::Release);
    }
}

impl JournalWriter {
    /// The read handle of this journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Last durable sequence number.
    pub fn committed_seq(&self) -> Seq {
        self.committed
    }

    /// The batch caps this writer was opened with.
    pub fn options(&self) -> &JournalOptions {
        &self.options
    }

    /// Events currently staged.
    pub fn staged_events(&self) -> usize {
        self.staged_events
    }

    /// Whether the staged batch reached a cap and should be committed now.
    pub fn batch_full(&self) -> bool {
        self.staged_events >= self.options.max_batch_events
            || self.staged_bytes >= self.options.max_batch_bytes
    }

    /// Stages `records` as one unit with consecutive sequence numbers, returned as a range.
    /// Nothing is durable (or visible) until [`commit`](Self::commit). On a codec error
    /// nothing is staged.
    pub fn stage(&mut self, records: &[EventRecord]) -> Result<Range<Seq>, JournalError> {
        self.refuse_if_failed()?;
        let start = self.next_seq;
        self.value_buf.clear();
        let mut ends = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            codec::encode_event_into(start + i as Seq, record, &mut self.value_buf)
                .map_err(|e| self.journal.codec(e))?;
            ends.push(self.value_buf.len());
        }
        let events = self.journal.cf(CF_EVENTS);
        let streams = self.journal.cf(CF_STREAMS);
        let mut offset = 0;
        for (i, (record, end)) in records.iter().zip(ends).enumerate() {
            let seq = start + i as Seq;
            self.batch
                .put_cf(events, seq.to_be_bytes(), &self.value_buf[offset..end]);
            if let Some(run) = record.event.run() {
                self.batch.put_cf(streams, run_stream_key(run, seq), []);
                if let Some(task) = record.event.task() {
                    task_stream_prefix(run, task, &mut self.key_buf);
                    self.key_buf.extend_from_slice(&seq.to_be_bytes());
                    self.batch.put_cf(streams, &self.key_buf, []);
                }
            }
            offset = end;
        }
        self.staged_events += records.len();
        self.staged_bytes += self.value_buf.len();
        self.next_seq += records.len() as Seq;
        Ok(start..self.next_seq)
    }

    fn refuse_if_failed(&self) -> Result<(), JournalError> {
        if self.failed {
            Err(JournalError::Refused {
                path: self.journal.inner.path.clone(),
                message: "an earlier commit failed; reopen the writer to continue".into(),
            })
        } else {
            Ok(())
        }
    }

    /// Writes `meta/probe` (the current time, unsynced): proves the database takes writes.
    pub fn probe(&mut self) -> Result<(), JournalError> {
        self.refuse_if_failed()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.journal
            .db()
            .put_cf(self.journal.cf(CF_META), b"probe", now.to_be_bytes())
            .map_err(|e| self.journal.rocks(e))
    }

    /// Deletes the rollup buckets of minutes before `before` (retention); returns how many.
    pub fn drop_rollups_before(&mut self, before: u64) -> Result<u64, JournalError> {
        self.refuse_if_failed()?;
        let n = self.journal.rollups(0, before.saturating_sub(1))?.len() as u64;
        if n > 0 {
            self.journal
                .db()
                .delete_range_cf(
                    self.journal.cf(CF_ROLLUPS),
                    0u64.to_be_bytes(),
                    before.to_be_bytes(),
                )
                .map_err(|e| self.journal.rocks(e))?;
            self.rollup_cache.retain(|(minute, _), _| *minute >= before);
        }
        Ok(n)
    }

    /// Stages rollup changes; they are stored with the next commit (see the module docs).
    pub fn stage_rollup(&mut self, delta: RollupDelta) {
        self.rollup.merge(delta);
    }

    /// Adds the staged rollup changes to the batch. Reads a bucket only the first time this
    /// writer touches it; forgets buckets older than the newest two minutes.
    fn put_rollups(&mut self) -> Result<(), JournalError> {
        if self.rollup.is_empty() {
            return Ok(());
        }
        let delta = std::mem::take(&mut self.rollup);
        let cf = self.journal.cf(CF_ROLLUPS);
        let mut newest = 0;
        for (key, b) in delta.buckets {
            newest = newest.max(key.0);
            let k = bucket_key_bytes(&key);
            let stored = match self.rollup_cache.remove(&key) {
                Some(c) => c,
                None => match self
                    .journal
                    .db()
                    .get_pinned_cf(cf, &k)
                    .map_err(|e| self.journal.rocks(e))?
                {
                    Some(v) => {
                        codec::decode_rollup(key.0, &v).map_err(|e| self.journal.codec(e))?
                    }
                    None => Bucket::default(),
                },
            };
            let mut merged = stored;
            merged.merge(&b);
            let bytes = codec::encode_rollup(&merged).map_err(|e| self.journal.codec(e))?;
            self.batch.put_cf(cf, k, bytes);
            self.rollup_cache.insert(key, merged);
        }
        self.rollup_cache
            .retain(|(minute, _), _| minute + 1 >= newest);
        Ok(())
    }

    /// Writes the staged batch (one write, one WAL sync under `Sync`) and returns the last
    /// durable sequence number. On error no caller of the batch may be acknowledged, and the
    /// writer refuses all further work: whether the batch reached the WAL is unknown, so its
    /// sequence numbers must not be handed out again. Drop it and take a new
    /// [`Journal::writer`], which starts after what the journal really holds.
    pub fn commit(&mut self) -> Result<Seq, JournalError> {
        self.refuse_if_failed()?;
        if self.staged_events == 0 {
            return Ok(self.committed);
        }
        if let Err(e) = self.put_rollups() {
            self.failed = true;
            return Err(e);
        }
        let batch = std::mem::take(&mut self.batch);
        self.staged_events = 0;
        self.staged_bytes = 0;
        match self.journal.db().write_opt(batch, &self.write_options) {
            Ok(()) => {
                self.committed = self.next_seq - 1;
                Ok(self.committed)
            }
            Err(e) => {
                self.failed = true;
                Err(self.journal.rocks(e))
            }
        }
    }

    /// Stores a snapshot of `state` under `state.last_seq()`, synced. The state must not be
    /// ahead of what is durable.
    pub fn write_snapshot(&mut self, state: &State) -> Result<Seq, JournalError> {
        self.refuse_if_failed()?;
        let seq = state.last_seq();
        if seq > self.committed {
            return Err(JournalError::Refused {
                path: self.journal.inner.path.clone(),
                message: format!(
                    "snapshot at {seq} is ahead of the last durable event {}",
                    self.committed
                ),
            });
        }
        let bytes = codec::encode_snapshot(state).map_err(|e| self.journal.codec(e))?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.journal.cf(CF_SNAPSHOTS), seq.to_be_bytes(), bytes);
        self.journal
            .db()
            .write_opt(batch, &wo)
            .map_err(|e| self.journal.rocks(e))?;
        Ok(seq)
    }

    /// Retention: deletes events with `seq < before` and snapshots older than the newest.
    /// Refused unless a snapshot at `before - 1` or later exists, so replay (latest snapshot +
    /// tail) never needs a deleted event. Returns the number of events deleted.
    pub fn compact_before(&mut self, before: Seq) -> Result<u64, JournalError> {
        let latest = self.journal.last_key(CF_SNAPSHOTS)?.unwrap_or(0);
        if before == 0 || latest + 1 < before {
            return Err(JournalError::Refused {
                path: self.journal.inner.path.clone(),
                message: format!(
                    "cannot delete events before {before}: the newest snapshot covers only up to {latest}"
                ),
            });
        }
        let first = self.journal.first_seq()?;
        if before <= first {
            return Ok(0);
        }
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.journal.cf(CF_EVENTS),
            first.to_be_bytes(),
            before.to_be_bytes(),
        );
        batch.delete_range_cf(
            self.journal.cf(CF_SNAPSHOTS),
            0u64.to_be_bytes(),
            latest.to_be_bytes(),
        );
        batch.put_cf(self.journal.cf(CF_META), b"first_seq", before.to_be_bytes());
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.journal
            .db()
            .write_opt(batch, &wo)
            .map_err(|e| self.journal.rocks(e))?;
        Ok(before - first)
    }
}
