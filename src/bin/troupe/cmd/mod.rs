//! One module per subcommand (or small family of them): each parses nothing (clap did), asks
//! the node or reads what it needs, prints through [`crate::render`] and gives the exit code.
//!
//! # Layout
//! - [`workflow`]: `validate`, `graph`: checks of a workflow file, no node needed.
//! - [`new`]: `new`: starter workflows from the templates of `../templates/`.
//! - [`run`]: `run`: submit a workflow and follow it (an embedded node if none serves).
//! - [`node`]: `node start|stop`; starting and stopping a node in this process.
//! - [`status`]: `status`, `list`, `tasks`: views of the node, runs and tasks.
//! - [`events`]: `events`: the journal's events, through the node or offline.
//! - [`logs`]: `logs`: an attempt's output from `DATA_DIR/logs`.
//! - [`output`]: `output`: a task's output (its `TROUPE_OUTPUT`), through the node or
//!   offline.
//! - [`control`]: `cancel|suspend|resume|retry`, `halt|unhalt`: one control command.
//! - [`approval`]: `approvals`, `approve|reject`.
//! - [`failed`]: `failed`, `retry --failed`: dead letters, and redriving them.
//! - [`breakers`]: `breakers`, `breakers reset NAME`: circuit breakers.
//! - [`queue`]: `queue`: tasks waiting to run.
//! - [`metrics`]: `metrics`: figures of a past window, through the node or offline.
//! - [`hooks`]: `hooks`: hook calls and their states.
//! - [`health`]: `health`: the node's checks, Nagios exit codes.
//! - [`backup`]: `backup`, `restore`: online backups (RocksDB checkpoints) and restores.
//! - [`journal`]: `journal verify`: every record, index entry and snapshot checked.
//! - [`dashboard`]: `dashboard`: the live terminal view's refresh loop.
//! - [`agents`]: `spawn`, `wait`, `tree`: agent trees.
//! - [`cluster`]: `worker start`, `nodes`, `drain`: remote worker nodes.
//! - [`bench`]: `bench journal|plan|tasks|saga|metrics|...`; [`bench_control`]: `bench
//!   control`.

pub(crate) mod agents;
pub(crate) mod approval;
pub(crate) mod backup;
pub(crate) mod bench;
pub(crate) mod bench_control;
pub(crate) mod breakers;
pub(crate) mod cluster;
pub(crate) mod control;
pub(crate) mod dashboard;
pub(crate) mod events;
pub(crate) mod failed;
pub(crate) mod health;
pub(crate) mod hooks;
pub(crate) mod journal;
pub(crate) mod logs;
pub(crate) mod metrics;
pub(crate) mod new;
pub(crate) mod node;
pub(crate) mod output;
pub(crate) mod queue;
pub(crate) mod run;
pub(crate) mod status;
pub(crate) mod workflow;
