//! The typed state: paired devices, pairing tokens and settings, and the rules of the
//! [`HostStore`](tether_proto::session::HostStore) calls on them (`CHAN-9`, `CHAN-10`,
//! `CHAN-12`, `CMD-55`, `CMD-56`).

use subtle::ConstantTimeEq;
use tether_proto::channel::Timestamp;
use tether_proto::session::Refusal;
use tether_proto::time::UnixTime;
use tether_proto::token::secret_digest;

use super::error::StateError;

/// A paired device, as `host.json` keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The controller's static public key.
    pub key: [u8; 32],
    /// The name it gave when it paired.
    pub name: String,
    /// When it paired, Unix seconds.
    pub paired_at: u64,
    /// When it last opened a session or paired, Unix seconds.
    pub last_seen: u64,
    /// The last message-1 timestamp accepted from it (`CHAN-10`).
    pub last_timestamp: Timestamp,
    /// Revoked devices are refused (`CHAN-9`).
    pub revoked: bool,
}

impl Device {
    /// The key's fingerprint, as people compare it.
    pub fn fingerprint(&self) -> String {
        tether_proto::keys::fingerprint(&self.key)
    }
}

/// A minted pairing token: only a digest of its secret is kept (`TOKEN-11`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token id.
    pub id: [u8; 16],
    /// BLAKE2s-256 of the token secret.
    pub secret_digest: [u8; 32],
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// Whether a pairing redeemed it (`CHAN-12`).
    pub consumed: bool,
}

/// Settings of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSettings {
    /// With remote access off every session is refused (`CHAN-26`) and requests of open
    /// sessions are answered -32010 (`CMD-55`).
    pub remote_access: bool,
    /// Devices whose last accepted handshake is more than this many days old must pair
    /// again (`CHAN-9`). [`HostSettings::max_inactive_secs`] wins when both are set.
    pub max_inactive_days: Option<u32>,
    /// The same age in seconds, for ages that are not whole days (`tether host run
    /// --max-inactive 90s`); wins over [`HostSettings::max_inactive_days`].
    pub max_inactive_secs: Option<u64>,
}

impl Default for HostSettings {
    fn default() -> Self {
        Self {
            remote_access: true,
            max_inactive_days: None,
            max_inactive_secs: None,
        }
    }
}

impl HostSettings {
    /// The inactivity age in effect, in seconds (`CHAN-9`): `max_inactive_secs`, else
    /// `max_inactive_days`, else none (no device expires).
    pub fn max_inactive(&self) -> Option<u64> {
        self.max_inactive_secs.or_else(|| {
            self.max_inactive_days
                .map(|days| u64::from(days).saturating_mul(86_400))
        })
    }

    /// Sets the inactivity age to `secs` seconds, or removes it (`None`). An age of whole
    /// days is kept as `maxInactiveDays`, so the file stays readable by hosts that predate
    /// `maxInactiveSecs`; any other age as `maxInactiveSecs`.
    pub fn set_max_inactive(&mut self, secs: Option<u64>) {
        let days = secs
            .filter(|s| s % 86_400 == 0)
            .and_then(|s| u32::try_from(s / 86_400).ok());
        match (secs, days) {
            (Some(_), Some(days)) => {
                self.max_inactive_days = Some(days);
                self.max_inactive_secs = None;
            }
            (secs, _) => {
                self.max_inactive_days = None;
                self.max_inactive_secs = secs;
            }
        }
    }
}

/// Everything `host.json` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostState {
    /// Paired devices, in pairing order.
    pub devices: Vec<Device>,
    /// Minted tokens not yet pruned.
    pub tokens: Vec<TokenRecord>,
    /// Settings.
    pub config: HostSettings,
}

/// Whether a device may use an open session (`CMD-55`, `CMD-56`): the core's type.
pub use tether_proto::cmd::gate::Access;

