//! The workflow spec: what a workflow file says, as plain data.
//!
//! These types mirror the TOML format of `../shared/DESIGN.md` field for field (see
//! [`super::parse`] for the file syntax and [`super::workflow::Workflow`] for the validated,
//! planned form). They are also what the journal stores in a `run_submitted` event, so a run
//! replays against exactly the spec it was submitted with, whatever the file says today.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ids::TaskId;
use super::retry::RetrySpec;

/// Longest duration a workflow may set in `timeout`, `approval_timeout` and the retry
/// intervals (`initial_interval`, `max_interval`, in `retry` and `compensate_retry`, in tasks
/// and `[defaults]`): 100 years (36,500 days).
///
/// No real timeout or backoff comes near it, and it keeps every instant computed from a
/// workflow (`now` + interval × (1 + jitter) ≤ `now` + 200 years) far inside the range
/// [`super::time::Timestamp`] prints as RFC 3339 (up to year 9999) and the range of the
/// OS monotonic clock a timeout is armed on.
pub const MAX_WORKFLOW_DURATION: Duration = Duration::from_secs(36_500 * 24 * 60 * 60);

/// The problem with duration `d` of `field` if it is longer than [`MAX_WORKFLOW_DURATION`].
pub(crate) fn too_long(field: &str, d: Duration) -> Option<String> {
    (d > MAX_WORKFLOW_DURATION).then(|| {
        format!(
            "{field} ({}) is longer than the limit of 36500 days (100 years)",
            humantime::format_duration(d)
        )
    })
}

/// A whole workflow as written: name, limits, pools, defaults and tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSpec {
    /// Human name; together with the content it identifies "the same workflow" on resubmit.
    pub name: String,
    /// Cap on attempts of this run running at once; `None` leaves only the node's cap.
    pub max_concurrency: Option<u32>,
    /// Named concurrency pools: pool name → slots. A task in a pool holds one slot while an
    /// attempt of it runs.
    pub pools: BTreeMap<String, u32>,
    /// Settings every task inherits unless it sets its own.
    pub defaults: TaskDefaults,
    /// The tasks in file order; a task's position is its [`super::ids::TaskIndex`].
    pub tasks: Vec<TaskSpec>,
    /// `output` and `[authority]`: what the run hands back and may do as an agent (event
    /// schema 4). Boxed: most workflows set neither.
    pub delegation: Option<Box<Delegation>>,
    /// `[[breakers]]` and `[[hooks]]` of the workflow (event schema 7). Boxed: most
    /// workflows set neither.
    pub resilience: Option<Box<crate::model::resilience::Resilience>>,
    /// Where the submission came from, set by the node (never written in a file; event
    /// schema 8): `inbox:sha256:HEX` for a file the inbox submitted. A second submission with
    /// the same origin returns the first run instead of starting another, so a crash between
    /// the inbox's submission and its move of the file never submits the file twice.
    pub origin: Option<String>,
}

/// The top-level fields a workflow has as an agent (event schema 4).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Delegation {
    /// `output = "TASK"`: the task whose output is the run's output (`troupe wait`). Unset:
    /// the single final task's (a task no other task depends on), or `null` if there are
    /// several.
    pub output: Option<String>,
    /// `[authority]`: what runs of this workflow ask for (narrowed by what the parent or the
    /// node has; see [`crate::model::authority`]).
    pub authority: crate::model::authority::AuthorityAsk,
}

impl WorkflowSpec {
    /// `output` and `[authority]`, if either is set.
    pub fn delegation(&self) -> Option<&Delegation> {
        self.delegation.as_deref()
    }
}

/// The `[defaults]` table: settings merged into every task. A task's own value wins; `env` is
/// merged key by key and `retry` field by field.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskDefaults {
    /// Per-attempt timeout; `None` means attempts may run forever.
    pub timeout: Option<Duration>,
    /// Retry fields for tasks that do not set them.
    pub retry: RetrySpec,
    /// Environment variables added to every attempt (on top of the node's environment).
    pub env: BTreeMap<String, String>,
    /// Working directory, relative to the workflow file's folder.
    pub cwd: Option<String>,
    /// Pool for tasks that name none.
    pub pool: Option<String>,
    /// Priority for tasks that set none (built-in default 0).
    pub priority: Option<i32>,
    /// Whether tasks wait for a human approval before their first attempt.
    pub requires_approval: Option<bool>,
    /// How long an approval request may stay pending before it expires (counts as rejected).
    pub approval_timeout: Option<Duration>,
    /// Retry fields of compensations for tasks that do not set them (event schema 2).
    pub compensate_retry: RetrySpec,
    /// Largest output (bytes of `TROUPE_OUTPUT`) for tasks that set none (event schema 3;
    /// built-in default [`DEFAULT_MAX_OUTPUT`]).
    pub max_output: Option<u64>,
    /// Largest expansion of mapped tasks that set none (event schema 3; built-in default
    /// [`DEFAULT_MAX_FAN_OUT`]).
    pub max_fan_out: Option<u32>,
}

