//! `troupe metrics [--since DUR] [--json]`: throughput, latency, error rate and retries over a
//! past window, from the durable per-minute rollups; through the node serving the data dir,
//! else from the stopped node's journal ([`troupe::read::offline`]).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use troupe::client::{Client, ClientError};
use troupe::messages::control::{Request, Response};
use troupe::model::Timestamp;
use troupe::read::offline;

use crate::common::{block, unexpected, Conn, Failed, EXIT_INVALID};
use crate::render::json::metrics_json;
use crate::render::text::print_metrics;

/// `troupe metrics [--since DUR] [--json]`: figures of the window from the durable rollups,
/// through the node if one serves DATA_DIR, else from the journal directly.
pub(crate) fn metrics(data_dir: &Path, since: Duration, json: bool) -> ExitCode {
    if since.is_zero() {
        return Failed {
            code: EXIT_INVALID,
            message: "--since must be longer than 0s".into(),
        }
        .exit("metrics");
    }
    let age = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    if since > age {
        return Failed {
            code: EXIT_INVALID,
            message: format!(
                "--since {} reaches back before 1970-01-01T00:00:00Z, where timestamps start; \
                 give a shorter window",
                humantime::format_duration(since)
            ),
        }
        .exit("metrics");
    }
    block("metrics", async move {
        let report = match Client::connect(data_dir).await {
            Ok(c) => match Conn::Remote(c).request(Request::Metrics { since }).await? {
                Response::Metrics(r) => *r,
                r => return Err(unexpected(r)),
            },
            Err(ClientError::NoNode { .. }) => {
                let journal = offline::open(data_dir)?;
                let now = Timestamp::from_system_time(std::time::SystemTime::now());
                journal.metrics(now, since)?
            }
            Err(e) => return Err(e.into()),
        };
        let mut out = std::io::stdout().lock();
        if json {
            let _ = writeln!(out, "{}", metrics_json(&report));
        } else {
            let _ = print_metrics(&report, &mut out);
        }
        Ok(ExitCode::SUCCESS)
    })
}
