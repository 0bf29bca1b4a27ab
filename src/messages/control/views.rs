//! What reads answer: the views of the node, runs, tasks, the queue, the dashboard, pending
//! approvals, health, and dry runs of operator commands.

use serde::{Deserialize, Serialize};

use crate::model::{
    CompensationState, Counters, RunId, RunState, Seq, TaskId, TaskState, Timestamp,
};

/// What `troupe dashboard` draws: the answer to [`super::Request::Dashboard`], and each frame
/// of a dashboard subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardView {
    /// The node (halted or not, counts).
    pub node: NodeView,
    /// The queue, best first, up to the requested limit (its `now` is the view's time).
    pub queue: QueueView,
    /// Attempts running now, oldest first.
    pub running: Vec<RunningAttempt>,
    /// The last (up to) 10 tasks that reached a terminal state, newest first.
    pub completions: Vec<Completion>,
    /// Attempt ends per second over the last 60 s, oldest first (60 entries; the last one is
    /// the current, partial second).
    pub throughput: Vec<u32>,
    /// Tasks that failed for good divided by tasks that succeeded or failed, over the last
    /// hour (0.0 when none ended); from the durable rollups.
    pub error_rate: f64,
}

/// An attempt running now, in [`DashboardView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningAttempt {
    /// The run.
    pub run: RunId,
    /// The task.
    pub task: TaskId,
    /// The run's workflow name.
    pub workflow: String,
    /// Attempt number (of the compensation, for a compensation).
    pub attempt: u32,
    /// A saga compensation rather than a forward attempt.
    pub compensation: bool,
    /// When the attempt started (elapsed = the view's `queue.now` minus this).
    pub started_at: Timestamp,
    /// Usage counters it reported so far (`TROUPE_USAGE`, read while it runs); empty if none.
    pub usage: Counters,
}

/// A task that reached a terminal state, in [`DashboardView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The run.
    pub run: RunId,
    /// The task.
    pub task: TaskId,
    /// The run's workflow name.
    pub workflow: String,
    /// `succeeded`, `failed`, `cancelled`, `upstream_failed` or `compensated`.
    pub state: TaskState,
    /// Attempts it took.
    pub attempts: u32,
    /// When it ended.
    pub finished_at: Timestamp,
}

/// How healthy the node is (Nagios: OK / WARNING / CRITICAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Every check passed (exit 0).
    Healthy,
    /// A check that does not stop work failed (exit 1).
    Degraded,
    /// The node cannot make progress (exit 2).
    Unhealthy,
}

impl Health {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// One check of [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Check name (`scheduler`, `backlog`, `error_rate`, `stalled`, `journal`, `disk`,
    /// `restarts`).
    pub name: String,
    /// What failing this check makes the node.
    pub status: Health,
    /// The measured value, in the check's unit.
    pub value: f64,
    /// The threshold the value is compared with, in the same unit.
    pub threshold: f64,
    /// Unit of `value` and `threshold` (`ms`, `tasks`, `ratio`, `s`, `bytes`, `restarts`).
    pub unit: String,
    /// One line for people.
    pub message: String,
}

/// The answer to [`super::Request::Health`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The worst status among the checks.
    pub status: Health,
    /// When the node evaluated the checks.
    pub now: Timestamp,
    /// Every check, passed or not.
    pub checks: Vec<HealthCheck>,
}

/// The queue as `troupe queue` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueView {
    /// When the node took this view.
    pub now: Timestamp,
    /// Whether dispatching is halted (nothing starts).
    pub halted: bool,
    /// Attempts running.
    pub running: u32,
    /// Worker slots.
    pub workers: u32,
    /// Attempts (and compensations) ended per second over the last minute.
    pub throughput: f64,
    /// Entries before the limit.
    pub total: u64,
    /// Best first: ready tasks by score (the scheduler's order), then retries by score, then
    /// (with `waiting`) tasks that cannot run yet.
    pub entries: Vec<QueueEntry>,
}

