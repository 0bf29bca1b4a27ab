//! Resilience patterns as plain data and pure rules: circuit breakers, retry policy choices
//! (non-retryable failures) and hooks.
//!
//! # Circuit breakers
//! A breaker watches the attempts of the tasks in its *scope* (a pool, a label, a program glob;
//! every matcher given must match) and stops dispatching to that scope while the scope is
//! failing, the way resilience4j and Polly protect a caller from a struggling dependency:
//!
//! - `closed`: attempts run; each end is recorded in a sliding window of the last `window`
//!   ends. The breaker trips when at least `min_attempts` ends are in the window and the share
//!   of failures reaches `failure_rate`, or when `consecutive_failures` attempts in a row
//!   failed.
//! - `open`: nothing in the scope is dispatched until `open_for` has passed. Tasks are *held*
//!   (they stay ready), never failed.
//! - `half_open`: up to `half_open_probes` attempts are let through. If all of them succeed the
//!   breaker closes; the first failure opens it again for another `open_for`.
//!
//! Defaults follow resilience4j's `CircuitBreakerConfig`: `window = 100`, `min_attempts =
//! window`, `failure_rate = 0.5` (when neither trip is set), `open_for = 60s`,
//! `half_open_probes = 10`.
//!
//! What counts as a failure: an attempt that ended `exit`, `signal`, `timed_out`,
//! `spawn_failed`, `error`, `output_invalid` or `gate_failed`. Cancellations, approvals,
//! interruptions by a node stop and child failures say nothing about the scope's health and
//! are not recorded.
//!
//! Transitions are journaled (`breaker_opened`, `breaker_half_opened`, `breaker_closed`), so
//! a restarted node keeps each breaker's state. The sliding window itself is not: it is the
//! scheduler's memory and starts empty after a restart (an open breaker stays open).

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::event::Failure;
use super::spec::{Command, WorkflowSpec};

/// Default sliding window, in attempts (resilience4j `slidingWindowSize`).
pub const DEFAULT_WINDOW: u32 = 100;
/// Default failure rate that trips a breaker (resilience4j `failureRateThreshold`, 50 %).
pub const DEFAULT_FAILURE_RATE: f64 = 0.5;
/// Default time a breaker stays open (resilience4j `waitDurationInOpenState`).
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(60);
/// Default probes let through while half-open (resilience4j
/// `permittedNumberOfCallsInHalfOpenState`).
pub const DEFAULT_HALF_OPEN_PROBES: u32 = 10;
/// Largest `window` accepted: 100,000 attempts (the window is kept in memory per breaker).
pub const MAX_WINDOW: u32 = 100_000;

/// Which tasks a breaker (or a hook) watches. Every matcher given must match.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Scope {
    /// The task's effective pool.
    pub pool: Option<String>,
    /// One of the task's `labels`.
    pub label: Option<String>,
    /// A glob (`*`, `?`, `[...]`) over the task's program: `command[0]`, or `sh` for a
    /// `shell` task. A glob without `/` is matched against the program's file name too, so
    /// `curl` matches `/usr/bin/curl`.
    pub command: Option<String>,
    /// The workflow's name (hooks only; a workflow's own breakers are scoped to it this way).
    pub workflow: Option<String>,
}

impl Scope {
    /// Whether task `task` of a run of `spec` is in the scope.
    pub fn matches(&self, spec: &WorkflowSpec, task: usize) -> bool {
        let pattern = self.command.as_deref().map(glob::Pattern::new);
        match pattern {
            Some(Err(_)) => false,
            Some(Ok(p)) => self.matches_with(spec, task, Some(&p)),
            None => self.matches_with(spec, task, None),
        }
    }

