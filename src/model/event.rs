//! Events: every state change troupe makes, as the journal stores it.
//!
//! # Versioning
//! The journal envelope carries [`EVENT_SCHEMA_VERSION`]. Adding a variant at the end of
//! [`Event`] (or of an enum inside it) keeps old journals readable and needs no bump. Changing
//! or removing fields of an existing variant does: bump the version, keep a decoder for the old
//! one in `storage::codec`, and add the old encoding to the golden file test.
//!
//! Events that derive from others are not stored: readiness (`pending → ready`),
//! `upstream_failed` propagation, a saga's switch to `compensating` and a run's end all follow
//! from the fold ([`super::state`]), so they cannot disagree with the events that caused them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ids::{RunId, TaskId};
use super::time::Timestamp;
use super::workflow::Workflow;

/// Version of the [`Event`] encoding written into each journal record's envelope.
///
/// | version | change |
/// |---|---|
/// | 1 | first release |
/// | 2 | task spec gains `labels` and `compensate_retry`, `[defaults]` gains `compensate_retry` (old workflows decode with both empty) |
/// | 3 | task spec gains `handoff` (`max_output`, `gate`, `for_each`), `[defaults]` gains `max_output` (old workflows decode with none); events `task_output`, `attempt_usage`, `task_expanded` and four failure kinds appended |
/// | 4 | workflow spec gains `delegation` (`output`, `[authority]`; old workflows decode with none); events `run_spawned`, `spawn_refused`, `budget_exhausted`, `escalation_requested`, `escalation_decided`, failure kind `child_failed` and run state `budget_exhausted` appended |
/// | 5 | the snapshot's state gains the cluster's membership and placements (snapshots of 4 decode with none); events `node_joined`, `node_lost`, `node_draining`, `node_left`, `join_refused`, `attempt_placed` and `result_rejected` appended |
/// | 6 | task spec gains `secret_env` (names only; old workflows decode with none) |
/// | 7 | task spec gains `retry_choice` (`retry_policy`, non-retryable failures), workflow spec gains `resilience` (`[[breakers]]`, `[[hooks]]`); old workflows decode with none. Events `breaker_opened`, `breaker_half_opened`, `breaker_closed`, `hook_queued`, `hook_started`, `hook_succeeded`, `hook_failed` and failure kind `vetoed` appended |
/// | 8 | task spec gains `scheduling` (`deadline`, `replicas` / `quorum` / `vote`), workflow spec gains `origin` (the inbox's content hash); old workflows decode with none. Event `quorum_reached`, failure kind `no_quorum` and expansions `swarm` / `replica` appended |
pub const EVENT_SCHEMA_VERSION: u16 = 8;

/// Named usage counters an attempt reports through `TROUPE_USAGE` (tokens, cost, ...):
/// counter name → value. Sorted by name, so sums and printing are deterministic.
pub type Counters = std::collections::BTreeMap<String, f64>;

/// Journal sequence number: 1 for the first event, then +1 per event, across all runs.
pub type Seq = u64;

/// What the journal stores per sequence number: the event and when the node decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Wall-clock time stamped by the node when it decided the event (ms since the epoch).
    /// The fold reads time only from here.
    pub time: Timestamp,
    /// The change itself.
    pub event: Event,
}

