//! `troupe validate` and `troupe graph` driven as a user would: the real binary, real files.
//! Every bad input from the "Durable core" issue has a test here that checks the exit code
//! (2) and that the message names the problem and its place.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn troupe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        Case {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

fn validate(path: &Path) -> Output {
    troupe().arg("validate").arg(path).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Validates `text` and expects exit 2 with `needle` in stderr; returns stderr.
fn invalid(text: &str, needle: &str) -> String {
    let case = Case::new();
    let path = case.file("wf.toml", text);
    let out = validate(&path);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    assert!(
        err.contains(&format!("{}:", path.display())),
        "error does not name the file:\n{err}"
    );
    err
}

const HEAD: &str = "name = \"wf\"\n";

#[test]
fn valid_examples_pass() {
    for file in [
        "examples/release.toml",
        "examples/wordfreq/wordfreq.toml",
        "examples/handoff/sources.toml",
    ] {
        let out = validate(Path::new(file));
        assert_eq!(out.status.code(), Some(0), "{file}: {}", stderr(&out));
        assert!(stdout(&out).contains("valid workflow"), "{}", stdout(&out));
    }
    let out = validate(Path::new("examples/wordfreq/wordfreq.toml"));
    assert!(
        stdout(&out).contains("22 tasks"),
        "wordfreq has 22 tasks: {}",
        stdout(&out)
    );
}

#[test]
fn validate_json_reports_errors_with_positions() {
    let case = Case::new();
    let path = case.file(
        "wf.toml",
        format!("{HEAD}[[task]]\nid = \"a\"\ncommand = [\"true\"]\ndepends_on = [\"zz\"]\n"),
    );
    let out = troupe()
        .args(["validate", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 5);
    assert_eq!(v["errors"][0]["column"], 15);
}

#[test]
fn cycle_shows_the_path() {
    let err = invalid(
        &format!(
            "{HEAD}[[task]]\nid = \"a\"\ncommand = [\"true\"]\ndepends_on = [\"c\"]\n\
             [[task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n\
             [[task]]\nid = \"c\"\ncommand = [\"true\"]\ndepends_on = [\"b\"]\n"
        ),
        "dependency cycle: ",
    );
    let cycle = err.lines().next().unwrap();
    assert!(
        ["a → b → c → a", "b → c → a → b", "c → a → b → c"]
            .iter()
            .any(|p| cycle.ends_with(p)),
        "{cycle}"
    );
}

#[test]
fn missing_dependency_names_it_and_the_task() {
    invalid(
        &format!(
            "{HEAD}[[task]]\nid = \"deploy\"\ncommand = [\"true\"]\ndepends_on = [\"biuld\"]\n"
        ),
        ":5:15: task `deploy` depends on `biuld`, which is not a task in this workflow",
    );
}

#[test]
fn duplicate_task_id() {
    invalid(
        &format!("{HEAD}[[task]]\nid = \"a\"\ncommand = [\"true\"]\n[[task]]\nid = \"a\"\nshell = \"true\"\n"),
        ":6:6: duplicate task id `a` (first defined on line 3)",
    );
}

#[test]
fn invalid_id_characters() {
    invalid(
        &format!("{HEAD}[[task]]\nid = \"build/all\"\ncommand = [\"true\"]\n"),
        ":3:6: task id `build/all` contains '/'",
    );
}

#[test]
fn both_command_and_shell() {
    invalid(
        &format!("{HEAD}[[task]]\nid = \"a\"\ncommand = [\"true\"]\nshell = \"true\"\n"),
        "task `a` sets both `command` and `shell`",
    );
}

#[test]
fn neither_command_nor_shell() {
    invalid(
        &format!("{HEAD}[[task]]\nid = \"a\"\n"),
        "task `a` has neither `command` nor `shell`",
    );
}

#[test]
fn empty_argv() {
    invalid(
        &format!("{HEAD}[[task]]\nid = \"a\"\ncommand = []\n"),
        ":4:11: task `a`: `command` is empty",
    );
}

#[test]
fn unknown_pool() {
    invalid(
        &format!(
            "{HEAD}[pools]\ncc = 2\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\npool = \"gpu\"\n"
        ),
        ":7:8: task `a` uses pool `gpu`, which is not declared under [pools] (declared: cc)",
    );
}

#[test]
fn unknown_field_with_line_and_column() {
    invalid(
        &format!("{HEAD}[[task]]\nid = \"a\"\ncommand = [\"true\"]\ncolour = \"red\"\n"),
        ":5:1: unknown field `colour`",
    );
}

#[test]
fn bad_duration() {
    invalid(
        &format!("{HEAD}[[task]]\nid = \"a\"\ncommand = [\"true\"]\ntimeout = \"10 parsecs\"\n"),
        ":5:11: invalid duration \"10 parsecs\"",
    );
}

#[test]
fn non_utf8_file() {
    let case = Case::new();
    let path = case.file("wf.toml", b"name = \"wf\"\n# na\xefve\n");
    let out = validate(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(":2:5: file is not valid UTF-8"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn empty_file() {
    invalid("", "file is empty");
    invalid("\n  \n", "file is empty");
}

#[test]
fn fifty_megabyte_file_is_refused_by_size() {
    let case = Case::new();
    let path = case.dir.path().join("big.toml");
    let file = std::fs::File::create(&path).unwrap();
    // Sparse: 50 MB without writing 50 MB.
    file.set_len(50 * 1000 * 1000).unwrap();
    let out = validate(&path);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("file is 47.7 MiB, larger than the 32 MiB limit"),
        "{err}"
    );
}

#[test]
fn missing_file_and_directory() {
    let case = Case::new();
    let out = validate(&case.dir.path().join("nope.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the file"),
        "{}",
        stderr(&out)
    );
    let out = validate(case.dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
}

#[test]
fn several_problems_are_all_reported() {
    let err = invalid(
        &format!(
            "{HEAD}[[task]]\nid = \"a\"\ncommand = []\n[[task]]\nid = \"b\"\ncommand = [\"x\"]\npool = \"p\"\n"
        ),
        "2 problems found",
    );
    assert!(err.contains("`command` is empty"));
    assert!(err.contains("pool `p`"));
}

#[test]
fn graph_formats() {
    let case = Case::new();
    let path = case.file(
        "wf.toml",
        format!(
            "{HEAD}[[task]]\nid = \"a\"\ncommand = [\"true\"]\n[[task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n"
        ),
    );
    let dot = troupe().arg("graph").arg(&path).output().unwrap();
    assert_eq!(dot.status.code(), Some(0));
    assert!(stdout(&dot).contains("\"a\" -> \"b\";"), "{}", stdout(&dot));
    let mermaid = troupe()
        .args(["graph", "--format", "mermaid"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(mermaid.status.code(), Some(0));
    assert!(stdout(&mermaid).starts_with("flowchart LR\n"));
    assert!(stdout(&mermaid).contains("t0 --> t1"));
    let bad = troupe()
        .args(["graph", "--format", "png"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn graph_of_invalid_file_exits_2() {
    let case = Case::new();
    let path = case.file("wf.toml", "name = 1\n");
    let out = troupe().arg("graph").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(":1:8:"), "{}", stderr(&out));
}

#[test]
fn errors_in_several_tasks_are_all_reported_in_file_order() {
    // Task 1: unknown field; task 2: wrong type; task 3 depends on task 2 (which did not
    // read, but keeps its id); task 4: unknown dependency.
    let err = invalid(
        &format!(
            "{HEAD}[[task]]\nid = \"a\"\ncommand = [\"true\"]\ncolour = \"red\"\n\
             [[task]]\nid = \"b\"\ncommand = [\"true\"]\ntimeout = 90\n\
             [[task]]\nid = \"c\"\ncommand = [\"true\"]\ndepends_on = [\"b\"]\n\
             [[task]]\nid = \"d\"\ncommand = [\"true\"]\ndepends_on = [\"a\", \"nope\"]\n"
        ),
        "3 problems found",
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(".toml:")).collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].contains(":5:1: unknown field `colour`"), "{err}");
    assert!(
        lines[1].contains(":9:11: invalid type: integer `90`, expected a string"),
        "{err}"
    );
    assert!(
        lines[2].contains(":17:20: task `d` depends on `nope`, which is not a task"),
        "{err}"
    );
}

#[test]
fn ten_thousand_character_ids_are_cut_in_errors() {
    let long = "x".repeat(10_000);
    for text in [
        format!("{HEAD}[[task]]\nid = \"{long}\"\ncommand = [\"true\"]\n"),
        format!("{HEAD}[[task]]\nid = \"a\"\ncommand = [\"true\"]\ndepends_on = [\"{long}\"]\n"),
        format!("{HEAD}[[task]]\nid = \"a\"\ncommand = [\"true\"]\n\"{long}\" = 1\n"),
    ] {
        let err = invalid(&text, "(10000 characters)");
        assert!(err.len() < 2_000, "{} bytes:\n{err}", err.len());
    }
}

#[test]
fn control_characters_in_the_name_are_refused() {
    for name in [
        "release\\nrun 01JD3X5Q8R2N6V7W0Y4Z9A1B2C succeeded",
        "\\u001b[2J",
    ] {
        let err = invalid(
            &format!("name = \"{name}\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n"),
            ":1:8: `name` contains the control character",
        );
        assert_eq!(err.lines().count(), 2, "one problem and the summary: {err}");
        assert!(!err.contains('\u{1b}'), "{err:?}");
    }
}

#[test]
fn durations_over_a_hundred_years_are_refused() {
    invalid(
        &format!(
            "{HEAD}[[task]]\nid = \"a\"\ncommand = [\"true\"]\n\
             retry = {{ max_interval = \"1000000years\", initial_interval = \"1000000years\" }}\n"
        ),
        ":5:9: task `a`: retry: initial_interval (1000000years) is longer than the limit of \
         36500 days (100 years)",
    );
    invalid(
        &format!("{HEAD}[[task]]\nid = \"a\"\ncommand = [\"true\"]\ntimeout = \"1000000years\"\n"),
        ":5:11: task `a`: timeout (1000000years) is longer than the limit",
    );
}

/// A JSON workflow (chosen by the `.json` name): the same format, in JSON.
const JSON_OK: &str = r#"{
  "name": "json-wf",
  "defaults": { "timeout": "1m", "retry": { "max_attempts": 2 } },
  "task": [
    { "id": "write", "shell": "echo hello > out.txt" },
    { "id": "check", "command": ["grep", "-q", "hello", "out.txt"], "depends_on": ["write"] }
  ]
}
"#;

#[test]
fn validate_and_graph_a_json_workflow() {
    let case = Case::new();
    let path = case.file("x.json", JSON_OK);
    let out = validate(&path);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("valid workflow"), "{}", stdout(&out));
    let out = troupe().arg("graph").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("write"), "{}", stdout(&out));
}

/// Validates `text` as `x.json`: exit 2 and stderr.
fn invalid_json(text: &str) -> (PathBuf, String, tempfile::TempDir) {
    let case = Case::new();
    let path = case.file("x.json", text);
    let out = validate(&path);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    (path, err, case.dir)
}

#[test]
fn json_syntax_error_names_file_line_and_column() {
    let (path, err, _dir) = invalid_json(
        "{\n  \"name\": \"x\",\n  \"task\": [\n    { \"id\": \"a\", \"command\": [\"true\"] },\n  ]\n}\n",
    );
    let want = format!(
        "{}:4:39: trailing comma before `]` (JSON allows none)",
        path.display()
    );
    assert!(err.contains(&want), "expected {want:?} in:\n{err}");
}

#[test]
fn json_field_and_value_problems_name_file_line_and_column() {
    let (path, err, _dir) = invalid_json(
        "{\n  \"name\": \"x\",\n  \"task\": [\n    \
         { \"id\": \"a\", \"command\": [\"true\"], \"timeout\": \"10 parsecs\" },\n    \
         { \"id\": \"b\", \"command\": [\"true\"], \"depends_on\": [\"zz\"], \"colour\": 1 }\n  ]\n}\n",
    );
    let p = path.display();
    for want in [
        format!("{p}:4:50: invalid duration \"10 parsecs\""),
        format!("{p}:5:54: task `b` depends on `zz`, which is not a task in this workflow"),
        format!("{p}:5:61: unknown field `colour`"),
    ] {
        assert!(err.contains(&want), "expected {want:?} in:\n{err}");
    }
}

#[test]
fn run_a_json_workflow_to_success() {
    let case = Case::new();
    let path = case.file("x.json", JSON_OK);
    let data = case.dir.path().join("data");
    let out = troupe()
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "warn")
        // Port 0: parallel tests must not fight over the default HTTP port.
        .env("TROUPE_HTTP_ADDR", "127.0.0.1:0")
        .arg("run")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let written = std::fs::read_to_string(case.dir.path().join("out.txt")).unwrap();
    assert_eq!(written, "hello\n");
}
