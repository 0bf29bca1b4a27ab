//! Wall-clock instants as the journal records them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC).
///
/// Time enters the model only as a field of an event, stamped by the node when it decides to
/// append that event, so a replay reproduces the same state on any machine at any time. Printed
/// as RFC 3339 with millisecond precision (`2026-11-21T05:33:00.123Z`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Converts a system time; instants before 1970 clamp to the epoch.
    pub fn from_system_time(t: SystemTime) -> Self {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64)
            .unwrap_or(0);
        Timestamp(ms)
    }

    /// The instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// The latest instant RFC 3339 can write: 9999-12-31T23:59:59.999Z.
    pub const MAX: Timestamp = Timestamp(MAX_RFC3339_MS);

    /// `self + d`, saturating at [`Timestamp::MAX`] (or at `self`, if a damaged record put
    /// it later) instead of overflowing, so every instant troupe computes (retry times,
    /// approval expiries) prints as RFC 3339.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = d.as_millis().min(u128::from(u64::MAX)) as u64;
        Timestamp(self.0.saturating_add(ms).min(self.0.max(MAX_RFC3339_MS)))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// Last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z).
const MAX_RFC3339_MS: u64 = 253_402_300_799_999;

impl fmt::Display for Timestamp {
    /// RFC 3339 with milliseconds; instants after year 9999 (only a damaged or hostile
    /// record holds one) print as `+<ms>ms` instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > MAX_RFC3339_MS {
            return write!(f, "+{}ms", self.0);
        }
        fmt::Display::fmt(&humantime::format_rfc3339_millis(self.to_system_time()), f)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}ms)", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_rfc3339_millis() {
        assert_eq!(
            Timestamp(1_700_000_000_123).to_string(),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            Timestamp::from_system_time(Timestamp(42).to_system_time()),
            Timestamp(42)
        );
        assert_eq!(
            Timestamp(MAX_RFC3339_MS).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(Timestamp(u64::MAX).to_string(), format!("+{}ms", u64::MAX));
    }

    #[test]
    fn additions_saturate_at_the_last_printable_instant() {
        let now = Timestamp(1_700_000_000_000);
        assert_eq!(
            now.saturating_add(Duration::from_secs(5)),
            Timestamp(1_700_000_005_000)
        );
        let million_years = Duration::from_secs(1_000_000 * 365 * 86_400);
        assert_eq!(now.saturating_add(million_years), Timestamp::MAX);
        assert_eq!(now.saturating_add(Duration::MAX), Timestamp::MAX);
        assert_eq!(
            now.saturating_add(Duration::MAX).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
        // A later instant (only a damaged record holds one) never moves back.
        assert_eq!(
            Timestamp(u64::MAX - 1).saturating_add(Duration::from_secs(5)),
            Timestamp(u64::MAX - 1)
        );
    }
}
