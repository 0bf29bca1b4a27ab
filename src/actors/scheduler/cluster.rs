//! Worker nodes: joins, heartbeats and leases, results and their fencing, draining, and
//! the nodes a restarted coordinator finds in its journal (docs/cluster.md).
//!
//! The rules:
//! - every join that does not resume a lease gets a new epoch (`node_joined`); a node that
//!   joins again while its old lease is live loses that lease first (`node_lost`); a join
//!   naming an older lease than the live one (queued before the worker heard of the newer)
//!   changes nothing and is answered with the live lease;
//! - a node not heard from for 2× the heartbeat is lost: its attempts are closed as
//!   `interrupted` and retried under their policy;
//! - a result counts only if the attempt still runs, was placed on that node, and the node
//!   still holds the lease the result names; otherwise it is `result_rejected` (once per
//!   attempt) and changes nothing. A resend of a result already counted is only
//!   acknowledged;
//! - the acknowledgement of a result goes out once what it caused is durable.

use std::time::Instant;

use super::*;
use crate::cluster::wire::{Join, ToCoordinator, ToWorker, WireResult, PROTOCOL};
use crate::messages::control::NodeInfo;
use crate::messages::scheduler::{AttemptKind, AttemptOutcome, AttemptReport, Slot};
use crate::model::{Membership, RunId, TaskIndex, TaskState, Timestamp};
use crate::workers::RemoteNodes;

/// What the scheduler sends a worker node once durable.
pub(crate) struct Wire {
    /// The node's index.
    pub(crate) node: usize,
    /// The message.
    pub(crate) message: ToWorker,
}

fn interrupted(id: crate::messages::scheduler::AttemptId, slot: Slot) -> AttemptReport {
    AttemptReport {
        id,
        slot,
        outcome: AttemptOutcome::interrupted(),
    }
}

fn outcome_name(o: &AttemptOutcome) -> &'static str {
    match o {
        AttemptOutcome::Succeeded { .. } => "succeeded",
        AttemptOutcome::Failed { .. } => "failed",
        AttemptOutcome::Terminated { .. } => "terminated",
    }
}

impl SchedulerState {
    /// A message from a worker node (through the gateway).
    pub(crate) fn cluster_message(&mut self, m: ToCoordinator) {
        match m {
            ToCoordinator::Join(j) => self.join(*j),
            ToCoordinator::Heartbeat { node, epoch, .. } => self.heartbeat(&node, epoch),
            ToCoordinator::Result(r) => self.remote_result(*r),
            ToCoordinator::Leaving { node, epoch } => self.leaving(&node, epoch),
        }
    }

    fn wire(&mut self, node: usize, message: ToWorker) {
        self.after_persist(Effect::Wire(Wire { node, message }));
    }

