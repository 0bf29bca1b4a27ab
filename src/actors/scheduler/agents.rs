//! Agent trees on the write side: spawning child runs, capability tokens, and what follows
//! from the fold's transitions — a parent task's end closes its children
//! (`on_parent_exit`), a child's failure escalates (`on_failure = "fail_parent"`), usage over
//! a budget stops the subtree (`budget_exhausted`; decided in `budgets.rs`).
//!
//! Consequences are decided right after their cause (in the same append when possible). A
//! crash between the two loses only the consequence, and [`SchedulerState::recover_agents`]
//! decides it again at the next start: a subtree cancel interrupted by a crash finishes.

use std::sync::Arc;

use super::commands::to_control_error;
use super::*;
use crate::messages::control::{Caller, ControlError, DelegateRequest, SpawnRequest};
use crate::model::decide::{self, SpawnAsk, SpawnDecision, SpawnError};
use crate::model::{Change, Event, OnFailure, OnParentExit, RunId, RunState, TaskIndex, TaskState};

/// Work the fold's transitions left for the agent rules (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct AgentDue {
    /// Tasks that reached a final state and may have live children.
    pub(super) closed_tasks: Vec<(RunId, TaskIndex)>,
    /// Runs that finished and may escalate to their parent.
    pub(super) finished: Vec<RunId>,
    /// Runs whose subtree usage grew.
    pub(super) usage: Vec<RunId>,
}

impl AgentDue {
    fn is_empty(&self) -> bool {
        self.closed_tasks.is_empty() && self.finished.is_empty() && self.usage.is_empty()
    }
}

/// A fresh capability token: 128 random bits from the OS's generator, as 32 hex digits.
pub(crate) fn new_token() -> u128 {
    rand::random::<u128>()
}

impl SchedulerState {
    /// Notes what a transition may set off (called for every change of a decided event).
    pub(crate) fn note_for_agents(&mut self, change: &Change) {
        match *change {
            Change::Task { run, task, to, .. }
                if to.is_terminal()
                    && self
                        .state
                        .run(run)
                        .and_then(|r| r.lineage())
                        .is_some_and(|l| l.live_children > 0) =>
            {
                self.agent_due.closed_tasks.push((run, task));
            }
            Change::Run { run, to, .. }
                if to.is_finished()
                    && self.state.run(run).is_some_and(|r| r.parent().is_some()) =>
            {
                self.agent_due.finished.push(run);
            }
            _ => {}
        }
    }

    /// Decides what [`AgentDue`] holds, until nothing more follows.
    pub(crate) fn run_agent_rules(&mut self) {
        while !self.agent_due.is_empty() {
            let due = std::mem::take(&mut self.agent_due);
            for (run, task) in due.closed_tasks {
                self.close_children(run, task);
            }
            for run in due.finished {
                self.escalate(run);
            }
            for run in due.usage {
                if let Some(event) = decide::budget_exhausted(&self.state, run) {
                    self.over_budget(event);
                }
            }
        }
    }

    /// Cancels the live children of task `task` of `run` spawned with `on_parent_exit =
    /// "cancel"` (the task reached a final state).
    fn close_children(&mut self, run: RunId, task: TaskIndex) {
        let live: Vec<RunId> = self
            .state
            .children_of(run, task)
            .filter(|c| {
                !c.state().is_finished()
                    && c.lineage()
                        .is_some_and(|l| l.on_parent_exit == OnParentExit::Cancel)
            })
            .map(|c| c.id())
            .collect();
        for child in live {
            tracing::info!(run_id = %child, parent = %run, "parent task ended: cancelling its child");
            self.stop_run(Event::RunCancelled { run: child }, child);
        }
    }

    /// Cancels every live descendant of `run`, whatever its `on_parent_exit`: a subtree whose
    /// budget ran out stops whole (an abandoned descendant would go on spending it).
    pub(super) fn cancel_descendants(&mut self, run: RunId) {
        let mut live = Vec::new();
        let mut stack = vec![run];
        while let Some(at) = stack.pop() {
            let Some(l) = self.state.run(at).and_then(|r| r.lineage()) else {
                continue;
            };
            for &child in &l.children {
                stack.push(child);
                if self
                    .state
                    .run(child)
                    .is_some_and(|c| !c.state().is_finished())
                {
                    live.push(child);
                }
            }
        }
        // Parents come before their descendants: a descendant a parent's cancel already
        // closed is skipped by `stop_run`.
        for child in live {
            self.stop_run(Event::RunCancelled { run: child }, child);
        }
    }

