//! `/node`: the node's health checks, counts, the queue, the attempts running now, charts of
//! throughput (the last minute, per second, and the last hour, per minute) and of latency
//! (the last hour, per minute, from the durable rollups), and the worker nodes; `/nodes`:
//! the worker nodes alone. Charts are inline SVG polylines drawn on the server.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Extension;
use maud::{html, Markup};

use super::{counters, duration, now, number, ok_page, task_href, time, PageResult};
use crate::messages::control::{DashboardView, HealthReport, NodeInfo, Request, Response};
use crate::model::rollup::{Bucket, BUCKET_MS};
use crate::web::{Viewer, Web, WebError};

/// Queue entries the page lists.
const QUEUE_ROWS: u32 = 20;

/// Minutes the rollup charts cover.
pub const CHART_MINUTES: u64 = 60;

/// One minute of the rollups, all pools merged: (minute, tasks ended, p50 ms, p95 ms).
pub(crate) type MinuteFigures = (u64, u64, Option<f64>, Option<f64>);

/// The last [`CHART_MINUTES`] minutes of rollups, oldest first, one entry per minute (empty
/// minutes count 0). Blocking (RocksDB reads).
fn minutes(web: &Web) -> Result<Vec<MinuteFigures>, WebError> {
    let last = now().0 / BUCKET_MS;
    let first = last.saturating_sub(CHART_MINUTES - 1);
    let rows = web
        .ctx
        .journal
        .rollups(first, last)
        .map_err(|e| WebError::unavailable(format!("reading the rollups: {e}")))?;
    let mut merged: BTreeMap<u64, Bucket> = BTreeMap::new();
    for ((minute, _pool), b) in &rows {
        merged.entry(*minute).or_default().merge(b);
    }
    Ok((first..=last)
        .map(|m| match merged.get(&m) {
            Some(b) => {
                let l = b.latency.summary();
                (
                    m,
                    b.succeeded + b.failed,
                    l.map(|l| l.p50_ms),
                    l.map(|l| l.p95_ms),
                )
            }
            None => (m, 0, None, None),
        })
        .collect())
}

pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
) -> PageResult {
    let health = match web.ask(Request::Health).await? {
        Response::Health(h) => Some(h),
        _ => None,
    };
    let dash = match web.ask(Request::Dashboard { limit: QUEUE_ROWS }).await? {
        Response::Dashboard(d) => d,
        other => return Err(WebError::unavailable(format!("unexpected answer: {other:?}")).into()),
    };
    // A single node has no cluster: no table rather than an error page.
    let nodes = match web.ask(Request::Nodes).await {
        Ok(Response::Nodes(n)) => n,
        _ => Vec::new(),
    };
    let w = Arc::clone(&web);
    let mins = tokio::task::spawn_blocking(move || minutes(&w))
        .await
        .map_err(|e| WebError::unavailable(e.to_string()))??;
    let body = render(health.as_deref(), &dash, &mins, &nodes);
    Ok(ok_page("Node", &viewer, body))
}

/// `/nodes`: the worker nodes.
pub(crate) async fn nodes_page(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
) -> PageResult {
    let nodes = match web.ask(Request::Nodes).await? {
        Response::Nodes(n) => n,
        other => return Err(WebError::unavailable(format!("unexpected answer: {other:?}")).into()),
    };
    let body = html! { h1 { "Nodes" } (nodes_table(&nodes)) };
    Ok(ok_page("Nodes", &viewer, body))
}