    fn join(&mut self, j: Join) {
        let Some(cfg) = self.shared.config.cluster.clone() else {
            return;
        };
        let i = self.workers.remote.index(&j.node);
        {
            let n = self.workers.remote.node_mut(i);
            n.worker = crate::workers::remote::find_worker(&j.node);
        }
        let refusal = if j.protocol != PROTOCOL {
            Some(format!(
                "it speaks cluster protocol {}, this coordinator {PROTOCOL}",
                j.protocol
            ))
        } else if !self.shared.join_tokens().iter().any(|t| t == &j.token) {
            Some("unknown join token".to_owned())
        } else if j.slots == 0 {
            Some("it offers 0 slots".to_owned())
        } else {
            None
        };
        if let Some(reason) = refusal {
            tracing::warn!(node = %j.node, addr = %j.addr, %reason, "join refused");
            let _ = self.decide(Event::JoinRefused {
                node: j.node,
                addr: j.addr,
                reason: reason.clone(),
            });
            self.wire(i, ToWorker::Refused { reason });
            return;
        }
        let record = self.state.cluster().node(&j.node).cloned();
        // A join naming an older lease than the live one was queued before the worker
        // heard of the newer lease (joins resent into a stalled session arrive together
        // when it heals): the live lease stands; the worker is told it again.
        if let Some(r) = record
            .as_ref()
            .filter(|r| r.state.is_live() && j.epoch.is_some_and(|e| e < r.epoch))
        {
            let n = self.workers.remote.node_mut(i);
            n.heard = Some(Instant::now());
            tracing::info!(node = %j.node, stale = j.epoch, epoch = r.epoch, "a join for an older lease: the live one stands");
            self.wire(
                i,
                ToWorker::Welcome {
                    epoch: r.epoch,
                    heartbeat_ms: cfg.heartbeat.as_millis() as u64,
                    grace_ms: self.shared.config.grace.as_millis() as u64,
                    log_cap: self.shared.config.log_cap,
                },
            );
            return;
        }
        let resume = record
            .as_ref()
            .is_some_and(|r| r.state.is_live() && Some(r.epoch) == j.epoch);
        if resume {
            let epoch = j.epoch.expect("checked");
            let keep: std::collections::HashSet<_> =
                j.running.iter().chain(&j.spooled).copied().collect();
            let gone: Vec<_> = self
                .workers
                .remote
                .node(i)
                .running
                .iter()
                .filter(|a| !keep.contains(a))
                .copied()
                .collect();
            let n = self.workers.remote.node_mut(i);
            n.live = true;
            n.heard = Some(Instant::now());
            n.slots = j.slots;
            n.labels = j.labels;
            tracing::info!(node = %j.node, epoch, lost_attempts = gone.len(), "node resumed its lease");
            for id in gone {
                self.attempt_ended(interrupted(id, RemoteNodes::slot(i)));
            }
        } else {
            if let Some(r) = record.filter(|r| r.state.is_live()) {
                self.lose_node(i, r.epoch, "it joined again without its lease".into());
            }
            let epoch = self.state.cluster().last_epoch() + 1;
            if let Err(e) = self.decide(Event::NodeJoined {
                node: j.node.clone(),
                epoch,
                addr: j.addr.clone(),
                slots: j.slots,
                labels: j.labels.clone(),
            }) {
                tracing::error!(error = %e, "node_joined refused by the fold");
                return;
            }
            let n = self.workers.remote.node_mut(i);
            n.epoch = epoch;
            n.live = true;
            n.draining = false;
            n.slots = j.slots;
            n.labels = j.labels;
            n.addr = j.addr;
            n.heard = Some(Instant::now());
            n.since = Instant::now();
            n.rejected.clear();
            tracing::info!(node = %j.node, epoch, slots = j.slots, "node joined");
        }
        self.unpark_labels();
        let epoch = self.workers.remote.node(i).epoch;
        self.wire(
            i,
            ToWorker::Welcome {
                epoch,
                heartbeat_ms: cfg.heartbeat.as_millis() as u64,
                grace_ms: self.shared.config.grace.as_millis() as u64,
                log_cap: self.shared.config.log_cap,
            },
        );
    }

    fn heartbeat(&mut self, node: &str, epoch: u64) {
        let Some(i) = self.workers.remote.find(node) else {
            let i = self.workers.remote.index(node);
            self.workers.remote.node_mut(i).send(ToWorker::Rejoin {
                reason: "this coordinator does not know the node".into(),
            });
            return;
        };
        let n = self.workers.remote.node_mut(i);
        if n.live && n.epoch == epoch {
            n.heard = Some(Instant::now());
            n.send(ToWorker::HeartbeatAck { epoch });
        } else {
            n.send(ToWorker::Rejoin {
                reason: format!("lease {epoch} is over"),
            });
        }
    }

    fn leaving(&mut self, node: &str, epoch: u64) {
        let Some(i) = self.workers.remote.find(node) else {
            return;
        };
        let n = self.workers.remote.node(i);
        if !(n.live && n.epoch == epoch) {
            return;
        }
        let _ = self.decide(Event::NodeLeft {
            node: node.to_owned(),
            epoch,
        });
        self.drop_lease(i);
        tracing::info!(node, epoch, "node left");
    }

    /// Offers the tasks waiting for a labelled node again.
    pub(crate) fn unpark_labels(&mut self) {
        self.queue.extend(self.label_parked.drain(..));
    }

    /// Ends node `i`'s lease `epoch` as lost: journaled, its attempts interrupted.
    pub(crate) fn lose_node(&mut self, i: usize, epoch: u64, reason: String) {
        let id = self.workers.remote.node(i).id.clone();
        tracing::warn!(node = %id, epoch, %reason, "node lost");
        if let Err(e) = self.decide(Event::NodeLost {
            node: id,
            epoch,
            reason: reason.clone(),
        }) {
            tracing::error!(error = %e, "node_lost refused by the fold");
        }
        self.drop_lease(i);
        self.workers
            .remote
            .node_mut(i)
            .send(ToWorker::Rejoin { reason });
    }

