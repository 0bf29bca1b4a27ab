//! Time-bucketed rollups of task outcomes: what `troupe metrics --since` reads.
//!
//! Every transition the fold reports is also counted into a [`Bucket`] keyed by the minute
//! it happened in and the task's pool ([`RollupDelta::observe`]). The scheduler hands the
//! delta of each append to the journal, which adds it to the stored buckets in the same
//! `WriteBatch` as the events: the rollups are exactly as durable as the journal, with no
//! rescan at boot and no double counting after a crash. A query merges the buckets of its
//! window ([`MetricsReport::from_buckets`]): 7 days are 10,080 buckets per pool, whatever
//! the number of events.
//!
//! # Latency
//! Task latency is *schedule-to-close* (Temporal's term): from the moment the task could
//! first run — its run's submission, or the success of its last dependency, whichever is
//! later — to its success or final failure. It includes queue wait, retries and their
//! backoff, and time awaiting approval. Quantiles come from a [`LatencySketch`], a
//! DDSketch with 1% relative accuracy (Masson, Rim & Lee, "DDSketch: a fast and
//! fully-mergeable quantile sketch with relative-error guarantees", VLDB 2019): log-spaced
//! bins whose counts simply add, so any set of buckets merges exactly.

use std::collections::BTreeMap;
use std::time::Duration;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::event::Counters;
use super::ids::TaskIndex;
use super::state::{Change, Run, State};
use super::task::TaskState;
use super::time::Timestamp;

/// Width of one rollup bucket: 60 s.
pub const BUCKET_MS: u64 = 60_000;

/// Relative accuracy of the latency quantiles: a reported quantile is within 1% of a value
/// of the sample set (DDSketch's α).
pub const SKETCH_ALPHA: f64 = 0.01;

/// γ = (1 + α) / (1 − α): the ratio between consecutive bin bounds.
fn gamma_ln() -> f64 {
    ((1.0 + SKETCH_ALPHA) / (1.0 - SKETCH_ALPHA)).ln()
}

/// A mergeable latency sketch (DDSketch, α = 1%). Values are milliseconds; 0 ms has its own
/// bin. Bins are kept sparse and sorted by index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySketch {
    /// (bin index, count), sorted by index. Bin `i ≥ 1` holds values in (γ^(i−2), γ^(i−1)];
    /// bin 0 holds 0 ms.
    bins: Vec<(u16, u64)>,
    /// Sum of all values, ms (for the mean).
    sum_ms: u64,
    /// Largest value, ms.
    max_ms: u64,
}

impl LatencySketch {
    fn index(ms: u64) -> u16 {
        if ms == 0 {
            0
        } else {
            // ceil(log_γ(v)) + 1 so that 1 ms lands in bin 1 (log 1 = 0).
            ((ms as f64).ln() / gamma_ln()).ceil() as u16 + 1
        }
    }

    /// The value a bin stands for: the midpoint (in relative terms) of its bounds.
    fn value(index: u16) -> f64 {
        if index == 0 {
            return 0.0;
        }
        let g = gamma_ln().exp();
        let upper = (gamma_ln() * f64::from(index - 1)).exp();
        2.0 * upper / (1.0 + g)
    }

    /// Adds one value.
    pub fn add(&mut self, ms: u64) {
        let i = Self::index(ms);
        match self.bins.binary_search_by_key(&i, |&(k, _)| k) {
            Ok(p) => self.bins[p].1 += 1,
            Err(p) => self.bins.insert(p, (i, 1)),
        }
        self.sum_ms = self.sum_ms.saturating_add(ms);
        self.max_ms = self.max_ms.max(ms);
    }

    /// Adds every value of `other` (in place: sketches hold few bins).
    pub fn merge(&mut self, other: &LatencySketch) {
        for &(i, c) in &other.bins {
            match self.bins.binary_search_by_key(&i, |&(k, _)| k) {
                Ok(p) => self.bins[p].1 += c,
                Err(p) => self.bins.insert(p, (i, c)),
            }
        }
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.bins.iter().map(|&(_, c)| c).sum()
    }