    /// [`Scope::matches`] with `command` already compiled to `pattern` (the dispatch path
    /// compiles it once per breaker).
    pub fn matches_with(
        &self,
        spec: &WorkflowSpec,
        task: usize,
        pattern: Option<&glob::Pattern>,
    ) -> bool {
        let t = &spec.tasks[task];
        let pool = t.pool.as_deref().or(spec.defaults.pool.as_deref());
        self.workflow.as_deref().is_none_or(|w| w == spec.name)
            && self.pool.as_deref().is_none_or(|p| pool == Some(p))
            && self
                .label
                .as_ref()
                .is_none_or(|l| t.labels.iter().any(|x| x == l))
            && match (self.command.as_deref(), pattern) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(g), Some(p)) => program_matches_compiled(g, p, &t.command),
            }
    }

    /// Whether no matcher is set (a scope of everything).
    pub fn is_empty(&self) -> bool {
        self.pool.is_none() && self.label.is_none() && self.command.is_none()
    }
}

/// Whether glob `glob` matches the program of `command` (see [`Scope::command`]).
pub fn program_matches(glob: &str, command: &Command) -> bool {
    match glob::Pattern::new(glob) {
        Ok(pattern) => program_matches_compiled(glob, &pattern, command),
        Err(_) => false,
    }
}

/// [`program_matches`] with `glob` already compiled to `pattern`.
pub fn program_matches_compiled(glob: &str, pattern: &glob::Pattern, command: &Command) -> bool {
    let program = match command {
        Command::Argv(argv) => argv.first().map(String::as_str).unwrap_or(""),
        Command::Shell(_) => "sh",
    };
    pattern.matches(program)
        || (!glob.contains('/') && pattern.matches(program.rsplit('/').next().unwrap_or(program)))
}

/// A circuit breaker as configured (resolved: every field set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerSpec {
    /// Name: `troupe breakers`, the metric label, `breakers reset NAME`. A workflow's
    /// breakers are named `WORKFLOW/NAME` once submitted.
    pub name: String,
    /// The tasks it watches and holds.
    pub scope: Scope,
    /// Trip when the failure share of the window reaches this (0–1); `None`: only
    /// `consecutive_failures` trips it.
    pub failure_rate: Option<f64>,
    /// Attempts in the sliding window.
    pub window: u32,
    /// Ends needed in the window before `failure_rate` is looked at.
    pub min_attempts: u32,
    /// Trip after this many failures in a row; `None`: only `failure_rate` trips it.
    pub consecutive_failures: Option<u32>,
    /// How long it stays open before letting probes through.
    pub open_for: Duration,
    /// Attempts let through while half-open; all must succeed to close it.
    pub half_open_probes: u32,
}

impl BreakerSpec {
    /// This breaker as declared in workflow `workflow`: named `WORKFLOW/NAME` and scoped to
    /// that workflow's tasks.
    pub fn in_workflow(&self, workflow: &str) -> BreakerSpec {
        let mut spec = self.clone();
        spec.name = format!("{workflow}/{}", self.name);
        spec.scope.workflow = Some(workflow.to_owned());
        spec
    }
}

/// `[[breakers]]` as written (in `troupe.toml` or a workflow file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerFile {
    /// See [`BreakerSpec::name`].
    pub name: String,
    /// See [`Scope::pool`].
    pub pool: Option<String>,
    /// See [`Scope::label`].
    pub label: Option<String>,
    /// See [`Scope::command`].
    pub command: Option<String>,
    /// See [`BreakerSpec::failure_rate`].
    pub failure_rate: Option<f64>,
    /// See [`BreakerSpec::window`].
    pub window: Option<i64>,
    /// See [`BreakerSpec::min_attempts`].
    pub min_attempts: Option<i64>,
    /// See [`BreakerSpec::consecutive_failures`].
    pub consecutive_failures: Option<i64>,
    /// See [`BreakerSpec::open_for`] (humantime, e.g. `"30s"`).
    pub open_for: Option<String>,
    /// See [`BreakerSpec::half_open_probes`].
    pub half_open_probes: Option<i64>,
}

