//! Crash safety of the node by crashing it: SIGKILL at random moments of a run, restart,
//! check the run finishes with every task succeeded exactly once; and panics injected into
//! the scheduler and a worker (test hook) are absorbed by their supervisors.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};

/// 8 chains of 25 short tasks (200); unlimited retries so interruptions never exhaust a budget.
fn chains() -> String {
    let mut s = String::from(
        "name = \"chains\"\n[defaults]\nretry = { max_attempts = 0, initial_interval = \"10ms\" }\n",
    );
    for c in 0..8 {
        for i in 0..25 {
            s.push_str(&format!(
                "[[task]]\nid = \"c{c}-{i}\"\nshell = \"sleep 0.03\"\n"
            ));
            if i > 0 {
                s.push_str(&format!("depends_on = [\"c{c}-{}\"]\n", i - 1));
            }
        }
    }
    s
}

fn succeeded(dir: &std::path::Path, run: &str) -> u64 {
    run_status(dir, run)["tasks_succeeded"].as_u64().unwrap()
}

fn check_exactly_once(dir: &std::path::Path, tasks: usize) {
    let events = events(dir);
    let mut succeeded: HashMap<String, u64> = HashMap::new();
    for e in events.iter().filter(|e| e["type"] == "task_succeeded") {
        let task = e["task"].as_str().unwrap().to_owned();
        let seq = e["seq"].as_u64().unwrap();
        assert!(
            succeeded.insert(task.clone(), seq).is_none(),
            "task {task} succeeded twice"
        );
    }
    assert_eq!(succeeded.len(), tasks);
    for e in events.iter().filter(|e| e["type"] == "attempt_started") {
        let task = e["task"].as_str().unwrap();
        assert!(
            e["seq"].as_u64().unwrap() < succeeded[task],
            "{task} started again after it succeeded"
        );
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let seed: u64 = std::env::var("TROUPE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (TROUPE_TEST_SEED reproduces the kill schedule)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "chains.toml", &chains());
    // Frequent snapshots, so restarts also boot from a snapshot plus a tail.
    let args = ["--workers", "4", "--snapshot-every", "50"];
    let mut node = NodeProc::start(&dir, &args);
    let id = submit(&dir, &wf);
    let mut kills = 0;
    let mut last = 0;
    while kills < 20 {
        // The moment: after 0–1 more tasks succeed, plus 0–40 ms.
        let wait_for = last + rng.random_range(0..=1);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut now_done = succeeded(&dir, &id);
        while now_done < wait_for && now_done < 200 {
            assert!(Instant::now() < deadline, "no progress after kill {kills}");
            std::thread::sleep(Duration::from_millis(5));
            now_done = succeeded(&dir, &id);
        }
        if now_done >= 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
        node.kill9();
        kills += 1;
        last = now_done;
        node = NodeProc::start(&dir, &args);
    }
    assert!(kills >= 20, "the run finished after only {kills} kills");
    let v = wait_finished(&dir, &id, 120);
    assert_eq!(v["state"], "succeeded", "{v}");
    check_exactly_once(&dir, 200);
    let interrupted = events(&dir)
        .iter()
        .filter(|e| e["type"] == "attempt_failed")
        .count();
    eprintln!("{kills} kills, {interrupted} attempts closed as interrupted");
    node.kill9();
    let journal = troupe::storage::Journal::open(&dir.join("journal")).unwrap();
    let (seq, _) = journal
        .latest_snapshot()
        .unwrap()
        .expect("snapshots were taken");
    eprintln!(
        "latest snapshot at seq {seq} of {}",
        journal.last_seq().unwrap()
    );
}

#[test]
fn panics_in_scheduler_and_worker_are_restarted_and_the_run_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "chains.toml", &chains());
    let _node = NodeProc::start(&dir, &["--workers", "4"]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 60, |v| {
        v["tasks_succeeded"].as_u64().unwrap() >= 10
    });
    let r = inject_panic(&dir, "worker");
    assert_eq!(r, troupe::messages::control::Response::Done);
    wait_until(&dir, &id, 60, |v| {
        v["tasks_succeeded"].as_u64().unwrap() >= 40
    });
    let r = inject_panic(&dir, "scheduler");
    assert!(
        matches!(r, troupe::messages::control::Response::Error(_)),
        "{r:?}"
    );
    // The restarted scheduler (and control) answer again, and the run completes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run(&dir, &["status"]).status.success() {
        assert!(Instant::now() < deadline, "node did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let v = wait_finished(&dir, &id, 120);
    assert_eq!(v["state"], "succeeded", "{v}");
    check_exactly_once(&dir, 200);
}

/// A cancel is journaled before the attempt's process is terminated ("persist, then act"); a
/// crash in between used to leave the process running for good, since a cancelled task is
/// not among the attempts a restart closes. The node now ends such processes at boot from
/// their pid files. The test hook `TROUPE_TEST_SKIP_TERMINATE` stands for the crash window.
#[test]
fn a_cancelled_attempt_whose_termination_a_crash_cut_off_is_ended_at_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let pid_file = tmp.path().join("pid");
    let wf = workflow(
        tmp.path(),
        "sleep.toml",
        &format!(
            "name = \"sleepy\"\n[[task]]\nid = \"s\"\nshell = 'echo $$ > {}; exec sleep 300'\n",
            pid_file.display()
        ),
    );
    let child = troupe(&dir)
        .args(["node", "start"])
        .env("TROUPE_TEST_HOOKS", "1")
        .env("TROUPE_TEST_SKIP_TERMINATE", "1")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut node = NodeProc {
        child,
        dir: dir.clone(),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !run(&dir, &["status"]).status.success() {
        assert!(std::time::Instant::now() < deadline, "node did not answer");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run_id = submit(&dir, &wf);
    wait_until(&dir, &run_id, 30, |v| {
        task_state(v, "s") == "running"
            && std::fs::read_to_string(&pid_file).is_ok_and(|t| t.trim().parse::<i32>().is_ok())
    });
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    run_cmd_ok(&dir, &["cancel", &run_id]);
    wait_finished(&dir, &run_id, 30);
    assert!(alive(pid), "the hook should have left the process running");
    node.kill9();
    let _node = NodeProc::start(&dir, &[]);
    wait_gone(pid);
}
