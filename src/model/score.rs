//! Priority scoring: the ready queue's order by weighted priority, deadline proximity, age
//! and label boosts (`[scheduling]` in `troupe.toml`; docs/semantics.md, "Queue order").
//!
//! A ready task's score, in points, at time `now`:
//!
//! ```text
//! score(now) = w_priority · priority
//!            + Σ label_boosts[label]                    (each of the task's labels)
//!            + w_deadline · (now − deadline_eff) / 1 min
//!            + w_age      · (now − ready_since)  / 1 min
//! ```
//!
//! - `ready_since`: when the task became runnable, from journaled times only: its retry's
//!   `retry_at` for a retrying task, else [`schedulable_since`] (the run's submission or
//!   the last dependency's end).
//! - `deadline_eff`: the task's `deadline` as an instant ([`Deadline::at`] of the run's
//!   submission), or `ready_since + default_deadline` for a task without one, so a task
//!   without a deadline gains urgency like one with a deadline and is not starved by a
//!   stream of tasks that have one.
//!
//! Every time-dependent term grows with `now` at the same rate for every task (`w_deadline +
//! w_age` points per minute), so the *order* of two tasks never changes while they wait:
//! the queue keeps the static [`Rank`] `score(now) − (w_deadline + w_age) · now / 1 min`,
//! computed once when the task enters the queue, from journaled inputs only, so a replay
//! orders the queue the same way. Equal ranks are served first in, first out.
//!
//! With `scoring = false` the rank is the priority alone: priority, then first in, first
//! out, the order troupe had before scoring (decision D68).
//!
//! Sources: earliest-deadline-first scheduling (Liu & Layland, 1973), whose order this is
//! when only the deadline weight is set; the fte orchestrator's `PriorityScorer` (weighted
//! urgency, deadline and sender with an age boost per minute waiting, VIP senders).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rollup::schedulable_since;
use super::spec::Deadline;
use super::state::Run;
use super::task::TaskState;
use super::{TaskIndex, Timestamp};

/// Milliseconds per minute: the time unit of the deadline and age weights.
const MINUTE_MS: f64 = 60_000.0;

/// The weights of the score (`[scheduling]` in `troupe.toml`). Every number is finite and
/// at least 0 (the config reader refuses others), so no NaN enters a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    /// `scoring`: order by score (default true); false orders by priority, then first in,
    /// first out, and ignores the other fields.
    pub scoring: bool,
    /// `priority`: points per priority step (default 1000). At the default deadline and age
    /// weights (1.1 points per minute together) one priority step is worth about 15 hours
    /// of waiting or of lateness, so priority decides in practice and deadlines and age
    /// order tasks of equal priority.
    pub priority: f64,
    /// `deadline`: points per minute past the effective deadline (default 1; negative
    /// before it).
    pub deadline: f64,
    /// `age`: points per minute since the task became ready (default 0.1).
    pub age: f64,
    /// `default_deadline`: the effective deadline of a task without one, counted from when
    /// it became ready (default 1 h).
    pub default_deadline: Duration,
    /// `[scheduling.label_boosts]`: points added for each of a task's labels listed here
    /// (the seed's VIP senders; default none).
    pub label_boosts: BTreeMap<String, f64>,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            scoring: true,
            priority: 1000.0,
            deadline: 1.0,
            age: 0.1,
            default_deadline: Duration::from_secs(3600),
            label_boosts: BTreeMap::new(),
        }
    }
}

impl Weights {
    /// Weights with scoring off: priority, then first in, first out.
    pub fn off() -> Self {
        Weights {
            scoring: false,
            ..Weights::default()
        }
    }
}

/// What a task's score is computed from: its spec and journaled times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inputs<'a> {
    /// The task's effective priority.
    pub priority: i32,
    /// Its deadline as an instant, if it has one.
    pub deadline: Option<Timestamp>,
    /// When it became runnable (see the module docs).
    pub ready_since: Timestamp,
    /// Its labels.
    pub labels: &'a [String],
}

