//! What a host must remember, behind a trait its durable store implements.
//!
//! The host session state machine ([`super::Host`]) decides *when* to check and record
//! things; a [`HostStore`] decides *how* they are kept. Each method is one atomic step that
//! must be durable before it returns `Ok`: the reference host writes to disk with an
//! atomic replace and fsync, [`MemoryHostStore`] keeps everything in memory for tests and
//! fuzzing.

use std::collections::HashMap;
use std::time::Duration;

use blake2::{Blake2s256, Digest};
use subtle::ConstantTimeEq;

use crate::channel::Timestamp;
use crate::link::CloseCode;
use crate::time::UnixTime;

/// Why a host refuses a session. Each reason goes on the wire as a `CLOSE` code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// The controller's key is not paired, was revoked, or has been inactive longer than
    /// the host allows (`CHAN-9`).
    NotAuthorized,
    /// Message 1's timestamp is not newer than the last accepted one (`CHAN-10`).
    Replayed,
    /// Message 1's timestamp is too far ahead of the host's clock (`CHAN-11`).
    ClockSkew,
    /// The pairing token is unknown, consumed, expired, or its secret is wrong (`CHAN-12`).
    TokenRejected,
    /// Remote access is switched off on this host (`CHAN-26`).
    RemoteAccessDisabled,
    /// The host's message-1 budget is spent (`CHAN-14`).
    RateLimited,
    /// The host's user refused the confirmation code or did not answer (`CHAN-24`).
    ConfirmationRejected,
    /// The host has as many sessions as it serves (`LINK-20`).
    SessionLimit,
    /// The store could not make the step durable; the host refuses rather than answer
    /// without having recorded what the rules require (`CHAN-10`, `CHAN-12`).
    StoreFailed,
}

impl Refusal {
    /// The `CLOSE` code that reports this refusal.
    pub fn close_code(self) -> CloseCode {
        match self {
            Self::NotAuthorized => CloseCode::NOT_AUTHORIZED,
            Self::Replayed => CloseCode::REPLAYED,
            Self::ClockSkew => CloseCode::CLOCK_SKEW,
            Self::TokenRejected => CloseCode::TOKEN_REJECTED,
            Self::RemoteAccessDisabled => CloseCode::REMOTE_ACCESS_DISABLED,
            Self::RateLimited => CloseCode::RATE_LIMITED,
            Self::ConfirmationRejected => CloseCode::CONFIRMATION_REJECTED,
            Self::SessionLimit => CloseCode::SESSION_LIMIT,
            Self::StoreFailed => CloseCode::HOST_ERROR,
        }
    }

    /// The requirement that calls for this refusal.
    pub fn requirement(self) -> &'static str {
        match self {
            Self::NotAuthorized => "CHAN-9",
            Self::Replayed => "CHAN-10",
            Self::ClockSkew => "CHAN-11",
            Self::TokenRejected => "CHAN-12",
            Self::RemoteAccessDisabled => "CHAN-26",
            Self::RateLimited => "CHAN-14",
            Self::ConfirmationRejected => "CHAN-24",
            Self::SessionLimit => "LINK-20",
            Self::StoreFailed => "CHAN-12",
        }
    }
}

/// The host's durable memory, as the session state machine uses it.
///
/// Every method is atomic (check and record as one step, safe against a concurrent caller
/// on the same store) and durable before it returns `Ok`.
pub trait HostStore {
    /// Admits a paired controller opening a session (`CHAN-9`, `CHAN-10`): the key must
    /// be paired, not revoked and not inactive past the host's limit, and `timestamp`
    /// must be strictly greater than the last one accepted for the key. On success the
    /// store records `timestamp` and `now` (last seen) durably.
    ///
    /// # Errors
    /// [`Refusal::NotAuthorized`], [`Refusal::Replayed`], or [`Refusal::StoreFailed`].
    fn admit(
        &mut self,
        device: &[u8; 32],
        timestamp: Timestamp,
        now: UnixTime,
    ) -> Result<(), Refusal>;

    /// Redeems a pairing token (`CHAN-12`): the id must be known, the secret equal
    /// (compared in constant time, `TOKEN-11`), the token unexpired at `now` and not yet
    /// consumed. On success the token is durably marked consumed and can never be
    /// redeemed again, whatever happens to the session afterwards.
    ///
    /// # Errors
    /// [`Refusal::TokenRejected`] or [`Refusal::StoreFailed`].
    fn redeem_token(
        &mut self,
        token_id: &[u8; 16],
        token_secret: &[u8; 32],
        now: UnixTime,
    ) -> Result<(), Refusal>;

    /// Records a newly paired device (`CHAN-27`), or updates the name of a device that
    /// pairs again, with `timestamp` as its last accepted message-1 timestamp.
    ///
    /// # Errors
    /// [`Refusal::StoreFailed`].
    fn record_device(
        &mut self,
        device: &[u8; 32],
        name: &str,
        timestamp: Timestamp,
        now: UnixTime,
    ) -> Result<(), Refusal>;

