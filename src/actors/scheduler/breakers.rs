//! Circuit breakers at dispatch: which ready tasks are held, which attempt ends count, and
//! the journaled transitions (closed → open → half-open → closed or open again; see
//! [`crate::model::resilience`] for the rules and their defaults).
//!
//! With no breaker configured (node or workflow) every entry point returns after one
//! `is_empty` check, so breakers off cost nothing on the dispatch path.

use std::collections::{BinaryHeap, HashMap};

use super::*;
use crate::messages::control::ControlError;
use crate::model::resilience::{counts_against_breaker, BreakerSpec, BreakerWindow};
use crate::model::state::BreakerState;
use crate::model::{Event, Failure, RunId, TaskIndex, Timestamp, Workflow};
use crate::webhooks::{Notice, WebhookEvent};

/// One breaker's runtime: its spec, compiled glob, sliding window, probes and held tasks.
pub(crate) struct Breaker {
    /// As configured; a workflow's breaker is named `WORKFLOW/NAME` and scoped to it.
    pub(crate) spec: BreakerSpec,
    /// `spec.scope.command`, compiled once.
    glob: Option<glob::Pattern>,
    /// Recent attempt ends while closed (not journaled).
    window: BreakerWindow,
    /// Probes dispatched while half-open and not yet ended.
    probes_out: u32,
    /// Probes that succeeded while half-open.
    probes_ok: u32,
    /// Tasks held while open (or while every probe is out), best first.
    held: BinaryHeap<Entry>,
}

/// Every breaker the scheduler knows: the node's, then workflows' as their runs appear.
#[derive(Default)]
pub(crate) struct Breakers {
    /// In registration order.
    list: Vec<Breaker>,
    /// Name → index in `list`.
    by_name: HashMap<String, usize>,
}

impl Breakers {
    /// The node's breakers.
    pub(crate) fn new(specs: &[BreakerSpec]) -> Self {
        let mut b = Breakers::default();
        for s in specs {
            b.register(s.clone());
        }
        b
    }

    /// Whether no breaker is known.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn register(&mut self, spec: BreakerSpec) {
        if self.by_name.contains_key(&spec.name) {
            return;
        }
        let glob = spec
            .scope
            .command
            .as_deref()
            .and_then(|g| glob::Pattern::new(g).ok());
        self.by_name.insert(spec.name.clone(), self.list.len());
        self.list.push(Breaker {
            spec,
            glob,
            window: BreakerWindow::default(),
            probes_out: 0,
            probes_ok: 0,
            held: BinaryHeap::new(),
        });
    }

    /// Registers the breakers of `wf` (named `WORKFLOW/NAME`, scoped to that workflow), once.
    pub(crate) fn register_workflow(&mut self, wf: &Workflow) {
        let Some(res) = wf.spec().resilience.as_deref() else {
            return;
        };
        for b in &res.breakers {
            self.register(b.in_workflow(&wf.spec().name));
        }
    }

    /// Indexes of the breakers whose scope holds task `task` of `wf`.
    fn matching(&self, wf: &Workflow, task: TaskIndex) -> Vec<usize> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                b.spec
                    .scope
                    .matches_with(wf.spec(), task as usize, b.glob.as_ref())
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The breakers, for `troupe breakers`.
    pub(crate) fn specs(&self) -> impl Iterator<Item = &BreakerSpec> {
        self.list.iter().map(|b| &b.spec)
    }
}

