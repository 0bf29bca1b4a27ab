//! Messages of the scheduler actor ([`crate::actors::scheduler`]) and of worker actors
//! ([`crate::actors::worker`]).

use std::ops::Range;
use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};

use super::approval::ApprovalMsg;
use super::control::{Request, Response};
use super::journal::AppendError;
use crate::model::decide::Handed;
use crate::model::{
    Counters, Failure, ResourceUsage, RunId, Seq, TaskId, TaskIndex, Timestamp, Workflow,
};

/// What the scheduler accepts.
pub enum SchedulerMsg {
    /// A control request (node/run/list queries, submit, commands). Answered once whatever it
    /// changed is durable.
    Request {
        /// The request.
        request: Request,
        /// Receives the answer.
        reply: RpcReplyPort<Response>,
    },
    /// The journal acknowledged (or failed) an append the scheduler made; acks arrive in
    /// sequence order.
    Persisted(Result<Range<Seq>, AppendError>),
    /// An attempt ended (or a worker reports it could not run it).
    AttemptEnded(AttemptReport),
    /// A message from a worker node, through the cluster gateway.
    Cluster(crate::cluster::wire::ToCoordinator),
    /// A worker actor started (first start or restart) and is free.
    WorkerUp {
        /// Its slot (0-based index among the node's workers).
        slot: u32,
        /// The worker.
        worker: ActorRef<WorkerMsg>,
    },
    /// An in-process attempt waits for its children: it lends its worker slot (the CLI's
    /// `wait` says so with `CheckChildren`).
    Waiting {
        /// Its run.
        run: crate::model::RunId,
        /// Its task.
        task: crate::model::TaskIndex,
        /// Its attempt.
        attempt: u32,
    },
    /// Timer: retries that came due, the `STOP` file.
    Tick,
    /// Stop dispatching (node shutdown); the reply comes when no attempt is running.
    Drain(RpcReplyPort<()>),
    /// Answered once everything decided before it is durable: a barrier (shutdown), and
    /// the health check's proof that the scheduler's mailbox moves.
    Barrier(RpcReplyPort<()>),
    /// Terminate every running attempt without journaling their ends (end of a shutdown's
    /// grace period; the next boot closes them as interrupted).
    AbandonRunning,
    /// As [`SchedulerMsg::AbandonRunning`], but each attempt's process group gets SIGKILL at
    /// once instead of SIGTERM and the grace period (a second Ctrl-C during a shutdown).
    KillRunning,
    /// Send the decided events to the journal. The scheduler sends this to itself after the
    /// first decision of a group, so it is handled after every message already queued: their
    /// events go out as one append (the journal's group commit, one level up).
    Flush,
    /// The approval gate (re)started: the scheduler answers with
    /// [`ApprovalMsg::Reset`] and then sends it every change to the pending approvals.
    ApprovalGateUp(ActorRef<ApprovalMsg>),
    /// From the approval gate: this request reached its expiry. Journaled as
    /// `approval_expired` only if the task still awaits the request made at `requested_at`.
    ExpireApproval {
        /// The run.
        run: RunId,
        /// The task.
        task: TaskId,
        /// When the request was made.
        requested_at: Timestamp,
    },
    /// Test hook: panic in the handler.
    Panic,
    /// An attempt of a hook call ended (from the task running its process).
    HookEnded {
        /// The call.
        id: u64,
        /// The attempt.
        attempt: u32,
        /// How it ended.
        end: crate::model::decide::HookEnd,
    },
}

/// What an attempt runs: the task's `command`, or (saga) its `compensate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AttemptKind {
    /// A forward attempt of the task.
    Forward,
    /// A compensation attempt of a succeeded saga step.
    Compensation,
}

impl AttemptKind {
    /// File name stem of an attempt's log and pid files under `logs/RUN/TASK/`: `N` for
    /// forward attempts, `compensate-N` for compensation attempts.
    pub fn file_stem(self, attempt: u32) -> String {
        match self {
            AttemptKind::Forward => attempt.to_string(),
            AttemptKind::Compensation => format!("compensate-{attempt}"),
        }
    }
}

/// How an attempt ended, as the worker saw it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum AttemptOutcome {
    /// Exit status 0 (or an in-process task returned `Ok`), and the gate (if any) accepted.
    Succeeded {
        /// What the process used.
        usage: Option<ResourceUsage>,
        /// Its output (checked) and final usage counters.
        handed: Handed,
    },
    /// The attempt failed.
    Failed {
        /// Why.
        failure: Failure,
        /// What the process used.
        usage: Option<ResourceUsage>,
        /// Whether another attempt could help (a missing program will stay missing).
        retryable: bool,
        /// Usage counters it reported before failing (empty if none).
        counters: Counters,
    },
    /// The attempt was terminated on request (cancel, `halt --kill`, shutdown).
    Terminated {
        /// What the process used.
        usage: Option<ResourceUsage>,
    },
}

