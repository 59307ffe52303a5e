//! The host's bounds on message-1 work (`CHAN-14`, `CHAN-30`).
//!
//! ```text
//!   message 1 ──► read budget (global, CHAN-14) ── empty ──► RATE_LIMITED, no DH done
//!                   │ token
//!                   ▼
//!                 es: the claimed static key (one DH)
//!                   │
//!                   ├─ a paired, unrevoked, active device ──► its own bucket (CHAN-30)
//!                   │                                           │ empty
//!                   │                                           ▼
//!                   └─ anything else (unknown, revoked, ───► the shared bucket (CHAN-14)
//!                      inactive, unreadable)                    │ empty
//!                                                               ▼
//!                                                         RATE_LIMITED
//! ```
//!
//! A flood from keys the host does not know spends the shared bucket, never a device's own
//! bucket, so it cannot lock the paired devices out (WireGuard's cookie reply plays that
//! role there, keyed by the sender's address; here the sender is known by its static key
//! after one DH). The read budget is sized far above the shared bucket: it bounds the one
//! DH a message costs before its sender is known, and only a flood faster than it reaches
//! everyone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::limits::{
    DEVICE_HANDSHAKE_BURST, DEVICE_HANDSHAKE_RATE_PER_SEC, HANDSHAKE_BURST, HANDSHAKE_RATE_PER_SEC,
    HANDSHAKE_READ_BURST, HANDSHAKE_READ_RATE_PER_SEC,
};

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

    /// The shared bucket `CHAN-14` prescribes for senders the host does not know: 50 per
    /// second, burst 100.
    pub fn for_handshakes() -> Self {
        Self::new(HANDSHAKE_RATE_PER_SEC, HANDSHAKE_BURST)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = match self.last {
            Some(last) => now.saturating_duration_since(last),
            None => Duration::ZERO,
        };
        // Time never goes backwards for the bucket: an earlier `now` adds nothing and
        // leaves the reference point where it was.
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
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

    /// Whether the bucket holds its whole burst at `now` (it would be the same as a new
    /// one).
    fn is_full(&self, now: Instant) -> bool {
        let mut probe = self.clone();
        probe.refill(now);
        probe.micro_tokens >= u64::from(probe.burst) * MICRO
    }
}

/// Most devices the reference host keeps an own bucket for (`CHAN-30`). Only keys of
/// paired, unrevoked, active devices get one, so only pairing adds entries; beyond this
/// many the least recently used is forgotten (it comes back full when its device returns).
pub const MAX_DEVICE_BUCKETS: usize = 1024;

struct DeviceBucket {
    bucket: TokenBucket,
    last_used: Instant,
}

/// Which bucket paid for a message 1 (`CHAN-14`, `CHAN-30`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// The device's own bucket.
    Device,
    /// The shared bucket.
    Shared,
}

/// Every bucket of a host's message-1 budget: the global read budget taken before any
/// Diffie-Hellman, the shared bucket of senders the host does not know (`CHAN-14`), and
/// one bucket per paired device (`CHAN-30`). Sans-IO: time is passed in.
pub struct HandshakeLimiter {
    read: TokenBucket,
    shared: TokenBucket,
    device_rate: u32,
    device_burst: u32,
    devices: HashMap<[u8; 32], DeviceBucket>,
    max_devices: usize,
}

impl std::fmt::Debug for HandshakeLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeLimiter")
            .field("read", &self.read)
            .field("shared", &self.shared)
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

impl Default for HandshakeLimiter {
    /// The budget `CHAN-14` and `CHAN-30` prescribe.
    fn default() -> Self {
        Self::new(
            TokenBucket::new(HANDSHAKE_READ_RATE_PER_SEC, HANDSHAKE_READ_BURST),
            TokenBucket::for_handshakes(),
            DEVICE_HANDSHAKE_RATE_PER_SEC,
            DEVICE_HANDSHAKE_BURST,
        )
    }
}

impl HandshakeLimiter {
    /// A limiter with the given read budget, shared bucket, and the rate and burst of
    /// every device's own bucket.
    pub fn new(
        read: TokenBucket,
        shared: TokenBucket,
        device_rate: u32,
        device_burst: u32,
    ) -> Self {
        Self {
            read,
            shared,
            device_rate,
            device_burst,
            devices: HashMap::new(),
            max_devices: MAX_DEVICE_BUCKETS,
        }
    }

    /// Keeps an own bucket for at most `max` devices (tests; the default is
    /// [`MAX_DEVICE_BUCKETS`]).
    pub fn with_max_devices(mut self, max: usize) -> Self {
        self.max_devices = max.max(1);
        self
    }

    /// Replaces the shared bucket (`CHAN-14`).
    pub fn set_shared(&mut self, shared: TokenBucket) {
        self.shared = shared;
    }