impl BreakerFile {
    /// Checks the fields and fills in the defaults. `pools` are the pools the scope may name
    /// (`None`: do not check). Each error names its field.
    pub fn resolve(&self, pools: Option<&[&str]>) -> Result<BreakerSpec, String> {
        if !valid_name(&self.name) {
            return Err(format!(
                "name {:?} must be 1 to 64 characters of A-Z a-z 0-9 _ . -",
                self.name
            ));
        }
        let count = |field: &str, v: Option<i64>, min: i64| -> Result<Option<u32>, String> {
            match v {
                None => Ok(None),
                Some(n) if n < min || n > MAX_WINDOW as i64 => Err(format!(
                    "{field} must be between {min} and {MAX_WINDOW}, got {n}"
                )),
                Some(n) => Ok(Some(n as u32)),
            }
        };
        let window = count("window", self.window, 1)?.unwrap_or(DEFAULT_WINDOW);
        let min_attempts = count("min_attempts", self.min_attempts, 1)?.unwrap_or(window);
        if min_attempts > window {
            return Err(format!(
                "min_attempts ({min_attempts}) is larger than window ({window}): the failure \
                 rate could never be looked at"
            ));
        }
        let consecutive_failures = count("consecutive_failures", self.consecutive_failures, 1)?;
        let half_open_probes = count("half_open_probes", self.half_open_probes, 1)?
            .unwrap_or(DEFAULT_HALF_OPEN_PROBES);
        if let Some(r) = self.failure_rate {
            if !(r > 0.0 && r <= 1.0) {
                return Err(format!(
                    "failure_rate must be a share above 0 and at most 1 (0.5 = half), got {r}"
                ));
            }
        }
        let failure_rate = match (self.failure_rate, consecutive_failures) {
            (None, None) => Some(DEFAULT_FAILURE_RATE),
            (r, _) => r,
        };
        let open_for = match &self.open_for {
            None => DEFAULT_OPEN_FOR,
            Some(text) => {
                let d = humantime::parse_duration(text)
                    .map_err(|e| format!("open_for {text:?} is not a duration: {e}"))?;
                if d.is_zero() {
                    return Err("open_for must be longer than 0s".into());
                }
                if let Some(p) = super::spec::too_long("open_for", d) {
                    return Err(p);
                }
                d
            }
        };
        if let Some(g) = &self.command {
            glob::Pattern::new(g).map_err(|e| format!("command {g:?} is not a glob: {e}"))?;
        }
        if let (Some(p), Some(known)) = (&self.pool, pools) {
            if !known.contains(&p.as_str()) {
                return Err(format!(
                    "pool {p:?} is not declared under [pools] (declared: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        Ok(BreakerSpec {
            name: self.name.clone(),
            scope: Scope {
                pool: self.pool.clone(),
                label: self.label.clone(),
                command: self.command.clone(),
                workflow: None,
            },
            failure_rate,
            window,
            min_attempts,
            consecutive_failures,
            open_for,
            half_open_probes,
        })
    }
}

/// Whether `name` may name a breaker, hook or retry policy: 1–64 of `[A-Za-z0-9_.-]`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether a failure counts against a breaker (see the module docs).
pub fn counts_against_breaker(failure: &Failure) -> bool {
    matches!(
        failure,
        Failure::Exit { .. }
            | Failure::Signal { .. }
            | Failure::TimedOut
            | Failure::SpawnFailed { .. }
            | Failure::Error { .. }
            | Failure::OutputInvalid { .. }
            | Failure::GateFailed { .. }
    )
}

/// A breaker's sliding window of recent attempt ends (the scheduler's memory, not journaled).
#[derive(Debug, Clone, Default)]
pub struct BreakerWindow {
    /// Last ends, oldest first: `true` = failed.
    ends: VecDeque<bool>,
    /// Failures among `ends`.
    failures: u32,
    /// Failures in a row, newest last.
    consecutive: u32,
}

impl BreakerWindow {
    /// Records one end; returns why the breaker trips, if it does.
    pub fn record(&mut self, spec: &BreakerSpec, failed: bool) -> Option<String> {
        self.ends.push_back(failed);
        self.failures += failed as u32;
        while self.ends.len() > spec.window as usize {
            if self.ends.pop_front() == Some(true) {
                self.failures -= 1;
            }
        }
        self.consecutive = if failed { self.consecutive + 1 } else { 0 };
        if !failed {
            return None;
        }
        if let Some(n) = spec.consecutive_failures {
            if self.consecutive >= n {
                return Some(format!("{} failures in a row", self.consecutive));
            }
        }
        let seen = self.ends.len() as u32;
        if let Some(rate) = spec.failure_rate {
            if seen >= spec.min_attempts && f64::from(self.failures) >= rate * f64::from(seen) {
                return Some(format!(
                    "{} of the last {seen} attempts failed (failure_rate {rate})",
                    self.failures
                ));
            }
        }
        None
    }

    /// Forgets every end (after a transition).
    pub fn clear(&mut self) {
        *self = BreakerWindow::default();
    }

    /// (failures, ends) in the window.
    pub fn counts(&self) -> (u32, u32) {
        (self.failures, self.ends.len() as u32)
    }
}

/// A task's retry policy choice (event schema 7): the `[retry_policies.NAME]` it uses and the
/// failures that end it at once. Filled in by the node at submission, so the journal holds
/// what applied.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RetryChoice {
    /// `retry_policy = "NAME"`, or the policy a label chose.
    pub name: Option<String>,
    /// Exit statuses that are not retried (Temporal's non-retryable error types).
    pub non_retryable_exit_codes: Vec<i32>,
    /// Signals that are not retried.
    pub non_retryable_signals: Vec<i32>,
}

impl RetryChoice {
    /// Whether `failure` ends the task at once under this choice.
    pub fn is_non_retryable(&self, failure: &Failure) -> bool {
        match failure {
            Failure::Exit { code } => self.non_retryable_exit_codes.contains(code),
            Failure::Signal { signal } => self.non_retryable_signals.contains(signal),
            _ => false,
        }
    }
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HookOn {
    /// A run was submitted.
    RunSubmitted,
    /// A task is about to get its first attempt (with `veto`, the hook decides whether it may).
    TaskReady,
    /// A task succeeded.
    TaskSucceeded,
    /// A task failed for good.
    TaskFailed,
    /// A run ended (any end state).
    RunFinished,
    /// The node started (session hook).
    NodeStarted,
    /// The node is stopping (session hook).
    NodeStopping,
}

impl HookOn {
    /// Every value, in the spelling of `on = "..."`.
    pub const ALL: [(&'static str, HookOn); 7] = [
        ("run_submitted", HookOn::RunSubmitted),
        ("task_ready", HookOn::TaskReady),
        ("task_succeeded", HookOn::TaskSucceeded),
        ("task_failed", HookOn::TaskFailed),
        ("run_finished", HookOn::RunFinished),
        ("node_started", HookOn::NodeStarted),
        ("node_stopping", HookOn::NodeStopping),
    ];

    /// The spelling of `on = "..."`.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(s, _)| *s)
            .unwrap_or("?")
    }

