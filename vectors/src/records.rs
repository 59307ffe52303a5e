//! `records.json`: records and flow control (`spec/04-secure-channel.md` section 4.13,
//! `CHAN-31` … `CHAN-36`).
//!
//! Five sections, numbered by one run of `tcId`s:
//!
//! - `records`: record plaintexts with their decoded form and size (`CHAN-32`, `CHAN-34`),
//!   `OUTPUT` records (`CMD-76`) among them;
//! - `invalid`: plaintexts a receiver refuses with `BadRecord` (`CHAN-32`), host and
//!   controller alike;
//! - `segmentation` and `accounting`: one side of one session driven event by event —
//!   messages and output queued, records sent, records received, messages and output
//!   consumed, `WINDOW`s granted — with what the side sends, what it makes of what it
//!   receives, and its window and credit after every event (`CHAN-31`, `CHAN-32`,
//!   `CHAN-34` … `CHAN-36`);
//! - `reassembly`: messages put together from records, up to and past 16 MiB (`CHAN-33`).
//!
//! The generator runs every case through [`tether_proto::channel::Record`] and
//! [`tether_proto::channel::Flow`]. The checker reads the inputs of every case back from
//! the file (plaintexts, events, record lengths), runs them through the same types again,
//! and requires every recorded output — decoded fields, sizes, records sent, windows,
//! credits, grants, messages, and each error's `name()` and `requirement()` — to come out
//! again.

use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tether_proto::channel::{
    ChannelError, CreditLedger, Flow, Framing, Output, Received, Record, records::RECORD_MESSAGE,
    records::RECORD_OUTPUT, records::RECORD_PART, records::RECORD_WINDOW,
};
use tether_proto::cmd::CommandError;

use crate::format::{VectorFile, field, to_json};

/// The vector files this module generates and checks.
pub const FILES: &[VectorFile] = &[VectorFile {
    name: "records.json",
    generate,
    check,
}];

/// AEAD tag: a record's size is its plaintext plus this (`CHAN-34`).
const TAG_LEN: usize = 16;
/// Plaintexts and messages up to this length are written out in hex.
const SHORT: usize = 64;
/// The largest body of one record: 65519 - 1 (`CHAN-16`).
const MAX_BODY: usize = 65_518;
/// The largest plaintext of one record (`CHAN-16`).
const MAX_PLAINTEXT: usize = MAX_BODY + 1;
/// 16 MiB (`CHAN-33`).
const MAX_MESSAGE: usize = 16_777_216;
const MAX_SESSION_CREDIT: u64 = 258_048;

/// The requirements of section 4.13, which every case names one of.
const REQUIREMENTS: [&str; 6] = [
    "CHAN-31", "CHAN-32", "CHAN-33", "CHAN-34", "CHAN-35", "CHAN-36",
];

const SECTIONS: [&str; 5] = [
    "records",
    "invalid",
    "segmentation",
    "accounting",
    "reassembly",
];

/// `len` bytes of the pattern every long message and record body is made of: the byte at
/// offset `i` of a message is `i mod 251`.
fn pattern(offset: usize, len: usize) -> Vec<u8> {
    #[allow(clippy::cast_possible_truncation)] // i < 251
    let cycle: Vec<u8> = (0..251usize).map(|i| i as u8).collect();
    let mut out = Vec::with_capacity(len);
    let mut at = offset % 251;
    while out.len() < len {
        let take = (len - out.len()).min(251 - at);
        out.extend_from_slice(cycle.get(at..at + take).unwrap_or_default());
        at = 0;
    }
    out
}

/// A message as the file writes it: its length, and its bytes in hex when short, else
/// their SHA-256.
fn describe(bytes: &[u8]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("length".into(), json!(bytes.len()));
    if bytes.len() <= SHORT {
        m.insert("hex".into(), json!(hex::encode(bytes)));
    } else {
        m.insert("sha256".into(), json!(hex::encode(Sha256::digest(bytes))));
    }
    m
}

/// The bytes [`describe`] wrote: its hex, or the pattern of its length when its SHA-256
/// matches.
fn described_bytes(v: &Value) -> Result<Vec<u8>, String> {
    let len = usize_field(v, "length")?;
    let bytes = match v.get("hex") {
        Some(_) => hex_field(v, "hex")?,
        None => pattern(0, len),
    };
    if Value::Object(describe(&bytes)) != *v {
        return Err(format!("{v} does not describe {} bytes", bytes.len()));
    }
    Ok(bytes)
}

fn channel_error(e: &ChannelError) -> Value {
    json!({
        "name": e.name(),
        "requirement": e.requirement(),
        "closeCode": e.close_code().name(),
    })
}

fn command_error(e: &CommandError) -> Value {
    json!({ "name": e.name(), "requirement": e.requirement() })
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    field(v, key)?
        .as_str()
        .ok_or_else(|| format!("{key} is not a string"))
}

fn u64_field(v: &Value, key: &str) -> Result<u64, String> {
    field(v, key)?
        .as_u64()
        .ok_or_else(|| format!("{key} is not a number"))
}

fn usize_field(v: &Value, key: &str) -> Result<usize, String> {
    usize::try_from(u64_field(v, key)?).map_err(|e| format!("{key}: {e}"))
}

fn hex_field(v: &Value, key: &str) -> Result<Vec<u8>, String> {
    hex::decode(str_field(v, key)?).map_err(|e| format!("{key}: {e}"))
}

fn bool_field(v: &Value, key: &str) -> Result<bool, String> {
    field(v, key)?
        .as_bool()
        .ok_or_else(|| format!("{key} is not a boolean"))
}

fn type_byte(name: &str) -> Result<u8, String> {
    match name {
        "MESSAGE" => Ok(RECORD_MESSAGE),
        "PART" => Ok(RECORD_PART),
        "WINDOW" => Ok(RECORD_WINDOW),
        other => Err(format!("record type {other:?}")),
    }
}

fn stream_name(stderr: bool) -> &'static str {
    if stderr { "stderr" } else { "stdout" }
}

fn stream_field(v: &Value) -> Result<bool, String> {
    match str_field(v, "stream")? {
        "stdout" => Ok(false),
        "stderr" => Ok(true),
        other => Err(format!("stream {other:?}")),
    }
}

/// The plaintext of an `OUTPUT` record given by its fields (`stream`, `capReached`,
/// `processId`) and its data.
fn output_plaintext(v: &Value, data: &[u8]) -> Result<Vec<u8>, String> {
    Ok(Record::Output(Output {
        stderr: stream_field(v)?,
        cap_reached: bool_field(v, "capReached")?,
        process_id: str_field(v, "processId")?,
        data,
    })
    .to_vec())
}

// ---------------------------------------------------------------------------------------
// records and invalid

/// The decoded form of a record, as the file writes it.
fn decoded(r: &Record<'_>) -> Value {
    match r {
        Record::Message(body) => json!({ "type": "MESSAGE", "body": hex::encode(body) }),
        Record::Part(body) => json!({ "type": "PART", "body": hex::encode(body) }),
        Record::Window(increment) => json!({ "type": "WINDOW", "increment": increment }),
        Record::Output(o) => json!({
            "type": "OUTPUT",
            "stream": stream_name(o.stderr),
            "capReached": o.cap_reached,
            "processId": o.process_id,
            "data": describe(o.data),
        }),
    }
}

/// A valid record case, run through the reference: the plaintext, its decoded form and
/// (for `MESSAGE`, `PART` and `OUTPUT`) its size. An `OUTPUT` record with more than 64
/// bytes of data, which must be bytes 0 .. n of the pattern, is written as its head (the
/// type byte and the header) and the length of its data.
fn record_case(plaintext: &[u8]) -> Result<Value, String> {
    let r = Record::decode(plaintext).map_err(|e| format!("{e}"))?;
    let mut v = Map::new();
    match r {
        Record::Output(o) if o.data.len() > SHORT => {
            if o.data != pattern(0, o.data.len()) {
                return Err("long OUTPUT data must be the pattern".into());
            }
            let head = plaintext
                .get(..1 + o.header_len())
                .ok_or("OUTPUT shorter than its header")?;
            v.insert("plaintextHead".into(), json!(hex::encode(head)));
            v.insert("dataLength".into(), json!(o.data.len()));
        }
        _ => {
            v.insert("plaintext".into(), json!(hex::encode(plaintext)));
        }
    }
    v.insert("decoded".into(), decoded(&r));
    if !matches!(r, Record::Window(_)) {
        v.insert("size".into(), json!(plaintext.len() + TAG_LEN));
    }
    Ok(Value::Object(v))
}

