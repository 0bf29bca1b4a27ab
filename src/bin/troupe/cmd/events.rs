//! `troupe events [--run RUN] [--follow] [--json]`: journaled events, oldest first, one per
//! line; read through the node serving the data dir, else from the stopped node's journal
//! ([`troupe::read::offline`]).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use troupe::client::{Client, ClientError};
use troupe::messages::control::{Request, Response, Subscription};
use troupe::model::{EventRecord, RunId, Seq};
use troupe::read::offline;

use crate::common::{runtime, unexpected, Conn, Failed, Stream};
use crate::render::json::event_json;
use crate::render::text::event_line;

/// `troupe events`: through the node if one answers, else offline (`--follow` needs a node).
pub(crate) fn events(data_dir: &Path, run: Option<RunId>, json: bool, follow: bool) -> ExitCode {
    match through_node(data_dir, run, json, follow) {
        Some(code) => code,
        None => from_journal(data_dir, run, json),
    }
}

/// One event as a line of output: JSON or text.
fn line(seq: Seq, record: &EventRecord, json: bool) -> String {
    if json {
        event_json(seq, record).to_string()
    } else {
        event_line(seq, record)
    }
}

/// `troupe events` when a node serves the data dir (reads through it), with `--follow`.
/// Returns `None` when no node answers (the caller reads the journal offline).
fn through_node(data_dir: &Path, run: Option<RunId>, json: bool, follow: bool) -> Option<ExitCode> {
    let rt = runtime();
    let client = rt.block_on(Client::connect(data_dir));
    let mut conn = match client {
        Ok(c) => Conn::Remote(c),
        Err(ClientError::NoNode { .. }) if !follow => return None,
        Err(e) => return Some(Failed::from(e).exit("events")),
    };
    Some(
        match rt.block_on(async {
            if follow {
                return follow_events(&conn, data_dir, run, json).await;
            }
            let mut after: Seq = 0;
            loop {
                let batch = match conn
                    .request(Request::Events {
                        run,
                        after,
                        limit: 10_000,
                    })
                    .await?
                {
                    Response::Events(e) => e,
                    r => return Err(unexpected(r)),
                };
                let n = batch.len();
                let mut out = std::io::stdout().lock();
                for (seq, record) in &batch {
                    let line = line(*seq, record, json);
                    if writeln!(out, "{line}").is_err() {
                        return Ok(ExitCode::SUCCESS);
                    }
                    after = *seq;
                }
                let _ = out.flush();
                drop(out);
                if n == 0 {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }) {
            Ok(c) => c,
            Err(e) => e.exit("events"),
        },
    )
}

/// `troupe events --follow`: the node pushes the journal's events, then each as it becomes
/// durable, until interrupted (or the node drops a reader that does not keep up).
async fn follow_events(
    conn: &Conn,
    data_dir: &Path,
    run: Option<RunId>,
    json: bool,
) -> Result<ExitCode, Failed> {
    let mut stream = Stream::open(conn, data_dir, Subscription::Events { run, after: 0 }).await?;
    loop {
        let frame = stream.next().await?;
        let Response::Events(batch) = frame else {
            return Err(unexpected(frame));
        };
        let mut out = std::io::stdout().lock();
        for (seq, record) in &batch {
            if writeln!(out, "{}", line(*seq, record, json)).is_err() {
                return Ok(ExitCode::SUCCESS);
            }
        }
        if out.flush().is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// `troupe events` when no node serves the data dir: reads its journal directly.
fn from_journal(data_dir: &Path, run: Option<RunId>, json: bool) -> ExitCode {
    let journal = match offline::open(data_dir) {
        Ok(j) => j,
        Err(e) => return Failed::from(e).exit("events"),
    };
    let items = match journal.events(run) {
        Ok(items) => items,
        Err(e) => return Failed::from(e).exit("events"),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for item in items {
        let (seq, record) = match item {
            Ok(x) => x,
            Err(e) => {
                let _ = out.flush();
                return Failed::from(e).exit("events");
            }
        };
        let line = line(seq, &record, json);
        if writeln!(out, "{line}").is_err() {
            return ExitCode::SUCCESS;
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}
