//! The web UI in a real browser: a node (the real binary, a real journal) serving the UI with a
//! tokens file, four runs submitted for it, and `tests/browser/ui.mjs` walking the pages in
//! Debian's headless Chromium through Playwright: the runs page, a run's SVG, a task turning
//! green live, a failed task's log, logging in and approving a gate, the run finishing, markup
//! in a workflow name and in a reason shown as text, a 16 MiB log page staying responsive.
//!
//! Needs Chromium (`/usr/bin/chromium`, or `TROUPE_CHROMIUM`), Node.js and
//! `tests/browser/node_modules`, which `TROUPE_TEST_TOOLS=1 scripts/prereqs.sh` installs
//! (scripts/test.sh and CI do); without them the test fails, naming that script.
//!
//! Screenshots of each page go to a temporary folder, or with `TROUPE_SCREENSHOTS=1` to
//! `docs/screenshots/` (how the ones in the docs were made).

mod common;
#[path = "common/web.rs"]
mod web;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// How long the browser walk may take, s (it takes seconds; a hang must not stall CI).
const WALK_SECS: u64 = 300;

/// The run the walk follows live: `wait` runs until the browser test creates `{release}`;
/// then `gate` waits for approval, which the test gives through the approvals page.
const LIVE: &str = r#"
name = "deploy"
[defaults]
retry = { max_attempts = 1 }
[[task]]
id = "build"
shell = "true"
[[task]]
id = "wait"
shell = "while [ ! -e '{release}' ]; do sleep 0.05; done"
depends_on = ["build"]
[[task]]
id = "gate"
command = ["echo", "deploying"]
depends_on = ["wait"]
requires_approval = true
[[task]]
id = "smoke"
shell = "true"
depends_on = ["gate"]
"#;

/// What the failed task prints: markup in a log is text too.
const FAILED_LOG: &str =
    "MARKER: the task failed <b>here</b> & <script>window.__troupeXss=4</script>";

/// A run that fails, with its log.
const FAILED: &str = r#"
name = "broken"
[defaults]
retry = { max_attempts = 1 }
[[task]]
id = "boom"
shell = "printf '%s\n' 'MARKER: the task failed <b>here</b> & <script>window.__troupeXss=4</script>'; exit 3"
"#;

/// A workflow name that would run if a page took it as markup.
const XSS_NAME: &str = "<script>window.__troupeXss=3;alert(3)</script>";

/// A reason, given in the approvals form, that would run if a page took it as markup.
const XSS_REASON: &str =
    "<img src=x onerror=\"window.__troupeXss=2;alert(2)\"><script>window.__troupeXss=1</script>";

/// The run named with markup; its gate is rejected in the browser with [`XSS_REASON`].
const XSS: &str = r#"
name = '<script>window.__troupeXss=3;alert(3)</script>'
[[task]]
id = "review"
shell = "true"
requires_approval = true
"#;

/// A task whose log is 16 MiB (the default `log_cap`): lines of 17 bytes.
const BIG_LOG: &str = r#"
name = "chatty"
[[task]]
id = "spew"
shell = "yes 0123456789abcdef | head -c 16777216"
"#;

/// Fails the test unless what the walk needs is installed.
fn require_browser_tools() -> std::path::PathBuf {
    web::require(&web::chromium(), "the browser test (Chromium)");
    web::require(
        &web::repo_root().join("tests/browser/node_modules/playwright-core/package.json"),
        "the browser test (playwright-core, from `npm ci` in tests/browser)",
    );
    web::require_program("node", "the browser test (Node.js)")
}

fn state_of(dir: &Path, run: &str) -> String {
    run_status(dir, run)["state"].as_str().unwrap().to_owned()
}

/// The approval event of `task` in `run` of type `ty`.
fn decision(events: &[Value], ty: &str, run: &str, task: &str) -> Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == ty && e["run"] == run && e["task"] == task)
        .collect();
    assert_eq!(found.len(), 1, "{ty} events of {run}/{task}: {found:?}");
    found[0].clone()
}

