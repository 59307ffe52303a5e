//! The runner's own reading of records and windows (`spec/04-secure-channel.md` section
//! 4.13): the record codec with the checks of `CHAN-32`, and the accounting of both
//! directions of a session (`CHAN-33` to `CHAN-36`).
//!
//! The runner judges other implementations, so it counts sizes itself rather than through
//! `tether_proto::channel::Flow`: what the host may send is what the runner granted, what
//! the runner may send is what the host granted, each record's size is its plaintext plus
//! the 16-byte tag.
//!
//! ```text
//!   runner -> host:  window = 16384 + host increments - sizes sent         (CHAN-34)
//!   host -> runner:  granted = 16384 + runner increments                   (CHAN-34)
//!                    received = sizes of the host's MESSAGE and PART records
//!                    credit = granted - sizes consumed  (<= 258048, CHAN-35)
//! ```

use std::fmt;

/// Type byte of a `MESSAGE` record.
pub const RECORD_MESSAGE: u8 = 0x00;
/// Type byte of a `PART` record.
pub const RECORD_PART: u8 = 0x01;
/// Type byte of a `WINDOW` record.
pub const RECORD_WINDOW: u8 = 0x02;
/// Type byte of an `OUTPUT` record (host to controller, `CMD-76`).
pub const RECORD_OUTPUT: u8 = 0x03;
/// Each direction's window at the start of a session (`CHAN-34`).
pub const INITIAL_WINDOW: u64 = 16_384;
/// The most credit a receiver keeps for one session (`CHAN-35`).
pub const MAX_SESSION_CREDIT: u64 = 258_048;
/// The most credit a receiver keeps over all sessions of its relay link (`CHAN-35`).
pub const MAX_LINK_CREDIT: u64 = 2_097_152;
/// The smallest `WINDOW` increment (`CHAN-32`).
pub const MIN_INCREMENT: u32 = 4_096;
/// The credit a receiver restores once consuming took it below (`CHAN-36`).
pub const MIN_CREDIT: u64 = 8_192;
/// The longest message a session with records carries (`CHAN-33`).
pub const MAX_MESSAGE_LEN: usize = 16_777_216;
/// The AEAD tag: a record's size is its plaintext plus this (`CHAN-34`).
pub const TAG_LEN: u64 = 16;
/// The longest record body: a whole transport plaintext (65519 bytes) less the type byte.
pub const MAX_RECORD_BODY: usize = 65_518;
/// The credit the runner keeps granting by default: 2 MiB shared by the 16 sessions of a
/// controller link, as the reference controller does.
pub const DEFAULT_CREDIT: u64 = 131_072;
/// The smallest `PART` body the runner sends when a message does not fit its window; below
/// it, it waits for the host's `WINDOW` (a conforming host restores at least 8192 bytes).
const MIN_PART_BODY: usize = 1024;

