//! `[[breakers]]`, `[retry_policies.NAME]` and `[[hooks]]` of `troupe.toml`: the node's
//! circuit breakers, named retry policies and hooks (see [`crate::model::resilience`]), and
//! how retry policies are written into a workflow at submission ([`apply_retry_policies`]).
//!
//! ```toml
//! [[breakers]]
//! name = "payments-api"
//! label = "payments"          # scope: pool, label and/or command (program glob)
//! failure_rate = 0.5          # trip when half of ...
//! window = 20                 # ... the last 20 attempts failed,
//! min_attempts = 10           # once 10 have ended
//! # consecutive_failures = 5  # or after 5 failures in a row
//! open_for = "30s"            # then hold the scope this long
//! half_open_probes = 2        # and let 2 probes through
//!
//! [retry_policies.network]
//! label = "net"               # tasks with this label use it (or `retry_policy = "network"`)
//! max_attempts = 8
//! initial_interval = "2s"
//! non_retryable_exit_codes = [2, 64]   # usage errors: retrying cannot help
//! non_retryable_signals = [9]
//!
//! [[hooks]]
//! name = "audit"
//! on = "task_failed"
//! match = { workflow = "release" }
//! command = ["/usr/local/bin/audit-hook"]
//! ```

use serde::Deserialize;
use toml::Spanned;

use super::file::NodeFile;
use super::parse::Spans;
use super::ConfigError;
use crate::model::resilience::{valid_name, BreakerFile, HookFile, RetryChoice};
use crate::model::{RetrySpec, WorkflowSpec};

/// One `[retry_policies.NAME]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetryPolicy {
    label: Option<String>,
    max_attempts: Option<i64>,
    initial_interval: Option<Spanned<String>>,
    backoff_coefficient: Option<f64>,
    max_interval: Option<Spanned<String>>,
    jitter: Option<f64>,
    #[serde(default)]
    non_retryable_exit_codes: Vec<i64>,
    #[serde(default)]
    non_retryable_signals: Vec<i64>,
}

/// A named retry policy of `troupe.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicyConfig {
    /// `NAME` of `[retry_policies.NAME]`.
    pub name: String,
    /// Tasks with this label use it unless they name a policy.
    pub label: Option<String>,
    /// Its retry fields (merged under the task's own `retry`, over `[defaults].retry`).
    pub retry: RetrySpec,
    /// Exit statuses and signals that end the task at once.
    pub choice: RetryChoice,
}

/// Checks `[[breakers]]` (pools must be declared under the node's `[pools]`).
pub(super) fn check_breakers(
    p: &Spans,
    raw: &[Spanned<BreakerFile>],
    out: &mut NodeFile,
) -> Result<(), ConfigError> {
    let pools: Vec<&str> = out.pools.keys().map(String::as_str).collect();
    let mut breakers = Vec::new();
    for (i, b) in raw.iter().enumerate() {
        let spec = b
            .get_ref()
            .resolve(Some(&pools))
            .map_err(|e| p.at(Some(b.span()), &format!("breakers[{i}]: {e}")))?;
        if breakers
            .iter()
            .any(|x: &crate::model::resilience::BreakerSpec| x.name == spec.name)
        {
            return Err(p.at(
                Some(b.span()),
                &format!("breakers[{i}]: another breaker is named {:?}", spec.name),
            ));
        }
        breakers.push(spec);
    }
    out.breakers = breakers;
    Ok(())
}

/// Checks `[[hooks]]`.
pub(super) fn check_hooks(
    p: &Spans,
    raw: &[Spanned<HookFile>],
    out: &mut NodeFile,
) -> Result<(), ConfigError> {
    for (i, h) in raw.iter().enumerate() {
        let spec = h
            .get_ref()
            .resolve(i)
            .map_err(|e| p.at(Some(h.span()), &format!("hooks[{i}]: {e}")))?;
        if out.hooks.iter().any(|x| x.name == spec.name) {
            return Err(p.at(
                Some(h.span()),
                &format!("hooks[{i}]: another hook is named {:?}", spec.name),
            ));
        }
        out.hooks.push(spec);
    }
    Ok(())
}