    /// Parses `on = "..."`; the error lists the accepted values.
    pub fn parse(text: &str) -> Result<HookOn, String> {
        Self::ALL
            .iter()
            .find(|(s, _)| *s == text)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                format!(
                    "unknown hook event {text:?}; expected one of {}",
                    Self::ALL.map(|(s, _)| s).join(", ")
                )
            })
    }
}

/// A hook as configured (resolved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookSpec {
    /// Name (`troupe hooks`, metrics, logs).
    pub name: String,
    /// The event it runs on.
    pub on: HookOn,
    /// Which runs/tasks it matches (workflow name, label, pool).
    pub scope: Scope,
    /// What it runs; the event as JSON on stdin.
    pub command: Command,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// `task_ready` only: a non-zero exit fails the task instead of letting it run.
    pub veto: bool,
}

/// Default per-attempt timeout of a hook: 60 s (a hook is a notification or a check, not
/// work).
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);
/// Default attempts of a hook: 3.
pub const DEFAULT_HOOK_ATTEMPTS: u32 = 3;

/// `[[hooks]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookFile {
    /// See [`HookSpec::name`]; defaults to `hooks[INDEX]`.
    pub name: Option<String>,
    /// See [`HookSpec::on`].
    pub on: String,
    /// See [`Scope`]: `workflow`, `label`, `pool`.
    #[serde(rename = "match", default)]
    pub matcher: HookMatch,
    /// Program and arguments.
    pub command: Option<Vec<String>>,
    /// Or a shell line.
    pub shell: Option<String>,
    /// See [`HookSpec::timeout`] (humantime).
    pub timeout: Option<String>,
    /// See [`HookSpec::max_attempts`].
    pub max_attempts: Option<i64>,
    /// See [`HookSpec::veto`].
    #[serde(default)]
    pub veto: bool,
}

