//! A client of a node's control socket (what the admin CLI uses).
//!
//! When the socket does not answer, [`Client::connect`] finds out why before it gives up: it
//! asks who holds the data dir's journal (the lock RocksDB takes on `DATA_DIR/journal/LOCK`)
//! and, if a process does, what keeps it from answering (the socket is missing, the process
//! is stopped, the socket belongs to another user, ...). Only when nothing holds the journal
//! does it say that no node serves the data dir ([`ClientError::NoNode`]), the one case in
//! which a caller may start a node of its own or read the journal offline.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;

use crate::config::socket_path;
use crate::layout::DataDir;
pub use crate::messages::control::HANDSHAKE_TIMEOUT;
use crate::messages::control::{
    read_frame, write_frame, FrameError, Hello, HelloReply, Request, Response, Subscription,
};

/// Why a request could not be made. [`ClientError::exit_code`] says how the CLI exits.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No process holds the data dir's journal: no node runs there. The caller may start one
    /// (`troupe node start`, or a node embedded in itself) or read the journal offline.
    #[error("no node serves {}; start one with `troupe node start`", data_dir.display())]
    NoNode {
        /// The data dir.
        data_dir: PathBuf,
        /// The socket tried.
        socket: PathBuf,
    },
    /// The data dir is not a directory (a regular file, say): invalid input; give another
    /// `--data-dir`.
    #[error("{} is not a directory{}", data_dir.display(), file_note(data_dir, file))]
    NotADirectory {
        /// The data dir given.
        data_dir: PathBuf,
        /// The data dir itself, or the ancestor of it that is not a directory.
        file: PathBuf,
    },
    /// A process holds the data dir's journal, but the socket does not exist: a node whose
    /// socket was deleted or that is still starting (or runs without one), or a troupe command
    /// reading the journal offline. Do not start another node on it: wait for that process,
    /// or restart the node to recreate its socket.
    #[error("{} is already in use{} (a node, or a troupe command reading its journal), but its socket {} is missing (deleted? a node creates it once it has started; restart the node to recreate it)", data_dir.display(), pid.map(|p| format!(" by pid {p}")).unwrap_or_default(), socket.display())]
    InUse {
        /// The data dir.
        data_dir: PathBuf,
        /// The socket tried.
        socket: PathBuf,
        /// The process holding the journal (`None` when it lives in another pid namespace).
        pid: Option<u32>,
    },
    /// A node holds the data dir (it has its journal locked) but does not answer on the
    /// socket. Do not start another node on it: remove the cause that `why` names (continue a
    /// stopped process, run as the node's user, restart the node to recreate its socket), or
    /// retry once the node has finished starting.
    #[error("a node{} holds {} but does not answer on {}: {why}", pid_note(pid), data_dir.display(), socket.display())]
    NotAnswering {
        /// The data dir.
        data_dir: PathBuf,
        /// The socket tried.
        socket: PathBuf,
        /// The process holding the journal (`None` when it lives in another pid namespace).
        pid: Option<u32>,
        /// What kept it from answering.
        why: NoAnswer,
    },
    /// The socket did not answer, and whether a node holds the data dir could not be learned
    /// (its journal lock is not readable, typically for lack of permission): remove the cause
    /// that `why` names.
    #[error("cannot reach a node of {} on {}: {why}", data_dir.display(), socket.display())]
    Unreachable {
        /// The data dir.
        data_dir: PathBuf,
        /// The socket tried.
        socket: PathBuf,
        /// What went wrong.
        why: NoAnswer,
    },
    /// The node refused the connection (protocol version, user, too many connections); the
    /// reason says what to change.
    #[error("the node refused the connection: {0}")]
    Refused(String),
    /// The node went away while the connection was open: it stopped or crashed. Whatever was
    /// asked may or may not have been done; look again once a node serves the data dir.
    #[error("the node serving {} went away (it stopped or crashed)", data_dir.display())]
    WentAway {
        /// The data dir.
        data_dir: PathBuf,
    },
    /// The conversation failed otherwise (a frame that does not decode: a node of another
    /// build speaking the same protocol version?). Report it.
    #[error("control connection to {}: {source}", socket.display())]
    Frame {
        /// The socket.
        socket: PathBuf,
        /// What failed.
        source: FrameError,
    },
}

impl ClientError {
    /// The CLI exit code for this error: 2 (invalid input) for a data dir that is not a
    /// directory or that this user may not use (the same code every command gives for that
    /// cause, see `JournalError::exit_code`), 3 (node unreachable or internal error) for
    /// everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::NotADirectory { .. }
            | ClientError::Unreachable {
                why: NoAnswer::OtherUser { .. } | NoAnswer::PermissionDenied { .. },
                ..
            }
            | ClientError::NotAnswering {
                why: NoAnswer::OtherUser { .. } | NoAnswer::PermissionDenied { .. },
                ..
            } => 2,
            _ => 3,
        }
    }
}

