//! The fold: `apply(state, event)` rebuilds every run's and task's state from the journal.
//!
//! `apply` is pure and total: it reads no clock (time comes from [`EventRecord::time`]), it
//! either applies an event completely or refuses it with an [`ApplyError`] and leaves the state
//! untouched, and every state it can reach satisfies [`State::check_invariants`]. Derived
//! transitions happen inside the fold, not as stored events:
//! - a task whose dependencies have all succeeded becomes `ready` (or `awaiting_approval`);
//! - a task that fails for good (or is cancelled) turns its transitive dependents that have
//!   not started into `upstream_failed`; an operator `retry` reopens them;
//! - in a saga (a workflow with any `compensate`), the first task that fails for good switches
//!   the run to `compensating` and cancels every task that has not started; compensations then
//!   run one at a time, newest completion first, once no forward attempt is running;
//! - a run ends when every task is terminal (or every compensation is done).
//!
//! # Layout
//! - this file: [`State`] and the fold's dispatch: `apply_with` routes each event to its family.
//! - [`Run`] (`run.rs`): one run, its workflow and its tasks' states, and the accessors.
//! - [`Task`], [`Compensation`] (`task.rs`): the runtime state of a task and of its saga undo.
//! - [`Change`] (`change.rs`): the transitions a fold step reports to the actors.
//! - [`ApplyError`] (`error.rs`): why the fold refused an event.
//! - one file per event family: `submit.rs` (`run_submitted`), `attempts.rs` (attempt start,
//!   success, failure), `operator.rs` (cancel, suspend, resume, retry), `approvals.rs`,
//!   `compensation.rs` (saga undo), `halt.rs` (`node_halted`, `node_unhalted`), `handoff.rs`
//!   (`task_output`, `attempt_usage`, `task_expanded`: outputs, usage, dynamic fan-out),
//!   `lineage.rs` (`run_spawned`, `spawn_refused`, `budget_exhausted`: agent trees),
//!   `cluster.rs` (worker nodes' membership, attempt placements), `retention.rs`
//!   (`runs_removed`: which finished runs retention removes), `resilience.rs` (circuit
//!   breakers' states, hook calls).
//! - `require.rs`: the preconditions the families share; `transition.rs`: the moves they share
//!   (set a state, settle a task, end a run); `invariants.rs`: what every reachable state
//!   satisfies.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::event::{Event, EventRecord, Seq};
use super::ids::{RunId, TaskIndex};
use super::time::Timestamp;

mod approvals;
mod attempts;
mod change;
mod cluster;
mod compensation;
mod error;
mod halt;
mod handoff;
mod invariants;
mod lineage;
mod operator;
mod require;
mod resilience;
mod retention;
mod run;
mod submit;
mod swarm;
mod task;
mod transition;

pub use change::Change;
pub use cluster::{Cluster, Membership, NodeRecord};
pub use error::ApplyError;
pub use lineage::{programs, AskReason, Asking, Lineage};
pub use resilience::{
    BreakerRecord, BreakerState, HookRecord, HookState, Hooks, ResilienceState, MAX_FINISHED_HOOKS,
};
pub use run::Run;
pub use task::{Compensation, Task};

