//! Message types, one enum per actor (and later the control protocol).
//!
//! # Layout
//! - [`journal`]: what the journal actor accepts, and its reply types.
//! - [`scheduler`]: the scheduler's and the workers' messages.
//! - [`approval`]: the approval gate's messages.
//! - [`control`]: the control protocol spoken on the node's Unix socket.
//!
//! Messages hold no closures. Only the cluster's wire messages ([`crate::cluster::wire`])
//! cross a process boundary; everything here stays in one process.
//!
//! With the `cluster` feature, ractor has no blanket `Message` impl (docs/decisions.md D57):
//! each actor message type below says it is one, local only.

pub mod approval;
pub mod control;
pub mod journal;
pub mod scheduler;

#[cfg(feature = "cluster")]
mod local_only {
    impl ractor::Message for super::approval::ApprovalMsg {}
    impl ractor::Message for super::journal::JournalMsg {}
    impl ractor::Message for super::scheduler::SchedulerMsg {}
    impl ractor::Message for super::scheduler::WorkerMsg {}
    impl ractor::Message for crate::actors::metrics::MetricsMsg {}
    impl ractor::Message for crate::actors::supervisor::SupervisorMsg {}
}
