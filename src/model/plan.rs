//! Planning: the workflow's DAG on petgraph, its topological order, ready set, downstream
//! closure (for `upstream_failed`) and critical path.
//!
//! Node `i` of the graph is task index `i`; an edge `a → b` means "b depends on a" (a must
//! succeed before b may start).

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use super::ids::TaskIndex;
use super::task::TaskState;

/// The DAG of one workflow and its topological order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Edges point from a dependency to its dependent.
    graph: DiGraph<(), (), u32>,
    /// Every task once, dependencies before dependents (petgraph's DFS-based toposort).
    order: Vec<TaskIndex>,
    /// `rank[t]` = position of `t` in `order`, to sort subsets topologically in O(k log k).
    rank: Vec<u32>,
}

/// The longest chain of dependent tasks, by the weights given to
/// [`Plan::critical_path`] (unit weights: the number of tasks on the chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriticalPath {
    /// Sum of the weights on the path (same unit as the weights).
    pub length: u64,
    /// The tasks on the path, first to last.
    pub tasks: Vec<TaskIndex>,
}

fn node(t: TaskIndex) -> NodeIndex<u32> {
    NodeIndex::new(t as usize)
}

impl Plan {
    /// Builds the DAG of `task_count` tasks from `(dependency, dependent)` edges. On a cycle,
    /// returns one cycle as a path that starts and ends at the same task (`[a, b, a]`).
    pub fn build(
        task_count: usize,
        edges: &[(TaskIndex, TaskIndex)],
    ) -> Result<Plan, Vec<TaskIndex>> {
        let mut graph: DiGraph<(), (), u32> = DiGraph::with_capacity(task_count, edges.len());
        for _ in 0..task_count {
            graph.add_node(());
        }
        for &(from, to) in edges {
            graph.add_edge(node(from), node(to), ());
        }
        let order: Vec<TaskIndex> = match toposort(&graph, None) {
            Ok(order) => order.into_iter().map(|n| n.index() as TaskIndex).collect(),
            Err(cycle) => return Err(find_cycle(&graph, cycle.node_id())),
        };
        let mut rank = vec![0u32; task_count];
        for (pos, &t) in order.iter().enumerate() {
            rank[t as usize] = pos as u32;
        }
        Ok(Plan { graph, order, rank })
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True if the plan has no tasks (never for a validated workflow).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Number of dependency edges.
    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// All tasks, dependencies before dependents.
    pub fn topological_order(&self) -> &[TaskIndex] {
        &self.order
    }

    /// Tasks that `t` depends on directly.
    pub fn upstream(&self, t: TaskIndex) -> impl Iterator<Item = TaskIndex> + '_ {
        self.graph
            .neighbors_directed(node(t), Direction::Incoming)
            .map(|n| n.index() as TaskIndex)
    }

    /// Tasks that depend on `t` directly.
    pub fn downstream(&self, t: TaskIndex) -> impl Iterator<Item = TaskIndex> + '_ {
        self.graph
            .neighbors_directed(node(t), Direction::Outgoing)
            .map(|n| n.index() as TaskIndex)
    }

    /// Number of direct dependencies of `t`.
    pub fn upstream_count(&self, t: TaskIndex) -> u32 {
        self.upstream(t).count() as u32
    }

    /// The ready set computed from scratch: tasks in `pending` whose dependencies have all
    /// succeeded, in topological order. (The fold maintains the same set incrementally;
    /// this is the reference it is tested against.)
    pub fn ready_set(&self, state_of: impl Fn(TaskIndex) -> TaskState) -> Vec<TaskIndex> {
        self.order
            .iter()
            .copied()
            .filter(|&t| {
                state_of(t) == TaskState::Pending
                    && self
                        .upstream(t)
                        .all(|u| state_of(u) == TaskState::Succeeded)
            })
            .collect()
    }

    /// Every task reachable from `from` along dependency edges (excluding `from` itself),
    /// in topological order. These are the tasks that become `upstream_failed` when `from`
    /// fails for good.
    pub fn transitive_downstream(&self, from: TaskIndex) -> Vec<TaskIndex> {
        let mut seen = vec![false; self.len()];
        let mut stack = vec![from];
        let mut out = Vec::new();
        while let Some(t) = stack.pop() {
            for d in self.downstream(t) {
                if !seen[d as usize] {
                    seen[d as usize] = true;
                    out.push(d);
                    stack.push(d);
                }
            }
        }
        out.sort_unstable_by_key(|&t| self.rank[t as usize]);
        out
    }

    /// The heaviest chain of dependent tasks, where `weight(t)` is the cost of task `t`
    /// (e.g. 1 for "number of tasks", or an expected duration in ms). O(tasks + edges).
    pub fn critical_path(&self, weight: impl Fn(TaskIndex) -> u64) -> CriticalPath {
        let n = self.len();
        let mut best = vec![0u64; n];
        let mut via: Vec<Option<TaskIndex>> = vec![None; n];
        for &t in &self.order {
            let (from, base) = self
                .upstream(t)
                .map(|u| (Some(u), best[u as usize]))
                .max_by_key(|&(_, b)| b)
                .unwrap_or((None, 0));
            best[t as usize] = base.saturating_add(weight(t));
            via[t as usize] = from;
        }
        let Some(end) = (0..n).max_by_key(|&t| best[t]) else {
            return CriticalPath {
                length: 0,
                tasks: Vec::new(),
            };
        };
        let mut tasks = vec![end as TaskIndex];
        while let Some(prev) = via[*tasks.last().unwrap() as usize] {
            tasks.push(prev);
        }
        tasks.reverse();
        CriticalPath {
            length: best[end],
            tasks,
        }
    }
}

