//! The HTTP API and who may use it, against a real node (binary, RocksDB, TCP): tokens,
//! sessions and CSRF; JSON errors; the log streamed; Server-Sent Events resumed by
//! `Last-Event-ID`, a client that never reads, 200 clients at once; the exposure rule.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::http::{self as web, bearer, get, post_as_alice, request, start_with_tokens, TOKEN};
use common::*;

const GATE: &str = r#"
name = "gated"
[[task]]
id = "build"
command = ["sh", "-c", "echo built"]
[[task]]
id = "ship"
command = ["true"]
depends_on = ["build"]
requires_approval = true
"#;

/// Waits until `pred` holds for `GET /api/runs/RUN` (at most 60 s).
fn wait_run(addr: &str, run: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = get(addr, &format!("/api/runs/{run}")).json();
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "run {run} never got there: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn task<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap()
}

#[test]
fn actions_need_a_token_and_are_journaled_as_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = start_with_tokens(dir.path(), &[]);
    let run = web::submit(&addr, GATE);
    wait_run(&addr, &run, |v| {
        task(v, "ship")["state"] == "awaiting_approval"
    });
    let path = format!("/api/runs/{run}/tasks/ship/approve");

    // No token: 401 with a JSON error and a challenge.
    let r = request(&addr, "POST", &path, &[], b"");
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    // A wrong token: 403.
    let r = request(
        &addr,
        "POST",
        &path,
        &[("Authorization", "Bearer not-a-token-of-this-node")],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "forbidden");
    // Reads stay open on loopback.
    assert_eq!(get(&addr, "/api/runs").status, 200);
    // Nothing was decided by the refused requests.
    assert_eq!(
        task(&get(&addr, &format!("/api/runs/{run}")).json(), "ship")["state"],
        "awaiting_approval"
    );

    // The right token, with a reason that is markup: decided as alice, reason kept as text.
    let r = post_as_alice(
        &addr,
        &path,
        r#"{"reason": "<script>alert(1)</script> looks fine"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["by"], "alice");
    let v = wait_run(&addr, &run, |v| v["state"] != "running");
    assert_eq!(v["state"], "succeeded");
    let granted: Vec<_> = events(dir.path())
        .into_iter()
        .filter(|e| e["type"] == "approval_granted")
        .collect();
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0]["approver"]["name"], "alice");
    assert_eq!(granted[0]["approver"]["os_user"], "http");
    assert_eq!(
        granted[0]["approver"]["reason"],
        "<script>alert(1)</script> looks fine"
    );
}

