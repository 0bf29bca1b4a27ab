//! Agent trees: `run_spawned`, `spawn_refused`, `budget_exhausted`, and the bookkeeping that
//! ties a child run to its parent (live children, descendants, subtree usage).
//!
//! A child is an ordinary [`Run`] with a [`Lineage`]. Its parent's lineage lists it; a run
//! that was submitted (not spawned) gets a lineage the first time one of its tasks spawns,
//! with the authority the spawn event carries for it. Every number here is folded from the
//! journal, so a crash loses none of it:
//! - `live_children` goes up with each `run_spawned` and down when the child finishes (back
//!   up if an operator reopens it);
//! - `descendants` counts every run ever spawned below, for `max_descendants`;
//! - `subtree_usage` adds every `attempt_usage` of the run and of its descendants, so usage
//!   anywhere in a subtree counts against every ancestor's budget.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::change::Change;
use super::error::ApplyError;
use super::run::Run;
use super::State;
use crate::model::authority::{self, Authority};
use crate::model::event::{Counters, Event, OnBudgetExhausted, OnFailure, OnParentExit};
use crate::model::ids::{RunId, TaskIndex};
use crate::model::run::RunState;
use crate::model::task::TaskState;
use crate::model::time::Timestamp;
use crate::model::workflow::Workflow;

/// Where a run sits in an agent tree, and what its subtree may still do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// The spawning run and task (`None`: a root).
    pub parent: Option<(RunId, TaskIndex)>,
    /// The id of the spawning task (as `parent`'s index names it), for views.
    pub parent_task: Option<crate::model::ids::TaskId>,
    /// The parent task's attempt that spawned it (0 for a root).
    pub attempt: u32,
    /// The idempotency key ("" for a submitted root).
    pub key: String,
    /// 0 for a root, parent's depth + 1 below.
    pub depth: u32,
    /// The input (one compact JSON value), if any.
    pub input: Option<Arc<str>>,
    /// The effective authority.
    pub authority: Authority,
    /// Budget reserved from the parent at spawn.
    pub reserved: Counters,
    /// What the parent hears of a failure.
    pub on_failure: OnFailure,
    /// What happens to this run when its parent task ends first.
    pub on_parent_exit: OnParentExit,
    /// When the run was spawned (or the root's lineage began): `wall_clock` counts from here.
    pub spawned_at: Timestamp,
    /// Every child ever spawned, oldest first.
    pub children: Vec<RunId>,
    /// Children not finished.
    pub live_children: u32,
    /// Runs ever spawned anywhere below.
    pub descendants: u32,
    /// Usage of the run and of all its descendants.
    pub subtree_usage: Counters,
    /// The counter that ran out, once `budget_exhausted` was applied.
    pub exhausted: Option<String>,
    /// The registry agent it was delegated to (`troupe delegate`).
    pub agent: Option<String>,
    /// What happens when its subtree runs out of budget.
    pub on_budget_exhausted: OnBudgetExhausted,
    /// A human is asked to decide (an escalation is pending).
    pub asking: Option<Box<Asking>>,
}

/// A pending escalation: what a human is asked to decide, since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asking {
    /// Why.
    pub reason: AskReason,
    /// When it was asked.
    pub since: Timestamp,
}

/// Why a human is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AskReason {
    /// The run (spawned with `on_failure = "ask"`) failed: approve retries its failed tasks,
    /// reject reports the failure to its parent.
    ChildFailed,
    /// The run (spawned with `on_budget_exhausted = "ask"`) used more than its budget and is
    /// suspended: approve with `--extend` raises the budget and resumes it, reject stops it.
    Budget {
        /// The counter.
        counter: String,
        /// What the subtree used.
        used: f64,
        /// The limit.
        limit: f64,
    },
}

impl std::fmt::Display for AskReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskReason::ChildFailed => f.write_str("the child run failed (on_failure = \"ask\")"),
            AskReason::Budget {
                counter,
                used,
                limit,
            } => write!(f, "budget {counter}: used {used} of {limit}"),
        }
    }
}

