//! The coordinator's end of the cluster: a ractor_cluster `NodeServer` listening on
//! `[cluster] listen`, and the gateway actor worker nodes find in the process group
//! [`COORDINATOR_GROUP`]. It only forwards: every message goes to the scheduler, which
//! checks it against the journal and decides.
//!
//! A child of the node's supervision tree after the scheduler (rest_for_one): when the
//! scheduler restarts, the gateway and its server restart with it, every session drops, and
//! the worker nodes reconnect and resume their leases.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{IncomingEncryptionMode, NodeServer, NodeServerMessage};

use super::wire::{ToCoordinator, COORDINATOR_GROUP, COORDINATOR_NAME};
use crate::context::NodeContext;
use crate::messages::scheduler::SchedulerMsg;

/// The gateway actor.
pub struct Gateway {
    /// Node-wide settings and handles.
    pub shared: Arc<NodeContext>,
}

/// Logs sessions that close before they authenticated: a wrong cookie, or not a troupe
/// worker at all.
#[derive(Default)]
struct Watch {
    authenticated: std::sync::Mutex<std::collections::HashSet<ractor::ActorId>>,
}

impl ractor_cluster::NodeEventSubscription for Watch {
    fn node_session_opened(&self, _ses: ractor_cluster::node::NodeServerSessionInformation) {}
    fn node_session_authenticated(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        tracing::info!(peer = %ses.peer_addr, "cluster session authenticated");
        self.authenticated
            .lock()
            .expect("not poisoned")
            .insert(ses.actor.get_id());
    }
    fn node_session_disconnected(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        let authenticated = self
            .authenticated
            .lock()
            .expect("not poisoned")
            .remove(&ses.actor.get_id());
        if !authenticated {
            tracing::warn!(peer = %ses.peer_addr, "a cluster session closed before it authenticated (wrong cookie?)");
        } else {
            tracing::info!(peer = %ses.peer_addr, "cluster session closed");
        }
    }
}

impl Actor for Gateway {
    type Msg = ToCoordinator;
    type State = ActorRef<NodeServerMessage>;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<ToCoordinator>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let cfg = self
            .shared
            .config
            .cluster
            .as_ref()
            .ok_or("the cluster gateway started without [cluster]")?;
        let encryption = match &cfg.tls {
            Some(files) => Some(IncomingEncryptionMode::Tls(super::tls::acceptor(files)?)),
            None => None,
        };
        let server = NodeServer::new(
            cfg.listen.port(),
            self.shared.cluster_cookie().to_owned(),
            COORDINATOR_NAME.to_owned(),
            cfg.listen.ip().to_string(),
            encryption,
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(cfg.listen.ip());
        let (server, _) = Actor::spawn_linked(None, server, (), myself.get_cell())
            .await
            .map_err(|e| format!("[cluster] listen {}: {e}", cfg.listen))?;
        server.cast(NodeServerMessage::SubscribeToEvents {
            id: "troupe".into(),
            subscription: Box::<Watch>::default(),
        })?;
        ractor::pg::join(COORDINATOR_GROUP.to_owned(), vec![myself.get_cell()]);
        tracing::info!(listen = %cfg.listen, tls = cfg.tls.is_some(), "cluster gateway listening");
        Ok(server)
    }

    async fn handle(
        &self,
        _myself: ActorRef<ToCoordinator>,
        message: ToCoordinator,
        _server: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(s) = self.shared.scheduler() {
            let _ = s.cast(SchedulerMsg::Cluster(message));
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ToCoordinator>,
        server: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::leave(COORDINATOR_GROUP.to_owned(), vec![myself.get_cell()]);
        server.stop(None);
        Ok(())
    }
}
