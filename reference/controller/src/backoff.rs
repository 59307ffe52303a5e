//! Reconnecting with jittered exponential backoff (`LINK-28`).

use std::time::Duration;

use tether_proto::link::CloseCode;

use crate::error::ControllerError;
use crate::link::{Link, LinkOptions};

/// The waits between reconnection attempts (`LINK-28`): after the n-th consecutive failure
/// (n = 0, 1, ...), a time drawn uniformly between 50% and 100% of min(max, base × 2^n).
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(60))
    }
}

impl Backoff {
    /// Backoff from `base` up to `max` (1 s and 60 s in `LINK-28`).
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
        }
    }

    /// The ceiling of the next wait: min(max, base × 2^n).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Counts a failed attempt and returns how long to wait before the next one.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let mut r = [0u8; 8];
        // On RNG failure, wait the full ceiling: still bounded, merely not jittered.
        let fraction = if getrandom::fill(&mut r).is_ok() {
            // 53 random bits as a fraction in [0, 1).
            #[allow(clippy::cast_precision_loss)]
            let f = (u64::from_be_bytes(r) >> 11) as f64 / (1u64 << 53) as f64;
            f
        } else {
            1.0
        };
        ceiling.mul_f64(0.5 + 0.5 * fraction)
    }

    /// A link reached `READY`: start again from `base`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Whether an error should stop automatic reconnection: `GOAWAY AUTH_FAILED` or
/// `REMOTE_ACCESS_DISABLED` (`LINK-28`), and errors retrying cannot fix (bad URL, `ws://`
/// to a non-loopback address, TLS configuration).
pub fn is_permanent(error: &ControllerError) -> bool {
    match error {
        ControllerError::GoAway { info, .. } => matches!(
            info.code,
            CloseCode::AUTH_FAILED | CloseCode::REMOTE_ACCESS_DISABLED
        ),
        ControllerError::BadUrl { .. }
        | ControllerError::InsecureUrl { .. }
        | ControllerError::Tls(_)
        | ControllerError::Protocol(_) => true,
        _ => false,
    }
}

/// Connects to a relay, retrying with [`Backoff`] until a link is `READY`, a permanent
/// error ([`is_permanent`]) occurs, or `max_attempts` attempts have failed (`None`: no
/// limit).
///
/// # Errors
/// The last attempt's error.
pub async fn connect_with_retry(
    url: &str,
    workspace: &str,
    credential: &str,
    options: &LinkOptions,
    backoff: &mut Backoff,
    max_attempts: Option<u32>,
) -> Result<Link, ControllerError> {
    let mut attempts = 0u32;
    loop {
        match Link::connect(url, workspace, credential, options).await {
            Ok(link) => {
                backoff.reset();
                return Ok(link);
            }
            Err(e) => {
                attempts = attempts.saturating_add(1);
                if is_permanent(&e) || max_attempts.is_some_and(|m| attempts >= m) {
                    return Err(e);
                }
                let delay = backoff.next_delay();
                tracing::info!(error = %e, ?delay, "relay link failed; reconnecting");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LINK-28: waits within [50%, 100%] of min(60 s, 1 s × 2^n), reset on READY.
    #[test]
    fn delays_follow_link_28() {
        let mut b = Backoff::default();
        for n in 0..10u32 {
            let ceiling = Duration::from_secs(1u64 << n).min(Duration::from_secs(60));
            assert_eq!(b.ceiling(), ceiling);
            let d = b.next_delay();
            assert!(d >= ceiling / 2 && d <= ceiling, "n={n} d={d:?}");
        }
        assert_eq!(b.ceiling(), Duration::from_secs(60));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }
}
