//! `troupe new TEMPLATE [PATH]` driven as a user would: the real binary writes each starter
//! workflow into a temporary folder, `troupe validate` accepts every one as written, and the
//! ones that need no person and no node config (`pipeline`, `fanout`, `saga`, `agents`) run
//! to success with `troupe run`. Each bad input of the issue ("Templates") has a test: a file
//! that exists (refused without `--force`, left unchanged; replaced with it), an unknown
//! template, a missing parent folder.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

/// Every template, as `--list` must name them.
const TEMPLATES: [&str; 6] = ["pipeline", "fanout", "saga", "approval", "agents", "swarm"];

/// `troupe new ARGS...` with `dir` as the working directory.
fn new_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .current_dir(dir)
        .arg("new")
        .args(args)
        .output()
        .expect("run troupe new")
}

/// The template as kept in the sources.
fn source(name: &str) -> String {
    std::fs::read_to_string(format!("src/bin/troupe/templates/{name}.toml")).unwrap()
}

/// The names in `dir`, sorted: what a command left behind (temporary files included).
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Writes template `name` into a new folder with `troupe new NAME` (default path) and
/// returns (the folder's guard, the file).
fn written(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let o = new_in(tmp.path(), &[name]);
    assert!(o.status.success(), "new {name}: {}", stderr(&o));
    let file = tmp.path().join(format!("{name}.toml"));
    (tmp, file)
}

/// `troupe run FILE --json` with a data dir next to the file and the troupe binary on PATH
/// (the agents template calls `troupe spawn`); asserts exit 0 and a succeeded run whose
/// tasks all succeeded; gives the run's JSON.
fn run_to_success(file: &Path) -> Value {
    let data = file.parent().unwrap().join("data");
    let o = troupe(&data)
        .env("PATH", path_with_troupe())
        .args(["run", file.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "run {}: {}{}",
        file.display(),
        stdout(&o),
        stderr(&o)
    );
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["state"], "succeeded", "{v}");
    for t in v["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "succeeded", "{t}");
    }
    v
}

/// `troupe output RUN/TASK --json`'s output, read from the journal (the embedded node of
/// `troupe run` has stopped).
fn output_of(file: &Path, run: &Value, task: &str) -> Value {
    let data = file.parent().unwrap().join("data");
    let target = format!("{}/{task}", run["id"].as_str().unwrap());
    let o = run_cmd_ok(&data, &["output", &target, "--json"]);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    v["output"].clone()
}

