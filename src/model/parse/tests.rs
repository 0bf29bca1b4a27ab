//! The parser's tests, through its entry points.

use std::time::Duration;

use super::*;
use crate::model::spec::Command;

fn err(text: &str) -> String {
    parse_workflow(text).unwrap_err().to_string()
}

const OK: &str = r#"
name = "release"
max_concurrency = 4
[pools]
cc = 2
[defaults]
timeout = "10m"
retry = { max_attempts = 3, initial_interval = "1s", backoff_coefficient = 2.0, max_interval = "1m" }
env = { LC_ALL = "C" }
[[task]]
id = "build"
command = ["make", "-j2"]
cwd = "src"
pool = "cc"
compensate = ["make", "clean"]
[[task]]
id = "test"
shell = "make test && echo ok"
depends_on = ["build"]
priority = 5
retry = { max_attempts = 1 }
requires_approval = true
approval_timeout = "1h"
"#;

#[test]
fn parses_the_design_example() {
    let wf = parse_workflow(OK).unwrap();
    let spec = wf.spec();
    assert_eq!(spec.name, "release");
    assert_eq!(spec.max_concurrency, Some(4));
    assert_eq!(spec.pools["cc"], 2);
    assert_eq!(spec.tasks.len(), 2);
    assert_eq!(
        spec.tasks[1].command,
        Command::Shell("make test && echo ok".into())
    );
    let test = wf.task_index("test").unwrap();
    assert_eq!(wf.retry_policy(test).max_attempts, 1);
    assert_eq!(wf.retry_policy(test).max_interval, Duration::from_secs(60));
    assert_eq!(wf.timeout(test), Some(Duration::from_secs(600)));
    assert_eq!(wf.priority(test), 5);
    assert!(wf.requires_approval(test));
    assert!(wf.is_saga());
}

#[test]
fn unknown_field_names_line_and_column() {
    let e = err("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ncolour = \"red\"\n");
    assert!(e.starts_with("5:1: unknown field `colour`"), "{e}");
}

#[test]
fn bad_duration_is_located() {
    let e =
        err("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ntimeout = \"10 parsecs\"\n");
    assert!(
        e.starts_with("5:11: invalid duration \"10 parsecs\""),
        "{e}"
    );
}

#[test]
fn empty_and_non_utf8_files() {
    assert!(err("  \n").contains("file is empty"));
    let e = parse_workflow_bytes(b"name = \"x\"\n# caf\xe9\n")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "2:6: file is not valid UTF-8 (TOML files must be UTF-8)");
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let big = vec![b'#'; MAX_WORKFLOW_BYTES + 1];
    let e = parse_workflow_bytes(&big).unwrap_err().to_string();
    assert!(e.contains("larger than the 32 MiB limit"), "{e}");
}

#[test]
fn command_and_shell_rules() {
    let e = err("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nshell = \"true\"\n");
    assert!(
        e.contains("task `a` sets both `command` and `shell`"),
        "{e}"
    );
    let e = err("name = \"x\"\n[[task]]\nid = \"a\"\n");
    assert!(
        e.contains("task `a` has neither `command` nor `shell`"),
        "{e}"
    );
    let e = err("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = []\n");
    assert!(e.contains("4:11: task `a`: `command` is empty"), "{e}");
}

fn lines(text: &str) -> Vec<String> {
    err(text).lines().map(str::to_owned).collect()
}

