//! The committed-event feed: every batch the journal actor commits, published in commit order
//! to whoever listens (the read model, subscriptions of the control protocol).
//!
//! A [`tokio::sync::broadcast`] channel: publishing never waits for a listener, and a listener
//! that falls more than [`FEED_CAPACITY`] batches behind is told it lagged. It then catches up
//! from the journal itself ([`Feed::catch_up`]), which holds every committed event: the feed is
//! a fast path, never the only copy. Events reach the feed only once committed, so a listener
//! never sees an event a crash could take back.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::model::{EventRecord, Seq};
use crate::storage::{Journal, JournalError};

/// Batches kept for listeners that are behind (each holds one group commit, ~70 events at
/// full load). A listener further behind catches up from the journal.
pub const FEED_CAPACITY: usize = 4096;

/// One group commit: events `first..first + records.len()`, in sequence order.
#[derive(Debug)]
pub struct CommittedBatch {
    /// Sequence number of `records[0]`.
    pub first: Seq,
    /// The committed events.
    pub records: Vec<EventRecord>,
}

impl CommittedBatch {
    /// Sequence number of the last event (`first - 1` if the batch is empty).
    pub fn last(&self) -> Seq {
        self.first + self.records.len() as Seq - 1
    }

    /// The events with their sequence numbers.
    pub fn iter(&self) -> impl Iterator<Item = (Seq, &EventRecord)> {
        (self.first..).zip(self.records.iter())
    }
}

/// The sending side, shared by every incarnation of the journal actor (it outlives restarts).
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Feed {
    /// The channel.
    sender: broadcast::Sender<Arc<CommittedBatch>>,
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    /// A feed nobody listens to yet.
    pub fn new() -> Self {
        Feed {
            sender: broadcast::channel(FEED_CAPACITY).0,
        }
    }

    /// Publishes a committed batch (called by the journal actor after the write succeeded).
    pub fn publish(&self, batch: CommittedBatch) {
        if batch.records.is_empty() || self.sender.receiver_count() == 0 {
            return;
        }
        let _ = self.sender.send(Arc::new(batch));
    }

    /// A new listener: receives every batch committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CommittedBatch>> {
        self.sender.subscribe()
    }

    /// The events after `after` that the journal holds, up to `limit` of them: how a listener
    /// fills a gap (it lagged, or it starts from an older position).
    pub fn catch_up(
        journal: &Journal,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<(Seq, EventRecord)>, JournalError> {
        journal
            .events_from(after.saturating_add(1))
            .take(limit)
            .collect()
    }
}
