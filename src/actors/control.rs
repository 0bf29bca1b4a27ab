//! The control actor: serves the node's Unix socket (`DATA_DIR/troupe.sock`, mode 0600).
//!
//! Each connection is a task: handshake ([`Hello`] / [`HelloReply`]), then one
//! [`Response`] per [`Request`] (protocol in [`crate::messages::control`]). Only peers with
//! the node's own uid (from `SO_PEERCRED`) are served. A bad frame — too large, not
//! decodable, wrong protocol version — gets an error answer and the connection is closed;
//! other connections and the node are unaffected. Requests go to the scheduler as typed
//! messages; `Events` is answered from the journal directly (reads do not need the writer).
//!
//! Connections cannot exhaust the node's file descriptors: at most [`MAX_CONNECTIONS`] are
//! served at once, at most [`MAX_WAITING`] more wait up to [`SLOT_WAIT`] for one of them to
//! end, and the next is refused at once (none holds up the accept loop); one that has not
//! sent its hello within [`HANDSHAKE_TIMEOUT`] is closed. A peer that opens and drops
//! connections in a loop must not get others refused: a connection its peer has already
//! closed when the node accepts it takes no slot ([`peer_gone`]), and one closed later holds
//! its slot only until its task has run, which on a busy node can take a while, hence the
//! wait.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::context::{NodeContext, NodeError};
use crate::messages::control::{
    read_frame, read_frame_within, write_frame, Command, ControlError, FrameError, Hello,
    HelloReply, Request, Response, HANDSHAKE_TIMEOUT, MAGIC, MAX_HELLO_BYTES, PROTOCOL_VERSION,
};

/// Most connections the node serves at once; one more is answered `HelloReply::Refused`
/// ("too many connections") and closed.
///
/// Each connection holds a file descriptor, and the node needs its descriptors for the
/// journal (RocksDB keeps its table files open), attempts (pipes and a pidfd per running
/// attempt) and HTTP. 256 leaves three quarters of the usual soft `RLIMIT_NOFILE` of 1024 to
/// those, and is far above what operators use: a CLI command holds one connection while it
/// runs, a dashboard or `events --follow` one for as long as it shows.
pub const MAX_CONNECTIONS: usize = 256;

/// Most connections beyond [`MAX_CONNECTIONS`] that wait for a slot (each holds a descriptor
/// while it waits); the next is refused at once.
pub const MAX_WAITING: usize = 64;

/// How long a connection beyond [`MAX_CONNECTIONS`] waits for a slot before it is refused
/// ("too many connections"). 1 s: long enough for the slots of connections their peers
/// already dropped to come back on a loaded node, short enough for a CLI to report the
/// refusal promptly when the slots are really held.
pub const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Least time between two warnings about refused connections (each says how many).
const REFUSAL_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

pub use crate::read::query::{MAX_EVENTS_BYTES, MAX_EVENTS_PER_REQUEST};

/// The control actor.
pub struct Control {
    /// Node-wide settings and handles.
    pub shared: Arc<NodeContext>,
}

/// The listener task.
pub struct ControlState {
    /// Accepts connections; aborted when the actor stops.
    accept: JoinHandle<()>,
}

/// Answers an `Events` request from the journal: up to `limit` (capped at
/// [`MAX_EVENTS_PER_REQUEST`] and about [`MAX_EVENTS_BYTES`]) events after `after`, of `run`
/// or of all runs. Blocking (RocksDB reads): call it from a blocking thread.
pub use crate::read::query::events;

impl Actor for Control {
    type Msg = ();
    type State = ControlState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        _args: (),
    ) -> Result<ControlState, ActorProcessingErr> {
        let path = self.shared.config.socket_path();
        // We hold the journal lock, so a socket file left here belongs to a dead node.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove stale {}: {e}", path.display()).into()),
        }
        let listener = UnixListener::bind(&path)
            .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        tracing::info!(path = %path.display(), "control socket listening");
        let shared = Arc::clone(&self.shared);
        let mut over_limit = Vec::new();
        write_frame(
            &mut over_limit,
            &HelloReply::Refused {
                reason: format!(
                    "too many connections (limit {MAX_CONNECTIONS}); close some (dashboards, \
                     `events --follow`, `queue --watch`) or retry later"
                ),
                version: PROTOCOL_VERSION,
            },
        )
        .await?;
        let over_limit: Arc<[u8]> = over_limit.into();
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let waiting = Arc::new(Semaphore::new(MAX_WAITING));
        let refusals = Arc::new(Refusals::default());
        let accept = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if peer_gone(&stream) {
                    continue;
                }
                let shared = Arc::clone(&shared);
                if let Ok(permit) = Arc::clone(&permits).try_acquire_owned() {
                    tokio::spawn(serve_with(stream, shared, permit));
                    continue;
                }
                let Ok(place) = Arc::clone(&waiting).try_acquire_owned() else {
                    refusals.refuse(stream, &over_limit);
                    continue;
                };
                let (permits, refusals) = (Arc::clone(&permits), Arc::clone(&refusals));
                let over_limit = Arc::clone(&over_limit);
                tokio::spawn(async move {
                    let permit = tokio::time::timeout(SLOT_WAIT, permits.acquire_owned()).await;
                    drop(place);
                    match permit {
                        Ok(Ok(permit)) => serve_with(stream, shared, permit).await,
                        _ => refusals.refuse(stream, &over_limit),
                    }
                });
            }
        });
        Ok(ControlState { accept })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut ControlState,
    ) -> Result<(), ActorProcessingErr> {
        state.accept.abort();
        let _ = std::fs::remove_file(self.shared.config.socket_path());
        Ok(())
    }
}

