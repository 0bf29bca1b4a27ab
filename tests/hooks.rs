//! Hooks (`[[hooks]]` in `troupe.toml` or a workflow), driven through the real binary: the
//! event on stdin, vetoes, timeouts, crashing hooks, and crash safety (a hook running at a
//! SIGKILL runs again; one that succeeded does not).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// `troupe hooks --json`.
fn hooks(dir: &Path) -> Vec<Value> {
    let o = run_cmd_ok(dir, &["hooks", "--json"]);
    serde_json::from_str::<Value>(&stdout(&o))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Polls `troupe hooks --json` until `pred` holds for the list (at most `secs`).
fn wait_hooks(dir: &Path, secs: u64, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let list = hooks(dir);
        if pred(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "hook condition not reached; last list {list:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn call<'a>(list: &'a [Value], hook: &str) -> &'a Value {
    list.iter()
        .find(|c| c["hook"] == hook)
        .unwrap_or_else(|| panic!("no call of hook {hook} in {list:?}"))
}

fn task<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn data_dir(tmp: &tempfile::TempDir, config: &str) -> std::path::PathBuf {
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("troupe.toml"), config).unwrap();
    dir
}

#[test]
fn task_failed_hook_reads_the_event_on_stdin_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("payload.json");
    let dir = data_dir(
        &tmp,
        &format!(
            "[[hooks]]\nname = \"on-fail\"\non = \"task_failed\"\nshell = \"cat > {}; exit 0\"\n\
             [[hooks]]\nname = \"post-fails\"\non = \"task_succeeded\"\nshell = \"exit 7\"\n\
             max_attempts = 2\n",
            out.display()
        ),
    );
    let wf = workflow(
        tmp.path(),
        "wf.toml",
        "name = \"payloads\"\n[[task]]\nid = \"bad\"\nshell = \"exit 3\"\nlabels = [\"l1\"]\n\
         retry = { max_attempts = 1 }\n[[task]]\nid = \"good\"\nshell = \"true\"\n",
    );
    let _node = NodeProc::start(&dir, &[]);
    let run = submit(&dir, &wf);
    let v = wait_finished(&dir, &run, 60);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(
        task_state(&v, "good"),
        "succeeded",
        "a failing post hook changes nothing"
    );
    let list = wait_hooks(&dir, 60, |l| {
        l.len() == 2
            && l.iter()
                .all(|c| c["state"] == "succeeded" || c["state"] == "failed")
    });
    let fail = call(&list, "on-fail");
    assert_eq!(fail["state"], "succeeded");
    assert_eq!(fail["on"], "task_failed");
    assert_eq!(fail["run"], run.as_str());
    assert_eq!(fail["task"], "bad");
    let post = call(&list, "post-fails");
    assert_eq!(post["state"], "failed", "{post}");
    assert_eq!(post["attempts"], 2);
    assert_eq!(post["failure_kind"], "exit");
    let p: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(p["event"], "task_failed");
    assert_eq!(p["hook"], "on-fail");
    assert_eq!(p["run"], run.as_str());
    assert_eq!(p["workflow"], "payloads");
    assert_eq!(p["task"], "bad");
    assert_eq!(p["state"], "failed");
    assert_eq!(p["attempts"], 1);
    assert_eq!(p["labels"][0], "l1");
    assert_eq!(p["failure"]["kind"], "exit");
    assert!(humantime::parse_rfc3339(p["time"].as_str().unwrap()).is_ok());
    // The run's result is what its tasks made it.
    let v = run_status(&dir, &run);
    assert_eq!(v["state"], "failed");
    assert_eq!(task_state(&v, "good"), "succeeded");
    // Metrics.
    let (_, body) = http_get(&http_addr(&dir), "/metrics");
    assert!(
        body.contains("troupe_hook_calls_total{hook=\"on-fail\",outcome=\"succeeded\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("troupe_hook_calls_total{hook=\"post-fails\",outcome=\"failed\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("troupe_hook_attempts_total{hook=\"post-fails\"} 2"),
        "{body}"
    );
    // --state filters; a bad state is a usage error.
    let o = run_cmd_ok(&dir, &["hooks", "--state", "failed", "--json"]);
    let only: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(
        common::run(&dir, &["hooks", "--state", "bogus"])
            .status
            .code(),
        Some(2)
    );
    let text = stdout(&run_cmd_ok(&dir, &["hooks"]));
    assert!(
        text.contains("on-fail") && text.contains("task_failed"),
        "{text}"
    );
}

#[test]
fn a_veto_hook_decides_whether_a_task_may_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let denied = tmp.path().join("denied-ran");
    let allowed = tmp.path().join("allowed-ran");
    let text = format!(
        r#"
name = "vetoes"
[[hooks]]
name = "deny"
on = "task_ready"
veto = true
match = {{ label = "deny" }}
shell = "echo checking; echo 'not today, see ticket 42'; exit 1"
[[hooks]]
name = "allow"
on = "task_ready"
veto = true
match = {{ label = "allow" }}
shell = "test -n \"$TROUPE_TASK_ID\" && grep -q task_ready"
[[task]]
id = "denied"
labels = ["deny"]
shell = "touch {denied}"
[[task]]
id = "after"
depends_on = ["denied"]
shell = "true"
[[task]]
id = "allowed"
labels = ["allow"]
shell = "touch {allowed}"
"#,
        denied = denied.display(),
        allowed = allowed.display()
    );
    let wf = workflow(tmp.path(), "vetoes.toml", &text);
    let _node = NodeProc::start(&dir, &[]);
    let run = submit(&dir, &wf);
    let v = wait_finished(&dir, &run, 60);
    assert_eq!(v["state"], "failed", "{v}");
    let d = task(&v, "denied");
    assert_eq!(d["state"], "failed", "{v}");
    assert_eq!(d["attempts"], 0, "{v}");
    assert_eq!(d["last_failure_kind"], "vetoed", "{v}");
    let msg = d["last_failure"].as_str().unwrap();
    assert!(
        msg.contains("deny")
            && msg.contains("status 1")
            && msg.contains("not today, see ticket 42"),
        "{msg}"
    );
    assert_eq!(task_state(&v, "after"), "upstream_failed");
    assert!(!denied.exists(), "a vetoed task's command never runs");
    assert_eq!(task_state(&v, "allowed"), "succeeded");
    assert!(allowed.exists());
    let list = hooks(&dir);
    assert_eq!(call(&list, "deny")["state"], "failed");
    assert_eq!(call(&list, "deny")["failure_kind"], "vetoed");
    assert_eq!(call(&list, "allow")["state"], "succeeded");
    // The veto is in the run's events as task_failed with attempt 0.
    let ev = events(&dir);
    let failed = of(&ev, "task_failed", "denied");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["attempt"], 0);
    assert!(of(&ev, "attempt_started", "denied").is_empty());
}

