//! The host's state directory (`--state DIR`): its static key, paired devices, pairing
//! tokens and settings, kept durably.
//!
//! ```text
//! DIR/            mode 0700
//!   host.key      the 32-byte static X25519 private key, hex, mode 0600
//!   host.json     {version, devices, tokens, config}, mode 0600
//!   run.json      {relay, workspace, hostName}: written by `tether host run`
//!   lock          the lock file every read-modify-write holds (exclusive, fs4)
//! ```
//!
//! Every write is an atomic replace: the new content goes to a temporary file in `DIR`,
//! which is fsynced, renamed over the old file, and the directory is fsynced. A crash at
//! any point leaves either the old or the new file, never a mix. Every read-modify-write of
//! `host.json` holds an exclusive lock on `DIR/lock` for its duration, so `tether host pair`
//! and `tether host revoke` in other processes and a running host can share one directory:
//! the running host re-reads the file under the lock on every [`HostStore`] call.
//!
//! A file that does not parse, or that names a version this host does not know, gives a
//! [`StateError`]; it is never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tether_proto::channel::Timestamp;
use tether_proto::session::{HostStore, Refusal};
use tether_proto::time::UnixTime;
use tether_proto::token::{PairingToken, TokenError, secret_digest};

/// The version of `host.json` this host writes.
pub const STATE_VERSION: u64 = 1;
/// File name of the static key.
pub const KEY_FILE: &str = "host.key";
/// File name of the devices, tokens and settings.
pub const STATE_FILE: &str = "host.json";
/// File name of the run information `tether host pair` reads.
pub const RUN_FILE: &str = "run.json";
/// File name of the lock file.
pub const LOCK_FILE: &str = "lock";

/// What went wrong with the state directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file could not be read, written or locked.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A file exists but its content is not what this host writes. It is left as it is.
    #[error("{}: corrupt state file ({detail}); it was left untouched", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// `host.json` names a version newer than this host understands.
    #[error(
        "{}: state file version {version} is not supported (this host reads versions 0 to {STATE_VERSION}); use a newer tether",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version it names.
        version: u64,
    },
    /// The directory has no `host.key` yet (`tether host run` creates it).
    #[error("{}: no host key yet; run `tether host run --state {}` first", path.display(), dir.display())]
    NoKey {
        /// The key file.
        path: PathBuf,
        /// The state directory.
        dir: PathBuf,
    },
    /// The directory has no `run.json` yet.
    #[error("{}: not found; run `tether host run --state {}` first so that pairing tokens name its relay and workspace", path.display(), dir.display())]
    NotRunYet {
        /// The run file.
        path: PathBuf,
        /// The state directory.
        dir: PathBuf,
    },
    /// No device matches the name or fingerprint prefix given.
    #[error("no paired device matches {query:?}")]
    NoSuchDevice {
        /// What was asked for.
        query: String,
    },
    /// More than one device matches.
    #[error("{query:?} matches several devices: {matches}; give more of the fingerprint")]
    AmbiguousDevice {
        /// What was asked for.
        query: String,
        /// The matching devices, `name (fingerprint)`, comma-separated.
        matches: String,
    },
    /// A pairing token could not be minted (`TOKEN-7`, `TOKEN-8`, `TOKEN-9`).
    #[error("cannot mint a pairing token: {0}")]
    Token(TokenError),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),
    /// The directory can be changed by other accounts, or belongs to one (`SEC-22`): what
    /// is in it cannot be trusted, so it is not used.
    #[error("{}: {detail}; the host's state directory must be its owner's alone (SEC-22)", path.display())]
    Insecure {
        /// The state directory.
        path: PathBuf,
        /// What is wrong, and what to do.
        detail: String,
    },
    /// The directory lies inside, or contains, a directory that sandboxed commands may
    /// write (`SEC-22`).
    #[error(
        "{}: the state directory overlaps {role} {}, which sandboxed commands may write; choose a state directory outside it (SEC-22)",
        path.display(),
        root.display()
    )]
    Exposed {
        /// The state directory.
        path: PathBuf,
        /// The writable directory.
        root: PathBuf,
        /// What that directory is ("the commands' temporary directory").
        role: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Errors
/// [`StateError::Random`].
pub fn random_bytes<const N: usize>() -> Result<[u8; N], StateError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| StateError::Random(e.to_string()))?;
    Ok(buf)
}

// ---------------------------------------------------------------------------------------
// the typed state

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

/// Whether a device may use an open session (`CMD-55`, `CMD-56`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// It may.
    Allowed,
    /// Remote access is switched off (`CMD-55`).
    RemoteAccessDisabled,
    /// The device was revoked, expired or is unknown (`CMD-56`).
    NotAuthorized,
}

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

    /// `CHAN-26`, `CHAN-9`, `CHAN-10`: see [`HostStore::admit`].
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

    /// `CHAN-12`, `TOKEN-11`: see [`HostStore::redeem_token`].
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

    /// `CHAN-27`: see [`HostStore::record_device`].
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

