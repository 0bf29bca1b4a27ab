//! An OTP-style supervisor actor for ractor: strategies, restart intensity, child restart
//! types and per-child shutdown timeouts.
//!
//! ractor links actors into a tree and tells a parent when a child exits, but its default
//! `handle_supervisor_evt` simply stops the parent. [`Supervisor`] is an ordinary
//! [`ractor::Actor`] that implements the supervisor behaviour of Erlang/OTP on top of those
//! events, following the OTP design principles
//! (<https://www.erlang.org/doc/system/sup_princ.html>) and the `supervisor` manual page
//! (<https://www.erlang.org/doc/apps/stdlib/supervisor.html>).
//!
//! # Semantics
//! - **Start.** Children are started in the order of [`SupervisorSpec::children`] while the
//!   supervisor starts (in `pre_start`). If one fails to start, the children already started
//!   are stopped in reverse order and the spawn of the supervisor fails (OTP: "the child
//!   processes are started in order from left to right"; a failed start makes `start_link`
//!   fail).
//! - **Exits.** A child exit arrives as `SupervisionEvent::ActorFailed` (an error or a panic:
//!   abnormal) or `SupervisionEvent::ActorTerminated(.., reason)`: normal if the reason is
//!   `None`, `"normal"` or `"shutdown"`, abnormal otherwise (ractor reports a killed actor as
//!   terminated with reason `"killed"`, and a drained one with `"Drained"`).
//! - **Restart types** ([`Restart`]): permanent children are always restarted, transient ones
//!   only after an abnormal exit, temporary ones never, and a temporary child is removed from
//!   the child list once it has exited (OTP `restart` in `child_spec()`).
//! - **Strategies** ([`Strategy`]): on a restart-worthy exit, `one_for_one` restarts that child;
//!   `one_for_all` stops all other children (reverse start order) and starts all of them in
//!   order; `rest_for_one` stops the children started after it (reverse order) and starts it
//!   and them in order. Temporary siblings stopped by a group restart are not restarted and
//!   are removed, as in OTP.
//! - **Restart intensity.** Restarts are counted in a sliding window of
//!   [`SupervisorSpec::period`]; if more than [`SupervisorSpec::intensity`] restarts fall
//!   within it, the supervisor stops all its children (reverse order, shutdown timeouts) and
//!   then fails: `handle_supervisor_evt` returns [`SupervisorError::IntensityExceeded`], so
//!   ractor reports `ActorFailed` to the supervisor's own parent (escalation). A restart whose
//!   start function fails counts as another restart. OTP ends the supervisor with reason
//!   `shutdown` here; troupe reports a failure so that a host's own ractor supervisor sees an
//!   abnormal exit and a parent [`Supervisor`] restarts even a transient child supervisor.
//! - **Shutdown.** A child is stopped with `stop(Some("shutdown"))`; if it has not stopped
//!   within its [`ChildSpec::shutdown`], it is killed (ractor's `Signal::Kill`, which also
//!   interrupts a `post_stop` that is still running). `Duration::ZERO` kills at once (OTP
//!   `brutal_kill`); `Duration::MAX` waits forever (OTP `infinity`, the right value for a child
//!   that is itself a supervisor).
//! - **Stopping the supervisor.** A normal stop runs `post_stop`, which stops the children in
//!   reverse start order, each with its shutdown timeout. Only then does ractor's own cleanup
//!   run, which kills whatever is still linked, so there is no race with it. ractor does *not*
//!   stop children gracefully on its own: when an actor exits, its still-running children get
//!   `Signal::Kill` (no `post_stop`). So a host that owns a supervisor should stop it with
//!   `stop_and_wait` in its own `post_stop`; if the host just exits, the supervisor is killed
//!   and kills its children without their shutdown.
//! - **Own exits are not failures.** Children are tracked by `ActorId`. A child is removed from
//!   the active set *before* the supervisor stops it, so the exit events that follow from
//!   stops the supervisor caused (group restarts, [`SupervisorMsg::TerminateChild`],
//!   escalation) are ignored, as are events from actors that are not current children.
//!
//! # Defaults (from OTP)
//! [`DEFAULT_INTENSITY`] = 1 and [`DEFAULT_PERIOD`] = 5 s are OTP's `sup_flags()` defaults;
//! [`DEFAULT_SHUTDOWN`] = 5 s is OTP's default `shutdown` for a worker (`5000` ms).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Default restart intensity: at most 1 restart per [`DEFAULT_PERIOD`] (OTP `sup_flags()`
/// default `intensity => 1`, see the `supervisor` manual page).
pub const DEFAULT_INTENSITY: u32 = 1;

