//! Webhooks: JSON notifications of what happened on the node, POSTed to operator URLs.
//!
//! # Events and bodies
//! Every body is one JSON object with `event`, `time` (RFC 3339), `node` (the node id) and
//! the event's fields:
//! | event | sent when | fields |
//! |---|---|---|
//! | `task_failed` | a task failed for good (durable) | `run`, `workflow`, `task`, `attempt`, `failure` |
//! | `run_finished` | a run reached a finished state (durable) | `run`, `workflow`, `state` |
//! | `approval_requested` | a task started awaiting approval (durable) | `run`, `workflow`, `task`, `expires_at` |
//! | `health_changed` | `troupe health`'s status changed (checked every 10 s) | `from`, `to`, `checks` |
//! | `node_stopping` | a graceful stop began | `reason` |
//!
//! # Delivery
//! Best effort, at most once per attempt schedule, never blocking the node: the scheduler
//! hands a notice to a bounded queue ([`QUEUE_CAPACITY`]) without waiting; a full queue
//! drops the notice (counted as `dropped`). One sender task POSTs each notice to each
//! subscribed URL with a per-request timeout (default 5 s); a connection error, a timeout or
//! a non-2xx status is retried with exponential backoff (1 s, 2 s, 4 s, …, up to
//! `max_attempts`, default 5), like GitHub's and Stripe's webhook retries but without
//! their persistence: notices queued or in retry when the process dies are lost. Results are
//! counted in `troupe_webhook_deliveries_total{event, result}`. Deliveries to different URLs
//! and of different notices run concurrently (one tokio task each), so a URL that never
//! answers delays nothing but its own retries.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::registry::Metrics;
use crate::messages::control::{Health, HealthCheck};
use crate::model::{RunId, RunState, TaskId, Timestamp};

/// Notices waiting for the sender; beyond this the newest are dropped.
pub const QUEUE_CAPACITY: usize = 10_000;

pub use crate::config::{WebhookConfig, WebhookEvent};

/// What happened, as the node hands it to the sender.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A task failed for good.
    TaskFailed {
        /// Its run.
        run: RunId,
        /// The run's workflow name.
        workflow: String,
        /// The task.
        task: TaskId,
        /// Its last attempt.
        attempt: u32,
        /// Why (one line).
        failure: String,
    },
    /// A run finished.
    RunFinished {
        /// The run.
        run: RunId,
        /// Its workflow name.
        workflow: String,
        /// Its final state.
        state: RunState,
    },
    /// A task awaits approval.
    ApprovalRequested {
        /// Its run.
        run: RunId,
        /// The run's workflow name.
        workflow: String,
        /// The task.
        task: TaskId,
        /// When the request expires.
        expires_at: Timestamp,
    },
    /// The health status changed.
    HealthChanged {
        /// Before.
        from: Health,
        /// Now.
        to: Health,
        /// The checks behind `to`.
        checks: Vec<HealthCheck>,
    },
    /// A graceful stop began.
    NodeStopping {
        /// Why (`node stop`, signal).
        reason: String,
    },
    /// A circuit breaker opened.
    BreakerOpened {
        /// The breaker.
        breaker: String,
        /// When it lets probes through.
        until: Timestamp,
        /// What tripped it.
        reason: String,
    },
    /// A circuit breaker closed.
    BreakerClosed {
        /// The breaker.
        breaker: String,
        /// Why.
        reason: String,
    },
}

impl Notice {
    /// Its event.
    pub fn event(&self) -> WebhookEvent {
        match self {
            Notice::TaskFailed { .. } => WebhookEvent::TaskFailed,
            Notice::RunFinished { .. } => WebhookEvent::RunFinished,
            Notice::ApprovalRequested { .. } => WebhookEvent::ApprovalRequested,
            Notice::HealthChanged { .. } => WebhookEvent::HealthChanged,
            Notice::NodeStopping { .. } => WebhookEvent::NodeStopping,
            Notice::BreakerOpened { .. } => WebhookEvent::BreakerOpened,
            Notice::BreakerClosed { .. } => WebhookEvent::BreakerClosed,
        }
    }

    /// The JSON body.
    pub fn body(&self, node: &str, time: Timestamp) -> Value {
        let mut v = match self {
            Notice::TaskFailed {
                run,
                workflow,
                task,
                attempt,
                failure,
            } => json!({"run": run.to_string(), "workflow": workflow, "task": task.as_str(),
                        "attempt": attempt, "failure": failure}),
            Notice::RunFinished {
                run,
                workflow,
                state,
            } => json!({"run": run.to_string(), "workflow": workflow, "state": state.as_str()}),
            Notice::ApprovalRequested {
                run,
                workflow,
                task,
                expires_at,
            } => json!({"run": run.to_string(), "workflow": workflow, "task": task.as_str(),
                        "expires_at": expires_at.to_string()}),
            Notice::HealthChanged { from, to, checks } => json!({"from": from.as_str(),
                        "to": to.as_str(), "checks": checks}),
            Notice::NodeStopping { reason } => json!({ "reason": reason }),
            Notice::BreakerOpened {
                breaker,
                until,
                reason,
            } => json!({"breaker": breaker, "until": until.to_string(), "reason": reason}),
            Notice::BreakerClosed { breaker, reason } => {
                json!({"breaker": breaker, "reason": reason})
            }
        };
        v["event"] = json!(self.event().as_str());
        v["time"] = json!(time.to_string());
        v["node"] = json!(node);
        v
    }
}

