//! The control protocol: what the admin CLI (or any client) sends a node over its Unix socket.
//!
//! # Wire format
//! A connection is a sequence of frames. A frame is a 4-byte big-endian length `n`
//! (1 ≤ n ≤ [`MAX_FRAME_BYTES`]) followed by `n` bytes: one message encoded by
//! [`crate::storage::codec::encode_message`] (bincode 2, the journal's configuration).
//!
//! 1. The client sends a [`Hello`] frame within [`HANDSHAKE_TIMEOUT`]; the node answers with
//!    a [`HelloReply`]. A wrong magic, protocol version or user gets `HelloReply::Refused` and
//!    the node closes the connection; a peer that sends no hello in time is disconnected.
//! 2. Then each [`Request`] frame gets exactly one [`Response`] frame, in order.
//!
//! A frame longer than the maximum or a body that does not decode gets a `Response::Error`
//! (or `HelloReply::Refused` during the handshake) and the connection is closed; the node
//! itself is unaffected.
//!
//! # Layout
//! - this file: the handshake, requests, subscriptions, responses and errors.
//! - `views`: what reads answer (node, run, task, queue, dashboard, approvals, health, dead
//!   letters).
//! - `frame`: reading and writing length-prefixed frames.
//! - [`json`]: the JSON shapes of the views (the CLI's `--json`, the HTTP API).

use serde::{Deserialize, Serialize};

use crate::model::{Approver, EventRecord, RunId, Seq, TaskId, Workflow};

mod frame;
pub mod json;
mod views;

pub use frame::{read_frame, read_frame_within, write_frame, FrameError};
pub use views::*;

/// Version of this protocol; both sides must agree (checked in the handshake).
pub const PROTOCOL_VERSION: u16 = 10;

/// The first bytes of every [`Hello`]: rejects clients that are not speaking troupe at all.
pub const MAGIC: [u8; 8] = *b"troupe\0\x01";

/// Largest frame body either side accepts: 64 MiB (a workflow file may be 32 MiB, see
/// [`crate::model::MAX_WORKFLOW_BYTES`], and its encoding is no larger than its text plus
/// the task index).
pub const MAX_FRAME_BYTES: u32 = 64 << 20;

/// Largest [`Hello`] frame body the node reads: 1 KiB. A hello is about a dozen bytes; the
/// limit keeps a peer the node has not accepted yet from making it allocate a large frame.
pub const MAX_HELLO_BYTES: u32 = 1 << 10;

/// How long either side of a handshake waits for the other: the node closes a connection
/// whose [`Hello`] has not arrived within it (so idle connections cannot pile up), and
/// [`crate::client::Client::connect`] gives up on a node whose [`HelloReply`] has not. 5 s:
/// a live node answers in microseconds, and a stopped or wedged one should be reported
/// before an operator gives up waiting.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The client's opening frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must be [`MAGIC`].
    pub magic: [u8; 8],
    /// The client's [`PROTOCOL_VERSION`].
    pub version: u16,
}

impl Hello {
    /// The hello this build sends.
    pub fn current() -> Self {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
        }
    }
}

/// The node's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// Requests may follow.
    Welcome {
        /// The node's id (from the journal's meta column family).
        node_id: String,
        /// The node's process id.
        pid: u32,
    },
    /// The connection is closed after this; the text says why (wrong version, wrong magic,
    /// wrong user).
    Refused {
        /// What was wrong.
        reason: String,
        /// The protocol version the node speaks.
        version: u16,
    },
}

/// What a request acts on: a whole run or one task of it (`RUN` or `RUN/TASK` on the CLI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// A whole run.
    Run(RunId),
    /// One task of a run.
    Task(RunId, TaskId),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Run(r) => write!(f, "{r}"),
            Target::Task(r, t) => write!(f, "{r}/{t}"),
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    /// Parses `RUN` or `RUN/TASK`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (run, task) = match s.split_once('/') {
            Some((r, t)) => (r, Some(t)),
            None => (s, None),
        };
        let run: RunId = run
            .parse()
            .map_err(|e: crate::model::ids::ParseRunIdError| format!("`{s}`: {e}"))?;
        match task {
            None => Ok(Target::Run(run)),
            Some(t) => TaskId::new(t)
                .map(|t| Target::Task(run, t))
                .map_err(|e| format!("`{s}`: {e}")),
        }
    }
}

