//! The pure, deterministic domain of troupe: no I/O, no clocks, no tokio.
//!
//! # Layout
//! - [`ids`]: run ids (ULIDs) and task ids.
//! - [`time`]: [`time::Timestamp`], the only form in which time enters the model.
//! - [`spec`]: the workflow spec as plain data (what the TOML file says).
//! - [`quote`]: user text in messages and text output: control characters escaped, long text
//!   cut in errors.
//! - [`parse`]: TOML text → validated [`workflow::Workflow`], errors with line and column;
//!   one file per table of the format (top level, `[defaults]`/`retry`, `[[task]]`), plus
//!   the field reader, durations and positions.
//! - [`workflow`]: the validated workflow: spec + plan + id index + effective settings.
//! - [`plan`]: the DAG on petgraph: toposort, cycles, ready set, downstream closure,
//!   critical path.
//! - [`render`]: the DAG as Graphviz DOT or Mermaid text.
//! - [`resilience`]: circuit breakers (scope, trip rules, the sliding window), retry policy
//!   choices (non-retryable failures) and hooks, as data and pure rules.
//! - [`retry`]: retry policy maths (backoff, jitter, budget) and its documented defaults.
//! - [`task`], [`run`]: the task and run state machines (legal transitions).
//! - [`template`]: `{{ tasks.ID.output... }}`, `{{ item }}`, `{{ index }}` and `for_each`
//!   expressions: parsing (at validation) and resolving against outputs (at dispatch).
//! - [`event`]: the journaled events and their versioning rules.
//! - [`state`]: the fold `apply(state, event)` that rebuilds all state from the journal: the
//!   `State` and `Run` types, then one file per event family (submit, attempts, operator
//!   commands, approvals, compensation, halt).
//! - [`rollup`]: per-minute, per-pool counters and latency sketches for `troupe metrics`.
//! - [`score`]: priority scoring: the ready queue's rank from weighted priority, deadline,
//!   age and label boosts (`[scheduling]` in `troupe.toml`).
//! - [`caps`]: the one concurrency-cap check (run `max_concurrency`, run pool, node pool).
//! - [`decide`]: pure decisions: which event closes an attempt, which events an operator
//!   command decides, ready-queue order.
//! - [`dry_run`]: what a command would do without doing it: the plan of a workflow (`run
//!   --dry-run`), the transitions of an operator command (`cancel|... --dry-run`).

pub mod authority;
pub mod caps;
pub mod decide;
pub mod dry_run;
pub mod event;
pub mod ids;
pub mod parse;
pub mod plan;
pub mod quote;
pub mod render;
pub mod resilience;
pub mod retry;
pub mod rollup;
pub mod routing;
pub mod run;
pub mod score;
pub mod spec;
pub mod state;
pub mod task;
pub mod template;
pub mod time;
pub mod workflow;

pub use event::{
    Approver, Counters, Event, EventRecord, Failure, HookCall, OnBudgetExhausted, OnFailure,
    OnParentExit, ResourceUsage, Routing, Seq, Spawn, EVENT_SCHEMA_VERSION,
};
pub use ids::{RunId, TaskId, TaskIndex};
pub use parse::{parse_workflow, parse_workflow_bytes, MAX_WORKFLOW_BYTES};
pub use plan::{CriticalPath, Plan};
pub use retry::{RetryPolicy, RetrySpec};
pub use run::RunState;
pub use spec::{
    valid_env_name, Command, Expansion, Handoff, Problem, SpecError, TaskDefaults, TaskSpec,
    WorkflowSpec,
};
pub use state::{
    ApplyError, Change, Cluster, Compensation, Membership, NodeRecord, Run, State, Task,
};
pub use task::{CompensationState, TaskState};
pub use time::Timestamp;
pub use workflow::Workflow;
