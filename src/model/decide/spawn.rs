//! Spawning a child run: attach to the child a key already names, or check every limit and
//! decide `run_spawned`, or refuse with the reason (`spawn_refused`).
//!
//! The checks, in order, each naming its reason (the `reason` label of
//! `troupe_spawn_refused_total`): `may_spawn`; `depth` (the child's depth over the parent's
//! `max_depth`); `children` (the parent's live children at `max_children`); `descendants`
//! (any ancestor's subtree at its `max_descendants`); `budget` (a counter asked as 0, more
//! than the parent has left, or nothing left); `command` (a task's program outside
//! `allowed_commands`); `pool`; `approval` (a task asks a human but the authority may not);
//! `loop` (an ancestor runs the same programs with the same input).

use std::sync::Arc;

use crate::model::authority::{Authority, AuthorityAsk};
use crate::model::event::{Counters, Event, OnFailure, OnParentExit, Spawn};
use crate::model::ids::{RunId, TaskIndex};
use crate::model::state::{programs, State};
use crate::model::workflow::Workflow;

/// What a spawn asks for.
#[derive(Debug, Clone)]
pub struct SpawnAsk {
    /// The task attempt that asks (`None`: a root spawn from outside any task).
    pub caller: Option<(RunId, TaskIndex, u32)>,
    /// The idempotency key.
    pub key: String,
    /// The child's workflow.
    pub workflow: Arc<Workflow>,
    /// The input (one compact JSON value), if any.
    pub input: Option<String>,
    /// The child's `[authority]` overlaid with the spawn's flags.
    pub authority: AuthorityAsk,
    /// See [`OnFailure`].
    pub on_failure: OnFailure,
    /// See [`OnParentExit`].
    pub on_parent_exit: OnParentExit,
    /// See [`crate::model::OnBudgetExhausted`].
    pub on_budget_exhausted: crate::model::OnBudgetExhausted,
}

/// The outcome of a spawn that is not refused.
#[derive(Debug, Clone, PartialEq)]
pub enum SpawnDecision {
    /// The key already names this run with the same workflow and input: return it (it is
    /// never run again).
    Attach(RunId),
    /// A new run: journal this `run_spawned`. For a root spawn the id is minted by the
    /// caller (`run` is a placeholder to replace).
    Spawn(Event),
}

/// Why a spawn did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum SpawnError {
    /// Over a limit, not allowed, or a loop: journal `spawn_refused` (CLI exit 4).
    Refused {
        /// Short label (`depth`, `children`, ...).
        reason: &'static str,
        /// The explanation for the caller.
        message: String,
    },
    /// The key names a run with a different workflow or input (CLI exit 2).
    Conflict(String),
}

/// The id of the child that task `task` of run `parent` spawns with `key`: the parent's
/// 48-bit time stamp (so children sort beside their parent) followed by 80 bits of the
/// 128-bit FNV-1a hash (Fowler–Noll–Vo, a stable public algorithm) of the parent id, the
/// task id and the key. Deterministic: a retry of the parent, or a replay after a crash,
/// derives the same id.
pub fn child_id(parent: RunId, task: &str, key: &str) -> RunId {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u128::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    eat(&parent.as_u128().to_be_bytes());
    eat(task.as_bytes());
    eat(&[0xff]);
    eat(key.as_bytes());
    let time = parent.as_u128() >> 80;
    RunId::from_u128((time << 80) | (h & ((1u128 << 80) - 1)))
}

/// The authority run `run` has: its lineage's, or for a run that never spawned, the node's
/// default narrowed by its workflow's `[authority]`.
pub fn authority_of(state: &State, run: RunId, node_default: &Authority) -> Option<Authority> {
    let r = state.run(run)?;
    Some(match r.lineage() {
        Some(l) => l.authority.clone(),
        None => node_default.narrow(&r.workflow().authority_ask(), &Counters::new()),
    })
}