/// Largest task output accepted when neither the task nor `[defaults]` set `max_output`:
/// 1 MiB.
pub const DEFAULT_MAX_OUTPUT: u64 = 1024 * 1024;

/// Largest `max_output` a workflow may set: 64 MiB. An output is one journal record and is
/// read back whole by every dependent; beyond this, write a file and output its path.
pub const MAX_MAX_OUTPUT: u64 = 64 * 1024 * 1024;

/// Largest `for_each` expansion when neither the task nor `[defaults]` set `max_fan_out`: an
/// upstream array with more elements fails the upstream task.
pub const DEFAULT_MAX_FAN_OUT: u32 = 10_000;

/// Largest `max_fan_out` a workflow may set: 1,000,000 instances (each is a task of the run,
/// kept in memory while the run lives).
pub const MAX_MAX_FAN_OUT: u32 = 1_000_000;

/// What a task does with results (event schema 3): its output cap, its quality gate, its
/// dynamic fan-out. Boxed in [`TaskSpec`] because most tasks set none of it and the model
/// keeps every task of every live run in memory.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Handoff {
    /// Largest output accepted, bytes; overrides `[defaults] max_output`.
    pub max_output: Option<u64>,
    /// `gate` / `gate_shell`: runs after an attempt exits 0, with the output on stdin; a
    /// non-zero exit fails the attempt as `gate_failed`.
    pub gate: Option<Command>,
    /// `for_each = "{{ tasks.ID.output.PATH }}"`: one instance per element of that array.
    pub for_each: Option<String>,
    /// Most instances `for_each` may make; overrides `[defaults] max_fan_out`.
    pub max_fan_out: Option<u32>,
    /// Set by the node when a mapped task is expanded (never written in a file).
    pub expansion: Option<Expansion>,
}

impl Handoff {
    /// `Some(boxed)` unless every field is unset (a task without any keeps no box).
    pub fn boxed_if_set(self) -> Option<Box<Handoff>> {
        (self != Handoff::default()).then(|| Box::new(self))
    }
}

/// What expansion made of a task with `for_each` (see [`Handoff::expansion`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expansion {
    /// The mapped task itself after expansion: it runs nothing and succeeds when its
    /// `count` instances (and its own dependencies) have.
    Mapped {
        /// Number of instances.
        count: u32,
    },
    /// Instance `index` of the mapped task (its id is `BASE[index]`).
    Instance {
        /// Position of its element in the upstream array.
        index: u32,
    },
    /// A swarm task (`replicas`) after expansion (event schema 8): it runs nothing of its own
    /// until its replicas reach a quorum; with `vote`, its attempts run the vote command.
    Swarm {
        /// Number of replicas.
        replicas: u32,
    },
    /// Replica `index` of a swarm task (its id is `BASE[index]`; event schema 8): a copy of
    /// the swarm task's command whose output is one vote.
    Replica {
        /// 0-based replica number.
        index: u32,
    },
}

/// Largest `replicas` a task may set: 100 parallel copies of one task.
pub const MAX_REPLICAS: u32 = 100;

/// How a task is scheduled beyond `priority` (event schema 8): its deadline and its swarm.
/// Boxed in [`TaskSpec`] because most tasks set neither.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TaskScheduling {
    /// `deadline`: when the task should be done by; scores it for the ready queue
    /// ([`crate::model::score`]). Never refused, not even in the past.
    pub deadline: Option<Deadline>,
    /// `replicas` / `quorum` / `vote`: run several copies and agree on one output.
    pub swarm: Option<Swarm>,
}

/// A task's `deadline` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deadline {
    /// An RFC 3339 instant (`deadline = "2026-12-01T09:00:00Z"`).
    At(super::time::Timestamp),
    /// A duration counted from the run's submission (`deadline = "30m"`).
    After(Duration),
}

impl Deadline {
    /// The instant, for a run submitted at `submitted`.
    pub fn at(self, submitted: super::time::Timestamp) -> super::time::Timestamp {
        match self {
            Deadline::At(t) => t,
            Deadline::After(d) => submitted.saturating_add(d),
        }
    }
}

