//! Server-Sent Events (the WHATWG HTML standard's `text/event-stream`):
//!
//! - `GET /api/events[?run=RUN]`: the committed-event feed, one SSE event per journal event,
//!   `id:` its sequence number and `data:` the event as `troupe events --json` prints it. A
//!   client that reconnects with `Last-Event-ID: SEQ` (browsers do so by themselves) gets
//!   every event after SEQ, from the journal first ([`crate::read::subscribe::events`]).
//!   Without it (or `?after=SEQ`), the stream starts at the journal's end.
//! - `GET /api/runs/{run}/stream`: what a run page follows: a `run` event with the summary
//!   and every task's state and attempts, then, at most every [`RUN_FRAME_EVERY`], the tasks
//!   that changed since (`?from=&to=`: only the tasks at those positions, as a page showing
//!   500 rows of a big run asks). It ends after the frame that shows the run finished. One producer
//!   per run computes the changes ([`RunStreams`]); every page following the run shares its
//!   frames, so open pages cost the node one producer per run, not one per page.
//!
//! A client that stops reading is dropped after
//! [`SUBSCRIBER_WRITE_TIMEOUT`](crate::read::subscribe::SUBSCRIBER_WRITE_TIMEOUT) (its
//! producer ends; nothing waits on it), like a slow control-socket subscriber. The gauge
//! `troupe_http_streams` counts live producers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::api::parse_run;
use super::{Web, WebError};
use crate::messages::control::json::{event_json, summary_json};
use crate::messages::control::{ControlError, Response};
use crate::model::{RunId, Seq, TaskState};
use crate::read::projection::ReadModel;
use crate::read::subscribe::{Ended, Subscriber, SUBSCRIBER_WRITE_TIMEOUT};

/// Least time between two frames of a run stream.
pub const RUN_FRAME_EVERY: Duration = Duration::from_millis(100);

/// Frames a stream's producer may be ahead of its HTTP connection before it waits (and,
/// after [`SUBSCRIBER_WRITE_TIMEOUT`], is dropped).
const STREAM_BUFFER: usize = 16;

/// A subscriber whose frames go to an HTTP response through a bounded channel.
struct Channel<T> {
    tx: mpsc::Sender<T>,
}

impl<T: Send> Channel<T> {
    /// Sends `item`, or says the client is gone or too slow.
    async fn push(&mut self, item: T) -> Result<(), Ended> {
        match tokio::time::timeout(SUBSCRIBER_WRITE_TIMEOUT, self.tx.send(item)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ended::Closed),
            Err(_) => Err(Ended::TooSlow(format!(
                "the HTTP client took no event for {}s",
                SUBSCRIBER_WRITE_TIMEOUT.as_secs()
            ))),
        }
    }
}

impl Subscriber for Channel<SseEvent> {
    async fn send(&mut self, response: &Response) -> Result<(), Ended> {
        match response {
            Response::Events(events) => {
                for (seq, record) in events {
                    let e = SseEvent::default()
                        .id(seq.to_string())
                        .data(event_json(*seq, record).to_string());
                    self.push(e).await?;
                }
                Ok(())
            }
            Response::Error(e) => {
                let body = super::WebError::from(e.clone()).json();
                self.push(SseEvent::default().event("error").data(body.to_string()))
                    .await
            }
            _ => Ok(()),
        }
    }

    async fn closed(&mut self) {
        self.tx.closed().await
    }
}

/// Keeps `troupe_http_streams` up while a producer lives.
struct Gauge(prometheus::IntGauge);