impl HostState {
    fn device_mut(&mut self, key: &[u8; 32]) -> Option<&mut Device> {
        self.devices.iter_mut().find(|d| &d.key == key)
    }

    /// The device with this key.
    pub fn device(&self, key: &[u8; 32]) -> Option<&Device> {
        self.devices.iter().find(|d| &d.key == key)
    }

    /// Whether `device` has passed the inactivity age at `now` (`CHAN-9`): its last-seen
    /// time — its last accepted handshake, the pairing or a `SESSION` message 1 (`CHAN-10`,
    /// `CHAN-27`) — is more than the age ago, in whole seconds. Messages inside sessions do
    /// not count.
    pub fn inactive(&self, device: &Device, now: UnixTime) -> bool {
        match self.config.max_inactive() {
            Some(limit) => now.as_secs() > device.last_seen.saturating_add(limit),
            None => false,
        }
    }

    /// Whether `device` may use an open session at `now` (`CMD-55`, `CMD-56`).
    pub fn access(&self, device: &[u8; 32], now: UnixTime) -> Access {
        if !self.config.remote_access {
            return Access::RemoteAccessDisabled;
        }
        match self.device(device) {
            Some(d) if !d.revoked && !self.inactive(d, now) => Access::Allowed,
            _ => Access::NotAuthorized,
        }
    }

    /// `CHAN-26`, `CHAN-9`, `CHAN-10`: see
    /// [`HostStore::admit`](tether_proto::session::HostStore::admit).
    ///
    /// # Errors
    /// The refusal.
    pub fn admit(
        &mut self,
        device: &[u8; 32],
        timestamp: Timestamp,
        now: UnixTime,
    ) -> Result<(), Refusal> {
        if !self.config.remote_access {
            return Err(Refusal::RemoteAccessDisabled); // CHAN-26
        }
        let record = self.device(device).ok_or(Refusal::NotAuthorized)?;
        if record.revoked || self.inactive(record, now) {
            return Err(Refusal::NotAuthorized); // CHAN-9
        }
        let record = self.device_mut(device).ok_or(Refusal::NotAuthorized)?;
        if timestamp <= record.last_timestamp {
            return Err(Refusal::Replayed); // CHAN-10
        }
        record.last_timestamp = timestamp;
        record.last_seen = now.as_secs();
        Ok(())
    }

    /// `CHAN-12`, `TOKEN-11`: see
    /// [`HostStore::redeem_token`](tether_proto::session::HostStore::redeem_token).
    ///
    /// # Errors
    /// The refusal.
    pub fn redeem_token(
        &mut self,
        token_id: &[u8; 16],
        token_secret: &[u8; 32],
        now: UnixTime,
    ) -> Result<(), Refusal> {
        if !self.config.remote_access {
            return Err(Refusal::RemoteAccessDisabled); // CHAN-26
        }
        let presented = secret_digest(token_secret);
        let token = self
            .tokens
            .iter_mut()
            .find(|t| &t.id == token_id)
            .ok_or(Refusal::TokenRejected)?;
        // TOKEN-11: compared in constant time (digests, which is what is stored).
        let secret_ok: bool = token.secret_digest.ct_eq(&presented).into();
        if !secret_ok || token.consumed || now.as_secs() >= token.expires_at {
            return Err(Refusal::TokenRejected); // CHAN-12
        }
        token.consumed = true;
        Ok(())
    }

    /// `CHAN-27`: see
    /// [`HostStore::record_device`](tether_proto::session::HostStore::record_device).
    pub fn record_device(
        &mut self,
        device: &[u8; 32],
        name: &str,
        timestamp: Timestamp,
        now: UnixTime,
    ) {
        let now = now.as_secs();
        match self.device_mut(device) {
            Some(d) => {
                d.name = name.to_owned();
                d.paired_at = now;
                d.last_seen = now;
                d.revoked = false;
                d.last_timestamp = d.last_timestamp.max(timestamp);
            }
            None => self.devices.push(Device {
                key: *device,
                name: name.to_owned(),
                paired_at: now,
                last_seen: now,
                last_timestamp: timestamp,
                revoked: false,
            }),
        }
    }