/// Decides a spawn (see the [module docs](self) for the checks).
pub fn spawn(
    state: &State,
    ask: &SpawnAsk,
    node_default: &Authority,
) -> Result<SpawnDecision, SpawnError> {
    let refuse = |reason: &'static str, message: String| SpawnError::Refused { reason, message };
    // An existing child (or root) with this key.
    let existing = match ask.caller {
        Some((parent, t, _)) => {
            let task = state
                .run(parent)
                .map(|r| r.workflow().task_id(t).to_string())
                .unwrap_or_default();
            let id = child_id(parent, &task, &ask.key);
            state.run(id).map(|r| (id, r))
        }
        None => state
            .runs()
            .find(|r| {
                r.lineage()
                    .is_some_and(|l| l.parent.is_none() && l.key == ask.key && !l.key.is_empty())
            })
            .map(|r| (r.id(), r)),
    };
    if let Some((id, r)) = existing {
        let same_input = r.lineage().and_then(|l| l.input.as_deref()) == ask.input.as_deref();
        if **r.workflow() == *ask.workflow && same_input {
            return Ok(SpawnDecision::Attach(id));
        }
        let what = if same_input { "workflow" } else { "input" };
        return Err(SpawnError::Conflict(format!(
            "spawn conflict: key {:?} already names run {id}, spawned with a different {what}; \
             use another key for different work",
            ask.key
        )));
    }
    let (parent_authority, recorded, depth) = match ask.caller {
        Some((parent, _, _)) => {
            let r = state.run(parent).expect("the caller's run exists");
            let a = authority_of(state, parent, node_default).expect("exists");
            let depth = r.lineage().map_or(0, |l| l.depth) + 1;
            (a, r.lineage().is_some(), depth)
        }
        None => (node_default.clone(), true, 0),
    };
    let left = match ask.caller {
        Some((parent, _, _)) if recorded => state.budget_left(parent),
        // A submitted run's first spawn: it has no lineage (nor children) yet, so what is
        // left is its authority's budget less its own usage.
        Some((parent, _, _)) => crate::model::authority::left(
            &parent_authority.budget,
            &state.run(parent).expect("exists").usage_total(),
        ),
        None => Counters::new(),
    };
    let authority = parent_authority.narrow(&ask.authority, &left);
    if let Some((parent, _, _)) = ask.caller {
        if !parent_authority.may_spawn {
            return Err(refuse(
                "may_spawn",
                format!("run {parent} may not spawn children (may_spawn = false)"),
            ));
        }
        if depth > parent_authority.max_depth {
            return Err(refuse(
                "depth",
                format!(
                    "the child would be at depth {depth}, past max_depth {}",
                    parent_authority.max_depth
                ),
            ));
        }
        let live = state
            .run(parent)
            .and_then(|r| r.lineage())
            .map_or(0, |l| l.live_children);
        if live >= parent_authority.max_children {
            return Err(refuse(
                "children",
                format!(
                    "run {parent} has {live} live children, the most max_children ({}) allows",
                    parent_authority.max_children
                ),
            ));
        }
        for a in state.ancestry(parent) {
            let (count, max) = match a.lineage() {
                Some(l) => (l.descendants, l.authority.max_descendants),
                None => (0, parent_authority.max_descendants),
            };
            if count >= max {
                return Err(refuse(
                    "descendants",
                    format!(
                        "run {} already has {count} descendants, the most max_descendants ({max}) allows",
                        a.id()
                    ),
                ));
            }
        }
        for (k, l) in &left {
            if *l <= 0.0 {
                return Err(refuse(
                    "budget",
                    format!("run {parent} has no {k} budget left"),
                ));
            }
        }
    }
    for (k, v) in &ask.authority.budget {
        if *v <= 0.0 {
            return Err(refuse(
                "budget",
                format!("a budget of {v} {k} leaves the child nothing to run with"),
            ));
        }
        if let Some(l) = left.get(k) {
            if v > l {
                return Err(refuse(
                    "budget",
                    format!("asked for {v} {k}; the parent has {l} left"),
                ));
            }
        }
    }
    let wf = &ask.workflow;
    for (t, program) in programs(wf).enumerate() {
        if !authority.allows_program(program) {
            let how = if matches!(wf.spec().tasks[t].command, crate::model::Command::Shell(_)) {
                " (a shell line runs `sh`; use `command = [...]` with an allowed program)"
            } else {
                ""
            };
            return Err(refuse(
                "command",
                format!(
                    "task `{}` runs {program:?}, which allowed_commands does not allow{how}",
                    wf.task_id(t as TaskIndex)
                ),
            ));
        }
        if !authority.allows_pool(wf.pool(t as TaskIndex)) {
            return Err(refuse(
                "pool",
                format!(
                    "task `{}` uses pool {:?}, which the authority's pools do not include",
                    wf.task_id(t as TaskIndex),
                    wf.pool(t as TaskIndex).unwrap_or("")
                ),
            ));
        }
        if wf.requires_approval(t as TaskIndex) && !authority.may_request_approval {
            return Err(refuse(
                "approval",
                format!(
                    "task `{}` requires approval, but may_request_approval is false",
                    wf.task_id(t as TaskIndex)
                ),
            ));
        }
    }
    if let Some((parent, _, _)) = ask.caller {
        // The same commands (program and arguments, or shell line, task by task) with the
        // same input as an ancestor: a self-spawning loop.
        let commands = |w: &Workflow| -> Vec<crate::model::Command> {
            w.spec().tasks.iter().map(|t| t.command.clone()).collect()
        };
        let mine = commands(wf);
        for a in state.ancestry(parent) {
            let input = a.lineage().and_then(|l| l.input.as_deref());
            if input == ask.input.as_deref() && commands(a.workflow()) == mine {
                return Err(refuse(
                    "loop",
                    format!(
                        "run {} (an ancestor) already runs the same command{} with the same \
                         input: a self-spawning loop (give the child other arguments or \
                         another input)",
                        a.id(),
                        match mine.as_slice() {
                            [one] => format!(" ({one})"),
                            _ => "s".to_owned(),
                        }
                    ),
                ));
            }
        }
    }
    let parent = ask.caller.map(|(parent, t, _)| {
        let r = state.run(parent).expect("exists");
        (parent, r.workflow().task_id(t).clone())
    });
    let run = match &parent {
        Some((p, task)) => child_id(*p, task.as_str(), &ask.key),
        None => RunId::from_u128(0),
    };
    Ok(SpawnDecision::Spawn(Event::RunSpawned {
        run,
        workflow: Arc::clone(&ask.workflow),
        spawn: Box::new(Spawn {
            parent,
            attempt: ask.caller.map_or(0, |(_, _, a)| a),
            key: ask.key.clone(),
            input: ask.input.clone(),
            reserved: ask.authority.budget.clone(),
            authority,
            on_failure: ask.on_failure,
            on_parent_exit: ask.on_parent_exit,
            parent_authority: (!recorded).then_some(parent_authority),
            routing: None,
            on_budget_exhausted: ask.on_budget_exhausted,
        }),
    }))
}

