//! Message types, one enum per actor (and later the control protocol).
//!
//! # Layout
//! - [`journal`]: what the journal actor accepts, and its reply types.
//! - [`scheduler`]: the scheduler's and the workers' messages.
//! - [`approval`]: the approval gate's messages.
//! - [`control`]: the control protocol spoken on the node's Unix socket.
//!
//! Messages hold no closures and stay serde-friendly where they may later cross a process
//! boundary (ractor_cluster, behind the future `cluster` feature).

pub mod approval;
pub mod control;
pub mod journal;
pub mod scheduler;
