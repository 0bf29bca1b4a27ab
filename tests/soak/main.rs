//! The soak: a node under a mixed workload (retries, timeouts, approvals, sagas, outputs and
//! fan-out, child runs) is SIGKILLed at random moments `SOAK_KILLS` times (default 20, what
//! CI runs; `scripts/soak.sh 1000` runs the long one) and restarted on the same data dir.
//! After every kill the journal is read offline and checked (check.rs): every acknowledged
//! submission, child spawn and approval decision is there; no task succeeded twice; no
//! attempt started after its task succeeded; each attempt ended once; compensations ran one
//! at a time, newest completion first, never again after their success was durable. At the
//! end the client stops submitting, every run must finish, and the journal is checked once
//! more after a clean stop.
//!
//! Kill moments: one time in five while the node boots (0–300 ms after its start, recovery
//! included), else 0–1 s after it answers. `TROUPE_TEST_SEED` repeats a schedule. The
//! figures are printed on lines starting with `soak:` (docs/benchmarks.md, "Soak").

mod check;
mod workload;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use troupe::client::Client;
use troupe::messages::control::{Request, Response};

use check::Checker;
use workload::{Acks, DRAIN, STOP, SUBMIT};

/// Node flags: snapshots often, so restarts also boot from a snapshot plus a tail. The
/// durability is the node's default (`sync`).
const ARGS: [&str; 2] = ["--snapshot-every", "500"];

/// The `troupe` binary driven: `SOAK_TROUPE_BIN` if set (a copy, so a long soak does not
/// hold cargo's target dir), else the one cargo built. Tasks find it on `PATH` as `troupe`.
fn bin() -> PathBuf {
    std::env::var_os("SOAK_TROUPE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_troupe").into())
}

/// `troupe --data-dir DATA`, with the binary's folder first on `PATH` (for `troupe spawn`
/// and `troupe wait` in tasks; attempts inherit the node's environment).
fn troupe(data: &Path) -> Command {
    let bin = bin();
    let mut dirs = vec![bin.parent().unwrap().to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let mut c = Command::new(&bin);
    // Port 0: parallel tests must not fight over the default HTTP port.
    c.arg("--data-dir")
        .arg(data)
        .env("PATH", std::env::join_paths(dirs).unwrap())
        .env("RUST_LOG", "warn")
        .env("TROUPE_HTTP_ADDR", "127.0.0.1:0");
    c
}

/// Runs `troupe --data-dir DATA ARGS...` to its end: (success, stdout and stderr).
fn run(data: &Path, args: &[&str]) -> (bool, String) {
    let o = troupe(data).args(args).output().expect("run troupe");
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    (o.status.success(), text)
}

/// Starts `troupe node start` on `data`, its stderr appended to `log`, without waiting.
fn spawn_node(data: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    troupe(data)
        .args(["node", "start"])
        .args(ARGS)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn node")
}

/// Whether the node on `data` answers a `Node` request within 2 s.
fn answers(rt: &tokio::runtime::Runtime, data: &Path) -> bool {
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), async {
            let mut c = Client::connect(data).await.ok()?;
            match c.request(&Request::Node).await {
                Ok(Response::Node(_)) => Some(()),
                _ => None,
            }
        })
        .await
        .ok()
        .flatten()
        .is_some()
    })
}

/// The last 3,000 bytes of the node's log, for a failure message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let cut = text.len().saturating_sub(3000);
    text[text
        .char_indices()
        .find(|(i, _)| *i >= cut)
        .map_or(0, |x| x.0)..]
        .to_owned()
}

/// Fails the test if the node exited on its own (it is only ever killed by the test).
fn assert_alive(node: &mut Child, log: &Path, kill: usize) {
    if let Some(status) = node.try_wait().unwrap() {
        panic!(
            "before kill {kill} the node exited by itself ({status}):\n{}",
            log_tail(log)
        );
    }
}

