//! What each fuzz target does with its input, shared by the targets (`fuzz_targets/*.rs`)
//! and the regression tests of troupe (`tests/fuzz_regressions.rs` includes this file), so a
//! crashing input kept in `tests/fuzz-regressions/TARGET/` is fed to exactly the code that
//! crashed. Each function returns for any input: `Ok` when the entry point accepted it, the
//! error message when it refused it; a panic is a finding.

#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use troupe::messages::control::{
    read_frame, read_frame_within, Hello, HelloReply, Request, Response, MAX_HELLO_BYTES,
};
use troupe::model::parse::WorkflowFormat;
use troupe::model::{Event, EventRecord, State, Timestamp, Workflow};
use troupe::storage::codec::{decode_event, decode_snapshot, encode_event, HEADER_LEN};

/// The fuzz targets, by name (the directory names under `tests/fuzz-regressions/`).
pub const TARGETS: [&str; 5] = [
    "workflow_toml",
    "workflow_json",
    "control_frame",
    "journal_record",
    "node_config",
];

/// Runs the target `name` on `data`.
pub fn run(name: &str, data: &[u8]) -> Result<(), String> {
    match name {
        "workflow_toml" => workflow(WorkflowFormat::Toml, data),
        "workflow_json" => workflow(WorkflowFormat::Json, data),
        "control_frame" => control_frame(data),
        "journal_record" => journal_record(data),
        "node_config" => node_config(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// A workflow file's bytes, as `troupe submit` reads them. One that parses must also pass
/// the node's own check ([`Workflow::from_spec`], what a submit over the socket gets) and
/// come back equal from the journal's codec (what replay reads).
pub fn workflow(format: WorkflowFormat, data: &[u8]) -> Result<(), String> {
    let wf = format.parse_bytes(data).map_err(|e| e.to_string())?;
    if let Err(e) = Workflow::from_spec(wf.spec().clone()) {
        panic!("parsed, but the node's check refuses it: {e}");
    }
    let run = troupe::model::RunId::from_ulid(ulid::Ulid::from_parts(1, 1));
    let record = EventRecord {
        time: Timestamp(1),
        event: Event::RunSubmitted {
            run,
            workflow: std::sync::Arc::new(wf),
        },
    };
    let bytes = encode_event(1, &record).expect("an accepted workflow encodes");
    let back = decode_event(1, &bytes).expect("an encoded workflow decodes");
    // Compared as bytes too: a float of the spec may be NaN, which equals nothing.
    let again = encode_event(1, &back).expect("a decoded workflow encodes");
    assert_eq!(again, bytes, "the journal's codec changes the workflow");
    Ok(())
}

/// Polls `f` once: the readers here are byte slices, which never wait.
fn now<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a read from a byte slice waited"),
    }
}

/// Bytes a peer sends on a control connection, read as the node reads them (a hello within
/// its limit, then requests until an error or the end, each workflow checked as the node
/// checks it), and as the client reads a node's bytes (a hello reply, then responses).
/// `Ok` when the node side read a hello and requests to the end of the bytes.
pub fn control_frame(data: &[u8]) -> Result<(), String> {
    let mut client_side = data;
    if let Ok(Some(_)) = now(read_frame::<HelloReply, _>(&mut client_side)) {
        while let Ok(Some(_)) = now(read_frame::<Response, _>(&mut client_side)) {}
    }
    let mut node_side = data;
    match now(read_frame_within::<Hello, _>(
        &mut node_side,
        MAX_HELLO_BYTES,
    )) {
        Ok(Some(_)) => {}
        Ok(None) => return Err("no hello".into()),
        Err(e) => return Err(e.to_string()),
    }
    loop {
        let request = match now(read_frame::<Request, _>(&mut node_side)) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let spec = match &request {
            Request::Submit(wf) => Some(wf.spec().clone()),
            Request::Spawn(req) => Some(req.workflow.spec().clone()),
            _ => None,
        };
        if let Some(spec) = spec {
            let _ = Workflow::from_spec(spec);
        }
    }
}

/// A journal value: byte 0 picks the mode, bytes 1..9 are the sequence number (u64 LE).
/// Even mode: the rest is the stored value as is (nearly always a checksum mismatch). Odd
/// mode: the rest is the envelope's first 3 bytes (format, schema) and a payload, and the
/// CRC32C is filled in so the payload reaches the decoder. A decoded event is encoded again
/// and must decode to the same encoding; it is then folded into an empty state.
/// `Ok` when the value decodes as an event or as a snapshot.
pub fn journal_record(data: &[u8]) -> Result<(), String> {
    if data.len() < 9 {
        return Err("shorter than the mode byte and sequence number".into());
    }
    let seq = u64::from_le_bytes(data[1..9].try_into().expect("8 bytes"));
    let rest = &data[9..];
    let value = if data[0] & 1 == 0 || rest.len() < 3 {
        rest.to_vec()
    } else {
        let (head, payload) = rest.split_at(3);
        let crc = crc32c::crc32c(&seq.to_be_bytes());
        let crc = crc32c::crc32c_append(crc, head);
        let crc = crc32c::crc32c_append(crc, payload);
        let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
        v.extend_from_slice(head);
        v.extend_from_slice(&crc.to_le_bytes());
        v.extend_from_slice(payload);
        v
    };
    let event = decode_event(seq, &value);
    if let Ok(record) = &event {
        // Compared as bytes: a decoded float may be NaN, which equals nothing.
        let again = encode_event(seq, record).expect("a decoded event encodes");
        let back = decode_event(seq, &again).expect("a re-encoded event decodes");
        assert_eq!(
            encode_event(seq, &back).expect("a decoded event encodes"),
            again,
            "event {seq} changes through decode and encode"
        );
        let _ = State::new().apply(seq.max(1), record);
    }
    match (event, decode_snapshot(seq, &value)) {
        (Err(e), Err(_)) => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// A `troupe.toml`, as `troupe node start` reads it: `${VAR}` substituted (from a fixed
/// environment), then parsed and checked. One that is accepted is rendered as
/// `--print-config` renders it, and that rendering must be accepted too and render the same.
pub fn node_config(data: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
    let env = |var: &str| match var {
        "HOME" => Some("/home/troupe".to_owned()),
        "WORKERS" => Some("4".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let text = troupe::config::substitute(text, "troupe.toml", env).map_err(|e| e.to_string())?;
    let file = troupe::config::parse(&text, "troupe.toml").map_err(|e| e.to_string())?;
    let mut cfg = troupe::NodeConfig::new("/var/lib/troupe");
    file.apply(&mut cfg);
    let rendered = troupe::config::render(&cfg);
    let again = match troupe::config::parse(&rendered, "rendered") {
        Ok(f) => f,
        Err(e) => panic!("--print-config output is refused: {e}\n{rendered}"),
    };
    let mut cfg2 = troupe::NodeConfig::new("/var/lib/troupe");
    again.apply(&mut cfg2);
    assert_eq!(
        troupe::config::render(&cfg2),
        rendered,
        "the rendered config reads back different"
    );
    Ok(())
}
