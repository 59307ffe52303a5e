//! Records: the plaintext of every transport message of a session that negotiated
//! `channel.flow` (`spec/04-secure-channel.md` section 4.13, `CHAN-32`).
//!
//! ```text
//!   0x00 MESSAGE  body = last (or only) part of a command-protocol message
//!   0x01 PART     body = a non-empty part of a message that continues
//!   0x02 WINDOW   body = u32 big-endian increment, 4096 ..= 258048
//! ```

use super::error::ChannelError;
use crate::limits::{MAX_SESSION_CREDIT, MAX_TRANSPORT_PLAINTEXT_LEN, MIN_WINDOW_INCREMENT};

/// Type byte of a `MESSAGE` record.
pub const RECORD_MESSAGE: u8 = 0x00;
/// Type byte of a `PART` record.
pub const RECORD_PART: u8 = 0x01;
/// Type byte of a `WINDOW` record.
pub const RECORD_WINDOW: u8 = 0x02;
/// Plaintext length of a `WINDOW` record: the type byte and a 4-byte increment.
pub const WINDOW_RECORD_LEN: usize = 5;
/// The most message bytes one record carries: a full transport plaintext less the type
/// byte (`CHAN-16`).
pub const MAX_RECORD_BODY: usize = MAX_TRANSPORT_PLAINTEXT_LEN - 1;

/// One decoded record, borrowing its body from the plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// The last (or only) part of a message.
    Message(&'a [u8]),
    /// A part of a message that continues.
    Part(&'a [u8]),
    /// Credit for the receiver of this record's sender: `increment` more bytes.
    Window(u32),
}

impl<'a> Record<'a> {
    /// Decodes one record plaintext (`CHAN-32`).
    ///
    /// # Errors
    /// [`ChannelError::BadRecord`] for an empty plaintext, an unknown type, an empty
    /// `PART`, or a `WINDOW` that is not 5 bytes or whose increment is outside
    /// 4096 ..= 258048.
    pub fn decode(plaintext: &'a [u8]) -> Result<Self, ChannelError> {
        let Some((&kind, body)) = plaintext.split_first() else {
            return Err(ChannelError::BadRecord {
                reason: "empty record",
            });
        };
        match kind {
            RECORD_MESSAGE => Ok(Self::Message(body)),
            RECORD_PART if body.is_empty() => Err(ChannelError::BadRecord {
                reason: "PART record without a body",
            }),
            RECORD_PART => Ok(Self::Part(body)),
            RECORD_WINDOW => {
                let bytes: [u8; 4] = body.try_into().map_err(|_| ChannelError::BadRecord {
                    reason: "WINDOW record body is not 4 bytes",
                })?;
                let increment = u32::from_be_bytes(bytes);
                if !(MIN_WINDOW_INCREMENT..=MAX_SESSION_CREDIT).contains(&u64::from(increment)) {
                    return Err(ChannelError::BadRecord {
                        reason: "WINDOW increment outside 4096..=258048",
                    });
                }
                Ok(Self::Window(increment))
            }
            _ => Err(ChannelError::BadRecord {
                reason: "unknown record type",
            }),
        }
    }

    /// Appends the record's plaintext to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Message(body) => {
                out.push(RECORD_MESSAGE);
                out.extend_from_slice(body);
            }
            Self::Part(body) => {
                out.push(RECORD_PART);
                out.extend_from_slice(body);
            }
            Self::Window(increment) => {
                out.push(RECORD_WINDOW);
                out.extend_from_slice(&increment.to_be_bytes());
            }
        }
    }

    /// The record's plaintext.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn chan_32_round_trip() {
        for r in [
            Record::Message(b"{}"),
            Record::Message(b""),
            Record::Part(b"x"),
            Record::Window(4096),
            Record::Window(258_048),
        ] {
            assert_eq!(Record::decode(&r.to_vec()).unwrap(), r);
        }
        assert_eq!(Record::Window(65536).to_vec(), [2, 0, 1, 0, 0]);
    }

    #[test]
    fn chan_32_malformed_records_are_refused() {
        for bad in [
            &[][..],
            &[1],
            &[2, 0, 0, 16],
            &[2, 0, 0, 16, 0, 0],
            &[2, 0, 0, 15, 255],
            &[2, 0, 3, 240, 1],
            &[3, 1, 2],
            &[0x7b],
        ] {
            let e = Record::decode(bad).unwrap_err();
            assert_eq!(e.requirement(), "CHAN-32", "{bad:?}");
        }
    }
}
