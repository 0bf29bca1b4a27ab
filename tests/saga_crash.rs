//! Crash safety of sagas by crashing: SIGKILL the node at ≥20 random moments while a saga
//! compensates, restart, and check it ends `compensated` with every compensation succeeded
//! exactly once in the journal and none started again after it succeeded.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};

const STEPS: usize = 100;

/// A chain of `STEPS` quick steps and a last one that fails; every compensation takes ~100 ms
/// and appends its step to `undo`. Unlimited compensation retries, so interruptions never
/// exhaust a budget.
fn saga(undo: &std::path::Path) -> String {
    let mut s = String::from(
        "name = \"crashy-saga\"\n[defaults]\nretry = { max_attempts = 0, initial_interval = \"10ms\" }\n\
         compensate_retry = { max_attempts = 0, initial_interval = \"10ms\" }\n",
    );
    for i in 0..STEPS {
        s.push_str(&format!(
            "[[task]]\nid = \"s{i}\"\nshell = \"true\"\ncompensate_shell = \"sleep 0.1; echo s{i} >> {}\"\n",
            undo.display()
        ));
        if i > 0 {
            s.push_str(&format!("depends_on = [\"s{}\"]\n", i - 1));
        }
    }
    s.push_str(&format!(
        "[[task]]\nid = \"boom\"\nshell = \"exit 1\"\nretry = {{ max_attempts = 1 }}\ndepends_on = [\"s{}\"]\n",
        STEPS - 1
    ));
    s
}

fn compensated(dir: &std::path::Path, run: &str) -> (String, usize) {
    let v = run_status(dir, run);
    let n = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "compensated")
        .count();
    (v["state"].as_str().unwrap().to_owned(), n)
}

#[test]
fn sigkill_while_compensating_loses_nothing_and_repeats_no_success() {
    let seed: u64 = std::env::var("TROUPE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (TROUPE_TEST_SEED reproduces the kill schedule)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let undo = tmp.path().join("undo.log");
    let wf = workflow(tmp.path(), "saga.toml", &saga(&undo));
    let args = ["--workers", "2", "--snapshot-every", "20"];
    let mut node = NodeProc::start(&dir, &args);
    let id = submit(&dir, &wf);
    // One kill during the forward steps (interrupted steps are retried: unlimited budget).
    std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
    node.kill9();
    node = NodeProc::start(&dir, &args);
    // Then into the compensation phase.
    wait_until(&dir, &id, 60, |v| v["state"] != "running");
    let mut kills = 0;
    let mut last = 0;
    while kills < 20 {
        let wait_for = last + rng.random_range(0..=1);
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut state, mut done) = compensated(&dir, &id);
        while done < wait_for && state == "compensating" {
            assert!(Instant::now() < deadline, "no progress after kill {kills}");
            std::thread::sleep(Duration::from_millis(5));
            (state, done) = compensated(&dir, &id);
        }
        if state != "compensating" {
            break;
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
        node.kill9();
        kills += 1;
        last = done;
        node = NodeProc::start(&dir, &args);
    }
    let v = wait_finished(&dir, &id, 120);
    eprintln!("{kills} kills during compensation, one before");
    assert!(
        kills >= 20,
        "the saga compensated before 20 kills ({kills})"
    );
    assert_eq!(v["state"], "compensated", "{v}");

    let events = events(&dir);
    let mut succeeded: HashMap<String, u64> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| e["type"] == "compensation_succeeded")
    {
        let task = e["task"].as_str().unwrap().to_owned();
        assert!(
            succeeded
                .insert(task.clone(), e["seq"].as_u64().unwrap())
                .is_none(),
            "compensation of {task} succeeded twice"
        );
    }
    assert_eq!(succeeded.len(), STEPS, "every step compensated");
    for e in events
        .iter()
        .filter(|e| e["type"] == "compensation_started")
    {
        let task = e["task"].as_str().unwrap();
        assert!(
            e["seq"].as_u64().unwrap() < succeeded[task],
            "compensation of {task} started again after it succeeded"
        );
    }
    // Newest completion first, across all restarts.
    let mut order: Vec<(u64, String)> = succeeded.into_iter().map(|(t, s)| (s, t)).collect();
    order.sort();
    let expected: Vec<String> = (0..STEPS).rev().map(|i| format!("s{i}")).collect();
    assert_eq!(
        order.into_iter().map(|(_, t)| t).collect::<Vec<_>>(),
        expected
    );
    // Every side effect happened (at least once: a kill between the process's exit and its
    // journaled end repeats it, which is why compensations must be idempotent).
    let undo = std::fs::read_to_string(&undo).unwrap();
    for i in 0..STEPS {
        assert!(undo.lines().any(|l| l == format!("s{i}")), "s{i} undone");
    }
    let interrupted = events
        .iter()
        .filter(|e| e["type"] == "compensation_failed")
        .count();
    eprintln!("{interrupted} compensation attempts closed as interrupted");
}
