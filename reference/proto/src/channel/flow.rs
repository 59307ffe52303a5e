//! One session's framing above the transport: version 1 messages or records, with
//! windows, segmentation and reassembly (`spec/04-secure-channel.md` section 4.13).
//!
//! ```text
//!   send:    push(message) ─► outbox ─► next_plaintext() ─► Transport::encrypt
//!                                        │ WINDOW records first, never limited;
//!                                        │ MESSAGE / PART only within the window (CHAN-34)
//!   receive: Transport::decrypt ─► receive() ─► Message { bytes, size } ─► consume(size)
//!                                   │ PART bodies into the reassembly buffer (consumed)
//!                                   │ WINDOW: the window grows (CHAN-35)
//!   grant:   grant() queues a WINDOW when the credit fell below 8192 (CHAN-36) or a
//!            quarter of the target is free, within the session and link caps (CHAN-35)
//! ```
//!
//! A [`Flow`] never reads a clock and never blocks: a message that does not fit the
//! window stays in the outbox until a `WINDOW` record arrives, and the caller learns how
//! far the outbox has gone from [`Flow::released`].

use std::collections::VecDeque;

use super::error::ChannelError;
use super::records::{MAX_PROCESS_ID_LEN, MAX_RECORD_BODY, Output, Record, WINDOW_RECORD_LEN};
use crate::limits::{
    INITIAL_WINDOW, MAX_LINK_CREDIT, MAX_MESSAGE_LEN, MAX_SESSION_CREDIT,
    MAX_TRANSPORT_PLAINTEXT_LEN, MIN_CREDIT, MIN_WINDOW_INCREMENT,
};

/// AEAD tag length: a record's size is its plaintext plus this (`CHAN-34`).
const TAG_LEN: u64 = 16;

/// The smallest `PART` body the reference sends when a message does not fit the window:
/// below it, it waits for credit rather than send a sliver (the peer restores at least
/// 8192 bytes, `CHAN-36`).
const MIN_PART_BODY: u64 = 4096;

/// The credit every session of a link owns whatever the others do: the initial window,
/// and the first `WINDOW` a controller must send (`CHAN-31`, at least 4096 bytes).
const OWN_SHARE: u64 = INITIAL_WINDOW + MIN_WINDOW_INCREMENT;

/// How a session carries messages (`CHAN-31`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// A host that offered `channel.flow` and has not yet seen the controller's first
    /// transport message; it sends nothing until then.
    Undecided,
    /// Version 1: one message per transport message, at most 65519 bytes, no windows.
    V1,
    /// Records (section 4.13).
    Records,
}

/// The credit a receiver has granted over all sessions of its relay link (`CHAN-35`).
///
/// Every session owns 20480 bytes: the initial window (16384 bytes), which the peer may
/// use without asking, and the smallest first `WINDOW` a controller must send (4096,
/// `CHAN-31`). Credit above that comes from one pool of `2 MiB - max_sessions × 20480`,
/// so the sum stays within 2 MiB even when every session the link allows is open.
#[derive(Clone, Debug)]
pub struct CreditLedger {
    pool: u64,
    extra: u64,
}

impl CreditLedger {
    /// A ledger for a link of at most `max_sessions` sessions (`LINK-20`: 64 for a host,
    /// 16 for a controller).
    pub fn for_link(max_sessions: usize) -> Self {
        let reserved = (max_sessions as u64).saturating_mul(OWN_SHARE);
        Self {
            pool: MAX_LINK_CREDIT.saturating_sub(reserved),
            extra: 0,
        }
    }

    /// A ledger that lets one session grow its credit to `cap` bytes (at most
    /// 258048): for a driver that keeps `cap × sessions` within 2 MiB itself.
    pub fn for_session(cap: u64) -> Self {
        Self {
            pool: cap.min(MAX_SESSION_CREDIT).saturating_sub(OWN_SHARE),
            extra: 0,
        }
    }

    /// Credit above the sessions' own shares still to be had.
    pub fn free(&self) -> u64 {
        self.pool.saturating_sub(self.extra)
    }

