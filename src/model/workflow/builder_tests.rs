//! [`Builder`] against the checks in passes it replaces (kept here as the reference: field
//! rules of every task, then the id index, then the dependencies, then the plan, then the
//! template references of every task), on random specs full of duplicate ids, unknown,
//! repeated, forward and self dependencies, cycles, long dependency lists, templates and
//! fan-outs: the same problems in the same order at the same places, or the same workflow
//! (plan, index and fan-outs included); the same for the index-and-plan-only rebuild.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

use super::*;
use crate::model::spec::{Command, Expansion, Handoff, TaskDefaults};

/// Distinct made-up places for every [`Loc`], so that a problem at the wrong place shows.
struct Places;

impl Locate for Places {
    fn locate(&self, loc: Loc<'_>) -> Option<(usize, usize)> {
        Some(match loc {
            Loc::Nowhere => return None,
            Loc::Name => (1, 1),
            Loc::MaxConcurrency => (1, 2),
            Loc::Pool(name) => (2, name.len()),
            Loc::Defaults(field) => (3, field.len()),
            Loc::Task(t) => (10 + 10 * t as usize, 1),
            Loc::TaskField(t, field) => (10 + 10 * t as usize, 2 + field.len()),
            Loc::Dependency(t, k) => (11 + 10 * t as usize, 1 + k),
            Loc::Top(field) => (4, field.len()),
        })
    }
}

/// The reference: checks in passes over the tasks, as before [`Builder`].
fn reference(
    spec: WorkflowSpec,
    locate: &dyn Locate,
    fields: bool,
) -> Result<Workflow, Vec<Problem>> {
    let mut p = Problems {
        list: Vec::new(),
        locate,
    };
    if fields {
        check_fields(&spec, &mut p);
    }
    let structure = reference_structure(spec, &mut p);
    if let (Some(wf), true) = (&structure, fields) {
        let all: Vec<TaskIndex> = (0..wf.len() as TaskIndex).collect();
        handoff::check_references(wf, &mut p, &all);
    }
    match structure {
        Some(wf) if p.list.is_empty() => Ok(wf),
        _ => Err(p.list),
    }
}

fn reference_structure(spec: WorkflowSpec, p: &mut Problems<'_>) -> Option<Workflow> {
    let before = p.list.len();
    if spec.tasks.is_empty() {
        p.at(
            Loc::Nowhere,
            "workflow has no tasks; add at least one [[task]]",
        );
        return None;
    }
    let hasher = DefaultHashBuilder::default();
    let mut index: HashTable<TaskIndex> = HashTable::with_capacity(spec.tasks.len());
    let tasks = &spec.tasks;
    let hash_of = |id: &str| hasher.hash_one(id);
    for (i, task) in tasks.iter().enumerate() {
        let id = task.id.as_str();
        let h = hash_of(id);
        match index.find(h, |&j| tasks[j as usize].id.as_str() == id) {
            Some(&first) => {
                let first_line = p
                    .line_of(Loc::Task(first))
                    .map(|l| format!(" (first defined on line {l})"))
                    .unwrap_or_default();
                p.at(
                    Loc::Task(i as TaskIndex),
                    format!("duplicate task id `{id}`{first_line}"),
                );
            }
            None => {
                index.insert_unique(h, i as TaskIndex, |&j| {
                    hash_of(tasks[j as usize].id.as_str())
                });
            }
        }
    }
    let lookup = |id: &str| {
        index
            .find(hash_of(id), |&j| tasks[j as usize].id.as_str() == id)
            .copied()
    };
    let mut edges: Vec<(TaskIndex, TaskIndex)> = Vec::new();
    let mut deps_ok = true;
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, task) in tasks.iter().enumerate() {
        let i = i as TaskIndex;
        let long = task.depends_on.len() > 16;
        seen.clear();
        for (k, dep) in task.depends_on.iter().enumerate() {
            let repeated = if long {
                !seen.insert(dep.as_str())
            } else {
                task.depends_on[..k].contains(dep)
            };
            if repeated {
                p.at(
                    Loc::Dependency(i, k),
                    format!("task `{}` lists `{dep}` twice in depends_on", task.id),
                );
                continue;
            }
            match lookup(dep.as_str()) {
                Some(j) if j == i => {
                    p.at(
                        Loc::Dependency(i, k),
                        format!("task `{dep}` depends on itself (cycle: {dep} → {dep})"),
                    );
                    deps_ok = false;
                }
                Some(j) => edges.push((j, i)),
                None => {
                    p.at(
                        Loc::Dependency(i, k),
                        format!(
                            "task `{}` depends on `{dep}`, which is not a task in this workflow",
                            task.id
                        ),
                    );
                    deps_ok = false;
                }
            }
        }
    }
    if !deps_ok || p.list.len() > before {
        return None;
    }
    let fan_outs = tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.expansion().is_none())
        .filter_map(|(m, t)| {
            let e = crate::model::template::parse_for_each(t.for_each()?).ok()?;
            match e.root {
                crate::model::template::Root::Output(source) => {
                    Some((lookup(source.as_str())?, m as TaskIndex))
                }
                _ => None,
            }
        })
        .collect();
    match Plan::build(tasks.len(), &edges) {
        Ok(plan) => Some(Workflow {
            spec,
            plan,
            index,
            hasher,
            fan_outs,
        }),
        Err(cycle) => {
            let path: Vec<&str> = cycle
                .iter()
                .map(|&t| tasks[t as usize].id.as_str())
                .collect();
            p.at(
                Loc::Task(cycle[0]),
                format!("dependency cycle: {}", path.join(" → ")),
            );
            None
        }
    }
}

