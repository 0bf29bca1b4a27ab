//! The HTTP API against its own OpenAPI document: schemathesis (PyPI) generates requests for
//! every operation of `/api/openapi.json` on a node (the real binary, a real journal) holding
//! a succeeded, a failed and an awaiting-approval run, and checks that no answer is a server
//! error (5xx) and that every answer's status, content type and body are those the document
//! gives.
//!
//! Needs schemathesis in `~/.cache/troupe-venv`, which `TROUPE_TEST_TOOLS=1 scripts/prereqs.sh`
//! installs (scripts/test.sh and CI do); without it the test fails, naming that script.

mod common;
#[path = "common/web.rs"]
mod web;

use common::*;
use std::process::Command;

/// The schemathesis checks run (`schemathesis run --help` lists them): no 5xx, and every
/// response's status code, content type and body as the document gives them.
const CHECKS: &str =
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// Test cases per operation and phase: enough to reach each operation's error paths, few
/// enough that the whole run takes seconds (about 240 requests for a 2-operation document).
const MAX_EXAMPLES: &str = "25";

/// How long schemathesis may take, s, before it is killed and the test fails.
const SCHEMA_SECS: u64 = 110;

const SUCCEEDS: &str = r#"
name = "fine"
[[task]]
id = "ok"
shell = "echo all good"
"#;

const FAILS: &str = r#"
name = "broken"
[defaults]
retry = { max_attempts = 1 }
[[task]]
id = "boom"
shell = "echo about to fail; exit 3"
[[task]]
id = "after"
shell = "true"
depends_on = ["boom"]
"#;

const GATED: &str = r#"
name = "gated"
[[task]]
id = "deploy"
command = ["echo", "deploying"]
requires_approval = true
"#;

#[test]
fn the_api_answers_as_its_openapi_document_says() {
    let schemathesis = web::venv().join("bin/schemathesis");
    web::require(&schemathesis, "the schema test (schemathesis)");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let token = web::with_tokens(&dir);
    let mut node = NodeProc::start(&dir, &[]);
    let addr = http_addr(&dir);

    let ok = submit(&dir, &workflow(tmp.path(), "ok.toml", SUCCEEDS));
    let bad = submit(&dir, &workflow(tmp.path(), "bad.toml", FAILS));
    let gated = submit(&dir, &workflow(tmp.path(), "gated.toml", GATED));
    assert_eq!(wait_finished(&dir, &ok, 60)["state"], "succeeded");
    assert_eq!(wait_finished(&dir, &bad, 60)["state"], "failed");
    wait_until(&dir, &gated, 30, |v| {
        task_state(v, "deploy") == "awaiting_approval"
    });

    let (status, body) = http_get(&addr, "/api/openapi.json");
    assert_eq!(status, 200, "GET /api/openapi.json: {body}");

    let run = web::output_within(
        Command::new(&schemathesis)
            .arg("run")
            .arg(format!("http://{addr}/api/openapi.json"))
            .args(["--checks", CHECKS])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--max-examples", MAX_EXAMPLES])
            // Server-Sent Events never end: a request for them would only time out.
            .args(["--exclude-path", "/api/events"])
            .args(["--exclude-path-regex", "/stream$"])
            .args(["--request-timeout", "10"])
            // One worker: with two, hypothesis (6.x on Python 3.11) at times fails inside its own
            // lambda-source cache ("AST constructor recursion depth mismatch"), a tool error.
            .args(["--workers", "1"])
            .args(["--generation-database", "none"])
            .arg("--no-color")
            // Its reports, if any, go to the temp dir.
            .current_dir(tmp.path()),
        SCHEMA_SECS,
        "schemathesis",
    );
    let said = format!("{}{}", stdout(&run), stderr(&run));
    println!("{said}");
    assert!(
        run.status.success(),
        "schemathesis found answers off /api/openapi.json ({:?}):\n{said}",
        run.status.code()
    );
    // The node outlived the fuzzing and still answers.
    assert_eq!(http_get(&addr, "/api/openapi.json").0, 200);
    run_cmd_ok(&dir, &["status"]);
    node.stop_attempts();
}
