//! Approval gates end to end: the real binary, a real journal.

mod common;

use common::*;
use serde_json::Value;

const GATED: &str = r#"
name = "deploy"
[defaults]
retry = { max_attempts = 1 }
[[task]]
id = "build"
shell = "true"
[[task]]
id = "deploy"
command = ["echo", "deploying"]
depends_on = ["build"]
requires_approval = true
[[task]]
id = "smoke"
shell = "true"
depends_on = ["deploy"]
"#;

fn approvals(dir: &std::path::Path) -> Vec<Value> {
    let o = run_cmd_ok(dir, &["approvals", "--json"]);
    serde_json::from_str::<Value>(&stdout(&o))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn awaiting(dir: &std::path::Path, id: &str, task: &str) -> Value {
    wait_until(dir, id, 30, |v| task_state(v, task) == "awaiting_approval")
}

fn me() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name
}

#[test]
fn granted_approval_dispatches_and_records_who_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "gated.toml", GATED);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    let v = awaiting(&dir, &id, "deploy");
    assert_eq!(task_state(&v, "smoke"), "pending");
    let list = approvals(&dir);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["run"], id.as_str());
    assert_eq!(list[0]["task"], "deploy");
    assert_eq!(list[0]["workflow"], "deploy");
    assert_eq!(list[0]["command"], "echo deploying");
    assert!(list[0]["expires_at"].as_str().is_some());
    let text = stdout(&run_cmd_ok(&dir, &["approvals"]));
    assert!(text.contains(&format!("{id}/deploy")) && text.contains("echo deploying"));

    let target = format!("{id}/deploy");
    run_cmd_ok(
        &dir,
        &[
            "approve",
            &target,
            "--as",
            "alice",
            "--reason",
            "change 42 reviewed",
        ],
    );
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "succeeded");
    assert!(approvals(&dir).is_empty());
    let ev = events(&dir);
    let granted = of(&ev, "approval_granted", "deploy");
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0]["approver"]["name"], "alice");
    assert_eq!(granted[0]["approver"]["os_user"], me().as_str());
    assert_eq!(granted[0]["approver"]["reason"], "change 42 reviewed");
    assert!(granted[0]["time"].as_str().is_some());

    // Deciding twice, deciding a finished run's task: clear errors, exit 2, nothing changes.
    let before = ev.len();
    for verb in ["approve", "reject"] {
        let o = run(&dir, &[verb, &target, "--as", "bob"]);
        assert_eq!(o.status.code(), Some(2), "{verb}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("not awaiting approval") || stderr(&o).contains("succeeded"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(events(&dir).len(), before);
}

#[test]
fn bad_approval_targets_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "gated.toml", GATED);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    awaiting(&dir, &id, "deploy");
    let before = events(&dir).len();
    let unknown_run = "01JAAAAAAAAAAAAAAAAAAAAAAA/deploy".to_owned();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["approve".into(), unknown_run, "--as".into(), "a".into()],
            "no run",
        ),
        (
            vec![
                "approve".into(),
                format!("{id}/nope"),
                "--as".into(),
                "a".into(),
            ],
            "no task `nope`",
        ),
        (
            vec![
                "approve".into(),
                format!("{id}/build"),
                "--as".into(),
                "a".into(),
            ],
            "not awaiting approval",
        ),
        (
            vec![
                "reject".into(),
                format!("{id}/smoke"),
                "--as".into(),
                "a".into(),
            ],
            "not awaiting approval",
        ),
        (
            vec!["approve".into(), id.clone(), "--as".into(), "a".into()],
            "RUN/TASK",
        ),
        (
            vec![
                "approve".into(),
                format!("{id}/deploy"),
                "--as".into(),
                " ".into(),
            ],
            "--as needs a name",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&dir, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    // Missing --as is a usage error.
    let o = run(&dir, &["approve", &format!("{id}/deploy")]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(events(&dir).len(), before, "nothing was journaled");
    assert_eq!(approvals(&dir).len(), 1, "still pending");
}

#[test]
fn rejected_approval_fails_the_task_for_good() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "gated.toml", GATED);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    awaiting(&dir, &id, "deploy");
    run_cmd_ok(
        &dir,
        &[
            "reject",
            &format!("{id}/deploy"),
            "--as",
            "carol",
            "--reason",
            "freeze",
        ],
    );
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "failed");
    assert_eq!(task_state(&v, "deploy"), "failed");
    assert_eq!(task_state(&v, "smoke"), "upstream_failed");
    let deploy = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "deploy")
        .unwrap();
    assert_eq!(deploy["attempts"], 0, "a rejected task never runs");
    assert_eq!(deploy["last_failure"], "approval rejected");
    let ev = events(&dir);
    let rejected = of(&ev, "approval_rejected", "deploy");
    assert_eq!(rejected[0]["approver"]["name"], "carol");
    assert_eq!(rejected[0]["approver"]["reason"], "freeze");
    assert!(of(&ev, "attempt_started", "deploy").is_empty());
}

