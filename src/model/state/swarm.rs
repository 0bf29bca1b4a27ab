//! Swarm tasks (`replicas`, `quorum`, `vote`; event schema 8): `task_expanded` makes the
//! replicas `TASK[0]` .. `TASK[N-1]` (plain tasks the swarm task does not depend on, so a
//! failed replica sweeps nothing); `quorum_reached` records which replicas' outputs count;
//! the swarm task then succeeds with attempt 0 (`task_output` + `task_succeeded`, no vote)
//! or becomes ready to run its vote; `task_failed` with attempt 0 and `no_quorum` fails it.
//!
//! Which outputs agree is the scheduler's call (outputs live in the journal, not in the
//! state): the fold checks what it can see — the task is a waiting swarm, the replicas named
//! succeeded, and there are enough of them — so a replayed journal decides nothing twice.

use super::change::Change;
use super::error::ApplyError;
use super::run::Run;
use crate::model::event::{Event, Failure};
use crate::model::ids::{TaskId, TaskIndex};
use crate::model::run::RunState;
use crate::model::spec::Expansion;
use crate::model::task::TaskState;
use crate::model::time::Timestamp;

impl Run {
    /// The replicas of swarm task `t` (indices, in replica order), once it was expanded.
    pub fn replicas(&self, t: TaskIndex) -> Option<Vec<TaskIndex>> {
        let wf = self.workflow();
        let Some(Expansion::Swarm { replicas }) = wf.task(t).expansion() else {
            return None;
        };
        let id = wf.task_id(t);
        Some(
            (0..replicas)
                .filter_map(|i| wf.task_index(TaskId::instance(id, i).as_str()))
                .collect(),
        )
    }

    /// The swarm task a replica `t` belongs to.
    pub fn swarm_of(&self, t: TaskIndex) -> Option<TaskIndex> {
        let wf = self.workflow();
        let Some(Expansion::Replica { .. }) = wf.task(t).expansion() else {
            return None;
        };
        let (base, _) = wf.task_id(t).split_instance()?;
        wf.task_index(base)
    }

    /// Whether `t` is an expanded swarm task still waiting for its quorum.
    pub fn swarm_waiting(&self, t: TaskIndex) -> bool {
        matches!(
            self.workflow().task(t).expansion(),
            Some(Expansion::Swarm { .. })
        ) && self.tasks[t as usize].state == TaskState::Pending
    }

    /// Replicas of swarm task `t` that succeeded.
    fn replicas_succeeded(&self, t: TaskIndex) -> usize {
        self.replicas(t).map_or(0, |rs| {
            rs.iter()
                .filter(|&&r| self.tasks[r as usize].state == TaskState::Succeeded)
                .count()
        })
    }

