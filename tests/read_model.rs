//! The read side (CQRS) against the real binary: reads come from the projection of the
//! committed events, subscriptions push what becomes durable, and bad subscribers cannot hold
//! up the node.

mod common;

use std::time::{Duration, Instant};

use common::*;
use troupe::client::Client;
use troupe::messages::control::{ControlError, Request, Response, Subscription};
use troupe::model::RunId;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A workflow of `n` independent `true` tasks.
fn many(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let mut text = String::from("name = \"many\"\n");
    for i in 0..n {
        text.push_str(&format!("[[task]]\nid = \"t{i}\"\ncommand = [\"true\"]\n"));
    }
    workflow(dir, "many.toml", &text)
}

#[test]
fn a_run_subscription_pushes_progress_and_ends_when_the_run_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &["--workers", "4"]);
    let wf = many(tmp.path(), 40);
    let run: RunId = submit(&dir, &wf).parse().unwrap();
    rt().block_on(async {
        let c = Client::connect(&dir).await.unwrap();
        let mut s = c.subscribe(Subscription::Run(run)).await.unwrap();
        let mut frames = Vec::new();
        while let Some(frame) = tokio::time::timeout(Duration::from_secs(60), s.next())
            .await
            .expect("a frame within 60 s")
            .unwrap()
        {
            match frame {
                Response::Runs(v) => frames.push(v[0].clone()),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        let last = frames.last().expect("at least one frame");
        assert!(last.state.is_finished(), "{last:?}");
        assert_eq!(last.succeeded, 40);
        // Frames only move forward.
        for w in frames.windows(2) {
            assert!(w[0].succeeded <= w[1].succeeded, "{frames:?}");
            assert_ne!(w[0], w[1], "an unchanged frame was pushed");
        }
    });
}

#[test]
fn subscribing_to_an_unknown_run_is_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    let unknown = RunId::from_ulid(ulid::Ulid::from_parts(1, 1));
    rt().block_on(async {
        for sub in [
            Subscription::Run(unknown),
            Subscription::Events {
                run: Some(unknown),
                after: 0,
            },
        ] {
            let c = Client::connect(&dir).await.unwrap();
            let mut s = c.subscribe(sub).await.unwrap();
            match s.next().await.unwrap() {
                Some(Response::Error(e @ ControlError::NotFound(_))) => {
                    assert_eq!(e.exit_code(), 2);
                    assert!(e.to_string().contains(&unknown.to_string()), "{e}");
                }
                other => panic!("expected not found, got {other:?}"),
            }
            assert!(s.next().await.unwrap().is_none(), "the stream ends");
        }
    });
}

#[test]
fn events_follow_of_an_unknown_run_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    let unknown = RunId::from_ulid(ulid::Ulid::from_parts(1, 1)).to_string();
    let o = run(&dir, &["events", "--run", &unknown, "--follow"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("no run {unknown}")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_subscriber_that_never_reads_is_dropped_and_the_node_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &["--workers", "8"]);
    // 200 tasks with an 8 KB argument each: the run's `run_submitted` event alone (~1.6 MB)
    // is more than a socket buffer holds.
    let arg = "x".repeat(8 << 10);
    let mut text = String::from("name = \"big\"\n");
    for i in 0..200 {
        text.push_str(&format!(
            "[[task]]\nid = \"t{i}\"\ncommand = [\"true\", \"{arg}\"]\n"
        ));
    }
    let wf = workflow(tmp.path(), "big.toml", &text);
    rt().block_on(async {
        // Subscribe to every event and never read.
        let c = Client::connect(&dir).await.unwrap();
        let mut stalled = c
            .subscribe(Subscription::Events {
                run: None,
                after: 0,
            })
            .await
            .unwrap();
        let run = submit(&dir, &wf);
        // The node finishes the run although the subscriber's socket is full.
        let v = wait_finished(&dir, &run, 120);
        assert_eq!(v["state"], "succeeded");
        // The node closes the connection of the subscriber that does not read (seen
        // without reading: the peer hung up).
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stalled);
        let hung_up = tokio::task::spawn_blocking(move || {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLRDHUP,
                revents: 0,
            };
            // SAFETY: one valid pollfd; the descriptor stays open (`stalled` lives on).
            let n = unsafe { libc::poll(&mut p, 1, 30_000) };
            n == 1 && p.revents & libc::POLLRDHUP != 0
        })
        .await
        .unwrap();
        assert!(hung_up, "the node did not drop the subscriber within 30 s");
        // Draining its socket ends in a "too slow" error frame or a cut frame, not in an
        // endless stream.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut frames = 0;
        let ended = loop {
            assert!(Instant::now() < deadline, "still streaming after 30 s");
            match tokio::time::timeout(Duration::from_secs(20), stalled.next()).await {
                Ok(Ok(Some(Response::Events(_)))) => frames += 1,
                Ok(Ok(Some(Response::Error(e)))) => break Some(e),
                Ok(Ok(None)) | Ok(Err(_)) => break None,
                Ok(Ok(Some(other))) => panic!("unexpected frame {other:?}"),
                Err(_) => panic!("the node neither streams nor closes the subscription"),
            }
        };
        if let Some(e) = ended {
            assert!(matches!(e, ControlError::TooSlow(_)), "{e:?}");
        }
        // It was cut off before the end of the run's events.
        let all = events(&dir).len();
        assert!(frames < all, "{frames} frames for {all} events");
    });
    // The node still answers.
    run_cmd_ok(&dir, &["status"]);
}

