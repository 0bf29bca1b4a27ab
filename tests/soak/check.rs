//! The soak's invariant checker: reads a stopped node's journal, event by event, and names
//! every violation of the crash guarantees of docs/semantics.md by sequence number.
//!
//! It is incremental: after each kill it reads only the events appended since the last
//! check (the journal is append-only), after checking that the last event it read is still
//! there unchanged and that sequence numbers go on without a gap. What it knows about each
//! run and task carries over, so every rule holds across all restarts, not only within one.
//!
//! Rules, per event:
//! - a task succeeds at most once, and no attempt of it starts after its success;
//! - attempt numbers of a task only grow; an attempt ends at most once, and only the open
//!   one (so an interrupted attempt is closed once, and never after it ended otherwise);
//! - compensations run one at a time per run, only for a step that succeeded, newest
//!   completion first (every compensable step that completed later is undone before an
//!   earlier one starts), and none starts again after its success was journaled;
//!
//! and, against what the soak's clients were told: every acknowledged submission, child
//! spawn and approval decision is in the journal.

use std::collections::{HashMap, HashSet};

use troupe::model::event::Failure;
use troupe::model::{Event, EventRecord, RunId, Seq, TaskId};
use troupe::storage::Journal;

/// Counts for the report (docs/benchmarks.md, "Soak").
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Events read and checked.
    pub events: u64,
    /// Individual rule evaluations (one per rule per event, one per acknowledgement).
    pub checks: u64,
    /// Attempts and compensation attempts closed as `interrupted`.
    pub interrupted: u64,
    /// Runs in the journal (submitted and spawned).
    pub runs: u64,
    /// `troupe journal verify` runs (all passed).
    pub verified: u64,
}

/// What the checker knows about one task, from its events so far.
#[derive(Debug, Default)]
struct TaskFacts {
    /// Highest attempt number started.
    last_started: u32,
    /// The attempt started and not yet ended.
    open: Option<u32>,
    /// Sequence number of its `task_succeeded`.
    succeeded: Option<Seq>,
    /// The compensation attempt started and not yet ended.
    comp_open: Option<u32>,
    /// Sequence number of its `compensation_succeeded`.
    comp_succeeded: Option<Seq>,
}

/// What the checker knows about one run.
#[derive(Debug, Default)]
struct RunFacts {
    /// Tasks with a compensation (instances of a mapped task included once expanded).
    compensable: HashSet<TaskId>,
    /// Compensable tasks in the order they succeeded.
    completion: Vec<TaskId>,
    /// The compensation running, if any.
    comp_running: Option<TaskId>,
}

/// The checker's state across kills.
#[derive(Debug, Default)]
pub struct Checker {
    /// The last event read, re-read at the next check to see that it did not change.
    last: Option<(Seq, EventRecord)>,
    runs: HashMap<RunId, RunFacts>,
    tasks: HashMap<(RunId, TaskId), TaskFacts>,
    /// Approval decisions journaled: (run, task).
    decided: HashSet<(RunId, TaskId)>,
    /// Counts so far.
    pub figures: Figures,
    /// Violations found, each naming its sequence number or acknowledgement.
    pub problems: Vec<String>,
}

impl Checker {
    /// Reads and checks every event of `journal` after the last one checked.
    pub fn check_journal(&mut self, journal: &Journal) {
        let from = match self.last.take() {
            Some((seq, record)) => {
                self.figures.checks += 1;
                match journal.get(seq) {
                    Ok(Some(now)) if now == record => {}
                    Ok(Some(_)) => self.problem(seq, "the event changed since it was read".into()),
                    Ok(None) => self.problem(seq, "an event read before is gone".into()),
                    Err(e) => self.problem(seq, format!("an event read before is unreadable: {e}")),
                }
                self.last = Some((seq, record));
                seq + 1
            }
            None => 1,
        };
        let mut expect = from;
        for item in journal.events_from(from) {
            self.figures.checks += 1;
            match item {
                Ok((seq, record)) => {
                    if seq != expect {
                        self.problem(seq, format!("sequence gap: expected {expect}"));
                    }
                    expect = seq + 1;
                    self.apply(seq, &record);
                    self.last = Some((seq, record));
                }
                Err(e) => {
                    self.problem(expect, format!("unreadable record: {e}"));
                    return;
                }
            }
        }
    }