/// Checks `[retry_policies.NAME]` tables.
pub(super) fn check_retry_policies(
    p: &Spans,
    raw: &std::collections::BTreeMap<String, Spanned<RawRetryPolicy>>,
    out: &mut NodeFile,
) -> Result<(), ConfigError> {
    for (name, table) in raw {
        let span = table.span();
        let at = |msg: String| p.at(Some(span.clone()), &format!("retry_policies.{name}: {msg}"));
        if !valid_name(name) {
            return Err(at(
                "a policy name is 1 to 64 characters of A-Z a-z 0-9 _ . -".into(),
            ));
        }
        let r = table.get_ref();
        let max_attempts = match r.max_attempts {
            None => None,
            Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => Some(n as u32),
            Some(n) => {
                return Err(at(format!(
                    "max_attempts must be 0 (unlimited) or more, got {n}"
                )))
            }
        };
        let dur = |d: &Option<Spanned<String>>, field: &str| -> Result<_, ConfigError> {
            d.as_ref()
                .map(|d| p.duration(d, &format!("retry_policies.{name}.{field}")))
                .transpose()
        };
        let retry = RetrySpec {
            max_attempts,
            initial_interval: dur(&r.initial_interval, "initial_interval")?,
            backoff_coefficient: r.backoff_coefficient,
            max_interval: dur(&r.max_interval, "max_interval")?,
            jitter: r.jitter,
        };
        if let Some(problem) = retry.problems().into_iter().next() {
            return Err(at(problem));
        }
        let codes = |list: &[i64], field: &str, range: std::ops::RangeInclusive<i64>| {
            list.iter()
                .map(|&c| {
                    if range.contains(&c) {
                        Ok(c as i32)
                    } else {
                        Err(at(format!(
                            "{field}: {c} is not between {} and {}",
                            range.start(),
                            range.end()
                        )))
                    }
                })
                .collect::<Result<Vec<i32>, _>>()
        };
        let choice = RetryChoice {
            name: Some(name.clone()),
            non_retryable_exit_codes: codes(
                &r.non_retryable_exit_codes,
                "non_retryable_exit_codes",
                1..=255,
            )?,
            non_retryable_signals: codes(
                &r.non_retryable_signals,
                "non_retryable_signals",
                1..=64,
            )?,
        };
        out.retry_policies.push(RetryPolicyConfig {
            name: name.clone(),
            label: r.label.clone(),
            retry,
            choice,
        });
    }
    Ok(())
}