/// One record as the runner decoded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// The last (or only) part of a message.
    Message(&'a [u8]),
    /// A non-empty part of a message that continues.
    Part(&'a [u8]),
    /// Credit for the receiver of this record's sender.
    Window(u32),
    /// A chunk of a command's output (`CMD-76`).
    Output {
        /// Standard error (else standard output).
        stderr: bool,
        /// The chunk reaches the output cap.
        cap_reached: bool,
        /// The process id.
        process_id: &'a str,
        /// The bytes.
        data: &'a [u8],
    },
}

impl<'a> Record<'a> {
    /// Decodes a record plaintext with the checks of `CHAN-32`; the error says what is
    /// wrong.
    ///
    /// # Errors
    /// An empty plaintext, an unknown type, an empty `PART`, a `WINDOW` whose body is not 4
    /// bytes or whose increment is outside 4096 to 258048.
    pub fn decode(plaintext: &'a [u8]) -> Result<Self, String> {
        let Some((&kind, body)) = plaintext.split_first() else {
            return Err("an empty record plaintext".to_owned());
        };
        match kind {
            RECORD_MESSAGE => Ok(Self::Message(body)),
            RECORD_PART if body.is_empty() => Err("a PART record with an empty body".to_owned()),
            RECORD_PART => Ok(Self::Part(body)),
            RECORD_WINDOW => {
                let bytes: [u8; 4] = body.try_into().map_err(|_| {
                    format!("a WINDOW record whose body is {} bytes, not 4", body.len())
                })?;
                let increment = u32::from_be_bytes(bytes);
                if !(u64::from(MIN_INCREMENT)..=MAX_SESSION_CREDIT).contains(&u64::from(increment))
                {
                    return Err(format!(
                        "a WINDOW record with increment {increment}, outside 4096 to 258048"
                    ));
                }
                Ok(Self::Window(increment))
            }
            RECORD_OUTPUT => decode_output(body),
            b'{' | b' ' | b'\t' | b'\r' | b'\n' => Err(format!(
                "a plaintext that starts with {:?}: a version 1 JSON-RPC message, not a record \
                 (the session switched to records with the controller's WINDOW, CHAN-31)",
                char::from(kind)
            )),
            other => Err(format!("a record of unknown type 0x{other:02x}")),
        }
    }

    /// The record's plaintext.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
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
            Self::Output {
                stderr,
                cap_reached,
                process_id,
                data,
            } => {
                out.push(RECORD_OUTPUT);
                out.push(u8::from(*stderr));
                out.push(u8::from(*cap_reached));
                out.push(u8::try_from(process_id.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(process_id.as_bytes());
                out.extend_from_slice(data);
            }
        }
        out
    }
}

/// An `OUTPUT` body, checked against the layout of spec 4.13.2 (`CHAN-32`).
fn decode_output(body: &[u8]) -> Result<Record<'_>, String> {
    let [stream, flags, n, rest @ ..] = body else {
        return Err(format!(
            "an OUTPUT record of {} body bytes, fewer than 3",
            body.len()
        ));
    };
    let stderr = match stream {
        0 => false,
        1 => true,
        other => return Err(format!("an OUTPUT record with stream {other}, not 0 or 1")),
    };
    if flags & !1 != 0 {
        return Err(format!(
            "an OUTPUT record with reserved flag bits set (0x{flags:02x})"
        ));
    }
    let n = usize::from(*n);
    if !(1..=64).contains(&n) || n > rest.len() {
        return Err(format!(
            "an OUTPUT record whose process id length {n} is outside 1..=64 or past its end"
        ));
    }
    let (id, data) = rest.split_at(n);
    let process_id = std::str::from_utf8(id)
        .map_err(|_| "an OUTPUT record whose process id is not UTF-8".to_owned())?;
    let cap_reached = flags & 1 != 0;
    if data.is_empty() && !cap_reached {
        return Err("an OUTPUT record without output bytes or capReached".to_owned());
    }
    Ok(Record::Output {
        stderr,
        cap_reached,
        process_id,
        data,
    })
}

/// What one record of the host did to the runner's accounting.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// A `WINDOW`: the runner's window grew.
    Window(u32),
    /// A `PART`, moved into the reassembly buffer (consumed).
    Part(u64),
    /// A `MESSAGE` completed a message.
    Message {
        /// The message.
        bytes: Vec<u8>,
        /// The `MESSAGE` record's size, consumed when the runner takes the message.
        size: u64,
    },
    /// An `OUTPUT` record (`CMD-76`), as the `command/exec/outputDelta` notification it
    /// stands for (with `"record": "OUTPUT"` beside `params`).
    Output {
        /// The notification.
        value: serde_json::Value,
        /// The record's size, consumed when the runner takes it.
        size: u64,
    },
}

/// Both directions of a session with records, as the runner counts them.
#[derive(Clone)]
pub struct Records {
    /// The increments of the host's `WINDOW` records, in order.
    pub host_increments: Vec<u32>,
    /// The increments the runner granted, in order (its `CHAN-31` record first).
    pub runner_increments: Vec<u32>,
    /// Sizes of the `MESSAGE` and `PART` records the runner sent.
    pub sent: u64,
    /// Sizes of the `MESSAGE` and `PART` records the host sent.
    pub received: u64,
    /// Sizes of the host's records the runner has consumed.
    pub consumed: u64,
    /// The largest the runner's window has been.
    pub max_window: u64,
    /// `MESSAGE` and `PART` records the host sent.
    pub host_records: u64,
    /// Messages the host sent.
    pub host_messages: u64,
    /// `OUTPUT` records the host sent (`CMD-76`).
    pub host_outputs: u64,
    target: u64,
    granting: bool,
    reassembly: Vec<u8>,
}

impl fmt::Debug for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records")
            .field("window", &self.window())
            .field("granted", &self.granted())
            .field("received", &self.received)
            .field("credit", &self.credit())
            .finish_non_exhaustive()
    }
}

