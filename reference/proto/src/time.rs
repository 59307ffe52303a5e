//! Wall-clock time as the protocol carries it.
//!
//! The core never reads a clock: callers pass [`UnixTime`] for wall-clock rules (token
//! expiry, message-1 timestamps) and [`std::time::Instant`] for timers.

use std::time::{Duration, SystemTime};

/// A point in wall-clock time, as a duration since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(Duration);

impl UnixTime {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(Duration::ZERO);

    /// A time `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// A time `secs` seconds and `nanos` nanoseconds after the epoch.
    pub const fn new(secs: u64, nanos: u32) -> Self {
        Self(Duration::new(secs, nanos))
    }

    /// Reads the system clock. Only drivers call this; the core takes time as an argument.
    pub fn now() -> Self {
        Self(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO),
        )
    }

    /// Whole seconds since the epoch.
    pub const fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    /// Nanoseconds past the last whole second.
    pub const fn subsec_nanos(self) -> u32 {
        self.0.subsec_nanos()
    }

    /// Time since the epoch.
    pub const fn since_epoch(self) -> Duration {
        self.0
    }

    /// `self + d`, saturating at the largest representable time.
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d))
    }

    /// `self - d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(d))
    }

    /// RFC 3339 in UTC, whole seconds: `2026-11-23T23:59:01Z` (proleptic Gregorian).
    pub fn rfc3339(self) -> String {
        let secs = self.as_secs();
        let days = i64::try_from(secs / 86_400).unwrap_or(0);
        let rem = secs % 86_400;
        // Days to civil date (H. Hinnant's `civil_from_days`).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

impl From<SystemTime> for UnixTime {
    fn from(t: SystemTime) -> Self {
        Self(
            t.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(UnixTime::EPOCH.rfc3339(), "1970-01-01T00:00:00Z");
        // A leap day, and the turn of a year.
        assert_eq!(
            UnixTime::from_secs(951_782_400).rfc3339(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            UnixTime::from_secs(1_798_761_599).rfc3339(),
            "2026-12-31T23:59:59Z"
        );
    }
}
