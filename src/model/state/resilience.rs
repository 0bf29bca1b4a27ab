//! `breaker_opened`, `breaker_half_opened`, `breaker_closed`: each circuit breaker's state;
//! `hook_queued`, `hook_started`, `hook_succeeded`, `hook_failed`: each hook call's state
//! (see [`crate::model::resilience`]).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::error::ApplyError;
use super::State;
use crate::model::event::{Event, Failure, HookCall};
use crate::model::time::Timestamp;

/// A breaker's state as journaled. A breaker with no record is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BreakerState {
    /// Attempts run (only after a `breaker_closed`; a breaker never tripped has no record).
    Closed,
    /// Nothing in its scope is dispatched before `until`.
    Open {
        /// When it lets probes through.
        until: Timestamp,
    },
    /// Probes may run.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open`, `half_open`: the spelling of `troupe breakers --json`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The gauge value of `troupe_breaker_state`: 0 closed, 1 open, 2 half-open
    /// (resilience4j's `resilience4j_circuitbreaker_state` uses one series per state; a
    /// single gauge keeps the label set small).
    pub fn gauge(&self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open { .. } => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

/// One breaker's journaled state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerRecord {
    /// Where it is.
    pub state: BreakerState,
    /// When it got there (the event's time).
    pub since: Timestamp,
    /// Why (the event's reason).
    pub reason: String,
    /// How many times it opened.
    pub opened: u64,
}

/// Where a hook call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HookState {
    /// Due, no attempt yet.
    Queued,
    /// An attempt runs.
    Running,
    /// An attempt failed; the next is due at `at`.
    Retrying {
        /// When the next attempt is due.
        at: Timestamp,
    },
    /// An attempt exited 0 (final).
    Succeeded,
    /// The last attempt failed and none remains (final).
    Failed,
}

impl HookState {
    /// Whether the call is done (succeeded or failed for good).
    pub fn is_finished(&self) -> bool {
        matches!(self, HookState::Succeeded | HookState::Failed)
    }

    /// The spelling of `troupe hooks --json`.
    pub fn as_str(&self) -> &'static str {
        match self {
            HookState::Queued => "queued",
            HookState::Running => "running",
            HookState::Retrying { .. } => "retrying",
            HookState::Succeeded => "succeeded",
            HookState::Failed => "failed",
        }
    }
}

/// One hook call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRecord {
    /// What runs and why.
    pub call: Box<HookCall>,
    /// Where it is.
    pub state: HookState,
    /// Attempts started.
    pub attempts: u32,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// When it last changed state.
    pub changed_at: Timestamp,
    /// Why the last attempt failed, if it did.
    pub last_failure: Option<Failure>,
}

/// Finished hook calls kept for `troupe hooks`: the newest 10,000 (older ones leave the state;
/// their events stay in the journal).
pub const MAX_FINISHED_HOOKS: usize = 10_000;

/// Every hook call the state still holds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Hooks {
    /// Id of the next `hook_queued` (the number queued so far).
    pub next_id: u64,
    /// Calls by id.
    pub calls: BTreeMap<u64, HookRecord>,
    /// Ids of finished calls, oldest first (to keep at most [`MAX_FINISHED_HOOKS`]).
    finished: VecDeque<u64>,
}

impl Hooks {
    /// Calls not finished, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = (u64, &HookRecord)> {
        self.calls
            .iter()
            .filter(|(_, c)| !c.state.is_finished())
            .map(|(id, c)| (*id, c))
    }
}

impl State {
    /// Every breaker with a journaled state, by name.
    pub fn breakers(&self) -> &BTreeMap<String, BreakerRecord> {
        &self.resilience.breakers
    }

    /// Every hook call the state holds.
    pub fn hooks(&self) -> &Hooks {
        &self.resilience.hooks
    }

    /// The breaker and hook events.
    pub(super) fn apply_resilience(
        &mut self,
        event: &Event,
        time: Timestamp,
    ) -> Result<(), ApplyError> {
        let name = event.type_name();
        let refuse = |reason: String| ApplyError::NotAllowed {
            event: name,
            run: None,
            task: None,
            reason,
        };
        let breakers = &mut self.resilience.breakers;
        match event {
            Event::BreakerOpened {
                breaker,
                until,
                reason,
            } => {
                let opened = breakers.get(breaker).map_or(0, |b| b.opened) + 1;
                breakers.insert(
                    breaker.clone(),
                    BreakerRecord {
                        state: BreakerState::Open { until: *until },
                        since: time,
                        reason: reason.clone(),
                        opened,
                    },
                );
            }
            Event::BreakerHalfOpened { breaker } => {
                let b = breakers
                    .get_mut(breaker)
                    .filter(|b| matches!(b.state, BreakerState::Open { .. }))
                    .ok_or_else(|| refuse(format!("breaker {breaker} is not open")))?;
                b.state = BreakerState::HalfOpen;
                b.since = time;
                b.reason = "open_for passed".into();
            }
            Event::BreakerClosed { breaker, reason } => {
                let b = breakers
                    .get_mut(breaker)
                    .filter(|b| b.state != BreakerState::Closed)
                    .ok_or_else(|| refuse(format!("breaker {breaker} is not open")))?;
                b.state = BreakerState::Closed;
                b.since = time;
                b.reason = reason.clone();
            }
            Event::HookQueued { call } => {
                let hooks = &mut self.resilience.hooks;
                let id = hooks.next_id;
                hooks.next_id += 1;
                hooks.calls.insert(
                    id,
                    HookRecord {
                        call: call.clone(),
                        state: HookState::Queued,
                        attempts: 0,
                        queued_at: time,
                        changed_at: time,
                        last_failure: None,
                    },
                );
            }
            Event::HookStarted { id, attempt } => {
                let c = self.hook_mut(*id, name)?;
                if c.state.is_finished() || c.state == HookState::Running {
                    return Err(refuse(format!("hook call {id} is {}", c.state.as_str())));
                }
                if *attempt != c.attempts + 1 {
                    return Err(refuse(format!(
                        "hook call {id}: attempt {attempt}, expected {}",
                        c.attempts + 1
                    )));
                }
                c.attempts = *attempt;
                c.state = HookState::Running;
                c.changed_at = time;
            }
            Event::HookSucceeded { id, attempt } | Event::HookFailed { id, attempt, .. } => {
                let c = self.hook_mut(*id, name)?;
                if c.state != HookState::Running || c.attempts != *attempt {
                    return Err(refuse(format!(
                        "hook call {id} is not running attempt {attempt}"
                    )));
                }
                c.changed_at = time;
                c.state = match event {
                    Event::HookFailed {
                        failure, retry_at, ..
                    } => {
                        c.last_failure = Some(failure.clone());
                        match retry_at {
                            Some(at) => HookState::Retrying { at: *at },
                            None => HookState::Failed,
                        }
                    }
                    _ => HookState::Succeeded,
                };
                if c.state.is_finished() {
                    let hooks = &mut self.resilience.hooks;
                    hooks.finished.push_back(*id);
                    while hooks.finished.len() > MAX_FINISHED_HOOKS {
                        if let Some(old) = hooks.finished.pop_front() {
                            hooks.calls.remove(&old);
                        }
                    }
                }
            }
            _ => unreachable!("not a breaker or hook event"),
        }
        Ok(())
    }