fn file_note(data_dir: &Path, file: &Path) -> String {
    if file == data_dir {
        String::new()
    } else {
        format!(" ({} is not a directory)", file.display())
    }
}

fn pid_note(pid: &Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// Why a node's socket did not answer (the end of a [`ClientError::NotAnswering`] or
/// [`ClientError::Unreachable`] message).
#[derive(Debug, thiserror::Error)]
pub enum NoAnswer {
    /// `DATA_DIR/troupe.sock` does not exist.
    #[error("the socket is missing")]
    SocketMissing,
    /// Nothing listens on the socket file.
    #[error("connection refused (nothing listens on the socket; the node may be stopping)")]
    ConnectionRefused,
    /// The socket (or the data dir) belongs to another user, and only that user may connect.
    #[error("permission denied: {} belongs to uid {owner}; run troupe as that user", path.display())]
    OtherUser {
        /// The file whose owner may connect.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// Permission denied although this user owns the socket and the data dir.
    #[error("permission denied (check the modes of {} and its directory)", path.display())]
    PermissionDenied {
        /// The socket.
        path: PathBuf,
    },
    /// The node accepted the connection but did not answer the hello within
    /// [`HANDSHAKE_TIMEOUT`] because its process is stopped.
    #[error("it accepted but did not answer within {} s: the process is stopped (SIGSTOP?); `kill -CONT {pid}`", HANDSHAKE_TIMEOUT.as_secs())]
    Stopped {
        /// The stopped process.
        pid: u32,
    },
    /// The node accepted the connection but did not answer the hello within
    /// [`HANDSHAKE_TIMEOUT`].
    #[error("it accepted but did not answer within {} s (overloaded or hung?)", HANDSHAKE_TIMEOUT.as_secs())]
    Timeout,
    /// The node does not accept connections: they wait in the socket's backlog, which is full.
    #[error("the node does not accept connections (its backlog is full; is it out of file descriptors?)")]
    BacklogFull,
    /// This process (or the system) has no file descriptor left for the connection.
    #[error("too many open files in this process or the system ({0})")]
    TooManyOpenFiles(io::Error),
    /// Anything else connecting failed with.
    #[error("{0}")]
    Other(io::Error),
}

/// One connection to a node, after the handshake.
pub struct Client {
    /// The connection.
    stream: UnixStream,
    /// The socket path (for messages).
    socket: PathBuf,
    /// The data dir (for messages).
    data_dir: PathBuf,
    /// The node's id.
    pub node_id: String,
    /// The node's process id.
    pub pid: u32,
}

impl Client {
    /// Connects to the node serving `data_dir` and does the handshake (waiting at most
    /// [`HANDSHAKE_TIMEOUT`] for the welcome). When that fails, the error says what is known:
    /// no node at all ([`ClientError::NoNode`]), a node that holds the data dir but does not
    /// answer, a refusal, a data dir that is not a directory.
    ///
    /// Finding out who holds the data dir opens `DATA_DIR/journal/LOCK` (only after the socket
    /// failed); that does not release the lock even in a process that holds it itself.
    pub async fn connect(data_dir: &Path) -> Result<Client, ClientError> {
        let socket = socket_path(data_dir);
        let mut stream = match connect_socket(&socket).await {
            Ok(s) => s,
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                let file = data_dir
                    .ancestors()
                    .find(|p| std::fs::metadata(p).is_ok_and(|m| !m.is_dir()))
                    .unwrap_or(data_dir);
                return Err(ClientError::NotADirectory {
                    data_dir: data_dir.to_owned(),
                    file: file.to_owned(),
                });
            }
            Err(e) => {
                let why = not_connected(e, data_dir, &socket);
                return Err(diagnose(data_dir, &socket, why));
            }
        };
        let reply = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream)).await {
            Ok(r) => r,
            Err(_) => return Err(diagnose(data_dir, &socket, NoAnswer::Timeout)),
        };
        match reply {
            Ok(Some(HelloReply::Welcome { node_id, pid })) => Ok(Client {
                stream,
                socket,
                data_dir: data_dir.to_owned(),
                node_id,
                pid,
            }),
            Ok(Some(HelloReply::Refused { reason, .. })) => Err(ClientError::Refused(reason)),
            Ok(None) => Err(ClientError::WentAway {
                data_dir: data_dir.to_owned(),
            }),
            Err(e) => Err(connection_lost(e, data_dir, &socket)),
        }
    }

    /// Sends `request` and waits for its response. A connection that breaks (the node
    /// stopped or crashed) is [`ClientError::WentAway`].
    pub async fn request(&mut self, request: &Request) -> Result<Response, ClientError> {
        let result = match write_frame(&mut self.stream, request).await {
            Ok(()) => read_frame(&mut self.stream).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(ClientError::WentAway {
                data_dir: self.data_dir.clone(),
            }),
            Err(e) => Err(connection_lost(e, &self.data_dir, &self.socket)),
        }
    }
}

