//! Retry policy: how many attempts a task gets and how long to wait between them.
//!
//! # Defaults and where they come from
//! | field | default | source |
//! |---|---|---|
//! | `max_attempts` | 5 (first attempt included) | troupe's seed spec: "max 5 attempts, exponential backoff". Temporal's default is unlimited, Airflow's is 1 (`retries = 0`); a bounded default keeps a broken command from looping forever. |
//! | `initial_interval` | 1 s | Temporal `RetryPolicy.InitialInterval` |
//! | `backoff_coefficient` | 2.0 | Temporal `RetryPolicy.BackoffCoefficient` |
//! | `max_interval` | 100 × `initial_interval` | Temporal `RetryPolicy.MaximumInterval` |
//! | `jitter` | 0.2 | troupe; the reason for jitter is AWS Architecture Blog, "Exponential Backoff and Jitter" (M. Brooker, 2015) |
//!
//! # The formula
//! After attempt `n` (1-based) fails and another attempt is allowed, the next one starts after
//! `backoff(n) × (1 + jitter × u)`, where `backoff(n) = min(max_interval, initial_interval ×
//! backoff_coefficient^(n−1))` and `u ∈ [0, 1)` is a uniform sample the *caller* draws (the
//! model draws no random numbers, so replay stays deterministic: the chosen instant is written
//! into the journal event). Jitter only ever adds, so the spacing between attempts is never
//! below `backoff(n)`; at the cap an interval may exceed `max_interval` by up to `jitter ×
//! max_interval`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::spec::too_long;
use super::time::Timestamp;

/// A fully resolved retry policy (every field set). See the module docs for defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Total attempts allowed, the first included; 1 means "never retry", 0 means unlimited
    /// (Temporal's convention).
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub initial_interval: Duration,
    /// Factor applied to the wait after each further failure; at least 1.0.
    pub backoff_coefficient: f64,
    /// Cap on the un-jittered wait.
    pub max_interval: Duration,
    /// Fraction in `[0, 1]` of the wait added at random, so many tasks failing together do not
    /// retry in lockstep.
    pub jitter: f64,
}

/// Default for [`RetryPolicy::max_attempts`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default for [`RetryPolicy::initial_interval`].
pub const DEFAULT_INITIAL_INTERVAL: Duration = Duration::from_secs(1);
/// Default for [`RetryPolicy::backoff_coefficient`].
pub const DEFAULT_BACKOFF_COEFFICIENT: f64 = 2.0;
/// [`RetryPolicy::max_interval`] defaults to this multiple of the initial interval.
pub const DEFAULT_MAX_INTERVAL_FACTOR: u32 = 100;
/// Default for [`RetryPolicy::jitter`].
pub const DEFAULT_JITTER: f64 = 0.2;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetrySpec::default().resolve(None)
    }
}

impl RetryPolicy {
    /// Whether another attempt may start after `attempts_made` attempts (counted from the
    /// last operator `retry`, which restores the full budget).
    pub fn allows_another(&self, attempts_made: u32) -> bool {
        self.max_attempts == 0 || attempts_made < self.max_attempts
    }

    /// The un-jittered wait after attempt `failed_attempt` (1-based) failed.
    pub fn backoff(&self, failed_attempt: u32) -> Duration {
        let exponent = failed_attempt.saturating_sub(1).min(i32::MAX as u32) as i32;
        let secs = self.initial_interval.as_secs_f64() * self.backoff_coefficient.powi(exponent);
        let cap = self.max_interval.as_secs_f64();
        // `min` absorbs an infinite product; out-of-range or NaN values saturate.
        Duration::try_from_secs_f64(secs.min(cap).max(0.0)).unwrap_or(self.max_interval)
    }