/// One task in [`QueueView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The run.
    pub run: RunId,
    /// The task.
    pub task: TaskId,
    /// The run's workflow name.
    pub workflow: String,
    /// `ready`, `retrying`, or (waiting) `pending`, `awaiting_approval`, `suspended`.
    pub state: TaskState,
    /// Effective priority.
    pub priority: i32,
    /// Effective pool.
    pub pool: Option<String>,
    /// Since when it waits: its last dependency's end (or the run's submission), or the end
    /// of its failed attempt for a retry.
    pub waiting_since: Timestamp,
    /// When a retry is due.
    pub retry_at: Option<Timestamp>,
    /// Estimated start: now if a worker is free for it, else its place in line divided by the
    /// recent throughput; `None` when it cannot be estimated (no recent throughput, halted,
    /// or the task cannot run yet).
    pub estimated_start: Option<Timestamp>,
    /// Why it is not running although ready (halted, run cap, pool full).
    pub blocked: Option<String>,
    /// Its score at `now` and the score's parts, in points, under the node's
    /// `[scheduling]` weights ([`crate::model::score`]; with scoring off, the priority).
    pub score: crate::model::score::Parts,
    /// Its `deadline` as an instant, if it has one.
    pub deadline: Option<Timestamp>,
    /// Its labels (the label boosts come from these).
    pub labels: Vec<String>,
}

/// One task waiting for a human decision, as `troupe approvals` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// The run.
    pub run: RunId,
    /// The task.
    pub task: TaskId,
    /// The run's workflow name.
    pub workflow: String,
    /// The command the task will run once approved.
    pub command: String,
    /// When the request was made (the task entered `awaiting_approval`).
    pub requested_at: Timestamp,
    /// When it expires and counts as rejected.
    pub expires_at: Timestamp,
}

/// A saga step's compensation, as `status RUN` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompensationView {
    /// `pending`, `running`, `retrying`, `succeeded` or `failed`.
    pub state: CompensationState,
    /// Compensation attempts started.
    pub attempts: u32,
    /// When the next compensation attempt is due (retrying).
    pub retry_at: Option<Timestamp>,
    /// Why the last compensation attempt failed.
    pub last_failure: Option<String>,
}

/// The node as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node's id.
    pub node_id: String,
    /// Process id of the node.
    pub pid: u32,
    /// Whether dispatching is halted.
    pub halted: bool,
    /// Whether the halt comes from a `STOP` file in the data dir.
    pub stop_file: bool,
    /// Runs not finished.
    pub active_runs: u32,
    /// All runs in the journal.
    pub total_runs: u32,
    /// Attempts running now.
    pub running_attempts: u32,
    /// Tasks ready and waiting for a worker.
    pub queued_tasks: u64,
    /// Worker actors.
    pub workers: u32,
    /// Last journal sequence number applied.
    pub last_seq: Seq,
    /// Tasks of unfinished runs that wait (pending, awaiting approval, ready, retrying,
    /// suspended).
    pub waiting_tasks: u64,
    /// When a task last reached a terminal state or a run was last submitted (or the
    /// scheduler started): the health check `stalled` measures from here.
    pub last_progress: Timestamp,
    /// Of the active runs, those a task spawned (agent trees' children).
    pub active_child_runs: u32,
    /// Why dispatch is halted after the journal refused a write (e.g. the disk is full),
    /// until `troupe unhalt` finds it writable again.
    pub fault: Option<String>,
}

/// One node of the cluster as `troupe nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `local` (the coordinator's own workers) or a worker's node id.
    pub id: String,
    /// Its address (`local`: none).
    pub addr: String,
    /// Attempts it runs at once.
    pub slots: u32,
    /// Attempts running on it now.
    pub running: u32,
    /// Its labels.
    pub labels: Vec<String>,
    /// When it was last heard from (`local`, and nodes not heard from since the
    /// coordinator started: none).
    pub last_heartbeat: Option<Timestamp>,
    /// `joining`, `ready`, `suspect` (not heard from for over one heartbeat), `lost`,
    /// `draining` or `left`.
    pub state: String,
    /// Its current (or last) lease epoch (`local`: 0).
    pub epoch: u64,
}

/// A run in `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Run id.
    pub id: RunId,
    /// Workflow name.
    pub name: String,
    /// Run state.
    pub state: RunState,
    /// When it was submitted.
    pub submitted_at: Timestamp,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// Number of tasks.
    pub tasks: u32,
    /// Tasks succeeded.
    pub succeeded: u32,
    /// Tasks failed, cancelled or upstream_failed.
    pub failed: u32,
    /// Tasks with an attempt running.
    pub running: u32,
    /// Tasks waiting for a human decision (`awaiting_approval`).
    pub awaiting_approval: u32,
    /// The run and task that spawned it (`None`: a root).
    pub parent: Option<(RunId, TaskId)>,
    /// The spawn key, for a spawned run.
    pub key: Option<String>,
    /// Children it spawned, and how many of them are live.
    pub children: (u32, u32),
    /// The escalation it asks a human to decide, if any (`troupe approve|reject RUN`): a
    /// finished run that asks is not done for `troupe wait`.
    pub asking: Option<String>,
}