/// `match = { workflow = "...", label = "...", pool = "..." }` of a hook.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookMatch {
    /// The workflow's name.
    pub workflow: Option<String>,
    /// One of the task's labels.
    pub label: Option<String>,
    /// The task's pool.
    pub pool: Option<String>,
}

impl HookFile {
    /// Checks the fields; `index` names an unnamed hook. Each error names its field.
    pub fn resolve(&self, index: usize) -> Result<HookSpec, String> {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("hooks[{index}]"));
        if self.name.is_some() && !valid_name(&name) {
            return Err(format!(
                "name {name:?} must be 1 to 64 characters of A-Z a-z 0-9 _ . -"
            ));
        }
        let on = HookOn::parse(&self.on).map_err(|e| format!("on: {e}"))?;
        let command = match (&self.command, &self.shell) {
            (Some(argv), None) if !argv.is_empty() && !argv[0].is_empty() => {
                Command::Argv(argv.clone())
            }
            (Some(_), None) => return Err("command must name a program".into()),
            (None, Some(s)) if !s.trim().is_empty() => Command::Shell(s.clone()),
            (None, Some(_)) => return Err("shell must not be empty".into()),
            (Some(_), Some(_)) => return Err("give either command or shell, not both".into()),
            (None, None) => return Err("a hook needs command or shell".into()),
        };
        let timeout = match &self.timeout {
            None => DEFAULT_HOOK_TIMEOUT,
            Some(t) => {
                let d = humantime::parse_duration(t)
                    .map_err(|e| format!("timeout {t:?} is not a duration: {e}"))?;
                if d.is_zero() {
                    return Err("timeout must be longer than 0s".into());
                }
                if let Some(p) = super::spec::too_long("timeout", d) {
                    return Err(p);
                }
                d
            }
        };
        let max_attempts = match self.max_attempts {
            None => DEFAULT_HOOK_ATTEMPTS,
            Some(n) if (1..=100).contains(&n) => n as u32,
            Some(n) => return Err(format!("max_attempts must be between 1 and 100, got {n}")),
        };
        if self.veto && on != HookOn::TaskReady {
            return Err(format!(
                "veto only applies to on = \"task_ready\" (this hook runs on {:?})",
                on.as_str()
            ));
        }
        let m = &self.matcher;
        let task_level = matches!(
            on,
            HookOn::TaskReady | HookOn::TaskSucceeded | HookOn::TaskFailed
        );
        if !task_level && (m.label.is_some() || m.pool.is_some()) {
            return Err(format!(
                "match.label and match.pool apply to task events; {:?} is not one",
                on.as_str()
            ));
        }
        if matches!(on, HookOn::NodeStarted | HookOn::NodeStopping) && m.workflow.is_some() {
            return Err(format!(
                "match.workflow does not apply to the session event {:?}",
                on.as_str()
            ));
        }
        Ok(HookSpec {
            name,
            on,
            scope: Scope {
                pool: m.pool.clone(),
                label: m.label.clone(),
                command: None,
                workflow: m.workflow.clone(),
            },
            command,
            timeout,
            max_attempts,
            veto: self.veto,
        })
    }
}