    /// Whether `device` is a paired device that is neither revoked nor inactive at `now`
    /// (what `CHAN-9` checks), recording nothing. The host asks it, before message 1 is
    /// authenticated, to pick the bucket that pays for the message (`CHAN-30`), so it
    /// must be cheap: no durable write. The default answers `false`, which puts every
    /// sender in the shared bucket of `CHAN-14` (a store that cannot tell still bounds
    /// the work, but one sender's flood then reaches the paired devices too).
    fn is_active_device(&mut self, device: &[u8; 32], now: UnixTime) -> bool {
        let _ = (device, now);
        false
    }
}

/// A paired device as [`MemoryHostStore`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Name the device gave when it paired.
    pub name: String,
    /// When it paired.
    pub paired_at: UnixTime,
    /// When it last opened a session (or paired).
    pub last_seen: UnixTime,
    /// The last message-1 timestamp accepted from it.
    pub last_timestamp: Timestamp,
    /// Revoked devices are refused (`CHAN-9`).
    pub revoked: bool,
}

#[derive(Clone, Debug)]
struct TokenRecord {
    secret_digest: [u8; 32],
    expires_at: u64,
    consumed: bool,
}

/// A [`HostStore`] in memory: for tests, fuzzing and the conformance runner's own peers.
#[derive(Clone, Debug, Default)]
pub struct MemoryHostStore {
    devices: HashMap<[u8; 32], DeviceRecord>,
    tokens: HashMap<[u8; 16], TokenRecord>,
    max_inactive: Option<Duration>,
}

fn digest(secret: &[u8; 32]) -> [u8; 32] {
    Blake2s256::digest(secret).into()
}

impl MemoryHostStore {
    /// An empty store whose devices never expire through inactivity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Devices not seen for longer than `age` must pair again (`CHAN-9`).
    pub fn with_max_inactive(mut self, age: Duration) -> Self {
        self.max_inactive = Some(age);
        self
    }

    /// Adds a token the host minted; only a digest of the secret is kept (`TOKEN-11`).
    pub fn add_token(&mut self, token_id: [u8; 16], token_secret: &[u8; 32], expires_at: u64) {
        self.tokens.insert(
            token_id,
            TokenRecord {
                secret_digest: digest(token_secret),
                expires_at,
                consumed: false,
            },
        );
    }

    /// Whether a token has been consumed (`None` if unknown).
    pub fn token_consumed(&self, token_id: &[u8; 16]) -> Option<bool> {
        self.tokens.get(token_id).map(|t| t.consumed)
    }

    /// The record of a device, if it ever paired.
    pub fn device(&self, key: &[u8; 32]) -> Option<&DeviceRecord> {
        self.devices.get(key)
    }

    /// Revokes a device; returns whether it was known.
    pub fn revoke(&mut self, key: &[u8; 32]) -> bool {
        match self.devices.get_mut(key) {
            Some(d) => {
                d.revoked = true;
                true
            }
            None => false,
        }
    }
}

impl MemoryHostStore {
    /// `CHAN-9`: paired, not revoked, and seen within the inactivity age.
    fn active(&self, record: &DeviceRecord, now: UnixTime) -> bool {
        !record.revoked
            && self
                .max_inactive
                .is_none_or(|age| now <= record.last_seen.saturating_add(age))
    }
}

impl HostStore for MemoryHostStore {
    fn admit(
        &mut self,
        device: &[u8; 32],
        timestamp: Timestamp,
        now: UnixTime,
    ) -> Result<(), Refusal> {
        let record = self.devices.get(device).ok_or(Refusal::NotAuthorized)?;
        if !self.active(record, now) {
            return Err(Refusal::NotAuthorized); // CHAN-9: revoked or inactive too long
        }
        let record = self.devices.get_mut(device).ok_or(Refusal::NotAuthorized)?;
        if timestamp <= record.last_timestamp {
            return Err(Refusal::Replayed); // CHAN-10
        }
        record.last_timestamp = timestamp;
        record.last_seen = now;
        Ok(())
    }

    fn redeem_token(
        &mut self,
        token_id: &[u8; 16],
        token_secret: &[u8; 32],
        now: UnixTime,
    ) -> Result<(), Refusal> {
        let token = self
            .tokens
            .get_mut(token_id)
            .ok_or(Refusal::TokenRejected)?;
        // TOKEN-11: constant-time comparison (of digests, which is what is stored).
        let secret_ok: bool = token.secret_digest.ct_eq(&digest(token_secret)).into();
        if !secret_ok || token.consumed || now.as_secs() >= token.expires_at {
            return Err(Refusal::TokenRejected); // CHAN-12
        }
        token.consumed = true;
        Ok(())
    }

    fn record_device(
        &mut self,
        device: &[u8; 32],
        name: &str,
        timestamp: Timestamp,
        now: UnixTime,
    ) -> Result<(), Refusal> {
        let record = self.devices.entry(*device).or_insert_with(|| DeviceRecord {
            name: String::new(),
            paired_at: now,
            last_seen: now,
            last_timestamp: timestamp,
            revoked: false,
        });
        record.name = name.to_owned();
        record.paired_at = now;
        record.last_seen = now;
        record.revoked = false;
        record.last_timestamp = record.last_timestamp.max(timestamp);
        Ok(())
    }

    fn is_active_device(&mut self, device: &[u8; 32], now: UnixTime) -> bool {
        // CHAN-30: the same test as admit's CHAN-9 check.
        self.devices
            .get(device)
            .is_some_and(|r| self.active(r, now))
    }
}