    /// The node's lease ended: its attempts are closed as interrupted.
    fn drop_lease(&mut self, i: usize) {
        let attempts: Vec<_> = self
            .workers
            .remote
            .node(i)
            .running
            .iter()
            .copied()
            .collect();
        self.workers.remote.node_mut(i).live = false;
        for id in attempts {
            self.attempt_ended(interrupted(id, RemoteNodes::slot(i)));
        }
    }

    /// Tick: nodes silent for longer than the lease are lost.
    pub(crate) fn check_leases(&mut self) {
        let Some(cfg) = &self.shared.config.cluster else {
            return;
        };
        let lease = cfg.lease();
        let due: Vec<(usize, u64, String)> = self
            .workers
            .remote
            .all()
            .iter()
            .enumerate()
            .filter(|(_, n)| n.live && n.heard.unwrap_or(n.since).elapsed() > lease)
            .map(|(i, n)| {
                let silent = n.heard.unwrap_or(n.since).elapsed();
                (
                    i,
                    n.epoch,
                    format!(
                        "not heard from for {} ms (lease {} ms)",
                        silent.as_millis(),
                        lease.as_millis()
                    ),
                )
            })
            .collect();
        for (i, epoch, reason) in due {
            self.lose_node(i, epoch, reason);
        }
    }

    fn remote_result(&mut self, r: WireResult) {
        let Some(i) = self.workers.remote.find(&r.node) else {
            return;
        };
        let id = r.attempt;
        let key = (id.run, id.task);
        let n = self.workers.remote.node(i);
        let holds = n.live && n.epoch == r.epoch;
        let running_here = self
            .running
            .get(&key)
            .is_some_and(|x| x.id == id && x.slot == RemoteNodes::slot(i));
        if holds && running_here {
            self.keep_log(&r);
            let outcome = r.outcome;
            self.attempt_ended(AttemptReport {
                id,
                slot: RemoteNodes::slot(i),
                outcome,
            });
            self.wire(i, ToWorker::Ack { attempt: id });
            return;
        }
        let placed = self
            .state
            .cluster()
            .placement(id.run, id.task)
            .is_some_and(|(a, _, e)| a == id.attempt && e == r.epoch);
        if holds && placed {
            // Counted before (a resend after a lost acknowledgement or a reconnect).
            self.wire(i, ToWorker::Ack { attempt: id });
            return;
        }
        if self.workers.remote.node(i).rejected.contains(&id) {
            self.wire(i, ToWorker::Ack { attempt: id });
            return;
        }
        let reason = if !holds {
            format!("node `{}` no longer holds lease {}", r.node, r.epoch)
        } else {
            "the attempt is not running on this node".to_owned()
        };
        let task = self
            .state
            .run(id.run)
            .map(|run| run.workflow().task_id(id.task).clone());
        if let Some(task) = task {
            tracing::warn!(node = %r.node, epoch = r.epoch, run_id = %id.run, task_id = %task, attempt = id.attempt, %reason, "result rejected");
            let _ = self.decide(Event::ResultRejected {
                run: id.run,
                task,
                attempt: id.attempt,
                node: r.node.clone(),
                epoch: r.epoch,
                outcome: outcome_name(&r.outcome).to_owned(),
                reason,
            });
        }
        self.workers.remote.node_mut(i).rejected.insert(id);
        self.wire(i, ToWorker::Ack { attempt: id });
    }

