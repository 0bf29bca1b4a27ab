//! Worker nodes on other machines, as the scheduler sees them: their leases, free slots and
//! the attempts each holds, and the way orders reach them (ractor_cluster casts through
//! the worker's process group; docs/cluster.md).
//!
//! A remote slot is `REMOTE_SLOT | node index`: one [`Slot`] stands for a whole node, whose
//! capacity is counted here. Indices are never reused while the scheduler runs, so a slot
//! of a node that was lost and came back under a new lease is still the same node.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use ractor::ActorRef;

use crate::cluster::wire::{RemoteOrder, ToWorker};
use crate::messages::scheduler::{AttemptId, AttemptOrder, Slot};
use crate::read::outputs::Outputs;

/// The bit that marks a remote slot.
pub const REMOTE_SLOT: u32 = 1 << 31;

/// One worker node.
#[derive(Debug)]
pub struct RemoteNode {
    /// Its node id.
    pub id: String,
    /// Its lease (the journal's).
    pub epoch: u64,
    /// Holds a lease (not lost, not left).
    pub live: bool,
    /// Takes no new attempts (`troupe drain`).
    pub draining: bool,
    /// Attempts it runs at once.
    pub slots: u32,
    /// Its labels.
    pub labels: Vec<String>,
    /// Its address.
    pub addr: String,
    /// Attempts holding one of its slots.
    pub running: HashSet<AttemptId>,
    /// When it was last heard from (`None`: not since this scheduler started).
    pub heard: Option<Instant>,
    /// When its lease was (re)started in this scheduler: the lease of a node not heard from
    /// yet runs from here.
    pub since: Instant,
    /// Where its agent listens (found through its process group).
    pub worker: Option<ActorRef<ToWorker>>,
    /// Attempts whose result was rejected (so a resend is acknowledged, not journaled again).
    pub rejected: HashSet<AttemptId>,
}

impl RemoteNode {
    fn free(&self) -> u32 {
        if !self.live || self.draining || self.worker.is_none() {
            return 0;
        }
        self.slots.saturating_sub(self.running.len() as u32)
    }

    /// Whether its labels include all of `needs`.
    pub fn has_labels(&self, needs: &[String]) -> bool {
        needs.iter().all(|n| self.labels.contains(n))
    }

    /// Sends `m` to the node's agent; `false` if it cannot be reached now.
    pub fn send(&mut self, m: ToWorker) -> bool {
        if self.worker.is_none() {
            self.worker = find_worker(&self.id);
        }
        match &self.worker {
            Some(w) if w.cast(m).is_ok() => true,
            _ => {
                self.worker = None;
                false
            }
        }
    }
}

/// The agent of worker node `id`, through its process group (`None` without the `cluster`
/// feature, or when it has no session).
pub fn find_worker(id: &str) -> Option<ActorRef<ToWorker>> {
    #[cfg(feature = "cluster")]
    {
        crate::cluster::wire::live_member(&crate::cluster::wire::worker_group(id))
    }
    #[cfg(not(feature = "cluster"))]
    {
        let _ = id;
        None
    }
}

/// The worker nodes (see the module docs).
#[derive(Debug)]
pub struct RemoteNodes {
    /// Nodes by index.
    nodes: Vec<RemoteNode>,
    /// Node id → index.
    by_id: HashMap<String, usize>,
    /// Where orders read the outputs their task needs.
    outputs: Outputs,
}

impl RemoteNodes {
    /// No nodes; orders read outputs from `outputs`.
    pub fn new(outputs: Outputs) -> Self {
        RemoteNodes {
            nodes: Vec::new(),
            by_id: HashMap::new(),
            outputs,
        }
    }

    /// The index of node `id`, adding it (not live) if new.
    pub fn index(&mut self, id: &str) -> usize {
        if let Some(&i) = self.by_id.get(id) {
            return i;
        }
        let i = self.nodes.len();
        self.nodes.push(RemoteNode {
            id: id.to_owned(),
            epoch: 0,
            live: false,
            draining: false,
            slots: 0,
            labels: Vec::new(),
            addr: String::new(),
            running: HashSet::new(),
            heard: None,
            since: Instant::now(),
            worker: None,
            rejected: HashSet::new(),
        });
        self.by_id.insert(id.to_owned(), i);
        i
    }

