//! The read side (CQRS): everything a client reads is answered here, from a projection of
//! the journal's committed events, never from the scheduler's mailbox.
//!
//! # Layout
//! - [`facts`]: what only the write side knows (slots held, `STOP`, draining, how far it
//!   decided), published by the scheduler.
//! - [`projection`]: the fold of the committed-event feed, kept by a follower task; the
//!   freshness wait (read-your-writes).
//! - [`views`]: `list`, `status`, `queue`, `dashboard`, the node, pending approvals, dead
//!   letters (`failed`).
//! - [`query`]: answers a read request.
//! - [`dry_run`]: what an operator command would change (`--dry-run`), without changing it.
//! - [`subscribe`]: streams pushed to subscribers as changes become durable.
//! - [`metrics`]: figures of a past window from the journal's durable rollups.
//! - [`offline`]: reads of a stopped node's journal (the CLI's only way into a journal).
//! - [`agents`]: `troupe tree` and the result of a run (`troupe wait`).
//! - [`hooks`]: `troupe hooks`: hook calls and their states.
//! - [`breakers`]: `troupe breakers`, and which breaker holds a ready task.
//! - [`outputs`]: task outputs, read from the journal when a dependent, an expansion or
//!   `troupe output` needs them.

pub mod agents;
pub mod breakers;
pub mod dry_run;
pub mod facts;
pub mod hooks;
pub mod metrics;
pub mod offline;
pub mod outputs;
pub mod projection;
pub mod query;
pub mod subscribe;
pub mod views;

pub use facts::WriteFacts;
pub use projection::ReadModel;
pub use views::ViewContext;