/// An operator command that changes state (each becomes one event, checked by the fold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Cancel a run or a task (running attempts are terminated).
    Cancel(Target),
    /// Suspend a run or a waiting task.
    Suspend(Target),
    /// Resume a suspended run or task.
    Resume(Target),
    /// Reopen a failed or cancelled task (fresh retry budget), with its upstream_failed
    /// dependents.
    Retry(Target),
    /// Stop dispatching; with `kill`, also terminate running attempts.
    Halt {
        /// Terminate running attempts too.
        kill: bool,
    },
    /// Resume dispatching.
    Unhalt,
    /// Decide the escalation a run of an agent tree asks (`troupe approve|reject RUN --as
    /// NAME [--extend NAME=N]`; docs/agents.md).
    Escalation {
        /// The run.
        run: RunId,
        /// Approve or reject.
        approved: bool,
        /// Who decides; the node replaces `os_user` with the user behind the connection.
        approver: Approver,
        /// Counter → amount added to the run's budget (a budget escalation).
        extend: crate::model::Counters,
    },
    /// Send no new attempts to a worker node (`troupe drain NODE`).
    Drain {
        /// The node's id.
        node: String,
    },
    /// Grant the approval a task awaits (`troupe approve RUN/TASK --as NAME`).
    Approve {
        /// The run.
        run: RunId,
        /// The task awaiting approval.
        task: TaskId,
        /// Who decides; the node replaces `os_user` with the user behind the connection.
        approver: Approver,
    },
    /// Reject it: the task fails for good (`troupe reject RUN/TASK --as NAME`).
    Reject {
        /// The run.
        run: RunId,
        /// The task awaiting approval.
        task: TaskId,
        /// Who decides; the node replaces `os_user` with the user behind the connection.
        approver: Approver,
    },
    /// Close an open or half-open circuit breaker by hand (`troupe breakers reset NAME`).
    ResetBreaker {
        /// The breaker's name (`WORKFLOW/NAME` for a workflow's).
        breaker: String,
        /// Who; the node replaces it with the OS user behind the connection.
        os_user: String,
    },
}

