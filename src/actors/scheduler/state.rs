//! The scheduler's state: everything it holds between messages, rebuilt from the journal
//! on every start.

use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{ActorRef, RpcReplyPort};

use super::*;
use crate::actors::journal::JournalRef;
use crate::actors::metrics::{Metrics, PoolHandles};
use crate::actors::saga::SagaCoordinator;
use crate::context::NodeContext;
use crate::messages::approval::{ApprovalChange, ApprovalMsg};
use crate::messages::scheduler::{AttemptId, Slot};
use crate::model::rollup::RollupDelta;
use crate::model::{EventRecord, RunId, Seq, State, TaskIndex, Timestamp};
use crate::webhooks::Notice;
use crate::workers::Workers;
use compact_str::CompactString;

/// An attempt dispatched (or about to be) to a worker.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    /// The attempt.
    pub(super) id: AttemptId,
    /// Worker slot.
    pub(super) slot: Slot,
    /// The task's pool, if any (compensations hold none).
    pub(super) pool: Option<String>,
    /// The attempt's capability token (`TROUPE_TOKEN`): what `spawn` and `wait` from its
    /// process must show. Drawn at dispatch; never journaled (an attempt does not outlive
    /// its node: a restart closes it as interrupted).
    pub(super) token: u128,
    /// The attempt lent its worker slot while it waits for its children
    /// ([`crate::workers::WorkerLink::lend`]).
    pub(super) lent: bool,
}

/// The scheduler's state (rebuilt from the journal on every start).
pub struct SchedulerState {
    /// The fold of the journal plus events decided but maybe not yet durable.
    pub(super) state: State,
    /// Writes go here.
    pub(super) journal: JournalRef,
    /// Decided events not yet sent to the journal (sent at the end of each message).
    pub(super) outbox: Vec<EventRecord>,
    /// Highest sequence number the journal acknowledged.
    pub(super) durable: Seq,
    /// Effects waiting for their sequence number to be durable, in order.
    pub(super) effects: VecDeque<(Seq, Effect)>,
    /// Ready tasks, best first.
    pub(super) queue: BinaryHeap<Entry>,
    /// Tasks blocked by their run's cap (`None`) or pool, by run.
    pub(super) parked: HashMap<(RunId, Option<String>), BinaryHeap<Entry>>,
    /// Retrying tasks by due time.
    pub(super) timers: BTreeSet<(Timestamp, RunId, TaskIndex)>,
    /// Which compensations of compensating runs are due.
    pub(super) sagas: SagaCoordinator,
    /// The approval gate, once it announced itself.
    pub(super) gate: Option<ActorRef<ApprovalMsg>>,
    /// Changes to pending approvals decided since the last message (sent once durable).
    pub(super) approval_changes: Vec<ApprovalChange>,
    /// Expiry of approval requests whose task sets none.
    pub(super) approval_timeout: Duration,
    /// Earliest due time a timer message is already scheduled for.
    pub(super) armed: Option<Timestamp>,
    /// Attempts dispatched and not yet reported.
    pub(super) running: HashMap<(RunId, TaskIndex), Running>,
    /// Running attempts per run.
    pub(super) run_load: HashMap<RunId, u32>,
    /// Running attempts per (run, pool).
    pub(super) pool_load: HashMap<(RunId, String), u32>,
    /// Node-wide pool capacities (`[pools]` in `troupe.toml`), across all runs.
    pub(super) node_pools: std::collections::BTreeMap<String, u32>,
    /// Running attempts per node-wide pool.
    pub(super) node_pool_load: HashMap<String, u32>,
    /// Tasks whose `node_labels` no free worker node has (offered again when a worker
    /// node's slot frees or a node joins).
    pub(super) label_parked: Vec<Entry>,
    /// Tasks blocked by a full node-wide pool, best first, by pool.
    pub(super) node_parked: HashMap<String, BinaryHeap<Entry>>,
    /// Where attempts run: the node's worker actors and the worker nodes.
    pub(super) workers: Workers,
    /// Next enqueue counter (age).
    pub(super) next_age: u64,
    /// A `STOP` file exists in the data dir.
    pub(super) stop_file: bool,
    /// Shutdown: dispatch nothing more.
    pub(super) draining: bool,
    /// Answered when draining and nothing runs.
    pub(super) drained: Vec<RpcReplyPort<()>>,
    /// Shutdown after the grace period: ends of running attempts are not journaled.
    pub(super) abandon: bool,
    /// A `Flush` message is in our mailbox.
    pub(super) flush_scheduled: bool,
    /// An append failed (why): the state is ahead of the journal; nothing more is decided
    /// or dispatched until `unhalt` restarts us once the journal takes writes (`fault`).
    pub(super) frozen: Option<String>,
    /// Sequence number of the last snapshot stored (or replayed from).
    pub(super) snapshot_seq: Seq,
    /// Store a snapshot once this many events are past `snapshot_seq` (0 = never).
    pub(super) snapshot_every: u64,
    /// Rollup counts of the outbox (go to the journal with it).
    pub(super) rollup: RollupDelta,
    /// The node's registry.
    pub(super) metrics: Arc<Metrics>,
    /// Metric handles per pool name (`""`: no pool).
    pub(super) pool_metrics: HashMap<CompactString, PoolHandles>,
    /// Webhook notices of the outbox (sent once durable; only built if someone listens).
    pub(super) notices: Vec<Notice>,
    /// The node's webhooks, to skip building unwanted notices.
    pub(super) shared: Arc<NodeContext>,
    /// The attempts the journal closed but whose process still holds a slot may have
    /// changed: republish them (see [`crate::read::facts::Lingering`]).
    pub(super) lingering_dirty: bool,
    /// How many lingering attempts were published last.
    pub(super) lingering: usize,
    /// Reads the outputs a mapped task's expansion needs (from the journal).
    pub(super) outputs: crate::read::outputs::Outputs,
    /// What the agent rules still have to decide ([`super::agents`]).
    pub(super) agent_due: super::agents::AgentDue,
    /// `wall_clock` budgets: when each run with one runs out, earliest first.
    pub(super) deadlines: BTreeSet<(Timestamp, RunId)>,
    /// Circuit breakers: windows, probes, held tasks ([`super::breakers`]).
    pub(super) breakers: super::breakers::Breakers,
    /// Hook calls: due, retrying, running, and the tasks their vetoes hold ([`super::hooks`]).
    pub(super) hooks: super::hooks::HookDesk,
    /// Outputs of swarm replicas decided since boot, until their swarm is judged: the
    /// judgement may run before a later replica's `task_output` is durable (journal reads
    /// see only durable events), and must still count it ([`super::swarm`]).
    pub(super) replica_outputs: HashMap<(RunId, crate::model::TaskId), String>,
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}