/// The swarm pattern (`replicas`, `quorum`, `vote`; event schema 8): `replicas` copies of
/// the task run in parallel, and the task succeeds with the output that `quorum` of them
/// agree on (JSON equality), or with the output the `vote` command picks once `quorum` have
/// succeeded. See `docs/workflow-format.md`, "Swarm".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swarm {
    /// Copies run in parallel, 2..=[`MAX_REPLICAS`].
    pub replicas: u32,
    /// Equal outputs needed (without `vote`), or successes needed before the vote (with it);
    /// 1..=`replicas`. Default: a majority (`replicas / 2 + 1`) without `vote`, all
    /// replicas with it.
    pub quorum: u32,
    /// `vote = [argv]`: reads the replicas' outputs on stdin (a JSON array of
    /// `{"replica": N, "output": VALUE}`) and writes the chosen output to `$TROUPE_OUTPUT`.
    pub vote: Option<Command>,
}

/// One `[[task]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Unique within the workflow.
    pub id: TaskId,
    /// What an attempt executes.
    pub command: Command,
    /// Working directory, relative to the workflow file's folder; overrides `[defaults]`.
    pub cwd: Option<String>,
    /// Tasks that must succeed before this one may start.
    pub depends_on: Vec<TaskId>,
    /// Higher runs first among ready tasks; overrides `[defaults]`.
    pub priority: Option<i32>,
    /// Concurrency pool; must be declared under `[pools]`.
    pub pool: Option<String>,
    /// Wait for a human approval before the first attempt; overrides `[defaults]`.
    pub requires_approval: Option<bool>,
    /// Saga step: what undoes this task's effect if the run fails after it succeeded.
    pub compensate: Option<Command>,
    /// Expiry of this task's approval request; overrides `[defaults]`.
    pub approval_timeout: Option<Duration>,
    /// Per-attempt timeout; overrides `[defaults]`.
    pub timeout: Option<Duration>,
    /// Retry fields; merged field by field over `[defaults].retry`. Boxed because most tasks
    /// set none and the model keeps every task of every live run in memory.
    pub retry: Option<Box<RetrySpec>>,
    /// Environment variables; merged key by key over `[defaults].env`.
    pub env: BTreeMap<String, String>,
    /// Free-form tags node approval rules can match on (event schema 2).
    pub labels: Vec<String>,
    /// Retry fields of this task's compensation; merged field by field over
    /// `[defaults].compensate_retry` (event schema 2).
    pub compensate_retry: Option<Box<RetrySpec>>,
    /// Output cap, gate and fan-out (event schema 3); `None` when the task sets none.
    pub handoff: Option<Box<Handoff>>,
    /// Labels a worker node must all have to run this task (event schema 5; empty: any
    /// node, the coordinator's own workers included).
    pub node_labels: Vec<String>,
    /// Names of environment variables whose *values* are secrets, resolved by the node that
    /// runs the attempt (its environment or its `[secrets]` files) when the process starts
    /// (event schema 6). Only the names are part of the spec, so only they are journaled.
    pub secret_env: Vec<String>,
    /// `retry_policy = "NAME"` and the non-retryable failures the node's
    /// `[retry_policies.NAME]` adds at submission (event schema 7); `None`: neither.
    pub retry_choice: Option<Box<crate::model::resilience::RetryChoice>>,
    /// `deadline` and the swarm fields (event schema 8); `None` when the task sets neither.
    pub scheduling: Option<Box<TaskScheduling>>,
}

impl TaskSpec {
    /// A task `id` running `command` with every optional field unset (its effective settings
    /// come from `[defaults]` and the built-in defaults).
    pub fn new(id: TaskId, command: Command) -> Self {
        TaskSpec {
            id,
            command,
            cwd: None,
            depends_on: Vec::new(),
            priority: None,
            pool: None,
            requires_approval: None,
            compensate: None,
            approval_timeout: None,
            timeout: None,
            retry: None,
            env: BTreeMap::new(),
            labels: Vec::new(),
            compensate_retry: None,
            handoff: None,
            node_labels: Vec::new(),
            secret_env: Vec::new(),
            retry_choice: None,
            scheduling: None,
        }
    }

    /// `deadline`, if set.
    pub fn deadline(&self) -> Option<Deadline> {
        self.scheduling.as_deref()?.deadline
    }

    /// `replicas` / `quorum` / `vote`, if set.
    pub fn swarm(&self) -> Option<&Swarm> {
        self.scheduling.as_deref()?.swarm.as_ref()
    }

    /// The task's output, gate and fan-out settings, if any.
    pub fn handoff(&self) -> Option<&Handoff> {
        self.handoff.as_deref()
    }

    /// `for_each`, if the task is mapped (set on the mapped task and its instances).
    pub fn for_each(&self) -> Option<&str> {
        self.handoff()?.for_each.as_deref()
    }

    /// What expansion made of this task, if it was expanded or is an instance.
    pub fn expansion(&self) -> Option<Expansion> {
        self.handoff()?.expansion
    }
}