/// Default restart period, the window in which restarts are counted: 5 s (OTP `sup_flags()`
/// default `period => 5`, in seconds).
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);

/// Default shutdown timeout of a child: 5 s (OTP's default `shutdown => 5000` ms for a
/// `worker` child; for a child that is a supervisor OTP uses `infinity`, here `Duration::MAX`).
pub const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(5);

/// How long to wait for a child to exit after it was killed. A child whose thread is blocked
/// cannot observe the kill; it is then abandoned (and logged) so a shutdown always ends.
const KILL_WAIT: Duration = Duration::from_secs(1);

/// Stop reason given to children the supervisor stops (OTP's `exit(Child, shutdown)`).
const SHUTDOWN_REASON: &str = "shutdown";

/// What to restart when a child has to be restarted (OTP restart strategy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Restart only the child that exited (OTP `one_for_one`, OTP's default strategy).
    #[default]
    OneForOne,
    /// Stop all other children, then start all children again in order (OTP `one_for_all`).
    OneForAll,
    /// Stop the children started after the one that exited, then start it and them in order
    /// (OTP `rest_for_one`).
    RestForOne,
}

/// When a child that exited is restarted (OTP child restart type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// Always restarted (OTP `permanent`, OTP's default).
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit: a failure or panic, or a stop reason other than
    /// `"normal"` / `"shutdown"` (OTP `transient`).
    Transient,
    /// Never restarted, and removed from the child list once it exits (OTP `temporary`).
    Temporary,
}

/// Starts a child: spawns it linked to the supervisor whose cell is passed in (for example
/// with [`Actor::spawn_linked`]) and returns the child's cell. Called at every (re)start, so it
/// must build fresh arguments each time. A custom function may spawn the actor anywhere, for
/// instance on a dedicated OS thread, as long as the actor is linked to the given cell.
pub type StartFn = Arc<
    dyn Fn(ActorCell) -> Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>
        + Send
        + Sync,
>;

/// How to start, restart and stop one child (OTP `child_spec()`).
#[derive(Clone)]
pub struct ChildSpec {
    /// Names the child in [`SupervisorMsg`] requests, [`ChildInfo`] and logs; unique within
    /// one supervisor. It is not registered anywhere, so two supervisors (two troupe nodes in
    /// one process) can use the same ids.
    pub id: String,
    /// Decides whether an exit of this child leads to a restart.
    pub restart: Restart,
    /// Bounds how long a stop of this child may take before it is killed, so a stuck child
    /// cannot hang a restart or the shutdown of the tree.
    pub shutdown: Duration,
    /// Creates a new incarnation of the child, at start and at every restart.
    pub start: StartFn,
}

