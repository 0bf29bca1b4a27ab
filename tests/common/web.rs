//! Helpers for the tests that drive the web UI and the HTTP API with outside tools
//! (`tests/web_browser.rs`: Chromium through Playwright; `tests/web_schema.rs`: schemathesis).
//! Included with `#[path = "common/web.rs"] mod web;` beside `mod common;`.
//!
//! The tools come from `scripts/prereqs.sh` (`TROUPE_TEST_TOOLS=1`, as `scripts/test.sh` and
//! CI run it). A test whose tool is missing fails, naming that script: CI installs them, so a
//! skip would hide a broken install.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The name the tokens file gives the test's token: approvals made with it are journaled as
/// by this name.
pub const TOKEN_NAME: &str = "alice";

/// The repository's root (where `Cargo.toml` is).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Chromium's binary: `TROUPE_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    std::env::var_os("TROUPE_CHROMIUM")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The venv `scripts/prereqs.sh` installs schemathesis into: `$HOME/.cache/troupe-venv`.
pub fn venv() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is set");
    Path::new(&home).join(".cache/troupe-venv")
}

/// Fails the test (never skips it) when `path`, which `what` needs, is missing, saying how to
/// install it.
pub fn require(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} needs {}, which is missing: install the test tools with \
         `TROUPE_TEST_TOOLS=1 scripts/prereqs.sh` (scripts/test.sh and CI do)",
        path.display()
    );
}

/// Whether `program` is found on `PATH` (or is a path to an existing file).
pub fn on_path(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program)).filter(|p| p.exists());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Fails the test (never skips it) when `program` is not on `PATH`.
pub fn require_program(program: &str, what: &str) -> PathBuf {
    on_path(program).unwrap_or_else(|| {
        panic!(
            "{what} needs `{program}` on PATH, which is missing: install the test tools with \
             `TROUPE_TEST_TOOLS=1 scripts/prereqs.sh` (scripts/test.sh and CI do)"
        )
    })
}

/// A token that no other run of the test shares: 32 hex digits from the clock and the pid.
pub fn fresh_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:016x}{:016x}",
        nanos as u64,
        std::process::id() as u64 ^ 0x7472_6f75_7065
    )
}

/// Prepares `data_dir` for a node whose actions need a token: writes the tokens file
/// `tokens` beside it (mode 0600, one line `alice TOKEN`) and `DATA_DIR/troupe.toml` with
/// `[http] tokens_file` naming it. Returns the token.
pub fn with_tokens(data_dir: &Path) -> String {
    std::fs::create_dir_all(data_dir).unwrap();
    let token = fresh_token();
    let tokens = data_dir.parent().unwrap().join("tokens");
    std::fs::write(&tokens, format!("# name token\n{TOKEN_NAME} {token}\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A TOML literal string: the temp path holds no single quote.
    std::fs::write(
        data_dir.join("troupe.toml"),
        format!("[http]\ntokens_file = '{}'\n", tokens.display()),
    )
    .unwrap();
    token
}

/// Runs `cmd` to its end with its output captured, in a process group of its own; kills that
/// group (the tool and, say, the browser it started) and fails the test, showing what it had
/// printed, after `secs` seconds (a hung browser or fuzzer must not stall CI). `what` names it
/// in the messages.
pub fn output_within(cmd: &mut Command, secs: u64, what: &str) -> Output {
    use std::os::unix::process::CommandExt;
    use std::sync::{Arc, Mutex};
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    // Drain the pipes on threads, into buffers the timeout can still show.
    fn drain(mut pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        buf
    }
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let text = |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::SIGKILL);
            let _ = child.wait();
            panic!(
                "{what} still running after {secs} s (killed); it printed:\n{}\n{}",
                text(&out),
                text(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The pipes close when the process and its children are gone; wait a little for the last
    // bytes (a child outside the group could hold them open for ever).
    let settle = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&out) + Arc::strong_count(&err) > 2 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (stdout, stderr) = (out.lock().unwrap().clone(), err.lock().unwrap().clone());
    Output {
        status,
        stdout,
        stderr,
    }
}