impl Gauge {
    fn up(web: &Web) -> Self {
        let g = web.ctx.metrics.http_streams().clone();
        g.inc();
        Gauge(g)
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The SSE response reading `rx` (with keep-alive comments every 15 s).
fn sse(rx: mpsc::Receiver<SseEvent>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The query of `GET /api/events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Only this run's events.
    pub run: Option<String>,
    /// Start after this sequence number (`Last-Event-ID` wins).
    pub after: Option<Seq>,
}

/// `GET /api/events`.
pub async fn events(
    State(web): State<Arc<Web>>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, WebError> {
    let run = q.run.as_deref().map(parse_run).transpose()?;
    let model = Arc::clone(&web.ctx.read);
    model.fresh(false).await.map_err(WebError::from)?;
    if let Some(run) = run {
        if model.read().state.run(run).is_none() {
            return Err(WebError::from(ControlError::NotFound(format!(
                "no run {run}"
            ))));
        }
    }
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<Seq>().ok())
                .ok_or_else(|| {
                    WebError::bad_request("Last-Event-ID: expected a journal sequence number")
                })?,
        ),
        None => q.after,
    };
    let after = match resume {
        Some(s) => s,
        None => model.applied(),
    };
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let gauge = Gauge::up(&web);
    tokio::spawn(async move {
        let _gauge = gauge;
        let mut out = Channel { tx };
        let ended = crate::read::subscribe::events(&model, run, after, &mut out).await;
        if let Ended::TooSlow(why) = ended {
            tracing::warn!(reason = %why, "dropped a slow SSE client");
        }
    });
    Ok(sse(rx))
}

/// One task's state and attempts, as a run stream sends them.
type TaskFrame = (TaskState, u32);

/// A frame of a run stream: the `run` event's data, and the projection's sequence number
/// when it was computed (a page's first frame is computed for it alone; shared frames older
/// than that are skipped, so a page never steps back).
#[derive(Debug)]
struct RunFrame {
    /// What the projection had applied when the frame was computed.
    seq: Seq,
    /// The run's `state`, `suspended` and `summary` members as JSON text (without braces).
    head: String,
    /// The run's workflow as of the frame (the ids of the tasks' positions).
    workflow: Arc<crate::model::Workflow>,
    /// The tasks that changed: (position, state, attempts). Formatted by each page for the
    /// positions it shows, so the shared producer only scans.
    tasks: Vec<(usize, TaskState, u32)>,
    /// The run had finished: the last frame.
    finished: bool,
}

impl RunFrame {
    /// The `run` event's data, with the tasks of `range` only (a page asks for the rows it
    /// shows: a big run's page shows 500 of its tasks).
    fn data(&self, range: &std::ops::Range<usize>) -> String {
        use std::fmt::Write as _;
        let mut out = format!("{{{},\"tasks\":{{", self.head);
        let mut first = true;
        for (i, state, attempts) in self.tasks.iter().filter(|(i, ..)| range.contains(i)) {
            if !first {
                out.push(',');
            }
            first = false;
            let id = self
                .workflow
                .task(*i as crate::model::TaskIndex)
                .id
                .as_str();
            let _ = write!(
                out,
                "{}:{{\"state\":\"{}\",\"attempts\":{attempts}}}",
                Value::from(id),
                state.as_str()
            );
        }
        out.push_str("}}");
        out
    }

    /// Whether a page showing `range`, which last saw `head`, has anything new here.
    fn news(&self, range: &std::ops::Range<usize>, head: &str) -> bool {
        self.head != head || self.tasks.iter().any(|(i, ..)| range.contains(i))
    }
}

/// Frames a run's producer keeps for its pages; a page further behind gets a fresh full
/// frame instead of the ones it missed.
const RUN_FRAMES_KEPT: usize = 64;

/// The live run streams: one producer per followed run, its frames shared by every page
/// that follows the run (so 20 open pages cost what one does), each page's own first frame
/// computed once when it connects.
#[derive(Default)]
pub struct RunStreams {
    /// Run → the channel of its producer's frames.
    runs: Mutex<HashMap<RunId, broadcast::Sender<Arc<RunFrame>>>>,
}

impl RunStreams {
    /// Subscribes to `run`'s shared frames, starting its producer if none runs.
    fn subscribe(
        self: &Arc<Self>,
        model: &Arc<ReadModel>,
        run: RunId,
    ) -> broadcast::Receiver<Arc<RunFrame>> {
        let mut runs = self.runs.lock().expect("not poisoned");
        if let Some(tx) = runs.get(&run) {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(RUN_FRAMES_KEPT);
        runs.insert(run, tx.clone());
        let (hub, model) = (Arc::clone(self), Arc::clone(model));
        tokio::spawn(async move {
            produce(&model, run, &tx).await;
            hub.runs.lock().expect("not poisoned").remove(&run);
        });
        rx
    }
}

/// The query of `GET /api/runs/{run}/stream`: which tasks (by position in the run, 0-based,
/// `to` excluded) the frames carry; default all. The summary is always sent.
#[derive(Debug, Default, Deserialize)]
pub struct StreamQuery {
    /// The first task.
    pub from: Option<usize>,
    /// One past the last task.
    pub to: Option<usize>,
}

/// `GET /api/runs/{run}/stream`.
pub async fn run_stream(
    State(web): State<Arc<Web>>,
    Path(run): Path<String>,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, WebError> {
    let run = parse_run(&run)?;
    let range = q.from.unwrap_or(0)..q.to.unwrap_or(usize::MAX);
    let model = Arc::clone(&web.ctx.read);
    model.fresh(false).await.map_err(WebError::from)?;
    if model.read().state.run(run).is_none() {
        return Err(WebError::from(ControlError::NotFound(format!(
            "no run {run}"
        ))));
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let gauge = Gauge::up(&web);
    let shared = web.streams.subscribe(&model, run);
    tokio::spawn(async move {
        let _gauge = gauge;
        let mut out = Channel { tx };
        if let Err(Ended::TooSlow(why)) = follow_run(&model, run, range, shared, &mut out).await {
            tracing::warn!(reason = %why, "dropped a slow SSE client");
        }
    });
    Ok(sse(rx))
}

/// The frame of `run`'s tasks whose (state, attempts) differ from `sent` (all of them when
/// `sent` is empty), updating `sent`; `None` if nothing of the run changed, or the run is
/// gone.
fn frame(
    model: &ReadModel,
    run: RunId,
    sent: &mut Vec<TaskFrame>,
    last_summary: &mut Option<Value>,
) -> Option<RunFrame> {
    let p = model.read();
    let seq = model.applied();
    let r = p.state.run(run)?;
    // Only positions and states here: a frame of a fast run holds thousands of tasks, and
    // each page formats the few it shows.
    let mut tasks = Vec::new();
    for (i, t) in r.tasks().iter().enumerate() {
        let now = (t.state, t.attempts);
        if sent.get(i) == Some(&now) {
            continue;
        }
        tasks.push((i, t.state, t.attempts));
        if i < sent.len() {
            sent[i] = now;
        } else {
            sent.push(now);
        }
    }
    let summary = summary_json(&crate::read::views::run_summary(r));
    // Nothing of this run moved (events of other runs were applied): no frame.
    if tasks.is_empty() && last_summary.as_ref() == Some(&summary) {
        return None;
    }
    let head = format!(
        "\"state\":{},\"suspended\":{},\"summary\":{}",
        Value::from(r.state().as_str()),
        r.is_suspended(),
        summary,
    );
    *last_summary = Some(summary);
    Some(RunFrame {
        seq,
        head,
        workflow: Arc::clone(r.workflow()),
        tasks,
        finished: r.state().is_finished(),
    })
}

/// A run's producer: a frame of what changed whenever the projection applied events, at
/// most one per [`RUN_FRAME_EVERY`], until the run finishes or no page follows it.
async fn produce(model: &ReadModel, run: RunId, tx: &broadcast::Sender<Arc<RunFrame>>) {
    let mut applied = model.watch_applied();
    let mut sent: Vec<TaskFrame> = Vec::new();
    let mut last_summary = None;
    // The pages' first frames hold everything up to now: start from there.
    let _ = frame(model, run, &mut sent, &mut last_summary);
    let mut next = Instant::now();
    loop {
        tokio::select! {
            // A watch: cancelling the wait loses nothing.
            r = applied.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if tx.receiver_count() == 0 { return }
                continue;
            }
        }
        // At most one frame per interval: the first change after a quiet spell goes out at
        // once, a burst is coalesced.
        tokio::time::sleep_until(next).await;
        if tx.receiver_count() == 0 {
            return;
        }
        let Some(f) = frame(model, run, &mut sent, &mut last_summary) else {
            if model.read().state.run(run).is_none() {
                return;
            }
            continue;
        };
        next = Instant::now() + RUN_FRAME_EVERY;
        let finished = f.finished;
        let _ = tx.send(Arc::new(f));
        if finished {
            return;
        }
    }
}

/// Sends one page its own full frame, then the run's shared frames, until the run finishes
/// or the page goes.
async fn follow_run(
    model: &ReadModel,
    run: RunId,
    range: std::ops::Range<usize>,
    mut shared: broadcast::Receiver<Arc<RunFrame>>,
    out: &mut Channel<SseEvent>,
) -> Result<(), Ended> {
    loop {
        // Subscribed before this full frame is computed: nothing falls between the two.
        let Some(full) = frame(model, run, &mut Vec::new(), &mut None) else {
            return Ok(());
        };
        out.push(SseEvent::default().event("run").data(full.data(&range)))
            .await?;
        let mut head = full.head.clone();
        if full.finished {
            return Ok(());
        }
        loop {
            let f = tokio::select! {
                // Cancelling a broadcast recv or a close wait loses nothing.
                f = shared.recv() => f,
                _ = out.tx.closed() => return Err(Ended::Closed),
            };
            match f {
                Ok(f) if f.seq <= full.seq && !f.finished => {}
                Ok(f) if !f.finished && !f.news(&range, &head) => {}
                Ok(f) => {
                    head.clone_from(&f.head);
                    out.push(SseEvent::default().event("run").data(f.data(&range)))
                        .await?;
                    if f.finished {
                        return Ok(());
                    }
                }
                // Fell behind the shared frames: start over with a full frame.
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                // The producer ended (the run finished or was removed): a last full frame.
                Err(broadcast::error::RecvError::Closed) => {
                    if let Some(last) = frame(model, run, &mut Vec::new(), &mut None) {
                        out.push(SseEvent::default().event("run").data(last.data(&range)))
                            .await?;
                    }
                    return Ok(());
                }
            }
        }
    }
}
