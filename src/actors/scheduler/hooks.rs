//! Hooks (`[[hooks]]` in `troupe.toml` or a workflow): queuing a call in the same commit as
//! its trigger, holding a task behind its `task_ready` veto calls, running calls as journaled
//! attempts of their own (at most [`MAX_HOOKS_RUNNING`] at once, beside the task worker
//! slots), their retries, and closing the calls a crash left running.
//!
//! A call is `hook_queued` when its trigger is decided (`run_submitted`, a task that became
//! ready, succeeded or failed for good, a run that finished), so it goes to the journal in
//! the same append as its trigger: it is durable exactly when the trigger is. Each attempt is
//! `hook_started` before its process starts and `hook_succeeded` / `hook_failed` after; a
//! succeeded call never runs again, an unfinished one runs again after a restart.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use ractor::ActorRef;
use tokio::sync::oneshot;

use super::*;
use crate::executor::{run_hook, HookOrder};
use crate::messages::scheduler::SchedulerMsg;
use crate::model::decide::{due_hooks, hook_end, hook_queued, payload, session_payload, HookEnd};
use crate::model::event::HookCall;
use crate::model::resilience::{HookOn, HookSpec};
use crate::model::state::HookState;
use crate::model::{ApplyError, Change, Failure, RunId, TaskIndex, TaskState, Timestamp};

/// Hook attempts running at once, node-wide. Hooks have their own slots: they neither wait
/// for task workers nor take them.
pub const MAX_HOOKS_RUNNING: usize = 4;

/// The scheduler's memory of hook calls (rebuilt from the journal on every start).
#[derive(Default)]
pub(crate) struct HookDesk {
    /// The node's `[[hooks]]`.
    node: Vec<HookSpec>,
    /// Whether one of the node's hooks is a `task_ready` veto.
    node_veto: bool,
    /// Unfinished runs whose workflow has hooks of its own (with whether one is a veto).
    runs: HashMap<RunId, bool>,
    /// `task_ready` calls by task, oldest first: queued once per task, and what holds it.
    ready: HashMap<(RunId, TaskIndex), Vec<u64>>,
    /// Tasks `fill` held behind a veto call (offered again when the call succeeds).
    held: HashSet<(RunId, TaskIndex)>,
    /// Calls whose next attempt is due now, oldest first.
    due: VecDeque<u64>,
    /// Calls retrying, by due time.
    timers: BTreeSet<(Timestamp, u64)>,
    /// Attempts running: call id → the sender that terminates its process.
    running: HashMap<u64, Option<oneshot::Sender<()>>>,
    /// Earliest time a `Tick` is scheduled for a hook retry.
    armed: Option<Timestamp>,
}

impl HookDesk {
    /// The desk of a node with hooks `node`.
    pub(crate) fn new(node: Vec<HookSpec>) -> Self {
        HookDesk {
            node_veto: node.iter().any(|h| h.veto),
            node,
            ..Default::default()
        }
    }

    /// Whether any hook may be due: the zero-cost check (no hooks configured anywhere, no
    /// run with hooks of its own).
    pub(crate) fn enabled(&self) -> bool {
        !self.node.is_empty() || !self.runs.is_empty()
    }

    /// Whether no hook attempt runs and none is due now (a drain may complete); `blocked`:
    /// due calls cannot start now (halted), so they are not waited for.
    pub(crate) fn idle(&self, blocked: bool) -> bool {
        self.running.is_empty() && (blocked || self.due.is_empty())
    }
}

/// Whether `run`'s workflow has hooks of its own: `Some(has a veto)`.
fn own_hooks(r: &crate::model::Run) -> Option<bool> {
    r.workflow()
        .spec()
        .resilience
        .as_deref()
        .filter(|x| !x.hooks.is_empty())
        .map(|x| x.hooks.iter().any(|h| h.veto))
}

