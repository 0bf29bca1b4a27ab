//! Agent trees driven as a user would: a real node whose tasks call `troupe spawn` and
//! `troupe wait` from inside their attempts. Every bad input of the delegation issue has a
//! test here (exit code, message, no child, the journaled refusal), and so has every happy
//! path (outputs, inputs, idempotency across retries, cascades, budgets, views, metrics).
//!
//! Tasks and tests share a scratch folder: workflows name it `@S@`. A task that tries a
//! command records its exit code and output there ([`probe`]) and succeeds itself, so the
//! test reads what the command did once the run has finished.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A node whose tasks can call `troupe`, its data dir, and the scratch folder.
struct Tree {
    /// Killed when the test ends.
    _node: NodeProc,
    /// The node's data dir.
    dir: PathBuf,
    /// Files tasks and the test share (`@S@` in workflows).
    scratch: PathBuf,
    /// Holds both folders.
    _tmp: tempfile::TempDir,
}

impl Drop for Tree {
    /// Stops the node so that it ends its attempts' processes (a test that failed half-way
    /// must not leave blocked tasks behind): SIGTERM, then a second one, which kills the
    /// running attempts at once. The node is SIGKILLed after that in any case.
    fn drop(&mut self) {
        self._node.stop_attempts();
    }
}

