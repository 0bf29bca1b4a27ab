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

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::event::{Event, EventRecord, Failure, Seq};
use super::ids::{RunId, TaskId, TaskIndex};
use super::run::RunState;
use super::task::{CompensationState, TaskState};
use super::time::Timestamp;
use super::workflow::Workflow;

/// Everything the journal says, folded: all runs and the node's halt flag.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct State {
    /// Sequence number of the last event applied (0: none). Events must arrive in increasing
    /// order, which is what makes "none applied twice" checkable.
    last_seq: Seq,
    /// Whether dispatching is halted (`halt` / `unhalt`).
    halted: bool,
    /// Runs by id (ids sort by submission time).
    runs: BTreeMap<RunId, Run>,
}

/// One run: its workflow and the state of each task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The run's id.
    id: RunId,
    /// The workflow as submitted (immutable for the life of the run).
    workflow: Arc<Workflow>,
    /// Run state machine position.
    state: RunState,
    /// When `run_submitted` was decided.
    submitted_at: Timestamp,
    /// When the run last reached a finished state (cleared if reopened).
    finished_at: Option<Timestamp>,
    /// Set by `run_suspended`: no task of the run is dispatchable.
    suspended: bool,
    /// Set by `run_cancelled` (kept so a compensated saga still shows it was cancelled).
    cancel_requested: bool,
    /// Cached `workflow.is_saga()`.
    saga: bool,
    /// Per-task state, by task index.
    tasks: Vec<Task>,
    /// Tasks in the order they succeeded: compensations run in reverse of this order, which
    /// is also a reverse topological order (a task succeeds only after its dependencies).
    completion_order: Vec<TaskIndex>,
    /// How many entries at the end of `completion_order` need no (more) compensation.
    compensation_cursor: u32,
    /// Number of tasks in each [`TaskState`] (indexed by `state as usize`).
    counts: [u32; 11],
}

/// The runtime state of one task of a run (its spec lives in the run's [`Workflow`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Task state machine position.
    pub state: TaskState,
    /// Attempts started so far; attempt numbers are `1..=attempts`.
    pub attempts: u32,
    /// `attempts` when the retry budget was last restored (operator `retry`); the budget
    /// counts `attempts - budget_base`.
    pub budget_base: u32,
    /// Direct dependencies that have not succeeded yet.
    pub waiting_on: u32,
    /// Suspended by an operator (as opposed to only by its run's suspension).
    pub suspended: bool,
    /// A human approved the first attempt.
    pub approved: bool,
    /// When the next attempt is due (state `retrying`, or a suspended task that was).
    pub retry_at: Option<Timestamp>,
    /// When the task last entered `awaiting_approval` (expiry counts from here).
    pub awaiting_since: Option<Timestamp>,
    /// When the current or last attempt started.
    pub started_at: Option<Timestamp>,
    /// When the task last reached a terminal state.
    pub finished_at: Option<Timestamp>,
    /// Why the last attempt failed, if it did.
    pub last_failure: Option<Failure>,
    /// Saga undo progress, once the run compensates and this step declares `compensate`.
    pub compensation: Option<Box<Compensation>>,
}

/// The undo side of a saga step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compensation {
    /// Compensation state machine position.
    pub state: CompensationState,
    /// Compensation attempts started so far.
    pub attempts: u32,
    /// `attempts` when an operator last retried the compensation; its retry budget counts
    /// `attempts - budget_base` (snapshot schema 2; 0 in older snapshots).
    pub budget_base: u32,
    /// When the next compensation attempt is due (state `retrying`).
    pub retry_at: Option<Timestamp>,
    /// Why the last compensation attempt failed, if it did.
    pub last_failure: Option<Failure>,
}

impl<'de> Deserialize<'de> for Compensation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Field order of snapshot schema 2 (must match the struct above).
        #[derive(Deserialize)]
        struct V2 {
            state: CompensationState,
            attempts: u32,
            budget_base: u32,
            retry_at: Option<Timestamp>,
            last_failure: Option<Failure>,
        }
        /// Snapshot schema 1: no `budget_base`.
        #[derive(Deserialize)]
        struct V1 {
            state: CompensationState,
            attempts: u32,
            retry_at: Option<Timestamp>,
            last_failure: Option<Failure>,
        }
        let v = if super::spec::decoding_schema() < 2 {
            let v = V1::deserialize(deserializer)?;
            V2 {
                state: v.state,
                attempts: v.attempts,
                budget_base: 0,
                retry_at: v.retry_at,
                last_failure: v.last_failure,
            }
        } else {
            V2::deserialize(deserializer)?
        };
        Ok(Compensation {
            state: v.state,
            attempts: v.attempts,
            budget_base: v.budget_base,
            retry_at: v.retry_at,
            last_failure: v.last_failure,
        })
    }
}

