//! Memory of the model at rest, per task, with 1,000,000 tasks (target ≤ 1 KiB), and per
//! child run of an agent tree with 10,000 children (target ≤ 2 KiB).
//!
//! Counts live heap bytes with a counting global allocator: before parsing, after building the
//! workflow (spec + plan + index) and after folding `run_submitted` (per-task runtime state),
//! with the TOML text dropped. Run: `cargo bench --bench model_memory` (prints, asserts nothing).
//! `TROUPE_MEMORY_TASKS` overrides the task count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use troupe::bench::synthetic_workflow;
use troupe::model::{parse_workflow, Event, EventRecord, RunId, State, Timestamp};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // test harness probing: nothing to list
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not: then a smoke run.
    let default = if args.iter().any(|a| a == "--bench") {
        1_000_000
    } else {
        1_000
    };
    let n: usize = std::env::var("TROUPE_MEMORY_TASKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    let base = live();
    let text = synthetic_workflow(n, 42);
    let wf = Arc::new(parse_workflow(&text).unwrap());
    drop(text);
    let after_workflow = live();
    let mut state = State::new();
    state
        .apply(
            1,
            &EventRecord {
                time: Timestamp(0),
                event: Event::RunSubmitted {
                    run: RunId::from_u128(1),
                    workflow: wf.clone(),
                },
            },
        )
        .unwrap();
    drop(wf);
    let after_state = live();
    let per = |bytes: isize| bytes as f64 / n as f64;
    println!("model memory at rest, {n} tasks (synthetic workflow, ~2 dependencies per task)");
    println!(
        "  workflow (spec + plan + index): {:>7.1} bytes/task",
        per(after_workflow - base)
    );
    println!(
        "  run state (per-task runtime):   {:>7.1} bytes/task",
        per(after_state - after_workflow)
    );
    println!(
        "  total:                          {:>7.1} bytes/task (target ≤ 1024)",
        per(after_state - base)
    );
    std::hint::black_box(&state);
    drop(state);
    child_runs(if n >= 1_000_000 { 10_000 } else { 100 });
}

/// Memory of an agent tree at rest, per child run (target ≤ 2 KiB): a root run whose task
/// spawned `n` one-task children (each with its own workflow, as each `run_spawned` decodes
/// one, a key and a small input), every child finished. Counts the child runs' state, their
/// lineage and workflows, and the root's list of children.
fn child_runs(n: usize) {
    use troupe::model::authority::Authority;
    use troupe::model::decide::child_id;
    use troupe::model::{Spawn, TaskId};
    let root = RunId::from_u128(7 << 80);
    let mut state = State::new();
    let mut seq = 0;
    let mut apply = |state: &mut State, event: Event| {
        seq += 1;
        state
            .apply(
                seq,
                &EventRecord {
                    time: Timestamp(seq),
                    event,
                },
            )
            .unwrap();
    };
    let one = |name: &str| {
        Arc::new(
            parse_workflow(&format!(
                "name = \"{name}\"\n[[task]]\nid = \"main\"\ncommand = [\"python3\", \"agent.py\"]\n"
            ))
            .unwrap(),
        )
    };
    let main = TaskId::new("main").unwrap();
    apply(
        &mut state,
        Event::RunSubmitted {
            run: root,
            workflow: one("root"),
        },
    );
    apply(
        &mut state,
        Event::AttemptStarted {
            run: root,
            task: main.clone(),
            attempt: 1,
        },
    );
    let before = live();
    for i in 0..n {
        let key = format!("part-{i}");
        let run = child_id(root, "main", &key);
        apply(
            &mut state,
            Event::RunSpawned {
                run,
                workflow: one("spawn: python3"),
                spawn: Box::new(Spawn {
                    parent: Some((root, main.clone())),
                    attempt: 1,
                    key,
                    input: Some(format!("{{\"dir\":\"src/part/{i}\"}}")),
                    authority: Authority::default(),
                    reserved: Default::default(),
                    on_failure: Default::default(),
                    on_parent_exit: Default::default(),
                    parent_authority: (i == 0).then(Authority::default),
                    routing: None,
                    on_budget_exhausted: Default::default(),
                }),
            },
        );
        apply(
            &mut state,
            Event::AttemptStarted {
                run,
                task: main.clone(),
                attempt: 1,
            },
        );
        apply(
            &mut state,
            Event::TaskSucceeded {
                run,
                task: main.clone(),
                attempt: 1,
                usage: None,
            },
        );
    }
    let per = (live() - before) as f64 / n as f64;
    println!("agent tree at rest, {n} finished child runs of one task each");
    println!("  per child run:                  {per:>7.1} bytes (target ≤ 2048)");
    std::hint::black_box(&state);
}