impl Lineage {
    /// Budget left per limited counter: limit − (subtree usage + what live children hold in
    /// reserve beyond their own usage). What a new child may reserve.
    pub fn budget_left(&self, children: impl Iterator<Item = (Counters, Counters)>) -> Counters {
        let mut committed = self.subtree_usage.clone();
        for (reserved, used) in children {
            for (k, r) in reserved {
                let u = used.get(&k).copied().unwrap_or(0.0);
                if r > u {
                    *committed.entry(k).or_insert(0.0) += r - u;
                }
            }
        }
        authority::left(&self.authority.budget, &committed)
    }
}

impl State {
    /// `run_spawned`: a new run with its lineage, counted in its parent's and every
    /// ancestor's.
    pub(super) fn spawn(
        &mut self,
        event: &Event,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        let Event::RunSpawned {
            run: id,
            workflow,
            spawn,
        } = event
        else {
            unreachable!("routed here for run_spawned only")
        };
        if self.runs.contains_key(id) {
            return Err(ApplyError::DuplicateRun(*id));
        }
        let not_allowed = |reason: String| ApplyError::NotAllowed {
            event: event.type_name(),
            run: Some(*id),
            task: None,
            reason,
        };
        let mut depth = 0;
        let mut parent_ref = None;
        if let Some((parent, task)) = &spawn.parent {
            let p = self
                .runs
                .get(parent)
                .ok_or(ApplyError::UnknownRun(*parent))?;
            let t = p.index_of(task)?;
            if p.task(t).state != TaskState::Running || p.task(t).attempts != spawn.attempt {
                return Err(not_allowed(format!(
                    "attempt {} of `{task}` in run {parent} is not running",
                    spawn.attempt
                )));
            }
            if p.lineage.is_none() && spawn.parent_authority.is_none() {
                return Err(not_allowed(format!(
                    "run {parent} has no authority recorded and the spawn carries none"
                )));
            }
            depth = p.lineage.as_ref().map_or(0, |l| l.depth) + 1;
            parent_ref = Some((*parent, t));
        }
        if let Some((parent, t)) = parent_ref {
            let p = self.runs.get_mut(&parent).expect("checked");
            let own = p.usage_total();
            let l = p.lineage.get_or_insert_with(|| {
                Box::new(Lineage {
                    parent: None,
                    parent_task: None,
                    attempt: 0,
                    key: String::new(),
                    depth: 0,
                    input: None,
                    authority: spawn.parent_authority.clone().expect("checked"),
                    reserved: Counters::new(),
                    on_failure: OnFailure::Report,
                    on_parent_exit: OnParentExit::Cancel,
                    spawned_at: time,
                    children: Vec::new(),
                    live_children: 0,
                    descendants: 0,
                    subtree_usage: own,
                    exhausted: None,
                    agent: None,
                    on_budget_exhausted: OnBudgetExhausted::Stop,
                    asking: None,
                })
            });
            l.children.push(*id);
            l.live_children += 1;
            let _ = t;
            let mut up = Some(parent);
            while let Some(a) = up {
                let r = self.runs.get_mut(&a).expect("ancestors exist");
                let l = r.lineage.as_mut().expect("an ancestor has a lineage");
                l.descendants += 1;
                up = l.parent.map(|(p, _)| p);
            }
        }
        let mut run = Run::new(*id, Arc::clone(workflow), time, changes);
        run.lineage = Some(Box::new(Lineage {
            parent: parent_ref,
            parent_task: spawn.parent.as_ref().map(|(_, t)| t.clone()),
            attempt: spawn.attempt,
            key: spawn.key.clone(),
            depth,
            input: spawn.input.as_deref().map(Arc::from),
            authority: spawn.authority.clone(),
            reserved: spawn.reserved.clone(),
            on_failure: spawn.on_failure,
            on_parent_exit: spawn.on_parent_exit,
            spawned_at: time,
            children: Vec::new(),
            live_children: 0,
            descendants: 0,
            subtree_usage: Counters::new(),
            exhausted: None,
            agent: spawn.routing.as_ref().map(|r| r.agent.clone()),
            on_budget_exhausted: spawn.on_budget_exhausted,
            asking: None,
        }));
        self.runs.insert(*id, run);
        self.index_origin(*id, workflow);
        Ok(())
    }

    /// Adds `counters` (just applied to run `run`) to the subtree usage of the run and of
    /// every ancestor.
    pub(super) fn add_subtree_usage(&mut self, run: RunId, counters: &Counters) {
        let mut at = Some(run);
        while let Some(id) = at {
            let Some(l) = self.runs.get_mut(&id).and_then(|r| r.lineage.as_mut()) else {
                return;
            };
            authority::add(&mut l.subtree_usage, counters);
            at = l.parent.map(|(p, _)| p);
        }
    }