#[test]
fn a_hanging_hook_times_out_and_the_task_result_stands() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = data_dir(
        &tmp,
        "[[hooks]]\nname = \"hangs\"\non = \"task_succeeded\"\nshell = \"sleep 60\"\n\
         timeout = \"1s\"\nmax_attempts = 1\n",
    );
    let wf = workflow(
        tmp.path(),
        "wf.toml",
        "name = \"hang\"\n[[task]]\nid = \"t\"\nshell = \"true\"\n",
    );
    let _node = NodeProc::start(&dir, &["--grace", "1s"]);
    let run = submit(&dir, &wf);
    let v = wait_finished(&dir, &run, 60);
    assert_eq!(v["state"], "succeeded");
    let list = wait_hooks(&dir, 60, |l| l.iter().any(|c| c["state"] == "failed"));
    let c = call(&list, "hangs");
    assert_eq!(c["failure_kind"], "timed_out", "{c}");
    assert_eq!(c["attempts"], 1);
    assert_eq!(run_status(&dir, &run)["state"], "succeeded");
}

#[test]
fn a_crashing_veto_hook_fails_its_task_after_its_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let count = tmp.path().join("count");
    let marker = tmp.path().join("ran");
    let dir = data_dir(
        &tmp,
        &format!(
            "[[hooks]]\nname = \"crashes\"\non = \"task_ready\"\nveto = true\nmax_attempts = 2\n\
             shell = \"echo $TROUPE_HOOK_ATTEMPT >> {}; kill -9 $$\"\n",
            count.display()
        ),
    );
    let wf = workflow(
        tmp.path(),
        "wf.toml",
        &format!(
            "name = \"crash\"\n[[task]]\nid = \"t\"\nshell = \"touch {}\"\n",
            marker.display()
        ),
    );
    let _node = NodeProc::start(&dir, &[]);
    let run = submit(&dir, &wf);
    let v = wait_finished(&dir, &run, 60);
    let t = task(&v, "t");
    assert_eq!(t["state"], "failed", "{v}");
    assert_eq!(t["last_failure_kind"], "vetoed", "{v}");
    assert!(
        t["last_failure"].as_str().unwrap().contains("signal 9"),
        "{v}"
    );
    assert!(!marker.exists());
    assert_eq!(lines(&count), 2, "tried max_attempts times");
    let c = call(&hooks(&dir), "crashes").clone();
    assert_eq!(c["state"], "failed");
    assert_eq!(c["attempts"], 2);
    assert_eq!(c["failure_kind"], "signal");
}

