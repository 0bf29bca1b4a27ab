//! Metrics: the node's Prometheus registry, the metrics actor, and the HTTP endpoints.
//!
//! # What is measured
//! | metric | type | labels | source |
//! |---|---|---|---|
//! | `troupe_tasks_total` | counter | `outcome` (succeeded, failed, cancelled, upstream_failed, compensated), `pool` | scheduler, once durable |
//! | `troupe_attempts_total` | counter | `pool` | scheduler, once durable |
//! | `troupe_retries_total` | counter | `pool` | scheduler, once durable |
//! | `troupe_tasks` | gauge | `state` (pending, awaiting_approval, ready, running, retrying, suspended), `pool` | scheduler, as decided |
//! | `troupe_queue_depth` | gauge | `pool` | ready tasks waiting for a worker (= `troupe_tasks{state="ready"}`) |
//! | `troupe_running_attempts` | gauge | | attempts and compensations running |
//! | `troupe_approvals_pending` | gauge | | tasks awaiting approval |
//! | `troupe_run_duration_seconds` | histogram | `state` (final) | submission to end |
//! | `troupe_attempt_duration_seconds` | histogram | `outcome` (succeeded, failed) | attempt start to end |
//! | `troupe_queue_wait_seconds` | histogram | | runnable (or retry due) to attempt start |
//! | `troupe_journal_commit_seconds` | histogram | | one WriteBatch write + fsync |
//! | `troupe_journal_batch_events` | histogram | | events per commit |
//! | `troupe_actor_restarts_total` | counter | `actor` | supervisors |
//! | `troupe_webhook_deliveries_total` | counter | `event`, `result` (delivered, failed, dropped) | webhook sender |
//! | `troupe_process_*` | | | CPU seconds, resident memory, open fds ([`prometheus::process_collector`]) |
//!
//! Counters count since the process started (Prometheus handles resets); they are raised
//! only once the events behind them are durable. Histograms and gauges follow the scheduler's
//! decisions as they are made. The figures that survive restarts are
//! the journal's rollups ([`crate::model::rollup`], `troupe metrics --since`).
//!
//! # HTTP
//! `/metrics` (Prometheus text format 0.0.4), `/healthz` (liveness: 200 while the process
//! serves HTTP) and `/readyz` (200 when the journal takes a write and the scheduler answers,
//! each within 1 s; 503 with the failing check otherwise), served by axum on the node's
//! `http_addr`. The listener is bound before anything else starts, so a port in use stops
//! the node before it touches the journal.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::messages::control::{Health, HealthCheck, HealthReport, NodeView, Request, Response};
use crate::model::rollup::{Counts, MetricsReport, BUCKET_MS};
use crate::model::{RunState, TaskState, Timestamp};
use crate::node::NodeShared;
use crate::storage::{Journal, JournalError};

/// Task states exported by `troupe_tasks` (the waiting and running ones; terminal states
/// are counted by `troupe_tasks_total`).
const GAUGED: [TaskState; 6] = [
    TaskState::Pending,
    TaskState::AwaitingApproval,
    TaskState::Ready,
    TaskState::Running,
    TaskState::Retrying,
    TaskState::Suspended,
];

/// Outcomes of `troupe_tasks_total`, in [`crate::model::rollup::Counts`] order.
const OUTCOMES: [&str; 5] = [
    "succeeded",
    "failed",
    "cancelled",
    "upstream_failed",
    "compensated",
];