impl Records {
    /// The accounting of a session whose controller opened it with a `WINDOW` of
    /// `increment`, granting back up to `target` when `granting`.
    pub(crate) fn new(increment: u32, target: u64, granting: bool) -> Self {
        Self {
            host_increments: Vec::new(),
            runner_increments: vec![increment],
            sent: 0,
            received: 0,
            consumed: 0,
            max_window: INITIAL_WINDOW,
            host_records: 0,
            host_messages: 0,
            host_outputs: 0,
            target: target.clamp(INITIAL_WINDOW, MAX_SESSION_CREDIT),
            granting,
            reassembly: Vec::new(),
        }
    }

    /// Bytes the runner may still send (`CHAN-34`): the initial window, plus the host's
    /// increments, less the sizes sent.
    pub fn window(&self) -> u64 {
        (INITIAL_WINDOW + self.host_granted()).saturating_sub(self.sent)
    }

    /// The sum of the host's increments.
    pub fn host_granted(&self) -> u64 {
        self.host_increments.iter().map(|&i| u64::from(i)).sum()
    }

    /// The initial window plus every increment the runner granted: what the host may send
    /// in all (`CHAN-34`).
    pub fn granted(&self) -> u64 {
        INITIAL_WINDOW
            + self
                .runner_increments
                .iter()
                .map(|&i| u64::from(i))
                .sum::<u64>()
    }

    /// The runner's credit as a receiver (`CHAN-35`): granted less consumed.
    pub fn credit(&self) -> u64 {
        self.granted().saturating_sub(self.consumed)
    }

    /// Whether the runner grants credit back as it consumes.
    pub fn granting(&self) -> bool {
        self.granting
    }

    pub(crate) fn set_granting(&mut self, on: bool) {
        self.granting = on;
    }

    /// The credit the runner grants back up to.
    pub fn target(&self) -> u64 {
        self.target
    }

    pub(crate) fn set_target(&mut self, target: u64) {
        self.target = target.clamp(INITIAL_WINDOW, MAX_SESSION_CREDIT);
    }

    /// Counts a record the runner sends (its plaintext).
    pub(crate) fn count_sent(&mut self, plaintext: &[u8]) {
        match plaintext.first() {
            Some(&RECORD_MESSAGE | &RECORD_PART | &RECORD_OUTPUT) => {
                self.sent += plaintext.len() as u64 + TAG_LEN;
            }
            Some(&RECORD_WINDOW) => {
                if let Ok(Record::Window(i)) = Record::decode(plaintext) {
                    self.runner_increments.push(i);
                }
            }
            _ => {}
        }
    }

    /// The next record body to send of `rest` within the window: `Some(true)` for a
    /// `MESSAGE` of all of it, `Some(false)` for a `PART` of the first `len` bytes, `None`
    /// to wait for credit.
    pub(crate) fn next_piece(&self, rest: usize) -> Option<(bool, usize)> {
        let room = usize::try_from(self.window().saturating_sub(1 + TAG_LEN))
            .unwrap_or(usize::MAX)
            .min(MAX_RECORD_BODY);
        if rest <= room {
            Some((true, rest))
        } else if room >= MIN_PART_BODY {
            Some((false, room))
        } else {
            None
        }
    }

    /// Takes one plaintext of the host.
    ///
    /// # Errors
    /// The rule it breaks, with its requirement id.
    pub(crate) fn take(&mut self, plaintext: &[u8]) -> Result<Taken, String> {
        let record = Record::decode(plaintext).map_err(|e| format!("{e} (CHAN-32)"))?;
        if let Record::Window(increment) = record {
            self.host_increments.push(increment);
            let window = self.window();
            self.max_window = self.max_window.max(window);
            if window > MAX_SESSION_CREDIT {
                return Err(format!(
                    "the host's WINDOW of {increment} makes the runner's window {window} bytes, \
                     more than 258048: the host's credit for the session passed 258048 \
                     (CHAN-35; increments so far {:?}, {} bytes sent)",
                    self.host_increments, self.sent
                ));
            }
            return Ok(Taken::Window(increment));
        }
        let size = plaintext.len() as u64 + TAG_LEN;
        self.received += size;
        self.host_records += 1;
        if self.received > self.granted() {
            return Err(format!(
                "the host's MESSAGE and PART records total {} bytes (this one {size}), more \
                 than the {} bytes the runner granted (16384 + increments {:?}) (CHAN-34)",
                self.received,
                self.granted(),
                self.runner_increments
            ));
        }
        match record {
            Record::Output {
                stderr,
                cap_reached,
                process_id,
                data,
            } => Ok({
                self.host_outputs += 1;
                Taken::Output {
                    value: serde_json::json!({
                        "jsonrpc": "2.0",
                        "method": "command/exec/outputDelta",
                        "params": {
                            "processId": process_id,
                            "stream": if stderr { "stderr" } else { "stdout" },
                            "deltaBase64": tether_proto::cmd::methods::encode_delta(data),
                            "capReached": cap_reached,
                        },
                        "record": "OUTPUT",
                    }),
                    size,
                }
            }),
            Record::Part(body) => {
                self.reassembly.extend_from_slice(body);
                if self.reassembly.len() > MAX_MESSAGE_LEN {
                    return Err(format!(
                        "the host sent a message longer than 16777216 bytes ({} so far) (CHAN-33)",
                        self.reassembly.len()
                    ));
                }
                Ok(Taken::Part(size))
            }
            Record::Message(body) => {
                let mut bytes = std::mem::take(&mut self.reassembly);
                bytes.extend_from_slice(body);
                if bytes.len() > MAX_MESSAGE_LEN {
                    return Err(format!(
                        "the host sent a message of {} bytes, longer than 16777216 (CHAN-33)",
                        bytes.len()
                    ));
                }
                self.host_messages += 1;
                Ok(Taken::Message { bytes, size })
            }
            Record::Window(_) => Err("unreachable".to_owned()),
        }
    }

