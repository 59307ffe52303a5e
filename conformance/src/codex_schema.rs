//! The Codex app-server schema the command protocol shares its messages with (`CMD-79`).
//!
//! Chapter 5 takes every method, notification and server request it shares with the Codex
//! app-server protocol from the pinned Codex release: names, members, types and enums are
//! Codex's, and what only Tether has travels in `tether` members and `tether/` methods. This
//! module holds the JSON schemas that release generates (`spec/codex/0.169.0/`, compiled
//! into the runner) and checks one message against the schema of its method and kind.
//!
//! The runner checks every message a host under test sends ([`crate::host`]), and the
//! vectors test checks every command vector. A message of a method Codex does not define
//! (the `tether/` methods) is [`Verdict::NotShared`]: this schema says nothing about it.
//!
//! ```
//! use serde_json::json;
//! use tether_conformance::codex_schema::{CodexSchema, Sender, Verdict};
//!
//! let schema = CodexSchema::pinned();
//! let ok = json!({"method": "turn/started", "params": {"threadId": "t", "turn": {"id": "u", "items": [], "status": "inProgress"}}});
//! assert_eq!(schema.check(Sender::Host, &ok, None), Verdict::Valid);
//! let bad = json!({"method": "turn/started", "params": {"threadId": 7}});
//! assert!(matches!(schema.check(Sender::Host, &bad, None), Verdict::Invalid(_)));
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value, json};

/// The Codex release whose schemas are pinned (`spec/codex/<version>/`, `ci/codex-install`).
pub const CODEX_VERSION: &str = "0.169.0";

/// The schema bundle that `codex app-server generate-json-schema` writes for
/// [`CODEX_VERSION`], every type in one file.
const BUNDLE: &str =
    include_str!("../../spec/codex/0.169.0/codex_app_server_protocol.schemas.json");

/// Who sent a message: it decides which of Codex's unions a request or notification
/// belongs to (`ClientRequest` or `ServerRequest`, `ClientNotification` or
/// `ServerNotification`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// The controller (Codex: the client).
    Controller,
    /// The host (Codex: the server).
    Host,
}

/// What the schema says of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It validates against the schema of its method and kind.
    Valid,
    /// The schema does not cover it: a method Codex does not define in this direction (the
    /// `tether/` methods), a response whose request is unknown, or an error response to a
    /// message that had no id.
    NotShared(String),
    /// It does not validate: one line per error, each with the JSON pointer of the member.
    Invalid(Vec<String>),
}

/// The pinned schemas, with a compiled validator per type asked for.
pub struct CodexSchema {
    definitions: Value,
    /// Request method → its params type, for each side that sends requests.
    requests: HashMap<(SenderKey, String), Value>,
    /// Notification method → the variant schema (method and params), per side.
    notifications: HashMap<(SenderKey, String), Value>,
    compiled: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SenderKey {
    Controller,
    Host,
}

impl From<Sender> for SenderKey {
    fn from(s: Sender) -> Self {
        match s {
            Sender::Controller => Self::Controller,
            Sender::Host => Self::Host,
        }
    }
}

impl std::fmt::Debug for CodexSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodexSchema")
            .field("version", &CODEX_VERSION)
            .field("requests", &self.requests.len())
            .field("notifications", &self.notifications.len())
            .finish_non_exhaustive()
    }
}