/// The node's metrics registry. One per node (two nodes in one process do not share it).
pub struct Metrics {
    /// Everything below, for `/metrics`.
    registry: Registry,
    /// `troupe_tasks_total{outcome, pool}`.
    tasks: IntCounterVec,
    /// `troupe_attempts_total{pool}`.
    attempts: IntCounterVec,
    /// `troupe_retries_total{pool}`.
    retries: IntCounterVec,
    /// `troupe_tasks{state, pool}`.
    task_states: IntGaugeVec,
    /// `troupe_queue_depth{pool}`.
    queue_depth: IntGaugeVec,
    /// `troupe_running_attempts`.
    pub running: IntGauge,
    /// `troupe_approvals_pending`.
    pub approvals_pending: IntGauge,
    /// `troupe_run_duration_seconds{state}`, by final run state.
    run_duration: Vec<Histogram>,
    /// `troupe_attempt_duration_seconds{outcome="succeeded"}`.
    attempt_ok: Histogram,
    /// `troupe_attempt_duration_seconds{outcome="failed"}`.
    attempt_failed: Histogram,
    /// `troupe_queue_wait_seconds`.
    queue_wait: Histogram,
    /// `troupe_journal_commit_seconds`.
    pub journal_commit: Histogram,
    /// `troupe_journal_batch_events`.
    pub journal_batch: Histogram,
    /// `troupe_actor_restarts_total{actor}`.
    restarts: IntCounterVec,
    /// `troupe_webhook_deliveries_total{event, result}`.
    webhooks: IntCounterVec,
    /// When each restart happened (for the health check's window), newest last.
    restart_log: Mutex<VecDeque<Instant>>,
}

/// Cached metric handles of one pool, so the scheduler's hot path is atomic adds only.
#[derive(Clone)]
pub struct PoolHandles {
    /// `troupe_tasks{state}` by [`TaskState`] index (terminal states: unregistered dummies).
    states: Vec<IntGauge>,
    /// `troupe_queue_depth`.
    queue_depth: IntGauge,
    /// `troupe_tasks_total` by [`OUTCOMES`] index.
    outcomes: Vec<IntCounter>,
    /// `troupe_attempts_total`.
    attempts: IntCounter,
    /// `troupe_retries_total`.
    retries: IntCounter,
}

impl PoolHandles {
    /// A task of this pool moved from `from` to `to`.
    pub fn moved(&self, from: TaskState, to: TaskState) {
        self.states[from as usize].dec();
        self.states[to as usize].inc();
        if from == TaskState::Ready {
            self.queue_depth.dec();
        }
        if to == TaskState::Ready {
            self.queue_depth.inc();
        }
    }

    /// Adds a durable bucket's counts to the counters.
    pub fn count(&self, b: &Counts) {
        for (c, n) in self.outcomes.iter().zip([
            b.succeeded,
            b.failed,
            b.cancelled,
            b.upstream_failed,
            b.compensated,
        ]) {
            if n > 0 {
                c.inc_by(n);
            }
        }
        self.attempts.inc_by(b.attempts);
        self.retries.inc_by(b.retries);
    }

    /// A task of this pool is in `state` (counting at boot).
    pub fn add(&self, state: TaskState) {
        self.states[state as usize].inc();
        if state == TaskState::Ready {
            self.queue_depth.inc();
        }
    }
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(buckets)
}

/// Durations from 1 ms to about 4.6 h: ×4 per bucket.
fn duration_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 4.0, 13).expect("valid buckets")
}