    /// A child that finished without succeeding, spawned with `on_failure = "fail_parent"`:
    /// the parent's running attempt fails as `child_failed` and is terminated.
    fn escalate(&mut self, child: RunId) {
        let Some(c) = self.state.run(child) else {
            return;
        };
        let Some(l) = c.lineage() else { return };
        if c.state() == RunState::Succeeded || l.on_failure != OnFailure::FailParent {
            return;
        }
        let Some((parent, task)) = l.parent else {
            return;
        };
        let message = format!("child run {child} (key {:?}) ended {}", l.key, c.state());
        let Some(p) = self.state.run(parent) else {
            return;
        };
        let t = p.task(task);
        if t.state != TaskState::Running {
            return;
        }
        let events = decide::attempt_close(
            &self.state,
            parent,
            task,
            t.attempts,
            decide::AttemptEnd::Failed {
                failure: crate::model::Failure::ChildFailed { message },
                retryable: true,
                usage: None,
            },
            decide::Handed::default(),
            now(),
            rand::random::<f64>(),
        );
        for event in events {
            if let Err(e) = self.decide(event) {
                tracing::error!(error = %e, "escalation refused by the fold");
            }
        }
        let kill = self.running_where(|r, tt| r == parent && tt == task);
        self.after_persist(Effect::Terminate(kill));
    }

    /// Decides `event` (a `run_cancelled` or `budget_exhausted` of `run`) and terminates the
    /// run's attempts that it cancelled.
    pub(crate) fn stop_run(&mut self, event: Event, run: RunId) {
        if self
            .state
            .run(run)
            .is_none_or(|r| r.state() != RunState::Running)
        {
            return;
        }
        if let Err(e) = self.decide(event) {
            tracing::error!(error = %e, run_id = %run, "stopping a run refused by the fold");
            return;
        }
        let r = self.state.run(run).expect("just applied");
        let kill = self.running_where(|rr, t| rr == run && r.task(t).state != TaskState::Running);
        self.after_persist(Effect::Terminate(kill));
    }

    /// The task attempt `caller` names, if its token is the one that attempt was given and
    /// it is still running.
    fn authenticate(&self, caller: &Caller) -> Result<TaskIndex, ControlError> {
        let denied = |why: &str| {
            ControlError::Denied(format!(
                "TROUPE_TOKEN is not valid for attempt {} of {}/{}: {why}",
                caller.attempt, caller.run, caller.task
            ))
        };
        let t = self
            .state
            .run(caller.run)
            .and_then(|r| r.workflow().task_index(caller.task.as_str()))
            .ok_or_else(|| denied("no such task"))?;
        let running = self
            .running
            .get(&(caller.run, t))
            .filter(|r| {
                r.id.attempt == caller.attempt
                    && r.id.kind == crate::messages::scheduler::AttemptKind::Forward
            })
            .ok_or_else(|| denied("that attempt is not running"))?;
        let ok = u128::from_str_radix(&caller.token, 16)
            .is_ok_and(|token| caller.token.len() == 32 && token == running.token);
        let r = self.state.run(caller.run).expect("checked");
        if !ok {
            return Err(denied("the token belongs to another attempt"));
        }
        if r.task(t).state != TaskState::Running || r.task(t).attempts != caller.attempt {
            return Err(denied("that attempt has ended"));
        }
        Ok(t)
    }