/// The page's body.
pub(crate) fn render(
    health: Option<&HealthReport>,
    d: &DashboardView,
    mins: &[MinuteFigures],
    nodes: &[NodeInfo],
) -> Markup {
    let n = &d.node;
    let q = &d.queue;
    html! {
        h1 { "Node " code { (n.node_id) } }
        @if let Some(h) = health {
            h2 { "Health: " span #health class=(format!("health-{}", h.status.as_str())) { (h.status.as_str()) } }
            table #health-checks {
                thead { tr { th { "Check" } th { "Status" } th { "Value" } th { "Threshold" } th { "" } } }
                tbody {
                    @for c in &h.checks {
                        tr class=(format!("health-{}", c.status.as_str())) {
                            td { (c.name) } td.status { (c.status.as_str()) }
                            td.num { (number(c.value)) " " (c.unit) } td.num { (number(c.threshold)) " " (c.unit) }
                            td { (c.message) }
                        }
                    }
                }
            }
        }
        dl.summary {
            dt { "Dispatch" } dd { @if n.halted { span.tag.bad { "halted" } @if n.stop_file { " (STOP file)" } } @else { "on" } }
            @if let Some(f) = &n.fault { dt { "Fault" } dd.failure { (f) } }
            dt { "Runs" } dd { (n.active_runs) " active of " (n.total_runs) }
            dt { "Workers" } dd { (q.running) " running of " (q.workers) }
            dt { "Queued" } dd { (n.queued_tasks) " ready, " (n.waiting_tasks) " waiting" }
            dt { "Throughput" } dd { (format!("{:.2}", q.throughput)) " attempts/s (last minute)" }
            dt { "Error rate" } dd { (format!("{:.1}%", d.error_rate * 100.0)) " (last hour)" }
            dt { "Last progress" } dd { (time(n.last_progress)) }
        }
        h2 { "Throughput" }
        div.charts {
            figure {
                (chart(&[Series { name: "attempts ended/s", class: "s1",
                    values: d.throughput.iter().map(|&v| Some(f64::from(v))).collect() }], "/s"))
                figcaption { "Attempts ended per second, last 60 s" }
            }
            figure {
                (chart(&[Series { name: "tasks ended/min", class: "s1",
                    values: mins.iter().map(|m| Some(m.1 as f64)).collect() }], "/min"))
                figcaption { "Tasks that succeeded or failed per minute, last " (CHART_MINUTES) " min (rollups)" }
            }
        }
        h2 { "Latency" }
        div.charts {
            figure {
                (chart(&[
                    Series { name: "p50", class: "s1", values: mins.iter().map(|m| m.2).collect() },
                    Series { name: "p95", class: "s2", values: mins.iter().map(|m| m.3).collect() },
                ], "ms"))
                figcaption { "Schedule-to-close latency per minute (p50, p95), last " (CHART_MINUTES) " min" }
            }
        }
        h2 { "Running attempts" }
        table #running {
            thead { tr { th { "Workflow" } th { "Task" } th { "Attempt" } th { "Running for" } th { "Usage" } } }
            tbody {
                @for r in &d.running {
                    tr {
                        td { a href=(format!("/runs/{}", r.run)) { (r.workflow) } }
                        td { a href=(task_href(&r.run, r.task.as_str())) { (r.task.as_str()) } @if r.compensation { " (compensation)" } }
                        td { (r.attempt) }
                        td { (duration(q.now.saturating_since(r.started_at))) }
                        td { (counters(&r.usage)) }
                    }
                }
                @if d.running.is_empty() { tr { td colspan="5" .muted { "Nothing runs." } } }
            }
        }
        h2 { "Queue" }
        p.count { (q.total) " waiting" @if q.total > q.entries.len() as u64 { ", the first " (q.entries.len()) " shown" } }
        table #queue {
            thead { tr { th { "Workflow" } th { "Task" } th { "State" } th { "Priority" } th { "Pool" } th { "Waiting for" } th { "Blocked" } } }
            tbody {
                @for e in &q.entries {
                    tr {
                        td { a href=(format!("/runs/{}", e.run)) { (e.workflow) } }
                        td { a href=(task_href(&e.run, e.task.as_str())) { (e.task.as_str()) } }
                        td.state { (e.state.as_str()) }
                        td.num { (e.priority) }
                        td { (e.pool.as_deref().unwrap_or("")) }
                        td { (duration(q.now.saturating_since(e.waiting_since))) }
                        td { (e.blocked.as_deref().unwrap_or("")) }
                    }
                }
                @if q.entries.is_empty() { tr { td colspan="7" .muted { "The queue is empty." } } }
            }
        }
        h2 { "Recent completions" }
        ul.completions {
            @for c in &d.completions {
                li class=(format!("state-{}", c.state.as_str())) {
                    a href=(task_href(&c.run, c.task.as_str())) { (c.workflow) " / " (c.task.as_str()) }
                    " " span.state { (c.state.as_str()) } " after " (c.attempts) " attempts, " (time(c.finished_at))
                }
            }
        }
        @if !nodes.is_empty() {
            h2 { "Nodes" }
            (nodes_table(nodes))
        }
    }
}