/// The node's webhook sender. With no webhook configured every call is a no-op.
pub struct Webhooks {
    /// Subscribed event kinds (any webhook), to skip building notices nobody wants.
    wanted: [bool; WebhookEvent::ALL.len()],
    /// To the sender task.
    queue: Option<tokio::sync::mpsc::Sender<(Notice, Timestamp)>>,
    /// Counts drops.
    metrics: Arc<Metrics>,
    /// Notices queued or being delivered (for [`Webhooks::drain`]).
    in_flight: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Webhooks {
    /// No webhooks.
    pub fn none(metrics: Arc<Metrics>) -> Self {
        Webhooks {
            wanted: [false; WebhookEvent::ALL.len()],
            queue: None,
            metrics,
            in_flight: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// Starts the sender task (on the current tokio runtime) for `hooks`.
    pub fn start(hooks: Vec<WebhookConfig>, node: String, metrics: Arc<Metrics>) -> Self {
        if hooks.is_empty() {
            return Self::none(metrics);
        }
        let mut wanted = [false; WebhookEvent::ALL.len()];
        for h in &hooks {
            for e in &h.events {
                wanted[*e as usize] = true;
            }
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(Notice, Timestamp)>(QUEUE_CAPACITY);
        let client = reqwest::Client::builder()
            .user_agent(concat!("troupe/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a TLS backend is compiled in");
        let hooks = Arc::new(hooks);
        let m = Arc::clone(&metrics);
        let in_flight = Arc::new(tokio::sync::watch::channel(0usize).0);
        let count = Arc::clone(&in_flight);
        tokio::spawn(async move {
            while let Some((notice, time)) = rx.recv().await {
                let event = notice.event();
                let body = Arc::new(notice.body(&node, time));
                for hook in hooks.iter().filter(|h| h.events.contains(&event)) {
                    let (client, hook, body, m, count) = (
                        client.clone(),
                        hook.clone(),
                        Arc::clone(&body),
                        Arc::clone(&m),
                        Arc::clone(&count),
                    );
                    count.send_modify(|n| *n += 1);
                    tokio::spawn(async move {
                        let result = deliver(&client, &hook, &body).await;
                        m.webhook(event.as_str(), if result { "delivered" } else { "failed" });
                        count.send_modify(|n| *n -= 1);
                    });
                }
                // The notice itself was counted when queued.
                count.send_modify(|n| *n -= 1);
            }
        });
        Webhooks {
            wanted,
            queue: Some(tx),
            metrics,
            in_flight,
        }
    }

    /// Whether any webhook subscribes to `event`.
    pub fn wants(&self, event: WebhookEvent) -> bool {
        self.wanted[event as usize]
    }

    /// Queues `notice` without waiting; dropped (and counted) if the queue is full.
    pub fn send(&self, notice: Notice) {
        if !self.wants(notice.event()) {
            return;
        }
        let Some(q) = &self.queue else { return };
        let event = notice.event();
        let now = Timestamp::from_system_time(std::time::SystemTime::now());
        self.in_flight.send_modify(|n| *n += 1);
        if q.try_send((notice, now)).is_err() {
            self.in_flight.send_modify(|n| *n -= 1);
            self.metrics.webhook(event.as_str(), "dropped");
        }
    }

    /// Waits until every queued notice was delivered or gave up, at most `within` (a
    /// stopping node gives its last notices, `node_stopping` among them, this long).
    pub async fn drain(&self, within: Duration) {
        let mut rx = self.in_flight.subscribe();
        let _ = tokio::time::timeout(within, rx.wait_for(|n| *n == 0)).await;
    }
}

/// An error and every cause under it, `outer: inner: innermost`: reqwest's own message is
/// only "error sending request"; the cause (connection refused, not HTTP, a TLS failure) is in
/// its sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        // hyper and reqwest sometimes repeat the inner message in the outer one.
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// POSTs `body` to `hook.url` until a 2xx answer or `max_attempts`; returns whether it was
/// delivered.
async fn deliver(client: &reqwest::Client, hook: &WebhookConfig, body: &Value) -> bool {
    let mut wait = hook.backoff;
    for attempt in 1..=hook.max_attempts.max(1) {
        let sent = client
            .post(hook.url.clone())
            .timeout(hook.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        let why = match sent {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) if e.is_timeout() => format!("no answer within {:?}", hook.timeout),
            Err(e) => error_chain(&e),
        };
        tracing::warn!(url = %hook.url, attempt, error = %why, "webhook delivery failed");
        if attempt < hook.max_attempts {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    /// reqwest's own message is "error sending request for url (...)"; the log must say why.
    #[tokio::test]
    async fn delivery_errors_name_their_cause() {
        let client = reqwest::Client::new();
        // A port nothing listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let err = client
            .post(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let text = error_chain(&err);
        assert!(text.contains("error sending request"), "{text}");
        assert!(text.to_lowercase().contains("connection refused"), "{text}");
        // A server that does not speak HTTP.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
                let _ = s.read(&mut [0u8; 1024]);
            }
        });
        let err = client
            .post(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        let plain = err.to_string();
        let text = error_chain(&err);
        assert!(text.len() > plain.len(), "no cause added to {plain:?}");
    }
}