/// Everything the journal says, folded: all runs, the node's halt flag, the cluster.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct State {
    /// Sequence number of the last event applied (0: none). Events must arrive in increasing
    /// order, which is what makes "none applied twice" checkable.
    last_seq: Seq,
    /// Whether dispatching is halted (`halt` / `unhalt`).
    halted: bool,
    /// Runs by id (ids sort by submission time).
    runs: BTreeMap<RunId, Run>,
    /// Worker nodes and remote placements (snapshot schema 5; empty in older snapshots).
    cluster: Cluster,
    /// Circuit breakers and hook calls (snapshot schema 7; empty in older snapshots).
    resilience: ResilienceState,
    /// Runs by their workflow's `origin` (the inbox's content hash): what makes a second
    /// submission of the same file return the first run. Derived from `runs`, so it is not
    /// stored in snapshots (their layout stays); decoding rebuilds it.
    #[serde(skip)]
    origins: HashMap<String, RunId>,
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Snapshot schemas 1–4: no cluster.
        #[derive(Deserialize)]
        struct V4 {
            last_seq: Seq,
            halted: bool,
            runs: BTreeMap<RunId, Run>,
        }
        /// Snapshot schemas 5–6: no breakers or hooks.
        #[derive(Deserialize)]
        struct V5 {
            last_seq: Seq,
            halted: bool,
            runs: BTreeMap<RunId, Run>,
            cluster: Cluster,
        }
        #[derive(Deserialize)]
        struct V7 {
            last_seq: Seq,
            halted: bool,
            runs: BTreeMap<RunId, Run>,
            cluster: Cluster,
            resilience: ResilienceState,
        }
        let schema = crate::model::spec::decoding_schema();
        let mut state = if schema < 5 {
            let s = V4::deserialize(deserializer)?;
            State {
                last_seq: s.last_seq,
                halted: s.halted,
                runs: s.runs,
                cluster: Cluster::default(),
                resilience: ResilienceState::default(),
                origins: HashMap::new(),
            }
        } else if schema < 7 {
            let s = V5::deserialize(deserializer)?;
            State {
                last_seq: s.last_seq,
                halted: s.halted,
                runs: s.runs,
                cluster: s.cluster,
                resilience: ResilienceState::default(),
                origins: HashMap::new(),
            }
        } else {
            let s = V7::deserialize(deserializer)?;
            State {
                last_seq: s.last_seq,
                halted: s.halted,
                runs: s.runs,
                cluster: s.cluster,
                resilience: s.resilience,
                origins: HashMap::new(),
            }
        };
        state.origins = state
            .runs
            .values()
            .filter_map(|r| Some((r.workflow().spec().origin.clone()?, r.id())))
            .collect();
        Ok(state)
    }
}

impl State {
    /// An empty state (no events applied).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sequence number of the last applied event (0 if none).
    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    /// Whether dispatching is halted.
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// The run with id `id`.
    pub fn run(&self, id: RunId) -> Option<&Run> {
        self.runs.get(&id)
    }

    /// The run submitted with this workflow `origin` ([`crate::model::WorkflowSpec::origin`]),
    /// if it is still in the state (any run state; retention's `runs_removed` forgets it).
    pub fn run_by_origin(&self, origin: &str) -> Option<RunId> {
        self.origins.get(origin).copied()
    }

    /// All runs, oldest first.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.runs.values()
    }

    /// A copy holding only run `id` (if it exists), the halt flag and the last sequence
    /// number: what a dry run folds an operator command into, at the cost of one run rather
    /// than the whole node (no event about one run reads another).
    pub fn excerpt(&self, id: RunId) -> State {
        State {
            last_seq: self.last_seq,
            halted: self.halted,
            cluster: Cluster::default(),
            resilience: ResilienceState::default(),
            origins: HashMap::new(),
            runs: self
                .runs
                .get(&id)
                .map(|r| (id, r.clone()))
                .into_iter()
                .collect(),
        }
    }

    /// Applies one event. On error nothing changed.
    pub fn apply(&mut self, seq: Seq, record: &EventRecord) -> Result<(), ApplyError> {
        self.apply_with(seq, record, &mut Vec::new())
    }

    /// Applies one event and appends the transitions it caused to `changes`.
    pub fn apply_with(
        &mut self,
        seq: Seq,
        record: &EventRecord,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        if seq <= self.last_seq {
            return Err(ApplyError::OutOfOrder {
                seq,
                last: self.last_seq,
            });
        }
        let time = record.time;
        let event = &record.event;
        let name = event.type_name();
        match event {
            Event::RunSubmitted { run, workflow } => self.submit(*run, workflow, time, changes)?,
            Event::RunSpawned { .. } => self.spawn(event, time, changes)?,
            // The audit record of a refusal: no state changes.
            Event::SpawnRefused { .. } => {}
            Event::NodeHalted { .. } => self.halt(),
            Event::NodeUnhalted => self.unhalt(name)?,
            Event::NodeJoined { .. }
            | Event::NodeLost { .. }
            | Event::NodeDraining { .. }
            | Event::NodeLeft { .. }
            | Event::JoinRefused { .. }
            | Event::AttemptPlaced { .. }
            | Event::ResultRejected { .. } => self.apply_cluster(event, time)?,
            Event::RunsRemoved { runs, .. } => self.remove_runs(runs)?,
            Event::BreakerOpened { .. }
            | Event::BreakerHalfOpened { .. }
            | Event::BreakerClosed { .. }
            | Event::HookQueued { .. }
            | Event::HookStarted { .. }
            | Event::HookSucceeded { .. }
            | Event::HookFailed { .. } => self.apply_resilience(event, time)?,
            _ => {
                let run_id = event.run().expect("every other event names a run");
                let halted = self.halted;
                let run = self
                    .runs
                    .get_mut(&run_id)
                    .ok_or(ApplyError::UnknownRun(run_id))?;
                let was_finished = run.state().is_finished();
                run.apply(event, time, halted, changes)?;
                let finished = run.state().is_finished();
                if finished != was_finished {
                    self.child_finished_changed(run_id, finished, time);
                }
                if let Event::AttemptUsage { counters, .. } = event {
                    self.add_subtree_usage(run_id, counters);
                }
            }
        }
        self.last_seq = seq;
        Ok(())
    }

    /// Checks every invariant the fold maintains; `Err` describes the first violation.
    /// O(tasks + edges). The property tests call it after every event; replay calls it on a
    /// snapshot before trusting it (a snapshot is not built by the fold in this process).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.runs.values().try_for_each(Run::check_invariants)?;
        self.check_trees()
    }
}