    /// Credit above the sessions' own shares granted now.
    pub fn in_use(&self) -> u64 {
        self.extra
    }

    fn adjust(&mut self, old_credit: u64, new_credit: u64) {
        let old = old_credit.saturating_sub(OWN_SHARE);
        let new = new_credit.saturating_sub(OWN_SHARE);
        self.extra = self.extra.saturating_sub(old).saturating_add(new);
    }
}

/// One item of the outbox: a message, or a chunk of output for `OUTPUT` records.
#[derive(Debug)]
enum Outgoing {
    Message(Vec<u8>),
    Output {
        stderr: bool,
        cap_reached: bool,
        process_id: String,
        data: Vec<u8>,
    },
}

impl Outgoing {
    fn len(&self) -> usize {
        match self {
            Self::Message(m) => m.len(),
            Self::Output { data, .. } => data.len(),
        }
    }
}

/// A chunk of output from an `OUTPUT` record (`CMD-76`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputChunk {
    /// Standard error (else standard output).
    pub stderr: bool,
    /// The chunk reaches the output cap (`CMD-41`).
    pub cap_reached: bool,
    /// The process.
    pub process_id: String,
    /// The bytes.
    pub data: Vec<u8>,
}

/// What [`Flow::receive`] made of one transport plaintext.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A `PART` or `WINDOW` record: nothing for the application yet.
    Nothing,
    /// A whole message. Once the application no longer holds it, call
    /// [`Flow::consume`] with `size` (0 in a version 1 session).
    Message {
        /// The message's bytes.
        bytes: Vec<u8>,
        /// The sizes of the records still held for it (`CHAN-34`).
        size: u64,
    },
    /// An `OUTPUT` record (controller only). Once the application no longer holds it,
    /// call [`Flow::consume`] with `size`.
    Output {
        /// The chunk.
        chunk: OutputChunk,
        /// The record's size (`CHAN-34`).
        size: u64,
    },
    /// A message longer than 16 MiB ended; its bytes were discarded and consumed
    /// (`CHAN-33`). Answer it as `TooLarge` (`CMD-2`).
    TooLarge {
        /// Bytes of the message, as far as they were counted.
        len: usize,
    },
}

/// One session's framing, windows, outbox and reassembly. See the module documentation.
#[derive(Debug)]
pub struct Flow {
    framing: Framing,
    /// Bytes this side may still send (`CHAN-34`).
    window: u64,
    outbox: VecDeque<Outgoing>,
    /// The host's end: `OUTPUT` records may only arrive at a controller (`CHAN-32`).
    host: bool,
    /// Bytes of the front message already sent in `PART` records.
    offset: usize,
    queued: usize,
    pushed: u64,
    released: u64,
    grants: VecDeque<u32>,
    /// Initial window plus increments granted, less the size of records consumed.
    credit: u64,
    /// Initial window plus increments granted.
    granted: u64,
    /// Sizes of `MESSAGE` and `PART` records received.
    received: u64,
    /// Most credit this side grants the session (≤ 258048).
    cap: u64,
    reassembly: Vec<u8>,
    /// The message being reassembled passed 16 MiB: its bytes are dropped as they come.
    discarding: Option<usize>,
}

impl Flow {
    /// A host's flow for a new session: `records` when the host offered `channel.flow`
    /// (then [`Framing::Undecided`] until the first transport message), else version 1.
    pub fn host(records: bool) -> Self {
        let mut flow = Self::new(if records {
            Framing::Undecided
        } else {
            Framing::V1
        });
        flow.host = true;
        flow
    }

    /// A controller's flow: records when the host offered `channel.flow` and this
    /// controller takes part. With records, the first transport message is a `WINDOW`
    /// record (`CHAN-31`) that raises the host's window towards `cap`; it is queued here,
    /// so call [`Flow::next_plaintext`] before sending anything else.
    pub fn controller(records: bool, cap: u64, ledger: &mut CreditLedger) -> Self {
        let mut flow = Self::new(if records {
            Framing::Records
        } else {
            Framing::V1
        });
        flow.cap = cap.clamp(INITIAL_WINDOW, MAX_SESSION_CREDIT);
        if records {
            let target = flow.target(ledger);
            let increment = target.saturating_sub(flow.credit).max(MIN_WINDOW_INCREMENT);
            flow.queue_grant(increment, ledger);
        }
        flow
    }

