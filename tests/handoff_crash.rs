//! Crash safety of dynamic fan-out by crashing: SIGKILL the node again and again while a
//! 500-instance fan-out runs; every instance succeeds exactly once, the expansion is
//! journaled once, and the reduce step sees all 500 outputs in index order.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};

const N: usize = 500;

fn fan_out() -> String {
    let items: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    format!(
        r#"name = "fan-out-crash"
[defaults]
retry = {{ max_attempts = 0, initial_interval = "10ms" }}
[[task]]
id = "list"
shell = "sleep 0.05; echo '[{}]' > \"$TROUPE_OUTPUT\""
[[task]]
id = "work"
depends_on = ["list"]
for_each = "{{{{ tasks.list.output }}}}"
command = ["sh", "-c", "sleep 0.02; printf '{{\"i\": %s}}' \"$1\" > \"$TROUPE_OUTPUT\"", "sh", "{{{{ item }}}}"]
[[task]]
id = "reduce"
depends_on = ["work"]
shell = "cp \"$TROUPE_INPUTS\" \"$TROUPE_OUTPUT\""
"#,
        items.join(", ")
    )
}

fn succeeded(dir: &std::path::Path, run: &str) -> u64 {
    run_status(dir, run)["tasks_succeeded"].as_u64().unwrap()
}

#[test]
fn sigkill_during_a_500_instance_fan_out_loses_and_repeats_nothing() {
    let seed: u64 = std::env::var("TROUPE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (TROUPE_TEST_SEED reproduces the kill schedule)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "fan.toml", &fan_out());
    let args = ["--workers", "8", "--snapshot-every", "200"];
    let mut node = NodeProc::start(&dir, &args);
    let id = submit(&dir, &wf);
    let total = (N + 3) as u64;
    let mut kills = 0;
    // The first kill lands while `list` runs or just after it (before or around the
    // expansion); later ones at random points of the fan-out.
    while kills < 12 {
        let deadline = Instant::now() + Duration::from_secs(60);
        let before = succeeded(&dir, &id);
        if before >= total {
            break;
        }
        let step = if kills == 0 {
            0
        } else {
            rng.random_range(5..40)
        };
        while succeeded(&dir, &id) < (before + step).min(total) {
            assert!(Instant::now() < deadline, "no progress after kill {kills}");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..60)));
        node.kill9();
        kills += 1;
        node = NodeProc::start(&dir, &args);
    }
    let v = wait_finished(&dir, &id, 180);
    assert_eq!(v["state"], "succeeded", "{v}");
    eprintln!("{kills} kills");
    let events = events(&dir);
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "task_expanded")
            .count(),
        1,
        "one expansion"
    );
    let mut once: HashMap<String, u64> = HashMap::new();
    for e in events.iter().filter(|e| e["type"] == "task_succeeded") {
        let task = e["task"].as_str().unwrap().to_owned();
        assert!(
            once.insert(task.clone(), 0).is_none(),
            "{task} succeeded twice"
        );
    }
    // The mapped task itself succeeds with its last instance, without an event of its own.
    assert_eq!(once.len(), N + 2, "list, reduce and {N} instances");
    assert!(!once.contains_key("work"));
    for i in 0..N {
        assert!(
            once.contains_key(&format!("work[{i}]")),
            "work[{i}] never succeeded"
        );
    }
    let o = run_cmd_ok(&dir, &["output", &format!("{id}/reduce"), "--json"]);
    let out: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let seen: Vec<u64> = out["output"]["work"]
        .as_array()
        .expect("the reduce step's input holds the list of outputs")
        .iter()
        .map(|o| o["i"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seen,
        (0..N as u64).collect::<Vec<_>>(),
        "all outputs, in index order"
    );
}

/// The crash window between an upstream's success and the expansion it makes due (two
/// commits): a journal that stops right after the success boots, expands, and finishes.
#[test]
fn an_expansion_a_crash_interrupted_is_made_at_boot() {
    use std::sync::Arc;
    use troupe::model::{Event, EventRecord, RunId, TaskId, Timestamp};
    use troupe::storage::{Journal, JournalOptions};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let file = workflow(
        tmp.path(),
        "fan.toml",
        "name = \"window\"\n[[task]]\nid = \"list\"\ncommand = [\"true\"]\n\
         [[task]]\nid = \"work\"\ndepends_on = [\"list\"]\nfor_each = \"{{ tasks.list.output }}\"\n\
         command = [\"sh\", \"-c\", \"echo \\\"$TROUPE_ITEM\\\" > \\\"$TROUPE_OUTPUT\\\"\"]\n",
    );
    let wf = Arc::new(troupe::workflow_file::load_for_submit(&file).unwrap());
    let run = RunId::from_ulid(ulid::Ulid::new());
    let list = TaskId::new("list").unwrap();
    {
        std::fs::create_dir_all(&dir).unwrap();
        let journal = Journal::open(&dir.join("journal")).unwrap();
        let mut w = journal.writer(&JournalOptions::default()).unwrap();
        let now = Timestamp::from_system_time(std::time::SystemTime::now());
        let records: Vec<EventRecord> = [
            Event::RunSubmitted { run, workflow: wf },
            Event::AttemptStarted {
                run,
                task: list.clone(),
                attempt: 1,
            },
            Event::TaskOutput {
                run,
                task: list.clone(),
                attempt: 1,
                output: "[\"a\",\"b\"]".into(),
            },
            Event::TaskSucceeded {
                run,
                task: list,
                attempt: 1,
                usage: None,
            },
        ]
        .into_iter()
        .map(|event| EventRecord { time: now, event })
        .collect();
        w.stage(&records).unwrap();
        w.commit().unwrap();
    }
    let _node = NodeProc::start(&dir, &[]);
    let v = wait_finished(&dir, &run.to_string(), 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    let events = events(&dir);
    let expanded: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "task_expanded")
        .collect();
    assert_eq!(expanded.len(), 1);
    assert_eq!(expanded[0]["count"], 2);
    let o = run_cmd_ok(&dir, &["output", &format!("{run}/work"), "--json"]);
    let out: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(out["output"], serde_json::json!(["a", "b"]));
}