impl Metrics {
    /// A registry with every troupe metric and the process collector registered.
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            registry.register(c).expect("metric names are unique");
        };
        let tasks = IntCounterVec::new(
            Opts::new("troupe_tasks_total", "Tasks that reached a terminal state."),
            &["outcome", "pool"],
        )
        .expect("valid metric");
        let attempts = IntCounterVec::new(
            Opts::new("troupe_attempts_total", "Forward attempts started."),
            &["pool"],
        )
        .expect("valid metric");
        let retries = IntCounterVec::new(
            Opts::new(
                "troupe_retries_total",
                "Attempts that failed and were retried.",
            ),
            &["pool"],
        )
        .expect("valid metric");
        let task_states = IntGaugeVec::new(
            Opts::new("troupe_tasks", "Tasks of unfinished runs by state."),
            &["state", "pool"],
        )
        .expect("valid metric");
        let queue_depth = IntGaugeVec::new(
            Opts::new("troupe_queue_depth", "Ready tasks waiting for a worker."),
            &["pool"],
        )
        .expect("valid metric");
        let running = IntGauge::new(
            "troupe_running_attempts",
            "Attempts (and compensations) running.",
        )
        .expect("valid metric");
        let approvals_pending =
            IntGauge::new("troupe_approvals_pending", "Tasks awaiting an approval.")
                .expect("valid metric");
        let run_duration = HistogramVec::new(
            histogram(
                "troupe_run_duration_seconds",
                "Run submission to end, by final state.",
                duration_buckets(),
            ),
            &["state"],
        )
        .expect("valid metric");
        let attempt_duration = HistogramVec::new(
            histogram(
                "troupe_attempt_duration_seconds",
                "Attempt start to end.",
                duration_buckets(),
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let queue_wait = Histogram::with_opts(histogram(
            "troupe_queue_wait_seconds",
            "From runnable (or retry due) to attempt start.",
            duration_buckets(),
        ))
        .expect("valid metric");
        let journal_commit = Histogram::with_opts(histogram(
            "troupe_journal_commit_seconds",
            "One journal commit: WriteBatch write and WAL sync.",
            prometheus::exponential_buckets(0.000_05, 2.0, 14).expect("valid buckets"),
        ))
        .expect("valid metric");
        let journal_batch = Histogram::with_opts(histogram(
            "troupe_journal_batch_events",
            "Events per journal commit (group commit).",
            prometheus::exponential_buckets(1.0, 2.0, 14).expect("valid buckets"),
        ))
        .expect("valid metric");
        let restarts = IntCounterVec::new(
            Opts::new(
                "troupe_actor_restarts_total",
                "Actor restarts by their supervisor.",
            ),
            &["actor"],
        )
        .expect("valid metric");
        let webhooks = IntCounterVec::new(
            Opts::new(
                "troupe_webhook_deliveries_total",
                "Webhook deliveries by event and result (delivered, failed, dropped).",
            ),
            &["event", "result"],
        )
        .expect("valid metric");
        reg(Box::new(tasks.clone()));
        reg(Box::new(attempts.clone()));
        reg(Box::new(retries.clone()));
        reg(Box::new(task_states.clone()));
        reg(Box::new(queue_depth.clone()));
        reg(Box::new(running.clone()));
        reg(Box::new(approvals_pending.clone()));
        reg(Box::new(run_duration.clone()));
        reg(Box::new(attempt_duration.clone()));
        reg(Box::new(queue_wait.clone()));
        reg(Box::new(journal_commit.clone()));
        reg(Box::new(journal_batch.clone()));
        reg(Box::new(restarts.clone()));
        reg(Box::new(webhooks.clone()));
        reg(Box::new(
            prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                "troupe",
            ),
        ));
        Arc::new(Metrics {
            registry,
            tasks,
            attempts,
            retries,
            task_states,
            queue_depth,
            running,
            approvals_pending,
            run_duration: RunState::ALL
                .iter()
                .map(|s| run_duration.with_label_values(&[s.as_str()]))
                .collect(),
            attempt_ok: attempt_duration.with_label_values(&["succeeded"]),
            attempt_failed: attempt_duration.with_label_values(&["failed"]),
            queue_wait,
            journal_commit,
            journal_batch,
            restarts,
            webhooks,
            restart_log: Mutex::new(VecDeque::new()),
        })
    }

    /// The handles of `pool` (`""`: tasks in no pool).
    pub fn pool(&self, pool: &str) -> PoolHandles {
        PoolHandles {
            states: TaskState::ALL
                .iter()
                .map(|s| {
                    if GAUGED.contains(s) {
                        self.task_states.with_label_values(&[s.as_str(), pool])
                    } else {
                        IntGauge::new("unexported", "-").expect("valid metric")
                    }
                })
                .collect(),
            queue_depth: self.queue_depth.with_label_values(&[pool]),
            outcomes: OUTCOMES
                .iter()
                .map(|o| self.tasks.with_label_values(&[o, pool]))
                .collect(),
            attempts: self.attempts.with_label_values(&[pool]),
            retries: self.retries.with_label_values(&[pool]),
        }
    }

    /// An attempt ended after `secs` (succeeded or not).
    pub fn attempt_ended(&self, succeeded: bool, secs: f64) {
        if succeeded {
            self.attempt_ok.observe(secs);
        } else {
            self.attempt_failed.observe(secs);
        }
    }

    /// An attempt started `secs` after its task became runnable.
    pub fn queue_wait(&self, secs: f64) {
        self.queue_wait.observe(secs);
    }

    /// A run reached final `state` `secs` after its submission.
    pub fn run_ended(&self, state: RunState, secs: f64) {
        if let Some(h) = RunState::ALL
            .iter()
            .position(|s| *s == state)
            .and_then(|i| self.run_duration.get(i))
        {
            h.observe(secs);
        }
    }

    /// Drops every task-state and queue-depth gauge (a starting scheduler recounts them;
    /// handles taken before this no longer reach the registry).
    pub fn reset_task_gauges(&self) {
        self.task_states.reset();
        self.queue_depth.reset();
    }

    /// A supervisor restarted `actor`.
    pub fn restarted(&self, actor: &str) {
        self.restarts.with_label_values(&[actor]).inc();
        let mut log = self.restart_log.lock().expect("not poisoned");
        log.push_back(Instant::now());
        while log.len() > 1024 {
            log.pop_front();
        }
    }

    /// Restarts within the last `window`.
    pub fn restarts_within(&self, window: Duration) -> usize {
        let log = self.restart_log.lock().expect("not poisoned");
        log.iter()
            .rev()
            .take_while(|t| t.elapsed() <= window)
            .count()
    }

    /// A webhook delivery of `event` ended with `result` (delivered, failed, dropped).
    pub fn webhook(&self, event: &str, result: &str) {
        self.webhooks.with_label_values(&[event, result]).inc();
    }

    /// The registry in Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 << 10);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

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

