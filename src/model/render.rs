//! Text renderings of a workflow's DAG for `troupe graph`.
//!
//! Edges point from a dependency to its dependent (the order tasks run in). Tasks that wait
//! for approval are drawn as hexagons, saga steps (with `compensate`) with a double border.

use std::fmt::Write;

use super::ids::TaskIndex;
use super::workflow::Workflow;

/// Graphviz DOT (`dot -Tsvg` renders it).
pub fn to_dot(workflow: &Workflow) -> String {
    let mut out = String::new();
    let name = workflow
        .spec()
        .name
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let _ = writeln!(out, "digraph \"{name}\" {{");
    out.push_str("  rankdir=LR;\n  node [shape=box];\n");
    for t in 0..workflow.len() as TaskIndex {
        let id = workflow.task_id(t);
        let mut attrs = Vec::new();
        if workflow.requires_approval(t) {
            attrs.push("shape=hexagon");
        }
        if workflow.task(t).compensate.is_some() {
            attrs.push("peripheries=2");
        }
        if attrs.is_empty() {
            let _ = writeln!(out, "  \"{id}\";");
        } else {
            let _ = writeln!(out, "  \"{id}\" [{}];", attrs.join(", "));
        }
    }
    for t in 0..workflow.len() as TaskIndex {
        for d in workflow.plan().downstream(t) {
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\";",
                workflow.task_id(t),
                workflow.task_id(d)
            );
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart (renders in GitHub Markdown inside a ```mermaid block). Node ids are
/// `t<index>` because Mermaid ids cannot hold every character task ids can; labels are the
/// task ids.
pub fn to_mermaid(workflow: &Workflow) -> String {
    let mut out = String::from("flowchart LR\n");
    for t in 0..workflow.len() as TaskIndex {
        let id = workflow.task_id(t);
        let (open, close) = match (
            workflow.requires_approval(t),
            workflow.task(t).compensate.is_some(),
        ) {
            (true, _) => ("{{", "}}"),
            (false, true) => ("[[", "]]"),
            (false, false) => ("[", "]"),
        };
        let _ = writeln!(out, "  t{t}{open}\"{id}\"{close}");
    }
    for t in 0..workflow.len() as TaskIndex {
        for d in workflow.plan().downstream(t) {
            let _ = writeln!(out, "  t{t} --> t{d}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse::parse_workflow;

    const WF: &str = "name = \"a \\\"q\\\"\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n\
        [[task]]\nid = \"b.c\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\nrequires_approval = true\n";

    #[test]
    fn dot_lists_nodes_and_edges() {
        let dot = to_dot(&parse_workflow(WF).unwrap());
        assert!(dot.starts_with("digraph \"a \\\"q\\\"\" {"), "{dot}");
        assert!(dot.contains("  \"b.c\" [shape=hexagon];"), "{dot}");
        assert!(dot.contains("  \"a\" -> \"b.c\";"), "{dot}");
    }

    #[test]
    fn mermaid_uses_index_ids_and_labels() {
        let m = to_mermaid(&parse_workflow(WF).unwrap());
        assert_eq!(
            m,
            "flowchart LR\n  t0[\"a\"]\n  t1{{\"b.c\"}}\n  t0 --> t1\n"
        );
    }
}