    /// Summary figures, `None` when empty.
    pub fn summary(&self) -> Option<Latency> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let quantile = |q: f64| {
            // Nearest rank (1-based): the smallest value with at least q·n values ≤ it.
            let rank = ((q * n as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for &(i, c) in &self.bins {
                seen += c;
                if seen >= rank {
                    return Self::value(i).min(self.max_ms as f64);
                }
            }
            self.max_ms as f64
        };
        Some(Latency {
            mean_ms: self.sum_ms as f64 / n as f64,
            p50_ms: quantile(0.50),
            p95_ms: quantile(0.95),
            p99_ms: quantile(0.99),
            max_ms: self.max_ms,
        })
    }
}

/// Latency figures of a window, ms (quantiles within 1% of a sample, see [`LatencySketch`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Arithmetic mean (exact).
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest (exact).
    pub max_ms: u64,
}

/// What happened to the tasks of one pool in one minute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Tasks that failed for good (retries exhausted, not retryable, approval rejected or
    /// expired).
    pub failed: u64,
    /// Tasks cancelled by an operator.
    pub cancelled: u64,
    /// Tasks that became `upstream_failed`.
    pub upstream_failed: u64,
    /// Saga steps undone.
    pub compensated: u64,
    /// Forward attempts started.
    pub attempts: u64,
    /// Attempts that failed and were retried (the task went to `retrying`).
    pub retries: u64,
    /// Schedule-to-close latency of the tasks that succeeded or failed.
    pub latency: LatencySketch,
    /// Usage counters attempts of this pool reported (`attempt_usage`), summed (rollup
    /// layout 2).
    pub usage: Counters,
    /// The same counters by task label (a task with several labels counts under each).
    pub label_usage: BTreeMap<String, Counters>,
}

/// A [`Bucket`] as rollup layout 1 stored it (before usage counters).
#[derive(Deserialize)]
pub(crate) struct BucketV1 {
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    upstream_failed: u64,
    compensated: u64,
    attempts: u64,
    retries: u64,
    latency: LatencySketch,
}

impl From<BucketV1> for Bucket {
    fn from(b: BucketV1) -> Self {
        Bucket {
            succeeded: b.succeeded,
            failed: b.failed,
            cancelled: b.cancelled,
            upstream_failed: b.upstream_failed,
            compensated: b.compensated,
            attempts: b.attempts,
            retries: b.retries,
            latency: b.latency,
            usage: Counters::new(),
            label_usage: BTreeMap::new(),
        }
    }
}

/// Adds every counter of `from` into `into`.
pub fn add_counters(into: &mut Counters, from: &Counters) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0.0) += v;
    }
}

impl Bucket {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Bucket) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
        self.upstream_failed += other.upstream_failed;
        self.compensated += other.compensated;
        self.attempts += other.attempts;
        self.retries += other.retries;
        self.latency.merge(&other.latency);
        add_counters(&mut self.usage, &other.usage);
        for (label, c) in &other.label_usage {
            add_counters(self.label_usage.entry(label.clone()).or_default(), c);
        }
    }
}

/// Key of a bucket: the minute (ms since the epoch / [`BUCKET_MS`]) and the pool (`""` for
/// tasks in no pool).
pub type BucketKey = (u64, CompactString);

/// Bucket changes of one append, added to the stored buckets by the journal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupDelta {
    /// Changed buckets (usually one: the current minute of one pool).
    pub buckets: BTreeMap<BucketKey, Bucket>,
}

