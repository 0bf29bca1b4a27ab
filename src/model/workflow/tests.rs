use super::*;
use crate::model::parse::parse_workflow;
use crate::model::spec::Command;

fn errors(text: &str) -> Vec<String> {
    parse_workflow(text)
        .unwrap_err()
        .to_string()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn tasks(body: &str) -> String {
    format!("name = \"wf\"\n{body}")
}

#[test]
fn cycle_shows_its_path() {
    let e = errors(&tasks(
        "[[task]]\nid = \"a\"\ncommand = [\"true\"]\ndepends_on = [\"b\"]\n\
         [[task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].ends_with("dependency cycle: a → b → a")
            || e[0].ends_with("dependency cycle: b → a → b"),
        "{e:?}"
    );
    assert!(
        e[0].starts_with("3:6:") || e[0].starts_with("7:6:"),
        "{e:?}"
    );
}

#[test]
fn self_dependency_is_a_cycle() {
    let e = errors(&tasks(
        "[[task]]\nid = \"a\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n",
    ));
    assert_eq!(e, ["5:15: task `a` depends on itself (cycle: a → a)"]);
}

#[test]
fn missing_dependency_names_it_and_the_task() {
    let e = errors(&tasks(
        "[[task]]\nid = \"deploy\"\ncommand = [\"true\"]\ndepends_on = [\"biuld\"]\n",
    ));
    assert_eq!(
        e,
        ["5:15: task `deploy` depends on `biuld`, which is not a task in this workflow"]
    );
}

#[test]
fn duplicate_id_points_at_both() {
    let e = errors(&tasks(
        "[[task]]\nid = \"a\"\ncommand = [\"true\"]\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n",
    ));
    assert_eq!(e, ["6:6: duplicate task id `a` (first defined on line 3)"]);
}

#[test]
fn invalid_id_characters() {
    let e = errors(&tasks("[[task]]\nid = \"a b\"\ncommand = [\"true\"]\n"));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("3:6: task id `a b` contains ' '"), "{e:?}");
}

#[test]
fn unknown_pool_lists_declared_pools() {
    let e = errors(&tasks(
        "[pools]\ncc = 2\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\npool = \"gpu\"\n",
    ));
    assert_eq!(
        e,
        ["7:8: task `a` uses pool `gpu`, which is not declared under [pools] (declared: cc)"]
    );
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let e = errors(&tasks(
        "max_concurrency = 0\n[pools]\ncc = 0\n[[task]]\nid = \"a\"\ncommand = [\"\"]\n\
         retry = { jitter = 3.0 }\n[[task]]\nid = \"b\"\nshell = \" \"\ntimeout = \"0s\"\n",
    ));
    assert_eq!(e.len(), 6, "{e:?}");
    assert!(
        e[0].starts_with("2:19: `max_concurrency` must be at least 1"),
        "{e:?}"
    );
    assert!(e[1].starts_with("4:1: pool `cc` has 0 slots"));
    assert!(e[2].contains("program name (`command[0]`) is empty"));
    assert!(e[3].contains("retry: jitter must be between"));
    assert!(e[4].contains("task `b`: the shell line is empty"));
    assert!(e[5].contains("task `b`: timeout must be longer than 0s"));
}

#[test]
fn a_cycle_is_reported_alongside_field_problems() {
    let e = errors(&tasks(
        "[[task]]\nid = \"a\"\ncommand = [\"true\"]\npool = \"nope\"\ndepends_on = [\"b\"]\n\
         [[task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e.iter().any(|l| l.contains("pool `nope`")), "{e:?}");
    assert!(e.iter().any(|l| l.contains("dependency cycle")), "{e:?}");
}

#[test]
fn retry_tables_are_checked_merged() {
    let e = errors(&tasks(
        "[defaults]\nretry = { max_interval = \"1m\" }\n\
         [[task]]\nid = \"a\"\ncommand = [\"true\"]\nretry = { initial_interval = \"10m\" }\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("max_interval (1m) is shorter than initial_interval (10m) once merged"),
        "{e:?}"
    );
}

#[test]
fn a_repeat_in_a_long_dependency_list_is_found() {
    let mut text = String::from("name = \"wf\"\n");
    for i in 0..3000 {
        text.push_str(&format!("[[task]]\nid = \"t{i}\"\ncommand = [\"true\"]\n"));
    }
    let deps: Vec<String> = (0..3000).map(|i| format!("\"t{i}\"")).collect();
    text.push_str(&format!(
        "[[task]]\nid = \"all\"\ncommand = [\"true\"]\ndepends_on = [{}, \"t7\"]\n",
        deps.join(", ")
    ));
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("lists `t7` twice"), "{e:?}");
}

#[test]
fn no_tasks() {
    assert_eq!(
        errors("name = \"wf\"\n"),
        ["workflow has no tasks; add at least one [[task]]"]
    );
}

#[test]
fn specs_built_in_code_are_checked_too() {
    let wf = parse_workflow(&tasks("[[task]]\nid = \"a\"\ncommand = [\"true\"]\n")).unwrap();
    let mut spec = wf.spec().clone();
    spec.tasks[0].command = Command::Argv(vec![]);
    let e = Workflow::from_spec(spec).unwrap_err().to_string();
    assert_eq!(
        e,
        "task `a`: `command` is empty; give at least the program to run"
    );
}

#[test]
fn env_merges_task_over_defaults() {
    let wf = parse_workflow(&tasks(
        "[defaults]\nenv = { A = \"1\", B = \"2\" }\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nenv = { B = \"3\" }\n",
    ))
    .unwrap();
    let env = wf.env(0);
    assert_eq!(env.get("A"), Some(&"1"));
    assert_eq!(env.get("B"), Some(&"3"));
}
