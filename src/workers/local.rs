//! The node's own worker pool: one worker actor per slot, under the `workers` supervisor.
//!
//! A worker announces itself when it starts (`SchedulerMsg::WorkerUp`), also after a
//! restart; until then its slot takes no attempt. A worker found stopped when a slot is
//! reserved loses its slot until it announces itself again.

use ractor::ActorRef;

use crate::messages::scheduler::Slot;
use crate::messages::scheduler::{AttemptId, AttemptOrder, WorkerMsg};
use crate::workers::WorkerLink;

/// Worker actors by slot, which attempt each slot holds, and the free ones.
#[derive(Debug)]
pub struct LocalPool {
    /// Worker actors by slot (`None` until it announced itself).
    workers: Vec<Option<ActorRef<WorkerMsg>>>,
    /// The attempt each slot holds (reserved or running).
    busy: Vec<Option<AttemptId>>,
    /// Slots with a live, idle worker.
    free: Vec<u32>,
}

impl LocalPool {
    /// A pool of `slots` slots, none with a worker yet.
    pub fn new(slots: usize) -> Self {
        LocalPool {
            workers: vec![None; slots],
            busy: vec![None; slots],
            free: Vec::with_capacity(slots),
        }
    }

    /// The worker of `slot` started (or restarted): its slot takes attempts again unless it
    /// still holds one (whose report frees it).
    pub fn worker_up(&mut self, slot: u32, worker: ActorRef<WorkerMsg>) {
        let i = slot as usize;
        if i < self.workers.len() {
            self.workers[i] = Some(worker);
            if self.busy[i].is_none() && !self.free.contains(&slot) {
                self.free.push(slot);
            }
        }
    }

    /// Slots with an idle worker.
    pub fn free_count(&self) -> u32 {
        self.free.len() as u32
    }

    /// Slots (worker actors) in the pool.
    pub fn len(&self) -> u32 {
        self.workers.len() as u32
    }

    /// Whether the pool has no slots.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Slots holding an attempt.
    pub fn busy_count(&self) -> u32 {
        self.busy.iter().filter(|b| b.is_some()).count() as u32
    }

    /// Some live worker (test hooks).
    pub fn any_worker(&self) -> Option<ActorRef<WorkerMsg>> {
        self.workers.iter().flatten().next().cloned()
    }

    fn worker(&self, slot: Slot) -> Option<&ActorRef<WorkerMsg>> {
        self.workers.get(slot.0 as usize)?.as_ref()
    }
}

impl WorkerLink for LocalPool {
    fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    /// A free slot whose worker is alive. A worker that died is not given work: its slot
    /// comes back with the restarted worker's `WorkerUp` (an order sent to it would only
    /// come back interrupted).
    fn reserve(&mut self, attempt: AttemptId, _needs: &[String]) -> Option<Slot> {
        while let Some(slot) = self.free.pop() {
            let i = slot as usize;
            let alive = self.workers[i].as_ref().is_some_and(|w| {
                !matches!(
                    w.get_status(),
                    ractor::ActorStatus::Draining
                        | ractor::ActorStatus::Stopping
                        | ractor::ActorStatus::Stopped
                )
            });
            if alive {
                self.busy[i] = Some(attempt);
                return Some(Slot(slot));
            }
            self.workers[i] = None;
        }
        None
    }

    fn unreserve(&mut self, slot: Slot) {
        let i = slot.0 as usize;
        self.busy[i] = None;
        if self.workers[i].is_some() {
            self.free.push(slot.0);
        }
    }

    fn dispatch(&mut self, slot: Slot, order: AttemptOrder) {
        match self.worker(slot) {
            Some(w) => {
                let _ = w.cast(WorkerMsg::Run(Box::new(order)));
            }
            // The dropped order reports itself interrupted.
            None => drop(order),
        }
    }

    fn terminate(&mut self, slot: Slot, attempt: AttemptId, kill: bool) {
        if let Some(w) = self.worker(slot) {
            let _ = w.cast(if kill {
                WorkerMsg::Kill { attempt }
            } else {
                WorkerMsg::Terminate { attempt }
            });
        }
    }

    fn lend(&mut self, slot: Slot, attempt: AttemptId) {
        // The same as the attempt's end, for the slot; its worker keeps running it.
        self.release(slot, attempt);
    }

    fn release(&mut self, slot: Slot, attempt: AttemptId) {
        let i = slot.0 as usize;
        if self.busy.get(i) == Some(&Some(attempt)) {
            self.busy[i] = None;
            if self.workers[i].is_some() {
                self.free.push(slot.0);
            }
        }
    }
}
