//! Older layouts of `host.json`, brought to the current one on read.

use serde_json::Value;

use super::error::STATE_VERSION;

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
pub(super) fn migrate(mut value: Value) -> Result<Value, Result<u64, String>> {
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