/// The cluster's nodes.
fn nodes_table(nodes: &[NodeInfo]) -> Markup {
    html! {
        table #nodes {
            thead { tr { th { "Node" } th { "State" } th { "Address" } th { "Slots" } th { "Running" } th { "Labels" } th { "Last heartbeat" } th { "Epoch" } } }
            tbody {
                @for n in nodes {
                    tr data-node=(n.id) {
                        td { code { (n.id) } } td.state { (n.state) } td { (n.addr) }
                        td.num { (n.slots) } td.num { (n.running) } td { (n.labels.join(", ")) }
                        td { @if let Some(t) = n.last_heartbeat { (time(t)) } } td.num { (n.epoch) }
                    }
                }
                @if nodes.is_empty() { tr { td colspan="8" .muted { "No nodes." } } }
            }
        }
    }
}

/// One line of a chart: `None` values are gaps.
pub(crate) struct Series {
    pub name: &'static str,
    pub class: &'static str,
    pub values: Vec<Option<f64>>,
}

/// Chart size, px.
const W: f64 = 480.0;
const H: f64 = 140.0;
const PAD: f64 = 30.0;

/// A line chart of `series` (equal lengths, oldest first) as inline SVG: a polyline per run
/// of values, the y axis from 0 to the largest value.
pub(crate) fn chart(series: &[Series], unit: &str) -> Markup {
    let len = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0_f64, |a, &b| a.max(b));
    let top = if max > 0.0 { max } else { 1.0 };
    let x = |i: usize| PAD + (W - PAD - 5.0) * i as f64 / (len.max(2) - 1) as f64;
    let y = |v: f64| H - PAD + 10.0 - (H - PAD) * v / top;
    let lines = |s: &Series| -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => {
                    if !cur.is_empty() {
                        cur.push(' ');
                    }
                    cur.push_str(&format!("{:.1},{:.1}", x(i), y(*v)));
                }
                None if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
                None => {}
            }
        }
        if !cur.is_empty() {
            out.push(cur);
        }
        out
    };
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}")) width=(W) height=(H) role="img"
            aria-label=(series.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")) {
            line.axis x1=(PAD) y1=(H - PAD + 10.0) x2=(W - 5.0) y2=(H - PAD + 10.0) {}
            line.axis x1=(PAD) y1="10" x2=(PAD) y2=(H - PAD + 10.0) {}
            text.tick x="2" y="14" { (number((max * 10.0).round() / 10.0)) " " (unit) }
            text.tick x="2" y=(H - PAD + 10.0) { "0" }
            text.tick x=(PAD) y=(H - 4.0) { "older" }
            text.tick x=(W - 40.0) y=(H - 4.0) { "now" }
            @for (k, s) in series.iter().enumerate() {
                @for pts in lines(s) {
                    @if pts.contains(' ') {
                        polyline class=(format!("line {}", s.class)) points=(pts) {}
                    } @else {
                        @let (px, py) = pts.split_once(',').unwrap_or(("0", "0"));
                        circle class=(format!("dot {}", s.class)) cx=(px) cy=(py) r="2" {}
                    }
                }
                text class=(format!("legend {}", s.class)) x=(W - 150.0 + 70.0 * k as f64) y="14" { (s.name) }
            }
        }
    }
}
