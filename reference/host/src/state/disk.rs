//! `host.json` and `run.json` on disk: version 1 of the format, parsed (any known
//! version, through [`migrate`](super::migrate)) and rendered.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tether_proto::channel::Timestamp;

use super::error::{STATE_VERSION, StateError};
use super::migrate::migrate;
use super::model::{Device, HostSettings, HostState, TokenRecord};

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

pub(super) fn hex_array<const N: usize>(s: &str, what: &str) -> Result<[u8; N], String> {
    let bytes = hex::decode(s).map_err(|e| format!("{what}: {e}"))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| format!("{what}: expected {N} bytes"))
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
