//! Swarm tasks on the write side (`replicas`, `quorum`, `vote`; D67): once a replica ends
//! (and that is durable), read the succeeded replicas' outputs from the journal and decide:
//! - a quorum: `quorum_reached` with the replicas that count, then (no vote) the agreed
//!   output and the swarm task's success at attempt 0, or (vote) the task becomes ready to
//!   run its vote; replicas still open are cancelled and their attempts terminated;
//! - no quorum possible any more: the open replicas are cancelled and the swarm task fails
//!   with `no_quorum`, naming the outputs seen.
//!
//! Every input is journaled (replica states in the fold, outputs in `task_output` events),
//! so the decision made after a crash is the one that would have been made before it, and
//! no vote counts twice: a replica succeeds at most once, and a decided swarm task is no
//! longer waiting, so nothing is decided for it again.

use serde_json::Value;

use super::*;
use crate::model::{Event, Run, RunId, TaskIndex, TaskState};

/// What the replicas of one swarm task add up to.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Not decided yet: replicas still run and a quorum is still possible.
    Open,
    /// These replicas (0-based, ascending) agree (no vote) or succeeded (vote); `output` is
    /// the agreed output's journaled text (no vote), `None` with a vote.
    Quorum {
        replicas: Vec<u32>,
        output: Option<Option<String>>,
    },
    /// A quorum cannot be reached: `most` agreed at most; the outputs seen with counts.
    Impossible {
        most: usize,
        seen: Vec<(String, usize)>,
    },
}

/// Judges swarm task `t` of `r`: `output(i)` reads replica `i`'s journaled output (`None`:
/// it wrote none, which counts as `null`). Pure but for `output`.
pub(crate) fn judge(
    r: &Run,
    t: TaskIndex,
    mut output: impl FnMut(TaskIndex) -> Result<Option<String>, String>,
) -> Result<Verdict, String> {
    let swarm = r
        .workflow()
        .task(t)
        .swarm()
        .ok_or("not a swarm task")?
        .clone();
    let replicas = r.replicas(t).ok_or("not expanded")?;
    let quorum = swarm.quorum as usize;
    let mut open = 0usize;
    let mut succeeded: Vec<(u32, TaskIndex)> = Vec::new();
    for (i, &rt) in replicas.iter().enumerate() {
        match r.task(rt).state {
            TaskState::Succeeded => succeeded.push((i as u32, rt)),
            s if s.is_terminal() => {}
            _ => open += 1,
        }
    }
    if swarm.vote.is_some() {
        if succeeded.len() >= quorum {
            return Ok(Verdict::Quorum {
                replicas: succeeded.iter().map(|&(i, _)| i).collect(),
                output: None,
            });
        }
        if succeeded.len() + open < quorum {
            return Ok(Verdict::Impossible {
                most: succeeded.len(),
                seen: Vec::new(),
            });
        }
        return Ok(Verdict::Open);
    }
    // Equal outputs: groups by JSON value, in order of first appearance.
    let mut groups: Vec<(Value, Option<String>, Vec<u32>)> = Vec::new();
    for &(i, rt) in &succeeded {
        let text = output(rt)?;
        let value = match &text {
            Some(s) => serde_json::from_str(s)
                .map_err(|e| format!("replica {i}'s journaled output is not JSON: {e}"))?,
            None => Value::Null,
        };
        match groups.iter_mut().find(|g| g.0 == value) {
            Some(g) => g.2.push(i),
            None => groups.push((value, text, vec![i])),
        }
    }
    if let Some(g) = groups.iter().find(|g| g.2.len() >= quorum) {
        return Ok(Verdict::Quorum {
            replicas: g.2.clone(),
            output: Some(g.1.clone()),
        });
    }
    let most = groups.iter().map(|g| g.2.len()).max().unwrap_or(0);
    if most + open < quorum {
        let seen = groups
            .iter()
            .map(|g| (g.1.clone().unwrap_or_else(|| "null".into()), g.2.len()))
            .collect();
        return Ok(Verdict::Impossible { most, seen });
    }
    Ok(Verdict::Open)
}

