//! Subscriptions: a connection that asked for [`Request::Subscribe`] receives frames pushed
//! by the node as changes become durable, instead of polling.
//!
//! - Run summaries, queue and dashboard views are recomputed from the projection when it has
//!   applied new events (coalesced: at most one frame per interval), so a burst of events
//!   costs one frame, not one per event.
//! - Events come from the committed-event feed; events the subscriber asked for from before
//!   the subscription come from the journal first.
//!
//! # Slow subscribers
//! Nothing here can hold up the node: the feed never waits for a listener and the
//! projection's watch only keeps the latest value. A subscriber whose frame cannot be written
//! within [`SUBSCRIBER_WRITE_TIMEOUT`] (it stopped reading), or that fell more than
//! [`FEED_CAPACITY`](crate::storage::feed::FEED_CAPACITY) batches behind the feed, is
//! dropped: the node sends [`ControlError::TooSlow`] if it can and closes the connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::messages::control::{
    write_frame, ControlError, FrameError, Request, Response, Subscription,
};
use crate::model::{EventRecord, RunId, Seq};
use crate::read::projection::ReadModel;
use crate::read::query::{self, MAX_EVENTS_PER_REQUEST};
use crate::storage::feed::Feed;

/// How long the node waits for a subscriber to take one frame before dropping it.
pub const SUBSCRIBER_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Least time between two frames of a run subscription (what `troupe run`'s progress bar
/// polled at before).
pub const RUN_FRAME_EVERY: Duration = Duration::from_millis(100);

/// Least interval a queue or dashboard subscription may ask for.
pub const MIN_VIEW_EVERY: Duration = Duration::from_millis(50);

/// Why a subscription ended.
#[derive(Debug)]
pub enum Ended {
    /// The stream is complete (a run subscription after its run finished), or the request
    /// was refused with an error frame.
    Done,
    /// The client closed the connection.
    Closed,
    /// The client did not keep up and was dropped.
    TooSlow(String),
    /// Writing failed.
    Frame(FrameError),
}

/// Serves `subscription` on a connection until it ends. `reader` is only watched for the
/// client closing the connection; `writer` carries the frames.
pub async fn serve<R, W>(
    model: Arc<ReadModel>,
    subscription: Subscription,
    mut reader: R,
    mut writer: W,
) -> Ended
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let mut out = Socket {
        reader: &mut reader,
        writer: &mut writer,
    };
    let ended = match subscription {
        Subscription::Events { run, after } => events(&model, run, after, &mut out).await,
        Subscription::Run(run) => {
            views(
                &model,
                Request::Summary(run),
                RUN_FRAME_EVERY,
                false,
                &mut out,
                |r| match r {
                    Response::Runs(v) => v.first().is_some_and(|s| s.state.is_finished()),
                    _ => true,
                },
                |_, _| {},
            )
            .await
        }
        Subscription::Queue {
            waiting,
            limit,
            every,
        } => {
            views(
                &model,
                Request::Queue { waiting, limit },
                every.max(MIN_VIEW_EVERY),
                true,
                &mut out,
                |r| matches!(r, Response::Error(_)),
                |_, _| {},
            )
            .await
        }
        Subscription::Dashboard { limit, every } => {
            views(
                &model,
                Request::Dashboard { limit },
                every.max(MIN_VIEW_EVERY),
                true,
                &mut out,
                |r| matches!(r, Response::Error(_)),
                |m, r| {
                    if let Response::Dashboard(v) = r {
                        v.error_rate =
                            crate::read::metrics::error_rate_last_hour(m.journal(), v.queue.now)
                                .unwrap_or(0.0);
                    }
                },
            )
            .await
        }
    };
    if let Ended::TooSlow(why) = &ended {
        tracing::warn!(reason = %why, "dropped a slow subscriber");
        // Best effort: it may not read this either.
        let _ = tokio::time::timeout(
            Duration::from_millis(100),
            write_frame(
                &mut writer,
                &Response::Error(ControlError::TooSlow(why.clone())),
            ),
        )
        .await;
    }
    ended
}

/// Where a subscription's frames go: a control connection ([`Socket`]) or an HTTP stream
/// (Server-Sent Events, [`crate::web`]). Both drop a subscriber that stops taking frames.
pub trait Subscriber: Send {
    /// Delivers one frame, or says why the subscriber is gone (`Closed`, `TooSlow`, ...).
    fn send(
        &mut self,
        response: &Response,
    ) -> impl std::future::Future<Output = Result<(), Ended>> + Send;
    /// Completes when the subscriber went away. Cancel-safe: it may be dropped at any time.
    fn closed(&mut self) -> impl std::future::Future<Output = ()> + Send;
}

/// A control connection: frames written with the slow-subscriber timeout; `reader` is only
/// watched for the client closing it.
struct Socket<'a, R, W> {
    reader: &'a mut R,
    writer: &'a mut W,
}