/// Whether `name` is a portable environment variable name (POSIX: `[A-Za-z_][A-Za-z0-9_]*`),
/// as `secret_env` and secrets files require.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

mod legacy;
pub(crate) use legacy::{v1, v2, v3, v4, v5, v6, v7};

std::thread_local! {
    /// Schema version of the record being decoded on this thread (see
    /// [`with_decoding_schema`]); the current one otherwise.
    static DECODING_SCHEMA: std::cell::Cell<u16> =
        const { std::cell::Cell::new(super::event::EVENT_SCHEMA_VERSION) };
}

/// Runs `f` (a decode) with [`decoding_schema`] returning `schema`: lets the workflow inside
/// an event or snapshot pick the spec layout its record was written with. The codec calls
/// this; bincode decodes on the calling thread.
pub fn with_decoding_schema<T>(schema: u16, f: impl FnOnce() -> T) -> T {
    let old = DECODING_SCHEMA.with(|c| c.replace(schema));
    let out = f();
    DECODING_SCHEMA.with(|c| c.set(old));
    out
}

/// The schema version of the record being decoded on this thread.
pub fn decoding_schema() -> u16 {
    DECODING_SCHEMA.with(|c| c.get())
}

/// What an attempt runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `command = [...]`: executed directly (program + arguments), never through a shell.
    Argv(Vec<String>),
    /// `shell = "..."`: run as `/bin/sh -c <text>`.
    Shell(String),
}

impl fmt::Display for Command {
    /// Shows the command the way a user would type it: argv words joined by spaces (words
    /// with spaces or quotes are single-quoted), or `sh -c '<text>'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Argv(argv) => {
                for (i, word) in argv.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write_shell_word(f, word)?;
                }
                Ok(())
            }
            Command::Shell(text) => {
                f.write_str("sh -c ")?;
                write_shell_word(f, text)
            }
        }
    }
}

fn write_shell_word(f: &mut fmt::Formatter<'_>, word: &str) -> fmt::Result {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        f.write_str(word)
    } else {
        write!(f, "'{}'", word.replace('\'', r"'\''"))
    }
}

/// One thing wrong with a workflow, with its place in the file when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the workflow file; `None` for specs built in code or whole-file issues.
    pub line: Option<usize>,
    /// 1-based column (in characters) on that line.
    pub column: Option<usize>,
    /// What is wrong, naming the task and field involved.
    pub message: String,
}

/// A workflow that cannot be run: every problem found, in file order where known.
///
/// Returned by [`super::parse::parse_workflow`] and [`super::workflow::Workflow::from_spec`];
/// the caller should show it and exit with status 2 (invalid input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The file name to print before positions (`pipeline.toml:3:5: ...`), if any.
    pub source_name: Option<String>,
    /// At least one problem.
    pub problems: Vec<Problem>,
}

impl SpecError {
    /// An error with one problem and no position.
    pub fn whole(message: impl Into<String>) -> Self {
        SpecError {
            source_name: None,
            problems: vec![Problem {
                line: None,
                column: None,
                message: message.into(),
            }],
        }
    }

    /// Names the file in front of every problem when displayed.
    pub fn with_source_name(mut self, name: impl Into<String>) -> Self {
        self.source_name = Some(name.into());
        self
    }
}

impl fmt::Display for SpecError {
    /// One line per problem: `FILE:LINE:COLUMN: message` (parts omitted when unknown).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            if let Some(name) = &self.source_name {
                write!(f, "{name}:")?;
            }
            if let Some(line) = p.line {
                write!(f, "{line}:")?;
                if let Some(col) = p.column {
                    write!(f, "{col}:")?;
                }
            }
            if self.source_name.is_some() || p.line.is_some() {
                f.write_str(" ")?;
            }
            f.write_str(&p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_print_like_a_shell_line() {
        let c = Command::Argv(vec![
            "make".into(),
            "-j2".into(),
            "a b".into(),
            "it's".into(),
        ]);
        assert_eq!(c.to_string(), r"make -j2 'a b' 'it'\''s'");
        assert_eq!(
            Command::Shell("make && echo ok".into()).to_string(),
            "sh -c 'make && echo ok'"
        );
    }

    #[test]
    fn spec_error_lists_positions() {
        let e = SpecError {
            source_name: Some("wf.toml".into()),
            problems: vec![
                Problem {
                    line: Some(3),
                    column: Some(5),
                    message: "bad".into(),
                },
                Problem {
                    line: None,
                    column: None,
                    message: "worse".into(),
                },
            ],
        };
        assert_eq!(e.to_string(), "wf.toml:3:5: bad\nwf.toml: worse");
        assert_eq!(SpecError::whole("x").to_string(), "x");
    }
}