impl ChildSpec {
    /// A child started by `start`, with the [`DEFAULT_SHUTDOWN`] timeout.
    pub fn new(id: impl Into<String>, restart: Restart, start: StartFn) -> Self {
        Self {
            id: id.into(),
            restart,
            shutdown: DEFAULT_SHUTDOWN,
            start,
        }
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

/// A typical child: `actor` (cloned) spawned with `Actor::spawn_linked(None, ..)` and
/// arguments built by `args` at every (re)start, so each incarnation starts from fresh
/// arguments (a troupe actor then rebuilds its state from the journal).
pub fn child<A>(
    id: impl Into<String>,
    restart: Restart,
    shutdown: Duration,
    actor: A,
    args: impl Fn() -> A::Arguments + Send + Sync + 'static,
) -> ChildSpec
where
    A: Actor + Clone,
{
    let start: StartFn = Arc::new(move |supervisor: ActorCell| {
        let actor = actor.clone();
        let args = args();
        Box::pin(async move {
            let (actor_ref, _handle) = A::spawn_linked(None, actor, args, supervisor).await?;
            Ok(actor_ref.get_cell())
        })
    });
    ChildSpec {
        id: id.into(),
        restart,
        shutdown,
        start,
    }
}

/// Everything a [`Supervisor`] is started with (OTP `sup_flags()` plus the child specs).
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    /// Chooses which children are restarted together.
    pub strategy: Strategy,
    /// Caps restarts: more than this many within `period` makes the supervisor give up and
    /// escalate, so a crash loop does not spin forever.
    pub intensity: u32,
    /// The sliding window in which restarts count towards `intensity`.
    pub period: Duration,
    /// The children, in start order; they are stopped in reverse order.
    pub children: Vec<ChildSpec>,
}

impl SupervisorSpec {
    /// A spec with OTP's default intensity ([`DEFAULT_INTENSITY`]) and period
    /// ([`DEFAULT_PERIOD`]).
    pub fn new(strategy: Strategy, children: Vec<ChildSpec>) -> Self {
        Self {
            strategy,
            intensity: DEFAULT_INTENSITY,
            period: DEFAULT_PERIOD,
            children,
        }
    }
}

/// Requests a [`Supervisor`] answers.
pub enum SupervisorMsg {
    /// The children in start order, with their current actors (OTP `which_children/1`).
    WhichChildren(RpcReplyPort<Vec<ChildInfo>>),
    /// Stops a child (its shutdown timeout applies); it is not restarted until
    /// [`SupervisorMsg::RestartChild`], and a temporary child is removed
    /// (OTP `terminate_child/2`). Stopping a child that is not running succeeds.
    TerminateChild(String, RpcReplyPort<Result<(), SupervisorError>>),
    /// Starts a child that is not running (OTP `restart_child/2`). Does not count towards the
    /// restart intensity.
    RestartChild(String, RpcReplyPort<Result<(), SupervisorError>>),
}

/// One child as reported by [`SupervisorMsg::WhichChildren`].
#[derive(Clone, Debug)]
pub struct ChildInfo {
    /// Identifies the child ([`ChildSpec::id`]).
    pub id: String,
    /// The running incarnation, to talk to it; `None` when it is not running (terminated, or a
    /// transient child that exited normally).
    pub actor: Option<ActorCell>,
    /// How many times the supervisor has restarted this child automatically (its own exits and
    /// group restarts), to observe restart behaviour.
    pub restarts: u32,
    /// The child's restart type, as in its spec.
    pub restart: Restart,
}

/// Errors of [`SupervisorMsg`] requests, of starting a [`Supervisor`], and of its escalation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// No child has this id (a temporary child is forgotten once it exits). Check the id.
    #[error("no child with id {0:?}")]
    UnknownChild(String),
    /// The child is already running; terminate it first if a fresh start is wanted.
    #[error("child {0:?} is already running")]
    AlreadyRunning(String),
    /// The child's start function failed; the child stays not running. Retry later or report.
    #[error("child {id:?} failed to start: {message}")]
    Start {
        /// The child that failed to start.
        id: String,
        /// The start error, as text.
        message: String,
    },
    /// Duplicate child id in a [`SupervisorSpec`]; fix the spec.
    #[error("duplicate child id {0:?}")]
    DuplicateChild(String),
    /// The supervisor restarted more than `intensity` times within `period`, stopped all its
    /// children and failed; this is the error its parent sees in `ActorFailed`. The parent
    /// decides (restart the supervisor, or fail in turn).
    #[error(
        "restart intensity exceeded ({intensity} restarts in {period:?}); last exit: child {child:?}: {reason}"
    )]
    IntensityExceeded {
        /// The configured intensity.
        intensity: u32,
        /// The configured period.
        period: Duration,
        /// The child whose exit exceeded the intensity.
        child: String,
        /// Why that child exited (or failed to restart).
        reason: String,
    },
}

