//! Crash safety by crashing: a child process appends through the journal actor with
//! `sync` durability and reports every acknowledged sequence number over a pipe; the parent
//! SIGKILLs it at a random moment, reopens the journal and checks that every acknowledged
//! record is present and decodes to exactly what was appended. 40 kills per run.
//!
//! The child is this test binary re-executed with `TROUPE_CRASH_CHILD` set (so no test hook
//! lives in the product binary). Kill moments are drawn as "after K acknowledgements" (K
//! random, 0 included) rather than as sleeps, so the test waits on observable progress.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use rand::{Rng, SeedableRng};
use troupe::actors::journal::JournalRef;
use troupe::model::{Event, EventRecord, RunId, Seq, TaskId, Timestamp};
use troupe::storage::{Journal, JournalOptions};

const APPENDERS: u32 = 8;
const KILLS: usize = 40;

/// What appender `a` writes as its `n`-th record: checkable from the line the child printed.
fn record(a: u32, n: u32) -> EventRecord {
    EventRecord {
        time: Timestamp(u64::from(a) << 32 | u64::from(n)),
        event: Event::AttemptStarted {
            run: RunId::from_u128(0xC0FFEE),
            task: TaskId::new(format!("appender-{a}")).unwrap(),
            attempt: n,
        },
    }
}

/// Child mode: append forever, printing `ACK <seq> <appender> <n>` after each ack.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os("TROUPE_CRASH_CHILD") else {
        return; // only runs when the parent test re-executes this binary
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let journal = Journal::open(Path::new(&dir)).unwrap();
        let (actor, _handle) = JournalRef::spawn(journal, JournalOptions::default())
            .await
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Seq, u32, u32)>();
        let base: u32 = std::env::var("TROUPE_CRASH_BASE").unwrap().parse().unwrap();
        for a in 0..APPENDERS {
            let (actor, tx) = (actor.clone(), tx.clone());
            tokio::spawn(async move {
                for n in base.. {
                    let seq = actor.append_one(record(a, n)).await.unwrap();
                    if tx.send((seq, a, n)).is_err() {
                        return;
                    }
                }
            });
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        writeln!(out, "READY").unwrap();
        out.flush().unwrap();
        while let Some((seq, a, n)) = rx.recv().await {
            // Printed only after the ack: each line is a promise the parent will check.
            writeln!(out, "ACK {seq} {a} {n}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[test]
fn every_acknowledged_append_survives_sigkill() {
    if std::env::var_os("TROUPE_CRASH_CHILD").is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seed: u64 = std::env::var("TROUPE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (set TROUPE_CRASH_SEED to repeat)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut acked: Vec<(Seq, u32, u32)> = Vec::new();
    for kill in 0..KILLS {
        let wait_for: usize = if rng.random_bool(0.1) {
            0
        } else {
            rng.random_range(1..300)
        };
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("TROUPE_CRASH_CHILD", dir.path())
            // Attempt numbers keep growing across incarnations, so records stay distinct.
            .env("TROUPE_CRASH_BASE", (kill as u32 * 100_000).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // libtest prints its own text around ours (`test crash_child ... READY`), so markers
        // are matched within lines. A reader thread lets a stuck child fail the test instead of
        // hanging it.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let parse = |line: &str| -> Option<(Seq, u32, u32)> {
            let rest = &line[line.find("ACK ")? + 4..];
            let f: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
            Some((f[0], f[1] as u32, f[2] as u32))
        };
        let mut seen = 0;
        let mut ready = false;
        while !(ready && seen >= wait_for) {
            let line = rx
                .recv_timeout(std::time::Duration::from_secs(120))
                .unwrap_or_else(|e| panic!("child {kill}: no output for 120 s ({e})"));
            if line.ends_with("READY") {
                ready = true;
            } else if let Some(ack) = parse(&line) {
                acked.push(ack);
                seen += 1;
            }
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        // Acks the child printed before the kill landed still count: read them all.
        reader.join().unwrap();
        acked.extend(rx.try_iter().filter_map(|l| parse(&l)));
        let status = child.wait().unwrap();
        assert!(!status.success(), "child {kill} was not killed");

        let journal = Journal::open(dir.path()).unwrap();
        for &(seq, a, n) in &acked {
            let got = journal
                .get(seq)
                .unwrap_or_else(|e| panic!("kill {kill}: acked event {seq} unreadable: {e}"))
                .unwrap_or_else(|| panic!("kill {kill}: acked event {seq} is missing"));
            assert_eq!(got, record(a, n), "kill {kill}: event {seq} differs");
        }
        // The whole journal reads back without a gap or a bad record.
        let last = journal.last_seq().unwrap();
        let mut count = 0u64;
        for item in journal.events_from(1) {
            let (seq, _) = item.unwrap_or_else(|e| panic!("kill {kill}: {e}"));
            count += 1;
            assert_eq!(seq, count);
        }
        assert_eq!(count, last);
    }
    assert!(
        acked.len() > KILLS,
        "only {} acks in {KILLS} runs",
        acked.len()
    );
    eprintln!(
        "{} acknowledged appends checked across {KILLS} kills",
        acked.len()
    );
}
