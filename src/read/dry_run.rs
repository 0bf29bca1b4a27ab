//! Dry runs of operator commands ([`Request::DryRun`](crate::messages::control::Request)):
//! what `cancel`, `suspend`, `resume`, `retry` or `halt` would change, computed from the
//! projection's state by the model functions the scheduler decides the real command with
//! ([`crate::model::dry_run::command`]). Never enters the scheduler's mailbox; changes
//! nothing.

use crate::messages::control::{
    Command, CompensationTransition, ControlError, DryRunView, HaltPreview, Response,
    RunTransition, Target, TaskTransition,
};
use crate::model::decide::Verb;
use crate::model::dry_run::preview_command;
use crate::model::{Change, Timestamp};
use crate::read::projection::Projection;
use crate::read::views::{running_attempt, running_attempts};

/// The answer to a dry run of `command` against the projection as it is now.
pub fn dry_run(p: &Projection, command: &Command, now: Timestamp) -> Response {
    let (verb, target) = match command {
        Command::Cancel(t) => (Verb::Cancel, t),
        Command::Suspend(t) => (Verb::Suspend, t),
        Command::Resume(t) => (Verb::Resume, t),
        Command::Retry(t) => (Verb::Retry, t),
        Command::Halt { kill } => return Response::DryRun(Box::new(halt(p, *kill, now))),
        other => {
            return Response::Error(ControlError::BadRequest(format!(
                "no dry run of {other:?}: only cancel, suspend, resume, retry and halt have one"
            )))
        }
    };
    let (run, task) = match target {
        Target::Run(run) => (*run, None),
        Target::Task(run, task) => (*run, Some(task)),
    };
    let preview = match preview_command(&p.state, verb, run, task, now) {
        Ok(preview) => preview,
        Err(refusal) => return Response::Error(refusal.into()),
    };
    let r = p.state.run(run).expect("previewed");
    let wf = r.workflow();
    let mut view = DryRunView {
        events: preview
            .events
            .iter()
            .map(|e| e.type_name().to_owned())
            .collect(),
        runs: Vec::new(),
        tasks: Vec::new(),
        compensations: Vec::new(),
        terminate: preview
            .terminate
            .iter()
            .filter_map(|&(run, t, _)| running_attempt(&p.state, run, t, false, now))
            .collect(),
        halt: None,
    };
    for change in preview.changes {
        match change {
            Change::Run { run, from, to } => view.runs.push(RunTransition { run, from, to }),
            Change::Task {
                run,
                task,
                from,
                to,
            } => view.tasks.push(TaskTransition {
                run,
                task: wf.task_id(task).clone(),
                from,
                to,
            }),
            Change::Compensation {
                run,
                task,
                from,
                to,
            } => view.compensations.push(CompensationTransition {
                run,
                task: wf.task_id(task).clone(),
                from,
                to,
            }),
            Change::ExpansionDue { .. } => {}
        }
    }
    Response::DryRun(Box::new(view))
}

/// `halt [--kill]`: never refused (halting a halted node changes nothing); dispatch stops
/// for every queued task, and `--kill` terminates every running attempt, as
/// `actors::scheduler` does on `node_halted`.
fn halt(p: &Projection, kill: bool, now: Timestamp) -> DryRunView {
    let running = running_attempts(p, now);
    DryRunView {
        events: vec!["node_halted".to_owned()],
        runs: Vec::new(),
        tasks: Vec::new(),
        compensations: Vec::new(),
        terminate: if kill { running.clone() } else { Vec::new() },
        halt: Some(HaltPreview {
            halted: p.state.is_halted(),
            kill,
            running,
            queued: p.queue.len() as u64,
        }),
    }
}