impl SchedulerState {
    /// Queues the hooks the event just decided made due (`submitted`: the run it submitted
    /// or spawned; `changes`: the transitions it caused). Called by `decide` after the
    /// trigger is in the outbox, so each `hook_queued` follows it in the same append.
    pub(crate) fn queue_hooks(&mut self, submitted: Option<RunId>, changes: &[Change]) {
        if let Some(run) = submitted {
            if let Some(veto) = self.state.run(run).and_then(own_hooks) {
                self.hooks.runs.insert(run, veto);
            }
            if self.hooks.enabled() {
                self.queue_for(HookOn::RunSubmitted, run, None);
            }
        }
        if !self.hooks.enabled() {
            return;
        }
        for change in changes {
            match *change {
                Change::Task { run, task, to, .. } => {
                    let on = match to {
                        TaskState::Ready => HookOn::TaskReady,
                        TaskState::Succeeded => HookOn::TaskSucceeded,
                        TaskState::Failed => HookOn::TaskFailed,
                        _ => continue,
                    };
                    if on == HookOn::TaskReady
                        && self
                            .state
                            .run(run)
                            .is_none_or(|r| r.task(task).attempts != 0)
                    {
                        continue;
                    }
                    self.queue_for(on, run, Some(task));
                }
                Change::Run { run, from, to } if to.is_finished() && !from.is_finished() => {
                    self.queue_for(HookOn::RunFinished, run, None);
                    self.hooks.runs.remove(&run);
                    self.hooks.ready.retain(|(r, _), _| *r != run);
                    self.hooks.held.retain(|(r, _)| *r != run);
                }
                Change::Run { run, from, to } if from.is_finished() && !to.is_finished() => {
                    // Reopened by an operator retry: its own hooks apply again.
                    if let Some(veto) = self.state.run(run).and_then(own_hooks) {
                        self.hooks.runs.insert(run, veto);
                    }
                }
                _ => {}
            }
        }
    }

    /// Queues every hook of `on` that applies to `run` (and `task`) and is not queued yet
    /// for it (`task_ready` hooks: once per task, again only after a failed call).
    fn queue_for(&mut self, on: HookOn, run: RunId, task: Option<TaskIndex>) {
        let Some(r) = self.state.run(run) else { return };
        if self.hooks.node.is_empty() && !self.hooks.runs.contains_key(&run) {
            return;
        }
        let t = now();
        let mut events = Vec::new();
        for hook in due_hooks(&self.hooks.node, r, task, on) {
            if on == HookOn::TaskReady {
                let task = task.expect("task event");
                if self
                    .ready_call(run, task, &hook.name)
                    .is_some_and(|s| s != HookState::Failed)
                {
                    continue;
                }
            }
            let body = payload(hook, r, task, t);
            events.push(hook_queued(hook, run, task.map(|i| (i, r)), body));
        }
        for e in events {
            self.queue_call(e, on == HookOn::TaskReady);
        }
    }

    /// The state of the newest `task_ready` call of hook `name` for the task.
    fn ready_call(&self, run: RunId, task: TaskIndex, name: &str) -> Option<HookState> {
        let calls = &self.state.hooks().calls;
        self.hooks
            .ready
            .get(&(run, task))?
            .iter()
            .rev()
            .filter_map(|id| calls.get(id))
            .find(|c| c.call.hook.name == name)
            .map(|c| c.state)
    }

    /// Decides one `hook_queued` and makes the call due.
    fn queue_call(&mut self, event: Event, ready: bool) {
        let id = self.state.hooks().next_id;
        let key = match &event {
            Event::HookQueued { call } => call.run.zip(call.task.as_ref()).and_then(|(run, t)| {
                let i = self.state.run(run)?.workflow().task_index(t.as_str())?;
                Some((run, i))
            }),
            _ => None,
        };
        if let Err(e) = self.decide(event) {
            tracing::error!(error = %e, "hook_queued refused by the fold");
            return;
        }
        if let (true, Some(key)) = (ready, key) {
            self.hooks.ready.entry(key).or_default().push(id);
        }
        self.hooks.due.push_back(id);
    }

