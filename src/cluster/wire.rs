//! What crosses the wire between a coordinator and its worker nodes: two message enums, one
//! per direction, encoded with bincode inside ractor_cluster's cast frames.
//!
//! Every message a worker sends names its node and the lease (`epoch`) it holds; the
//! coordinator checks both against the journal before it believes anything (fencing). A
//! worker learns nothing but what its attempts need: an order carries the task's own spec
//! (its effective environment only), stubs of the tasks it reads (ids, nothing else), and
//! the outputs it reads — never the rest of the workflow.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::messages::scheduler::{AttemptId, AttemptOutcome};
use crate::model::spec::{Command, TaskSpec, WorkflowSpec};
use crate::model::template::{self, Root};
use crate::model::{TaskId, TaskIndex, Workflow};

/// Version of this protocol; a worker speaking another is refused at join.
pub const PROTOCOL: u32 = 1;

/// The process group the coordinator's gateway joins (workers find it there).
pub const COORDINATOR_GROUP: &str = "troupe.coordinator";

/// The name of the coordinator's ractor_cluster node.
pub const COORDINATOR_NAME: &str = "troupe-coordinator";

/// The process group a worker node's agent joins: `troupe.worker.NODE`.
pub fn worker_group(node: &str) -> String {
    format!("troupe.worker.{node}")
}

/// The newest member of process group `group` that is not stopping (a peer's actor as its
/// session advertised it), or `None`.
pub fn live_member<M: ractor::Message>(group: &str) -> Option<ractor::ActorRef<M>> {
    ractor::pg::get_members(&group.to_owned())
        .into_iter()
        .rev()
        .find(|c| {
            !matches!(
                c.get_status(),
                ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped
            )
        })
        .map(ractor::ActorRef::<M>::from)
}

/// Worker → coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToCoordinator {
    /// Asks for a lease (first join, or again after losing contact).
    Join(Box<Join>),
    /// "Still here": renews the lease.
    Heartbeat {
        /// The node.
        node: String,
        /// Its lease.
        epoch: u64,
        /// Attempts it runs now.
        running: u32,
    },
    /// How an attempt ended; resent until acknowledged.
    Result(Box<WireResult>),
    /// The worker stops (drained, or told to): its lease ends without loss.
    Leaving {
        /// The node.
        node: String,
        /// Its lease.
        epoch: u64,
    },
}

/// A worker's request for a lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Join {
    /// Its persistent node id.
    pub node: String,
    /// Its join token (one line of the coordinator's `join_tokens_file`).
    pub token: String,
    /// [`PROTOCOL`] as it speaks it.
    pub protocol: u32,
    /// The lease it held before (after a reconnect), if any.
    pub epoch: Option<u64>,
    /// Its host name.
    pub addr: String,
    /// Attempts it runs at once.
    pub slots: u32,
    /// Its labels.
    pub labels: Vec<String>,
    /// Attempts still running on it.
    pub running: Vec<AttemptId>,
    /// Attempts whose results wait in its spool (resent after the welcome).
    pub spooled: Vec<AttemptId>,
}

/// An attempt's end, as a worker reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireResult {
    /// The node.
    pub node: String,
    /// The lease the attempt was placed under.
    pub epoch: u64,
    /// The attempt.
    pub attempt: AttemptId,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The attempt's log (already within the task's log cap).
    pub log: Vec<u8>,
}

/// Coordinator → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToWorker {
    /// The lease: `epoch`, and how often to renew it.
    Welcome {
        /// The lease's epoch (the same as before if it was resumed).
        epoch: u64,
        /// Heartbeat period, ms.
        heartbeat_ms: u64,
        /// Between SIGTERM and SIGKILL when an attempt is stopped, ms.
        grace_ms: u64,
        /// Bytes of output kept in an attempt's log.
        log_cap: u64,
    },
    /// The join was refused (journaled); the worker exits.
    Refused {
        /// Why.
        reason: String,
    },
    /// The heartbeat of lease `epoch` arrived.
    HeartbeatAck {
        /// The lease.
        epoch: u64,
    },
    /// The worker's lease is over (it was declared lost): stop every attempt, join again.
    Rejoin {
        /// Why.
        reason: String,
    },
    /// Run this attempt.
    Run(Box<RemoteOrder>),
    /// Stop this attempt if it still runs (SIGTERM, then SIGKILL after the grace period, or
    /// SIGKILL at once with `kill`).
    Terminate {
        /// The attempt.
        attempt: AttemptId,
        /// SIGKILL at once.
        kill: bool,
    },
    /// The result of this attempt is durable in the journal (or was rejected, durably): drop
    /// it from the spool.
    Ack {
        /// The attempt.
        attempt: AttemptId,
    },
}