    /// `CHAN-14`: takes a token of the read budget, before any Diffie-Hellman work for a
    /// message 1. `false`: refuse with `RATE_LIMITED`.
    pub fn try_read(&mut self, now: Instant) -> bool {
        self.read.try_take(now)
    }

    /// `CHAN-14`, `CHAN-30`: takes a token for a message 1 whose claimed static key has
    /// been read. `device` is that key when it belongs to a paired device that is neither
    /// revoked nor inactive, `None` for any other sender (unknown, revoked, inactive, or a
    /// message whose key did not decrypt). A device pays from its own bucket, and from the
    /// shared one only when its own is empty; every other sender pays from the shared
    /// bucket. `None`: refuse with `RATE_LIMITED`.
    pub fn try_sender(&mut self, device: Option<&[u8; 32]>, now: Instant) -> Option<Budget> {
        if let Some(key) = device {
            if !self.devices.contains_key(key) {
                self.make_room(now);
            }
            let (rate, burst) = (self.device_rate, self.device_burst);
            let entry = self.devices.entry(*key).or_insert_with(|| DeviceBucket {
                bucket: TokenBucket::new(rate, burst),
                last_used: now,
            });
            entry.last_used = entry.last_used.max(now);
            if entry.bucket.try_take(now) {
                return Some(Budget::Device);
            }
        }
        self.shared.try_take(now).then_some(Budget::Shared)
    }

    /// Devices with an own bucket.
    pub fn device_buckets(&self) -> usize {
        self.devices.len()
    }

    /// Frees one slot when the table is full: first buckets that are full again (they
    /// equal a new one), else the least recently used.
    fn make_room(&mut self, now: Instant) {
        if self.devices.len() < self.max_devices {
            return;
        }
        self.devices.retain(|_, d| !d.bucket.is_full(now));
        if self.devices.len() < self.max_devices {
            return;
        }
        if let Some(oldest) = self
            .devices
            .iter()
            .min_by_key(|(_, d)| d.last_used)
            .map(|(k, _)| *k)
        {
            self.devices.remove(&oldest);
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
        // Nor does coming back to the first instant count the detour as time passed.
        assert!(!b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn chan_30_a_device_pays_from_its_own_bucket_then_the_shared_one() {
        let t0 = Instant::now();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let mut l =
            HandshakeLimiter::new(TokenBucket::new(1000, 1000), TokenBucket::new(1, 2), 1, 3);
        // Unknown senders drain the shared bucket ...
        assert_eq!(l.try_sender(None, t0), Some(Budget::Shared));
        assert_eq!(l.try_sender(None, t0), Some(Budget::Shared));
        assert_eq!(l.try_sender(None, t0), None);
        // ... and a device still has its own three.
        for _ in 0..3 {
            assert_eq!(l.try_sender(Some(&a), t0), Some(Budget::Device));
        }
        assert_eq!(l.try_sender(Some(&a), t0), None);
        // Another device is untouched by the first one's burst.
        assert_eq!(l.try_sender(Some(&b), t0), Some(Budget::Device));
        // A second later: one token each, and the shared bucket's one goes to the first
        // device once its own is spent.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.try_sender(Some(&a), t1), Some(Budget::Device));
        assert_eq!(l.try_sender(Some(&a), t1), Some(Budget::Shared));
        assert_eq!(l.try_sender(None, t1), None);
        assert_eq!(l.device_buckets(), 2);
    }

    #[test]
    fn chan_30_the_device_table_is_bounded() {
        let t0 = Instant::now();
        let mut l =
            HandshakeLimiter::new(TokenBucket::new(1000, 1000), TokenBucket::new(0, 0), 1, 2)
                .with_max_devices(4);
        for i in 0..100u8 {
            let t = t0 + Duration::from_millis(u64::from(i));
            assert_eq!(l.try_sender(Some(&[i; 32]), t), Some(Budget::Device));
            assert!(l.device_buckets() <= 4);
        }
        // The most recent device kept its bucket: one token left of two.
        let t = t0 + Duration::from_millis(99);
        assert_eq!(l.try_sender(Some(&[99; 32]), t), Some(Budget::Device));
        assert_eq!(l.try_sender(Some(&[99; 32]), t), None);
    }

    #[test]
    fn chan_14_read_budget_is_global() {
        let t0 = Instant::now();
        let mut l = HandshakeLimiter::new(TokenBucket::new(10, 10), TokenBucket::new(1, 1), 1, 1);
        assert_eq!((0..100).filter(|_| l.try_read(t0)).count(), 10);
        assert!(l.try_read(t0 + Duration::from_millis(100)));
        assert!(!l.try_read(t0 + Duration::from_millis(100)));
    }
}