/// A run's end as `troupe wait` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResultView {
    /// The run.
    pub run: RunId,
    /// Its spawn key, if it was spawned.
    pub key: Option<String>,
    /// The run and task that spawned it.
    pub parent: Option<(RunId, TaskId)>,
    /// Its state (not finished yet: `running` or `compensating`).
    pub state: RunState,
    /// The output of its output task (`output = "TASK"`, or its single final task) as
    /// compact JSON; `null` until that task succeeded.
    pub output: String,
}

/// `troupe tree RUN`: the run and its descendants, depth first in spawn order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeView {
    /// The nodes; the first is the run asked for.
    pub nodes: Vec<TreeNode>,
}

/// One run of a [`TreeView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    /// The run.
    pub run: RunId,
    /// Its workflow's name.
    pub name: String,
    /// Its state.
    pub state: RunState,
    /// 0 for a root.
    pub depth: u32,
    /// The run and task that spawned it.
    pub parent: Option<(RunId, TaskId)>,
    /// Its key.
    pub key: Option<String>,
    /// Usage of its whole subtree (journaled).
    pub usage: Counters,
    /// Its budget limits.
    pub budget: Counters,
    /// What was reserved from its parent at spawn.
    pub reserved: Counters,
    /// Budget left (limit − subtree usage − live children's unused reserves).
    pub left: Counters,
    /// The counter that ran out, if it ended `budget_exhausted`.
    pub exhausted: Option<String>,
    /// The escalation it asks a human to decide, if any.
    pub asking: Option<String>,
}

/// A run as `status RUN` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// Counts and times.
    pub summary: RunSummary,
    /// Whether the run is suspended.
    pub suspended: bool,
    /// Every task in file order, then the instances of mapped tasks in expansion order.
    pub tasks: Vec<TaskView>,
    /// Usage counters summed over the run's tasks (journaled figures plus what running
    /// attempts reported so far).
    pub usage: Counters,
}

/// A task as `status RUN/TASK` and `tasks RUN` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    /// Task id.
    pub id: TaskId,
    /// Task state.
    pub state: TaskState,
    /// Attempts started.
    pub attempts: u32,
    /// Ids of its direct dependencies.
    pub depends_on: Vec<TaskId>,
    /// Effective priority.
    pub priority: i32,
    /// Effective pool.
    pub pool: Option<String>,
    /// The command, as a user would type it.
    pub command: String,
    /// When the current or last attempt started.
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal state.
    pub finished_at: Option<Timestamp>,
    /// When the next attempt is due (retrying).
    pub retry_at: Option<Timestamp>,
    /// Why the last attempt failed.
    pub last_failure: Option<String>,
    /// The compensation command, for saga steps.
    pub compensate: Option<String>,
    /// The compensation's progress, once the run compensates and this step needs undoing.
    pub compensation: Option<CompensationView>,
    /// The node its latest attempt ran (or runs) on: `local` or a worker's node id (`None`
    /// before its first attempt).
    pub node: Option<String>,
    /// The kind of the last failure (`exit`, `output_invalid`, `gate_failed`, ...; see
    /// [`crate::model::Failure::kind`]).
    pub last_failure_kind: Option<String>,
    /// Usage counters summed over its attempts, the running one's reported figures included.
    pub usage: Counters,
    /// `for_each`, for a mapped task and its instances.
    pub for_each: Option<String>,
    /// For a mapped task once expanded: its number of instances.
    pub instances: Option<u32>,
}

/// The answer to [`super::Request::DryRun`]: what an operator command would change if it
/// were sent now. Nothing was changed or journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRunView {
    /// Type names of the events the command would journal, in order (`task_cancelled`, ...).
    pub events: Vec<String>,
    /// Runs whose state would change.
    pub runs: Vec<RunTransition>,
    /// Tasks whose state would change, in the order the fold would first move them.
    pub tasks: Vec<TaskTransition>,
    /// Saga compensations whose state would change.
    pub compensations: Vec<CompensationTransition>,
    /// Running attempts the command would terminate (SIGTERM, grace, SIGKILL).
    pub terminate: Vec<RunningAttempt>,
    /// For `halt`: what stopping dispatch would hold back.
    pub halt: Option<HaltPreview>,
}

/// A run's state before and after, in [`DryRunView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTransition {
    /// The run.
    pub run: RunId,
    /// Its state now.
    pub from: RunState,
    /// Its state after the command.
    pub to: RunState,
}

/// A task's state before and after, in [`DryRunView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTransition {
    /// Its run.
    pub run: RunId,
    /// The task.
    pub task: TaskId,
    /// Its state now.
    pub from: TaskState,
    /// Its state after the command.
    pub to: TaskState,
}

