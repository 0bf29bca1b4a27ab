//! `troupe bench web`: what the web UI costs and how fast it follows a run, each figure
//! beside a baseline from the same run (alternating rounds; every round is reported).
//!
//! | case | troupe figure | baseline |
//! |---|---|---|
//! | run page | ms to answer `GET /runs/RUN` (the HTML page, its DAG SVG and task table) of a run of N tasks, measured by a client on loopback | ms to answer `GET /api/runs/RUN` (the same run as JSON) |
//! | big run page | ms and bytes of the page of a run of 10·N tasks (summarised graph, paged table) | ms of its JSON |
//! | live latency | ms from an approval's API answer (the event is durable then) to the run page's stream (`/api/runs/RUN/stream`) showing the task approved | ms to the same event on `/api/events` (the raw committed feed) |
//! | dispatch | no-op tasks/s of a run of M tasks while P clients have its run page open (page loaded, its stream followed for the rows the page shows, as its script does) | the same run with no page open |

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::tasks::flat_workflow;
use super::{fresh, node_err, BenchError};
use crate::config::NodeConfig;
use crate::executor::NoopExecutor;
use crate::model::{RunId, Workflow};
use crate::node::{Node, NodeHandle};
use crate::storage::Durability;

/// Settings of `bench web`.
#[derive(Debug, Clone)]
pub struct WebBenchOptions {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// Tasks of the run whose page is timed (the big run has ten times as many).
    pub tasks: usize,
    /// Rounds of each case.
    pub rounds: usize,
    /// Approvals timed for the live latency.
    pub approvals: usize,
    /// No-op tasks per dispatch round.
    pub dispatch_tasks: usize,
    /// Open run pages during a dispatch round with pages.
    pub pages: usize,
}

impl WebBenchOptions {
    /// Defaults: a 10,000-task run page (and a 100,000-task one), 5 rounds, 50 approvals,
    /// 50,000 no-op tasks with 20 open pages.
    pub fn new(dir: PathBuf) -> Self {
        WebBenchOptions {
            dir,
            tasks: 10_000,
            rounds: 5,
            approvals: 50,
            dispatch_tasks: 50_000,
            pages: 20,
        }
    }
}

/// What `bench web` measured.
#[derive(Debug, Clone, Serialize)]
pub struct WebBenchReport {
    /// Tasks of the timed run.
    pub tasks: usize,
    /// Per round: (page ms, JSON ms).
    pub page_rounds: Vec<(f64, f64)>,
    /// Median page ms.
    pub page_ms: f64,
    /// Median JSON ms.
    pub json_ms: f64,
    /// Bytes of the page.
    pub page_bytes: usize,
    /// Tasks of the big run.
    pub big_tasks: usize,
    /// Per round: (big page ms, big JSON ms).
    pub big_rounds: Vec<(f64, f64)>,
    /// Median big page ms.
    pub big_page_ms: f64,
    /// Bytes of the big page.
    pub big_page_bytes: usize,
    /// Per approval: (ms to the run stream, ms to the event stream).
    pub latency_rounds: Vec<(f64, f64)>,
    /// Median and largest ms to the run stream.
    pub latency_p50_ms: f64,
    /// Largest ms to the run stream.
    pub latency_max_ms: f64,
    /// Median ms to the event stream.
    pub feed_p50_ms: f64,
    /// Per round: (tasks/s with pages open, tasks/s without).
    pub dispatch_rounds: Vec<(f64, f64)>,
    /// Median tasks/s with pages open.
    pub figure: f64,
    /// Median tasks/s without.
    pub baseline: f64,
    /// `figure / baseline` (target ≥ 0.95).
    pub ratio: f64,
    /// Open pages during the rounds with pages.
    pub pages: usize,
}

/// The token the bench's node accepts.
const TOKEN: &str = "bench-web-0123456789abcdef";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// A node serving HTTP on a free loopback port with one token, no-op executor.
async fn web_node(dir: &std::path::Path, workers: u32) -> Result<(NodeHandle, String), BenchError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let tokens = dir.join("http-tokens");
    std::fs::write(&tokens, format!("bench {TOKEN}\n"))?;
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600))?;
    let mut config = NodeConfig::new(dir);
    config.http_addr = Some(([127, 0, 0, 1], 0).into());
    config.http.tokens_file = Some(tokens);
    config.workers = workers;
    config.durability = Durability::Buffered;
    config.control_socket = false;
    let node = Node::with_config(config)
        .executor(NoopExecutor)
        .start()
        .await
        .map_err(node_err)?;
    let addr = node
        .http_addr()
        .ok_or_else(|| node_err("the node serves no HTTP"))?;
    Ok((node, format!("http://{addr}")))
}

