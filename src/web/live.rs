//! Server-Sent Events (the WHATWG HTML standard's `text/event-stream`):
//!
//! - `GET /api/events[?run=RUN]`: the committed-event feed, one SSE event per journal event,
//!   `id:` its sequence number and `data:` the event as `troupe events --json` prints it. A
//!   client that reconnects with `Last-Event-ID: SEQ` (browsers do so by themselves) gets
//!   every event after SEQ, from the journal first ([`crate::read::subscribe::events`]).
//!   Without it (or `?after=SEQ`), the stream starts at the journal's end.
//! - `GET /api/runs/{run}/stream`: what a run page follows: a `run` event with the summary
//!   and every task's state and attempts, then, at most every [`RUN_FRAME_EVERY`], the tasks
//!   that changed since. It ends after the frame that shows the run finished.
//!
//! A client that stops reading is dropped after
//! [`SUBSCRIBER_WRITE_TIMEOUT`](crate::read::subscribe::SUBSCRIBER_WRITE_TIMEOUT) (its
//! producer ends; nothing waits on it), like a slow control-socket subscriber. The gauge
//! `troupe_http_streams` counts live producers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
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

/// `GET /api/runs/{run}/stream`.
pub async fn run_stream(
    State(web): State<Arc<Web>>,
    Path(run): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, WebError> {
    let run = parse_run(&run)?;
    let model = Arc::clone(&web.ctx.read);
    model.fresh(false).await.map_err(WebError::from)?;
    if model.read().state.run(run).is_none() {
        return Err(WebError::from(ControlError::NotFound(format!(
            "no run {run}"
        ))));
    }
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let gauge = Gauge::up(&web);
    tokio::spawn(async move {
        let _gauge = gauge;
        let mut out = Channel { tx };
        if let Err(Ended::TooSlow(why)) = follow_run(&model, run, &mut out).await {
            tracing::warn!(reason = %why, "dropped a slow SSE client");
        }
    });
    Ok(sse(rx))
}

/// Sends `run`'s frames until it finishes or the client goes.
async fn follow_run(
    model: &ReadModel,
    run: RunId,
    out: &mut Channel<SseEvent>,
) -> Result<(), Ended> {
    let mut applied = model.watch_applied();
    let mut sent: Vec<TaskFrame> = Vec::new();
    let mut last_summary: Option<Value> = None;
    loop {
        let (frame, finished) = {
            let p = model.read();
            let Some(r) = p.state.run(run) else {
                return Ok(());
            };
            let wf = r.workflow();
            let mut changed = BTreeMap::new();
            for (i, t) in r.tasks().iter().enumerate() {
                let now = (t.state, t.attempts);
                if sent.get(i) != Some(&now) {
                    let id = wf.task(i as crate::model::TaskIndex).id.as_str().to_owned();
                    changed.insert(
                        id,
                        json!({"state": t.state.as_str(), "attempts": t.attempts}),
                    );
                    if i < sent.len() {
                        sent[i] = now;
                    } else {
                        sent.push(now);
                    }
                }
            }
            let summary = summary_json(&crate::read::views::run_summary(r));
            // Nothing of this run moved (events of other runs were applied): no frame.
            let frame =
                (!changed.is_empty() || last_summary.as_ref() != Some(&summary)).then(|| {
                    last_summary = Some(summary.clone());
                    json!({
                        "state": r.state().as_str(),
                        "suspended": r.is_suspended(),
                        "summary": summary,
                        "tasks": changed,
                    })
                });
            (frame, r.state().is_finished())
        };
        if let Some(frame) = frame {
            out.push(SseEvent::default().event("run").data(frame.to_string()))
                .await?;
        }
        if finished {
            return Ok(());
        }
        let next = Instant::now() + RUN_FRAME_EVERY;
        tokio::select! {
            // A watch and a channel's close: cancelling either loses nothing.
            r = applied.changed() => if r.is_err() { return Ok(()) },
            _ = out.tx.closed() => return Err(Ended::Closed),
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = out.tx.closed() => return Err(Ended::Closed),
        }
    }
}
