//! The journal on real RocksDB: group commit through the actor, reads by range and stream,
//! snapshots and replay, retention, corruption, locking and permissions.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use troupe::actors::journal::JournalRef;
use troupe::messages::journal::{AppendError, JournalMsg};
use troupe::model::{
    parse_workflow, Event, EventRecord, RunId, Seq, State, TaskId, TaskState, Timestamp,
};
use troupe::storage::{
    journal::{CF_EVENTS, COLUMN_FAMILIES},
    replay, Durability, Journal, JournalError, JournalOptions, ReplayError,
};

fn buffered() -> JournalOptions {
    JournalOptions {
        durability: Durability::Buffered,
        ..JournalOptions::default()
    }
}

fn run_id(n: u128) -> RunId {
    RunId::from_u128(n)
}

/// A run of `tasks` independent tasks, each started and succeeded: 1 + 2×tasks events.
fn run_events(run: RunId, tasks: usize) -> Vec<EventRecord> {
    let mut text = String::from("name = \"j\"\n");
    for i in 0..tasks {
        text.push_str(&format!("[[task]]\nid = \"t{i}\"\ncommand = [\"true\"]\n"));
    }
    let wf = Arc::new(parse_workflow(&text).unwrap());
    let mut out = vec![EventRecord {
        time: Timestamp(1_000),
        event: Event::RunSubmitted { run, workflow: wf },
    }];
    for i in 0..tasks {
        let task = TaskId::new(format!("t{i}")).unwrap();
        out.push(EventRecord {
            time: Timestamp(2_000 + i as u64),
            event: Event::AttemptStarted {
                run,
                task: task.clone(),
                attempt: 1,
            },
        });
        out.push(EventRecord {
            time: Timestamp(3_000 + i as u64),
            event: Event::TaskSucceeded {
                run,
                task,
                attempt: 1,
                usage: None,
            },
        });
    }
    out
}

async fn write_all(dir: &Path, records: Vec<EventRecord>) -> std::ops::Range<Seq> {
    let journal = Journal::open(dir).unwrap();
    let (actor, handle) = JournalRef::spawn(journal, buffered()).await.unwrap();
    let range = actor.append(records).await.unwrap();
    actor.stop().await;
    handle.await.unwrap();
    range
}

type Reply = tokio::sync::oneshot::Receiver<Result<std::ops::Range<Seq>, AppendError>>;

/// Puts an append straight into the actor's mailbox (no await), returning the reply channel.
fn send_append(actor: &JournalRef, record: EventRecord) -> Reply {
    let (tx, rx) = tokio::sync::oneshot::channel();
    actor
        .actor()
        .send_message(JournalMsg::Append {
            records: vec![record],
            reply: tx.into(),
        })
        .unwrap();
    rx
}

fn halt(n: u64) -> EventRecord {
    EventRecord {
        time: Timestamp(n),
        event: Event::NodeHalted { kill: n % 2 == 0 },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_appends_share_commits_and_get_unique_consecutive_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    // sync: each commit is one fsync
    let (actor, handle) = JournalRef::spawn(journal.clone(), JournalOptions::default())
        .await
        .unwrap();
    // 1,000 appends land in the mailbox faster than the actor stages them, so each Commit
    // the actor sends itself queues behind many appends.
    let n = 1_000u64;
    let replies: Vec<Reply> = (0..n).map(|i| send_append(&actor, halt(i))).collect();
    let mut seqs = Vec::new();
    for rx in replies {
        seqs.push(rx.await.unwrap().unwrap().start);
    }
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "mailbox order is seq order"
    );
    let stats = actor.stats().await.unwrap();
    assert_eq!(stats.events, n);
    assert!(
        stats.commits <= n / 10,
        "{} commits for {n} queued appends: they were not grouped",
        stats.commits
    );
    // Concurrent callers through the public API get distinct, gap-free numbers too.
    let tasks: Vec<_> = (0..64)
        .map(|a| {
            let actor = actor.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..20 {
                    seqs.push(actor.append_one(halt(a * 100 + i)).await.unwrap());
                }
                seqs
            })
        })
        .collect();
    let mut all: Vec<Seq> = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "acks out of order");
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (n + 1..=n + 64 * 20).collect::<Vec<_>>());
    actor.stop().await;
    handle.await.unwrap();
    let total = n + 64 * 20;
    assert_eq!(journal.last_seq().unwrap(), total);
    assert_eq!(journal.events_from(1).count() as u64, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_commits_every_append_already_queued() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let (actor, handle) = JournalRef::spawn(journal.clone(), JournalOptions::default())
        .await
        .unwrap();
    let replies: Vec<Reply> = (0..500).map(|i| send_append(&actor, halt(i))).collect();
    let late = actor.clone();
    actor.stop().await;
    handle.await.unwrap();
    for (i, rx) in replies.into_iter().enumerate() {
        let got = rx.await.expect("queued before the stop: must be answered");
        assert_eq!(got.unwrap().start, i as Seq + 1);
    }
    assert_eq!(journal.last_seq().unwrap(), 500);
    // After the stop, appends are refused, not silently dropped.
    assert!(matches!(
        late.append_one(halt(1)).await,
        Err(AppendError::Unavailable(_))
    ));
    // The writer was released: a new actor can take over and continues the sequence.
    let (again, handle) = JournalRef::spawn(journal, buffered()).await.unwrap();
    assert_eq!(again.append_one(halt(2)).await.unwrap(), 501);
    again.stop().await;
    handle.await.unwrap();
}

