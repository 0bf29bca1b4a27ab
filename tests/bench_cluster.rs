//! `troupe bench cluster` with tiny sizes: every round reported, the lost-worker figures
//! consistent, and nothing left behind (worker processes, scratch dir).
#![cfg(feature = "cluster")]

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// Processes whose command line mentions `path` (the bench's worker nodes name their data
/// dirs under it).
fn processes_under(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) {
                found.push(cmd);
            }
        }
    }
    found
}

#[test]
fn bench_cluster_reports_every_round_and_leaves_no_worker_or_scratch_dir_behind() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let o = run(
        &dir,
        &[
            "bench",
            "cluster",
            "--json",
            "--tasks",
            "20",
            "--slots",
            "2",
            "--samples",
            "3",
            "--rounds",
            "2",
            "--heartbeat",
            "300ms",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(r["throughput_rounds"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["latency_rounds"].as_array().unwrap().len(), 2, "{r}");
    let lost = r["lost_rounds"].as_array().unwrap();
    assert_eq!(lost.len(), 2, "{r}");
    for l in lost {
        // The retry is placed after the node is declared lost, which is after the kill.
        let (node_lost, placed) = (
            l["node_lost_ms"].as_i64().unwrap(),
            l["retry_placed_ms"].as_i64().unwrap(),
        );
        assert!(0 < node_lost && node_lost <= placed, "{r}");
    }
    assert_eq!(r["lost_bound_ms"], 1100, "{r}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().starts_with("bench-cluster-")),
        "{left:?}"
    );
    assert_eq!(processes_under(root.path()), Vec::<String>::new());
}