/// Whether the peer of a connection just accepted has closed it already (it connected and
/// dropped the connection before the node got to it: a client that gave up, or one that
/// connects and drops in a loop). Such a connection is closed at once and takes no slot;
/// otherwise it would hold one until its task had run, and a loop of them could get others
/// refused. One `poll` with no wait.
fn peer_gone(stream: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd for a descriptor `stream` keeps open; no wait.
    let ready = unsafe { libc::poll(&mut fd, 1, 0) };
    ready == 1 && fd.revents & (libc::POLLRDHUP | libc::POLLHUP) != 0
}

/// Serves a connection that holds one of the [`MAX_CONNECTIONS`] slots, and gives the slot
/// back when it ends.
async fn serve_with(
    stream: UnixStream,
    shared: Arc<NodeContext>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    if let Err(e) = serve(stream, shared).await {
        tracing::debug!(error = %e, "control connection closed");
    }
    drop(permit);
}

/// Connections refused for want of a slot, warned about at most once per
/// [`REFUSAL_WARN_EVERY`].
#[derive(Default)]
struct Refusals {
    /// Refused since the last warning, and when that was.
    since_warning: std::sync::Mutex<(u64, Option<Instant>)>,
}

impl Refusals {
    /// Refuses `stream` with `refusal` ([`refuse_at_once`]) and warns if it is time.
    fn refuse(&self, stream: UnixStream, refusal: &[u8]) {
        refuse_at_once(stream, refusal);
        let mut guard = self.since_warning.lock().unwrap_or_else(|p| p.into_inner());
        let (count, last) = &mut *guard;
        *count += 1;
        if last.is_none_or(|t| t.elapsed() >= REFUSAL_WARN_EVERY) {
            tracing::warn!(
                limit = MAX_CONNECTIONS,
                refused = *count,
                "control connections refused: too many connections"
            );
            *count = 0;
            *last = Some(Instant::now());
        }
    }
}

/// Writes `refusal` (an encoded frame) to a connection over [`MAX_CONNECTIONS`] and closes it,
/// without waiting: the frame is small and the socket's send buffer empty, so one
/// non-blocking write takes it all, and a peer that never reads cannot hold up the accept
/// loop. The client reads the refusal even if it had not sent its hello yet.
fn refuse_at_once(stream: UnixStream, refusal: &[u8]) {
    use std::io::Write;
    if let Ok(mut stream) = stream.into_std() {
        // Non-blocking (tokio set it so): if the buffer is full after all, the peer gets EOF.
        let _ = stream.write(refusal);
    }
}

/// Serves one connection until the peer closes it or sends something bad.
async fn serve(mut stream: UnixStream, shared: Arc<NodeContext>) -> Result<(), FrameError> {
    // The hello must arrive, and the reply go out, by then.
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let peer = stream.peer_cred()?.uid();
    let hello = match tokio::time::timeout_at(
        deadline,
        read_frame_within::<Hello, _>(&mut stream, MAX_HELLO_BYTES),
    )
    .await
    {
        Ok(Ok(Some(hello))) => Ok(hello),
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            tracing::debug!("control connection closed: no hello within {HANDSHAKE_TIMEOUT:?}");
            return Ok(());
        }
    };
    // The hello is read before any refusal, so the client's write of it cannot fail and hide
    // the reason from it.
    let me = nix::unistd::geteuid().as_raw();
    let reply = match &hello {
        _ if peer != me => refusal(format!("uid {peer} may not control a node of uid {me}")),
        Ok(hello) => hello_reply(hello, &shared),
        Err(e) => refusal(format!("bad hello: {e}")),
    };
    match tokio::time::timeout_at(deadline, write_frame(&mut stream, &reply)).await {
        Ok(written) => written?,
        Err(_) => return Ok(()),
    }
    hello?;
    if let HelloReply::Refused { reason, .. } = reply {
        tracing::debug!(peer_uid = peer, %reason, "control connection refused");
        return Ok(());
    }
    loop {
        let request: Request = match read_frame(&mut stream).await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => {
                let answer = Response::Error(ControlError::BadRequest(e.to_string()));
                let _ = write_frame(&mut stream, &answer).await;
                return Err(e);
            }
        };
        if let Request::Subscribe(subscription) = request {
            // The connection now belongs to the stream until it ends.
            let (reader, writer) = stream.into_split();
            let model = Arc::clone(&shared.read);
            let ended = crate::read::subscribe::serve(model, subscription, reader, writer).await;
            tracing::debug!(?ended, "subscription ended");
            return Ok(());
        }
        let response = answer(&shared, request, peer).await;
        write_frame(&mut stream, &response).await?;
    }
}