#[test]
fn a_session_acts_only_with_its_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = start_with_tokens(dir.path(), &[]);
    let run = web::submit(&addr, GATE);
    wait_run(&addr, &run, |v| {
        task(v, "ship")["state"] == "awaiting_approval"
    });

    // A wrong token at the login form: 403, no cookie.
    let r = request(
        &addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"token=guess-guess-guess-guess",
    );
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());

    let r = request(
        &addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("token={TOKEN}").as_bytes(),
    );
    let set = r.header("set-cookie").unwrap().to_owned();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let csrf = web::csrf_of(&addr, &cookie);
    let path = format!("/api/runs/{run}/cancel");

    // The cookie alone (what a forged cross-site form would send): 403.
    let r = request(&addr, "POST", &path, &[("Cookie", &cookie)], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    // A forged token, as header and as form field: 403.
    let r = request(
        &addr,
        "POST",
        &path,
        &[("Cookie", &cookie), ("X-CSRF-Token", "forged")],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = request(
        &addr,
        "POST",
        &path,
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"csrf=forged",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        get(&addr, &format!("/api/runs/{run}")).json()["state"],
        "running"
    );

    // The session's own token: the cancel goes through.
    let r = request(
        &addr,
        "POST",
        &path,
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = wait_run(&addr, &run, |v| v["state"] != "running");
    assert_eq!(v["state"], "cancelled");

    // After logout the cookie is worth nothing.
    let r = request(
        &addr,
        "POST",
        "/logout",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("csrf={csrf}").as_bytes(),
    );
    assert_eq!(r.status, 303);
    let r = request(
        &addr,
        "POST",
        &path,
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        b"",
    );
    assert_eq!(r.status, 401, "{}", r.text());
}

#[test]
fn errors_are_json_with_a_fitting_status() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = start_with_tokens(dir.path(), &[]);
    // An unknown run, well-formed or not: 404 JSON, and a 404 page.
    for path in [
        "/api/runs/01JD3X5Q8R2N6V7W0Y4Z9A1B2C",
        "/api/runs/nope",
        "/api/runs/01JD3X5Q8R2N6V7W0Y4Z9A1B2C/tasks/a",
    ] {
        let r = get(&addr, path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "not_found", "{path}");
    }
    let r = get(&addr, "/runs/01JD3X5Q8R2N6V7W0Y4Z9A1B2C");
    assert_eq!(r.status, 404);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    // A bad filter, a bad query, an unknown endpoint, a wrong method: JSON too.
    let r = get(&addr, "/api/runs?state=sleeping");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sleeping"));
    let r = get(&addr, "/api/runs?limit=-1");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "bad_request");
    assert_eq!(
        get(&addr, "/api/nothing").json()["error"]["code"],
        "not_found"
    );
    let (k, v) = bearer();
    let r = request(&addr, "DELETE", "/api/runs", &[(k, &v)], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["error"]["code"], "method_not_allowed");
    // An invalid workflow: 400 naming the line.
    let r = post_as_alice(
        &addr,
        "/api/runs",
        r#"{"workflow": "name = \"x\"\n[[task]]\nid = \"a\"\ncommand = []\n"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request:"),
        "{}",
        r.text()
    );
    // Retry of a task that never failed: 409.
    let run = web::submit(&addr, GATE);
    let r = post_as_alice(&addr, &format!("/api/runs/{run}/tasks/ship/retry"), "");
    assert_eq!(r.status, 409, "{}", r.text());
    // A decision body that is not JSON: 400, nothing decided.
    let r = post_as_alice(
        &addr,
        &format!("/api/runs/{run}/tasks/ship/approve"),
        "yes please",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // The OpenAPI document is served and names every endpoint.
    let doc = get(&addr, "/api/openapi.json").json();
    for p in [
        "/api/runs",
        "/api/runs/{run}",
        "/api/runs/{run}/tasks/{task}/log",
        "/api/events",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing");
    }
}

#[test]
fn a_16_mib_log_is_streamed_and_followed_from_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (node, addr) = start_with_tokens(dir.path(), &[]);
    let run = web::submit(
        &addr,
        r#"
name = "loud"
[[task]]
id = "talk"
shell = "head -c 16773120 /dev/zero | tr '\\0' 'x'; echo; echo THE-END"
"#,
    );
    wait_run(&addr, &run, |v| v["state"] != "running");
    let log = format!("/api/runs/{run}/tasks/talk/log");
    // Read it as a client would: in pieces, never asking for it whole.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET {log} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail = Vec::new();
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 64 {
            tail.drain(..tail.len() - 64);
        }
    }
    // 16 MiB less 4 KiB (the node caps a log at 16 MiB), the newline and the last line.
    assert!(total > (16 << 20) - 4096 + 9, "{total} bytes");
    assert!(String::from_utf8_lossy(&tail).ends_with("THE-END\n"));
    // From an offset: only the rest, and the file's size in X-Log-Size.
    let size: u64 = get(&addr, &format!("{log}?offset=0"))
        .header("x-log-size")
        .unwrap()
        .parse()
        .unwrap();
    let r = get(&addr, &format!("{log}?offset={}", size - 8));
    assert_eq!(r.text(), "THE-END\n");
    assert_eq!(r.header("x-log-size").unwrap(), size.to_string());
    // An attempt that does not exist: 404.
    assert_eq!(get(&addr, &format!("{log}?attempt=2")).status, 404);
    drop(node);
}

/// Reads SSE events (`id`, `data`) from a stream until `want` data lines were seen.
fn read_events(s: &mut std::net::TcpStream, want: usize) -> Vec<(Option<u64>, serde_json::Value)> {
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = parse_sse(&text);
        if events.len() >= want {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "only {} events: {text}",
            events.len()
        );
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

fn parse_sse(text: &str) -> Vec<(Option<u64>, serde_json::Value)> {
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1);
    let mut out = Vec::new();
    let mut id = None;
    for line in body.lines() {
        // Chunk sizes of the chunked encoding are lines too: skip what is not a field.
        if let Some(v) = line.strip_prefix("id: ") {
            id = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("data: ") {
            if let Ok(j) = serde_json::from_str(v) {
                out.push((id.take(), j));
            }
        }
    }
    out
}

fn open_events(addr: &str, query: &str, last_id: Option<u64>) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let resume = last_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    write!(
        s,
        "GET /api/events{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{resume}\r\n"
    )
    .unwrap();
    s
}

