//! Records: the plaintext of every transport message of a session that negotiated
//! `channel.flow` (`spec/04-secure-channel.md` section 4.13, `CHAN-32`).
//!
//! ```text
//!   0x00 MESSAGE  body = last (or only) part of a command-protocol message
//!   0x01 PART     body = a non-empty part of a message that continues
//!   0x02 WINDOW   body = u32 big-endian increment, 4096 ..= 258048
//!   0x03 OUTPUT   body = stream | flags | N | process id (N bytes) | output bytes
//! ```

use super::error::ChannelError;
use crate::limits::{MAX_SESSION_CREDIT, MAX_TRANSPORT_PLAINTEXT_LEN, MIN_WINDOW_INCREMENT};

/// Type byte of a `MESSAGE` record.
pub const RECORD_MESSAGE: u8 = 0x00;
/// Type byte of a `PART` record.
pub const RECORD_PART: u8 = 0x01;
/// Type byte of a `WINDOW` record.
pub const RECORD_WINDOW: u8 = 0x02;
/// Type byte of an `OUTPUT` record.
pub const RECORD_OUTPUT: u8 = 0x03;
/// `OUTPUT` flag bit 0: the chunk reaches the output cap (`CMD-41`).
pub const OUTPUT_CAP_REACHED: u8 = 0x01;
/// Longest process id (`CMD-34`).
pub const MAX_PROCESS_ID_LEN: usize = 64;
/// Plaintext length of a `WINDOW` record: the type byte and a 4-byte increment.
pub const WINDOW_RECORD_LEN: usize = 5;
/// The most message bytes one record carries: a full transport plaintext less the type
/// byte (`CHAN-16`).
pub const MAX_RECORD_BODY: usize = MAX_TRANSPORT_PLAINTEXT_LEN - 1;

/// The most output bytes one `OUTPUT` record carries for a process id of
/// `process_id_len` bytes: the record body less its 3 + N header bytes (`CHAN-32`). A
/// sender that reads output in chunks of this size sends each in one record when the
/// window allows (`CHAN-34`), not in a full record and a sliver.
#[must_use]
pub const fn max_output_per_record(process_id_len: usize) -> usize {
    MAX_RECORD_BODY.saturating_sub(3 + process_id_len)
}

/// A chunk of a command's output, the body of an `OUTPUT` record (`CHAN-32`, `CMD-76`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output<'a> {
    /// Standard error (else standard output).
    pub stderr: bool,
    /// The chunk reaches the output cap (`CMD-41`).
    pub cap_reached: bool,
    /// The process, as `command/exec` named it (1..=64 bytes).
    pub process_id: &'a str,
    /// The output bytes.
    pub data: &'a [u8],
}

impl<'a> Output<'a> {
    /// The bytes before the data: stream, flags, N and the process id.
    pub fn header_len(&self) -> usize {
        3 + self.process_id.len()
    }

    fn decode(body: &'a [u8]) -> Result<Self, ChannelError> {
        let bad = |reason| Err(ChannelError::BadRecord { reason });
        let [stream, flags, n, rest @ ..] = body else {
            return bad("OUTPUT record shorter than 3 bytes");
        };
        let stderr = match stream {
            0 => false,
            1 => true,
            _ => return bad("OUTPUT stream is not 0 or 1"),
        };
        if flags & !OUTPUT_CAP_REACHED != 0 {
            return bad("OUTPUT reserved flag bit set");
        }
        let n = usize::from(*n);
        if !(1..=MAX_PROCESS_ID_LEN).contains(&n) || n > rest.len() {
            return bad("OUTPUT process id length outside 1..=64 or past the end");
        }
        let (id, data) = rest.split_at(n);
        let Ok(process_id) = std::str::from_utf8(id) else {
            return bad("OUTPUT process id is not UTF-8");
        };
        let cap_reached = flags & OUTPUT_CAP_REACHED != 0;
        if data.is_empty() && !cap_reached {
            return bad("OUTPUT without output bytes");
        }
        Ok(Self {
            stderr,
            cap_reached,
            process_id,
            data,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.stderr));
        out.push(if self.cap_reached {
            OUTPUT_CAP_REACHED
        } else {
            0
        });
        // The length was checked when the output was queued; a longer id is cut, never
        // written with a wrong length.
        let id = self
            .process_id
            .as_bytes()
            .get(..MAX_PROCESS_ID_LEN)
            .unwrap_or(self.process_id.as_bytes());
        out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(id);
        out.extend_from_slice(self.data);
    }
}

/// One decoded record, borrowing its body from the plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// The last (or only) part of a message.
    Message(&'a [u8]),
    /// A part of a message that continues.
    Part(&'a [u8]),
    /// Credit for the receiver of this record's sender: `increment` more bytes.
    Window(u32),
    /// A chunk of a command's output (host to controller).
    Output(Output<'a>),
}

impl<'a> Record<'a> {
    /// Decodes one record plaintext (`CHAN-32`).
    ///
    /// # Errors
    /// [`ChannelError::BadRecord`] for an empty plaintext, an unknown type, an empty
    /// `PART`, a `WINDOW` that is not 5 bytes or whose increment is outside
    /// 4096 ..= 258048, or an `OUTPUT` that breaks its layout.
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
            RECORD_OUTPUT => Ok(Self::Output(Output::decode(body)?)),
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
            Self::Output(output) => {
                out.push(RECORD_OUTPUT);
                output.encode(out);
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
            Record::Output(Output {
                stderr: true,
                cap_reached: false,
                process_id: "p-1",
                data: b"hello",
            }),
            Record::Output(Output {
                stderr: false,
                cap_reached: true,
                process_id: "p",
                data: b"",
            }),
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
            &[4, 1, 2],
            &[0x7b],
            &[3, 0, 0],
            &[3, 2, 0, 1, b'p', b'x'],
            &[3, 0, 2, 1, b'p', b'x'],
            &[3, 0, 0, 0, b'x'],
            &[3, 0, 0, 2, b'p'],
            &[3, 0, 0, 1, 0xff, b'x'],
            &[3, 0, 0, 1, b'p'],
        ] {
            let e = Record::decode(bad).unwrap_err();
            assert_eq!(e.requirement(), "CHAN-32", "{bad:?}");
        }
    }
}
