//! The read side: what can be read of a node without asking it.
//!
//! A running node answers reads over its control socket ([`crate::client`]); when no node
//! serves a data dir, its journal is read here directly.
//!
//! # Layout
//! - [`offline`]: reads of a stopped node's journal: its events, and metrics from the durable
//!   per-minute rollups.

pub mod offline;
