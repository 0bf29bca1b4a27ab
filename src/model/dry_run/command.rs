//! What an operator command on a run or a task would do: `troupe cancel|suspend|resume|retry
//! TARGET --dry-run`.
//!
//! The command is decided by [`crate::model::decide::operator`], the function the scheduler
//! decides it with, and its events are folded with [`State::apply_with`], the fold the
//! scheduler validates every event with, into a copy of the run ([`State::excerpt`]). So a
//! dry run refuses what the real command would refuse, with the same reason, and lists the
//! transitions the real command would make, given the same state. (The state may move
//! between a dry run and the real command: a task may finish meanwhile.)

use crate::model::decide::{operator, Refusal, Verb};
use crate::model::{
    Change, Event, EventRecord, RunId, State, TaskId, TaskIndex, TaskState, Timestamp,
};

/// What a command would do. Nothing was journaled.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandPreview {
    /// The events it would journal, in order.
    pub events: Vec<Event>,
    /// The transitions the fold would make: one per task, run or compensation whose state
    /// would differ afterwards (first `from`, last `to`), in the order the fold first moved
    /// it.
    pub changes: Vec<Change>,
    /// Attempts it would terminate: `(run, task, attempt)` of each forward attempt running
    /// now whose task would no longer be running.
    pub terminate: Vec<(RunId, TaskIndex, u32)>,
}

/// What `troupe VERB RUN` (`task: None`) or `troupe VERB RUN/TASK` would do given `state`,
/// with `now` as the events' time; or why it would be refused (an unknown run or task is
/// [`crate::model::ApplyError::UnknownRun`] / `UnknownTask`, as for the real command).
/// O(tasks of the run).
pub fn preview_command(
    state: &State,
    verb: Verb,
    run: RunId,
    task: Option<&TaskId>,
    now: Timestamp,
) -> Result<CommandPreview, Refusal> {
    let decision = operator(state, verb, run, task)?;
    let mut copy = state.excerpt(run);
    let mut events = Vec::new();
    let mut moves = Vec::new();
    decision.decide_with(&format!("run {run}"), |event| {
        let record = EventRecord { time: now, event };
        let mut changes = Vec::new();
        copy.apply_with(copy.last_seq() + 1, &record, &mut changes)?;
        moves.extend(changes);
        events.push(record.event);
        Ok(())
    })?;
    let changes = net(moves);
    let before = state.run(run).expect("the fold accepted an event about it");
    let terminate = changes
        .iter()
        .filter_map(|c| match *c {
            Change::Task {
                run: r,
                task,
                from: TaskState::Running,
                ..
            } => Some((r, task, before.task(task).attempts)),
            _ => None,
        })
        .collect();
    Ok(CommandPreview {
        events,
        changes,
        terminate,
    })
}

