//! A client of a node's control socket (what the admin CLI uses).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::UnixStream;

use crate::messages::control::{
    read_frame, write_frame, FrameError, Hello, HelloReply, Request, Response,
};
use crate::node::socket_path;

/// How long [`Client::connect`] waits for the node's welcome.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on `DATA_DIR/troupe.sock` (no node runs, or it is starting).
    #[error("no node serves {} (no answer on {}); start one with `troupe node start`", data_dir.display(), socket.display())]
    NoNode {
        /// The data dir.
        data_dir: PathBuf,
        /// The socket tried.
        socket: PathBuf,
    },
    /// The node refused the connection (protocol version, user).
    #[error("the node refused the connection: {0}")]
    Refused(String),
    /// The connection failed mid-request.
    #[error("control connection to {}: {source}", socket.display())]
    Frame {
        /// The socket.
        socket: PathBuf,
        /// What failed.
        source: FrameError,
    },
    /// The node closed the connection without answering.
    #[error("the node closed the connection without answering (it may be stopping)")]
    Closed,
}

/// One connection to a node, after the handshake.
pub struct Client {
    /// The connection.
    stream: UnixStream,
    /// The socket path (for messages).
    socket: PathBuf,
    /// The node's id.
    pub node_id: String,
    /// The node's process id.
    pub pid: u32,
}

impl Client {
    /// Connects to the node serving `data_dir` and does the handshake.
    pub async fn connect(data_dir: &Path) -> Result<Client, ClientError> {
        let socket = socket_path(data_dir);
        let no_node = || ClientError::NoNode {
            data_dir: data_dir.to_owned(),
            socket: socket.clone(),
        };
        let mut stream = match UnixStream::connect(&socket).await {
            Ok(s) => s,
            Err(_) => return Err(no_node()),
        };
        let frame = |source| ClientError::Frame {
            socket: socket.clone(),
            source,
        };
        let handshake = async {
            write_frame(&mut stream, &Hello::current()).await?;
            read_frame::<HelloReply, _>(&mut stream).await
        };
        let reply = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(r) => r.map_err(frame)?,
            Err(_) => return Err(no_node()),
        };
        match reply {
            Some(HelloReply::Welcome { node_id, pid }) => Ok(Client {
                stream,
                socket,
                node_id,
                pid,
            }),
            Some(HelloReply::Refused { reason, .. }) => Err(ClientError::Refused(reason)),
            None => Err(ClientError::Closed),
        }
    }

    /// Sends `request` and waits for its response.
    pub async fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let socket = self.socket.clone();
        let frame = |source| ClientError::Frame { socket, source };
        write_frame(&mut self.stream, request)
            .await
            .map_err(frame.clone())?;
        match read_frame(&mut self.stream).await.map_err(frame)? {
            Some(r) => Ok(r),
            None => Err(ClientError::Closed),
        }
    }
}
