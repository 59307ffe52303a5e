//! The host's bound on message-1 work (`CHAN-14`): a token bucket over all sessions.

use std::time::{Duration, Instant};

use crate::limits::{HANDSHAKE_BURST, HANDSHAKE_RATE_PER_SEC};

/// A token bucket: `rate` tokens per second, holding at most `burst`.
///
/// A host takes one token before it does any Diffie-Hellman work for a message 1; when the
/// bucket is empty it refuses the session with `RATE_LIMITED` (`CHAN-14`).
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: u32,
    burst: u32,
    /// Tokens available, in millionths of a token (integer arithmetic only).
    micro_tokens: u64,
    last: Option<Instant>,
}

const MICRO: u64 = 1_000_000;

impl TokenBucket {
    /// A full bucket with the given rate per second and burst.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate,
            burst,
            micro_tokens: u64::from(burst) * MICRO,
            last: None,
        }
    }

    /// The bucket `CHAN-14` prescribes: 50 per second, burst 100.
    pub fn for_handshakes() -> Self {
        Self::new(HANDSHAKE_RATE_PER_SEC, HANDSHAKE_BURST)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = match self.last {
            Some(last) => now.saturating_duration_since(last),
            None => Duration::ZERO,
        };
        self.last = Some(now);
        // micro-tokens gained = elapsed_us * rate (1 token/s = 1 micro-token/us)
        let gained = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(self.rate));
        let cap = u64::from(self.burst) * MICRO;
        self.micro_tokens = self.micro_tokens.saturating_add(gained).min(cap);
    }

    /// Takes one token if there is one. `now` must not go backwards (earlier values are
    /// treated as no time passing).
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.micro_tokens >= MICRO {
            self.micro_tokens -= MICRO;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chan_14_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::for_handshakes();
        let taken = (0..1000).filter(|_| b.try_take(t0)).count();
        assert_eq!(taken, 100, "burst");
        // 100 ms later: 5 more tokens at 50/s.
        let t1 = t0 + Duration::from_millis(100);
        let taken = (0..1000).filter(|_| b.try_take(t1)).count();
        assert_eq!(taken, 5);
        // An hour later the bucket holds the burst, not more.
        let t2 = t1 + Duration::from_secs(3600);
        let taken = (0..1000).filter(|_| b.try_take(t2)).count();
        assert_eq!(taken, 100);
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(1, 1);
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0 - Duration::from_secs(5)));
    }
}