#[tokio::test]
async fn multi_record_appends_are_contiguous_and_streams_find_them() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (run_id(1), run_id(2));
    let first = write_all(dir.path(), run_events(a, 3)).await;
    assert_eq!(first, 1..8);
    let second = write_all(dir.path(), run_events(b, 2)).await;
    assert_eq!(
        second,
        8..13,
        "a reopened journal continues after the last event"
    );
    let journal = Journal::open(dir.path()).unwrap();
    let seqs: Vec<Seq> = journal.run_events(b).unwrap().iter().map(|e| e.0).collect();
    assert_eq!(seqs, (8..13).collect::<Vec<_>>());
    let t1 = journal.task_events(a, &TaskId::new("t1").unwrap()).unwrap();
    let types: Vec<&str> = t1.iter().map(|(_, r)| r.event.type_name()).collect();
    assert_eq!(types, ["attempt_started", "task_succeeded"]);
    assert_eq!(
        journal
            .range(3, 5)
            .map(|e| e.unwrap().0)
            .collect::<Vec<_>>(),
        [3, 4]
    );
    let r = replay(&journal).unwrap();
    assert_eq!(r.events_applied, 12);
    assert_eq!(
        r.state.run(a).unwrap().state(),
        troupe::model::RunState::Succeeded
    );
}

#[tokio::test]
async fn snapshot_plus_tail_equals_full_replay_and_compaction_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let (actor, handle) = JournalRef::spawn(journal.clone(), buffered())
        .await
        .unwrap();
    actor.append(run_events(run_id(1), 4)).await.unwrap(); // 1..=9
    let mid = replay(&journal).unwrap().state;
    assert_eq!(mid.last_seq(), 9);
    assert_eq!(actor.snapshot(Arc::new(mid)).await.unwrap(), 9);
    actor.append(run_events(run_id(2), 2)).await.unwrap(); // 10..=14
    actor.stop().await;
    handle.await.unwrap();

    let from_snapshot = replay(&journal).unwrap();
    assert_eq!(from_snapshot.snapshot_seq, Some(9));
    assert_eq!(from_snapshot.events_applied, 5);
    let mut full = State::new();
    for item in journal.events_from(1) {
        let (seq, rec) = item.unwrap();
        full.apply(seq, &rec).unwrap();
    }
    assert_eq!(from_snapshot.state, full);

    // Retention: events before the snapshot may go, and replay still gives the same state.
    let mut writer = journal.writer(&buffered()).unwrap();
    let err = writer.compact_before(11).unwrap_err();
    assert!(
        err.to_string()
            .contains("newest snapshot covers only up to 9"),
        "{err}"
    );
    assert_eq!(writer.compact_before(10).unwrap(), 9);
    drop(writer);
    assert_eq!(journal.first_seq().unwrap(), 10);
    assert!(journal.get(5).unwrap().is_none());
    assert_eq!(replay(&journal).unwrap().state, full);
    assert!(
        journal.run_events(run_id(1)).unwrap().is_empty(),
        "stream entries of compacted events are skipped"
    );
}

#[test]
fn only_one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let w = journal.writer(&buffered()).unwrap();
    let err = journal.writer(&buffered()).err().unwrap();
    assert!(err.to_string().contains("already has a writer"), "{err}");
    drop(w);
    journal.writer(&buffered()).unwrap();
}

/// Flips one byte of the stored value of event `seq`, through RocksDB directly.
fn corrupt(dir: &Path, seq: Seq) -> Vec<u8> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(false);
    let db = rocksdb::DB::open_cf(&opts, dir, COLUMN_FAMILIES).unwrap();
    let cf = db.cf_handle(CF_EVENTS).unwrap();
    let mut value = db.get_cf(cf, seq.to_be_bytes()).unwrap().unwrap();
    let i = value.len() / 2;
    value[i] ^= 0x20;
    db.put_cf(cf, seq.to_be_bytes(), &value).unwrap();
    value
}

fn stored(dir: &Path, seq: Seq) -> Option<Vec<u8>> {
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, COLUMN_FAMILIES).unwrap();
    let cf = db.cf_handle(CF_EVENTS).unwrap();
    db.get_cf(cf, seq.to_be_bytes()).unwrap()
}