    fn new(framing: Framing) -> Self {
        Self {
            framing,
            window: INITIAL_WINDOW,
            outbox: VecDeque::new(),
            host: false,
            offset: 0,
            queued: 0,
            pushed: 0,
            released: 0,
            grants: VecDeque::new(),
            credit: INITIAL_WINDOW,
            granted: INITIAL_WINDOW,
            received: 0,
            cap: MAX_SESSION_CREDIT,
            reassembly: Vec::new(),
            discarding: None,
        }
    }

    /// Sets the most credit this side grants the session (clamped to 16384 ..= 258048).
    pub fn set_cap(&mut self, cap: u64) {
        self.cap = cap.clamp(INITIAL_WINDOW, MAX_SESSION_CREDIT);
    }

    /// How the session carries messages.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The longest message this session carries: 65519 bytes in version 1, 16 MiB with
    /// records (`CMD-2`, `CHAN-33`).
    pub fn max_message_len(&self) -> usize {
        match self.framing {
            Framing::V1 => MAX_TRANSPORT_PLAINTEXT_LEN,
            Framing::Undecided | Framing::Records => MAX_MESSAGE_LEN,
        }
    }

    /// Bytes this side may still send (`CHAN-34`).
    pub fn window(&self) -> u64 {
        self.window
    }

    /// This side's credit as a receiver (`CHAN-35`).
    pub fn credit(&self) -> u64 {
        self.credit
    }

    /// The initial window plus every increment this side has granted: what its peer may
    /// send in the whole session (`CHAN-34`).
    pub fn granted(&self) -> u64 {
        self.granted
    }

    /// The total size of the `MESSAGE` and `PART` records received (`CHAN-34`).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Message bytes waiting in the outbox.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// How many messages have been pushed.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// How many pushed messages have left whole: message `n` (counting from 1, as
    /// [`Flow::push`] returns) has left when `released() >= n`.
    pub fn released(&self) -> u64 {
        self.released
    }

    /// Queues a message; returns its number (1, 2, …), to compare with
    /// [`Flow::released`].
    ///
    /// # Errors
    /// [`ChannelError::MessageTooLarge`] for a message longer than
    /// [`Flow::max_message_len`] (`CMD-2`, `CHAN-33`); nothing is queued.
    pub fn push(&mut self, message: Vec<u8>) -> Result<u64, ChannelError> {
        if message.len() > self.max_message_len() {
            return Err(ChannelError::MessageTooLarge { len: message.len() });
        }
        self.queued += message.len();
        self.outbox.push_back(Outgoing::Message(message));
        self.pushed += 1;
        Ok(self.pushed)
    }

    /// Queues a chunk of a command's output for `OUTPUT` records (`CMD-76`; a host in a
    /// session with records); returns its number, as [`Flow::push`] does. The chunk may
    /// be of any length: it leaves in as many records as the window and the record size
    /// need, `cap_reached` on the last.
    ///
    /// # Errors
    /// [`ChannelError::Closed`] when the session does not carry records (send a
    /// `command/exec/outputDelta` instead); [`ChannelError::BadRecord`] for a process id
    /// that is not 1..=64 bytes, or no bytes without `cap_reached` (`CHAN-32`).
    pub fn push_output(
        &mut self,
        stderr: bool,
        cap_reached: bool,
        process_id: &str,
        data: Vec<u8>,
    ) -> Result<u64, ChannelError> {
        if self.framing != Framing::Records {
            return Err(ChannelError::Closed);
        }
        if !(1..=MAX_PROCESS_ID_LEN).contains(&process_id.len()) {
            return Err(ChannelError::BadRecord {
                reason: "OUTPUT process id must be 1..=64 bytes",
            });
        }
        // CHAN-32: only the chunk that reaches the cap may be empty.
        if data.is_empty() && !cap_reached {
            return Err(ChannelError::BadRecord {
                reason: "OUTPUT without output bytes",
            });
        }
        self.queued += data.len();
        self.outbox.push_back(Outgoing::Output {
            stderr,
            cap_reached,
            process_id: process_id.to_owned(),
            data,
        });
        self.pushed += 1;
        Ok(self.pushed)
    }