const IDS: &[&str] = &["a", "b", "c", "d", "e", "f", "g", "h", "a[0]"];

fn random_spec(rng: &mut StdRng) -> WorkflowSpec {
    let n = rng.random_range(0..9);
    // Few ids for many tasks: duplicates; many for few: unknown dependencies.
    let ids = &IDS[..rng.random_range(1..IDS.len())];
    let id = |r: &mut StdRng| TaskId::new(ids.choose(r).unwrap()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..n {
        let own = if rng.random_bool(0.7) {
            TaskId::new(IDS[i % IDS.len()]).unwrap()
        } else {
            id(rng)
        };
        let command = match rng.random_range(0..8) {
            0 => Command::Shell("make".into()),
            1 => Command::Argv(vec![]),
            2 => Command::Argv(vec!["echo".into(), "{{ tasks.a.output }}".into()]),
            3 => Command::Argv(vec!["echo".into(), "{{ item }}".into()]),
            _ => Command::Argv(vec!["true".into()]),
        };
        let mut t = TaskSpec::new(own, command);
        let deps = if rng.random_bool(0.05) {
            20
        } else {
            rng.random_range(0..4)
        };
        // Mostly earlier tasks (no cycle), sometimes any id.
        t.depends_on = (0..deps)
            .map(|_| {
                if i > 0 && rng.random_bool(0.7) {
                    TaskId::new(IDS[rng.random_range(0..i) % IDS.len()]).unwrap()
                } else {
                    id(rng)
                }
            })
            .collect();
        if rng.random_bool(0.15) {
            t.env.insert("X".into(), "{{ tasks.b.output.x }}".into());
        }
        let for_each = rng.random_bool(0.15).then(|| {
            ["{{ tasks.a.output }}", "{{ tasks.c.output.files }}", "x"]
                .choose(rng)
                .unwrap()
                .to_string()
        });
        let expansion = rng
            .random_bool(0.05)
            .then_some(Expansion::Mapped { count: 2 });
        t.handoff = Handoff {
            for_each,
            expansion,
            ..Handoff::default()
        }
        .boxed_if_set();
        if rng.random_bool(0.1) {
            t.pool = Some(["cc", "nope"].choose(rng).unwrap().to_string());
        }
        tasks.push(t);
    }
    WorkflowSpec {
        name: if rng.random_bool(0.95) { "wf" } else { "" }.into(),
        max_concurrency: None,
        pools: [("cc".to_owned(), 1)].into(),
        defaults: TaskDefaults::default(),
        tasks,
        delegation: None,
        resilience: None,
        origin: None,
    }
}

/// A random valid spec (mostly): unique ids, dependencies along a random order of the tasks
/// (so many name a later task), templates and fan-outs on upstream tasks.
fn clean_spec(rng: &mut StdRng) -> WorkflowSpec {
    let n = rng.random_range(1..9);
    let mut rank: Vec<usize> = (0..n).collect();
    rank.shuffle(rng);
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut t = TaskSpec::new(
            TaskId::new(IDS[i]).unwrap(),
            Command::Argv(vec!["true".into()]),
        );
        let upstream: Vec<usize> = (0..n).filter(|&j| rank[j] < rank[i]).collect();
        let mut deps: Vec<usize> = upstream
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.5))
            .collect();
        deps.shuffle(rng);
        t.depends_on = deps.iter().map(|&j| TaskId::new(IDS[j]).unwrap()).collect();
        if let Some(&j) = deps.first() {
            if rng.random_bool(0.3) {
                t.command = Command::Argv(vec![
                    "echo".into(),
                    format!("{{{{ tasks.{}.output }}}}", IDS[j]),
                ]);
            }
            if rng.random_bool(0.2) {
                t.handoff = Handoff {
                    for_each: Some(format!("{{{{ tasks.{}.output.files }}}}", IDS[j])),
                    ..Handoff::default()
                }
                .boxed_if_set();
            }
        }
        tasks.push(t);
    }
    WorkflowSpec {
        name: "wf".into(),
        max_concurrency: None,
        pools: [("cc".to_owned(), 1)].into(),
        defaults: TaskDefaults::default(),
        tasks,
        delegation: None,
        resilience: None,
        origin: None,
    }
}