#[test]
fn events_stream_resumes_from_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = start_with_tokens(dir.path(), &[]);
    let run = web::submit(&addr, GATE);
    wait_run(&addr, &run, |v| {
        task(v, "ship")["state"] == "awaiting_approval"
    });
    let journal = events(dir.path());
    let first = journal[0]["seq"].as_u64().unwrap();
    // From the start: the events in journal order, `id` = sequence number.
    let mut s = open_events(&addr, &format!("?run={run}"), Some(first - 1));
    let got = read_events(&mut s, journal.len());
    for (i, (id, e)) in got.iter().enumerate() {
        assert_eq!(*id, journal[i]["seq"].as_u64(), "{e}");
        assert_eq!(e["type"], journal[i]["type"]);
    }
    // Resume after the second: the third comes first.
    let second = journal[1]["seq"].as_u64().unwrap();
    let mut s = open_events(&addr, &format!("?run={run}"), Some(second));
    let got = read_events(&mut s, 1);
    assert_eq!(got[0].0, journal[2]["seq"].as_u64());
    // Live: the approval arrives on the open stream.
    let mut live = open_events(&addr, "", None);
    // The stream answers its head before anything happens; then we act.
    let mut head = [0u8; 12];
    live.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    post_as_alice(&addr, &format!("/api/runs/{run}/tasks/ship/approve"), "");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    while !text.contains("approval_granted") {
        assert!(Instant::now() < deadline, "{text}");
        let mut buf = [0u8; 4096];
        let n = live.read(&mut buf).unwrap();
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // A bad Last-Event-ID and an unknown run: JSON errors, no stream.
    let r = request(
        &addr,
        "GET",
        "/api/events",
        &[("Last-Event-ID", "yesterday")],
        b"",
    );
    assert_eq!(r.status, 400);
    let r = get(&addr, "/api/events?run=01JD3X5Q8R2N6V7W0Y4Z9A1B2C");
    assert_eq!(r.status, 404);
}

fn streams_gauge(addr: &str) -> i64 {
    let (_, text) = http_get(addr, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("troupe_http_streams "))
        .map(|v| v.trim().parse::<f64>().unwrap() as i64)
        .expect("troupe_http_streams in /metrics")
}