    /// Appends the plaintext of the next transport message to send to `out` and returns
    /// true, or returns false when nothing may go now: `WINDOW` records first, then the
    /// outbox within the window (`CHAN-34`). An undecided host sends nothing (`CHAN-31`).
    pub fn next_plaintext(&mut self, out: &mut Vec<u8>) -> bool {
        if let Some(increment) = self.grants.pop_front() {
            Record::Window(increment).encode(out);
            return true;
        }
        match self.framing {
            Framing::Undecided => false,
            Framing::V1 => match self.outbox.pop_front() {
                Some(Outgoing::Message(message)) => {
                    self.queued -= message.len();
                    self.released += 1;
                    out.extend_from_slice(&message);
                    true
                }
                // push_output refuses a version 1 session.
                Some(Outgoing::Output { data, .. }) => {
                    self.queued -= data.len();
                    self.released += 1;
                    false
                }
                None => false,
            },
            Framing::Records => self.next_record(out),
        }
    }

    fn next_record(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(front) = self.outbox.front() else {
            return false;
        };
        let header = match front {
            Outgoing::Message(_) => 0,
            Outgoing::Output { process_id, .. } => 3 + process_id.len(),
        };
        let rest = front.len() - self.offset;
        // CHAN-34: a record's size is its plaintext (type byte, header, body) plus the tag.
        let room = self.window.saturating_sub(1 + TAG_LEN + header as u64);
        let fits = usize::try_from(room)
            .unwrap_or(usize::MAX)
            .min(MAX_RECORD_BODY - header);
        let last = rest <= fits;
        let take = if last { rest } else { fits };
        if (!last && (take as u64) < MIN_PART_BODY)
            || self.window < 1 + TAG_LEN + (header + take) as u64
        {
            return false;
        }
        let start = self.offset;
        match front {
            Outgoing::Message(message) => {
                let body = message.get(start..start + take).unwrap_or_default();
                if last {
                    Record::Message(body).encode(out);
                } else {
                    Record::Part(body).encode(out);
                }
            }
            Outgoing::Output {
                stderr,
                cap_reached,
                process_id,
                data,
            } => Record::Output(Output {
                stderr: *stderr,
                cap_reached: *cap_reached && last,
                process_id,
                data: data.get(start..start + take).unwrap_or_default(),
            })
            .encode(out),
        }
        self.window -= 1 + TAG_LEN + (header + take) as u64;
        self.queued -= take;
        if last {
            self.offset = 0;
            self.outbox.pop_front();
            self.released += 1;
        } else {
            self.offset += take;
        }
        true
    }