impl Run {
    /// Applies an event about this run (every event but `run_submitted` and the halt pair),
    /// routed to its family.
    fn apply(
        &mut self,
        event: &Event,
        time: Timestamp,
        halted: bool,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        let t: Option<TaskIndex> = match event.task() {
            Some(task) => Some(self.index_of(task)?),
            None => None,
        };
        match event {
            Event::AttemptStarted { .. }
            | Event::TaskSucceeded { .. }
            | Event::AttemptFailed { .. }
            | Event::TaskFailed { .. } => self.apply_attempt(event, t, time, halted, changes),
            Event::TaskCancelled { .. }
            | Event::TaskSuspended { .. }
            | Event::TaskResumed { .. }
            | Event::TaskRetried { .. }
            | Event::RunCancelled { .. }
            | Event::RunSuspended { .. }
            | Event::RunResumed { .. } => self.apply_operator(event, t, time, changes),
            Event::ApprovalGranted { .. }
            | Event::ApprovalRejected { .. }
            | Event::ApprovalExpired { .. } => self.apply_approval(event, t, time, changes),
            Event::CompensationStarted { .. }
            | Event::CompensationSucceeded { .. }
            | Event::CompensationFailed { .. }
            | Event::CompensationRetried { .. } => self.apply_compensation(event, t, time, changes),
            Event::TaskOutput { .. } | Event::AttemptUsage { .. } | Event::TaskExpanded { .. } => {
                self.apply_handoff(event, t, time, changes)
            }
            Event::QuorumReached { .. } => self.apply_swarm(event, t, time, changes),
            Event::BudgetExhausted { .. } => self.exhaust(event, time, changes),
            Event::EscalationRequested { .. } => self.ask_budget(event, time, changes),
            Event::EscalationDecided { .. } => self.decide_escalation(event, time, changes),
            Event::RunSubmitted { .. }
            | Event::RunSpawned { .. }
            | Event::SpawnRefused { .. }
            | Event::NodeHalted { .. }
            | Event::NodeUnhalted
            | Event::NodeJoined { .. }
            | Event::NodeLost { .. }
            | Event::NodeDraining { .. }
            | Event::NodeLeft { .. }
            | Event::JoinRefused { .. }
            | Event::AttemptPlaced { .. }
            | Event::ResultRejected { .. }
            | Event::RunsRemoved { .. }
            | Event::BreakerOpened { .. }
            | Event::BreakerHalfOpened { .. }
            | Event::BreakerClosed { .. }
            | Event::HookQueued { .. }
            | Event::HookStarted { .. }
            | Event::HookSucceeded { .. }
            | Event::HookFailed { .. } => {
                unreachable!("handled by State::apply_with")
            }
        }
    }
}