/// ms and bytes of one GET.
async fn timed_get(client: &reqwest::Client, url: &str) -> Result<(f64, usize), BenchError> {
    let start = Instant::now();
    let r = client.get(url).send().await.map_err(node_err)?;
    if !r.status().is_success() {
        return Err(node_err(format!("GET {url}: {}", r.status())));
    }
    let body = r.bytes().await.map_err(node_err)?;
    Ok((start.elapsed().as_secs_f64() * 1000.0, body.len()))
}

/// A finished run of `n` no-op tasks; its id.
async fn finished_run(node: &NodeHandle, name: &str, n: usize) -> Result<RunId, BenchError> {
    let run = node
        .submit(flat_workflow(name, n, &["true"])?)
        .await
        .map_err(node_err)?;
    node.wait_for_run(run).await.map_err(node_err)?;
    Ok(run)
}

/// Alternating rounds of the page and its JSON: (rounds, page bytes).
async fn page_rounds(
    client: &reqwest::Client,
    base: &str,
    run: RunId,
    rounds: usize,
) -> Result<(Vec<(f64, f64)>, usize), BenchError> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        let (page, b) = timed_get(client, &format!("{base}/runs/{run}")).await?;
        let (json, _) = timed_get(client, &format!("{base}/api/runs/{run}")).await?;
        bytes = b;
        out.push((page, json));
    }
    Ok((out, bytes))
}

/// A run of `n` gates (no-op tasks that await approval).
fn gates(n: usize) -> Result<Workflow, BenchError> {
    let mut text = String::from("name = \"bench-web-gates\"\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[task]]\nid = \"gate{i}\"\ncommand = [\"true\"]\nrequires_approval = true\n"
        ));
    }
    Ok(crate::model::parse::WorkflowFormat::Toml.parse_bytes(text.as_bytes())?)
}

/// Reads an SSE response to its end, sending `(task, when)` for each task `pick` finds in
/// a `data:` line.
fn stream_reader(
    mut resp: reqwest::Response,
    pick: fn(&serde_json::Value) -> Vec<String>,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, Instant)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            let at = Instant::now();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find('\n') {
                let line: String = buf.drain(..=end).collect();
                let Some(data) = line.trim_end().strip_prefix("data: ") else {
                    continue;
                };
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(data) {
                    for task in pick(&v) {
                        if tx.send((task, at)).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    rx
}

/// Waits for `task` on `rx`; when it arrived.
async fn arrival(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Instant)>,
    task: &str,
) -> Result<Instant, BenchError> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some((t, at))) if t == task => return Ok(at),
            Ok(Some(_)) => {}
            Ok(None) => return Err(node_err("the stream ended")),
            Err(_) => return Err(node_err(format!("{task} never arrived within 30 s"))),
        }
    }
}

