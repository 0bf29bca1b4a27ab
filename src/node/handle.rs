//! [`NodeHandle`]: a running node — requests, subscriptions, waiting for runs, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::task::JoinHandle;

use super::*;
use crate::actors::supervisor::SupervisorMsg;
use crate::context::NodeContext;
use crate::messages::control::{Request, Response, Subscription};
use crate::messages::scheduler::SchedulerMsg;
use crate::model::{RunId, RunState, Workflow};
use crate::webhooks::Notice;

/// A running node.
pub struct NodeHandle {
    pub(super) shared: Arc<NodeContext>,
    pub(super) root: ActorRef<SupervisorMsg>,
    pub(super) join: JoinHandle<()>,
    /// Stops the HTTP server.
    pub(super) http_stop: Arc<tokio::sync::Notify>,
    /// Where the HTTP endpoints listen, if they do.
    pub(super) http_addr: Option<SocketAddr>,
    /// The inbox (`--inbox DIR`), if any; stopped first on shutdown.
    pub(super) inbox: Option<crate::inbox::Inbox>,
}

impl NodeHandle {
    /// Node-wide settings and handles.
    pub fn shared(&self) -> &Arc<NodeContext> {
        &self.shared
    }

    /// Where `/metrics`, `/healthz` and `/readyz` listen (the bound port when `http_addr`
    /// asked for port 0), if they do.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The root supervisor.
    pub fn root(&self) -> &ActorRef<SupervisorMsg> {
        &self.root
    }

    /// Sends a control request and waits for the answer.
    pub async fn request(&self, request: Request) -> Result<Response, NodeError> {
        crate::actors::control::route(&self.shared, request).await
    }

    /// Subscribes in-process: the frames a socket client gets after
    /// [`Request::Subscribe`], from this node's read model.
    pub fn subscribe(&self, subscription: Subscription) -> LocalSubscription {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (reader, writer) = tokio::io::split(theirs);
        let model = Arc::clone(&self.shared.read);
        tokio::spawn(crate::read::subscribe::serve(
            model,
            subscription,
            reader,
            writer,
        ));
        LocalSubscription { stream: ours }
    }

    /// Submits `workflow`; returns the run id (an unfinished run of the same workflow is
    /// reused, see [`Response::Submitted`]).
    pub async fn submit(&self, workflow: Workflow) -> Result<RunId, NodeError> {
        match self.request(Request::Submit(Box::new(workflow))).await? {
            Response::Submitted { run, .. } => Ok(run),
            Response::Error(e) => Err(e.into()),
            other => Err(NodeError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Spawns a root run of an agent tree (no parent task; the node's default authority
    /// narrowed by the child's): its id, and whether `child.key` already named it (then it
    /// is not run again). What an embedded root agent delegates through.
    pub async fn spawn(
        &self,
        child: crate::executor::ChildSpec,
    ) -> Result<(RunId, bool), NodeError> {
        let request = Request::Spawn(Box::new(child.into_request(None)));
        match self.request(request).await? {
            Response::Submitted { run, attached } => Ok((run, attached)),
            Response::Error(e) => Err(e.into()),
            other => Err(NodeError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// A run's state and output (its `output` task's, or its single final task's).
    pub async fn result(
        &self,
        run: RunId,
    ) -> Result<crate::messages::control::RunResultView, NodeError> {
        match self.request(Request::Result(run)).await? {
            Response::Result(v) => Ok(*v),
            Response::Error(e) => Err(e.into()),
            other => Err(NodeError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Waits until the run is finished (and durably so); returns its final state. Woken by
    /// the scheduler once that run's end is durable ([`NodeContext::watch_run`]), no
    /// polling, and no wake-up for other runs' ends.
    pub async fn wait_for_run(&self, run: RunId) -> Result<RunState, NodeError> {
        loop {
            // Registered before looking, so an end between the look and the wait is not
            // missed.
            let finished = self.shared.watch_run(run);
            match self.request(Request::Summary(run)).await? {
                Response::Runs(v) if v.first().is_some_and(|s| s.state.is_finished()) => {
                    return Ok(v[0].state)
                }
                Response::Runs(_) => {}
                Response::Error(e) => return Err(e.into()),
                other => {
                    return Err(NodeError::Unavailable(format!(
                        "unexpected answer {other:?}"
                    )))
                }
            }
            if finished.await.is_err() && self.is_stopped() {
                return Err(NodeError::Unavailable("the node stopped".into()));
            }
        }
    }

    /// Completes when the root supervisor has stopped (after [`NodeHandle::shutdown`], or when
    /// its restart intensity was exceeded).
    pub fn is_stopped(&self) -> bool {
        self.join.is_finished()
    }

    /// Graceful stop: dispatch nothing more, let running attempts finish within the grace
    /// period, then terminate them (their ends are not journaled; the next boot closes them
    /// as interrupted), stop the tree in reverse order, and sync the journal.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        self.shared.webhooks.send(Notice::NodeStopping {
            reason: "graceful stop".into(),
        });
        // No new submissions from the inbox; the files in flight finish first.
        if let Some(inbox) = self.inbox.take() {
            inbox.stop().await;
        }
        let grace = self.shared.config.grace;
        if let Some(s) = self.shared.scheduler() {
            let drained = s.call(SchedulerMsg::Drain, Some(grace)).await;
            if !matches!(drained, Ok(ractor::rpc::CallResult::Success(()))) {
                let _ = s.cast(SchedulerMsg::AbandonRunning);
            }
            // Barrier: the scheduler answers only once everything it decided is durable
            // (a supervisor stop does not drain the journal's mailbox).
            let _ = self.shared.scheduler_barrier(None).await;
        }
        self.root.stop(None);
        let _ = self.join.await;
        self.shared.read.stop().await;
        // Last notices (node_stopping) get a few seconds; a dead URL cannot hold the stop.
        self.shared.webhooks.drain(Duration::from_secs(5)).await;
        self.http_stop.notify_one();
        if self.http_addr.is_some() {
            let _ = std::fs::remove_file(http_addr_file(&self.shared.config.data_dir));
        }
        self.shared.journal.sync_wal()?;
        Ok(())
    }

    /// Completes when a client asked the node to stop (`troupe node stop`); the owner then
    /// calls [`NodeHandle::shutdown`].
    pub async fn stop_requested(&self) {
        self.shared.stop_requested.notified().await
    }

    /// Waits until the root supervisor stops by itself (escalation) and returns.
    pub async fn join(self) {
        let _ = self.join.await;
        self.shared.read.stop().await;
    }
}

/// An in-process subscription (see [`NodeHandle::subscribe`]); dropping it ends it.
pub struct LocalSubscription {
    /// Our end of the in-memory pipe the subscription writes its frames to.
    stream: tokio::io::DuplexStream,
}

impl LocalSubscription {
    /// The next frame; `None` once the stream ended.
    pub async fn next(&mut self) -> Result<Option<Response>, NodeError> {
        crate::messages::control::read_frame(&mut self.stream)
            .await
            .map_err(|e| NodeError::Unavailable(e.to_string()))
    }
}
