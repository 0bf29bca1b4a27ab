//! Authority: what a run of an agent tree may do — how deep and how wide it may delegate,
//! what it may spend, which programs and pools it may use.
//!
//! A root run gets the node's default (`troupe.toml [agents]`), narrowed by its workflow's
//! `[authority]`. A child gets the intersection of what its spawn asks (`[authority]` of the
//! child workflow, then `troupe spawn` flags) and what its parent has: every limit is the
//! smaller of the two, every list the common part, every permission the logical and
//! ([`Authority::narrow`]). Authority therefore never widens down a tree; the property tests
//! below check it for arbitrary asks.
//!
//! Budgets are over the usage counters attempts report through `TROUPE_USAGE` (any names:
//! `tokens`, `usd`, ...) plus `wall_clock`. A counter a run has no limit for is unlimited
//! there (its ancestors' limits still count: usage anywhere in a subtree counts against every
//! ancestor). See `docs/agents.md` for the accounting.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::event::Counters;

/// Node default for [`Authority::max_depth`]: the root is depth 0, so four levels below it.
pub const DEFAULT_MAX_DEPTH: u32 = 4;
/// Node default for [`Authority::max_children`].
pub const DEFAULT_MAX_CHILDREN: u32 = 16;
/// Node default for [`Authority::max_descendants`].
pub const DEFAULT_MAX_DESCENDANTS: u32 = 1_000;
/// Largest depth anyone may configure (a sanity bound, not a default).
pub const MAX_MAX_DEPTH: u32 = 64;

/// The effective authority of one run, journaled with the spawn that created it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authority {
    /// Deepest depth a descendant may have (the root run is depth 0, its children 1, ...).
    pub max_depth: u32,
    /// Children of this run that may be live (not finished) at once.
    pub max_children: u32,
    /// Descendants this run's subtree may spawn in total, over its whole life.
    pub max_descendants: u32,
    /// Counter name → limit over the whole subtree's usage. A counter not named is unlimited
    /// here (ancestors' limits still apply).
    pub budget: Counters,
    /// Wall-clock time the run may take from its spawn to its end.
    pub wall_clock: Option<Duration>,
    /// Glob lists (`glob` crate syntax) over a task's program: a program is allowed only if
    /// it matches one glob of *every* list (one list per level that set any; none: any
    /// program). A `shell` task's program is `sh`.
    pub allowed_commands: Vec<Vec<String>>,
    /// Pools the run's tasks may use (`None`: any). A task with no pool is always allowed.
    pub pools: Option<Vec<String>>,
    /// Whether the run's tasks may spawn children.
    pub may_spawn: bool,
    /// Whether the run's tasks may set `requires_approval` (ask a human).
    pub may_request_approval: bool,
}

impl Default for Authority {
    /// The built-in node default: depth 4, 16 live children, 1,000 descendants, no budget,
    /// any program and pool, spawning and approvals allowed.
    fn default() -> Self {
        Authority {
            max_depth: DEFAULT_MAX_DEPTH,
            max_children: DEFAULT_MAX_CHILDREN,
            max_descendants: DEFAULT_MAX_DESCENDANTS,
            budget: Counters::new(),
            wall_clock: None,
            allowed_commands: Vec::new(),
            pools: None,
            may_spawn: true,
            may_request_approval: true,
        }
    }
}

/// What a workflow's `[authority]`, the node's `[agents]` or `troupe spawn` flags ask for:
/// every field optional; an unset field takes the parent's value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AuthorityAsk {
    /// See [`Authority::max_depth`].
    pub max_depth: Option<u32>,
    /// See [`Authority::max_children`].
    pub max_children: Option<u32>,
    /// See [`Authority::max_descendants`].
    pub max_descendants: Option<u32>,
    /// Counter name → amount asked. For a child this is also what the spawn reserves from
    /// the parent's remainder.
    pub budget: Counters,
    /// See [`Authority::wall_clock`].
    pub wall_clock: Option<Duration>,
    /// See [`Authority::allowed_commands`] (one list).
    pub allowed_commands: Option<Vec<String>>,
    /// See [`Authority::pools`].
    pub pools: Option<Vec<String>>,
    /// See [`Authority::may_spawn`].
    pub may_spawn: Option<bool>,
    /// See [`Authority::may_request_approval`].
    pub may_request_approval: Option<bool>,
}

