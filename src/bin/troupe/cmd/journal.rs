//! `troupe journal verify [--json]`: every record's CRC and decoding, the stream index
//! against the events, every snapshot, and a replay, on a stopped node's data dir or a
//! backup ([`troupe::storage::journal::VerifyReport`]). Exit 0 clean, 1 with problems.

use std::path::Path;
use std::process::ExitCode;

use troupe::read::offline;

use crate::common::{Failed, EXIT_RUN_FAILED};

/// `troupe journal verify`.
pub(crate) fn verify(data_dir: &Path, json: bool) -> ExitCode {
    let report = match offline::open(data_dir).and_then(|j| j.verify()) {
        Ok(r) => r,
        Err(e) => return Failed::from(e).exit("journal verify"),
    };
    if json {
        let mut v = serde_json::to_value(&report).expect("report serialises");
        v["ok"] = report.ok().into();
        println!("{v}");
    } else {
        for p in &report.problems {
            match p.seq {
                Some(seq) => println!("seq {seq}: {} ({})", p.message, p.kind),
                None => println!("{} ({})", p.message, p.kind),
            }
        }
        println!(
            "{}: {} events (seq {}..={}), {} stream index entries, {} snapshots; {}",
            data_dir.join("journal").display(),
            report.events,
            report.first_seq,
            report.last_seq,
            report.stream_entries,
            report.snapshots,
            match report.problems.len() {
                0 => "no problems".to_string(),
                1 => "1 problem".to_string(),
                n => format!("{n} problems"),
            }
        );
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUN_FAILED)
    }
}