#[test]
fn unanswered_approval_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let text = GATED.replace(
        "requires_approval = true",
        "requires_approval = true\napproval_timeout = \"300ms\"",
    );
    let wf = workflow(tmp.path(), "expiring.toml", &text);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "failed");
    let deploy = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "deploy")
        .unwrap();
    assert_eq!(deploy["last_failure"], "approval expired");
    let ev = events(&dir);
    let expired = of(&ev, "approval_expired", "deploy");
    assert_eq!(expired.len(), 1);
    let asked = ev
        .iter()
        .find(|e| e["type"] == "task_succeeded" && e["task"] == "build")
        .unwrap();
    let ms = |e: &Value| {
        humantime::parse_rfc3339(e["time"].as_str().unwrap())
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    assert!(
        ms(expired[0]) >= ms(asked) + 300,
        "expired no earlier than the timeout"
    );
    assert!(approvals(&dir).is_empty());
}

#[test]
fn pending_approval_survives_node_restarts_and_kills() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "gated.toml", GATED);
    let node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    awaiting(&dir, &id, "deploy");
    let first = approvals(&dir);
    assert_eq!(node.terminate(), Some(0));
    let mut node = NodeProc::start(&dir, &[]);
    assert_eq!(
        approvals(&dir),
        first,
        "same request after a graceful restart"
    );
    node.kill9();
    let _node = NodeProc::start(&dir, &[]);
    assert_eq!(approvals(&dir), first, "same request after SIGKILL");
    run_cmd_ok(&dir, &["approve", &format!("{id}/deploy"), "--as", "dave"]);
    assert_eq!(wait_finished(&dir, &id, 60)["state"], "succeeded");
}

#[test]
fn expiry_that_passed_while_the_node_was_down_applies_at_boot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let text = GATED.replace(
        "requires_approval = true",
        "requires_approval = true\napproval_timeout = \"1s\"",
    );
    let wf = workflow(tmp.path(), "expiring.toml", &text);
    let mut node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    awaiting(&dir, &id, "deploy");
    node.kill9();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let _node = NodeProc::start(&dir, &[]);
    let v = wait_finished(&dir, &id, 30);
    assert_eq!(v["state"], "failed");
    assert_eq!(of(&events(&dir), "approval_expired", "deploy").len(), 1);
}

#[test]
fn rejected_approval_in_a_saga_triggers_compensation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let undo = tmp.path().join("undo.log");
    let text = format!(
        r#"
name = "gated-saga"
[[task]]
id = "reserve"
shell = "true"
compensate_shell = "echo release >> {u}"
[[task]]
id = "charge"
shell = "true"
depends_on = ["reserve"]
requires_approval = true
compensate_shell = "echo refund >> {u}"
"#,
        u = undo.display()
    );
    let wf = workflow(tmp.path(), "saga.toml", &text);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    awaiting(&dir, &id, "charge");
    run_cmd_ok(&dir, &["reject", &format!("{id}/charge"), "--as", "erin"]);
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "compensated", "{v}");
    assert_eq!(std::fs::read_to_string(&undo).unwrap(), "release\n");
    assert_eq!(task_state(&v, "charge"), "failed");
}

#[test]
fn node_rules_gate_tasks_by_pool_label_and_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("troupe.toml"),
        "[approval]\ntimeout = \"2h\"\n\
         [[approval.rule]]\npool = \"prod\"\n\
         [[approval.rule]]\nlabel = \"danger\"\n\
         [[approval.rule]]\ncommand = \"kubectl delete *\"\ntimeout = \"5m\"\n",
    )
    .unwrap();
    let text = r#"