impl AuthorityAsk {
    /// Whether nothing is asked.
    pub fn is_empty(&self) -> bool {
        *self == AuthorityAsk::default()
    }

    /// `self` with every field `later` sets replaced by `later`'s (flags over a file's
    /// `[authority]`); budgets merge counter by counter.
    pub fn overlay(mut self, later: &AuthorityAsk) -> AuthorityAsk {
        macro_rules! take {
            ($($f:ident),*) => {$( if later.$f.is_some() { self.$f = later.$f.clone(); } )*};
        }
        take!(
            max_depth,
            max_children,
            max_descendants,
            wall_clock,
            allowed_commands,
            pools,
            may_spawn,
            may_request_approval
        );
        for (k, v) in &later.budget {
            self.budget.insert(k.clone(), *v);
        }
        self
    }

    /// Checks the values a user wrote: globs that parse, budgets that are finite and not
    /// negative, a depth within [`MAX_MAX_DEPTH`]. The error names the field.
    pub fn check(&self) -> Result<(), String> {
        if let Some(d) = self.max_depth {
            if d > MAX_MAX_DEPTH {
                return Err(format!(
                    "max_depth is {d}; at most {MAX_MAX_DEPTH} is accepted"
                ));
            }
        }
        for (k, v) in &self.budget {
            if k.is_empty() || k == "wall_clock" {
                return Err(format!("budget counter name {k:?} is reserved or empty"));
            }
            if !v.is_finite() || *v < 0.0 {
                return Err(format!(
                    "budget.{k} is {v}; a budget is a finite number, 0 or more"
                ));
            }
        }
        for g in self.allowed_commands.iter().flatten() {
            glob::Pattern::new(g)
                .map_err(|e| format!("allowed_commands: {g:?} is not a glob: {e}"))?;
        }
        Ok(())
    }
}

impl Authority {
    /// The intersection of `self` (what the parent has) and `ask`: every limit the smaller,
    /// every list the common part, every permission both. `left` is what remains of the
    /// parent's budget per counter: a child's limit for a counter is what it asks, or else
    /// what the parent has left, never more than what the parent has left.
    pub fn narrow(&self, ask: &AuthorityAsk, left: &Counters) -> Authority {
        let min = |mine: u32, asked: Option<u32>| asked.map_or(mine, |a| a.min(mine));
        let mut budget = Counters::new();
        for (k, limit) in &self.budget {
            let left = left.get(k).copied().unwrap_or(*limit).max(0.0);
            let v = ask.budget.get(k).map_or(left, |a| a.min(left));
            budget.insert(k.clone(), v);
        }
        for (k, a) in &ask.budget {
            budget.entry(k.clone()).or_insert(*a);
        }
        let mut allowed_commands = self.allowed_commands.clone();
        if let Some(list) = &ask.allowed_commands {
            if !allowed_commands.contains(list) {
                allowed_commands.push(list.clone());
            }
        }
        let pools = match (&self.pools, &ask.pools) {
            (None, None) => None,
            (Some(p), None) | (None, Some(p)) => Some(p.clone()),
            (Some(mine), Some(asked)) => {
                Some(asked.iter().filter(|p| mine.contains(p)).cloned().collect())
            }
        };
        Authority {
            max_depth: min(self.max_depth, ask.max_depth),
            max_children: min(self.max_children, ask.max_children),
            max_descendants: min(self.max_descendants, ask.max_descendants),
            budget,
            wall_clock: match (self.wall_clock, ask.wall_clock) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            allowed_commands,
            pools,
            may_spawn: self.may_spawn && ask.may_spawn.unwrap_or(true),
            may_request_approval: self.may_request_approval
                && ask.may_request_approval.unwrap_or(true),
        }
    }

    /// Whether `program` (`argv[0]`, or `sh` for a shell line) is allowed: it matches a glob
    /// of every list. The program is matched as written and, if it contains a `/`, by its
    /// file name too (`/usr/bin/python3` matches `python3`).
    pub fn allows_program(&self, program: &str) -> bool {
        let name = program.rsplit('/').next().unwrap_or(program);
        self.allowed_commands.iter().all(|list| {
            list.iter()
                .any(|g| glob::Pattern::new(g).is_ok_and(|p| p.matches(program) || p.matches(name)))
        })
    }