impl<R: AsyncRead + Unpin + Send, W: AsyncWrite + Unpin + Send> Subscriber for Socket<'_, R, W> {
    async fn send(&mut self, response: &Response) -> Result<(), Ended> {
        match tokio::time::timeout(SUBSCRIBER_WRITE_TIMEOUT, write_frame(self.writer, response))
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(FrameError::Io(e))) if is_gone(&e) => Err(Ended::Closed),
            Ok(Err(e)) => Err(Ended::Frame(e)),
            Err(_) => Err(Ended::TooSlow(format!(
                "the subscriber took no frame for {}s",
                SUBSCRIBER_WRITE_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Completes when the client closes the connection (or sends anything: a subscribed
    /// connection takes no more requests).
    async fn closed(&mut self) {
        let mut buf = [0u8; 64];
        let _ = self.reader.read(&mut buf).await;
    }
}

fn is_gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::UnexpectedEof
    )
}

/// A view subscription (also the web UI's live pages): the answer to `request` now, then again whenever the projection
/// applied more events (or, with `periodic`, every `every`), at most once per `every`;
/// frames equal to the last one sent are skipped (unless periodic). Ends after a frame
/// for which `last` says so.
#[allow(clippy::too_many_arguments)]
pub async fn views<S: Subscriber>(
    model: &ReadModel,
    request: Request,
    every: Duration,
    periodic: bool,
    out: &mut S,
    last: impl Fn(&Response) -> bool,
    fill: impl Fn(&ReadModel, &mut Response),
) -> Ended {
    let mut applied = model.watch_applied();
    let mut epochs = model.facts.epochs();
    let mut sent: Option<Response> = None;
    loop {
        let mut response = match query::answer(model, &request).await {
            Some(r) => r,
            None => return Ended::Done,
        };
        fill(model, &mut response);
        let unchanged = !periodic && sent.as_ref() == Some(&response);
        if !unchanged {
            if let Err(e) = out.send(&response).await {
                return e;
            }
            if last(&response) {
                return Ended::Done;
            }
            sent = Some(response);
        }
        let next = Instant::now() + every;
        // Wait for a change (or the next period), then for the interval to pass.
        tokio::select! {
            // Watches and a read of a socket we drop: cancelling any arm loses nothing.
            _ = applied.changed(), if !periodic => {}
            _ = epochs.changed(), if !periodic => {}
            _ = tokio::time::sleep_until(next), if periodic => {}
            _ = out.closed() => return Ended::Closed,
            _ = model.stopped() => return Ended::Done,
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = out.closed() => return Ended::Closed,
            _ = model.stopped() => return Ended::Done,
        }
    }
}

/// An events subscription (also `GET /api/events`): the journal's events after `after`,
/// then the feed's.
pub async fn events<S: Subscriber>(
    model: &ReadModel,
    run: Option<RunId>,
    after: Seq,
    out: &mut S,
) -> Ended {
    // Read-your-writes: a run submitted just before is known.
    if let Err(e) = model.fresh(false).await {
        return out
            .send(&Response::Error(e))
            .await
            .err()
            .unwrap_or(Ended::Done);
    }
    if let Some(run) = run {
        if model.read().state.run(run).is_none() {
            let e = Response::Error(ControlError::NotFound(format!("no run {run}")));
            return out.send(&e).await.err().unwrap_or(Ended::Done);
        }
    }
    // Listen first, then read the journal: every event is in one or the other.
    let mut feed = model.feed().subscribe();
    let mut last = after;
    if let Err(e) = catch_up(model, run, &mut last, out).await {
        return e;
    }
    loop {
        let batch = tokio::select! {
            // Cancelling a broadcast recv loses nothing; closed() reads a socket we drop.
            b = feed.recv() => b,
            _ = out.closed() => return Ended::Closed,
            _ = model.stopped() => return Ended::Done,
        };
        match batch {
            Ok(batch) => {
                if batch.first > last + 1 {
                    // A gap (committed before we listened): fill it from the journal.
                    if let Err(e) = catch_up(model, run, &mut last, out).await {
                        return e;
                    }
                }
                let events: Vec<(Seq, EventRecord)> = batch
                    .iter()
                    .filter(|(seq, r)| {
                        *seq > last && run.is_none_or(|run| r.event.run() == Some(run))
                    })
                    .map(|(seq, r)| (seq, r.clone()))
                    .collect();
                last = last.max(batch.last());
                if !events.is_empty() {
                    if let Err(e) = out.send(&Response::Events(events)).await {
                        return e;
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                return Ended::TooSlow(format!(
                    "the subscriber fell {n} commits behind the node; subscribe again from \
                     sequence number {last}"
                ))
            }
            Err(broadcast::error::RecvError::Closed) => return Ended::Done,
        }
    }
}

/// Sends the journal's events after `last` (of `run`, or all), advancing `last` to where
/// the journal ended when it was read (every event up to there was sent).
async fn catch_up<S: Subscriber>(
    model: &ReadModel,
    run: Option<RunId>,
    last: &mut Seq,
    out: &mut S,
) -> Result<(), Ended> {
    let page = MAX_EVENTS_PER_REQUEST as usize;
    loop {
        let journal = model.journal().clone();
        let after = *last;
        let read = tokio::task::spawn_blocking(move || {
            // The journal's end first: every event up to it is in what we read next.
            let end = journal.last_seq()?;
            let events = match run {
                Some(run) => journal.run_events_after(run, after, page)?,
                None => Feed::catch_up(&journal, after, page)?,
            };
            let seen = events.last().map_or(after, |(s, _)| *s);
            let complete = events.len() < page;
            Ok::<_, crate::storage::JournalError>((
                events,
                if complete { seen.max(end) } else { seen },
                complete,
            ))
        })
        .await;
        let (events, end, complete) = match read {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let e = Response::Error(ControlError::Internal(e.to_string()));
                return Err(out.send(&e).await.err().unwrap_or(Ended::Done));
            }
            Err(e) => return Err(Ended::Frame(FrameError::Io(std::io::Error::other(e)))),
        };
        *last = (*last).max(end);
        if !events.is_empty() {
            out.send(&Response::Events(events)).await?;
        }
        if complete {
            return Ok(());
        }
    }
}
