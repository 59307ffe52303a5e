//! The answers the host sends to the controller's requests: responses and error
//! responses (`CMD-60`: a result that cannot be encoded is answered with `Internal`),
//! fitted to the session's message limit (`CMD-2`: one transport message, or 16 MiB in a
//! session with records).
//!
//! At the bottom of the crate: the dispatcher (`commands`), the threads and the processes
//! (`exec`) all answer through it, and it refers to none of them.

use tether_proto::cmd::{CommandError, ErrorResponse, Id, Message, Response};
use tether_proto::limits::{MAX_MESSAGE_LEN, MAX_TRANSPORT_PLAINTEXT_LEN};

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

/// The largest message of a session (`CMD-2`): 65 519 bytes in version 1, 16 MiB with
/// records (`CHAN-33`).
pub(crate) fn message_limit(records: bool) -> usize {
    if records {
        MAX_MESSAGE_LEN
    } else {
        MAX_TRANSPORT_PLAINTEXT_LEN
    }
}

/// The answer to a thread method, fitted to `max_len` bytes ([`message_limit`], `CMD-2`):
/// long command outputs are cut ([`fit_within`]); a result that still does not fit is
/// answered with `Internal` (`CMD-60`).
pub(crate) fn answer<R: serde::Serialize>(
    id: Id,
    result: Result<R, CommandError>,
    max_len: usize,
) -> Message {
    let message = match result {
        Ok(r) => fit_within(response(id.clone(), &r), max_len),
        Err(e) => return error(id, &e),
    };
    let len = message.to_bytes().len();
    if len > max_len {
        return error(
            id,
            &CommandError::Internal {
                detail: format!(
                    "the result takes {len} bytes, more than a message of this session carries ({max_len})"
                ),
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
    fit_within(message, MAX_TRANSPORT_PLAINTEXT_LEN)
}

/// [`fit`] to `max_len` bytes instead of one version 1 transport message.
pub(crate) fn fit_within(message: Message, max_len: usize) -> Message {
    if message.to_bytes().len() <= max_len {
        return message;
    }
    let mut keep = max_len;
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
        if !cut_outputs(value, keep) || out.to_bytes().len() <= max_len {
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
