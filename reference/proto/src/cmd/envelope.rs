//! The JSON-RPC 2.0 envelope: strict parsing and serialization of one message
//! (`spec/05-command-protocol.md`, "Envelope", `CMD-1`..`CMD-11`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::error::CommandError;
use super::strict;
use crate::limits::MAX_TRANSPORT_PLAINTEXT_LEN;

/// The value of every message's `jsonrpc` member (`CMD-7`).
pub const JSONRPC_VERSION: &str = "2.0";
/// Largest magnitude of an integer id: 2^53-1, the integers every JSON parser keeps
/// exactly (`CMD-8`).
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;
/// Longest string id, in UTF-8 bytes (`CMD-8`).
pub const MAX_ID_LEN: usize = 256;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A request id: an integer within ±(2^53-1) or a string of at most 256 bytes (`CMD-8`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Id {
    /// An integer id.
    Number(i64),
    /// A string id.
    String(String),
}

impl Id {
    /// Reads an id from a JSON value; `None` unless it meets `CMD-8` (so `null`, booleans,
    /// fractions, exponents, out-of-range integers and long strings give `None`).
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => n
                .as_i64()
                .filter(|v| (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(v))
                .map(Self::Number),
            Value::String(s) if s.len() <= MAX_ID_LEN => Some(Self::String(s.clone())),
            _ => None,
        }
    }

    /// Whether the id meets `CMD-8` (an id built in code may not).
    pub fn is_valid(&self) -> bool {
        match self {
            Self::Number(n) => (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(n),
            Self::String(s) => s.len() <= MAX_ID_LEN,
        }
    }

    /// The id as a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Number(n) => Value::from(*n),
            Self::String(s) => Value::from(s.as_str()),
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::String(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<i64> for Id {
    fn from(n: i64) -> Self {
        Self::Number(n)
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<String> for Id {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(n) => s.serialize_i64(*n),
            Self::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Self::from_value(&v).ok_or_else(|| {
            serde::de::Error::custom(
                "an id must be an integer within +-(2^53-1) or a string of at most 256 bytes",
            )
        })
    }
}

/// A request: `method` and `id`, answered by a [`Response`] or an [`ErrorResponse`]
/// carrying the same id.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The id the answer carries.
    pub id: Id,
    /// The method name.
    pub method: String,
    /// The params: an object (or, at the envelope level, an array), or absent.
    pub params: Option<Value>,
}

/// A notification: `method` without `id`; never answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The method name.
    pub method: String,
    /// The params: an object (or, at the envelope level, an array), or absent.
    pub params: Option<Value>,
}

/// A successful response.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The id of the request it answers.
    pub id: Id,
    /// The result.
    pub result: Value,
}

/// An error response.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorResponse {
    /// The id of the request it answers, or `None` (JSON `null`) when that id could not be
    /// read (`CMD-11`).
    pub id: Option<Id>,
    /// The error.
    pub error: ErrorObject,
}

/// The `error` member of an error response (`CMD-10`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorObject {
    /// The code (see [`codes`](super::codes)).
    pub code: i64,
    /// A short description for people.
    pub message: String,
    /// Further detail; Tether senders put `{"error": name, "requirement": id}` here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// The registry name of the code, if it is registered.
    pub fn code_name(&self) -> Option<&'static str> {
        super::codes::name(self.code)
    }
}

impl From<&CommandError> for ErrorObject {
    fn from(e: &CommandError) -> Self {
        Self {
            code: e.rpc_code(),
            message: e.to_string(),
            data: Some(json!({"error": e.name(), "requirement": e.requirement()})),
        }
    }
}

/// One command-protocol message: what one transport message carries (`CMD-1`).
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A request (`method` and `id`).
    Request(Request),
    /// A notification (`method`, no `id`).
    Notification(Notification),
    /// A successful response (`result`).
    Response(Response),
    /// An error response (`error`).
    Error(ErrorResponse),
}

/// Why a message was refused, with what the receiver needs to answer it (`CMD-11`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// What was wrong.
    pub error: CommandError,
    /// The message's id, when it could be read (even if the message was refused for
    /// another reason).
    pub id: Option<Id>,
    /// False when the message looked like a response (no `method`, and a `result` or
    /// `error` member): responses are never answered.
    pub answerable: bool,
}

impl Rejection {
    /// A refusal of a message whose id is unknown (answered with a `null` id, `CMD-11`).
    pub fn bare(error: CommandError) -> Self {
        Self {
            error,
            id: None,
            answerable: true,
        }
    }

    /// The error response the receiver sends (`CMD-11`), or `None` when it sends nothing.
    pub fn reply(&self) -> Option<ErrorResponse> {
        self.answerable
            .then(|| ErrorResponse::new(self.id.clone(), &self.error))
    }
}