    /// Takes one decrypted transport plaintext. An undecided host decides here
    /// (`CHAN-31`).
    ///
    /// # Errors
    /// [`ChannelError::BadRecord`] (`CHAN-32`), [`ChannelError::WindowExceeded`]
    /// (`CHAN-34`), [`ChannelError::WindowOverflow`] (`CHAN-35`): the session must close
    /// with `FLOW_CONTROL_ERROR`.
    pub fn receive(
        &mut self,
        plaintext: &[u8],
        ledger: &mut CreditLedger,
    ) -> Result<Received, ChannelError> {
        if self.framing == Framing::Undecided {
            // CHAN-31: a 5-byte plaintext starting with 0x02 is the controller's WINDOW.
            self.framing = if plaintext.len() == WINDOW_RECORD_LEN
                && plaintext.first() == Some(&super::records::RECORD_WINDOW)
            {
                Framing::Records
            } else {
                Framing::V1
            };
        }
        if self.framing == Framing::V1 {
            return Ok(Received::Message {
                bytes: plaintext.to_vec(),
                size: 0,
            });
        }
        let record = Record::decode(plaintext)?;
        if let Record::Window(increment) = record {
            // CHAN-35: a conforming receiver never grants past 258048.
            self.window = self.window.saturating_add(u64::from(increment));
            if self.window > MAX_SESSION_CREDIT {
                return Err(ChannelError::WindowOverflow {
                    window: self.window,
                });
            }
            return Ok(Received::Nothing);
        }
        let size = plaintext.len() as u64 + TAG_LEN;
        // CHAN-34
        self.received = self.received.saturating_add(size);
        if self.received > self.granted {
            return Err(ChannelError::WindowExceeded {
                received: self.received,
                granted: self.granted,
            });
        }
        match record {
            // CHAN-32: output travels from the host only.
            Record::Output(_) if self.host => Err(ChannelError::BadRecord {
                reason: "OUTPUT record from a controller",
            }),
            Record::Output(o) => Ok(Received::Output {
                chunk: OutputChunk {
                    stderr: o.stderr,
                    cap_reached: o.cap_reached,
                    process_id: o.process_id.to_owned(),
                    data: o.data.to_vec(),
                },
                size,
            }),
            Record::Part(body) => {
                // CHAN-33: a part moved into the buffer (or dropped) is consumed.
                self.take_part(body);
                self.consume(size, ledger);
                Ok(Received::Nothing)
            }
            Record::Message(body) => {
                let total = self.reassembly.len() + body.len();
                if let Some(len) = self.discarding.take() {
                    self.consume(size, ledger);
                    return Ok(Received::TooLarge {
                        len: len.saturating_add(body.len()),
                    });
                }
                if total > MAX_MESSAGE_LEN {
                    self.reassembly = Vec::new();
                    self.consume(size, ledger);
                    return Ok(Received::TooLarge { len: total });
                }
                let bytes = if self.reassembly.is_empty() {
                    body.to_vec()
                } else {
                    let mut whole = std::mem::take(&mut self.reassembly);
                    whole.extend_from_slice(body);
                    whole
                };
                Ok(Received::Message { bytes, size })
            }
            Record::Window(_) => Ok(Received::Nothing),
        }
    }

    fn take_part(&mut self, body: &[u8]) {
        if let Some(len) = self.discarding.as_mut() {
            *len = len.saturating_add(body.len());
            return;
        }
        let total = self.reassembly.len() + body.len();
        if total > MAX_MESSAGE_LEN {
            self.reassembly = Vec::new();
            self.discarding = Some(total);
        } else {
            self.reassembly.extend_from_slice(body);
        }
    }

    /// The application no longer holds records of `size` bytes (the `size` of a
    /// [`Received::Message`]): their credit can be granted again (`CHAN-36`).
    pub fn consume(&mut self, size: u64, ledger: &mut CreditLedger) {
        let old = self.credit;
        self.credit = self.credit.saturating_sub(size);
        ledger.adjust(old, self.credit);
    }

    /// Queues a `WINDOW` record when one is due: always when the credit is below 8192
    /// (`CHAN-36`), else when at least a quarter of the target credit (and 4096 bytes)
    /// can be granted within this session's cap and the link's pool (`CHAN-35`).
    /// Returns the increment queued.
    pub fn grant(&mut self, ledger: &mut CreditLedger) -> Option<u32> {
        if self.framing != Framing::Records {
            return None;
        }
        let target = self.target(ledger);
        let mut increment = target.saturating_sub(self.credit);
        if self.credit < MIN_CREDIT {
            increment = increment
                .max(MIN_WINDOW_INCREMENT)
                .max(MIN_CREDIT - self.credit);
        } else if increment < MIN_WINDOW_INCREMENT.max(target / 4) {
            return None;
        }
        self.queue_grant(increment, ledger)
    }

    /// The credit this session may reach now: its cap, within the link's pool.
    fn target(&self, ledger: &CreditLedger) -> u64 {
        let own_extra = self.credit.saturating_sub(OWN_SHARE);
        self.cap
            .min(OWN_SHARE + own_extra + ledger.free())
            .max(INITIAL_WINDOW)
    }