impl Client {
    /// Turns this connection into a subscription (see [`Subscription`]): the node pushes
    /// frames until the stream ends or the returned value is dropped (which closes the
    /// connection and ends the subscription on the node).
    pub async fn subscribe(
        mut self,
        subscription: Subscription,
    ) -> Result<Subscribed, ClientError> {
        if let Err(e) = write_frame(&mut self.stream, &Request::Subscribe(subscription)).await {
            return Err(connection_lost(e, &self.data_dir, &self.socket));
        }
        Ok(Subscribed { client: self })
    }
}

/// A subscribed connection: frames pushed by the node.
pub struct Subscribed {
    /// The connection.
    client: Client,
}

impl std::os::fd::AsRawFd for Subscribed {
    /// The connection's descriptor (to poll it, e.g. for the node closing it).
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.client.stream.as_raw_fd()
    }
}

impl Subscribed {
    /// The next frame; `None` once the node ended the stream (a run subscription after the
    /// run finished, a node shutting down). A node that went away mid-stream is
    /// [`ClientError::WentAway`] only if it did not close cleanly.
    pub async fn next(&mut self) -> Result<Option<Response>, ClientError> {
        let c = &mut self.client;
        match read_frame(&mut c.stream).await {
            Ok(r) => Ok(r),
            Err(e) => Err(connection_lost(e, &c.data_dir, &c.socket)),
        }
    }
}

/// Connects to `socket`. A full backlog (`EAGAIN`) is retried for up to
/// [`HANDSHAKE_TIMEOUT`] (pauses of 1 ms doubling to 20 ms): it is usually a burst of
/// connections (many clients at once, or a peer connecting and dropping in a loop) that the
/// node is still accepting, not a node that stopped accepting.
async fn connect_socket(socket: &Path) -> io::Result<UnixStream> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match UnixStream::connect(socket).await {
            Err(e)
                if e.raw_os_error() == Some(libc::EAGAIN)
                    && tokio::time::Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Sends the hello and reads the node's reply (`None`: it closed the connection without
/// one).
async fn handshake<S>(stream: &mut S) -> Result<Option<HelloReply>, FrameError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let sent = write_frame(stream, &Hello::current()).await;
    // A node that refuses at once (too many connections; an older node refusing a user) may
    // close before it reads the hello, so sending it fails with a broken pipe. Its refusal is
    // still waiting to be read, and says more.
    let reply = read_frame(stream).await;
    match (sent, reply) {
        (_, Ok(Some(reply))) => Ok(Some(reply)),
        (Err(e), _) => Err(e),
        (Ok(()), reply) => reply,
    }
}

/// An error of an established connection: [`ClientError::WentAway`] when the connection
/// broke, [`ClientError::Frame`] otherwise.
fn connection_lost(e: FrameError, data_dir: &Path, socket: &Path) -> ClientError {
    match &e {
        FrameError::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::UnexpectedEof
            ) =>
        {
            ClientError::WentAway {
                data_dir: data_dir.to_owned(),
            }
        }
        _ => ClientError::Frame {
            socket: socket.to_owned(),
            source: e,
        },
    }
}

/// What a failed `connect(2)` on the socket means.
fn not_connected(e: io::Error, data_dir: &Path, socket: &Path) -> NoAnswer {
    match e.raw_os_error() {
        Some(libc::ENOENT) => NoAnswer::SocketMissing,
        Some(libc::ECONNREFUSED) => NoAnswer::ConnectionRefused,
        Some(libc::EAGAIN) => NoAnswer::BacklogFull,
        Some(libc::EMFILE | libc::ENFILE) => NoAnswer::TooManyOpenFiles(e),
        Some(libc::EACCES | libc::EPERM) => {
            let me = nix::unistd::geteuid().as_raw();
            [socket, data_dir]
                .into_iter()
                .find_map(|path| {
                    let owner = std::fs::metadata(path).ok()?.uid();
                    (owner != me).then(|| NoAnswer::OtherUser {
                        path: path.to_owned(),
                        owner,
                    })
                })
                .unwrap_or_else(|| NoAnswer::PermissionDenied {
                    path: socket.to_owned(),
                })
        }
        _ => NoAnswer::Other(e),
    }
}