/// Why an attempt (or a compensation attempt) did not succeed.
///
/// (No serde tagging attributes here or on any journaled type: bincode cannot decode
/// internally tagged enums.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// The process exited with a non-zero status.
    Exit {
        /// The exit status (1–255).
        code: i32,
    },
    /// The process was ended by a signal it did not ask for.
    Signal {
        /// The signal number (e.g. 9 for SIGKILL).
        signal: i32,
    },
    /// The attempt ran past its timeout and was terminated.
    TimedOut,
    /// The process could not be started (program not found, cwd missing, ...).
    SpawnFailed {
        /// The operating system's explanation.
        message: String,
    },
    /// The node stopped (crash, kill -9, power loss) while the attempt was running; closed at
    /// the next boot.
    Interrupted,
    /// A human rejected the approval request.
    ApprovalRejected,
    /// The approval request expired before anyone decided.
    ApprovalExpired,
    /// An in-process task (embedding API) returned an error.
    Error {
        /// The task's error message.
        message: String,
    },
    /// The process exited 0 but its `TROUPE_OUTPUT` file is not one JSON value or is larger
    /// than `max_output` (event schema 3).
    OutputInvalid {
        /// What is wrong, with the position of a JSON error.
        message: String,
    },
    /// The task's quality gate did not accept the output (event schema 3).
    GateFailed {
        /// How the gate ended (exit status, signal, timeout, could not start).
        message: String,
    },
    /// A `{{ ... }}` template of the task could not be resolved at dispatch (event schema 3).
    TemplateFailed {
        /// The expression and why.
        message: String,
    },
    /// The `TROUPE_USAGE` file is not a JSON object of numbers (event schema 3).
    UsageInvalid {
        /// What is wrong.
        message: String,
    },
    /// The output does not fit a downstream `for_each`: not an array there, or more
    /// elements than the fan-out limit (event schema 3).
    FanOutInvalid {
        /// The downstream task, its expression and why.
        message: String,
    },
    /// A child run spawned with `on_failure = "fail_parent"` did not succeed; the attempt
    /// that was running is stopped (event schema 4).
    ChildFailed {
        /// The child run, its key and how it ended.
        message: String,
    },
    /// A `task_ready` hook with `veto = true` did not let the task run (event schema 7).
    Vetoed {
        /// The hook's name.
        hook: String,
        /// How the hook ended and the last line it printed.
        message: String,
    },
    /// A swarm task's replicas can no longer reach its quorum (event schema 8).
    NoQuorum {
        /// How many agreed at most, of how many needed, and the outputs seen with their
        /// counts.
        message: String,
    },
}

impl Failure {
    /// The failure kind as `events --json` and `status --json` name it (`failure_kind`):
    /// `exit`, `signal`, `timed_out`, `spawn_failed`, `interrupted`, `approval_rejected`,
    /// `approval_expired`, `error`, `output_invalid`, `gate_failed`, `template_failed`,
    /// `usage_invalid`, `fan_out_invalid`, `child_failed`, `vetoed`, `no_quorum`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Exit { .. } => "exit",
            Failure::Signal { .. } => "signal",
            Failure::TimedOut => "timed_out",
            Failure::SpawnFailed { .. } => "spawn_failed",
            Failure::Interrupted => "interrupted",
            Failure::ApprovalRejected => "approval_rejected",
            Failure::ApprovalExpired => "approval_expired",
            Failure::Error { .. } => "error",
            Failure::OutputInvalid { .. } => "output_invalid",
            Failure::GateFailed { .. } => "gate_failed",
            Failure::TemplateFailed { .. } => "template_failed",
            Failure::UsageInvalid { .. } => "usage_invalid",
            Failure::FanOutInvalid { .. } => "fan_out_invalid",
            Failure::ChildFailed { .. } => "child_failed",
            Failure::Vetoed { .. } => "vetoed",
            Failure::NoQuorum { .. } => "no_quorum",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Exit { code } => write!(f, "exited with status {code}"),
            Failure::Signal { signal } => write!(f, "killed by signal {signal}"),
            Failure::TimedOut => f.write_str("timed out"),
            Failure::SpawnFailed { message } => write!(f, "could not start: {message}"),
            Failure::Interrupted => f.write_str("interrupted by a node stop"),
            Failure::ApprovalRejected => f.write_str("approval rejected"),
            Failure::ApprovalExpired => f.write_str("approval expired"),
            Failure::Error { message } => write!(f, "error: {message}"),
            Failure::OutputInvalid { message } => write!(f, "output invalid: {message}"),
            Failure::GateFailed { message } => write!(f, "gate failed: {message}"),
            Failure::TemplateFailed { message } => write!(f, "template failed: {message}"),
            Failure::UsageInvalid { message } => write!(f, "usage invalid: {message}"),
            Failure::FanOutInvalid { message } => write!(f, "fan-out invalid: {message}"),
            Failure::ChildFailed { message } => write!(f, "child failed: {message}"),
            Failure::Vetoed { hook, message } => write!(f, "vetoed by hook {hook}: {message}"),
            Failure::NoQuorum { message } => write!(f, "no quorum: {message}"),
        }
    }
}

/// What an attempt's process used (from `getrusage`/`wait4`), journaled with its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceUsage {
    /// CPU time in user mode, µs.
    pub user_cpu_us: u64,
    /// CPU time in kernel mode, µs.
    pub system_cpu_us: u64,
    /// Peak resident set size, KiB.
    pub max_rss_kib: u64,
}