impl CodexSchema {
    /// The schemas of [`CODEX_VERSION`], parsed once per process.
    ///
    /// # Panics
    /// Never for the committed bundle (a test parses it); the bundle is compiled in.
    pub fn pinned() -> &'static CodexSchema {
        static PINNED: OnceLock<CodexSchema> = OnceLock::new();
        PINNED.get_or_init(|| {
            #[allow(clippy::expect_used)] // the bundle is compiled in and checked by a test
            let bundle: Value = serde_json::from_str(BUNDLE).expect("the pinned bundle is JSON");
            CodexSchema::from_bundle(&bundle)
        })
    }

    /// Reads a bundle: its `definitions`, and the four unions of messages in them.
    fn from_bundle(bundle: &Value) -> CodexSchema {
        let definitions = bundle.get("definitions").cloned().unwrap_or(Value::Null);
        let mut requests = HashMap::new();
        let mut notifications = HashMap::new();
        let unions = [
            ("ClientRequest", SenderKey::Controller, true),
            ("ServerRequest", SenderKey::Host, true),
            ("ClientNotification", SenderKey::Controller, false),
            ("ServerNotification", SenderKey::Host, false),
        ];
        for (union, side, is_request) in unions {
            let variants = definitions
                .get(union)
                .and_then(|u| u.get("oneOf"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for variant in variants {
                let Some(method) = variant
                    .pointer("/properties/method/enum/0")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                else {
                    continue;
                };
                if is_request {
                    requests.insert((side, method), variant);
                } else {
                    notifications.insert((side, method), variant);
                }
            }
        }
        CodexSchema {
            definitions,
            requests,
            notifications,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// Whether Codex defines `method` as a request or notification that `sender` sends.
    pub fn defines(&self, sender: Sender, method: &str) -> bool {
        let key = (SenderKey::from(sender), method.to_owned());
        self.requests.contains_key(&key) || self.notifications.contains_key(&key)
    }

    /// Checks one message that `sender` sent. For a response (success or error),
    /// `answered` is the method of the request it answers (a request of the other side);
    /// without it a success response is [`Verdict::NotShared`].
    pub fn check(&self, sender: Sender, message: &Value, answered: Option<&str>) -> Verdict {
        let side = SenderKey::from(sender);
        let Some(object) = message.as_object() else {
            return Verdict::Invalid(vec!["the message is not a JSON object".to_owned()]);
        };
        if let Some(method) = object.get("method").and_then(Value::as_str) {
            let key = (side, method.to_owned());
            let variant = if object.contains_key("id") {
                self.requests.get(&key)
            } else {
                self.notifications.get(&key)
            };
            let Some(variant) = variant else {
                return Verdict::NotShared(format!(
                    "Codex {CODEX_VERSION} defines no {} {method:?} sent by the {}",
                    if object.contains_key("id") {
                        "request"
                    } else {
                        "notification"
                    },
                    side_name(side),
                ));
            };
            // Codex leaves out "jsonrpc"; the variants do not forbid extra members, so a
            // Tether sender's "jsonrpc":"2.0" validates as it is.
            return self.validate(&format!("{method} ({})", side_name(side)), variant, message);
        }
        if object.contains_key("error") {
            if object.get("id").is_none_or(Value::is_null) {
                return Verdict::NotShared(
                    "an error response with id null (an answer to a message that had no readable id; Codex sends none)"
                        .to_owned(),
                );
            }
            let error = json!({"$ref": "#/definitions/JSONRPCError"});
            return self.validate("JSONRPCError", &error, message);
        }
        let Some(method) = answered else {
            return Verdict::NotShared("a response to a request of unknown method".to_owned());
        };
        // The answer to a request of the other side.
        let asker = match side {
            SenderKey::Controller => SenderKey::Host,
            SenderKey::Host => SenderKey::Controller,
        };
        let Some(variant) = self.requests.get(&(asker, method.to_owned())) else {
            return Verdict::NotShared(format!(
                "Codex {CODEX_VERSION} defines no request {method:?} sent by the {}",
                side_name(asker)
            ));
        };
        let Some(response) = response_type(variant) else {
            return Verdict::NotShared(format!(
                "Codex {CODEX_VERSION} names no result type for {method:?}"
            ));
        };
        let Some(pointer) = self.definition_pointer(&response) else {
            return Verdict::NotShared(format!(
                "Codex {CODEX_VERSION} has no definition {response:?} for the result of {method:?}"
            ));
        };
        let result = object.get("result").cloned().unwrap_or(Value::Null);
        self.validate(
            &format!("result of {method}"),
            &json!({"$ref": pointer}),
            &result,
        )
    }

    /// `#/definitions/X` or `#/definitions/v2/X`, whichever holds `name`.
    fn definition_pointer(&self, name: &str) -> Option<String> {
        if self.definitions.get(name).is_some() {
            return Some(format!("#/definitions/{name}"));
        }
        self.definitions
            .get("v2")
            .and_then(|v2| v2.get(name))
            .map(|_| format!("#/definitions/v2/{name}"))
    }

    fn validate(&self, key: &str, schema: &Value, instance: &Value) -> Verdict {
        let validator = match self.validator(key, schema) {
            Ok(v) => v,
            Err(e) => return Verdict::Invalid(vec![format!("schema for {key}: {e}")]),
        };
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("{}: {e}", if at.is_empty() { "/" } else { at.as_str() })
            })
            .collect();
        if errors.is_empty() {
            Verdict::Valid
        } else {
            Verdict::Invalid(errors)
        }
    }

    /// The validator of `schema` (a variant or a `$ref`), with the bundle's definitions
    /// beside it so its references resolve; compiled on first use and kept.
    fn validator(&self, key: &str, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = compiled.get(key) {
            return Ok(v.clone());
        }
        let mut root = Map::new();
        root.insert("definitions".to_owned(), self.definitions.clone());
        // Draft 7 ignores the siblings of a `$ref`: wrap it.
        root.insert("allOf".to_owned(), Value::Array(vec![schema.clone()]));
        let validator = jsonschema::draft7::new(&Value::Object(root)).map_err(|e| e.to_string())?;
        let validator = Arc::new(validator);
        compiled.insert(key.to_owned(), validator.clone());
        Ok(validator)
    }
}

/// `XResponse` for a request variant whose params are `#/definitions/…/XParams`.
fn response_type(variant: &Value) -> Option<String> {
    let params = variant.pointer("/properties/params/$ref")?.as_str()?;
    let name = params.rsplit('/').next()?;
    Some(format!("{}Response", name.strip_suffix("Params")?))
}

fn side_name(side: SenderKey) -> &'static str {
    match side {
        SenderKey::Controller => "client (controller)",
        SenderKey::Host => "server (host)",
    }
}