    /// `troupe delegate`: attaches to the run the key names (delegated before), or routes
    /// the capability to a registry agent and spawns its command.
    pub(crate) fn delegate(
        &mut self,
        req: DelegateRequest,
    ) -> Result<(RunId, bool, String, String), ControlError> {
        let caller = match &req.caller {
            Some(c) => Some((c.run, self.authenticate(c)?)),
            None => None,
        };
        // A key delegated before names the same run, whichever agent it went to.
        let existing = match caller {
            Some((parent, t)) => {
                let task = self
                    .state
                    .run(parent)
                    .expect("authenticated")
                    .workflow()
                    .task_id(t);
                let id = decide::child_id(parent, task.as_str(), &req.key);
                self.state.run(id)
            }
            None => self.state.runs().find(|r| {
                r.lineage()
                    .is_some_and(|l| l.parent.is_none() && l.key == req.key && !l.key.is_empty())
            }),
        };
        if let Some(r) = existing {
            let l = r.lineage().expect("a spawned run has a lineage");
            if let Some(agent) = &l.agent {
                if l.input.as_deref() == req.input.as_deref() {
                    return Ok((r.id(), true, agent.clone(), "attached by key".into()));
                }
            }
            return Err(ControlError::Refused(format!(
                "spawn conflict: key {:?} already names run {}, spawned with a different \
                 input or not by delegate; use another key for different work",
                req.key,
                r.id()
            )));
        }
        let registry = &self.shared.config.agent_registry;
        let (i, reason) = match crate::model::routing::route(&self.state, registry, &req.capability)
        {
            Ok(x) => x,
            Err(message) => {
                self.refuse(req.caller.as_ref(), &req.key, "no_agent", &message)?;
                return Err(ControlError::Denied(format!(
                    "delegate refused (no_agent): {message}"
                )));
            }
        };
        let agent = registry[i].clone();
        let mut task = crate::model::TaskSpec::new(
            crate::model::TaskId::new("main").expect("a valid id"),
            agent.command.clone(),
        );
        task.cwd = Some(req.cwd.clone());
        let workflow = crate::model::Workflow::from_spec(crate::model::WorkflowSpec {
            name: format!("agent: {}", agent.name),
            max_concurrency: None,
            pools: Default::default(),
            defaults: Default::default(),
            tasks: vec![task],
            delegation: None,
            resilience: None,
            origin: None,
        })
        .map_err(|e| ControlError::Refused(format!("agent {}: {e}", agent.name)))?;
        let routing = crate::model::Routing {
            agent: agent.name.clone(),
            capability: req.capability.clone(),
            reason: reason.clone(),
        };
        let spawn = SpawnRequest {
            caller: req.caller,
            key: req.key,
            workflow: Box::new(workflow),
            input: req.input,
            authority: agent.authority.overlay(&req.authority),
            on_failure: req.on_failure,
            on_parent_exit: req.on_parent_exit,
            on_budget_exhausted: req.on_budget_exhausted,
        };
        let (run, attached) = self.spawn_with(spawn, Some(routing))?;
        tracing::info!(run_id = %run, agent = %agent.name, %reason, "delegated");
        Ok((run, attached, agent.name, reason))
    }

    /// Journals a refused spawn and counts it.
    fn refuse(
        &mut self,
        caller: Option<&Caller>,
        key: &str,
        reason: &'static str,
        message: &str,
    ) -> Result<(), ControlError> {
        let (parent, task) = match caller {
            Some(c) => (Some(c.run), Some(c.task.clone())),
            None => (None, None),
        };
        self.decide(Event::SpawnRefused {
            parent,
            task,
            key: key.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
        })
        .map_err(to_control_error)?;
        self.metrics.spawn_refused(reason);
        Ok(())
    }

    /// `troupe spawn`: attaches to the run the key names, or checks the limits and
    /// journals the new run (or the refusal).
    pub(crate) fn spawn(&mut self, req: SpawnRequest) -> Result<(RunId, bool), ControlError> {
        self.spawn_with(req, None)
    }

