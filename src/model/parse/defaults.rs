//! The `[defaults]` table and the `retry` / `compensate_retry` tables (also used by each
//! `[[task]]`).

use std::collections::BTreeMap;

use toml::de::DeValue;
use toml::Spanned;

use super::duration::{dur, HumanDuration};
use super::reader::{Reader, Table};
use crate::model::retry::RetrySpec;

/// `[defaults]` as read; the fields mirror
/// [`TaskDefaults`](crate::model::spec::TaskDefaults), unset if absent or unreadable.
#[derive(Default, Clone)]
pub(super) struct RawDefaults {
    pub(super) timeout: Option<Spanned<HumanDuration>>,
    pub(super) retry: Option<Spanned<RawRetry>>,
    pub(super) env: Option<Spanned<BTreeMap<String, String>>>,
    pub(super) cwd: Option<Spanned<String>>,
    pub(super) pool: Option<Spanned<String>>,
    pub(super) priority: Option<Spanned<i32>>,
    pub(super) requires_approval: Option<Spanned<bool>>,
    pub(super) approval_timeout: Option<Spanned<HumanDuration>>,
    pub(super) compensate_retry: Option<Spanned<RawRetry>>,
    pub(super) max_output: Option<Spanned<u64>>,
    pub(super) max_fan_out: Option<Spanned<u32>>,
}

impl Table for RawDefaults {
    const FIELDS: &'static [&'static str] = &[
        "timeout",
        "retry",
        "env",
        "cwd",
        "pool",
        "priority",
        "requires_approval",
        "approval_timeout",
        "compensate_retry",
        "max_output",
        "max_fan_out",
    ];
    const REQUIRED: &'static [&'static str] = &[];

    fn set(&mut self, key: &str, value: Spanned<DeValue<'_>>, r: &mut Reader<'_>) -> Option<bool> {
        Some(match key {
            "max_output" => r.field(value, &mut self.max_output),
            "max_fan_out" => r.field(value, &mut self.max_fan_out),
            "timeout" => r.field(value, &mut self.timeout),
            "retry" => r.table(value, &mut self.retry),
            "env" => r.field(value, &mut self.env),
            "cwd" => r.field(value, &mut self.cwd),
            "pool" => r.field(value, &mut self.pool),
            "priority" => r.field(value, &mut self.priority),
            "requires_approval" => r.field(value, &mut self.requires_approval),
            "approval_timeout" => r.field(value, &mut self.approval_timeout),
            "compensate_retry" => r.table(value, &mut self.compensate_retry),
            _ => return None,
        })
    }
}

/// A `retry` or `compensate_retry` table as read; the fields mirror [`RetrySpec`].
#[derive(Default, Clone)]
pub(super) struct RawRetry {
    max_attempts: Option<Spanned<u32>>,
    initial_interval: Option<Spanned<HumanDuration>>,
    backoff_coefficient: Option<Spanned<f64>>,
    max_interval: Option<Spanned<HumanDuration>>,
    jitter: Option<Spanned<f64>>,
}

impl Table for RawRetry {
    const FIELDS: &'static [&'static str] = &[
        "max_attempts",
        "initial_interval",
        "backoff_coefficient",
        "max_interval",
        "jitter",
    ];
    const REQUIRED: &'static [&'static str] = &[];

    fn set(&mut self, key: &str, value: Spanned<DeValue<'_>>, r: &mut Reader<'_>) -> Option<bool> {
        Some(match key {
            "max_attempts" => r.field(value, &mut self.max_attempts),
            "initial_interval" => r.field(value, &mut self.initial_interval),
            "backoff_coefficient" => r.field(value, &mut self.backoff_coefficient),
            "max_interval" => r.field(value, &mut self.max_interval),
            "jitter" => r.field(value, &mut self.jitter),
            _ => return None,
        })
    }
}

impl From<RawRetry> for RetrySpec {
    fn from(r: RawRetry) -> Self {
        RetrySpec {
            max_attempts: r.max_attempts.map(Spanned::into_inner),
            initial_interval: dur(r.initial_interval),
            backoff_coefficient: r.backoff_coefficient.map(Spanned::into_inner),
            max_interval: dur(r.max_interval),
            jitter: r.jitter.map(Spanned::into_inner),
        }
    }
}
