//! `troupe bench agents`: agent trees of in-process no-op agents against the same node's
//! plain figures, measured in the same process, alternating rounds.
//!
//! - **Spawn + wait latency.** A root task spawns one no-op child through its attempt
//!   context and waits for it; the time from the spawn call to the wait's return, against
//!   the submit → done latency of a one-task run on the same node (what `bench tasks`
//!   reports). Target: ≤ 2×.
//! - **Tree rate.** A tree of agents, fan-out `fan_out`, `depth` levels below the root (10
//!   and 4: 11,111 runs, 10,000 leaves): each agent spawns its children, waits for all,
//!   succeeds. Runs/s from the root's submission to its end, against the no-op task rate
//!   of a flat run of as many tasks, both with 64 worker slots (an agent waiting for its
//!   children lends its slot, so the tree's 1,111 waiting agents hold none). Target: ≥ 0.5×.
//!
//! Memory per child run at rest is measured by `cargo bench --bench model_memory` (live heap
//! bytes under a counting allocator, which a figure from this process's RSS could not give).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tokio::sync::oneshot;

use super::tasks::{flat_workflow, run_to_end};
use super::{fresh, node_err, BenchError};
use crate::executor::{AgentContext, AttemptContext, AttemptFuture, ChildSpec, Executor};
use crate::messages::scheduler::AttemptOutcome;
use crate::model::authority::Authority;
use crate::model::decide::Handed;
use crate::model::{RunState, Workflow};
use crate::node::Node;
use crate::storage::Durability;

/// Settings of `bench agents`.
#[derive(Debug, Clone)]
pub struct AgentsBenchOptions {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// Children per agent.
    pub fan_out: u32,
    /// Levels below the root.
    pub depth: u32,
    /// Spawn + wait samples per round.
    pub latency_samples: usize,
    /// Rounds of each side, alternated.
    pub rounds: usize,
    /// Journal durability.
    pub durability: Durability,
}

impl AgentsBenchOptions {
    /// Defaults: fan-out 10, depth 4, 200 latency samples, 3 rounds, `sync`.
    pub fn new(dir: PathBuf) -> Self {
        AgentsBenchOptions {
            dir,
            fan_out: 10,
            depth: 4,
            latency_samples: 200,
            rounds: 3,
            durability: Durability::Sync,
        }
    }
}

/// What `bench agents` measured; every round of both sides is kept.
#[derive(Debug, Clone, Serialize)]
pub struct AgentsBenchReport {
    /// Runs in one tree (root included).
    pub tree_runs: u64,
    /// Each round: (spawn + wait p50 µs, submit → done p50 µs).
    pub latency_rounds: Vec<(u64, u64)>,
    /// Each round: (tree runs/s, flat no-op tasks/s).
    pub tree_rounds: Vec<(f64, f64)>,
    /// Median spawn + wait / submit → done.
    pub latency_ratio: f64,
    /// Median tree rate / no-op task rate.
    pub tree_ratio: f64,
}

/// The one-task workflow every agent of the bench runs.
pub fn agent_workflow() -> Workflow {
    crate::workflow_file::command_workflow(vec!["agent".into()], std::path::Path::new("/"))
        .expect("a valid workflow")
}

/// The in-process agents: a task whose input says `{"d": depth}` below `depth` spawns
/// `fan_out` children and waits for them; `{"probe": true}` spawns one leaf and records how
/// long the spawn and the wait took; every other attempt succeeds at once.
struct TreeAgents {
    fan_out: u32,
    depth: u32,
    /// Where `probe` attempts report their spawn + wait time.
    probes: tokio::sync::mpsc::UnboundedSender<Duration>,
}

async fn spawn_and_wait(
    agent: &AgentContext,
    children: impl Iterator<Item = ChildSpec>,
) -> Result<(), String> {
    // All spawns at once (the node journals them in one group commit), then all waits.
    let mut spawns = tokio::task::JoinSet::new();
    for c in children {
        let agent = agent.clone();
        spawns.spawn(async move { agent.spawn(c).await });
    }
    let mut waits = tokio::task::JoinSet::new();
    while let Some(r) = spawns.join_next().await {
        let (run, _) = r.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        let agent = agent.clone();
        waits.spawn(async move { (run, agent.wait(run).await) });
    }
    while let Some(r) = waits.join_next().await {
        let (run, result) = r.map_err(|e| e.to_string())?;
        let result = result.map_err(|e| e.to_string())?;
        if result.state != RunState::Succeeded {
            return Err(format!("child {run} ended {}", result.state));
        }
    }
    Ok(())
}

impl Executor for TreeAgents {
    fn execute(&self, ctx: AttemptContext, _cancel: oneshot::Receiver<()>) -> AttemptFuture {
        let (fan_out, depth, probes) = (self.fan_out, self.depth, self.probes.clone());
        Box::pin(async move {
            let ok = AttemptOutcome::Succeeded {
                usage: None,
                handed: Handed::default(),
            };
            let Some(agent) = ctx.agent.clone() else {
                return ok;
            };
            let input = agent.input_value();
            let result = if input["probe"] == json!(true) {
                let t = Instant::now();
                let r = spawn_and_wait(
                    &agent,
                    std::iter::once(ChildSpec::new(
                        "leaf",
                        agent_workflow(),
                        Some(json!({"leaf": 1})),
                    )),
                )
                .await;
                let _ = probes.send(t.elapsed());
                r
            } else {
                match input["d"].as_u64() {
                    Some(d) if (d as u32) < depth => {
                        let children = (0..fan_out).map(|i| {
                            ChildSpec::new(
                                format!("c{i}"),
                                agent_workflow(),
                                Some(json!({"d": d + 1, "i": i})),
                            )
                        });
                        spawn_and_wait(&agent, children).await
                    }
                    _ => Ok(()),
                }
            };
            match result {
                Ok(()) => ok,
                Err(message) => AttemptOutcome::Failed {
                    failure: crate::model::Failure::Error { message },
                    usage: None,
                    retryable: false,
                    counters: Default::default(),
                },
            }
        })
    }
}