    fn hook_mut(&mut self, id: u64, name: &'static str) -> Result<&mut HookRecord, ApplyError> {
        self.resilience
            .hooks
            .calls
            .get_mut(&id)
            .ok_or(ApplyError::NotAllowed {
                event: name,
                run: None,
                task: None,
                reason: format!("no hook call {id}"),
            })
    }
}

/// The breakers' and hooks' part of [`State`] (snapshot schema 7).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResilienceState {
    /// Breakers by name.
    pub breakers: BTreeMap<String, BreakerRecord>,
    /// Hook calls.
    pub hooks: Hooks,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::EventRecord;

    fn apply(s: &mut State, time: u64, event: Event) -> Result<(), ApplyError> {
        let seq = s.last_seq() + 1;
        s.apply(
            seq,
            &EventRecord {
                time: Timestamp(time),
                event,
            },
        )
    }

    #[test]
    fn a_breaker_opens_half_opens_and_closes_and_refuses_the_rest() {
        let mut s = State::new();
        let b = || "api".to_owned();
        let half = |s: &mut State| apply(s, 3, Event::BreakerHalfOpened { breaker: b() });
        let close = |s: &mut State| {
            apply(
                s,
                4,
                Event::BreakerClosed {
                    breaker: b(),
                    reason: "probes".into(),
                },
            )
        };
        assert!(half(&mut s).is_err(), "never opened");
        assert!(close(&mut s).is_err(), "never opened");
        apply(
            &mut s,
            1,
            Event::BreakerOpened {
                breaker: b(),
                until: Timestamp(60_001),
                reason: "3 failures in a row".into(),
            },
        )
        .unwrap();
        let r = &s.breakers()["api"];
        assert_eq!(
            r.state,
            BreakerState::Open {
                until: Timestamp(60_001)
            }
        );
        assert_eq!(r.opened, 1);
        half(&mut s).unwrap();
        assert!(half(&mut s).is_err(), "already half-open");
        close(&mut s).unwrap();
        assert_eq!(s.breakers()["api"].state, BreakerState::Closed);
        assert!(close(&mut s).is_err(), "already closed");
        s.check_invariants().unwrap();
    }

    #[test]
    fn a_hook_call_runs_attempts_in_order_and_ends_once() {
        use crate::model::resilience::{HookOn, HookSpec, Scope};
        let mut s = State::new();
        let call = HookCall {
            hook: HookSpec {
                name: "audit".into(),
                on: HookOn::TaskFailed,
                scope: Scope::default(),
                command: crate::model::Command::Argv(vec!["true".into()]),
                timeout: std::time::Duration::from_secs(1),
                max_attempts: 2,
                veto: false,
            },
            run: None,
            task: None,
            payload: "{}".into(),
        };
        apply(
            &mut s,
            1,
            Event::HookQueued {
                call: Box::new(call),
            },
        )
        .unwrap();
        assert!(apply(&mut s, 2, Event::HookSucceeded { id: 0, attempt: 1 }).is_err());
        assert!(apply(&mut s, 2, Event::HookStarted { id: 0, attempt: 2 }).is_err());
        apply(&mut s, 2, Event::HookStarted { id: 0, attempt: 1 }).unwrap();
        apply(
            &mut s,
            3,
            Event::HookFailed {
                id: 0,
                attempt: 1,
                failure: crate::model::Failure::TimedOut,
                retry_at: Some(Timestamp(4)),
            },
        )
        .unwrap();
        assert_eq!(
            s.hooks().calls[&0].state,
            HookState::Retrying { at: Timestamp(4) }
        );
        apply(&mut s, 4, Event::HookStarted { id: 0, attempt: 2 }).unwrap();
        apply(&mut s, 5, Event::HookSucceeded { id: 0, attempt: 2 }).unwrap();
        assert_eq!(s.hooks().calls[&0].state, HookState::Succeeded);
        assert!(apply(&mut s, 6, Event::HookStarted { id: 0, attempt: 3 }).is_err());
        assert_eq!(s.hooks().pending().count(), 0);
    }
}
