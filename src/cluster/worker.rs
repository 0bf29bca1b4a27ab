//! A worker machine: `troupe worker start --join ADDR:PORT`.
//!
//! One async loop owns everything: the connection (a ractor_cluster `NodeServer` of its own
//! that dials the coordinator, again with backoff whenever the session is gone), the lease
//! (join, heartbeats, the coordinator's answers), the attempts it runs (through the same
//! [`Executor`] a node uses), and the result spool. The agent actor only receives the
//! coordinator's messages (process group `troupe.worker.NODE`) and hands them to the loop.
//!
//! The lease from the worker's side: with no word from the coordinator for 2× the
//! heartbeat, it stops every attempt (SIGTERM, then SIGKILL after the grace period), takes
//! no work, and drops and redials its sessions. Every result is spooled before it is sent
//! and resent after each welcome until acknowledged ([`super::spool`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{NodeServer, NodeServerMessage};
use tokio::sync::{mpsc, oneshot};

use super::spool::Spool;
use super::wire::{
    worker_group, Join, RemoteOrder, ToCoordinator, ToWorker, WireResult, COORDINATOR_GROUP,
    PROTOCOL,
};
use crate::config::TlsFiles;
use crate::executor::{AttemptContext, Executor, HandoffFiles};
use crate::layout::DataDir;
use crate::messages::scheduler::{AttemptId, AttemptKind, AttemptOutcome};
use crate::read::outputs::Outputs;

/// Longest wait between two dials of the coordinator.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// First wait between dials.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// How often the loop looks at the connection and the lease.
const TICK: Duration = Duration::from_millis(50);

/// How a worker is started.
pub struct WorkerOptions {
    /// The coordinator's `[cluster] listen` address (`HOST:PORT`).
    pub join: String,
    /// The cluster cookie.
    pub cookie: String,
    /// This worker's join token.
    pub token: String,
    /// Attempts it runs at once.
    pub slots: u32,
    /// Its labels.
    pub labels: Vec<String>,
    /// Its data dir: node id, logs, spool.
    pub data_dir: PathBuf,
    /// Mutual TLS and the coordinator's name in its certificate.
    pub tls: Option<(TlsFiles, String)>,
    /// What runs attempts.
    pub executor: Arc<dyn Executor>,
    /// Give up if the first join is not answered within this.
    pub join_timeout: Duration,
    /// The values of tasks' `secret_env`, resolved here (`--secrets-file`, then this
    /// worker's environment): the coordinator never sends a value, only the names.
    pub secrets: Arc<crate::config::Secrets>,
}

/// Why a worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The coordinator refused the join (journaled there).
    #[error("the coordinator refused the join: {0}")]
    Refused(String),
    /// The coordinator closed the session during the handshake: a cookie or, with TLS, a
    /// certificate it does not accept (TLS on one side only ends the same way).
    #[error("the coordinator at {0} closed the connection during the handshake: is the cookie the same on both machines? (With TLS: do both sides use it, and did the coordinator's tls_ca sign this worker's certificate?)")]
    Handshake(String),
    /// No answer to the first join.
    #[error("no answer from a troupe coordinator at {addr} within {secs} s ({last})")]
    NoAnswer {
        /// Where it dialled.
        addr: String,
        /// How long it tried.
        secs: u64,
        /// The last thing that went wrong.
        last: String,
    },
    /// Anything else (data dir, startup).
    #[error("{0}")]
    Other(String),
}

/// This machine's host name (Linux: `/proc/sys/kernel/hostname`).
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// The node id kept in `DATA_DIR/node-id` (created on first start: host name and 24 random
/// bits).
pub fn node_id(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    let host = hostname().unwrap_or_else(|| "worker".into());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let id = format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{id}\n"))
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(id)
}

/// Receives the coordinator's messages (see the module docs).
struct Agent {
    tx: mpsc::UnboundedSender<ToWorker>,
}

impl Actor for Agent {
    type Msg = ToWorker;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<ToWorker>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<ToWorker>,
        message: ToWorker,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = self.tx.send(message);
        Ok(())
    }
}

/// A session event the loop cares about.
enum Session {
    /// A session closed; `authenticated`: it had passed the cookie handshake.
    Closed { authenticated: bool, peer: String },
}

