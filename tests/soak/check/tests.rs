//! The checker against hand-built histories: a good one passes, each kind of bad one is
//! reported with its sequence number.

use super::*;
use std::sync::Arc;
use troupe::model::{Timestamp, Workflow};

fn saga() -> Arc<Workflow> {
    let text = r#"
name = "t"
[[task]]
id = "a"
shell = "true"
compensate_shell = "true"
[[task]]
id = "b"
shell = "true"
compensate_shell = "true"
depends_on = ["a"]
"#;
    Arc::new(
        troupe::model::parse::WorkflowFormat::Toml
            .parse_bytes(text.as_bytes())
            .unwrap(),
    )
}

/// Feeds `events` (numbered from 1) to a fresh checker; returns its problems.
fn check(events: Vec<Event>) -> Vec<String> {
    let mut c = Checker::default();
    for (i, event) in events.into_iter().enumerate() {
        c.apply(
            i as Seq + 1,
            &EventRecord {
                time: Timestamp(0),
                event,
            },
        );
    }
    c.problems
}

fn run() -> RunId {
    RunId::from_u128(7)
}

fn id(t: &str) -> TaskId {
    TaskId::new(t).unwrap()
}

fn started(t: &str, attempt: u32) -> Event {
    Event::AttemptStarted {
        run: run(),
        task: id(t),
        attempt,
    }
}

fn succeeded(t: &str, attempt: u32) -> Event {
    Event::TaskSucceeded {
        run: run(),
        task: id(t),
        attempt,
        usage: None,
    }
}

fn interrupted(t: &str, attempt: u32) -> Event {
    Event::AttemptFailed {
        run: run(),
        task: id(t),
        attempt,
        failure: Failure::Interrupted,
        usage: None,
        retry_at: Timestamp(0),
    }
}

fn comp_started(t: &str, attempt: u32) -> Event {
    Event::CompensationStarted {
        run: run(),
        task: id(t),
        attempt,
    }
}

fn comp_succeeded(t: &str, attempt: u32) -> Event {
    Event::CompensationSucceeded {
        run: run(),
        task: id(t),
        attempt,
        usage: None,
    }
}

fn submitted() -> Event {
    Event::RunSubmitted {
        run: run(),
        workflow: saga(),
    }
}

/// A history that keeps every rule: an interrupted attempt, a retry, a success, the saga
/// undone newest first with an interrupted compensation retried.
#[test]
fn a_good_history_has_no_problems() {
    let interrupted_comp = Event::CompensationFailed {
        run: run(),
        task: id("b"),
        attempt: 1,
        failure: Failure::Interrupted,
        usage: None,
        retry_at: Some(Timestamp(0)),
    };
    let problems = check(vec![
        submitted(),
        started("a", 1),
        interrupted("a", 1),
        started("a", 2),
        succeeded("a", 2),
        started("b", 1),
        succeeded("b", 1),
        comp_started("b", 1),
        interrupted_comp,
        comp_started("b", 2),
        comp_succeeded("b", 2),
        comp_started("a", 1),
        comp_succeeded("a", 1),
    ]);
    assert_eq!(problems, Vec::<String>::new());
}

#[test]
fn a_task_succeeding_twice_is_reported() {
    let problems = check(vec![
        submitted(),
        started("a", 1),
        succeeded("a", 1),
        succeeded("a", 1),
    ]);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("seq 4:") && p.contains("succeeded twice")),
        "{problems:?}"
    );
}

#[test]
fn an_attempt_after_success_is_reported() {
    let problems = check(vec![
        submitted(),
        started("a", 1),
        succeeded("a", 1),
        started("a", 2),
    ]);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("seq 4:") && p.contains("after the task succeeded")),
        "{problems:?}"
    );
}

#[test]
fn an_attempt_closed_twice_is_reported() {
    let problems = check(vec![
        submitted(),
        started("a", 1),
        interrupted("a", 1),
        interrupted("a", 1),
    ]);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("seq 4:") && p.contains("ended")),
        "{problems:?}"
    );
}

#[test]
fn compensating_oldest_first_is_reported() {
    let problems = check(vec![
        submitted(),
        started("a", 1),
        succeeded("a", 1),
        started("b", 1),
        succeeded("b", 1),
        comp_started("a", 1),
    ]);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("seq 6:") && p.contains("before that of b")),
        "{problems:?}"
    );
}

#[test]
fn a_compensation_after_its_success_is_reported() {
    let problems = check(vec![
        submitted(),
        started("a", 1),
        succeeded("a", 1),
        comp_started("a", 1),
        comp_succeeded("a", 1),
        comp_started("a", 2),
    ]);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("seq 6:") && p.contains("after it succeeded")),
        "{problems:?}"
    );
}

#[test]
fn a_compensation_of_a_step_that_never_succeeded_is_reported() {
    let problems = check(vec![submitted(), comp_started("a", 1)]);
    assert!(
        problems.iter().any(|p| p.contains("never succeeded")),
        "{problems:?}"
    );
}

#[test]
fn a_lost_acknowledgement_is_reported() {
    let mut c = Checker::default();
    c.apply(
        1,
        &EventRecord {
            time: Timestamp(0),
            event: submitted(),
        },
    );
    c.check_runs_exist("submission", &[run(), RunId::from_u128(8)]);
    c.check_decisions_exist(&[(run(), id("a"))]);
    assert_eq!(c.problems.len(), 2, "{:?}", c.problems);
    assert!(c.problems[0].contains(&RunId::from_u128(8).to_string()));
    assert!(c.problems[1].contains("approval decision"));
}

#[test]
fn a_changed_or_missing_event_is_reported_from_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(tmp.path()).unwrap();
    let mut w = journal.writer(&Default::default()).unwrap();
    let rec = |event| EventRecord {
        time: Timestamp(0),
        event,
    };
    w.stage(&[rec(submitted()), rec(started("a", 1))]).unwrap();
    w.commit().unwrap();
    drop(w);
    let mut c = Checker::default();
    c.check_journal(&journal);
    assert_eq!(c.figures.events, 2);
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    // The checker remembers event 2; a journal whose event 2 differs is reported.
    let tmp2 = tempfile::tempdir().unwrap();
    journal = Journal::open(tmp2.path()).unwrap();
    let mut w = journal.writer(&Default::default()).unwrap();
    w.stage(&[rec(submitted()), rec(started("b", 1))]).unwrap();
    w.commit().unwrap();
    drop(w);
    c.check_journal(&journal);
    assert!(
        c.problems
            .iter()
            .any(|p| p.starts_with("seq 2: the event changed")),
        "{:?}",
        c.problems
    );
}

#[test]
fn two_compensations_at_once_are_reported() {
    let problems = check(vec![
        submitted(),
        started("a", 1),
        succeeded("a", 1),
        started("b", 1),
        succeeded("b", 1),
        comp_started("b", 1),
        comp_started("a", 1),
    ]);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("seq 7:") && p.contains("while that of b runs")),
        "{problems:?}"
    );
}
