//! OTP-semantics tests of the supervisor: strategies, restart types, intensity, shutdown
//! timeouts and the child requests. Conditions are awaited by polling `WhichChildren` (or a
//! channel) in bounded loops; time-window tests run on tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, SpawnErr,
    SupervisionEvent,
};
use tokio::sync::mpsc;
use troupe::actors::supervisor::{
    child, ChildInfo, Restart, Strategy, Supervisor, SupervisorError, SupervisorMsg,
    SupervisorSpec, DEFAULT_INTENSITY, DEFAULT_PERIOD,
};

type Log = Arc<Mutex<Vec<String>>>;

/// A test child that logs `start:<name>` / `stop:<name>` and fails or stops on request.
#[derive(Clone)]
struct Worker {
    name: &'static str,
    log: Log,
    /// `post_stop` never completes (after logging), to exercise the shutdown timeout.
    block_stop: bool,
    /// `pre_start` fails, to exercise start failures.
    fail_start: bool,
}

enum WorkerMsg {
    Fail,
    Panic,
    Stop(Option<String>),
}

#[cfg(feature = "cluster")]
impl ractor::Message for WorkerMsg {}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<WorkerMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        if self.fail_start {
            self.log.lock().unwrap().push(format!("fail:{}", self.name));
            return Err("start refused".into());
        }
        self.log
            .lock()
            .unwrap()
            .push(format!("start:{}", self.name));
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<WorkerMsg>,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        self.log.lock().unwrap().push(format!("stop:{}", self.name));
        if self.block_stop {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Fail => Err(format!("{} failed on request", self.name).into()),
            WorkerMsg::Panic => panic!("{} panicked on request", self.name),
            WorkerMsg::Stop(reason) => {
                myself.stop(reason);
                Ok(())
            }
        }
    }
}

fn worker(name: &'static str, log: &Log) -> Worker {
    Worker {
        name,
        log: log.clone(),
        block_stop: false,
        fail_start: false,
    }
}

fn spec_of(strategy: Strategy, children: Vec<(Worker, Restart)>) -> SupervisorSpec {
    SupervisorSpec {
        strategy,
        intensity: 10,
        period: DEFAULT_PERIOD,
        children: children
            .into_iter()
            .map(|(w, restart)| child(w.name, restart, Duration::from_secs(1), w, || ()))
            .collect(),
    }
}

fn new_log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn take_log(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

async fn which(sup: &ActorRef<SupervisorMsg>) -> Vec<ChildInfo> {
    ractor::call!(sup, SupervisorMsg::WhichChildren).expect("which_children")
}

fn find<'a>(children: &'a [ChildInfo], id: &str) -> &'a ChildInfo {
    children
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no child {id}"))
}

fn actor_id(children: &[ChildInfo], id: &str) -> Option<ActorId> {
    find(children, id).actor.as_ref().map(ActorCell::get_id)
}

fn cell(children: &[ChildInfo], id: &str) -> ActorCell {
    find(children, id)
        .actor
        .clone()
        .unwrap_or_else(|| panic!("{id} not running"))
}

fn send(children: &[ChildInfo], id: &str, msg: WorkerMsg) {
    ActorRef::<WorkerMsg>::from(cell(children, id))
        .send_message(msg)
        .unwrap_or_else(|_| panic!("send to {id}"));
}