fn same(
    got: Result<Workflow, Vec<Problem>>,
    want: Result<Workflow, Vec<Problem>>,
    spec: &WorkflowSpec,
) {
    match (got, want) {
        (Ok(g), Ok(w)) => {
            assert_eq!(g.spec(), w.spec());
            assert_eq!(
                g.plan().topological_order(),
                w.plan().topological_order(),
                "{spec:#?}"
            );
            for t in 0..w.len() as TaskIndex {
                assert_eq!(
                    g.plan().upstream(t).collect::<Vec<_>>(),
                    w.plan().upstream(t).collect::<Vec<_>>()
                );
                assert_eq!(
                    g.plan().downstream(t).collect::<Vec<_>>(),
                    w.plan().downstream(t).collect::<Vec<_>>()
                );
                assert_eq!(
                    g.fan_outs_from(t).collect::<Vec<_>>(),
                    w.fan_outs_from(t).collect::<Vec<_>>()
                );
                let id = w.task_id(t).as_str();
                assert_eq!(g.task_index(id), w.task_index(id));
            }
        }
        (Err(g), Err(w)) => assert_eq!(g, w, "{spec:#?}"),
        (g, w) => panic!(
            "builder {:?}, reference {:?} for {spec:#?}",
            g.map(|_| ()),
            w.map(|_| ())
        ),
    }
}

#[test]
fn the_builder_reports_and_plans_as_the_checks_in_passes_did() {
    let mut outcomes = [0usize; 2];
    for seed in 0..3000 {
        let mut rng = StdRng::seed_from_u64(seed);
        let spec = if seed % 2 == 0 {
            clean_spec(&mut rng)
        } else {
            random_spec(&mut rng)
        };
        let built = Workflow::build(spec.clone(), &Places);
        outcomes[usize::from(built.is_ok())] += 1;
        same(built, reference(spec.clone(), &Places, true), &spec);
        same(
            Workflow::build(spec.clone(), &NoSource),
            reference(spec.clone(), &NoSource, true),
            &spec,
        );
        // One task at a time, as the parser's fast path pushes them.
        let mut builder = Builder::new(WorkflowSpec {
            tasks: Vec::new(),
            ..spec.clone()
        });
        for t in spec.tasks.clone() {
            builder.push(t);
        }
        same(
            builder.finish(),
            reference(spec.clone(), &NoSource, true),
            &spec,
        );
        same(
            Builder::start(spec.clone(), &NoSource, false).finish(),
            reference(spec.clone(), &NoSource, false),
            &spec,
        );
    }
    assert!(outcomes.iter().all(|&n| n > 300), "{outcomes:?}");
}
