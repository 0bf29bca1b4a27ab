//! Messages of the journal actor ([`crate::actors::journal`]).

use std::ops::Range;
use std::sync::Arc;

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use crate::model::rollup::RollupDelta;
use crate::model::{EventRecord, Seq, State};

/// Why an append (or snapshot) was not acknowledged. An unacknowledged append may or may not
/// be in the journal (a commit can fail after its batch reached the WAL, or the actor can stop
/// mid-commit): callers must not act on it, and must not assume it is absent either — after a
/// restart, replay tells. The scheduler treats it as fatal for the decision that needed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AppendError {
    /// The journal refused or failed the write (disk full, I/O error, a record that cannot be
    /// encoded). After a failed commit the journal actor stops so its supervisor can restart
    /// it with a fresh writer. The message is the journal's error.
    #[error("journal write failed: {0}")]
    Failed(String),
    /// The journal actor is not running (stopped, or restarting after a failure).
    #[error("journal actor unavailable: {0}")]
    Unavailable(String),
}

/// Counters of the journal actor since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JournalStats {
    /// Last durable sequence number.
    pub committed_seq: Seq,
    /// Append requests acknowledged.
    pub appends: u64,
    /// Events made durable.
    pub events: u64,
    /// Commits (WriteBatch writes; one fsync each under `sync`).
    pub commits: u64,
    /// Largest number of events in one commit.
    pub max_batch_events: u64,
}

/// An acknowledgement callback of [`JournalMsg::AppendThen`].
pub type AckFn = Box<dyn FnOnce(Result<Range<Seq>, AppendError>) + Send>;

/// What the journal actor accepts.
pub enum JournalMsg {
    /// Append `records` as one unit with consecutive sequence numbers; the reply comes after
    /// the commit holding them is durable.
    Append {
        /// The records, in order.
        records: Vec<EventRecord>,
        /// Receives the assigned sequence numbers, or why they were not written.
        reply: RpcReplyPort<Result<Range<Seq>, AppendError>>,
    },
    /// Like `Append`, but the acknowledgement is a callback the actor calls after the commit,
    /// in commit order. The scheduler uses it to turn acks into messages to itself without a
    /// task per append, and relies on the order: an ack for sequence `n` means every event up
    /// to `n` is durable.
    AppendThen {
        /// The records, in order.
        records: Vec<EventRecord>,
        /// Rollup counts of these records, stored in the same commit.
        rollup: RollupDelta,
        /// Called once with the assigned sequence numbers, or why they were not written. It
        /// runs on the journal's thread: it must not block (casting a message is fine).
        then: AckFn,
    },
    /// Delete every event of `runs` up to `upto`, with their stream index entries (retention;
    /// refused unless a snapshot covers `upto`). Receives (events deleted, their bytes).
    Purge {
        /// The removed runs.
        runs: Vec<crate::model::RunId>,
        /// The `runs_removed` event's sequence number.
        upto: Seq,
        /// Receives (events deleted, bytes).
        reply: RpcReplyPort<Result<(u64, u64), AppendError>>,
    },
    /// Lift the fence a failed write put up: the sender (a recovering scheduler) re-read the
    /// journal. Receives the last durable sequence number.
    Resume {
        /// Receives the last durable sequence number.
        reply: RpcReplyPort<Seq>,
    },
    /// Commit what is staged. The actor sends this to itself after the first append of a
    /// batch, so it is handled after every append already queued: that is the group.
    Commit,
    /// Store a snapshot of `state` (which must not be ahead of the journal).
    Snapshot {
        /// The state to store, at `state.last_seq()`.
        state: Arc<State>,
        /// Receives the snapshot's sequence number.
        reply: RpcReplyPort<Result<Seq, AppendError>>,
    },
    /// Write a probe key to `meta` (readiness and health: is the journal writable?).
    Probe {
        /// Receives `Ok` once the write returned.
        reply: RpcReplyPort<Result<(), AppendError>>,
    },
    /// Delete rollup buckets of minutes before this one (retention).
    DropRollups {
        /// The first minute kept.
        before: u64,
        /// Receives the number of buckets deleted.
        reply: RpcReplyPort<Result<u64, AppendError>>,
    },
    /// Report counters.
    Stats {
        /// Receives the counters.
        reply: RpcReplyPort<JournalStats>,
    },
}