    /// After an event changed whether child `run` is finished: its parent's count of live
    /// children follows, and a failed `on_failure = "ask"` child starts asking a human (a
    /// reopened one stops).
    pub(super) fn child_finished_changed(&mut self, run: RunId, finished: bool, time: Timestamp) {
        if let Some(r) = self.runs.get_mut(&run) {
            let failed = r.state() == RunState::Failed;
            if let Some(l) = r.lineage.as_mut() {
                if finished
                    && l.asking
                        .as_ref()
                        .is_some_and(|a| matches!(a.reason, AskReason::Budget { .. }))
                {
                    // Moot once the run ended (cancelled meanwhile): nobody is asked.
                    l.asking = None;
                }
                if finished && failed && l.on_failure == OnFailure::Ask {
                    l.asking = Some(Box::new(Asking {
                        reason: AskReason::ChildFailed,
                        since: time,
                    }));
                } else if !finished
                    && l.asking
                        .as_ref()
                        .is_some_and(|a| a.reason == AskReason::ChildFailed)
                {
                    l.asking = None;
                }
            }
        }
        let Some((parent, _)) = self
            .runs
            .get(&run)
            .and_then(|r| r.lineage.as_ref())
            .and_then(|l| l.parent)
        else {
            return;
        };
        if let Some(l) = self.runs.get_mut(&parent).and_then(|r| r.lineage.as_mut()) {
            if finished {
                l.live_children = l.live_children.saturating_sub(1);
            } else {
                l.live_children += 1;
            }
        }
    }

    /// The children task `task` of run `run` spawned, oldest first.
    pub fn children_of(&self, run: RunId, task: TaskIndex) -> impl Iterator<Item = &Run> + '_ {
        self.runs
            .get(&run)
            .and_then(|r| r.lineage.as_deref())
            .into_iter()
            .flat_map(|l| l.children.iter())
            .filter_map(move |c| self.runs.get(c))
            .filter(move |c| c.lineage().and_then(|l| l.parent) == Some((run, task)))
    }

    /// Run `run` and its ancestors, nearest first.
    pub fn ancestry(&self, run: RunId) -> impl Iterator<Item = &Run> + '_ {
        let mut at = Some(run);
        std::iter::from_fn(move || {
            let r = self.runs.get(&at?)?;
            at = r.lineage().and_then(|l| l.parent).map(|(p, _)| p);
            Some(r)
        })
    }

    /// What every agent tree satisfies: a child's lineage names the parent that lists it;
    /// `live_children` counts the unfinished children; `descendants` is the sum over the
    /// children of 1 + theirs; depth is the parent's + 1. (Subtree usage is a float sum
    /// folded in journal order; re-adding it in another order can differ by rounding, so a
    /// snapshot is not refused over it.)
    pub(super) fn check_trees(&self) -> Result<(), String> {
        for r in self.runs.values() {
            let Some(l) = r.lineage() else { continue };
            let mut live = 0;
            let mut descendants = 0;
            for c in &l.children {
                let child = self
                    .runs
                    .get(c)
                    .ok_or_else(|| format!("run {}: child {c} does not exist", r.id()))?;
                let cl = child
                    .lineage()
                    .ok_or_else(|| format!("run {}: child {c} has no lineage", r.id()))?;
                if cl.parent.map(|(p, _)| p) != Some(r.id()) {
                    return Err(format!("run {}: child {c} names another parent", r.id()));
                }
                if cl.depth != l.depth + 1 {
                    return Err(format!(
                        "run {c}: depth {} under depth {}",
                        cl.depth, l.depth
                    ));
                }
                live += u32::from(!child.state().is_finished());
                descendants += 1 + cl.descendants;
            }
            if live != l.live_children {
                return Err(format!(
                    "run {}: live_children {} but {live} children are unfinished",
                    r.id(),
                    l.live_children
                ));
            }
            if descendants != l.descendants {
                return Err(format!(
                    "run {}: descendants {} but the children sum to {descendants}",
                    r.id(),
                    l.descendants
                ));
            }
        }
        Ok(())
    }

    /// Budget left to run `run` (see [`Lineage::budget_left`]); empty if it has no lineage
    /// or no budget.
    pub fn budget_left(&self, run: RunId) -> Counters {
        let Some(l) = self.runs.get(&run).and_then(|r| r.lineage()) else {
            return Counters::new();
        };
        l.budget_left(l.children.iter().filter_map(|c| {
            let c = self.runs.get(c)?;
            let cl = c.lineage()?;
            (!c.state().is_finished()).then(|| (cl.reserved.clone(), cl.subtree_usage.clone()))
        }))
    }
}