/// A transition the fold made, reported so actors can react (enqueue a ready task, notify,
/// count) without diffing states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A task changed state.
    Task {
        /// Its run.
        run: RunId,
        /// Its index in the run's workflow.
        task: TaskIndex,
        /// Previous state.
        from: TaskState,
        /// New state.
        to: TaskState,
    },
    /// A run changed state.
    Run {
        /// The run.
        run: RunId,
        /// Previous state.
        from: RunState,
        /// New state.
        to: RunState,
    },
    /// A saga step's compensation changed state (`from` is `None` when it is first needed).
    Compensation {
        /// Its run.
        run: RunId,
        /// The saga step.
        task: TaskIndex,
        /// Previous state.
        from: Option<CompensationState>,
        /// New state.
        to: CompensationState,
    },
}

/// Why the fold refused an event. The state is unchanged. During replay this means the
/// journal holds an event the fold cannot accept (a bug or a foreign journal): replay stops
/// and names the sequence number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// The event's sequence number is not after the last applied one (applied twice, or out
    /// of order).
    #[error("event {seq} is not after the last applied event {last}")]
    OutOfOrder {
        /// The refused event's sequence number.
        seq: Seq,
        /// The last applied sequence number.
        last: Seq,
    },
    /// `run_submitted` for a run id that exists.
    #[error("run {0} already exists")]
    DuplicateRun(RunId),
    /// The event names a run the journal never created.
    #[error("no run {0}")]
    UnknownRun(RunId),
    /// The event names a task its run's workflow does not have.
    #[error("run {run} has no task `{task}`")]
    UnknownTask {
        /// The run.
        run: RunId,
        /// The unknown task id.
        task: TaskId,
    },
    /// The event would move a task along an edge the state machine does not have.
    #[error("{event} for {run}/{task}: a {from} task cannot become {to}")]
    IllegalTaskTransition {
        /// The event's type name.
        event: &'static str,
        /// The run.
        run: RunId,
        /// The task.
        task: TaskId,
        /// Its current state.
        from: TaskState,
        /// The state the event implies.
        to: TaskState,
    },
    /// The event names an attempt other than the one it must be about.
    #[error("{event} for {run}/{task}: names attempt {got}, expected attempt {expected}")]
    WrongAttempt {
        /// The event's type name.
        event: &'static str,
        /// The run.
        run: RunId,
        /// The task.
        task: TaskId,
        /// The attempt number the state requires.
        expected: u32,
        /// The attempt number in the event.
        got: u32,
    },
    /// The event is not allowed in the run's or node's current situation.
    #[error("{event}{}: {reason}", target(.run, .task))]
    NotAllowed {
        /// The event's type name.
        event: &'static str,
        /// The run, if the event has one.
        run: Option<RunId>,
        /// The task, if the event has one.
        task: Option<TaskId>,
        /// What forbids it.
        reason: String,
    },
}

fn target(run: &Option<RunId>, task: &Option<TaskId>) -> String {
    match (run, task) {
        (Some(r), Some(t)) => format!(" for {r}/{t}"),
        (Some(r), None) => format!(" for {r}"),
        _ => String::new(),
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

    /// All runs, oldest first.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.runs.values()
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
            Event::RunSubmitted { run, workflow } => {
                if self.runs.contains_key(run) {
                    return Err(ApplyError::DuplicateRun(*run));
                }
                let r = Run::new(*run, Arc::clone(workflow), time, changes);
                self.runs.insert(*run, r);
            }
            Event::NodeHalted { .. } => self.halted = true,
            Event::NodeUnhalted => {
                if !self.halted {
                    return Err(ApplyError::NotAllowed {
                        event: name,
                        run: None,
                        task: None,
                        reason: "the node is not halted".into(),
                    });
                }
                self.halted = false;
            }
            _ => {
                let run_id = event.run().expect("every other event names a run");
                let halted = self.halted;
                let run = self
                    .runs
                    .get_mut(&run_id)
                    .ok_or(ApplyError::UnknownRun(run_id))?;
                run.apply(event, time, halted, changes)?;
            }
        }
        self.last_seq = seq;
        Ok(())
    }

    /// Checks every invariant the fold maintains; `Err` describes the first violation.
    /// O(tasks + edges). The property tests call it after every event; replay calls it on a
    /// snapshot before trusting it (a snapshot is not built by the fold in this process).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.runs.values().try_for_each(Run::check_invariants)
    }
}

