//! [`NodeContext`]: what every actor of one node shares (settings, the journal, the executor,
//! the metrics registry, the webhook sender, the committed-event feed, the read model) and the
//! node's registry of the current incarnation of each sibling actor; with [`NodeError`], the
//! answer of a request that could not be served, and [`os_user`].
//!
//! The node builder (`troupe::node`) creates one context per node, fills the registry as its
//! supervisors start each child, and hands an `Arc` of it to every actor; actors, telemetry
//! and the control server depend on this module, never on the builder. `troupe::node`
//! re-exports these under their former names (`NodeShared` is an alias of [`NodeContext`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::ActorRef;

use crate::actors::journal::JournalRef;
use crate::config::NodeConfig;
use crate::executor::Executor;
use crate::messages::approval::ApprovalMsg;
use crate::messages::control::{Command, ControlError, Request, Response};
use crate::messages::scheduler::SchedulerMsg;
use crate::model::{RunId, RunState};
use crate::read::{ReadModel, WriteFacts};
use crate::storage::feed::Feed;
use crate::storage::{Journal, JournalError};
use crate::telemetry::registry::Metrics;
use crate::telemetry::webhooks::Webhooks;

/// Why a node could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data dir cannot be used (create it, fix permissions, or choose another).
    #[error("data dir {path}: {message}")]
    DataDir {
        /// The data dir.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The HTTP address cannot be bound (in use, not local, no permission): nothing was
    /// started.
    #[error("http_addr {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// `[http]` forbids serving as configured (a non-loopback `http_addr` without tokens,
    /// or a tokens file that is unsafe or malformed): nothing was started. Fix the file or
    /// the address, or start with `--insecure`.
    #[error("{0}")]
    HttpAccess(String),
    /// The journal could not be opened (another node holds it, or it is damaged).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The actor tree failed to start.
    #[error("node failed to start: {0}")]
    Spawn(String),
    /// The node stopped or did not answer.
    #[error("node unavailable: {0}")]
    Unavailable(String),
    /// The node answered with an error.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The inbox folder cannot be used (`--inbox`: missing, not a directory, not writable):
    /// nothing was started. Fix the folder or choose another.
    #[error("inbox {path}: {message}")]
    Inbox {
        /// The inbox folder as given.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// What every actor of one node shares: settings, handles, and the node's registry of the
/// current incarnation of each sibling actor (which changes when a supervisor restarts one).
pub struct NodeContext {
    /// Settings.
    pub config: NodeConfig,
    /// The journal (reads; the journal actor holds the writer).
    pub journal: Journal,
    /// Runs attempts.
    pub executor: Arc<dyn Executor>,
    /// Registry: the current journal actor, so that senders reach the incarnation the
    /// supervisor started last (set by its start function, see [`Self::set_journal_ref`]).
    journal_ref: Mutex<Option<JournalRef>>,
    /// Registry: the current scheduler (see [`Self::set_scheduler`]).
    scheduler: Mutex<Option<ActorRef<SchedulerMsg>>>,
    /// Registry: the current approval gate (see [`Self::set_approvals`]).
    approvals: Mutex<Option<ActorRef<ApprovalMsg>>>,
    /// Notified by a `Stop` control request; see
    /// [`NodeHandle::stop_requested`](crate::NodeHandle::stop_requested).
    pub stop_requested: tokio::sync::Notify,
    /// Every run that reaches a finished state, once that is durable (for waiters; lagging
    /// receivers re-query).
    pub finished_runs: tokio::sync::broadcast::Sender<(RunId, RunState)>,
    /// Waiters for one run's end ([`Self::watch_run`]): woken once, when its finish is
    /// durable, so a tree of agents each waiting for its children costs one wake-up per end
    /// instead of every waiter hearing every end.
    run_waiters:
        Mutex<std::collections::HashMap<RunId, Vec<tokio::sync::oneshot::Sender<RunState>>>>,
    /// The node's Prometheus registry.
    pub metrics: Arc<Metrics>,
    /// The webhook sender (a no-op without webhooks).
    pub webhooks: Webhooks,
    /// Every committed batch of events (the journal actor publishes, readers listen).
    pub feed: Feed,
    /// What only the scheduler knows, published for the read side.
    pub facts: Arc<WriteFacts>,
    /// Reads task outputs from the journal (inputs and templates at dispatch); one cache
    /// shared by every worker.
    pub outputs: crate::read::outputs::Outputs,
    /// The read model: answers every read request.
    pub read: Arc<ReadModel>,
    /// `[cluster]`'s secrets, read once at launch: (cookie, join tokens).
    cluster_secrets: std::sync::OnceLock<(String, Vec<String>)>,
}

impl NodeContext {
    /// A receiver woken when run `run` reaches a finished state (durably). Register before
    /// looking at the run's state, so an end between the look and the wait is not missed.
    pub fn watch_run(&self, run: RunId) -> tokio::sync::oneshot::Receiver<RunState> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.run_waiters
            .lock()
            .expect("run waiters lock")
            .entry(run)
            .or_default()
            .push(tx);
        rx
    }

    /// Announces that `run` finished in `state` (durably): to [`Self::finished_runs`] and to
    /// the run's waiters.
    pub fn run_finished(&self, run: RunId, state: RunState) {
        let _ = self.finished_runs.send((run, state));
        let waiters = self
            .run_waiters
            .lock()
            .expect("run waiters lock")
            .remove(&run);
        for w in waiters.into_iter().flatten() {
            let _ = w.send(state);
        }
    }

    /// A context with an empty registry; the node's start functions fill it as they start
    /// each sibling.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: NodeConfig,
        journal: Journal,
        executor: Arc<dyn Executor>,
        metrics: Arc<Metrics>,
        webhooks: Webhooks,
        feed: Feed,
        facts: Arc<WriteFacts>,
        read: Arc<ReadModel>,
    ) -> Self {
        NodeContext {
            config,
            outputs: crate::read::outputs::Outputs::new(journal.clone()),
            journal,
            executor,
            journal_ref: Mutex::new(None),
            scheduler: Mutex::new(None),
            approvals: Mutex::new(None),
            stop_requested: tokio::sync::Notify::new(),
            finished_runs: tokio::sync::broadcast::channel(1024).0,
            run_waiters: Mutex::new(std::collections::HashMap::new()),
            metrics,
            webhooks,
            feed,
            facts,
            read,
            cluster_secrets: std::sync::OnceLock::new(),
        }
    }

    /// Sets `[cluster]`'s secrets (the node's launch, once).
    pub(crate) fn set_cluster_secrets(&self, cookie: String, tokens: Vec<String>) {
        let _ = self.cluster_secrets.set((cookie, tokens));
    }

    /// The cluster cookie (empty without `[cluster]`).
    pub fn cluster_cookie(&self) -> &str {
        self.cluster_secrets.get().map_or("", |s| s.0.as_str())
    }

    /// The join tokens a worker may show (none without `[cluster]`).
    pub fn join_tokens(&self) -> &[String] {
        self.cluster_secrets.get().map_or(&[], |s| s.1.as_slice())
    }

    /// Registers `journal` as the current journal actor (its start function, on every
    /// start).
    pub(crate) fn set_journal_ref(&self, journal: JournalRef) {
        *self.journal_ref.lock().expect("not poisoned") = Some(journal);
    }

    /// Registers `scheduler` as the current scheduler (its start function, on every start).
    pub(crate) fn set_scheduler(&self, scheduler: ActorRef<SchedulerMsg>) {
        *self.scheduler.lock().expect("not poisoned") = Some(scheduler);
    }

    /// Registers `gate` as the current approval gate (its start function, on every start).
    pub(crate) fn set_approvals(&self, gate: ActorRef<ApprovalMsg>) {
        *self.approvals.lock().expect("not poisoned") = Some(gate);
    }

    /// The current journal actor.
    pub fn journal_ref(&self) -> Option<JournalRef> {
        self.journal_ref.lock().expect("not poisoned").clone()
    }

    /// The current scheduler.
    pub fn scheduler(&self) -> Option<ActorRef<SchedulerMsg>> {
        self.scheduler.lock().expect("not poisoned").clone()
    }

    /// Makes a shutdown in progress stop now: every running attempt's process group gets
    /// SIGKILL instead of waiting out the grace period; their ends are not journaled (the next
    /// boot closes them as interrupted and retries them). For a second Ctrl-C.
    pub fn kill_running(&self) {
        if let Some(s) = self.scheduler() {
            let _ = s.cast(SchedulerMsg::KillRunning);
        }
    }

    /// The current approval gate.
    pub fn approvals(&self) -> Option<ActorRef<ApprovalMsg>> {
        self.approvals.lock().expect("not poisoned").clone()
    }

    /// `DATA_DIR/STOP`: while it exists the node dispatches nothing.
    pub fn stop_file(&self) -> PathBuf {
        self.config.layout().stop_file()
    }

    /// Answers `request`: reads from the read model, commands through the scheduler (which
    /// answers once they are durable). `Health` is answered above this, by
    /// [`crate::actors::control::route`] (the checks read through here).
    pub async fn request(self: &Arc<Self>, mut request: Request) -> Result<Response, NodeError> {
        if let Request::Health = request {
            return Err(NodeError::Unavailable(
                "health is answered by actors::control::route".into(),
            ));
        }
        if let Some(response) = crate::read::query::answer(&self.read, &request).await {
            return Ok(match response {
                Response::Dashboard(mut view) => {
                    view.error_rate = self.error_rate(view.queue.now).await.unwrap_or(0.0);
                    Response::Dashboard(view)
                }
                other => other,
            });
        }
        if let Request::Command(
            Command::Approve { approver, .. } | Command::Reject { approver, .. },
        ) = &mut request
        {
            if approver.os_user.is_empty() {
                approver.os_user = os_user(nix::unistd::geteuid());
            }
        }
        let scheduler = self
            .scheduler()
            .ok_or_else(|| NodeError::Unavailable("no scheduler".into()))?;
        let response = match scheduler
            .call(|reply| SchedulerMsg::Request { request, reply }, None)
            .await
        {
            Ok(ractor::rpc::CallResult::Success(r)) => r,
            Ok(_) => {
                return Err(NodeError::Unavailable(
                    "the scheduler stopped before answering".into(),
                ))
            }
            Err(e) => return Err(NodeError::Unavailable(e.to_string())),
        };
        Ok(response)
    }

    /// Waits until the scheduler has handled every message sent before this one and
    /// everything it decided is durable (at most `within`).
    pub async fn scheduler_barrier(&self, within: Option<Duration>) -> Result<(), NodeError> {
        let scheduler = self
            .scheduler()
            .ok_or_else(|| NodeError::Unavailable("no scheduler".into()))?;
        match scheduler.call(SchedulerMsg::Barrier, within).await {
            Ok(ractor::rpc::CallResult::Success(())) => Ok(()),
            Ok(ractor::rpc::CallResult::Timeout) => Err(NodeError::Unavailable(
                "the scheduler did not answer in time".into(),
            )),
            Ok(_) => Err(NodeError::Unavailable(
                "the scheduler stopped before answering".into(),
            )),
            Err(e) => Err(NodeError::Unavailable(e.to_string())),
        }
    }

    /// The last hour's error rate, from the durable rollups.
    pub async fn error_rate(&self, now: crate::model::Timestamp) -> Option<f64> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            crate::read::metrics::error_rate_last_hour(&journal, now)
        })
        .await
        .ok()?
    }
}

/// The name of the OS user `uid` (its number if it has no passwd entry).
pub fn os_user(uid: nix::unistd::Uid) -> String {
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}