/// Polls `WhichChildren` until `done` holds (bounded: ~10 s of 10 ms steps).
async fn wait_until(
    sup: &ActorRef<SupervisorMsg>,
    mut done: impl FnMut(&[ChildInfo]) -> bool,
) -> Vec<ChildInfo> {
    for _ in 0..1000 {
        let children = which(sup).await;
        if done(&children) {
            return children;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached; children: {:?}", which(sup).await);
}

/// Waits until child `id` runs as a different actor than `old`.
async fn wait_restarted(sup: &ActorRef<SupervisorMsg>, id: &str, old: ActorId) -> Vec<ChildInfo> {
    wait_until(sup, |c| actor_id(c, id).is_some_and(|new| new != old)).await
}

async fn wait_stopped(cell: &ActorCell) {
    cell.wait(Some(Duration::from_secs(10)))
        .await
        .expect("actor did not stop");
    assert_eq!(cell.get_status(), ActorStatus::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_for_one_restarts_only_the_failed_child() {
    let log = new_log();
    let spec = spec_of(
        Strategy::OneForOne,
        vec![
            (worker("a", &log), Restart::Permanent),
            (worker("b", &log), Restart::Permanent),
            (worker("c", &log), Restart::Permanent),
        ],
    );
    let (sup, handle) = Supervisor::spawn(None, spec).await.unwrap();
    assert_eq!(take_log(&log), ["start:a", "start:b", "start:c"]);

    let before = which(&sup).await;
    send(&before, "b", WorkerMsg::Panic);
    let after = wait_restarted(&sup, "b", actor_id(&before, "b").unwrap()).await;

    assert_eq!(actor_id(&after, "a"), actor_id(&before, "a"));
    assert_eq!(actor_id(&after, "c"), actor_id(&before, "c"));
    assert_eq!(find(&after, "b").restarts, 1);
    assert_eq!(find(&after, "a").restarts, 0);
    assert_eq!(take_log(&log), ["start:b"]);

    sup.stop_and_wait(None, None).await.unwrap();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_for_all_restarts_all_children_in_order() {
    let log = new_log();
    let spec = spec_of(
        Strategy::OneForAll,
        vec![
            (worker("a", &log), Restart::Permanent),
            (worker("b", &log), Restart::Permanent),
            (worker("c", &log), Restart::Permanent),
        ],
    );
    let (sup, _) = Supervisor::spawn(None, spec).await.unwrap();
    let before = which(&sup).await;
    take_log(&log);

    send(&before, "b", WorkerMsg::Fail);
    let after = wait_until(&sup, |c| {
        ["a", "b", "c"]
            .iter()
            .all(|id| actor_id(c, id).is_some_and(|new| Some(new) != actor_id(&before, id)))
    })
    .await;

    // b failed (no post_stop); the others are stopped in reverse order, then all start in order.
    assert_eq!(
        take_log(&log),
        ["stop:c", "stop:a", "start:a", "start:b", "start:c"]
    );
    assert!(after.iter().all(|c| c.restarts == 1));
    for id in ["a", "b", "c"] {
        assert_eq!(cell(&before, id).get_status(), ActorStatus::Stopped);
    }
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_for_one_restarts_the_failed_child_and_later_ones() {
    let log = new_log();
    let spec = spec_of(
        Strategy::RestForOne,
        vec![
            (worker("a", &log), Restart::Permanent),
            (worker("b", &log), Restart::Permanent),
            (worker("c", &log), Restart::Permanent),
        ],
    );
    let (sup, _) = Supervisor::spawn(None, spec).await.unwrap();
    let before = which(&sup).await;
    take_log(&log);

    send(&before, "b", WorkerMsg::Fail);
    let after = wait_until(&sup, |c| {
        ["b", "c"]
            .iter()
            .all(|id| actor_id(c, id).is_some_and(|new| Some(new) != actor_id(&before, id)))
    })
    .await;

    assert_eq!(actor_id(&after, "a"), actor_id(&before, "a"));
    // c is stopped before b starts again.
    assert_eq!(take_log(&log), ["stop:c", "start:b", "start:c"]);
    assert_eq!(find(&after, "a").restarts, 0);
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permanent_child_is_restarted_after_a_normal_stop() {
    let log = new_log();
    let spec = spec_of(
        Strategy::OneForOne,
        vec![(worker("p", &log), Restart::Permanent)],
    );
    let (sup, _) = Supervisor::spawn(None, spec).await.unwrap();
    let before = which(&sup).await;

    send(&before, "p", WorkerMsg::Stop(None));
    let after = wait_restarted(&sup, "p", actor_id(&before, "p").unwrap()).await;
    assert_eq!(find(&after, "p").restarts, 1);
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_child_is_restarted_only_after_an_abnormal_exit() {
    let log = new_log();
    let spec = spec_of(
        Strategy::OneForOne,
        vec![
            (worker("normal", &log), Restart::Transient),
            (worker("shutdown", &log), Restart::Transient),
            (worker("failed", &log), Restart::Transient),
            (worker("odd_reason", &log), Restart::Transient),
            (worker("killed", &log), Restart::Transient),
        ],
    );
    let (sup, _) = Supervisor::spawn(None, spec).await.unwrap();
    let before = which(&sup).await;

    send(&before, "normal", WorkerMsg::Stop(None));
    send(
        &before,
        "shutdown",
        WorkerMsg::Stop(Some("shutdown".into())),
    );
    send(&before, "failed", WorkerMsg::Fail);
    send(
        &before,
        "odd_reason",
        WorkerMsg::Stop(Some("lost connection".into())),
    );
    cell(&before, "killed").kill();

    let after = wait_until(&sup, |c| {
        find(c, "normal").actor.is_none()
            && find(c, "shutdown").actor.is_none()
            && ["failed", "odd_reason", "killed"]
                .iter()
                .all(|id| actor_id(c, id).is_some_and(|new| Some(new) != actor_id(&before, id)))
    })
    .await;
    // Normal exits keep the spec (restartable on request) but do not restart.
    assert_eq!(after.len(), 5);
    assert_eq!(find(&after, "normal").restarts, 0);
    assert_eq!(find(&after, "shutdown").restarts, 0);
    assert_eq!(find(&after, "failed").restarts, 1);
    sup.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn temporary_child_is_never_restarted_and_is_removed() {
    let log = new_log();
    let spec = spec_of(
        Strategy::OneForOne,
        vec![
            (worker("keep", &log), Restart::Permanent),
            (worker("t1", &log), Restart::Temporary),
            (worker("t2", &log), Restart::Temporary),
        ],
    );
    let (sup, _) = Supervisor::spawn(None, spec).await.unwrap();
    let before = which(&sup).await;
    take_log(&log);

    send(&before, "t1", WorkerMsg::Fail);
    send(&before, "t2", WorkerMsg::Stop(None));
    let after = wait_until(&sup, |c| c.len() == 1).await;
    assert_eq!(after[0].id, "keep");
    assert_eq!(actor_id(&after, "keep"), actor_id(&before, "keep"));
    assert!(!take_log(&log).iter().any(|l| l.starts_with("start:")));
    let err = ractor::call!(sup, SupervisorMsg::RestartChild, "t1".to_string()).unwrap();
    assert_eq!(err, Err(SupervisorError::UnknownChild("t1".into())));
    sup.stop_and_wait(None, None).await.unwrap();
}

/// A host actor that reports the supervision events it receives.
struct Host(mpsc::UnboundedSender<(ActorId, Result<(), String>)>);

impl Actor for Host {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let is_escalation = matches!(
                    err.downcast_ref::<SupervisorError>(),
                    Some(SupervisorError::IntensityExceeded { intensity: 2, .. })
                );
                let _ = self
                    .0
                    .send((cell.get_id(), Err(format!("{is_escalation}:{err}"))));
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                let _ = self.0.send((cell.get_id(), Ok(())));
            }
            _ => {}
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exceeding_the_intensity_stops_all_children_and_escalates() {
    let log = new_log();
    let mut spec = spec_of(
        Strategy::OneForOne,
        vec![
            (worker("a", &log), Restart::Permanent),
            (worker("b", &log), Restart::Permanent),
            (worker("c", &log), Restart::Permanent),
        ],
    );
    spec.intensity = 2;
    spec.period = Duration::from_secs(5);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (host, _) = Actor::spawn(None, Host(events_tx), ()).await.unwrap();
    let (sup, sup_handle) = Supervisor::spawn_linked(None, spec, host.get_cell())
        .await
        .unwrap();

    let mut children = which(&sup).await;
    for id in ["a", "b"] {
        send(&children, id, WorkerMsg::Fail);
        children = wait_restarted(&sup, id, actor_id(&children, id).unwrap()).await;
    }
    let last = children.clone();
    take_log(&log);
    send(&children, "c", WorkerMsg::Fail);

    let (who, outcome) = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("host saw no event")
        .unwrap();
    assert_eq!(who, sup.get_id());
    let message = outcome.expect_err("the supervisor must fail, not terminate normally");
    assert!(
        message.starts_with("true:"),
        "not an IntensityExceeded escalation: {message}"
    );
    sup_handle.await.unwrap();

    // c failed (no post_stop); b and a were stopped in reverse order, and nothing restarted.
    assert_eq!(take_log(&log), ["stop:b", "stop:a"]);
    for id in ["a", "b", "c"] {
        wait_stopped(&cell(&last, id)).await;
    }
    host.stop_and_wait(None, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn restarts_spread_beyond_the_period_do_not_escalate() {
    let log = new_log();
    let mut spec = spec_of(
        Strategy::OneForOne,
        vec![(worker("b", &log), Restart::Permanent)],
    );
    spec.intensity = DEFAULT_INTENSITY; // 1 restart per 5 s
    spec.period = DEFAULT_PERIOD;
    let (sup, handle) = Supervisor::spawn(None, spec).await.unwrap();

    let mut children = which(&sup).await;
    for round in 1..=3u32 {
        send(&children, "b", WorkerMsg::Fail);
        children = wait_restarted(&sup, "b", actor_id(&children, "b").unwrap()).await;
        assert_eq!(find(&children, "b").restarts, round);
        tokio::time::advance(DEFAULT_PERIOD + Duration::from_secs(1)).await;
    }
    assert!(!handle.is_finished());

    // Control: two restarts within one period exceed intensity 1.
    send(&children, "b", WorkerMsg::Fail);
    children = wait_restarted(&sup, "b", actor_id(&children, "b").unwrap()).await;
    send(&children, "b", WorkerMsg::Fail);
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("supervisor did not escalate")
        .unwrap();
    assert_eq!(sup.get_status(), ActorStatus::Stopped);
}

#[tokio::test(start_paused = true)]
async fn stuck_child_is_killed_after_its_shutdown_timeout() {
    let log = new_log();
    let stuck = Worker {
        block_stop: true,
        ..worker("stuck", &log)
    };
    let spec = SupervisorSpec {
        children: vec![
            child(
                "a",
                Restart::Permanent,
                Duration::from_secs(1),
                worker("a", &log),
                || (),
            ),
            child(
                "stuck",
                Restart::Permanent,
                Duration::from_secs(2),
                stuck,
                || (),
            ),
            child(
                "c",
                Restart::Permanent,
                Duration::from_secs(1),
                worker("c", &log),
                || (),
            ),
        ],
        ..SupervisorSpec::new(Strategy::OneForOne, Vec::new())
    };
    let (sup, _) = Supervisor::spawn(None, spec).await.unwrap();
    let children = which(&sup).await;
    take_log(&log);

    let started = tokio::time::Instant::now();
    sup.stop_and_wait(None, Some(Duration::from_secs(30)))
        .await
        .expect("supervisor stop must end");
    let elapsed = started.elapsed();

    assert!(
        elapsed >= Duration::from_secs(2),
        "killed before its timeout: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "stop took {elapsed:?}");
    // Reverse start order; `stuck` logged its stop and then hung until killed.
    assert_eq!(take_log(&log), ["stop:c", "stop:stuck", "stop:a"]);
    for id in ["a", "stuck", "c"] {
        assert_eq!(cell(&children, id).get_status(), ActorStatus::Stopped);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminate_and_restart_child_requests() {
    let log = new_log();
    let spec = spec_of(
        Strategy::OneForOne,
        vec![
            (worker("a", &log), Restart::Permanent),
            (worker("b", &log), Restart::Permanent),
            (worker("t", &log), Restart::Temporary),
        ],
    );
    let (sup, _) = Supervisor::spawn(None, spec).await.unwrap();
    let before = which(&sup).await;
    take_log(&log);

    let res = ractor::call!(sup, SupervisorMsg::TerminateChild, "b".to_string()).unwrap();
    assert_eq!(res, Ok(()));
    assert_eq!(cell(&before, "b").get_status(), ActorStatus::Stopped);
    // The exit event of b was queued before the reply; it must not have restarted b.
    let now = which(&sup).await;
    assert!(find(&now, "b").actor.is_none());
    assert_eq!(take_log(&log), ["stop:b"]);
    // Terminating a child that is not running is fine (as in OTP).
    let res = ractor::call!(sup, SupervisorMsg::TerminateChild, "b".to_string()).unwrap();
    assert_eq!(res, Ok(()));

    let res = ractor::call!(sup, SupervisorMsg::RestartChild, "b".to_string()).unwrap();
    assert_eq!(res, Ok(()));
    let now = which(&sup).await;
    assert!(actor_id(&now, "b").is_some_and(|id| Some(id) != actor_id(&before, "b")));
    assert_eq!(
        find(&now, "b").restarts,
        0,
        "a requested restart is not an automatic one"
    );
    assert_eq!(take_log(&log), ["start:b"]);
    let res = ractor::call!(sup, SupervisorMsg::RestartChild, "b".to_string()).unwrap();
    assert_eq!(res, Err(SupervisorError::AlreadyRunning("b".into())));

    // A terminated temporary child is forgotten.
    let res = ractor::call!(sup, SupervisorMsg::TerminateChild, "t".to_string()).unwrap();
    assert_eq!(res, Ok(()));
    assert_eq!(which(&sup).await.len(), 2);
    assert_eq!(take_log(&log), ["stop:t"]);

    for request in [SupervisorMsg::TerminateChild, SupervisorMsg::RestartChild] {
        let res = ractor::call!(sup, request, "nope".to_string()).unwrap();
        assert_eq!(res, Err(SupervisorError::UnknownChild("nope".into())));
    }
    sup.stop_and_wait(None, None).await.unwrap();
    assert_eq!(take_log(&log), ["stop:b", "stop:a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_start_stops_started_children_and_fails_the_spawn() {
    let log = new_log();
    let bad = Worker {
        fail_start: true,
        ..worker("c", &log)
    };
    let spec = spec_of(
        Strategy::OneForOne,
        vec![
            (worker("a", &log), Restart::Permanent),
            (worker("b", &log), Restart::Permanent),
            (bad, Restart::Permanent),
        ],
    );
    let err = Supervisor::spawn(None, spec)
        .await
        .expect_err("spawn must fail");
    let SpawnErr::StartupFailed(inner) = err else {
        panic!("unexpected error {err:?}")
    };
    assert!(matches!(
        inner.downcast_ref::<SupervisorError>(),
        Some(SupervisorError::Start { id, .. }) if id == "c"
    ));
    assert_eq!(
        take_log(&log),
        ["start:a", "start:b", "fail:c", "stop:b", "stop:a"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_child_ids_are_rejected() {
    let log = new_log();
    let spec = spec_of(
        Strategy::OneForOne,
        vec![
            (worker("a", &log), Restart::Permanent),
            (worker("a", &log), Restart::Permanent),
        ],
    );
    let err = Supervisor::spawn(None, spec)
        .await
        .expect_err("spawn must fail");
    assert!(err.to_string().contains("duplicate child id"), "{err}");
    assert!(take_log(&log).is_empty());
}

/// A host owning a supervisor; `graceful` makes it stop the supervisor in its `post_stop`.
struct Owner {
    log: Log,
    graceful: bool,
}

impl Actor for Owner {
    type Msg = ();
    type State = ActorRef<SupervisorMsg>;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let spec = spec_of(
            Strategy::OneForOne,
            vec![
                (worker("a", &self.log), Restart::Permanent),
                (worker("b", &self.log), Restart::Permanent),
            ],
        );
        let (sup, _) = Supervisor::spawn_linked(None, spec, myself.get_cell()).await?;
        Ok(sup)
    }

    async fn post_stop(
        &self,
        _: ActorRef<()>,
        sup: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if self.graceful {
            sup.stop_and_wait(None, None).await?;
        }
        Ok(())
    }
}

/// Documents the embedding contract: ractor kills the children of an exiting actor (no
/// `post_stop`), so a host must stop its supervisor itself to get the ordered shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_must_stop_its_supervisor_for_an_ordered_shutdown() {
    for (graceful, expected) in [(true, vec!["stop:b", "stop:a"]), (false, vec![])] {
        let log = new_log();
        let (host, _) = Actor::spawn(
            None,
            Owner {
                log: log.clone(),
                graceful,
            },
            (),
        )
        .await
        .unwrap();
        let sup: ActorRef<SupervisorMsg> = host.get_children()[0].clone().into();
        let children = which(&sup).await;
        take_log(&log);

        host.stop_and_wait(None, None).await.unwrap();
        wait_stopped(&sup.get_cell()).await;
        for id in ["a", "b"] {
            wait_stopped(&cell(&children, id)).await;
        }
        assert_eq!(take_log(&log), expected, "graceful = {graceful}");
    }
}
