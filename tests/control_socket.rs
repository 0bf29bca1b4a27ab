//! The control socket against careless or hostile peers, and what the CLI says when a node
//! cannot be reached: the real binary and a real node.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use troupe::actors::control::MAX_CONNECTIONS;
use troupe::messages::control::HANDSHAKE_TIMEOUT;

/// Whether the node has already written something (a refusal) to `s` (consumes it).
fn has_data(mut s: &UnixStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(n) if n > 0)
}

#[test]
fn connections_over_the_limit_are_refused_and_the_node_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    let sock = dir.join("troupe.sock");
    let mut attempts = 0;
    let o = loop {
        attempts += 1;
        let opened = Instant::now();
        let idle: Vec<UnixStream> = (0..MAX_CONNECTIONS)
            .map(|_| UnixStream::connect(&sock).unwrap())
            .collect();
        let o = run(&dir, &["status"]);
        // Conclusive only if every idle connection was still held when `status` connected:
        // none was refused (a permit of an earlier connection not yet given back) and none
        // had reached the handshake timeout.
        let conclusive = opened.elapsed() < HANDSHAKE_TIMEOUT - Duration::from_secs(1)
            && !idle.iter().any(has_data);
        drop(idle);
        if conclusive {
            break o;
        }
        assert!(
            attempts < 3,
            "no conclusive attempt in 3 (machine too slow?)"
        );
    };
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("too many connections (limit {MAX_CONNECTIONS})")),
        "{err}"
    );
    assert!(!err.contains("no node serves"), "{err}");

    // The idle connections are gone: the node serves again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = run(&dir, &["status"]);
        if o.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status still fails after the idle connections closed: {}",
            stderr(&o)
        );
    }
}

#[test]
fn a_connection_that_sends_no_hello_is_closed_after_the_handshake_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    let mut s = UnixStream::connect(dir.join("troupe.sock")).unwrap();
    let connected = Instant::now();
    s.set_read_timeout(Some(HANDSHAKE_TIMEOUT + Duration::from_secs(10)))
        .unwrap();
    let mut b = [0u8; 1];
    let n = s
        .read(&mut b)
        .expect("the node closes the connection (EOF), not the read timeout");
    assert_eq!(n, 0, "EOF, no data");
    // The node's clock starts when it accepts, after `connect` returned.
    assert!(
        connected.elapsed() >= HANDSHAKE_TIMEOUT - Duration::from_millis(50),
        "closed after {:?}, before the handshake timeout",
        connected.elapsed()
    );
}

#[test]
fn an_oversized_hello_is_refused_without_reading_it() {
    use std::io::Write;
    use troupe::messages::control::{HelloReply, MAX_HELLO_BYTES};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    let mut s = UnixStream::connect(dir.join("troupe.sock")).unwrap();
    // Only the length prefix: the node must not wait for the body.
    s.write_all(&(MAX_HELLO_BYTES + 1).to_be_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("a refusal, at once");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    match troupe::storage::codec::decode_message::<HelloReply>(&body).unwrap() {
        HelloReply::Refused { reason, .. } => assert!(
            reason.contains(&format!("outside 1..={MAX_HELLO_BYTES}")),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_peer_of_another_uid_is_told_why_it_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run the CLI as uid 65534");
        return;
    }
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    // Let uid 65534 reach the socket and run the binary (the target dir may be under a 0700
    // home): the data dir, the socket, and a copy of the binary beside them.
    let bin = binary_in(tmp.path());
    for (path, mode) in [
        (tmp.path(), 0o755),
        (dir.as_path(), 0o755),
        (&dir.join("troupe.sock"), 0o666),
        (&bin, 0o755),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let o = std::process::Command::new(&bin)
        .arg("--data-dir")
        .arg(&dir)
        .arg("status")
        .env("RUST_LOG", "warn")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("refused") && err.contains("uid 65534 may not control a node of uid 0"),
        "{err}"
    );
    assert!(!err.contains("Broken pipe"), "{err}");
}

#[test]
fn a_stopped_node_is_reported_as_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let node = NodeProc::start(&dir, &[]);
    let pid = Pid::from_raw(node.child.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    let o = run(&dir, &["status"]);
    kill(pid, Signal::SIGCONT).unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains(&format!("a node (pid {pid}) holds")), "{err}");
    assert!(err.contains("the process is stopped"), "{err}");
    assert!(err.contains(&format!("`kill -CONT {pid}`")), "{err}");
    // Continued, it answers again.
    run_cmd_ok(&dir, &["status"]);
}

#[test]
fn a_node_whose_socket_was_deleted_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let node = NodeProc::start(&dir, &[]);
    std::fs::remove_file(dir.join("troupe.sock")).unwrap();
    let o = run(&dir, &["status"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "{} is already in use by pid {}",
            dir.display(),
            node.child.id()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "its socket {} is missing",
            dir.join("troupe.sock").display()
        )),
        "{err}"
    );
    assert!(!err.contains("no node serves"), "{err}");
}

#[test]
fn a_data_dir_that_is_a_file_is_not_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data");
    std::fs::write(&file, b"not a data dir").unwrap();
    for args in [&["status"][..], &["events"]] {
        let o = run(&file, args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!("{} is not a directory", file.display())),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn events_follow_says_the_node_went_away_when_it_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut node = NodeProc::start(&dir, &[]);
    let wf = workflow(
        tmp.path(),
        "one.toml",
        "name = \"one\"\n[[task]]\nid = \"a\"\nshell = \"true\"\n",
    );
    let run_id = submit(&dir, &wf);
    wait_finished(&dir, &run_id, 60);

    let mut follow = troupe(&dir)
        .args(["events", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for its first line: it is connected and reading.
    let rx = lines_of(follow.stdout.take().unwrap());
    rx.recv_timeout(Duration::from_secs(60))
        .expect("events --follow prints the run's events");

    node.kill9();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = follow.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = follow.kill();
            panic!("events --follow still running 60 s after the node was killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    follow
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(err.contains("went away (it stopped or crashed)"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
}