impl RollupDelta {
    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Counts `change`, which the fold reported while applying an event stamped `time`;
    /// `state` is the state after that event.
    pub fn observe(&mut self, state: &State, change: &Change, time: Timestamp) {
        let Change::Task {
            run,
            task,
            from,
            to,
        } = *change
        else {
            return;
        };
        let Some(r) = state.run(run) else { return };
        let pool = r.workflow().pool(task).unwrap_or("");
        fn bucket<'a>(this: &'a mut RollupDelta, time: Timestamp, pool: &str) -> &'a mut Bucket {
            this.buckets
                .entry((time.0 / BUCKET_MS, CompactString::from(pool)))
                .or_default()
        }
        match to {
            TaskState::Running => bucket(self, time, pool).attempts += 1,
            TaskState::Retrying if from == TaskState::Running => {
                bucket(self, time, pool).retries += 1
            }
            TaskState::Succeeded | TaskState::Failed => {
                let latency = time.saturating_since(schedulable_since(r, task));
                let b = bucket(self, time, pool);
                if to == TaskState::Succeeded {
                    b.succeeded += 1;
                } else {
                    b.failed += 1;
                }
                b.latency.add(latency.as_millis() as u64);
            }
            TaskState::Cancelled => bucket(self, time, pool).cancelled += 1,
            TaskState::UpstreamFailed => bucket(self, time, pool).upstream_failed += 1,
            TaskState::Compensated => bucket(self, time, pool).compensated += 1,
            _ => {}
        }
    }

    /// Counts the usage counters an attempt of `task` of `run` reported (`attempt_usage`,
    /// stamped `time`) under its pool and its labels.
    pub fn observe_usage(
        &mut self,
        state: &State,
        run: super::ids::RunId,
        task: &super::ids::TaskId,
        counters: &Counters,
        time: Timestamp,
    ) {
        let Some(r) = state.run(run) else { return };
        let Some(t) = r.workflow().task_index(task.as_str()) else {
            return;
        };
        let wf = r.workflow();
        let b = self
            .buckets
            .entry((
                time.0 / BUCKET_MS,
                CompactString::from(wf.pool(t).unwrap_or("")),
            ))
            .or_default();
        add_counters(&mut b.usage, counters);
        for label in &wf.task(t).labels {
            add_counters(b.label_usage.entry(label.clone()).or_default(), counters);
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: RollupDelta) {
        if self.buckets.is_empty() {
            *self = other;
            return;
        }
        for (k, b) in other.buckets {
            match self.buckets.entry(k) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(b);
                }
                std::collections::btree_map::Entry::Occupied(mut o) => o.get_mut().merge(&b),
            }
        }
    }
}

/// When `task` of `r` could first run: its run's submission or its last dependency's
/// success, whichever is later (the start of schedule-to-close latency).
pub fn schedulable_since(r: &Run, task: TaskIndex) -> Timestamp {
    r.workflow()
        .plan()
        .upstream(task)
        .filter_map(|d| r.task(d).finished_at)
        .fold(r.submitted_at(), Timestamp::max)
}

/// Figures of one pool (or of all) over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolFigures {
    /// The pool; `None` for all tasks together (in [`MetricsReport::total`]) and `Some("")`
    /// for tasks in no pool.
    pub pool: Option<String>,
    /// Tasks that succeeded or failed, per hour of the window.
    pub throughput_per_hour: f64,
    /// Failed / (succeeded + failed); 0 when none ended.
    pub error_rate: f64,
    /// Schedule-to-close latency of succeeded and failed tasks; `None` when none ended.
    pub latency: Option<Latency>,
    /// Counters summed over the window.
    pub counts: Counts,
    /// Usage counters attempts reported over the window, summed.
    pub usage: Counters,
}

/// The counters of a [`Bucket`] without its sketch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Tasks that succeeded.
    pub succeeded: u64,
    /// Tasks that failed for good.
    pub failed: u64,
    /// Tasks cancelled.
    pub cancelled: u64,
    /// Tasks that became `upstream_failed`.
    pub upstream_failed: u64,
    /// Saga steps undone.
    pub compensated: u64,
    /// Forward attempts started.
    pub attempts: u64,
    /// Attempts retried.
    pub retries: u64,
}

impl Counts {
    /// The counters of `b`.
    pub fn of(b: &Bucket) -> Counts {
        Counts {
            succeeded: b.succeeded,
            failed: b.failed,
            cancelled: b.cancelled,
            upstream_failed: b.upstream_failed,
            compensated: b.compensated,
            attempts: b.attempts,
            retries: b.retries,
        }
    }
}

impl PoolFigures {
    fn from_bucket(pool: Option<String>, b: &Bucket, window: Duration) -> Self {
        let ended = b.succeeded + b.failed;
        let hours = window.as_secs_f64() / 3600.0;
        PoolFigures {
            pool,
            throughput_per_hour: if hours > 0.0 {
                ended as f64 / hours
            } else {
                0.0
            },
            error_rate: if ended == 0 {
                0.0
            } else {
                b.failed as f64 / ended as f64
            },
            latency: b.latency.summary(),
            counts: Counts::of(b),
            usage: b.usage.clone(),
        }
    }
}