    /// The wait after attempt `failed_attempt` failed, with jitter from `unit_sample ∈ [0, 1)`
    /// (values outside are clamped).
    pub fn delay(&self, failed_attempt: u32, unit_sample: f64) -> Duration {
        let u = if unit_sample.is_finite() {
            unit_sample.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let base = self.backoff(failed_attempt);
        Duration::try_from_secs_f64(base.as_secs_f64() * (1.0 + jitter * u))
            .unwrap_or(Duration::MAX)
    }

    /// When the next attempt should start, or `None` if the budget is spent. `attempts_made`
    /// counts attempts since the budget was last restored, the one that just failed (at
    /// `failed_at`) included; it is also the backoff exponent's `n`. The instant saturates at
    /// [`Timestamp::MAX`] (year 9999), however long the policy's intervals.
    pub fn next_retry(
        &self,
        attempts_made: u32,
        failed_at: Timestamp,
        unit_sample: f64,
    ) -> Option<Timestamp> {
        self.allows_another(attempts_made)
            .then(|| failed_at.saturating_add(self.delay(attempts_made, unit_sample)))
    }
}

/// A retry policy as written in a workflow file: every field optional. A task's `retry` table
/// is merged field by field over `[defaults].retry`, then over the built-in defaults.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RetrySpec {
    /// See [`RetryPolicy::max_attempts`].
    pub max_attempts: Option<u32>,
    /// See [`RetryPolicy::initial_interval`].
    pub initial_interval: Option<Duration>,
    /// See [`RetryPolicy::backoff_coefficient`].
    pub backoff_coefficient: Option<f64>,
    /// See [`RetryPolicy::max_interval`].
    pub max_interval: Option<Duration>,
    /// See [`RetryPolicy::jitter`].
    pub jitter: Option<f64>,
}

impl RetrySpec {
    /// Fields set in `self` win over those in `fallback`.
    pub fn or(self, fallback: RetrySpec) -> RetrySpec {
        RetrySpec {
            max_attempts: self.max_attempts.or(fallback.max_attempts),
            initial_interval: self.initial_interval.or(fallback.initial_interval),
            backoff_coefficient: self.backoff_coefficient.or(fallback.backoff_coefficient),
            max_interval: self.max_interval.or(fallback.max_interval),
            jitter: self.jitter.or(fallback.jitter),
        }
    }

    /// Fills unset fields from `fallback` (if any), then from the built-in defaults.
    pub fn resolve(self, fallback: Option<&RetrySpec>) -> RetryPolicy {
        let s = match fallback {
            Some(f) => self.or(*f),
            None => self,
        };
        let initial_interval = s.initial_interval.unwrap_or(DEFAULT_INITIAL_INTERVAL);
        RetryPolicy {
            max_attempts: s.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
            initial_interval,
            backoff_coefficient: s.backoff_coefficient.unwrap_or(DEFAULT_BACKOFF_COEFFICIENT),
            max_interval: s
                .max_interval
                .unwrap_or(initial_interval.saturating_mul(DEFAULT_MAX_INTERVAL_FACTOR)),
            jitter: s.jitter.unwrap_or(DEFAULT_JITTER),
        }
    }

