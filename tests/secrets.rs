//! Secrets (issue 16, item 6), through the real binary: `secret_env` values reach the process
//! from a `[secrets]` file and from the node's environment, and their bytes are nowhere under
//! the data dir after the run and a RocksDB compaction, nor in `status`, `events`,
//! `--print-config`, `logs` or the node's own log. Bad inputs: a secret not set, a secrets
//! file others may read, a name that is not a variable name.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A `troupe node start` with extra environment, its stderr (the node's log, at debug
/// level) in `log`; waits until it answers.
fn start_node(dir: &Path, env: &[(&str, &str)], log: &Path) -> NodeProc {
    let mut c = troupe(dir);
    c.args(["node", "start"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in env {
        c.env(k, v);
    }
    let child: Child = c.spawn().expect("spawn node");
    let mut node = NodeProc {
        child,
        dir: dir.to_owned(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = node.child.try_wait().unwrap() {
            panic!(
                "node exited early: {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if run(dir, &["status"]).status.success() {
            return node;
        }
        assert!(Instant::now() < deadline, "node did not answer within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn secrets_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
    let p = dir.join("secrets.env");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// A data dir whose `troupe.toml` names `file` under `[secrets]`.
fn data_dir_with(tmp: &Path, file: &Path) -> PathBuf {
    let dir = tmp.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        dir.join("troupe.toml"),
        format!("[secrets]\nfiles = [\"{}\"]\n", file.display()),
    )
    .unwrap();
    dir
}

/// Every file under `dir` (recursively) whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                let bytes = std::fs::read(&p).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

#[test]
fn secret_values_reach_the_process_and_are_stored_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let salt: u64 = rand::random();
    let from_file = format!("sEcReT-from-file-{salt:016x}");
    let from_env = format!("sEcReT-from-env-{salt:016x}");
    let file = secrets_file(
        tmp.path(),
        &format!("# the API key\nAPI_KEY={from_file}\n"),
        0o600,
    );
    let dir = data_dir_with(tmp.path(), &file);
    // The task compares what it got with files outside the data dir, so neither the
    // workflow (journaled) nor its output (logged) holds a value.
    std::fs::write(tmp.path().join("expect-file"), &from_file).unwrap();
    std::fs::write(tmp.path().join("expect-env"), &from_env).unwrap();
    let t = tmp.path().display();
    let wf = workflow(
        tmp.path(),
        "secret.toml",
        &format!(
            "name = \"secret\"\n[[task]]\nid = \"use\"\nsecret_env = [\"API_KEY\", \"ENV_TOKEN\"]\n\
             shell = '''[ \"$API_KEY\" = \"$(cat {t}/expect-file)\" ] && [ \"$ENV_TOKEN\" = \"$(cat {t}/expect-env)\" ] && echo matched'''\n\
             compensate_shell = '''[ \"$API_KEY\" = \"$(cat {t}/expect-file)\" ]'''\n"
        ),
    );
    let node_log = tmp.path().join("node.log");
    let node = start_node(&dir, &[("ENV_TOKEN", &from_env)], &node_log);
    let run_id = submit(&dir, &wf);
    let v = wait_finished(&dir, &run_id, 60);
    assert_eq!(task_state(&v, "use"), "succeeded", "{v}");
    let logs = run_cmd_ok(&dir, &["logs", &format!("{run_id}/use")]);
    assert_eq!(stdout(&logs), "matched\n");

    let mut printed = Vec::new();
    for args in [
        vec!["status", run_id.as_str(), "--json"],
        vec!["status", run_id.as_str()],
        vec!["events", "--json"],
        vec!["events"],
        vec!["tasks", run_id.as_str(), "--json"],
        vec!["node", "start", "--print-config"],
    ] {
        let o = run_cmd_ok(&dir, &args);
        printed.push((args, format!("{}{}", stdout(&o), stderr(&o))));
    }
    assert!(printed[5].1.contains("[secrets]"), "{}", printed[5].1);
    assert!(
        printed[5].1.contains(&file.display().to_string()),
        "{}",
        printed[5].1
    );
    node.terminate();

    // Everything the node wrote, flushed and compacted.
    let journal = troupe::storage::Journal::open(&dir.join("journal")).unwrap();
    journal.compact_all().unwrap();
    drop(journal);
    for secret in [&from_file, &from_env] {
        for (args, text) in &printed {
            assert!(
                !text.contains(secret.as_str()),
                "`troupe {args:?}` printed a secret"
            );
        }
        let hits = files_holding(&dir, secret.as_bytes());
        assert!(hits.is_empty(), "a secret's bytes are stored in {hits:?}");
        let log = std::fs::read_to_string(&node_log).unwrap();
        assert!(
            log.contains("attempt spawned"),
            "the node logged at debug level"
        );
        assert!(
            !log.contains(secret.as_str()),
            "the node's log holds a secret"
        );
    }
}

#[test]
fn a_secret_not_set_refuses_the_submission_and_starts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = secrets_file(tmp.path(), "OTHER=x\n", 0o600);
    let dir = data_dir_with(tmp.path(), &file);
    let started = tmp.path().join("started");
    let wf = workflow(
        tmp.path(),
        "missing.toml",
        &format!(
            "name = \"missing\"\n[[task]]\nid = \"deploy\"\nsecret_env = [\"OTHER\", \"NEVER_SET_SECRET_7F3A\"]\nshell = \"touch {}\"\n",
            started.display()
        ),
    );
    let _node = start_node(&dir, &[], &tmp.path().join("node.log"));
    let o = run(&dir, &["run", "--detach", wf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("task `deploy`: secret `NEVER_SET_SECRET_7F3A` is not set on this node"),
        "{err}"
    );
    assert!(list_json(&dir).is_empty(), "no run was journaled");
    assert!(!started.exists(), "nothing started");
}

#[test]
fn a_secrets_file_others_may_read_is_refused_at_node_start() {
    let tmp = tempfile::tempdir().unwrap();
    let file = secrets_file(tmp.path(), "API_KEY=hunter2-value\n", 0o644);
    let dir = data_dir_with(tmp.path(), &file);
    for args in [
        vec!["node", "start"],
        vec!["node", "start", "--print-config"],
    ] {
        let o = run(&dir, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("secrets file {} has mode 644", file.display())),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
    assert!(!dir.join("journal").exists(), "the node did not start");
}

#[test]
fn a_secret_name_that_is_not_a_variable_name_is_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    for (names, want) in [
        (
            "[\"API-KEY\"]",
            "secret_env name `API-KEY` is not a valid environment variable name",
        ),
        (
            "[\"1KEY\"]",
            "secret_env name `1KEY` is not a valid environment variable name",
        ),
        ("[\"TROUPE_TOKEN\"]", "TROUPE_* variables are set by troupe"),
        ("[\"K\", \"K\"]", "secret_env names `K` twice"),
    ] {
        let wf = workflow(
            tmp.path(),
            "bad.toml",
            &format!("name = \"bad\"\n[[task]]\nid = \"t\"\ncommand = [\"true\"]\nsecret_env = {names}\n"),
        );
        let o = run(tmp.path(), &["validate", wf.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{names}: {}", stderr(&o));
        let text = format!("{}{}", stdout(&o), stderr(&o));
        assert!(text.contains(want), "{names}: {text}");
        assert!(
            text.contains("bad.toml:5"),
            "{names}: names the line: {text}"
        );
    }
    let wf = workflow(
        tmp.path(),
        "both.toml",
        "name = \"both\"\n[[task]]\nid = \"t\"\ncommand = [\"true\"]\nenv = { K = \"v\" }\nsecret_env = [\"K\"]\n",
    );
    let o = run(tmp.path(), &["validate", wf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`K` is both in secret_env and in env"),
        "{}",
        stderr(&o)
    );
}
