//! The controller's state directory (`--state DIR`).
//!
//! | file | content |
//! |---|---|
//! | `controller.key` | the 32-byte static X25519 private key, hex, mode 0600 (directory 0700) |
//! | `controller.json` | `{"version": 1, "hosts": [PairedHost...]}` |
//! | `lock` | taken exclusively for every read-modify-write of `controller.json` |
//!
//! `controller.json` is written by atomic replace: a temporary file in the same directory,
//! fsync, rename, fsync of the directory. The last message-1 timestamp sent to each host is
//! stored there *before* the message is sent (`CHAN-5`), so a restart with the clock set
//! back never reuses a timestamp.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tether_proto::channel::Timestamp;
use tether_proto::keys::{StaticKeypair, fingerprint};
use tether_proto::time::UnixTime;

use crate::error::ControllerError;

/// The version of `controller.json` this crate writes.
pub const STATE_VERSION: u32 = 1;

const KEY_FILE: &str = "controller.key";
const STATE_FILE: &str = "controller.json";
const LOCK_FILE: &str = "lock";

/// A host this controller is paired with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedHost {
    /// The host's name from message 2 (or the token).
    pub name: String,
    /// The host's static public key, hex.
    pub host_key: String,
    /// The relay's WebSocket URL.
    pub relay: String,
    /// The workspace of host and controller.
    pub workspace: String,
    /// The workspace credential presented in `HELLO`.
    pub credential: String,
    /// When the pairing completed, Unix seconds.
    pub paired_at: u64,
    /// The last message-1 timestamp sent to the host, TAI64N as 24 hex digits (`CHAN-5`).
    pub last_timestamp: String,
}

impl PairedHost {
    /// The host key as bytes.
    ///
    /// # Errors
    /// [`ControllerError::State`] if the stored hex is not 32 bytes.
    pub fn host_key_bytes(&self) -> Result<[u8; 32], ControllerError> {
        decode_key(&self.host_key).ok_or_else(|| ControllerError::State {
            path: PathBuf::from(STATE_FILE),
            detail: format!("host {}: hostKey is not 32 bytes of hex", self.name),
        })
    }

    /// The fingerprint of the host key (`xxxx-xxxx-xxxx-xxxx`).
    pub fn fingerprint(&self) -> String {
        self.host_key_bytes()
            .map(|k| fingerprint(&k))
            .unwrap_or_else(|_| "invalid-key".to_owned())
    }