    /// Checks an attempt-0 event of a swarm task (`task_output`, `task_succeeded` without a
    /// vote; `task_failed` with `no_quorum`): the task waits for its quorum and, for a
    /// success, at least `quorum` replicas succeeded.
    pub(super) fn require_swarm_end(
        &self,
        event: &Event,
        t: TaskIndex,
        success: bool,
    ) -> Result<(), ApplyError> {
        self.require_run_state(event, &[RunState::Running])?;
        if !self.swarm_waiting(t) {
            return Err(self.not_allowed(
                event,
                "attempt 0 ends only a swarm task waiting for its replicas' quorum",
            ));
        }
        let swarm = self.workflow().task(t).swarm().expect("a swarm task");
        if success {
            if swarm.vote.is_some() {
                return Err(self.not_allowed(
                    event,
                    "a swarm task with a vote succeeds by its vote's attempt",
                ));
            }
            let ok = self.replicas_succeeded(t);
            if ok < swarm.quorum as usize {
                return Err(self.not_allowed(
                    event,
                    format!(
                        "{ok} replicas succeeded, fewer than the quorum ({})",
                        swarm.quorum
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `quorum_reached`.
    pub(super) fn apply_swarm(
        &mut self,
        event: &Event,
        t: Option<TaskIndex>,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        let t = t.expect("task event");
        let Event::QuorumReached { replicas, .. } = event else {
            unreachable!("routed by Run::apply")
        };
        self.require_run_state(event, &[RunState::Running])?;
        if !self.swarm_waiting(t) {
            return Err(self.not_allowed(event, "the task is not a swarm waiting for a quorum"));
        }
        let swarm = self
            .workflow()
            .task(t)
            .swarm()
            .expect("a swarm task")
            .clone();
        let all = self.replicas(t).unwrap_or_default();
        if !replicas.windows(2).all(|w| w[0] < w[1]) {
            return Err(self.not_allowed(event, "replicas must be distinct and ascending"));
        }
        if replicas.len() < swarm.quorum as usize {
            return Err(self.not_allowed(
                event,
                format!(
                    "{} replicas is fewer than the quorum ({})",
                    replicas.len(),
                    swarm.quorum
                ),
            ));
        }
        for &i in replicas {
            let ok = all
                .get(i as usize)
                .is_some_and(|&r| self.tasks[r as usize].state == TaskState::Succeeded);
            if !ok {
                return Err(self.not_allowed(event, format!("replica {i} has not succeeded")));
            }
        }
        if swarm.vote.is_some() {
            // The vote runs as the swarm task's own attempts.
            self.settle(t, time, changes);
        }
        Ok(())
    }

    /// Whether replica `t` ended without its result counting against the run: its swarm
    /// task succeeded (losing, failed or cancelled replicas of a swarm that reached its
    /// quorum do not fail the run).
    pub(super) fn spare_replica(&self, t: TaskIndex) -> bool {
        self.swarm_of(t)
            .is_some_and(|s| self.tasks[s as usize].state == TaskState::Succeeded)
    }

    /// A `no_quorum` failure message: `most` agreed of `needed`, with the outputs seen.
    pub fn no_quorum(most: usize, needed: u32, seen: &[(String, usize)]) -> Failure {
        let mut message = format!("at most {most} replicas agreed, {needed} needed");
        if !seen.is_empty() {
            message.push_str("; outputs seen:");
            for (output, n) in seen {
                let shown: String = output.chars().take(200).collect();
                let more = if shown.len() < output.len() {
                    "…"
                } else {
                    ""
                };
                message.push_str(&format!(" {shown}{more} (×{n})"));
            }
        }
        Failure::NoQuorum { message }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::model::{
        parse_workflow, Event, EventRecord, Failure, RunId, RunState, State, TaskId, TaskState,
        Timestamp,
    };

    /// The run every test submits.
    fn run() -> RunId {
        RunId::from_u128(1)
    }

    /// A run of `tasks` (TOML `[[task]]` tables), submitted.
    fn submitted(tasks: &str) -> State {
        let wf = Arc::new(parse_workflow(&format!("name = \"swarm\"\n{tasks}")).unwrap());
        let mut s = State::new();
        step(
            &mut s,
            Event::RunSubmitted {
                run: run(),
                workflow: wf,
            },
        );
        s
    }

    /// Applies `event` as the next one, which must be accepted; checks the invariants.
    fn step(s: &mut State, event: Event) {
        let seq = s.last_seq() + 1;
        let name = event.type_name();
        s.apply(
            seq,
            &EventRecord {
                time: Timestamp(seq),
                event,
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        s.check_invariants().unwrap();
    }

    /// Applies `event`, which must be refused without a change; returns the refusal.
    fn refused(s: &State, event: Event) -> String {
        let mut after = s.clone();
        let seq = s.last_seq() + 1;
        let err = after
            .apply(
                seq,
                &EventRecord {
                    time: Timestamp(seq),
                    event,
                },
            )
            .expect_err("refused");
        assert_eq!(&after, s, "a refused event changed the state");
        err.to_string()
    }

    fn id(t: &str) -> TaskId {
        TaskId::new(t).unwrap()
    }

    fn replica(t: &str, i: u32) -> TaskId {
        TaskId::instance(&id(t), i)
    }

    fn state_of(s: &State, t: &TaskId) -> TaskState {
        let r = s.run(run()).unwrap();
        r.task(r.workflow().task_index(t.as_str()).unwrap()).state
    }

    fn expand(s: &mut State, t: &str, count: u32) {
        step(
            s,
            Event::TaskExpanded {
                run: run(),
                task: id(t),
                count,
            },
        );
    }

    fn start(s: &mut State, task: TaskId, attempt: u32) {
        step(
            s,
            Event::AttemptStarted {
                run: run(),
                task,
                attempt,
            },
        );
    }

    /// Runs `task`'s next attempt to success with `output`.
    fn succeed(s: &mut State, task: TaskId, output: &str) {
        let r = s.run(run()).unwrap();
        let attempt = r
            .task(r.workflow().task_index(task.as_str()).unwrap())
            .attempts
            + 1;
        start(s, task.clone(), attempt);
        step(
            s,
            Event::TaskOutput {
                run: run(),
                task: task.clone(),
                attempt,
                output: output.into(),
            },
        );
        step(
            s,
            Event::TaskSucceeded {
                run: run(),
                task,
                attempt,
                usage: None,
            },
        );
    }

    fn fail(s: &mut State, task: TaskId, attempt: u32) {
        step(
            s,
            Event::TaskFailed {
                run: run(),
                task,
                attempt,
                failure: Failure::Exit { code: 1 },
                usage: None,
            },
        );
    }

    fn quorum(task: &str, replicas: &[u32]) -> Event {
        Event::QuorumReached {
            run: run(),
            task: id(task),
            replicas: replicas.to_vec(),
        }
    }

    fn agreed(task: &str) -> [Event; 2] {
        [
            Event::TaskOutput {
                run: run(),
                task: id(task),
                attempt: 0,
                output: "42".into(),
            },
            Event::TaskSucceeded {
                run: run(),
                task: id(task),
                attempt: 0,
                usage: None,
            },
        ]
    }

    fn no_quorum(task: &str) -> Event {
        Event::TaskFailed {
            run: run(),
            task: id(task),
            attempt: 0,
            failure: crate::model::Run::no_quorum(1, 2, &[("42".into(), 1)]),
            usage: None,
        }
    }

    const ASK_THREE: &str = "[[task]]\nid = \"ask\"\ncommand = [\"x\"]\nreplicas = 3\n\
        [[task]]\nid = \"after\"\ncommand = [\"x\"]\ndepends_on = [\"ask\"]\n";

    #[test]
    fn expansion_makes_the_replicas_and_the_swarm_task_stays_pending() {
        let mut s = submitted(ASK_THREE);
        let r = s.run(run()).unwrap();
        assert!(r.awaits_expansion(0), "{:?}", r.task(0));
        assert_eq!(r.replicas(0), None, "not expanded yet");
        assert!(!r.swarm_waiting(0));
        let e = refused(
            &s,
            Event::TaskExpanded {
                run: run(),
                task: id("ask"),
                count: 2,
            },
        );
        assert!(e.contains("expands into its 3 replicas, not 2"), "{e}");
        assert!(
            refused(&s, quorum("ask", &[0, 1])).contains("not a swarm waiting"),
            "no quorum before the expansion"
        );
        expand(&mut s, "ask", 3);
        let r = s.run(run()).unwrap();
        let wf = r.workflow();
        assert_eq!(r.tasks().len(), 5);
        assert_eq!(r.replicas(0), Some(vec![2, 3, 4]));
        for (i, t) in [2, 3, 4].into_iter().enumerate() {
            assert_eq!(wf.task_id(t), &replica("ask", i as u32));
            assert_eq!(
                wf.task(t).expansion(),
                Some(crate::model::spec::Expansion::Replica { index: i as u32 })
            );
            assert_eq!(wf.task(t).swarm(), None, "a replica is no swarm itself");
            assert_eq!(r.swarm_of(t), Some(0));
            assert_eq!(r.task(t).state, TaskState::Ready);
            assert_eq!(r.task(t).waiting_on, 0);
        }
        assert_eq!(r.task(0).state, TaskState::Pending);
        assert_eq!(r.task(0).waiting_on, 0, "it depends on no replica");
        assert!(r.swarm_waiting(0));
        assert!(!r.awaits_expansion(0));
        assert_eq!(r.swarm_of(0), None);
        assert_eq!(r.task(1).state, TaskState::Pending);
        let e = refused(
            &s,
            Event::TaskExpanded {
                run: run(),
                task: id("ask"),
                count: 3,
            },
        );
        assert!(!e.is_empty());
    }

    #[test]
    fn quorum_reached_needs_enough_succeeded_replicas_in_order() {
        let mut s = submitted(ASK_THREE);
        expand(&mut s, "ask", 3);
        succeed(&mut s, replica("ask", 0), "42");
        start(&mut s, replica("ask", 1), 1);
        let e = refused(&s, quorum("ask", &[0, 1]));
        assert!(e.contains("replica 1 has not succeeded"), "{e}");
        step(
            &mut s,
            Event::TaskSucceeded {
                run: run(),
                task: replica("ask", 1),
                attempt: 1,
                usage: None,
            },
        );
        let e = refused(&s, quorum("ask", &[0]));
        assert!(e.contains("fewer than the quorum (2)"), "{e}");
        for wrong in [&[1, 0][..], &[0, 0][..], &[0, 1, 1][..]] {
            let e = refused(&s, quorum("ask", wrong));
            assert!(e.contains("distinct and ascending"), "{wrong:?}: {e}");
        }
        let e = refused(&s, quorum("ask", &[0, 7]));
        assert!(e.contains("replica 7 has not succeeded"), "{e}");
        let e = refused(&s, quorum("after", &[0, 1]));
        assert!(e.contains("not a swarm waiting"), "{e}");
        let e = refused(&s, quorum("ask[0]", &[0, 1]));
        assert!(e.contains("not a swarm waiting"), "{e}");
        step(&mut s, quorum("ask", &[0, 1]));
        assert_eq!(
            state_of(&s, &id("ask")),
            TaskState::Pending,
            "without a vote, the agreed output ends it"
        );
        let [output, success] = agreed("ask");
        step(&mut s, output);
        step(&mut s, success);
        assert_eq!(state_of(&s, &id("ask")), TaskState::Succeeded);
        assert_eq!(state_of(&s, &id("after")), TaskState::Ready);
        let e = refused(&s, quorum("ask", &[0, 1]));
        assert!(e.contains("not a swarm waiting"), "decided once: {e}");
        let [output, success] = agreed("ask");
        assert!(refused(&s, output).contains("attempt 0"));
        assert!(refused(&s, success).contains("attempt 0"));
    }

    #[test]
    fn attempt_zero_success_needs_the_quorum_and_no_vote() {
        let mut s = submitted(ASK_THREE);
        let [output, success] = agreed("ask");
        assert!(
            refused(&s, success.clone()).contains("attempt 0"),
            "not expanded"
        );
        expand(&mut s, "ask", 3);
        succeed(&mut s, replica("ask", 2), "42");
        assert!(refused(&s, output).contains("fewer than the quorum (2)"));
        let e = refused(&s, success);
        assert!(
            e.contains("1 replicas succeeded, fewer than the quorum (2)"),
            "{e}"
        );
        let [_, success] = agreed("after");
        assert!(refused(&s, success).contains("attempt 0"), "not a swarm");

        // With a vote: quorum_reached makes the swarm task ready to run its vote.
        let mut s = submitted(
            "[[task]]\nid = \"ask\"\ncommand = [\"x\"]\nreplicas = 2\nvote = [\"pick\"]\n",
        );
        expand(&mut s, "ask", 2);
        succeed(&mut s, replica("ask", 0), "1");
        assert!(
            refused(&s, quorum("ask", &[0])).contains("fewer than the quorum (2)"),
            "with a vote the quorum is every replica by default"
        );
        succeed(&mut s, replica("ask", 1), "2");
        let [output, success] = agreed("ask");
        let e = refused(&s, success);
        assert!(e.contains("succeeds by its vote's attempt"), "{e}");
        assert!(refused(&s, output).contains("vote"));
        step(&mut s, quorum("ask", &[0, 1]));
        assert_eq!(state_of(&s, &id("ask")), TaskState::Ready);
        assert!(!s.run(run()).unwrap().swarm_waiting(0));
        succeed(&mut s, id("ask"), "2");
        let r = s.run(run()).unwrap();
        assert_eq!(r.task(0).attempts, 1, "the vote ran as attempt 1");
        assert_eq!(r.state(), RunState::Succeeded);
    }

    #[test]
    fn no_quorum_fails_the_swarm_task_and_its_dependents() {
        let mut s = submitted(ASK_THREE);
        assert!(
            refused(&s, no_quorum("ask")).contains("attempt 0"),
            "not expanded"
        );
        expand(&mut s, "ask", 3);
        succeed(&mut s, replica("ask", 0), "42");
        start(&mut s, replica("ask", 1), 1);
        fail(&mut s, replica("ask", 1), 1);
        // A failed replica is its swarm task's to judge: nothing else moves.
        assert_eq!(state_of(&s, &id("ask")), TaskState::Pending);
        assert_eq!(state_of(&s, &id("after")), TaskState::Pending);
        assert_eq!(s.run(run()).unwrap().state(), RunState::Running);
        let other = Event::TaskFailed {
            run: run(),
            task: id("ask"),
            attempt: 0,
            failure: Failure::Exit { code: 1 },
            usage: None,
        };
        assert!(
            !refused(&s, other).is_empty(),
            "attempt 0 fails only as no_quorum"
        );
        assert!(refused(&s, no_quorum("after")).contains("attempt 0"));
        step(
            &mut s,
            Event::TaskCancelled {
                run: run(),
                task: replica("ask", 2),
            },
        );
        step(&mut s, no_quorum("ask"));
        let r = s.run(run()).unwrap();
        assert_eq!(r.task(0).state, TaskState::Failed);
        let failure = r.task(0).last_failure.as_deref().unwrap();
        assert_eq!(failure.kind(), "no_quorum");
        assert_eq!(
            failure.to_string(),
            "no quorum: at most 1 replicas agreed, 2 needed; outputs seen: 42 (×1)"
        );
        assert_eq!(r.task(1).state, TaskState::UpstreamFailed);
        assert_eq!(r.state(), RunState::Failed);
        assert!(refused(&s, no_quorum("ask")).contains("the run is failed"));
    }

    #[test]
    fn a_swarm_that_succeeded_with_a_cancelled_or_failed_replica_ends_succeeded() {
        let mut s = submitted(ASK_THREE);
        expand(&mut s, "ask", 3);
        succeed(&mut s, replica("ask", 0), "42");
        succeed(&mut s, replica("ask", 1), " 42 ");
        start(&mut s, replica("ask", 2), 1);
        step(&mut s, quorum("ask", &[0, 1]));
        for e in agreed("ask") {
            step(&mut s, e);
        }
        let mut failed = s.clone();
        step(
            &mut s,
            Event::TaskCancelled {
                run: run(),
                task: replica("ask", 2),
            },
        );
        succeed(&mut s, id("after"), "null");
        let r = s.run(run()).unwrap();
        assert_eq!(r.task(4).state, TaskState::Cancelled);
        assert_eq!(r.state(), RunState::Succeeded);
        // A replica that was still running and then failed counts no more.
        succeed(&mut failed, id("after"), "null");
        assert_eq!(failed.run(run()).unwrap().state(), RunState::Running);
        fail(&mut failed, replica("ask", 2), 1);
        assert_eq!(failed.run(run()).unwrap().state(), RunState::Succeeded);
    }

    #[test]
    fn a_failed_replica_does_not_abort_a_saga_but_no_quorum_does() {
        let mut s = submitted(
            "[[task]]\nid = \"pay\"\ncommand = [\"x\"]\ncompensate = [\"refund\"]\n\
             [[task]]\nid = \"ask\"\ncommand = [\"x\"]\ndepends_on = [\"pay\"]\nreplicas = 3\n\
             [[task]]\nid = \"after\"\ncommand = [\"x\"]\ndepends_on = [\"ask\"]\n",
        );
        succeed(&mut s, id("pay"), "null");
        expand(&mut s, "ask", 3);
        start(&mut s, replica("ask", 0), 1);
        fail(&mut s, replica("ask", 0), 1);
        let r = s.run(run()).unwrap();
        assert_eq!(r.state(), RunState::Running, "no compensation");
        assert_eq!(r.current_compensation(), None);
        assert_eq!(state_of(&s, &replica("ask", 1)), TaskState::Ready);
        assert_eq!(state_of(&s, &id("ask")), TaskState::Pending);
        let mut lost = s.clone();
        succeed(&mut s, replica("ask", 1), "7");
        succeed(&mut s, replica("ask", 2), "7");
        step(&mut s, quorum("ask", &[1, 2]));
        for e in agreed("ask") {
            step(&mut s, e);
        }
        succeed(&mut s, id("after"), "null");
        assert_eq!(s.run(run()).unwrap().state(), RunState::Succeeded);
        // No quorum fails the swarm task, which aborts the saga.
        for i in [1, 2] {
            step(
                &mut lost,
                Event::TaskCancelled {
                    run: run(),
                    task: replica("ask", i),
                },
            );
        }
        step(&mut lost, no_quorum("ask"));
        let r = lost.run(run()).unwrap();
        assert_eq!(r.state(), RunState::Compensating);
        assert_eq!(r.current_compensation(), Some(0), "pay is undone");
        assert_eq!(state_of(&lost, &id("after")), TaskState::UpstreamFailed);
    }

    #[test]
    fn a_swarm_task_and_its_replicas_are_not_retried() {
        let mut s = submitted(ASK_THREE);
        expand(&mut s, "ask", 3);
        start(&mut s, replica("ask", 0), 1);
        fail(&mut s, replica("ask", 0), 1);
        let retried = |t: TaskId| Event::TaskRetried {
            run: run(),
            task: t,
        };
        let e = refused(&s, retried(replica("ask", 0)));
        assert!(
            e.contains("not retried one by one; submit the workflow again"),
            "{e}"
        );
        for i in [1, 2] {
            step(
                &mut s,
                Event::TaskCancelled {
                    run: run(),
                    task: replica("ask", i),
                },
            );
        }
        step(&mut s, no_quorum("ask"));
        assert_eq!(s.run(run()).unwrap().state(), RunState::Failed);
        let e = refused(&s, retried(id("ask")));
        assert!(e.contains("not retried one by one"), "{e}");
        assert!(refused(&s, retried(replica("ask", 1))).contains("not retried"));
    }

    #[test]
    fn a_waiting_swarm_task_stays_pending_through_suspensions() {
        let mut s = submitted(ASK_THREE);
        expand(&mut s, "ask", 3);
        let e = refused(
            &s,
            Event::TaskSuspended {
                run: run(),
                task: id("ask"),
            },
        );
        assert!(e.contains("suspended through its replicas"), "{e}");
        step(&mut s, Event::RunSuspended { run: run() });
        assert_eq!(state_of(&s, &id("ask")), TaskState::Pending);
        assert_eq!(state_of(&s, &replica("ask", 0)), TaskState::Suspended);
        step(&mut s, Event::RunResumed { run: run() });
        assert_eq!(state_of(&s, &id("ask")), TaskState::Pending, "not ready");
        assert_eq!(state_of(&s, &replica("ask", 0)), TaskState::Ready);
        // A vote due while the run is suspended waits, suspended.
        let mut s = submitted(
            "[[task]]\nid = \"ask\"\ncommand = [\"x\"]\nreplicas = 2\nquorum = 1\nvote = [\"pick\"]\n",
        );
        expand(&mut s, "ask", 2);
        start(&mut s, replica("ask", 0), 1);
        step(&mut s, Event::RunSuspended { run: run() });
        step(
            &mut s,
            Event::TaskSucceeded {
                run: run(),
                task: replica("ask", 0),
                attempt: 1,
                usage: None,
            },
        );
        step(&mut s, quorum("ask", &[0]));
        assert_eq!(state_of(&s, &id("ask")), TaskState::Suspended);
        step(&mut s, Event::RunResumed { run: run() });
        assert_eq!(state_of(&s, &id("ask")), TaskState::Ready);
    }
}