    /// Whether a task in `pool` is allowed (a task with no pool always is).
    pub fn allows_pool(&self, pool: Option<&str>) -> bool {
        match (pool, &self.pools) {
            (None, _) | (_, None) => true,
            (Some(p), Some(list)) => list.iter().any(|x| x == p),
        }
    }

    /// Whether `self` is within `parent` on every field (what "never widens" means).
    pub fn within(&self, parent: &Authority) -> bool {
        let budget_ok = parent
            .budget
            .iter()
            .all(|(k, l)| self.budget.get(k).is_some_and(|v| v <= l));
        let lists_ok = parent
            .allowed_commands
            .iter()
            .all(|l| self.allowed_commands.contains(l));
        let pools_ok = match (&parent.pools, &self.pools) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(p), Some(c)) => c.iter().all(|x| p.contains(x)),
        };
        let wall_ok = match (parent.wall_clock, self.wall_clock) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(p), Some(c)) => c <= p,
        };
        self.max_depth <= parent.max_depth
            && self.max_children <= parent.max_children
            && self.max_descendants <= parent.max_descendants
            && budget_ok
            && lists_ok
            && pools_ok
            && wall_ok
            && (!self.may_spawn || parent.may_spawn)
            && (!self.may_request_approval || parent.may_request_approval)
    }
}

/// Budget arithmetic of one run: `limit - used`, per counter it has a limit for.
pub fn left(limit: &Counters, used: &Counters) -> Counters {
    limit
        .iter()
        .map(|(k, l)| (k.clone(), l - used.get(k).copied().unwrap_or(0.0)))
        .collect()
}

/// The first counter of `used` over its `limit`, with both values.
pub fn over(limit: &Counters, used: &Counters) -> Option<(String, f64, f64)> {
    limit.iter().find_map(|(k, l)| {
        let u = used.get(k).copied().unwrap_or(0.0);
        (u > *l).then(|| (k.clone(), u, *l))
    })
}

/// Adds `more` into `sums`, counter by counter.
pub fn add(sums: &mut Counters, more: &Counters) {
    for (k, v) in more {
        *sums.entry(k.clone()).or_insert(0.0) += v;
    }
}

/// `[authority]` as a file writes it (a workflow, `troupe.toml [agents]`): budgets as a
/// table of counter = number plus `wall_clock = "DURATION"` (humantime), unknown fields
/// refused. [`AuthorityFile::into_ask`] makes the [`AuthorityAsk`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityFile {
    max_depth: Option<u32>,
    max_children: Option<u32>,
    max_descendants: Option<u32>,
    budget: Option<BudgetFile>,
    allowed_commands: Option<Vec<String>>,
    pools: Option<Vec<String>>,
    may_spawn: Option<bool>,
    may_request_approval: Option<bool>,
}

/// `budget = { tokens = 50000, usd = 2.5, wall_clock = "10m" }`.
#[derive(Debug, Clone, Default)]
struct BudgetFile {
    counters: Counters,
    wall_clock: Option<Duration>,
}

impl<'de> Deserialize<'de> for BudgetFile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Value {
            Number(f64),
            Text(String),
        }
        use serde::de::Error;
        let raw = BTreeMap::<String, Value>::deserialize(deserializer)?;
        let mut out = BudgetFile::default();
        for (name, value) in raw {
            match (name.as_str(), value) {
                ("wall_clock", Value::Text(t)) => {
                    let d = humantime::parse_duration(&t).map_err(|e| {
                        D::Error::custom(format!(
                            "budget.wall_clock: invalid duration {t:?}: {e} (examples: \"90s\", \"10m\")"
                        ))
                    })?;
                    out.wall_clock = Some(d);
                }
                ("wall_clock", Value::Number(_)) => {
                    return Err(D::Error::custom(
                        "budget.wall_clock is a duration string such as \"10m\"",
                    ))
                }
                (_, Value::Number(v)) => {
                    out.counters.insert(name, v);
                }
                (_, Value::Text(t)) => {
                    return Err(D::Error::custom(format!(
                        "budget.{name} is {t:?}; a budget counter is a number"
                    )))
                }
            }
        }
        Ok(out)
    }
}