/// A shortest cycle through `start` (BFS along dependency edges back to `start`).
fn find_cycle(graph: &DiGraph<(), (), u32>, start: NodeIndex<u32>) -> Vec<TaskIndex> {
    let n = graph.node_count();
    let mut parent: Vec<Option<NodeIndex<u32>>> = vec![None; n];
    let mut queue = std::collections::VecDeque::from([start]);
    let mut seen = vec![false; n];
    while let Some(v) = queue.pop_front() {
        for w in graph.neighbors_directed(v, Direction::Outgoing) {
            if w == start {
                // Walk back from v to start through the BFS tree.
                let mut chain = Vec::new();
                let mut cur = v;
                while cur != start {
                    chain.push(cur.index() as TaskIndex);
                    cur = parent[cur.index()].expect("BFS tree leads back to start");
                }
                let first = start.index() as TaskIndex;
                let mut path = vec![first];
                path.extend(chain.into_iter().rev());
                path.push(first);
                return path;
            }
            if !seen[w.index()] {
                seen[w.index()] = true;
                parent[w.index()] = Some(v);
                queue.push_back(w);
            }
        }
    }
    // toposort only reports nodes on a cycle, so BFS always returns above.
    vec![start.index() as TaskIndex, start.index() as TaskIndex]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_dependencies_first() {
        // 0 → 1 → 3, 0 → 2 → 3
        let plan = Plan::build(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]).unwrap();
        let order = plan.topological_order();
        let pos = |t| order.iter().position(|&x| x == t).unwrap();
        assert!(pos(0) < pos(1) && pos(0) < pos(2) && pos(1) < pos(3) && pos(2) < pos(3));
        assert_eq!(plan.transitive_downstream(1), vec![3]);
        let mut d = plan.transitive_downstream(0);
        assert_eq!(d.pop(), Some(3));
    }

    #[test]
    fn reports_the_cycle_path() {
        // 0 → 1 → 2 → 0, and 3 hanging off 2
        let cycle = Plan::build(4, &[(0, 1), (1, 2), (2, 0), (2, 3)]).unwrap_err();
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4);
        for w in cycle.windows(2) {
            assert!(
                [(0, 1), (1, 2), (2, 0)].contains(&(w[0], w[1])),
                "{cycle:?} has a non-edge"
            );
        }
    }

    #[test]
    fn ready_set_needs_every_dependency_succeeded() {
        let plan = Plan::build(3, &[(0, 2), (1, 2)]).unwrap();
        let states = [TaskState::Succeeded, TaskState::Running, TaskState::Pending];
        assert!(plan.ready_set(|t| states[t as usize]).is_empty());
        let states = [
            TaskState::Succeeded,
            TaskState::Succeeded,
            TaskState::Pending,
        ];
        assert_eq!(plan.ready_set(|t| states[t as usize]), vec![2]);
    }

    #[test]
    fn critical_path_takes_the_heaviest_chain() {
        // 0 → 1 → 3 and 0 → 2 → 3; task 2 is slow.
        let plan = Plan::build(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]).unwrap();
        let weights = [1, 1, 10, 1];
        let cp = plan.critical_path(|t| weights[t as usize]);
        assert_eq!(cp.length, 12);
        assert_eq!(cp.tasks, vec![0, 2, 3]);
        assert_eq!(plan.critical_path(|_| 1).length, 3);
    }
}
