//! The views of agent trees: `troupe tree` ([`tree_view`]) and `troupe wait`'s result of a
//! run ([`result_view`]).

use crate::messages::control::{ControlError, RunResultView, TreeNode, TreeView};
use crate::model::{Counters, RunId, State};
use crate::read::outputs::Outputs;

/// Run `run` and all its descendants, depth first in spawn order.
pub fn tree_view(state: &State, run: RunId) -> Result<TreeView, ControlError> {
    if state.run(run).is_none() {
        return Err(ControlError::NotFound(format!("no run {run}")));
    }
    let mut nodes = Vec::new();
    let mut stack = vec![run];
    while let Some(id) = stack.pop() {
        let Some(r) = state.run(id) else { continue };
        let l = r.lineage();
        nodes.push(TreeNode {
            run: id,
            name: r.workflow().spec().name.clone(),
            state: r.state(),
            depth: l.map_or(0, |l| l.depth),
            parent: l.and_then(|l| Some((l.parent?.0, l.parent_task.clone()?))),
            key: l.filter(|l| !l.key.is_empty()).map(|l| l.key.clone()),
            usage: l.map_or_else(|| r.usage_total(), |l| l.subtree_usage.clone()),
            budget: l.map_or_else(Counters::new, |l| l.authority.budget.clone()),
            reserved: l.map_or_else(Counters::new, |l| l.reserved.clone()),
            left: state.budget_left(id),
            exhausted: l.and_then(|l| l.exhausted.clone()),
            asking: l
                .and_then(|l| l.asking.as_ref())
                .map(|a| a.reason.to_string()),
        });
        if let Some(l) = l {
            stack.extend(l.children.iter().rev());
        }
    }
    Ok(TreeView { nodes })
}

/// Run `run`'s state and output: the output of its output task (`output = "TASK"`, or its
/// single final task) once that task succeeded, `null` before.
pub fn result_view(
    outputs: &Outputs,
    state: &State,
    run: RunId,
) -> Result<RunResultView, ControlError> {
    let r = state
        .run(run)
        .ok_or_else(|| ControlError::NotFound(format!("no run {run}")))?;
    let output = match r.workflow().output_task() {
        Some(t) if r.task(t).state == crate::model::TaskState::Succeeded => outputs
            .value(run, r.workflow(), t)
            .map_err(|e| ControlError::Internal(e.to_string()))?
            .to_string(),
        _ => "null".to_owned(),
    };
    Ok(RunResultView {
        run,
        key: r
            .lineage()
            .filter(|l| !l.key.is_empty())
            .map(|l| l.key.clone()),
        parent: r
            .lineage()
            .and_then(|l| Some((l.parent?.0, l.parent_task.clone()?))),
        state: r.state(),
        output,
    })
}