    /// Checks one event against what came before, then records it.
    pub fn apply(&mut self, seq: Seq, record: &EventRecord) {
        self.figures.events += 1;
        match &record.event {
            Event::RunSubmitted { run, workflow } | Event::RunSpawned { run, workflow, .. } => {
                self.figures.checks += 1;
                if self.runs.contains_key(run) {
                    self.problem(seq, format!("run {run} created twice"));
                }
                self.figures.runs += 1;
                let compensable = workflow
                    .spec()
                    .tasks
                    .iter()
                    .filter(|t| t.compensate.is_some())
                    .map(|t| t.id.clone())
                    .collect();
                self.runs.insert(
                    *run,
                    RunFacts {
                        compensable,
                        ..RunFacts::default()
                    },
                );
            }
            Event::TaskExpanded { run, task, count } => {
                let facts = self.runs.entry(*run).or_default();
                if facts.compensable.remove(task) {
                    for i in 0..*count {
                        facts.compensable.insert(TaskId::instance(task, i));
                    }
                }
            }
            Event::AttemptStarted { run, task, attempt } => {
                self.figures.checks += 3;
                let t = self.tasks.entry((*run, task.clone())).or_default();
                let mut found = Vec::new();
                if let Some(at) = t.succeeded {
                    found.push(format!(
                        "attempt {attempt} of {run}/{task} started after the task succeeded (seq {at})"
                    ));
                }
                if *attempt <= t.last_started {
                    found.push(format!(
                        "attempt {attempt} of {run}/{task} started after attempt {}",
                        t.last_started
                    ));
                }
                if let Some(open) = t.open {
                    found.push(format!(
                        "attempt {attempt} of {run}/{task} started while attempt {open} was open"
                    ));
                }
                t.last_started = t.last_started.max(*attempt);
                t.open = Some(*attempt);
                self.problems_at(seq, found);
            }
            Event::TaskSucceeded {
                run, task, attempt, ..
            } => {
                self.figures.checks += 2;
                let t = self.tasks.entry((*run, task.clone())).or_default();
                let mut found = Vec::new();
                if let Some(at) = t.succeeded {
                    found.push(format!("{run}/{task} succeeded twice (first at seq {at})"));
                }
                if t.open != Some(*attempt) {
                    found.push(format!(
                        "{run}/{task} succeeded with attempt {attempt}, which is not open ({:?})",
                        t.open
                    ));
                }
                t.succeeded.get_or_insert(seq);
                t.open = None;
                let facts = self.runs.entry(*run).or_default();
                if facts.compensable.contains(task) {
                    facts.completion.push(task.clone());
                }
                self.problems_at(seq, found);
            }
            Event::AttemptFailed {
                run,
                task,
                attempt,
                failure,
                ..
            }
            | Event::TaskFailed {
                run,
                task,
                attempt,
                failure,
                ..
            } => {
                if *failure == Failure::Interrupted {
                    self.figures.interrupted += 1;
                }
                let t = self.tasks.entry((*run, task.clone())).or_default();
                // A task can fail without an attempt (approval rejected or expired: attempt 0).
                let ended = *attempt > 0 || matches!(record.event, Event::AttemptFailed { .. });
                if ended {
                    self.figures.checks += 1;
                    if t.open != Some(*attempt) {
                        let open = t.open;
                        t.open = None;
                        self.problem(
                            seq,
                            format!("attempt {attempt} of {run}/{task} ended, but the open attempt is {open:?}"),
                        );
                        return;
                    }
                }
                t.open = None;
            }
            Event::TaskCancelled { run, task } => {
                self.tasks.entry((*run, task.clone())).or_default().open = None;
            }
            Event::RunCancelled { run } => {
                for ((r, _), t) in self.tasks.iter_mut() {
                    if r == run {
                        t.open = None;
                    }
                }
            }
            Event::ApprovalGranted { run, task, .. }
            | Event::ApprovalRejected { run, task, .. } => {
                self.decided.insert((*run, task.clone()));
            }
            Event::CompensationStarted { run, task, attempt } => {
                self.compensation_started(seq, *run, task, *attempt)
            }
            Event::CompensationSucceeded {
                run, task, attempt, ..
            } => {
                self.figures.checks += 2;
                let t = self.tasks.entry((*run, task.clone())).or_default();
                let mut found = Vec::new();
                if let Some(at) = t.comp_succeeded {
                    found.push(format!(
                        "compensation of {run}/{task} succeeded twice (first at seq {at})"
                    ));
                }
                if t.comp_open != Some(*attempt) {
                    found.push(format!(
                        "compensation {attempt} of {run}/{task} succeeded, but the open one is {:?}",
                        t.comp_open
                    ));
                }
                t.comp_succeeded.get_or_insert(seq);
                t.comp_open = None;
                self.runs.entry(*run).or_default().comp_running = None;
                self.problems_at(seq, found);
            }
            Event::CompensationFailed {
                run,
                task,
                attempt,
                failure,
                ..
            } => {
                self.figures.checks += 1;
                if *failure == Failure::Interrupted {
                    self.figures.interrupted += 1;
                }
                let t = self.tasks.entry((*run, task.clone())).or_default();
                let open = t.comp_open.take();
                self.runs.entry(*run).or_default().comp_running = None;
                if open != Some(*attempt) {
                    self.problem(
                        seq,
                        format!("compensation {attempt} of {run}/{task} ended, but the open one is {open:?}"),
                    );
                }
            }
            _ => {}
        }
    }