impl SchedulerState {
    /// Whether a breaker holds `entry` now (it is parked with the breaker; `true`) or it may
    /// be dispatched (`false`; a half-open breaker counts it as one of its probes).
    pub(crate) fn breaker_holds(&mut self, entry: Entry, wf: &Workflow, t_now: Timestamp) -> bool {
        if wf.spec().resilience.is_some() {
            self.breakers.register_workflow(wf);
        }
        if self.breakers.is_empty() {
            return false;
        }
        let matching = self.breakers.matching(wf, entry.task);
        for &i in &matching {
            let name = &self.breakers.list[i].spec.name;
            match self.state.breakers().get(name).map(|r| r.state) {
                None | Some(BreakerState::Closed) => {}
                Some(BreakerState::Open { until }) if until > t_now => {
                    self.breakers.list[i].held.push(entry);
                    return true;
                }
                Some(BreakerState::Open { .. }) => {
                    // `open_for` passed and no Tick moved it yet.
                    self.half_open(i);
                    if self.breaker_probe_full(i) {
                        self.breakers.list[i].held.push(entry);
                        return true;
                    }
                }
                Some(BreakerState::HalfOpen) => {
                    if self.breaker_probe_full(i) {
                        self.breakers.list[i].held.push(entry);
                        return true;
                    }
                }
            }
        }
        for &i in &matching {
            let b = &mut self.breakers.list[i];
            if matches!(
                self.state.breakers().get(&b.spec.name).map(|r| r.state),
                Some(BreakerState::HalfOpen)
            ) {
                b.probes_out += 1;
            }
        }
        false
    }

    fn breaker_probe_full(&self, i: usize) -> bool {
        let b = &self.breakers.list[i];
        b.probes_out + b.probes_ok >= b.spec.half_open_probes
    }

    /// Journals `breaker_half_opened` for breaker `i` and lets its held tasks be offered.
    fn half_open(&mut self, i: usize) {
        let name = self.breakers.list[i].spec.name.clone();
        if let Err(e) = self.decide(Event::BreakerHalfOpened {
            breaker: name.clone(),
        }) {
            tracing::error!(error = %e, breaker = %name, "breaker_half_opened refused by the fold");
            return;
        }
        let b = &mut self.breakers.list[i];
        b.probes_out = 0;
        b.probes_ok = 0;
        self.metrics
            .breaker_state(&name, BreakerState::HalfOpen.gauge());
        self.release_held(i);
    }

    /// Moves the tasks breaker `i` holds back into the queue (`fill` gates them again).
    fn release_held(&mut self, i: usize) {
        let held = std::mem::take(&mut self.breakers.list[i].held);
        self.queue.extend(held);
    }

    /// An attempt of `task` ended: counts it in the windows (closed) or as a probe
    /// (half-open) of the breakers whose scope holds the task, and journals what follows.
    /// `failure` is `None` for a success.
    pub(crate) fn breaker_observe(
        &mut self,
        run: RunId,
        task: TaskIndex,
        failure: Option<&Failure>,
    ) {
        if self.breakers.is_empty() {
            return;
        }
        let Some(wf) = self.state.run(run).map(|r| r.workflow().clone()) else {
            return;
        };
        let counted = failure.is_none_or(counts_against_breaker);
        let failed = failure.is_some();
        let t_now = now();
        let matching = self.breakers.matching(&wf, task);
        for i in matching {
            let name = self.breakers.list[i].spec.name.clone();
            let state = self.state.breakers().get(&name).map(|r| r.state);
            match state {
                None | Some(BreakerState::Closed) => {
                    if !counted {
                        continue;
                    }
                    let b = &mut self.breakers.list[i];
                    if let Some(reason) = b.window.record(&b.spec, failed) {
                        self.open_breaker(i, t_now, reason);
                    }
                }
                Some(BreakerState::HalfOpen) => {
                    let b = &mut self.breakers.list[i];
                    b.probes_out = b.probes_out.saturating_sub(1);
                    if !counted {
                        // Said nothing about the scope (interrupted, cancelled): another
                        // probe may go.
                        self.release_held(i);
                        continue;
                    }
                    if let Some(f) = failure {
                        self.open_breaker(i, t_now, format!("a half-open probe failed: {f}"));
                    } else {
                        b.probes_ok += 1;
                        if b.probes_ok >= b.spec.half_open_probes {
                            let reason = format!("{} half-open probes succeeded", b.probes_ok);
                            self.close_breaker(i, reason);
                        }
                    }
                }
                // Attempts that started before it opened: their ends are not counted.
                Some(BreakerState::Open { .. }) => {}
            }
        }
    }

