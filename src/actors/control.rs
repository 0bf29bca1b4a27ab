//! The control actor: serves the node's Unix socket (`DATA_DIR/troupe.sock`, mode 0600).
//!
//! Each connection is a task: handshake ([`Hello`] / [`HelloReply`]), then one
//! [`Response`] per [`Request`] (protocol in [`crate::messages::control`]). Only peers with
//! the node's own uid (from `SO_PEERCRED`) are served. A bad frame — too large, not
//! decodable, wrong protocol version — gets an error answer and the connection is closed;
//! other connections and the node are unaffected. Requests go to the scheduler as typed
//! messages; `Events` is answered from the journal directly (reads do not need the writer).

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use crate::messages::control::{
    read_frame, write_frame, Command, ControlError, FrameError, Hello, HelloReply, Request,
    Response, MAGIC, PROTOCOL_VERSION,
};
use crate::model::{RunId, Seq};
use crate::node::NodeShared;
use crate::storage::codec::encode_message;
use crate::storage::Journal;

/// Most events one `Events` request returns.
pub const MAX_EVENTS_PER_REQUEST: u32 = 10_000;

/// The control actor.
pub struct Control {
    /// Node-wide settings and handles.
    pub shared: Arc<NodeShared>,
}

/// The listener task.
pub struct ControlState {
    /// Accepts connections; aborted when the actor stops.
    accept: JoinHandle<()>,
}

/// Most bytes of events one `Events` answer carries (about; one event may exceed it), well
/// under the frame limit.
pub const MAX_EVENTS_BYTES: usize = 16 << 20;

/// Answers an `Events` request from the journal: up to `limit` (capped at
/// [`MAX_EVENTS_PER_REQUEST`] and about [`MAX_EVENTS_BYTES`]) events after `after`, of `run`
/// or of all runs. Blocking (RocksDB reads): call it from a blocking thread.
pub fn events(journal: &Journal, run: Option<RunId>, after: Seq, limit: u32) -> Response {
    let limit = limit.clamp(1, MAX_EVENTS_PER_REQUEST) as usize;
    let result = match run {
        Some(run) => journal.run_events_after(run, after, limit),
        None => journal
            .events_from(after.saturating_add(1))
            .take(limit)
            .collect::<Result<Vec<_>, _>>(),
    };
    match result {
        Ok(mut events) => {
            let mut bytes = 0;
            let keep = events
                .iter()
                .take_while(|(_, record)| {
                    let first = bytes == 0;
                    bytes += encode_message(record).map(|v| v.len()).unwrap_or(0);
                    first || bytes <= MAX_EVENTS_BYTES
                })
                .count();
            events.truncate(keep);
            Response::Events(events)
        }
        Err(e) => Response::Error(ControlError::Internal(e.to_string())),
    }
}

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
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let shared = Arc::clone(&shared);
                        tokio::spawn(async move {
                            if let Err(e) = serve(stream, shared).await {
                                tracing::debug!(error = %e, "control connection closed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
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

/// Serves one connection until the peer closes it or sends something bad.
async fn serve(mut stream: UnixStream, shared: Arc<NodeShared>) -> Result<(), FrameError> {
    let refuse = |reason: String| HelloReply::Refused {
        reason,
        version: PROTOCOL_VERSION,
    };
    let me = nix::unistd::geteuid().as_raw();
    let peer = stream.peer_cred()?.uid();
    if peer != me {
        let reply = refuse(format!("uid {peer} may not control a node of uid {me}"));
        write_frame(&mut stream, &reply).await?;
        return Ok(());
    }
    let hello: Hello = match read_frame(&mut stream).await {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(()),
        Err(e) => {
            let _ = write_frame(&mut stream, &refuse(format!("bad hello: {e}"))).await;
            return Err(e);
        }
    };
    if hello.magic != MAGIC {
        write_frame(&mut stream, &refuse("not a troupe client".into())).await?;
        return Ok(());
    }
    if hello.version != PROTOCOL_VERSION {
        let reason = format!(
            "protocol version {} is not supported (this node speaks {PROTOCOL_VERSION}); use a \
             troupe CLI of the same version",
            hello.version
        );
        write_frame(&mut stream, &refuse(reason)).await?;
        return Ok(());
    }
    let welcome = HelloReply::Welcome {
        node_id: shared.journal.node_id().to_owned(),
        pid: std::process::id(),
    };
    write_frame(&mut stream, &welcome).await?;
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
        let response = answer(&shared, request, peer).await;
        write_frame(&mut stream, &response).await?;
    }
}

async fn answer(shared: &Arc<NodeShared>, mut request: Request, peer_uid: u32) -> Response {
    // An approval records the OS user behind the connection, whatever the client claims.
    if let Request::Command(Command::Approve { approver, .. } | Command::Reject { approver, .. }) =
        &mut request
    {
        approver.os_user = crate::node::os_user(nix::unistd::Uid::from_raw(peer_uid));
    }
    match request {
        Request::Stop => {
            // Whoever owns the node handle (the binary, a host) runs the graceful shutdown.
            shared.stop_requested.notify_one();
            Response::Done
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
        other => match shared.request(other).await {
            Ok(r) => r,
            Err(e) => Response::Error(ControlError::Internal(e.to_string())),
        },
    }
}
