//! Many clients of one node's control socket at once: what `troupe bench control` measures
//! and what the control-load test checks ([`load`]).
//!
//! Each client has one connection for the whole load and one job:
//! - a **reader** asks `Node`, `Run` (of a given run), `Queue --limit 10` and `Dashboard`
//!   back to back; each answer's wait is a read wait;
//! - a **follower** is `troupe events --follow` (a subscription to every event from sequence
//!   number 0); each wait for its next frame is a read wait (the load keeps events flowing);
//! - a **submitter** submits small workflows of no-op-able tasks back to back, each under a
//!   new name (so none attaches to another), and keeps the run id of every acknowledgement.
//!
//! Beside them, optionally, a **garbage** client opens connection after connection and sends
//! bytes that are not the protocol (a hello of the wrong size, an undecodable hello, an
//! undecodable or oversized request after a good hello), each of which must be answered with
//! an error and closed; and a **churn** client connects and drops connections in a loop
//! (half of them after sending a hello).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::Instant;

use super::tasks::flat_workflow;
use super::{node_err, BenchError};
use crate::client::Client;
use crate::config::socket_path;
use crate::messages::control::{
    read_frame, write_frame, Hello, HelloReply, Request, Response, Subscription,
};
use crate::model::RunId;

/// How long the garbage and churn clients run before the others connect.
const ADVERSARIES_AHEAD: Duration = Duration::from_millis(250);

/// Who loads the socket, and for how long.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Clients asking reads back to back.
    pub readers: usize,
    /// `events --follow` clients.
    pub followers: usize,
    /// Clients submitting runs back to back.
    pub submitters: usize,
    /// Add a client that sends garbage on connection after connection.
    pub garbage: bool,
    /// Add a client that opens and drops connections in a loop.
    pub churn: bool,
    /// How long the clients run (each finishes the request in flight at the end).
    pub duration: Duration,
    /// The run the readers' `Run` request names (`None`: readers skip it).
    pub status_run: Option<RunId>,
    /// Tasks of each submitted workflow (each runs `true`).
    pub submit_tasks: usize,
    /// Pause of each submitter after each acknowledgement (zero: back to back).
    pub submit_pause: Duration,
    /// Prefix of the submitted workflows' names (`PREFIX-CLIENT-I`).
    pub name_prefix: String,
}

impl LoadPlan {
    /// `clients` split as the bench splits them: half readers, a quarter followers, a
    /// quarter submitters (at least one of each when `clients` ≥ 3), for `duration`.
    pub fn split(clients: usize, duration: Duration) -> LoadPlan {
        let followers = (clients / 4).max(usize::from(clients >= 3));
        let submitters = (clients / 4).max(usize::from(clients >= 3));
        LoadPlan {
            readers: clients - followers - submitters,
            followers,
            submitters,
            garbage: false,
            churn: false,
            duration,
            status_run: None,
            submit_tasks: 2,
            submit_pause: Duration::ZERO,
            name_prefix: "load".into(),
        }
    }
}

/// Waits of one kind, in µs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Waits {
    /// How many.
    pub count: u64,
    /// 50th percentile, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// The longest, µs.
    pub max_us: u64,
}

