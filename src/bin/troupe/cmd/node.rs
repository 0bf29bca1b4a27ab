//! `troupe node start [--print-config]` and `troupe node stop`; starting and stopping a node
//! in this process (also for `troupe run` without a node).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use troupe::messages::control::Request;
use troupe::{JournalError, Node, NodeError, NodeHandle};

use crate::common::{block, connect, Conn, Failed, Signals, EXIT_INTERNAL, POLL};
use crate::settings::{node_config, StartOptions};

/// `troupe node start --print-config`: the effective settings as a `troupe.toml`.
pub(crate) fn print_config(data_dir: &Path, opts: StartOptions) -> ExitCode {
    match node_config(data_dir, &opts) {
        Ok(cfg) => {
            print!("{}", troupe::config::render(&cfg));
            ExitCode::SUCCESS
        }
        Err(f) => f.exit("node start"),
    }
}

/// `troupe node start`: serves until SIGTERM/SIGINT or `troupe node stop`.
pub(crate) fn node_start(data_dir: &Path, opts: StartOptions) -> ExitCode {
    block("node start", async move {
        let node = Node::with_config(node_config(data_dir, &opts)?)
            .start()
            .await
            .map_err(|e| start_failed(data_dir, e))?;
        eprintln!(
            "troupe node {} serving {} (pid {})",
            node.shared().journal.node_id(),
            data_dir.display(),
            std::process::id()
        );
        let mut signals = Signals::new();
        let why = tokio::select! {
            // All arms are cancellation safe: signals, a Notify, a JoinHandle poll loop.
            s = signals.next() => s,
            _ = node.stop_requested() => "troupe node stop",
            _ = wait_stopped(&node) => {
                return Err(Failed { code: EXIT_INTERNAL, message: "the node's supervisor gave up (restart intensity exceeded); see the log above".into() });
            }
        };
        eprintln!(
            "troupe node: {why}: stopping; running attempts get up to {} to finish \
             (send it again to kill them now)",
            humantime::format_duration(node.shared().config.grace)
        );
        stop_node(node, "node", &mut signals).await?;
        eprintln!("troupe node: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// `troupe node stop`: asks the node to stop and waits until it has.
pub(crate) fn node_stop(data_dir: &Path) -> ExitCode {
    block("node stop", async move {
        let mut conn = connect(data_dir).await?;
        let pid = match &conn {
            Conn::Remote(c) => c.pid,
            Conn::Local(_) => unreachable!(),
        };
        conn.request(Request::Stop).await?;
        drop(conn);
        // The node removes its socket and exits; wait for the process to be gone.
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            if !process_alive(pid) {
                println!("node (pid {pid}) stopped");
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(POLL).await;
        }
        Err(Failed {
            code: EXIT_INTERNAL,
            message: format!("node (pid {pid}) is still running after 600 s"),
        })
    })
}

/// A failure to start a node; a locked journal names the likely holder: another node.
pub(crate) fn start_failed(data_dir: &Path, e: NodeError) -> Failed {
    if let NodeError::Journal(JournalError::Locked { .. }) = &e {
        return Failed {
            code: EXIT_INTERNAL,
            message: format!(
                "{e}: another node serves {} (stop it with `troupe node stop`)",
                data_dir.display()
            ),
        };
    }
    e.into()
}

/// Stops an in-process node gracefully; a second SIGINT or SIGTERM meanwhile makes it kill
/// its running attempts at once instead of waiting out the grace period.
pub(crate) async fn stop_node(
    node: NodeHandle,
    cmd: &str,
    signals: &mut Signals,
) -> Result<(), Failed> {
    let shared = std::sync::Arc::clone(node.shared());
    let stop = node.shutdown();
    tokio::pin!(stop);
    tokio::select! {
        // Both arms are cancellation safe: the shutdown is pinned and awaited below if the
        // signal comes first; signal streams lose nothing.
        r = &mut stop => return r.map_err(Failed::from),
        s = signals.next() => {
            eprintln!("troupe {cmd}: {s} again: killing running attempts now");
        }
    }
    shared.kill_running();
    stop.await.map_err(Failed::from)
}

/// Returns once the node has stopped on its own (its supervisor gave up).
async fn wait_stopped(node: &NodeHandle) {
    while !node.is_stopped() {
        tokio::time::sleep(POLL).await;
    }
}

/// Whether `pid` is a live process (a zombie waiting for its parent counts as gone).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}