#[tokio::test]
async fn a_flipped_byte_stops_replay_at_its_sequence_number_and_nothing_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    write_all(dir.path(), run_events(run_id(7), 4)).await; // seqs 1..=9
    let bad = corrupt(dir.path(), 5);

    let journal = Journal::open(dir.path()).unwrap();
    let err = replay(&journal).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ReplayError::Journal(JournalError::Codec { .. })),
        "{err:?}"
    );
    assert!(msg.contains("event 5: checksum mismatch"), "{msg}");
    // Reading stops there too: nothing after 5 is yielded as if 5 were absent.
    let read: Vec<_> = journal.events_from(1).collect();
    assert_eq!(read.len(), 5);
    assert!(read[..4].iter().all(Result::is_ok));
    assert!(read[4].is_err());
    drop(read);
    drop(journal);
    // Nothing was skipped, repaired or deleted.
    assert_eq!(stored(dir.path(), 5), Some(bad));
    assert!(stored(dir.path(), 6).is_some());
    assert!(stored(dir.path(), 9).is_some());
}

#[tokio::test]
async fn a_missing_event_is_a_gap_not_a_skip() {
    let dir = tempfile::tempdir().unwrap();
    write_all(dir.path(), run_events(run_id(7), 2)).await; // 1..=5
    {
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), COLUMN_FAMILIES)
            .unwrap();
        db.delete_cf(db.cf_handle(CF_EVENTS).unwrap(), 3u64.to_be_bytes())
            .unwrap();
    }
    let journal = Journal::open(dir.path()).unwrap();
    let err = replay(&journal).unwrap_err().to_string();
    assert!(
        err.contains("event 3 is missing (the next stored event is 4)"),
        "{err}"
    );
}

#[tokio::test]
async fn an_event_the_fold_refuses_stops_replay_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = run_events(run_id(3), 1);
    events.push(events[2].clone()); // task_succeeded twice
    write_all(dir.path(), events).await;
    let journal = Journal::open(dir.path()).unwrap();
    let err = replay(&journal).unwrap_err().to_string();
    assert!(err.contains("event 4 cannot be applied"), "{err}");
    assert!(
        err.contains("a succeeded task cannot become succeeded"),
        "{err}"
    );
}

#[test]
fn a_second_open_in_the_same_process_names_the_pid() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Journal::open(dir.path()).unwrap();
    let err = Journal::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, JournalError::Locked { pid: Some(p), .. } if p == std::process::id()),
        "{err:?}"
    );
}

fn troupe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_troupe"))
}

/// `troupe --data-dir DATA events ARGS...`
fn events(data: &Path, args: &[&str]) -> std::process::Output {
    troupe()
        .arg("--data-dir")
        .arg(data)
        .arg("events")
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_second_process_on_the_same_data_dir_is_refused_with_the_holders_pid() {
    let data = tempfile::tempdir().unwrap();
    let jdir = data.path().join("journal");
    write_all(&jdir, run_events(run_id(1), 1)).await;
    // Unheld: the CLI reads the journal.
    let out = events(data.path(), &["--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["type"], "attempt_started");
    assert_eq!(lines[1]["task"], "t0");
    assert_eq!(lines[1]["attempt"], 1);
    assert_eq!(lines[1]["seq"], 2);
    assert!(lines[1]["time"].as_str().unwrap().ends_with('Z'));

    // Held by this process: the CLI fails at once, naming our pid.
    let _held = Journal::open(&jdir).unwrap();
    let out = events(data.path(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("is already in use by pid {}", std::process::id())),
        "{err}"
    );
}

#[test]
fn events_without_a_journal_says_so() {
    let data = tempfile::tempdir().unwrap();
    let out = events(data.path(), &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no journal in"));
}

/// A data dir the user cannot write: the open fails with the path and the OS error, exit 2.
/// As root (CI) permission bits do not bind, so the binary is run as `nobody` (uid 65534).
#[tokio::test]
async fn a_data_dir_without_write_permission_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = root.path().join("data");
    let jdir = data.join("journal");
    write_all(&jdir, run_events(run_id(1), 1)).await;
    let lock_before = std::fs::read(jdir.join("troupe.lock")).unwrap();
    let as_root = nix::unistd::geteuid().is_root();
    let mut cmd = if as_root {
        // nobody cannot reach the target dir under /root: run a copy of the binary.
        let bin = root.path().join("troupe");
        std::fs::copy(env!("CARGO_BIN_EXE_troupe"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new(&bin);
        c.uid(65534).gid(65534);
        c
    } else {
        troupe()
    };
    for d in [&data, &jdir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    std::fs::set_permissions(
        jdir.join("troupe.lock"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    let out = cmd
        .arg("--data-dir")
        .arg(&data)
        .arg("events")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    for d in [&data, &jdir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(err.contains(&jdir.display().to_string()), "{err}");
    // Nothing was changed or lost.
    assert_eq!(
        std::fs::read(jdir.join("troupe.lock")).unwrap(),
        lock_before
    );
    let journal = Journal::open(&jdir).unwrap();
    assert_eq!(replay(&journal).unwrap().events_applied, 3);
    let st = replay(&journal).unwrap().state;
    assert_eq!(
        st.run(run_id(1)).unwrap().task(0).state,
        TaskState::Succeeded
    );
}