    /// Queues the session hooks of `on` (`node_started`, `node_stopping`).
    pub(crate) fn queue_session_hooks(&mut self, on: HookOn) {
        let t = now();
        let node = self.shared.journal.node_id().to_owned();
        let events: Vec<Event> = self
            .hooks
            .node
            .iter()
            .filter(|h| h.on == on)
            .map(|h| Event::HookQueued {
                call: Box::new(HookCall {
                    hook: h.clone(),
                    run: None,
                    task: None,
                    payload: session_payload(h, &node, t),
                }),
            })
            .collect();
        for e in events {
            self.queue_call(e, false);
        }
    }

    /// Whether ready task `task` of `run` (never started) must wait for a `task_ready` veto
    /// hook: a veto call of it is not finished (or not queued yet: it is queued now). A held
    /// task is offered again when its call succeeds; a veto fails it.
    pub(crate) fn held_by_veto(&mut self, run: RunId, task: TaskIndex) -> bool {
        if !self.hooks.node_veto
            && (self.hooks.runs.is_empty() || !self.hooks.runs.get(&run).copied().unwrap_or(false))
        {
            return false;
        }
        let Some(r) = self.state.run(run) else {
            return false;
        };
        let t = r.task(task);
        if r.state() != crate::model::RunState::Running
            || r.is_suspended()
            || t.state != TaskState::Ready
            || t.attempts != 0
        {
            return false;
        }
        let vetoes: Vec<String> = due_hooks(&self.hooks.node, r, Some(task), HookOn::TaskReady)
            .filter(|h| h.veto)
            .map(|h| h.name.clone())
            .collect();
        let mut held = false;
        for name in vetoes {
            match self.ready_call(run, task, &name) {
                Some(HookState::Succeeded) => {}
                Some(HookState::Failed) | None => {
                    // Not queued (a hook added since, a restart) or vetoed without the task
                    // failing (it was suspended then): ask again.
                    self.queue_for(HookOn::TaskReady, run, Some(task));
                    held = true;
                }
                Some(_) => held = true,
            }
        }
        if held {
            self.hooks.held.insert((run, task));
        }
        held
    }

    /// Starts the attempts of due hook calls while fewer than [`MAX_HOOKS_RUNNING`] run.
    /// Nothing starts while the node is halted (`halt`, a `STOP` file) or after the shutdown
    /// grace; a drain does not stop hooks (`node_stopping` hooks run then).
    pub(crate) fn fill_hooks(&mut self) {
        if self.hooks.due.is_empty() && self.hooks.timers.is_empty() {
            return;
        }
        if self.abandon || self.state.is_halted() || self.stop_file {
            return;
        }
        let t = now();
        while let Some(&(at, id)) = self.hooks.timers.first() {
            if at > t {
                break;
            }
            self.hooks.timers.pop_first();
            self.hooks.due.push_back(id);
        }
        while self.hooks.running.len() < MAX_HOOKS_RUNNING {
            let Some(id) = self.hooks.due.pop_front() else {
                break;
            };
            let Some(c) = self.state.hooks().calls.get(&id) else {
                continue;
            };
            match c.state {
                HookState::Queued => {}
                HookState::Retrying { at } if at <= t => {}
                HookState::Retrying { at } => {
                    self.hooks.timers.insert((at, id));
                    continue;
                }
                _ => continue,
            }
            if self.hooks.running.contains_key(&id) {
                continue;
            }
            let attempt = c.attempts + 1;
            if let Err(e) = self.decide(Event::HookStarted { id, attempt }) {
                tracing::error!(error = %e, hook_call = id, "hook_started refused by the fold");
                continue;
            }
            self.hooks.running.insert(id, None);
            self.after_persist(Effect::RunHook { id, attempt });
        }
        // Stale entries may have been all that kept a drain waiting.
        self.answer_drain();
    }