    /// Writes the log a worker sent back where `troupe logs` reads it.
    fn keep_log(&self, r: &WireResult) {
        let Some(run) = self.state.run(r.attempt.run) else {
            return;
        };
        let task_id = run.workflow().task_id(r.attempt.task);
        let path = self.shared.config.layout().attempt_log(
            r.attempt.run,
            task_id,
            AttemptKind::Forward,
            r.attempt.attempt,
        );
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&path, &r.log) {
            tracing::warn!(error = %e, path = %path.display(), "could not keep a remote attempt's log");
        }
    }

    /// `troupe drain NODE`.
    pub(crate) fn drain_node(&mut self, node: &str) -> Result<(), ControlError> {
        let i = self
            .workers
            .remote
            .find(node)
            .filter(|&i| self.workers.remote.node(i).live)
            .ok_or_else(|| {
                ControlError::Refused(format!("no worker node `{node}` holds a lease"))
            })?;
        self.decide(Event::NodeDraining {
            node: node.to_owned(),
        })
        .map_err(|e| ControlError::Refused(e.to_string()))?;
        self.workers.remote.node_mut(i).draining = true;
        self.publish_nodes();
        Ok(())
    }

    /// Recovery: worker nodes the journal says hold a lease get it back for one lease
    /// period (they reconnect and resume it, or are lost), and their running attempts stay
    /// theirs. Returns the attempts kept.
    pub(crate) fn restore_nodes(&mut self) -> Vec<(RunId, TaskIndex, u32)> {
        let live: Vec<(String, crate::model::NodeRecord)> = self
            .state
            .cluster()
            .nodes()
            .iter()
            .filter(|(_, n)| n.state.is_live())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, rec) in &live {
            let i = self.workers.remote.index(id);
            let n = self.workers.remote.node_mut(i);
            n.epoch = rec.epoch;
            n.live = true;
            n.draining = rec.state == Membership::Draining;
            n.slots = rec.slots;
            n.labels = rec.labels.clone();
            n.addr = rec.addr.clone();
            n.since = Instant::now();
            n.heard = None;
        }
        let mut kept = Vec::new();
        let placements: Vec<_> = self.state.cluster().placements().collect();
        for ((run, task), (attempt, epoch)) in placements {
            let Some(r) = self.state.run(run) else {
                continue;
            };
            let t = r.task(task);
            if t.state != TaskState::Running || t.attempts != attempt {
                continue;
            }
            let Some(node) = self.state.cluster().node_of(epoch).map(str::to_owned) else {
                continue;
            };
            let Some(i) = self.workers.remote.find(&node) else {
                continue;
            };
            if !(self.workers.remote.node(i).live && self.workers.remote.node(i).epoch == epoch) {
                continue;
            }
            let id = crate::messages::scheduler::AttemptId {
                run,
                task,
                kind: AttemptKind::Forward,
                attempt,
            };
            let pool = r.workflow().pool(task).map(str::to_owned);
            let slot = self.workers.remote.reserve(i, id);
            self.book(id, slot, pool);
            kept.push((run, task, attempt));
        }
        kept
    }

    /// `troupe nodes`: `local`, then the worker nodes by id (the journal's, with what this
    /// scheduler heard).
    pub(crate) fn node_infos(&self) -> Vec<NodeInfo> {
        let hb = self
            .shared
            .config
            .cluster
            .as_ref()
            .map(|c| c.heartbeat)
            .unwrap_or(crate::config::DEFAULT_HEARTBEAT);
        let local = &self.workers.local;
        let mut out = vec![NodeInfo {
            id: "local".into(),
            addr: String::new(),
            slots: local.len(),
            running: local.busy_count(),
            labels: Vec::new(),
            last_heartbeat: None,
            state: "ready".into(),
            epoch: 0,
        }];
        let t_now = now();
        for (id, rec) in self.state.cluster().nodes() {
            let n = self
                .workers
                .remote
                .find(id)
                .map(|i| self.workers.remote.node(i));
            let heard = n.and_then(|n| n.heard);
            let state = match rec.state {
                Membership::Ready | Membership::Draining => {
                    let silent = heard.map_or(hb * 3, |h| h.elapsed());
                    if heard.is_none() || silent > hb + hb / 2 {
                        "suspect"
                    } else {
                        rec.state.as_str()
                    }
                }
                s => s.as_str(),
            };
            out.push(NodeInfo {
                id: id.clone(),
                addr: rec.addr.clone(),
                slots: rec.slots,
                running: n.map_or(0, |n| n.running.len() as u32),
                labels: rec.labels.clone(),
                last_heartbeat: heard.map(|h| {
                    let ago = h.elapsed().as_millis() as u64;
                    Timestamp(t_now.0.saturating_sub(ago))
                }),
                state: state.into(),
                epoch: rec.epoch,
            });
        }
        out
    }
}