/// One attempt for a worker node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteOrder {
    /// The lease it is placed under.
    pub epoch: u64,
    /// The attempt (task index in the coordinator's workflow).
    pub attempt: AttemptId,
    /// The task's id.
    pub task_id: TaskId,
    /// The task and stubs of the tasks it reads (see the module docs).
    pub workflow: Workflow,
    /// The outputs it reads, by task id (compact JSON).
    pub outputs: Vec<(TaskId, String)>,
    /// The run's input (a spawned run's), compact JSON.
    pub input: Option<String>,
}

impl RemoteOrder {
    /// The order of attempt `attempt` of `wf`'s task `t`: `outputs` is asked for the value
    /// of every task it reads.
    pub fn build(
        epoch: u64,
        attempt: AttemptId,
        wf: &Workflow,
        input: Option<Arc<str>>,
        mut output: impl FnMut(TaskIndex) -> Result<Arc<serde_json::Value>, String>,
    ) -> Result<RemoteOrder, String> {
        let t = attempt.task;
        let reads = reads(wf, t);
        let mut outputs = Vec::with_capacity(reads.len());
        let mut tasks: Vec<TaskSpec> = Vec::with_capacity(reads.len() + 1);
        for &r in &reads {
            let id = wf.task_id(r).clone();
            outputs.push((id.clone(), output(r)?.to_string()));
            tasks.push(TaskSpec::new(id, Command::Argv(vec!["true".into()])));
        }
        let mut task = wf.task(t).clone();
        task.env = wf
            .env(t)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        task.cwd = wf.cwd(t).map(str::to_owned);
        task.timeout = wf.timeout(t);
        task.compensate = None;
        let task_id = task.id.clone();
        tasks.push(task);
        let spec = wf.spec();
        let pruned = WorkflowSpec {
            name: spec.name.clone(),
            max_concurrency: None,
            pools: BTreeMap::new(),
            defaults: crate::model::spec::TaskDefaults {
                env: BTreeMap::new(),
                ..spec.defaults.clone()
            },
            tasks,
            delegation: None,
            resilience: None,
            origin: None,
        };
        let workflow = Workflow::rebuild_remote(pruned)?;
        Ok(RemoteOrder {
            epoch,
            attempt,
            task_id,
            workflow,
            outputs,
            input: input.map(|s| s.to_string()),
        })
    }
}

/// The tasks whose outputs task `t` reads: its direct dependencies (`TROUPE_INPUTS`), the
/// tasks its templates name, and its `for_each` source.
fn reads(wf: &Workflow, t: TaskIndex) -> Vec<TaskIndex> {
    let spec = wf.task(t);
    let mut out: Vec<TaskIndex> = wf.plan().upstream(t).collect();
    // A swarm task's vote reads its replicas' outputs (its ballot).
    if let Some(crate::model::spec::Expansion::Swarm { replicas }) = spec.expansion() {
        let base = wf.task_id(t);
        out.extend((0..replicas).filter_map(|i| wf.task_index(TaskId::instance(base, i).as_str())));
    }
    let mut texts: Vec<&str> = Vec::new();
    for c in std::iter::once(&spec.command).chain(wf.gate(t)) {
        match c {
            Command::Argv(words) => texts.extend(words.iter().map(String::as_str)),
            Command::Shell(text) => texts.push(text),
        }
    }
    let env = wf.env(t);
    texts.extend(env.values().copied());
    texts.extend(wf.cwd(t));
    texts.extend(spec.for_each());
    for text in texts {
        for e in template::exprs(text).unwrap_or_default() {
            if let Root::Output(id) = &e.root {
                if let Some(i) = wf.task_index(id.as_str()) {
                    out.push(i);
                }
            }
        }
    }
    if let Some(source) = spec
        .for_each()
        .and_then(|f| template::parse_for_each(f).ok())
        .and_then(|e| match e.root {
            Root::Output(id) => wf.task_index(id.as_str()),
            _ => None,
        })
    {
        out.push(source);
    }
    out.sort_unstable();
    out.dedup();
    out.retain(|&i| i != t);
    out
}

