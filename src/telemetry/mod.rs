//! Telemetry: what the node tells the outside about itself, apart from the control socket.
//!
//! # Layout
//! - [`registry`]: [`Metrics`], the node's Prometheus registry (every `troupe_*` metric), and
//!   the per-pool handles the scheduler updates on its hot path.
//! - [`health`]: the health checks and their thresholds, and readiness.
//! - [`http`]: `/metrics`, `/healthz` and `/readyz` on the node's `http_addr`.
//! - [`webhooks`]: JSON notices POSTed to operator URLs, with retries, off the hot path.
//!
//! The metrics actor that drives the periodic work (health watch, retention) lives with the
//! other actors, in [`crate::actors::metrics`].

pub mod health;
pub mod http;
pub mod registry;
pub mod webhooks;

pub use crate::read::metrics::metrics_report;
pub use health::{evaluate_health, ready, HealthThresholds};
pub use http::serve_http;
pub use registry::{Metrics, PoolHandles};