impl SchedulerState {
    /// Decides what the replicas of swarm task `t` of `run` add up to, if anything (an
    /// effect: the replicas' ends are durable). Also run at boot for every waiting swarm.
    pub(crate) fn judge_swarm(&mut self, run: RunId, t: TaskIndex) {
        let Some(r) = self.state.run(run) else { return };
        if r.state() != crate::model::RunState::Running || !r.swarm_waiting(t) {
            // Decided, cancelled, or its run ended: nothing to judge, nothing to remember.
            let ids: Vec<_> = r
                .replicas(t)
                .unwrap_or_default()
                .into_iter()
                .map(|rt| (run, r.workflow().task_id(rt).clone()))
                .collect();
            for id in ids {
                self.replica_outputs.remove(&id);
            }
            return;
        }
        let wf = std::sync::Arc::clone(r.workflow());
        let outputs = self.outputs.clone();
        let recent = &self.replica_outputs;
        // Outputs decided since boot come from memory (they may not be durable yet, but
        // precede this verdict in the journal); older ones from the journal.
        let verdict = judge(r, t, |rt| {
            let id = wf.task_id(rt);
            match recent.get(&(run, id.clone())) {
                Some(text) => Ok(Some(text.clone())),
                None => outputs.text(run, id).map_err(|e| e.to_string()),
            }
        });
        let verdict = match verdict {
            Ok(v) => v,
            Err(e) => {
                // Only a damaged journal gets here: the task stays waiting for an operator.
                tracing::error!(run_id = %run, task_id = %wf.task_id(t), error = %e, "cannot judge swarm task");
                return;
            }
        };
        let task = wf.task_id(t).clone();
        let quorum = wf.task(t).swarm().map_or(0, |s| s.quorum);
        let open: Vec<TaskIndex> = r
            .replicas(t)
            .unwrap_or_default()
            .into_iter()
            .filter(|&rt| !r.task(rt).state.is_terminal())
            .collect();
        let mut events = Vec::new();
        if verdict != Verdict::Open {
            for rt in r.replicas(t).unwrap_or_default() {
                self.replica_outputs.remove(&(run, wf.task_id(rt).clone()));
            }
        }
        match verdict {
            Verdict::Open => return,
            Verdict::Quorum { replicas, output } => {
                events.push(Event::QuorumReached {
                    run,
                    task: task.clone(),
                    replicas,
                });
                if let Some(output) = output {
                    if let Some(output) = output {
                        events.push(Event::TaskOutput {
                            run,
                            task: task.clone(),
                            attempt: 0,
                            output,
                        });
                    }
                    events.push(Event::TaskSucceeded {
                        run,
                        task: task.clone(),
                        attempt: 0,
                        usage: None,
                    });
                }
                events.extend(open.iter().map(|&rt| Event::TaskCancelled {
                    run,
                    task: wf.task_id(rt).clone(),
                }));
            }
            Verdict::Impossible { most, seen } => {
                events.extend(open.iter().map(|&rt| Event::TaskCancelled {
                    run,
                    task: wf.task_id(rt).clone(),
                }));
                events.push(Event::TaskFailed {
                    run,
                    task: task.clone(),
                    attempt: 0,
                    failure: Run::no_quorum(most, quorum, &seen),
                    usage: None,
                });
            }
        }
        for e in events {
            if let Err(e) = self.decide(e) {
                tracing::error!(run_id = %run, task_id = %task, error = %e, "swarm decision refused by the fold");
                return;
            }
        }
        let kill = self.running_where(|rr, tt| rr == run && open.contains(&tt));
        if !kill.is_empty() {
            self.after_persist(Effect::Terminate(kill));
        }
    }
}