#[test]
fn clients_that_disconnect_mid_stream_free_their_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    rt().block_on(async {
        // More than the node's connection limit (256), one after another: each one's
        // subscription must end when it goes away, or the later ones would be refused.
        for i in 0..300 {
            let c = Client::connect(&dir)
                .await
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
            let sub = if i % 2 == 0 {
                Subscription::Dashboard {
                    limit: 5,
                    every: Duration::from_millis(50),
                }
            } else {
                Subscription::Events {
                    run: None,
                    after: 0,
                }
            };
            let mut s = c.subscribe(sub).await.unwrap();
            if i % 2 == 0 {
                assert!(matches!(
                    s.next().await.unwrap(),
                    Some(Response::Dashboard(_))
                ));
            }
            drop(s);
        }
    });
    run_cmd_ok(&dir, &["status"]);
}

#[test]
fn reads_during_a_scheduler_restart_are_current_or_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &["--workers", "2"]);
    let wf = workflow(
        tmp.path(),
        "w.toml",
        "name = \"w\"\n[[task]]\nid = \"a\"\ncommand = [\"sleep\", \"30\"]\n",
    );
    let run: RunId = submit(&dir, &wf).parse().unwrap();
    wait_until(&dir, &run.to_string(), 30, |v| {
        task_state(v, "a") == "running"
    });
    rt().block_on(async {
        // Connected before the panic: the control server restarts with the scheduler (it is
        // later in the supervisor's rest_for_one order), but open connections go on.
        let mut reader = Client::connect(&dir).await.unwrap();
        let d = dir.clone();
        let _ = std::thread::spawn(move || inject_panic(&d, "scheduler"))
            .join()
            .unwrap();
        // Right after the panic: every answer is either "node restarting" or a view that
        // matches the journal (the attempt was interrupted by the restart and retried, or
        // is still running) — never an error of another kind.
        for _ in 0..50 {
            match reader.request(&Request::Node).await.unwrap() {
                Response::Node(v) => assert!(v.last_seq > 0),
                Response::Error(ControlError::Internal(m)) => {
                    assert!(m.contains("node restarting"), "{m}")
                }
                other => panic!("unexpected {other:?}"),
            }
            match reader.request(&Request::Run(run)).await.unwrap() {
                Response::Run(v) => assert_eq!(v.tasks.len(), 1),
                Response::Error(ControlError::Internal(m)) => {
                    assert!(m.contains("node restarting"), "{m}")
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // Once restarted, the view shows what the new scheduler journaled: the old attempt
        // closed as interrupted, a new one started.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Response::Run(v) = reader.request(&Request::Run(run)).await.unwrap() {
                if v.tasks[0].attempts >= 2 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no second attempt after the restart"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    run_cmd_ok(&dir, &["cancel", &run.to_string()]);
}

#[test]
fn a_command_is_visible_to_the_next_read_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    let wf = workflow(
        tmp.path(),
        "w.toml",
        "name = \"w\"\n[[task]]\nid = \"a\"\ncommand = [\"sleep\", \"30\"]\n[[task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n",
    );
    for _ in 0..20 {
        let run = submit(&dir, &wf);
        // Read-your-writes: the submission, then the cancel, are in the very next read.
        let v = run_status(&dir, &run);
        assert_eq!(v["state"], "running");
        run_cmd_ok(&dir, &["cancel", &run]);
        let v = run_status(&dir, &run);
        assert_eq!(v["state"], "cancelled", "{v}");
    }
}