impl Run {
    fn new(id: RunId, workflow: Arc<Workflow>, time: Timestamp, changes: &mut Vec<Change>) -> Run {
        let n = workflow.len();
        let plan = workflow.plan();
        let tasks = (0..n as TaskIndex)
            .map(|t| Task {
                state: TaskState::Pending,
                attempts: 0,
                budget_base: 0,
                waiting_on: plan.upstream_count(t),
                suspended: false,
                approved: false,
                retry_at: None,
                awaiting_since: None,
                started_at: None,
                finished_at: None,
                last_failure: None,
                compensation: None,
            })
            .collect();
        let mut counts = [0u32; 11];
        counts[TaskState::Pending as usize] = n as u32;
        let saga = workflow.is_saga();
        let mut run = Run {
            id,
            workflow,
            state: RunState::Running,
            submitted_at: time,
            finished_at: None,
            suspended: false,
            cancel_requested: false,
            saga,
            tasks,
            completion_order: Vec::new(),
            compensation_cursor: 0,
            counts,
        };
        for t in 0..n as TaskIndex {
            if run.tasks[t as usize].waiting_on == 0 {
                run.settle(t, time, changes);
            }
        }
        run
    }

    /// The run's id.
    pub fn id(&self) -> RunId {
        self.id
    }

    /// The workflow the run was submitted with.
    pub fn workflow(&self) -> &Arc<Workflow> {
        &self.workflow
    }

    /// The run's state.
    pub fn state(&self) -> RunState {
        self.state
    }

    /// When the run was submitted.
    pub fn submitted_at(&self) -> Timestamp {
        self.submitted_at
    }

    /// When the run last finished, if it is finished.
    pub fn finished_at(&self) -> Option<Timestamp> {
        self.finished_at
    }