impl Tree {
    fn start() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let scratch = tmp.path().join("s");
        std::fs::create_dir_all(&scratch).unwrap();
        let node = NodeProc::start_agents(&dir, &[]);
        Tree {
            _node: node,
            dir,
            scratch,
            _tmp: tmp,
        }
    }

    /// Writes workflow `name` into the scratch folder, `@S@` replaced by its path.
    fn workflow(&self, name: &str, text: &str) -> PathBuf {
        let text = text.replace("@S@", self.scratch.to_str().unwrap());
        workflow(&self.scratch, name, &text)
    }

    /// Submits `text` as a root run; returns its id.
    fn submit(&self, name: &str, text: &str) -> String {
        submit(&self.dir, &self.workflow(name, text))
    }

    /// Submits `text` and waits for the run's end; returns its id and status.
    fn finish(&self, name: &str, text: &str) -> (String, Value) {
        let id = self.submit(name, text);
        let v = wait_finished(&self.dir, &id, 120);
        (id, v)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// Scratch file `name`, trimmed.
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_else(|e| panic!("scratch file {name}: {e}"))
            .trim()
            .to_owned()
    }

    /// Polls until scratch file `name` exists.
    fn wait_file(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.path(name).exists() {
            assert!(Instant::now() < deadline, "{name} never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn touch(&self, name: &str) {
        std::fs::write(self.path(name), "").unwrap();
    }

    /// What [`probe`] `tag` recorded: exit code, stdout, stderr.
    fn outcome(&self, tag: &str) -> (i32, String, String) {
        let code = self.read(&format!("{tag}.code")).parse().unwrap();
        (
            code,
            self.read(&format!("{tag}.out")),
            self.read(&format!("{tag}.err")),
        )
    }

    /// `list --json`.
    fn runs(&self) -> Vec<Value> {
        list_json(&self.dir)
    }

    /// The runs `list --json` shows with parent `run`.
    fn children(&self, run: &str) -> Vec<Value> {
        self.runs()
            .into_iter()
            .filter(|r| r["parent"] == run)
            .collect()
    }

    /// The `spawn_refused` events.
    fn refusals(&self) -> Vec<Value> {
        events(&self.dir)
            .into_iter()
            .filter(|e| e["type"] == "spawn_refused")
            .collect()
    }

    /// The nodes of `tree RUN --json`.
    fn tree(&self, run: &str) -> Vec<Value> {
        tree_nodes(&self.dir, run)
    }

    fn state(&self, run: &str) -> String {
        run_status(&self.dir, run)["state"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Polls until run `run` is in `state`.
    fn wait_state(&self, run: &str, state: &str) -> Value {
        wait_until(&self.dir, run, 60, |v| v["state"] == state)
    }

    /// Asserts that probe `tag` was refused for `reason`: exit 4, `spawn refused (REASON):
    /// MESSAGE` on stderr, nothing on stdout, and a `spawn_refused` event with key, reason
    /// and message.
    fn assert_refused(&self, tag: &str, key: &str, reason: &str, message: &str) {
        let (code, out, err) = self.outcome(tag);
        assert_eq!(code, 4, "{tag}: {err}");
        assert_eq!(out, "", "{tag}: a refused spawn prints no id");
        assert!(
            err.contains(&format!("spawn refused ({reason}): {message}")),
            "{tag}: {err}"
        );
        let refusals = self.refusals();
        let journaled: Vec<_> = refusals.iter().filter(|e| e["key"] == key).collect();
        assert_eq!(journaled.len(), 1, "{refusals:#?}");
        assert_eq!(journaled[0]["reason"], reason);
        assert!(
            journaled[0]["message"].as_str().unwrap().contains(message),
            "{}",
            journaled[0]
        );
    }
}

/// A shell line that runs `cmd` and records its exit code, stdout and stderr as
/// `TAG.code`, `TAG.out`, `TAG.err` in the scratch folder; the line itself succeeds.
fn probe(tag: &str, cmd: &str) -> String {
    format!("{cmd} > @S@/{tag}.out 2> @S@/{tag}.err; echo $? > @S@/{tag}.code")
}

/// A one-task workflow whose task runs `shell`.
fn one_task(name: &str, shell: &str) -> String {
    format!("name = \"{name}\"\n[[task]]\nid = \"a\"\nshell = '''{shell}'''\n")
}

/// A child command (for `--command`) that blocks until scratch file `release` exists.
const BLOCK: &str = r#"sh -c 'while [ ! -f "$1" ]; do sleep 0.02; done' sh @S@/release"#;

// ---- bad inputs ----

#[test]
fn spawn_and_wait_without_a_token_inside_a_task_exit_4() {
    let t = Tree::start();
    let shell = [
        probe(
            "spawn",
            "env -u TROUPE_TOKEN troupe spawn --key k --detach --command true",
        ),
        probe("wait", "env -u TROUPE_TOKEN troupe wait $TROUPE_RUN_ID"),
    ]
    .join("\n");
    let (root, v) = t.finish("wf.toml", &one_task("no-token", &shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    for tag in ["spawn", "wait"] {
        let (code, out, err) = t.outcome(tag);
        assert_eq!(code, 4, "{tag}: {err}");
        assert_eq!(out, "");
        assert!(
            err.contains("TROUPE_RUN_ID is set but TROUPE_TOKEN is not"),
            "{tag}: {err}"
        );
    }
    assert!(t.children(&root).is_empty());
    // A token without the attempt it belongs to, from outside any task.
    let o = troupe(&t.dir)
        .args(["spawn", "--key", "k", "--detach", "--command", "true"])
        .env("TROUPE_TOKEN", "0123456789abcdef0123456789abcdef")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("TROUPE_TOKEN is set but TROUPE_RUN_ID is not"),
        "{}",
        stderr(&o)
    );
    assert_eq!(t.runs().len(), 1);
}

#[test]
fn the_token_of_a_finished_attempt_is_refused() {
    let t = Tree::start();
    let text = format!(
        r#"name = "stale-token"
[[task]]
id = "a"
shell = '''echo "$TROUPE_TOKEN" > @S@/token_a'''
[[task]]
id = "b"
depends_on = ["a"]
shell = '''{}'''
"#,
        probe(
            "later",
            "TROUPE_TASK_ID=a TROUPE_ATTEMPT=1 TROUPE_TOKEN=$(cat @S@/token_a) \
             troupe spawn --key from-b --detach --command true"
        )
    );
    let (root, v) = t.finish("wf.toml", &text);
    assert_eq!(v["state"], "succeeded", "{v}");
    let token = t.read("token_a");
    assert_eq!(token.len(), 32, "{token}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    let expected =
        format!("TROUPE_TOKEN is not valid for attempt 1 of {root}/a: that attempt is not running");
    let (code, out, err) = t.outcome("later");
    assert_eq!((code, out.as_str()), (4, ""), "{err}");
    assert!(err.contains(&expected), "{err}");
    // The same token from outside, after the run ended.
    let o = troupe(&t.dir)
        .args([
            "spawn",
            "--key",
            "from-test",
            "--detach",
            "--command",
            "true",
        ])
        .env("TROUPE_RUN_ID", &root)
        .env("TROUPE_TASK_ID", "a")
        .env("TROUPE_ATTEMPT", "1")
        .env("TROUPE_TOKEN", &token)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains(&expected), "{}", stderr(&o));
    assert!(t.children(&root).is_empty());
}

#[test]
fn a_siblings_token_is_refused() {
    let t = Tree::start();
    let text = format!(
        r#"name = "borrowed-token"
[[task]]
id = "a"
shell = '''echo "$TROUPE_TOKEN" > @S@/t.tmp && mv @S@/t.tmp @S@/token_a; while [ ! -f @S@/steal.code ]; do sleep 0.02; done'''
[[task]]
id = "b"
shell = '''while [ ! -f @S@/token_a ]; do sleep 0.02; done
{}'''
"#,
        probe(
            "steal",
            "TROUPE_TOKEN=$(cat @S@/token_a) troupe spawn --key stolen --detach --command true"
        )
    );
    let (root, v) = t.finish("wf.toml", &text);
    assert_eq!(v["state"], "succeeded", "{v}");
    let (code, out, err) = t.outcome("steal");
    assert_eq!((code, out.as_str()), (4, ""), "{err}");
    assert!(
        err.contains(&format!(
            "TROUPE_TOKEN is not valid for attempt 1 of {root}/b: the token belongs to another attempt"
        )),
        "{err}"
    );
    assert!(t.children(&root).is_empty());
}

#[test]
fn depth_5_under_max_depth_4_is_refused() {
    let t = Tree::start();
    // Each level spawns the same workflow one level down, with its depth as input (so the
    // loop guard does not stop it first), and waits for it.
    let text = one_task(
        "deep",
        &probe(
            "depth$TROUPE_DEPTH",
            r#"troupe spawn --key down --input "{\"d\": $((TROUPE_DEPTH + 1))}" @S@/deep.toml"#,
        ),
    );
    let (root, v) = t.finish("deep.toml", &text);
    assert_eq!(v["state"], "succeeded", "{v}");
    for d in 0..4 {
        let (code, out, err) = t.outcome(&format!("depth{d}"));
        assert_eq!(code, 0, "depth {d}: {err}");
        assert_eq!(out.len(), 26, "depth {d} printed the child id: {out}");
    }
    t.assert_refused(
        "depth4",
        "down",
        "depth",
        "the child would be at depth 5, past max_depth 4",
    );
    let depths: Vec<u64> = t
        .tree(&root)
        .iter()
        .map(|n| n["depth"].as_u64().unwrap())
        .collect();
    assert_eq!(depths, [0, 1, 2, 3, 4]);
    assert_eq!(t.runs().len(), 5);
}

#[test]
fn the_17th_live_child_is_refused() {
    let t = Tree::start();
    let shell = format!(
        "for i in $(seq 1 16); do troupe spawn --key c$i --input \"{{\\\"i\\\": $i}}\" --detach \
         --command {BLOCK} >> @S@/ids || exit 9; done\n{}\ntouch @S@/release\ntroupe wait $(cat @S@/ids) > @S@/waited",
        probe(
            "c17",
            &format!(r#"troupe spawn --key c17 --input '{{"i": 17}}' --detach --command {BLOCK}"#)
        )
    );
    let (root, v) = t.finish("wf.toml", &one_task("wide", &shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    t.assert_refused(
        "c17",
        "c17",
        "children",
        &format!("run {root} has 16 live children, the most max_children (16) allows"),
    );
    let children = t.children(&root);
    assert_eq!(children.len(), 16);
    assert!(children.iter().all(|c| c["state"] == "succeeded"));
    assert!(children.iter().all(|c| c["key"] != "c17"));
    assert_eq!(t.read("waited").lines().count(), 16);
}

#[test]
fn a_budget_of_0_is_refused() {
    let t = Tree::start();
    let shell = probe(
        "zero",
        "troupe spawn --key broke --budget tokens=0 --detach --command true",
    );
    let (root, v) = t.finish("wf.toml", &one_task("zero", &shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    t.assert_refused(
        "zero",
        "broke",
        "budget",
        "a budget of 0 tokens leaves the child nothing to run with",
    );
    assert!(t.children(&root).is_empty());
}

#[test]
fn a_budget_over_what_the_parent_has_left_is_refused() {
    let t = Tree::start();
    // The parent's first spawn (its lineage does not exist yet) and a later one.
    let shell = [
        probe(
            "first",
            "troupe spawn --key greedy1 --budget tokens=150 --detach --command true",
        ),
        // Live (blocked) while the next spawn asks: its 60 stay reserved.
        probe(
            "fits",
            &format!(
                r#"troupe spawn --key fits --input '{{"f": 1}}' --budget tokens=60 --detach --command {BLOCK}"#
            ),
        ),
        probe(
            "second",
            "troupe spawn --key greedy2 --budget tokens=50 --detach --command true",
        ),
        "touch @S@/release".into(),
    ]
    .join("\n");
    let text = format!(
        "name = \"budgeted\"\n[authority]\nbudget = {{ tokens = 100 }}\n[[task]]\nid = \"a\"\nshell = '''{shell}'''\n"
    );
    let (root, v) = t.finish("wf.toml", &text);
    assert_eq!(v["state"], "succeeded", "{v}");
    t.assert_refused(
        "first",
        "greedy1",
        "budget",
        "asked for 150 tokens; the parent has 100 left",
    );
    assert_eq!(t.outcome("fits").0, 0, "{}", t.outcome("fits").2);
    t.assert_refused(
        "second",
        "greedy2",
        "budget",
        "asked for 50 tokens; the parent has 40 left",
    );
    let children = t.children(&root);
    assert_eq!(children.len(), 1, "{children:#?}");
    assert_eq!(children[0]["key"], "fits");
}

#[test]
fn allowed_commands_are_not_bypassed_through_a_shell() {
    let t = Tree::start();
    t.workflow(
        "shell.toml",
        "name = \"py-via-shell\"\n[[task]]\nid = \"script\"\nshell = \"python3 -c 'print(1)'\"\n",
    );
    t.workflow(
        "own.toml",
        "name = \"own-authority\"\n[authority]\nallowed_commands = [\"python3\"]\n\
         [[task]]\nid = \"script\"\nshell = \"python3 -c 'print(1)'\"\n",
    );
    let shell = [
        probe(
            "flag",
            "troupe spawn --key flag --allow-command python3 --detach @S@/shell.toml",
        ),
        probe("file", "troupe spawn --key file --detach @S@/own.toml"),
        probe(
            "direct",
            "troupe spawn --key direct --allow-command 'tr*' --detach --command true",
        ),
    ]
    .join("\n");
    let (root, v) = t.finish("wf.toml", &one_task("commands", &shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let why = "task `script` runs \"sh\", which allowed_commands does not allow (a shell line \
               runs `sh`; use `command = [...]` with an allowed program)";
    t.assert_refused("flag", "flag", "command", why);
    t.assert_refused("file", "file", "command", why);
    // A program the glob matches, run directly, is allowed.
    assert_eq!(t.outcome("direct").0, 0, "{}", t.outcome("direct").2);
    let children = t.children(&root);
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["key"], "direct");
}

#[test]
fn a_self_spawning_agent_is_stopped_by_the_loop_guard() {
    let t = Tree::start();
    let agent = t.workflow(
        "agent.toml",
        &one_task(
            "agent",
            &probe(
                "again",
                "troupe spawn --key again --input @$TROUPE_INPUT @S@/agent.toml",
            ),
        ),
    );
    // A root spawn from outside any task, with an input.
    let o = run_cmd_ok(
        &t.dir,
        &[
            "spawn",
            "--key",
            "the-agent",
            "--input",
            r#"{"goal": "everything"}"#,
            agent.to_str().unwrap(),
        ],
    );
    let root = stdout(&o).trim().to_owned();
    assert_eq!(t.state(&root), "succeeded");
    t.assert_refused(
        "again",
        "again",
        "loop",
        &format!("run {root} (an ancestor) already runs the same command (sh -c "),
    );
    assert!(t.children(&root).is_empty());
    assert_eq!(t.runs().len(), 1);
}

#[test]
fn inside_a_task_wait_refuses_a_run_that_is_not_its_child() {
    let t = Tree::start();
    let (other, _) = t.finish("other.toml", &one_task("other", "true"));
    let shell = probe("wait", &format!("troupe wait {other}"));
    let (root, v) = t.finish("wf.toml", &one_task("waiter", &shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let (code, out, err) = t.outcome("wait");
    assert_eq!((code, out.as_str()), (4, ""), "{err}");
    assert!(
        err.contains(&format!(
            "run {other} is not a child of {root}/a; inside a task, wait accepts only the \
             attempt's own children"
        )),
        "{err}"
    );
}

#[test]
fn the_same_key_with_a_different_spec_is_a_conflict() {
    let t = Tree::start();
    let shell = [
        probe(
            "first",
            r#"troupe spawn --key k --input '{"a": 1}' --detach --command true"#,
        ),
        probe(
            "same",
            r#"troupe spawn --key k --input '{"a": 1}' --detach --command true"#,
        ),
        probe(
            "input",
            r#"troupe spawn --key k --input '{"a": 2}' --detach --command true"#,
        ),
        probe(
            "program",
            r#"troupe spawn --key k --input '{"a": 1}' --detach --command false"#,
        ),
    ]
    .join("\n");
    let (root, v) = t.finish("wf.toml", &one_task("conflict", &shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let (code, child, _) = t.outcome("first");
    assert_eq!(code, 0);
    let (code, again, err) = t.outcome("same");
    assert_eq!((code, again.as_str()), (0, child.as_str()));
    assert!(err.contains("attached"), "{err}");
    for (tag, what) in [("input", "input"), ("program", "workflow")] {
        let (code, out, err) = t.outcome(tag);
        assert_eq!((code, out.as_str()), (2, ""), "{tag}: {err}");
        assert!(
            err.contains(&format!(
                "spawn conflict: key \"k\" already names run {child}, spawned with a different {what}"
            )),
            "{tag}: {err}"
        );
    }
    let children = t.children(&root);
    assert_eq!(children.len(), 1);
    assert_eq!(children[0]["id"], child.as_str());
    assert!(t.refusals().is_empty(), "a conflict is not a refusal");
}

// ---- happy paths ----

#[test]
fn spawn_and_wait_return_the_childs_output() {
    let t = Tree::start();
    let double = r#"sh -c 'n=$(tr -dc 0-9 < "$TROUPE_INPUT"); echo "{\"x\": $((n * 2))}" > "$TROUPE_OUTPUT"'"#;
    let shell = format!(
        r#"c=$(troupe spawn --key double --input '{{"n": 21}}' --detach --command {double}) || exit 9
echo $c > @S@/id
troupe wait --json $c > @S@/waited
{}"#,
        probe(
            "blocking",
            r#"troupe spawn --key seven --input '{"n": 1}' --command sh -c 'echo 7 > "$TROUPE_OUTPUT"'"#
        )
    );
    let (root, v) = t.finish("wf.toml", &one_task("parent", &shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let id = t.read("id");
    let waited: Value = serde_json::from_str(&t.read("waited")).unwrap();
    assert_eq!(
        waited,
        json!({"run": id, "key": "double", "state": "succeeded", "output": {"x": 42}})
    );
    // Without --detach: only the id on stdout, exit 0 once the child succeeded.
    let (code, out, err) = t.outcome("blocking");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1);
    let seven = out.trim();
    assert_eq!(t.state(seven), "succeeded");
    // `wait` from outside any task takes any run.
    let o = run_cmd_ok(&t.dir, &["wait", seven, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["output"], 7);
    let keys: Vec<_> = t
        .children(&root)
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&"double".into()) && keys.contains(&"seven".into()));
}

#[test]
fn a_retried_parent_reattaches_by_key_and_the_child_runs_once() {
    let t = Tree::start();
    // Attempt 1 spawns the child (which blocks) and fails; attempt 2 attaches to the running
    // child, releases it, waits, and fails; attempt 3 attaches to the finished child.
    let text = r#"name = "retrying-parent"
[[task]]
id = "lead"
retry = { max_attempts = 3, initial_interval = "10ms" }
shell = '''
c=$(troupe spawn --key worker --input '{"job": 1}' --detach --command sh -c 'while [ ! -f "$1" ]; do sleep 0.02; done; echo ran >> "$2"; echo "\"done\"" > "$TROUPE_OUTPUT"' sh @S@/release @S@/ran 2>> @S@/spawn.err) || exit 9
echo $c >> @S@/ids
case $TROUPE_ATTEMPT in
1) exit 1 ;;
2) touch @S@/release; troupe wait $c; exit 1 ;;
*) troupe wait --json $c > "$TROUPE_OUTPUT" ;;
esac
'''
"#;
    let (root, v) = t.finish("wf.toml", text);
    assert_eq!(v["state"], "succeeded", "{v}");
    let ids: Vec<String> = t.read("ids").lines().map(str::to_owned).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert_eq!(t.read("ran"), "ran", "the child ran exactly once");
    assert_eq!(t.read("spawn.err").matches("attached").count(), 2);
    let events = events(&t.dir);
    let spawned: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "run_spawned")
        .collect();
    assert_eq!(spawned.len(), 1);
    assert_eq!(spawned[0]["parent_attempt"], 1);
    assert_eq!(spawned[0]["run"], ids[0].as_str());
    assert_eq!(of(&events, "attempt_failed", "lead").len(), 2);
    assert!(
        !events
            .iter()
            .any(|e| e["type"] == "run_cancelled" && e["run"] == ids[0].as_str()),
        "the child lived through its parent's retries"
    );
    let o = run_cmd_ok(&t.dir, &["output", &format!("{root}/lead"), "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["output"]["output"], "done");
    assert_eq!(v["output"]["state"], "succeeded");
}

#[test]
fn output_names_the_task_whose_output_is_the_runs() {
    let t = Tree::start();
    let steps = r#"[[task]]
id = "first"
shell = '''echo '{"from": "first"}' > "$TROUPE_OUTPUT"'''
[[task]]
id = "second"
depends_on = ["first"]
shell = '''echo '{"from": "second"}' > "$TROUPE_OUTPUT"'''
"#;
    t.workflow(
        "named.toml",
        &format!("name = \"named\"\noutput = \"first\"\n{steps}"),
    );
    t.workflow("default.toml", &format!("name = \"default\"\n{steps}"));
    let shell = "a=$(troupe spawn --key named --detach @S@/named.toml) && \
                 b=$(troupe spawn --key default --detach @S@/default.toml) && \
                 troupe wait --json $a $b > @S@/waited";
    let (_, v) = t.finish("wf.toml", &one_task("parent", shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let waited: Vec<Value> = t
        .read("waited")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(waited.len(), 2);
    assert_eq!(waited[0]["key"], "named");
    assert_eq!(waited[0]["output"], json!({"from": "first"}));
    assert_eq!(waited[1]["key"], "default");
    assert_eq!(waited[1]["output"], json!({"from": "second"}));
}

#[test]
fn the_input_reaches_troupe_input_and_templates() {
    let t = Tree::start();
    t.workflow(
        "greeter.toml",
        r#"name = "greeter"
[[task]]
id = "greet"
command = ["sh", "-c", '''printf '{"line": "%s", "count": %s, "raw": %s}' "$1" "$COUNT" "$(cat "$TROUPE_INPUT")" > "$TROUPE_OUTPUT"''', "sh", "hello {{ input.name }}"]
env = { COUNT = "{{ input.count }}" }
"#,
    );
    std::fs::write(t.path("input.json"), r#"{ "name": "ada", "count": 3 }"#).unwrap();
    let shell = "c=$(troupe spawn --key greet --input @@S@/input.json --detach @S@/greeter.toml) \
                 && troupe wait --json $c > @S@/waited";
    let (_, v) = t.finish("wf.toml", &one_task("parent", shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let waited: Value = serde_json::from_str(&t.read("waited")).unwrap();
    assert_eq!(waited["state"], "succeeded", "{waited}");
    assert_eq!(
        waited["output"],
        json!({"line": "hello ada", "count": 3, "raw": {"name": "ada", "count": 3}})
    );
}

#[test]
fn cancelling_the_root_cancels_the_whole_tree_and_its_processes() {
    let t = Tree::start();
    t.workflow(
        "mid.toml",
        &one_task(
            "mid",
            r#"echo $$ > @S@/mid.pid; troupe spawn --key leaf --input '{"level": 2}' --command sh -c 'echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; exec sleep 300' sh @S@/leaf.pid"#,
        ),
    );
    let root = t.submit(
        "wf.toml",
        &one_task(
            "top",
            r#"echo $$ > @S@/top.pid; troupe spawn --key mid --input '{"level": 1}' @S@/mid.toml"#,
        ),
    );
    t.wait_file("leaf.pid");
    let pids: Vec<i32> = ["top.pid", "mid.pid", "leaf.pid"]
        .iter()
        .map(|f| t.read(f).parse().unwrap())
        .collect();
    assert!(pids.iter().all(|p| alive(*p)));
    run_cmd_ok(&t.dir, &["cancel", &root]);
    let nodes = {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let nodes = t.tree(&root);
            if nodes.len() == 3 && nodes.iter().all(|n| n["state"] == "cancelled") {
                break nodes;
            }
            assert!(Instant::now() < deadline, "{nodes:#?}");
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    assert_eq!(nodes[1]["key"], "mid");
    assert_eq!(nodes[2]["key"], "leaf");
    for pid in pids {
        wait_gone(pid);
    }
}

#[test]
fn an_abandoned_child_outlives_its_parent_task_and_a_cancelled_one_does_not() {
    let t = Tree::start();
    let shell = format!(
        r#"troupe spawn --key kept --input '{{"k": 1}}' --on-parent-exit abandon --detach --command {BLOCK} > @S@/kept || exit 9
troupe spawn --key dropped --input '{{"k": 2}}' --detach --command {BLOCK} > @S@/dropped"#
    );
    let (root, v) = t.finish("wf.toml", &one_task("parent", &shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let (kept, dropped) = (t.read("kept"), t.read("dropped"));
    t.wait_state(&dropped, "cancelled");
    assert_eq!(t.state(&kept), "running");
    let parent = t
        .runs()
        .into_iter()
        .find(|r| r["id"] == root.as_str())
        .unwrap();
    assert_eq!(parent["children"], 2);
    assert_eq!(parent["children_live"], 1);
    t.touch("release");
    t.wait_state(&kept, "succeeded");
}

#[test]
fn fail_parent_stops_the_parents_attempt_as_child_failed() {
    let t = Tree::start();
    t.workflow(
        "failing.toml",
        "name = \"failing\"\n[defaults]\nretry = { max_attempts = 1 }\n[[task]]\nid = \"boom\"\nshell = \"exit 3\"\n",
    );
    let text = r#"name = "escalate"
[[task]]
id = "lead"
retry = { max_attempts = 1 }
shell = '''echo $$ > @S@/lead.pid; troupe spawn --key boom --input '{"why": "boom"}' --on-failure fail_parent --detach @S@/failing.toml > @S@/child; exec sleep 300'''
"#;
    let started = Instant::now();
    let (_, v) = t.finish("wf.toml", text);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(v["state"], "failed", "{v}");
    let child = t.read("child");
    assert_eq!(t.state(&child), "failed");
    let events = events(&t.dir);
    let failed = of(&events, "task_failed", "lead");
    assert_eq!(failed.len(), 1, "{events:#?}");
    assert_eq!(failed[0]["failure_kind"], "child_failed");
    let why = failed[0]["failure"].as_str().unwrap();
    assert!(
        why.contains(&format!("child run {child} (key \"boom\") ended failed")),
        "{why}"
    );
    wait_gone(t.read("lead.pid").parse().unwrap());
}

#[test]
fn usage_over_a_childs_budget_exhausts_it_and_cancels_its_children() {
    let t = Tree::start();
    // `spend` reports 300 tokens once the grandchild runs; `hold` keeps the child going.
    t.workflow(
        "spender.toml",
        r#"name = "spender"
[[task]]
id = "hold"
shell = '''troupe spawn --key idle --input '{"idle": 1}' --detach --command sh -c 'echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; exec sleep 300' sh @S@/idle.pid > @S@/idle; exec sleep 300'''
[[task]]
id = "spend"
shell = '''while [ ! -f @S@/idle.pid ]; do sleep 0.02; done; echo '{"tokens": 300}' > "$TROUPE_USAGE"'''
"#,
    );
    let shell = probe(
        "spender",
        "c=$(troupe spawn --key spender --budget tokens=100 --detach @S@/spender.toml) && \
         echo $c > @S@/child && troupe wait --json $c",
    );
    let (root, v) = t.finish("wf.toml", &one_task("parent", &shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let child = t.read("child");
    let (code, out, _) = t.outcome("spender");
    assert_eq!(code, 1);
    let waited: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(waited["state"], "budget_exhausted");
    let idle = t.read("idle");
    t.wait_state(&idle, "cancelled");
    wait_gone(t.read("idle.pid").parse().unwrap());
    let events = events(&t.dir);
    let exhausted: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "budget_exhausted")
        .collect();
    assert_eq!(exhausted.len(), 1);
    assert_eq!(exhausted[0]["run"], child.as_str());
    assert_eq!(exhausted[0]["counter"], "tokens");
    assert_eq!(exhausted[0]["used"], 300.0);
    assert_eq!(exhausted[0]["limit"], 100.0);
    let nodes = t.tree(&root);
    let node = nodes.iter().find(|n| n["run"] == child.as_str()).unwrap();
    assert_eq!(node["state"], "budget_exhausted");
    assert_eq!(node["exhausted"], "tokens");
    assert_eq!(node["budget"], json!({"tokens": 100.0}));
    assert_eq!(node["reserved"], json!({"tokens": 100.0}));
    assert_eq!(node["usage"]["tokens"], 300.0);
    // The books balance: what is left is the budget less the subtree's usage (overspent
    // here, so below 0).
    assert_eq!(node["left"]["tokens"], -200.0);
    // Usage anywhere in a subtree counts against every ancestor.
    assert_eq!(nodes[0]["usage"]["tokens"], 300.0);
}

#[test]
fn tree_json_lists_the_tree_depth_first() {
    let t = Tree::start();
    t.workflow(
        "a.toml",
        &one_task(
            "branch-a",
            r#"troupe spawn --key a1 --input '{"leaf": 1}' --command true > /dev/null"#,
        ),
    );
    let shell = r#"troupe spawn --key a --input '{"branch": "a"}' @S@/a.toml > /dev/null && troupe spawn --key b --input '{"branch": "b"}' --budget tokens=5 --command true > /dev/null"#;
    let (root, v) = t.finish("wf.toml", &one_task("root", shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let nodes = t.tree(&root);
    let keys: Vec<&Value> = nodes.iter().map(|n| &n["key"]).collect();
    assert_eq!(keys, [&Value::Null, &json!("a"), &json!("a1"), &json!("b")]);
    let depth: Vec<u64> = nodes.iter().map(|n| n["depth"].as_u64().unwrap()).collect();
    assert_eq!(depth, [0, 1, 2, 1]);
    let fields = [
        "run",
        "name",
        "state",
        "depth",
        "parent",
        "parent_task",
        "key",
        "usage",
        "budget",
        "reserved",
        "left",
        "exhausted",
        "asking",
    ];
    for n in &nodes {
        let mut have: Vec<&str> = n.as_object().unwrap().keys().map(String::as_str).collect();
        have.sort_unstable();
        let mut want = fields.to_vec();
        want.sort_unstable();
        assert_eq!(have, want, "{n}");
        assert_eq!(n["state"], "succeeded");
    }
    assert_eq!(nodes[0]["run"], root.as_str());
    assert_eq!(nodes[0]["parent"], Value::Null);
    assert_eq!(nodes[0]["name"], "root");
    assert_eq!(nodes[1]["parent"], root.as_str());
    assert_eq!(nodes[1]["parent_task"], "a");
    assert_eq!(nodes[1]["name"], "branch-a");
    assert_eq!(nodes[2]["parent"], nodes[1]["run"]);
    assert_eq!(nodes[2]["name"], "spawn: true");
    assert_eq!(nodes[3]["parent"], root.as_str());
    assert_eq!(nodes[3]["budget"], json!({"tokens": 5.0}));
    assert_eq!(nodes[3]["reserved"], json!({"tokens": 5.0}));
    // A subtree: `tree` of a child starts at it.
    let sub = t.tree(nodes[1]["run"].as_str().unwrap());
    assert_eq!(sub.len(), 2);
    assert_eq!(sub[1]["key"], "a1");
    // The text form indents by depth.
    let o = run_cmd_ok(&t.dir, &["tree", &root]);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].starts_with(&root));
    assert!(
        lines[2].starts_with("    ") && lines[2].contains("key=a1"),
        "{lines:?}"
    );
}

#[test]
fn list_shows_parents_and_roots_hides_spawned_runs() {
    let t = Tree::start();
    let shell = r#"troupe spawn --key only --input '{"x": 1}' --command true > @S@/child"#;
    let (root, v) = t.finish("wf.toml", &one_task("root", shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let child = t.read("child");
    let all = t.runs();
    assert_eq!(all.len(), 2);
    let r = all.iter().find(|r| r["id"] == root.as_str()).unwrap();
    assert_eq!(r["parent"], Value::Null);
    assert_eq!(r["children"], 1);
    assert_eq!(r["children_live"], 0);
    let c = all.iter().find(|r| r["id"] == child.as_str()).unwrap();
    assert_eq!(c["parent"], root.as_str());
    assert_eq!(c["parent_task"], "a");
    assert_eq!(c["key"], "only");
    let o = run_cmd_ok(&t.dir, &["list", "--roots", "--json"]);
    let roots: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ids: Vec<&str> = roots
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [root.as_str()]);
    let text = stdout(&run_cmd_ok(&t.dir, &["list", "--roots"]));
    assert!(text.contains(&root) && !text.contains(&child), "{text}");
}

/// The value of the sample `name` (with its labels) in a Prometheus text page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn metrics_count_live_children_refusals_and_budget_usage() {
    let t = Tree::start();
    let shell = format!(
        r#"troupe spawn --key spend --input '{{"s": 1}}' --budget tokens=10 --command sh -c 'echo "{{\"tokens\": 4}}" > "$TROUPE_USAGE"' > /dev/null || exit 9
troupe spawn --key zero --budget tokens=0 --detach --command true 2> /dev/null
troupe spawn --key live --input '{{"s": 2}}' --detach --command {BLOCK} > @S@/live.tmp && mv @S@/live.tmp @S@/live; while [ ! -f @S@/release ]; do sleep 0.02; done"#
    );
    let root = t.submit("wf.toml", &one_task("metrics", &shell));
    t.wait_file("live");
    let live = t.read("live");
    wait_until(&t.dir, &live, 60, |v| v["tasks_running"] == 1);
    let (status, page) = http_get(&http_addr(&t.dir), "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(&page, "troupe_spawn_refused_total{reason=\"budget\"}"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "troupe_budget_used_total{name=\"tokens\"}"),
        Some(4.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "troupe_child_runs_active"),
        Some(1.0),
        "one spawned run is live"
    );
    t.touch("release");
    wait_finished(&t.dir, &root, 60);
    let (_, page) = http_get(&http_addr(&t.dir), "/metrics");
    assert_eq!(sample(&page, "troupe_child_runs_active"), Some(0.0));
}

#[test]
fn budget_exhaustion_stops_abandoned_descendants_too() {
    let t = Tree::start();
    // The grandchild was spawned with `--on-parent-exit abandon`: it outlives its parent
    // task, but it spends from the exhausted subtree's budget.
    t.workflow(
        "spender.toml",
        r#"name = "spender"
[[task]]
id = "hold"
shell = '''troupe spawn --key idle --input '{"idle": 1}' --on-parent-exit abandon --detach --command sh -c 'echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; exec sleep 300' sh @S@/idle.pid > @S@/idle; exec sleep 300'''
[[task]]
id = "spend"
shell = '''while [ ! -f @S@/idle.pid ]; do sleep 0.02; done; echo '{"tokens": 300}' > "$TROUPE_USAGE"'''
"#,
    );
    let shell = probe(
        "wait",
        "c=$(troupe spawn --key spender --budget tokens=100 --detach @S@/spender.toml) && \
         echo $c > @S@/child && troupe wait $c",
    );
    let (_, v) = t.finish("wf.toml", &one_task("parent", &shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(t.outcome("wait").0, 1);
    assert_eq!(t.state(&t.read("child")), "budget_exhausted");
    let idle = t.read("idle");
    t.wait_state(&idle, "cancelled");
    wait_gone(t.read("idle.pid").parse().unwrap());
}

#[test]
fn may_spawn_descendants_approval_and_pool_refusals() {
    let t = Tree::start();
    // A child that tries two spawns of its own, naming its probes after its input; its
    // authority comes from the flags below.
    t.workflow(
        "spawner.toml",
        &one_task(
            "spawner",
            &[
                probe(
                    "$KEY-1",
                    r#"troupe spawn --key $KEY-g1 --input '{"g": 1}' --detach --command true"#,
                ),
                probe(
                    "$KEY-2",
                    r#"troupe spawn --key $KEY-g2 --input '{"g": 2}' --detach --command true"#,
                ),
            ]
            .join("\n"),
        )
        .replace(
            "id = \"a\"\n",
            "id = \"a\"\nenv = { KEY = \"{{ input.c }}\" }\n",
        ),
    );
    t.workflow(
        "gated.toml",
        "name = \"gated\"\n[[task]]\nid = \"deploy\"\ncommand = [\"true\"]\nrequires_approval = true\n",
    );
    t.workflow(
        "pooled.toml",
        "name = \"pooled\"\n[pools]\ngpu = 1\n[[task]]\nid = \"train\"\ncommand = [\"true\"]\npool = \"gpu\"\n",
    );
    let shell = [
        r#"troupe spawn --key nospawn --input '{"c": "nospawn"}' --no-spawn @S@/spawner.toml > /dev/null"#.to_owned(),
        r#"troupe spawn --key onlyone --input '{"c": "onlyone"}' --max-descendants 1 @S@/spawner.toml > /dev/null"#.to_owned(),
        probe("approval", "troupe spawn --key gated --no-approval --detach @S@/gated.toml"),
        probe("pool", "troupe spawn --key pooled --pool cpu --detach @S@/pooled.toml"),
    ]
    .join("\n");
    let (root, v) = t.finish("wf.toml", &one_task("parent", &shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let ids: std::collections::HashMap<String, String> = t
        .children(&root)
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_owned(),
                c["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let nospawn = &ids["nospawn"];
    t.assert_refused(
        "nospawn-1",
        "nospawn-g1",
        "may_spawn",
        &format!("run {nospawn} may not spawn children (may_spawn = false)"),
    );
    assert_eq!(t.outcome("onlyone-1").0, 0, "{}", t.outcome("onlyone-1").2);
    t.assert_refused(
        "onlyone-2",
        "onlyone-g2",
        "descendants",
        &format!(
            "run {} already has 1 descendants, the most max_descendants (1) allows",
            ids["onlyone"]
        ),
    );
    t.assert_refused(
        "approval",
        "gated",
        "approval",
        "task `deploy` requires approval, but may_request_approval is false",
    );
    t.assert_refused(
        "pool",
        "pooled",
        "pool",
        "task `train` uses pool \"gpu\", which the authority's pools do not include",
    );
    assert!(!ids.contains_key("gated") && !ids.contains_key("pooled"));
}

#[test]
fn root_spawns_from_outside_are_idempotent_by_key_and_listed_as_roots() {
    let t = Tree::start();
    let spawn = |input: &str, program: &str| {
        run(
            &t.dir,
            &[
                "spawn",
                "--key",
                "nightly",
                "--input",
                input,
                "--detach",
                "--command",
                program,
            ],
        )
    };
    let first = spawn(r#"{"day": 1}"#, "true");
    assert!(first.status.success(), "{}", stderr(&first));
    let id = stdout(&first).trim().to_owned();
    let again = spawn(r#"{"day": 1}"#, "true");
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again).trim(), id);
    assert!(stderr(&again).contains("attached"), "{}", stderr(&again));
    let other = spawn(r#"{"day": 2}"#, "true");
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    assert!(
        stderr(&other).contains("spawn conflict"),
        "{}",
        stderr(&other)
    );
    wait_finished(&t.dir, &id, 60);
    let o = run_cmd_ok(&t.dir, &["list", "--roots", "--json"]);
    let roots: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let roots = roots.as_array().unwrap();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0]["id"], id.as_str());
    assert_eq!(roots[0]["key"], "nightly");
    assert_eq!(roots[0]["parent"], Value::Null);
    let spawned: Vec<Value> = events(&t.dir)
        .into_iter()
        .filter(|e| e["type"] == "run_spawned")
        .collect();
    assert_eq!(spawned.len(), 1);
    assert_eq!(spawned[0]["parent"], Value::Null);
    assert_eq!(spawned[0]["parent_attempt"], 0);
}

#[test]
fn wait_timeout_exits_124_and_leaves_the_child_running() {
    let t = Tree::start();
    let shell = format!(
        r#"c=$(troupe spawn --key slow --input '{{"s": 1}}' --detach --command {BLOCK}) || exit 9
echo $c > @S@/child
{}
touch @S@/release
troupe wait $c"#,
        probe("timeout", "troupe wait --timeout 200ms $c"),
    );
    let (_, v) = t.finish("wf.toml", &one_task("parent", &shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let (code, out, err) = t.outcome("timeout");
    assert_eq!((code, out.as_str()), (124, ""), "{err}");
    assert!(err.contains("timed out after 200ms"), "{err}");
    // The child was not touched by the timeout: released afterwards, it succeeded.
    assert_eq!(t.state(&t.read("child")), "succeeded");
}

/// A submitted workflow with its own `[authority]` is an agent tree's root from its first
/// attempt: its own usage over its budget stops it.
#[test]
fn a_submitted_root_over_its_own_budget_is_exhausted() {
    let t = Tree::start();
    let text = r#"name = "spendthrift"
[authority]
budget = { tokens = 100 }
[[task]]
id = "spend"
shell = '''echo '{"tokens": 300}' > "$TROUPE_USAGE"'''
[[task]]
id = "after"
depends_on = ["spend"]
shell = "touch @S@/after-ran"
"#;
    let (_, v) = t.finish("wf.toml", text);
    assert_eq!(v["state"], "budget_exhausted", "{v}");
    assert!(!t.path("after-ran").exists());
}

#[test]
fn a_command_child_runs_in_the_callers_directory() {
    let t = Tree::start();
    std::fs::create_dir_all(t.path("sub")).unwrap();
    let shell = r#"cd @S@/sub && c=$(troupe spawn --key here --input '{"w": 1}' --detach --command sh -c 'printf "\"%s\"" "$PWD" > "$TROUPE_OUTPUT"') && troupe wait --json $c > @S@/waited"#;
    let (_, v) = t.finish("wf.toml", &one_task("parent", shell));
    assert_eq!(v["state"], "succeeded", "{v}");
    let waited: Value = serde_json::from_str(&t.read("waited")).unwrap();
    let sub = t.path("sub");
    assert_eq!(waited["output"], sub.to_str().unwrap(), "{waited}");
}

/// `--on-failure ask`: a failed child asks a human and its parent's `wait` waits through
/// it; `approve RUN` retries the child's failed tasks (here they then succeed) and the wait
/// returns its success; a second child rejected reports its failure up.
#[test]
fn a_failed_child_asks_a_human_approve_retries_it_and_reject_reports_it() {
    let t = Tree::start();
    t.workflow(
        "flaky.toml",
        "name = \"flaky\"\n[defaults]\nretry = { max_attempts = 1 }\n[[task]]\nid = \"try\"\nshell = '''test -f @S@/fixed-$(cat \"$TROUPE_INPUT\" | tr -dc a-z) || exit 3; echo '\"ok\"' > \"$TROUPE_OUTPUT\"'''\n",
    );
    let shell = probe(
        "ask",
        "a=$(troupe spawn --key one --input '\"one\"' --on-failure ask --detach @S@/flaky.toml) && \
         echo $a > @S@/a && b=$(troupe spawn --key two --input '\"two\"' --on-failure ask --detach @S@/flaky.toml) && \
         echo $b > @S@/b && troupe wait --json $a $b",
    );
    let root = t.submit("wf.toml", &one_task("asker", &shell));
    t.wait_file("b");
    let (a, b) = (t.read("a"), t.read("b"));
    // Both failed and ask: `approvals` lists them, the parent still waits.
    let listed = wait_for(|| {
        let o = run_cmd_ok(&t.dir, &["approvals", "--json"]);
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let esc: Vec<Value> = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "escalation")
            .cloned()
            .collect();
        (esc.len() == 2).then_some(esc)
    });
    assert!(listed.iter().all(|e| e["state"] == "failed"), "{listed:#?}");
    assert_eq!(t.state(&root), "running");
    t.touch("fixed-one");
    run_cmd_ok(&t.dir, &["approve", &a, "--as", "alice"]);
    t.wait_state(&a, "succeeded");
    assert_eq!(t.state(&root), "running", "b still asks");
    run_cmd_ok(
        &t.dir,
        &["reject", &b, "--as", "bob", "--reason", "not worth it"],
    );
    let v = wait_finished(&t.dir, &root, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    let (code, out, _) = t.outcome("ask");
    assert_eq!(code, 1, "one child failed: {out}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["state"], "succeeded");
    assert_eq!(lines[0]["output"], "ok");
    assert_eq!(lines[1]["state"], "failed");
    let decided: Vec<Value> = events(&t.dir)
        .into_iter()
        .filter(|e| e["type"] == "escalation_decided")
        .collect();
    assert_eq!(decided.len(), 2);
    assert_eq!(decided[0]["approved"], true);
    assert_eq!(decided[1]["approved"], false);
    assert_eq!(decided[1]["approver"]["reason"], "not worth it");
    // Nothing asks any more; a decided escalation cannot be decided again.
    let o = run(&t.dir, &["approve", &b, "--as", "alice"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("asks nobody"), "{}", stderr(&o));
}

/// `--on-budget-exhausted ask`: a child over its budget is suspended and asks; approving
/// without `--extend` is refused, with it the budget grows and the run resumes; a second
/// child rejected ends `budget_exhausted`.
#[test]
fn a_child_over_budget_asks_approve_extends_and_reject_stops() {
    let t = Tree::start();
    t.workflow(
        "spender.toml",
        "name = \"spender\"\n[[task]]\nid = \"spend\"\nshell = '''echo '{\"tokens\": 15}' > \"$TROUPE_USAGE\"'''\n[[task]]\nid = \"after\"\ndepends_on = [\"spend\"]\nshell = '''echo 1 > \"$TROUPE_OUTPUT\"'''\n",
    );
    let spawn = |key: &str| {
        let o = run_cmd_ok(
            &t.dir,
            &[
                "spawn",
                "--key",
                key,
                "--budget",
                "tokens=10",
                "--on-budget-exhausted",
                "ask",
                "--detach",
                t.path("spender.toml").to_str().unwrap(),
            ],
        );
        stdout(&o).trim().to_owned()
    };
    let a = spawn("a");
    let tree = wait_for(|| {
        let n = t.tree(&a);
        n[0]["asking"].is_string().then_some(n)
    });
    assert_eq!(tree[0]["asking"], "budget tokens: used 15 of 10");
    assert_eq!(t.state(&a), "running");
    let o = run(&t.dir, &["approve", &a, "--as", "alice"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--extend tokens=AMOUNT"),
        "{}",
        stderr(&o)
    );
    run_cmd_ok(
        &t.dir,
        &["approve", &a, "--as", "alice", "--extend", "tokens=20"],
    );
    let v = wait_finished(&t.dir, &a, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(t.tree(&a)[0]["budget"]["tokens"], 30.0);

    let b = spawn("b");
    wait_for(|| t.tree(&b)[0]["asking"].is_string().then_some(()));
    run_cmd_ok(&t.dir, &["reject", &b, "--as", "bob"]);
    let v = wait_finished(&t.dir, &b, 60);
    assert_eq!(v["state"], "budget_exhausted", "{v}");
    assert_eq!(t.tree(&b)[0]["exhausted"], "tokens");
}

/// Polls `f` (every 20 ms, up to 60 s) until it gives a value.
fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "condition never held");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A budget escalation of a run that ends anyway (cancelled while it asks) is dropped: its
/// waiter returns, and nobody is asked any more.
#[test]
fn a_budget_escalation_ends_with_its_run() {
    let t = Tree::start();
    t.workflow(
        "spender.toml",
        "name = \"spender\"\n[[task]]\nid = \"spend\"\nshell = '''echo '{\"tokens\": 15}' > \"$TROUPE_USAGE\"'''\n[[task]]\nid = \"after\"\ndepends_on = [\"spend\"]\nshell = 'true'\n",
    );
    let o = run_cmd_ok(
        &t.dir,
        &[
            "spawn",
            "--key",
            "c",
            "--budget",
            "tokens=10",
            "--on-budget-exhausted",
            "ask",
            "--detach",
            t.path("spender.toml").to_str().unwrap(),
        ],
    );
    let c = stdout(&o).trim().to_owned();
    wait_for(|| t.tree(&c)[0]["asking"].is_string().then_some(()));
    run_cmd_ok(&t.dir, &["cancel", &c]);
    let v = wait_finished(&t.dir, &c, 60);
    assert_eq!(v["state"], "cancelled", "{v}");
    assert_eq!(t.tree(&c)[0]["asking"], Value::Null);
    let o = run(&t.dir, &["wait", "--timeout", "20s", "--json", &c]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "not succeeded (not 124: it returned)"
    );
    assert!(stdout(&o).contains("\"cancelled\""), "{}", stdout(&o));
}