    /// Compensation `attempt` of `task` started: one at a time, of a succeeded step, newest
    /// completion first, never again after its success.
    fn compensation_started(&mut self, seq: Seq, run: RunId, task: &TaskId, attempt: u32) {
        self.figures.checks += 4;
        let mut found = Vec::new();
        let facts = self.runs.entry(run).or_default();
        if let Some(other) = &facts.comp_running {
            found.push(format!(
                "compensation of {run}/{task} started while that of {other} runs"
            ));
        }
        facts.comp_running = Some(task.clone());
        let later: Vec<TaskId> = match facts.completion.iter().position(|t| t == task) {
            Some(i) => facts.completion[i + 1..].to_vec(),
            None => {
                found.push(format!(
                    "compensation of {run}/{task} started, but the step never succeeded"
                ));
                Vec::new()
            }
        };
        for other in later {
            let undone = self
                .tasks
                .get(&(run, other.clone()))
                .is_some_and(|t| t.comp_succeeded.is_some());
            if !undone {
                found.push(format!(
                    "compensation of {run}/{task} started before that of {other}, which completed later"
                ));
            }
        }
        let t = self.tasks.entry((run, task.clone())).or_default();
        if let Some(at) = t.comp_succeeded {
            found.push(format!(
                "compensation {attempt} of {run}/{task} started after it succeeded (seq {at})"
            ));
        }
        if let Some(open) = t.comp_open {
            found.push(format!(
                "compensation {attempt} of {run}/{task} started while {open} was open"
            ));
        }
        t.comp_open = Some(attempt);
        self.problems_at(seq, found);
    }

    /// Every run a client was told exists (a submission's answer, a child id `troupe spawn`
    /// printed) is in the journal.
    pub fn check_runs_exist(&mut self, what: &str, runs: &[RunId]) {
        for run in runs {
            self.figures.checks += 1;
            if !self.runs.contains_key(run) {
                self.problems
                    .push(format!("acknowledged {what} {run} is not in the journal"));
            }
        }
    }

    /// Every approval decision the node acknowledged is in the journal.
    pub fn check_decisions_exist(&mut self, decisions: &[(RunId, TaskId)]) {
        for (run, task) in decisions {
            self.figures.checks += 1;
            if !self.decided.contains(&(*run, task.clone())) {
                self.problems.push(format!(
                    "acknowledged approval decision on {run}/{task} is not in the journal"
                ));
            }
        }
    }

    fn problem(&mut self, seq: Seq, what: String) {
        self.problems.push(format!("seq {seq}: {what}"));
    }

    fn problems_at(&mut self, seq: Seq, found: Vec<String>) {
        for what in found {
            self.problem(seq, what);
        }
    }
}

#[cfg(test)]
mod tests;