/// The answer of `troupe metrics --since`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Start of the window (rounded down to its bucket's minute).
    pub from: Timestamp,
    /// End of the window (the time of the query).
    pub to: Timestamp,
    /// Length of the window, s.
    pub window_secs: u64,
    /// Buckets read.
    pub buckets: u64,
    /// All pools together.
    pub total: PoolFigures,
    /// Per pool, by name (`""`: tasks in no pool).
    pub pools: Vec<PoolFigures>,
    /// Usage counters reported over the window by task label.
    pub labels: BTreeMap<String, Counters>,
}

impl MetricsReport {
    /// Merges the buckets of the window `[to − since, to]`; `buckets` may hold others too
    /// (they are skipped).
    pub fn from_buckets<'a>(
        to: Timestamp,
        since: Duration,
        buckets: impl IntoIterator<Item = (&'a BucketKey, &'a Bucket)>,
    ) -> Self {
        let first = first_bucket(to, since);
        let mut total = Bucket::default();
        let mut pools: BTreeMap<&str, Bucket> = BTreeMap::new();
        let mut n = 0;
        for ((minute, pool), b) in buckets {
            if *minute < first || *minute > to.0 / BUCKET_MS {
                continue;
            }
            n += 1;
            total.merge(b);
            pools.entry(pool.as_str()).or_default().merge(b);
        }
        MetricsReport {
            from: Timestamp(first * BUCKET_MS),
            to,
            window_secs: since.as_secs(),
            buckets: n,
            total: PoolFigures::from_bucket(None, &total, since),
            pools: pools
                .iter()
                .map(|(p, b)| PoolFigures::from_bucket(Some((*p).to_string()), b, since))
                .collect(),
            labels: total.label_usage.clone(),
        }
    }
}

/// The first minute of the window `[to − since, to]`.
pub fn first_bucket(to: Timestamp, since: Duration) -> u64 {
    to.0.saturating_sub(since.as_millis() as u64) / BUCKET_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sketch_quantiles_are_within_alpha() {
        let mut s = LatencySketch::default();
        for v in 1..=10_000u64 {
            s.add(v);
        }
        let l = s.summary().unwrap();
        for (got, want) in [(l.p50_ms, 5000.0), (l.p95_ms, 9500.0), (l.p99_ms, 9900.0)] {
            assert!(
                (got - want).abs() / want <= SKETCH_ALPHA + 1e-3,
                "{got} vs {want}"
            );
        }
        assert_eq!(l.max_ms, 10_000);
        assert!((l.mean_ms - 5000.5).abs() < 1e-9);
    }

    #[test]
    fn merged_sketches_equal_one_sketch_of_all_values() {
        let (mut a, mut b, mut all) = Default::default();
        for v in [0u64, 3, 70, 70, 900, 12_345, 5] {
            LatencySketch::add(&mut a, v);
            LatencySketch::add(&mut all, v);
        }
        for v in [1u64, 70, 4_000_000, 2] {
            LatencySketch::add(&mut b, v);
            LatencySketch::add(&mut all, v);
        }
        LatencySketch::merge(&mut a, &b);
        assert_eq!(a, all);
        assert_eq!(a.count(), 11);
    }

    #[test]
    fn report_counts_only_the_window() {
        let b = |n| Bucket {
            succeeded: n,
            failed: 1,
            ..Bucket::default()
        };
        let now = Timestamp(100 * BUCKET_MS + 5);
        let buckets: BTreeMap<BucketKey, Bucket> = [
            ((39, CompactString::from("")), b(100)), // before the window
            ((40, CompactString::from("")), b(3)),
            ((90, CompactString::from("cc")), b(5)),
            ((100, CompactString::from("")), b(1)),
        ]
        .into_iter()
        .collect();
        let r = MetricsReport::from_buckets(now, Duration::from_secs(3600), &buckets);
        assert_eq!(r.buckets, 3);
        assert_eq!(r.total.counts.succeeded, 9);
        assert_eq!(r.total.counts.failed, 3);
        assert!((r.total.throughput_per_hour - 12.0).abs() < 1e-9);
        assert!((r.total.error_rate - 0.25).abs() < 1e-9);
        assert_eq!(r.pools.len(), 2);
        assert_eq!(r.pools[1].pool.as_deref(), Some("cc"));
        assert_eq!(r.pools[1].counts.succeeded, 5);
    }
}
