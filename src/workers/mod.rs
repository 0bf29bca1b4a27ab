//! Where attempts run. The scheduler dispatches to, terminates on, and hears back from
//! workers through one trait, [`WorkerLink`], so that where a worker lives (an actor in this
//! process today; a process on another machine later) is not the dispatch logic's concern.
//!
//! # Layout
//! - [`local`]: the node's own pool of worker actors, one per slot (the node `local`).
//! - [`remote`]: worker nodes on other machines (docs/cluster.md).
//! - this file: the contract, and [`Workers`], both behind one link: the scheduler's
//!   dispatch does not know which it uses.
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
pub mod remote;

use crate::messages::scheduler::{AttemptId, AttemptKind, AttemptOrder};

pub use local::LocalPool;
pub use remote::{RemoteNode, RemoteNodes};

pub use crate::messages::scheduler::Slot;

/// How the scheduler reaches workers (see the module docs for the contract).
pub trait WorkerLink: Send + 'static {
    /// Whether some slot could take an attempt now.
    fn has_free(&self) -> bool;

    /// Reserves a free slot for `attempt` on a node whose labels include all of `needs`,
    /// if any.
    fn reserve(&mut self, attempt: AttemptId, needs: &[String]) -> Option<Slot>;

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

/// The node's own pool and the worker nodes, behind one [`WorkerLink`]. An attempt goes to
/// whichever has the most free slots (the local pool on a tie). Compensations, and with
/// `[cluster] run_local = false` nothing else, run on the local pool; a task with
/// `node_labels` runs only on a worker node that has them all.
#[derive(Debug)]
pub struct Workers {
    /// The node `local`.
    pub local: LocalPool,
    /// Worker nodes.
    pub remote: RemoteNodes,
    /// Whether the local pool takes forward attempts.
    pub run_local: bool,
}

impl Workers {
    /// The node and lease a slot stands for (`None`: the local pool).
    pub fn placement(&self, slot: Slot) -> Option<(String, u64)> {
        let n = self.remote.node(RemoteNodes::of(slot)?);
        Some((n.id.clone(), n.epoch))
    }

    /// Like [`WorkerLink::reserve`], but first on a node not in `avoid` (worker node
    /// indices; `None` is the local pool) if one has a free slot: spreads the replicas of a
    /// swarm task over nodes (D67). Falls back to any node.
    pub fn reserve_spread(
        &mut self,
        attempt: AttemptId,
        needs: &[String],
        avoid: &[Option<usize>],
    ) -> Option<Slot> {
        if avoid.is_empty() {
            return self.reserve(attempt, needs);
        }
        let local_ok = needs.is_empty()
            && (self.run_local || attempt.kind == AttemptKind::Compensation)
            && self.local.has_free()
            && !avoid.contains(&None);
        let remote = (attempt.kind == AttemptKind::Forward)
            .then(|| self.remote.best_avoiding(needs, avoid))
            .flatten();
        match remote {
            Some((i, free)) if !local_ok || free > self.local.free_count() => {
                Some(self.remote.reserve(i, attempt))
            }
            _ if local_ok => self.local.reserve(attempt, needs),
            _ => self.reserve(attempt, needs),
        }
    }
}

impl WorkerLink for Workers {
    fn has_free(&self) -> bool {
        self.local.has_free() || self.remote.free() > 0
    }

    fn reserve(&mut self, attempt: AttemptId, needs: &[String]) -> Option<Slot> {
        let local_ok =
            needs.is_empty() && (self.run_local || attempt.kind == AttemptKind::Compensation);
        let remote = if attempt.kind == AttemptKind::Forward {
            self.remote.best(needs)
        } else {
            None
        };
        match remote {
            Some((i, free)) if !local_ok || free > self.local.free_count() => {
                Some(self.remote.reserve(i, attempt))
            }
            _ if local_ok => self.local.reserve(attempt, needs),
            _ => None,
        }
    }

    fn unreserve(&mut self, slot: Slot) {
        match RemoteNodes::of(slot) {
            // The attempt id is not known here: the scheduler releases it by id.
            Some(_) => {}
            None => self.local.unreserve(slot),
        }
    }

    fn dispatch(&mut self, slot: Slot, order: AttemptOrder) {
        match RemoteNodes::of(slot) {
            Some(i) => self.remote.dispatch(i, order),
            None => self.local.dispatch(slot, order),
        }
    }

    fn terminate(&mut self, slot: Slot, attempt: AttemptId, kill: bool) {
        match RemoteNodes::of(slot) {
            Some(i) => self.remote.terminate(i, attempt, kill),
            None => self.local.terminate(slot, attempt, kill),
        }
    }

    fn release(&mut self, slot: Slot, attempt: AttemptId) {
        match RemoteNodes::of(slot) {
            Some(i) => self.remote.release(i, attempt),
            None => self.local.release(slot, attempt),
        }
    }

    fn lend(&mut self, slot: Slot, attempt: AttemptId) {
        match RemoteNodes::of(slot) {
            Some(i) => self.remote.release(i, attempt),
            None => self.local.lend(slot, attempt),
        }
    }
}
