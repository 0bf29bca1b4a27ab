//! The actors of a troupe node, one file each; each is a thin shell around `model/` logic.
//!
//! # Layout
//! - [`supervisor`]: Erlang/OTP-style supervisor (strategies, intensity, restart types).
//! - [`journal`]: the journal writer: group commit of appends, snapshots.
//! - [`scheduler`]: the write side: decides, journals, then acts (dispatch, timers, commands,
//!   recovery), one job per file; it answers no reads (see [`crate::read`]).
//! - [`saga`]: the saga coordinator (which compensation runs next), hosted by the scheduler.
//! - [`worker`]: runs one attempt at a time through the node's executor.
//! - [`approval`]: the approval gate: pending requests, their expiry, node approval rules.
//! - [`metrics`]: the metrics actor (health watch for `health_changed`, retention of rollups
//!   and logs); the registry, health checks and HTTP endpoints it uses live in
//!   [`crate::telemetry`] and are re-exported there.
//! - [`control`]: the Unix-socket server for the admin CLI.

pub mod approval;
pub mod control;
pub mod journal;
pub mod metrics;
pub mod saga;
pub mod scheduler;
pub mod supervisor;
pub mod worker;
