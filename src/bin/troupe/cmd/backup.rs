//! `troupe gc` (retention of finished runs, through the node), `troupe backup DEST` and
//! `troupe restore SRC --data-dir DIR`
//! ([`troupe::storage::backup`]): an online backup through the node serving the data dir (a
//! RocksDB checkpoint taken while it runs), or of a stopped node's journal directly; a
//! restore into a data dir no node uses and that holds no journal yet.

use std::path::Path;
use std::process::ExitCode;

use troupe::client::{Client, ClientError};
use troupe::layout::DataDir;
use troupe::messages::control::{Request, Response};
use troupe::read::offline;
use troupe::storage::backup::{self, BackupInfo};

use crate::common::{runtime, unexpected, Failed};

fn print(info: &BackupInfo, json: bool, verb: &str) {
    if json {
        println!("{}", serde_json::to_string(info).expect("serialises"));
    } else {
        println!(
            "{verb} {}: journal up to seq {}, {} log files, {} bytes (node {}, taken {})",
            info.path.display(),
            info.seq,
            info.log_files,
            info.bytes,
            info.node_id,
            info.created
        );
    }
}

fn failed(e: backup::BackupError) -> Failed {
    Failed {
        code: e.exit_code() as u8,
        message: e.to_string(),
    }
}

/// `troupe backup DEST`.
pub(crate) fn backup(data_dir: &Path, dest: &Path, json: bool) -> ExitCode {
    let dest = match std::path::absolute(dest) {
        Ok(d) => d,
        Err(e) => {
            return Failed {
                code: 2,
                message: format!("{}: {e}", dest.display()),
            }
            .exit("backup")
        }
    };
    let rt = runtime();
    let through_node = rt.block_on(async {
        let mut client = match Client::connect(data_dir).await {
            Ok(c) => c,
            Err(ClientError::NoNode { .. }) => return Ok(None),
            Err(e) => return Err(Failed::from(e)),
        };
        match client
            .request(&Request::Backup { dest: dest.clone() })
            .await?
        {
            Response::Backup(info) => Ok(Some(*info)),
            Response::Error(e) => Err(Failed {
                code: e.exit_code() as u8,
                message: e.to_string(),
            }),
            other => Err(unexpected(other)),
        }
    });
    let info = match through_node {
        Ok(Some(info)) => info,
        Ok(None) => {
            let journal = match offline::open(data_dir) {
                Ok(j) => j,
                Err(e) => return Failed::from(e).exit("backup"),
            };
            match backup::backup(journal.journal(), &DataDir::new(data_dir), &dest) {
                Ok(info) => info,
                Err(e) => return failed(e).exit("backup"),
            }
        }
        Err(f) => return f.exit("backup"),
    };
    print(&info, json, "backed up into");
    ExitCode::SUCCESS
}

/// `troupe restore SRC`: into the data dir given by `--data-dir`.
pub(crate) fn restore(data_dir: &Path, src: &Path, json: bool) -> ExitCode {
    match backup::restore(src, &DataDir::new(data_dir)) {
        Ok(mut info) => {
            info.path = data_dir.to_path_buf();
            print(&info, json, "restored into");
            ExitCode::SUCCESS
        }
        Err(e) => failed(e).exit("restore"),
    }
}

/// `troupe gc`: through the node serving the data dir.
pub(crate) fn gc(
    data_dir: &Path,
    older_than: Option<std::time::Duration>,
    dry_run: bool,
    json: bool,
) -> ExitCode {
    let rt = runtime();
    let answer = rt.block_on(async {
        let mut client = Client::connect(data_dir).await.map_err(Failed::from)?;
        match client
            .request(&Request::Gc {
                older_than,
                dry_run,
            })
            .await?
        {
            Response::Gc(report) => Ok(*report),
            Response::Error(e) => Err(Failed {
                code: e.exit_code() as u8,
                message: e.to_string(),
            }),
            other => Err(unexpected(other)),
        }
    });
    let report = match answer {
        Ok(r) => r,
        Err(f) => return f.exit("gc"),
    };
    if json {
        let runs: Vec<String> = report.runs.iter().map(|r| r.to_string()).collect();
        println!(
            "{}",
            serde_json::json!({
                "dry_run": report.dry_run,
                "older_than_ms": report.older_than_ms,
                "runs": runs,
                "events": report.events,
                "event_bytes": report.event_bytes,
                "log_files": report.log_files,
                "log_bytes": report.log_bytes,
            })
        );
    } else {
        let verb = if report.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for run in &report.runs {
            println!("{run}");
        }
        println!(
            "{verb} {} finished run{} older than {}: {} events ({} bytes), {} log files ({} bytes)",
            report.runs.len(),
            if report.runs.len() == 1 { "" } else { "s" },
            humantime::format_duration(std::time::Duration::from_millis(report.older_than_ms)),
            report.events,
            report.event_bytes,
            report.log_files,
            report.log_bytes
        );
    }
    ExitCode::SUCCESS
}
