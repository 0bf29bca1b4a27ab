//! `troupe journal verify`: reads every stored byte of the journal and reports each problem
//! by sequence number, without stopping at the first one and without changing anything.
//!
//! Checks, in order:
//! 1. **Events.** Every key of `events` is an 8-byte sequence number; the numbers run
//!    without a gap from `meta/first_seq` to the last one (below `meta/purged_upto`, where
//!    retention removed the events of old runs, missing numbers are expected); every record passes its CRC32C and
//!    decodes ([`codec::decode_event`]).
//! 2. **Stream index, events → index.** Every decoded event of a run has its `R` entry, and
//!    of a task its `T` entry.
//! 3. **Stream index, index → events.** Every entry at or after `first_seq` names a stored
//!    event (entries below it are what compaction leaves behind, skipped by reads). Their
//!    count must equal what step 2 expected, so an entry naming another run's event shows.
//! 4. **Snapshots.** Every snapshot decodes and passes the state's invariants, and none is
//!    ahead of the last event.
//! 5. **Replay.** If nothing above failed: the newest snapshot plus every later event fold
//!    without a refusal ([`crate::storage::replay`]), as a node's boot would.

use std::collections::HashSet;

use serde::Serialize;

use super::keys::{run_stream_key, seq_of_key, task_stream_prefix};
use super::{Journal, JournalError, CF_EVENTS, CF_SNAPSHOTS, CF_STREAMS};
use crate::model::Seq;
use crate::storage::codec;

/// One problem [`Journal::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The sequence number of the event (or snapshot) concerned, if one is.
    pub seq: Option<Seq>,
    /// What kind: `event_key`, `gap`, `event_record` (CRC or decode), `stream_missing`,
    /// `stream_dangling`, `stream_count`, `snapshot`, `replay`.
    pub kind: &'static str,
    /// What is wrong, for a human.
    pub message: String,
}

/// What [`Journal::verify`] read and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Events read (good or bad).
    pub events: u64,
    /// `meta/first_seq`: the lowest sequence number retention kept.
    pub first_seq: Seq,
    /// The highest sequence number stored (0 if none).
    pub last_seq: Seq,
    /// Stream index entries at or after `first_seq`.
    pub stream_entries: u64,
    /// Stream index entries the stored events imply (a run entry for every event of a run,
    /// a task entry for every event of a task).
    pub stream_entries_expected: u64,
    /// Snapshots read.
    pub snapshots: u64,
    /// Every problem, in the order found. Empty: the journal is sound.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// No problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, seq: Option<Seq>, kind: &'static str, message: String) {
        self.problems.push(Problem { seq, kind, message });
    }
}

/// Stream keys are looked up this many at a time.
const LOOKUP_CHUNK: usize = 4096;

impl Journal {
    /// Reads the whole journal and reports every problem (see the module docs for the
    /// checks). Errors only when RocksDB itself fails to read; damaged records are problems
    /// in the report, not errors. Time and memory: one pass over `events` and `streams`,
    /// holding one byte per sequence number.
    pub fn verify(&self) -> Result<VerifyReport, JournalError> {
        let mut report = VerifyReport {
            first_seq: self.first_seq()?,
            ..VerifyReport::default()
        };
        let present = self.verify_events(&mut report)?;
        self.verify_streams(&mut report, &present)?;
        self.verify_snapshots(&mut report)?;
        if report.ok() {
            if let Err(e) = crate::storage::replay(self) {
                let seq = match &e {
                    crate::storage::ReplayError::Apply { seq, .. }
                    | crate::storage::ReplayError::BadSnapshot { seq, .. } => Some(*seq),
                    _ => None,
                };
                report.problem(seq, "replay", e.to_string());
            }
        }
        Ok(report)
    }

