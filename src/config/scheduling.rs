//! The `[scheduling]` section: the weights of priority scoring ([`Weights`], the pure
//! formula in [`crate::model::score`]).
//!
//! ```toml
//! [scheduling]
//! scoring = true             # false: priority, then first in, first out
//! priority = 1000            # points per priority step
//! deadline = 1               # points per minute past the (effective) deadline
//! age = 0.1                  # points per minute waiting
//! default_deadline = "1h"    # effective deadline of a task without one, from ready
//!
//! [scheduling.label_boosts]  # points per label (VIP senders)
//! vip = 500
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::file::NodeFile;
use super::parse::Spans;
use super::ConfigError;
use crate::model::score::Weights;

/// The serde shape of `[scheduling]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScheduling {
    scoring: Option<bool>,
    priority: Option<Spanned<f64>>,
    deadline: Option<Spanned<f64>>,
    age: Option<Spanned<f64>>,
    default_deadline: Option<Spanned<String>>,
    #[serde(default)]
    label_boosts: BTreeMap<String, Spanned<f64>>,
}

/// Checks `[scheduling]` into `out`: every weight finite and at least 0, the default
/// deadline a duration longer than 0 s.
pub(super) fn check(p: &Spans, raw: &RawScheduling, out: &mut NodeFile) -> Result<(), ConfigError> {
    let weight = |v: &Spanned<f64>, field: &str| -> Result<f64, ConfigError> {
        let x = *v.get_ref();
        if !x.is_finite() || x < 0.0 {
            return Err(p.at(
                Some(v.span()),
                &format!("{field} must be a finite number of points, at least 0 (got {x})"),
            ));
        }
        Ok(x)
    };
    let mut w = Weights::default();
    if let Some(s) = raw.scoring {
        w.scoring = s;
    }
    for (field, value, slot) in [
        ("scheduling.priority", &raw.priority, &mut w.priority),
        ("scheduling.deadline", &raw.deadline, &mut w.deadline),
        ("scheduling.age", &raw.age, &mut w.age),
    ] {
        if let Some(v) = value {
            *slot = weight(v, field)?;
        }
    }
    if let Some(d) = &raw.default_deadline {
        w.default_deadline = p.duration(d, "scheduling.default_deadline")?;
    }
    for (label, v) in &raw.label_boosts {
        let x = weight(v, &format!("scheduling.label_boosts.{label}"))?;
        w.label_boosts.insert(label.clone(), x);
    }
    out.scheduling = Some(w);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use crate::model::score::Weights;

    #[test]
    fn bad_weights_name_their_line_and_column() {
        let cases = [
            (
                "[scheduling]\npriority = -1\n",
                "t.toml:2:12: scheduling.priority must be a finite number of points, at least 0 (got -1)",
            ),
            (
                "[scheduling]\ndeadline = nan\n",
                "t.toml:2:12: scheduling.deadline must be a finite number",
            ),
            (
                "[scheduling]\nage = inf\n",
                "t.toml:2:7: scheduling.age must be a finite number",
            ),
            (
                "[scheduling]\nage = -0.5\n",
                "t.toml:2:7: scheduling.age must be a finite number of points, at least 0 (got -0.5)",
            ),
            (
                "[scheduling.label_boosts]\nvip = -500\n",
                "t.toml:2:7: scheduling.label_boosts.vip must be a finite number",
            ),
            (
                "[scheduling]\ndefault_deadline = \"soon\"\n",
                "t.toml:2:20: scheduling.default_deadline: `soon` is not a duration",
            ),
            (
                "[scheduling]\ndefault_deadline = \"0s\"\n",
                "t.toml:2:20: scheduling.default_deadline must be longer than 0s",
            ),
            (
                "[scheduling]\nurgency = 1\n",
                "t.toml:2:1: unknown field `urgency`",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text, "t.toml").unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: got {e}");
        }
    }

    #[test]
    fn weights_read_with_defaults_for_what_is_left_out() {
        let f = parse(
            "[scheduling]\npriority = 10\nage = 0\n[scheduling.label_boosts]\nvip = 500\n",
            "t.toml",
        )
        .unwrap();
        let w = f.scheduling.unwrap();
        assert_eq!(w.priority, 10.0, "an integer reads as points");
        assert_eq!(w.age, 0.0);
        assert_eq!(w.deadline, Weights::default().deadline);
        assert_eq!(w.label_boosts["vip"], 500.0);
        assert!(w.scoring);
        let off = parse("[scheduling]\nscoring = false\n", "t.toml").unwrap();
        assert!(!off.scheduling.unwrap().scoring);
        assert!(parse("", "t.toml").unwrap().scheduling.is_none());
    }
}
