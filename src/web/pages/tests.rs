use super::*;
use crate::messages::control::{PendingApproval, RunSummary, RunView, TaskView, TreeNode};
use crate::model::{RunId, RunState, TaskId, TaskState};
use crate::web::api::AttemptView;
use crate::web::graph::tests::{layered, task};

const EVIL: &str = "<script>alert(1)</script>";

fn run_id() -> RunId {
    "01J00000000000000000000000".parse().unwrap()
}

fn summary(name: &str, tasks: u32) -> RunSummary {
    RunSummary {
        id: run_id(),
        name: name.into(),
        state: RunState::Running,
        submitted_at: Timestamp(1_700_000_000_000),
        finished_at: None,
        tasks,
        succeeded: 1,
        failed: 0,
        running: 1,
        awaiting_approval: 0,
        parent: None,
        key: None,
        children: (0, 0),
        asking: None,
    }
}

fn view(name: &str, tasks: Vec<TaskView>) -> RunView {
    RunView {
        summary: summary(name, tasks.len() as u32),
        suspended: false,
        tasks,
        usage: Default::default(),
    }
}

fn session() -> Viewer {
    Viewer::Token("ops".into())
}

fn render_run(v: &RunView, viewer: &Viewer, page: usize) -> String {
    let svg = crate::web::graph::dag_svg(v.summary.id, &v.tasks);
    layout("run", viewer, run::render(v, viewer, svg, page)).into_string()
}