/// Health thresholds (`[health]` in `troupe.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthThresholds {
    /// Ready tasks waiting for a worker above which the node is degraded (default 20).
    pub backlog: u64,
    /// Share of tasks failing for good over the last hour above which the node is degraded
    /// (default 0.10).
    pub error_rate: f64,
    /// With work pending, no task ending for this long makes the node degraded (default 1 h).
    pub stalled_after: Duration,
    /// Free space on the data dir's file system below which the node is unhealthy (default
    /// 1 GiB), bytes.
    pub min_free_disk: u64,
    /// Actor restarts within this window make the node degraded (default 5 min).
    pub restart_window: Duration,
    /// How long the scheduler and the journal may take to answer (default 1 s).
    pub answer_within: Duration,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            backlog: 20,
            error_rate: 0.10,
            stalled_after: Duration::from_secs(3600),
            min_free_disk: 1 << 30,
            restart_window: Duration::from_secs(300),
            answer_within: Duration::from_secs(1),
        }
    }
}

fn check(
    name: &str,
    failing: Health,
    failed: bool,
    value: f64,
    threshold: f64,
    unit: &str,
    message: String,
) -> HealthCheck {
    HealthCheck {
        name: name.into(),
        status: if failed { failing } else { Health::Healthy },
        value,
        threshold,
        unit: unit.into(),
        message,
    }
}

/// Free bytes for unprivileged users on the file system holding `path`.
fn free_disk(path: &std::path::Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    Some(s.blocks_available() as u64 * s.fragment_size() as u64)
}

