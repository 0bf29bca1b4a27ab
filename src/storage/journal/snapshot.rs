//! Snapshots: storing one (synced) and loading the newest, and compaction, which deletes the
//! events a snapshot covers, and checkpoints (backups).

use rocksdb::{WriteBatch, WriteOptions};

use super::keys::seq_of_key;
use super::{Journal, JournalError, JournalWriter, CF_EVENTS, CF_META, CF_SNAPSHOTS, CF_STREAMS};
use crate::model::{RunId, Seq, State};
use crate::storage::codec;

impl Journal {
    /// Writes a RocksDB checkpoint of the whole journal into `dir` (which must not exist):
    /// a consistent copy at one moment, taken while the writer goes on (memtables are
    /// flushed first; SST files are hard-linked on the same file system). `troupe backup`.
    pub fn checkpoint(&self, dir: &std::path::Path) -> Result<(), JournalError> {
        let cp = rocksdb::checkpoint::Checkpoint::new(self.db()).map_err(|e| self.rocks(e))?;
        cp.create_checkpoint(dir).map_err(|e| self.rocks(e))
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
}

impl JournalWriter {
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

    /// Retention of runs: deletes every event of `runs` with `seq <= upto`, with their run and
    /// task stream index entries, and raises `meta/purged_upto` to `upto` (below it a missing
    /// sequence number is not a gap). Refused unless a snapshot at `upto` or later exists,
    /// so replay never needs a deleted event. Synced. Returns (events deleted, their bytes).
    pub fn purge_runs(&mut self, runs: &[RunId], upto: Seq) -> Result<(u64, u64), JournalError> {
        self.refuse_if_failed()?;
        let latest = self.journal.last_key(CF_SNAPSHOTS)?.unwrap_or(0);
        if latest < upto {
            return Err(JournalError::Refused {
                path: self.journal.inner.path.clone(),
                message: format!(
                    "cannot remove events up to {upto}: the newest snapshot covers only up to {latest}"
                ),
            });
        }
        let db = self.journal.db();
        let (events, streams) = (self.journal.cf(CF_EVENTS), self.journal.cf(CF_STREAMS));
        let mut batch = WriteBatch::default();
        let (mut n, mut bytes) = (0u64, 0u64);
        for run in runs {
            for tag in [b'R', b'T'] {
                let mut prefix = vec![tag];
                prefix.extend_from_slice(&run.as_u128().to_be_bytes());
                let mut it = db.raw_iterator_cf(streams);
                it.seek(&prefix);
                while let Some(key) = it.key() {
                    if !key.starts_with(&prefix) {
                        break;
                    }
                    let seq = seq_of_key(&key[key.len() - 8..]);
                    if seq <= upto {
                        batch.delete_cf(streams, key);
                        if tag == b'R' {
                            if let Some(v) = db
                                .get_pinned_cf(events, seq.to_be_bytes())
                                .map_err(|e| self.journal.rocks(e))?
                            {
                                bytes += v.len() as u64;
                                n += 1;
                            }
                            batch.delete_cf(events, seq.to_be_bytes());
                        }
                    }
                    it.next();
                }
                it.status().map_err(|e| self.journal.rocks(e))?;
            }
        }
        let purged = self.journal.purged_upto()?.max(upto);
        batch.put_cf(
            self.journal.cf(CF_META),
            b"purged_upto",
            purged.to_be_bytes(),
        );
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        db.write_opt(batch, &wo)
            .map_err(|e| self.journal.rocks(e))?;
        // Reclaim the space now rather than at RocksDB's next compaction of these files.
        for cf in [events, streams] {
            db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        }
        Ok((n, bytes))
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