/// Who decided an approval and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    /// The name given with `--as`.
    pub name: String,
    /// The OS user behind the control connection (from the socket's peer credentials).
    pub os_user: String,
    /// The `--reason` text, if any.
    pub reason: Option<String>,
}

impl Approver {
    /// Longest `--as` name accepted, in characters.
    pub const MAX_NAME_CHARS: usize = 128;
    /// Longest `--reason` accepted, in characters.
    pub const MAX_REASON_CHARS: usize = 4096;

    /// Checks what a client gives before it is journaled (the OS user comes from the node):
    /// a name that is not blank, no control characters in the name or the reason (a newline
    /// would forge a line of the audit trail, an escape sequence drive a terminal), and both
    /// within their length limits. The error names the field. Journaled approvers are never
    /// re-checked (old journals keep loading); text output escapes what they hold.
    pub fn check(&self) -> Result<(), String> {
        let field = |flag: &str, text: &str, max: usize| {
            if text.chars().any(char::is_control) {
                return Err(format!(
                    "{flag} must not contain control characters (newlines, tabs, escapes)"
                ));
            }
            let n = text.chars().count();
            if n > max {
                return Err(format!(
                    "{flag} is {n} characters; at most {max} are accepted"
                ));
            }
            Ok(())
        };
        if self.name.trim().is_empty() {
            return Err("--as needs a name".into());
        }
        field("--as", &self.name, Self::MAX_NAME_CHARS)?;
        if let Some(reason) = &self.reason {
            field("--reason", reason, Self::MAX_REASON_CHARS)?;
        }
        Ok(())
    }
}