    /// The node at `i`.
    pub fn node(&self, i: usize) -> &RemoteNode {
        &self.nodes[i]
    }

    /// The node at `i`, to change.
    pub fn node_mut(&mut self, i: usize) -> &mut RemoteNode {
        &mut self.nodes[i]
    }

    /// Node id → index, if known.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Every node.
    pub fn all(&self) -> &[RemoteNode] {
        &self.nodes
    }

    /// The slot standing for node `i`.
    pub fn slot(i: usize) -> Slot {
        Slot(REMOTE_SLOT | i as u32)
    }

    /// The node index of a remote slot (`None`: a local slot).
    pub fn of(slot: Slot) -> Option<usize> {
        (slot.0 & REMOTE_SLOT != 0).then_some((slot.0 & !REMOTE_SLOT) as usize)
    }

    /// Free slots over all nodes that could take work.
    pub fn free(&self) -> u32 {
        self.nodes.iter().map(RemoteNode::free).sum()
    }

    /// The node with the most free slots whose labels include `needs`, with its free count.
    pub fn best(&self, needs: &[String]) -> Option<(usize, u32)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.has_labels(needs))
            .map(|(i, n)| (i, n.free()))
            .filter(|(_, f)| *f > 0)
            .max_by_key(|(i, f)| (*f, std::cmp::Reverse(*i)))
    }

    /// [`Self::best`] among the nodes not in `avoid` (indices; `None` entries are ignored).
    pub fn best_avoiding(&self, needs: &[String], avoid: &[Option<usize>]) -> Option<(usize, u32)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| n.has_labels(needs) && !avoid.contains(&Some(*i)))
            .map(|(i, n)| (i, n.free()))
            .filter(|(_, f)| *f > 0)
            .max_by_key(|(i, f)| (*f, std::cmp::Reverse(*i)))
    }

    /// Whether some live node (busy or not) has all of `needs`.
    pub fn any_with(&self, needs: &[String]) -> bool {
        self.nodes
            .iter()
            .any(|n| n.live && !n.draining && n.has_labels(needs))
    }

    /// Books `attempt` on node `i`.
    pub fn reserve(&mut self, i: usize, attempt: AttemptId) -> Slot {
        self.nodes[i].running.insert(attempt);
        Self::slot(i)
    }

    /// `attempt` no longer holds a slot of node `i`.
    pub fn release(&mut self, i: usize, attempt: AttemptId) {
        if let Some(n) = self.nodes.get_mut(i) {
            n.running.remove(&attempt);
        }
    }

    /// Sends the order to node `i`. An order that cannot be built or sent is dropped, which
    /// reports the attempt interrupted.
    pub fn dispatch(&mut self, i: usize, order: AttemptOrder) {
        let id = order.report.id;
        let epoch = self.nodes[i].epoch;
        let outputs = &self.outputs;
        let wf = Arc::clone(&order.workflow);
        let built = RemoteOrder::build(
            epoch,
            id,
            &wf,
            order.agent.as_ref().and_then(|a| a.input.clone()),
            |t| outputs.value(id.run, &wf, t).map_err(|e| e.to_string()),
        );
        match built {
            Ok(remote) => {
                if self.nodes[i].send(ToWorker::Run(Box::new(remote))) {
                    order.report.forget();
                }
                // Not sent: the order drops here and reports itself interrupted.
            }
            Err(e) => {
                tracing::warn!(error = %e, node = %self.nodes[i].id, "could not build a remote order")
            }
        }
    }

    /// Asks node `i` to stop `attempt`.
    pub fn terminate(&mut self, i: usize, attempt: AttemptId, kill: bool) {
        if let Some(n) = self.nodes.get_mut(i) {
            n.send(ToWorker::Terminate { attempt, kill });
        }
    }
}
