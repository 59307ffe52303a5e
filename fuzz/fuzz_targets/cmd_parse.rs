//! JSON-RPC decoder (`CMD-1`..`CMD-13`): `Message::parse`, `parse_or_reject` and the typed
//! method sets.
//!
//! Asserts: no panic; `parse` and `parse_or_reject` agree; an accepted message re-encodes
//! to JSON that parses back to the same message; a refusal that is answerable gives an
//! error response that itself parses; a typed request or notification that decodes
//! re-encodes (with its method and params) to one that decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::cmd::{
    ClientNotification, ClientRequest, Message, ServerNotification, ServerRequest,
};
use tether_proto::limits::MAX_TRANSPORT_PLAINTEXT_LEN;

fn reparse(m: &Message) {
    let bytes = m.to_bytes();
    if bytes.len() <= MAX_TRANSPORT_PLAINTEXT_LEN {
        let again = Message::parse(&bytes).expect("to_bytes output parses");
        assert_eq!(&again, m, "parse(to_bytes(m)) == m");
    }
}

fuzz_target!(|data: &[u8]| {
    let strict = Message::parse(data);
    let lenient = Message::parse_or_reject(data);
    assert_eq!(
        strict.is_ok(),
        lenient.is_ok(),
        "parse and parse_or_reject agree"
    );
    match lenient {
        Ok(message) => {
            reparse(&message);
            match &message {
                Message::Request(r) => {
                    if let Ok(c) = ClientRequest::from_request(r) {
                        let again = c.clone().into_request(r.id.clone());
                        assert_eq!(ClientRequest::from_request(&again).as_ref(), Ok(&c));
                        reparse(&Message::Request(again));
                    }
                    if let Ok(s) = ServerRequest::from_request(r) {
                        let again = s.clone().into_request(r.id.clone());
                        assert_eq!(ServerRequest::from_request(&again).as_ref(), Ok(&s));
                    }
                }
                Message::Notification(n) => {
                    if let Ok(c) = ClientNotification::from_notification(n) {
                        let again = c.to_notification();
                        assert_eq!(
                            ClientNotification::from_notification(&again).as_ref(),
                            Ok(&c)
                        );
                    }
                    if let Ok(s) = ServerNotification::from_notification(n) {
                        let again = s.to_notification();
                        assert_eq!(
                            ServerNotification::from_notification(&again).as_ref(),
                            Ok(&s)
                        );
                        reparse(&Message::Notification(again));
                    }
                }
                Message::Response(_) | Message::Error(_) => {}
            }
        }
        Err(rejection) => {
            assert!(!rejection.error.requirement().is_empty());
            if let Some(reply) = rejection.reply() {
                reparse(&Message::Error(reply));
            }
        }
    }
});
