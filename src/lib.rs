//! troupe: a durable actor runtime.
//!
//! Work (workflows of tasks with dependencies, retries, approvals and compensations) is run by
//! typed [ractor](https://docs.rs/ractor) actors under supervision trees, and every state change
//! is an event appended to a RocksDB journal and replayed on boot, so a crash or `kill -9` loses
//! nothing that was acknowledged.
//!
//! # Layout
//! - [`model`]: the pure domain: ids, workflow spec and parsing, planning (petgraph), retry
//!   maths, events, run/task state machines and the fold `apply(state, event)`. No I/O.
//! - [`storage`]: the journal on RocksDB: record codec (versioned envelope + CRC32C), group
//!   commit writer, reads by sequence range and by stream, snapshots, replay.
//! - [`read`]: the read side: a projection of the committed events answers every read
//!   (status, list, queue, dashboard, approvals, events) and streams subscriptions;
//!   [`read::offline`] reads a stopped node's journal (events, metrics).
//! - [`context`]: [`context::NodeContext`], what every actor of one node shares (settings,
//!   journal, executor, metrics, webhooks, feed, read model) and the node's registry of the
//!   current incarnation of each sibling actor; [`NodeError`].
//! - [`actors`]: ractor actors: supervisor, journal writer, scheduler, workers, approval
//!   gate, metrics (health watch, retention), control.
//! - [`messages`]: one message enum per actor, and the control protocol.
//! - [`client`]: a client of a node's control socket (what the CLI uses).
//! - [`node`]: the [`Node`] builder: opens the data dir and spawns the supervision tree. The
//!   top of the crate: nothing else in it imports this module (the bench is its client).
//! - [`layout`]: the data dir's layout: [`layout::DataDir`] builds every path in it (journal,
//!   attempt logs and pid files, socket, `http.addr`, `STOP`, `troupe.toml`).
//! - [`config`]: the node's settings ([`NodeConfig`] and the config types it holds) and the
//!   config file `troupe.toml`: loading, `${VAR}` substitution, checks with positions,
//!   `TROUPE_*` overrides, rendering.
//! - [`executor`]: what runs an attempt (OS processes by default, or your own code).
//! - [`inbox`]: `node start --inbox DIR`: submits workflow files dropped into a folder, once
//!   each (by content hash), moving them to `submitted/` or `rejected/`.
//! - [`process`]: running one attempt as a process group, one file per job: spawning, the
//!   output log, waiting (timeout, rusage), pid files, terminating orphans.
//! - [`telemetry`]: the Prometheus registry, health checks, the HTTP endpoints (`/metrics`,
//!   `/healthz`, `/readyz`) and webhooks (JSON notices POSTed to operator URLs, with retries,
//!   off the hot path; also at their former path [`webhooks`]).
//! - [`web`]: the web UI and the HTTP API on `http_addr`: server-rendered pages (the run's
//!   DAG as SVG, logs, approvals), JSON under `/api/` with an OpenAPI document, Server-Sent
//!   Events; tokens, sessions and CSRF.
//! - [`workers`]: [`workers::WorkerLink`], how the scheduler reaches workers; the local
//!   pool of worker actors is its first implementation.
//! - [`workflow_file`]: reading workflow files from disk, TOML or JSON by the name (size cap,
//!   UTF-8, positions).
//! - [`bench`](mod@bench): the measurements behind `troupe bench`.
//!
//! Dependencies point down: model ← storage ← config ← read ← context ← (telemetry, workers,
//! actors) ← node. (The context still names the journal actor's handle and the telemetry
//! sender, registry and health checks it carries.)
//!
//! # Example
//! Parse a workflow and fold the event that submits it:
//! ```
//! use std::sync::Arc;
//! use troupe::model::{parse_workflow, Event, EventRecord, RunId, State, TaskState, Timestamp};
//!
//! let wf = parse_workflow(r#"
//!     name = "hello"
//!     [[task]]
//!     id = "greet"
//!     command = ["echo", "hello"]
//!     [[task]]
//!     id = "bye"
//!     command = ["echo", "bye"]
//!     depends_on = ["greet"]
//! "#).unwrap();
//! let run = RunId::from_ulid(ulid::Ulid::from_parts(1, 1));
//! let mut state = State::new();
//! let submitted = EventRecord {
//!     time: Timestamp(0),
//!     event: Event::RunSubmitted { run, workflow: Arc::new(wf) },
//! };
//! state.apply(1, &submitted).unwrap();
//! let r = state.run(run).unwrap();
//! assert_eq!(r.task(0).state, TaskState::Ready);
//! assert_eq!(r.task(1).state, TaskState::Pending);
//! ```

#![warn(missing_docs)]

pub mod actors;
pub mod bench;
pub mod client;
pub mod cluster;
pub mod config;
pub mod context;
pub mod executor;
pub mod inbox;
pub mod layout;
pub mod messages;
pub mod model;
pub mod node;
pub mod process;
pub mod read;
pub mod storage;
pub mod telemetry;
pub mod web;
pub mod workers;
pub mod workflow_file;

/// The webhook sender, at its former path (it lives in [`telemetry::webhooks`]).
pub use telemetry::webhooks;

pub use node::{Node, NodeConfig, NodeError, NodeHandle};
pub use storage::{Durability, JournalError};