#[test]
fn a_hook_survives_a_node_kill_and_never_runs_twice_after_success() {
    let tmp = tempfile::tempdir().unwrap();
    let quick = tmp.path().join("quick.log");
    let slow = tmp.path().join("slow.log");
    let go = tmp.path().join("go");
    let dir = data_dir(
        &tmp,
        &format!(
            "[[hooks]]\nname = \"quick\"\non = \"task_succeeded\"\nmatch = {{ label = \"q\" }}\n\
             shell = \"echo x >> {quick}\"\n\
             [[hooks]]\nname = \"slow\"\non = \"task_succeeded\"\nmatch = {{ label = \"s\" }}\n\
             shell = \"echo x >> {slow}; while [ ! -f {go} ]; do sleep 0.05; done\"\n",
            quick = quick.display(),
            slow = slow.display(),
            go = go.display()
        ),
    );
    let wf = workflow(
        tmp.path(),
        "wf.toml",
        "name = \"crashy\"\n[[task]]\nid = \"a\"\nshell = \"true\"\nlabels = [\"q\"]\n\
         [[task]]\nid = \"b\"\nshell = \"true\"\nlabels = [\"s\"]\n",
    );
    let mut node = NodeProc::start(&dir, &[]);
    let run = submit(&dir, &wf);
    wait_finished(&dir, &run, 60);
    wait_hooks(&dir, 60, |l| {
        l.iter()
            .any(|c| c["hook"] == "quick" && c["state"] == "succeeded")
            && l.iter()
                .any(|c| c["hook"] == "slow" && c["state"] == "running")
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines(&slow) < 1 {
        assert!(Instant::now() < deadline, "the slow hook never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    node.kill9();
    drop(node);
    std::fs::write(&go, "").unwrap();
    let _node = NodeProc::start(&dir, &[]);
    let list = wait_hooks(&dir, 60, |l| {
        l.iter()
            .any(|c| c["hook"] == "slow" && c["state"] == "succeeded")
    });
    let slow_call = call(&list, "slow");
    assert_eq!(slow_call["attempts"], 2, "{slow_call}");
    assert_eq!(lines(&slow), 2, "the interrupted hook ran again");
    assert_eq!(lines(&quick), 1, "a succeeded hook never runs again");
    assert_eq!(call(&list, "quick")["attempts"], 1);
    assert_eq!(list.len(), 2);
}

#[test]
fn run_and_session_hooks_fire_on_their_events() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("events.log");
    // `$${` is a literal `${` in troupe.toml (`${VAR}` is substituted when it is read).
    let mut config = String::new();
    for on in [
        "node_started",
        "node_stopping",
        "run_submitted",
        "run_finished",
        "task_ready",
    ] {
        config.push_str(&format!(
            "[[hooks]]\nname = \"log-{on}\"\non = \"{on}\"\n\
             shell = \"echo \\\"$TROUPE_HOOK_EVENT $${{TROUPE_RUN_ID:-none}} $${{TROUPE_TASK_ID:-none}}\\\" >> {}\"\n",
            log.display()
        ));
    }
    let dir = data_dir(&tmp, &config);
    let wf = workflow(
        tmp.path(),
        "wf.toml",
        "name = \"session\"\n[[task]]\nid = \"t\"\nshell = \"true\"\n",
    );
    let node = NodeProc::start(&dir, &[]);
    let run = submit(&dir, &wf);
    wait_finished(&dir, &run, 60);
    wait_hooks(&dir, 60, |l| {
        l.len() == 4 && l.iter().all(|c| c["state"] == "succeeded")
    });
    assert_eq!(node.terminate(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    for line in [
        "node_started none none".to_string(),
        format!("run_submitted {run} none"),
        format!("task_ready {run} t"),
        format!("run_finished {run} none"),
        "node_stopping none none".to_string(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in {text}"
        );
    }
}

#[test]
fn a_hook_with_an_unknown_event_is_refused_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = data_dir(
        &tmp,
        "workers = 1\n[[hooks]]\non = \"task_exploded\"\ncommand = [\"true\"]\n",
    );
    let o = run(&dir, &["node", "start"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("troupe.toml:2") && err.contains("task_exploded"),
        "{err}"
    );
    let wf = workflow(
        tmp.path(),
        "wf.toml",
        "name = \"w\"\n[[hooks]]\non = \"run_exploded\"\nshell = \"true\"\n\
         [[task]]\nid = \"t\"\nshell = \"true\"\n",
    );
    let o = run(&dir, &["validate", wf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        err.contains("wf.toml:") && err.contains("run_exploded"),
        "{err}"
    );
}

/// While a veto hook decides, its task is held and `queue --verbose` says by which hook.
#[test]
fn a_task_held_by_a_deciding_veto_hook_says_so_in_the_queue() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let go = tmp.path().join("GO");
    let _go = GoOnDrop(go.clone());
    let text = format!(
        r#"
name = "slow-veto"
[[hooks]]
name = "slow"
on = "task_ready"
veto = true
shell = "while [ ! -e {go} ]; do sleep 0.05; done"
[[task]]
id = "t"
shell = "true"
"#,
        go = go.display()
    );
    let wf = workflow(tmp.path(), "slow.toml", &text);
    let _node = NodeProc::start(&dir, &[]);
    let run = submit(&dir, &wf);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = run_cmd_ok(&dir, &["queue", "--verbose", "--json"]);
        let q: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let held = q["tasks"].as_array().unwrap().iter().any(|t| {
            t["task"] == "t"
                && t["blocked"]
                    .as_str()
                    .is_some_and(|b| b.starts_with("hook slow deciding (veto"))
        });
        if held {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "queue never said the hook holds the task: {q}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&go, "").unwrap();
    let v = wait_finished(&dir, &run, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
}
