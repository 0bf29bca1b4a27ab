//! JSON workflow files: the same workflows as their TOML twins, and every bad input reported
//! at its line and column of the JSON text.

use super::*;

fn json(text: &str) -> Result<Workflow, SpecError> {
    WorkflowFormat::Json.parse(text)
}

/// Every problem of `text`, one `LINE:COLUMN: message` each.
fn problems(text: &str) -> Vec<String> {
    json(text)
        .unwrap_err()
        .to_string()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub(super) const TOML: &str = r#"
name = "release"
max_concurrency = 4
[pools]
cc = 2
[defaults]
timeout = "10m"
retry = { max_attempts = 3, initial_interval = "1s", backoff_coefficient = 2.0, max_interval = "1m", jitter = 0.1 }
env = { LC_ALL = "C" }
[[task]]
id = "build"
command = ["make", "-j2"]
cwd = "src"
pool = "cc"
compensate = ["make", "clean"]
labels = ["ci"]
[[task]]
id = "test"
shell = "make test && echo ok"
depends_on = ["build"]
priority = -5
retry = { max_attempts = 1 }
requires_approval = true
approval_timeout = "1h 30m"
env = { MSG = "caf\u00e9 \"ok\"\n" }
"#;

pub(super) const JSON: &str = r#"{
  "name": "release",
  "max_concurrency": 4,
  "pools": { "cc": 2 },
  "defaults": {
    "timeout": "10m",
    "retry": { "max_attempts": 3, "initial_interval": "1s", "backoff_coefficient": 2.0,
               "max_interval": "1m", "jitter": 1e-1 },
    "env": { "LC_ALL": "C" }
  },
  "task": [
    {
      "id": "build",
      "command": ["make", "-j2"],
      "cwd": "src",
      "pool": "cc",
      "compensate": ["make", "clean"],
      "labels": ["ci"]
    },
    {
      "id": "test",
      "shell": "make test && echo ok",
      "depends_on": ["build"],
      "priority": -5,
      "retry": { "max_attempts": 1 },
      "requires_approval": true,
      "approval_timeout": "1h 30m",
      "env": { "MSG": "caf\u00e9 \"ok\"\n" }
    }
  ]
}"#;

#[test]
fn a_json_workflow_is_the_same_workflow_as_its_toml_twin() {
    let from_json = json(JSON).unwrap();
    let from_toml = parse_workflow(TOML).unwrap();
    assert_eq!(from_json.spec(), from_toml.spec());
    assert_eq!(from_json.spec().tasks[1].env["MSG"], "café \"ok\"\n");
    let test = from_json.task_index("test").unwrap();
    assert_eq!(from_json.retry_policy(test).max_attempts, 1);
    assert_eq!(from_json.priority(test), -5);
}

#[test]
fn the_format_is_chosen_by_the_file_name() {
    use std::path::Path;
    assert_eq!(
        WorkflowFormat::of_path(Path::new("a/wf.json")),
        WorkflowFormat::Json
    );
    assert_eq!(
        WorkflowFormat::of_path(Path::new("WF.JSON")),
        WorkflowFormat::Json
    );
    for toml in ["wf.toml", "wf", "json", "wf.json.bak", "wf.jsonc"] {
        assert_eq!(
            WorkflowFormat::of_path(Path::new(toml)),
            WorkflowFormat::Toml
        );
    }
    assert_eq!("json".parse(), Ok(WorkflowFormat::Json));
    assert!("yaml".parse::<WorkflowFormat>().is_err());
}

#[test]
fn a_trailing_comma_is_reported_at_the_comma() {
    let e = problems(
        "{\n  \"name\": \"x\",\n  \"task\": [\n    { \"id\": \"a\", \"command\": [\"true\"], },\n  ]\n}\n",
    );
    assert_eq!(e, ["4:37: trailing comma before `}` (JSON allows none)"]);
    let e = problems("{\"name\": \"x\", \"task\": [{\"id\": \"a\", \"command\": [\"true\",]}]}");
    assert_eq!(e, ["1:54: trailing comma before `]` (JSON allows none)"]);
}

