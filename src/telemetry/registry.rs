//! [`Metrics`]: the node's Prometheus registry, and the per-pool handles the scheduler updates.
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
//! | `troupe_breaker_state` | gauge | `breaker` | 0 closed, 1 open, 2 half-open; scheduler, as decided |
//! | `troupe_hook_calls_total` | counter | `hook`, `outcome` (succeeded, failed) | scheduler, once a call's end is durable |
//! | `troupe_hook_attempts_total` | counter | `hook` | scheduler, when an attempt's process starts |
//! | `troupe_inbox_files_total` | counter | `outcome` (submitted, rejected) | inbox, once a file is moved (a submitted one after its run is durable) |
//! | `troupe_http_streams` | gauge | | web UI and API, while a Server-Sent Events stream is open (`/api/events`, a run page's live updates) |
//! | `troupe_process_*` | | | CPU seconds, resident memory, open fds ([`prometheus::process_collector`]) |
//!
//! Counters count since the process started (Prometheus handles resets); they are raised
//! only once the events behind them are durable. Histograms and gauges follow the scheduler's
//! decisions as they are made. The figures that survive restarts are
//! the journal's rollups ([`crate::model::rollup`], `troupe metrics --since`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::model::rollup::Counts;
use crate::model::{RunState, TaskState};

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
    /// `troupe_task_usage_total{name, pool}`: usage counters tasks reported.
    usage: prometheus::CounterVec,
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
    /// `troupe_child_runs_active`: spawned runs not finished.
    pub child_runs_active: IntGauge,
    /// `troupe_spawn_refused_total{reason}`.
    spawn_refused: IntCounterVec,
    /// `troupe_budget_used_total{name}`: usage reported inside agent trees.
    budget_used: prometheus::CounterVec,
    /// `troupe_breaker_state{breaker}`: 0 closed, 1 open, 2 half-open.
    breaker_state: IntGaugeVec,
    /// When each restart happened (for the health check's window), newest last.
    restart_log: Mutex<VecDeque<Instant>>,
    /// `troupe_hook_calls_total{hook, outcome}`: hook calls that finished.
    hook_calls: IntCounterVec,
    /// `troupe_hook_attempts_total{hook}`: hook attempts started.
    hook_attempts: IntCounterVec,
    /// `troupe_inbox_files_total{outcome}`: inbox files moved to `submitted/` or `rejected/`.
    inbox_files: IntCounterVec,
    /// `troupe_http_streams`: open Server-Sent Events streams (slow ones are dropped).
    http_streams: IntGauge,
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
        let usage = prometheus::CounterVec::new(
            Opts::new(
                "troupe_task_usage_total",
                "Usage counters attempts reported through TROUPE_USAGE (tokens, cost, ...), by \
                 counter name and pool; counted once the attempt's end is durable.",
            ),
            &["name", "pool"],
        )
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
        reg(Box::new(usage.clone()));
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
        let child_runs_active = IntGauge::new(
            "troupe_child_runs_active",
            "Runs spawned by a task (troupe spawn) that have not finished.",
        )
        .expect("valid metric");
        let spawn_refused = IntCounterVec::new(
            Opts::new(
                "troupe_spawn_refused_total",
                "Spawns refused, by reason (depth, children, descendants, budget, command, \
                 pool, approval, loop, may_spawn).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let budget_used = prometheus::CounterVec::new(
            Opts::new(
                "troupe_budget_used_total",
                "Usage counters reported by runs of agent trees (what budgets are charged), by \
                 counter name; counted once durable.",
            ),
            &["name"],
        )
        .expect("valid metric");
        reg(Box::new(child_runs_active.clone()));
        reg(Box::new(spawn_refused.clone()));
        let breaker_state = IntGaugeVec::new(
            Opts::new(
                "troupe_breaker_state",
                "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
            ),
            &["breaker"],
        )
        .expect("valid metric");
        reg(Box::new(breaker_state.clone()));
        reg(Box::new(budget_used.clone()));
        let hook_calls = IntCounterVec::new(
            Opts::new(
                "troupe_hook_calls_total",
                "Hook calls that finished, by hook and outcome (succeeded, failed).",
            ),
            &["hook", "outcome"],
        )
        .expect("valid metric");
        let hook_attempts = IntCounterVec::new(
            Opts::new(
                "troupe_hook_attempts_total",
                "Hook attempts started, by hook.",
            ),
            &["hook"],
        )
        .expect("valid metric");
        reg(Box::new(hook_calls.clone()));
        reg(Box::new(hook_attempts.clone()));
        let inbox_files = IntCounterVec::new(
            Opts::new(
                "troupe_inbox_files_total",
                "Inbox files handled, by outcome (submitted, rejected).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        reg(Box::new(inbox_files.clone()));
        let http_streams = IntGauge::new(
            "troupe_http_streams",
            "Open Server-Sent Events streams of the web UI and HTTP API.",
        )
        .expect("valid metric");
        reg(Box::new(http_streams.clone()));
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
            usage,
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
            child_runs_active,
            spawn_refused,
            breaker_state,
            budget_used,
            hook_calls,
            hook_attempts,
            inbox_files,
            http_streams,
        })
    }

    /// Sets `troupe_breaker_state{breaker}` (0 closed, 1 open, 2 half-open).
    pub fn breaker_state(&self, breaker: &str, value: i64) {
        self.breaker_state.with_label_values(&[breaker]).set(value);
    }

    /// Counts a finished hook call (`outcome`: `succeeded` or `failed`).
    pub fn hook_call(&self, hook: &str, outcome: &str) {
        self.hook_calls.with_label_values(&[hook, outcome]).inc();
    }

    /// Counts an inbox file moved (`outcome`: `submitted` or `rejected`).
    pub fn inbox_file(&self, outcome: &str) {
        self.inbox_files.with_label_values(&[outcome]).inc();
    }

    /// Inbox files moved with `outcome` since the process started.
    pub fn inbox_files(&self, outcome: &str) -> u64 {
        self.inbox_files.with_label_values(&[outcome]).get()
    }

    /// `troupe_http_streams`: the gauge of open Server-Sent Events streams (a stream raises
    /// it while it lives).
    pub fn http_streams(&self) -> &IntGauge {
        &self.http_streams
    }

    /// Counts a hook attempt that starts.
    pub fn hook_attempt(&self, hook: &str) {
        self.hook_attempts.with_label_values(&[hook]).inc();
    }

    /// Counts a refused spawn.
    pub fn spawn_refused(&self, reason: &str) {
        self.spawn_refused.with_label_values(&[reason]).inc();
    }

    /// Adds usage charged to agent budgets.
    pub fn budget_used(&self, counters: &crate::model::Counters) {
        for (name, v) in counters {
            if *v >= 0.0 {
                self.budget_used
                    .with_label_values(&[name.as_str()])
                    .inc_by(*v);
            }
        }
    }

    /// Adds usage counters reported by attempts of `pool` (durable).
    pub fn task_usage(&self, pool: &str, counters: &crate::model::Counters) {
        for (name, v) in counters {
            if *v >= 0.0 {
                self.usage
                    .with_label_values(&[name.as_str(), pool])
                    .inc_by(*v);
            }
        }
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
