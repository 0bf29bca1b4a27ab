//! Where attempts run. The scheduler dispatches to, terminates on, and hears back from
//! workers through one trait, [`WorkerLink`], so that where a worker lives (an actor in this
//! process today; a process on another machine later) is not the dispatch logic's concern.
//!
//! # Layout
//! - [`local`]: the node's own pool of worker actors, one per slot.
//!
//! # The contract
//! - A slot is reserved for one attempt ([`WorkerLink::reserve`]) when the scheduler decides
//!   to start it, and the order is sent ([`WorkerLink::dispatch`]) once that decision is
//!   durable. Every dispatched order is answered exactly once by an
//!   [`AttemptReport`](crate::messages::scheduler::AttemptReport) naming the same
//!   [`AttemptId`]: a worker that cannot be reached drops the order, whose
//!   [`ReportPort`](crate::messages::scheduler::ReportPort) then reports the attempt
//!   interrupted.
//! - A report frees its slot ([`WorkerLink::release`]) only if the slot still runs that
//!   attempt: a late report of an older attempt changes nothing.
//! - An attempt that waits for its children lends its slot ([`WorkerLink::lend`]): the
//!   slot takes another attempt while the waiting one runs on, uncounted, until it ends.

pub mod local;

use crate::messages::scheduler::{AttemptId, AttemptOrder};

pub use local::LocalPool;

pub use crate::messages::scheduler::Slot;

/// How the scheduler reaches workers (see the module docs for the contract).
pub trait WorkerLink: Send + 'static {
    /// Whether some slot could take an attempt now.
    fn has_free(&self) -> bool;

    /// Reserves a free slot for `attempt`, if any.
    fn reserve(&mut self, attempt: AttemptId) -> Option<Slot>;

    /// Gives back a slot reserved for an attempt that will not start after all.
    fn unreserve(&mut self, slot: Slot);

    /// Sends the order of the attempt reserved on `slot`.
    fn dispatch(&mut self, slot: Slot, order: AttemptOrder);

    /// Asks the worker on `slot` to stop `attempt` if it still runs it: SIGTERM, then
    /// SIGKILL after the grace period, or SIGKILL at once with `kill`.
    fn terminate(&mut self, slot: Slot, attempt: AttemptId, kill: bool);

    /// `attempt` reported its end: frees `slot` if it still holds that attempt.
    fn release(&mut self, slot: Slot, attempt: AttemptId);

    /// `attempt`, running on `slot`, waits for its child runs: its slot takes other
    /// attempts from now on while it runs on without one (an agent blocked in `troupe wait`
    /// must not hold a slot its own children need). Its later report frees nothing.
    fn lend(&mut self, slot: Slot, attempt: AttemptId);
}