#[test]
fn list_names_every_template_with_a_description() {
    let tmp = tempfile::tempdir().unwrap();
    let o = new_in(tmp.path(), &["--list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), TEMPLATES.len(), "{text}");
    for (line, name) in lines.iter().zip(TEMPLATES) {
        let (first, rest) = line.split_once(' ').unwrap();
        assert_eq!(first, name, "{text}");
        assert!(
            rest.trim().len() > 20,
            "no description for {name}: {line:?}"
        );
    }

    let o = new_in(tmp.path(), &["--list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, TEMPLATES);
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["description"].as_str().is_some_and(|d| !d.is_empty())));
    // --list writes nothing.
    assert!(names_in(tmp.path()).is_empty());
}

/// Every template is written byte for byte as kept in the sources, validates as is, links
/// the docs, and explains each field where it is first used (a comment line right above it).
#[test]
fn every_template_validates_as_written_and_comments_its_fields() {
    for name in TEMPLATES {
        let tmp = tempfile::tempdir().unwrap();
        let o = new_in(tmp.path(), &[name]);
        assert!(o.status.success(), "new {name}: {}", stderr(&o));
        let file = tmp.path().join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text, source(name), "{name}");
        // What was written, and what to do next.
        let out = stdout(&o);
        assert!(out.contains(&format!("wrote {name}.toml")), "{out}");
        assert!(
            out.contains(&format!("troupe validate {name}.toml")),
            "{out}"
        );
        assert!(out.contains(&format!("troupe run {name}.toml")), "{out}");
        assert_eq!(
            names_in(tmp.path()),
            [format!("{name}.toml")],
            "no temp file left"
        );

        let o = Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(["validate", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name} does not validate:\n{}",
            stderr(&o)
        );
        assert!(text.contains("docs/"), "{name} links no docs page");
        assert_fields_commented(name, &text);
    }
}

/// Each field or table of `text` (outside multi-line strings) has a comment line right above
/// its first use.
fn assert_fields_commented(name: &str, text: &str) {
    let mut seen = std::collections::HashSet::new();
    let mut in_string = false;
    let mut previous = "";
    for line in text.lines() {
        let starts_in_string = in_string;
        if line.matches("'''").count() % 2 == 1 {
            in_string = !in_string;
        }
        let key = if starts_in_string || line.starts_with('#') || line.starts_with("[[") {
            None
        } else if let Some(table) = line.strip_prefix('[') {
            table.strip_suffix(']')
        } else {
            line.split_once(" = ").map(|(k, _)| k)
        };
        if let Some(key) = key.filter(|k| !k.is_empty() && !k.starts_with(' ')) {
            if seen.insert(key.to_owned()) {
                assert!(
                    previous.starts_with('#'),
                    "{name}.toml: `{key}` has no comment above its first use"
                );
            }
        }
        previous = line;
    }
    assert!(
        seen.contains("name") && seen.contains("id"),
        "{name}: {seen:?}"
    );
}

#[test]
fn pipeline_runs_to_success_and_hands_outputs_on() {
    let (_tmp, file) = written("pipeline");
    let run = run_to_success(&file);
    assert_eq!(run["tasks"].as_array().unwrap().len(), 4);
    assert_eq!(
        output_of(&file, &run, "fetch"),
        serde_json::json!({"version": "1.2.3"})
    );
}

#[test]
fn fanout_runs_one_instance_per_item_and_combines_them() {
    let (_tmp, file) = written("fanout");
    let run = run_to_success(&file);
    let combined = output_of(&file, &run, "combine");
    let items: Vec<&str> = combined["process"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["item"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["alpha", "beta", "gamma"], "{combined}");
    assert_eq!(combined["process"][1]["length"], 4);
}

#[test]
fn saga_runs_to_success_and_compensates_when_ship_fails() {
    let (_tmp, file) = written("saga");
    run_to_success(&file);

    // The template's own advice: make `ship` fail, and the two steps before it are undone.
    let text = std::fs::read_to_string(&file).unwrap();
    let ship = "command = [\"echo\", \"ship the order paid by {{ tasks.charge.output.payment }}\"]";
    assert!(text.contains(ship));
    let failing = file.with_file_name("saga-fail.toml");
    std::fs::write(&failing, text.replace(ship, "command = [\"false\"]")).unwrap();
    let data = failing.parent().unwrap().join("data-fail");
    let o = troupe(&data)
        .args(["run", failing.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["state"], "compensated", "{v}");
    assert_eq!(task_state(&v, "reserve"), "compensated");
    assert_eq!(task_state(&v, "charge"), "compensated");
    assert_eq!(task_state(&v, "ship"), "failed");
    let target = format!("{}/charge", v["id"].as_str().unwrap());
    let log = run_cmd_ok(&data, &["logs", &target, "--compensation"]);
    assert!(
        stdout(&log).contains("refund the payment"),
        "{}",
        stdout(&log)
    );
}

#[test]
fn agents_lead_spawns_two_children_and_combines_their_outputs() {
    let (_tmp, file) = written("agents");
    let run = run_to_success(&file);
    let lead = output_of(&file, &run, "lead");
    let children = lead.as_array().unwrap_or_else(|| panic!("{lead}"));
    assert_eq!(children.len(), 2, "{lead}");
    for (child, (key, words)) in children.iter().zip([("part-1", 2), ("part-2", 3)]) {
        assert_eq!(child["key"], key, "{lead}");
        assert_eq!(child["state"], "succeeded", "{lead}");
        assert_eq!(child["output"]["words"], words, "{lead}");
    }
    // Two child runs were spawned under the root, journaled as such.
    let data = file.parent().unwrap().join("data");
    let spawned = events(&data)
        .iter()
        .filter(|e| e["type"] == "run_spawned" && e["parent"] == run["id"])
        .count();
    assert_eq!(spawned, 2);
}

/// The swarm template validates, also with its `vote` line uncommented, and runs: two of the
/// three replicas agree on `{"answer": 42}` (a third still running is cancelled).
#[test]
fn swarm_validates_with_and_without_vote_and_runs() {
    let (tmp, file) = written("swarm");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\nreplicas = 3\n") && text.contains("\nquorum = 2\n"));
    let voting = tmp.path().join("voting.toml");
    assert!(text.contains("\n# vote = ["));
    std::fs::write(&voting, text.replace("\n# vote = [", "\nvote = [")).unwrap();
    for f in [&file, &voting] {
        let o = Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(["validate", "--json", f.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}: {}", f.display(), stdout(&o));
    }
    let data = tmp.path().join("data");
    let o = troupe(&data)
        .args(["run", file.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let run: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        output_of(&file, &run, "answer"),
        serde_json::json!({"answer": 42})
    );
}

#[test]
fn an_existing_file_is_refused_without_force_and_replaced_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("pipeline.toml");
    std::fs::write(&mine, "name = \"mine\"\n").unwrap();
    for args in [&["pipeline"][..], &["saga", "pipeline.toml"]] {
        let o = new_in(tmp.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.contains("pipeline.toml") && err.contains("--force"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&mine).unwrap(), "name = \"mine\"\n");
        assert_eq!(names_in(tmp.path()), ["pipeline.toml"], "no temp file left");
    }

    let o = new_in(tmp.path(), &["pipeline", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), source("pipeline"));
    assert_eq!(names_in(tmp.path()), ["pipeline.toml"], "no temp file left");
}

#[test]
fn an_unknown_template_is_refused_with_the_known_ones_and_the_closest() {
    let tmp = tempfile::tempdir().unwrap();
    let o = new_in(tmp.path(), &["pipline"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("`pipline`"), "{err}");
    assert!(err.contains("did you mean `pipeline`?"), "{err}");
    for name in TEMPLATES {
        assert!(err.contains(name), "{name} not listed: {err}");
    }
    // Nothing close: no suggestion, still the list.
    let o = new_in(tmp.path(), &["kubernetes"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(!err.contains("did you mean"), "{err}");
    assert!(err.contains("swarm"), "{err}");
    assert!(names_in(tmp.path()).is_empty(), "nothing written");
}

#[test]
fn a_missing_or_non_directory_parent_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let o = new_in(tmp.path(), &["fanout", "no/such/dir/flow.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("no/such/dir") && err.contains("does not exist"),
        "{err}"
    );
    assert!(names_in(tmp.path()).is_empty(), "nothing written");

    let o = new_in(tmp.path(), &["fanout", "missing/"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("missing/ does not exist"), "{err}");
    assert!(names_in(tmp.path()).is_empty(), "nothing written");

    std::fs::write(tmp.path().join("plain"), "").unwrap();
    let o = new_in(tmp.path(), &["fanout", "plain/flow.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("plain is not a directory"), "{err}");
    assert_eq!(names_in(tmp.path()), ["plain"]);
}

#[test]
fn a_directory_path_gets_the_template_name_and_odd_paths_are_quoted() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("flows")).unwrap();
    let o = new_in(tmp.path(), &["approval", "flows"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("flows/approval.toml")).unwrap(),
        source("approval")
    );
    assert!(
        stdout(&o).contains("troupe approve RUN/deploy"),
        "{}",
        stdout(&o)
    );

    let o = new_in(tmp.path(), &["swarm", "my flow.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("troupe validate 'my flow.toml'"),
        "{}",
        stdout(&o)
    );
    assert!(tmp.path().join("my flow.toml").is_file());
}

#[test]
fn new_without_a_template_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = new_in(tmp.path(), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(names_in(tmp.path()).is_empty());
}