    fn last(&self) -> Option<Timestamp> {
        let bytes: [u8; 12] = hex::decode(&self.last_timestamp).ok()?.try_into().ok()?;
        Timestamp::from_bytes(&bytes).ok()
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    #[serde(default)]
    hosts: Vec<PairedHost>,
}

/// An open state directory: the key pair, and `controller.json` read and written under the
/// lock on every call.
#[derive(Debug)]
pub struct ControllerState {
    dir: PathBuf,
    keypair: StaticKeypair,
}

impl ControllerState {
    /// Opens `dir`, creating it (mode 0700) and `controller.key` (mode 0600, fresh CSPRNG
    /// key) on first use.
    ///
    /// # Errors
    /// [`ControllerError::Io`] or [`ControllerError::State`].
    pub fn open(dir: &Path) -> Result<Self, ControllerError> {
        create_private_dir(dir)?;
        let key_path = dir.join(KEY_FILE);
        let _lock = Lock::take(dir)?;
        let private = match fs::read_to_string(&key_path) {
            Ok(text) => decode_key(text.trim()).ok_or_else(|| ControllerError::State {
                path: key_path.clone(),
                detail: "not 32 bytes of hex".to_owned(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| {
                    ControllerError::io("reading the random number generator", e.into())
                })?;
                write_atomic(dir, KEY_FILE, format!("{}\n", hex::encode(key)).as_bytes())?;
                key
            }
            Err(e) => {
                return Err(ControllerError::io(
                    format!("reading {}", key_path.display()),
                    e,
                ));
            }
        };
        Ok(Self {
            dir: dir.to_owned(),
            keypair: StaticKeypair::from_private(private),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The controller's static key pair.
    pub fn keypair(&self) -> &StaticKeypair {
        &self.keypair
    }

    /// Every paired host, in pairing order.
    ///
    /// # Errors
    /// [`ControllerError::Io`] or [`ControllerError::State`].
    pub fn hosts(&self) -> Result<Vec<PairedHost>, ControllerError> {
        let _lock = Lock::take(&self.dir)?;
        Ok(self.read()?.hosts)
    }

    /// The paired host named by `selector` (its name, or a prefix of its key's hex or
    /// fingerprint), or the only paired host when `selector` is `None`.
    ///
    /// # Errors
    /// [`ControllerError::Host`] when none or several match.
    pub fn find_host(&self, selector: Option<&str>) -> Result<PairedHost, ControllerError> {
        let hosts = self.hosts()?;
        let matches: Vec<&PairedHost> = match selector {
            None => hosts.iter().collect(),
            Some(s) => {
                let exact: Vec<&PairedHost> = hosts.iter().filter(|h| h.name == s).collect();
                if exact.is_empty() {
                    hosts
                        .iter()
                        .filter(|h| {
                            !s.is_empty()
                                && (h.host_key.starts_with(s) || h.fingerprint().starts_with(s))
                        })
                        .collect()
                } else {
                    exact
                }
            }
        };
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ControllerError::Host(match selector {
                None => format!(
                    "no paired host in {} (run `tether pair` first)",
                    self.dir.display()
                ),
                Some(s) => format!("no paired host matches {s:?}"),
            })),
            many => Err(ControllerError::Host(format!(
                "{} paired hosts match{}; choose one with --host: {}",
                many.len(),
                selector.map(|s| format!(" {s:?}")).unwrap_or_default(),
                many.iter()
                    .map(|h| format!("{} ({})", h.name, h.fingerprint()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The message-1 timestamp to send to `host_key` next, persisted durably before it is
    /// returned (`CHAN-5`): `max(now, last + 1 ns)`. For a host not yet paired nothing is
    /// stored (`CHAN-22`) and the timestamp is `now`.
    ///
    /// # Errors
    /// [`ControllerError::Io`] or [`ControllerError::State`].
    pub fn next_timestamp(
        &self,
        host_key: &[u8; 32],
        now: UnixTime,
    ) -> Result<Timestamp, ControllerError> {
        let _lock = Lock::take(&self.dir)?;
        let mut state = self.read()?;
        let key_hex = hex::encode(host_key);
        let Some(host) = state.hosts.iter_mut().find(|h| h.host_key == key_hex) else {
            return Ok(Timestamp::next_after(None, now));
        };
        let ts = Timestamp::next_after(host.last(), now);
        host.last_timestamp = hex::encode(ts.to_bytes());
        self.write(&state)?;
        Ok(ts)
    }

    /// Records a host after a completed PAIR handshake (`CHAN-22`), replacing any record of
    /// the same key.
    ///
    /// # Errors
    /// [`ControllerError::Io`] or [`ControllerError::State`].
    pub fn add_host(&self, host: PairedHost) -> Result<(), ControllerError> {
        let _lock = Lock::take(&self.dir)?;
        let mut state = self.read()?;
        match state.hosts.iter_mut().find(|h| h.host_key == host.host_key) {
            Some(old) => {
                // Keep the later of the two timestamps (CHAN-5).
                let keep = match (old.last(), host.last()) {
                    (Some(a), Some(b)) if a > b => old.last_timestamp.clone(),
                    _ => host.last_timestamp.clone(),
                };
                *old = host;
                old.last_timestamp = keep;
            }
            None => state.hosts.push(host),
        }
        self.write(&state)
    }

    /// Forgets a paired host. Returns whether it was known.
    ///
    /// # Errors
    /// [`ControllerError::Io`] or [`ControllerError::State`].
    pub fn remove_host(&self, host_key: &[u8; 32]) -> Result<bool, ControllerError> {
        let _lock = Lock::take(&self.dir)?;
        let mut state = self.read()?;
        let key_hex = hex::encode(host_key);
        let before = state.hosts.len();
        state.hosts.retain(|h| h.host_key != key_hex);
        let removed = state.hosts.len() != before;
        if removed {
            self.write(&state)?;
        }
        Ok(removed)
    }

    fn read(&self) -> Result<StateFile, ControllerError> {
        let path = self.dir.join(STATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(StateFile {
                    version: STATE_VERSION,
                    hosts: Vec::new(),
                });
            }
            Err(e) => {
                return Err(ControllerError::io(
                    format!("reading {}", path.display()),
                    e,
                ));
            }
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ControllerError::State {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        let value = migrate(value).map_err(|detail| ControllerError::State {
            path: path.clone(),
            detail,
        })?;
        serde_json::from_value(value).map_err(|e| ControllerError::State {
            path,
            detail: e.to_string(),
        })
    }

    fn write(&self, state: &StateFile) -> Result<(), ControllerError> {
        let mut text = serde_json::to_vec_pretty(state).map_err(|e| ControllerError::State {
            path: self.dir.join(STATE_FILE),
            detail: e.to_string(),
        })?;
        text.push(b'\n');
        write_atomic(&self.dir, STATE_FILE, &text)
    }
}

/// Brings a `controller.json` of an older version up to [`STATE_VERSION`]; refuses a newer
/// one. Version 1 is the first, so only the checks exist so far.
fn migrate(value: serde_json::Value) -> Result<serde_json::Value, String> {
    let version = value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| "missing \"version\"".to_owned())?;
    match version {
        1 => Ok(value),
        v if v > u64::from(STATE_VERSION) => Err(format!(
            "version {v} was written by a newer tether; this one reads up to {STATE_VERSION}"
        )),
        v => Err(format!("unknown version {v}")),
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// The exclusive lock on `DIR/lock` (created with mode 0600), released on drop.
struct Lock {
    _file: tether_store::FileLock,
}

impl Lock {
    fn take(dir: &Path) -> Result<Self, ControllerError> {
        tether_store::FileLock::take(&dir.join(LOCK_FILE))
            .map(|file| Self { _file: file })
            .map_err(|e| store_error(e, None))
    }
}

fn create_private_dir(dir: &Path) -> Result<(), ControllerError> {
    tether_store::create_private_dir(dir).map_err(|e| store_error(e, None))
}

/// Writes `name` in `dir` by atomic replace ([`tether_store::write_atomic`]): temporary
/// file (mode 0600), fsync, rename, fsync of the directory.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ControllerError> {
    let target = dir.join(name);
    tether_store::write_atomic(&target, bytes, 0o600).map_err(|e| store_error(e, Some(&target)))
}

/// A store error as the controller reports it: "writing TARGET" for any step of an atomic
/// write of `target`, "opening"/"locking"/"creating PATH" otherwise.
fn store_error(e: tether_store::StoreError, target: Option<&Path>) -> ControllerError {
    match e {
        tether_store::StoreError::Random(e) => {
            ControllerError::io("reading the random number generator", e.into())
        }
        tether_store::StoreError::Io { what, path, source } => {
            let (what, path) = match target {
                Some(target) => ("writing", target.to_owned()),
                None => (what, path),
            };
            ControllerError::io(format!("{what} {}", path.display()), source)
        }
        other => ControllerError::io("state directory", std::io::Error::other(other)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    fn host(name: &str, key: u8) -> PairedHost {
        PairedHost {
            name: name.to_owned(),
            host_key: hex::encode([key; 32]),
            relay: "ws://127.0.0.1:7400/".to_owned(),
            workspace: "acme".to_owned(),
            credential: "0123456789abcdef".to_owned(),
            paired_at: 1,
            last_timestamp: hex::encode(Timestamp::from_unix(UnixTime::from_secs(10)).to_bytes()),
        }
    }

    #[test]
    fn key_is_created_once_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let a = ControllerState::open(&dir).unwrap();
        let b = ControllerState::open(&dir).unwrap();
        assert_eq!(a.keypair().public(), b.keypair().public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key_mode = fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(key_mode & 0o777, 0o600);
            let dir_mode = fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
    }

    /// CHAN-5: timestamps strictly increase per host and are stored before use, even when
    /// the clock goes back.
    #[test]
    fn timestamps_increase_and_persist_chan_5() {
        let tmp = tempfile::tempdir().unwrap();
        let state = ControllerState::open(tmp.path()).unwrap();
        state.add_host(host("box", 7)).unwrap();
        let key = [7u8; 32];
        // Clock set back to 5 s: still after the stored 10 s.
        let t1 = state.next_timestamp(&key, UnixTime::from_secs(5)).unwrap();
        assert_eq!(hex::encode(t1.to_bytes()), "400000000000000a00000001");
        let t2 = state.next_timestamp(&key, UnixTime::from_secs(5)).unwrap();
        assert!(t2 > t1);
        let reopened = ControllerState::open(tmp.path()).unwrap();
        let stored = reopened.find_host(Some("box")).unwrap();
        assert_eq!(stored.last_timestamp, hex::encode(t2.to_bytes()));
        // An unknown host gets `now` and nothing is stored (CHAN-22).
        let t = state
            .next_timestamp(&[9u8; 32], UnixTime::from_secs(20))
            .unwrap();
        assert_eq!(hex::encode(t.to_bytes()), "400000000000001400000000");
        assert_eq!(state.hosts().unwrap().len(), 1);
    }

    #[test]
    fn find_host_by_name_prefix_and_ambiguity() {
        let tmp = tempfile::tempdir().unwrap();
        let state = ControllerState::open(tmp.path()).unwrap();
        assert!(matches!(
            state.find_host(None),
            Err(ControllerError::Host(_))
        ));
        state.add_host(host("box", 7)).unwrap();
        assert_eq!(state.find_host(None).unwrap().name, "box");
        state.add_host(host("other", 8)).unwrap();
        assert!(matches!(
            state.find_host(None),
            Err(ControllerError::Host(_))
        ));
        assert_eq!(state.find_host(Some("other")).unwrap().name, "other");
        assert_eq!(state.find_host(Some("0707")).unwrap().name, "box");
        assert!(state.find_host(Some("zz")).is_err());
        assert!(state.remove_host(&[8u8; 32]).unwrap());
        assert_eq!(state.hosts().unwrap().len(), 1);
    }

    #[test]
    fn newer_version_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let state = ControllerState::open(tmp.path()).unwrap();
        fs::write(tmp.path().join(STATE_FILE), br#"{"version":2,"hosts":[]}"#).unwrap();
        let err = state.hosts().unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
