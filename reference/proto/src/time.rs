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
}
