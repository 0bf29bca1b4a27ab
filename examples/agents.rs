//! An agent tree driven from a host's own ractor supervision tree.
//!
//! The host supervises a *root agent* actor (OTP one_for_one: a crashed child is restarted).
//! The root agent delegates three parts of its work to child runs through the embedded
//! node's API, each under a stable key, then waits for them and combines their outputs. On
//! its first life it crashes right after spawning: the host restarts it, and the new
//! incarnation spawns the same keys — which re-attach to the runs already going (none runs
//! twice) — and finishes the work.
//!
//! Run: `cargo run --example agents` (uses a temporary data dir; the children are `sh`
//! one-liners). See docs/agents.md for the model.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde_json::{json, Value};
use troupe::executor::ChildSpec;
use troupe::model::RunState;
use troupe::workflow_file::command_workflow;
use troupe::{Node, NodeHandle};

/// The root agent: delegates, waits, combines.
struct RootAgent;

/// What it is started with.
struct RootArgs {
    node: Arc<NodeHandle>,
    /// Incarnations so far (the first one crashes after spawning).
    lives: Arc<AtomicU32>,
    /// Where the combined result goes.
    done: tokio::sync::mpsc::UnboundedSender<Value>,
}

impl Actor for RootAgent {
    type Msg = ();
    type State = RootArgs;
    type Arguments = RootArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: RootArgs,
    ) -> Result<RootArgs, ActorProcessingErr> {
        myself.cast(())?;
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<()>,
        _msg: (),
        s: &mut RootArgs,
    ) -> Result<(), ActorProcessingErr> {
        let life = s.lives.fetch_add(1, Ordering::SeqCst) + 1;
        let mut runs = Vec::new();
        for part in 0..3 {
            // Each part squares its input; the key makes the spawn idempotent.
            let workflow = command_workflow(
                vec![
                    "sh".into(),
                    "-c".into(),
                    "n=$(tr -dc 0-9 < \"$TROUPE_INPUT\"); echo \"{\\\"square\\\": $((n * n))}\" > \"$TROUPE_OUTPUT\"".into(),
                ],
                &std::env::temp_dir(),
            )?;
            let child = ChildSpec::new(format!("part-{part}"), workflow, Some(json!(part + 2)));
            let (run, attached) = s.node.spawn(child).await?;
            println!(
                "life {life}: part {part} is run {run}{}",
                if attached { " (attached)" } else { "" }
            );
            runs.push(run);
        }
        if life == 1 {
            // A bug in the agent: its supervisor restarts it.
            panic!("the root agent crashed after spawning its children");
        }
        let mut total = 0;
        for run in runs {
            if s.node.wait_for_run(run).await? != RunState::Succeeded {
                return Err(format!("child {run} did not succeed").into());
            }
            let result = s.node.result(run).await?;
            let output: Value = serde_json::from_str(&result.output)?;
            total += output["square"].as_i64().unwrap_or(0);
        }
        let _ = s.done.send(json!({"sum_of_squares": total, "lives": life}));
        Ok(())
    }
}

/// The host's supervisor: restarts the root agent when it fails (one_for_one).
struct Host;

impl Actor for Host {
    type Msg = ();
    type State = (
        Arc<NodeHandle>,
        Arc<AtomicU32>,
        tokio::sync::mpsc::UnboundedSender<Value>,
    );
    type Arguments = Self::State;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        state: Self::State,
    ) -> Result<Self::State, ActorProcessingErr> {
        start_root(&myself, &state).await?;
        Ok(state)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(_, reason) = event {
            eprintln!("root agent failed ({reason}); restarting it");
            start_root(&myself, state).await?;
        }
        Ok(())
    }
}

async fn start_root(
    host: &ActorRef<()>,
    (node, lives, done): &<Host as Actor>::State,
) -> Result<(), ActorProcessingErr> {
    let args = RootArgs {
        node: Arc::clone(node),
        lives: Arc::clone(lives),
        done: done.clone(),
    };
    Actor::spawn_linked(None, RootAgent, args, host.get_cell()).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::temp_dir().join(format!("troupe-agents-{}", std::process::id()));
    let node = Arc::new(Node::builder(&dir).control_socket(false).start().await?);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (host, handle) = Actor::spawn(
        None,
        Host,
        (Arc::clone(&node), Arc::new(AtomicU32::new(0)), tx),
    )
    .await?;
    let result = rx.recv().await.ok_or("the root agent never finished")?;
    println!("combined: {result}");
    assert_eq!(result["sum_of_squares"], json!(4 + 9 + 16));
    host.stop(None);
    handle.await?;
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