impl AuthorityFile {
    /// The ask this table makes.
    pub fn into_ask(self) -> AuthorityAsk {
        let budget = self.budget.unwrap_or_default();
        AuthorityAsk {
            max_depth: self.max_depth,
            max_children: self.max_children,
            max_descendants: self.max_descendants,
            budget: budget.counters,
            wall_clock: budget.wall_clock,
            allowed_commands: self.allowed_commands,
            pools: self.pools,
            may_spawn: self.may_spawn,
            may_request_approval: self.may_request_approval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counters() -> impl Strategy<Value = Counters> {
        proptest::collection::btree_map(
            prop_oneof![Just("tokens".to_string()), Just("usd".to_string())],
            0.0f64..1000.0,
            0..3,
        )
    }

    fn names() -> impl Strategy<Value = Option<Vec<String>>> {
        proptest::option::of(proptest::collection::vec(
            prop_oneof![
                Just("a".to_string()),
                Just("b".to_string()),
                Just("c*".to_string())
            ],
            0..3,
        ))
    }

    fn ask() -> impl Strategy<Value = AuthorityAsk> {
        (
            proptest::option::of(0u32..10),
            proptest::option::of(0u32..40),
            proptest::option::of(0u32..2000),
            counters(),
            proptest::option::of(0u64..100),
            names(),
            names(),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(d, c, n, budget, w, cmds, pools, s, a)| AuthorityAsk {
                max_depth: d,
                max_children: c,
                max_descendants: n,
                budget,
                wall_clock: w.map(Duration::from_secs),
                allowed_commands: cmds,
                pools,
                may_spawn: s,
                may_request_approval: a,
            })
    }

    proptest! {
        /// A chain of arbitrary asks, each narrowed from the last: every level is within its
        /// parent, and a program or pool refused at some level is refused below it.
        #[test]
        fn authority_never_widens(asks in proptest::collection::vec((ask(), counters()), 1..6)) {
            let mut parent = Authority::default();
            for (ask, used) in asks {
                let child = parent.narrow(&ask, &left(&parent.budget, &used));
                prop_assert!(child.within(&parent), "{child:?} not within {parent:?}");
                for p in ["a", "b", "cat", "dog", "/bin/a"] {
                    prop_assert!(!child.allows_program(p) || parent.allows_program(p));
                }
                for p in ["a", "b", "x"] {
                    prop_assert!(!child.allows_pool(Some(p)) || parent.allows_pool(Some(p)));
                }
                parent = child;
            }
        }
    }

    #[test]
    fn a_child_gets_what_it_asks_up_to_what_is_left() {
        let mut parent = Authority::default();
        parent.budget.insert("tokens".into(), 1000.0);
        let mut used = Counters::new();
        used.insert("tokens".into(), 700.0);
        let mut ask = AuthorityAsk::default();
        ask.budget.insert("tokens".into(), 500.0);
        let child = parent.narrow(&ask, &left(&parent.budget, &used));
        assert_eq!(child.budget["tokens"], 300.0);
        ask.budget.insert("tokens".into(), 100.0);
        let child = parent.narrow(&ask, &left(&parent.budget, &used));
        assert_eq!(child.budget["tokens"], 100.0);
        let child = parent.narrow(&AuthorityAsk::default(), &left(&parent.budget, &used));
        assert_eq!(child.budget["tokens"], 300.0);
    }

    #[test]
    fn programs_match_every_list_by_path_or_name() {
        let mut a = Authority::default();
        assert!(a.allows_program("anything"));
        a.allowed_commands.push(vec!["python*".into(), "sh".into()]);
        assert!(a.allows_program("/usr/bin/python3"));
        assert!(a.allows_program("sh"));
        assert!(!a.allows_program("rm"));
        a.allowed_commands.push(vec!["python3".into()]);
        assert!(a.allows_program("python3"));
        assert!(!a.allows_program("sh"));
    }

    #[test]
    fn bad_asks_name_the_field() {
        let mut ask = AuthorityAsk::default();
        ask.budget.insert("tokens".into(), -1.0);
        assert!(ask.check().unwrap_err().contains("budget.tokens"));
        let ask = AuthorityAsk {
            allowed_commands: Some(vec!["[".into()]),
            ..Default::default()
        };
        assert!(ask.check().unwrap_err().contains("allowed_commands"));
        let ask = AuthorityAsk {
            max_depth: Some(1000),
            ..Default::default()
        };
        assert!(ask.check().unwrap_err().contains("max_depth"));
    }
}