impl Run {
    /// Where the run sits in an agent tree (`None`: a submitted run that never spawned).
    pub fn lineage(&self) -> Option<&Lineage> {
        self.lineage.as_deref()
    }

    /// The parent run and task, if the run was spawned by a task.
    pub fn parent(&self) -> Option<(RunId, TaskIndex)> {
        self.lineage().and_then(|l| l.parent)
    }

    /// `escalation_requested`: the run is suspended and asks a human about its budget.
    pub(super) fn ask_budget(
        &mut self,
        event: &Event,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        let Event::EscalationRequested {
            counter,
            used,
            limit,
            ..
        } = event
        else {
            unreachable!("routed here for escalation_requested only")
        };
        self.require_run_state(event, &[RunState::Running])?;
        match self.lineage.as_ref() {
            None => return Err(self.not_allowed(event, "the run has no budget")),
            Some(l) if l.asking.is_some() => {
                return Err(self.not_allowed(event, "a human is already asked"))
            }
            Some(_) => {}
        }
        let l = self.lineage.as_mut().expect("checked");
        l.asking = Some(Box::new(Asking {
            reason: AskReason::Budget {
                counter: counter.clone(),
                used: *used,
                limit: *limit,
            },
            since: time,
        }));
        if !self.suspended {
            self.suspend_run(changes);
        }
        Ok(())
    }

    /// `escalation_decided`: see [`Event::EscalationDecided`].
    pub(super) fn decide_escalation(
        &mut self,
        event: &Event,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        let Event::EscalationDecided {
            approved, extend, ..
        } = event
        else {
            unreachable!("routed here for escalation_decided only")
        };
        let Some(asking) = self.lineage.as_ref().and_then(|l| l.asking.clone()) else {
            return Err(self.not_allowed(event, "no human is asked about this run"));
        };
        if extend.values().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(self.not_allowed(event, "an extension is not a finite number, 0 or more"));
        }
        let l = self.lineage.as_mut().expect("checked");
        l.asking = None;
        if let AskReason::Budget { counter, .. } = asking.reason {
            if *approved {
                for (k, v) in extend {
                    if k == "wall_clock" {
                        l.authority.wall_clock = l.authority.wall_clock.and_then(|w| {
                            w.checked_add(std::time::Duration::try_from_secs_f64(*v).ok()?)
                        });
                    } else if let Some(b) = l.authority.budget.get_mut(k) {
                        *b += v;
                    }
                }
                if self.state == RunState::Running && self.suspended {
                    self.resume_run(time, changes);
                }
            } else if self.state == RunState::Running {
                l.exhausted = Some(counter);
                self.suspended = false;
                self.stop(time, RunState::BudgetExhausted, changes);
            }
        }
        Ok(())
    }

    /// `budget_exhausted`: stops the run like a cancel (a saga compensates) and records the
    /// counter.
    pub(super) fn exhaust(
        &mut self,
        event: &Event,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        let Event::BudgetExhausted { counter, .. } = event else {
            unreachable!("routed here for budget_exhausted only")
        };
        self.require_run_state(event, &[RunState::Running])?;
        let Some(l) = self.lineage.as_mut() else {
            return Err(self.not_allowed(event, "the run has no budget"));
        };
        l.exhausted = Some(counter.clone());
        self.stop(time, RunState::BudgetExhausted, changes);
        Ok(())
    }
}

/// The program of each task of `workflow`, as `allowed_commands` sees it: `argv[0]`, or
/// `sh` for a shell line.
pub fn programs(workflow: &Workflow) -> impl Iterator<Item = &str> + '_ {
    workflow.spec().tasks.iter().map(|t| match &t.command {
        crate::model::spec::Command::Argv(argv) => argv.first().map_or("", String::as_str),
        crate::model::spec::Command::Shell(_) => "sh",
    })
}
