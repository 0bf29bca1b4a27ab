//! Concurrency caps: the one check of whether a task may start now, given how many attempts
//! already hold slots in its run (`max_concurrency`), its run's pool (`[pools]` of the
//! workflow) and the node-wide pool of the same name (`[pools]` of `troupe.toml`).
//!
//! The scheduler uses it to dispatch and park; the read side uses it to say why a task
//! waits (`troupe queue --verbose`), so the two never disagree.

use std::collections::BTreeMap;

use crate::model::{TaskIndex, Workflow};

/// Attempts holding a slot where a task would start: in its run, in its run's pool, and in
/// the node-wide pool of that name (both 0 when the task has no pool).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Attempts of the run (compensations excluded: they count against no cap).
    pub run: u32,
    /// Attempts of the run in the task's pool.
    pub pool: u32,
    /// Attempts of all runs in the node-wide pool of the task's pool name.
    pub node_pool: u32,
}

/// The cap that keeps a task waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cap {
    /// The run is at its `max_concurrency` (the value).
    Run(u32),
    /// The run's pool of this name is full.
    Pool(String),
    /// The node-wide pool of this name is full.
    NodePool(String),
}

impl std::fmt::Display for Cap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cap::Run(cap) => write!(f, "run at max_concurrency {cap}"),
            Cap::Pool(p) | Cap::NodePool(p) => write!(f, "pool `{p}` full"),
        }
    }
}

/// Whether the run has room under its `max_concurrency`.
pub fn run_has_room(wf: &Workflow, load: u32) -> bool {
    wf.spec().max_concurrency.is_none_or(|cap| load < cap)
}

/// Whether the run's pool `pool` has room (a pool the workflow does not size is unbounded).
pub fn pool_has_room(wf: &Workflow, pool: &str, load: u32) -> bool {
    wf.spec().pools.get(pool).is_none_or(|&cap| load < cap)
}

/// Whether the node-wide pool `pool` has room (a name `troupe.toml` does not size is
/// unbounded).
pub fn node_pool_has_room(node_pools: &BTreeMap<String, u32>, pool: &str, load: u32) -> bool {
    node_pools.get(pool).is_none_or(|&cap| load < cap)
}

/// Whether task `task` of a run of `wf` may start now: run cap first, then the run's pool,
/// then the node-wide pool (the order the scheduler parks in).
pub fn admit(
    wf: &Workflow,
    task: TaskIndex,
    load: Load,
    node_pools: &BTreeMap<String, u32>,
) -> Result<(), Cap> {
    if !run_has_room(wf, load.run) {
        return Err(Cap::Run(wf.spec().max_concurrency.unwrap_or(0)));
    }
    if let Some(p) = wf.pool(task) {
        if !pool_has_room(wf, p, load.pool) {
            return Err(Cap::Pool(p.to_owned()));
        }
        if !node_pool_has_room(node_pools, p, load.node_pool) {
            return Err(Cap::NodePool(p.to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_workflow;

    fn wf() -> Workflow {
        parse_workflow(
            r#"
            name = "w"
            max_concurrency = 2
            [pools]
            gpu = 1
            [[task]]
            id = "a"
            command = ["true"]
            pool = "gpu"
            [[task]]
            id = "b"
            command = ["true"]
            "#,
        )
        .unwrap()
    }

    #[test]
    fn caps_are_checked_run_then_pool_then_node_pool() {
        let wf = wf();
        let node: BTreeMap<String, u32> = [("gpu".to_owned(), 3)].into();
        let load = |run, pool, node_pool| Load {
            run,
            pool,
            node_pool,
        };
        assert_eq!(admit(&wf, 0, load(0, 0, 0), &node), Ok(()));
        assert_eq!(admit(&wf, 0, load(2, 1, 3), &node), Err(Cap::Run(2)));
        assert_eq!(
            admit(&wf, 0, load(1, 1, 3), &node),
            Err(Cap::Pool("gpu".into()))
        );
        assert_eq!(
            admit(&wf, 0, load(1, 0, 3), &node),
            Err(Cap::NodePool("gpu".into()))
        );
        // A task without a pool only meets the run cap.
        assert_eq!(admit(&wf, 1, load(1, 9, 9), &node), Ok(()));
        assert_eq!(Cap::Run(2).to_string(), "run at max_concurrency 2");
        assert_eq!(Cap::NodePool("gpu".into()).to_string(), "pool `gpu` full");
    }
}