/// Turns a socket that did not answer into the error that says what is known, by asking who
/// holds the data dir's journal.
fn diagnose(data_dir: &Path, socket: &Path, why: NoAnswer) -> ClientError {
    let (data_dir, socket) = (data_dir.to_owned(), socket.to_owned());
    match lock_holder(&DataDir::new(&data_dir).journal_lock()) {
        Ok(Some(pid)) if matches!(why, NoAnswer::SocketMissing) => ClientError::InUse {
            data_dir,
            socket,
            pid: (pid != 0).then_some(pid),
        },
        Ok(Some(pid)) => {
            let why = match why {
                NoAnswer::Timeout if pid != 0 && process_stopped(pid) => NoAnswer::Stopped { pid },
                why => why,
            };
            ClientError::NotAnswering {
                data_dir,
                socket,
                pid: (pid != 0).then_some(pid),
                why,
            }
        }
        // Nothing holds the journal, and nothing listens: no node.
        Ok(None) if matches!(why, NoAnswer::SocketMissing | NoAnswer::ConnectionRefused) => {
            ClientError::NoNode { data_dir, socket }
        }
        // No journal (or no data dir) at all.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            ClientError::NoNode { data_dir, socket }
        }
        // Something answers on the socket without holding the journal, or the lock is not
        // readable: say only what went wrong.
        Ok(None) | Err(_) => ClientError::Unreachable {
            data_dir,
            socket,
            why,
        },
    }
}

/// The pid of the process that holds a write lock on `lock`, or `None` if nothing does.
/// `Some(0)`: a process in another pid namespace.
///
/// RocksDB locks `journal/LOCK` of an open database with `fcntl(F_SETLK, F_WRLCK)` on the
/// whole file (`LockOrUnlock` in librocksdb-sys's `rocksdb/env/fs_posix.cc`), a POSIX record
/// lock held for as long as the database is open; this asks with `F_OFD_GETLK` (Linux ≥ 3.15),
/// which, unlike `F_GETLK`, also reports a lock that this very process holds.
///
/// That matters because POSIX drops every record lock a process holds on a file when the
/// process closes *any* descriptor of that file. Closing the descriptor opened here in a
/// process that embeds the node would release RocksDB's lock and let a second node open the
/// journal; so when the holder is this process, the descriptor is kept open (leaked) instead.
fn lock_holder(lock: &Path) -> io::Result<Option<u32>> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(lock)?;
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut query: libc::flock = unsafe { std::mem::zeroed() };
    query.l_type = libc::F_WRLCK as libc::c_short;
    query.l_whence = libc::SEEK_SET as libc::c_short;
    // l_start = 0 and l_len = 0: the whole file; l_pid must be 0 for F_OFD_GETLK.
    // SAFETY: `file` is an open descriptor and `query` a valid, exclusively borrowed flock.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut query) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if query.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    let pid = u32::try_from(query.l_pid).unwrap_or(0);
    if pid == std::process::id() {
        std::mem::forget(file);
    }
    Ok(Some(pid))
}

/// Whether process `pid` is stopped (state `T`, or `t` under a debugger, in `/proc/PID/stat`).
fn process_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit(')').next()?.split_whitespace().next()?;
            Some(state == "T" || state == "t")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::control::PROTOCOL_VERSION;

    /// A node that writes its refusal and closes before reading the hello: sending the hello
    /// fails, and the client still reports the refusal, not the broken pipe.
    #[tokio::test]
    async fn a_refusal_sent_before_the_hello_is_read_is_reported() {
        let (mut client, mut node) = UnixStream::pair().unwrap();
        let refusal = HelloReply::Refused {
            reason: "uid 65534 may not control a node of uid 0".into(),
            version: PROTOCOL_VERSION,
        };
        write_frame(&mut node, &refusal).await.unwrap();
        drop(node);
        assert_eq!(handshake(&mut client).await.unwrap(), Some(refusal));
    }

    /// A node that closes without a word is reported as gone, not as a broken pipe.
    #[tokio::test]
    async fn a_node_that_closes_during_the_handshake_went_away() {
        let (mut client, node) = UnixStream::pair().unwrap();
        drop(node);
        let e = handshake(&mut client).await.unwrap_err();
        let e = connection_lost(e, Path::new("/d"), Path::new("/d/troupe.sock"));
        assert!(matches!(e, ClientError::WentAway { .. }), "{e}");
    }

    /// The probe sees the lock RocksDB takes on an open journal, even when this process holds
    /// it, and looking does not release it (closing a descriptor of the file would).
    #[test]
    fn lock_holder_sees_the_journal_lock_without_releasing_it() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("LOCK");
        std::fs::write(&lock, b"").unwrap();
        assert_eq!(lock_holder(&lock).unwrap(), None);
        std::fs::remove_file(&lock).unwrap();
        let journal = crate::storage::Journal::open(dir.path()).unwrap();
        let me = Some(std::process::id());
        assert_eq!(lock_holder(&lock).unwrap(), me);
        assert_eq!(
            lock_holder(&lock).unwrap(),
            me,
            "the first look released the lock"
        );
        drop(journal);
        assert_eq!(lock_holder(&lock).unwrap(), None);
    }
}
