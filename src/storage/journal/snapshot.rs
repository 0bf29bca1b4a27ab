//! Snapshots: storing one (synced) and loading the newest, and compaction, which deletes the
//! events a snapshot covers.

use rocksdb::{WriteBatch, WriteOptions};

use super::keys::seq_of_key;
use super::{Journal, JournalError, JournalWriter, CF_EVENTS, CF_META, CF_SNAPSHOTS};
use crate::model::{Seq, State};
use crate::storage::codec;

impl Journal {
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