fn tree_runs(fan_out: u32, depth: u32) -> u64 {
    (0..=depth).map(|d| u64::from(fan_out).pow(d)).sum()
}

/// Starts a root run through a root spawn (so it has an input), returns when it ended.
async fn root(
    node: &crate::node::NodeHandle,
    key: &str,
    input: serde_json::Value,
) -> Result<Duration, BenchError> {
    use crate::messages::control::{Request, Response, SpawnRequest};
    let start = Instant::now();
    let r = node
        .request(Request::Spawn(Box::new(SpawnRequest {
            caller: None,
            key: key.into(),
            workflow: Box::new(agent_workflow()),
            input: Some(input.to_string()),
            authority: Default::default(),
            on_failure: Default::default(),
            on_parent_exit: Default::default(),
            on_budget_exhausted: Default::default(),
        })))
        .await
        .map_err(node_err)?;
    let Response::Submitted { run, .. } = r else {
        return Err(node_err(format!("spawn answered {r:?}")));
    };
    let state = node.wait_for_run(run).await.map_err(node_err)?;
    if state != RunState::Succeeded {
        return Err(node_err(format!("the root run ended {state}")));
    }
    Ok(start.elapsed())
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    v[v.len() / 2]
}

/// Runs the benchmark (see the module docs).
pub async fn agents(opts: &AgentsBenchOptions) -> Result<AgentsBenchReport, BenchError> {
    let runs = tree_runs(opts.fan_out, opts.depth);
    // As many slots as the flat run gets: an agent waiting for its children lends its slot.
    let workers = 64;
    let authority = Authority {
        max_depth: opts.depth.max(1),
        max_children: opts.fan_out.max(1),
        max_descendants: runs as u32,
        ..Authority::default()
    };
    let mut latency_rounds = Vec::new();
    let mut tree_rounds = Vec::new();
    for round in 0..opts.rounds {
        // Latency: spawn + wait of one child, against submit → done of a one-task run.
        let dir = fresh(&opts.dir, &format!("latency-{round}"))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let node = Node::builder(&dir)
            .executor(TreeAgents {
                fan_out: opts.fan_out,
                depth: opts.depth,
                probes: tx,
            })
            .durability(opts.durability)
            .agents(authority.clone())
            .control_socket(false)
            .start()
            .await
            .map_err(node_err)?;
        let mut spawned = Vec::with_capacity(opts.latency_samples);
        let mut submitted = Vec::with_capacity(opts.latency_samples);
        for i in 0..opts.latency_samples {
            root(&node, &format!("probe-{i}"), json!({"probe": true, "i": i})).await?;
            spawned.push(
                rx.recv()
                    .await
                    .ok_or_else(|| node_err("no probe"))?
                    .as_micros() as u64,
            );
            let wf = flat_workflow(&format!("bench-latency-{i}"), 1, &["true"])?;
            submitted.push(run_to_end(&node, wf).await?.as_micros() as u64);
        }
        node.shutdown().await.map_err(node_err)?;
        latency_rounds.push((median(spawned), median(submitted)));

        // The tree, then a flat run of as many no-op tasks.
        let dir = fresh(&opts.dir, &format!("tree-{round}"))?;
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let node = Node::builder(&dir)
            .executor(TreeAgents {
                fan_out: opts.fan_out,
                depth: opts.depth,
                probes: tx,
            })
            .workers(workers)
            .durability(opts.durability)
            .agents(authority.clone())
            .control_socket(false)
            .start()
            .await
            .map_err(node_err)?;
        let took = root(&node, "tree", json!({"d": 0})).await?;
        node.shutdown().await.map_err(node_err)?;
        let tree_rate = runs as f64 / took.as_secs_f64();
        let dir = fresh(&opts.dir, &format!("flat-{round}"))?;
        let node = Node::builder(&dir)
            .executor(crate::executor::NoopExecutor)
            .workers(64)
            .durability(opts.durability)
            .control_socket(false)
            .start()
            .await
            .map_err(node_err)?;
        let took = run_to_end(
            &node,
            flat_workflow("bench-flat", runs as usize, &["true"])?,
        )
        .await?;
        node.shutdown().await.map_err(node_err)?;
        tree_rounds.push((tree_rate, runs as f64 / took.as_secs_f64()));
    }
    let _ = std::fs::remove_dir_all(&opts.dir);
    let latency_ratio = median(
        latency_rounds
            .iter()
            .map(|(a, b)| *a as f64 / (*b).max(1) as f64)
            .collect(),
    );
    let tree_ratio = median(tree_rounds.iter().map(|(a, b)| a / b).collect());
    Ok(AgentsBenchReport {
        tree_runs: runs,
        latency_rounds,
        tree_rounds,
        latency_ratio,
        tree_ratio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_of_fan_out_10_and_depth_4_has_11111_runs() {
        assert_eq!(tree_runs(10, 4), 11_111);
        assert_eq!(tree_runs(10, 3), 1_111);
        assert_eq!(tree_runs(3, 0), 1);
    }
}
