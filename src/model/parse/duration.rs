//! Duration values: [humantime](https://docs.rs/humantime) strings such as `"90s"` or
//! `"1h 30m"`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::model::quote::quoted;

/// A humantime duration string in the file.
#[derive(Debug, Clone, Copy)]
pub(super) struct HumanDuration(Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| {
                let mut reason = e.to_string();
                if let humantime::DurationError::UnknownUnit { unit, .. } = &e {
                    // humantime quotes the unit in full.
                    reason = reason.replace(&format!("{unit:?}"), &format!("{:?}", quoted(unit)));
                }
                serde::de::Error::custom(format!(
                    "invalid duration {:?}: {reason} (examples: \"90s\", \"10m\", \"1h 30m\")",
                    quoted(&text)
                ))
            })
    }
}

/// The duration of an optional field, without its span.
pub(super) fn dur(d: Option<Spanned<HumanDuration>>) -> Option<Duration> {
    d.map(|d| d.into_inner().0)
}