/// The plaintext of a `records` case: `plaintext`, or `plaintextHead` and `dataLength`.
fn record_plaintext(case: &Value) -> Result<Vec<u8>, String> {
    match (case.get("plaintext"), case.get("plaintextHead")) {
        (Some(_), None) => hex_field(case, "plaintext"),
        (None, Some(_)) => {
            let mut p = hex_field(case, "plaintextHead")?;
            p.extend(pattern(0, usize_field(case, "dataLength")?));
            Ok(p)
        }
        _ => Err("a record is given by plaintext or by plaintextHead and dataLength".into()),
    }
}

/// A records-framed receiver: a host that has taken a `WINDOW` as the controller's first
/// message (`CHAN-31`).
fn records_receiver() -> Result<(Flow, CreditLedger), String> {
    let mut ledger = CreditLedger::for_session(MAX_SESSION_CREDIT);
    let mut flow = Flow::host(true);
    flow.receive(&Record::Window(4096).to_vec(), &mut ledger)
        .map_err(|e| e.to_string())?;
    Ok((flow, ledger))
}

/// An invalid record case, run through the reference: the error of `Record::decode`,
/// which a records-framed receiver, host or controller, must report too.
fn invalid_case(plaintext: &[u8]) -> Result<Value, String> {
    let e = match Record::decode(plaintext) {
        Ok(r) => return Err(format!("{} decodes as {r:?}", hex::encode(plaintext))),
        Err(e) => e,
    };
    let (mut host, mut ledger) = records_receiver()?;
    let mut controller = Flow::controller(true, MAX_SESSION_CREDIT, &mut ledger);
    for (role, flow) in [("host", &mut host), ("controller", &mut controller)] {
        match flow.receive(plaintext, &mut ledger) {
            Err(got) if got == e => {}
            got => {
                return Err(format!(
                    "a {role} with records made {got:?} of it, not {e:?}"
                ));
            }
        }
    }
    Ok(json!({ "plaintext": hex::encode(plaintext), "error": channel_error(&e) }))
}

fn check_record(case: &Value) -> Result<(), String> {
    let plaintext = record_plaintext(case)?;
    let again = record_case(&plaintext)?;
    for key in [
        "plaintext",
        "plaintextHead",
        "dataLength",
        "decoded",
        "size",
    ] {
        if case.get(key) != again.get(key) {
            return Err(format!("{key} differs from the reference's"));
        }
    }
    // The encoder, given the decoded fields, gives the plaintext back.
    let d = field(case, "decoded")?;
    let body = || hex_field(d, "body");
    let bytes = match str_field(d, "type")? {
        "MESSAGE" => Record::Message(&body()?).to_vec(),
        "PART" => Record::Part(&body()?).to_vec(),
        "WINDOW" => {
            Record::Window(u32::try_from(u64_field(d, "increment")?).map_err(|e| e.to_string())?)
                .to_vec()
        }
        "OUTPUT" => output_plaintext(d, &described_bytes(field(d, "data")?)?)?,
        other => return Err(format!("type {other:?}")),
    };
    if bytes != plaintext {
        return Err("encoding the decoded fields does not give the plaintext".into());
    }
    Ok(())
}

