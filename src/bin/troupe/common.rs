//! What every command shares: exit codes, [`Failed`] (a failure with its exit code), the
//! connection to a node ([`Conn`]), the runtime async commands run on, signals, and the data
//! dir used when none is given.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use troupe::client::{Client, ClientError};
use troupe::messages::control::{Request, Response};
use troupe::model::quote::printable;
use troupe::model::SpecError;
use troupe::read::offline::OfflineError;
use troupe::{NodeError, NodeHandle};

/// Exit status of a run that ended not succeeded.
pub(crate) const EXIT_RUN_FAILED: u8 = 1;
/// Exit status for invalid input or usage.
pub(crate) const EXIT_INVALID: u8 = 2;
/// Exit status for an internal error.
pub(crate) const EXIT_INTERNAL: u8 = 3;

/// How often followers poll.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// A way to send requests: over the socket, or to a node in this process.
pub(crate) enum Conn {
    /// A node in another process.
    Remote(Client),
    /// A node embedded in this process (`troupe run` with no node serving the data dir).
    Local(NodeHandle),
}

/// A failed request, with its exit code.
pub(crate) struct Failed {
    /// The exit code.
    pub(crate) code: u8,
    /// What to print after `troupe CMD: `.
    pub(crate) message: String,
}

impl Failed {
    /// Prints `troupe CMD: message` and gives the exit code.
    pub(crate) fn exit(self, cmd: &str) -> ExitCode {
        eprintln!("troupe {cmd}: {}", self.message);
        ExitCode::from(self.code)
    }
}

impl From<ClientError> for Failed {
    fn from(e: ClientError) -> Self {
        Failed {
            code: e.exit_code() as u8,
            message: e.to_string(),
        }
    }
}

impl From<NodeError> for Failed {
    fn from(e: NodeError) -> Self {
        let code = match &e {
            NodeError::Control(c) => c.exit_code() as u8,
            NodeError::DataDir { .. } | NodeError::Inbox { .. } | NodeError::HttpAccess(_) => {
                EXIT_INVALID
            }
            NodeError::Journal(j) => j.exit_code() as u8,
            _ => EXIT_INTERNAL,
        };
        Failed {
            code,
            message: e.to_string(),
        }
    }
}

impl From<OfflineError> for Failed {
    fn from(e: OfflineError) -> Self {
        Failed {
            code: e.exit_code() as u8,
            message: e.to_string(),
        }
    }
}

impl Conn {
    /// Sends `request`; an error answer becomes a [`Failed`] with its exit code.
    pub(crate) async fn request(&mut self, request: Request) -> Result<Response, Failed> {
        let response = match self {
            Conn::Remote(c) => c.request(&request).await?,
            Conn::Local(n) => n.request(request).await?,
        };
        match response {
            Response::Error(e) => Err(Failed {
                code: e.exit_code() as u8,
                message: e.to_string(),
            }),
            r => Ok(r),
        }
    }
}

/// A subscription (see [`troupe::messages::control::Subscription`]): over its own connection
/// to a node in another process, or in-process to an embedded node.
pub(crate) struct Stream {
    /// Where the frames come from.
    from: StreamFrom,
    /// The data dir (for messages).
    data_dir: PathBuf,
}

/// The two kinds of node a stream comes from.
enum StreamFrom {
    /// A node in another process.
    Remote(troupe::client::Subscribed),
    /// A node embedded in this process.
    Local(troupe::node::LocalSubscription),
}

impl Stream {
    /// Subscribes through `conn`'s node (a second connection for a remote node: a
    /// subscribed connection takes no more requests).
    pub(crate) async fn open(
        conn: &Conn,
        data_dir: &std::path::Path,
        subscription: troupe::messages::control::Subscription,
    ) -> Result<Stream, Failed> {
        let from = match conn {
            Conn::Remote(_) => StreamFrom::Remote(
                Client::connect(data_dir)
                    .await?
                    .subscribe(subscription)
                    .await?,
            ),
            Conn::Local(node) => StreamFrom::Local(node.subscribe(subscription)),
        };
        Ok(Stream {
            from,
            data_dir: data_dir.to_owned(),
        })
    }

