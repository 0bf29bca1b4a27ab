//! The journal's single writer: [`JournalWriter`] stages appends into one `WriteBatch` and
//! commits them with one write and one WAL sync (group commit), within the caps of
//! [`JournalOptions`] and as durable as [`Durability`] says.

use std::ops::Range;
use std::sync::atomic::Ordering;

use rocksdb::{WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use super::keys::{run_stream_key, task_stream_prefix};
use super::{Journal, JournalError, CF_EVENTS, CF_META, CF_STREAMS};
use crate::model::rollup::{Bucket, BucketKey, RollupDelta};
use crate::model::{EventRecord, Seq};
use crate::storage::codec;

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

impl Journal {
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
}

/// The journal's only writer: stages appends into one `WriteBatch` and commits them with
/// one write (and one fsync under [`Durability::Sync`]). Owned by the journal actor.
pub struct JournalWriter {
    /// Read handle (for the DB and error paths).
    pub(super) journal: Journal,
    /// Batch caps.
    options: JournalOptions,
    /// `sync` per the durability setting.
    write_options: WriteOptions,
    /// Last sequence number known durable.
    pub(super) committed: Seq,
    /// Sequence number the next staged event gets.
    next_seq: Seq,
    /// Staged, uncommitted writes.
    pub(super) batch: WriteBatch,
    /// Events staged in `batch`.
    staged_events: usize,
    /// Encoded bytes staged in `batch`.
    staged_bytes: usize,
    /// Encoding scratch, reused across appends.
    value_buf: Vec<u8>,
    /// Stream-key scratch.
    key_buf: Vec<u8>,
    /// Rollup changes of the staged appends, added to the stored buckets at commit.
    pub(super) rollup: RollupDelta,
    /// The buckets this writer last stored (the current minutes), so a commit need not read
    /// them back. Only this writer changes buckets, so the copy is never stale.
    pub(super) rollup_cache: std::collections::HashMap<BucketKey, Bucket>,
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

    /// Fails with [`JournalError::Refused`] once a commit has failed (see `failed`).
    pub(super) fn refuse_if_failed(&self) -> Result<(), JournalError> {
        if self.failed {
            Err(JournalError::Refused {
                path: self.journal.inner.path.clone(),
                message: "an earlier commit failed; reopen the writer to continue".into(),
            })
        } else {
            Ok(())
        }
    }

    /// Starts over after a failed commit: drops whatever is staged and continues after the
    /// last event the journal really holds (read back from RocksDB, which refuses writes
    /// until its own error recovery, e.g. after `ENOSPC` once space is free, succeeded).
    pub fn reset(&mut self) -> Result<Seq, JournalError> {
        self.batch = WriteBatch::default();
        self.staged_events = 0;
        self.staged_bytes = 0;
        self.rollup = RollupDelta::default();
        self.rollup_cache.clear();
        let last = self.journal.last_seq()?;
        self.committed = last;
        self.next_seq = last + 1;
        self.failed = false;
        Ok(last)
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
}