/// A state change. Variant order is part of the journal format: append only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A run was created from a validated workflow. Its ready tasks follow from the fold.
    RunSubmitted {
        /// The new run's id.
        run: RunId,
        /// The workflow exactly as submitted.
        workflow: Arc<Workflow>,
    },
    /// Attempt `attempt` (1-based, +1 per attempt of the task) of a ready or retrying task
    /// started.
    AttemptStarted {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
        /// Attempt number.
        attempt: u32,
    },
    /// The running attempt succeeded; the task is done.
    TaskSucceeded {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
        /// The attempt that succeeded.
        attempt: u32,
        /// What the attempt's process used, if it was a process.
        usage: Option<ResourceUsage>,
    },
    /// The running attempt failed and the retry policy allows another, which will start at
    /// `retry_at`.
    AttemptFailed {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
        /// The attempt that failed.
        attempt: u32,
        /// Why it failed.
        failure: Failure,
        /// What the attempt's process used, if it was a process.
        usage: Option<ResourceUsage>,
        /// When the next attempt becomes due (backoff with jitter, drawn by the node).
        retry_at: Timestamp,
    },
    /// The running attempt failed and no retry remains (or the failure is not retryable):
    /// the task failed for good.
    TaskFailed {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
        /// The attempt that failed.
        attempt: u32,
        /// Why it failed.
        failure: Failure,
        /// What the attempt's process used, if it was a process.
        usage: Option<ResourceUsage>,
    },
    /// An operator cancelled a task (a running attempt is terminated after this is durable).
    TaskCancelled {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
    },
    /// An operator suspended a waiting task.
    TaskSuspended {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
    },
    /// An operator resumed a suspended task.
    TaskResumed {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
    },
    /// An operator reopened a failed or cancelled task with a fresh retry budget; its
    /// `upstream_failed` dependents reopen with it.
    TaskRetried {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
    },
    /// An operator cancelled a whole run.
    RunCancelled {
        /// The run.
        run: RunId,
    },
    /// An operator suspended a whole run: no task of it is dispatched until resumed.
    RunSuspended {
        /// The run.
        run: RunId,
    },
    /// An operator resumed a suspended run.
    RunResumed {
        /// The run.
        run: RunId,
    },
    /// A human approved a task's first attempt.
    ApprovalGranted {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
        /// Who approved.
        approver: Approver,
    },
    /// A human rejected a task; it fails for good.
    ApprovalRejected {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
        /// Who rejected.
        approver: Approver,
    },
    /// Nobody decided before the approval timeout; the task fails for good.
    ApprovalExpired {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
    },
    /// A compensation attempt of a succeeded saga step started.
    CompensationStarted {
        /// Run of the task.
        run: RunId,
        /// The saga step being undone.
        task: TaskId,
        /// Compensation attempt number (1-based, separate from forward attempts).
        attempt: u32,
    },
    /// The compensation succeeded; the step is `compensated` and never undone again.
    CompensationSucceeded {
        /// Run of the task.
        run: RunId,
        /// The saga step.
        task: TaskId,
        /// The compensation attempt that succeeded.
        attempt: u32,
        /// What the attempt's process used.
        usage: Option<ResourceUsage>,
    },
    /// A compensation attempt failed; `retry_at` says when the next starts, `None` means it
    /// failed for good and the run waits for an operator.
    CompensationFailed {
        /// Run of the task.
        run: RunId,
        /// The saga step.
        task: TaskId,
        /// The compensation attempt that failed.
        attempt: u32,
        /// Why it failed.
        failure: Failure,
        /// What the attempt's process used.
        usage: Option<ResourceUsage>,
        /// When the next compensation attempt is due, if any.
        retry_at: Option<Timestamp>,
    },
    /// An operator retried a compensation that failed for good.
    CompensationRetried {
        /// Run of the task.
        run: RunId,
        /// The saga step.
        task: TaskId,
    },
    /// The node stopped dispatching (`halt`); with `kill`, running attempts are terminated.
    NodeHalted {
        /// Whether running attempts are terminated too.
        kill: bool,
    },
    /// Dispatching resumed (`unhalt`).
    NodeUnhalted,
    /// The output of a succeeded attempt, journaled in the same commit as (just before) its
    /// `task_succeeded` (event schema 3). No event means the output is `null`.
    TaskOutput {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
        /// The attempt that produced it.
        attempt: u32,
        /// One JSON value, compact, at most the task's `max_output` bytes.
        output: String,
    },
    /// The final usage counters an attempt reported through `TROUPE_USAGE`, journaled with
    /// the attempt's end, just before it (event schema 3).
    AttemptUsage {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
        /// The attempt.
        attempt: u32,
        /// Counter name → value.
        counters: Counters,
    },
    /// A mapped task (`for_each`) was expanded into `count` instances `TASK[0]` ..
    /// `TASK[count-1]` once the upstream task its expression names succeeded (event schema 3).
    TaskExpanded {
        /// Run of the task.
        run: RunId,
        /// The mapped task.
        task: TaskId,
        /// Number of instances (0: the mapped task succeeds at once).
        count: u32,
    },
    /// A run was created by `troupe spawn` (or `delegate`, or an in-process executor): as
    /// `run_submitted`, plus who spawned it, with which key, input and authority (event
    /// schema 4). Its id is derived from (parent run, parent task, key) for a child.
    RunSpawned {
        /// The new run's id.
        run: RunId,
        /// The workflow (a file, or one task for `--command`).
        workflow: Arc<Workflow>,
        /// Lineage, input, authority and policies.
        spawn: Box<Spawn>,
    },
    /// A spawn was refused (over a limit, a program not allowed, a loop, a bad token); no
    /// run exists (event schema 4). Changes no state: the record is the audit trail.
    SpawnRefused {
        /// The run whose task asked (`None`: a root spawn from outside any task).
        parent: Option<RunId>,
        /// That task.
        task: Option<TaskId>,
        /// The key asked for.
        key: String,
        /// Why, as a short label (`depth`, `children`, `descendants`, `budget`, `command`,
        /// `pool`, `loop`, `may_spawn`, `approval`): the `reason` of
        /// `troupe_spawn_refused_total`.
        reason: String,
        /// The explanation printed to the caller.
        message: String,
    },
    /// A run's subtree used more than its budget: the run stops like a cancelled one and
    /// ends `budget_exhausted`; its children are cancelled (event schema 4).
    BudgetExhausted {
        /// The run whose budget ran out.
        run: RunId,
        /// The counter (`wall_clock` for time).
        counter: String,
        /// What the subtree used.
        used: f64,
        /// The run's limit.
        limit: f64,
    },
    /// A run spawned with `on_budget_exhausted = "ask"` used more than its budget: it is
    /// suspended and a human is asked (event schema 4).
    EscalationRequested {
        /// The run.
        run: RunId,
        /// The counter (`wall_clock` for time).
        counter: String,
        /// What the subtree used.
        used: f64,
        /// The run's limit.
        limit: f64,
    },
    /// A human decided an escalation (a failed `on_failure = "ask"` child, or a budget):
    /// approve retries the child / raises the budget by `extend` and resumes; reject reports
    /// the failure up / stops the run `budget_exhausted` (event schema 4).
    EscalationDecided {
        /// The run asking.
        run: RunId,
        /// Approved or rejected.
        approved: bool,
        /// Who decided.
        approver: Approver,
        /// Counter → amount added to the run's budget (budget escalations).
        extend: Counters,
    },
    /// A worker node joined the cluster and was given a new lease `epoch` (every join gets
    /// one, unique in the journal: the fencing token of its attempts).
    NodeJoined {
        /// The worker's persistent node id.
        node: String,
        /// The lease's epoch.
        epoch: u64,
        /// The worker's address as the coordinator saw it (or its host name).
        addr: String,
        /// Attempts it runs at once.
        slots: u32,
        /// Its labels (`node_labels` of a task must all be among them).
        labels: Vec<String>,
    },
    /// A worker's lease ended without it leaving: not heard from for 2× the heartbeat, or it
    /// came back without its attempts. Its running attempts are closed as interrupted.
    NodeLost {
        /// The node.
        node: String,
        /// The lease that ended.
        epoch: u64,
        /// Why, for people.
        reason: String,
    },
    /// `troupe drain NODE`: no new attempts go to the node.
    NodeDraining {
        /// The node.
        node: String,
    },
    /// A worker left on its own (it stopped after draining or was asked to stop).
    NodeLeft {
        /// The node.
        node: String,
        /// The lease that ended.
        epoch: u64,
    },
    /// A worker asked to join and was refused (unknown join token, another protocol).
    JoinRefused {
        /// The node id it gave.
        node: String,
        /// Its address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The attempt just started runs on a worker node under lease `epoch` (attempts on the
    /// coordinator's own workers, the node `local`, have no such event).
    AttemptPlaced {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
        /// Attempt number.
        attempt: u32,
        /// The node.
        node: String,
        /// Its lease when the attempt was placed: only a result under this lease counts.
        epoch: u64,
    },
    /// A result arrived from a node whose lease no longer holds the attempt (it was lost,
    /// or the attempt was closed meanwhile): ignored, and never changes the task.
    ResultRejected {
        /// Run of the task.
        run: RunId,
        /// The task.
        task: TaskId,
        /// Attempt number.
        attempt: u32,
        /// The node that sent it.
        node: String,
        /// The lease it was sent under.
        epoch: u64,
        /// How the attempt said it ended (`succeeded`, `failed`, `terminated`).
        outcome: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Retention removed these finished runs (whole agent trees, never a part of one): their
    /// state leaves the fold, and once a snapshot covers this event their events, stream
    /// index entries and logs are deleted (event schema 6; `troupe gc`).
    RunsRemoved {
        /// The runs, roots before their descendants.
        runs: Vec<RunId>,
        /// The retention that chose them: runs finished before `now − older_than`, in ms.
        older_than_ms: u64,
    },
    /// A circuit breaker tripped (or a half-open probe failed): nothing in its scope is
    /// dispatched before `until` (event schema 7).
    BreakerOpened {
        /// The breaker's name.
        breaker: String,
        /// When it lets probes through.
        until: Timestamp,
        /// What tripped it (`12 of the last 20 attempts failed`, `a probe failed`).
        reason: String,
    },
    /// An open breaker's `open_for` passed: up to `half_open_probes` attempts may run
    /// (event schema 7).
    BreakerHalfOpened {
        /// The breaker's name.
        breaker: String,
    },
    /// A breaker closed: its probes succeeded, or an operator reset it (event schema 7).
    BreakerClosed {
        /// The breaker's name.
        breaker: String,
        /// Why (`3 probes succeeded`, `reset by NAME`).
        reason: String,
    },
    /// A hook became due: its trigger is durable (in this commit or before), so the hook
    /// runs even if the node crashes now. The call's id is the number of `hook_queued`
    /// events before it (event schema 7).
    HookQueued {
        /// What runs and why.
        call: Box<HookCall>,
    },
    /// Attempt `attempt` of hook call `id` started (event schema 7).
    HookStarted {
        /// The call's id.
        id: u64,
        /// Attempt number (1-based).
        attempt: u32,
    },
    /// The attempt of hook call `id` exited 0; the call is done and never runs again
    /// (event schema 7).
    HookSucceeded {
        /// The call's id.
        id: u64,
        /// The attempt that succeeded.
        attempt: u32,
    },
    /// An attempt of hook call `id` failed; `retry_at` says when the next starts, `None`
    /// means the call failed for good (event schema 7).
    HookFailed {
        /// The call's id.
        id: u64,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        failure: Failure,
        /// When the next attempt is due, if any.
        retry_at: Option<Timestamp>,
    },
    /// Replicas of swarm task `task` reached its quorum (event schema 8): without `vote`,
    /// `replicas` produced equal outputs and `task_output` / `task_succeeded` (attempt 0)
    /// follow in the same commit; with `vote`, `replicas` succeeded and the task becomes
    /// ready to run its vote. Replicas still open are cancelled in the same commit.
    QuorumReached {
        /// Run of the task.
        run: RunId,
        /// The swarm task.
        task: TaskId,
        /// The replica numbers (0-based) whose outputs count, ascending.
        replicas: Vec<u32>,
    },
}

/// One due run of a hook: the body of [`Event::HookQueued`]. The hook's settings are copied
/// in, so replay does not depend on today's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookCall {
    /// The hook as configured when it became due.
    pub hook: crate::model::resilience::HookSpec,
    /// The run it is about (`None`: a session event).
    pub run: Option<RunId>,
    /// The task it is about, if any.
    pub task: Option<TaskId>,
    /// The event as one JSON object (what the hook reads on stdin).
    pub payload: String,
}