/// A refusal with `reason`.
fn refusal(reason: String) -> HelloReply {
    HelloReply::Refused {
        reason,
        version: PROTOCOL_VERSION,
    }
}

/// The node's answer to `hello` from a peer of its own uid: welcome, or why not.
fn hello_reply(hello: &Hello, shared: &NodeContext) -> HelloReply {
    if hello.magic != MAGIC {
        return refusal("not a troupe client".into());
    }
    if hello.version != PROTOCOL_VERSION {
        return refusal(format!(
            "protocol version {} is not supported (this node speaks {PROTOCOL_VERSION}); use a \
             troupe CLI of the same version",
            hello.version
        ));
    }
    HelloReply::Welcome {
        node_id: shared.journal.node_id().to_owned(),
        pid: std::process::id(),
    }
}

async fn answer(shared: &Arc<NodeContext>, mut request: Request, peer_uid: u32) -> Response {
    // An approval records the OS user behind the connection, whatever the client claims.
    if let Request::Command(
        Command::Approve { approver, .. }
        | Command::Reject { approver, .. }
        | Command::Escalation { approver, .. },
    ) = &mut request
    {
        approver.os_user = crate::context::os_user(nix::unistd::Uid::from_raw(peer_uid));
    }
    if let Request::Command(Command::ResetBreaker { os_user, .. }) = &mut request {
        *os_user = crate::context::os_user(nix::unistd::Uid::from_raw(peer_uid));
    }
    // A workflow decoded from the socket has its structure checked but not every field:
    // check it fully here, on the connection's task, before it reaches the scheduler.
    if let Request::Spawn(req) = &mut request {
        match crate::model::Workflow::from_spec(req.workflow.spec().clone()) {
            Ok(w) => *req.workflow = w,
            Err(e) => {
                return Response::Error(ControlError::Refused(format!("invalid workflow: {e}")))
            }
        }
    }
    match request {
        Request::Stop => {
            // Whoever owns the node handle (the binary, a host) runs the graceful shutdown.
            shared.stop_requested.notify_one();
            Response::Done
        }
        Request::Spawn(ref req) if req.caller.is_none() && !shared.config.socket_submissions => {
            Response::Error(ControlError::Refused(format!(
                "the node serving {} is the embedded node of a `troupe run` (pid {}); it takes \
                 no root runs (spawns from its own tasks are fine). Serve the data dir with \
                 `troupe node start`",
                shared.config.data_dir.display(),
                std::process::id()
            )))
        }
        Request::Submit(_) if !shared.config.socket_submissions => {
            Response::Error(ControlError::Refused(format!(
                "the node serving {} is the embedded node of a `troupe run` (pid {}); it stops \
                 when that run ends, so it takes no other runs. Wait for it to finish, or serve \
                 the data dir with a long-lived `troupe node start`",
                shared.config.data_dir.display(),
                std::process::id()
            )))
        }
        Request::InjectPanic(_) if !shared.config.test_hooks => Response::Error(
            ControlError::Refused("test hooks are off (TROUPE_TEST_HOOKS=1 turns them on)".into()),
        ),
        other => match route(shared, other).await {
            Ok(r) => r,
            Err(e) => Response::Error(ControlError::Internal(e.to_string())),
        },
    }
}

/// The one place a request is mapped to who answers it: `Health` by the health checks
/// ([`crate::telemetry::health`]), `Backup` by [`crate::storage::backup`], everything else by [`NodeContext::request`] (reads by the
/// read model, commands by the scheduler).
pub async fn route(ctx: &Arc<NodeContext>, request: Request) -> Result<Response, NodeError> {
    if let Request::Health = request {
        // Boxed: the health checks send requests of their own.
        let report = Box::pin(crate::telemetry::health::evaluate_health(ctx)).await;
        return Ok(Response::Health(Box::new(report)));
    }
    if let Request::Backup { dest } = request {
        let (journal, layout) = (ctx.journal.clone(), ctx.config.layout());
        let done = tokio::task::spawn_blocking(move || {
            crate::storage::backup::backup(&journal, &layout, &dest)
        })
        .await
        .map_err(|e| NodeError::Unavailable(e.to_string()))?;
        return Ok(match done {
            Ok(info) => Response::Backup(Box::new(info)),
            Err(e) if e.exit_code() == 2 => Response::Error(ControlError::Refused(e.to_string())),
            Err(e) => Response::Error(ControlError::Internal(e.to_string())),
        });
    }
    ctx.request(request).await
}
