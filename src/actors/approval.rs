//! The approval gate: human-in-the-loop before dangerous work.
//!
//! A task that requires approval (its own `requires_approval`, `[defaults]`, or a node
//! [`ApprovalRule`] matching its pool, a label or its command) enters `awaiting_approval` once
//! its dependencies succeeded, before its first attempt, and is not dispatched until granted.
//! Deciding is an event like any other (`approval_granted`, `approval_rejected`,
//! `approval_expired`), decided by the scheduler, so a decision survives any crash and a
//! pending request survives restarts (it is pending in the fold).
//!
//! This actor keeps the index of pending requests, answers `troupe approvals` without
//! touching the scheduler (listing 100,000 requests does not delay dispatch), and keeps the
//! expiry clock: when a request reaches its expiry it asks the scheduler to expire it. The
//! scheduler checks the task still awaits that same request before journaling
//! `approval_expired`, so a late timer can never expire a granted or re-requested approval.
//!
//! The gate rebuilds itself on every start: it announces itself to the scheduler
//! ([`SchedulerMsg::ApprovalGateUp`]), which answers with every pending request and then
//! sends changes as their events become durable.
//!
//! # Expiry
//! A request expires `approval_timeout` after it was made: the task's (or `[defaults]`')
//! `approval_timeout`, else the rule's `timeout`, else the node's
//! [`NodeConfig::approval_timeout`](crate::config::NodeConfig::approval_timeout) (default 30
//! days, the limit GitHub Actions puts on deployment reviews and Azure Pipelines' default
//! approval timeout). A request whose expiry passed while the node was down expires at the
//! next boot.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::NodeContext;
use crate::messages::approval::{ApprovalChange, ApprovalMsg};
use crate::messages::control::PendingApproval;
use crate::messages::scheduler::SchedulerMsg;
use crate::model::{RunId, TaskId, Timestamp};

pub use crate::config::{apply_rules, ApprovalRule, DEFAULT_APPROVAL_TIMEOUT};
pub use crate::read::views::pending_approval;

/// The approval gate actor.
#[derive(Clone)]
pub struct ApprovalGate {
    /// Node-wide settings and handles.
    pub shared: Arc<NodeContext>,
}

type Key = (RunId, TaskId);

/// Pending requests by expiry (`troupe approvals` is answered by the read model, not here).
#[derive(Default)]
pub struct GateState {
    /// Request time of each pending request.
    index: HashMap<Key, (Timestamp, Timestamp)>,
    /// Expiry clock.
    expiry: BTreeSet<(Timestamp, Key)>,
    /// Earliest time a `Tick` is already scheduled for.
    armed: Option<Timestamp>,
}

impl GateState {
    fn insert(&mut self, p: PendingApproval) {
        let key = (p.run, p.task.clone());
        self.remove(&key);
        self.index
            .insert(key.clone(), (p.requested_at, p.expires_at));
        self.expiry.insert((p.expires_at, key));
    }

    fn remove(&mut self, key: &Key) {
        if let Some((_, expires)) = self.index.remove(key) {
            self.expiry.remove(&(expires, key.clone()));
        }
    }

    fn arm(&mut self, myself: &ActorRef<ApprovalMsg>) {
        let Some((at, _)) = self.expiry.first() else {
            return;
        };
        if self.armed.is_some_and(|a| a <= *at) {
            return;
        }
        self.armed = Some(*at);
        let wait = at.saturating_since(now()) + Duration::from_millis(1);
        myself.send_after(wait, || ApprovalMsg::Tick);
    }

    /// Asks the scheduler to expire every request past its expiry. They stay listed until
    /// the scheduler's `Closed` arrives.
    fn expire_due(&mut self, shared: &NodeContext) {
        let t = now();
        if self.armed.is_some_and(|a| a <= t) {
            self.armed = None;
        }
        let Some(scheduler) = shared.scheduler() else {
            return;
        };
        while let Some((at, _)) = self.expiry.first() {
            if *at > t {
                break;
            }
            let (_, (run, task)) = self.expiry.pop_first().expect("checked");
            let Some(&(requested_at, _)) = self.index.get(&(run, task.clone())) else {
                continue;
            };
            let _ = scheduler.cast(SchedulerMsg::ExpireApproval {
                run,
                task,
                requested_at,
            });
        }
    }
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

impl Actor for ApprovalGate {
    type Msg = ApprovalMsg;
    type State = GateState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<ApprovalMsg>,
        _args: (),
    ) -> Result<GateState, ActorProcessingErr> {
        let scheduler = self
            .shared
            .scheduler()
            .ok_or("approval gate started without a scheduler")?;
        scheduler.cast(SchedulerMsg::ApprovalGateUp(myself))?;
        Ok(GateState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<ApprovalMsg>,
        message: ApprovalMsg,
        s: &mut GateState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ApprovalMsg::Changed(changes) => {
                for change in changes {
                    match change {
                        ApprovalChange::Requested(p) => s.insert(p),
                        ApprovalChange::Closed { run, task } => s.remove(&(run, task)),
                    }
                }
            }
            ApprovalMsg::Reset(all) => {
                let armed = s.armed;
                *s = GateState::default();
                s.armed = armed;
                for p in all {
                    s.insert(p);
                }
            }
            // The timer runs on the monotonic clock, expiries on the wall clock: a tick that
            // arrives "early" by the wall clock must still re-arm.
            ApprovalMsg::Tick => s.armed = None,
        }
        s.expire_due(&self.shared);
        s.arm(&myself);
        Ok(())
    }
}
