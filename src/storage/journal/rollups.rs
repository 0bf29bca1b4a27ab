//! Rollup buckets ([`crate::model::rollup`]) in the `rollups` column family: staged with an
//! append and stored in the same commit, read by minute range, dropped by retention.

use rocksdb::ReadOptions;

use super::keys::{bucket_key_bytes, bucket_key_of};
use super::{Journal, JournalError, JournalWriter, CF_ROLLUPS};
use crate::model::rollup::{Bucket, BucketKey, RollupDelta};
use crate::storage::codec;

impl Journal {
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
}

impl JournalWriter {
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
    pub(super) fn put_rollups(&mut self) -> Result<(), JournalError> {
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
}
