//! The control socket under load: 200 clients at once (readers, `events --follow`,
//! submitters) against the real binary's node, beside a client that sends garbage and one
//! that opens and drops connections in a loop. Correctness only; the timings are
//! `troupe bench control` (docs/benchmarks.md).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use troupe::bench::load::{load, LoadPlan};
use troupe::model::RunId;

#[test]
fn two_hundred_clients_beside_garbage_and_a_connect_drop_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &["--workers", "8"]);
    let file = workflow(
        tmp.path(),
        "status.toml",
        "name = \"status\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n",
    );
    let status_run: RunId = submit(&dir, &file).parse().expect("a run id");

    let mut plan = LoadPlan::split(200, Duration::from_secs(4));
    plan.garbage = true;
    plan.churn = true;
    plan.status_run = Some(status_run);
    plan.submit_tasks = 1;
    // Enough runs to check, few enough for 8 workers to run within the test.
    plan.submit_pause = Duration::from_millis(100);
    plan.name_prefix = "load".into();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tally = rt.block_on(load(&dir, &plan)).expect("the clients ran");

    // Nobody was affected by the garbage or the churn: no client saw an error.
    assert!(
        tally.errors.is_empty(),
        "{} client errors, first: {:?}",
        tally.errors.len(),
        &tally.errors[..tally.errors.len().min(5)]
    );
    assert_eq!(tally.connects.count, 200, "every client connected");
    assert!(tally.reads.count >= 100, "reads: {:?}", tally.reads);
    assert!(
        tally.follow.count >= 50,
        "follow frames: {:?}",
        tally.follow
    );
    assert!(tally.followed_events > 0);
    assert_eq!(tally.attached, 0, "a submit under a new name attached");

    // The garbage client got an error answer and a close on every connection; the loop ran.
    let g = &tally.garbage;
    assert!(g.connections >= 4, "{g:?}");
    // A good hello may find the node full (the 200 and the loop's connections not yet
    // closed): refused, which is what the node says to anyone when it is full.
    assert_eq!(g.answered + g.busy, g.connections, "{g:#?}");
    assert!(g.answered * 2 >= g.connections, "{g:#?}");
    assert!(tally.churned > 10, "churned {}", tally.churned);

    // Every submit was acknowledged exactly once: distinct runs, each in the node's list
    // once, none of the load's runs without an acknowledgement; and all of them finish.
    let acked: HashSet<String> = tally.acked.iter().map(|r| r.to_string()).collect();
    assert_eq!(acked.len(), tally.acked.len(), "a run acknowledged twice");
    assert!(
        acked.len() >= 50,
        "only {} submits acknowledged",
        acked.len()
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let states = loop {
        let mut states: HashMap<String, String> = HashMap::new();
        let mut listed = 0;
        for r in list_json(&dir) {
            if r["name"].as_str().is_some_and(|n| n.starts_with("load-")) {
                listed += 1;
                states.insert(
                    r["id"].as_str().unwrap().to_owned(),
                    r["state"].as_str().unwrap().to_owned(),
                );
            }
        }
        assert_eq!(listed, states.len(), "a run listed twice");
        let ids: HashSet<String> = states.keys().cloned().collect();
        assert_eq!(
            ids, acked,
            "the runs of the load are not the acknowledged ones"
        );
        if states.values().all(|s| s != "running") {
            break states;
        }
        assert!(
            Instant::now() < deadline,
            "runs still running after 180 s: the node stopped dispatching"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        states.values().all(|s| s == "succeeded"),
        "{:?}",
        states
            .values()
            .filter(|s| *s != "succeeded")
            .take(5)
            .collect::<Vec<_>>()
    );
    run_cmd_ok(&dir, &["status"]);
}