/// One request frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// The node's state.
    Node,
    /// One run with all its tasks.
    Run(RunId),
    /// All runs, oldest first (summaries).
    List,
    /// One run's summary (counts and times, no tasks): what a follower polls.
    Summary(RunId),
    /// Submit a run (attaches to an unfinished run of the same workflow instead, see
    /// [`Response::Submitted`]).
    Submit(Box<Workflow>),
    /// An operator command.
    Command(Command),
    /// Up to `limit` journal events after sequence number `after`, of one run or all.
    Events {
        /// Only this run's events.
        run: Option<RunId>,
        /// Events with a sequence number greater than this.
        after: Seq,
        /// At most this many.
        limit: u32,
    },
    /// Stop the node gracefully (like SIGTERM).
    Stop,
    /// Test hook, honoured only when the node was started with `TROUPE_TEST_HOOKS=1`: make an
    /// actor panic (`scheduler` or `worker`).
    InjectPanic(String),
    /// Every pending approval request, oldest first (answered by the approval gate).
    Approvals,
    /// Everything `troupe dashboard` draws, in one round trip.
    Dashboard {
        /// At most this many queue entries.
        limit: u32,
    },
    /// Figures over a past window from the durable rollups (`troupe metrics`).
    Metrics {
        /// The window ends now and starts this long ago.
        since: std::time::Duration,
    },
    /// The node's health checks (`troupe health`).
    Health,
    /// Remove finished runs (whole agent trees) that ended more than `older_than` ago: their
    /// state, events, stream index entries and logs ([`Response::Gc`]). Answered by the
    /// scheduler; with `dry_run` nothing changes.
    Gc {
        /// Runs finished longer ago than this go (`None`: the node's `[retention] runs`;
        /// refused if that is not set).
        older_than: Option<std::time::Duration>,
        /// Only report what would go.
        dry_run: bool,
    },
    /// Take an online backup of the data dir into `dest` (absolute, must not exist):
    /// [`Response::Backup`]. Answered by the node beside the actors (RocksDB checkpoint).
    Backup {
        /// Where to write it.
        dest: std::path::PathBuf,
    },
    /// Tasks waiting to run, best first (`troupe queue`).
    Queue {
        /// Also list tasks that cannot run yet (pending, awaiting approval, suspended).
        waiting: bool,
        /// At most this many entries (the total is reported).
        limit: u32,
    },
    /// What an operator command would change, without doing it ([`Response::DryRun`]):
    /// `Cancel`, `Suspend`, `Resume`, `Retry` and `Halt` (others are `BadRequest`). Answered
    /// by the read model with the decisions and the fold the scheduler uses; refused like the
    /// real command (an unknown run or task is `NotFound`).
    DryRun(Command),
    /// The output of one task ([`Response::Output`]), read from the journal: `troupe output`.
    Output {
        /// The run.
        run: RunId,
        /// The task (an instance `TASK[i]`, or a mapped task for the list of its
        /// instances' outputs).
        task: TaskId,
    },
    /// A run's workflow as it is now, mapped tasks expanded ([`Response::Workflow`]):
    /// `troupe graph --run`.
    Workflow(RunId),
    /// Start a child run from a task attempt (or a root run from outside any task):
    /// [`Response::Submitted`] with `attached` if the key already named it. Refusals are
    /// [`ControlError::Denied`] (CLI exit 4), a key reused with a different spec is
    /// [`ControlError::Refused`] ("spawn conflict", exit 2). Answered by the scheduler.
    Spawn(Box<SpawnRequest>),
    /// Checks that `caller`'s token is valid and that every run in `runs` is a child of its
    /// task (`troupe wait` inside a task): [`Response::Done`] or [`ControlError::Denied`].
    CheckChildren {
        /// The attempt asking.
        caller: Caller,
        /// The runs it wants to wait for.
        runs: Vec<RunId>,
    },
    /// Start a child run on a registry agent chosen for a capability (`troupe delegate`):
    /// [`Response::Delegated`]. Refusals as for [`Request::Spawn`]; no agent for the
    /// capability is [`ControlError::Denied`].
    Delegate(Box<DelegateRequest>),
    /// The agent registry with each agent's load, success rate and median duration
    /// ([`Response::Agents`]): `troupe agents`.
    Agents,
    /// A run's final state and output ([`Response::Result`]): `troupe wait`.
    Result(RunId),
    /// A run and all its descendants ([`Response::Tree`]): `troupe tree`.
    Tree(RunId),
    /// The cluster's nodes ([`Response::Nodes`]): `troupe nodes`.
    Nodes,
    /// Turn this connection into a stream: the node pushes responses as changes become
    /// durable, until the stream ends (see [`Subscription`]) or the client closes the
    /// connection. A subscriber that does not keep up is dropped with
    /// [`ControlError::TooSlow`]; it never holds up the node.
    Subscribe(Subscription),
    /// Tasks that failed for good (dead letters) matching the filter, oldest failure first
    /// ([`Response::Failed`]): `troupe failed`, and what `troupe retry --failed` redrives.
    /// Answered by the read model.
    Failed(FailedFilter),
    /// Every circuit breaker, its configuration and journaled state
    /// ([`Response::Breakers`]): `troupe breakers`. Answered by the read model.
    Breakers,
    /// Hook calls, oldest first ([`Response::Hooks`]): `troupe hooks [--state S]`.
    Hooks {
        /// Only calls in this state (`queued`, `running`, `retrying`, `succeeded`, `failed`).
        state: Option<String>,
    },
}

