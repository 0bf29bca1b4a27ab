use super::*;
use crate::model::TaskId;

pub(crate) fn task(id: &str, state: TaskState, deps: &[&str]) -> TaskView {
    TaskView {
        id: TaskId::new(id).unwrap(),
        state,
        attempts: 0,
        depends_on: deps.iter().map(|d| TaskId::new(d).unwrap()).collect(),
        priority: 0,
        pool: None,
        command: "true".into(),
        started_at: None,
        finished_at: None,
        retry_at: None,
        last_failure: None,
        compensate: None,
        compensation: None,
        node: None,
        last_failure_kind: None,
        usage: Default::default(),
        for_each: None,
        instances: None,
    }
}

/// A layered DAG of `n` tasks, `width` per layer, each depending on one or two tasks of the
/// layer before (deterministic).
pub(crate) fn layered(n: usize, width: usize) -> Vec<TaskView> {
    let ids: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    (0..n)
        .map(|i| {
            let layer = i / width;
            let mut deps = Vec::new();
            if layer > 0 {
                let prev = (layer - 1) * width;
                deps.push(ids[prev + (i * 7) % width].as_str());
                deps.push(ids[prev + (i * 13 + 3) % width].as_str());
                deps.dedup();
            }
            let state = match i % 5 {
                0 => TaskState::Succeeded,
                1 => TaskState::Running,
                2 => TaskState::Failed,
                _ => TaskState::Pending,
            };
            task(&ids[i], state, &deps)
        })
        .collect()
}

fn run() -> RunId {
    "01J00000000000000000000000".parse().unwrap()
}

fn count(s: &str, needle: &str) -> usize {
    s.matches(needle).count()
}