    /// Checks 1 and 2. Returns which sequence numbers (from `first_seq`) hold an event.
    fn verify_events(&self, report: &mut VerifyReport) -> Result<Vec<bool>, JournalError> {
        let first = report.first_seq;
        let purged_upto = self.purged_upto()?;
        let mut present: Vec<bool> = Vec::new();
        let mut expected_keys: Vec<Vec<u8>> = Vec::new();
        let mut expected_seqs: Vec<Seq> = Vec::new();
        let mut it = self.db().raw_iterator_cf(self.cf(CF_EVENTS));
        it.seek_to_first();
        let mut next = first;
        let mut prefix = Vec::new();
        while let Some((key, value)) = it.item() {
            report.events += 1;
            if key.len() != 8 {
                report.problem(
                    None,
                    "event_key",
                    format!("events key {key:02x?} is not an 8-byte sequence number"),
                );
                it.next();
                continue;
            }
            let seq = seq_of_key(key);
            report.last_seq = report.last_seq.max(seq);
            if seq < first {
                report.problem(
                    Some(seq),
                    "gap",
                    format!("event {seq} is stored below first_seq {first}"),
                );
            } else {
                if seq > next && seq - 1 > purged_upto {
                    let what = if seq - next == 1 {
                        format!("event {next} is missing")
                    } else {
                        format!("events {next}..={} are missing", seq - 1)
                    };
                    report.problem(Some(next), "gap", what);
                }
                let i = (seq - first) as usize;
                if present.len() <= i {
                    present.resize(i + 1, false);
                }
                present[i] = true;
                next = seq + 1;
            }
            match codec::decode_event(seq, value) {
                Ok(record) => {
                    if let Some(run) = record.event.run() {
                        expected_keys.push(run_stream_key(run, seq).to_vec());
                        expected_seqs.push(seq);
                        if let Some(task) = record.event.task() {
                            task_stream_prefix(run, task, &mut prefix);
                            prefix.extend_from_slice(&seq.to_be_bytes());
                            expected_keys.push(prefix.clone());
                            expected_seqs.push(seq);
                        }
                    }
                }
                Err(e) => report.problem(Some(seq), "event_record", e.to_string()),
            }
            if expected_keys.len() >= LOOKUP_CHUNK {
                self.check_stream_keys(report, &mut expected_keys, &mut expected_seqs)?;
            }
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        self.check_stream_keys(report, &mut expected_keys, &mut expected_seqs)?;
        Ok(present)
    }

    /// Check 2 for one chunk of expected stream keys (drained).
    fn check_stream_keys(
        &self,
        report: &mut VerifyReport,
        keys: &mut Vec<Vec<u8>>,
        seqs: &mut Vec<Seq>,
    ) -> Result<(), JournalError> {
        let cf = self.cf(CF_STREAMS);
        let found = self.db().batched_multi_get_cf(cf, keys.iter(), false);
        for ((key, seq), value) in keys.iter().zip(seqs.iter()).zip(found) {
            report.stream_entries_expected += 1;
            if value.map_err(|e| self.rocks(e))?.is_none() {
                let which = if key[0] == b'R' { "run" } else { "task" };
                report.problem(
                    Some(*seq),
                    "stream_missing",
                    format!("event {seq} has no {which} stream index entry"),
                );
            }
        }
        keys.clear();
        seqs.clear();
        Ok(())
    }

    /// Check 3.
    fn verify_streams(
        &self,
        report: &mut VerifyReport,
        present: &[bool],
    ) -> Result<(), JournalError> {
        let first = report.first_seq;
        let mut it = self.db().raw_iterator_cf(self.cf(CF_STREAMS));
        it.seek_to_first();
        let mut dangling: HashSet<Seq> = HashSet::new();
        while let Some(key) = it.key() {
            let well_formed = match key.first() {
                Some(b'R') => key.len() == 25,
                Some(b'T') => key.len() > 26 && key[key.len() - 9] == 0,
                _ => false,
            };
            if !well_formed {
                report.problem(
                    None,
                    "stream_key",
                    format!("stream index key {key:02x?} is malformed"),
                );
                it.next();
                continue;
            }
            let seq = seq_of_key(&key[key.len() - 8..]);
            if seq >= first {
                report.stream_entries += 1;
                let stored = present
                    .get((seq - first) as usize)
                    .copied()
                    .unwrap_or(false);
                if !stored && dangling.insert(seq) {
                    report.problem(
                        Some(seq),
                        "stream_dangling",
                        format!("the stream index names event {seq}, which is not stored"),
                    );
                }
            }
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        let missing = report
            .problems
            .iter()
            .filter(|p| p.kind == "stream_missing")
            .count() as u64;
        let matched = report.stream_entries_expected - missing;
        if report.stream_entries != matched + dangling.len() as u64 {
            report.problem(
                None,
                "stream_count",
                format!(
                    "the stream index holds {} entries from first_seq on, but the events imply {} ({} missing, {} dangling): some entries name another run's or task's event",
                    report.stream_entries,
                    report.stream_entries_expected,
                    missing,
                    dangling.len()
                ),
            );
        }
        Ok(())
    }

    /// Check 4.
    fn verify_snapshots(&self, report: &mut VerifyReport) -> Result<(), JournalError> {
        let mut it = self.db().raw_iterator_cf(self.cf(CF_SNAPSHOTS));
        it.seek_to_first();
        while let Some((key, value)) = it.item() {
            report.snapshots += 1;
            let seq = seq_of_key(key);
            match codec::decode_snapshot(seq, value) {
                Ok(state) => {
                    if let Err(reason) = state.check_invariants() {
                        report.problem(
                            Some(seq),
                            "snapshot",
                            format!("snapshot {seq} is inconsistent: {reason}"),
                        );
                    } else if state.last_seq() != seq {
                        report.problem(
                            Some(seq),
                            "snapshot",
                            format!("snapshot {seq} holds the state at {}", state.last_seq()),
                        );
                    }
                }
                Err(e) => report.problem(Some(seq), "snapshot", e.to_string()),
            }
            if report.events > 0 && seq > report.last_seq {
                report.problem(
                    Some(seq),
                    "snapshot",
                    format!(
                        "snapshot {seq} is ahead of the last stored event {}",
                        report.last_seq
                    ),
                );
            }
            it.next();
        }
        it.status().map_err(|e| self.rocks(e))?;
        Ok(())
    }
}
