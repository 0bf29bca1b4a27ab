//! The node config file, `troupe.toml`.
//!
//! Read from `--config FILE` (env `TROUPE_CONFIG`), else from `DATA_DIR/troupe.toml` when that
//! file exists. Unknown keys are errors, reported with the file, line and column. Command-line
//! flags override the file.
//!
//! ```toml
//! [approval]
//! timeout = "30d"          # expiry of requests whose task sets no approval_timeout
//!
//! [[approval.rule]]        # tasks matching every matcher given require approval
//! pool = "prod"            # the task's pool
//! label = "deploy"         # one of the task's `labels`
//! command = "kubectl *"    # glob over the command line as `troupe status` prints it
//! timeout = "1h"           # expiry for requests this rule causes (optional)
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::actors::approval::ApprovalRule;

/// What `troupe.toml` sets (everything optional).
#[derive(Debug, Clone, Default)]
pub struct NodeFile {
    /// `[approval] timeout`.
    pub approval_timeout: Option<Duration>,
    /// `[[approval.rule]]` entries, in file order.
    pub approval_rules: Vec<ApprovalRule>,
}

/// A config file that cannot be used: `FILE:LINE:COLUMN: message` (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    approval: Option<RawApproval>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    pool: Option<String>,
    label: Option<String>,
    command: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

/// The config file to read: `explicit` if given, else `DATA_DIR/troupe.toml` if it exists.
pub fn locate(explicit: Option<&Path>, data_dir: &Path) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => Some(data_dir.join("troupe.toml")).filter(|p| p.exists()),
    }
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<NodeFile, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{name}: cannot read the config file: {e}")))?;
    parse(&text, &name)
}

/// Parses config text; `name` prefixes error positions.
pub fn parse(text: &str, name: &str) -> Result<NodeFile, ConfigError> {
    let at = |span: Option<Range<usize>>, msg: &str| -> ConfigError {
        match span {
            Some(span) => {
                let (line, col) = line_col(text, span.start);
                ConfigError(format!("{name}:{line}:{col}: {msg}"))
            }
            None => ConfigError(format!("{name}: {msg}")),
        }
    };
    let raw: Raw = toml::from_str(text).map_err(|e| at(e.span(), e.message()))?;
    let mut out = NodeFile::default();
    let Some(approval) = raw.approval else {
        return Ok(out);
    };
    let duration = |s: &Spanned<String>, field: &str| -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(s.get_ref()).map_err(|e| {
            at(
                Some(s.span()),
                &format!("{field}: `{}` is not a duration ({e})", s.get_ref()),
            )
        })?;
        if d.is_zero() {
            return Err(at(
                Some(s.span()),
                &format!("{field} must be longer than 0s"),
            ));
        }
        Ok(d)
    };
    if let Some(t) = &approval.timeout {
        out.approval_timeout = Some(duration(t, "approval.timeout")?);
    }
    for (i, rule) in approval.rule.iter().enumerate() {
        let span = rule.span();
        let r = rule.get_ref();
        let which = format!("approval.rule[{i}]");
        if r.pool.is_none() && r.label.is_none() && r.command.is_none() {
            return Err(at(
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
                    return Err(at(
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
                at(
                    Some(c.span()),
                    &format!("{which}.command `{}` is not a valid glob: {e}", c.get_ref()),
                )
            })?),
            None => None,
        };
        let timeout = match &r.timeout {
            Some(t) => Some(duration(t, &format!("{which}.timeout"))?),
            None => None,
        };
        out.approval_rules.push(ApprovalRule {
            pool: r.pool.clone(),
            label: r.label.clone(),
            command,
            timeout,
        });
    }
    Ok(out)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

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