#[test]
fn the_ui_walked_in_headless_chromium() {
    let node_js = require_browser_tools();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let token = web::with_tokens(&dir);
    let release = tmp.path().join("release");
    // Whatever happens, `wait` ends (an orphan would outlive the test).
    let _go = GoOnDrop(release.clone());
    let mut node = NodeProc::start(&dir, &[]);
    let url = format!("http://{}", http_addr(&dir));

    let live_file = workflow(
        tmp.path(),
        "live.toml",
        &LIVE.replace("{release}", release.to_str().unwrap()),
    );
    let live = submit(&dir, &live_file);
    let failed = submit(&dir, &workflow(tmp.path(), "failed.toml", FAILED));
    let xss = submit(&dir, &workflow(tmp.path(), "xss.toml", XSS));
    let big = submit(&dir, &workflow(tmp.path(), "big.toml", BIG_LOG));
    assert_eq!(wait_finished(&dir, &failed, 60)["state"], "failed");
    assert_eq!(wait_finished(&dir, &big, 120)["state"], "succeeded");
    wait_until(&dir, &xss, 30, |v| {
        task_state(v, "review") == "awaiting_approval"
    });
    wait_until(&dir, &live, 30, |v| task_state(v, "wait") == "running");
    let big_log = dir.join(format!("logs/{big}/spew"));
    let logged: u64 = std::fs::read_dir(&big_log)
        .unwrap_or_else(|e| panic!("{}: {e}", big_log.display()))
        .map(|f| f.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(logged, 16 << 20, "the big log is 16 MiB");

    let screenshots = if std::env::var_os("TROUPE_SCREENSHOTS").is_some_and(|v| !v.is_empty()) {
        web::repo_root().join("docs/screenshots")
    } else {
        tmp.path().join("screenshots")
    };
    // The runs page must show each run's state as `status` gives it.
    let runs: serde_json::Map<String, Value> = [&live, &failed, &xss, &big]
        .into_iter()
        .map(|run| (run.clone(), Value::from(state_of(&dir, run))))
        .collect();
    let config = json!({
        "url": url,
        "token": token,
        "screenshots": screenshots,
        "chromium": web::chromium(),
        "runs": runs,
        "live": {
            "run": live,
            "tasks": ["build", "wait", "gate", "smoke"],
            "waiter": "wait",
            "release_file": release,
            "gate": "gate",
        },
        "failed": { "run": failed, "task": "boom", "log_text": FAILED_LOG },
        "xss": { "run": xss, "name": XSS_NAME, "gate": "review", "reason": XSS_REASON },
        "big_log": { "run": big, "task": "spew" },
    });
    let config_file = tmp.path().join("ui.json");
    std::fs::write(&config_file, config.to_string()).unwrap();

    let walk = web::output_within(
        Command::new(&node_js)
            .arg(web::repo_root().join("tests/browser/ui.mjs"))
            .arg(&config_file)
            .current_dir(web::repo_root().join("tests/browser")),
        WALK_SECS,
        "node tests/browser/ui.mjs",
    );
    let said = format!("{}{}", stdout(&walk), stderr(&walk));
    println!("{said}");
    assert!(
        walk.status.success(),
        "the browser walk failed ({:?}); screenshots in {}:\n{said}",
        walk.status.code(),
        screenshots.display()
    );

    // What the browser did is journaled as done by the token's name.
    assert_eq!(wait_finished(&dir, &live, 60)["state"], "succeeded");
    assert_eq!(wait_finished(&dir, &xss, 60)["state"], "failed");
    let ev = events(&dir);
    let granted = decision(&ev, "approval_granted", &live, "gate");
    assert_eq!(granted["approver"]["name"], web::TOKEN_NAME);
    assert_eq!(granted["approver"]["reason"], "looked fine in the browser");
    let rejected = decision(&ev, "approval_rejected", &xss, "review");
    assert_eq!(rejected["approver"]["name"], web::TOKEN_NAME);
    assert_eq!(rejected["approver"]["reason"], XSS_REASON);
    node.stop_attempts();
}
