//! The soak's mixed workload and its client: workflows that exercise retries, timeouts,
//! approvals, sagas, outputs with fan-out and child runs, and a thread that keeps submitting
//! them and deciding approvals through the control socket while the node lives, recording
//! every acknowledgement it gets.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use troupe::client::Client;
use troupe::messages::control::{Command, Request, Response};
use troupe::model::event::Approver;
use troupe::model::parse::WorkflowFormat;
use troupe::model::{RunId, TaskId, Workflow};

/// Retries unlimited, so interruptions never exhaust a budget and every run ends.
const FOREVER: &str = "retry = { max_attempts = 0, initial_interval = \"20ms\" }\n\
compensate_retry = { max_attempts = 0, initial_interval = \"20ms\" }\n";

/// The workflow kinds, one submitted after another. `@N@` is the submission's number (each
/// name is unique: a workflow equal to an unfinished run's would attach to it), `@S@` the
/// scratch folder.
const KINDS: [(&str, &str); 6] = [
    (
        "retry",
        // Fails twice, then succeeds; a dependent follows.
        "[[task]]\nid = \"flaky\"\nshell = \"[ \\\"$TROUPE_ATTEMPT\\\" -ge 3 ]\"\n\
         [[task]]\nid = \"after\"\nshell = \"sleep 0.05\"\ndepends_on = [\"flaky\"]\n",
    ),
    (
        "timeout",
        // The first attempt outlives its timeout; the second is quick.
        "[[task]]\nid = \"slow\"\ntimeout = \"150ms\"\n\
         shell = \"if [ \\\"$TROUPE_ATTEMPT\\\" -eq 1 ]; then sleep 2; fi\"\n",
    ),
    (
        "approval",
        // A saga step, then a gate the client approves (or, one time in four, rejects: the
        // step is then compensated).
        "[[task]]\nid = \"prepare\"\nshell = \"sleep 0.02\"\ncompensate_shell = \"sleep 0.02\"\n\
         [[task]]\nid = \"gate\"\nshell = \"true\"\nrequires_approval = true\n\
         depends_on = [\"prepare\"]\n",
    ),
    (
        "saga",
        // Two parallel steps after a first, then a step that fails for good: the three are
        // undone, newest completion first.
        "[[task]]\nid = \"a\"\nshell = \"sleep 0.05\"\ncompensate_shell = \"sleep 0.05\"\n\
         [[task]]\nid = \"b\"\nshell = \"sleep 0.05\"\ncompensate_shell = \"sleep 0.05\"\n\
         depends_on = [\"a\"]\n\
         [[task]]\nid = \"c\"\nshell = \"sleep 0.03\"\ncompensate_shell = \"sleep 0.05\"\n\
         depends_on = [\"a\"]\n\
         [[task]]\nid = \"boom\"\nshell = \"exit 1\"\nretry = { max_attempts = 1 }\n\
         depends_on = [\"b\", \"c\"]\n",
    ),
    (
        "fanout",
        // An output with a list, one instance per element, a task reading their outputs.
        "[[task]]\nid = \"list\"\n\
         shell = \"echo '{\\\"items\\\": [1, 2, 3, 4]}' > \\\"$TROUPE_OUTPUT\\\"\"\n\
         [[task]]\nid = \"each\"\ndepends_on = [\"list\"]\n\
         for_each = \"{{ tasks.list.output.items }}\"\n\
         shell = \"echo \\\"$TROUPE_ITEM\\\" > \\\"$TROUPE_OUTPUT\\\"\"\n\
         [[task]]\nid = \"sum\"\ndepends_on = [\"each\"]\nshell = \"test -s \\\"$TROUPE_INPUTS\\\"\"\n",
    ),
    (
        "child",
        // Spawns a child run (idempotent by key across retries), records its id once
        // `troupe spawn` acknowledged it, and waits for it.
        "[[task]]\nid = \"parent\"\n\
         shell = '''c=$(troupe spawn --key kid --detach @S@/child.toml) || exit 9\n\
         echo \"$c\" >> @S@/children\n\
         troupe wait \"$c\" > /dev/null'''\n",
    ),
];

/// The child run's workflow (in `@S@/child.toml`).
const CHILD: &str = "name = \"soak-child\"\n[[task]]\nid = \"work\"\nshell = \"sleep 0.03\"\n";