    fn queue_grant(&mut self, increment: u64, ledger: &mut CreditLedger) -> Option<u32> {
        let increment = increment.min(MAX_SESSION_CREDIT.saturating_sub(self.credit));
        if increment < MIN_WINDOW_INCREMENT {
            return None;
        }
        let increment = u32::try_from(increment).ok()?;
        let old = self.credit;
        self.credit += u64::from(increment);
        self.granted += u64::from(increment);
        ledger.adjust(old, self.credit);
        self.grants.push_back(increment);
        Some(increment)
    }

    /// The session ended: its credit goes back to the link's pool.
    pub fn close(&mut self, ledger: &mut CreditLedger) {
        ledger.adjust(self.credit, 0);
        self.credit = 0;
        self.outbox.clear();
        self.queued = 0;
        self.grants.clear();
        self.reassembly = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::cast_possible_truncation
    )]
    use super::*;

    fn drain(flow: &mut Flow) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut p = Vec::new();
            if !flow.next_plaintext(&mut p) {
                return out;
            }
            out.push(p);
        }
    }

    /// Moves every plaintext from `a` to `b`, consuming what `b` gets; returns the
    /// messages `b` received.
    fn pump(a: &mut Flow, b: &mut Flow, lb: &mut CreditLedger) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        for p in drain(a) {
            match b.receive(&p, lb).unwrap() {
                Received::Message { bytes, size } => {
                    b.consume(size, lb);
                    got.push(bytes);
                }
                Received::TooLarge { len } => panic!("too large: {len}"),
                Received::Output { .. } | Received::Nothing => {}
            }
        }
        got
    }

    #[test]
    fn chan_31_host_decides_on_the_first_message() {
        let mut l = CreditLedger::for_link(64);
        let mut host = Flow::host(true);
        assert_eq!(host.framing(), Framing::Undecided);
        host.push(b"{}".to_vec()).unwrap();
        assert!(
            drain(&mut host).is_empty(),
            "CHAN-31: nothing before the first"
        );
        host.receive(&Record::Window(4096).to_vec(), &mut l)
            .unwrap();
        assert_eq!(host.framing(), Framing::Records);
        assert_eq!(drain(&mut host), vec![b"\x00{}".to_vec()]);

        let mut v1 = Flow::host(true);
        let got = v1.receive(b"{\"jsonrpc\":\"2.0\"}", &mut l).unwrap();
        assert!(matches!(got, Received::Message { size: 0, .. }));
        assert_eq!(v1.framing(), Framing::V1);
        v1.push(b"{}".to_vec()).unwrap();
        assert_eq!(drain(&mut v1), vec![b"{}".to_vec()]);
    }

    #[test]
    fn chan_34_a_sender_stays_within_its_window() {
        let mut lc = CreditLedger::for_session(131_072);
        let mut lh = CreditLedger::for_link(64);
        let mut ctl = Flow::controller(true, 131_072, &mut lc);
        let mut host = Flow::host(true);
        assert!(pump(&mut ctl, &mut host, &mut lh).is_empty());
        assert_eq!(host.window(), 131_072);
        let big = vec![b'x'; 1_000_000];
        host.push(big.clone()).unwrap();
        let mut sent = 0u64;
        for p in drain(&mut host) {
            sent += p.len() as u64 + 16;
        }
        assert!(sent <= 131_072, "{sent}");
        assert!(sent > 131_072 - 4096 - 17, "{sent}");
        assert_eq!(host.released(), 0);
    }

    #[test]
    fn chan_34_an_empty_message_waits_for_17_bytes_of_window() {
        let mut lc = CreditLedger::for_session(MAX_SESSION_CREDIT);
        let mut ctl = Flow::controller(true, MAX_SESSION_CREDIT, &mut lc);
        assert_eq!(drain(&mut ctl).len(), 1, "the CHAN-31 WINDOW");
        // 16384 - 16370 = 14 bytes of window left: less than the 17 of an empty MESSAGE.
        ctl.push(vec![b' '; 16_353]).unwrap();
        ctl.push(Vec::new()).unwrap();
        assert_eq!(drain(&mut ctl).len(), 1);
        assert_eq!(ctl.window(), 14);
        let mut l = CreditLedger::for_session(MAX_SESSION_CREDIT);
        ctl.receive(&Record::Window(4096).to_vec(), &mut l).unwrap();
        assert_eq!(drain(&mut ctl), vec![vec![0u8]]);
        assert_eq!(ctl.window(), 14 + 4096 - 17);
    }

    #[test]
    fn a_large_message_crosses_in_parts_and_credit_comes_back() {
        let mut lc = CreditLedger::for_session(131_072);
        let mut lh = CreditLedger::for_link(64);
        let mut ctl = Flow::controller(true, 131_072, &mut lc);
        let mut host = Flow::host(true);
        pump(&mut ctl, &mut host, &mut lh);
        let big: Vec<u8> = (0..10_000_000u32).map(|i| (i % 251) as u8).collect();
        let n = host.push(big.clone()).unwrap();
        let mut got = Vec::new();
        for _ in 0..10_000 {
            got.extend(pump(&mut host, &mut ctl, &mut lc));
            ctl.grant(&mut lc);
            pump(&mut ctl, &mut host, &mut lh);
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(got, vec![big]);
        assert_eq!(host.released(), n);
        assert!(ctl.credit() <= 131_072);
    }

    #[test]
    fn cmd_76_output_is_cut_to_the_window_and_cap_reached_rides_the_last_record() {
        let mut lc = CreditLedger::for_session(131_072);
        let mut lh = CreditLedger::for_link(64);
        let mut ctl = Flow::controller(true, 131_072, &mut lc);
        let mut host = Flow::host(true);
        pump(&mut ctl, &mut host, &mut lh);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let n = host.push_output(true, true, "p-1", data.clone()).unwrap();
        let mut got = Vec::new();
        let mut caps = Vec::new();
        for _ in 0..1000 {
            for p in drain(&mut host) {
                match ctl.receive(&p, &mut lc).unwrap() {
                    Received::Output { chunk, size } => {
                        assert!(chunk.stderr);
                        assert_eq!(chunk.process_id, "p-1");
                        assert!(p.len() <= MAX_TRANSPORT_PLAINTEXT_LEN);
                        got.extend_from_slice(&chunk.data);
                        caps.push(chunk.cap_reached);
                        ctl.consume(size, &mut lc);
                    }
                    other => panic!("{other:?}"),
                }
            }
            ctl.grant(&mut lc);
            pump(&mut ctl, &mut host, &mut lh);
            if host.released() == n {
                break;
            }
        }
        assert_eq!(got, data);
        assert!(caps.len() > 4, "{}", caps.len());
        assert_eq!(caps.iter().filter(|c| **c).count(), 1);
        assert_eq!(caps.last(), Some(&true));
        // CHAN-32: a host refuses OUTPUT from its controller.
        let mut out = Vec::new();
        Record::Output(Output {
            stderr: false,
            cap_reached: false,
            process_id: "p",
            data: b"x",
        })
        .encode(&mut out);
        assert_eq!(
            host.receive(&out, &mut lh).unwrap_err().requirement(),
            "CHAN-32"
        );
        // Version 1 sessions have no OUTPUT records.
        let mut v1 = Flow::host(false);
        assert!(v1.push_output(false, false, "p", vec![1]).is_err());
    }

    #[test]
    fn chan_34_records_beyond_the_window_are_refused() {
        let mut l = CreditLedger::for_link(64);
        let mut host = Flow::host(true);
        host.receive(&Record::Window(4096).to_vec(), &mut l)
            .unwrap();
        let body = vec![b' '; 8000];
        host.receive(&Record::Part(&body).to_vec(), &mut l).unwrap();
        host.receive(&Record::Part(&body).to_vec(), &mut l).unwrap();
        let e = host
            .receive(&Record::Part(&body).to_vec(), &mut l)
            .unwrap_err();
        assert_eq!(e.requirement(), "CHAN-34");
    }

    #[test]
    fn chan_35_a_window_past_258048_is_refused() {
        let mut l = CreditLedger::for_link(64);
        let mut host = Flow::host(true);
        host.receive(&Record::Window(200_000).to_vec(), &mut l)
            .unwrap();
        let e = host
            .receive(&Record::Window(60_000).to_vec(), &mut l)
            .unwrap_err();
        assert_eq!(e.requirement(), "CHAN-35");
    }

    #[test]
    fn chan_36_credit_is_restored_and_the_link_pool_is_shared() {
        let mut l = CreditLedger::for_link(64);
        let mut flows: Vec<Flow> = (0..64).map(|_| Flow::host(true)).collect();
        for f in &mut flows {
            f.receive(&Record::Window(4096).to_vec(), &mut l).unwrap();
            f.grant(&mut l);
        }
        let total: u64 = flows.iter().map(Flow::credit).sum();
        assert!(total <= MAX_LINK_CREDIT, "{total}");
        // Every session consumes 15000 bytes: each must restore at least 8192.
        let body = vec![b' '; 15_000 - 17];
        for f in &mut flows {
            if let Received::Message { size, .. } =
                f.receive(&Record::Message(&body).to_vec(), &mut l).unwrap()
            {
                f.consume(size, &mut l);
            }
            f.grant(&mut l);
            assert!(f.credit() >= MIN_CREDIT);
        }
        let total: u64 = flows.iter().map(Flow::credit).sum();
        assert!(total <= MAX_LINK_CREDIT, "{total}");
        for f in &mut flows {
            f.close(&mut l);
        }
        assert_eq!(l.in_use(), 0);
    }

    #[test]
    fn chan_35_sixteen_controller_sessions_share_2_mib() {
        let mut l = CreditLedger::for_link(16);
        let mut flows: Vec<Flow> = (0..16)
            .map(|_| Flow::controller(true, MAX_SESSION_CREDIT, &mut l))
            .collect();
        let first = flows[0].credit();
        assert_eq!(first, MAX_SESSION_CREDIT, "a lone session gets the most");
        let total: u64 = flows.iter().map(Flow::credit).sum();
        assert!(total <= MAX_LINK_CREDIT, "{total}");
        assert!(flows.iter().all(|f| f.credit() >= INITIAL_WINDOW));
        // When the first ends, its credit is there for the others.
        flows[0].close(&mut l);
        assert!(l.free() >= MAX_SESSION_CREDIT - OWN_SHARE);
    }

    #[test]
    fn chan_33_over_16_mib_is_discarded_and_the_session_goes_on() {
        let mut lh = CreditLedger::for_link(64);
        let mut host = Flow::host(true);
        host.receive(&Record::Window(4096).to_vec(), &mut lh)
            .unwrap();
        host.grant(&mut lh);
        let mut total = 0usize;
        let mut too_large = None;
        // A sender that stays within the host's grants (CHAN-34), PART after PART.
        for _ in 0..100_000 {
            let avail = usize::try_from(host.granted - host.received).unwrap();
            let record = if total > MAX_MESSAGE_LEN {
                Record::Message(b"x").to_vec()
            } else {
                let len = avail.saturating_sub(17).min(MAX_RECORD_BODY);
                Record::Part(&vec![b'a'; len]).to_vec()
            };
            total += record.len() - 1;
            match host.receive(&record, &mut lh).unwrap() {
                Received::TooLarge { len } => {
                    too_large = Some(len);
                    break;
                }
                Received::Message { .. } | Received::Output { .. } => panic!("delivered"),
                Received::Nothing => {}
            }
            assert!(host.reassembly.len() <= MAX_MESSAGE_LEN);
            host.grant(&mut lh);
            drain(&mut host);
        }
        assert_eq!(too_large, Some(total));
        host.grant(&mut lh);
        drain(&mut host);
        let got = host.receive(&Record::Message(b"{}").to_vec(), &mut lh);
        assert!(matches!(got, Ok(Received::Message { .. })), "{got:?}");
    }
}