/// What a [`Request::Subscribe`] streams. The first frame is the current value; later frames
/// follow changes as they become durable. Errors end the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Subscription {
    /// One run's summary ([`Response::Runs`] with one entry) now and after each change (at
    /// most one frame per 100 ms); the stream ends after the frame showing it finished.
    /// Unknown run: [`ControlError::NotFound`].
    Run(RunId),
    /// Journal events ([`Response::Events`]) after sequence number `after`, of one run or
    /// all: first those the journal holds, then each as it becomes durable.
    Events {
        /// Only this run's events.
        run: Option<RunId>,
        /// Events with a sequence number greater than this.
        after: Seq,
    },
    /// The queue ([`Response::Queue`]) now and then once per `every` (its estimates move
    /// even when no event does).
    Queue {
        /// Also list tasks that cannot run yet.
        waiting: bool,
        /// At most this many entries.
        limit: u32,
        /// Least time between two frames.
        every: std::time::Duration,
    },
    /// The dashboard ([`Response::Dashboard`]) now and then once per `every` (its
    /// throughput and clocks move even when no event does).
    Dashboard {
        /// At most this many queue entries.
        limit: u32,
        /// Time between two frames.
        every: std::time::Duration,
    },
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ControlError {
    /// The request names a run or task the node does not have (CLI exit 2).
    #[error("{0}")]
    NotFound(String),
    /// The request is well-formed but not allowed in the current state (CLI exit 2).
    #[error("{0}")]
    Refused(String),
    /// The frame was malformed (CLI exit 2).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The node failed to do it (journal unavailable, shutting down; CLI exit 3).
    #[error("node error: {0}")]
    Internal(String),
    /// A subscriber fell behind the stream and was dropped (CLI exit 3); subscribe again,
    /// from the last sequence number it saw.
    #[error("dropped by the node: {0}")]
    TooSlow(String),
    /// Not permitted: a spawn over a limit of its authority, a program not allowed, a loop,
    /// or a capability token that is not the attempt's (CLI exit 4).
    #[error("{0}")]
    Denied(String),
}

impl ControlError {
    /// The CLI exit code for this error (DESIGN.md: 2 invalid input, 3 node/internal).
    pub fn exit_code(&self) -> i32 {
        match self {
            ControlError::Internal(_) | ControlError::TooSlow(_) => 3,
            ControlError::Denied(_) => 4,
            _ => 2,
        }
    }
}

impl From<crate::model::ApplyError> for ControlError {
    /// A refusal of the fold: an unknown run or task is not found; anything else is refused.
    fn from(e: crate::model::ApplyError) -> Self {
        use crate::model::ApplyError;
        match e {
            ApplyError::UnknownRun(_) | ApplyError::UnknownTask { .. } => {
                ControlError::NotFound(e.to_string())
            }
            other => ControlError::Refused(other.to_string()),
        }
    }
}

impl From<crate::model::decide::Refusal> for ControlError {
    /// An operator command that decides nothing (see [`crate::model::decide::operator`]).
    fn from(e: crate::model::decide::Refusal) -> Self {
        use crate::model::decide::Refusal;
        match e {
            Refusal::Fold(e) => e.into(),
            Refusal::Refused(reason) => ControlError::Refused(reason),
        }
    }
}