    /// Whether the run is suspended.
    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// Whether an operator cancelled the run.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested
    }

    /// Per-task state, by index.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The task at `index`.
    pub fn task(&self, index: TaskIndex) -> &Task {
        &self.tasks[index as usize]
    }

    /// Number of tasks in `state`.
    pub fn count(&self, state: TaskState) -> u32 {
        self.counts[state as usize]
    }

    /// Tasks in the order they succeeded.
    pub fn completion_order(&self) -> &[TaskIndex] {
        &self.completion_order
    }

    /// The saga step whose compensation is due next (or running), if the run is compensating
    /// or waiting after a failed compensation.
    pub fn current_compensation(&self) -> Option<TaskIndex> {
        let len = self.completion_order.len();
        let done = self.compensation_cursor as usize;
        (done < len && self.saga && self.compensation_began())
            .then(|| self.completion_order[len - 1 - done])
    }

    fn compensation_began(&self) -> bool {
        matches!(
            self.state,
            RunState::Compensating | RunState::Compensated | RunState::CompensationFailed
        )
    }

    fn index_of(&self, task: &TaskId) -> Result<TaskIndex, ApplyError> {
        self.workflow
            .task_index(task.as_str())
            .ok_or_else(|| ApplyError::UnknownTask {
                run: self.id,
                task: task.clone(),
            })
    }

    fn not_allowed(&self, event: &Event, reason: impl Into<String>) -> ApplyError {
        ApplyError::NotAllowed {
            event: event.type_name(),
            run: Some(self.id),
            task: event.task().cloned(),
            reason: reason.into(),
        }
    }

    fn require_run_state(&self, event: &Event, allowed: &[RunState]) -> Result<(), ApplyError> {
        if allowed.contains(&self.state) {
            Ok(())
        } else {
            Err(self.not_allowed(event, format!("the run is {}", self.state)))
        }
    }

    /// The error for moving task `t` to `to`, which its state does not allow.
    fn illegal(&self, event: &Event, t: TaskIndex, to: TaskState) -> ApplyError {
        ApplyError::IllegalTaskTransition {
            event: event.type_name(),
            run: self.id,
            task: self.workflow.task_id(t).clone(),
            from: self.tasks[t as usize].state,
            to,
        }
    }

    /// Fails with `IllegalTaskTransition` unless task `t` may move to `to`.
    fn require_transition(
        &self,
        event: &Event,
        t: TaskIndex,
        to: TaskState,
    ) -> Result<(), ApplyError> {
        if self.tasks[t as usize].state.can_become(to) {
            Ok(())
        } else {
            Err(self.illegal(event, t, to))
        }
    }

    /// The event ends attempt `attempt` of task `t`, moving it to `to`: the task must be
    /// running that very attempt.
    fn require_running_attempt(
        &self,
        event: &Event,
        t: TaskIndex,
        attempt: u32,
        to: TaskState,
    ) -> Result<(), ApplyError> {
        let task = &self.tasks[t as usize];
        if task.state != TaskState::Running {
            return Err(self.illegal(event, t, to));
        }
        self.require_attempt(event, t, task.attempts, attempt)
    }

    fn require_attempt(
        &self,
        event: &Event,
        t: TaskIndex,
        expected: u32,
        got: u32,
    ) -> Result<(), ApplyError> {
        if expected == got {
            Ok(())
        } else {
            Err(ApplyError::WrongAttempt {
                event: event.type_name(),
                run: self.id,
                task: self.workflow.task_id(t).clone(),
                expected,
                got,
            })
        }
    }

    fn apply(
        &mut self,
        event: &Event,
        time: Timestamp,
        halted: bool,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        use RunState::*;
        let t = match event.task() {
            Some(task) => Some(self.index_of(task)?),
            None => None,
        };
        match event {
            Event::AttemptStarted { attempt, .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                if halted {
                    return Err(self.not_allowed(event, "the node is halted"));
                }
                let task = &self.tasks[t as usize];
                if !matches!(task.state, TaskState::Ready | TaskState::Retrying) {
                    return Err(self.illegal(event, t, TaskState::Running));
                }
                self.require_attempt(event, t, task.attempts + 1, *attempt)?;
                let task = &mut self.tasks[t as usize];
                task.attempts = *attempt;
                task.retry_at = None;
                task.started_at = Some(time);
                self.set(t, TaskState::Running, changes);
            }
            Event::TaskSucceeded { attempt, .. } => {
                let t = t.expect("task event");
                self.require_running_attempt(event, t, *attempt, TaskState::Succeeded)?;
                self.succeed(t, time, changes);
            }
            Event::AttemptFailed {
                attempt,
                failure,
                retry_at,
                ..
            } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                self.require_running_attempt(event, t, *attempt, TaskState::Retrying)?;
                let task = &self.tasks[t as usize];
                let used = task.attempts - task.budget_base;
                if !self.workflow.retry_policy(t).allows_another(used) {
                    return Err(self.not_allowed(
                        event,
                        format!("the retry policy allows no attempt after {used}"),
                    ));
                }
                let task = &mut self.tasks[t as usize];
                task.last_failure = Some(failure.clone());
                task.retry_at = Some(*retry_at);
                self.settle(t, time, changes);
            }
            Event::TaskFailed {
                attempt, failure, ..
            } => {
                let t = t.expect("task event");
                self.require_running_attempt(event, t, *attempt, TaskState::Failed)?;
                self.tasks[t as usize].last_failure = Some(failure.clone());
                self.fail_for_good(t, TaskState::Failed, time, changes);
            }
            Event::TaskCancelled { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running, Compensating])?;
                self.require_transition(event, t, TaskState::Cancelled)?;
                self.fail_for_good(t, TaskState::Cancelled, time, changes);
            }
            Event::TaskSuspended { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                let from = self.tasks[t as usize].state;
                if from == TaskState::Suspended {
                    return Err(self.not_allowed(event, "the task is already suspended"));
                }
                if !from.is_waiting() {
                    return Err(self.not_allowed(
                        event,
                        format!("only tasks that have not started can be suspended (it is {from})"),
                    ));
                }
                self.tasks[t as usize].suspended = true;
                self.set(t, TaskState::Suspended, changes);
            }
            Event::TaskResumed { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                if !self.tasks[t as usize].suspended {
                    return Err(self.not_allowed(event, "the task is not suspended"));
                }
                if self.suspended {
                    return Err(self
                        .not_allowed(event, "the whole run is suspended; resume the run instead"));
                }
                self.tasks[t as usize].suspended = false;
                if self.tasks[t as usize].state == TaskState::Suspended {
                    self.settle(t, time, changes);
                }
            }
            Event::TaskRetried { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running, Failed])?;
                let from = self.tasks[t as usize].state;
                if !matches!(from, TaskState::Failed | TaskState::Cancelled) {
                    let reason = if from == TaskState::UpstreamFailed {
                        "the task did not fail itself; retry the upstream task that failed"
                            .to_owned()
                    } else {
                        format!("only failed or cancelled tasks can be retried (it is {from})")
                    };
                    return Err(self.not_allowed(event, reason));
                }
                if let Some(u) = self
                    .workflow
                    .plan()
                    .upstream(t)
                    .find(|&u| self.tasks[u as usize].state.blocks_dependents())
                {
                    return Err(self.not_allowed(
                        event,
                        format!(
                            "its upstream task `{}` is {}; retry that first",
                            self.workflow.task_id(u),
                            self.tasks[u as usize].state
                        ),
                    ));
                }
                let task = &mut self.tasks[t as usize];
                task.budget_base = task.attempts;
                task.retry_at = None;
                task.finished_at = None;
                // A retried task that needs approval asks anew.
                task.awaiting_since = None;
                if matches!(
                    task.last_failure,
                    Some(Failure::ApprovalRejected | Failure::ApprovalExpired)
                ) {
                    task.approved = false;
                }
                self.reopen_run(time, changes);
                self.settle(t, time, changes);
                for d in self.workflow.clone().plan().transitive_downstream(t) {
                    let blocked = self
                        .workflow
                        .plan()
                        .upstream(d)
                        .any(|u| self.tasks[u as usize].state.blocks_dependents());
                    if self.tasks[d as usize].state == TaskState::UpstreamFailed && !blocked {
                        self.settle(d, time, changes);
                    }
                }
            }
            Event::RunCancelled { .. } => {
                self.require_run_state(event, &[Running])?;
                self.cancel_requested = true;
                // A saga lets running steps finish (their effects can then be compensated);
                // any other run has its running attempts cancelled too.
                let cancel_running = !self.saga;
                for t in 0..self.tasks.len() as TaskIndex {
                    let s = self.tasks[t as usize].state;
                    if s.is_waiting() || (cancel_running && s == TaskState::Running) {
                        self.tasks[t as usize].finished_at = Some(time);
                        self.set(t, TaskState::Cancelled, changes);
                    }
                }
                if self.saga {
                    self.begin_compensation(time, changes);
                } else {
                    self.set_run(Cancelled, time, changes);
                }
                self.check_finished(time, changes);
            }
            Event::RunSuspended { .. } => {
                self.require_run_state(event, &[Running])?;
                if self.suspended {
                    return Err(self.not_allowed(event, "the run is already suspended"));
                }
                self.suspended = true;
                for t in 0..self.tasks.len() as TaskIndex {
                    let s = self.tasks[t as usize].state;
                    if s.is_waiting() && s != TaskState::Suspended {
                        self.set(t, TaskState::Suspended, changes);
                    }
                }
            }
            Event::RunResumed { .. } => {
                self.require_run_state(event, &[Running])?;
                if !self.suspended {
                    return Err(self.not_allowed(event, "the run is not suspended"));
                }
                self.suspended = false;
                for t in 0..self.tasks.len() as TaskIndex {
                    let task = &self.tasks[t as usize];
                    if task.state == TaskState::Suspended && !task.suspended {
                        self.settle(t, time, changes);
                    }
                }
            }
            Event::ApprovalGranted { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                self.require_awaiting(event, t)?;
                self.tasks[t as usize].approved = true;
                self.settle(t, time, changes);
            }
            Event::ApprovalRejected { .. } | Event::ApprovalExpired { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                self.require_awaiting(event, t)?;
                self.tasks[t as usize].last_failure =
                    Some(if matches!(event, Event::ApprovalRejected { .. }) {
                        Failure::ApprovalRejected
                    } else {
                        Failure::ApprovalExpired
                    });
                self.fail_for_good(t, TaskState::Failed, time, changes);
            }
            Event::CompensationStarted { attempt, .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Compensating])?;
                if self.count(TaskState::Running) > 0 {
                    return Err(self.not_allowed(
                        event,
                        "forward attempts are still running; compensation waits for them",
                    ));
                }
                if self.current_compensation() != Some(t) {
                    let due = self
                        .current_compensation()
                        .map(|c| format!("`{}` is next", self.workflow.task_id(c)))
                        .unwrap_or_else(|| "nothing is left to compensate".into());
                    return Err(self.not_allowed(
                        event,
                        format!("compensations run newest completion first; {due}"),
                    ));
                }
                let c = self.compensation_of(event, t)?;
                self.require_compensation(event, c.state, CompensationState::Running)?;
                self.require_attempt(event, t, c.attempts + 1, *attempt)?;
                let c = self.tasks[t as usize]
                    .compensation
                    .as_mut()
                    .expect("checked");
                c.attempts = *attempt;
                c.retry_at = None;
                self.set_compensation(t, CompensationState::Running, changes);
            }
            Event::CompensationSucceeded { attempt, .. } => {
                let t = t.expect("task event");
                let c = self.compensation_of(event, t)?;
                self.require_compensation(event, c.state, CompensationState::Succeeded)?;
                self.require_attempt(event, t, c.attempts, *attempt)?;
                self.set_compensation(t, CompensationState::Succeeded, changes);
                self.tasks[t as usize].finished_at = Some(time);
                self.set(t, TaskState::Compensated, changes);
                self.advance_compensation_cursor();
                self.check_finished(time, changes);
            }
            Event::CompensationFailed {
                attempt,
                failure,
                retry_at,
                ..
            } => {
                let t = t.expect("task event");
                let c = self.compensation_of(event, t)?;
                let to = if retry_at.is_some() {
                    CompensationState::Retrying
                } else {
                    CompensationState::Failed
                };
                self.require_compensation(event, c.state, to)?;
                self.require_attempt(event, t, c.attempts, *attempt)?;
                let used = c.attempts - c.budget_base;
                if retry_at.is_some()
                    && !self
                        .workflow
                        .compensate_retry_policy(t)
                        .allows_another(used)
                {
                    return Err(self.not_allowed(
                        event,
                        format!("the compensation's retry policy allows no attempt after {used}"),
                    ));
                }
                let c = self.tasks[t as usize]
                    .compensation
                    .as_mut()
                    .expect("checked");
                c.last_failure = Some(failure.clone());
                c.retry_at = *retry_at;
                self.set_compensation(t, to, changes);
                if to == CompensationState::Failed {
                    self.set_run(CompensationFailed, time, changes);
                }
            }
            Event::CompensationRetried { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[CompensationFailed])?;
                let c = self.compensation_of(event, t)?;
                self.require_compensation(event, c.state, CompensationState::Pending)?;
                let c = self.tasks[t as usize]
                    .compensation
                    .as_mut()
                    .expect("checked");
                c.retry_at = None;
                c.budget_base = c.attempts;
                self.set_compensation(t, CompensationState::Pending, changes);
                self.finished_at = None;
                self.set_run(Compensating, time, changes);
            }
            Event::RunSubmitted { .. } | Event::NodeHalted { .. } | Event::NodeUnhalted => {
                unreachable!("handled by State::apply_with")
            }
        }
        Ok(())
    }

    fn require_awaiting(&self, event: &Event, t: TaskIndex) -> Result<(), ApplyError> {
        let s = self.tasks[t as usize].state;
        if s == TaskState::AwaitingApproval {
            Ok(())
        } else {
            Err(self.not_allowed(
                event,
                format!("the task is not awaiting approval (it is {s})"),
            ))
        }
    }

    fn compensation_of(&self, event: &Event, t: TaskIndex) -> Result<&Compensation, ApplyError> {
        self.tasks[t as usize]
            .compensation
            .as_deref()
            .ok_or_else(|| self.not_allowed(event, "the task has no compensation due"))
    }

    fn require_compensation(
        &self,
        event: &Event,
        from: CompensationState,
        to: CompensationState,
    ) -> Result<(), ApplyError> {
        if from.can_become(to) {
            Ok(())
        } else {
            Err(self.not_allowed(
                event,
                format!(
                    "a {} compensation cannot become {}",
                    from.as_str(),
                    to.as_str()
                ),
            ))
        }
    }

    /// Moves task `t` to `to`, keeping the per-state counts. Callers have checked legality.
    fn set(&mut self, t: TaskIndex, to: TaskState, changes: &mut Vec<Change>) {
        let task = &mut self.tasks[t as usize];
        let from = task.state;
        if from == to {
            return;
        }
        debug_assert!(from.can_become(to), "fold bug: {from} -> {to}");
        task.state = to;
        self.counts[from as usize] -= 1;
        self.counts[to as usize] += 1;
        changes.push(Change::Task {
            run: self.id,
            task: t,
            from,
            to,
        });
    }

    fn set_run(&mut self, to: RunState, time: Timestamp, changes: &mut Vec<Change>) {
        let from = self.state;
        if from == to {
            return;
        }
        debug_assert!(from.can_become(to), "fold bug: run {from} -> {to}");
        self.state = to;
        if to.is_finished() {
            self.finished_at = Some(time);
        }
        changes.push(Change::Run {
            run: self.id,
            from,
            to,
        });
    }

    fn set_compensation(&mut self, t: TaskIndex, to: CompensationState, changes: &mut Vec<Change>) {
        let c = self.tasks[t as usize]
            .compensation
            .as_mut()
            .expect("compensation exists");
        let from = c.state;
        c.state = to;
        changes.push(Change::Compensation {
            run: self.id,
            task: t,
            from: Some(from),
            to,
        });
    }

    /// The state a task that has not started belongs in now.
    fn settled_state(&self, t: TaskIndex) -> TaskState {
        let task = &self.tasks[t as usize];
        if task.suspended || self.suspended {
            TaskState::Suspended
        } else if task.waiting_on > 0 {
            TaskState::Pending
        } else if self.workflow.requires_approval(t) && !task.approved {
            TaskState::AwaitingApproval
        } else if task.retry_at.is_some() {
            TaskState::Retrying
        } else {
            TaskState::Ready
        }
    }

    fn settle(&mut self, t: TaskIndex, time: Timestamp, changes: &mut Vec<Change>) {
        let to = self.settled_state(t);
        let task = &mut self.tasks[t as usize];
        // The request is made once: suspending and resuming does not restart its expiry.
        if to == TaskState::AwaitingApproval && task.awaiting_since.is_none() {
            task.awaiting_since = Some(time);
        }
        self.set(t, to, changes);
    }

    fn succeed(&mut self, t: TaskIndex, time: Timestamp, changes: &mut Vec<Change>) {
        self.tasks[t as usize].finished_at = Some(time);
        self.tasks[t as usize].last_failure = None;
        self.set(t, TaskState::Succeeded, changes);
        self.completion_order.push(t);
        let workflow = Arc::clone(&self.workflow);
        for d in workflow.plan().downstream(t) {
            let task = &mut self.tasks[d as usize];
            task.waiting_on -= 1;
            if task.waiting_on == 0 && task.state == TaskState::Pending {
                self.settle(d, time, changes);
            }
        }
        if self.state == RunState::Compensating {
            // A forward attempt that was in flight when the saga aborted: undo it first.
            self.add_compensation(t, changes);
            self.compensation_cursor = 0;
            self.advance_compensation_cursor();
        }
        self.check_finished(time, changes);
    }

    fn fail_for_good(
        &mut self,
        t: TaskIndex,
        to: TaskState,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) {
        let task = &mut self.tasks[t as usize];
        task.finished_at = Some(time);
        task.retry_at = None;
        task.suspended = false;
        self.set(t, to, changes);
        // Dependents that have not started cannot run now. A dependent already
        // upstream_failed or cancelled has had its own dependents swept, so stop there.
        let workflow = Arc::clone(&self.workflow);
        let mut stack = vec![t];
        while let Some(u) = stack.pop() {
            for d in workflow.plan().downstream(u) {
                if matches!(
                    self.tasks[d as usize].state,
                    TaskState::Pending | TaskState::Suspended
                ) {
                    self.tasks[d as usize].finished_at = Some(time);
                    self.set(d, TaskState::UpstreamFailed, changes);
                    stack.push(d);
                }
            }
        }
        if self.saga && self.state == RunState::Running {
            for w in 0..self.tasks.len() as TaskIndex {
                if self.tasks[w as usize].state.is_waiting() {
                    self.tasks[w as usize].finished_at = Some(time);
                    self.set(w, TaskState::Cancelled, changes);
                }
            }
            self.begin_compensation(time, changes);
        }
        self.check_finished(time, changes);
    }

    fn begin_compensation(&mut self, time: Timestamp, changes: &mut Vec<Change>) {
        self.set_run(RunState::Compensating, time, changes);
        for i in 0..self.completion_order.len() {
            let t = self.completion_order[i];
            self.add_compensation(t, changes);
        }
        self.compensation_cursor = 0;
        self.advance_compensation_cursor();
    }

    fn add_compensation(&mut self, t: TaskIndex, changes: &mut Vec<Change>) {
        let declared = self.workflow.task(t).compensate.is_some();
        let task = &mut self.tasks[t as usize];
        if declared && task.compensation.is_none() {
            task.compensation = Some(Box::new(Compensation {
                state: CompensationState::Pending,
                attempts: 0,
                budget_base: 0,
                retry_at: None,
                last_failure: None,
            }));
            changes.push(Change::Compensation {
                run: self.id,
                task: t,
                from: None,
                to: CompensationState::Pending,
            });
        }
    }

    /// Skips, from the newest completion backwards, steps with nothing (left) to undo.
    fn advance_compensation_cursor(&mut self) {
        let len = self.completion_order.len();
        while (self.compensation_cursor as usize) < len {
            let t = self.completion_order[len - 1 - self.compensation_cursor as usize];
            match &self.tasks[t as usize].compensation {
                Some(c) if c.state != CompensationState::Succeeded => break,
                _ => self.compensation_cursor += 1,
            }
        }
    }

    fn reopen_run(&mut self, time: Timestamp, changes: &mut Vec<Change>) {
        if self.state == RunState::Failed {
            self.finished_at = None;
            self.set_run(RunState::Running, time, changes);
        }
    }

    /// Ends the run if nothing is left to do.
    fn check_finished(&mut self, time: Timestamp, changes: &mut Vec<Change>) {
        match self.state {
            RunState::Running => {
                let open: u32 = TaskState::ALL
                    .iter()
                    .filter(|s| !s.is_terminal())
                    .map(|&s| self.counts[s as usize])
                    .sum();
                if open == 0 {
                    let to = if self.count(TaskState::Succeeded) as usize == self.tasks.len() {
                        RunState::Succeeded
                    } else {
                        RunState::Failed
                    };
                    self.set_run(to, time, changes);
                }
            }
            RunState::Compensating
                if self.count(TaskState::Running) == 0 && self.current_compensation().is_none() =>
            {
                self.set_run(RunState::Compensated, time, changes);
            }
            _ => {}
        }
    }

    fn check_invariants(&self) -> Result<(), String> {
        let id = self.id;
        let wf = &self.workflow;
        let plan = wf.plan();
        if self.tasks.len() != wf.len() {
            return Err(format!(
                "{id}: {} task states for a workflow of {} tasks",
                self.tasks.len(),
                wf.len()
            ));
        }
        if self
            .completion_order
            .iter()
            .any(|&t| t as usize >= wf.len())
        {
            return Err(format!("{id}: completion order names a task out of range"));
        }
        let mut counts = [0u32; 11];
        for (i, task) in self.tasks.iter().enumerate() {
            let t = i as TaskIndex;
            let name = wf.task_id(t);
            let err = |what: &str| Err(format!("{id}/{name} ({}): {what}", task.state));
            counts[task.state as usize] += 1;
            let waiting = plan
                .upstream(t)
                .filter(|&u| {
                    !matches!(
                        self.tasks[u as usize].state,
                        TaskState::Succeeded | TaskState::Compensated
                    )
                })
                .count() as u32;
            if waiting != task.waiting_on {
                return err(&format!(
                    "waiting_on {} but {waiting} deps open",
                    task.waiting_on
                ));
            }
            let blocked = plan
                .upstream(t)
                .any(|u| self.tasks[u as usize].state.blocks_dependents());
            let dispatchable = matches!(
                task.state,
                TaskState::Ready | TaskState::Retrying | TaskState::AwaitingApproval
            );
            if dispatchable && (task.waiting_on > 0 || self.suspended || task.suspended) {
                return err("dispatchable while waiting or suspended");
            }
            if dispatchable && self.state != RunState::Running {
                return err("dispatchable in a run that is not running");
            }
            match task.state {
                TaskState::Pending if task.waiting_on == 0 => {
                    return err("pending with no deps open")
                }
                TaskState::Pending if blocked => return err("pending behind a failed dep"),
                TaskState::Ready if wf.requires_approval(t) && !task.approved => {
                    return err("ready without approval")
                }
                TaskState::Ready if task.retry_at.is_some() => return err("ready with retry_at"),
                TaskState::Retrying if task.retry_at.is_none() => {
                    return err("retrying without retry_at")
                }
                TaskState::AwaitingApproval if task.approved || !wf.requires_approval(t) => {
                    return err("awaiting approval it does not need")
                }
                TaskState::Running if task.attempts == 0 => return err("running attempt 0"),
                TaskState::Suspended if !(task.suspended || self.suspended) => {
                    return err("suspended without a suspension")
                }
                TaskState::UpstreamFailed if !blocked => {
                    return err("upstream_failed with no failed dep")
                }
                _ => {}
            }
            if task.attempts < task.budget_base {
                return err("budget base beyond attempts");
            }
            let has_comp = task.compensation.is_some();
            if has_comp && (wf.task(t).compensate.is_none() || !self.compensation_began()) {
                return err("compensation where none is due");
            }
            if task.state == TaskState::Compensated
                && task.compensation.as_ref().map(|c| c.state) != Some(CompensationState::Succeeded)
            {
                return err("compensated without a successful compensation");
            }
        }
        if counts != self.counts {
            return Err(format!(
                "{id}: counts {:?} but tasks say {counts:?}",
                self.counts
            ));
        }
        let mut seen = vec![false; self.tasks.len()];
        for &t in &self.completion_order {
            if std::mem::replace(&mut seen[t as usize], true) {
                return Err(format!("{id}: task {t} completed twice"));
            }
            if !matches!(
                self.tasks[t as usize].state,
                TaskState::Succeeded | TaskState::Compensated
            ) {
                return Err(format!(
                    "{id}: completion order holds a task that is not succeeded"
                ));
            }
        }
        let succeeded =
            (self.count(TaskState::Succeeded) + self.count(TaskState::Compensated)) as usize;
        if succeeded != self.completion_order.len() {
            return Err(format!("{id}: completion order misses succeeded tasks"));
        }
        let open = self.tasks.iter().filter(|t| !t.state.is_terminal()).count();
        let running = self.count(TaskState::Running);
        match self.state {
            RunState::Running if open == 0 => {
                return Err(format!("{id}: running with nothing open"))
            }
            RunState::Succeeded
                if self.count(TaskState::Succeeded) as usize != self.tasks.len() =>
            {
                return Err(format!("{id}: succeeded with unsucceeded tasks"))
            }
            RunState::Failed | RunState::Cancelled if open != 0 => {
                return Err(format!("{id}: finished with open tasks"))
            }
            RunState::Compensating | RunState::Compensated | RunState::CompensationFailed
                if open != running as usize =>
            {
                return Err(format!(
                    "{id}: compensating with tasks that have not started"
                ))
            }
            RunState::Compensated if running > 0 || self.current_compensation().is_some() => {
                return Err(format!("{id}: compensated with work left"))
            }
            _ => {}
        }
        if self.state.is_finished() != self.finished_at.is_some() {
            return Err(format!("{id}: finished_at disagrees with {}", self.state));
        }
        if self.compensation_began() {
            // Every step after the cursor is undone or has nothing to undo.
            let len = self.completion_order.len();
            for k in 0..self.compensation_cursor as usize {
                let t = self.completion_order[len - 1 - k];
                if let Some(c) = &self.tasks[t as usize].compensation {
                    if c.state != CompensationState::Succeeded {
                        return Err(format!("{id}: cursor skipped an open compensation"));
                    }
                }
            }
            let active = self
                .tasks
                .iter()
                .filter(|t| {
                    t.compensation.as_ref().is_some_and(|c| {
                        matches!(
                            c.state,
                            CompensationState::Running
                                | CompensationState::Retrying
                                | CompensationState::Failed
                        )
                    })
                })
                .count();
            if active > 1 {
                return Err(format!("{id}: more than one compensation in progress"));
            }
            let failed = self.tasks.iter().any(|t| {
                t.compensation
                    .as_ref()
                    .is_some_and(|c| c.state == CompensationState::Failed)
            });
            if failed != (self.state == RunState::CompensationFailed) {
                return Err(format!("{id}: compensation_failed disagrees with steps"));
            }
        }
        Ok(())
    }
}