/// A workflow's own `[[breakers]]` and `[[hooks]]` (event schema 7). Boxed in the spec:
/// most workflows set neither.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Resilience {
    /// Breakers scoped to this workflow's tasks.
    pub breakers: Vec<BreakerSpec>,
    /// Hooks scoped to this workflow's runs.
    pub hooks: Vec<HookSpec>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(toml_text: &str) -> Result<BreakerSpec, String> {
        let f: BreakerFile = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        f.resolve(Some(&["gpu"]))
    }

    #[test]
    fn defaults_follow_resilience4j() {
        let b = breaker("name = \"b\"").unwrap();
        assert_eq!(b.window, 100);
        assert_eq!(b.min_attempts, 100);
        assert_eq!(b.failure_rate, Some(0.5));
        assert_eq!(b.consecutive_failures, None);
        assert_eq!(b.open_for, Duration::from_secs(60));
        assert_eq!(b.half_open_probes, 10);
    }

    #[test]
    fn bad_breakers_name_the_field() {
        let cases = [
            ("name = \"b\"\nwindow = 0", "window must be between 1"),
            ("name = \"b\"\nfailure_rate = 1.5", "failure_rate must be"),
            ("name = \"b\"\nfailure_rate = 0.0", "failure_rate must be"),
            (
                "name = \"b\"\npool = \"cpu\"",
                "pool \"cpu\" is not declared",
            ),
            (
                "name = \"b\"\nwindow = 5\nmin_attempts = 6",
                "min_attempts (6) is larger",
            ),
            ("name = \"b\"\nopen_for = \"0s\"", "open_for must be longer"),
            (
                "name = \"b\"\nopen_for = \"soon\"",
                "open_for \"soon\" is not a duration",
            ),
            ("name = \"a b\"", "name \"a b\" must be"),
            (
                "name = \"b\"\ncommand = \"[\"",
                "command \"[\" is not a glob",
            ),
        ];
        for (text, want) in cases {
            let err = breaker(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn window_trips_on_rate_after_min_attempts_and_on_a_streak() {
        let b = breaker("name = \"b\"\nwindow = 4\nmin_attempts = 4\nfailure_rate = 0.5").unwrap();
        let mut w = BreakerWindow::default();
        assert_eq!(w.record(&b, true), None);
        assert_eq!(w.record(&b, false), None);
        assert_eq!(w.record(&b, false), None);
        // 2 of 4.
        assert!(w.record(&b, true).unwrap().contains("2 of the last 4"));
        // The window slides: oldest failure leaves.
        let mut w = BreakerWindow::default();
        for _ in 0..4 {
            w.record(&b, false);
        }
        assert_eq!(w.record(&b, true), None); // 1 of 4
        let s = breaker("name = \"b\"\nconsecutive_failures = 3").unwrap();
        assert_eq!(s.failure_rate, None);
        let mut w = BreakerWindow::default();
        assert_eq!(w.record(&s, true), None);
        assert_eq!(w.record(&s, true), None);
        assert_eq!(w.record(&s, false), None);
        assert_eq!(w.record(&s, true), None);
        assert_eq!(w.record(&s, true), None);
        assert!(w.record(&s, true).unwrap().contains("3 failures in a row"));
    }

    #[test]
    fn program_globs_match_the_file_name_too() {
        let argv = |a: &[&str]| Command::Argv(a.iter().map(|s| s.to_string()).collect());
        assert!(program_matches("curl", &argv(&["/usr/bin/curl", "-s"])));
        assert!(program_matches("cu*", &argv(&["curl"])));
        assert!(!program_matches("/bin/*", &argv(&["curl"])));
        assert!(program_matches("sh", &Command::Shell("curl x".into())));
    }

    #[test]
    fn hooks_check_event_veto_and_command() {
        let hook = |t: &str| -> Result<HookSpec, String> {
            let f: HookFile = toml::from_str(t).map_err(|e| e.to_string())?;
            f.resolve(0)
        };
        assert!(hook("on = \"task_readyy\"\ncommand = [\"true\"]")
            .unwrap_err()
            .contains("unknown hook event \"task_readyy\""));
        assert!(
            hook("on = \"task_failed\"\nveto = true\ncommand = [\"true\"]")
                .unwrap_err()
                .contains("veto only applies")
        );
        assert!(hook("on = \"task_ready\"")
            .unwrap_err()
            .contains("needs command or shell"));
        let h =
            hook("on = \"task_ready\"\nveto = true\nshell = \"exit 0\"\nmatch = { label = \"x\" }")
                .unwrap();
        assert_eq!(h.name, "hooks[0]");
        assert_eq!(h.max_attempts, 3);
        assert_eq!(h.scope.label.as_deref(), Some("x"));
    }
}