/// Runs every health check (each bounded by `answer_within`) and grades the node.
///
/// | check | fails when | makes the node |
/// |---|---|---|
/// | `scheduler` | it does not answer within 1 s | unhealthy |
/// | `journal` | a probe write does not succeed within 1 s | unhealthy |
/// | `disk` | free space below `min_free_disk` | unhealthy |
/// | `backlog` | ready tasks waiting for a worker above `backlog` | degraded |
/// | `error_rate` | tasks failing for good over the last hour above `error_rate` | degraded |
/// | `stalled` | work pending and no task ended for `stalled_after` | degraded |
/// | `restarts` | any actor restart within `restart_window` | degraded |
pub async fn evaluate_health(shared: &Arc<NodeShared>) -> HealthReport {
    let t = &shared.config.health;
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let mut checks = Vec::new();
    let limit_ms = t.answer_within.as_secs_f64() * 1000.0;

    // Scheduler.
    let started = Instant::now();
    let node: Option<NodeView> = match tokio::time::timeout(t.answer_within, async {
        shared.scheduler_barrier(None).await?;
        shared.request(Request::Node).await
    })
    .await
    {
        Ok(Ok(Response::Node(v))) => Some(v),
        _ => None,
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    checks.push(check(
        "scheduler",
        Health::Unhealthy,
        node.is_none(),
        ms,
        limit_ms,
        "ms",
        match &node {
            Some(_) => format!("answered in {ms:.1} ms"),
            None => format!("did not answer within {limit_ms:.0} ms"),
        },
    ));

    // Journal.
    let started = Instant::now();
    let probe = match shared.journal_ref() {
        Some(j) => tokio::time::timeout(t.answer_within, j.probe())
            .await
            .map_err(|_| "timed out".to_string())
            .and_then(|r| r.map_err(|e| e.to_string())),
        None => Err("the journal actor is not running".into()),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    checks.push(check(
        "journal",
        Health::Unhealthy,
        probe.is_err(),
        ms,
        limit_ms,
        "ms",
        match &probe {
            Ok(()) => format!("probe write took {ms:.1} ms"),
            Err(e) => format!("not writable: {e}"),
        },
    ));

    // Disk.
    let free = free_disk(&shared.config.data_dir);
    checks.push(check(
        "disk",
        Health::Unhealthy,
        free.is_none_or(|f| f < t.min_free_disk),
        free.unwrap_or(0) as f64,
        t.min_free_disk as f64,
        "bytes",
        match free {
            Some(f) => format!("{} free", bytes_text(f)),
            None => "cannot read the file system's free space".into(),
        },
    ));

    // Backlog and stalled work (from the scheduler's view).
    if let Some(v) = &node {
        checks.push(check(
            "backlog",
            Health::Degraded,
            v.queued_tasks > t.backlog,
            v.queued_tasks as f64,
            t.backlog as f64,
            "tasks",
            format!("{} ready tasks waiting for a worker", v.queued_tasks),
        ));
        let idle = now.saturating_since(v.last_progress);
        let pending = v.waiting_tasks + u64::from(v.running_attempts) > 0;
        checks.push(check(
            "stalled",
            Health::Degraded,
            pending && idle >= t.stalled_after,
            idle.as_secs_f64(),
            t.stalled_after.as_secs_f64(),
            "s",
            if pending {
                format!(
                    "{} tasks pending; last task end or new work {} ago",
                    v.waiting_tasks + u64::from(v.running_attempts),
                    humantime::format_duration(Duration::from_secs(idle.as_secs()))
                )
            } else {
                "no work pending".into()
            },
        ));
    }

    // Error rate over the last hour (durable rollups).
    let journal = shared.journal.clone();
    let hour = Duration::from_secs(3600);
    let report = tokio::task::spawn_blocking(move || metrics_report(&journal, now, hour)).await;
    match report
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(r) => {
            let ended = r.total.counts.succeeded + r.total.counts.failed;
            checks.push(check(
                "error_rate",
                Health::Degraded,
                r.total.error_rate > t.error_rate,
                r.total.error_rate,
                t.error_rate,
                "ratio",
                format!(
                    "{} of {ended} tasks failed in the last hour",
                    r.total.counts.failed
                ),
            ));
        }
        Err(e) => checks.push(check(
            "error_rate",
            Health::Degraded,
            true,
            0.0,
            t.error_rate,
            "ratio",
            format!("cannot read the rollups: {e}"),
        )),
    }

    // Restarts.
    let n = shared.metrics.restarts_within(t.restart_window);
    checks.push(check(
        "restarts",
        Health::Degraded,
        n > 0,
        n as f64,
        0.0,
        "restarts",
        format!(
            "{n} actor restarts in the last {}",
            humantime::format_duration(t.restart_window)
        ),
    ));

    let status = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Health::Healthy);
    HealthReport {
        status,
        now,
        checks,
    }
}

