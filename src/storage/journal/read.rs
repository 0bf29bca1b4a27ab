//! Reads: events by sequence range ([`EventIter`]), by run or task stream, the journal's
//! bounds, and the raw scan `troupe bench journal` measures replay against.

use rocksdb::{ReadOptions, DB};

use super::keys::{seq_of_key, task_stream_prefix};
use super::{Journal, JournalError, CF_EVENTS, CF_META, CF_SNAPSHOTS, CF_STREAMS};
use crate::model::{EventRecord, RunId, Seq, TaskId};
use crate::storage::codec;

impl Journal {
    /// The highest key of column family `cf` (events or snapshots), if any.
    pub(super) fn last_key(&self, cf: &str) -> Result<Option<Seq>, JournalError> {
        let mut it = self.db().raw_iterator_cf(self.cf(cf));
        it.seek_to_last();
        it.status().map_err(|e| self.rocks(e))?;
        Ok(it.key().map(seq_of_key))
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

    /// Up to which sequence number retention may have removed single events
    /// (`meta/purged_upto`, 0 if it never ran): below it, missing numbers are not a gap.
    pub fn purged_upto(&self) -> Result<Seq, JournalError> {
        Ok(self
            .db()
            .get_cf(self.cf(CF_META), b"purged_upto")
            .map_err(|e| self.rocks(e))?
            .and_then(|v| v.as_slice().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
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
            purged_upto: self.purged_upto().unwrap_or(0),
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

    /// How many events of run `run` are stored, and their encoded bytes (`gc --dry-run`).
    pub fn run_footprint(&self, run: RunId) -> Result<(u64, u64), JournalError> {
        let mut prefix = Vec::with_capacity(17);
        prefix.push(b'R');
        prefix.extend_from_slice(&run.as_u128().to_be_bytes());
        let mut it = self.db().raw_iterator_cf(self.cf(CF_STREAMS));
        it.seek(&prefix);
        let (mut n, mut bytes) = (0u64, 0u64);
        while let Some(key) = it.key() {
            if !key.starts_with(&prefix) {
                break;
            }
            let seq = seq_of_key(&key[prefix.len()..]);
            if let Some(v) = self
                .db()
                .get_pinned_cf(self.cf(CF_EVENTS), seq.to_be_bytes())
                .map_err(|e| self.rocks(e))?
            {
                n += 1;
                bytes += v.len() as u64;
            }
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        Ok((n, bytes))
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
}

/// Iterator over stored events in sequence order; see [`Journal::range`].
pub struct EventIter<'j> {
    journal: &'j Journal,
    it: rocksdb::DBRawIteratorWithThreadMode<'j, DB>,
    expect: Option<Seq>,
    /// Retention removed single events up to here: a missing number up to it is no gap.
    purged_upto: Seq,
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
            if seq != expected && !(seq > expected && seq - 1 <= self.purged_upto) {
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
