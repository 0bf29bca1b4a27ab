//! Circuit breakers as the read side shows them: `troupe breakers` ([`breakers_view`]) and
//! why a ready task is held (`queue --verbose`, the dashboard).

use crate::model::{RunState, State, TaskIndex, TaskState, Timestamp};

use super::views::ViewContext;

/// Every breaker that applies to runs of `state`: the node's, then each live run's
/// workflow's (named `WORKFLOW/NAME` and scoped to it), without duplicates.
pub fn breaker_specs(
    state: &State,
    cx: &ViewContext,
) -> Vec<crate::model::resilience::BreakerSpec> {
    let mut out: Vec<crate::model::resilience::BreakerSpec> = cx.breakers.as_ref().clone();
    for r in state.runs() {
        let Some(res) = r.workflow().spec().resilience.as_deref() else {
            continue;
        };
        for b in &res.breakers {
            let spec = b.in_workflow(&r.workflow().spec().name);
            if !out.iter().any(|x| x.name == spec.name) {
                out.push(spec);
            }
        }
    }
    out
}

/// Why a breaker holds task `t` of `wf` now ("breaker NAME open until T"), if one does.
pub(crate) fn breaker_holding(
    state: &State,
    cx: &ViewContext,
    wf: &crate::model::Workflow,
    t: TaskIndex,
    t_now: Timestamp,
) -> Option<String> {
    if state.breakers().is_empty() {
        return None;
    }
    let own = wf
        .spec()
        .resilience
        .as_deref()
        .map(|r| r.breakers.as_slice())
        .unwrap_or(&[]);
    cx.breakers
        .iter()
        .cloned()
        .chain(own.iter().map(|b| b.in_workflow(&wf.spec().name)))
        .filter(|b| b.scope.matches(wf.spec(), t as usize))
        .find_map(|b| match state.breakers().get(&b.name)?.state {
            crate::model::state::BreakerState::Open { until } if until > t_now => {
                Some(format!("breaker {} open until {until}", b.name))
            }
            crate::model::state::BreakerState::Open { .. }
            | crate::model::state::BreakerState::HalfOpen => {
                Some(format!("breaker {} half-open: probing", b.name))
            }
            crate::model::state::BreakerState::Closed => None,
        })
}

/// `troupe breakers`: every breaker, its configuration and journaled state, by name.
pub fn breakers_view(
    state: &State,
    cx: &ViewContext,
) -> Vec<crate::messages::control::BreakerView> {
    use crate::model::state::BreakerState;
    let mut specs = breaker_specs(state, cx);
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    specs
        .into_iter()
        .map(|b| {
            let rec = state.breakers().get(&b.name);
            let s = &b.scope;
            let scope = [
                ("pool", &s.pool),
                ("label", &s.label),
                ("command", &s.command),
                ("workflow", &s.workflow),
            ]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(" ");
            let waiting = state
                .runs()
                .filter(|r| r.state() == RunState::Running)
                .map(|r| {
                    (0..r.tasks().len())
                        .filter(|&t| {
                            matches!(
                                r.task(t as TaskIndex).state,
                                TaskState::Ready | TaskState::Retrying
                            ) && s.matches(r.workflow().spec(), t)
                        })
                        .count() as u64
                })
                .sum();
            crate::messages::control::BreakerView {
                state: rec.map_or("closed", |r| r.state.as_str()).to_owned(),
                scope: if scope.is_empty() {
                    "every task".to_owned()
                } else {
                    scope
                },
                since: rec.map(|r| r.since),
                until: rec.and_then(|r| match r.state {
                    BreakerState::Open { until } => Some(until),
                    _ => None,
                }),
                reason: rec.map(|r| r.reason.clone()),
                opened: rec.map_or(0, |r| r.opened),
                waiting,
                failure_rate: b.failure_rate,
                window: b.window,
                min_attempts: b.min_attempts,
                consecutive_failures: b.consecutive_failures,
                open_for_ms: b.open_for.as_millis() as u64,
                half_open_probes: b.half_open_probes,
                name: b.name,
            }
        })
        .collect()
}
