//! The web UI's HTML pages against a real node (real binary, real RocksDB): the runs list,
//! a run's page with its DAG, a failed task's log, escaping of a workflow name that holds
//! markup, 404 pages, approvals. Requests go over a plain TCP connection (HTTP/1.0).

mod common;

use std::time::{Duration, Instant};

use common::*;

const EVIL: &str = "<script>alert(1)</script>";

/// A workflow named `EVIL`: `prep` prints, `bad` fails with a log line holding markup,
/// `side` succeeds.
fn evil_workflow() -> String {
    format!(
        r#"
name = "{EVIL}"
[[task]]
id = "prep"
shell = "echo hello from prep"
[[task]]
id = "bad"
shell = "echo 'about to fail <b>bold</b>'; exit 3"
depends_on = ["prep"]
[[task]]
id = "side"
command = ["true"]
depends_on = ["prep"]
"#
    )
}

/// The body of `GET path`, asserting `status`.
fn get(addr: &str, path: &str, status: u16) -> String {
    let (s, body) = http_get(addr, path);
    assert_eq!(s, status, "GET {path}: {body}");
    body
}

#[test]
fn pages_list_runs_draw_the_dag_show_logs_and_escape_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _node = NodeProc::start(dir, &[]);
    let addr = http_addr(dir);
    let wf = workflow(dir, "evil.toml", &evil_workflow());
    let run_id = submit(dir, &wf);
    let v = wait_finished(dir, &run_id, 60);
    assert_eq!(v["state"], "failed", "{v}");

    // `/` goes to the runs.
    let (s, _) = http_get(&addr, "/");
    assert_eq!(s, 303);

    // The runs list: one row, the name as text.
    let runs = get(&addr, "/runs", 200);
    assert!(runs.contains(r#"<table id="runs">"#), "{runs}");
    assert!(
        runs.contains(&format!(
            r#"<tr data-run="{run_id}" class="state-failed"><td class="state">failed</td>"#
        )),
        "{runs}"
    );
    assert!(runs.contains(&format!(r#"href="/runs/{run_id}""#)));
    assert!(!runs.contains(EVIL), "the name must be escaped: {runs}");
    assert!(runs.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // Filters: by state and name; a bad state is a 400 page.
    let none = get(&addr, "/runs?state=succeeded", 200);
    assert!(!none.contains(&run_id), "{none}");
    let by_name = get(&addr, "/runs?state=failed&name=ALERT", 200);
    assert!(by_name.contains(&run_id));
    let bad = get(&addr, "/runs?state=nope", 400);
    assert!(bad.contains("<h1>400 Bad Request</h1>"), "{bad}");

    // The run page: its state, the DAG with one node per task, the task table.
    let page = get(&addr, &format!("/runs/{run_id}"), 200);
    assert!(!page.contains(EVIL), "{page}");
    assert!(
        page.contains(r#"data-run-state="failed">failed<"#),
        "{page}"
    );
    assert!(page.contains(r#"<svg id="dag""#), "{page}");
    assert_eq!(page.matches("<g class=\"node ").count(), 3, "{page}");
    assert!(page.contains(r#"<g class="node state-succeeded" data-task="prep">"#));
    assert!(page.contains(r#"<g class="node state-failed" data-task="bad">"#));
    assert_eq!(page.matches("<path class=\"edge\"").count(), 2);
    assert!(page.contains(r#"<table id="tasks">"#));
    assert!(page.contains(r#"<tr data-task="bad" class="state-failed">"#));
    assert!(!page.contains("/cancel\""), "finished: no cancel form");
    // The graph alone, as app.js fetches it to refresh a summarised graph.
    let svg = get(&addr, &format!("/runs/{run_id}/graph"), 200);
    assert!(svg.starts_with(r#"<svg id="dag""#), "{svg}");
    assert_eq!(svg.matches("<g class=\"node ").count(), 3, "{svg}");

    // The failed task: its attempt with exit code 3, its log as text.
    let task = get(&addr, &format!("/runs/{run_id}/tasks/bad"), 200);
    assert!(task.contains(r#"<table id="attempts">"#), "{task}");
    assert!(task.contains("<td class=\"exit\">3</td>"), "{task}");
    assert!(
        task.contains("about to fail &lt;b&gt;bold&lt;/b&gt;"),
        "the log, escaped: {task}"
    );
    let attempts = v["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["id"] == "bad"))
        .map(|t| t["attempts"].as_u64().unwrap())
        .expect("task bad");
    assert!(
        task.contains(&format!(
            r#"<a id="full-log" href="/api/runs/{run_id}/tasks/bad/log?attempt={attempts}">"#
        )),
        "{task}"
    );
    // Not logged in: a link to log in rather than the retry form.
    assert!(!task.contains("/retry\""));
    assert!(task.contains("Log in to retry"));
    // An attempt that does not exist is a 404 page.
    let none = get(&addr, &format!("/runs/{run_id}/tasks/bad?attempt=9"), 404);
    assert!(none.contains("Not Found"));

    // The agent tree of a root run is the run alone; the node page renders.
    let tree = get(&addr, &format!("/runs/{run_id}/tree"), 200);
    assert!(
        tree.contains(&format!(r#"<li data-run="{run_id}""#)),
        "{tree}"
    );
    let node = get(&addr, "/node", 200);
    assert!(node.contains(r#"<table id="health-checks">"#), "{node}");
    assert!(node.contains("<svg class=\"chart\""));
    assert!(node.contains(r#"<table id="queue">"#));
}

#[test]
fn unknown_runs_and_tasks_are_404_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _node = NodeProc::start(dir, &[]);
    let addr = http_addr(dir);
    for path in [
        "/runs/01J00000000000000000000000",
        "/runs/not-a-run",
        "/runs/01J00000000000000000000000/tasks/a",
        "/runs/01J00000000000000000000000/tree",
    ] {
        let (s, body) = http_get(&addr, path);
        assert_eq!(s, 404, "{path}: {body}");
        assert!(body.contains("<h1>404 Not Found</h1>"), "{path}: {body}");
    }
    let wf = workflow(
        dir,
        "one.toml",
        "name = \"one\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n",
    );
    let run_id = submit(dir, &wf);
    let (s, body) = http_get(&addr, &format!("/runs/{run_id}/tasks/nope"));
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("has no task nope"), "{body}");
}

/// A raw HTTP/1.0 request: (status, head, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

/// Percent-encodes a form value.
fn form_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of `<meta name="csrf-token" content="...">` in a page.
fn csrf_of(page: &str) -> String {
    let tag = r#"<meta name="csrf-token" content=""#;
    let at = page.find(tag).expect("a csrf meta tag") + tag.len();
    page[at..].split('"').next().unwrap().to_owned()
}

const TOKEN: &str = "s3cret-token-for-pages";

/// A data dir whose troupe.toml names a tokens file with `alice TOKEN`.
fn with_tokens(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("alice {TOKEN}\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        dir.join("troupe.toml"),
        format!("[http]\ntokens_file = '{}'\n", tokens.display()),
    )
    .unwrap();
}

#[test]
fn a_logged_in_browser_decides_gates_and_cancels_runs_through_the_forms() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    with_tokens(dir);
    let _node = NodeProc::start(dir, &[]);
    let addr = http_addr(dir);
    let wf = workflow(
        dir,
        "gate.toml",
        "name = \"gated\"\n[[task]]\nid = \"deploy\"\ncommand = [\"true\"]\nrequires_approval = true\n",
    );
    let run_id = submit(dir, &wf);
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let page = get(&addr, "/approvals", 200);
        if page.contains("data-task=\"deploy\"") {
            break page;
        }
        assert!(Instant::now() < deadline, "no approval listed: {page}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        page.contains(&format!(r#"<tr data-run="{run_id}" data-task="deploy">"#)),
        "{page}"
    );
    assert!(page.contains("Log in to decide"), "anonymous: a login link");
    let decide = format!("/runs/{run_id}/tasks/deploy/decide");
    // Acting without a login: the guard sends the browser to log in; nothing changes.
    let (s, _, _) = http(&addr, "POST", &decide, &[], "decision=approve");
    assert!(s == 303 || s == 401, "{s}");
    assert_eq!(
        task_state(&run_status(dir, &run_id), "deploy"),
        "awaiting_approval"
    );

    // Log in; the page then carries the CSRF token and the decision form.
    let (s, head, _) = http(
        &addr,
        "POST",
        "/login",
        &[],
        &format!("token={TOKEN}&next=/approvals"),
    );
    assert_eq!(s, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let page = http(&addr, "GET", "/approvals", &[("Cookie", &cookie)], "").2;
    assert!(page.contains(r#"value="approve""#), "{page}");
    let csrf = csrf_of(&page);
    // A forged CSRF token is refused.
    let (s, _, _) = http(
        &addr,
        "POST",
        &decide,
        &[("Cookie", &cookie)],
        "csrf=forged&decision=approve",
    );
    assert_eq!(s, 403);
    // The form with a reason holding markup: 303 back to the approvals, the task runs.
    let body = format!(
        "csrf={csrf}&next=%2Fapprovals&reason={}&decision=approve",
        form_value(EVIL)
    );
    let (s, head, page) = http(&addr, "POST", &decide, &[("Cookie", &cookie)], &body);
    assert_eq!(s, 303, "{head}{page}");
    assert!(
        head.to_lowercase().contains("location: /approvals"),
        "{head}"
    );
    let v = wait_finished(dir, &run_id, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    let task = get(&addr, &format!("/runs/{run_id}/tasks/deploy"), 200);
    assert!(task.contains(r#"<table id="decisions">"#), "{task}");
    assert!(task.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !task.contains(EVIL));
    assert!(task.contains("<td class=\"decision\">approved</td>"));

    // Cancel a running run through its form.
    let wf = workflow(
        dir,
        "slow.toml",
        "name = \"slow\"\n[[task]]\nid = \"nap\"\ncommand = [\"sleep\", \"60\"]\n",
    );
    let slow = submit(dir, &wf);
    wait_until(dir, &slow, 30, |v| task_state(v, "nap") == "running");
    let page = http(
        &addr,
        "GET",
        &format!("/runs/{slow}"),
        &[("Cookie", &cookie)],
        "",
    )
    .2;
    assert!(
        page.contains(&format!(r#"action="/runs/{slow}/cancel""#)),
        "{page}"
    );
    let (s, head, _) = http(
        &addr,
        "POST",
        &format!("/runs/{slow}/cancel"),
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(s, 303, "{head}");
    let v = wait_finished(dir, &slow, 60);
    assert_eq!(v["state"], "cancelled", "{v}");
    // Retrying the cancelled task through its form.
    let page = http(
        &addr,
        "GET",
        &format!("/runs/{slow}/tasks/nap"),
        &[("Cookie", &cookie)],
        "",
    )
    .2;
    assert!(
        page.contains(&format!(r#"action="/runs/{slow}/tasks/nap/retry""#)),
        "{page}"
    );
    // A decision on a task that awaits none is refused with the error page's status.
    let (s, _, body) = http(
        &addr,
        "POST",
        &format!("/runs/{slow}/tasks/nap/decide"),
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}&decision=approve"),
    );
    assert!((400..500).contains(&s), "{s}: {body}");
    assert!(body.contains("<h1>"), "an HTML error page: {body}");
}