/// Forwards session events to the loop, remembering which sessions authenticated.
struct Events {
    tx: mpsc::UnboundedSender<Session>,
    authenticated: std::sync::Mutex<std::collections::HashSet<ractor::ActorId>>,
}

impl ractor_cluster::NodeEventSubscription for Events {
    fn node_session_opened(&self, _ses: NodeServerSessionInformation) {}
    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        self.authenticated
            .lock()
            .expect("not poisoned")
            .insert(ses.actor.get_id());
    }
    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let authenticated = self
            .authenticated
            .lock()
            .expect("not poisoned")
            .remove(&ses.actor.get_id());
        let _ = self.tx.send(Session::Closed {
            authenticated,
            peer: ses.peer_addr,
        });
    }
}

/// An attempt running here.
struct Running {
    cancel: Option<oneshot::Sender<()>>,
    pid_path: PathBuf,
    log_path: PathBuf,
}

/// The loop's state.
struct Worker {
    opts: WorkerOptions,
    id: String,
    layout: DataDir,
    spool: Spool,
    server: ActorRef<NodeServerMessage>,
    events: mpsc::UnboundedSender<Session>,
    done: mpsc::UnboundedSender<(AttemptId, u64, AttemptOutcome)>,
    /// The lease, once welcomed (kept across reconnects to resume it).
    epoch: Option<u64>,
    /// Welcomed under `epoch` and taking work.
    welcomed: bool,
    ever_welcomed: bool,
    heartbeat: Duration,
    grace: Duration,
    log_cap: u64,
    last_contact: Instant,
    last_heartbeat: Instant,
    /// The coordinator actor the last join went to, and when.
    joined_with: Option<(ractor::ActorId, Instant)>,
    next_dial: Instant,
    backoff: Duration,
    running: HashMap<AttemptId, Running>,
    /// Logs of reported attempts, removed once acknowledged.
    reported: HashMap<AttemptId, PathBuf>,
    started: Instant,
    last_problem: String,
}