/// The bincode settings of the wire (the journal's, with a 64 MiB cap on what one message
/// may make a decoder allocate).
fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 64 << 20 }>,
> {
    bincode::config::standard().with_limit::<{ 64 << 20 }>()
}

/// Encodes a wire message.
pub fn encode<T: Serialize>(m: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(m, config()).map_err(|e| e.to_string())
}

/// Decodes a wire message; bytes left over are an error.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (m, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!("{} bytes left over", bytes.len() - used));
    }
    Ok(m)
}

/// Both enums travel as ractor_cluster casts holding their bincode encoding. A message that
/// does not decode is dropped (and logged), never a panic.
#[cfg(feature = "cluster")]
macro_rules! wire_message {
    ($t:ty) => {
        impl ractor::Message for $t {
            fn serializable() -> bool {
                true
            }

            fn serialize(
                self,
            ) -> Result<ractor::message::SerializedMessage, ractor::message::BoxedDowncastErr>
            {
                let args = encode(&self).map_err(|e| {
                    tracing::error!(error = %e, "could not encode a cluster message");
                    ractor::message::BoxedDowncastErr
                })?;
                Ok(ractor::message::SerializedMessage::Cast {
                    variant: String::new(),
                    args,
                    metadata: None,
                })
            }

            fn deserialize(
                m: ractor::message::SerializedMessage,
            ) -> Result<Self, ractor::message::BoxedDowncastErr> {
                match m {
                    ractor::message::SerializedMessage::Cast { args, .. } => decode(&args)
                        .map_err(|e| {
                            tracing::warn!(error = %e, "dropped a cluster message that does not decode");
                            ractor::message::BoxedDowncastErr
                        }),
                    _ => Err(ractor::message::BoxedDowncastErr),
                }
            }
        }
    };
}

#[cfg(feature = "cluster")]
wire_message!(ToCoordinator);
#[cfg(feature = "cluster")]
wire_message!(ToWorker);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunId;

    fn wf(text: &str) -> Workflow {
        crate::model::parse::parse_workflow(text).expect("valid")
    }

    #[test]
    fn an_order_carries_the_task_and_what_it_reads_only() {
        let w = wf(r#"
name = "w"
[defaults]
env = { SHARED = "s" }
[[task]]
id = "a"
command = ["echo", "a"]
env = { SECRET_A = "only-a" }
[[task]]
id = "b"
command = ["echo", "b"]
depends_on = ["a"]
[[task]]
id = "c"
command = ["sh", "-c", "echo $A"]
depends_on = ["b"]
env = { MINE = "c", A = "{{ tasks.a.output }}" }
"#);
        let c = w.task_index("c").unwrap();
        let id = AttemptId {
            run: RunId::from_u128(1),
            task: c,
            kind: crate::messages::scheduler::AttemptKind::Forward,
            attempt: 1,
        };
        let order = RemoteOrder::build(7, id, &w, None, |t| {
            Ok(Arc::new(serde_json::json!(w.task_id(t).as_str())))
        })
        .unwrap();
        let bytes = encode(&order).unwrap();
        let back: RemoteOrder = decode(&bytes).unwrap();
        let text = format!("{:?}", back.workflow.spec());
        assert!(
            !text.contains("only-a"),
            "another task's env crossed: {text}"
        );
        assert!(
            !text.contains("\"echo\", \"a\""),
            "another task's command crossed"
        );
        let t = back.workflow.task_index("c").unwrap();
        let env = back.workflow.env(t);
        assert_eq!(env.get("SHARED"), Some(&"s"));
        assert_eq!(env.get("MINE"), Some(&"c"));
        let mut read: Vec<&str> = back.outputs.iter().map(|(k, _)| k.as_str()).collect();
        read.sort();
        assert_eq!(read, ["a", "b"]);
        assert_eq!(back.epoch, 7);
    }

    #[test]
    fn a_message_that_does_not_decode_is_an_error() {
        assert!(decode::<ToWorker>(&[0xff, 0xff, 0xff]).is_err());
        let ok = encode(&ToWorker::Ack {
            attempt: AttemptId {
                run: RunId::from_u128(1),
                task: 0,
                kind: crate::messages::scheduler::AttemptKind::Forward,
                attempt: 1,
            },
        })
        .unwrap();
        let mut long = ok.clone();
        long.push(0);
        assert!(decode::<ToWorker>(&long).is_err());
        assert!(decode::<ToWorker>(&ok).is_ok());
    }
}