fn check_invalid(case: &Value) -> Result<(), String> {
    let again = invalid_case(&hex_field(case, "plaintext")?)?;
    if case.get("error") != again.get("error") {
        return Err(format!(
            "error {} differs from the reference's {}",
            case.get("error").unwrap_or(&Value::Null),
            again.get("error").unwrap_or(&Value::Null)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// segmentation and accounting: one side of one session, event by event

/// One side of one session, driven by the events of a case.
struct Side {
    flow: Flow,
    ledger: CreditLedger,
    /// A controller's `CHAN-31` `WINDOW` is queued when it starts; its first event
    /// sends it.
    first_grant: bool,
    /// Bytes of the message being received so far (where the next pattern body starts).
    offset: usize,
    closed: bool,
}

fn framing_name(f: Framing) -> &'static str {
    match f {
        Framing::Undecided => "undecided",
        Framing::V1 => "v1",
        Framing::Records => "records",
    }
}

fn message_bytes(m: &Value) -> Result<Vec<u8>, String> {
    match (m.get("hex"), m.get("length")) {
        (Some(_), None) => hex_field(m, "hex"),
        (None, Some(_)) => Ok(pattern(0, usize_field(m, "length")?)),
        _ => Err("a message is given by hex or by length".into()),
    }
}

impl Side {
    fn new(role: &str, target: u64) -> Result<Self, String> {
        let mut ledger = CreditLedger::for_session(target);
        let (flow, first_grant) = match role {
            "host" => {
                let mut flow = Flow::host(true);
                flow.set_cap(target);
                (flow, false)
            }
            "controller" => (Flow::controller(true, target, &mut ledger), true),
            other => return Err(format!("role {other:?}")),
        };
        Ok(Self {
            flow,
            ledger,
            first_grant,
            offset: 0,
            closed: false,
        })
    }

    fn state(&self) -> Value {
        let framing = self.flow.framing();
        let mut s = Map::new();
        s.insert("framing".into(), json!(framing_name(framing)));
        s.insert("queued".into(), json!(self.flow.queued_bytes()));
        if framing == Framing::Records {
            s.insert("window".into(), json!(self.flow.window()));
            s.insert("credit".into(), json!(self.flow.credit()));
            s.insert("granted".into(), json!(self.flow.granted()));
            s.insert("received".into(), json!(self.flow.received()));
        }
        Value::Object(s)
    }

    /// The plaintext the next `next_plaintext` gives, if any.
    fn next(&mut self) -> Option<Vec<u8>> {
        let mut p = Vec::new();
        self.flow.next_plaintext(&mut p).then_some(p)
    }

    /// Runs one event (its input members only) and returns it with its outputs.
    fn run(&mut self, input: &Value) -> Result<Value, String> {
        if self.closed {
            return Err("an event after the session closed".into());
        }
        let kind = str_field(input, "event")?;
        if self.first_grant && kind != "grant" {
            return Err("a controller's first event is its CHAN-31 grant".into());
        }
        let mut out = input
            .as_object()
            .cloned()
            .ok_or("an event is not an object")?;
        match kind {
            "queue" => {
                let m = message_bytes(field(input, "message")?)?;
                self.flow.push(m).map_err(|e| e.to_string())?;
            }
            "output" => {
                let data = message_bytes(field(input, "data")?)?;
                self.flow
                    .push_output(
                        stream_field(input)?,
                        bool_field(input, "capReached")?,
                        str_field(input, "processId")?,
                        data,
                    )
                    .map_err(|e| e.to_string())?;
            }
            "send" => {
                let framing = self.flow.framing();
                let mut sent = Vec::new();
                while let Some(p) = self.next() {
                    let mut entry = Map::new();
                    if framing == Framing::Records {
                        let (ty, body) = match Record::decode(&p).map_err(|e| e.to_string())? {
                            Record::Message(b) => ("MESSAGE", b.len()),
                            Record::Part(b) => ("PART", b.len()),
                            Record::Window(_) => {
                                return Err("a WINDOW went out in a send event".into());
                            }
                            Record::Output(o) => {
                                entry.insert("stream".into(), json!(stream_name(o.stderr)));
                                entry.insert("capReached".into(), json!(o.cap_reached));
                                entry.insert("processId".into(), json!(o.process_id));
                                entry.insert("dataLength".into(), json!(o.data.len()));
                                ("OUTPUT", o.header_len() + o.data.len())
                            }
                        };
                        entry.insert("type".into(), json!(ty));
                        entry.insert("bodyLength".into(), json!(body));
                        entry.insert("size".into(), json!(p.len() + TAG_LEN));
                        entry.insert("window".into(), json!(self.flow.window()));
                    } else {
                        entry.insert("length".into(), json!(p.len()));
                    }
                    if p.len() <= SHORT {
                        entry.insert("plaintext".into(), json!(hex::encode(&p)));
                    }
                    sent.push(Value::Object(entry));
                }
                let key = if framing == Framing::V1 {
                    "messages"
                } else {
                    "records"
                };
                out.insert(key.into(), json!(sent));
            }
            "receive" => {
                let plaintext = match (input.get("plaintext"), input.get("type")) {
                    (Some(_), None) => hex_field(input, "plaintext")?,
                    (None, Some(t)) if t == "OUTPUT" => {
                        output_plaintext(input, &pattern(0, usize_field(input, "dataLength")?))?
                    }
                    (None, Some(_)) => {
                        let mut p = vec![type_byte(str_field(input, "type")?)?];
                        p.extend(pattern(self.offset, usize_field(input, "bodyLength")?));
                        p
                    }
                    _ => return Err("a receive gives plaintext or type and bodyLength".into()),
                };
                match self.flow.receive(&plaintext, &mut self.ledger) {
                    Err(e) => {
                        out.insert("error".into(), channel_error(&e));
                        self.closed = true;
                    }
                    Ok(got) => {
                        if self.flow.framing() == Framing::Records {
                            match plaintext.first() {
                                Some(&RECORD_PART) => self.offset += plaintext.len() - 1,
                                Some(&RECORD_MESSAGE) => self.offset = 0,
                                _ => {}
                            }
                        }
                        out.insert("got".into(), got_value(got));
                    }
                }
            }
            "consume" => self
                .flow
                .consume(u64_field(input, "size")?, &mut self.ledger),
            "grant" => {
                let first = std::mem::take(&mut self.first_grant);
                let increment = if first {
                    None
                } else {
                    self.flow.grant(&mut self.ledger)
                };
                // A grant queues its WINDOW ahead of everything else.
                let sent = if first || increment.is_some() {
                    self.next()
                } else {
                    None
                };
                match sent {
                    Some(p) => {
                        let Ok(Record::Window(sent)) = Record::decode(&p) else {
                            return Err("a grant sent something other than a WINDOW".into());
                        };
                        if increment.is_some_and(|i| i != sent) {
                            return Err("the WINDOW sent is not the increment granted".into());
                        }
                        out.insert("increment".into(), json!(sent));
                        out.insert("record".into(), json!(hex::encode(&p)));
                    }
                    None if increment.is_none() => {
                        out.insert("increment".into(), Value::Null);
                    }
                    None => return Err("a grant sent no WINDOW".into()),
                }
            }
            other => return Err(format!("event {other:?}")),
        }
        out.insert("state".into(), self.state());
        Ok(Value::Object(out))
    }
}

fn got_value(got: Received) -> Value {
    match got {
        Received::Nothing => json!({ "kind": "nothing" }),
        Received::Message { bytes, size } => {
            let mut m = describe(&bytes);
            m.insert("kind".into(), json!("message"));
            m.insert("size".into(), json!(size));
            Value::Object(m)
        }
        Received::Output { chunk, size } => json!({
            "kind": "output",
            "stream": stream_name(chunk.stderr),
            "capReached": chunk.cap_reached,
            "processId": chunk.process_id,
            "data": describe(&chunk.data),
            "size": size,
        }),
        Received::TooLarge { len } => json!({
            "kind": "tooLarge",
            "length": len,
            "error": command_error(&CommandError::TooLarge { len }),
        }),
    }
}

/// The input members of an event, as a case is written before it is run.
fn input_of(event: &Value) -> Result<Value, String> {
    let keys: &[&str] = match str_field(event, "event")? {
        "queue" => &["message"],
        "output" => &["stream", "capReached", "processId", "data"],
        "receive" => &[
            "plaintext",
            "type",
            "bodyLength",
            "stream",
            "capReached",
            "processId",
            "dataLength",
        ],
        "consume" => &["size"],
        _ => &[],
    };
    let mut m = Map::new();
    for key in ["event", "comment"].iter().chain(keys) {
        if let Some(v) = event.get(*key) {
            m.insert((*key).into(), v.clone());
        }
    }
    Ok(Value::Object(m))
}

/// Runs a sequence case's events from its inputs; returns the events with their outputs.
fn run_events(role: &str, target: u64, inputs: &[Value]) -> Result<Vec<Value>, String> {
    let mut side = Side::new(role, target)?;
    inputs
        .iter()
        .enumerate()
        .map(|(i, e)| side.run(e).map_err(|err| format!("event {}: {err}", i + 1)))
        .collect()
}

fn sequence_case(role: &str, target: u64, inputs: &[Value]) -> Result<Value, String> {
    let events = run_events(role, target, inputs)?;
    let failed = events.last().is_some_and(|e| e.get("error").is_some());
    Ok(json!({
        "role": role,
        "target": target,
        "result": if failed { "invalid" } else { "valid" },
        "events": events,
    }))
}

fn check_sequence(case: &Value) -> Result<(), String> {
    let events = field(case, "events")?
        .as_array()
        .ok_or("events is not an array")?;
    let inputs = events.iter().map(input_of).collect::<Result<Vec<_>, _>>()?;
    let again = sequence_case(
        str_field(case, "role")?,
        u64_field(case, "target")?,
        &inputs,
    )?;
    let again_events = again
        .get("events")
        .and_then(Value::as_array)
        .ok_or("no events")?;
    for (i, (a, b)) in events.iter().zip(again_events).enumerate() {
        if a != b {
            return Err(format!(
                "event {}: the file has {a}, the reference gives {b}",
                i + 1
            ));
        }
    }
    if case.get("result") != again.get("result") {
        return Err("result differs (invalid exactly when the last event fails)".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// reassembly

/// Runs a reassembly case: a receiver with records and a target of 258048, which grants
/// (and so keeps its sender within its window) before every record and consumes every
/// message at once; returns what it hands up, in order.
fn run_reassembly(records: &[Value]) -> Result<Vec<Value>, String> {
    let (mut flow, mut ledger) = records_receiver()?;
    let mut offset = 0usize;
    let mut results = Vec::new();
    for r in records {
        let (head, count): (Vec<u8>, u64) = match r.get("plaintext") {
            Some(_) => (hex_field(r, "plaintext")?, 1),
            None => (
                vec![type_byte(str_field(r, "type")?)?],
                r.get("count").map_or(Ok(1), |_| u64_field(r, "count"))?,
            ),
        };
        for _ in 0..count {
            let mut p = head.clone();
            if r.get("plaintext").is_none() {
                p.extend(pattern(offset, usize_field(r, "bodyLength")?));
            }
            flow.grant(&mut ledger);
            while flow.next_plaintext(&mut Vec::new()) {}
            let got = flow
                .receive(&p, &mut ledger)
                .map_err(|e| format!("{e} ({})", e.requirement()))?;
            match p.first() {
                Some(&RECORD_PART) => offset += p.len() - 1,
                Some(&RECORD_MESSAGE) => offset = 0,
                _ => {}
            }
            match got {
                Received::Nothing => {}
                Received::Message { size, .. } => {
                    flow.consume(size, &mut ledger);
                    results.push(got_value(got));
                }
                other => results.push(got_value(other)),
            }
        }
    }
    Ok(results)
}

fn check_reassembly(case: &Value) -> Result<(), String> {
    let records = field(case, "records")?
        .as_array()
        .ok_or("records is not an array")?;
    let again = run_reassembly(records)?;
    if field(case, "results")? != &json!(again) {
        return Err(format!(
            "results differ: the reference hands up {}",
            json!(again)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// the cases

fn queue_len(n: usize) -> Value {
    json!({ "event": "queue", "message": { "length": n } })
}

fn queue_hex(b: &[u8]) -> Value {
    json!({ "event": "queue", "message": { "hex": hex::encode(b) } })
}

fn send() -> Value {
    json!({ "event": "send" })
}

fn recv(p: &[u8]) -> Value {
    json!({ "event": "receive", "plaintext": hex::encode(p) })
}

fn recv_window(increment: u32) -> Value {
    recv(&Record::Window(increment).to_vec())
}

fn recv_body(ty: &str, n: usize) -> Value {
    json!({ "event": "receive", "type": ty, "bodyLength": n })
}

fn consume(size: usize) -> Value {
    json!({ "event": "consume", "size": size })
}

fn grant() -> Value {
    json!({ "event": "grant" })
}

/// The plaintext of an `OUTPUT` record.
fn output(stderr: bool, cap_reached: bool, process_id: &str, data: &[u8]) -> Vec<u8> {
    Record::Output(Output {
        stderr,
        cap_reached,
        process_id,
        data,
    })
    .to_vec()
}

/// The host queues a chunk of output (`CMD-76`), its data by length (the pattern).
fn output_len(stderr: bool, cap_reached: bool, process_id: &str, n: usize) -> Value {
    json!({
        "event": "output",
        "stream": stream_name(stderr),
        "capReached": cap_reached,
        "processId": process_id,
        "data": { "length": n },
    })
}

/// The host queues a chunk of output, its data in hex.
fn output_hex(stderr: bool, cap_reached: bool, process_id: &str, data: &[u8]) -> Value {
    json!({
        "event": "output",
        "stream": stream_name(stderr),
        "capReached": cap_reached,
        "processId": process_id,
        "data": { "hex": hex::encode(data) },
    })
}

/// An `OUTPUT` record arrives, its data bytes 0 .. n of the pattern.
fn recv_output(stderr: bool, cap_reached: bool, process_id: &str, n: usize) -> Value {
    json!({
        "event": "receive",
        "type": "OUTPUT",
        "stream": stream_name(stderr),
        "capReached": cap_reached,
        "processId": process_id,
        "dataLength": n,
    })
}

/// `event` with a comment.
fn note(mut event: Value, comment: &str) -> Value {
    if let Some(e) = event.as_object_mut() {
        e.insert("comment".into(), json!(comment));
    }
    event
}

const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"initialized"}"#;
const INITIALIZE: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
const RESULT: &[u8] = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
/// The longest process id (`CMD-34`): 64 bytes.
const ID64: &str = "exec-0123456789abcdef0123456789abcdef0123456789abcdef0123456789a";

struct Builder {
    sections: Vec<(&'static str, Vec<Value>)>,
    next_id: usize,
}

impl Builder {
    fn push(&mut self, section: &'static str, comment: &str, requirement: &str, body: Value) {
        let mut case = Map::new();
        case.insert("tcId".into(), json!(self.next_id));
        case.insert("comment".into(), json!(comment));
        case.insert("requirement".into(), json!(requirement));
        if let Value::Object(b) = body {
            case.extend(b);
        }
        if !case.contains_key("result") {
            let result = if case.contains_key("error") {
                "invalid"
            } else {
                "valid"
            };
            case.insert("result".into(), json!(result));
        }
        let case = Value::Object(case);
        self.next_id += 1;
        match self.sections.iter_mut().find(|(name, _)| *name == section) {
            Some((_, cases)) => cases.push(case),
            None => self.sections.push((section, vec![case])),
        }
    }

    fn record(&mut self, comment: &str, plaintext: &[u8]) -> Result<(), String> {
        let body = record_case(plaintext)?;
        self.push("records", comment, "CHAN-32", body);
        Ok(())
    }

    fn invalid(&mut self, comment: &str, plaintext: &[u8]) -> Result<(), String> {
        let body = invalid_case(plaintext)?;
        self.push("invalid", comment, "CHAN-32", body);
        Ok(())
    }

    fn sequence(
        &mut self,
        section: &'static str,
        comment: &str,
        requirement: &str,
        (role, target): (&str, u64),
        inputs: &[Value],
    ) -> Result<(), String> {
        let body = sequence_case(role, target, inputs).map_err(|e| format!("{comment}: {e}"))?;
        self.push(section, comment, requirement, body);
        Ok(())
    }

    fn reassembly(&mut self, comment: &str, records: Vec<Value>) -> Result<(), String> {
        let results = run_reassembly(&records).map_err(|e| format!("{comment}: {e}"))?;
        self.push(
            "reassembly",
            comment,
            "CHAN-33",
            json!({ "records": records, "results": results }),
        );
        Ok(())
    }
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn records_section(b: &mut Builder) -> Result<(), String> {
    b.record(
        "MESSAGE carrying a whole command-protocol message",
        &cat(&[&[0x00], INITIALIZED]),
    )?;
    b.record(
        "MESSAGE with an empty body: the smallest record, size 17 (CHAN-34)",
        &[0x00],
    )?;
    b.record(
        "MESSAGE whose body is 5 bytes starting with 0x02: the type byte decides, not the body",
        &[0x00, 0x02, 0x00, 0x00, 0x10, 0x00],
    )?;
    b.record(
        "PART with a 1-byte body: the smallest PART, size 18",
        &[0x01, b'{'],
    )?;
    b.record(
        "PART carrying the first bytes of a message",
        &cat(&[&[0x01], br#"{"jsonrpc":"2.0","#]),
    )?;
    b.record(
        "WINDOW with the smallest increment, 4096",
        &[0x02, 0x00, 0x00, 0x10, 0x00],
    )?;
    b.record(
        "WINDOW with increment 65536",
        &[0x02, 0x00, 0x01, 0x00, 0x00],
    )?;
    b.record(
        "WINDOW with increment 241664: a first WINDOW that raises the initial 16384 to 258048",
        &[0x02, 0x00, 0x03, 0xb0, 0x00],
    )?;
    b.record(
        "WINDOW with the largest increment, 258048",
        &[0x02, 0x00, 0x03, 0xf0, 0x00],
    )?;
    b.record(
        "OUTPUT: 6 bytes of stdout from process p-1 (CMD-76)",
        &output(false, false, "p-1", b"hello\n"),
    )?;
    b.record(
        "OUTPUT on stderr: stream 0x01",
        &output(true, false, "p-1", b"warning: low disk\n"),
    )?;
    b.record(
        "OUTPUT with capReached and data: the chunk that reaches the cap (CMD-41)",
        &output(false, true, "p-1", b"last bytes"),
    )?;
    b.record(
        "OUTPUT on stderr with capReached and no data: the cap fell on a chunk boundary; \
         size 21 with a 1-byte process id",
        &output(true, true, "7", b""),
    )?;
    b.record(
        "OUTPUT with a 1-byte process id and 1 byte of data: the smallest OUTPUT with data, \
         size 22",
        &output(false, false, "7", b"x"),
    )?;
    b.record(
        "OUTPUT with a 64-byte process id, the longest (CMD-34)",
        &output(false, false, ID64, b"ok\n"),
    )?;
    b.record(
        "OUTPUT whose process id is non-ASCII UTF-8: N counts bytes (7 for \"\u{e9}t\u{e9}-1\")",
        &output(false, false, "\u{e9}t\u{e9}-1", b"done\n"),
    )?;
    b.record(
        "OUTPUT whose data are the bytes of a JSON-RPC message: binary, never parsed",
        &output(false, false, "p-1", INITIALIZED),
    )?;
    b.record(
        "OUTPUT with a 1-byte process id and the largest data, 65515 - 1 = 65514 bytes: \
         plaintext 65519, size 65535",
        &output(false, false, "7", &pattern(0, MAX_PLAINTEXT - 5)),
    )?;
    b.record(
        "OUTPUT with a 64-byte process id and the largest data, 65515 - 64 = 65451 bytes: \
         plaintext 65519, size 65535",
        &output(
            true,
            true,
            ID64,
            &pattern(0, MAX_PLAINTEXT - 4 - ID64.len()),
        ),
    )?;
    Ok(())
}

fn invalid_section(b: &mut Builder) -> Result<(), String> {
    b.invalid("empty plaintext", &[])?;
    b.invalid(
        "unknown type 0x04 (the first after OUTPUT) with a body",
        &[0x04, 0x00, 0x00, 0x10, 0x00],
    )?;
    b.invalid("unknown type 0x04 alone", &[0x04])?;
    b.invalid(
        "unknown type 0x7b: a bare JSON-RPC message in a session with records",
        INITIALIZED,
    )?;
    b.invalid(
        "unknown type 0x20: JSON whitespace before a message",
        b" {}",
    )?;
    b.invalid("unknown type 0xff", &[0xff])?;
    b.invalid("PART with an empty body", &[0x01])?;
    b.invalid("WINDOW without a body", &[0x02])?;
    b.invalid("WINDOW with a 3-byte body", &[0x02, 0x00, 0x10, 0x00])?;
    b.invalid(
        "WINDOW with a 5-byte body",
        &[0x02, 0x00, 0x00, 0x10, 0x00, 0x00],
    )?;
    b.invalid("WINDOW with increment 0", &[0x02, 0x00, 0x00, 0x00, 0x00])?;
    b.invalid("WINDOW with increment 1", &[0x02, 0x00, 0x00, 0x00, 0x01])?;
    b.invalid(
        "WINDOW with increment 4095, one under the smallest",
        &[0x02, 0x00, 0x00, 0x0f, 0xff],
    )?;
    b.invalid(
        "WINDOW with increment 258049, one over the largest",
        &[0x02, 0x00, 0x03, 0xf0, 0x01],
    )?;
    b.invalid(
        "WINDOW with increment 262144 (the relay's limit per session, not the credit limit)",
        &[0x02, 0x00, 0x04, 0x00, 0x00],
    )?;
    b.invalid(
        "WINDOW with increment 0xffffffff",
        &[0x02, 0xff, 0xff, 0xff, 0xff],
    )?;
    let o = RECORD_OUTPUT;
    b.invalid("OUTPUT without a body: shorter than 3 bytes", &[o])?;
    b.invalid(
        "OUTPUT with a 2-byte body: shorter than 3 bytes",
        &[o, 0x00, 0x00],
    )?;
    b.invalid("OUTPUT with stream 2", &[o, 0x02, 0x00, 0x01, b'p', b'x'])?;
    b.invalid(
        "OUTPUT with stream 0xff",
        &[o, 0xff, 0x00, 0x01, b'p', b'x'],
    )?;
    b.invalid(
        "OUTPUT with reserved flag bit 1 set",
        &[o, 0x00, 0x02, 0x01, b'p', b'x'],
    )?;
    b.invalid(
        "OUTPUT with flags 0x81: capReached and reserved bit 7",
        &[o, 0x01, 0x81, 0x01, b'p', b'x'],
    )?;
    b.invalid("OUTPUT with N 0", &[o, 0x00, 0x00, 0x00, b'x'])?;
    b.invalid(
        "OUTPUT with N 0, capReached and nothing after the header",
        &[o, 0x00, 0x01, 0x00],
    )?;
    b.invalid(
        "OUTPUT with N 65: a 65-byte process id and data",
        &cat(&[&[o, 0x00, 0x00, 65], ID64.as_bytes(), b"qx"]),
    )?;
    b.invalid(
        "OUTPUT with N 255",
        &cat(&[&[o, 0x00, 0x00, 0xff], &[b'p'; 256]]),
    )?;
    b.invalid(
        "OUTPUT with N past the end: N 2 and 1 byte after the header",
        &[o, 0x00, 0x00, 0x02, b'p'],
    )?;
    b.invalid(
        "OUTPUT with capReached and N past the end: N 4 and a 3-byte id",
        &[o, 0x00, 0x01, 0x04, b'p', b'-', b'1'],
    )?;
    b.invalid(
        "OUTPUT with N 3 and nothing after the header",
        &[o, 0x01, 0x00, 0x03],
    )?;
    b.invalid(
        "OUTPUT whose process id is not UTF-8: 0xff",
        &[o, 0x00, 0x00, 0x01, 0xff, b'x'],
    )?;
    b.invalid(
        "OUTPUT whose process id ends inside a UTF-8 sequence: 0xc3 (the first byte of \
         \u{e9})",
        &[o, 0x00, 0x00, 0x01, 0xc3, 0xa9, b'x'],
    )?;
    b.invalid(
        "OUTPUT whose process id is an overlong UTF-8 encoding of '/': c0 af",
        &[o, 0x00, 0x00, 0x02, 0xc0, 0xaf, b'x'],
    )?;
    b.invalid(
        "OUTPUT whose process id is a UTF-16 surrogate in UTF-8 form: ed a0 80",
        &[o, 0x00, 0x00, 0x03, 0xed, 0xa0, 0x80, b'x'],
    )?;
    b.invalid(
        "OUTPUT without data and without capReached",
        &cat(&[&[o, 0x00, 0x00, 0x03], b"p-1"]),
    )?;
    b.invalid(
        "OUTPUT on stderr with a 64-byte process id, no data and no capReached",
        &cat(&[&[o, 0x01, 0x00, 64], ID64.as_bytes()]),
    )?;
    Ok(())
}

fn segmentation_section(b: &mut Builder) -> Result<(), String> {
    const SEG: &str = "segmentation";
    let controller = ("controller", MAX_SESSION_CREDIT);
    let host = ("host", MAX_SESSION_CREDIT);
    b.sequence(
        SEG,
        "a 100000-byte message under the initial window of 16384: one PART of 16367, then \
         after the host's first WINDOW (241664) two PARTs of 65518 and the MESSAGE (CHAN-34)",
        "CHAN-34",
        controller,
        &[
            note(
                grant(),
                "the controller's first transport message (CHAN-31)",
            ),
            queue_len(100_000),
            send(),
            recv_window(241_664),
            send(),
        ],
    )?;
    b.sequence(
        SEG,
        "a message that fills the window exactly goes as one MESSAGE; then an empty message \
         (17 bytes) waits for a WINDOW (CHAN-34)",
        "CHAN-34",
        controller,
        &[
            grant(),
            queue_len(16_367),
            send(),
            queue_hex(&[]),
            note(send(), "window 0: not even an empty MESSAGE may go"),
            recv_window(4096),
            send(),
        ],
    )?;
    b.sequence(
        SEG,
        "one byte more than the window holds: a PART of window - 17 and a 1-byte MESSAGE \
         after the next WINDOW",
        "CHAN-34",
        controller,
        &[
            grant(),
            queue_len(16_368),
            send(),
            recv_window(4096),
            send(),
        ],
    )?;
    b.sequence(
        SEG,
        "a window of 14 bytes holds no record: a 1-byte and an empty message wait (CHAN-34)",
        "CHAN-34",
        controller,
        &[
            grant(),
            queue_len(16_353),
            send(),
            queue_len(1),
            queue_hex(&[]),
            note(send(), "window 14 < 17"),
            recv_window(4096),
            send(),
        ],
    )?;
    b.sequence(
        SEG,
        "a window of 4113 takes a PART of 4096, the smallest PART the reference sends",
        "CHAN-34",
        controller,
        &[
            grant(),
            queue_len(12_254),
            send(),
            queue_len(10_000),
            send(),
            recv_window(8192),
            send(),
        ],
    )?;
    b.sequence(
        SEG,
        "a window of 4112 would take a PART of only 4095: the reference waits for a WINDOW \
         instead (informative: a PART of 4095 would conform too)",
        "CHAN-34",
        controller,
        &[
            grant(),
            queue_len(12_255),
            send(),
            queue_len(10_000),
            note(send(), "waits"),
            recv_window(4096),
            send(),
            recv_window(4096),
            send(),
        ],
    )?;
    b.sequence(
        SEG,
        "a window of 4112 takes a whole message of 4095 bytes as one MESSAGE",
        "CHAN-34",
        controller,
        &[grant(), queue_len(12_255), send(), queue_len(4095), send()],
    )?;
    b.sequence(
        SEG,
        "the largest records: MESSAGE and PART of 65518 bytes (65535 with the tag); a \
         200000-byte message runs the window to 0 and goes on after a WINDOW of 258048",
        "CHAN-34",
        host,
        &[
            note(
                recv_window(241_664),
                "the controller's first message: records, window 258048 (CHAN-31)",
            ),
            queue_len(65_518),
            send(),
            queue_len(65_519),
            send(),
            queue_len(200_000),
            send(),
            recv_window(258_048),
            send(),
        ],
    )?;
    b.sequence(
        SEG,
        "messages leave in order and their records are never interleaved: three short \
         messages, a long one cut at the window, and one more that waits behind it (CHAN-32)",
        "CHAN-32",
        controller,
        &[
            grant(),
            queue_hex(INITIALIZE),
            queue_hex(INITIALIZED),
            queue_hex(RESULT),
            queue_len(20_000),
            queue_hex(INITIALIZED),
            send(),
            recv_window(65_536),
            send(),
        ],
    )?;
    let first = || {
        note(
            recv_window(4096),
            "the controller's first message: records, window 20480 (CHAN-31)",
        )
    };
    b.sequence(
        SEG,
        "a 100000-byte chunk of output (process p-1, capReached) larger than the window \
         leaves in OUTPUT pieces, each with the header (size = 17 + 6 + data): 20457 bytes \
         in the window of 20480, 65512 (65515 - 3, size 65535) after a WINDOW, the last \
         14031 after another; capReached only on the last piece (CHAN-34, CMD-41, CMD-76)",
        "CHAN-34",
        host,
        &[
            first(),
            output_len(false, true, "p-1", 100_000),
            send(),
            recv_window(65_536),
            send(),
            recv_window(16_384),
            send(),
        ],
    )?;
    b.sequence(
        SEG,
        "a window of 4118 leaves room for 4095 bytes of output after a 6-byte header and \
         the 17 of type byte and tag: the reference waits for a WINDOW rather than send a \
         piece of under 4096 bytes (informative: a piece of 4095 would conform too)",
        "CHAN-34",
        host,
        &[
            first(),
            queue_len(16_345),
            send(),
            output_len(true, false, "p-1", 5000),
            note(send(), "waits"),
            recv_window(4096),
            send(),
        ],
    )?;
    b.sequence(
        SEG,
        "a window of 4119 takes an OUTPUT piece of 4096 bytes of data, the smallest piece \
         the reference sends; the other 904 go after the next WINDOW",
        "CHAN-34",
        host,
        &[
            first(),
            queue_len(16_344),
            send(),
            output_len(true, false, "p-1", 5000),
            send(),
            recv_window(4096),
            send(),
        ],
    )?;
    b.sequence(
        SEG,
        "the rest of a chunk goes whole when it fits, under 4096 bytes too: 4095 bytes fill \
         a window of 4118 exactly; then an empty chunk with capReached needs 23 bytes and \
         waits for a WINDOW (CHAN-34, CMD-41)",
        "CHAN-34",
        host,
        &[
            first(),
            queue_len(16_345),
            send(),
            output_len(false, false, "p-1", 4095),
            send(),
            output_hex(false, true, "p-1", b""),
            note(send(), "window 0 < 23"),
            recv_window(4096),
            send(),
        ],
    )?;
    b.sequence(
        SEG,
        "a 64-byte process id: pieces of at most 65451 bytes (65515 - 64, size 65535), the \
         header in each; then a chunk for a 1-byte id is cut at the window (57691 bytes) and \
         its last 7823 bytes carry capReached after a WINDOW (CHAN-34, CMD-76)",
        "CHAN-34",
        host,
        &[
            note(
                recv_window(241_664),
                "the controller's first message: records, window 258048 (CHAN-31)",
            ),
            output_len(false, false, ID64, 200_000),
            output_len(true, true, "7", 65_514),
            send(),
            recv_window(65_536),
            send(),
        ],
    )?;
    b.sequence(
        SEG,
        "output and messages leave in the order queued: a short chunk, a 30000-byte chunk \
         cut at the window, and the command/exec answer, which waits behind the last OUTPUT \
         record of its process (CHAN-34, CMD-76)",
        "CHAN-34",
        host,
        &[
            first(),
            output_hex(false, false, "p-1", b"hello\n"),
            output_len(true, true, "p-1", 30_000),
            queue_hex(RESULT),
            send(),
            recv_window(16_384),
            send(),
        ],
    )?;
    Ok(())
}

fn accounting_section(b: &mut Builder) -> Result<(), String> {
    const ACC: &str = "accounting";
    let host = ("host", MAX_SESSION_CREDIT);
    b.sequence(
        ACC,
        "a host that listed channel.flow sends nothing before the controller's first message; \
         a 5-byte plaintext starting 0x02 switches the session to records (CHAN-31)",
        "CHAN-31",
        host,
        &[
            queue_hex(RESULT),
            note(send(), "undecided: nothing goes (CHAN-31)"),
            recv(&[0x02, 0x00, 0x00, 0x10, 0x00]),
            send(),
            note(grant(), "the host's first WINDOW, up to its target"),
        ],
    )?;
    b.sequence(
        ACC,
        "a first message that is JSON keeps version 1 for the whole session: a later \
         5-byte plaintext starting 0x02 is a message, not a record (CHAN-31)",
        "CHAN-31",
        host,
        &[
            queue_hex(RESULT),
            send(),
            recv(INITIALIZE),
            send(),
            recv(&[0x02, 0x00, 0x00, 0x10, 0x00]),
            note(grant(), "no windows in version 1"),
        ],
    )?;
    b.sequence(
        ACC,
        "a 6-byte first plaintext starting 0x02 is not a WINDOW: version 1 (CHAN-31)",
        "CHAN-31",
        host,
        &[recv(&[0x02, 0x00, 0x00, 0x10, 0x00, 0x00])],
    )?;
    b.sequence(
        ACC,
        "a 5-byte first plaintext starting 0x02 with increment 1: records, then a bad \
         record (CHAN-31, CHAN-32)",
        "CHAN-31",
        host,
        &[recv(&[0x02, 0x00, 0x00, 0x00, 0x01])],
    )?;
    b.sequence(
        ACC,
        "once records are decided, a JSON message is an unknown record type (CHAN-31, CHAN-32)",
        "CHAN-31",
        host,
        &[recv(&[0x02, 0x00, 0x00, 0x10, 0x00]), recv(INITIALIZED)],
    )?;
    b.sequence(
        ACC,
        "a controller's first transport message is a WINDOW up to its target of 131072; \
         PARTs are consumed as they arrive, a MESSAGE when the application takes it, and \
         the reference grants once a quarter of its target is free (CHAN-31, CHAN-36)",
        "CHAN-36",
        ("controller", 131_072),
        &[
            note(grant(), "CHAN-31"),
            recv_body("PART", 32_000),
            note(grant(), "32017 free, under a quarter (32768): nothing"),
            recv_body("PART", 1000),
            note(grant(), "33034 free: grants it"),
            recv_body("MESSAGE", 5000),
            note(grant(), "the MESSAGE is held, not consumed: nothing"),
            consume(5017),
            note(grant(), "5017 free: nothing"),
        ],
    )?;
    b.sequence(
        ACC,
        "a receiver whose target is the initial window restores its credit when consuming \
         takes it under 8192, and only then (CHAN-36)",
        "CHAN-36",
        ("host", 16_384),
        &[
            recv_window(4096),
            note(grant(), "credit 16384 = target: nothing"),
            recv_body("MESSAGE", 9000),
            note(grant(), "held: nothing"),
            consume(9017),
            note(grant(), "credit 7367 < 8192: must grant (CHAN-36)"),
            recv_body("MESSAGE", 4079),
            consume(4096),
            note(grant(), "4096 free"),
            recv_body("MESSAGE", 4000),
            consume(4017),
            note(grant(), "4017 free, credit 12367 >= 8192: nothing"),
        ],
    )?;
    b.sequence(
        ACC,
        "records of 16384 bytes fill the initial window exactly; a WINDOW record has no \
         size; one more MESSAGE, of 17 bytes, exceeds what was granted (CHAN-34)",
        "CHAN-34",
        ("host", 16_384),
        &[
            recv_window(4096),
            recv_body("PART", 16_367),
            note(recv_window(4096), "WINDOW records are never limited"),
            recv_body("MESSAGE", 0),
        ],
    )?;
    b.sequence(
        ACC,
        "consuming grants nothing by itself: without a WINDOW the sender may not send more \
         than the initial window (CHAN-34)",
        "CHAN-34",
        ("host", 16_384),
        &[
            recv_window(4096),
            recv_body("MESSAGE", 16_000),
            consume(16_017),
            recv_body("MESSAGE", 400),
        ],
    )?;
    b.sequence(
        ACC,
        "a WINDOW that takes the window to exactly 258048 is accepted; one more takes it \
         past 258048 (CHAN-35)",
        "CHAN-35",
        host,
        &[recv_window(241_664), recv_window(4096)],
    )?;
    b.sequence(
        ACC,
        "the window is what is left: after sending 4096 bytes a WINDOW of 4096 brings it \
         back to 258048, and the next one is refused (CHAN-35)",
        "CHAN-35",
        host,
        &[
            recv_window(241_664),
            queue_len(4079),
            send(),
            recv_window(4096),
            recv_window(4096),
        ],
    )?;
    b.sequence(
        ACC,
        "a host closes the session when its controller sends an OUTPUT record, however \
         well formed: BadRecord, FLOW_CONTROL_ERROR (CHAN-32); its size was counted first",
        "CHAN-32",
        host,
        &[
            recv_window(4096),
            recv(&cat(&[&[RECORD_MESSAGE], INITIALIZE])),
            consume(INITIALIZE.len() + 1 + TAG_LEN),
            recv(&output(false, false, "p-1", b"x")),
        ],
    )?;
    b.sequence(
        ACC,
        "a controller counts OUTPUT records like MESSAGE records: size = plaintext + 16, \
         held until the application takes the output, then consumed, and the credit comes \
         back in a WINDOW (CHAN-34, CHAN-36)",
        "CHAN-36",
        ("controller", 131_072),
        &[
            note(grant(), "CHAN-31"),
            recv_output(false, false, "p-1", 40_000),
            note(grant(), "the output is held, not consumed: nothing"),
            consume(40_023),
            note(grant(), "40023 free, at least a quarter (32768): grants it"),
            recv(&output(true, true, "p-1", b"")),
            recv(&cat(&[&[RECORD_MESSAGE], RESULT])),
            consume(23),
            consume(RESULT.len() + 1 + TAG_LEN),
            note(grant(), "76 free: nothing"),
        ],
    )?;
    b.sequence(
        ACC,
        "OUTPUT records fill what the controller granted, like any record: 20480 bytes in \
         one OUTPUT fit exactly; consuming it grants nothing by itself, and one more OUTPUT, \
         of 21 bytes, exceeds what was granted (CHAN-34)",
        "CHAN-34",
        ("controller", 16_384),
        &[
            note(grant(), "CHAN-31: 4096, granted 20480"),
            recv_output(false, false, "p", 20_459),
            consume(20_480),
            recv(&output(false, true, "p", b"")),
        ],
    )?;
    Ok(())
}

fn part(n: usize) -> Value {
    json!({ "type": "PART", "bodyLength": n })
}

fn parts(n: usize, count: u64) -> Value {
    json!({ "type": "PART", "bodyLength": n, "count": count })
}

fn message(n: usize) -> Value {
    json!({ "type": "MESSAGE", "bodyLength": n })
}

fn plain(p: &[u8]) -> Value {
    json!({ "plaintext": hex::encode(p) })
}

fn reassembly_section(b: &mut Builder) -> Result<(), String> {
    let (head, tail) = INITIALIZED.split_at(17);
    let (first, head) = head.split_at(1);
    b.reassembly(
        "a short message in a 1-byte PART, a PART, a WINDOW between them, and the MESSAGE",
        vec![
            plain(&cat(&[&[0x01], first])),
            plain(&cat(&[&[0x01], head])),
            plain(&[0x02, 0x00, 0x00, 0x10, 0x00]),
            plain(&cat(&[&[0x00], tail])),
        ],
    )?;
    b.reassembly(
        "a PART and an empty MESSAGE: the message is the PART's body",
        vec![plain(&cat(&[&[0x01], INITIALIZED])), plain(&[0x00])],
    )?;
    b.reassembly(
        "a 200000-byte message in three PARTs of 65518 and a MESSAGE of 3446",
        vec![parts(MAX_BODY, 3), message(200_000 - 3 * MAX_BODY)],
    )?;
    let rest = MAX_MESSAGE - 256 * MAX_BODY;
    b.reassembly(
        "a message of exactly 16777216 bytes is accepted (CHAN-33)",
        vec![parts(MAX_BODY, 256), part(rest), message(0)],
    )?;
    b.reassembly(
        "PARTs of 16777216 bytes and a 1-byte MESSAGE: TooLarge when the MESSAGE arrives \
         (CHAN-33, CMD-2); the next message is delivered",
        vec![
            parts(MAX_BODY, 256),
            part(rest),
            message(1),
            plain(b"\x00{}"),
        ],
    )?;
    b.reassembly(
        "PARTs of 16777217 bytes, then the MESSAGE: TooLarge (CHAN-33, CMD-2); the session \
         goes on",
        vec![
            parts(MAX_BODY, 256),
            part(rest + 1),
            message(0),
            plain(b"\x00{}"),
        ],
    )?;
    b.reassembly(
        "past 16 MiB the receiver discards further PARTs as they come and answers TooLarge \
         with the whole length once the MESSAGE arrives (CHAN-33)",
        vec![
            parts(MAX_BODY, 256),
            part(rest + 1),
            parts(MAX_BODY, 2),
            message(10),
            plain(b"\x00{}"),
        ],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// the file

/// The file, members in this order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordsFile {
    vectors: &'static str,
    spec_version: u32,
    description: &'static str,
    conformance: &'static str,
    patterns: &'static str,
    schema: Value,
    number_of_tests: usize,
    records: Vec<Value>,
    invalid: Vec<Value>,
    segmentation: Vec<Value>,
    accounting: Vec<Value>,
    reassembly: Vec<Value>,
}

const DESCRIPTION: &str = "Records and flow control (spec/04-secure-channel.md section 4.13, \
    CHAN-31 to CHAN-36). `records`: record plaintexts with their decoded form and size; a \
    decoder must give the decoded form and an encoder given it the plaintext. `invalid`: \
    plaintexts a receiver refuses, closing the session with FLOW_CONTROL_ERROR. \
    `segmentation` and `accounting`: one side of one session (`role`, with `target` the \
    most credit it grants), driven by `events` in order; each event gives what the side \
    sends, what it makes of what it receives, and its `state` afterwards. `reassembly`: \
    records one receiver gets and the messages it hands up. OUTPUT records (command \
    output, host to controller, CMD-76) appear in `records`, `invalid`, `segmentation` \
    and `accounting`. tcIds run through the five sections in this order.";

const CONFORMANCE: &str = "Normative: the bytes of records, which plaintexts are refused \
    (CHAN-32), a record's size (plaintext + 16), the window and credit arithmetic, the \
    checks of CHAN-34 and CHAN-35, the decision of CHAN-31 and reassembly (CHAN-33). \
    Normative too: a host refuses every OUTPUT record (CHAN-32), OUTPUT records count \
    against the window like MESSAGE and PART, capReached rides only the last OUTPUT \
    record of a chunk (CMD-41), and output and messages leave in the order queued \
    (CMD-76). Informative: where a sender splits a message or a chunk of output and when \
    a receiver grants are the reference implementation's policy (spec section 4.13.4), \
    which these vectors follow; any split that keeps every record within the window and \
    every body within 65518 bytes conforms (CHAN-34), a receiver must reassemble any of \
    them, and any grant that keeps CHAN-35 and CHAN-36 conforms. Policy, sender: when \
    the rest of the front message fits (window >= 17, rest <= window - 17, rest <= \
    65518) it goes as one MESSAGE; else a PART of min(window - 17, 65518) bytes when that \
    is at least 4096; else the sender waits for a WINDOW. For a chunk of output with a \
    process id of N bytes (header h = 3 + N): when the rest of its data fits (window >= \
    17 + h, rest <= window - 17 - h, rest <= 65515 - N) it goes as one OUTPUT record, \
    with the chunk's capReached; else an OUTPUT record of min(window - 17 - h, 65515 - N) \
    data bytes, capReached false, when that is at least 4096; else the sender waits. \
    Policy, receiver with target T: a controller's \
    first event sends WINDOW max(T - 16384, 4096) (CHAN-31); later, with credit C, when \
    C < 8192 it grants max(T - C, 4096, 8192 - C), otherwise T - C when that is at least \
    max(4096, floor(T / 4)), else nothing; never more than 258048 - C, and nothing under \
    4096.";

const PATTERNS: &str = "A message or record body given by length instead of hex is made \
    of the pattern: the byte at offset i of its message is i mod 251. A queued message \
    given by `length` is bytes 0 .. length of the pattern. A received record given by \
    `type` and `bodyLength` carries the next `bodyLength` bytes of the message being \
    reassembled (it starts at the offset that message has reached: the body bytes of the \
    PARTs before it); a MESSAGE record ends the message and the next one starts at 0. \
    Messages handed up are given by length with hex when at most 64 bytes, else with \
    their SHA-256. Output data given by length (an `output` event's `data`, a received \
    OUTPUT's `dataLength`, a `records` case's `dataLength`) is bytes 0 .. length of the \
    pattern; output data handed up or decoded is given as `data` {length, hex or \
    sha256} like a message.";

fn schema() -> Value {
    json!({
        "requirement": "the requirement the case tests; errors carry their own",
        "result": "valid, or invalid when the case ends in an error that closes the session",
        "plaintext": "a record or transport plaintext, hex",
        "plaintextHead": "records: an OUTPUT record with more than 64 bytes of data is given by its head (hex: type byte, stream, flags, N, process id) and `dataLength`, its data being the pattern",
        "decoded": "type MESSAGE | PART | WINDOW | OUTPUT; body (hex), increment, or for OUTPUT stream (stdout | stderr), capReached, processId and data {length, hex or sha256}",
        "size": "records: the record's size, plaintext + 16 (CHAN-34); consume: the size of the records released",
        "error": "name (ChannelError or CommandError variant), requirement, and closeCode for errors that close the session",
        "role": "host (listed channel.flow, undecided until the controller's first message, CHAN-31) or controller (took part: records from the start)",
        "target": "the most credit this side grants the session (at most 258048)",
        "events": "queue {message}: the application queues a message; output {stream, capReached, processId, data}: a host queues a chunk of a command's output (CMD-76); send: the side sends what it may now, `records` (or `messages` in version 1), each with type, bodyLength (everything after the type byte), size, the window after it and the plaintext (hex) when at most 64 bytes, an OUTPUT also with stream, capReached, processId and dataLength; receive {plaintext | type, bodyLength | type OUTPUT, stream, capReached, processId, dataLength}: `got` kind nothing | message (length, hex or sha256, size: what to consume once the application lets go) | output (stream, capReached, processId, data, size: likewise) | tooLarge (length, error), or `error`; consume {size}: the application let go of a message or of output; grant: the side sends a WINDOW record when one is due, `increment` (null: none) and `record`",
        "state": "framing undecided | v1 | records; queued: message and output bytes not yet sent (output data only, not headers); with records: window (bytes it may send), credit, granted (16384 plus increments granted), received (sizes of MESSAGE, PART and OUTPUT records received); after an event that ends the session (nothing follows it), the totals that broke the rule",
        "reassembly": "records: each a plaintext, or type + bodyLength with an optional count (that many such records); results: what the receiver hands up, in order, as `got` above; the receiver's target is 258048 and it grants before every record and consumes every message at once, so its sender stays within the window",
    })
}

fn build() -> Result<String, String> {
    let mut b = Builder {
        sections: SECTIONS.iter().map(|s| (*s, Vec::new())).collect(),
        next_id: 1,
    };
    records_section(&mut b)?;
    invalid_section(&mut b)?;
    segmentation_section(&mut b)?;
    accounting_section(&mut b)?;
    reassembly_section(&mut b)?;
    let number_of_tests = b.next_id - 1;
    let mut sections = b.sections.into_iter().map(|(_, cases)| cases);
    let mut next = || sections.next().unwrap_or_default();
    Ok(to_json(&RecordsFile {
        vectors: "records",
        spec_version: 1,
        description: DESCRIPTION,
        conformance: CONFORMANCE,
        patterns: PATTERNS,
        schema: schema(),
        number_of_tests,
        records: next(),
        invalid: next(),
        segmentation: next(),
        accounting: next(),
        reassembly: next(),
    }))
}

fn generate() -> String {
    build().unwrap_or_else(|e| format!("records vector generation failed: {e}\n"))
}

/// The check of one case of a section.
type CaseCheck = fn(&Value) -> Result<(), String>;

fn check(contents: &str) -> Result<usize, String> {
    let file: Value = serde_json::from_str(contents).map_err(|e| e.to_string())?;
    if file.get("vectors") != Some(&json!("records")) {
        return Err("vectors is not \"records\"".into());
    }
    let mut n = 0usize;
    for section in SECTIONS {
        let cases = field(&file, section)?
            .as_array()
            .ok_or_else(|| format!("{section} is not an array"))?;
        if cases.is_empty() {
            return Err(format!("{section} holds no cases"));
        }
        for case in cases {
            n += 1;
            let id = case.get("tcId").and_then(Value::as_u64);
            if id != Some(n as u64) {
                return Err(format!("{section}: case {n} has tcId {id:?}"));
            }
            let requirement = str_field(case, "requirement")?;
            if !REQUIREMENTS.contains(&requirement) {
                return Err(format!("tcId {n}: requirement {requirement}"));
            }
            let result = str_field(case, "result")?;
            let (run, want): (CaseCheck, _) = match section {
                "records" => (check_record, Some("valid")),
                "invalid" => (check_invalid, Some("invalid")),
                "reassembly" => (check_reassembly, Some("valid")),
                // The sequence check compares the result with the reference's.
                _ => (check_sequence, None),
            };
            if want.is_some_and(|w| w != result) {
                return Err(format!("{section} tcId {n}: result {result}"));
            }
            run(case).map_err(|e| format!("{section} tcId {n}: {e}"))?;
        }
    }
    if field(&file, "numberOfTests")?.as_u64() != Some(n as u64) {
        return Err("numberOfTests does not match".into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Value {
        serde_json::from_str(&generate()).unwrap()
    }

    fn case_mut<'a>(f: &'a mut Value, section: &str, i: usize) -> &'a mut Value {
        &mut f[section][i]
    }

    /// CHAN-32, CHAN-34, CHAN-35, CHAN-33: every error the flow layer reports, and the
    /// over-long message, has a vector.
    #[test]
    fn chan_32_to_35_every_error_has_a_vector() {
        let text = generate();
        assert!(check(&text).is_ok(), "{:?}", check(&text));
        for (name, requirement) in [
            ("BadRecord", "CHAN-32"),
            ("WindowExceeded", "CHAN-34"),
            ("WindowOverflow", "CHAN-35"),
            ("TooLarge", "CMD-2"),
        ] {
            let compact = text.replace(['\n', ' '], "");
            let needle = format!("\"name\":\"{name}\",\"requirement\":\"{requirement}\"");
            assert!(compact.contains(&needle), "{needle}");
        }
    }

    /// CHAN-31 to CHAN-36: each requirement of section 4.13 is the subject of a case.
    #[test]
    fn chan_31_to_36_every_requirement_has_a_case() {
        let f = file();
        for requirement in REQUIREMENTS {
            let found = SECTIONS.iter().any(|s| {
                f[*s]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["requirement"] == requirement)
            });
            assert!(found, "{requirement}");
        }
    }

    /// The checker is not a rubber stamp: a changed output in any section fails it.
    #[test]
    fn check_rejects_altered_cases() {
        let base = file();
        type Alter = fn(&mut Value);
        let alterations: Vec<(&str, usize, Alter)> = vec![
            ("records", 0, |c| c["size"] = json!(58)),
            ("records", 5, |c| c["decoded"]["increment"] = json!(4097)),
            ("records", 3, |c| c["decoded"]["type"] = json!("MESSAGE")),
            ("invalid", 0, |c| c["error"]["name"] = json!("Truncated")),
            ("invalid", 6, |c| {
                c["error"]["requirement"] = json!("CHAN-34")
            }),
            ("segmentation", 0, |c| {
                c["events"][2]["records"][0]["bodyLength"] = json!(16_368);
            }),
            ("segmentation", 0, |c| {
                c["events"][4]["records"][1]["window"] = json!(1);
            }),
            ("accounting", 0, |c| {
                c["events"][1]["records"] = json!([{ "plaintext": "00" }]);
            }),
            ("accounting", 3, |c| c["result"] = json!("valid")),
            ("accounting", 5, |c| {
                c["events"][2]["increment"] = json!(4096)
            }),
            ("accounting", 7, |c| {
                c["events"][3]["error"]["name"] = json!("WindowOverflow");
            }),
            ("reassembly", 3, |c| {
                c["results"][0]["length"] = json!(MAX_MESSAGE + 1);
            }),
            ("reassembly", 5, |c| {
                c["records"][1]["bodyLength"] = json!(4608)
            }),
            ("records", 9, |c| c["decoded"]["capReached"] = json!(true)),
            ("records", 12, |c| c["decoded"]["stream"] = json!("stdout")),
            ("records", 17, |c| c["dataLength"] = json!(65_513)),
            ("records", 18, |c| c["size"] = json!(65_534)),
            ("invalid", 16, |c| c["error"]["name"] = json!("Closed")),
            ("segmentation", 9, |c| {
                c["events"][2]["records"][0]["capReached"] = json!(true);
            }),
            ("segmentation", 10, |c| {
                c["events"][4]["records"] = json!([{ "type": "OUTPUT" }]);
            }),
            ("accounting", 11, |c| c["result"] = json!("valid")),
            ("accounting", 12, |c| {
                c["events"][1]["got"]["size"] = json!(40_000)
            }),
            ("accounting", 13, |c| {
                c["events"][3]["error"]["name"] = json!("BadRecord")
            }),
        ];
        for (section, i, alter) in alterations {
            let mut f = base.clone();
            alter(case_mut(&mut f, section, i));
            assert!(
                check(&to_json(&f)).is_err(),
                "{section}[{i}] altered passes"
            );
        }
        let mut f = base.clone();
        f["numberOfTests"] = json!(1);
        assert!(check(&to_json(&f)).is_err());
    }

    /// CMD-41, CMD-76: the `OUTPUT` records of a chunk carry all its bytes, in order and
    /// in the order chunks were queued, its stream and process id in each, and
    /// `capReached` on the last alone (when the chunk has it).
    #[test]
    fn cmd_76_output_pieces_carry_their_chunk() {
        let f = file();
        let mut pieces = 0;
        for case in f["segmentation"].as_array().unwrap() {
            let mut chunks = std::collections::VecDeque::new();
            for e in case["events"].as_array().unwrap() {
                if e["event"] == "output" {
                    let data = &e["data"];
                    let len = data["length"]
                        .as_u64()
                        .unwrap_or_else(|| data["hex"].as_str().unwrap().len() as u64 / 2);
                    chunks.push_back((e.clone(), len));
                }
                for r in e["records"].as_array().into_iter().flatten() {
                    if r["type"] != "OUTPUT" {
                        continue;
                    }
                    pieces += 1;
                    let (chunk, left) = chunks.front_mut().unwrap();
                    assert_eq!(r["stream"], chunk["stream"]);
                    assert_eq!(r["processId"], chunk["processId"]);
                    let n = r["dataLength"].as_u64().unwrap();
                    let id = r["processId"].as_str().unwrap().len() as u64;
                    assert_eq!(r["bodyLength"].as_u64().unwrap(), 3 + id + n);
                    assert!(n <= 65_515 - id);
                    *left -= n;
                    let last = *left == 0;
                    assert_eq!(r["capReached"], json!(last && chunk["capReached"] == true));
                    if last {
                        chunks.pop_front();
                    }
                }
            }
            assert!(chunks.is_empty(), "tcId {}: output left", case["tcId"]);
        }
        assert!(pieces >= 12, "{pieces}");
    }

    /// CHAN-34: in every segmentation and accounting case, no record sent is larger than
    /// the window before it, and no body larger than 65518.
    #[test]
    fn chan_34_no_record_exceeds_the_window() {
        let f = file();
        for section in ["segmentation", "accounting"] {
            for case in f[section].as_array().unwrap() {
                let mut window = 16_384u64;
                for e in case["events"].as_array().unwrap() {
                    for r in e["records"].as_array().into_iter().flatten() {
                        let size = r["size"].as_u64().unwrap();
                        assert!(size <= window, "tcId {}", case["tcId"]);
                        assert_eq!(size, r["bodyLength"].as_u64().unwrap() + 17);
                        assert!(r["bodyLength"].as_u64().unwrap() <= MAX_BODY as u64);
                        window = r["window"].as_u64().unwrap();
                    }
                    if let Some(w) = e["state"]["window"].as_u64() {
                        window = w;
                    }
                }
            }
        }
    }
}