    /// Problems with the fields that are set; each message names its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(c) = self.backoff_coefficient {
            if !(c.is_finite() && c >= 1.0) {
                out.push(format!(
                    "backoff_coefficient must be a number ≥ 1.0, got {c}"
                ));
            }
        }
        if let Some(j) = self.jitter {
            if !(0.0..=1.0).contains(&j) {
                out.push(format!("jitter must be between 0.0 and 1.0, got {j}"));
            }
        }
        if self.initial_interval == Some(Duration::ZERO) {
            out.push("initial_interval must be longer than 0s".to_owned());
        }
        let too_long = |field, d: Option<Duration>| d.and_then(|d| too_long(field, d));
        out.extend(too_long("initial_interval", self.initial_interval));
        out.extend(too_long("max_interval", self.max_interval));
        if let (Some(i), Some(m)) = (self.initial_interval, self.max_interval) {
            if m < i {
                out.push(format!(
                    "max_interval ({}) is shorter than initial_interval ({})",
                    humantime::format_duration(m),
                    humantime::format_duration(i)
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_follow_temporal_and_the_seed_spec() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts, 5);
        assert_eq!(p.initial_interval, Duration::from_secs(1));
        assert_eq!(p.backoff_coefficient, 2.0);
        assert_eq!(p.max_interval, Duration::from_secs(100));
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(2), Duration::from_secs(2));
        assert_eq!(p.backoff(4), Duration::from_secs(8));
        assert_eq!(p.backoff(30), Duration::from_secs(100));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(100));
        assert!(p.allows_another(4));
        assert!(!p.allows_another(5));
    }

    #[test]
    fn absurd_durations_saturate_instead_of_panicking() {
        let p = RetryPolicy {
            max_attempts: 0,
            initial_interval: Duration::MAX,
            backoff_coefficient: 10.0,
            max_interval: Duration::MAX,
            jitter: 1.0,
        };
        assert_eq!(p.backoff(1000), Duration::MAX);
        assert_eq!(p.delay(1000, 0.99), Duration::MAX);
        let t = p.next_retry(3, Timestamp(1), 0.5).unwrap();
        assert_eq!(t, Timestamp::MAX);
    }

    #[test]
    fn retry_times_never_pass_the_last_printable_instant() {
        // A million-year interval (refused in workflow files today, but an old journal may
        // hold one) from a recent failure, and from an instant close to the end.
        let million_years = Duration::from_secs(1_000_000 * 365 * 86_400);
        let p = RetryPolicy {
            max_attempts: 0,
            initial_interval: million_years,
            backoff_coefficient: 2.0,
            max_interval: million_years,
            jitter: 1.0,
        };
        for failed_at in [
            Timestamp(1_760_000_000_000),
            Timestamp(Timestamp::MAX.0 - 1),
        ] {
            for n in [1, 2, 64, u32::MAX] {
                let t = p.next_retry(n, failed_at, 0.999).unwrap();
                assert_eq!(t, Timestamp::MAX);
                assert_eq!(t.to_string(), "9999-12-31T23:59:59.999Z");
            }
        }
    }

    #[test]
    fn zero_max_attempts_is_unlimited() {
        let p = RetrySpec {
            max_attempts: Some(0),
            ..Default::default()
        }
        .resolve(None);
        assert!(p.allows_another(1_000_000));
    }

    #[test]
    fn task_fields_win_over_defaults_field_by_field() {
        let defaults = RetrySpec {
            max_attempts: Some(3),
            initial_interval: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        let task = RetrySpec {
            max_attempts: Some(1),
            ..Default::default()
        };
        let p = task.resolve(Some(&defaults));
        assert_eq!(p.max_attempts, 1);
        assert_eq!(p.initial_interval, Duration::from_secs(2));
        assert_eq!(p.max_interval, Duration::from_secs(200));
    }

    #[test]
    fn bad_fields_are_reported() {
        let s = RetrySpec {
            backoff_coefficient: Some(0.5),
            jitter: Some(2.0),
            initial_interval: Some(Duration::from_secs(10)),
            max_interval: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let problems = s.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("backoff_coefficient must be"));
        assert!(problems[1].starts_with("jitter must be"));
        assert!(problems[2].starts_with("max_interval (1s) is shorter than initial_interval (10s)"));
    }

    #[test]
    fn intervals_over_a_hundred_years_are_reported() {
        let century = crate::model::spec::MAX_WORKFLOW_DURATION;
        let ok = RetrySpec {
            initial_interval: Some(century),
            max_interval: Some(century),
            ..Default::default()
        };
        assert_eq!(ok.problems(), Vec::<String>::new());
        let s = RetrySpec {
            initial_interval: Some(century + Duration::from_millis(1)),
            max_interval: Some(century * 10_000),
            ..Default::default()
        };
        let problems = s.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("initial_interval (99years"),
            "{problems:?}"
        );
        assert!(problems[0].ends_with("is longer than the limit of 36500 days (100 years)"));
        assert!(problems[1].starts_with("max_interval ("), "{problems:?}");
    }

    proptest! {
        #[test]
        fn delay_is_never_below_backoff_and_bounded(
            n in 1u32..64, u in 0.0f64..1.0, coef in 1.0f64..10.0, jitter in 0.0f64..=1.0,
            init_ms in 1u64..10_000, cap_factor in 1u32..1000,
        ) {
            let init = Duration::from_millis(init_ms);
            let p = RetryPolicy {
                max_attempts: 0,
                initial_interval: init,
                backoff_coefficient: coef,
                max_interval: init * cap_factor,
                jitter,
            };
            let b = p.backoff(n);
            let d = p.delay(n, u);
            prop_assert!(d >= b);
            prop_assert!(b <= p.max_interval);
            prop_assert!(d <= p.max_interval.mul_f64(1.0 + jitter) + Duration::from_nanos(1));
            prop_assert!(p.backoff(n + 1) >= b);
        }
    }
}