async fn start_server(
    id: &str,
    cookie: &str,
    events: mpsc::UnboundedSender<Session>,
) -> Result<ActorRef<NodeServerMessage>, String> {
    let server = NodeServer::new(
        0,
        cookie.to_owned(),
        id.to_owned(),
        "127.0.0.1".to_owned(),
        None,
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let (server, _) = Actor::spawn(None, server, ())
        .await
        .map_err(|e| format!("cluster node server: {e}"))?;
    server
        .cast(NodeServerMessage::SubscribeToEvents {
            id: "troupe".into(),
            subscription: Box::new(Events {
                tx: events,
                authenticated: Default::default(),
            }),
        })
        .map_err(|e| e.to_string())?;
    Ok(server)
}

fn coordinator() -> Option<ActorRef<ToCoordinator>> {
    super::wire::live_member(COORDINATOR_GROUP)
}

/// Runs a worker until `stop` fires (then it stops its attempts, reports them, and leaves)
/// or the coordinator refuses it.
pub async fn run(
    opts: WorkerOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), WorkerError> {
    let other = WorkerError::Other;
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(|e| other(format!("{}: {e}", opts.data_dir.display())))?;
    let id = node_id(&opts.data_dir).map_err(other)?;
    let layout = DataDir::new(&opts.data_dir);
    // Attempts a previous run of this worker left behind.
    crate::process::terminate_orphans_under(&opts.data_dir.join("logs"), Duration::from_secs(2))
        .await;
    let spool = Spool::open(&opts.data_dir)
        .map_err(|e| other(format!("{}: {e}", opts.data_dir.display())))?;
    let (wire_tx, mut wire_rx) = mpsc::unbounded_channel();
    let (agent, _) = Actor::spawn(None, Agent { tx: wire_tx }, ())
        .await
        .map_err(|e| other(e.to_string()))?;
    ractor::pg::join(worker_group(&id), vec![agent.get_cell()]);
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let server = start_server(&id, &opts.cookie, ev_tx.clone())
        .await
        .map_err(other)?;
    tracing::info!(node = %id, join = %opts.join, slots = opts.slots, "worker starting");
    let now = Instant::now();
    let mut w = Worker {
        id,
        layout,
        spool,
        server,
        events: ev_tx,
        done: done_tx,
        epoch: None,
        welcomed: false,
        ever_welcomed: false,
        heartbeat: crate::config::DEFAULT_HEARTBEAT,
        grace: Duration::from_secs(10),
        log_cap: 16 << 20,
        last_contact: now,
        last_heartbeat: now,
        joined_with: None,
        next_dial: now,
        backoff: MIN_BACKOFF,
        running: HashMap::new(),
        reported: HashMap::new(),
        started: now,
        last_problem: "no session yet".into(),
        opts,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    let result = loop {
        tokio::select! {
            _ = &mut stop => break Ok(()),
            Some(m) = wire_rx.recv() => {
                if let Err(e) = w.on_wire(m) {
                    break Err(e);
                }
            }
            Some((id, epoch, outcome)) = done_rx.recv() => w.on_done(id, epoch, outcome),
            Some(ev) = ev_rx.recv() => {
                if let Err(e) = w.on_session(ev) {
                    break Err(e);
                }
            }
            _ = tick.tick() => {
                if let Err(e) = w.on_tick().await {
                    break Err(e);
                }
            }
        }
    };
    w.shut_down(&mut done_rx, &mut wire_rx).await;
    agent.stop(None);
    w.server.stop(None);
    result
}

impl Worker {
    fn send(&self, m: ToCoordinator) -> bool {
        coordinator().is_some_and(|c| c.cast(m).is_ok())
    }

    fn on_wire(&mut self, m: ToWorker) -> Result<(), WorkerError> {
        self.last_contact = Instant::now();
        match m {
            ToWorker::Welcome {
                epoch,
                heartbeat_ms,
                grace_ms,
                log_cap,
            } => {
                if self.epoch != Some(epoch) {
                    tracing::info!(node = %self.id, epoch, "joined the cluster");
                } else {
                    tracing::info!(node = %self.id, epoch, "resumed the lease");
                }
                self.epoch = Some(epoch);
                self.welcomed = true;
                self.ever_welcomed = true;
                self.heartbeat = Duration::from_millis(heartbeat_ms.max(10));
                self.grace = Duration::from_millis(grace_ms);
                self.log_cap = log_cap;
                for r in self.spool.all() {
                    self.send(ToCoordinator::Result(Box::new(r)));
                }
            }
            ToWorker::Refused { reason } => return Err(WorkerError::Refused(reason)),
            ToWorker::HeartbeatAck { .. } => {}
            ToWorker::Rejoin { reason } => {
                tracing::warn!(node = %self.id, %reason, "the coordinator ended the lease: stopping attempts, joining again");
                self.stop_attempts(false);
                self.welcomed = false;
                self.joined_with = None;
            }
            ToWorker::Run(order) => self.start(*order),
            ToWorker::Terminate { attempt, kill } => {
                if let Some(r) = self.running.get_mut(&attempt) {
                    if let Some(c) = r.cancel.take() {
                        let _ = c.send(());
                    }
                    if kill {
                        let p = r.pid_path.clone();
                        tokio::spawn(async move {
                            let _ = crate::process::terminate_orphan(&p, Duration::ZERO).await;
                        });
                    }
                }
            }
            ToWorker::Ack { attempt } => {
                self.spool.remove(&attempt);
                if let Some(log) = self.reported.remove(&attempt) {
                    let _ = std::fs::remove_file(log);
                }
            }
        }
        Ok(())
    }

    fn on_session(&mut self, ev: Session) -> Result<(), WorkerError> {
        match ev {
            Session::Closed {
                authenticated: false,
                peer,
            } if !self.ever_welcomed => {
                return Err(WorkerError::Handshake(if peer.is_empty() {
                    self.opts.join.clone()
                } else {
                    peer
                }));
            }
            Session::Closed { .. } => {
                tracing::warn!(node = %self.id, "the session to the coordinator closed; redialling");
                self.joined_with = None;
                self.next_dial = Instant::now();
            }
        }
        Ok(())
    }

    async fn on_tick(&mut self) -> Result<(), WorkerError> {
        let now = Instant::now();
        match coordinator() {
            None => {
                if now >= self.next_dial {
                    self.dial().await;
                    self.next_dial = now + self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
            Some(c) => {
                self.backoff = MIN_BACKOFF;
                let again = match &self.joined_with {
                    Some((id, at)) => {
                        *id != c.get_id()
                            || (!self.welcomed && at.elapsed() > Duration::from_secs(1))
                    }
                    None => true,
                };
                if again {
                    let join = Join {
                        node: self.id.clone(),
                        token: self.opts.token.clone(),
                        protocol: PROTOCOL,
                        epoch: self.epoch,
                        addr: hostname().unwrap_or_default(),
                        slots: self.opts.slots,
                        labels: self.opts.labels.clone(),
                        running: self.running.keys().copied().collect(),
                        spooled: self.spool.all().iter().map(|r| r.attempt).collect(),
                    };
                    let _ = c.cast(ToCoordinator::Join(Box::new(join)));
                    self.joined_with = Some((c.get_id(), now));
                }
                if self.welcomed && self.last_heartbeat.elapsed() >= self.heartbeat {
                    let _ = c.cast(ToCoordinator::Heartbeat {
                        node: self.id.clone(),
                        epoch: self.epoch.unwrap_or(0),
                        running: self.running.len() as u32,
                    });
                    self.last_heartbeat = now;
                }
            }
        }
        if self.welcomed && self.last_contact.elapsed() > self.heartbeat * 2 {
            self.cut_off().await;
        }
        if !self.ever_welcomed && self.started.elapsed() > self.opts.join_timeout {
            return Err(WorkerError::NoAnswer {
                addr: self.opts.join.clone(),
                secs: self.opts.join_timeout.as_secs(),
                last: self.last_problem.clone(),
            });
        }
        Ok(())
    }

    async fn dial(&mut self) {
        let result = match &self.opts.tls {
            None => ractor_cluster::client_connect(&self.server, self.opts.join.as_str())
                .await
                .map_err(|e| format!("{e:?}")),
            Some((files, name)) => {
                let connector = match super::tls::connector(files) {
                    Ok(c) => c,
                    Err(e) => {
                        self.last_problem = e;
                        return;
                    }
                };
                let Ok(server_name) = rustls::pki_types::ServerName::try_from(name.clone()) else {
                    self.last_problem = format!("`{name}` is not a server name");
                    return;
                };
                ractor_cluster::client_connect_enc(
                    &self.server,
                    self.opts.join.as_str(),
                    connector,
                    server_name,
                )
                .await
                .map_err(|e| format!("{e:?}"))
            }
        };
        if let Err(e) = result {
            tracing::debug!(join = %self.opts.join, error = %e, "could not reach the coordinator");
            self.last_problem = e;
        }
    }

    /// No word from the coordinator for longer than the lease (see the module docs).
    async fn cut_off(&mut self) {
        tracing::warn!(
            node = %self.id,
            silent_ms = self.last_contact.elapsed().as_millis() as u64,
            attempts = self.running.len(),
            "no word from the coordinator for 2x the heartbeat: stopping attempts, taking no work, redialling"
        );
        self.stop_attempts(false);
        self.welcomed = false;
        self.joined_with = None;
        self.server.stop(None);
        match start_server(&self.id, &self.opts.cookie, self.events.clone()).await {
            Ok(s) => self.server = s,
            Err(e) => tracing::error!(error = %e, "could not restart the cluster node server"),
        }
        self.next_dial = Instant::now();
        self.backoff = MIN_BACKOFF;
        // Give the new session a lease period of its own before judging again.
        self.last_contact = Instant::now();
    }

    fn stop_attempts(&mut self, kill: bool) {
        for r in self.running.values_mut() {
            if let Some(c) = r.cancel.take() {
                let _ = c.send(());
            }
            if kill {
                let p = r.pid_path.clone();
                tokio::spawn(async move {
                    let _ = crate::process::terminate_orphan(&p, Duration::ZERO).await;
                });
            }
        }
    }

    fn start(&mut self, order: RemoteOrder) {
        let id = order.attempt;
        if !self.welcomed || self.epoch != Some(order.epoch) || self.running.contains_key(&id) {
            // Not ours to run now: say so at once, so it is retried without waiting for a
            // lease to end.
            let _ = self
                .done
                .send((id, order.epoch, AttemptOutcome::interrupted()));
            return;
        }
        let workflow = Arc::new(order.workflow);
        let Some(task) = workflow.task_index(order.task_id.as_str()) else {
            tracing::error!(task_id = %order.task_id, "an order without its task");
            return;
        };
        let task_id = order.task_id.clone();
        let file = |name| {
            self.layout
                .attempt_file(id.run, &task_id, AttemptKind::Forward, id.attempt, name)
        };
        let outputs = Outputs::fixed(order.outputs.into_iter().map(|(k, v)| {
            let value = serde_json::from_str(&v).unwrap_or(serde_json::Value::Null);
            (k, value)
        }));
        let log_path = self
            .layout
            .attempt_log(id.run, &task_id, AttemptKind::Forward, id.attempt);
        if let Some(dir) = log_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let ctx = AttemptContext {
            run: id.run,
            workflow,
            task,
            attempt: id.attempt,
            kind: AttemptKind::Forward,
            log_path: log_path.clone(),
            pid_path: self
                .layout
                .attempt_pid(id.run, &task_id, AttemptKind::Forward, id.attempt),
            log_cap: self.log_cap,
            grace: self.grace,
            outputs,
            files: HandoffFiles {
                output: file("output"),
                inputs: file("inputs"),
                shared_inputs: false,
                input: file("input"),
                usage: file("usage"),
            },
            facts: None,
            agent: None,
            secrets: Arc::clone(&self.opts.secrets),
        };
        let pid_path = ctx.pid_path.clone();
        let (cancel_tx, cancel_rx) = oneshot::channel();
        let fut = self.opts.executor.execute(ctx, cancel_rx);
        let done = self.done.clone();
        let epoch = order.epoch;
        tokio::spawn(async move {
            let outcome = fut.await;
            let _ = done.send((id, epoch, outcome));
        });
        tracing::debug!(run_id = %id.run, task_id = %task_id, attempt = id.attempt, "attempt starts");
        self.running.insert(
            id,
            Running {
                cancel: Some(cancel_tx),
                pid_path,
                log_path,
            },
        );
    }

    fn on_done(&mut self, id: AttemptId, epoch: u64, outcome: AttemptOutcome) {
        let log_path = self.running.remove(&id).map(|r| r.log_path);
        let mut log = log_path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .unwrap_or_default();
        log.truncate(self.log_cap as usize);
        let r = WireResult {
            node: self.id.clone(),
            epoch,
            attempt: id,
            outcome,
            log,
        };
        if let Err(e) = self.spool.put(&r) {
            tracing::error!(error = %e, "could not spool a result; sending it unspooled");
        }
        if let Some(p) = log_path {
            self.reported.insert(id, p);
        }
        if self.welcomed {
            self.send(ToCoordinator::Result(Box::new(r)));
        }
    }

    /// Stops: attempts terminated and reported (waiting up to the grace period and a
    /// second), acknowledgements awaited for up to two seconds, then `leaving`.
    async fn shut_down(
        &mut self,
        done: &mut mpsc::UnboundedReceiver<(AttemptId, u64, AttemptOutcome)>,
        wire: &mut mpsc::UnboundedReceiver<ToWorker>,
    ) {
        self.stop_attempts(false);
        let deadline = tokio::time::Instant::now() + self.grace + Duration::from_secs(1);
        while !self.running.is_empty() {
            match tokio::time::timeout_at(deadline, done.recv()).await {
                Ok(Some((id, epoch, outcome))) => self.on_done(id, epoch, outcome),
                _ => break,
            }
        }
        self.stop_attempts(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.welcomed && !self.spool.all().is_empty() {
            match tokio::time::timeout_at(deadline, wire.recv()).await {
                Ok(Some(m)) => {
                    let _ = self.on_wire(m);
                }
                _ => break,
            }
        }
        if let (true, Some(epoch)) = (self.welcomed, self.epoch) {
            self.send(ToCoordinator::Leaving {
                node: self.id.clone(),
                epoch,
            });
            // Let the cast leave before the sessions close.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