    /// Adds a token, dropping tokens that have expired (they can never be redeemed).
    pub fn add_token(&mut self, record: TokenRecord, now: UnixTime) {
        self.tokens.retain(|t| now.as_secs() < t.expires_at);
        self.tokens.push(record);
    }

    /// The devices a name or fingerprint prefix names. An exact name match wins over
    /// prefixes; the fingerprint may be given with or without dashes.
    pub fn find_devices(&self, query: &str) -> Vec<&Device> {
        let exact: Vec<&Device> = self.devices.iter().filter(|d| d.name == query).collect();
        if !exact.is_empty() {
            return exact;
        }
        let q: String = query
            .chars()
            .filter(|c| *c != '-')
            .collect::<String>()
            .to_ascii_lowercase();
        if q.is_empty() {
            return Vec::new();
        }
        self.devices
            .iter()
            .filter(|d| {
                d.fingerprint().replace('-', "").starts_with(&q)
                    || hex::encode(d.key).starts_with(&q)
            })
            .collect()
    }

    /// Revokes the one device `query` names.
    ///
    /// # Errors
    /// [`StateError::NoSuchDevice`] or [`StateError::AmbiguousDevice`].
    pub fn revoke(&mut self, query: &str) -> Result<Device, StateError> {
        let found = self.find_devices(query);
        let key = match found.as_slice() {
            [one] => one.key,
            [] => {
                return Err(StateError::NoSuchDevice {
                    query: query.to_owned(),
                });
            }
            many => {
                return Err(StateError::AmbiguousDevice {
                    query: query.to_owned(),
                    matches: many
                        .iter()
                        .map(|d| format!("{} ({})", d.name, d.fingerprint()))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        };
        let device = self
            .device_mut(&key)
            .ok_or_else(|| StateError::NoSuchDevice {
                query: query.to_owned(),
            })?;
        device.revoked = true;
        Ok(device.clone())
    }
}

#[cfg(test)]
mod tests {
    use tether_proto::channel::Timestamp;
    use tether_proto::time::UnixTime;

    use super::*;

    fn ts(secs: u64) -> Timestamp {
        Timestamp::from_unix(UnixTime::from_secs(secs))
    }

    #[test]
    fn revoke_by_name_and_ambiguity() {
        let mut s = HostState::default();
        let now = UnixTime::from_secs(1);
        s.record_device(&[1u8; 32], "phone", ts(1), now);
        s.record_device(&[2u8; 32], "laptop", ts(1), now);
        s.record_device(&[3u8; 32], "phone", ts(1), now);
        assert!(matches!(
            s.revoke("phone"),
            Err(StateError::AmbiguousDevice { .. })
        ));
        assert!(matches!(
            s.revoke("tablet"),
            Err(StateError::NoSuchDevice { .. })
        ));
        assert_eq!(s.revoke("laptop").unwrap().key, [2u8; 32]);
        assert!(s.device(&[2u8; 32]).unwrap().revoked);
        assert!(!s.device(&[1u8; 32]).unwrap().revoked);
    }

    #[test]
    fn inactive_devices_must_pair_again() {
        let mut s = HostState::default();
        s.config.max_inactive_days = Some(1);
        let dev = [5u8; 32];
        s.record_device(&dev, "p", ts(1), UnixTime::from_secs(1000));
        assert_eq!(
            s.admit(&dev, ts(2), UnixTime::from_secs(1000 + 86_400)),
            Ok(())
        );
        assert_eq!(
            s.admit(&dev, ts(3), UnixTime::from_secs(1000 + 2 * 86_400 + 1)),
            Err(Refusal::NotAuthorized)
        );
    }
}
