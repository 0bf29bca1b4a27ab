//! Embedding troupe in a host ractor application.
//!
//! The host's own supervisor actor spawns a troupe node's whole supervision tree linked under
//! itself (`Node::spawn_linked`), submits a workflow through the library API and waits for
//! the run to finish. If the node's root supervisor ever gives up (restart intensity
//! exceeded), the host sees it as `ActorFailed` in `handle_supervisor_evt`.
//!
//! Run: `cargo run --example embed` (uses a temporary data dir).

use std::path::PathBuf;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use troupe::model::{parse_workflow, RunState};
use troupe::workflow_file::anchor;
use troupe::{Node, NodeHandle};

/// The host application's supervisor.
struct Host;

/// What the host can be asked.
enum HostMsg {
    /// Run a workflow (TOML text) to its end; reply with the run's final state.
    Run(String, RpcReplyPort<Result<RunState, String>>),
}

// troupe's `cluster` feature (on by default) turns on ractor's, which removes ractor's
// blanket `Message` impl: a host's own message types say they are messages.
#[cfg(feature = "cluster")]
impl ractor::Message for HostMsg {}

impl Actor for Host {
    type Msg = HostMsg;
    type State = Option<NodeHandle>;
    type Arguments = PathBuf;

    async fn pre_start(
        &self,
        myself: ActorRef<HostMsg>,
        data_dir: PathBuf,
    ) -> Result<Self::State, ActorProcessingErr> {
        // No control socket: this node is only driven through the library API.
        let node = Node::builder(data_dir)
            .workers(4)
            .control_socket(false)
            .spawn_linked(myself.get_cell())
            .await?;
        Ok(Some(node))
    }

    async fn handle(
        &self,
        _myself: ActorRef<HostMsg>,
        message: HostMsg,
        node: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let HostMsg::Run(text, reply) = message;
        let node = node.as_ref().ok_or("node stopped")?;
        let result = async {
            let workflow = parse_workflow(&text).map_err(|e| e.to_string())?;
            let workflow = anchor(workflow, &std::env::temp_dir()).map_err(|e| e.to_string())?;
            let run = node.submit(workflow).await.map_err(|e| e.to_string())?;
            println!("submitted run {run}");
            node.wait_for_run(run).await.map_err(|e| e.to_string())
        }
        .await;
        let _ = reply.send(result);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<HostMsg>,
        event: SupervisionEvent,
        _node: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(_, reason) = event {
            eprintln!("troupe node failed: {reason}; stopping the host");
            myself.stop(Some("troupe node failed".into()));
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<HostMsg>,
        node: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // An orderly stop of the node (ractor would only kill linked children).
        if let Some(node) = node.take() {
            node.shutdown().await?;
        }
        Ok(())
    }
}

const WORKFLOW: &str = r#"
name = "embedded"
[[task]]
id = "hello"
command = ["echo", "hello from an embedded troupe"]
[[task]]
id = "count"
shell = "ls / | wc -l"
depends_on = ["hello"]
[[task]]
id = "done"
command = ["true"]
depends_on = ["hello", "count"]
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = std::env::temp_dir().join(format!("troupe-embed-{}", std::process::id()));
    let (host, handle) = Actor::spawn(None, Host, data_dir.clone()).await?;
    let state = ractor::call!(host, HostMsg::Run, WORKFLOW.to_owned())?;
    println!("run ended: {}", state.map_err(|e| e.to_string())?);
    host.stop(None);
    handle.await?;
    std::fs::remove_dir_all(&data_dir)?;
    Ok(())
}
