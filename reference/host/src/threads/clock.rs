//! What every part of the thread layer reads the same way and that depends on nothing
//! else of it: the time of items (`startedAtMs`, `completedAtMs`) and the test agent's
//! model name. A leaf module, so that the thread layer's files import it without a cycle.

use tether_proto::time::UnixTime;

/// The `model` and `modelProvider` of the test agent's threads (`CMD-59`).
pub const TEST_MODEL: &str = "tether-test";

/// Now, in Unix milliseconds (`startedAtMs`, `completedAtMs`).
pub(crate) fn now_ms() -> u64 {
    u64::try_from(UnixTime::now().since_epoch().as_millis()).unwrap_or(u64::MAX)
}