/// Names one attempt everywhere: the order, the report, its log and pid files, metrics. An
/// attempt number is never reused for a (run, task, kind), so an id is unique in a journal:
/// a late report of an older attempt cannot be mistaken for the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct AttemptId {
    /// The run.
    pub run: RunId,
    /// The task.
    pub task: TaskIndex,
    /// Forward attempt or compensation.
    pub kind: AttemptKind,
    /// The attempt number (1-based; forward or compensation, per `kind`).
    pub attempt: u32,
}

impl AttemptId {
    /// File name stem of the attempt's log and pid files (see [`AttemptKind::file_stem`]).
    pub fn file_stem(&self) -> String {
        self.kind.file_stem(self.attempt)
    }
}

/// A worker slot of a [`WorkerLink`](crate::workers::WorkerLink) (an index; what it maps to
/// is the link's business).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(pub u32);

/// A worker's report of one attempt.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    /// The attempt.
    pub id: AttemptId,
    /// The worker slot that ran it.
    pub slot: Slot,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

/// One attempt for a worker to run.
pub struct AttemptOrder {
    /// The run's workflow (the task's command, env, cwd, timeout come from it).
    pub workflow: Arc<Workflow>,
    /// Where the attempt's end is reported; also says which attempt this is.
    pub report: ReportPort,
    /// What a forward attempt needs to act as an agent (`None` for compensations).
    pub agent: Option<Box<AgentGrant>>,
}

/// What an attempt gets to spawn children and read its input: the capability token and
/// the run's place in its tree.
#[derive(Debug, Clone)]
pub struct AgentGrant {
    /// `TROUPE_TOKEN`: 32 hex digits, valid only while this attempt runs.
    pub token: String,
    /// `TROUPE_DEPTH`: 0 for a root run.
    pub depth: u32,
    /// The run's input (`TROUPE_INPUT`, `{{ input }}`), if it was spawned with one.
    pub input: Option<std::sync::Arc<str>>,
}

/// The one-shot way back from an attempt to the scheduler. If it is dropped without
/// [`ReportPort::send`] (the order died in a stopped worker's mailbox, or the attempt task
/// was aborted) it reports the attempt as interrupted, so the scheduler never waits for an
/// attempt nobody runs.
pub struct ReportPort {
    /// The attempt.
    pub id: AttemptId,
    /// The worker slot it was given to.
    pub slot: Slot,
    /// The scheduler; `None` once sent.
    reply_to: Option<ActorRef<SchedulerMsg>>,
}

impl ReportPort {
    /// A port reporting to `reply_to`.
    pub fn new(reply_to: ActorRef<SchedulerMsg>, id: AttemptId, slot: Slot) -> Self {
        ReportPort {
            id,
            slot,
            reply_to: Some(reply_to),
        }
    }

    /// The attempt's end will come another way (a worker node reports it over the wire):
    /// dropping this port reports nothing.
    pub fn forget(mut self) {
        self.reply_to = None;
    }

    /// Reports how the attempt ended.
    pub fn send(mut self, outcome: AttemptOutcome) {
        self.deliver(outcome);
    }

    fn deliver(&mut self, outcome: AttemptOutcome) {
        if let Some(to) = self.reply_to.take() {
            let _ = to.cast(SchedulerMsg::AttemptEnded(AttemptReport {
                id: self.id,
                slot: self.slot,
                outcome,
            }));
        }
    }
}

impl Drop for ReportPort {
    fn drop(&mut self) {
        self.deliver(AttemptOutcome::interrupted());
    }
}

impl AttemptOutcome {
    /// Interrupted without its own doing (its worker went away or never ran it): retryable,
    /// no usage known.
    pub fn interrupted() -> Self {
        AttemptOutcome::Failed {
            failure: Failure::Interrupted,
            usage: None,
            retryable: true,
            counters: Counters::new(),
        }
    }
}

/// What a worker actor accepts.
pub enum WorkerMsg {
    /// Run this attempt (the worker is free when the scheduler sends it).
    Run(Box<AttemptOrder>),
    /// Terminate this attempt, if it is still running.
    Terminate {
        /// The attempt.
        attempt: AttemptId,
    },
    /// Terminate this attempt now: cancel it and SIGKILL its process group without waiting
    /// out the grace period.
    Kill {
        /// The attempt.
        attempt: AttemptId,
    },
    /// This attempt finished (sent by the worker's own attempt task).
    Finished {
        /// The attempt.
        attempt: AttemptId,
    },
    /// Test hook: panic in the handler.
    Panic,
}