impl Waits {
    fn of(h: &Histogram<u64>) -> Waits {
        if h.is_empty() {
            return Waits::default();
        }
        Waits {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// What the garbage client saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GarbageTally {
    /// Connections it opened.
    pub connections: u64,
    /// Answered with an error frame (a refused hello or `BadRequest`), then closed.
    pub answered: u64,
    /// A good hello refused for too many connections before the garbage was sent (the node
    /// is full: the other clients and the connect/drop loop hold every slot).
    pub busy: u64,
    /// Closed by the node without an answer, or a good hello refused for another reason.
    pub closed: u64,
    /// Neither answered nor closed within 10 s (none expected).
    pub hung: u64,
    /// Answered with something other than an error, or not closed after the error (none
    /// expected).
    pub accepted: u64,
    /// What happened on the first few connections not answered with an error.
    pub notes: Vec<String>,
}

/// Everything the clients saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadTally {
    /// Connect + handshake of every client.
    pub connects: Waits,
    /// Readers' request → answer waits.
    pub reads: Waits,
    /// Followers' waits for their next frame.
    pub follow: Waits,
    /// Events the followers received, all together.
    pub followed_events: u64,
    /// Submit → acknowledgement waits.
    pub submits: Waits,
    /// The run of every acknowledged submit, in no order.
    #[serde(skip)]
    pub acked: Vec<RunId>,
    /// Acknowledgements that attached to another run (none expected: every name is new).
    pub attached: u64,
    /// Failed requests, connections and subscriptions of the readers, followers and
    /// submitters, each with its message (none expected).
    pub errors: Vec<String>,
    /// The garbage client's tally (zero without one).
    pub garbage: GarbageTally,
    /// Connections the churn client opened and dropped.
    pub churned: u64,
}

impl LoadTally {
    /// The longest wait of any reader or follower, µs.
    pub fn max_read_wait_us(&self) -> u64 {
        self.reads.max_us.max(self.follow.max_us)
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

fn record(h: &mut Histogram<u64>, since: Instant) {
    h.saturating_record(since.elapsed().as_micros().max(1) as u64);
}

/// A client's job.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Kind {
    #[default]
    Reader,
    Follower,
    Submitter,
}

/// One client's findings, merged into the [`LoadTally`].
#[derive(Default)]
struct One {
    kind: Kind,
    connect: Option<Histogram<u64>>,
    waits: Option<Histogram<u64>>,
    events: u64,
    acked: Vec<RunId>,
    attached: u64,
    errors: Vec<String>,
}

async fn connect(dir: &Path, one: &mut One) -> Option<Client> {
    let t = Instant::now();
    match Client::connect(dir).await {
        Ok(c) => {
            let mut h = histogram();
            record(&mut h, t);
            one.connect = Some(h);
            Some(c)
        }
        Err(e) => {
            one.errors.push(format!("connect: {e}"));
            None
        }
    }
}

async fn reader(dir: PathBuf, plan: LoadPlan, end: Instant) -> One {
    let mut one = One::default();
    let Some(mut client) = connect(&dir, &mut one).await else {
        return one;
    };
    let mut waits = histogram();
    let mut requests = vec![
        Request::Node,
        Request::Queue {
            waiting: false,
            limit: 10,
        },
        Request::Dashboard { limit: 10 },
    ];
    requests.extend(plan.status_run.map(Request::Run));
    'load: while Instant::now() < end {
        for r in &requests {
            let t = Instant::now();
            match client.request(r).await {
                Ok(Response::Error(e)) => one.errors.push(format!("read: {e}")),
                Ok(_) => record(&mut waits, t),
                Err(e) => {
                    one.errors.push(format!("read: {e}"));
                    break 'load;
                }
            }
        }
    }
    one.waits = Some(waits);
    one
}

async fn follower(dir: PathBuf, end: Instant) -> One {
    let mut one = One {
        kind: Kind::Follower,
        ..One::default()
    };
    let Some(client) = connect(&dir, &mut one).await else {
        return one;
    };
    let subscription = Subscription::Events {
        run: None,
        after: 0,
    };
    let mut stream = match client.subscribe(subscription).await {
        Ok(s) => s,
        Err(e) => {
            one.errors.push(format!("subscribe: {e}"));
            return one;
        }
    };
    let mut waits = histogram();
    loop {
        let t = Instant::now();
        match tokio::time::timeout_at(end, stream.next()).await {
            // The load is over: the wait in progress is cut by the end, not the node.
            Err(_) => break,
            Ok(Ok(Some(Response::Events(events)))) => {
                record(&mut waits, t);
                one.events += events.len() as u64;
            }
            Ok(Ok(Some(other))) => {
                one.errors
                    .push(format!("follow: unexpected frame {other:?}"));
                break;
            }
            Ok(Ok(None)) => {
                one.errors.push("follow: the node ended the stream".into());
                break;
            }
            Ok(Err(e)) => {
                one.errors.push(format!("follow: {e}"));
                break;
            }
        }
    }
    one.waits = Some(waits);
    one
}

async fn submitter(dir: PathBuf, plan: LoadPlan, me: usize, end: Instant) -> One {
    let mut one = One {
        kind: Kind::Submitter,
        ..One::default()
    };
    let Some(mut client) = connect(&dir, &mut one).await else {
        return one;
    };
    let mut waits = histogram();
    let mut i = 0usize;
    while Instant::now() < end {
        let name = format!("{}-{me}-{i}", plan.name_prefix);
        i += 1;
        let wf = match flat_workflow(&name, plan.submit_tasks, &["true"]) {
            Ok(wf) => wf,
            Err(e) => {
                one.errors.push(format!("workflow: {e}"));
                break;
            }
        };
        let t = Instant::now();
        match client.request(&Request::Submit(Box::new(wf))).await {
            Ok(Response::Submitted { run, attached }) => {
                record(&mut waits, t);
                one.acked.push(run);
                one.attached += u64::from(attached);
                if !plan.submit_pause.is_zero() {
                    tokio::time::sleep(plan.submit_pause).await;
                }
            }
            Ok(other) => one.errors.push(format!("submit {name}: {other:?}")),
            Err(e) => {
                one.errors.push(format!("submit {name}: {e}"));
                break;
            }
        }
    }
    one.waits = Some(waits);
    one
}

/// One frame: the length prefix `len` (whatever it says), then `body`.
fn raw_frame(len: u32, body: &[u8]) -> Vec<u8> {
    let mut v = len.to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// What the node does with one garbage connection of `kind` (0..4).
async fn garbage_once(socket: &Path, kind: u64, noise: &[u8], tally: &mut GarbageTally) {
    let Ok(mut s) = UnixStream::connect(socket).await else {
        return;
    };
    tally.connections += 1;
    let mut hello = Vec::new();
    let _ = write_frame(&mut hello, &Hello::current()).await;
    let bytes = match kind {
        // A hello frame far over the hello limit.
        0 => raw_frame(u32::MAX, noise),
        // A hello of the right size that does not decode.
        1 => raw_frame(noise.len() as u32, noise),
        // A good hello, then a request that does not decode.
        2 => [hello, raw_frame(noise.len() as u32, noise)].concat(),
        // A good hello, then a request frame over the frame limit.
        _ => [hello, raw_frame(u32::MAX, noise)].concat(),
    };
    let answer = async {
        let _ = s.write_all(&bytes).await;
        if kind >= 2 {
            match read_frame::<HelloReply, _>(&mut s).await {
                Ok(Some(HelloReply::Welcome { .. })) => {}
                Ok(Some(HelloReply::Refused { reason, .. })) if reason.contains("too many") => {
                    return Err((None, reason))
                }
                other => {
                    return Err((
                        Some(false),
                        format!("kind {kind}: hello answered {other:?}"),
                    ))
                }
            }
        }
        // The error answer (a refusal or a `BadRequest`), then the end of the connection.
        let answer = if kind >= 2 {
            read_frame::<Response, _>(&mut s)
                .await
                .map(|r| r.map(|r| format!("{r:?}")))
        } else {
            read_frame::<HelloReply, _>(&mut s)
                .await
                .map(|r| r.map(|r| format!("{r:?}")))
        };
        let mut rest = Vec::new();
        let end = s.read_to_end(&mut rest).await;
        match answer {
            Ok(Some(a)) if a.starts_with("Error(") || a.starts_with("Refused") => {
                // The node closes without reading the rest of the garbage, which the
                // kernel reports to this side as a reset: also the end.
                let reset = end
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset);
                if rest.is_empty() && (end.is_ok() || reset) {
                    Ok(())
                } else {
                    let more = rest.len();
                    Err((
                        Some(true),
                        format!("kind {kind}: after {a}: {more} more bytes, {end:?}"),
                    ))
                }
            }
            Ok(Some(a)) => Err((Some(true), format!("kind {kind}: answered {a}"))),
            other => Err((Some(false), format!("kind {kind}: answered {other:?}"))),
        }
    };
    let note = match tokio::time::timeout(Duration::from_secs(10), answer).await {
        Ok(Ok(())) => {
            tally.answered += 1;
            None
        }
        Ok(Err((None, _))) => {
            tally.busy += 1;
            None
        }
        Ok(Err((Some(true), note))) => {
            tally.accepted += 1;
            Some(note)
        }
        Ok(Err((Some(false), note))) => {
            tally.closed += 1;
            Some(note)
        }
        Err(_) => {
            tally.hung += 1;
            Some(format!("kind {kind}: no answer or close within 10 s"))
        }
    };
    if let Some(note) = note.filter(|_| tally.notes.len() < 5) {
        tally.notes.push(note);
    }
}

async fn garbage(socket: PathBuf, end: Instant) -> GarbageTally {
    let mut tally = GarbageTally::default();
    let mut kind = 0u64;
    while Instant::now() < end {
        let noise: Vec<u8> = (0..64).map(|_| rand::random::<u8>()).collect();
        garbage_once(&socket, kind % 4, &noise, &mut tally).await;
        kind += 1;
    }
    tally
}

async fn churn(socket: PathBuf, end: Instant) -> u64 {
    let mut hello = Vec::new();
    let _ = write_frame(&mut hello, &Hello::current()).await;
    let mut n = 0u64;
    while Instant::now() < end {
        if let Ok(mut s) = UnixStream::connect(&socket).await {
            n += 1;
            if n % 2 == 0 {
                let _ = s.write_all(&hello).await;
            }
        }
        tokio::task::yield_now().await;
    }
    n
}

/// Runs `plan` against the node serving `data_dir`, on the current runtime, and tallies
/// what the clients saw. Only a failure to run the clients at all is an error; what went
/// wrong for a client is in [`LoadTally::errors`].
pub async fn load(data_dir: &Path, plan: &LoadPlan) -> Result<LoadTally, BenchError> {
    let end = Instant::now() + plan.duration;
    let socket = socket_path(data_dir);
    // The garbage and churn clients start first, so the others connect while they run.
    let garbage = plan
        .garbage
        .then(|| tokio::spawn(garbage(socket.clone(), end)));
    let churn = plan.churn.then(|| tokio::spawn(churn(socket, end)));
    if plan.garbage || plan.churn {
        tokio::time::sleep(ADVERSARIES_AHEAD.min(plan.duration / 4)).await;
    }
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..plan.readers {
        clients.spawn(reader(data_dir.to_owned(), plan.clone(), end));
    }
    for _ in 0..plan.followers {
        clients.spawn(follower(data_dir.to_owned(), end));
    }
    for me in 0..plan.submitters {
        clients.spawn(submitter(data_dir.to_owned(), plan.clone(), me, end));
    }
    let (mut connects, mut reads, mut follow, mut submits) =
        (histogram(), histogram(), histogram(), histogram());
    let mut tally = LoadTally::default();
    while let Some(one) = clients.join_next().await {
        let one = one.map_err(node_err)?;
        let waits = one.waits.unwrap_or_else(histogram);
        match one.kind {
            Kind::Reader => reads.add(&waits),
            Kind::Follower => follow.add(&waits),
            Kind::Submitter => submits.add(&waits),
        }
        .map_err(node_err)?;
        if let Some(c) = one.connect {
            connects.add(&c).map_err(node_err)?;
        }
        tally.followed_events += one.events;
        tally.acked.extend(one.acked);
        tally.attached += one.attached;
        tally.errors.extend(one.errors);
    }
    if let Some(g) = garbage {
        tally.garbage = g.await?;
    }
    if let Some(c) = churn {
        tally.churned = c.await?;
    }
    tally.connects = Waits::of(&connects);
    tally.reads = Waits::of(&reads);
    tally.follow = Waits::of(&follow);
    tally.submits = Waits::of(&submits);
    Ok(tally)
}