#[test]
fn field_errors_in_several_tasks_are_all_reported_with_the_others() {
    // Task 1: unknown field; task 2 depends on task 3, which has a wrong type (so task 2's
    // dependency is not "unknown"); task 4: an unknown dependency.
    let e = lines(
        "name = \"x\"\n\
         [[task]]\nid = \"a\"\ncommand = [\"true\"]\ncolour = \"red\"\n\
         [[task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"c\"]\n\
         [[task]]\nid = \"c\"\ncommand = [\"true\"]\npriority = \"high\"\n\
         [[task]]\nid = \"d\"\ncommand = [\"true\"]\ndepends_on = [\"nope\"]\n",
    );
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(
        e[0].starts_with("5:1: unknown field `colour`, expected one of `id`"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("13:12: invalid type: string \"high\", expected i32"),
        "{e:?}"
    );
    assert_eq!(
        e[2],
        "17:15: task `d` depends on `nope`, which is not a task in this workflow"
    );
}

#[test]
fn one_task_reports_every_bad_field() {
    let e = lines(
        "name = \"x\"\n[[task]]\nid = \"a\"\ncommand = \"true\"\n\
         timeout = \"soon\"\nretry = { max_attempts = -1, jitter = \"some\" }\n",
    );
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(
        e[0].starts_with("4:11: invalid type: string \"true\""),
        "{e:?}"
    );
    assert!(e[1].starts_with("5:11: invalid duration \"soon\""), "{e:?}");
    assert!(e[2].starts_with("6:26: "), "{e:?}");
    assert!(
        e[3].starts_with("6:39: invalid type: string \"some\""),
        "{e:?}"
    );
}

#[test]
fn a_task_without_a_readable_id_is_left_out_of_the_checks() {
    let e = lines(
        "name = \"x\"\n[[task]]\ncommand = [\"true\"]\n\
         [[task]]\nid = \"b b\"\ncommand = [\"true\"]\n\
         [[task]]\nid = \"c\"\nshell = \"true\"\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0], "2:1: missing field `id`");
    assert!(e[1].starts_with("5:6: task id `b b` contains ' '"), "{e:?}");
    let e = lines("name = \"a\\tb\"\n[[task]]\nid = 7\ncommand = [\"true\"]\n");
    assert_eq!(e.len(), 2, "no \"workflow has no tasks\": {e:?}");
    assert!(
        e[0].starts_with("1:8: `name` contains the control character"),
        "{e:?}"
    );
    assert!(e[1].starts_with("3:6: invalid type: integer `7`"), "{e:?}");
}

#[test]
fn broken_defaults_leave_tasks_to_structure_checks() {
    // Without the broken requires_approval, the task's approval_timeout would be an error.
    let e = lines(
        "name = \"x\"\n[defaults]\nrequires_approval = \"yes\"\n\
         [[task]]\nid = \"a\"\ncommand = [\"true\"]\napproval_timeout = \"1h\"\n\
         depends_on = [\"zz\"]\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("3:21: invalid type: string \"yes\", expected a boolean"));
    assert!(
        e[1].contains("depends on `zz`, which is not a task"),
        "{e:?}"
    );
    let e = lines(
        "name = \"x\"\ndefaults = 1\n\
         [[task]]\nid = \"a\"\ncommand = [\"true\"]\napproval_timeout = \"1h\"\n",
    );
    assert_eq!(e, ["2:12: invalid type: integer, expected a table"]);
}

#[test]
fn top_level_problems_are_all_reported() {
    let e = lines("max_concurrency = \"many\"\npools = 3\ncolour = 1\ntask = 5\n");
    assert_eq!(e.len(), 5, "{e:?}");
    assert!(e[0].starts_with("1:1: missing field `name`"), "{e:?}");
    assert!(
        e[1].starts_with("1:19: invalid type: string \"many\""),
        "{e:?}"
    );
    assert!(
        e[2].starts_with("2:9: invalid type: integer, expected a table"),
        "{e:?}"
    );
    assert!(e[3].starts_with("3:1: unknown field `colour`"), "{e:?}");
    assert!(
        e[4].starts_with("4:8: invalid type: integer, expected an array"),
        "{e:?}"
    );
}

#[test]
fn every_syntax_error_is_reported() {
    let e = lines(
        "name = \"x\"\n[[task]]\nid = \"a\"\ntimeout = 10m\ncommand = [\"true\"]\n\
         [[task]]\nid = \"b\"\ncommand = [\"true\"]\npriority = 1 2\nid = \"c\"\n",
    );
    assert_eq!(
        e,
        [
            "4:11: string values must be quoted, expected literal string",
            "9:12: string values must be quoted, expected literal string",
            "10:1: duplicate key",
        ]
    );
    // Only syntax errors: the unknown field is not reported until they are fixed.
    let e = lines("name = \"x\"\ncolour = 1\n[[task]\nid = \"a\"\n");
    assert_eq!(e, ["3:8: unclosed array table, expected `]`"]);
}

#[test]
fn an_unclosed_bracket_is_not_reported_once_per_line() {
    // The parser reads everything after `[` as array elements, with an error on each line.
    let e = lines(
        "name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"\n\
         [[task]]\nid = \"b\"\ntimeout = 10m\ncommand = [\"true\"]\n",
    );
    assert_eq!(
        e,
        [
            "5:1: missing comma between array elements, expected `,`",
            "8:19: unclosed array, expected `]`",
        ]
    );
    let e = lines("name = \"x\"\nretry = { max_attempts = 3\nfoo = 1\nbar = 2\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[1].contains("unclosed inline table"), "{e:?}");
}

#[test]
fn durations_over_a_century_are_refused_with_their_place() {
    let e = lines(
        "name = \"x\"\n[defaults]\ntimeout = \"1000000years\"\n\
         retry = { max_interval = \"1000000years\", initial_interval = \"1000000years\" }\n\
         [[task]]\nid = \"a\"\ncommand = [\"true\"]\nrequires_approval = true\n\
         approval_timeout = \"36501days\"\n\
         compensate = [\"undo\"]\ncompensate_retry = { initial_interval = \"200years\" }\n",
    );
    assert_eq!(e.len(), 5, "{e:?}");
    assert_eq!(
        e[0],
        "3:11: [defaults] timeout (1000000years) is longer than the limit of 36500 days \
         (100 years)"
    );
    assert!(e[1].starts_with("4:9: [defaults] retry: initial_interval (1000000years)"));
    assert!(e[2].starts_with("4:9: [defaults] retry: max_interval (1000000years)"));
    assert!(
        e[3].starts_with("9:20: task `a`: approval_timeout (99years 11months"),
        "{e:?}"
    );
    assert!(
        e[4].starts_with("11:20: task `a`: compensate_retry: initial_interval (200years)"),
        "{e:?}"
    );
    assert!(parse_workflow(
        "name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ntimeout = \"36500days\"\n"
    )
    .is_ok());
}

#[test]
fn control_characters_in_the_name_are_refused() {
    for (name, shown) in [
        ("\\nforged line", "'\\n'"),
        ("\\u001b[2J", "'\\u{1b}'"),
        ("a\\tb", "'\\t'"),
        ("a\\u007f", "'\\u{7f}'"),
        ("a\\u0085", "'\\u{85}'"),
    ] {
        let e = lines(&format!(
            "name = \"{name}\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n"
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(&format!(
                "1:8: `name` contains the control character {shown}"
            )),
            "{e:?}"
        );
    }
    assert!(parse_workflow(
        "name = \"Release 2.0 — ünïcode\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n"
    )
    .is_ok());
}

#[test]
fn control_characters_in_pools_labels_and_keys_are_refused_and_escaped() {
    let e = lines(
        "name = \"x\"\n[pools]\n\"a\\nb\" = 1\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n\
         labels = [\"ok\", \"\\u001b[2J\"]\npool = \"\\r\"\n\"\\u001b]0;x\" = 1\n",
    );
    // The unknown field makes the task structure-only: its labels and pool wait.
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with(r"3:1: pool name `a\nb` may only use letters"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with(r"9:1: unknown field `\u{1b}]0;x`"),
        "{e:?}"
    );
    assert!(e.iter().all(|l| !l.contains('\u{1b}')), "{e:?}");
    let e = lines(
        "name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n\
         labels = [\"ok\", \"\\u001b[2J\"]\npool = \"\\r\"\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with(r"5:10: task `a`: label `\u{1b}[2J` may only use"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with(r"6:8: task `a` uses pool `\r`, which is not declared"),
        "{e:?}"
    );
}

#[test]
fn long_user_text_is_cut_in_messages() {
    let long = "a".repeat(10_000);
    let head = "a".repeat(crate::model::quote::QUOTED_PREFIX_CHARS);
    let cases = [
        format!("name = \"x\"\n[[task]]\nid = \"{long}\"\ncommand = [\"true\"]\n"),
        format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ndepends_on = [\"{long}\"]\n"),
        format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n{long} = 1\n"),
        format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ntimeout = \"{long}\"\n"),
        format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ntimeout = \"1{long}\"\n"),
        format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\npriority = \"{long}\"\n"),
        format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\npool = \"{long}\"\n"),
        format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nlabels = [\"{long}!\"]\n"),
        format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nenv = {{ \"{long}=\" = \"1\" }}\n"),
    ];
    for text in cases {
        let e = err(&text);
        assert!(e.len() < 500, "{e}");
        assert!(e.contains(&format!("{head}…")), "{e}");
        assert!(
            e.contains("(10000 characters)") || e.contains("(10001 characters)"),
            "{e}"
        );
    }
}