/// Who spawned a run, with what, under which authority: the body of [`Event::RunSpawned`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spawn {
    /// The spawning run and task (`None`: a root run).
    pub parent: Option<(RunId, TaskId)>,
    /// The attempt of the parent task that asked (0 for a root).
    pub attempt: u32,
    /// The idempotency key.
    pub key: String,
    /// The input, one compact JSON value (`TROUPE_INPUT`, `{{ input }}`); `None`: `null`.
    pub input: Option<String>,
    /// The run's effective authority (already narrowed).
    pub authority: crate::model::authority::Authority,
    /// Budget reserved from the parent's remainder (counters the spawn asked for).
    pub reserved: Counters,
    /// What happens to the parent when the child does not succeed.
    pub on_failure: OnFailure,
    /// What happens to the child when the parent task ends first.
    pub on_parent_exit: OnParentExit,
    /// The parent run's authority, when the parent had none recorded yet (a root run that
    /// was submitted, not spawned, spawning for the first time): the node's default narrowed
    /// by its workflow's `[authority]`.
    pub parent_authority: Option<crate::model::authority::Authority>,
    /// For `troupe delegate`: the registry agent chosen and why.
    pub routing: Option<Box<Routing>>,
    /// What happens when the subtree runs out of budget.
    pub on_budget_exhausted: OnBudgetExhausted,
}