/// Submission `n`: its kind's workflow, validated and anchored in `scratch`.
pub fn workflow(n: u64, scratch: &Path) -> Workflow {
    let (kind, tasks) = KINDS[n as usize % KINDS.len()];
    let text = format!("name = \"soak-{kind}-{n}\"\n[defaults]\n{FOREVER}{tasks}")
        .replace("@S@", scratch.to_str().unwrap());
    let wf = WorkflowFormat::Toml
        .parse_bytes(text.as_bytes())
        .unwrap_or_else(|e| panic!("soak workflow {kind}: {e}"));
    troupe::workflow_file::anchor(wf, scratch).unwrap()
}

/// Writes the child workflow into `scratch`.
pub fn write_child(scratch: &Path) {
    std::fs::write(scratch.join("child.toml"), CHILD).unwrap();
}

/// The child runs whose ids `troupe spawn` printed to a parent task (one per line of
/// `scratch/children`; a line cut by a kill is not an acknowledgement and is skipped).
pub fn acknowledged_children(scratch: &Path) -> Vec<RunId> {
    std::fs::read_to_string(scratch.join("children"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// What the client was told, shared with the test thread.
#[derive(Debug, Default)]
pub struct Acks {
    /// Runs whose submission the node answered `Submitted`.
    pub runs: Vec<RunId>,
    /// Approval decisions the node answered `Done`.
    pub decisions: Vec<(RunId, TaskId)>,
}

/// Client modes, set by the test.
pub const SUBMIT: u8 = 0;
/// Decide approvals only (the end of the soak: let every run finish).
pub const DRAIN: u8 = 1;
/// Stop the thread.
pub const STOP: u8 = 2;

/// The client thread: while the node answers, submits one workflow every `every` (in
/// [`SUBMIT`] mode) and decides the pending approvals (approve, or reject one time in four).
/// Connection failures (the node is dead or booting) are simply retried; no connection is
/// tried while `gate` is held.
// The gate's guard spans the connect on purpose (a current-thread runtime, so no deadlock).
#[allow(clippy::await_holding_lock)]
pub fn spawn_client(
    data: PathBuf,
    scratch: PathBuf,
    every: Duration,
    mode: Arc<AtomicU8>,
    acks: Arc<Mutex<Acks>>,
    gate: Arc<Mutex<()>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut n: u64 = 0;
        let mut decided: u64 = 0;
        rt.block_on(async move {
            let mut client: Option<Client> = None;
            loop {
                let m = mode.load(Ordering::SeqCst);
                if m == STOP {
                    return;
                }
                tokio::time::sleep(every).await;
                let c = match client.as_mut() {
                    Some(c) => c,
                    None => {
                        // Not while the test reads the journal (see `check_stopped`).
                        let Ok(_gate) = gate.try_lock() else {
                            continue;
                        };
                        match Client::connect(&data).await {
                            Ok(c) => client.insert(c),
                            Err(_) => continue,
                        }
                    }
                };
                if m == SUBMIT {
                    let wf = workflow(n, &scratch);
                    match c.request(&Request::Submit(Box::new(wf))).await {
                        Ok(Response::Submitted { run, .. }) => {
                            acks.lock().unwrap().runs.push(run);
                            n += 1;
                        }
                        Ok(other) => eprintln!("soak: submission {n} answered {other:?}"),
                        Err(_) => {
                            client = None;
                            continue;
                        }
                    }
                }
                let pending = match c.request(&Request::Approvals).await {
                    Ok(Response::Approvals(p)) => p,
                    _ => {
                        client = None;
                        continue;
                    }
                };
                for p in pending {
                    let approver = Approver {
                        name: "soak".into(),
                        os_user: String::new(),
                        reason: None,
                    };
                    let (run, task) = (p.run, p.task.clone());
                    let cmd = if decided % 4 == 3 {
                        Command::Reject {
                            run,
                            task,
                            approver,
                        }
                    } else {
                        Command::Approve {
                            run,
                            task,
                            approver,
                        }
                    };
                    match c.request(&Request::Command(cmd)).await {
                        Ok(Response::Done) => {
                            decided += 1;
                            acks.lock().unwrap().decisions.push((p.run, p.task));
                        }
                        Ok(_) => {}
                        Err(_) => {
                            client = None;
                            break;
                        }
                    }
                }
            }
        })
    })
}
