//! `node_joined`, `node_lost`, `node_draining`, `node_left`, `join_refused`,
//! `attempt_placed`, `result_rejected`: the cluster's membership and where attempts run.
//!
//! Every join gets a new lease epoch, unique in the journal, so an epoch alone names the node
//! and the lease an attempt was placed under: the fencing token a result must carry
//! (docs/cluster.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ApplyError;
use super::State;
use crate::model::event::Event;
use crate::model::ids::{RunId, TaskIndex};
use crate::model::task::TaskState;
use crate::model::time::Timestamp;

/// A worker node's membership, as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Membership {
    /// Holds a lease and takes attempts.
    Ready,
    /// Holds a lease, takes no new attempts (`troupe drain`).
    Draining,
    /// Its lease ended without it leaving (`node_lost`).
    Lost,
    /// It left on its own (`node_left`).
    Left,
}

impl Membership {
    /// The spelling of `troupe nodes`.
    pub fn as_str(self) -> &'static str {
        match self {
            Membership::Ready => "ready",
            Membership::Draining => "draining",
            Membership::Lost => "lost",
            Membership::Left => "left",
        }
    }

    /// Whether the node holds a lease (its attempts count).
    pub fn is_live(self) -> bool {
        matches!(self, Membership::Ready | Membership::Draining)
    }
}

/// One worker node as the journal last described it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Its current (or last) lease.
    pub epoch: u64,
    /// Its membership.
    pub state: Membership,
    /// Its address at the last join.
    pub addr: String,
    /// Attempts it runs at once.
    pub slots: u32,
    /// Its labels.
    pub labels: Vec<String>,
    /// When the membership last changed.
    pub since: Timestamp,
}

/// The cluster: worker nodes by id, and the lease each remote attempt was placed under.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Cluster {
    /// Nodes by id.
    nodes: BTreeMap<String, NodeRecord>,
    /// Epoch → node id (every epoch ever given).
    epochs: BTreeMap<u64, String>,
    /// (run, task) → (attempt, epoch) of the task's latest attempt placed on a worker node.
    placements: BTreeMap<(RunId, TaskIndex), (u32, u64)>,
}

impl Cluster {
    /// Nodes by id.
    pub fn nodes(&self) -> &BTreeMap<String, NodeRecord> {
        &self.nodes
    }

    /// The node `id`.
    pub fn node(&self, id: &str) -> Option<&NodeRecord> {
        self.nodes.get(id)
    }

    /// The last epoch given (0: none).
    pub fn last_epoch(&self) -> u64 {
        self.epochs.keys().next_back().copied().unwrap_or(0)
    }

    /// The node that held lease `epoch`.
    pub fn node_of(&self, epoch: u64) -> Option<&str> {
        self.epochs.get(&epoch).map(String::as_str)
    }

    /// Where the latest remote attempt of a task was placed: (attempt, node, epoch).
    pub fn placement(&self, run: RunId, task: TaskIndex) -> Option<(u32, &str, u64)> {
        let (attempt, epoch) = *self.placements.get(&(run, task))?;
        Some((attempt, self.node_of(epoch)?, epoch))
    }

    /// Every placement: (run, task) → (attempt, epoch).
    pub fn placements(&self) -> impl Iterator<Item = ((RunId, TaskIndex), (u32, u64))> + '_ {
        self.placements.iter().map(|(k, v)| (*k, *v))
    }
}

fn refuse(event: &Event, reason: String) -> ApplyError {
    ApplyError::NotAllowed {
        event: event.type_name(),
        run: event.run(),
        task: event.task().cloned(),
        reason,
    }
}

impl State {
    /// The cluster's membership and placements.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Applies a cluster event (see the module docs).
    pub(super) fn apply_cluster(
        &mut self,
        event: &Event,
        time: Timestamp,
    ) -> Result<(), ApplyError> {
        let c = &mut self.cluster;
        match event {
            Event::NodeJoined {
                node,
                epoch,
                addr,
                slots,
                labels,
            } => {
                if *epoch <= c.last_epoch() {
                    return Err(refuse(
                        event,
                        format!(
                            "epoch {epoch} is not after the last one, {}",
                            c.last_epoch()
                        ),
                    ));
                }
                if c.nodes.get(node).is_some_and(|n| n.state.is_live()) {
                    return Err(refuse(event, format!("node `{node}` still holds a lease")));
                }
                c.epochs.insert(*epoch, node.clone());
                c.nodes.insert(
                    node.clone(),
                    NodeRecord {
                        epoch: *epoch,
                        state: Membership::Ready,
                        addr: addr.clone(),
                        slots: *slots,
                        labels: labels.clone(),
                        since: time,
                    },
                );
            }
            Event::NodeLost { node, epoch, .. } | Event::NodeLeft { node, epoch } => {
                let n = c
                    .nodes
                    .get_mut(node)
                    .filter(|n| n.epoch == *epoch && n.state.is_live())
                    .ok_or_else(|| {
                        refuse(event, format!("node `{node}` holds no lease {epoch}"))
                    })?;
                n.state = if matches!(event, Event::NodeLost { .. }) {
                    Membership::Lost
                } else {
                    Membership::Left
                };
                n.since = time;
            }
            Event::NodeDraining { node } => {
                let n = c
                    .nodes
                    .get_mut(node)
                    .filter(|n| n.state.is_live())
                    .ok_or_else(|| refuse(event, format!("node `{node}` holds no lease")))?;
                if n.state != Membership::Draining {
                    n.state = Membership::Draining;
                    n.since = time;
                }
            }
            Event::AttemptPlaced {
                run,
                task,
                attempt,
                node,
                epoch,
            } => {
                let live = c
                    .nodes
                    .get(node)
                    .is_some_and(|n| n.epoch == *epoch && n.state.is_live());
                if !live {
                    return Err(refuse(
                        event,
                        format!("node `{node}` holds no lease {epoch}"),
                    ));
                }
                let r = self.runs.get(run).ok_or(ApplyError::UnknownRun(*run))?;
                let t = r.index_of(task)?;
                let ts = r.task(t);
                if ts.state != TaskState::Running || ts.attempts != *attempt {
                    return Err(refuse(
                        event,
                        format!("attempt {attempt} is not the running one"),
                    ));
                }
                self.cluster
                    .placements
                    .insert((*run, t), (*attempt, *epoch));
            }
            // Audit records.
            Event::JoinRefused { .. } | Event::ResultRejected { .. } => {}
            _ => unreachable!("routed here for cluster events only"),
        }
        Ok(())
    }
}