/// Which `[[agent]]` a delegation chose, for which capability, and why (the scores of every
/// candidate; see [`crate::model::routing`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Routing {
    /// The agent's name.
    pub agent: String,
    /// The capability asked for.
    pub capability: String,
    /// The scores that decided.
    pub reason: String,
}

/// `on_failure` of a spawn (Temporal's parent/child failure handling, OTP's escalation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OnFailure {
    /// The parent decides after `troupe wait` (default).
    #[default]
    Report,
    /// The parent attempt is stopped and fails as `child_failed`, under its retry policy.
    FailParent,
    /// A human is asked (`troupe approvals`): approve retries the child's failed tasks,
    /// reject reports the failure up. The child counts as finished only once decided.
    Ask,
}

/// `on_budget_exhausted` of a spawn (or `[authority]`): what happens when the subtree uses
/// more than its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OnBudgetExhausted {
    /// The run stops, `budget_exhausted` (default).
    #[default]
    Stop,
    /// The run is suspended and a human is asked: approve with `--extend NAME=N` raises the
    /// budget and resumes it, reject stops it.
    Ask,
}

impl OnBudgetExhausted {
    /// The spelling of the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OnBudgetExhausted::Stop => "stop",
            OnBudgetExhausted::Ask => "ask",
        }
    }
}

/// `on_parent_exit` of a spawn (Temporal's parent close policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OnParentExit {
    /// A child still running when its parent task ends is cancelled (default).
    #[default]
    Cancel,
    /// The child keeps running.
    Abandon,
}

impl OnFailure {
    /// The spelling of the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Report => "report",
            OnFailure::FailParent => "fail_parent",
            OnFailure::Ask => "ask",
        }
    }
}

impl OnParentExit {
    /// The spelling of the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OnParentExit::Cancel => "cancel",
            OnParentExit::Abandon => "abandon",
        }
    }
}