/// The supervisor actor: spawn it with [`Supervisor::spawn`] or [`Supervisor::spawn_linked`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Supervisor;

impl Supervisor {
    /// Spawns an unlinked supervisor and starts its children; fails if a child fails to start.
    pub async fn spawn(
        name: Option<String>,
        spec: SupervisorSpec,
    ) -> Result<(ActorRef<SupervisorMsg>, JoinHandle<()>), SpawnErr> {
        <Self as Actor>::spawn(name, Supervisor, spec).await
    }

    /// Spawns a supervisor linked to `parent` (a host's actor or another supervisor), which
    /// then sees its exits and its escalation as `ActorFailed`.
    pub async fn spawn_linked(
        name: Option<String>,
        spec: SupervisorSpec,
        parent: ActorCell,
    ) -> Result<(ActorRef<SupervisorMsg>, JoinHandle<()>), SpawnErr> {
        <Self as Actor>::spawn_linked(name, Supervisor, spec, parent).await
    }
}

/// The live state of a [`Supervisor`] (opaque; observe it with
/// [`SupervisorMsg::WhichChildren`]).
pub struct SupervisorState {
    /// Chooses which children restart together (from the spec).
    strategy: Strategy,
    /// Maximum restarts per `period` before escalation (from the spec).
    intensity: u32,
    /// Window of the restart count (from the spec).
    period: Duration,
    /// The children in start order; the order drives start, stop and `rest_for_one`.
    children: Vec<Child>,
    /// Times of the restarts still inside the window, oldest first, to apply the intensity.
    restarts: VecDeque<Instant>,
}

/// One supervised child.
struct Child {
    /// How to start and stop it.
    spec: ChildSpec,
    /// The running incarnation; its `ActorId` tells current events from stale ones. `None`
    /// while not running, which also makes the supervisor ignore that incarnation's exit.
    actor: Option<ActorCell>,
    /// Automatic restarts so far, reported by `WhichChildren`.
    restarts: u32,
}

/// Whether an `ActorTerminated` reason is a normal exit (OTP: `normal` or `shutdown`).
fn is_normal_exit(reason: Option<&str>) -> bool {
    matches!(reason, None | Some("normal") | Some(SHUTDOWN_REASON))
}

/// Stops `cell` within `shutdown`, then kills it (OTP shutdown: `exit(Child, shutdown)`, then
/// `exit(Child, kill)` after the timeout).
async fn shutdown_child(id: &str, cell: &ActorCell, shutdown: Duration) {
    if !shutdown.is_zero() {
        cell.stop(Some(SHUTDOWN_REASON.to_string()));
        if cell.wait(Some(shutdown)).await.is_ok() {
            debug!(child = id, "child stopped");
            return;
        }
        warn!(
            child = id,
            ?shutdown,
            "child did not stop within its shutdown timeout; killing it"
        );
    }
    cell.kill();
    if cell.wait(Some(KILL_WAIT)).await.is_err() {
        warn!(
            child = id,
            "child did not exit after being killed; abandoning it"
        );
    }
}

