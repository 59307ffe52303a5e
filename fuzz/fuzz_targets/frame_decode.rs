//! Relay frame decoder (`LINK-4`, `LINK-30`): `RelayFrame::decode`.
//!
//! Asserts: no panic; an accepted frame validates, re-encodes to exactly the input
//! (the encoding is canonical) and decodes again to the same frame; every error names a
//! requirement and maps to a close code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_proto::link::RelayFrame;

fuzz_target!(|data: &[u8]| {
    match RelayFrame::decode(data) {
        Ok(frame) => {
            frame.validate().expect("a decoded frame validates");
            let bytes = frame.to_bytes().expect("a decoded frame encodes");
            assert_eq!(bytes, data, "decode/encode is canonical");
            assert_eq!(RelayFrame::decode(&bytes).as_ref(), Ok(&frame));
            assert_eq!(frame.frame_type(), data[0]);
            let mut out = vec![0xAA];
            frame.encode(&mut out).expect("encode appends");
            assert_eq!(&out[1..], data);
        }
        Err(e) => {
            assert!(!e.requirement().is_empty());
            let _ = e.close_code();
            assert!(!e.to_string().is_empty());
        }
    }
});