    fn spawn_with(
        &mut self,
        req: SpawnRequest,
        routing: Option<crate::model::Routing>,
    ) -> Result<(RunId, bool), ControlError> {
        let caller = match &req.caller {
            Some(c) => Some((c.run, self.authenticate(c)?, c.attempt)),
            None => None,
        };
        // Checked as a file would be where it came in (the control server checks a decoded
        // one; an in-process one was built by `Workflow::from_spec`), so the scheduler's one
        // thread only re-checks it when node approval rules change it.
        let rules = &self.shared.config.approval_rules;
        let policies_apply = !self.shared.config.retry_policies.is_empty()
            || req
                .workflow
                .spec()
                .tasks
                .iter()
                .any(|t| t.retry_choice.is_some());
        let workflow = if rules.is_empty() && !policies_apply {
            *req.workflow
        } else {
            let spec = crate::actors::approval::apply_rules(req.workflow.spec().clone(), rules);
            let spec = self.node_settings(spec)?;
            crate::model::Workflow::from_spec(spec)
                .map_err(|e| ControlError::Refused(format!("invalid workflow: {e}")))?
        };
        self.check_secrets(&workflow)?;
        let authority = workflow.authority_ask().overlay(&req.authority);
        let ask = SpawnAsk {
            caller,
            key: req.key.clone(),
            workflow: Arc::new(workflow),
            input: req.input.clone(),
            authority,
            on_failure: req.on_failure,
            on_parent_exit: req.on_parent_exit,
            on_budget_exhausted: req.on_budget_exhausted,
        };
        match decide::spawn(&self.state, &ask, &self.shared.config.agents) {
            Ok(SpawnDecision::Attach(run)) => Ok((run, true)),
            Ok(SpawnDecision::Spawn(mut event)) => {
                if let Event::RunSpawned { run, spawn, .. } = &mut event {
                    if caller.is_none() {
                        *run = RunId::from_ulid(ulid::Ulid::new());
                    }
                    spawn.routing = routing.map(Box::new);
                }
                let run = event.run().expect("run_spawned names its run");
                self.decide(event).map_err(to_control_error)?;
                Ok((run, false))
            }
            Err(SpawnError::Conflict(message)) => Err(ControlError::Refused(message)),
            Err(SpawnError::Refused { reason, message }) => {
                self.refuse(req.caller.as_ref(), &req.key, reason, &message)?;
                Err(ControlError::Denied(format!(
                    "spawn refused ({reason}): {message}"
                )))
            }
        }
    }

    /// The attempt of `run`/`task` waits for its children: it lends its worker slot (once).
    pub(crate) fn waiting(&mut self, run: RunId, task: TaskIndex, attempt: u32) {
        if let Some(r) = self.running.get_mut(&(run, task)) {
            if r.id.attempt == attempt
                && r.id.kind == crate::messages::scheduler::AttemptKind::Forward
                && !r.lent
            {
                r.lent = true;
                let (slot, id) = (r.slot, r.id);
                self.workers.lend(slot, id);
                tracing::debug!(run_id = %run, attempt, "an attempt waiting for its children lent its slot");
            }
        }
    }

    /// `troupe wait` inside a task: the token is the attempt's and every run is a child of
    /// its task. The attempt then lends its worker slot while it waits.
    pub(crate) fn check_children(
        &mut self,
        caller: &Caller,
        runs: &[RunId],
    ) -> Result<(), ControlError> {
        let t = self.authenticate(caller)?;
        self.waiting(caller.run, t, caller.attempt);
        for run in runs {
            let mine = self
                .state
                .run(*run)
                .and_then(|r| r.parent())
                .is_some_and(|p| p == (caller.run, t));
            if !mine {
                return Err(ControlError::Denied(format!(
                    "run {run} is not a child of {}/{}; inside a task, wait accepts only the \
                     attempt's own children",
                    caller.run, caller.task
                )));
            }
        }
        Ok(())
    }

    /// At start: decides what a crash may have left undone — children of tasks that ended
    /// (and of runs that were cancelled), subtrees over budget.
    pub(crate) fn recover_agents(&mut self) {
        let mut due = AgentDue::default();
        let mut exhausted = Vec::new();
        for r in self.state.runs() {
            let Some(l) = r.lineage() else { continue };
            if !r.state().is_finished() {
                if let Some((parent, task)) = l.parent {
                    let ended = self
                        .state
                        .run(parent)
                        .is_none_or(|p| p.task(task).state.is_terminal());
                    if ended && l.on_parent_exit == OnParentExit::Cancel {
                        due.closed_tasks.push((parent, task));
                    }
                }
                if !l.authority.budget.is_empty() {
                    due.usage.push(r.id());
                }
            }
            if r.state() == RunState::BudgetExhausted {
                exhausted.push(r.id());
            }
        }
        due.closed_tasks.sort_unstable();
        due.closed_tasks.dedup();
        self.agent_due = due;
        self.run_agent_rules();
        // A crash between `budget_exhausted` and the cancel of the subtree below it.
        for run in exhausted {
            self.cancel_descendants(run);
        }
        self.run_agent_rules();
        let ids: Vec<RunId> = self.state.runs().map(|r| r.id()).collect();
        for run in ids {
            self.watch_wall_clock(run);
        }
        self.due_deadlines();
    }
}
