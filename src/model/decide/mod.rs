//! Pure decisions: which event the scheduler appends in a given situation.
//!
//! Each function reads the folded [`State`] and returns events; none reads a clock or draws
//! randomness itself (time and the jitter sample are arguments), so the same inputs always
//! give the same events. Whether an event is legal is the fold's call: the scheduler applies
//! every decided event to its state before journaling it, and a refused event is never
//! journaled.
//!
//! The operator commands on a run or a task ([`operator`]) are decided here too, so that the
//! scheduler (which journals them) and a dry run (which folds them into a copy of the state,
//! [`super::dry_run::command`]) choose the same events by the same rule.
//!
//! # Layout
//! - `attempts`: how an attempt ends ([`attempt_close`]: usage, output, end; a compensation's
//!   end), and the attempts a replayed state says are running.
//! - `hooks`: which hooks a trigger makes due, their stdin payload, how a hook attempt ends.
//! - `operator`: cancel, suspend, resume, retry of a run or a task ([`operator`]).
//! - `spawn`: a child run, attached by key or checked against every limit ([`spawn`]).
//! - this file: the ready queue's order ([`QueueKey`]; the score is [`crate::model::score`]).

use std::cmp::Ordering;

mod attempts;
mod hooks;
mod operator;
mod spawn;

pub use attempts::*;
pub use hooks::*;
pub use operator::*;
pub use spawn::*;

/// Order of the ready queue: higher `rank` first, then the task that became ready earlier
/// (`age`, a counter the scheduler increments per enqueue), so equal ranks are served
/// first-in, first-out. The rank is the task's static score ([`crate::model::score::rank`]:
/// weighted priority, deadline, age and label boosts, computed once at enqueue from journaled
/// times), or its priority alone with `scoring = false`; either way the order of two queued
/// tasks does not change while they wait, and a replay gives the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueKey {
    /// Static score (or priority with scoring off); higher runs first.
    pub rank: crate::model::score::Rank,
    /// Enqueue counter (lower = earlier).
    pub age: u64,
}

impl Ord for QueueKey {
    /// "Greater" is served first (for a max-heap).
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank
            .cmp(&other.rank)
            .then_with(|| other.age.cmp(&self.age))
    }
}

impl PartialOrd for QueueKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{parse_workflow, Event, EventRecord, Failure, RunId, State, Timestamp};

    fn setup(retry: &str) -> (State, RunId) {
        let wf = parse_workflow(&format!(
            "name = \"t\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nretry = {retry}\n"
        ))
        .unwrap();
        let run = RunId::from_u128(7);
        let mut s = State::new();
        let rec = |event| EventRecord {
            time: Timestamp(1000),
            event,
        };
        s.apply(
            1,
            &rec(Event::RunSubmitted {
                run,
                workflow: Arc::new(wf),
            }),
        )
        .unwrap();
        s.apply(
            2,
            &rec(Event::AttemptStarted {
                run,
                task: "a".parse().unwrap(),
                attempt: 1,
            }),
        )
        .unwrap();
        (s, run)
    }

    #[test]
    fn failure_with_budget_retries_after_backoff() {
        let (s, run) = setup("{ max_attempts = 3, initial_interval = \"2s\", jitter = 0.0 }");
        let fail = AttemptEnd::Failed {
            failure: Failure::Exit { code: 1 },
            retryable: true,
            usage: None,
        };
        match attempt_end(&s, run, 0, 1, fail, Timestamp(5000), 0.5) {
            Some(Event::AttemptFailed { retry_at, .. }) => assert_eq!(retry_at, Timestamp(7000)),
            other => panic!("expected attempt_failed, got {other:?}"),
        }
    }

    #[test]
    fn non_retryable_or_exhausted_fails_for_good() {
        let (s, run) = setup("{ max_attempts = 3 }");
        let spawn = AttemptEnd::Failed {
            failure: Failure::SpawnFailed {
                message: "x".into(),
            },
            retryable: false,
            usage: None,
        };
        assert!(matches!(
            attempt_end(&s, run, 0, 1, spawn, Timestamp(0), 0.0),
            Some(Event::TaskFailed { .. })
        ));
        let (s, run) = setup("{ max_attempts = 1 }");
        let fail = AttemptEnd::Failed {
            failure: Failure::TimedOut,
            retryable: true,
            usage: None,
        };
        assert!(matches!(
            attempt_end(&s, run, 0, 1, fail, Timestamp(0), 0.0),
            Some(Event::TaskFailed { .. })
        ));
    }

    #[test]
    fn stale_attempt_decides_nothing() {
        let (s, run) = setup("{ max_attempts = 3 }");
        assert_eq!(
            attempt_end(
                &s,
                run,
                0,
                2,
                AttemptEnd::Succeeded { usage: None },
                Timestamp(0),
                0.0
            ),
            None
        );
        assert_eq!(running_attempts(&s), vec![(run, 0, 1)]);
    }

    #[test]
    fn queue_key_orders_rank_then_age() {
        use crate::model::score::Rank;
        let hi = QueueKey {
            rank: Rank::new(5.0),
            age: 9,
        };
        let lo_old = QueueKey {
            rank: Rank::new(0.0),
            age: 1,
        };
        let lo_new = QueueKey {
            rank: Rank::new(-0.0),
            age: 2,
        };
        assert!(hi > lo_old);
        assert!(lo_old > lo_new, "-0 ranks as 0, so age decides");
    }
}