/// Waits until the node answers (60 s at most).
fn wait_ready(
    rt: &tokio::runtime::Runtime,
    node: &mut Child,
    data: &Path,
    log: &Path,
    kill: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !answers(rt, data) {
        assert_alive(node, log, kill);
        assert!(
            Instant::now() < deadline,
            "the node did not answer within 60 s:\n{}",
            log_tail(log)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Who has `troupe.lock` of the journal in `dir` open: "pid (command) child of ppid", from
/// `/proc/*/fd`.
fn lock_holders(dir: &Path) -> Vec<String> {
    let lock = dir.join(troupe::storage::journal::LOCK_FILE);
    let mut found = Vec::new();
    for proc_dir in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == lock))
        {
            let read =
                |f: &str| std::fs::read_to_string(proc_dir.path().join(f)).unwrap_or_default();
            let cmd = read("cmdline").replace('\0', " ");
            let ppid = read("stat")
                .rsplit_once(')')
                .map_or(String::new(), |(_, r)| {
                    r.split_whitespace().nth(1).unwrap_or("").to_owned()
                });
            found.push(format!(
                "{} ({}) child of {ppid}",
                proc_dir.file_name().to_string_lossy(),
                cmd.trim()
            ));
        }
    }
    found
}

/// Opens the journal of the killed node. Right after the kill its lock can still be held for
/// a moment by an attempt process the node was spawning (a forked child keeps the node's
/// descriptors until it `exec`s): that is waited out (10 s at most), counted in `lock_waits`
/// and reported once with the holders.
fn open_journal(dir: &Path, lock_waits: &mut u32) -> troupe::storage::Journal {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut waited = false;
    loop {
        match troupe::storage::Journal::open(dir) {
            Ok(j) => return j,
            Err(troupe::JournalError::Locked { .. }) if Instant::now() < deadline => {
                if !waited {
                    *lock_waits += 1;
                    waited = true;
                    eprintln!(
                        "soak: the journal is still locked after the kill, held by {:?}",
                        lock_holders(dir)
                    );
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!(
                "the journal does not open after a kill: {e} (held by {:?})",
                lock_holders(dir)
            ),
        }
    }
}

/// The checks of one stopped journal: the incremental event checks, the acknowledgements,
/// and `troupe journal verify` (CRCs, decoding, stream index, snapshots, a replay). The
/// client thread does not connect meanwhile (`gate`): a failed connect looks at the
/// journal's lock and would keep a descriptor of it while this process holds it.
fn check_stopped(
    checker: &mut Checker,
    data: &Path,
    scratch: &Path,
    acks: &Mutex<Acks>,
    gate: &Mutex<()>,
    lock_waits: &mut u32,
    verify: bool,
) {
    {
        let _gate = gate.lock().unwrap();
        let journal = open_journal(&data.join("journal"), lock_waits);
        checker.check_journal(&journal);
    }
    let (runs, decisions) = {
        let a = acks.lock().unwrap();
        (a.runs.clone(), a.decisions.clone())
    };
    checker.check_runs_exist("submission", &runs);
    checker.check_runs_exist("child spawn", &workload::acknowledged_children(scratch));
    checker.check_decisions_exist(&decisions);
    if verify {
        checker.figures.checks += 1;
        checker.figures.verified += 1;
        let (ok, text) = run(data, &["journal", "verify"]);
        if !ok {
            checker
                .problems
                .push(format!("journal verify failed:\n{text}"));
        }
    }
    assert!(
        checker.problems.is_empty(),
        "invariants violated:\n{}",
        checker.problems.join("\n")
    );
}

#[test]
fn soak_sigkill_under_a_mixed_workload() {
    let started = Instant::now();
    let kills: usize = std::env::var("SOAK_KILLS")
        .ok()
        .map(|s| s.parse().expect("SOAK_KILLS: a number of kills"))
        .unwrap_or(20);
    // `journal verify` reads every snapshot and replays the whole journal, so its cost grows
    // with the journal; a long soak runs it every Nth kill (and at the end).
    let verify_every: usize = std::env::var("SOAK_VERIFY_EVERY")
        .ok()
        .map(|s| s.parse().expect("SOAK_VERIFY_EVERY: a number of kills"))
        .unwrap_or(1)
        .max(1);
    let seed: u64 = std::env::var("TROUPE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("soak: seed {seed} (TROUPE_TEST_SEED repeats the kill schedule), {kills} kills");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let data: PathBuf = tmp.path().join("data");
    let scratch = tmp.path().join("s");
    let log = tmp.path().join("node.log");
    std::fs::create_dir_all(&scratch).unwrap();
    workload::write_child(&scratch);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut node = spawn_node(&data, &log);
    wait_ready(&rt, &mut node, &data, &log, 0);
    let mode = Arc::new(AtomicU8::new(SUBMIT));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let gate = Arc::new(Mutex::new(()));
    let client = workload::spawn_client(
        data.clone(),
        scratch.clone(),
        Duration::from_millis(100),
        mode.clone(),
        acks.clone(),
        gate.clone(),
    );
    let mut lock_waits = 0;
    let mut checker = Checker::default();
    let mut check_time = Duration::ZERO;
    let mut booting_kills = 0;
    for kill in 1..=kills {
        if kill > 1 && rng.random_bool(0.2) {
            // Still booting or just up: a moment of recovery.
            booting_kills += 1;
            std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
        } else {
            wait_ready(&rt, &mut node, &data, &log, kill);
            std::thread::sleep(Duration::from_millis(rng.random_range(0..1000)));
        }
        assert_alive(&mut node, &log, kill);
        node.kill().unwrap();
        node.wait().unwrap();
        let t = Instant::now();
        let verify = kill % verify_every == 0;
        check_stopped(
            &mut checker,
            &data,
            &scratch,
            &acks,
            &gate,
            &mut lock_waits,
            verify,
        );
        check_time += t.elapsed();
        if kill % 50 == 0 || kill == kills {
            let f = &checker.figures;
            eprintln!(
                "soak: kill {kill}/{kills}: {} events, {} runs, {} interrupted, {} checks, {:.0?}",
                f.events,
                f.runs,
                f.interrupted,
                f.checks,
                started.elapsed()
            );
        }
        node = spawn_node(&data, &log);
    }

    // The end: no more submissions; approvals are still decided until every run finished.
    mode.store(DRAIN, Ordering::SeqCst);
    wait_ready(&rt, &mut node, &data, &log, kills + 1);
    let deadline = Instant::now() + Duration::from_secs(300);
    let runs = loop {
        let runs = rt.block_on(async {
            let mut c = Client::connect(&data).await.ok()?;
            match c.request(&Request::List).await {
                Ok(Response::Runs(runs)) => Some(runs),
                _ => None,
            }
        });
        if let Some(runs) = runs {
            if runs.iter().all(|r| r.state.is_finished()) {
                break runs;
            }
            if Instant::now() > deadline {
                let open: Vec<_> = runs
                    .iter()
                    .filter(|r| !r.state.is_finished())
                    .map(|r| format!("{} {} {:?}", r.id, r.name, r.state))
                    .collect();
                panic!("runs not finished 300 s after the last kill: {open:?}");
            }
        }
        assert_alive(&mut node, &log, kills + 1);
        std::thread::sleep(Duration::from_millis(100));
    };
    mode.store(STOP, Ordering::SeqCst);
    client.join().unwrap();
    // A clean stop (SIGTERM), then the last check.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(node.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let status = node.wait().unwrap();
    assert!(
        status.success(),
        "the node's clean stop failed ({status}):\n{}",
        log_tail(&log)
    );
    check_stopped(
        &mut checker,
        &data,
        &scratch,
        &acks,
        &gate,
        &mut lock_waits,
        true,
    );

    let mut states = std::collections::BTreeMap::<String, usize>::new();
    for r in &runs {
        *states.entry(format!("{:?}", r.state)).or_default() += 1;
    }
    let acked = acks.lock().unwrap().runs.len();
    let children = workload::acknowledged_children(&scratch).len();
    assert!(acked > 0, "no submission was ever acknowledged");
    let f = &checker.figures;
    eprintln!(
        "soak: kills {kills} ({booting_kills} while booting), binary {}",
        bin().display()
    );
    eprintln!(
        "soak: acknowledged {acked} submissions, {children} child spawns, {} approval decisions; \
         runs at the end {states:?}",
        acks.lock().unwrap().decisions.len()
    );
    eprintln!(
        "soak: events {}, attempts interrupted {}, invariant checks {}, journal verify runs {} \
         (every {verify_every} kills and at the end), problems 0",
        f.events, f.interrupted, f.checks, f.verified
    );
    eprintln!("soak: journal still locked right after a kill: {lock_waits} times (waited out)");
    eprintln!(
        "soak: wall time {:.1} s ({:.2} s per kill; checking {:.1} s)",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() / kills.max(1) as f64,
        check_time.as_secs_f64()
    );
}