/// Runs a child's start function and makes sure the new actor is linked to the supervisor.
async fn start_child(
    supervisor: &ActorCell,
    spec: &ChildSpec,
) -> Result<ActorCell, SupervisorError> {
    let cell = (spec.start)(supervisor.clone())
        .await
        .map_err(|e| SupervisorError::Start {
            id: spec.id.clone(),
            message: e.to_string(),
        })?;
    let linked = cell
        .try_get_supervisor()
        .is_some_and(|s| s.get_id() == supervisor.get_id());
    // An actor that already exited was linked and unlinked by ractor's cleanup (its exit
    // event is on its way); only a live, unlinked actor needs linking.
    if !linked && cell.get_status() < ActorStatus::Draining {
        warn!(child = %spec.id, "start function returned an actor not linked to the supervisor; linking it");
        cell.link(supervisor.clone());
    }
    Ok(cell)
}

impl SupervisorState {
    /// Index of the child whose running incarnation is `actor`.
    fn index_of_actor(&self, actor: ActorId) -> Option<usize> {
        self.children
            .iter()
            .position(|c| c.actor.as_ref().is_some_and(|a| a.get_id() == actor))
    }

    /// Index of the child with this id.
    fn index_of(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.id == id)
    }

    /// Records a restart now; false if that makes more than `intensity` in `period`.
    fn record_restart(&mut self) -> bool {
        let now = Instant::now();
        while self
            .restarts
            .front()
            .is_some_and(|&t| now.duration_since(t) > self.period)
        {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        self.restarts.len() <= self.intensity as usize
    }

    /// Stops the running children in `range`, in reverse start order.
    async fn stop_range(&mut self, range: Range<usize>) {
        for child in self.children[range].iter_mut().rev() {
            if let Some(cell) = child.actor.take() {
                shutdown_child(&child.spec.id, &cell, child.spec.shutdown).await;
            }
        }
    }

    /// Stops all children, in reverse start order.
    async fn stop_all(&mut self) {
        self.stop_range(0..self.children.len()).await;
    }

    /// Group restart of the children in `range`: stop the running ones (reverse order), drop
    /// the temporary ones, start the rest in order.
    async fn restart_range(
        &mut self,
        supervisor: &ActorCell,
        range: Range<usize>,
    ) -> Result<(), SupervisorError> {
        self.stop_range(range.clone()).await;
        let (start, mut end) = (range.start, range.end);
        let mut i = start;
        while i < end {
            if self.children[i].spec.restart == Restart::Temporary {
                debug!(child = %self.children[i].spec.id, "temporary child stopped by a group restart; removed");
                self.children.remove(i);
                end -= 1;
            } else {
                i += 1;
            }
        }
        for child in &mut self.children[start..end] {
            if child.actor.is_none() {
                child.actor = Some(start_child(supervisor, &child.spec).await?);
                child.restarts += 1;
            }
        }
        Ok(())
    }

    /// Stops all children and builds the escalation error.
    async fn escalate(&mut self, child: &str, reason: &str) -> ActorProcessingErr {
        warn!(
            child,
            reason,
            intensity = self.intensity,
            period = ?self.period,
            "restart intensity exceeded; stopping all children and escalating to the parent"
        );
        self.stop_all().await;
        Box::new(SupervisorError::IntensityExceeded {
            intensity: self.intensity,
            period: self.period,
            child: child.to_string(),
            reason: reason.to_string(),
        })
    }

    /// Applies the restart type and the strategy after the child at `idx` exited.
    async fn on_child_exit(
        &mut self,
        supervisor: &ActorCell,
        idx: usize,
        abnormal: bool,
        mut reason: String,
    ) -> Result<(), ActorProcessingErr> {
        let child = &mut self.children[idx];
        child.actor = None;
        let id = child.spec.id.clone();
        let restart = match child.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => abnormal,
            Restart::Temporary => false,
        };
        if !restart {
            info!(child = %id, %reason, restart = ?child.spec.restart, "child exited; not restarted");
            if child.spec.restart == Restart::Temporary {
                self.children.remove(idx);
            }
            return Ok(());
        }
        let mut failed_starts = 0u32;
        loop {
            // Failed starts are bounded too, in case each takes longer than `period`.
            if !self.record_restart() || failed_starts > self.intensity {
                return Err(self.escalate(&id, &reason).await);
            }
            info!(child = %id, %reason, strategy = ?self.strategy, "restarting child");
            let idx = self
                .index_of(&id)
                .expect("a restarted child stays in the child list");
            let range = match self.strategy {
                Strategy::OneForOne => idx..idx + 1,
                Strategy::OneForAll => 0..self.children.len(),
                Strategy::RestForOne => idx..self.children.len(),
            };
            match self.restart_range(supervisor, range).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    warn!(child = %id, error = %e, "restart failed");
                    failed_starts += 1;
                    reason = e.to_string();
                }
            }
        }
    }

    /// [`SupervisorMsg::TerminateChild`].
    async fn terminate_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let idx = self
            .index_of(id)
            .ok_or_else(|| SupervisorError::UnknownChild(id.to_string()))?;
        self.stop_range(idx..idx + 1).await;
        if self.children[idx].spec.restart == Restart::Temporary {
            self.children.remove(idx);
        }
        info!(child = id, "child terminated on request");
        Ok(())
    }

    /// [`SupervisorMsg::RestartChild`].
    async fn restart_child(
        &mut self,
        supervisor: &ActorCell,
        id: &str,
    ) -> Result<(), SupervisorError> {
        let idx = self
            .index_of(id)
            .ok_or_else(|| SupervisorError::UnknownChild(id.to_string()))?;
        let child = &mut self.children[idx];
        if child.actor.is_some() {
            return Err(SupervisorError::AlreadyRunning(id.to_string()));
        }
        child.actor = Some(start_child(supervisor, &child.spec).await?);
        info!(child = id, "child restarted on request");
        Ok(())
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorSpec;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        spec: SupervisorSpec,
    ) -> Result<Self::State, ActorProcessingErr> {
        for (i, c) in spec.children.iter().enumerate() {
            if spec.children[..i].iter().any(|o| o.id == c.id) {
                return Err(Box::new(SupervisorError::DuplicateChild(c.id.clone())));
            }
        }
        let mut state = SupervisorState {
            strategy: spec.strategy,
            intensity: spec.intensity,
            period: spec.period,
            children: Vec::with_capacity(spec.children.len()),
            restarts: VecDeque::new(),
        };
        let cell = myself.get_cell();
        for child_spec in spec.children {
            match start_child(&cell, &child_spec).await {
                Ok(actor) => state.children.push(Child {
                    spec: child_spec,
                    actor: Some(actor),
                    restarts: 0,
                }),
                Err(e) => {
                    warn!(error = %e, "child failed to start; stopping the children already started");
                    state.stop_all().await;
                    return Err(Box::new(e));
                }
            }
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_all().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::WhichChildren(reply) => {
                let children = state
                    .children
                    .iter()
                    .map(|c| ChildInfo {
                        id: c.spec.id.clone(),
                        actor: c.actor.clone(),
                        restarts: c.restarts,
                        restart: c.spec.restart,
                    })
                    .collect();
                let _ = reply.send(children);
            }
            SupervisorMsg::TerminateChild(id, reply) => {
                let _ = reply.send(state.terminate_child(&id).await);
            }
            SupervisorMsg::RestartChild(id, reply) => {
                let _ = reply.send(state.restart_child(&myself.get_cell(), &id).await);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, abnormal, reason) = match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let abnormal = !is_normal_exit(reason.as_deref());
                (
                    cell,
                    abnormal,
                    reason.unwrap_or_else(|| "normal".to_string()),
                )
            }
            SupervisionEvent::ActorFailed(cell, err) => (cell, true, err.to_string()),
            _ => return Ok(()),
        };
        match state.index_of_actor(cell.get_id()) {
            Some(idx) => {
                state
                    .on_child_exit(&myself.get_cell(), idx, abnormal, reason)
                    .await
            }
            None => {
                debug!(actor = %cell.get_id(), %reason, "exit of an actor that is not a current child; ignored");
                Ok(())
            }
        }
    }
}
