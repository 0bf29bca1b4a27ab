//! The agent registry and router: `[[agent]]` entries of `troupe.toml` name programs by the
//! capabilities they offer; `troupe delegate CAPABILITY` picks one of them for a child run.
//!
//! # The choice
//! Among the agents offering the capability that are below their `max_concurrency`, the one
//! with the highest UCB1 score (Auer, Cesa-Bianchi and Fischer, "Finite-time Analysis of the
//! Multiarmed Bandit Problem", 2002) wins:
//!
//! ```text
//! score_i = reward_i + sqrt(2 · ln(N + 1) / (n_i + 1))
//! reward_i = (s_i + 1) / (n_i + 2)  ·  1 / (1 + p50_i / p50_ref)
//! ```
//!
//! where `n_i` runs delegated to agent `i` finished, `s_i` of them succeeded, `N` is the sum
//! of `n_i` over the candidates, `p50_i` is the median duration (submission to end) of its
//! finished runs and `p50_ref` the median of the candidates' `p50_i` (an agent with no
//! finished run counts as `p50_ref`). The success rate is Laplace's rule of succession, so a
//! new agent starts at ½; the square root is the exploration bonus, largest for agents tried
//! least, so a slow start does not starve an agent forever. Ties go to the agent listed
//! first. The inputs are folded from the journal, so the same journal gives the same choice,
//! and the choice and its reason are journaled with the spawn.

use serde::{Deserialize, Serialize};

use super::authority::AuthorityAsk;
use super::spec::Command;
use super::state::State;

/// One `[[agent]]` of `troupe.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Unique name.
    pub name: String,
    /// What a delegated run executes (`command = [...]` or `shell = "..."`).
    pub command: Command,
    /// Capabilities it offers (`troupe delegate CAPABILITY`).
    pub capabilities: Vec<String>,
    /// Runs delegated to it that may be live at once (`None`: no cap).
    pub max_concurrency: Option<u32>,
    /// What its runs ask for, over the delegating parent's authority.
    pub authority: AuthorityAsk,
}

/// How an agent has done, folded from the runs delegated to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStats {
    /// The agent's name.
    pub name: String,
    /// Its capabilities.
    pub capabilities: Vec<String>,
    /// Delegated runs not finished.
    pub live: u32,
    /// Its cap on live runs.
    pub max_concurrency: Option<u32>,
    /// Delegated runs finished.
    pub finished: u32,
    /// Of those, succeeded.
    pub succeeded: u32,
    /// Median duration of the finished ones, ms.
    pub p50_ms: Option<u64>,
}

/// The statistics of every agent of `agents`, in registry order. O(runs).
pub fn stats(state: &State, agents: &[AgentSpec]) -> Vec<AgentStats> {
    let mut durations: Vec<Vec<u64>> = vec![Vec::new(); agents.len()];
    let mut out: Vec<AgentStats> = agents
        .iter()
        .map(|a| AgentStats {
            name: a.name.clone(),
            capabilities: a.capabilities.clone(),
            live: 0,
            max_concurrency: a.max_concurrency,
            finished: 0,
            succeeded: 0,
            p50_ms: None,
        })
        .collect();
    for r in state.runs() {
        let Some(agent) = r.lineage().and_then(|l| l.agent.as_deref()) else {
            continue;
        };
        let Some(i) = agents.iter().position(|a| a.name == agent) else {
            continue;
        };
        match r.finished_at() {
            Some(end) if r.state().is_finished() => {
                out[i].finished += 1;
                out[i].succeeded += u32::from(r.state() == super::RunState::Succeeded);
                durations[i].push(end.saturating_since(r.submitted_at()).as_millis() as u64);
            }
            _ => out[i].live += 1,
        }
    }
    for (s, mut d) in out.iter_mut().zip(durations) {
        if !d.is_empty() {
            d.sort_unstable();
            s.p50_ms = Some(d[d.len() / 2]);
        }
    }
    out
}

/// Picks the agent for `capability` (see the [module docs](self)): its index in `agents`
/// and the reason, naming every candidate's score. `Err` says why none can take it.
pub fn route(
    state: &State,
    agents: &[AgentSpec],
    capability: &str,
) -> Result<(usize, String), String> {
    let all = stats(state, agents);
    let offering: Vec<usize> = (0..agents.len())
        .filter(|&i| agents[i].capabilities.iter().any(|c| c == capability))
        .collect();
    if offering.is_empty() {
        return Err(format!(
            "no [[agent]] in troupe.toml offers the capability {capability:?}"
        ));
    }
    let free: Vec<usize> = offering
        .iter()
        .copied()
        .filter(|&i| all[i].max_concurrency.is_none_or(|m| all[i].live < m))
        .collect();
    if free.is_empty() {
        return Err(format!(
            "every agent offering {capability:?} is at its max_concurrency"
        ));
    }
    let mut p50s: Vec<u64> = free.iter().filter_map(|&i| all[i].p50_ms).collect();
    p50s.sort_unstable();
    let reference = p50s.get(p50s.len() / 2).copied().unwrap_or(1000).max(1) as f64;
    let total: u32 = free.iter().map(|&i| all[i].finished).sum();
    let score = |i: usize| {
        let s = &all[i];
        let success = f64::from(s.succeeded + 1) / f64::from(s.finished + 2);
        let p50 = s.p50_ms.map_or(reference, |p| p as f64);
        let reward = success / (1.0 + p50 / reference);
        let explore = (2.0 * f64::from(total + 1).ln() / f64::from(s.finished + 1)).sqrt();
        (reward + explore, success, explore)
    };
    let mut best = free[0];
    for &i in &free[1..] {
        if score(i).0 > score(best).0 {
            best = i;
        }
    }
    let describe = |i: usize| {
        let (total, success, explore) = score(i);
        let s = &all[i];
        format!(
            "{} {total:.3} (success {}/{} → {success:.2}, p50 {}, live {}, explore {explore:.2})",
            s.name,
            s.succeeded,
            s.finished,
            s.p50_ms
                .map_or("-".to_owned(), |p| format!("{:.1}s", p as f64 / 1000.0)),
            s.live
        )
    };
    let others: Vec<String> = free
        .iter()
        .filter(|&&i| i != best)
        .map(|&i| describe(i))
        .collect();
    let reason = if others.is_empty() {
        format!("only candidate: {}", describe(best))
    } else {
        format!(
            "highest UCB1 score: {}; others: {}",
            describe(best),
            others.join("; ")
        )
    };
    Ok((best, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, caps: &[&str], max: Option<u32>) -> AgentSpec {
        AgentSpec {
            name: name.into(),
            command: Command::Argv(vec![name.into()]),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            max_concurrency: max,
            authority: AuthorityAsk::default(),
        }
    }

    #[test]
    fn unknown_capabilities_and_full_agents_are_refused() {
        let state = State::new();
        let agents = [agent("a", &["x"], Some(0)), agent("b", &["y"], None)];
        assert!(route(&state, &agents, "z").unwrap_err().contains("offers"));
        assert!(route(&state, &agents, "x")
            .unwrap_err()
            .contains("max_concurrency"));
        let (i, reason) = route(&state, &agents, "y").unwrap();
        assert_eq!(i, 1);
        assert!(reason.contains("only candidate"), "{reason}");
    }

    #[test]
    fn untried_agents_tie_and_the_first_listed_wins() {
        let state = State::new();
        let agents = [agent("a", &["x"], None), agent("b", &["x"], None)];
        let (i, reason) = route(&state, &agents, "x").unwrap();
        assert_eq!(i, 0);
        assert!(reason.contains("others: b"), "{reason}");
    }
}
