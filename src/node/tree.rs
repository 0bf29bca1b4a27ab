//! The supervision tree of a node: its children, their order and restart settings.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, SpawnErr};

use crate::actors::approval::ApprovalGate;
use crate::actors::control::Control;
use crate::actors::journal::JournalRef;
use crate::actors::metrics::{Metrics, MetricsActor};
use crate::actors::scheduler::Scheduler;
use crate::actors::supervisor::{ChildSpec, Restart, Strategy, Supervisor, SupervisorSpec};
use crate::actors::worker::Worker;
use crate::context::NodeContext;
use crate::storage::JournalOptions;

fn spawn_err(e: impl std::fmt::Display) -> SpawnErr {
    SpawnErr::StartupFailed(e.to_string().into())
}

pub(super) fn root_spec(shared: &Arc<NodeContext>) -> SupervisorSpec {
    let cfg = &shared.config;
    let mut children = Vec::new();
    let sh = Arc::clone(shared);
    children.push(ChildSpec {
        id: "journal".into(),
        restart: Restart::Permanent,
        shutdown: Duration::from_secs(30),
        start: Arc::new(move |sup: ActorCell| {
            let sh = Arc::clone(&sh);
            Box::pin(async move {
                let options = JournalOptions {
                    durability: sh.config.durability,
                    ..JournalOptions::default()
                };
                let (jr, _thread) = JournalRef::spawn_linked(
                    sh.journal.clone(),
                    options,
                    Some(Arc::clone(&sh.metrics)).filter(|_| sh.config.metrics),
                    Some(sh.feed.clone()),
                    sup,
                )
                .await?;
                let cell = jr.actor().get_cell();
                sh.set_journal_ref(jr);
                Ok(cell)
            })
        }),
    });
    let sh = Arc::clone(shared);
    children.push(ChildSpec {
        id: "scheduler".into(),
        restart: Restart::Permanent,
        shutdown: Duration::from_secs(5),
        start: Arc::new(move |sup: ActorCell| {
            let sh = Arc::clone(&sh);
            Box::pin(async move {
                let (actor, _) = Actor::spawn_linked(
                    None,
                    Scheduler {
                        shared: Arc::clone(&sh),
                    },
                    (),
                    sup,
                )
                .await?;
                let cell = actor.get_cell();
                sh.set_scheduler(actor);
                Ok(cell)
            })
        }),
    });
    let sh = Arc::clone(shared);
    let worker_shutdown = cfg.grace + Duration::from_secs(2);
    children.push(ChildSpec {
        id: "workers".into(),
        restart: Restart::Permanent,
        shutdown: worker_shutdown + Duration::from_secs(1),
        start: Arc::new(move |sup: ActorCell| {
            let sh = Arc::clone(&sh);
            Box::pin(async move {
                let children = (0..sh.config.workers)
                    .map(|slot| {
                        let sh = Arc::clone(&sh);
                        let m = Arc::clone(&sh.metrics);
                        counted(
                            ChildSpec {
                                id: format!("worker-{slot}"),
                                restart: Restart::Permanent,
                                shutdown: worker_shutdown,
                                start: Arc::new(move |sup: ActorCell| {
                                    let w = Worker {
                                        shared: Arc::clone(&sh),
                                        slot,
                                    };
                                    Box::pin(async move {
                                        let (a, _) = Actor::spawn_linked(None, w, (), sup).await?;
                                        Ok(a.get_cell())
                                    })
                                }),
                            },
                            "worker".into(),
                            m,
                        )
                    })
                    .collect();
                let spec = SupervisorSpec {
                    strategy: Strategy::OneForOne,
                    // A worker restart loses at most its attempt (closed as interrupted).
                    intensity: 10,
                    period: Duration::from_secs(10),
                    children,
                };
                let (a, _) = Supervisor::spawn_linked(None, spec, sup).await?;
                Ok(a.get_cell())
            })
        }),
    });
    let sh = Arc::clone(shared);
    children.push(ChildSpec {
        id: "approvals".into(),
        restart: Restart::Permanent,
        shutdown: Duration::from_secs(2),
        start: Arc::new(move |sup: ActorCell| {
            let sh = Arc::clone(&sh);
            Box::pin(async move {
                let gate = ApprovalGate {
                    shared: Arc::clone(&sh),
                };
                let (a, _) = Actor::spawn_linked(None, gate, (), sup).await?;
                let cell = a.get_cell();
                sh.set_approvals(a);
                Ok(cell)
            })
        }),
    });
    let sh = Arc::clone(shared);
    children.push(ChildSpec {
        id: "metrics".into(),
        restart: Restart::Permanent,
        shutdown: Duration::from_secs(2),
        start: Arc::new(move |sup: ActorCell| {
            let sh = Arc::clone(&sh);
            Box::pin(async move {
                let (a, _) =
                    Actor::spawn_linked(None, MetricsActor { shared: sh }, (), sup).await?;
                Ok(a.get_cell())
            })
        }),
    });
    if cfg.control_socket {
        let sh = Arc::clone(shared);
        children.push(ChildSpec {
            id: "control".into(),
            restart: Restart::Permanent,
            shutdown: Duration::from_secs(2),
            start: Arc::new(move |sup: ActorCell| {
                let sh = Arc::clone(&sh);
                Box::pin(async move {
                    let (a, _) = Actor::spawn_linked(None, Control { shared: sh }, (), sup)
                        .await
                        .map_err(spawn_err)?;
                    Ok(a.get_cell())
                })
            }),
        });
    }
    #[cfg(feature = "cluster")]
    if cfg.cluster.is_some() {
        let sh = Arc::clone(shared);
        children.push(ChildSpec {
            id: "cluster".into(),
            restart: Restart::Permanent,
            shutdown: Duration::from_secs(2),
            start: Arc::new(move |sup: ActorCell| {
                let sh = Arc::clone(&sh);
                Box::pin(async move {
                    let gateway = crate::cluster::gateway::Gateway { shared: sh };
                    let (a, _) = Actor::spawn_linked(None, gateway, (), sup)
                        .await
                        .map_err(spawn_err)?;
                    Ok(a.get_cell())
                })
            }),
        });
    }
    SupervisorSpec {
        strategy: Strategy::RestForOne,
        intensity: cfg.intensity,
        period: cfg.period,
        children: children
            .into_iter()
            .map(|c| {
                let label = c.id.clone();
                counted(c, label, Arc::clone(&shared.metrics))
            })
            .collect(),
    }
}

/// Wraps a child's start function so that every start after the first counts as a restart
/// of that child in `troupe_actor_restarts_total`.
fn counted(mut child: ChildSpec, label: String, metrics: Arc<Metrics>) -> ChildSpec {
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Arc::clone(&child.start);
    let id = label;
    child.start = Arc::new(move |sup: ActorCell| {
        if started.swap(true, std::sync::atomic::Ordering::Relaxed) {
            metrics.restarted(&id);
        }
        start(sup)
    });
    child
}