// ---------------------------------------------------------------------------------------
// host.json on disk

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileV1 {
    version: u64,
    devices: Vec<DeviceV1>,
    tokens: Vec<TokenV1>,
    config: ConfigV1,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeviceV1 {
    key: String,
    name: String,
    paired_at: u64,
    last_seen: u64,
    last_timestamp: String,
    revoked: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenV1 {
    id: String,
    secret_digest: String,
    expires_at: u64,
    consumed: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigV1 {
    remote_access: bool,
    max_inactive_days: Option<u32>,
    /// Added within version 1: absent in older files, and left out when unset so that
    /// such files stay readable by hosts that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_inactive_secs: Option<u64>,
}

fn hex_array<const N: usize>(s: &str, what: &str) -> Result<[u8; N], String> {
    let bytes = hex::decode(s).map_err(|e| format!("{what}: {e}"))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| format!("{what}: expected {N} bytes"))
}

/// The timestamp `host.json` v0 files lack: the epoch, older than any real one.
const EPOCH_TIMESTAMP_HEX: &str = "400000000000000000000000";

/// Brings a parsed `host.json` of any known version to version 1.
///
/// Version 0 is the layout of pre-release hosts: no `version` member (or `0`), no
/// `config` (remote access on, no inactivity limit), no `tokens`, devices without
/// `lastTimestamp` (the epoch: any real timestamp is newer) or `revoked` (false).
///
/// # Errors
/// A description of what is wrong, or `Err(Ok(version))` for a version newer than 1.
fn migrate(mut value: Value) -> Result<Value, Result<u64, String>> {
    let obj = value
        .as_object_mut()
        .ok_or_else(|| Err("not a JSON object".to_owned()))?;
    let version = match obj.get("version") {
        None => 0,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| Err("\"version\" is not a non-negative integer".to_owned()))?,
    };
    if version > STATE_VERSION {
        return Err(Ok(version));
    }
    if version == 0 {
        obj.insert("version".into(), Value::from(1u64));
        obj.entry("tokens")
            .or_insert_with(|| Value::Array(Vec::new()));
        obj.entry("config")
            .or_insert_with(|| serde_json::json!({"remoteAccess": true, "maxInactiveDays": null}));
        let devices = obj
            .entry("devices")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(devices) = devices.as_array_mut() {
            for d in devices.iter_mut().filter_map(Value::as_object_mut) {
                d.entry("lastTimestamp")
                    .or_insert_with(|| Value::from(EPOCH_TIMESTAMP_HEX));
                d.entry("revoked").or_insert(Value::Bool(false));
            }
        }
    }
    Ok(value)
}

/// Parses `host.json` bytes (any known version).
///
/// # Errors
/// [`StateError::Corrupt`] or [`StateError::UnsupportedVersion`], naming `path`.
pub fn parse_state(bytes: &[u8], path: &Path) -> Result<HostState, StateError> {
    let corrupt = |detail: String| StateError::Corrupt {
        path: path.to_owned(),
        detail,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let value = migrate(value).map_err(|e| match e {
        Ok(version) => StateError::UnsupportedVersion {
            path: path.to_owned(),
            version,
        },
        Err(detail) => corrupt(detail),
    })?;
    let file: FileV1 = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
    let mut devices = Vec::with_capacity(file.devices.len());
    for d in file.devices {
        let ts: [u8; 12] = hex_array(&d.last_timestamp, "lastTimestamp").map_err(corrupt)?;
        devices.push(Device {
            key: hex_array(&d.key, "device key").map_err(corrupt)?,
            name: d.name,
            paired_at: d.paired_at,
            last_seen: d.last_seen,
            last_timestamp: Timestamp::from_bytes(&ts)
                .map_err(|e| corrupt(format!("lastTimestamp: {e}")))?,
            revoked: d.revoked,
        });
    }
    let mut tokens = Vec::with_capacity(file.tokens.len());
    for t in file.tokens {
        tokens.push(TokenRecord {
            id: hex_array(&t.id, "token id").map_err(corrupt)?,
            secret_digest: hex_array(&t.secret_digest, "secretDigest").map_err(corrupt)?,
            expires_at: t.expires_at,
            consumed: t.consumed,
        });
    }
    Ok(HostState {
        devices,
        tokens,
        config: HostSettings {
            remote_access: file.config.remote_access,
            max_inactive_days: file.config.max_inactive_days,
            max_inactive_secs: file.config.max_inactive_secs,
        },
    })
}

/// Serializes the state as `host.json` version 1 (pretty, trailing newline).
pub fn render_state(state: &HostState) -> Vec<u8> {
    let file = FileV1 {
        version: STATE_VERSION,
        devices: state
            .devices
            .iter()
            .map(|d| DeviceV1 {
                key: hex::encode(d.key),
                name: d.name.clone(),
                paired_at: d.paired_at,
                last_seen: d.last_seen,
                last_timestamp: hex::encode(d.last_timestamp.to_bytes()),
                revoked: d.revoked,
            })
            .collect(),
        tokens: state
            .tokens
            .iter()
            .map(|t| TokenV1 {
                id: hex::encode(t.id),
                secret_digest: hex::encode(t.secret_digest),
                expires_at: t.expires_at,
                consumed: t.consumed,
            })
            .collect(),
        config: ConfigV1 {
            remote_access: state.config.remote_access,
            max_inactive_days: state.config.max_inactive_days,
            max_inactive_secs: state.config.max_inactive_secs,
        },
    };
    // Cannot fail: every key is a string.
    let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
    out.push(b'\n');
    out
}

/// What `tether host run` records for `tether host pair`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    /// Always 1.
    pub version: u64,
    /// The relay URL the host connects to (and tokens name).
    pub relay: String,
    /// The workspace the host registers in.
    pub workspace: String,
    /// The host's display name.
    pub host_name: String,
}

// ---------------------------------------------------------------------------------------
// atomic files

/// A new file content written to a temporary file and fsynced, not yet in place.
/// [`Staged::commit`] renames it over the target; dropping it without committing (a
/// crash, in tests) leaves the target as it was.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    dir: PathBuf,
    committed: bool,
}

/// Writes `bytes` to a temporary file next to `target` (mode `mode`) and fsyncs it.
///
/// # Errors
/// [`StateError::Io`].
pub fn stage(target: &Path, bytes: &[u8], mode: u32) -> Result<Staged, StateError> {
    let dir = target
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = hex::encode(random_bytes::<6>()?);
    let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    let staged = Staged {
        tmp,
        target: target.to_owned(),
        dir,
        committed: false,
    };
    fault::crash_at(fault::BEFORE_TEMP_WRITE, target);
    if fault::hit(fault::MID_TEMP_WRITE, target) {
        // A torn temporary file: half the bytes, then the crash.
        let _ = file.write_all(bytes.get(..bytes.len() / 2).unwrap_or_default());
        let _ = file.sync_all();
        fault::crash(fault::MID_TEMP_WRITE, target);
    }
    if fault::hit(fault::ENOSPC, target) {
        // The file system is full: the write fails as the kernel would fail it.
        return Err(StateError::Io {
            path: staged.tmp.clone(),
            source: io::Error::from(rustix::io::Errno::NOSPC),
        });
    }
    file.write_all(bytes).map_err(io_err(&staged.tmp))?;
    fault::crash_at(fault::AFTER_TEMP_WRITE, target);
    file.sync_all().map_err(io_err(&staged.tmp))?;
    fault::crash_at(fault::AFTER_FSYNC, target);
    Ok(staged)
}