impl<'a> Inputs<'a> {
    /// The inputs of task `t` of `r`, from the spec and the journaled times the state holds.
    pub fn of(r: &'a Run, t: TaskIndex) -> Inputs<'a> {
        let wf = r.workflow();
        let spec = wf.task(t);
        let task = r.task(t);
        let ready_since = match (task.state, task.retry_at) {
            (TaskState::Retrying, Some(at)) => at,
            _ => schedulable_since(r, t),
        };
        Inputs {
            priority: wf.priority(t),
            deadline: spec.deadline().map(|d: Deadline| d.at(r.submitted_at())),
            ready_since,
            labels: &spec.labels,
        }
    }
}

/// A score's parts at one instant, in points (what `troupe queue --verbose` shows).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Parts {
    /// `w_priority · priority` (with scoring off: the priority itself).
    pub priority: f64,
    /// `w_deadline · (now − deadline_eff) / 1 min`: negative before the deadline.
    pub deadline: f64,
    /// `w_age · (now − ready_since) / 1 min`.
    pub age: f64,
    /// The label boosts summed.
    pub labels: f64,
    /// The sum of the parts: the score.
    pub score: f64,
}

/// The effective deadline: the task's own, or `ready_since + default_deadline`.
pub fn effective_deadline(w: &Weights, i: &Inputs) -> Timestamp {
    i.deadline
        .unwrap_or_else(|| i.ready_since.saturating_add(w.default_deadline))
}

/// Minutes from `b` to `a` (negative if `a` is earlier).
fn minutes(a: Timestamp, b: Timestamp) -> f64 {
    (a.0 as f64 - b.0 as f64) / MINUTE_MS
}

fn boosts(w: &Weights, labels: &[String]) -> f64 {
    if w.label_boosts.is_empty() {
        return 0.0;
    }
    labels.iter().filter_map(|l| w.label_boosts.get(l)).sum()
}

/// The score of a task with inputs `i` at `now`, and its parts.
pub fn parts(w: &Weights, i: &Inputs, now: Timestamp) -> Parts {
    if !w.scoring {
        let p = f64::from(i.priority);
        return Parts {
            priority: p,
            score: p,
            ..Parts::default()
        };
    }
    let priority = w.priority * f64::from(i.priority);
    let labels = boosts(w, i.labels);
    let deadline = w.deadline * minutes(now, effective_deadline(w, i));
    let age = w.age * minutes(now, i.ready_since);
    Parts {
        priority,
        deadline,
        age,
        labels,
        score: priority + labels + deadline + age,
    }
}

/// The static rank of a task with inputs `i`: its score less the part every queued task
/// gains alike as time passes, `(w_deadline + w_age) · now / 1 min` (so the rank does not
/// depend on `now`). Higher is served first.
pub fn rank(w: &Weights, i: &Inputs) -> Rank {
    if !w.scoring {
        return Rank::new(f64::from(i.priority));
    }
    let deadline_min = effective_deadline(w, i).0 as f64 / MINUTE_MS;
    let ready_min = i.ready_since.0 as f64 / MINUTE_MS;
    Rank::new(
        w.priority * f64::from(i.priority) + boosts(w, i.labels)
            - w.deadline * deadline_min
            - w.age * ready_min,
    )
}

/// A queue rank: a finite number of points, ordered totally (`f64::total_cmp`, with `-0`
/// read as `0`). Higher is better.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Rank(f64);

impl Rank {
    /// The rank `points` (`-0.0` becomes `0.0`, so equal values compare equal).
    pub fn new(points: f64) -> Self {
        Rank(points + 0.0)
    }

    /// The points.
    pub fn points(self) -> f64 {
        self.0
    }
}

impl PartialEq for Rank {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Rank {}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Rank {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

#[cfg(test)]
mod tests;