impl Event {
    /// Every event type name, in variant order (the `type` field of `events --json`).
    pub const TYPE_NAMES: [&'static str; 45] = [
        "run_submitted",
        "attempt_started",
        "task_succeeded",
        "attempt_failed",
        "task_failed",
        "task_cancelled",
        "task_suspended",
        "task_resumed",
        "task_retried",
        "run_cancelled",
        "run_suspended",
        "run_resumed",
        "approval_granted",
        "approval_rejected",
        "approval_expired",
        "compensation_started",
        "compensation_succeeded",
        "compensation_failed",
        "compensation_retried",
        "node_halted",
        "node_unhalted",
        "task_output",
        "attempt_usage",
        "task_expanded",
        "run_spawned",
        "spawn_refused",
        "budget_exhausted",
        "escalation_requested",
        "escalation_decided",
        "node_joined",
        "node_lost",
        "node_draining",
        "node_left",
        "join_refused",
        "attempt_placed",
        "result_rejected",
        "runs_removed",
        "breaker_opened",
        "breaker_half_opened",
        "breaker_closed",
        "hook_queued",
        "hook_started",
        "hook_succeeded",
        "hook_failed",
        "quorum_reached",
    ];

    /// The snake_case type name (`task_succeeded`, ...).
    pub fn type_name(&self) -> &'static str {
        Self::TYPE_NAMES[self.variant_index()]
    }

    fn variant_index(&self) -> usize {
        match self {
            Event::RunSubmitted { .. } => 0,
            Event::AttemptStarted { .. } => 1,
            Event::TaskSucceeded { .. } => 2,
            Event::AttemptFailed { .. } => 3,
            Event::TaskFailed { .. } => 4,
            Event::TaskCancelled { .. } => 5,
            Event::TaskSuspended { .. } => 6,
            Event::TaskResumed { .. } => 7,
            Event::TaskRetried { .. } => 8,
            Event::RunCancelled { .. } => 9,
            Event::RunSuspended { .. } => 10,
            Event::RunResumed { .. } => 11,
            Event::ApprovalGranted { .. } => 12,
            Event::ApprovalRejected { .. } => 13,
            Event::ApprovalExpired { .. } => 14,
            Event::CompensationStarted { .. } => 15,
            Event::CompensationSucceeded { .. } => 16,
            Event::CompensationFailed { .. } => 17,
            Event::CompensationRetried { .. } => 18,
            Event::NodeHalted { .. } => 19,
            Event::NodeUnhalted => 20,
            Event::TaskOutput { .. } => 21,
            Event::AttemptUsage { .. } => 22,
            Event::TaskExpanded { .. } => 23,
            Event::RunSpawned { .. } => 24,
            Event::SpawnRefused { .. } => 25,
            Event::BudgetExhausted { .. } => 26,
            Event::EscalationRequested { .. } => 27,
            Event::EscalationDecided { .. } => 28,
            Event::NodeJoined { .. } => 29,
            Event::NodeLost { .. } => 30,
            Event::NodeDraining { .. } => 31,
            Event::NodeLeft { .. } => 32,
            Event::JoinRefused { .. } => 33,
            Event::AttemptPlaced { .. } => 34,
            Event::ResultRejected { .. } => 35,
            Event::RunsRemoved { .. } => 36,
            Event::BreakerOpened { .. } => 37,
            Event::BreakerHalfOpened { .. } => 38,
            Event::BreakerClosed { .. } => 39,
            Event::HookQueued { .. } => 40,
            Event::HookStarted { .. } => 41,
            Event::HookSucceeded { .. } => 42,
            Event::HookFailed { .. } => 43,
            Event::QuorumReached { .. } => 44,
        }
    }

    /// The run the event belongs to, if any (node-level events have none).
    pub fn run(&self) -> Option<RunId> {
        match self {
            Event::RunSubmitted { run, .. }
            | Event::AttemptStarted { run, .. }
            | Event::TaskSucceeded { run, .. }
            | Event::AttemptFailed { run, .. }
            | Event::TaskFailed { run, .. }
            | Event::TaskCancelled { run, .. }
            | Event::TaskSuspended { run, .. }
            | Event::TaskResumed { run, .. }
            | Event::TaskRetried { run, .. }
            | Event::RunCancelled { run }
            | Event::RunSuspended { run }
            | Event::RunResumed { run }
            | Event::ApprovalGranted { run, .. }
            | Event::ApprovalRejected { run, .. }
            | Event::ApprovalExpired { run, .. }
            | Event::CompensationStarted { run, .. }
            | Event::CompensationSucceeded { run, .. }
            | Event::CompensationFailed { run, .. }
            | Event::CompensationRetried { run, .. }
            | Event::TaskOutput { run, .. }
            | Event::AttemptUsage { run, .. }
            | Event::TaskExpanded { run, .. }
            | Event::RunSpawned { run, .. }
            | Event::BudgetExhausted { run, .. }
            | Event::EscalationRequested { run, .. }
            | Event::EscalationDecided { run, .. }
            | Event::AttemptPlaced { run, .. }
            | Event::ResultRejected { run, .. }
            | Event::QuorumReached { run, .. } => Some(*run),
            Event::SpawnRefused { parent, .. } => *parent,
            Event::HookQueued { call } => call.run,
            Event::BreakerOpened { .. }
            | Event::BreakerHalfOpened { .. }
            | Event::BreakerClosed { .. }
            | Event::HookStarted { .. }
            | Event::HookSucceeded { .. }
            | Event::HookFailed { .. } => None,
            Event::NodeHalted { .. }
            | Event::NodeUnhalted
            | Event::NodeJoined { .. }
            | Event::NodeLost { .. }
            | Event::NodeDraining { .. }
            | Event::NodeLeft { .. }
            | Event::JoinRefused { .. }
            | Event::RunsRemoved { .. } => None,
        }
    }

    /// The task the event belongs to, if any.
    pub fn task(&self) -> Option<&TaskId> {
        match self {
            Event::AttemptStarted { task, .. }
            | Event::TaskSucceeded { task, .. }
            | Event::AttemptFailed { task, .. }
            | Event::TaskFailed { task, .. }
            | Event::TaskCancelled { task, .. }
            | Event::TaskSuspended { task, .. }
            | Event::TaskResumed { task, .. }
            | Event::TaskRetried { task, .. }
            | Event::ApprovalGranted { task, .. }
            | Event::ApprovalRejected { task, .. }
            | Event::ApprovalExpired { task, .. }
            | Event::CompensationStarted { task, .. }
            | Event::CompensationSucceeded { task, .. }
            | Event::CompensationFailed { task, .. }
            | Event::CompensationRetried { task, .. }
            | Event::TaskOutput { task, .. }
            | Event::AttemptUsage { task, .. }
            | Event::TaskExpanded { task, .. }
            | Event::AttemptPlaced { task, .. }
            | Event::ResultRejected { task, .. }
            | Event::QuorumReached { task, .. } => Some(task),
            Event::SpawnRefused { task, .. } => task.as_ref(),
            Event::HookQueued { call } => call.task.as_ref(),
            Event::BreakerOpened { .. }
            | Event::BreakerHalfOpened { .. }
            | Event::BreakerClosed { .. }
            | Event::HookStarted { .. }
            | Event::HookSucceeded { .. }
            | Event::HookFailed { .. } => None,
            Event::RunSubmitted { .. }
            | Event::RunSpawned { .. }
            | Event::BudgetExhausted { .. }
            | Event::EscalationRequested { .. }
            | Event::EscalationDecided { .. }
            | Event::RunCancelled { .. }
            | Event::RunSuspended { .. }
            | Event::RunResumed { .. }
            | Event::NodeHalted { .. }
            | Event::NodeUnhalted
            | Event::NodeJoined { .. }
            | Event::NodeLost { .. }
            | Event::NodeDraining { .. }
            | Event::NodeLeft { .. }
            | Event::JoinRefused { .. }
            | Event::RunsRemoved { .. } => None,
        }
    }

    /// The attempt number the event is about, if any (forward or compensation attempt).
    pub fn attempt(&self) -> Option<u32> {
        match self {
            Event::AttemptStarted { attempt, .. }
            | Event::TaskSucceeded { attempt, .. }
            | Event::AttemptFailed { attempt, .. }
            | Event::TaskFailed { attempt, .. }
            | Event::CompensationStarted { attempt, .. }
            | Event::CompensationSucceeded { attempt, .. }
            | Event::CompensationFailed { attempt, .. }
            | Event::TaskOutput { attempt, .. }
            | Event::AttemptUsage { attempt, .. }
            | Event::AttemptPlaced { attempt, .. }
            | Event::ResultRejected { attempt, .. } => Some(*attempt),
            _ => None,
        }
    }
}
