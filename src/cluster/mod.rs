//! Remote worker nodes over ractor_cluster: one coordinator (a node with `[cluster]`),
//! whose journal stays the single source of truth, and worker machines that run its
//! attempts (`troupe worker start --join ADDR`). docs/cluster.md has the whole story; the
//! guarantees (leases, fencing, results durable across the wire) are troupe's, built on
//! ractor_cluster's transport (docs/decisions.md D57).
//!
//! # Layout
//! - [`wire`]: the messages of both directions and what an order carries.
//! - [`gateway`]: the coordinator's end: the `NodeServer` and the actor worker messages
//!   arrive at (forwarded to the scheduler, which decides; see
//!   `actors::scheduler::cluster`).
//! - [`worker`]: a worker machine's process: joining, heartbeats, running attempts, the
//!   result spool.
//! - [`spool`]: results kept on the worker's disk until the coordinator acknowledges them.
//! - [`tls`]: rustls settings from PEM files (mutual TLS with a private CA).
//!
//! Only [`wire`] and [`spool`] build without the `cluster` feature.

#[cfg(feature = "cluster")]
pub mod gateway;
pub mod spool;
#[cfg(feature = "cluster")]
pub mod tls;
pub mod wire;
#[cfg(feature = "cluster")]
pub mod worker;
