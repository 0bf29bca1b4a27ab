//! The metrics actor: periodic health evaluation (for `health_changed` webhooks) and retention
//! of rollups and attempt logs. The registry, health checks and HTTP endpoints it works with
//! live in [`crate::telemetry`]; they are re-exported here under their former paths.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::NodeContext;
use crate::messages::control::{Health, Request, Response};
use crate::model::Timestamp;

pub use crate::telemetry::{
    evaluate_health, metrics_report, ready, serve_http, HealthThresholds, Metrics, PoolHandles,
};

/// The metrics actor: watches the node's health for `health_changed` webhooks and drops
/// rollup buckets past their retention. The counters themselves are atomics the scheduler
/// and journal update directly (a message per event would cost more than the counting).
pub struct MetricsActor {
    /// Node-wide settings and handles.
    pub shared: Arc<NodeContext>,
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
    /// When run retention (`[retention] runs`) last ran.
    last_gc: Option<Instant>,
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
            last_gc: None,
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
                    .wants(crate::telemetry::webhooks::WebhookEvent::HealthChanged)
                {
                    let report = evaluate_health(&self.shared).await;
                    if let Some(prev) = state.last_health {
                        if prev != report.status {
                            self.shared.webhooks.send(
                                crate::telemetry::webhooks::Notice::HealthChanged {
                                    from: prev,
                                    to: report.status,
                                    checks: report.checks.clone(),
                                },
                            );
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
                if let Some(keep) = self.shared.config.retention.runs {
                    // A tenth of the retention, so runs go at most 10% late; at least one
                    // tick, at most an hour.
                    let every = (keep / 10).clamp(METRICS_TICK, Duration::from_secs(3600));
                    if state.last_gc.is_none_or(|t| t.elapsed() >= every) {
                        state.last_gc = Some(Instant::now());
                        gc_runs(&self.shared, keep).await;
                    }
                }
                myself.send_after(METRICS_TICK, || MetricsMsg::Tick);
            }
        }
        Ok(())
    }
}

/// Removes finished runs older than `keep` (`[retention] runs`), as `troupe gc` does.
async fn gc_runs(shared: &Arc<NodeContext>, keep: Duration) {
    match shared
        .request(Request::Gc {
            older_than: Some(keep),
            dry_run: false,
        })
        .await
    {
        Ok(Response::Gc(r)) if !r.runs.is_empty() => tracing::info!(
            runs = r.runs.len(),
            events = r.events,
            event_bytes = r.event_bytes,
            log_bytes = r.log_bytes,
            "runs removed (retention)"
        ),
        Ok(Response::Error(e)) => tracing::warn!(error = %e, "run retention failed"),
        Err(e) => tracing::warn!(error = %e, "run retention failed"),
        _ => {}
    }
}

/// Removes `logs/RUN` of runs that finished longer than `retention.logs` ago.
async fn prune_logs(shared: &Arc<NodeContext>) {
    let Some(keep) = shared.config.retention.logs else {
        return;
    };
    let Ok(Response::Runs(runs)) = shared.request(Request::List).await else {
        return;
    };
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let layout = shared.config.layout();
    for r in runs {
        let Some(done) = r.finished_at else { continue };
        if now.saturating_since(done) < keep {
            continue;
        }
        let dir = layout.run_logs(r.id);
        if dir.exists() {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(run = %r.id, "logs removed (retention)"),
                Err(e) => tracing::warn!(run = %r.id, error = %e, "could not remove logs"),
            }
        }
    }
}