/// Writes the node's retry policies into a workflow about to be submitted, like
/// [`super::apply_rules`]: a task naming `retry_policy = "NAME"`, or else carrying the label
/// of a policy (the first in name order), gets the policy's fields under its own `retry`
/// fields (its own win; `[defaults].retry` and the built-in defaults fill the rest) and the
/// policy's non-retryable failures. Replay then never depends on today's config.
///
/// Errors (one line per task, exit 2 at the CLI): a task names a policy that is not defined.
pub fn apply_retry_policies(
    mut spec: WorkflowSpec,
    policies: &[RetryPolicyConfig],
) -> Result<WorkflowSpec, String> {
    let mut problems = Vec::new();
    for t in &mut spec.tasks {
        let named = t.retry_choice.as_ref().and_then(|c| c.name.clone());
        let policy = match &named {
            Some(name) => match policies.iter().find(|p| &p.name == name) {
                Some(p) => p,
                None => {
                    problems.push(format!(
                        "task `{}`: retry_policy {name:?} is not defined in the node's \
                         troupe.toml (defined: {})",
                        t.id,
                        if policies.is_empty() {
                            "none".to_owned()
                        } else {
                            policies
                                .iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ));
                    continue;
                }
            },
            None => match policies.iter().find(|p| {
                p.label
                    .as_ref()
                    .is_some_and(|l| t.labels.iter().any(|x| x == l))
            }) {
                Some(p) => p,
                None => continue,
            },
        };
        let own = t.retry.as_deref().copied().unwrap_or_default();
        t.retry = Some(Box::new(own.or(policy.retry)));
        t.retry_choice = Some(Box::new(policy.choice.clone()));
    }
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(text: &str) -> Result<Vec<RetryPolicyConfig>, String> {
        super::super::parse(text, "troupe.toml")
            .map(|f| f.retry_policies)
            .map_err(|e| e.0)
    }

    #[test]
    fn a_named_or_labelled_policy_is_written_into_the_task() {
        let ps = policies(
            "[retry_policies.net]\nlabel = \"net\"\nmax_attempts = 8\nnon_retryable_exit_codes = [2]\n\
             [retry_policies.once]\nmax_attempts = 1\n",
        )
        .unwrap();
        let wf = crate::model::parse_workflow(
            "name = \"w\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nlabels = [\"net\"]\nretry = { initial_interval = \"3s\" }\n\
             [[task]]\nid = \"b\"\ncommand = [\"true\"]\nretry_policy = \"once\"\n\
             [[task]]\nid = \"c\"\ncommand = [\"true\"]\n",
        )
        .unwrap();
        let spec = apply_retry_policies(wf.spec().clone(), &ps).unwrap();
        let a = &spec.tasks[0];
        assert_eq!(a.retry.as_ref().unwrap().max_attempts, Some(8));
        assert_eq!(
            a.retry.as_ref().unwrap().initial_interval,
            Some(std::time::Duration::from_secs(3))
        );
        assert_eq!(
            a.retry_choice.as_ref().unwrap().non_retryable_exit_codes,
            [2]
        );
        assert_eq!(spec.tasks[1].retry.as_ref().unwrap().max_attempts, Some(1));
        assert!(spec.tasks[2].retry_choice.is_none());
    }

    #[test]
    fn an_unknown_policy_names_the_task_and_the_known_ones() {
        let wf = crate::model::parse_workflow(
            "name = \"w\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nretry_policy = \"nope\"\n",
        )
        .unwrap();
        let ps = policies("[retry_policies.net]\nmax_attempts = 2\n").unwrap();
        let err = apply_retry_policies(wf.spec().clone(), &ps).unwrap_err();
        assert!(
            err.contains("task `a`: retry_policy \"nope\" is not defined"),
            "{err}"
        );
        assert!(err.contains("(defined: net)"), "{err}");
    }

    #[test]
    fn bad_tables_name_file_line_and_field() {
        let err = policies("[retry_policies.net]\nnon_retryable_exit_codes = [0]\n").unwrap_err();
        assert!(
            err.contains("troupe.toml:1:") && err.contains("non_retryable_exit_codes: 0"),
            "{err}"
        );
        let err = super::super::parse(
            "[pools]\ngpu = 1\n[[breakers]]\nname = \"b\"\nwindow = 0\n",
            "troupe.toml",
        )
        .unwrap_err()
        .0;
        assert!(
            err.contains("breakers[0]: window must be between 1"),
            "{err}"
        );
        let err = super::super::parse(
            "[[breakers]]\nname = \"b\"\npool = \"gpu\"\n",
            "troupe.toml",
        )
        .unwrap_err()
        .0;
        assert!(err.contains("pool \"gpu\" is not declared"), "{err}");
        let err = super::super::parse(
            "[[hooks]]\non = \"nope\"\ncommand = [\"true\"]\n",
            "troupe.toml",
        )
        .unwrap_err()
        .0;
        assert!(
            err.contains("hooks[0]: on: unknown hook event \"nope\""),
            "{err}"
        );
    }
}