impl From<Rejection> for CommandError {
    fn from(r: Rejection) -> Self {
        r.error
    }
}

fn invalid(detail: &str) -> CommandError {
    CommandError::InvalidRequest {
        detail: detail.to_owned(),
    }
}

fn bad_error(detail: &str) -> CommandError {
    CommandError::BadErrorObject {
        detail: detail.to_owned(),
    }
}

/// `params` must be structured: an object or an array (`CMD-9`).
fn structured(params: Option<&Value>) -> Result<Option<Value>, CommandError> {
    match params {
        None => Ok(None),
        Some(v @ (Value::Object(_) | Value::Array(_))) => Ok(Some(v.clone())),
        Some(_) => Err(invalid("\"params\" must be an object or an array")),
    }
}

/// `CMD-10`: code an integer, message a string, data anything.
fn error_object(v: &Value) -> Result<ErrorObject, CommandError> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad_error("\"error\" must be an object"))?;
    let code = obj
        .get("code")
        .ok_or_else(|| bad_error("missing \"code\""))?
        .as_i64()
        .ok_or_else(|| bad_error("\"code\" must be an integer"))?;
    let message = obj
        .get("message")
        .ok_or_else(|| bad_error("missing \"message\""))?
        .as_str()
        .ok_or_else(|| bad_error("\"message\" must be a string"))?
        .to_owned();
    Ok(ErrorObject {
        code,
        message,
        data: obj.get("data").cloned(),
    })
}

fn classify(obj: &Map<String, Value>) -> Result<Message, CommandError> {
    // CMD-7: absent is JSON-RPC 2.0 (Codex's app-server omits it); anything but "2.0"
    // is refused.
    match obj.get("jsonrpc") {
        None => {}
        Some(Value::String(v)) if v == JSONRPC_VERSION => {}
        Some(_) => return Err(CommandError::BadVersion),
    }
    let id = obj.get("id");
    let has_result = obj.contains_key("result");
    let has_error = obj.contains_key("error");
    if let Some(method) = obj.get("method") {
        // CMD-9: request or notification.
        let method = method
            .as_str()
            .ok_or_else(|| invalid("\"method\" must be a string"))?
            .to_owned();
        let id = id
            .map(|v| Id::from_value(v).ok_or(CommandError::BadId))
            .transpose()?;
        if has_result || has_error {
            return Err(invalid(
                "a message with \"method\" must not have \"result\" or \"error\"",
            ));
        }
        let params = structured(obj.get("params"))?;
        return Ok(match id {
            Some(id) => Message::Request(Request { id, method, params }),
            None => Message::Notification(Notification { method, params }),
        });
    }
    // CMD-9: response.
    let Some(id) = id else {
        return Err(invalid("a message needs \"method\" or \"id\""));
    };
    match (obj.get("result"), obj.get("error")) {
        (Some(_), Some(_)) => Err(invalid(
            "a response must not have both \"result\" and \"error\"",
        )),
        (None, None) => Err(invalid("a response needs \"result\" or \"error\"")),
        (Some(result), None) => Ok(Message::Response(Response {
            id: Id::from_value(id).ok_or(CommandError::BadId)?,
            result: result.clone(),
        })),
        (None, Some(error)) => {
            // CMD-11: null only where the request's id could not be read.
            let id = match id {
                Value::Null => None,
                v => Some(Id::from_value(v).ok_or(CommandError::BadId)?),
            };
            Ok(Message::Error(ErrorResponse {
                id,
                error: error_object(error)?,
            }))
        }
    }
}

impl Message {
    /// Parses the plaintext of one transport message (`CMD-1`..`CMD-10`).
    ///
    /// # Errors
    /// The [`CommandError`] of the first rule broken. To answer a refused request, use
    /// [`Message::parse_or_reject`], which also returns the id to answer.
    pub fn parse(bytes: &[u8]) -> Result<Self, CommandError> {
        Self::parse_or_reject(bytes).map_err(|r| r.error)
    }

    /// Parses like [`Message::parse`]; a refusal comes with the message's id when it could
    /// be read, so the receiver can answer it ([`Rejection::reply`], `CMD-11`).
    ///
    /// Rules are checked in this order, so that every input has exactly one error: size
    /// (`CMD-2`), byte-order mark, UTF-8, JSON syntax, duplicate keys and depth in text
    /// order (`CMD-3`..`CMD-5`), object (`CMD-6`), `jsonrpc` (`CMD-7`), then the shape of a
    /// request, notification or response (`CMD-8`..`CMD-10`).
    ///
    /// # Errors
    /// A [`Rejection`].
    pub fn parse_or_reject(bytes: &[u8]) -> Result<Self, Rejection> {
        Self::parse_or_reject_within(bytes, MAX_TRANSPORT_PLAINTEXT_LEN)
    }