#[test]
fn other_syntax_errors_are_located() {
    let cases: &[(&str, &str)] = &[
        (
            "",
            "file is empty; a workflow needs at least `name` and one [[task]]",
        ),
        (
            "[1]",
            "1:1: a JSON workflow is one object: { \"name\": ..., \"task\": [ ... ] }",
        ),
        (
            "{\"name\": \"x\"} {}",
            "1:15: unexpected text after the workflow object",
        ),
        (
            "{\"name\": \"x\"",
            "1:13: unexpected end of file, expected `,` or `}` after an object member",
        ),
        (
            "{\"name\" \"x\"}",
            "1:9: expected `:` after the key, found `\"`",
        ),
        (
            "{name: \"x\"}",
            "1:2: expected a key in double quotes, found `n`",
        ),
        ("{\"name\": 'x'}", "1:10: expected a value, found `'`"),
        (
            "{\"name\": \"x\n\"}",
            "1:12: control character '\\n' in a string (write it as an escape, e.g. \\n)",
        ),
        (
            "{\"name\": \"x}",
            "1:10: string is never closed (no ending `\"`)",
        ),
        (
            "{\"name\": \"a\\nb",
            "1:10: string is never closed (no ending `\"`)",
        ),
        (
            "{\"name\": \"\\x\"}",
            "1:11: invalid escape (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
        ),
        (
            "{\"name\": \"\\ud800\"}",
            "1:11: \\u escape of a lone UTF-16 surrogate",
        ),
        (
            "{\"name\": \"\\u12\"}",
            "1:11: invalid \\u escape (four hex digits expected)",
        ),
        (
            "{\"max_concurrency\": 01}",
            "1:21: invalid number: leading zero",
        ),
        ("{\"max_concurrency\": 1.}", "1:21: invalid number"),
        ("{\"max_concurrency\": -}", "1:21: invalid number"),
        (
            "{\"max_concurrency\": tru}",
            "1:21: expected a value, found `t`",
        ),
        (
            "{\"a\": [1 2]}",
            "1:10: expected `,` or `]` after an array element, found `2`",
        ),
        (
            "\u{feff}{}",
            "1:1: a JSON workflow is one object: { \"name\": ..., \"task\": [ ... ] }",
        ),
    ];
    for (text, want) in cases {
        let got = json(text).unwrap_err().to_string();
        assert_eq!(&got, want, "for {text:?}");
    }
}

#[test]
fn nulls_and_duplicate_keys_are_all_reported() {
    let e = problems(
        "{\"name\": \"x\",\n \"max_concurrency\": null,\n \"name\": \"y\",\n \
         \"task\": [{\"id\": \"a\", \"command\": null}]}",
    );
    assert_eq!(
        e,
        [
            "2:21: `null` is not a value in a workflow file; leave the field out instead",
            "3:2: duplicate key `name`",
            "4:34: `null` is not a value in a workflow file; leave the field out instead",
        ]
    );
}

#[test]
fn nesting_is_capped() {
    let deep = format!("{{\"name\": {}{}}}", "[".repeat(200), "]".repeat(200));
    let e = problems(&deep);
    assert_eq!(e, ["1:137: arrays and objects nested more than 128 deep"]);
    let ok = format!("{{\"a\": {}{}}}", "[".repeat(127), "]".repeat(127));
    assert!(!problems(&ok)[0].contains("nested"), "{ok}");
}

#[test]
fn unknown_field_is_located() {
    let e = problems(
        "{\n  \"name\": \"x\",\n  \"task\": [\n    {\"id\": \"a\", \"command\": [\"true\"],\n     \"colour\": \"red\"}\n  ]\n}",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("5:6: unknown field `colour`, expected one of `id`"),
        "{e:?}"
    );
}

