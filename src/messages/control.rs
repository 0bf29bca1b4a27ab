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

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::model::{
    Approver, CompensationState, EventRecord, RunId, RunState, Seq, TaskId, TaskState, Timestamp,
    Workflow,
};
use crate::storage::codec::{decode_message, encode_message};

/// Version of this protocol; both sides must agree (checked in the handshake).
pub const PROTOCOL_VERSION: u16 = 4;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Tasks waiting to run, best first (`troupe queue`).
    Queue {
        /// Also list tasks that cannot run yet (pending, awaiting approval, suspended).
        waiting: bool,
        /// At most this many entries (the total is reported).
        limit: u32,
    },
    /// Turn this connection into a stream: the node pushes responses as changes become
    /// durable, until the stream ends (see [`Subscription`]) or the client closes the
    /// connection. A subscriber that does not keep up is dropped with
    /// [`ControlError::TooSlow`]; it never holds up the node.
    Subscribe(Subscription),
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
}

impl ControlError {
    /// The CLI exit code for this error (DESIGN.md: 2 invalid input, 3 node/internal).
    pub fn exit_code(&self) -> i32 {
        match self {
            ControlError::Internal(_) | ControlError::TooSlow(_) => 3,
            _ => 2,
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
}

/// What `troupe dashboard` draws (one [`Request::Dashboard`] round trip per refresh).
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The answer to [`Request::Health`].
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
    /// Best first: ready tasks by priority then wait, then retries by due time, then (with
    /// `waiting`) tasks that cannot run yet.
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
}

/// A run as `status RUN` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunView {
    /// Counts and times.
    pub summary: RunSummary,
    /// Whether the run is suspended.
    pub suspended: bool,
    /// Every task in file order.
    pub tasks: Vec<TaskView>,
}

/// A task as `status RUN/TASK` and `tasks RUN` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed mid-frame.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix is 0 or above the limit ([`MAX_FRAME_BYTES`], or
    /// [`MAX_HELLO_BYTES`] for a hello); the stream cannot be resynced.
    #[error("frame of {len} bytes is outside 1..={max}")]
    Size {
        /// The length found.
        len: u64,
        /// The largest length allowed.
        max: u32,
    },
    /// The body is not a valid message.
    #[error("{0}")]
    Decode(String),
}

/// Reads one frame and decodes it. `Ok(None)` when the peer closed the connection cleanly
/// between frames.
pub async fn read_frame<T, R>(reader: &mut R) -> Result<Option<T>, FrameError>
where
    T: serde::de::DeserializeOwned,
    R: tokio::io::AsyncRead + Unpin,
{
    read_frame_within(reader, MAX_FRAME_BYTES).await
}

/// [`read_frame`] of a frame of at most `max` bytes of body (the node reads a [`Hello`], from
/// a peer it does not trust yet, within [`MAX_HELLO_BYTES`]).
pub async fn read_frame_within<T, R>(reader: &mut R, max: u32) -> Result<Option<T>, FrameError>
where
    T: serde::de::DeserializeOwned,
    R: tokio::io::AsyncRead + Unpin,
{
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len);
    if len == 0 || len > max {
        return Err(FrameError::Size {
            len: len as u64,
            max,
        });
    }
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).await?;
    decode_message(&body)
        .map(Some)
        .map_err(|e| FrameError::Decode(e.0))
}

/// Encodes and writes one frame.
pub async fn write_frame<T, W>(writer: &mut W, message: &T) -> Result<(), FrameError>
where
    T: Serialize,
    W: tokio::io::AsyncWrite + Unpin,
{
    let body = encode_message(message).map_err(|e| FrameError::Decode(e.0))?;
    if body.is_empty() || body.len() as u64 > MAX_FRAME_BYTES as u64 {
        return Err(FrameError::Size {
            len: body.len() as u64,
            max: MAX_FRAME_BYTES,
        });
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}