    /// The runner no longer holds `size` bytes of the host's records.
    pub(crate) fn consume(&mut self, size: u64) {
        self.consumed += size;
    }

    /// The increment to grant now, if one is due and granting is on: always when the credit
    /// is below 8192 (`CHAN-36`), else when a quarter of the target is free; never past
    /// 258048 (`CHAN-35`). Counted as granted.
    pub(crate) fn due_grant(&mut self) -> Option<u32> {
        if !self.granting {
            return None;
        }
        let credit = self.credit();
        let mut increment = self.target.saturating_sub(credit);
        if credit < MIN_CREDIT {
            increment = increment
                .max(u64::from(MIN_INCREMENT))
                .max(MIN_CREDIT - credit);
        } else if increment < u64::from(MIN_INCREMENT).max(self.target / 4) {
            return None;
        }
        let increment = increment.min(MAX_SESSION_CREDIT.saturating_sub(credit));
        if increment < u64::from(MIN_INCREMENT) {
            return None;
        }
        let increment = u32::try_from(increment).ok()?;
        self.runner_increments.push(increment);
        Some(increment)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_named() {
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
        for bad in [
            &[][..],
            &[1],
            &[2, 0, 0, 16],
            &[2, 0, 0, 16, 0, 0],
            &[2, 0, 0, 15, 255],
            &[2, 0, 3, 240, 1],
            &[3, 1, 2],
            b"{}",
        ] {
            assert!(Record::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_host_is_held_to_what_the_runner_granted() {
        let mut r = Records::new(4096, 20_480, false);
        assert_eq!(r.granted(), 20_480);
        let body = vec![b' '; 10_000];
        assert!(matches!(
            r.take(&Record::Part(&body).to_vec()),
            Ok(Taken::Part(10_017))
        ));
        assert!(matches!(
            r.take(&Record::Message(&body).to_vec()),
            Ok(Taken::Message { size: 10_017, .. })
        ));
        let e = r.take(&Record::Message(&body).to_vec()).unwrap_err();
        assert!(e.contains("CHAN-34"), "{e}");
    }

    #[test]
    fn a_window_past_258048_is_named_and_grants_stay_within() {
        let mut r = Records::new(114_688, DEFAULT_CREDIT, true);
        r.take(&Record::Window(200_000).to_vec()).unwrap();
        let e = r.take(&Record::Window(60_000).to_vec()).unwrap_err();
        assert!(e.contains("CHAN-35"), "{e}");
        // Consuming 127000 of 131072 leaves 4072 < 8192: a grant back up to the target.
        r.consume(127_000);
        assert_eq!(r.due_grant(), Some(127_000));
        assert_eq!(r.credit(), DEFAULT_CREDIT);
        assert_eq!(r.due_grant(), None);
    }

    #[test]
    fn messages_are_cut_to_the_window() {
        let mut r = Records::new(4096, DEFAULT_CREDIT, true);
        assert_eq!(r.next_piece(100), Some((true, 100)));
        assert_eq!(r.next_piece(100_000), Some((false, 16_384 - 17)));
        r.count_sent(&Record::Part(&vec![0; 16_384 - 17]).to_vec());
        assert_eq!(r.window(), 0);
        assert_eq!(r.next_piece(1), None);
        r.take(&Record::Window(258_048).to_vec()).unwrap();
        assert_eq!(r.next_piece(100_000), Some((false, MAX_RECORD_BODY)));
    }
}
