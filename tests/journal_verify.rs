//! `troupe journal verify` on a real journal written by the binary, then damaged with RocksDB
//! directly: a flipped byte in a record, a missing stream index entry, a truncated snapshot.
//! Each is reported by sequence number with exit 1; the undamaged journal passes with exit 0.

use std::path::Path;
use std::process::Command;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};
use serde_json::Value;
use troupe::storage::journal::{CF_EVENTS, CF_SNAPSHOTS, CF_STREAMS, COLUMN_FAMILIES};

const WORKFLOW: &str = r#"
name = "verify"
[[task]]
id = "a"
command = ["true"]
[[task]]
id = "b"
command = ["true"]
depends_on = ["a"]
[[task]]
id = "c"
shell = "echo done"
depends_on = ["b"]
"#;

fn troupe(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("troupe runs")
}

/// A data dir whose journal holds one finished run and snapshots every 4 events.
fn journal_with_a_run() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf.toml");
    std::fs::write(&wf, WORKFLOW).unwrap();
    let data = dir.path().join("data");
    let out = troupe(
        &data,
        &[
            "run",
            wf.to_str().unwrap(),
            "--snapshot-every",
            "4",
            "--durability",
            "buffered",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn verify(data: &Path) -> (i32, Value) {
    let out = troupe(data, &["journal", "verify", "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), json)
}

/// Opens the journal's RocksDB directly, as damage from outside troupe would.
fn raw_db(data: &Path) -> DB {
    let cfs = COLUMN_FAMILIES
        .into_iter()
        .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
    DB::open_cf_descriptors(&Options::default(), data.join("journal"), cfs).unwrap()
}

fn problems_of_kind<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == kind)
        .collect()
}

#[test]
fn a_sound_journal_passes_and_each_kind_of_damage_is_named_by_sequence_number() {
    let dir = journal_with_a_run();
    let data = dir.path().join("data");
    let (code, report) = verify(&data);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ok"], true);
    let last = report["last_seq"].as_u64().unwrap();
    assert!(last >= 7, "{report}");
    assert!(report["snapshots"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["stream_entries"], report["stream_entries_expected"]);

    // A flipped byte in the payload of event 3.
    {
        let db = raw_db(&data);
        let cf = db.cf_handle(CF_EVENTS).unwrap();
        let mut value = db.get_cf(cf, 3u64.to_be_bytes()).unwrap().unwrap();
        let last_byte = value.len() - 1;
        value[last_byte] ^= 0x40;
        db.put_cf(cf, 3u64.to_be_bytes(), value).unwrap();
    }
    let (code, report) = verify(&data);
    assert_eq!(code, 1, "{report}");
    let bad = problems_of_kind(&report, "event_record");
    assert_eq!(bad.len(), 1, "{report}");
    assert_eq!(bad[0]["seq"], 3);
    assert!(
        bad[0]["message"].as_str().unwrap().contains("checksum"),
        "{report}"
    );
    // The text form names it too.
    let out = troupe(&data, &["journal", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("seq 3:"), "{text}");
}

#[test]
fn a_missing_stream_entry_is_named() {
    let dir = journal_with_a_run();
    let data = dir.path().join("data");
    // Remove the run stream entry of event 1 (run_submitted).
    {
        let db = raw_db(&data);
        let cf = db.cf_handle(CF_STREAMS).unwrap();
        let mut it = db.raw_iterator_cf(cf);
        it.seek(b"R");
        let key = it.key().unwrap().to_vec();
        assert_eq!(key[0], b'R');
        let seq = u64::from_be_bytes(key[17..].try_into().unwrap());
        drop(it);
        db.delete_cf(cf, &key).unwrap();
        drop(db);
        let (code, report) = verify(&data);
        assert_eq!(code, 1, "{report}");
        let missing = problems_of_kind(&report, "stream_missing");
        assert_eq!(missing.len(), 1, "{report}");
        assert_eq!(missing[0]["seq"], seq);
    }
}

#[test]
fn a_truncated_snapshot_is_named() {
    let dir = journal_with_a_run();
    let data = dir.path().join("data");
    let seq = {
        let db = raw_db(&data);
        let cf = db.cf_handle(CF_SNAPSHOTS).unwrap();
        let mut it = db.raw_iterator_cf(cf);
        it.seek_to_last();
        let (key, value) = it.item().map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap();
        drop(it);
        db.put_cf(cf, &key, &value[..value.len() / 2]).unwrap();
        u64::from_be_bytes(key.try_into().unwrap())
    };
    let (code, report) = verify(&data);
    assert_eq!(code, 1, "{report}");
    let bad = problems_of_kind(&report, "snapshot");
    assert_eq!(bad.len(), 1, "{report}");
    assert_eq!(bad[0]["seq"], seq);
}

#[test]
fn verify_refuses_a_data_dir_without_a_journal_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = troupe(dir.path(), &["journal", "verify"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no journal"));
    assert!(!dir.path().join("journal").exists());
}
