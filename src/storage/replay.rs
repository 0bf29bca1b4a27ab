//! Replay: rebuild [`State`] from the latest snapshot plus the events after it.

use crate::model::{ApplyError, Seq, State};

use super::journal::{Journal, JournalError};

/// What a replay produced.
#[derive(Debug)]
pub struct Replayed {
    /// The folded state; `state.last_seq()` is the last event applied.
    pub state: State,
    /// Sequence number of the snapshot replay started from, if one was used.
    pub snapshot_seq: Option<Seq>,
    /// Events applied on top of the snapshot.
    pub events_applied: u64,
}

/// Why replay stopped. Nothing is skipped or rewritten: the journal is left exactly as found,
/// and the error names the sequence number to inspect.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A record could not be read (corrupt, missing, or from a newer troupe).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The newest snapshot decoded but describes an impossible state.
    #[error("journal {path}: snapshot {seq} is inconsistent: {reason}")]
    BadSnapshot {
        /// The journal directory.
        path: String,
        /// Sequence number of the snapshot.
        seq: Seq,
        /// The first invariant it breaks.
        reason: String,
    },
    /// A record decoded but the fold refused it: the journal contradicts itself.
    #[error("journal {path}: event {seq} cannot be applied: {source}")]
    Apply {
        /// The journal directory.
        path: String,
        /// Sequence number of the refused event.
        seq: Seq,
        /// Why the fold refused it (boxed: it names runs and tasks, and errors stay small).
        source: Box<ApplyError>,
    },
}

/// Replays `journal`: the newest snapshot (if any), then every later event in order.
pub fn replay(journal: &Journal) -> Result<Replayed, ReplayError> {
    let (mut state, snapshot_seq) = match journal.latest_snapshot()? {
        Some((seq, state)) => {
            state
                .check_invariants()
                .map_err(|reason| ReplayError::BadSnapshot {
                    path: journal.path().display().to_string(),
                    seq,
                    reason,
                })?;
            (state, Some(seq))
        }
        None => (State::new(), None),
    };
    let from = state.last_seq() + 1;
    let first = journal.first_seq()?;
    let mut events_applied = 0u64;
    let mut expected = from.max(1);
    if snapshot_seq.is_none() && first > 1 {
        // Compaction never removes events without a snapshot covering them.
        return Err(JournalError::Gap {
            path: journal.path().to_path_buf(),
            expected: 1,
            found: first,
        }
        .into());
    }
    for item in journal.events_from(from) {
        let (seq, record) = item?;
        if seq != expected {
            return Err(JournalError::Gap {
                path: journal.path().to_path_buf(),
                expected,
                found: seq,
            }
            .into());
        }
        state
            .apply(seq, &record)
            .map_err(|source| ReplayError::Apply {
                path: journal.path().display().to_string(),
                seq,
                source: Box::new(source),
            })?;
        expected = seq + 1;
        events_applied += 1;
    }
    Ok(Replayed {
        state,
        snapshot_seq,
        events_applied,
    })
}
