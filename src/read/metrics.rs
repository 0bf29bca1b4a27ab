//! `troupe metrics --since`: the figures of a window, read from the journal's durable rollups.

use std::time::Duration;

use crate::model::rollup::{MetricsReport, BUCKET_MS};
use crate::model::Timestamp;
use crate::storage::{Journal, JournalError};

/// `troupe metrics --since`: the figures of the window ending now, from the journal's
/// rollup buckets. Reads about `since / 1 min × pools` buckets; blocking (RocksDB reads).
pub fn metrics_report(
    journal: &Journal,
    now: Timestamp,
    since: Duration,
) -> Result<MetricsReport, JournalError> {
    let first = crate::model::rollup::first_bucket(now, since);
    let buckets = journal.rollups(first, now.0 / BUCKET_MS)?;
    Ok(MetricsReport::from_buckets(
        now,
        since,
        buckets.iter().map(|(k, b)| (k, b)),
    ))
}

/// The error rate of the hour before `now` (tasks failed for good ÷ tasks ended), from the
/// rollups; `None` if they cannot be read. Blocking.
pub fn error_rate_last_hour(journal: &Journal, now: Timestamp) -> Option<f64> {
    metrics_report(journal, now, Duration::from_secs(3600))
        .ok()
        .map(|r| r.total.error_rate)
}
