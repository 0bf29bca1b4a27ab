//! The actors of a troupe node, one file each; each is a thin shell around `model/` logic.
//!
//! # Layout
//! - [`supervisor`]: Erlang/OTP-style supervisor (strategies, intensity, restart types).
//! - [`journal`]: the journal writer: group commit of appends, snapshots.
//! - [`scheduler`]: run/task state, ready queue, retries, timers, halt, recovery.
//! - [`worker`]: runs one attempt at a time through the node's executor.
//! - [`control`]: the Unix-socket server for the admin CLI.
//!
//! Approvals, sagas and metrics (DESIGN.md) come next; the node tree leaves their places.

pub mod control;
pub mod journal;
pub mod scheduler;
pub mod supervisor;
pub mod worker;