/// One change per task, run or compensation: its first `from` and last `to`, dropped if they
/// are equal, in the order of the first move.
fn net(mut moves: Vec<Change>) -> Vec<Change> {
    // A mapped task's expansion coming due is not a move.
    moves.retain(|c| !matches!(c, Change::ExpansionDue { .. }));
    #[derive(PartialEq, Eq, Hash)]
    enum Key {
        Task(RunId, TaskIndex),
        Run(RunId),
        Compensation(RunId, TaskIndex),
    }
    let key = |c: &Change| match *c {
        Change::Task { run, task, .. } | Change::ExpansionDue { run, task } => Key::Task(run, task),
        Change::Run { run, .. } => Key::Run(run),
        Change::Compensation { run, task, .. } => Key::Compensation(run, task),
    };
    let mut at: std::collections::HashMap<Key, usize> = std::collections::HashMap::new();
    let mut out: Vec<Change> = Vec::new();
    for c in moves {
        match at.get(&key(&c)) {
            None => {
                at.insert(key(&c), out.len());
                out.push(c);
            }
            Some(&i) => match (&mut out[i], c) {
                (Change::Task { to, .. }, Change::Task { to: last, .. }) => *to = last,
                (Change::Run { to, .. }, Change::Run { to: last, .. }) => *to = last,
                (Change::Compensation { to, .. }, Change::Compensation { to: last, .. }) => {
                    *to = last
                }
                _ => unreachable!("same key, same kind"),
            },
        }
    }
    out.retain(|c| match *c {
        Change::Task { from, to, .. } => from != to,
        Change::Run { from, to, .. } => from != to,
        Change::Compensation { from, to, .. } => from != Some(to),
        Change::ExpansionDue { .. } => false,
    });
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::decide::Refusal;
    use crate::model::{parse_workflow, ApplyError, Failure, RunState};

    /// The run of these tests.
    fn r9() -> RunId {
        RunId::from_u128(9)
    }

    /// `a` and `x` at the top, `b` after `a`; `a` has started (attempt 1).
    fn state() -> State {
        let wf = parse_workflow(
            "name = \"t\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n\
             retry = { max_attempts = 1 }\n[[task]]\nid = \"b\"\ncommand = [\"true\"]\n\
             depends_on = [\"a\"]\n[[task]]\nid = \"x\"\ncommand = [\"true\"]\n",
        )
        .unwrap();
        let mut s = State::new();
        apply(
            &mut s,
            Event::RunSubmitted {
                run: r9(),
                workflow: Arc::new(wf),
            },
        );
        apply(
            &mut s,
            Event::AttemptStarted {
                run: r9(),
                task: id("a"),
                attempt: 1,
            },
        );
        s
    }

    fn apply(s: &mut State, event: Event) {
        let seq = s.last_seq() + 1;
        s.apply(
            seq,
            &EventRecord {
                time: Timestamp(1),
                event,
            },
        )
        .unwrap();
    }

    fn id(t: &str) -> TaskId {
        t.parse().unwrap()
    }

    fn task_moves(p: &CommandPreview) -> Vec<(TaskIndex, TaskState, TaskState)> {
        p.changes
            .iter()
            .filter_map(|c| match *c {
                Change::Task { task, from, to, .. } => Some((task, from, to)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn cancel_run_lists_every_task_and_the_attempt_it_terminates() {
        let s = state();
        let before = s.clone();
        let p = preview_command(&s, Verb::Cancel, r9(), None, Timestamp(5)).unwrap();
        assert_eq!(s, before, "a dry run changes nothing");
        assert_eq!(p.events, vec![Event::RunCancelled { run: r9() }]);
        use TaskState::*;
        let mut moves = task_moves(&p);
        moves.sort_by_key(|m| m.0);
        assert_eq!(
            moves,
            [
                (0, Running, Cancelled),
                (1, Pending, Cancelled),
                (2, Ready, Cancelled)
            ]
        );
        assert!(p.changes.contains(&Change::Run {
            run: r9(),
            from: RunState::Running,
            to: RunState::Cancelled
        }));
        assert_eq!(p.terminate, vec![(r9(), 0, 1)]);
    }

    #[test]
    fn retry_run_reopens_the_failed_task_and_its_dependents_once_each() {
        let mut s = state();
        apply(
            &mut s,
            Event::TaskFailed {
                run: r9(),
                task: id("a"),
                attempt: 1,
                failure: Failure::Exit { code: 1 },
                usage: None,
            },
        );
        // Every task still open becomes upstream_failed or runs on; x is ready.
        let p = preview_command(&s, Verb::Retry, r9(), None, Timestamp(5)).unwrap();
        assert_eq!(
            p.events,
            vec![Event::TaskRetried {
                run: r9(),
                task: id("a")
            }]
        );
        use TaskState::*;
        let moves = task_moves(&p);
        assert!(moves.contains(&(0, Failed, Ready)), "{moves:?}");
        assert!(moves.contains(&(1, UpstreamFailed, Pending)), "{moves:?}");
        assert!(p.terminate.is_empty());
        // The real command's decision on the real state agrees.
        let same = preview_command(&s, Verb::Retry, r9(), Some(&id("a")), Timestamp(5)).unwrap();
        assert_eq!(same.changes, p.changes);
    }

    #[test]
    fn refusals_are_the_real_commands() {
        let s = state();
        let unknown = RunId::from_u128(1);
        assert_eq!(
            preview_command(&s, Verb::Cancel, unknown, None, Timestamp(5)),
            Err(Refusal::Fold(ApplyError::UnknownRun(unknown)))
        );
        assert!(matches!(
            preview_command(&s, Verb::Suspend, r9(), Some(&id("nope")), Timestamp(5)),
            Err(Refusal::Fold(ApplyError::UnknownTask { .. }))
        ));
        // a is running: it cannot be suspended, and nothing failed to retry.
        assert!(matches!(
            preview_command(&s, Verb::Suspend, r9(), Some(&id("a")), Timestamp(5)),
            Err(Refusal::Fold(ApplyError::NotAllowed { .. }))
        ));
        assert_eq!(
            preview_command(&s, Verb::Retry, r9(), None, Timestamp(5)),
            Err(Refusal::Refused(format!(
                "run {} has no failed or cancelled task to retry",
                r9()
            )))
        );
    }

    #[test]
    fn suspend_and_resume_a_run() {
        let mut s = state();
        let p = preview_command(&s, Verb::Suspend, r9(), None, Timestamp(5)).unwrap();
        use TaskState::*;
        // The running task goes on; the waiting ones are held.
        assert_eq!(
            task_moves(&p),
            [(1, Pending, Suspended), (2, Ready, Suspended)]
        );
        apply(&mut s, Event::RunSuspended { run: r9() });
        let p = preview_command(&s, Verb::Resume, r9(), None, Timestamp(5)).unwrap();
        assert_eq!(
            task_moves(&p),
            [(1, Suspended, Pending), (2, Suspended, Ready)]
        );
    }
}