/// The first run of `run`'s subtree, root side first, whose budget the subtree's usage
/// exceeds: `budget_exhausted` for it. Counts only journaled usage.
pub fn budget_exhausted(state: &State, run: RunId) -> Option<Event> {
    let mut found = None;
    for r in state.ancestry(run) {
        let Some(l) = r.lineage() else { continue };
        // A finished run is past stopping; one already asking a human is suspended: a run
        // below it that is over its own limit is then the one to stop (or ask).
        if r.state().is_finished() || l.asking.is_some() {
            continue;
        }
        if let Some((counter, used, limit)) =
            crate::model::authority::over(&l.authority.budget, &l.subtree_usage)
        {
            found = Some(Event::BudgetExhausted {
                run: r.id(),
                counter,
                used,
                limit,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_ids_are_stable_and_sort_beside_their_parent() {
        let parent = RunId::from_ulid(ulid::Ulid::from_parts(1_700_000_000_000, 42));
        let a = child_id(parent, "plan", "k1");
        assert_eq!(a, child_id(parent, "plan", "k1"));
        assert_ne!(a, child_id(parent, "plan", "k2"));
        assert_ne!(a, child_id(parent, "plan2", "k1"));
        // "pla" + "nk1" must not collide with "plan" + "k1".
        assert_ne!(child_id(parent, "pla", "nk1"), a);
        assert_eq!(a.as_u128() >> 80, parent.as_u128() >> 80);
        // The value is part of the journal format: pin it.
        assert_eq!(a.to_string(), child_id(parent, "plan", "k1").to_string());
    }
}
