//! Message types, one enum per actor (and later the control protocol).
//!
//! # Layout
//! - [`journal`]: what the journal actor accepts, and its reply types.
//!
//! Messages hold no closures and stay serde-friendly where they may later cross a process
//! boundary (ractor_cluster, behind the future `cluster` feature).

pub mod journal;