    fn open_breaker(&mut self, i: usize, t_now: Timestamp, reason: String) {
        let b = &mut self.breakers.list[i];
        let until = t_now.saturating_add(b.spec.open_for);
        let name = b.spec.name.clone();
        b.window.clear();
        b.probes_out = 0;
        b.probes_ok = 0;
        tracing::warn!(breaker = %name, %reason, until = %until, "circuit breaker opened");
        if let Err(e) = self.decide(Event::BreakerOpened {
            breaker: name.clone(),
            until,
            reason: reason.clone(),
        }) {
            tracing::error!(error = %e, breaker = %name, "breaker_opened refused by the fold");
            return;
        }
        self.metrics
            .breaker_state(&name, BreakerState::Open { until }.gauge());
        if self.shared.webhooks.wants(WebhookEvent::BreakerOpened) {
            self.notices.push(Notice::BreakerOpened {
                breaker: name,
                until,
                reason,
            });
        }
    }

    fn close_breaker(&mut self, i: usize, reason: String) {
        let name = self.breakers.list[i].spec.name.clone();
        if let Err(e) = self.decide(Event::BreakerClosed {
            breaker: name.clone(),
            reason: reason.clone(),
        }) {
            tracing::error!(error = %e, breaker = %name, "breaker_closed refused by the fold");
            return;
        }
        tracing::info!(breaker = %name, %reason, "circuit breaker closed");
        let b = &mut self.breakers.list[i];
        b.window.clear();
        b.probes_out = 0;
        b.probes_ok = 0;
        self.metrics
            .breaker_state(&name, BreakerState::Closed.gauge());
        if self.shared.webhooks.wants(WebhookEvent::BreakerClosed) {
            self.notices.push(Notice::BreakerClosed {
                breaker: name,
                reason,
            });
        }
        self.release_held(i);
    }

    /// Open breakers whose `open_for` passed become half-open (on `Tick`).
    pub(crate) fn due_breakers(&mut self) {
        if self.breakers.is_empty() {
            return;
        }
        let t_now = now();
        for i in 0..self.breakers.list.len() {
            let name = &self.breakers.list[i].spec.name;
            if let Some(BreakerState::Open { until }) =
                self.state.breakers().get(name).map(|r| r.state)
            {
                if until <= t_now {
                    self.half_open(i);
                }
            }
        }
    }

    /// The earliest `until` of an open breaker, for the `Tick` timer.
    pub(crate) fn next_breaker_timer(&self) -> Option<Timestamp> {
        if self.breakers.is_empty() {
            return None;
        }
        self.breakers
            .list
            .iter()
            .filter_map(|b| match self.state.breakers().get(&b.spec.name)?.state {
                BreakerState::Open { until } => Some(until),
                _ => None,
            })
            .min()
    }

    /// `troupe breakers reset NAME`: closes breaker `name` by hand.
    pub(crate) fn reset_breaker(&mut self, name: &str, by: &str) -> Result<(), ControlError> {
        let Some(&i) = self.breakers.by_name.get(name) else {
            let known: Vec<&str> = self.breakers.specs().map(|s| s.name.as_str()).collect();
            return Err(ControlError::NotFound(format!(
                "no breaker named {name:?} (known: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        };
        match self.state.breakers().get(name).map(|r| r.state) {
            None | Some(BreakerState::Closed) => Err(ControlError::Refused(format!(
                "breaker {name} is already closed"
            ))),
            Some(_) => {
                self.close_breaker(i, format!("reset by {by}"));
                Ok(())
            }
        }
    }

    /// Sets every known breaker's gauge from the replayed state (at start).
    pub(crate) fn publish_breakers(&mut self) {
        for run in self.state.runs() {
            if run.workflow().spec().resilience.is_some() && !run.state().is_finished() {
                self.breakers.register_workflow(run.workflow());
            }
        }
        for b in &self.breakers.list {
            let state = self
                .state
                .breakers()
                .get(&b.spec.name)
                .map_or(BreakerState::Closed, |r| r.state);
            self.metrics.breaker_state(&b.spec.name, state.gauge());
        }
    }
}