    /// [`Message::parse_or_reject`] with the size limit of the session: 65519 bytes in
    /// version 1, 16 MiB with records (`CMD-2`, `CHAN-33`).
    ///
    /// # Errors
    /// A [`Rejection`].
    pub fn parse_or_reject_within(bytes: &[u8], max_len: usize) -> Result<Self, Rejection> {
        // CMD-2
        if bytes.len() > max_len {
            return Err(Rejection::bare(CommandError::TooLarge { len: bytes.len() }));
        }
        // CMD-3
        if bytes.starts_with(BOM) {
            return Err(Rejection::bare(CommandError::Bom));
        }
        let text =
            std::str::from_utf8(bytes).map_err(|_| Rejection::bare(CommandError::InvalidUtf8))?;
        let value = strict::parse_value(text).map_err(Rejection::bare)?;
        // CMD-6
        let obj = match value {
            Value::Object(obj) => obj,
            Value::Array(_) => return Err(Rejection::bare(CommandError::Batch)),
            _ => return Err(Rejection::bare(CommandError::NotObject)),
        };
        classify(&obj).map_err(|error| Rejection {
            error,
            id: obj.get("id").and_then(Id::from_value),
            answerable: obj.contains_key("method")
                || !(obj.contains_key("result") || obj.contains_key("error")),
        })
    }

    /// The message's JSON text, `jsonrpc` first.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing these types cannot fail: every map key is a string.
        let out = match self {
            Self::Request(r) => serde_json::to_vec(&WireRequest {
                jsonrpc: JSONRPC_VERSION,
                id: Some(&r.id),
                method: &r.method,
                params: r.params.as_ref(),
            }),
            Self::Notification(n) => serde_json::to_vec(&WireRequest {
                jsonrpc: JSONRPC_VERSION,
                id: None,
                method: &n.method,
                params: n.params.as_ref(),
            }),
            Self::Response(r) => serde_json::to_vec(&WireResponse {
                jsonrpc: JSONRPC_VERSION,
                id: Some(&r.id),
                result: Some(&r.result),
                error: None,
            }),
            Self::Error(e) => serde_json::to_vec(&WireResponse {
                jsonrpc: JSONRPC_VERSION,
                id: e.id.as_ref(),
                result: None,
                error: Some(&e.error),
            }),
        };
        out.unwrap_or_default()
    }

    /// The message's id, if it has one.
    pub fn id(&self) -> Option<&Id> {
        match self {
            Self::Request(r) => Some(&r.id),
            Self::Notification(_) => None,
            Self::Response(r) => Some(&r.id),
            Self::Error(e) => e.id.as_ref(),
        }
    }

    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match self {
            Self::Request(r) => Some(&r.method),
            Self::Notification(n) => Some(&n.method),
            Self::Response(_) | Self::Error(_) => None,
        }
    }

    /// `"request"`, `"notification"`, `"response"` or `"error"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Request(_) => "request",
            Self::Notification(_) => "notification",
            Self::Response(_) => "response",
            Self::Error(_) => "error",
        }
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Id>,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a Value>,
}

#[derive(Serialize)]
struct WireResponse<'a> {
    jsonrpc: &'static str,
    id: Option<&'a Id>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorObject>,
}

impl Request {
    /// A request with the given id, method and params.
    pub fn new(id: impl Into<Id>, method: impl Into<String>, params: Option<Value>) -> Self {
        Self {
            id: id.into(),
            method: method.into(),
            params,
        }
    }
}

impl Notification {
    /// A notification with the given method and params.
    pub fn new(method: impl Into<String>, params: Option<Value>) -> Self {
        Self {
            method: method.into(),
            params,
        }
    }
}

impl Response {
    /// A successful response carrying `result`.
    ///
    /// # Errors
    /// [`CommandError::Internal`] if `result` does not serialize to JSON (the types of
    /// this crate always do).
    pub fn new<R: Serialize>(id: Id, result: &R) -> Result<Self, CommandError> {
        let result = serde_json::to_value(result).map_err(|e| CommandError::Internal {
            detail: e.to_string(),
        })?;
        Ok(Self { id, result })
    }
}

impl ErrorResponse {
    /// The error response that reports `error` for the request `id` (`None` when the
    /// request's id could not be read).
    pub fn new(id: Option<Id>, error: &CommandError) -> Self {
        Self {
            id,
            error: ErrorObject::from(error),
        }
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Self::Request(r)
    }
}

impl From<Notification> for Message {
    fn from(n: Notification) -> Self {
        Self::Notification(n)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Self::Response(r)
    }
}

impl From<ErrorResponse> for Message {
    fn from(e: ErrorResponse) -> Self {
        Self::Error(e)
    }
}
