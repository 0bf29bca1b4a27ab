//! `troupe worker start`, `troupe nodes`, `troupe drain NODE`: remote worker nodes
//! (docs/cluster.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;
use troupe::messages::control::{Command as AdminCommand, NodeInfo, Request, Response};

use crate::common::{block, connect, unexpected, Failed, EXIT_INVALID, POLL};
#[cfg(feature = "cluster")]
use crate::common::{Signals, EXIT_INTERNAL};
use crate::render::json::print_json;

/// What `troupe worker start` was given (unused without the `cluster` feature).
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) struct WorkerArgs {
    /// `--join ADDR:PORT`.
    pub(crate) join: String,
    /// `--cookie-file`.
    pub(crate) cookie_file: PathBuf,
    /// `--token-file`.
    pub(crate) token_file: PathBuf,
    /// `--slots`.
    pub(crate) slots: u32,
    /// `--labels a,b`.
    pub(crate) labels: Vec<String>,
    /// `--insecure`.
    pub(crate) insecure: bool,
    /// `--tls-cert`, `--tls-key`, `--tls-ca`.
    pub(crate) tls: Option<troupe::config::TlsFiles>,
    /// `--tls-server-name`.
    pub(crate) tls_server_name: Option<String>,
    /// `--join-timeout`.
    pub(crate) join_timeout: Duration,
    /// `--secrets-file`, repeatable.
    pub(crate) secrets_files: Vec<PathBuf>,
}

#[cfg(feature = "cluster")]
fn invalid(message: String) -> Failed {
    Failed {
        code: EXIT_INVALID,
        message,
    }
}

/// The host part of `HOST:PORT` (brackets of an IPv6 literal removed).
#[cfg(feature = "cluster")]
fn host_of(join: &str) -> Option<&str> {
    let (host, port) = join.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(host)
}

#[cfg(feature = "cluster")]
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `troupe worker start` in a build without the `cluster` feature: refused (exit 2).
#[cfg(not(feature = "cluster"))]
pub(crate) fn worker_start(_data_dir: &Path, _args: WorkerArgs) -> ExitCode {
    Failed {
        code: EXIT_INVALID,
        message: "this troupe was built without the `cluster` feature".into(),
    }
    .exit("worker start")
}

/// `troupe worker start --join ADDR:PORT ...`: runs a worker node until SIGTERM/SIGINT
/// (exit 0), or until the coordinator refuses it or cannot be reached (exit 3; a bad flag
/// or file: exit 2).
#[cfg(feature = "cluster")]
pub(crate) fn worker_start(data_dir: &Path, args: WorkerArgs) -> ExitCode {
    block("worker start", async move {
        let host = host_of(&args.join).ok_or_else(|| {
            invalid(format!(
                "--join `{}` is not HOST:PORT (e.g. 10.0.0.1:9480)",
                args.join
            ))
        })?;
        if args.slots == 0 {
            return Err(invalid("--slots must be at least 1".into()));
        }
        if args.tls.is_none() && !is_loopback(host) && !args.insecure {
            return Err(invalid(format!(
                "--join {}: not a loopback address and no TLS: give --tls-cert, --tls-key and \
                 --tls-ca, or --insecure to send the cluster's traffic in the clear",
                args.join
            )));
        }
        let cookie =
            troupe::config::read_secret(&args.cookie_file, "--cookie-file").map_err(invalid)?;
        let token = troupe::config::read_secret(&args.token_file, "--token-file")
            .map_err(invalid)?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        for l in &args.labels {
            if l.is_empty() || l.contains(char::is_whitespace) {
                return Err(invalid(format!(
                    "--labels: `{l}` is not a label (no spaces, not empty)"
                )));
            }
        }
        let secrets = troupe::config::Secrets::load(&args.secrets_files).map_err(invalid)?;
        let tls = args.tls.map(|files| {
            let name = args.tls_server_name.unwrap_or_else(|| host.to_owned());
            (files, name)
        });
        let opts = troupe::cluster::worker::WorkerOptions {
            join: args.join.clone(),
            cookie,
            token,
            slots: args.slots,
            labels: args.labels,
            data_dir: std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned()),
            tls,
            executor: std::sync::Arc::new(troupe::executor::ProcessExecutor),
            join_timeout: args.join_timeout,
            secrets: std::sync::Arc::new(secrets),
        };
        let id = troupe::cluster::worker::node_id(&opts.data_dir).map_err(invalid)?;
        eprintln!(
            "troupe worker {id} joining {} with {} slots (data dir {})",
            args.join,
            opts.slots,
            data_dir.display()
        );
        let mut signals = Signals::new();
        let stop = async move {
            let why = signals.next().await;
            eprintln!("troupe worker: {why}: stopping attempts, reporting them, leaving");
        };
        troupe::cluster::worker::run(opts, stop)
            .await
            .map_err(|e| Failed {
                code: EXIT_INTERNAL,
                message: e.to_string(),
            })?;
        eprintln!("troupe worker: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn node_json(n: &NodeInfo) -> serde_json::Value {
    json!({
        "id": n.id,
        "addr": n.addr,
        "slots": n.slots,
        "running": n.running,
        "labels": n.labels,
        "last_heartbeat": n.last_heartbeat.map(|t| t.to_string()),
        "state": n.state,
        "epoch": n.epoch,
    })
}

async fn nodes_now(data_dir: &Path) -> Result<Vec<NodeInfo>, Failed> {
    let mut conn = connect(data_dir).await?;
    match conn.request(Request::Nodes).await? {
        Response::Nodes(v) => Ok(v),
        r => Err(unexpected(r)),
    }
}

/// `troupe nodes [--json]`.
pub(crate) fn nodes(data_dir: &Path, json: bool) -> ExitCode {
    block("nodes", async move {
        let list = nodes_now(data_dir).await?;
        if json {
            print_json(&json!(list.iter().map(node_json).collect::<Vec<_>>()));
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{:<28} {:<22} {:>5} {:>7} {:<10} {:<26} LABELS",
            "NODE", "ADDRESS", "SLOTS", "RUNNING", "STATE", "LAST HEARTBEAT"
        );
        for n in &list {
            println!(
                "{:<28} {:<22} {:>5} {:>7} {:<10} {:<26} {}",
                n.id,
                if n.addr.is_empty() { "-" } else { &n.addr },
                n.slots,
                n.running,
                n.state,
                n.last_heartbeat.map_or("-".into(), |t| t.to_string()),
                n.labels.join(",")
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `troupe drain NODE`: no new attempts go to NODE; returns once none runs there.
pub(crate) fn drain(data_dir: &Path, node: String) -> ExitCode {
    block("drain", async move {
        let mut conn = connect(data_dir).await?;
        match conn
            .request(Request::Command(AdminCommand::Drain { node: node.clone() }))
            .await?
        {
            Response::Done => {}
            r => return Err(unexpected(r)),
        }
        eprintln!("troupe drain: {node} takes no new attempts; waiting for its running ones");
        loop {
            let list = nodes_now(data_dir).await?;
            match list.iter().find(|n| n.id == node) {
                Some(n) if n.running > 0 && n.state != "lost" => {}
                _ => break,
            }
            tokio::time::sleep(POLL).await;
        }
        println!("drained {node}");
        Ok(ExitCode::SUCCESS)
    })
}