/// A saga compensation's state before and after, in [`DryRunView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompensationTransition {
    /// Its run.
    pub run: RunId,
    /// The saga step.
    pub task: TaskId,
    /// Its state now (`None`: not needed yet).
    pub from: Option<CompensationState>,
    /// Its state after the command.
    pub to: CompensationState,
}

/// What `halt` would hold back, in [`DryRunView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaltPreview {
    /// The node is halted already (halting again changes nothing).
    pub halted: bool,
    /// Whether this is `halt --kill`.
    pub kill: bool,
    /// Attempts and compensations running now, oldest first: `--kill` terminates them (they
    /// are retried after `unhalt`); without it they go on.
    pub running: Vec<RunningAttempt>,
    /// Ready and retrying tasks of running runs that would not be dispatched until `unhalt`.
    pub queued: u64,
}

/// A task's output, as `troupe output RUN/TASK` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputView {
    /// The run.
    pub run: RunId,
    /// The task.
    pub task: TaskId,
    /// Its state: an output exists only once it succeeded.
    pub state: TaskState,
    /// The output as compact JSON text (`null` when it wrote none); for a mapped task the
    /// array of its instances' outputs in index order.
    pub output: String,
}

/// What `troupe gc` removed (or, as a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// The cutoff: runs finished longer ago than this (ms).
    pub older_than_ms: u64,
    /// The runs, roots before their descendants.
    pub runs: Vec<RunId>,
    /// Their events deleted from the journal.
    pub events: u64,
    /// Encoded bytes of those events (before RocksDB's compression).
    pub event_bytes: u64,
    /// Their log (and handoff) files deleted.
    pub log_files: u64,
    /// Bytes of those files.
    pub log_bytes: u64,
}

/// Which dead letters [`super::Request::Failed`] lists (`troupe failed`, `troupe retry
/// --failed`): every filter set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedFilter {
    /// Only tasks that failed at most this long before the node's now (`--since`).
    pub since: Option<std::time::Duration>,
    /// Only this run's tasks (`--run`).
    pub run: Option<RunId>,
    /// Only tasks carrying every one of these labels (`--label`, repeatable).
    pub labels: Vec<String>,
}

/// A task that failed for good (state `failed`: its retries ran out, its failure was not
/// retryable, or its approval was rejected or expired): a dead letter, as `troupe failed`
/// lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedTask {
    /// The run.
    pub run: RunId,
    /// The run's workflow name.
    pub workflow: String,
    /// The run's state (a retry is refused unless it is `running` or `failed`).
    pub run_state: RunState,
    /// The task.
    pub task: TaskId,
    /// The failure's kind ([`crate::model::Failure::kind`]: `exit`, `signal`, `timed_out`,
    /// `approval_rejected`, ...).
    pub kind: String,
    /// The exit status, for kind `exit`.
    pub exit_code: Option<i32>,
    /// The signal that killed it, for kind `signal`.
    pub signal: Option<i32>,
    /// The failure for people (its `Display`: `exited with status 3`).
    pub message: String,
    /// Attempts started, all retries included (0: it never ran, e.g. a rejected approval).
    pub attempts: u32,
    /// When it failed for good.
    pub failed_at: Timestamp,
    /// Its labels (`labels` in the workflow file).
    pub labels: Vec<String>,
}

/// One circuit breaker as `troupe breakers` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerView {
    /// Its name (`WORKFLOW/NAME` for a workflow's).
    pub name: String,
    /// `closed`, `open`, `half_open`.
    pub state: String,
    /// Which tasks it watches: `pool=gpu label=api command=curl workflow=w`.
    pub scope: String,
    /// When it got to `state` (none: never tripped).
    pub since: Option<crate::model::Timestamp>,
    /// While open: when it lets probes through.
    pub until: Option<crate::model::Timestamp>,
    /// Why it is in `state` (what tripped it, who reset it).
    pub reason: Option<String>,
    /// How many times it opened.
    pub opened: u64,
    /// Ready or retrying tasks in its scope (held while it is open).
    pub waiting: u64,
    /// `failure_rate` (none: only `consecutive_failures` trips it).
    pub failure_rate: Option<f64>,
    /// `window`, attempts.
    pub window: u32,
    /// `min_attempts`.
    pub min_attempts: u32,
    /// `consecutive_failures`.
    pub consecutive_failures: Option<u32>,
    /// `open_for`, ms.
    pub open_for_ms: u64,
    /// `half_open_probes`.
    pub half_open_probes: u32,
}