/// `1.5 GiB`-style text for a byte count.
fn bytes_text(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Readiness: the journal takes a probe write and the scheduler answers, each within
/// `answer_within`. `Err` names the failing part.
pub async fn ready(shared: &Arc<NodeShared>) -> Result<(), String> {
    let within = shared.config.health.answer_within;
    match shared.journal_ref() {
        Some(j) => match tokio::time::timeout(within, j.probe()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("journal not writable: {e}")),
            Err(_) => return Err("journal did not answer within 1 s".into()),
        },
        None => return Err("journal actor not running".into()),
    }
    match tokio::time::timeout(within, shared.scheduler_barrier(None)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("scheduler unavailable: {e}")),
        Err(_) => Err("scheduler did not answer within 1 s".into()),
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `stop` is notified.
pub async fn serve_http(
    listener: std::net::TcpListener,
    shared: Arc<NodeShared>,
    stop: Arc<tokio::sync::Notify>,
) -> std::io::Result<()> {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;

    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(sh): axum::extract::State<Arc<NodeShared>>| async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        sh.metrics.render(),
                    )
                },
            ),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(
                |axum::extract::State(sh): axum::extract::State<Arc<NodeShared>>| async move {
                    match ready(&sh).await {
                        Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
                        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n"))
                            .into_response(),
                    }
                },
            ),
        )
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.notified().await })
        .await
}

/// The metrics actor: watches the node's health for `health_changed` webhooks and drops
/// rollup buckets past their retention. The counters themselves are atomics the scheduler
/// and journal update directly (a message per event would cost more than the counting).
pub struct MetricsActor {
    /// Node-wide settings and handles.
    pub shared: Arc<NodeShared>,
}

/// Messages of the metrics actor.
#[derive(Debug)]
pub enum MetricsMsg {
    /// Periodic work: health evaluation and retention.
    Tick,
}

/// The metrics actor's state.
pub struct MetricsState {
    /// Last health status seen (for `health_changed`).
    last_health: Option<Health>,
    /// When retention last ran.
    last_retention: Option<Instant>,
}

/// How often the metrics actor evaluates health (when a webhook listens for
/// `health_changed`) and checks retention.
pub const METRICS_TICK: Duration = Duration::from_secs(10);

impl Actor for MetricsActor {
    type Msg = MetricsMsg;
    type State = MetricsState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<MetricsMsg>,
        _: (),
    ) -> Result<MetricsState, ActorProcessingErr> {
        let _ = myself.cast(MetricsMsg::Tick);
        Ok(MetricsState {
            last_health: None,
            last_retention: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<MetricsMsg>,
        msg: MetricsMsg,
        state: &mut MetricsState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MetricsMsg::Tick => {
                if self
                    .shared
                    .webhooks
                    .wants(crate::webhooks::WebhookEvent::HealthChanged)
                {
                    let report = evaluate_health(&self.shared).await;
                    if let Some(prev) = state.last_health {
                        if prev != report.status {
                            self.shared
                                .webhooks
                                .send(crate::webhooks::Notice::HealthChanged {
                                    from: prev,
                                    to: report.status,
                                    checks: report.checks.clone(),
                                });
                        }
                    }
                    state.last_health = Some(report.status);
                }
                if state
                    .last_retention
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(3600))
                {
                    state.last_retention = Some(Instant::now());
                    if let Some(j) = self.shared.journal_ref() {
                        let keep = self.shared.config.retention.metrics;
                        let now = Timestamp::from_system_time(std::time::SystemTime::now());
                        let before = crate::model::rollup::first_bucket(now, keep);
                        if let Err(e) = j.drop_rollups_before(before).await {
                            tracing::warn!(error = %e, "rollup retention failed");
                        }
                    }
                    prune_logs(&self.shared).await;
                }
                myself.send_after(METRICS_TICK, || MetricsMsg::Tick);
            }
        }
        Ok(())
    }
}

/// Removes `logs/RUN` of runs that finished longer than `retention.logs` ago.
async fn prune_logs(shared: &Arc<NodeShared>) {
    let Some(keep) = shared.config.retention.logs else {
        return;
    };
    let Ok(Response::Runs(runs)) = shared.request(Request::List).await else {
        return;
    };
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let logs = shared.config.data_dir.join("logs");
    for r in runs {
        let Some(done) = r.finished_at else { continue };
        if now.saturating_since(done) < keep {
            continue;
        }
        let dir = logs.join(r.id.to_string());
        if dir.exists() {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(run = %r.id, "logs removed (retention)"),
                Err(e) => tracing::warn!(run = %r.id, error = %e, "could not remove logs"),
            }
        }
    }
}
