//! Handoff: `task_output` (an attempt's output, journaled just before its success),
//! `attempt_usage` (its usage counters) and `task_expanded` (a mapped task becomes its
//! instances).
//!
//! Outputs are not kept in the state (they are read from the journal when a dependent needs
//! them); usage is summed per task.

use std::sync::Arc;

use super::change::Change;
use super::error::ApplyError;
use super::run::Run;
use super::task::Task;
use crate::model::event::Event;
use crate::model::ids::TaskIndex;
use crate::model::run::RunState;
use crate::model::task::TaskState;
use crate::model::time::Timestamp;

impl Run {
    /// `task_output`, `attempt_usage`, `task_expanded`.
    pub(super) fn apply_handoff(
        &mut self,
        event: &Event,
        t: Option<TaskIndex>,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        let t = t.expect("task event");
        match event {
            Event::TaskOutput { attempt: 0, .. } => {
                // The agreed output of a swarm task (event schema 8).
                self.require_swarm_end(event, t, true)?;
            }
            Event::TaskOutput { attempt, .. } => {
                self.require_running_attempt(event, t, *attempt, TaskState::Succeeded)?;
            }
            Event::AttemptUsage {
                attempt, counters, ..
            } => {
                let task = &self.tasks[t as usize];
                if *attempt == 0 || *attempt > task.attempts {
                    return Err(self.not_allowed(
                        event,
                        format!(
                            "attempt {attempt} has not started (attempts: {})",
                            task.attempts
                        ),
                    ));
                }
                if counters.values().any(|v| !v.is_finite()) {
                    return Err(self.not_allowed(event, "a counter is not a finite number"));
                }
                let sums = self.usage.entry(t).or_default();
                for (name, v) in counters {
                    *sums.entry(name.clone()).or_insert(0.0) += v;
                }
            }
            Event::TaskExpanded { count, .. } => {
                self.require_run_state(event, &[RunState::Running])?;
                if !self.awaits_expansion(t) {
                    return Err(self.not_allowed(
                        event,
                        "the task is not a mapped task waiting for its expansion",
                    ));
                }
                let max = self.workflow.max_fan_out(t);
                let replicas = self.workflow.task(t).swarm().map(|s| s.replicas);
                if replicas.is_some_and(|n| n != *count) {
                    return Err(self.not_allowed(
                        event,
                        format!(
                            "a swarm task expands into its {} replicas, not {count}",
                            replicas.unwrap_or_default()
                        ),
                    ));
                }
                if replicas.is_none() && *count > max {
                    return Err(self.not_allowed(
                        event,
                        format!("{count} instances is more than its max_fan_out ({max})"),
                    ));
                }
                self.expand(t, *count, time, changes)
                    .map_err(|why| self.not_allowed(event, why))?;
            }
            _ => unreachable!("routed by Run::apply"),
        }
        Ok(())
    }

    /// Whether task `t` is mapped, not yet expanded, and ready for its expansion (pending
    /// with every dependency succeeded).
    pub fn awaits_expansion(&self, t: TaskIndex) -> bool {
        let task = &self.tasks[t as usize];
        let spec = self.workflow.task(t);
        (spec.for_each().is_some() || spec.swarm().is_some())
            && spec.expansion().is_none()
            && task.state == TaskState::Pending
            && task.waiting_on == 0
    }

    /// Whether task `t` is a mapped task that was expanded (it runs nothing).
    pub fn is_expanded(&self, t: TaskIndex) -> bool {
        matches!(
            self.workflow.task(t).expansion(),
            Some(crate::model::spec::Expansion::Mapped { .. })
        )
    }

