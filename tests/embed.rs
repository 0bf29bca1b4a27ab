//! The library API: two nodes in one process, and a node under a host's supervisor.

use troupe::executor::NoopExecutor;
use troupe::model::{parse_workflow, RunState};
use troupe::storage::Durability;
use troupe::Node;

fn chain(name: &str, n: usize) -> troupe::model::Workflow {
    let mut s = format!("name = \"{name}\"\n");
    for i in 0..n {
        s.push_str(&format!("[[task]]\nid = \"t{i}\"\ncommand = [\"true\"]\n"));
        if i > 0 {
            s.push_str(&format!("depends_on = [\"t{}\"]\n", i - 1));
        }
    }
    parse_workflow(&s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_in_one_process() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let a = Node::builder(a_dir.path())
        .executor(NoopExecutor)
        .durability(Durability::Buffered)
        .start()
        .await
        .unwrap();
    let b = Node::builder(b_dir.path())
        .workers(2)
        .start()
        .await
        .unwrap();
    let ra = a.submit(chain("a", 50)).await.unwrap();
    let rb = b.submit(chain("b", 5)).await.unwrap();
    // Each node knows only its own run.
    assert!(b.wait_for_run(ra).await.is_err());
    assert_eq!(a.wait_for_run(ra).await.unwrap(), RunState::Succeeded);
    assert_eq!(b.wait_for_run(rb).await.unwrap(), RunState::Succeeded);
    // Both have their own socket.
    assert!(a_dir.path().join("troupe.sock").exists());
    assert!(b_dir.path().join("troupe.sock").exists());
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    assert!(!a_dir.path().join("troupe.sock").exists());

    // After a shutdown the journal is free again, and a new node sees the finished run.
    let a = Node::builder(a_dir.path())
        .executor(NoopExecutor)
        .start()
        .await
        .unwrap();
    assert_eq!(a.wait_for_run(ra).await.unwrap(), RunState::Succeeded);
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmitting_an_unfinished_workflow_attaches() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(dir.path()).start().await.unwrap();
    node.request(troupe::messages::control::Request::Command(
        troupe::messages::control::Command::Halt { kill: false },
    ))
    .await
    .unwrap();
    let first = node.submit(chain("same", 3)).await.unwrap();
    let again = node.submit(chain("same", 3)).await.unwrap();
    let other = node.submit(chain("same", 4)).await.unwrap();
    assert_eq!(
        first, again,
        "same name and content while unfinished: attach"
    );
    assert_ne!(first, other, "different content: a new run");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_workflow_is_validated_in_full() {
    use troupe::storage::codec::{decode_message, encode_message};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(dir.path()).start().await.unwrap();
    // Decoding checks structure only; a zero cap slips through it.
    let mut spec = chain("zero", 2).spec().clone();
    spec.max_concurrency = Some(0);
    let bytes = encode_message(&spec).unwrap();
    let workflow: troupe::model::Workflow = decode_message(&bytes).unwrap();
    let err = node.submit(workflow).await.unwrap_err();
    assert!(err.to_string().contains("max_concurrency"), "{err}");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_taken_and_boot_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(dir.path())
        .executor(NoopExecutor)
        .snapshot_every(25)
        .start()
        .await
        .unwrap();
    let run = node.submit(chain("snap", 40)).await.unwrap();
    assert_eq!(node.wait_for_run(run).await.unwrap(), RunState::Succeeded);
    node.shutdown().await.unwrap();
    // 81 events: at least one snapshot, taken at a durable point, and a boot from it.
    let journal = troupe::storage::Journal::open(&dir.path().join("journal")).unwrap();
    let (seq, state) = journal.latest_snapshot().unwrap().expect("a snapshot");
    assert!(
        seq >= 25 && seq <= journal.last_seq().unwrap(),
        "snapshot at {seq}"
    );
    assert_eq!(state.last_seq(), seq);
    let replayed = troupe::storage::replay(&journal).unwrap();
    assert_eq!(replayed.snapshot_seq, Some(seq));
    assert_eq!(
        replayed.state.run(run).unwrap().state(),
        RunState::Succeeded
    );
    drop(journal);
    let node = Node::builder(dir.path())
        .executor(NoopExecutor)
        .start()
        .await
        .unwrap();
    assert_eq!(node.wait_for_run(run).await.unwrap(), RunState::Succeeded);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_model_holds_exactly_the_journal() {
    use troupe::messages::control::{Command, Request, Response, Target};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(dir.path())
        .executor(NoopExecutor)
        .snapshot_every(50)
        .start()
        .await
        .unwrap();
    let a = node.submit(chain("a", 30)).await.unwrap();
    // A run that is cancelled while it waits (halted), so the journal holds more than successes.
    node.request(Request::Command(Command::Halt { kill: false }))
        .await
        .unwrap();
    let b = node.submit(chain("b", 10)).await.unwrap();
    node.request(Request::Command(Command::Cancel(Target::Run(b))))
        .await
        .unwrap();
    node.request(Request::Command(Command::Unhalt))
        .await
        .unwrap();
    assert_eq!(node.wait_for_run(a).await.unwrap(), RunState::Succeeded);
    // A read is fresh: after it, the projection holds every event decided before it.
    assert!(matches!(
        node.request(Request::Node).await.unwrap(),
        Response::Node(_)
    ));
    let projected = node.shared().read.read().state.clone();
    let replayed = troupe::storage::replay(&node.shared().journal)
        .unwrap()
        .state;
    assert_eq!(projected, replayed);
    assert_eq!(
        projected.run(b).map(|r| r.state()),
        Some(RunState::Cancelled)
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_index_lists_what_a_scan_finds() {
    use troupe::messages::control::{Command, Request, Response, Target};
    use troupe::read::projection::{queue_order, Projection};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::builder(dir.path())
        .executor(NoopExecutor)
        .start()
        .await
        .unwrap();
    node.request(Request::Command(Command::Halt { kill: false }))
        .await
        .unwrap();
    let wf = parse_workflow(
        r#"
        name = "prio"
        [[task]]
        id = "low"
        command = ["true"]
        [[task]]
        id = "high"
        command = ["true"]
        priority = 5
        [[task]]
        id = "after"
        command = ["true"]
        depends_on = ["low"]
        [[task]]
        id = "gone"
        command = ["true"]
        "#,
    )
    .unwrap();
    let a = node.submit(wf).await.unwrap();
    let b = node.submit(chain("b", 5)).await.unwrap();
    node.request(Request::Command(Command::Cancel(Target::Task(
        a,
        "gone".parse().unwrap(),
    ))))
    .await
    .unwrap();
    node.request(Request::Command(Command::Cancel(Target::Run(b))))
        .await
        .unwrap();
    let Response::Queue(q) = node
        .request(Request::Queue {
            waiting: false,
            limit: 10,
        })
        .await
        .unwrap()
    else {
        panic!("not a queue")
    };
    let ids: Vec<&str> = q.entries.iter().map(|e| e.task.as_str()).collect();
    assert_eq!(ids, ["high", "low"]);
    assert_eq!(q.total, 2);
    // The index equals what a scan of the projection finds, and a fresh index of the same
    // state.
    let p = node.shared().read.read().clone();
    let w = &*p.weights;
    let mut scan: Vec<_> = p
        .state
        .runs()
        .flat_map(|r| (0..r.tasks().len() as u32).filter_map(move |t| queue_order(r, t, false, w)))
        .collect();
    scan.sort();
    assert_eq!(p.queue.iter().copied().collect::<Vec<_>>(), scan);
    let rebuilt = Projection::new(p.state.clone(), p.last_progress, p.weights.clone());
    assert_eq!(rebuilt.queue, p.queue);
    assert_eq!(rebuilt.running, p.running);
    node.shutdown().await.unwrap();
}
