//! The inputs the fuzz targets (`fuzz/`, docs/benchmarks.md "Fuzzing") found crashing, fed to
//! the same entry points through the same harness (`fuzz/harness.rs`): each must be handled
//! without a panic, and a refused one with an error message. A new crash goes in
//! `tests/fuzz-regressions/TARGET/` (named by what it found) with its fix.
//!
//! Also checks the committed seeds (`fuzz/seeds/TARGET/`) are inputs the entry points accept,
//! so the fuzzers start from deep inside them. `TROUPE_WRITE_FUZZ_SEEDS=1` rewrites the binary
//! seeds (control frames, journal records) from the current encodings first.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use troupe::messages::control::{write_frame, Hello, Request, Subscription};
use troupe::model::{parse_workflow, Event, EventRecord, RunId, State, Timestamp};
use troupe::storage::codec::{encode_event, encode_snapshot, HEADER_LEN};

/// The files in `ROOT/TARGET/` (dotfiles skipped), sorted.
fn inputs(root: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(root)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_kept_crash_is_handled_with_a_clean_error() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for target in harness::TARGETS {
        for (path, data) in inputs("tests/fuzz-regressions", target) {
            checked += 1;
            match std::panic::catch_unwind(|| harness::run(target, &data)) {
                Err(_) => failures.push(format!("{}: panics", path.display())),
                Ok(Err(message)) if message.trim().is_empty() => {
                    failures.push(format!("{}: refused without a message", path.display()))
                }
                Ok(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    eprintln!("{checked} kept inputs handled");
}

#[test]
fn the_seeds_are_accepted() {
    if std::env::var_os("TROUPE_WRITE_FUZZ_SEEDS").is_some() {
        write_binary_seeds();
    }
    for target in harness::TARGETS {
        let seeds = inputs("fuzz/seeds", target);
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for (path, data) in seeds {
            if let Err(e) = harness::run(target, &data) {
                panic!("seed {} is refused: {e}", path.display());
            }
        }
    }
}

/// Writes the control-frame and journal-record seeds.
fn write_binary_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let release = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/release.toml"),
    )
    .unwrap();
    let wf = parse_workflow(&release).unwrap();
    let run = RunId::from_ulid(ulid::Ulid::from_parts(1_700_000_000_000, 7));

    let frames = |requests: &[Request]| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut out = Vec::new();
            write_frame(&mut out, &Hello::current()).await.unwrap();
            for r in requests {
                write_frame(&mut out, r).await.unwrap();
            }
            out
        })
    };
    let dir = root.join("control_frame");
    std::fs::write(
        dir.join("reads"),
        frames(&[
            Request::Node,
            Request::List,
            Request::Run(run),
            Request::Queue {
                waiting: true,
                limit: 10,
            },
        ]),
    )
    .unwrap();
    std::fs::write(
        dir.join("submit"),
        frames(&[Request::Submit(Box::new(wf.clone()))]),
    )
    .unwrap();
    std::fs::write(
        dir.join("follow"),
        frames(&[Request::Subscribe(Subscription::Events {
            run: None,
            after: 0,
        })]),
    )
    .unwrap();

    // Mode byte, sequence number, then the envelope without its CRC (the harness fills it).
    let record = |mode: u8, seq: u64, envelope: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(&seq.to_le_bytes());
        if mode & 1 == 1 {
            v.extend_from_slice(&envelope[..3]);
            v.extend_from_slice(&envelope[HEADER_LEN..]);
        } else {
            v.extend_from_slice(envelope);
        }
        v
    };
    let submitted = EventRecord {
        time: Timestamp(1_700_000_000_000),
        event: Event::RunSubmitted {
            run,
            workflow: Arc::new(wf),
        },
    };
    let halted = EventRecord {
        time: Timestamp(1_700_000_000_001),
        event: Event::NodeHalted { kill: false },
    };
    let dir = root.join("journal_record");
    let e1 = encode_event(1, &submitted).unwrap();
    std::fs::write(dir.join("run-submitted"), record(1, 1, &e1)).unwrap();
    std::fs::write(dir.join("run-submitted-raw"), record(0, 1, &e1)).unwrap();
    let e2 = encode_event(2, &halted).unwrap();
    std::fs::write(dir.join("node-halted"), record(1, 2, &e2)).unwrap();
    let mut state = State::new();
    state.apply(1, &submitted).unwrap();
    let snap = encode_snapshot(&state).unwrap();
    std::fs::write(dir.join("snapshot"), record(1, 1, &snap)).unwrap();
}
