//! Budgets and escalations of agent trees: `wall_clock` deadlines, a subtree over its
//! budget (stopped, or suspended while a human is asked), and the human's decision
//! (`troupe approve|reject RUN`). See docs/agents.md.

use super::commands::to_control_error;
use super::*;
use crate::messages::control::ControlError;
use crate::model::{Event, RunId, RunState, TaskState};

impl SchedulerState {
    /// Notes run `run`'s `wall_clock` budget, if it has one: it runs out `wall_clock` after
    /// the run was submitted (spawned).
    pub(crate) fn watch_wall_clock(&mut self, run: RunId) {
        let Some(r) = self.state.run(run) else { return };
        if let Some(l) = r.lineage() {
            if let Some(w) = l.authority.wall_clock {
                if !r.state().is_finished() {
                    self.deadlines.insert((l.spawned_at.saturating_add(w), run));
                }
            }
        }
    }

    /// Stops the runs whose `wall_clock` ran out (`budget_exhausted`, counter `wall_clock`,
    /// in seconds).
    pub(crate) fn due_deadlines(&mut self) {
        let now = now();
        while let Some(&(at, run)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(r) = self.state.run(run) else {
                continue;
            };
            let Some(l) = r.lineage() else { continue };
            let Some(limit) = l.authority.wall_clock else {
                continue;
            };
            // Finished, or extended since this deadline was set: nothing to stop now.
            if r.state().is_finished() || l.spawned_at.saturating_add(limit) > now {
                continue;
            }
            let used = now.saturating_since(l.spawned_at).as_secs_f64();
            self.over_budget(Event::BudgetExhausted {
                run,
                counter: "wall_clock".into(),
                used,
                limit: limit.as_secs_f64(),
            });
        }
    }

    /// A run's subtree is over budget (`event` is its `budget_exhausted`): it stops with its
    /// whole live subtree, or, spawned with `on_budget_exhausted = "ask"`, it is suspended
    /// and a human is asked (once).
    pub(super) fn over_budget(&mut self, event: Event) {
        let Event::BudgetExhausted {
            run,
            counter,
            used,
            limit,
        } = &event
        else {
            unreachable!("called with budget_exhausted")
        };
        let run = *run;
        let Some(l) = self.state.run(run).and_then(|r| r.lineage()) else {
            return;
        };
        if l.on_budget_exhausted == crate::model::OnBudgetExhausted::Ask {
            if l.asking.is_none() {
                tracing::warn!(run_id = %run, %counter, used, limit, "budget exhausted: asking a human");
                let ask = Event::EscalationRequested {
                    run,
                    counter: counter.clone(),
                    used: *used,
                    limit: *limit,
                };
                if let Err(e) = self.decide(ask) {
                    tracing::error!(error = %e, "escalation refused by the fold");
                }
            }
            return;
        }
        if self
            .state
            .run(run)
            .is_none_or(|r| r.state() != RunState::Running)
        {
            return;
        }
        tracing::warn!(run_id = %run, ?event, "budget exhausted: stopping the subtree");
        self.stop_run(event, run);
        self.cancel_descendants(run);
    }

    /// `troupe approve|reject RUN --as NAME [--extend NAME=N]`: decides the run's pending
    /// escalation. Approving a failed child retries its failed tasks; rejecting it reports
    /// the failure (its waiters wake). Approving a budget raises it and resumes the run;
    /// rejecting stops it `budget_exhausted`.
    pub(crate) fn decide_escalation(
        &mut self,
        run: RunId,
        approved: bool,
        approver: crate::model::Approver,
        extend: crate::model::Counters,
    ) -> Result<(), ControlError> {
        let asking = self
            .state
            .run(run)
            .ok_or_else(|| ControlError::NotFound(format!("no run {run}")))?
            .lineage()
            .and_then(|l| l.asking.clone())
            .ok_or_else(|| {
                ControlError::Refused(format!(
                    "run {run} asks nobody (approve RUN/TASK decides a task's approval)"
                ))
            })?;
        if let crate::model::state::AskReason::Budget { counter, .. } = &asking.reason {
            if approved && !extend.contains_key(counter) {
                return Err(ControlError::Refused(format!(
                    "run {run} is over its {counter} budget: approve with --extend {counter}=AMOUNT"
                )));
            }
        }
        self.decide(Event::EscalationDecided {
            run,
            approved,
            approver,
            extend,
        })
        .map_err(to_control_error)?;
        match (asking.reason, approved) {
            (crate::model::state::AskReason::ChildFailed, true) => self.retry_run(run)?,
            (crate::model::state::AskReason::ChildFailed, false) => {
                let state = self.state.run(run).expect("exists").state();
                self.after_persist(Effect::Finished(run, state));
            }
            (crate::model::state::AskReason::Budget { .. }, true) => {
                // The extension may still not cover what was used.
                self.agent_due.usage.push(run);
                self.watch_wall_clock(run);
            }
            (crate::model::state::AskReason::Budget { .. }, false) => {
                let r = self.state.run(run).expect("exists");
                let kill =
                    self.running_where(|rr, t| rr == run && r.task(t).state != TaskState::Running);
                self.after_persist(Effect::Terminate(kill));
                self.cancel_descendants(run);
            }
        }
        Ok(())
    }
}
