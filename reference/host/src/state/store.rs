//! [`DiskHostStore`]: the durable [`HostStore`] of the reference host.

use tether_proto::channel::Timestamp;
use tether_proto::session::{HostStore, Refusal};
use tether_proto::time::UnixTime;

use super::dir::StateDir;
use super::error::StateError;
use super::lock::StateSnapshot;
use super::model::HostState;

/// The [`HostStore`] of the reference host: every call re-reads `host.json` under the
/// lock, checks, writes durably and only then returns (`CHAN-10`, `CHAN-12`). A store
/// failure refuses the session with [`Refusal::StoreFailed`] (`HOST_ERROR`).
#[derive(Debug)]
pub struct DiskHostStore {
    dir: StateDir,
    /// `host.json` as last read or written (see [`DiskHostStore::current`]).
    snapshot: StateSnapshot,
    last_error: Option<String>,
}

impl DiskHostStore {
    /// The store of a state directory.
    pub fn new(dir: StateDir) -> Self {
        Self {
            dir,
            snapshot: StateSnapshot::default(),
            last_error: None,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    /// `host.json` as of now, for the checks of every request (`CMD-55`, `CMD-56`) and the
    /// re-checks of open sessions (`SEC-13`): what this store last wrote or read, re-read
    /// when the file has changed ([`StateDir::read_fresh`]).
    ///
    /// # Errors
    /// As [`StateDir::read`].
    pub fn current(&mut self) -> Result<&HostState, StateError> {
        self.dir.read_fresh(&mut self.snapshot)
    }

    /// The last store failure, taken (for the host's log).
    pub fn take_error(&mut self) -> Option<String> {
        self.last_error.take()
    }

    fn run(
        &mut self,
        f: impl FnOnce(&mut HostState) -> Result<(), Refusal>,
    ) -> Result<(), Refusal> {
        match self.dir.update_with(Some(&mut self.snapshot), f) {
            Ok(result) => result,
            Err(e) => {
                self.last_error = Some(e.to_string());
                Err(Refusal::StoreFailed)
            }
        }
    }
}

impl HostStore for DiskHostStore {
    fn admit(
        &mut self,
        device: &[u8; 32],
        timestamp: Timestamp,
        now: UnixTime,
    ) -> Result<(), Refusal> {
        self.run(|s| s.admit(device, timestamp, now))
    }

    fn redeem_token(
        &mut self,
        token_id: &[u8; 16],
        token_secret: &[u8; 32],
        now: UnixTime,
    ) -> Result<(), Refusal> {
        self.run(|s| s.redeem_token(token_id, token_secret, now))
    }

    fn record_device(
        &mut self,
        device: &[u8; 32],
        name: &str,
        timestamp: Timestamp,
        now: UnixTime,
    ) -> Result<(), Refusal> {
        self.run(|s| {
            s.record_device(device, name, timestamp, now);
            Ok(())
        })
    }

    /// `CHAN-30`: from the snapshot of `host.json` (re-read when the file changed), as
    /// for a request's check (`CMD-56`); a state that cannot be read knows no device.
    fn is_active_device(&mut self, device: &[u8; 32], now: UnixTime) -> bool {
        self.current().is_ok_and(|s| {
            s.device(device)
                .is_some_and(|d| !d.revoked && !s.inactive(d, now))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Duration;

    use tether_proto::token::{TokenError, secret_digest};
    use tether_store::stage;

    use super::*;
    use crate::state::dir::tests::{dir, run_info, ts};
    use crate::state::disk::render_state;
    use crate::state::model::{Access, HostSettings};

    #[test]
    fn sec_13_store_snapshot_follows_its_own_writes_and_others() {
        let (_tmp, state) = dir();
        let mut store = DiskHostStore::new(state.clone());
        let now = UnixTime::from_secs(1_800_000_000);
        let device = [9u8; 32];
        assert_eq!(
            store.current().unwrap().access(&device, now),
            Access::NotAuthorized
        );
        HostStore::record_device(&mut store, &device, "tablet", ts(1_800_000_000), now).unwrap();
        assert_eq!(
            store.current().unwrap().access(&device, now),
            Access::Allowed
        );
        assert_eq!(store.current().unwrap(), &state.read().unwrap());
        // Another writer right after this store's own write.
        state.revoke("tablet").unwrap();
        assert_eq!(
            store.current().unwrap().access(&device, now),
            Access::NotAuthorized
        );
        // A refused admit writes nothing and leaves the snapshot true to the file.
        assert!(store.admit(&device, ts(1_800_000_001), now).is_err());
        assert_eq!(store.current().unwrap(), &state.read().unwrap());
    }

    #[test]
    fn chan_12_token_is_redeemed_once_and_only_digest_is_stored() {
        let (_tmp, state) = dir();
        state.load_or_create_key().unwrap();
        run_info(&state);
        let now = UnixTime::now();
        let token = state.mint_token(Duration::from_secs(300), now).unwrap();
        assert_eq!(token.workspace(), "acme");
        assert_eq!(token.relay_url(), "ws://127.0.0.1:7400/");
        assert_eq!(token.host_name(), Some("build-box"));
        assert_eq!(
            token.host_key(),
            &tether_proto::keys::public_key(&state.read_key().unwrap())
        );
        let text = fs::read_to_string(state.state_path()).unwrap();
        // TOKEN-11: the secret is not on disk, its digest is.
        assert!(!text.contains(&hex::encode(token.token_secret())));
        assert!(text.contains(&hex::encode(secret_digest(token.token_secret()))));

        let mut store = DiskHostStore::new(state.clone());
        let mut wrong = *token.token_secret();
        wrong[0] ^= 1;
        assert_eq!(
            store.redeem_token(token.token_id(), &wrong, now),
            Err(Refusal::TokenRejected)
        );
        assert_eq!(
            store.redeem_token(token.token_id(), token.token_secret(), now),
            Ok(())
        );
        assert_eq!(
            store.redeem_token(token.token_id(), token.token_secret(), now),
            Err(Refusal::TokenRejected),
            "consumed"
        );
        // TOKEN-9
        assert!(matches!(
            state.mint_token(Duration::from_secs(601), now),
            Err(StateError::Token(TokenError::LifetimeTooLong))
        ));
        // expired
        let t2 = state.mint_token(Duration::from_secs(10), now).unwrap();
        assert_eq!(
            store.redeem_token(
                t2.token_id(),
                t2.token_secret(),
                now.saturating_add(Duration::from_secs(10))
            ),
            Err(Refusal::TokenRejected)
        );
    }

    #[test]
    fn chan_9_chan_10_admit_revoke_and_replay() {
        let (_tmp, state) = dir();
        let mut store = DiskHostStore::new(state.clone());
        let dev = [7u8; 32];
        let now = UnixTime::from_secs(1_800_000_000);
        assert_eq!(store.admit(&dev, ts(100), now), Err(Refusal::NotAuthorized));
        store.record_device(&dev, "phone", ts(100), now).unwrap();
        assert_eq!(store.admit(&dev, ts(100), now), Err(Refusal::Replayed));
        assert_eq!(store.admit(&dev, ts(101), now), Ok(()));
        assert_eq!(store.admit(&dev, ts(101), now), Err(Refusal::Replayed));
        // The accepted timestamp is durable: a new store (a restarted host) sees it.
        let mut again = DiskHostStore::new(state.clone());
        assert_eq!(again.admit(&dev, ts(101), now), Err(Refusal::Replayed));
        // Another process revokes; the running host's next admit sees it at once.
        let fp = tether_proto::keys::fingerprint(&dev);
        let revoked = state.revoke(&fp[..6]).unwrap();
        assert!(revoked.revoked);
        assert_eq!(store.admit(&dev, ts(200), now), Err(Refusal::NotAuthorized));
        assert_eq!(
            state.read().unwrap().access(&dev, now),
            Access::NotAuthorized
        );
        // CHAN-26 through the store.
        state.set_remote_access(false).unwrap();
        assert_eq!(
            store.admit(&dev, ts(300), now),
            Err(Refusal::RemoteAccessDisabled)
        );
    }

    #[test]
    fn atomic_write_survives_crash_between_temp_write_and_rename() {
        let (_tmp, state) = dir();
        let mut store = DiskHostStore::new(state.clone());
        store
            .record_device(&[9u8; 32], "phone", ts(5), UnixTime::from_secs(5))
            .unwrap();
        let before = fs::read(state.state_path()).unwrap();
        // The crash: a new version fully written and fsynced to its temp file, never
        // renamed.
        let mut changed = state.read().unwrap();
        changed.devices.clear();
        stage(&state.state_path(), &render_state(&changed), 0o600)
            .unwrap()
            .abandon_for_testing();
        // A torn temp file, too.
        fs::write(state.path().join(".host.json.deadbeef.tmp"), b"{\"vers").unwrap();
        assert_eq!(fs::read(state.state_path()).unwrap(), before);
        let after = state.read().unwrap();
        assert_eq!(after.devices.len(), 1);
        // Later writes still work.
        assert_eq!(
            store.admit(&[9u8; 32], ts(6), UnixTime::from_secs(6)),
            Ok(())
        );
    }

    #[test]
    fn corrupt_file_is_a_typed_error_and_left_untouched() {
        let (_tmp, state) = dir();
        let cases: &[&[u8]] = &[
            b"",
            b"{not json",
            b"[]",
            b"{\"version\":\"1\"}",
            b"{\"version\":1,\"devices\":[],\"tokens\":[]}",
            b"{\"version\":1,\"devices\":[{\"key\":\"zz\",\"name\":\"a\",\"pairedAt\":1,\"lastSeen\":1,\"lastTimestamp\":\"400000000000000000000000\",\"revoked\":false}],\"tokens\":[],\"config\":{\"remoteAccess\":true,\"maxInactiveDays\":null}}",
            b"{\"version\":1,\"devices\":[],\"tokens\":[],\"config\":{\"remoteAccess\":true,\"maxInactiveDays\":null},\"extra\":1}",
        ];
        for bytes in cases {
            fs::write(state.state_path(), bytes).unwrap();
            let e = state.read().unwrap_err();
            assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
            let mut store = DiskHostStore::new(state.clone());
            assert_eq!(
                store.record_device(&[1u8; 32], "x", ts(1), UnixTime::from_secs(1)),
                Err(Refusal::StoreFailed)
            );
            assert!(store.take_error().unwrap().contains("corrupt"));
            assert_eq!(
                &fs::read(state.state_path()).unwrap(),
                bytes,
                "never overwritten"
            );
        }
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let (_tmp, state) = dir();
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let state = state.clone();
                std::thread::spawn(move || {
                    let mut store = DiskHostStore::new(state);
                    for i in 0..10u8 {
                        let mut key = [0u8; 32];
                        key[0] = t;
                        key[1] = i;
                        store
                            .record_device(
                                &key,
                                &format!("d{t}-{i}"),
                                ts(1),
                                UnixTime::from_secs(1),
                            )
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Every read-modify-write held the lock: all 40 devices are there.
        assert_eq!(state.read().unwrap().devices.len(), 40);
    }

    #[test]
    fn chan_9_inactivity_age_in_seconds() {
        let (_tmp, state) = dir();
        let mut store = DiskHostStore::new(state.clone());
        let dev = [6u8; 32];
        let paired = 1_800_000_000;
        store
            .record_device(&dev, "p", ts(1), UnixTime::from_secs(paired))
            .unwrap();
        state.set_max_inactive(Some(90)).unwrap();
        // Stored as seconds (90 s is not whole days), read back the same.
        let s = state.read().unwrap();
        assert_eq!(s.config.max_inactive_secs, Some(90));
        assert_eq!(s.config.max_inactive_days, None);
        assert_eq!(s.config.max_inactive(), Some(90));
        // The age runs from the last accepted handshake, not from the pairing.
        let at = |secs: u64| UnixTime::new(paired + secs, 999_999_999);
        assert_eq!(
            store.admit(&dev, ts(2), at(90)),
            Ok(()),
            "90 s idle is within"
        );
        assert_eq!(
            store.admit(&dev, ts(3), at(180)),
            Ok(()),
            "90 s after the last"
        );
        assert_eq!(
            state
                .read()
                .unwrap()
                .access(&dev, UnixTime::from_secs(paired + 270)),
            Access::Allowed
        );
        assert_eq!(
            state
                .read()
                .unwrap()
                .access(&dev, UnixTime::from_secs(paired + 271)),
            Access::NotAuthorized,
            "an open session of an expired device is refused too (CMD-56)"
        );
        assert_eq!(
            store.admit(&dev, ts(4), UnixTime::from_secs(paired + 271)),
            Err(Refusal::NotAuthorized)
        );
        // Pairing again makes the device active again.
        store
            .record_device(&dev, "p", ts(5), UnixTime::from_secs(paired + 272))
            .unwrap();
        assert_eq!(
            store.admit(&dev, ts(6), UnixTime::from_secs(paired + 273)),
            Ok(())
        );
        // Whole days go to the field older hosts read; `None` removes the limit.
        state.set_max_inactive(Some(2 * 86_400)).unwrap();
        let text = fs::read_to_string(state.state_path()).unwrap();
        assert!(text.contains("\"maxInactiveDays\": 2"), "{text}");
        assert!(!text.contains("maxInactiveSecs"), "{text}");
        state.set_max_inactive(None).unwrap();
        let s = state.read().unwrap();
        assert_eq!(s.config.max_inactive(), None);
        assert_eq!(s.config, HostSettings::default());
        assert_eq!(
            store.admit(&dev, ts(7), UnixTime::from_secs(paired + 10 * 86_400)),
            Ok(())
        );
    }
}