impl Staged {
    /// Renames the temporary file over the target and fsyncs the directory.
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn commit(mut self) -> Result<(), StateError> {
        fs::rename(&self.tmp, &self.target).map_err(io_err(&self.target))?;
        self.committed = true;
        fault::crash_at(fault::AFTER_RENAME, &self.target);
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        fault::crash_at(fault::AFTER_DIR_FSYNC, &self.target);
        Ok(())
    }

    /// Leaves the temporary file behind as a crash would (tests).
    #[doc(hidden)]
    pub fn abandon_for_testing(mut self) {
        self.committed = true;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Atomic replace of `target` with `bytes`: temp file, fsync, rename, fsync of the
/// directory.
///
/// # Errors
/// [`StateError::Io`].
pub fn write_atomic(target: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    stage(target, bytes, mode)?.commit()
}

/// Fault injection: a test hook, compiled into every build and inert unless the
/// environment variable [`fault::FAULT_ENV`] names a point.
///
/// `TETHER_FAULT=POINT[:FILE[:N]]` makes the `N`-th (default first) atomic write of the file
/// named `FILE` (default any) in this process stop at `POINT`: the crash points kill the
/// process with `SIGKILL` (as `kill -9` would; `abort` if that fails), and [`fault::ENOSPC`]
/// fails the write with `ENOSPC`, as a full file system would. The variable is read once.
/// The reliability tests loop over [`fault::CRASH_POINTS`] to show that a crash at any of
/// them leaves either the old or the new file, and a full disk a clear error and the old
/// file.
pub mod fault {
    use std::path::Path;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The environment variable naming the fault.
    pub const FAULT_ENV: &str = "TETHER_FAULT";
    /// The temporary file exists and is empty.
    pub const BEFORE_TEMP_WRITE: &str = "before-temp-write";
    /// Half the new content is in the temporary file.
    pub const MID_TEMP_WRITE: &str = "mid-temp-write";
    /// The new content is written to the temporary file, not yet fsynced.
    pub const AFTER_TEMP_WRITE: &str = "after-temp-write";
    /// The temporary file is fsynced, not yet renamed.
    pub const AFTER_FSYNC: &str = "after-fsync";
    /// The temporary file is renamed over the target; the directory is not yet fsynced.
    pub const AFTER_RENAME: &str = "after-rename";
    /// The write is complete; the caller has not yet been told.
    pub const AFTER_DIR_FSYNC: &str = "after-dir-fsync";
    /// Not a crash: the write of the temporary file fails with `ENOSPC`.
    pub const ENOSPC: &str = "enospc";
    /// Every crash point, in the order a write passes them.
    pub const CRASH_POINTS: &[&str] = &[
        BEFORE_TEMP_WRITE,
        MID_TEMP_WRITE,
        AFTER_TEMP_WRITE,
        AFTER_FSYNC,
        AFTER_RENAME,
        AFTER_DIR_FSYNC,
    ];

    struct Fault {
        point: String,
        file: Option<String>,
        nth: u64,
        hits: AtomicU64,
    }

    fn parse(spec: &str) -> Option<Fault> {
        let mut parts = spec.splitn(3, ':');
        let point = parts.next()?.trim();
        if point.is_empty() {
            return None;
        }
        let file = parts.next().filter(|f| !f.is_empty()).map(str::to_owned);
        let nth = match parts.next() {
            Some(n) => n.trim().parse().ok()?,
            None => 1,
        };
        Some(Fault {
            point: point.to_owned(),
            file,
            nth,
            hits: AtomicU64::new(0),
        })
    }

    fn configured() -> Option<&'static Fault> {
        static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
        FAULT
            .get_or_init(|| std::env::var(FAULT_ENV).ok().and_then(|v| parse(&v)))
            .as_ref()
    }

    /// Whether the configured fault fires now, at `point` of a write of `target`.
    pub(crate) fn hit(point: &str, target: &Path) -> bool {
        let Some(fault) = configured() else {
            return false;
        };
        if fault.point != point {
            return false;
        }
        if let Some(file) = &fault.file
            && target
                .file_name()
                .is_none_or(|n| n.to_string_lossy() != *file)
        {
            return false;
        }
        fault.hits.fetch_add(1, Ordering::SeqCst) + 1 == fault.nth
    }

    /// Ends the process at once, as `kill -9` would.
    pub(crate) fn crash(point: &str, target: &Path) -> ! {
        eprintln!(
            "tether: {FAULT_ENV}: killing the process at {point} of a write of {}",
            target.display()
        );
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        std::process::abort()
    }

    /// Crashes if the configured fault is `point` for this write.
    pub(crate) fn crash_at(point: &str, target: &Path) {
        if hit(point, target) {
            crash(point, target);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn specs_parse() {
            let f = parse("after-rename:host.json:2").unwrap();
            assert_eq!(
                (f.point.as_str(), f.file.as_deref(), f.nth),
                ("after-rename", Some("host.json"), 2)
            );
            let f = parse("enospc").unwrap();
            assert_eq!((f.file, f.nth), (None, 1));
            assert!(parse("").is_none());
            assert!(parse("after-fsync:host.json:x").is_none());
        }
    }
}

/// The exclusive lock on `DIR/lock`, released on drop.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

// ---------------------------------------------------------------------------------------
// the directory

/// Whether `secret` (the host's state directory, or another path no command may touch)
/// overlaps one of `writable_roots`: lies inside one, is one, or contains one (`SEC-22`).
/// A command whose writable roots overlap the state directory could rewrite the paired
/// devices or read the key, so such a command, thread or host configuration is refused.
///
/// Paths are compared canonicalized (symbolic links and `..` resolved), component by
/// component; a path that cannot be canonicalized (it does not exist yet) is compared as
/// given. Pure apart from resolving the paths.
pub fn state_dir_exposed(secret: &Path, writable_roots: &[PathBuf]) -> bool {
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let secret = canonical(secret);
    writable_roots.iter().any(|root| {
        let root = canonical(root);
        secret.starts_with(&root) || root.starts_with(&secret)
    })
}

/// The environment variable `tether host run` reads the workspace credential from when
/// no `--credential-file` is given (`SEC-23`). Commands the host runs never get it.
pub const CREDENTIAL_ENV: &str = "TETHER_CREDENTIAL";

/// The largest credential file read: credentials are at most 255 bytes (`LINK-10`), with
/// room for a line break.
const MAX_CREDENTIAL_FILE: u64 = 4096;

/// Reads the workspace credential from `path` (`SEC-23`): a regular file of this account
/// that no other account can read or write, holding the credential on one line (a trailing
/// line break is dropped). The file is opened without blocking, so a FIFO put in its place
/// cannot stall the host, and checked before it is read.
///
/// # Errors
/// [`StateError::Io`] when it cannot be read; [`StateError::Insecure`] for a file other
/// accounts can read or write, or that belongs to another account; [`StateError::Corrupt`]
/// for a file that is not a regular file, is larger than 4 KiB, is not UTF-8, or is empty.
pub fn read_credential_file(path: &Path) -> Result<String, StateError> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| io_err(path)(io::Error::from(e)))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(io_err(path))?;
    let corrupt = |detail: &str| StateError::Corrupt {
        path: path.to_owned(),
        detail: detail.to_owned(),
    };
    if !meta.is_file() {
        return Err(corrupt("not a regular file"));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid && euid != 0 {
        return Err(StateError::Insecure {
            path: path.to_owned(),
            detail: format!(
                "the credential file belongs to uid {}, not to this account (uid {euid})",
                meta.uid()
            ),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(StateError::Insecure {
            path: path.to_owned(),
            detail: format!(
                "mode {mode:o} lets other accounts read the workspace credential; chmod 600 it (SEC-23)"
            ),
        });
    }
    if meta.len() > MAX_CREDENTIAL_FILE {
        return Err(corrupt(
            "larger than 4 KiB; a workspace credential is 16 to 255 bytes",
        ));
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(
        &mut io::Read::take(&file, MAX_CREDENTIAL_FILE + 1),
        &mut bytes,
    )
    .map_err(io_err(path))?;
    let text = String::from_utf8(bytes).map_err(|_| corrupt("not UTF-8"))?;
    let credential = text.trim_end_matches(['\n', '\r']);
    if credential.is_empty() {
        return Err(corrupt(
            "empty; it holds the workspace credential on one line",
        ));
    }
    Ok(credential.to_owned())
}

/// Refuses a state directory that overlaps one of `writable` (`SEC-22`), each a directory
/// that sandboxed commands may write with what it is ("the commands' temporary
/// directory"); see [`state_dir_exposed`].
///
/// # Errors
/// [`StateError::Exposed`] naming the first such directory.
pub fn check_state_placement(state: &Path, writable: &[(&str, PathBuf)]) -> Result<(), StateError> {
    for (role, root) in writable {
        if state_dir_exposed(state, std::slice::from_ref(root)) {
            return Err(StateError::Exposed {
                path: state.to_owned(),
                root: root.clone(),
                role: (*role).to_owned(),
            });
        }
    }
    Ok(())
}

/// A host state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
    tightened: Vec<(PathBuf, u32)>,
}

/// The files of a state directory whose modes [`StateDir::open`] tightens to 0600 (the key
/// is refused instead, `SEC-1`).
const TIGHTENED_FILES: &[&str] = &[STATE_FILE, RUN_FILE, LOCK_FILE];

impl StateDir {
    /// Opens `path`, creating it with mode 0700 if it does not exist (`SEC-1`, `SEC-22`).
    ///
    /// An existing directory must belong to this account (or the account be root) and
    /// must not be writable by group or others: files planted in it by another account
    /// would be trusted, so such a directory is refused. One that is only readable or
    /// searchable by others (a `mkdir` under umask 022) is tightened to 0700, and so are
    /// its `host.json`, `run.json` and `lock` to 0600; [`StateDir::tightened`] says what
    /// changed, for the caller to report.
    ///
    /// # Errors
    /// [`StateError::Io`] if it cannot be created, inspected or tightened, or is not a
    /// directory; [`StateError::Insecure`] for a directory of another account or one
    /// others may write.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StateError> {
        let path = path.into();
        if !path.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .map_err(io_err(&path))?;
        }
        let meta = fs::metadata(&path).map_err(io_err(&path))?;
        if !meta.is_dir() {
            return Err(StateError::Io {
                path,
                source: io::Error::other("not a directory"),
            });
        }
        let mut tightened = Vec::new();
        // SEC-22: owner only.
        let euid = rustix::process::geteuid().as_raw();
        if meta.uid() != euid && euid != 0 {
            return Err(StateError::Insecure {
                detail: format!(
                    "it belongs to uid {}, not to this account (uid {euid})",
                    meta.uid()
                ),
                path,
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(StateError::Insecure {
                detail: format!(
                    "mode {mode:o} lets other accounts change it; check its files, then chmod 700 it"
                ),
                path,
            });
        }
        if mode & 0o077 != 0 {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(io_err(&path))?;
            tightened.push((path.clone(), mode));
        }
        for name in TIGHTENED_FILES {
            let file = path.join(name);
            let Ok(meta) = fs::symlink_metadata(&file) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_file() && mode & 0o077 != 0 {
                fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
                    .map_err(io_err(&file))?;
                tightened.push((file, mode));
            }
        }
        Ok(Self { path, tightened })
    }

    /// What [`StateDir::open`] tightened: each path with the mode it had (`SEC-22`).
    pub fn tightened(&self) -> &[(PathBuf, u32)] {
        &self.tightened
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of `host.json`.
    pub fn state_path(&self) -> PathBuf {
        self.path.join(STATE_FILE)
    }

    /// Takes the exclusive lock on `DIR/lock`, waiting for another holder.
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn lock(&self) -> Result<StateLock, StateError> {
        let path = self.path.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        fs4::FileExt::lock(&file).map_err(io_err(&path))?;
        Ok(StateLock { _file: file })
    }

    fn read_unlocked(&self) -> Result<HostState, StateError> {
        let path = self.state_path();
        match fs::read(&path) {
            Ok(bytes) => parse_state(&bytes, &path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HostState::default()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Reads `host.json` under the lock (an absent file is the empty state).
    ///
    /// # Errors
    /// [`StateError::Io`], [`StateError::Corrupt`], [`StateError::UnsupportedVersion`].
    pub fn read(&self) -> Result<HostState, StateError> {
        let _lock = self.lock()?;
        self.read_unlocked()
    }

    /// `host.json` as of now, re-read (under the lock) only when the file changed since
    /// `snapshot` was taken: the per-request checks of `CMD-55` and `CMD-56` and the
    /// re-checks of `SEC-13` cost one `stat` instead of a lock, a read and a parse.
    ///
    /// "Changed" is any difference in device, inode, size, modification or change time.
    /// Every writer replaces the file by renaming a new one over it (a new inode), and an
    /// edit in place moves its times; a file replaced between the `stat` and the read is
    /// re-read on the next call. File times move in clock ticks (up to a second on some
    /// file systems), so an edit in place within a tick of the read could keep every
    /// field: a snapshot of a file modified less than [`RACY_WINDOW`] before it was read
    /// is trusted for at most [`RACY_RECHECK`], then read again (git's "racily clean"
    /// rule, with a bound on the cost).
    ///
    /// # Errors
    /// As [`StateDir::read`]; the snapshot is left as it was.
    pub fn read_fresh<'a>(
        &self,
        snapshot: &'a mut StateSnapshot,
    ) -> Result<&'a HostState, StateError> {
        let (stamp, _) = self.stamp()?;
        let recheck = snapshot.recheck_at.is_some_and(|t| Instant::now() >= t);
        if recheck || snapshot.stamp != Some(stamp) {
            let _lock = self.lock()?;
            // Stamped under the lock, before the read: a later write changes the stamp.
            let (stamp, modified) = self.stamp()?;
            let read_at = SystemTime::now();
            snapshot.state = self.read_unlocked()?;
            snapshot.stamp = Some(stamp);
            snapshot.recheck_at = modified
                .is_some_and(|m| m + RACY_WINDOW > read_at)
                .then(|| Instant::now() + RACY_RECHECK);
        }
        Ok(&snapshot.state)
    }

    fn stamp(&self) -> Result<(FileStamp, Option<SystemTime>), StateError> {
        let path = self.state_path();
        match fs::metadata(&path) {
            Ok(m) => Ok((
                FileStamp::Present {
                    dev: m.dev(),
                    ino: m.ino(),
                    size: m.size(),
                    mtime: (m.mtime(), m.mtime_nsec()),
                    ctime: (m.ctime(), m.ctime_nsec()),
                },
                m.modified().ok(),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((FileStamp::Absent, None)),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// One read-modify-write of `host.json` under the lock: `f` sees the current state;
    /// if it returns `Ok` the state is written durably before this returns, if it returns
    /// `Err` nothing is written.
    ///
    /// # Errors
    /// The outer error is the store's ([`StateError`]); the inner one is `f`'s.
    pub fn update<T, E>(
        &self,
        f: impl FnOnce(&mut HostState) -> Result<T, E>,
    ) -> Result<Result<T, E>, StateError> {
        self.update_with(None, f)
    }

    /// [`StateDir::update`] that leaves what it wrote in `snapshot`, so that the next
    /// [`StateDir::read_fresh`] need not read it back.
    ///
    /// # Errors
    /// As [`StateDir::update`].
    pub fn update_with<T, E>(
        &self,
        snapshot: Option<&mut StateSnapshot>,
        f: impl FnOnce(&mut HostState) -> Result<T, E>,
    ) -> Result<Result<T, E>, StateError> {
        let _lock = self.lock()?;
        let mut state = self.read_unlocked()?;
        match f(&mut state) {
            Ok(t) => {
                self.sweep_temporaries(STATE_FILE);
                let mut snapshot = snapshot;
                if let Some(snapshot) = snapshot.as_deref_mut() {
                    // Whatever happens next, the old snapshot no longer describes the file.
                    snapshot.stamp = None;
                }
                write_atomic(&self.state_path(), &render_state(&state), 0o600)?;
                if let Some(snapshot) = snapshot
                    && let Ok((stamp, _)) = self.stamp()
                {
                    snapshot.stamp = Some(stamp);
                    snapshot.state = state;
                    // Just written: trusted for RACY_RECHECK only.
                    snapshot.recheck_at = Some(Instant::now() + RACY_RECHECK);
                }
                Ok(Ok(t))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Removes the temporary files a crashed write of `name` left behind. Only called under
    /// the lock: every writer of the directory's files holds it, so no write is in progress.
    fn sweep_temporaries(&self, name: &str) {
        let prefix = format!(".{name}.");
        let Ok(entries) = fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            if file.starts_with(&prefix) && file.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The static private key, created (from the CSPRNG, mode 0600) on first use.
    ///
    /// # Errors
    /// [`StateError::Io`], [`StateError::Corrupt`] for a key file that is not 64 hex
    /// digits, [`StateError::Random`].
    pub fn load_or_create_key(&self) -> Result<[u8; 32], StateError> {
        let _lock = self.lock()?;
        match self.read_key() {
            Err(StateError::NoKey { .. }) => {
                let key = random_bytes::<32>()?;
                let mut text = hex::encode(key);
                text.push('\n');
                write_atomic(&self.path.join(KEY_FILE), text.as_bytes(), 0o600)?;
                Ok(key)
            }
            other => other,
        }
    }

    /// The static private key.
    ///
    /// # Errors
    /// [`StateError::NoKey`] when there is none yet, [`StateError::Corrupt`] for a key
    /// file that is not 64 hex digits or is readable by others, [`StateError::Io`].
    pub fn read_key(&self) -> Result<[u8; 32], StateError> {
        let path = self.path.join(KEY_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NoKey {
                    path,
                    dir: self.path.clone(),
                });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mode = fs::metadata(&path)
            .map_err(io_err(&path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(StateError::Corrupt {
                path,
                detail: format!(
                    "mode {:o} lets others read the private key; chmod 600 it",
                    mode & 0o777
                ),
            });
        }
        hex_array::<32>(text.trim(), "host key")
            .map_err(|detail| StateError::Corrupt { path, detail })
    }

    /// Records the run information.
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn write_run_info(&self, info: &RunInfo) -> Result<(), StateError> {
        let _lock = self.lock()?;
        let mut bytes = serde_json::to_vec_pretty(info).unwrap_or_default();
        bytes.push(b'\n');
        write_atomic(&self.path.join(RUN_FILE), &bytes, 0o600)
    }

    /// The run information `tether host run` recorded.
    ///
    /// # Errors
    /// [`StateError::NotRunYet`], [`StateError::Corrupt`], [`StateError::Io`].
    pub fn read_run_info(&self) -> Result<RunInfo, StateError> {
        let path = self.path.join(RUN_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotRunYet {
                    path,
                    dir: self.path.clone(),
                });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let info: RunInfo = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if info.version != 1 {
            return Err(StateError::UnsupportedVersion {
                path,
                version: info.version,
            });
        }
        Ok(info)
    }

    /// Mints a pairing token for the relay and workspace of `run.json`, living `ttl`
    /// (`TOKEN-9`: at most 600 s), and stores its id and secret digest (`TOKEN-11`).
    ///
    /// # Errors
    /// [`StateError::Token`] for a lifetime over 600 s or a bad field, the errors of
    /// [`StateDir::read_key`], [`StateDir::read_run_info`] and [`StateDir::update`].
    pub fn mint_token(&self, ttl: Duration, now: UnixTime) -> Result<PairingToken, StateError> {
        let expires_at = PairingToken::expiry_after(now, ttl).map_err(StateError::Token)?;
        let host_private = self.read_key()?;
        let run = self.read_run_info()?;
        let token_id = random_bytes::<16>()?; // TOKEN-11
        let token_secret = random_bytes::<32>()?;
        let token = PairingToken::new(
            tether_proto::keys::public_key(&host_private),
            token_id,
            token_secret,
            expires_at,
            run.workspace,
            run.relay,
            Some(run.host_name),
        )
        .map_err(StateError::Token)?;
        let record = TokenRecord {
            id: token_id,
            secret_digest: secret_digest(&token_secret),
            expires_at,
            consumed: false,
        };
        self.update(|s| {
            s.add_token(record, now);
            Ok::<(), StateError>(())
        })??;
        Ok(token)
    }

    /// Revokes the device `query` names (name, or fingerprint prefix).
    ///
    /// # Errors
    /// [`StateError::NoSuchDevice`], [`StateError::AmbiguousDevice`], store errors.
    pub fn revoke(&self, query: &str) -> Result<Device, StateError> {
        self.update(|s| s.revoke(query))?
    }

    /// Sets the inactivity age in seconds, or removes it with `None` (`CHAN-9`): see
    /// [`HostSettings::set_max_inactive`].
    ///
    /// # Errors
    /// Store errors.
    pub fn set_max_inactive(&self, secs: Option<u64>) -> Result<(), StateError> {
        self.update(|s| {
            s.config.set_max_inactive(secs);
            Ok::<(), StateError>(())
        })?
    }

    /// Switches remote access on or off (`CHAN-26`, `CMD-55`).
    ///
    /// # Errors
    /// Store errors.
    pub fn set_remote_access(&self, on: bool) -> Result<(), StateError> {
        self.update(|s| {
            s.config.remote_access = on;
            Ok::<(), StateError>(())
        })?
    }
}

/// What identifies one version of `host.json` on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileStamp {
    Absent,
    Present {
        dev: u64,
        ino: u64,
        size: u64,
        mtime: (i64, i64),
        ctime: (i64, i64),
    },
}

/// How long after its last modification a read of `host.json` is still trusted only for
/// the call that made it (see [`StateDir::read_fresh`]): well above the tick of file
/// times.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// How long a snapshot of a recently modified `host.json` is trusted (see
/// [`StateDir::read_fresh`]).
pub const RACY_RECHECK: Duration = Duration::from_millis(100);

/// The last `host.json` read by [`StateDir::read_fresh`], with what identifies it.
#[derive(Debug, Default)]
pub struct StateSnapshot {
    stamp: Option<FileStamp>,
    /// When a snapshot of a file modified within [`RACY_WINDOW`] of its read (or just
    /// written) must be read again; `None` when the stamp alone decides.
    recheck_at: Option<Instant>,
    state: HostState,
}

// ---------------------------------------------------------------------------------------
// the HostStore

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
    use super::*;

    fn ts(secs: u64) -> Timestamp {
        Timestamp::from_unix(UnixTime::from_secs(secs))
    }

    fn dir() -> (tempfile::TempDir, StateDir) {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path().join("state")).unwrap();
        (tmp, state)
    }

    fn run_info(state: &StateDir) {
        state
            .write_run_info(&RunInfo {
                version: 1,
                relay: "ws://127.0.0.1:7400/".into(),
                workspace: "acme".into(),
                host_name: "build-box".into(),
            })
            .unwrap();
    }

    #[test]
    fn directory_and_key_modes() {
        let (_tmp, state) = dir();
        let mode = fs::metadata(state.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let key = state.load_or_create_key().unwrap();
        assert_eq!(state.load_or_create_key().unwrap(), key, "created once");
        let path = state.path().join(KEY_FILE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(state.read_key(), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn cmd_56_read_fresh_sees_every_change_of_host_json() {
        let (_tmp, state) = dir();
        let mut snap = StateSnapshot::default();
        assert!(state.read_fresh(&mut snap).unwrap().devices.is_empty());
        let now = UnixTime::from_secs(1_800_000_000);
        let device = [7u8; 32];
        // A write by this process (atomic replace).
        state
            .update(|s| {
                s.record_device(&device, "phone", ts(1_800_000_000), now);
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(
            state.read_fresh(&mut snap).unwrap().access(&device, now),
            Access::Allowed
        );
        // Unchanged: the same answer from the snapshot.
        assert_eq!(
            state.read_fresh(&mut snap).unwrap().access(&device, now),
            Access::Allowed
        );
        // A revocation by another process (`tether host revoke`).
        state.revoke("phone").unwrap();
        assert_eq!(
            state.read_fresh(&mut snap).unwrap().access(&device, now),
            Access::NotAuthorized
        );
        // An edit in place, as an editor might make it: same inode, new content.
        let before = fs::read(state.state_path()).unwrap();
        let mut f = OpenOptions::new()
            .write(true)
            .open(state.state_path())
            .unwrap();
        f.write_all(&render_state(&HostState::default())).unwrap();
        f.set_len(render_state(&HostState::default()).len() as u64)
            .unwrap();
        drop(f);
        assert_ne!(fs::read(state.state_path()).unwrap(), before);
        assert!(state.read_fresh(&mut snap).unwrap().devices.is_empty());
        // An edit in place that keeps the size, within a tick of the last read, may keep
        // every field of the stamp: it is seen once RACY_RECHECK has passed.
        assert!(state.read_fresh(&mut snap).unwrap().config.remote_access);
        let text = String::from_utf8(fs::read(state.state_path()).unwrap()).unwrap();
        assert!(text.contains("\"remoteAccess\": true"), "{text}");
        let edited = text.replacen("\"remoteAccess\": true", "\"remoteAccess\":false", 1);
        assert_eq!(edited.len(), text.len());
        let mut f = OpenOptions::new()
            .write(true)
            .open(state.state_path())
            .unwrap();
        f.write_all(edited.as_bytes()).unwrap();
        drop(f);
        std::thread::sleep(RACY_RECHECK + Duration::from_millis(20));
        assert!(!state.read_fresh(&mut snap).unwrap().config.remote_access);
        // Removed: the empty state.
        state
            .update(|s| {
                s.record_device(&device, "phone", ts(1_800_000_001), now);
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(state.read_fresh(&mut snap).unwrap().devices.len(), 1);
        fs::remove_file(state.state_path()).unwrap();
        assert!(state.read_fresh(&mut snap).unwrap().devices.is_empty());
        // A corrupt file is an error and leaves the snapshot as it was.
        fs::write(state.state_path(), b"{not json").unwrap();
        assert!(matches!(
            state.read_fresh(&mut snap),
            Err(StateError::Corrupt { .. })
        ));
    }

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
    fn versions_migrate_or_are_refused() {
        let (_tmp, state) = dir();
        // v0: no version member, no config/tokens, devices without lastTimestamp.
        let key = hex::encode([4u8; 32]);
        let v0 = format!(
            "{{\"devices\":[{{\"key\":\"{key}\",\"name\":\"old\",\"pairedAt\":10,\"lastSeen\":20}}]}}"
        );
        fs::write(state.state_path(), &v0).unwrap();
        let s = state.read().unwrap();
        assert_eq!(s.devices.len(), 1);
        assert_eq!(s.devices[0].last_timestamp, ts(0));
        assert!(!s.devices[0].revoked);
        assert_eq!(s.config, HostSettings::default());
        // The first write stores version 1.
        state.set_remote_access(true).unwrap();
        let text = fs::read_to_string(state.state_path()).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
        assert_eq!(state.read().unwrap().devices, s.devices);
        // A newer version is refused, and left as it is.
        let v2 = b"{\"version\":2,\"devices\":[],\"tokens\":[],\"config\":{}}";
        fs::write(state.state_path(), v2).unwrap();
        assert!(matches!(
            state.read(),
            Err(StateError::UnsupportedVersion { version: 2, .. })
        ));
        assert!(state.set_remote_access(false).is_err());
        assert_eq!(fs::read(state.state_path()).unwrap(), v2);
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

    #[test]
    fn state_files_with_and_without_max_inactive_secs_load() {
        let (_tmp, state) = dir();
        // A version-1 file written before maxInactiveSecs existed.
        let old = b"{\"version\":1,\"devices\":[],\"tokens\":[],\"config\":{\"remoteAccess\":true,\"maxInactiveDays\":3}}";
        fs::write(state.state_path(), old).unwrap();
        let s = state.read().unwrap();
        assert_eq!(s.config.max_inactive(), Some(3 * 86_400));
        // With it: it wins over maxInactiveDays.
        let new = b"{\"version\":1,\"devices\":[],\"tokens\":[],\"config\":{\"remoteAccess\":true,\"maxInactiveDays\":3,\"maxInactiveSecs\":12}}";
        fs::write(state.state_path(), new).unwrap();
        let s = state.read().unwrap();
        assert_eq!(s.config.max_inactive(), Some(12));
        // Round trip; a file without the setting renders as before (no new member).
        assert_eq!(
            parse_state(&render_state(&s), &state.state_path()).unwrap(),
            s
        );
        let plain = render_state(&HostState::default());
        assert!(
            !String::from_utf8(plain)
                .unwrap()
                .contains("maxInactiveSecs")
        );
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

    /// SEC-22: a state directory others can read is tightened (and says so), one others
    /// can write is refused, and files created in it are 0600.
    #[test]
    fn sec_22_existing_state_directory_is_tightened_or_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state");
        fs::create_dir(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(path.join(STATE_FILE), b"{}").unwrap();
        fs::set_permissions(path.join(STATE_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        let state = StateDir::open(&path).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o700);
        assert_eq!(mode(&path.join(STATE_FILE)), 0o600);
        assert_eq!(
            state.tightened(),
            &[(path.clone(), 0o755), (path.join(STATE_FILE), 0o644)]
        );
        // Opened again: nothing left to tighten.
        assert!(StateDir::open(&path).unwrap().tightened().is_empty());
        // New files: 0600.
        state.load_or_create_key().unwrap();
        run_info(&state);
        for name in [KEY_FILE, RUN_FILE, LOCK_FILE] {
            assert_eq!(mode(&path.join(name)), 0o600, "{name}");
        }

        for loose in [0o775, 0o757, 0o722] {
            fs::set_permissions(&path, fs::Permissions::from_mode(loose)).unwrap();
            let e = StateDir::open(&path).unwrap_err();
            assert!(matches!(e, StateError::Insecure { .. }), "{loose:o}: {e}");
            assert!(e.to_string().contains("SEC-22"), "{e}");
            // Refused, not changed.
            assert_eq!(mode(&path), loose);
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();

        // A new directory (and its missing parents) is created 0700.
        let deep = tmp.path().join("a/b/state");
        StateDir::open(&deep).unwrap();
        assert_eq!(mode(&deep), 0o700);
    }

    /// SEC-22: `state_dir_exposed` sees the state directory inside a writable root, equal
    /// to one, or containing one, through symbolic links, and nothing else.
    #[test]
    fn sec_22_state_dir_exposed() {
        let tmp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        let state = base.join("home/.local/state/tether");
        let project = base.join("home/src/acme");
        let temp = base.join("tmp");
        for d in [&state, &project, &temp] {
            fs::create_dir_all(d).unwrap();
        }
        assert!(!state_dir_exposed(&state, &[]));
        assert!(!state_dir_exposed(&state, &[project.clone(), temp.clone()]));
        // Inside, equal, containing.
        assert!(state_dir_exposed(
            &state,
            &[project.clone(), base.join("home")]
        ));
        assert!(state_dir_exposed(&state, std::slice::from_ref(&state)));
        assert!(state_dir_exposed(&state, &[state.join("threads")]));
        assert!(state_dir_exposed(&state, &[PathBuf::from("/")]));
        // Component-wise: ".../state/tether-other" is not inside ".../state/tether".
        let sibling = base.join("home/.local/state/tether-other");
        fs::create_dir_all(&sibling).unwrap();
        assert!(!state_dir_exposed(&state, &[sibling]));
        // Through a symbolic link and `..`.
        let link = base.join("link");
        std::os::unix::fs::symlink(base.join("home/.local"), &link).unwrap();
        assert!(state_dir_exposed(&state, std::slice::from_ref(&link)));
        assert!(state_dir_exposed(
            &link.join("state/tether"),
            &[base.join("home")]
        ));
        assert!(state_dir_exposed(
            &state,
            &[project.join("../../.local/state")]
        ));
        // A root that does not exist yet is compared as given.
        assert!(!state_dir_exposed(&state, &[base.join("missing")]));
        assert!(state_dir_exposed(&state, &[state.join("missing")]));
    }

    /// SEC-22: the placement check names the directory the state lies in.
    #[test]
    fn sec_22_state_inside_a_writable_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("tmp/tether-host");
        fs::create_dir_all(&state).unwrap();
        let sibling_tmp = tmp.path().join("host-tmp");
        fs::create_dir_all(&sibling_tmp).unwrap();
        let e = check_state_placement(
            &state,
            &[
                ("the commands' temporary directory", sibling_tmp.clone()),
                ("the default project", tmp.path().join("tmp")),
            ],
        )
        .unwrap_err();
        match &e {
            StateError::Exposed { root, role, .. } => {
                assert_eq!(root, &tmp.path().join("tmp"));
                assert_eq!(role, "the default project");
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("SEC-22"), "{e}");
        check_state_placement(
            &state,
            &[("the commands' temporary directory", sibling_tmp)],
        )
        .unwrap();
    }

    /// SEC-23: the credential file is read only when it is this account's alone.
    #[test]
    fn sec_23_credential_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("credential");
        let write = |bytes: &[u8], mode: u32| {
            let _ = fs::remove_file(&path);
            fs::write(&path, bytes).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        };
        write(b"acme-credential-0123456789\n", 0o600);
        assert_eq!(
            read_credential_file(&path).unwrap(),
            "acme-credential-0123456789"
        );
        write(b"acme-credential-0123456789\r\n", 0o400);
        assert_eq!(
            read_credential_file(&path).unwrap(),
            "acme-credential-0123456789"
        );
        // Spaces inside and at the end are part of the credential.
        write(b"with space \n", 0o600);
        assert_eq!(read_credential_file(&path).unwrap(), "with space ");
        for mode in [0o640, 0o604, 0o620, 0o644] {
            write(b"acme-credential-0123456789\n", mode);
            let e = read_credential_file(&path).unwrap_err();
            assert!(matches!(e, StateError::Insecure { .. }), "{mode:o}: {e}");
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        write(b"\n", 0o600);
        assert!(matches!(
            read_credential_file(&path),
            Err(StateError::Corrupt { .. })
        ));
        write(&[b'x'; 5000], 0o600);
        assert!(matches!(
            read_credential_file(&path),
            Err(StateError::Corrupt { .. })
        ));
        write(&[0xff, 0xfe], 0o600);
        assert!(matches!(
            read_credential_file(&path),
            Err(StateError::Corrupt { .. })
        ));
        // A FIFO in its place: refused at once, not waited on.
        fs::remove_file(&path).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let started = Instant::now();
        assert!(matches!(
            read_credential_file(&path),
            Err(StateError::Corrupt { .. })
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(
            read_credential_file(&tmp.path().join("missing")),
            Err(StateError::Io { .. })
        ));
    }
}
