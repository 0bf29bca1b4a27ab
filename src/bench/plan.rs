//! `troupe bench plan`: parse + validate + toposort of a synthetic workflow, in TOML or
//! JSON, against a plain parse of the same text into the format's generic value
//! (`toml::Table`, `serde_json::Value`).

use std::time::Instant;

use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::model::parse::WorkflowFormat;
use crate::model::Workflow;

use super::*;

/// A synthetic TOML workflow of `tasks` tasks ([`synthetic_workflow_as`]).
pub fn synthetic_workflow(tasks: usize, seed: u64) -> String {
    synthetic_workflow_as(tasks, seed, WorkflowFormat::Toml)
}

/// A synthetic workflow of `tasks` tasks in `format`: each depends on up to two random tasks
/// among the 1,000 before it (a wide, deep DAG like a large build). Deterministic for a given
/// `seed`, and the same workflow in both formats. About 75 bytes per task in TOML, 70 in
/// JSON (one task object per line).
pub fn synthetic_workflow_as(tasks: usize, seed: u64, format: WorkflowFormat) -> String {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut text = String::with_capacity(tasks * 80 + 64);
    let json = format == WorkflowFormat::Json;
    text.push_str(if json {
        "{\"name\": \"synthetic\", \"task\": [\n"
    } else {
        "name = \"synthetic\"\n"
    });
    for i in 0..tasks {
        text.push_str(if json {
            "{\"id\": \"t"
        } else {
            "[[task]]\nid = \"t"
        });
        text.push_str(&i.to_string());
        text.push_str(if json {
            "\", \"command\": [\"true\"]"
        } else {
            "\"\ncommand = [\"true\"]\n"
        });
        if i > 0 {
            let lo = i.saturating_sub(1000);
            let a = rng.random_range(lo..i);
            let b = rng.random_range(lo..i);
            text.push_str(if json {
                ", \"depends_on\": [\"t"
            } else {
                "depends_on = [\"t"
            });
            text.push_str(&a.to_string());
            if b != a {
                text.push_str("\", \"t");
                text.push_str(&b.to_string());
            }
            text.push_str(if json { "\"]" } else { "\"]\n" });
        }
        if json {
            text.push_str(if i + 1 < tasks { "},\n" } else { "}\n" });
        }
    }
    if json {
        text.push_str("]}\n");
    }
    text
}

/// Everything `troupe bench plan` measured.
#[derive(Debug, Clone, Serialize)]
pub struct PlanBenchReport {
    /// Tasks in the workflow.
    pub nodes: usize,
    /// Dependency edges.
    pub edges: usize,
    /// `toml` or `json`: the spelling of the workflow text.
    pub format: &'static str,
    /// Size of the text, bytes.
    pub bytes: usize,
    /// troupe: parse + validate + toposort, ms (median of the runs).
    pub figure: f64,
    /// Baseline: parsing the same text into the format's generic value (`toml::Table`,
    /// `serde_json::Value`: no types, no checks, no positions), ms (median).
    pub baseline: f64,
    /// `figure / baseline` (how much the typed parse, checks and planning cost on top).
    pub ratio: f64,
    /// Unit of `figure` and `baseline`.
    pub unit: &'static str,
    /// Of `figure`, the part troupe owns: validation, id index and toposort of the already
    /// parsed spec, ms (median). The rest is reading the text into the spec (syntax, spanned
    /// parse tree, field by field reading).
    pub validate_plan_ms: f64,
    /// Runs measured (median reported).
    pub runs: usize,
    /// Length (tasks) of the critical path, as a sanity check of the plan.
    pub critical_path: u64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs the planning benchmark on a [`synthetic_workflow_as`] of `nodes` tasks in `format`.
pub fn plan(
    nodes: usize,
    runs: usize,
    format: WorkflowFormat,
) -> Result<PlanBenchReport, BenchError> {
    if nodes == 0 {
        return Err(BenchError::Other("--nodes must be at least 1".into()));
    }
    let text = synthetic_workflow_as(nodes, 42, format);
    let runs = runs.max(1);
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut planning = Vec::new();
    let mut last: Option<Workflow> = None;
    for _ in 0..runs {
        // The generic value is dropped after the clock stops, as the workflow is below.
        match format {
            WorkflowFormat::Toml => {
                let start = Instant::now();
                let table: toml::Table = toml::from_str(&text)?;
                theirs.push(start.elapsed().as_secs_f64() * 1e3);
                drop(table);
            }
            WorkflowFormat::Json => {
                let start = Instant::now();
                let value: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| BenchError::Other(format!("JSON baseline: {e}")))?;
                theirs.push(start.elapsed().as_secs_f64() * 1e3);
                drop(value);
            }
        }
        drop(last.take());
        let start = Instant::now();
        let wf = format.parse(&text)?;
        ours.push(start.elapsed().as_secs_f64() * 1e3);
        let spec = wf.spec().clone();
        let start = Instant::now();
        let again = Workflow::from_spec(spec)?;
        planning.push(start.elapsed().as_secs_f64() * 1e3);
        drop(again);
        last = Some(wf);
    }
    let wf = last.expect("at least one run");
    let (figure, baseline) = (median(ours), median(theirs));
    Ok(PlanBenchReport {
        nodes,
        edges: wf.plan().edge_count(),
        format: format.name(),
        bytes: text.len(),
        figure,
        baseline,
        ratio: figure / baseline,
        unit: "ms",
        validate_plan_ms: median(planning),
        runs,
        critical_path: wf.plan().critical_path(|_| 1).length,
    })
}
