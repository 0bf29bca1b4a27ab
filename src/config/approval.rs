//! The `[approval]` section: the default expiry and the node's approval rules, and the rule
//! type itself ([`ApprovalRule`], applied to a workflow at submission by [`apply_rules`]).
//! The approval gate that acts on the resulting requests (`troupe::actors::approval`)
//! re-exports them under their former paths.

use std::time::Duration;

use super::file::NodeFile;
use super::parse::Spans;
use super::raw::RawApproval;
use super::ConfigError;
use crate::model::WorkflowSpec;

/// Default of [`NodeConfig::approval_timeout`](super::NodeConfig::approval_timeout): 30 days.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// A node rule: tasks it matches require approval whatever their workflow says. Every
/// matcher given must match (at least one is required).
#[derive(Debug, Clone)]
pub struct ApprovalRule {
    /// Matches tasks in this pool.
    pub pool: Option<String>,
    /// Matches tasks carrying this label (`labels = [...]`).
    pub label: Option<String>,
    /// Matches tasks whose command line, as `troupe status` prints it (argv words joined by
    /// spaces, or `sh -c '...'`), matches this glob (`*`, `?`, `[...]`; see the `glob` crate).
    pub command: Option<glob::Pattern>,
    /// Expiry for the requests this rule causes, unless the task sets `approval_timeout`.
    pub timeout: Option<Duration>,
}

impl ApprovalRule {
    fn matches(&self, spec: &WorkflowSpec, task: usize) -> bool {
        let t = &spec.tasks[task];
        let pool = t.pool.as_deref().or(spec.defaults.pool.as_deref());
        self.pool.as_deref().is_none_or(|p| pool == Some(p))
            && self
                .label
                .as_ref()
                .is_none_or(|l| t.labels.iter().any(|x| x == l))
            && self
                .command
                .as_ref()
                .is_none_or(|g| g.matches(&t.command.to_string()))
    }
}

/// Applies the node's rules to a workflow about to be submitted: a matched task gets
/// `requires_approval = true` (and the rule's timeout unless it sets its own), written into
/// the spec that is journaled, so replay never depends on today's node config.
pub fn apply_rules(mut spec: WorkflowSpec, rules: &[ApprovalRule]) -> WorkflowSpec {
    for i in 0..spec.tasks.len() {
        if let Some(rule) = rules.iter().find(|r| r.matches(&spec, i)) {
            let t = &mut spec.tasks[i];
            t.requires_approval = Some(true);
            if t.approval_timeout.is_none() && spec.defaults.approval_timeout.is_none() {
                t.approval_timeout = rule.timeout;
            }
        }
    }
    spec
}

/// Checks `[approval]` and its `[[approval.rule]]` entries, in file order, into `out`.
pub(super) fn check(
    p: &Spans,
    approval: &RawApproval,
    out: &mut NodeFile,
) -> Result<(), ConfigError> {
    if let Some(t) = &approval.timeout {
        out.approval_timeout = Some(p.duration(t, "approval.timeout")?);
    }
    for (i, rule) in approval.rule.iter().enumerate() {
        let span = rule.span();
        let r = rule.get_ref();
        let which = format!("approval.rule[{i}]");
        if r.pool.is_none() && r.label.is_none() && r.command.is_none() {
            return Err(p.at(
                Some(span),
                &format!(
                    "{which} matches nothing: give at least one of `pool`, `label`, `command`"
                ),
            ));
        }
        for (field, value) in [("pool", &r.pool), ("label", &r.label)] {
            if let Some(v) = value {
                let ok = !v.is_empty()
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
                if !ok {
                    return Err(p.at(
                        Some(span.clone()),
                        &format!(
                            "{which}.{field} `{v}` may only use letters, digits, `_`, `.` and `-`"
                        ),
                    ));
                }
            }
        }
        let command = match &r.command {
            Some(c) => Some(glob::Pattern::new(c.get_ref()).map_err(|e| {
                p.at(
                    Some(c.span()),
                    &format!("{which}.command `{}` is not a valid glob: {e}", c.get_ref()),
                )
            })?),
            None => None,
        };
        let timeout = match &r.timeout {
            Some(t) => Some(p.duration(t, &format!("{which}.timeout"))?),
            None => None,
        };
        out.approval_rules.push(ApprovalRule {
            pool: r.pool.clone(),
            label: r.label.clone(),
            command,
            timeout,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::parse;

    #[test]
    fn rules_parse() {
        let f = parse(
            "[approval]\ntimeout = \"2h\"\n[[approval.rule]]\npool = \"prod\"\n\
             [[approval.rule]]\ncommand = \"kubectl *\"\ntimeout = \"5m\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(f.approval_timeout, Some(Duration::from_secs(7200)));
        assert_eq!(f.approval_rules.len(), 2);
        assert!(f.approval_rules[1]
            .command
            .as_ref()
            .unwrap()
            .matches("kubectl apply -f x"));
    }

    #[test]
    fn bad_rules_name_their_line() {
        let cases = [
            (
                "[approval]\n[[approval.rule]]\nbogus = 1\n",
                "t.toml:3:1: unknown field `bogus`",
            ),
            (
                "[approval]\n[[approval.rule]]\ntimeout = \"1h\"\n",
                "t.toml:2:1: approval.rule[0] matches nothing",
            ),
            (
                "[approval]\n[[approval.rule]]\ncommand = \"[oops\"\n",
                "t.toml:3:11: approval.rule[0].command `[oops` is not a valid glob",
            ),
            (
                "[approval]\ntimeout = \"soon\"\n",
                "t.toml:2:11: approval.timeout: `soon` is not a duration",
            ),
            (
                "[approval]\n[[approval.rule]]\nlabel = \"a b\"\n",
                "t.toml:2:1: approval.rule[0].label `a b` may only",
            ),
            ("[aproval]\n", "t.toml:1:2: unknown field `aproval`"),
        ];
        for (text, want) in cases {
            let e = parse(text, "t.toml").unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: got {e}");
        }
    }
}