    fn expand(
        &mut self,
        t: TaskIndex,
        count: u32,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<(), String> {
        let workflow = Arc::new(self.workflow.expanded(t, count)?);
        let first = self.tasks.len() as TaskIndex;
        self.workflow = Arc::clone(&workflow);
        let plan = workflow.plan();
        let waiting = |run: &Run, i: TaskIndex| {
            plan.upstream(i)
                .filter(|&u| {
                    !matches!(
                        run.tasks.get(u as usize).map(|t| t.state),
                        Some(TaskState::Succeeded | TaskState::Compensated)
                    )
                })
                .count() as u32
        };
        for i in first..first + count {
            let w = waiting(self, i);
            self.tasks.push(Task::pending(w));
            self.counts[TaskState::Pending as usize] += 1;
        }
        let swarm = workflow.task(t).swarm().is_some();
        if !swarm {
            // A mapped task waits for its instances; a swarm task for a quorum, which the
            // node decides (`quorum_reached`).
            self.tasks[t as usize].waiting_on = count;
        }
        for i in first..first + count {
            if self.tasks[i as usize].waiting_on == 0 {
                self.settle(i, time, changes);
            }
        }
        if count == 0 && !swarm {
            self.settle(t, time, changes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{
        parse_workflow, Event, EventRecord, RunId, State, TaskId, TaskState, Timestamp,
    };
    use std::sync::Arc;

    fn step(s: &mut State, event: Event) {
        let seq = s.last_seq() + 1;
        s.apply(
            seq,
            &EventRecord {
                time: Timestamp(seq),
                event,
            },
        )
        .unwrap();
        s.check_invariants().unwrap();
    }

    #[test]
    fn a_mapped_task_expands_runs_its_instances_then_succeeds() {
        let wf = Arc::new(
            parse_workflow(
                "name = \"m\"\n[[task]]\nid = \"list\"\ncommand = [\"x\"]\n\
                 [[task]]\nid = \"each\"\ndepends_on = [\"list\"]\nfor_each = \"{{ tasks.list.output }}\"\ncommand = [\"x\"]\ncompensate = [\"undo\"]\n\
                 [[task]]\nid = \"after\"\ndepends_on = [\"each\"]\ncommand = [\"x\"]\n",
            )
            .unwrap(),
        );
        let run = RunId::from_u128(1);
        let id = |s: &str| TaskId::new(s).unwrap();
        let mut s = State::new();
        step(&mut s, Event::RunSubmitted { run, workflow: wf });
        step(
            &mut s,
            Event::AttemptStarted {
                run,
                task: id("list"),
                attempt: 1,
            },
        );
        step(
            &mut s,
            Event::TaskOutput {
                run,
                task: id("list"),
                attempt: 1,
                output: "[1,2]".into(),
            },
        );
        step(
            &mut s,
            Event::TaskSucceeded {
                run,
                task: id("list"),
                attempt: 1,
                usage: None,
            },
        );
        let r = s.run(run).unwrap();
        assert!(r.awaits_expansion(1), "{:?}", r.task(1));
        step(
            &mut s,
            Event::TaskExpanded {
                run,
                task: id("each"),
                count: 2,
            },
        );
        let r = s.run(run).unwrap();
        assert_eq!(r.tasks().len(), 5);
        assert_eq!(r.workflow().task_id(3).as_str(), "each[0]");
        assert_eq!(r.task(3).state, TaskState::Ready);
        assert_eq!(r.task(1).state, TaskState::Pending);
        for i in ["each[0]", "each[1]"] {
            step(
                &mut s,
                Event::AttemptStarted {
                    run,
                    task: id(i),
                    attempt: 1,
                },
            );
            step(
                &mut s,
                Event::TaskSucceeded {
                    run,
                    task: id(i),
                    attempt: 1,
                    usage: None,
                },
            );
        }
        let r = s.run(run).unwrap();
        assert_eq!(r.task(1).state, TaskState::Succeeded);
        assert_eq!(r.task(2).state, TaskState::Ready);
        // A second expansion is refused.
        let seq = s.last_seq() + 1;
        let again = EventRecord {
            time: Timestamp(seq),
            event: Event::TaskExpanded {
                run,
                task: id("each"),
                count: 1,
            },
        };
        assert!(s.apply(seq, &again).is_err());
    }

    #[test]
    fn an_expansion_beyond_max_fan_out_is_refused() {
        for (limit, count, ok) in [
            ("", 10_001, false),
            ("max_fan_out = 20000\n", 10_001, true),
            ("max_fan_out = 2\n", 3, false),
        ] {
            let wf = Arc::new(
                parse_workflow(&format!(
                    "name = \"m\"\n[[task]]\nid = \"list\"\ncommand = [\"x\"]\n\
                     [[task]]\nid = \"each\"\ndepends_on = [\"list\"]\nfor_each = \"{{{{ tasks.list.output }}}}\"\ncommand = [\"x\"]\n{limit}"
                ))
                .unwrap(),
            );
            let run = RunId::from_u128(1);
            let id = |s: &str| TaskId::new(s).unwrap();
            let mut s = State::new();
            step(&mut s, Event::RunSubmitted { run, workflow: wf });
            step(
                &mut s,
                Event::AttemptStarted {
                    run,
                    task: id("list"),
                    attempt: 1,
                },
            );
            step(
                &mut s,
                Event::TaskSucceeded {
                    run,
                    task: id("list"),
                    attempt: 1,
                    usage: None,
                },
            );
            let seq = s.last_seq() + 1;
            let e = EventRecord {
                time: Timestamp(seq),
                event: Event::TaskExpanded {
                    run,
                    task: id("each"),
                    count,
                },
            };
            assert_eq!(s.apply(seq, &e).is_ok(), ok, "{limit} {count}");
        }
    }
}