/// One response frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The request failed; nothing changed.
    Error(ControlError),
    /// A command was journaled.
    Done,
    /// Answer to [`Request::Submit`].
    Submitted {
        /// The run.
        run: RunId,
        /// The workflow was already running unfinished under `run`, which was reused.
        attached: bool,
    },
    /// Answer to [`Request::Node`].
    Node(NodeView),
    /// Answer to [`Request::Run`].
    Run(Box<RunView>),
    /// Answer to [`Request::List`] (and [`Request::Summary`], with one element).
    Runs(Vec<RunSummary>),
    /// Answer to [`Request::Events`]: `(seq, record)` in sequence order.
    Events(Vec<(Seq, EventRecord)>),
    /// Answer to [`Request::Approvals`].
    Approvals(Vec<PendingApproval>),
    /// Answer to [`Request::Queue`].
    Queue(Box<QueueView>),
    /// Answer to [`Request::Dashboard`].
    Dashboard(Box<DashboardView>),
    /// Answer to [`Request::Metrics`].
    Metrics(Box<crate::model::rollup::MetricsReport>),
    /// Answer to [`Request::Health`].
    Health(Box<HealthReport>),
    /// Answer to [`Request::Gc`].
    Gc(Box<GcReport>),
    /// Answer to [`Request::Backup`].
    Backup(Box<crate::storage::backup::BackupInfo>),
    /// Answer to [`Request::DryRun`]: nothing changed.
    DryRun(Box<DryRunView>),
    /// Answer to [`Request::Output`].
    Output(Box<OutputView>),
    /// Answer to [`Request::Workflow`].
    Workflow(Box<Workflow>),
    /// Answer to [`Request::Result`].
    Result(Box<RunResultView>),
    /// Answer to [`Request::Tree`].
    Tree(Box<TreeView>),
    /// Answer to [`Request::Delegate`].
    Delegated {
        /// The run.
        run: RunId,
        /// The key already named it.
        attached: bool,
        /// The agent chosen.
        agent: String,
        /// Why (the candidates' scores), as journaled.
        reason: String,
    },
    /// Answer to [`Request::Agents`].
    Agents(Vec<crate::model::routing::AgentStats>),
    /// Answer to [`Request::Nodes`]: `local` first, then worker nodes by id.
    Nodes(Vec<views::NodeInfo>),
    /// Answer to [`Request::Failed`].
    Failed(Vec<FailedTask>),
    /// The answer to [`Request::Breakers`], by name.
    Breakers(Vec<BreakerView>),
    /// Answer to [`Request::Hooks`].
    Hooks(Vec<crate::read::hooks::HookCallView>),
}

/// What `troupe delegate` sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelegateRequest {
    /// The attempt delegating (`None`: a root run).
    pub caller: Option<Caller>,
    /// The capability asked for.
    pub capability: String,
    /// The idempotency key.
    pub key: String,
    /// The input as compact JSON, if any.
    pub input: Option<String>,
    /// Where the agent's command runs (the caller's working directory).
    pub cwd: String,
    /// Flags over the agent's `authority`.
    pub authority: crate::model::authority::AuthorityAsk,
    /// See [`crate::model::OnFailure`].
    pub on_failure: crate::model::OnFailure,
    /// See [`crate::model::OnParentExit`].
    pub on_parent_exit: crate::model::OnParentExit,
    /// See [`crate::model::OnBudgetExhausted`].
    pub on_budget_exhausted: crate::model::OnBudgetExhausted,
}

/// The task attempt a request comes from: what `TROUPE_RUN_ID`, `TROUPE_TASK_ID`,
/// `TROUPE_ATTEMPT` and `TROUPE_TOKEN` say. The node accepts it only while that attempt
/// runs and only with the token it gave that attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The run.
    pub run: RunId,
    /// The task.
    pub task: TaskId,
    /// The attempt number.
    pub attempt: u32,
    /// The capability token (32 hex digits).
    pub token: String,
}

/// What `troupe spawn` sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpawnRequest {
    /// The attempt spawning (`None`: a root run).
    pub caller: Option<Caller>,
    /// The idempotency key.
    pub key: String,
    /// The child's workflow (a file, or one task for `--command`).
    pub workflow: Box<Workflow>,
    /// The input as compact JSON, if any.
    pub input: Option<String>,
    /// `spawn` flags over the workflow's `[authority]`.
    pub authority: crate::model::authority::AuthorityAsk,
    /// See [`crate::model::OnFailure`].
    pub on_failure: crate::model::OnFailure,
    /// See [`crate::model::OnParentExit`].
    pub on_parent_exit: crate::model::OnParentExit,
    /// See [`crate::model::OnBudgetExhausted`].
    pub on_budget_exhausted: crate::model::OnBudgetExhausted,
}