    /// Starts the process of attempt `attempt` of call `id` (its `hook_started` is durable).
    pub(crate) fn start_hook(&mut self, myself: &ActorRef<SchedulerMsg>, id: u64, attempt: u32) {
        let Some(c) = self.state.hooks().calls.get(&id) else {
            return;
        };
        let call = &c.call;
        let run = call.run.and_then(|run| self.state.run(run));
        // A workflow's own hook runs in the workflow file's folder, like its tasks.
        let cwd = run
            .filter(|r| {
                r.workflow()
                    .spec()
                    .resilience
                    .as_deref()
                    .is_some_and(|x| x.hooks.contains(&call.hook))
            })
            .and_then(|r| r.workflow().spec().defaults.cwd.clone())
            .map(Into::into);
        let order = HookOrder {
            id,
            attempt,
            name: call.hook.name.clone(),
            on: call.hook.on.as_str(),
            command: call.hook.command.clone(),
            timeout: call.hook.timeout,
            payload: call.payload.clone(),
            run: call.run.map(|r| r.to_string()),
            task: call.task.as_ref().map(|t| t.as_str().to_owned()),
            cwd,
            grace: self.shared.config.grace,
            log_cap: self.shared.config.log_cap,
        };
        self.metrics.hook_attempt(&order.name);
        tracing::info!(hook = %order.name, hook_call = id, attempt, "hook attempt starts");
        let (cancel, cancelled) = oneshot::channel();
        self.hooks.running.insert(id, Some(cancel));
        let layout = self.shared.config.layout();
        let me = myself.clone();
        tokio::spawn(async move {
            let end = run_hook(&layout, order, cancelled).await;
            let _ = me.cast(SchedulerMsg::HookEnded { id, attempt, end });
        });
    }

    /// Attempt `attempt` of call `id` ended: journal how, retry it later, or — a veto —
    /// fail its task; offer a task its veto let through.
    pub(crate) fn hook_ended(&mut self, id: u64, attempt: u32, end: HookEnd) {
        self.hooks.running.remove(&id);
        if self.abandon {
            // After the shutdown grace: the next boot closes it as interrupted.
            self.answer_drain();
            return;
        }
        let Some(record) = self.state.hooks().calls.get(&id).cloned() else {
            return;
        };
        tracing::info!(hook = %record.call.hook.name, hook_call = id, attempt, ?end, "hook attempt ended");
        let events = hook_end(
            &self.state,
            id,
            &record,
            attempt,
            end,
            now(),
            rand::random::<f64>(),
        );
        for event in events {
            let retry = match &event {
                Event::HookFailed { retry_at, .. } => *retry_at,
                _ => None,
            };
            if let Err(e) = self.decide(event) {
                tracing::error!(error = %e, hook_call = id, "hook end refused by the fold");
                continue;
            }
            if let Some(at) = retry {
                self.hooks.timers.insert((at, id));
            }
        }
        if let Some(c) = self.state.hooks().calls.get(&id).cloned() {
            if c.state.is_finished() {
                let outcome = if c.state == HookState::Succeeded {
                    "succeeded"
                } else {
                    "failed"
                };
                self.after_persist(Effect::HookCall(c.call.hook.name.clone(), outcome));
            }
            if c.state == HookState::Succeeded && c.call.hook.veto {
                let key = c.call.run.zip(c.call.task.as_ref()).and_then(|(run, t)| {
                    Some((run, self.state.run(run)?.workflow().task_index(t.as_str())?))
                });
                if let Some(key) = key.filter(|k| self.hooks.held.remove(k)) {
                    self.track(key.0, key.1);
                }
            }
        }
        self.answer_drain();
    }

    /// Answers the shutdown's drain once no attempt and no hook runs or is due.
    pub(crate) fn answer_drain(&mut self) {
        let blocked = self.state.is_halted() || self.stop_file;
        if self.draining && self.running.is_empty() && self.hooks.idle(blocked) {
            for port in self.drained.drain(..) {
                let _ = port.send(());
            }
        }
    }

