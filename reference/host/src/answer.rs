//! The answers the host sends to the controller's requests: responses and error
//! responses (`CMD-60`: a result that cannot be encoded is answered with `Internal`),
//! fitted to one transport message (`CMD-2`).
//!
//! At the bottom of the crate: the dispatcher (`commands`), the threads and the processes
//! (`exec`) all answer through it, and it refers to none of them.

use tether_proto::cmd::{CommandError, ErrorResponse, Id, Message, Response};
use tether_proto::limits::MAX_TRANSPORT_PLAINTEXT_LEN;

/// The error response to request `id`.
pub(crate) fn error(id: Id, e: &CommandError) -> Message {
    Message::Error(ErrorResponse::new(Some(id), e))
}

/// The response to request `id`, or `Internal` if `result` cannot be encoded (`CMD-60`).
pub(crate) fn response<R: serde::Serialize>(id: Id, result: &R) -> Message {
    match Response::new(id.clone(), result) {
        Ok(r) => Message::Response(r),
        Err(e) => error(id, &e), // CMD-60
    }
}

/// The answer to a thread method, fitted to one transport message (`CMD-2`): long command
/// outputs are cut ([`fit`]); a result that still does not fit is
/// answered with `Internal` (`CMD-60`).
pub(crate) fn answer<R: serde::Serialize>(id: Id, result: Result<R, CommandError>) -> Message {
    let message = match result {
        Ok(r) => fit(response(id.clone(), &r)),
        Err(e) => return error(id, &e),
    };
    let len = message.to_bytes().len();
    if len > MAX_TRANSPORT_PLAINTEXT_LEN {
        return error(
            id,
            &CommandError::Internal {
                detail: format!("the result takes {len} bytes, more than one message carries"),
            },
        );
    }
    message
}

/// `CMD-2`: a message is at most 65 519 bytes, but an item's `aggregatedOutput` may hold
/// up to the output cap (`CMD-41`). A message holding items that would be larger carries
/// each `aggregatedOutput` cut to its end, after a line `[N bytes cut]`, with the longest
/// end that lets the message fit (see the note in spec 5.4). Other messages are returned
/// as they are.
pub fn fit(message: Message) -> Message {
    if message.to_bytes().len() <= MAX_TRANSPORT_PLAINTEXT_LEN {
        return message;
    }
    let mut keep = MAX_TRANSPORT_PLAINTEXT_LEN;
    let mut out = message.clone();
    while keep > 0 {
        keep /= 2;
        out = message.clone();
        let value = match &mut out {
            Message::Request(r) => r.params.as_mut(),
            Message::Notification(n) => n.params.as_mut(),
            Message::Response(r) => Some(&mut r.result),
            Message::Error(_) => None,
        };
        let Some(value) = value else { return out };
        if !cut_outputs(value, keep) || out.to_bytes().len() <= MAX_TRANSPORT_PLAINTEXT_LEN {
            return out;
        }
    }
    out
}

/// Cuts every `aggregatedOutput` of a `commandExecution` item in `value` to its last
/// `keep` bytes (on a character boundary); returns whether there was one to cut.
fn cut_outputs(value: &mut serde_json::Value, keep: usize) -> bool {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut found = false;
            if map.get("type").and_then(Value::as_str) == Some("commandExecution")
                && let Some(Value::String(s)) = map.get_mut("aggregatedOutput")
            {
                found = true;
                if s.len() > keep {
                    let mut start = s.len() - keep;
                    while !s.is_char_boundary(start) {
                        start += 1;
                    }
                    *s = format!(
                        "[{start} bytes cut]\n{}",
                        s.get(start..).unwrap_or_default()
                    );
                }
            }
            for child in map.values_mut() {
                found |= cut_outputs(child, keep);
            }
            found
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |found, x| cut_outputs(x, keep) | found),
        _ => false,
    }
}
