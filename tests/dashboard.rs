//! `troupe dashboard` in a real terminal (tmux): draws the node, survives the node going away,
//! reconnects, quits on `q`. (The drawing itself is unit-tested with ratatui's TestBackend in
//! src/bin/troupe/render/dashboard.rs.)

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn screen(&self) -> String {
        let o = self
            .cmd()
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen();
            if cond(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "no {what} on screen:\n{s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn alive(&self) -> bool {
        self.cmd()
            .args(["has-session", "-t", &self.session])
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

#[test]
fn dashboard_under_tmux_shows_the_node_reconnects_and_quits() {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok(),
        "tmux is needed for this test (scripts/prereqs.sh installs it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut node = NodeProc::start(dir, &[]);
    let wf = workflow(
        dir,
        "slow.toml",
        "name = \"slow\"\n[[task]]\nid = \"quick\"\ncommand = [\"true\"]\n[[task]]\nid = \"sleeper\"\ncommand = [\"sleep\", \"60\"]\ndepends_on = [\"quick\"]\n",
    );
    let run_id = submit(dir, &wf);
    wait_until(dir, &run_id, 60, |v| task_state(v, "sleeper") == "running");

    let tmux = Tmux {
        socket: format!("troupe-test-{}", std::process::id()),
        session: "dash".into(),
    };
    let line = format!(
        "{} --data-dir {} dashboard --interval 200ms",
        env!("CARGO_BIN_EXE_troupe"),
        dir.display()
    );
    let ok = tmux
        .cmd()
        .args([
            "new-session",
            "-d",
            "-s",
            "dash",
            "-x",
            "160",
            "-y",
            "45",
            &line,
        ])
        .status()
        .unwrap();
    assert!(ok.success());

    let s = tmux.wait_for("running node with its attempt and completion", |s| {
        s.contains("● running") && s.contains("sleeper") && s.contains("quick")
    });
    assert!(s.contains("last completions"), "{s}");
    assert!(s.contains("throughput"), "{s}");

    // The node goes away: the dashboard says so and keeps running.
    node.kill9();
    tmux.wait_for("DISCONNECTED banner", |s| s.contains("DISCONNECTED"));
    assert!(tmux.alive());

    // It comes back: the dashboard reconnects by itself.
    let _node = NodeProc::start(dir, &[]);
    tmux.wait_for("reconnected view", |s| {
        s.contains("● running") && !s.contains("DISCONNECTED")
    });

    // `q` quits and restores the terminal.
    let ok = tmux
        .cmd()
        .args(["send-keys", "-t", "dash", "q"])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while tmux.alive() {
        assert!(Instant::now() < deadline, "dashboard did not quit on q");
        std::thread::sleep(Duration::from_millis(50));
    }
}