    /// Terminates every running hook process (end of the shutdown grace); their ends are
    /// not journaled.
    pub(crate) fn abandon_hooks(&mut self) {
        for cancel in self.hooks.running.values_mut() {
            if let Some(c) = cancel.take() {
                let _ = c.send(());
            }
        }
    }

    /// Schedules a `Tick` for the earliest hook retry.
    pub(crate) fn arm_hooks(&mut self, myself: &ActorRef<SchedulerMsg>) {
        let Some(&(at, _)) = self.hooks.timers.first() else {
            return;
        };
        if self.hooks.armed.is_some_and(|a| a <= at && a > now()) {
            return;
        }
        self.hooks.armed = Some(at);
        let wait = at.saturating_since(now()) + std::time::Duration::from_millis(1);
        myself.send_after(wait, || SchedulerMsg::Tick);
    }

    /// At start: rebuilds the desk from the journal, closes the calls a previous node left
    /// running (their processes ended first) as interrupted, due again at once, and queues
    /// the `node_started` hooks on the node's first start.
    pub(crate) async fn recover_hooks(&mut self, first_start: bool) -> Result<(), ApplyError> {
        self.hooks = HookDesk::new(self.shared.config.hooks.clone());
        for r in self.state.runs().filter(|r| !r.state().is_finished()) {
            if let Some(veto) = own_hooks(r) {
                self.hooks.runs.insert(r.id(), veto);
            }
        }
        let mut interrupted = Vec::new();
        for (id, c) in self.state.hooks().pending() {
            if c.call.hook.on == HookOn::TaskReady {
                let key = c.call.run.zip(c.call.task.as_ref()).and_then(|(run, t)| {
                    Some((run, self.state.run(run)?.workflow().task_index(t.as_str())?))
                });
                if let Some(key) = key {
                    self.hooks.ready.entry(key).or_default().push(id);
                }
            }
            match c.state {
                HookState::Queued => self.hooks.due.push_back(id),
                HookState::Retrying { at } => {
                    self.hooks.timers.insert((at, id));
                }
                HookState::Running => interrupted.push((id, c.attempts)),
                _ => {}
            }
        }
        // Finished task_ready calls still matter (a succeeded veto lets its task through).
        let finished: Vec<(u64, (RunId, TaskIndex))> = self
            .state
            .hooks()
            .calls
            .iter()
            .filter(|(_, c)| c.state.is_finished() && c.call.hook.on == HookOn::TaskReady)
            .filter_map(|(id, c)| {
                let (run, t) = c.call.run.zip(c.call.task.as_ref())?;
                let r = self.state.run(run).filter(|r| !r.state().is_finished())?;
                Some((*id, (run, r.workflow().task_index(t.as_str())?)))
            })
            .collect();
        for (id, key) in finished {
            let ids = self.hooks.ready.entry(key).or_default();
            ids.push(id);
            ids.sort_unstable();
        }
        let grace = self.shared.config.grace;
        let layout = self.shared.config.layout();
        let mut orphans = tokio::task::JoinSet::new();
        for &(id, attempt) in &interrupted {
            let pid = layout.hook_pid(id, attempt);
            orphans.spawn(async move {
                if let Err(e) = crate::process::terminate_orphan(&pid, grace).await {
                    tracing::warn!(error = %e, path = %pid.display(), "could not check an interrupted hook's process");
                }
            });
        }
        while orphans.join_next().await.is_some() {}
        for (id, attempt) in interrupted {
            let Some(record) = self.state.hooks().calls.get(&id).cloned() else {
                continue;
            };
            let end = HookEnd::Failed {
                failure: Failure::Interrupted,
                last_line: None,
            };
            for e in hook_end(&self.state, id, &record, attempt, end, now(), 0.0) {
                self.decide(e)?;
            }
            self.hooks.due.push_back(id);
        }
        if first_start && self.hooks.node.iter().any(|h| h.on == HookOn::NodeStarted) {
            self.queue_session_hooks(HookOn::NodeStarted);
        }
        Ok(())
    }
}