/// The live latency: per approval, ms from its durable answer to the run stream and to the
/// event stream, both read at once by their own tasks. Approvals are 150 ms apart (a person
/// deciding, not a burst: a burst is coalesced to one frame per 100 ms).
async fn latency(
    client: &reqwest::Client,
    node: &NodeHandle,
    base: &str,
    approvals: usize,
) -> Result<Vec<(f64, f64)>, BenchError> {
    let run = node.submit(gates(approvals)?).await.map_err(node_err)?;
    let get = |url: String| client.get(url).send();
    let page = get(format!("{base}/api/runs/{run}/stream"))
        .await
        .map_err(node_err)?;
    let feed = get(format!("{base}/api/events?run={run}"))
        .await
        .map_err(node_err)?;
    let mut page = stream_reader(page, |v| {
        v["tasks"]
            .as_object()
            .map(|t| {
                t.iter()
                    .filter(|(_, x)| x["state"] != "awaiting_approval")
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    });
    let mut feed = stream_reader(feed, |v| {
        if v["type"] == "approval_granted" {
            vec![v["task"].as_str().unwrap_or_default().to_owned()]
        } else {
            Vec::new()
        }
    });
    let mut out = Vec::new();
    for i in 0..approvals {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let task = format!("gate{i}");
        let r = client
            .post(format!("{base}/api/runs/{run}/tasks/{task}/approve"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .map_err(node_err)?;
        // Durable once answered.
        let durable = Instant::now();
        if !r.status().is_success() {
            return Err(node_err(format!("approve: {}", r.status())));
        }
        let to_page = arrival(&mut page, &task)
            .await?
            .saturating_duration_since(durable);
        let to_feed = arrival(&mut feed, &task)
            .await?
            .saturating_duration_since(durable);
        out.push((
            to_page.as_secs_f64() * 1000.0,
            to_feed.as_secs_f64() * 1000.0,
        ));
    }
    Ok(out)
}

/// One dispatch round: tasks/s of a run of `n` no-op tasks with `pages` run pages open.
async fn dispatch_round(
    opts: &WebBenchOptions,
    round: usize,
    pages: usize,
) -> Result<f64, BenchError> {
    let dir = fresh(&opts.dir, &format!("dispatch-{round}-{pages}"))?;
    let (node, base) = web_node(&dir, 16).await?;
    let client = reqwest::Client::new();
    // Halted while the pages open, so every page follows the whole run.
    node.request(crate::messages::control::Request::Command(
        crate::messages::control::Command::Halt { kill: false },
    ))
    .await
    .map_err(node_err)?;
    let run = node
        .submit(flat_workflow(
            "bench-web-dispatch",
            opts.dispatch_tasks,
            &["true"],
        )?)
        .await
        .map_err(node_err)?;
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..pages {
        let html = client
            .get(format!("{base}/runs/{run}"))
            .send()
            .await
            .map_err(node_err)?
            .text()
            .await
            .map_err(node_err)?;
        // What the page's script asks for: the tasks of its table's rows.
        let attr = |name: &str| {
            let at = html.find(&format!("{name}=\""))? + name.len() + 2;
            html[at..].split('"').next().map(str::to_owned)
        };
        let range = match (attr("data-rows-from"), attr("data-rows-to")) {
            (Some(f), Some(t)) => format!("?from={f}&to={t}"),
            _ => return Err(node_err("the run page names no rows")),
        };
        let mut resp = client
            .get(format!("{base}/api/runs/{run}/stream{range}"))
            .send()
            .await
            .map_err(node_err)?;
        // What a page's script does: read every frame until the stream ends.
        readers.spawn(async move { while let Ok(Some(_)) = resp.chunk().await {} });
    }
    let start = Instant::now();
    node.request(crate::messages::control::Request::Command(
        crate::messages::control::Command::Unhalt,
    ))
    .await
    .map_err(node_err)?;
    node.wait_for_run(run).await.map_err(node_err)?;
    let took = start.elapsed();
    readers.abort_all();
    node.shutdown().await.map_err(node_err)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(opts.dispatch_tasks as f64 / took.as_secs_f64())
}

/// Runs every case.
pub async fn web(opts: &WebBenchOptions) -> Result<WebBenchReport, BenchError> {
    let dir = fresh(&opts.dir, "pages")?;
    let (node, base) = web_node(&dir, 64).await?;
    let client = reqwest::Client::new();
    let run = finished_run(&node, "bench-web", opts.tasks).await?;
    // A first request warms the projection and the connection pool.
    timed_get(&client, &format!("{base}/runs/{run}")).await?;
    let (page_rounds_v, page_bytes) = page_rounds(&client, &base, run, opts.rounds).await?;
    let big_tasks = opts.tasks * 10;
    let big = finished_run(&node, "bench-web-big", big_tasks).await?;
    let (big_rounds, big_page_bytes) = page_rounds(&client, &base, big, opts.rounds).await?;
    let latency_rounds = latency(&client, &node, &base, opts.approvals).await?;
    node.shutdown().await.map_err(node_err)?;
    let _ = std::fs::remove_dir_all(&dir);

    let mut dispatch_rounds = Vec::new();
    for r in 0..opts.rounds {
        let with = dispatch_round(opts, r, opts.pages).await?;
        let without = dispatch_round(opts, r, 0).await?;
        dispatch_rounds.push((with, without));
    }
    let figure = median(dispatch_rounds.iter().map(|r| r.0).collect());
    let baseline = median(dispatch_rounds.iter().map(|r| r.1).collect());
    let _ = std::fs::remove_dir_all(&opts.dir);
    Ok(WebBenchReport {
        tasks: opts.tasks,
        page_ms: median(page_rounds_v.iter().map(|r| r.0).collect()),
        json_ms: median(page_rounds_v.iter().map(|r| r.1).collect()),
        page_rounds: page_rounds_v,
        page_bytes,
        big_tasks,
        big_page_ms: median(big_rounds.iter().map(|r| r.0).collect()),
        big_rounds,
        big_page_bytes,
        latency_p50_ms: median(latency_rounds.iter().map(|r| r.0).collect()),
        latency_max_ms: latency_rounds.iter().map(|r| r.0).fold(0.0, f64::max),
        feed_p50_ms: median(latency_rounds.iter().map(|r| r.1).collect()),
        latency_rounds,
        dispatch_rounds,
        figure,
        baseline,
        ratio: figure / baseline,
        pages: opts.pages,
    })
}