#[test]
fn wrong_types_are_located() {
    let e = problems(
        "{\"name\": \"x\",\n \"max_concurrency\": \"many\",\n \"pools\": [],\n \
         \"task\": [{\"id\": \"a\", \"command\": \"true\", \"priority\": 1.5,\n \
         \"requires_approval\": \"yes\", \"retry\": {\"max_attempts\": 3.0}}]}",
    );
    assert_eq!(
        e,
        [
            "2:21: invalid type: string \"many\", expected u32",
            "3:11: invalid type: array, expected a table of pool = slots",
            "4:34: invalid type: string \"true\", expected a sequence",
            "4:54: invalid type: floating point `1.5`, expected i32",
            "5:23: invalid type: string \"yes\", expected a boolean",
            "5:56: invalid type: floating point `3.0`, expected u32",
        ]
    );
    let e = problems("{\"name\": \"x\", \"task\": {\"id\": \"a\"}}");
    assert_eq!(
        e,
        ["1:23: invalid type: table, expected an array of tables ([[task]])"]
    );
}

#[test]
fn bad_duration_is_located() {
    let e = problems(
        "{\"name\": \"x\",\n \"task\": [{\"id\": \"a\", \"command\": [\"true\"],\n   \"timeout\": \"10 parsecs\"}]}",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("3:15: invalid duration \"10 parsecs\""),
        "{e:?}"
    );
}

#[test]
fn unknown_dependency_is_located() {
    let e = problems(
        "{\"name\": \"x\",\n \"task\": [\n  {\"id\": \"deploy\", \"command\": [\"true\"],\n   \"depends_on\": [\"build\", \"biuld\"]},\n  {\"id\": \"build\", \"command\": [\"true\"]}]}",
    );
    assert_eq!(
        e,
        ["4:28: task `deploy` depends on `biuld`, which is not a task in this workflow"]
    );
}

#[test]
fn cycle_is_located() {
    let e = problems(
        "{\"name\": \"x\", \"task\": [\n\
         {\"id\": \"a\", \"command\": [\"true\"], \"depends_on\": [\"b\"]},\n\
         {\"id\": \"b\", \"command\": [\"true\"], \"depends_on\": [\"a\"]}]}",
    );
    assert_eq!(e, ["3:8: dependency cycle: b → a → b"]);
}

#[test]
fn duplicate_id_is_located() {
    let e = problems(
        "{\"name\": \"x\", \"task\": [\n\
         {\"id\": \"a\", \"command\": [\"true\"]},\n\
         {\"id\": \"a\", \"shell\": \"true\"}]}",
    );
    assert_eq!(e, ["3:8: duplicate task id `a` (first defined on line 2)"]);
}

#[test]
fn missing_fields_point_at_the_object() {
    let e = problems("{\"task\": [\n  {\"command\": [\"true\"]}]}");
    assert_eq!(e, ["1:1: missing field `name`", "2:3: missing field `id`"]);
}

#[test]
fn non_utf8_json_names_its_format() {
    let e = WorkflowFormat::Json
        .parse_bytes(b"{\"name\": \"caf\xe9\"}")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "1:14: file is not valid UTF-8 (JSON files must be UTF-8)"
    );
}

/// The parser accepts exactly what `serde_json` accepts (on the shapes a workflow has).
#[test]
fn accepts_what_serde_json_accepts() {
    let texts = [
        r#"{"a": [1, -0, 0.5, 1e3, 1E+3, -1.5e-3, true, false, "x\u00e9\ud83d\ude00\/"]}"#,
        r#"{ "a" : { } , "b" : [ ] }"#,
        "{\"a\":\t\r\n1}",
        r#"{"a": 1,}"#,
        r#"{"a": [1,]}"#,
        r#"{"a": 01}"#,
        r#"{"a": .5}"#,
        r#"{"a": 1.}"#,
        r#"{"a": 1e}"#,
        r#"{"a": +1}"#,
        r#"{"a": "\u00"}"#,
        r#"{"a": "\udc00"}"#,
        r#"{"a": 'x'}"#,
        r#"{"a": 1} x"#,
        r#"{"a" 1}"#,
        "{\"a\": \"\t\"}",
        r#"{"a": [1 2]}"#,
        r#"{"a": nul}"#,
        r#"{"a": True}"#,
        "{\"a\": 1} \n ",
        r#"{"a": "unterminated}"#,
    ];
    for text in texts {
        let theirs = serde_json::from_str::<serde_json::Value>(text).is_ok();
        let ours = json::tree(text).is_ok();
        assert_eq!(ours, theirs, "for {text}");
    }
}