#[test]
fn a_workflow_name_with_markup_is_text_on_the_run_page() {
    let v = view(
        EVIL,
        vec![
            task("a", TaskState::Succeeded, &[]),
            task("b", TaskState::Running, &["a"]),
        ],
    );
    let html = render_run(&v, &Viewer::Anonymous, 1);
    assert!(!html.contains(EVIL), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains(r#"data-run-state="running""#));
    assert!(html.contains(r#"<table id="tasks">"#));
    assert!(html.contains(r#"<tr data-task="b" class="state-running"><td class="id">"#));
    // Not logged in: no cancel form, a login link instead.
    assert!(!html.contains("/cancel"), "{html}");
    assert!(html.contains("/login?next="));
}

#[test]
fn the_cancel_form_shows_for_a_named_viewer_while_the_run_is_unfinished() {
    let mut v = view("w", vec![task("a", TaskState::Running, &[])]);
    let html = render_run(&v, &session(), 1);
    assert!(html.contains(&format!(r#"action="/runs/{}/cancel""#, run_id())));
    v.summary.state = RunState::Succeeded;
    let html = render_run(&v, &session(), 1);
    assert!(!html.contains("/cancel\""));
}

#[test]
fn a_big_run_pages_its_task_table_and_summarises_its_graph() {
    let v = view("big", layered(2_600, 100));
    let html = render_run(&v, &Viewer::Anonymous, 2);
    assert_eq!(html.matches("<tr data-task=").count(), run::TASKS_PER_PAGE);
    assert!(
        html.contains(r#"<tr data-task="t500" "#),
        "page 2 starts at t500"
    );
    assert!(html.contains("Tasks 501–1000 of 2600"));
    assert!(html.contains("?page=3#tasks-heading"));
    assert!(html.contains(r#"class="summary""#));
    assert_eq!(html.matches("<g class=\"node ").count(), 0);
    // Past the last page: the last page.
    let html = render_run(&v, &Viewer::Anonymous, 99);
    assert_eq!(html.matches("<tr data-task=").count(), 100);
}

#[test]
fn a_log_with_markup_is_text_and_the_page_links_the_full_log() {
    let mut t = task("build", TaskState::Failed, &[]);
    t.attempts = 2;
    t.last_failure = Some(format!("exited with status 1 {EVIL}"));
    let attempts = vec![AttemptView {
        attempt: 1,
        started_at: Timestamp(1_700_000_000_000),
        finished_at: Some(Timestamp(1_700_000_001_500)),
        outcome: "failed",
        failure: Some("exited with status 1".into()),
        failure_kind: Some("exit".into()),
        exit_code: Some(1),
        usage: Some(crate::model::ResourceUsage {
            user_cpu_us: 1_250_000,
            system_cpu_us: 10_000,
            max_rss_kib: 20_480,
        }),
    }];
    let tail = task::LogTail {
        text: format!("line one\n{EVIL}\n"),
        size: 300_000,
        cut: true,
        missing: false,
    };
    let html =
        task::render(run_id(), EVIL, &t, &attempts, Some(&(2, tail)), &session()).into_string();
    assert!(!html.contains(EVIL), "{html}");
    assert!(html.contains("line one\n&lt;script&gt;"));
    assert!(html.contains(&format!(
        r#"<a id="full-log" href="/api/runs/{}/tasks/build/log?attempt=2">"#,
        run_id()
    )));
    assert!(html.contains("The last 256 KiB of 293.0 KiB"));
    assert!(html.contains(r#"<table id="attempts">"#));
    assert!(html.contains("<td class=\"exit\">1</td>"));
    assert!(html.contains("1.250") && html.contains("20.0 MiB"));
    assert!(html.contains("/tasks/build/retry\""), "failed: retry form");
    assert!(!html.contains("data-follow"), "not running: no follow");
}

#[test]
fn a_running_task_is_followed_and_a_gate_has_its_decision_form() {
    let mut t = task("deploy", TaskState::Running, &[]);
    t.attempts = 1;
    let tail = task::LogTail::default();
    let html = task::render(run_id(), "w", &t, &[], Some(&(1, tail)), &session()).into_string();
    assert!(html.contains(r#"data-follow="1""#), "{html}");
    let t = task("gate", TaskState::AwaitingApproval, &[]);
    let html = task::render(run_id(), "w", &t, &[], None, &session()).into_string();
    assert!(html.contains(r#"value="approve""#) && html.contains(r#"value="reject""#));
    assert!(html.contains(r#"name="reason""#));
    let html = task::render(run_id(), "w", &t, &[], None, &Viewer::Anonymous).into_string();
    assert!(!html.contains(r#"value="approve""#));
    assert!(html.contains("Log in to decide"));
}

#[test]
fn a_decision_reason_with_markup_is_text() {
    let who = crate::model::Approver {
        name: "ops".into(),
        os_user: "http".into(),
        reason: Some(EVIL.into()),
    };
    let html = task::decisions_section(&[(Timestamp(1_700_000_000_000), "rejected", Some(who))])
        .into_string();
    assert!(!html.contains(EVIL), "{html}");
    assert!(html.contains("<td class=\"reason\">&lt;script&gt;alert(1)&lt;/script&gt;</td>"));
    assert!(html.contains("<td class=\"decision\">rejected</td>"));
}

#[test]
fn approvals_escape_names_and_commands() {
    let a = PendingApproval {
        run: run_id(),
        task: TaskId::new("gate").unwrap(),
        workflow: EVIL.into(),
        command: format!("echo '{EVIL}'"),
        requested_at: Timestamp(1_700_000_000_000),
        expires_at: Timestamp(1_700_000_600_000),
    };
    let html = approvals::render(std::slice::from_ref(&a), &session()).into_string();
    assert!(!html.contains(EVIL), "{html}");
    assert!(html.contains(&format!(r#"<tr data-run="{}" data-task="gate">"#, run_id())));
    assert!(html.contains(&format!(r#"action="/runs/{}/tasks/gate/decide""#, run_id())));
    assert!(html.contains(r#"<input type="hidden" name="next" value="/approvals">"#));
}

#[test]
fn the_tree_nests_children_and_escapes_names() {
    let node = |name: &str, depth| TreeNode {
        run: run_id(),
        name: name.into(),
        state: RunState::Running,
        depth,
        parent: None,
        key: None,
        usage: [("tokens".to_string(), 12.0)].into_iter().collect(),
        budget: Default::default(),
        reserved: Default::default(),
        left: Default::default(),
        exhausted: None,
        asking: None,
    };
    let nodes = vec![
        node("root", 0),
        node(EVIL, 1),
        node("grandchild", 2),
        node("second", 1),
    ];
    let html = tree::render(&nodes).into_string();
    assert!(!html.contains(EVIL));
    assert_eq!(html.matches("<ul class=\"tree\">").count(), 3, "{html}");
    assert!(html.contains("tokens=12"));
}

#[test]
fn error_pages_escape_the_message() {
    let r = error_page(&WebError::not_found(format!("no run {EVIL}")));
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[test]
fn forms_only_go_back_to_local_paths() {
    use forms::local_next;
    assert_eq!(local_next("/runs/x", "/approvals"), "/runs/x");
    assert_eq!(local_next("//evil.example/", "/approvals"), "/approvals");
    assert_eq!(
        local_next("https://evil.example/", "/approvals"),
        "/approvals"
    );
    assert_eq!(local_next("/\\evil", "/approvals"), "/approvals");
    assert_eq!(local_next("", "/approvals"), "/approvals");
}

#[test]
fn durations_and_numbers_read_well() {
    use std::time::Duration as D;
    assert_eq!(duration(D::from_millis(850)), "850 ms");
    assert_eq!(duration(D::from_millis(12_345)), "12.3 s");
    assert_eq!(duration(D::from_secs(245)), "4m 05s");
    assert_eq!(duration(D::from_secs(7_380)), "2h 03m");
    assert_eq!(number(3.0), "3");
    assert_eq!(number(0.25), "0.25");
    assert_eq!(
        query(&[("state", "failed"), ("name", "a b"), ("page", "")]),
        "?state=failed&name=a%20b"
    );
}

#[test]
fn charts_draw_a_line_per_run_of_values() {
    let s = node::Series {
        name: "p50",
        class: "s1",
        values: vec![
            Some(1.0),
            Some(2.0),
            None,
            Some(3.0),
            Some(4.0),
            None,
            Some(1.0),
        ],
    };
    let svg = node::chart(&[s], "ms").into_string();
    assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
    assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
}

/// Server time of the run page's rendering for big runs (graph + table + frame; the read
/// model's answer not included). Not asserted: `cargo test --lib web::pages -- --ignored
/// --nocapture run_page_timing` prints it (docs/web.md).
#[test]
#[ignore]
fn run_page_timing() {
    for n in [500, 2_000, 10_000, 100_000] {
        let v = view("big", layered(n, (n / 20).max(5)));
        let t = std::time::Instant::now();
        let html = render_run(&v, &Viewer::Anonymous, 1);
        println!(
            "run page of {n} tasks: {:?} ({} KiB of HTML)",
            t.elapsed(),
            html.len() / 1024
        );
    }
}