#[test]
fn a_client_that_never_reads_is_dropped_and_the_node_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = start_with_tokens(dir.path(), &[]);
    // A journal holding far more event text than the socket buffers and hyper's write buffer
    // take (~9 MB): 2,000 gates rejected with a 4,000-character reason each. Nothing runs.
    let reason = format!("{{\"reason\": \"{}\"}}", "r".repeat(4000));
    for i in 0..2000 {
        let run = web::submit(
            &addr,
            &format!("name = \"flood-{i}\"\n[[task]]\nid = \"gate\"\ncommand = [\"true\"]\nrequires_approval = true\n"),
        );
        let r = post_as_alice(
            &addr,
            &format!("/api/runs/{run}/tasks/gate/reject"),
            &reason,
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // A client with a tiny receive buffer asks for all of it, then reads nothing.
    let s = std::net::TcpStream::connect(&addr).unwrap();
    {
        use std::os::fd::AsRawFd;
        let size: libc::c_int = 4096;
        // SAFETY: setsockopt on a socket we own, with a pointer to a c_int of the given size.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
    }
    let mut w = &s;
    write!(
        w,
        "GET /api/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 0\r\n\r\n"
    )
    .unwrap();
    // The stream opens, stalls, and is dropped (its producer ends) after the write timeout.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_open = false;
    loop {
        match streams_gauge(&addr) {
            1 => seen_open = true,
            0 if seen_open => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the stalled stream was never dropped (opened: {seen_open})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The node answers and acts as before, the client still connected.
    let r = get(&addr, "/api/runs?limit=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["total"], 2000);
    web::submit(&addr, GATE);
    drop(s);
}

#[test]
fn two_hundred_event_streams_at_once_all_see_a_submission() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = start_with_tokens(dir.path(), &[]);
    let mut clients: Vec<std::net::TcpStream> =
        (0..200).map(|_| open_events(&addr, "", None)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while streams_gauge(&addr) != 200 {
        assert!(
            Instant::now() < deadline,
            "{} streams open",
            streams_gauge(&addr)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = web::submit(&addr, GATE);
    for c in &mut clients {
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !text.contains(&run) {
            assert!(Instant::now() < deadline, "{text}");
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0);
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    // Reads and actions still answer while they are open.
    assert_eq!(get(&addr, &format!("/api/runs/{run}")).status, 200);
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(60);
    while streams_gauge(&addr) != 0 {
        assert!(
            Instant::now() < deadline,
            "{} streams left after the clients went",
            streams_gauge(&addr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_non_loopback_address_needs_tokens_or_insecure() {
    let dir = tempfile::tempdir().unwrap();
    // No tokens file: refused before anything starts (exit 2, naming the fix).
    let o = run(dir.path(), &["node", "start", "--http-addr", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("0.0.0.0:0") && e.contains("tokens_file") && e.contains("--insecure"),
        "{e}"
    );
    assert!(
        !dir.path().join("journal").exists(),
        "the journal was touched"
    );

    // A tokens file others may read: refused, naming it.
    let tokens = dir.path().join("http-tokens");
    std::fs::write(&tokens, format!("alice {TOKEN}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::write(
        dir.path().join("troupe.toml"),
        "[http]\ntokens_file = \"http-tokens\"\n",
    )
    .unwrap();
    let o = run(dir.path(), &["node", "start"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    // A malformed line: refused with FILE:LINE.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&tokens, format!("alice {TOKEN}\nbob\n")).unwrap();
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let o = run(dir.path(), &["node", "start"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("http-tokens:2:"), "{}", stderr(&o));

    // With tokens on a non-loopback address, reads need a token too.
    std::fs::write(&tokens, format!("alice {TOKEN}\n")).unwrap();
    let node = NodeProc::start(dir.path(), &["--http-addr", "0.0.0.0:0"]);
    let port = http_addr(dir.path()).rsplit(':').next().unwrap().to_owned();
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(get(&addr, "/api/runs").status, 401);
    let r = get(&addr, "/runs");
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().starts_with("/login"));
    let (k, v) = bearer();
    assert_eq!(
        request(&addr, "GET", "/api/runs", &[(k, &v)], b"").status,
        200
    );
    // /metrics stays open for scrapers.
    assert_eq!(get(&addr, "/metrics").status, 200);
    drop(node);

    // --insecure: served open without tokens.
    let open = tempfile::tempdir().unwrap();
    let node = NodeProc::start(open.path(), &["--http-addr", "0.0.0.0:0", "--insecure"]);
    let port = http_addr(open.path())
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(get(&format!("127.0.0.1:{port}"), "/api/runs").status, 200);
    drop(node);
}

#[test]
fn a_run_stream_carries_the_tasks_a_page_shows() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = start_with_tokens(dir.path(), &[]);
    let run = web::submit(&addr, GATE);
    wait_run(&addr, &run, |v| {
        task(v, "ship")["state"] == "awaiting_approval"
    });
    let open = |query: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "GET /api/runs/{run}/stream{query} HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .unwrap();
        s
    };
    // Every task, then only `ship` (position 1) for a page showing that row.
    let all = read_events(&mut open(""), 1);
    let tasks = all[0].1["tasks"].as_object().unwrap();
    assert_eq!(tasks.len(), 2, "{}", all[0].1);
    let mut one = open("?from=1&to=2");
    let first = read_events(&mut one, 1);
    let tasks = first[0].1["tasks"].as_object().unwrap();
    assert_eq!(tasks.keys().collect::<Vec<_>>(), ["ship"]);
    assert_eq!(tasks["ship"]["state"], "awaiting_approval");
    // The approval reaches it; the run's end closes the stream after its last frame.
    post_as_alice(&addr, &format!("/api/runs/{run}/tasks/ship/approve"), "");
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = one.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if text.contains("\"state\":\"succeeded\",\"suspended\"") {
            break;
        }
    }
    assert!(
        text.contains("\"state\":\"succeeded\",\"suspended\""),
        "{text}"
    );
    assert!(!text.contains("\"build\""), "{text}");
}

#[test]
fn bench_web_reports_every_case_beside_its_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        &[
            "bench",
            "web",
            "--json",
            "--tasks",
            "60",
            "--rounds",
            "1",
            "--approvals",
            "2",
            "--dispatch-tasks",
            "300",
            "--pages",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(r["tasks"], 60);
    assert_eq!(r["big_tasks"], 600);
    assert!(r["page_ms"].as_f64().unwrap() > 0.0 && r["json_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(r["latency_rounds"].as_array().unwrap().len(), 2);
    assert!(r["figure"].as_f64().unwrap() > 0.0 && r["baseline"].as_f64().unwrap() > 0.0);
    assert_eq!(r["pages"], 2);
    let o = run(dir.path(), &["bench", "web", "--rounds", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn login_never_redirects_to_another_site() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = start_with_tokens(dir.path(), &[]);
    for (next, to) in [
        ("%2Fapprovals", "/approvals"),
        ("%2F%2Fevil.example", "/runs"),
        ("%2F%5Cevil.example", "/runs"),
        ("https%3A%2F%2Fevil.example", "/runs"),
    ] {
        let r = request(
            &addr,
            "POST",
            "/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            format!("token={TOKEN}&next={next}").as_bytes(),
        );
        assert_eq!(r.status, 303, "{next}");
        assert_eq!(r.header("location"), Some(to), "{next}");
    }
}