    /// The next frame. An error frame becomes a [`Failed`] with its exit code; a stream
    /// the node ended (it stopped or crashed) is [`ClientError::WentAway`]: commands stop
    /// reading before the node ends a stream on purpose (a run subscription after the
    /// frame showing the run finished).
    pub(crate) async fn next(&mut self) -> Result<Response, Failed> {
        let frame = match &mut self.from {
            StreamFrom::Remote(s) => s.next().await?,
            StreamFrom::Local(s) => s.next().await?,
        };
        match frame {
            Some(Response::Error(e)) => Err(Failed {
                code: e.exit_code() as u8,
                message: e.to_string(),
            }),
            Some(other) => Ok(other),
            None => Err(ClientError::WentAway {
                data_dir: self.data_dir.clone(),
            }
            .into()),
        }
    }
}

/// A failure for an answer the command did not ask for.
pub(crate) fn unexpected(r: Response) -> Failed {
    Failed {
        code: EXIT_INTERNAL,
        message: format!("unexpected answer from the node: {r:?}"),
    }
}

/// A multi-threaded runtime with I/O and timers, for one command.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs an async command body on a fresh runtime and turns its failure into an exit code.
pub(crate) fn block(
    cmd: &str,
    f: impl std::future::Future<Output = Result<ExitCode, Failed>>,
) -> ExitCode {
    match runtime().block_on(f) {
        Ok(code) => code,
        Err(e) => e.exit(cmd),
    }
}

/// Connects to the node serving `data_dir`.
pub(crate) async fn connect(data_dir: &Path) -> Result<Conn, Failed> {
    Ok(Conn::Remote(Client::connect(data_dir).await?))
}

/// SIGTERM and SIGINT listeners kept for a whole command, so that a signal arriving while
/// the command reacts to the previous one is not lost (a listener created later would not
/// see it).
pub(crate) struct Signals {
    /// SIGTERM.
    term: tokio::signal::unix::Signal,
    /// SIGINT (Ctrl-C).
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening now.
    pub(crate) fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
        }
    }

    /// The next SIGTERM or SIGINT since the previous one returned (or since [`Signals::new`]).
    pub(crate) async fn next(&mut self) -> &'static str {
        tokio::select! {
            // Both arms are cancellation safe (signal streams).
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Waits for SIGTERM or SIGINT and names the one that came.
pub(crate) async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        // Both arms are cancellation safe (signal streams).
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Prints an invalid workflow's problems on stderr and gives exit status 2.
pub(crate) fn invalid(e: &SpecError) -> ExitCode {
    // One problem per line: a message quoting the file (a key, a value) must not add lines.
    let mut shown = e.clone();
    shown.source_name = shown.source_name.map(|n| printable(&n).into_owned());
    for p in &mut shown.problems {
        p.message = printable(&p.message).into_owned();
    }
    eprintln!("{shown}");
    let n = e.problems.len();
    eprintln!(
        "{} problem{} found; the workflow is invalid",
        n,
        if n == 1 { "" } else { "s" }
    );
    ExitCode::from(EXIT_INVALID)
}

/// The data dir when `--data-dir` and `TROUPE_DATA_DIR` are not given:
/// `$XDG_STATE_HOME/troupe`, else `$HOME/.local/state/troupe`. Like the XDG Base Directory
/// spec says, a relative `XDG_STATE_HOME` is ignored; a `HOME` that is unset or relative is
/// an error rather than a data dir under whatever the current folder happens to be.
pub(crate) fn default_data_dir() -> Result<PathBuf, String> {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from) {
        if state.is_absolute() {
            return Ok(state.join("troupe"));
        }
    }
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() => Ok(home.join(".local/state/troupe")),
        _ => Err(
            "no data dir: HOME is unset or not an absolute path (and XDG_STATE_HOME \
                  is not an absolute path either); give --data-dir DIR or set TROUPE_DATA_DIR"
                .into(),
        ),
    }
}
