//! A full disk, for real: the data dir lives on a 48 MiB tmpfs that a filler file fills while a
//! run is in flight. The failed append halts dispatch (the node stays up, `health` says
//! unhealthy with the reason, `status` says what happened), an attempt's log that hits
//! `ENOSPC` is cut without failing the attempt, a new submission is refused with the reason,
//! and after the filler is removed `troupe unhalt` continues the run to success. Nothing
//! acknowledged is lost and `journal verify` passes afterwards.
//!
//! Mounting needs privileges (root or a user namespace); where it is not allowed the test
//! says so and passes without checking anything.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A tmpfs mounted at a temporary folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mnt)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here ({}); the disk-full test needs root",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs { dir, mnt })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        let _ = &self.dir;
    }
}

/// Writes into `path` until the file system is full: 256 KiB chunks, then 4 KiB, then
/// single bytes, so no whole page is left free.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for size in [256 << 10, 4 << 10, 1] {
        let chunk = vec![0x5au8; size];
        while f.write_all(&chunk).is_ok() {}
    }
    let _ = f.sync_all();
}

fn health(dir: &Path) -> (i32, serde_json::Value) {
    let o = run(dir, &["health", "--json"]);
    let v = serde_json::from_str(&stdout(&o)).unwrap_or(serde_json::Value::Null);
    (o.status.code().unwrap_or(-1), v)
}

#[test]
fn a_full_disk_halts_dispatch_and_unhalt_continues_after_space_is_freed() {
    let Some(fs) = Tmpfs::mount("48m") else {
        return;
    };

    let outside = tempfile::tempdir().unwrap();
    let go = outside.path().join("GO");
    let _release = GoOnDrop(go.clone());
    let data = fs.mnt.join("data");
    let wf = workflow(
        outside.path(),
        "wf.toml",
        &format!(
            r#"
name = "disk-full"
[[task]]
id = "first"
command = ["true"]
[[task]]
id = "waits"
# Waits for the GO file (outside the full disk), then writes 2 MB of output into its log.
shell = "while [ ! -e {go} ]; do sleep 0.02; done; head -c 2000000 /dev/zero | tr '\\0' x; echo"
depends_on = ["first"]
retry = {{ max_attempts = 3, initial_interval = "100ms" }}
[[task]]
id = "after"
command = ["true"]
depends_on = ["waits"]
{fanout}"#,
            go = go.display(),
            // Enough events after the disk is full that they cannot fit in the slack of the
            // write-ahead log's last page.
            fanout = (0..60)
                .map(|i| format!(
                    "[[task]]\nid = \"more-{i}\"\ncommand = [\"true\"]\ndepends_on = [\"waits\"]\n"
                ))
                .collect::<String>()
        ),
    );
    let node = NodeProc::start(&data, &[]);
    let run_id = submit(&data, &wf);
    wait_until(&data, &run_id, 60, |v| task_state(v, "waits") == "running");

    // Fill the disk, then let the task end: its log and its result hit ENOSPC. (The file
    // system is smaller than the ~70 MiB RocksDB preallocates for its write-ahead log, so
    // that preallocation failed and the log grows as written: the next append fails.)
    fill(&fs.mnt.join("filler"));
    std::fs::write(&go, "").unwrap();

    // The scheduler's append fails: dispatch halts, the node stays up and says why.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (code, report) = loop {
        let (code, report) = health(&data);
        if report["checks"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["name"] == "dispatch" && c["status"] == "unhealthy")
        }) {
            break (code, report);
        }
        assert!(Instant::now() < deadline, "dispatch never halted: {report}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, 2, "unhealthy is exit 2: {report}");
    let status = run(&data, &["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let text = stdout(&status);
    assert!(text.contains("dispatch halted"), "{text}");
    assert!(
        text.contains("No space left on device") || text.contains("NoSpace"),
        "{text}"
    );
    let node_json: serde_json::Value =
        serde_json::from_str(&stdout(&run_cmd_ok(&data, &["status", "--json"]))).unwrap();
    assert_eq!(node_json["state"], "halted", "{node_json}");
    assert!(node_json["fault"].is_string(), "{node_json}");

    // A new submission is refused with the reason; nothing of it is journaled.
    let refused = run(&data, &["run", "--detach", wf.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("journal refused"),
        "{}",
        stderr(&refused)
    );
    // unhalt before space is freed is refused: the journal still refuses writes.
    let early = run(&data, &["unhalt"]);
    assert!(!early.status.success(), "{}", stdout(&early));

    // Free space: remove the filler and grow the file system (RocksDB resumes writes only
    // once a write buffer, 64 MiB, is free); unhalt succeeds once its recovery let writes
    // through again.
    std::fs::remove_file(fs.mnt.join("filler")).unwrap();
    let grown = Command::new("mount")
        .args(["-o", "remount,size=200m"])
        .arg(&fs.mnt)
        .status()
        .unwrap();
    assert!(grown.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = run(&data, &["unhalt"]);
        if o.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "unhalt still refused after space was freed: {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The scheduler restarts with the actors after it (rest_for_one), the control socket
    // included: wait until it answers again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run(&data, &["status"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "the node did not answer after unhalt"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let v = wait_finished(&data, &run_id, 120);
    assert_eq!(v["state"], "succeeded", "{v}");
    let (code, report) = health(&data);
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "dispatch" && c["status"] == "healthy"),
        "{code} {report}"
    );
    // The attempt whose log hit ENOSPC did not fail because of it.
    let evs = events(&data);
    assert!(of(&evs, "task_failed", "waits").is_empty(), "{evs:?}");
    // Exactly one run (the refused submission left nothing), and the journal is sound.
    let list: Vec<serde_json::Value> = list_json(&data);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(node.terminate(), Some(0));
    let verify = run(&data, &["journal", "verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
}
