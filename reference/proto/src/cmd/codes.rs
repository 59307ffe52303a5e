//! The JSON-RPC error-code registry of the command protocol (`spec/05-command-protocol.md`,
//! "Error codes"; `spec/06-registries.md`).
//!
//! | code | name | meaning |
//! |---|---|---|
//! | -32700 | `PARSE_ERROR` | not UTF-8 JSON, BOM, duplicate key, too deep, too large (`CMD-2`..`CMD-5`) |
//! | -32600 | `INVALID_REQUEST` | not a JSON-RPC 2.0 message object (`CMD-6`..`CMD-10`, `CMD-15`) |
//! | -32601 | `METHOD_NOT_FOUND` | unknown method (`CMD-12`, `CMD-16`) |
//! | -32602 | `INVALID_PARAMS` | params missing, of the wrong type or out of range (`CMD-13`) |
//! | -32603 | `INTERNAL_ERROR` | the receiver failed (`CMD-60`) |
//! | -32001 | `OVERLOADED` | more than 64 requests in flight (`CMD-58`) |
//! | -32002 | `NOT_INITIALIZED` | a request before `initialize` (`CMD-15`) |
//! | -32800 | `REQUEST_CANCELLED` | the request was cancelled (`CMD-57`) |
//! | -32010 | `REMOTE_ACCESS_DISABLED` | remote access switched off (`CMD-55`) |
//! | -32011 | `NOT_AUTHORIZED` | the device is no longer authorized (`CMD-56`) |
//! | -32012 | `SANDBOX_DENIED` | the sandbox mode cannot be enforced (`CMD-46`) |
//! | -32013 | `THREAD_NOT_FOUND` | unknown thread id (`CMD-18`) |
//! | -32014 | `TURN_NOT_FOUND` | unknown or finished turn (`CMD-23`) |
//! | -32015 | `APPROVAL_ALREADY_RESOLVED` | a late approval answer (`CMD-32`) |
//! | -32016 | `PROCESS_NOT_FOUND` | unknown process id (`CMD-38`) |
//! | -32017 | `INVALID_THREAD_BUNDLE` | a hand-off bundle that may not be imported (`CMD-53`) |
//! | -32018 | `TURN_ALREADY_ACTIVE` | `turn/start` while a turn runs (`CMD-22`) |

macro_rules! rpc_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        $($(#[$doc])* pub const $name: i64 = $value;)*

        /// Every registered code, in registry order.
        pub const ALL: &[i64] = &[$($name),*];

        /// The registry name of a code (`"PARSE_ERROR"`), or `None` for an unregistered one.
        pub fn name(code: i64) -> Option<&'static str> {
            match code {
                $($value => Some(stringify!($name)),)*
                _ => None,
            }
        }

        /// A short human description of a code, or `None` for an unregistered one.
        pub fn description(code: i64) -> Option<&'static str> {
            match code {
                $($value => Some($text),)*
                _ => None,
            }
        }
    };
}

rpc_codes! {
    /// Invalid JSON was received (JSON-RPC 2.0).
    PARSE_ERROR = -32700, "parse error";
    /// The JSON is not a valid JSON-RPC message (JSON-RPC 2.0).
    INVALID_REQUEST = -32600, "invalid request";
    /// The method does not exist or is not available (JSON-RPC 2.0).
    METHOD_NOT_FOUND = -32601, "method not found";
    /// Invalid method parameters (JSON-RPC 2.0).
    INVALID_PARAMS = -32602, "invalid params";
    /// Internal error of the receiver (JSON-RPC 2.0).
    INTERNAL_ERROR = -32603, "internal error";
    /// Too many requests in flight on the session (`CMD-58`).
    OVERLOADED = -32001, "overloaded";
    /// A request other than `initialize` arrived before `initialize` (`CMD-15`).
    NOT_INITIALIZED = -32002, "not initialized";
    /// The request was cancelled with `tether/cancelled` (`CMD-57`).
    REQUEST_CANCELLED = -32800, "request cancelled";
    /// Remote access is switched off on the host (`CMD-55`).
    REMOTE_ACCESS_DISABLED = -32010, "remote access disabled";
    /// The controller's device is no longer authorized (`CMD-56`).
    NOT_AUTHORIZED = -32011, "not authorized";
    /// The requested sandbox mode cannot be enforced (`CMD-46`).
    SANDBOX_DENIED = -32012, "sandbox denied";
    /// No thread with that id (`CMD-18`).
    THREAD_NOT_FOUND = -32013, "thread not found";
    /// No running turn with that id (`CMD-23`).
    TURN_NOT_FOUND = -32014, "turn not found";
    /// The approval was already resolved (`CMD-32`).
    APPROVAL_ALREADY_RESOLVED = -32015, "approval already resolved";
    /// No running process with that id (`CMD-38`).
    PROCESS_NOT_FOUND = -32016, "process not found";
    /// The thread bundle may not be imported (`CMD-53`).
    INVALID_THREAD_BUNDLE = -32017, "invalid thread bundle";
    /// The thread already has a running turn (`CMD-22`).
    TURN_ALREADY_ACTIVE = -32018, "turn already active";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_named() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(name(*a).is_some());
            assert!(description(*a).is_some());
            for b in ALL.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
        assert_eq!(name(-32015), Some("APPROVAL_ALREADY_RESOLVED"));
        assert_eq!(name(-1), None);
    }
}