name = "ruled"
[pools]
prod = 1
[[task]]
id = "in-prod"
shell = "true"
pool = "prod"
[[task]]
id = "labelled"
shell = "true"
labels = ["danger", "x"]
[[task]]
id = "kubectl"
command = ["kubectl", "delete", "ns", "old"]
[[task]]
id = "free"
shell = "true"
labels = ["safe"]
"#;
    let wf = workflow(tmp.path(), "ruled.toml", text);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    let v = wait_until(&dir, &id, 30, |v| task_state(v, "free") == "succeeded");
    for t in ["in-prod", "labelled", "kubectl"] {
        assert_eq!(task_state(&v, t), "awaiting_approval", "{t}");
    }
    let list = approvals(&dir);
    let expiry = |task: &str| {
        let p = list.iter().find(|p| p["task"] == task).unwrap();
        let at = |k: &str| humantime::parse_rfc3339(p[k].as_str().unwrap()).unwrap();
        at("expires_at").duration_since(at("requested_at")).unwrap()
    };
    assert_eq!(
        expiry("in-prod").as_secs(),
        7200,
        "node default from troupe.toml"
    );
    assert_eq!(expiry("kubectl").as_secs(), 300, "the rule's own timeout");
    // The same file resubmitted attaches to the same run (rules applied before comparing).
    let o = run_cmd_ok(&dir, &["run", "--detach", wf.to_str().unwrap()]);
    assert_eq!(stdout(&o).trim(), id);
}

#[test]
fn invalid_node_config_is_refused_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "[[approval.rule]]\ncommand = \"[unclosed\"\n",
            "troupe.toml:2:11: approval.rule[0].command `[unclosed` is not a valid glob",
        ),
        (
            "[[approval.rule]]\ntimeout = \"1h\"\n",
            "troupe.toml:1:1: approval.rule[0] matches nothing",
        ),
        (
            "[approval]\nrules = []\n",
            "troupe.toml:2:1: unknown field `rules`",
        ),
        (
            "[approval]\ntimeout = \"0s\"\n",
            "approval.timeout must be longer than 0s",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(dir.join("troupe.toml"), text).unwrap();
        let o = run(&dir, &["node", "start"]);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{text}: {}", stderr(&o));
        assert!(!dir.join("troupe.sock").exists(), "the node did not start");
        assert!(!dir.join("journal").exists(), "nothing was written");
    }
    // --config names another file, with the same checks.
    let other = workflow(tmp.path(), "other.toml", "[approval]\nbogus = 1\n");
    let o = run(
        &dir,
        &["node", "start", "--config", other.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("other.toml:2:1: unknown field `bogus`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_approval_fields_in_a_workflow_name_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "name = \"x\"\n[[task]]\nid = \"a\"\nshell = \"true\"\nrequires_approval = \"alice\"\n",
            "5:",
        ),
        (
            "name = \"x\"\n[[task]]\nid = \"a\"\nshell = \"true\"\napproval_timeout = \"1h\"\n",
            "does not require approval",
        ),
        (
            "name = \"x\"\n[[task]]\nid = \"a\"\nshell = \"true\"\nrequires_approval = true\napproval_timeout = \"soon\"\n",
            "6:",
        ),
        (
            "name = \"x\"\n[[task]]\nid = \"a\"\nshell = \"true\"\nlabels = [\"no spaces\"]\n",
            "label `no spaces`",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let wf = workflow(tmp.path(), &format!("bad{i}.toml"), text);
        let o = run(tmp.path(), &["validate", wf.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{text}");
        let e = stderr(&o);
        assert!(
            e.contains(&format!("bad{i}.toml:")) && e.contains(want),
            "{text}: {e}"
        );
    }
}

#[test]
fn troupe_run_says_what_awaits_approval_and_finishes_once_approved() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "gated.toml", GATED);
    let _node = NodeProc::start(&dir, &[]);
    let mut child = troupe(&dir)
        .args(["run", wf.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "stderr closed");
        if line.contains("await approval") {
            break;
        }
    }
    assert!(line.contains("1 task(s)"), "{line}");
    let list = approvals(&dir);
    let target = format!("{}/deploy", list[0]["run"].as_str().unwrap());
    run_cmd_ok(&dir, &["approve", &target, "--as", "frank"]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