#[test]
fn one_node_per_task_with_its_state_class_and_one_edge_per_dependency() {
    let tasks = vec![
        task("fetch", TaskState::Succeeded, &[]),
        task("build", TaskState::Running, &["fetch"]),
        task("test", TaskState::Pending, &["build"]),
        task("lint", TaskState::Failed, &["fetch"]),
    ];
    let svg = dag_svg(run(), &tasks).into_string();
    assert!(svg.starts_with("<svg id=\"dag\""), "{svg}");
    assert_eq!(count(&svg, "<g class=\"node "), 4, "{svg}");
    assert!(svg.contains(r#"<g class="node state-succeeded" data-task="fetch">"#));
    assert!(svg.contains(r#"<g class="node state-running" data-task="build">"#));
    assert!(svg.contains(r#"<g class="node state-failed" data-task="lint">"#));
    assert_eq!(count(&svg, "<path class=\"edge\""), 3, "{svg}");
    assert!(svg.contains(r#"data-from="fetch" data-to="build""#));
    assert!(svg.contains(&format!("href=\"/runs/{}/tasks/test\"", run())));
}

#[test]
fn instance_ids_are_percent_encoded_in_links() {
    let tasks = vec![task("map[3]", TaskState::Pending, &[])];
    let svg = full_svg(run(), &tasks).into_string();
    assert!(svg.contains("/tasks/map%5B3%5D\""), "{svg}");
    assert!(svg.contains(r#"data-task="map[3]""#));
}

#[test]
fn an_empty_run_draws_an_empty_graph() {
    let svg = dag_svg(run(), &[]).into_string();
    assert!(svg.contains("id=\"dag\""));
    assert_eq!(count(&svg, "class=\"node"), 0);
}

#[test]
fn a_graph_at_the_threshold_is_full_and_above_it_summarised() {
    let tasks = layered(FULL_GRAPH_MAX_TASKS + 1, 50);
    let svg = dag_svg(run(), &tasks).into_string();
    assert!(svg.contains("class=\"summary\""), "summarised");
    assert_eq!(count(&svg, "class=\"node "), 0);
    // Every id is `tNNN`: one prefix, so groups by depth (11 layers of 50, the last of 1).
    assert!(svg.contains(r#"data-grouping="depth""#), "{svg}");
    assert_eq!(count(&svg, "<g class=\"group "), 11);
    assert!(
        svg.contains(r#"data-group="depth 10" data-total="1""#),
        "{svg}"
    );
    let small = layered(300, 30);
    let svg = dag_svg(run(), &small).into_string();
    assert_eq!(count(&svg, "<g class=\"node "), 300);
}

#[test]
fn groups_follow_id_prefixes_and_fall_back_to_depth() {
    assert_eq!(group_key("fetch-0001"), "fetch");
    assert_eq!(group_key("shard.3"), "shard");
    assert_eq!(group_key("map[12]"), "map");
    assert_eq!(group_key("a_b_7"), "a_b");
    assert_eq!(group_key("123"), "#");
    let mut tasks: Vec<TaskView> = (0..3000)
        .map(|i| task(&format!("fetch-{i}"), TaskState::Succeeded, &[]))
        .collect();
    let merges: Vec<TaskView> = (0..10)
        .map(|i| {
            task(
                &format!("merge{i}"),
                TaskState::Running,
                &[tasks[i].id.as_str()],
            )
        })
        .collect();
    tasks.extend(merges);
    let svg = summary_svg(&tasks).into_string();
    assert_eq!(count(&svg, "<g class=\"group "), 2, "{svg}");
    assert!(svg.contains(r#"<g class="group state-running" data-group="merge" data-total="10">"#));
    assert!(svg.contains(r#"data-from="fetch" data-to="merge""#));
    assert!(svg.contains(r#"data-state="succeeded" data-count="3000""#));
    // 3,000 distinct prefixes: by depth (a chain of 3 levels).
    let names: Vec<String> = (0..3000).map(letters).collect();
    let tasks = chains(&names, |i| i % 3 == 0);
    let (grouping, keys, of) = groups(&tasks);
    assert_eq!(grouping, Grouping::Depth);
    assert_eq!(keys, ["depth 0", "depth 1", "depth 2"]);
    assert_eq!(&of[..4], &[0, 1, 2, 0]);
}

/// Pending tasks named `names`, each depending on the one before it unless `starts(i)`.
fn chains(names: &[String], starts: impl Fn(usize) -> bool) -> Vec<TaskView> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let deps: Vec<&str> = if starts(i) {
                vec![]
            } else {
                vec![names[i - 1].as_str()]
            };
            task(n, TaskState::Pending, &deps)
        })
        .collect()
}

/// A distinct all-letter id for `i`.
fn letters(mut i: usize) -> String {
    let mut s = String::from("x");
    loop {
        s.push((b'a' + (i % 26) as u8) as char);
        i /= 26;
        if i == 0 {
            return s;
        }
    }
}

#[test]
fn depth_bands_when_levels_exceed_the_group_cap() {
    let names: Vec<String> = (0..1000).map(letters).collect();
    let tasks = chains(&names, |i| i == 0);
    let (grouping, keys, of) = groups(&tasks);
    assert_eq!(grouping, Grouping::Depth);
    assert!(keys.len() <= MAX_GROUPS, "{}", keys.len());
    assert_eq!(keys[0], "depth 0–9");
    assert_eq!(of[999], keys.len() - 1);
}

/// layout-rs's cost by size, optimizers on and off (not asserted; `cargo test --lib
/// web::graph -- --ignored --nocapture layout_timing` prints it; docs/web.md quotes it).
#[test]
#[ignore]
fn layout_timing() {
    let time = |n: usize, optimize: bool| {
        let tasks = layered(n, (n / 20).max(5));
        let labels: Vec<String> = tasks.iter().map(|t| t.id.as_str().to_owned()).collect();
        let index: HashMap<&str, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let edges: Vec<(usize, usize)> = tasks
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                t.depends_on
                    .iter()
                    .map(|d| (index[d.as_str()], i))
                    .collect::<Vec<_>>()
            })
            .collect();
        let t = std::time::Instant::now();
        let placed = place_with(&labels, 0.0, &edges, optimize).expect("laid out");
        println!(
            "layout of {n} tasks ({} edges), optimizers {}: {:?}",
            edges.len(),
            if optimize { "on" } else { "off" },
            t.elapsed()
        );
        assert_eq!(placed.boxes.len(), n);
    };
    for n in [100, 150, 300] {
        time(n, true);
    }
    for n in [100, 500, 1000, 2000] {
        time(n, false);
    }
    if std::env::var_os("TROUPE_LAYOUT_10K").is_some() {
        time(10_000, false);
    }
    for n in [2_001, 10_000, 100_000] {
        let tasks = layered(n, (n / 20).max(5));
        let t = std::time::Instant::now();
        let svg = dag_svg(run(), &tasks).into_string();
        println!(
            "summarised graph of {n} tasks: {:?} ({} KiB of SVG)",
            t.elapsed(),
            svg.len() / 1024
        );
    }
}
