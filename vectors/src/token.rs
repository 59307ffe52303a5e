//! `pairing-token.json`: the pairing token's binary and text forms (`spec/02`, `TOKEN-*`).
//!
//! The generator lays the bytes out by hand (its own base32 encoder and checksum), so that
//! the file checks `tether-proto`'s encoder as well as its decoder.

use blake2::{Blake2s256, Digest};
use serde_json::{Value, json};
use tether_proto::time::UnixTime;
use tether_proto::token::{PairingToken, TokenError};

use crate::format::{VectorFile, det_array, field, to_json};

/// The vector files this module generates and checks.
pub const FILES: &[VectorFile] = &[VectorFile {
    name: "pairing-token.json",
    generate,
    check,
}];

/// A token's fields as the generator writes them (any bytes, valid or not).
#[derive(Clone)]
struct Fields {
    version: u8,
    flags: Option<u8>,
    key_len: u8,
    host_key: [u8; 32],
    token_id: [u8; 16],
    token_secret: [u8; 32],
    expires_at: u64,
    workspace: Vec<u8>,
    relay_url: Vec<u8>,
    host_name: Option<Vec<u8>>,
}

const EXPIRES_AT: u64 = 1_798_761_600; // 2027-01-01T00:00:00Z
const MINTED_AT: u64 = EXPIRES_AT - 300;

fn base() -> Fields {
    Fields {
        version: 1,
        flags: None,
        key_len: 32,
        host_key: det_array("pairing-token/host-key"),
        token_id: det_array("pairing-token/token-id"),
        token_secret: det_array("pairing-token/token-secret"),
        expires_at: EXPIRES_AT,
        workspace: b"acme-dev".to_vec(),
        relay_url: b"wss://relay.example.com/v1".to_vec(),
        host_name: Some(b"build-box".to_vec()),
    }
}

impl Fields {
    /// The bytes before the checksum.
    fn body(&self) -> Vec<u8> {
        let mut b = vec![
            self.version,
            self.flags.unwrap_or(u8::from(self.host_name.is_some())),
            self.key_len,
        ];
        b.extend_from_slice(&self.host_key);
        b.extend_from_slice(&self.token_id);
        b.extend_from_slice(&self.token_secret);
        b.extend_from_slice(&self.expires_at.to_be_bytes());
        for f in [
            Some(&self.workspace),
            Some(&self.relay_url),
            self.host_name.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            b.push(u8::try_from(f.len()).unwrap_or(u8::MAX));
            b.extend_from_slice(f);
        }
        b
    }

    fn sealed(&self) -> Vec<u8> {
        seal(self.body())
    }

    fn json(&self) -> Value {
        json!({
            "hostKey": hex::encode(self.host_key),
            "tokenId": hex::encode(self.token_id),
            "tokenSecret": hex::encode(self.token_secret),
            "expiresAt": self.expires_at,
            "workspace": String::from_utf8_lossy(&self.workspace),
            "relayUrl": String::from_utf8_lossy(&self.relay_url),
            "hostName": self.host_name.as_ref().map(|n| String::from_utf8_lossy(n).into_owned()),
        })
    }
}

/// `body || BLAKE2s-256("TETHER-TOKEN-CHECKSUM-V1" || body)[0..4]`.
fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let mut h = Blake2s256::new();
    h.update(b"TETHER-TOKEN-CHECKSUM-V1");
    h.update(&body);
    body.extend(h.finalize().iter().take(4));
    body
}

/// RFC 4648 base32, upper case, no padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol(ALPHABET, acc >> bits));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(symbol(ALPHABET, acc << (5 - bits)));
    }
    out
}

fn symbol(alphabet: &[u8; 32], v: u32) -> char {
    let i = usize::try_from(v & 31).unwrap_or(0);
    char::from(alphabet.get(i).copied().unwrap_or(b'A'))
}

fn text(bytes: &[u8]) -> String {
    format!("TETHER:{}", base32(bytes))
}

struct Builder {
    tests: Vec<Value>,
}

impl Builder {
    fn push(&mut self, comment: &str, flags: &[&str], result: &str, mut fields: Value) {
        let obj = fields.as_object_mut();
        if let Some(obj) = obj {
            obj.insert("tcId".into(), json!(self.tests.len() + 1));
            obj.insert("comment".into(), json!(comment));
            obj.insert("flags".into(), json!(flags));
            obj.insert("result".into(), json!(result));
        }
        self.tests.push(fields);
    }

    /// A token that decodes: valid, or `Expired` at `now`.
    fn decodable(&mut self, comment: &str, flags: &[&str], f: &Fields, now: u64) {
        let bytes = f.sealed();
        let mut v = json!({
            "text": text(&bytes),
            "binary": hex::encode(&bytes),
            "token": f.json(),
            "now": now,
        });
        if now >= f.expires_at {
            if let Some(obj) = v.as_object_mut() {
                obj.insert("error".into(), error(&TokenError::Expired));
            }
            self.push(comment, flags, "invalid", v);
        } else {
            self.push(comment, flags, "valid", v);
        }
    }

    /// Invalid binary bytes, given both as binary and as text.
    fn bad_bytes(&mut self, comment: &str, flags: &[&str], bytes: &[u8], e: &TokenError) {
        let v = json!({
            "text": text(bytes),
            "binary": hex::encode(bytes),
            "error": error(e),
        });
        self.push(comment, flags, "invalid", v);
    }

    /// Invalid text that has no binary form.
    fn bad_text(&mut self, comment: &str, flags: &[&str], t: &str, e: &TokenError) {
        let v = json!({ "text": t, "error": error(e) });
        self.push(comment, flags, "invalid", v);
    }
}

fn error(e: &TokenError) -> Value {
    json!({ "name": e.name(), "requirement": e.requirement() })
}

fn with(f: impl FnOnce(&mut Fields)) -> Fields {
    let mut x = base();
    f(&mut x);
    x
}

fn generate() -> String {
    let mut b = Builder { tests: Vec::new() };
    let now = MINTED_AT;

    // --- valid ---
    b.decodable("token with a host name", &["HostName"], &base(), now);
    let no_name = with(|f| f.host_name = None);
    b.decodable("token without a host name", &["NoHostName"], &no_name, now);
    let loopback = with(|f| {
        f.workspace = b"a".to_vec();
        f.relay_url = b"ws://127.0.0.1:8787".to_vec();
        f.host_name = Some(b"x".to_vec());
    });
    b.decodable(
        "shortest workspace and host name, plain ws:// to loopback",
        &["MinLength", "Loopback"],
        &loopback,
        now,
    );
    let longest = with(|f| {
        f.workspace = b"0123456789abcdefghijklmnopqrstuvwxyz._-"
            .iter()
            .copied()
            .cycle()
            .take(64)
            .collect();
        f.relay_url = format!("wss://{}", "r".repeat(249)).into_bytes();
        f.host_name = Some("é".repeat(32).into_bytes());
    });
    b.decodable(
        "longest workspace (64), relay URL (255) and host name (64 bytes, 32 characters)",
        &["MaxLength", "Utf8HostName"],
        &longest,
        now,
    );
    let utf8 = with(|f| f.host_name = Some("Zoé's laptop ☕ 🚀".as_bytes().to_vec()));
    b.decodable(
        "host name with non-ASCII characters and spaces",
        &["Utf8HostName"],
        &utf8,
        now,
    );
    let printable = with(|f| {
        f.relay_url = b"wss://[::1]:443/a/b?c=d&e=~%20!$'()*+,;".to_vec();
        f.workspace = b"team_1.prod-eu".to_vec();
    });
    b.decodable(
        "relay URL with every kind of printable punctuation; workspace with . _ -",
        &["Charset"],
        &printable,
        now,
    );
    b.decodable(
        "one second before expiry is still valid",
        &["ExpiryEdge"],
        &base(),
        EXPIRES_AT - 1,
    );
    let far = with(|f| f.expires_at = (1 << 53) - 1);
    b.decodable(
        "expiry far in the future decodes (the 600 s lifetime limit binds the minting host, TOKEN-9)",
        &["Lifetime"],
        &far,
        now,
    );

    // --- expired ---
    b.decodable(
        "now equal to expiresAt: expired",
        &["Expiry", "ExpiryEdge"],
        &base(),
        EXPIRES_AT,
    );
    b.decodable(
        "now an hour after expiresAt: expired",
        &["Expiry"],
        &no_name,
        EXPIRES_AT + 3600,
    );

    // --- text form ---
    let good = text(&base().sealed());
    let good_body = good.get(7..).unwrap_or_default().to_owned();
    b.bad_text(
        "1025 characters: too long, checked first",
        &["TextOnly", "Length"],
        &format!("TETHER:{}", "A".repeat(1018)),
        &TokenError::TooLong,
    );
    b.bad_text(
        "2000 characters without a prefix: too long before bad prefix",
        &["TextOnly", "Length", "DecodeOrder"],
        &"7".repeat(2000),
        &TokenError::TooLong,
    );
    b.bad_text(
        "no prefix",
        &["TextOnly", "Prefix"],
        &good_body,
        &TokenError::BadPrefix,
    );
    b.bad_text(
        "lower-case prefix",
        &["TextOnly", "Prefix"],
        &format!("tether:{good_body}"),
        &TokenError::BadPrefix,
    );
    b.bad_text(
        "wrong separator after TETHER",
        &["TextOnly", "Prefix"],
        &format!("TETHER-{good_body}"),
        &TokenError::BadPrefix,
    );
    b.bad_text(
        "leading space before the prefix",
        &["TextOnly", "Prefix"],
        &format!(" {good}"),
        &TokenError::BadPrefix,
    );
    b.bad_text(
        "empty text",
        &["TextOnly", "Prefix"],
        "",
        &TokenError::BadPrefix,
    );
    b.bad_text(
        "lower-case base32",
        &["TextOnly", "Encoding"],
        &format!("TETHER:{}", good_body.to_ascii_lowercase()),
        &TokenError::BadEncoding,
    );
    let unpadded = text(&no_name.sealed());
    b.bad_text(
        "padding characters after the base32",
        &["TextOnly", "Encoding"],
        &format!("{unpadded}======"),
        &TokenError::BadEncoding,
    );
    b.bad_text(
        "space inside the base32",
        &["TextOnly", "Encoding"],
        &format!(
            "TETHER:{} {}",
            good_body.get(..8).unwrap_or_default(),
            good_body.get(8..).unwrap_or_default()
        ),
        &TokenError::BadEncoding,
    );
    b.bad_text(
        "trailing newline",
        &["TextOnly", "Encoding"],
        &format!("{good}\n"),
        &TokenError::BadEncoding,
    );
    b.bad_text(
        "digit 0 is not in the base32 alphabet",
        &["TextOnly", "Encoding"],
        &format!("TETHER:0{}", good_body.get(1..).unwrap_or_default()),
        &TokenError::BadEncoding,
    );
    b.bad_text(
        "non-ASCII character in the base32",
        &["TextOnly", "Encoding"],
        &format!("TETHER:É{}", good_body.get(1..).unwrap_or_default()),
        &TokenError::BadEncoding,
    );
    // The token without a host name is 131 bytes (131 mod 5 = 1): its last base32
    // character carries 3 bits of data and 2 unused low bits, which must be zero.
    let mut noncanon = unpadded.clone();
    let last = noncanon.pop().unwrap_or('A');
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let idx = alphabet
        .iter()
        .position(|&c| char::from(c) == last)
        .unwrap_or(0);
    noncanon.push(symbol(alphabet, u32::try_from(idx | 1).unwrap_or(1)));
    b.bad_text(
        "non-zero unused bits in the last base32 character (non-canonical)",
        &["TextOnly", "Encoding"],
        &noncanon,
        &TokenError::BadEncoding,
    );
    b.bad_text(
        "one base32 character cannot encode a byte",
        &["TextOnly", "Encoding"],
        "TETHER:A",
        &TokenError::BadEncoding,
    );

    // --- binary structure ---
    b.bad_text(
        "prefix only: empty binary",
        &["TextOnly", "Truncated"],
        "TETHER:",
        &TokenError::Truncated,
    );
    let full = no_name.sealed();
    b.bad_bytes(
        "98 bytes: one short of the minimum",
        &["Truncated"],
        full.get(..98).unwrap_or_default(),
        &TokenError::Truncated,
    );
    b.bad_bytes(
        "version 2 alone: the version is checked before the length",
        &["Version", "DecodeOrder"],
        &[0x02],
        &TokenError::UnknownVersion { version: 2 },
    );
    b.bad_bytes(
        "version 2, otherwise a well-formed token with a correct checksum",
        &["Version", "RecomputedChecksum"],
        &with(|f| f.version = 2).sealed(),
        &TokenError::UnknownVersion { version: 2 },
    );
    b.bad_bytes(
        "version 0",
        &["Version", "RecomputedChecksum"],
        &with(|f| f.version = 0).sealed(),
        &TokenError::UnknownVersion { version: 0 },
    );
    let mut stale = base().sealed();
    if let Some(v) = stale.first_mut() {
        *v = 0xff;
    }
    b.bad_bytes(
        "version 0xff under a stale checksum: the version is checked before the checksum",
        &["Version", "StaleChecksum", "DecodeOrder"],
        &stale,
        &TokenError::UnknownVersion { version: 0xff },
    );
    let mut flipped = base().sealed();
    if let Some(x) = flipped.last_mut() {
        *x ^= 0x01;
    }
    b.bad_bytes(
        "last checksum bit flipped",
        &["Checksum"],
        &flipped,
        &TokenError::BadChecksum,
    );
    let mut flipped = base().sealed();
    if let Some(x) = flipped.get_mut(3) {
        *x ^= 0x80;
    }
    b.bad_bytes(
        "host key bit flipped",
        &["Checksum"],
        &flipped,
        &TokenError::BadChecksum,
    );
    let mut flipped = base().sealed();
    if let Some(x) = flipped.get_mut(1) {
        *x = 0x03;
    }
    b.bad_bytes(
        "reserved flag set under a stale checksum: the checksum is checked first",
        &["Checksum", "StaleChecksum", "DecodeOrder"],
        &flipped,
        &TokenError::BadChecksum,
    );
    for flags in [0x03u8, 0x80] {
        b.bad_bytes(
            &format!("flags 0x{flags:02x}: reserved bit set"),
            &["Flags", "RecomputedChecksum"],
            &with(|f| f.flags = Some(flags)).sealed(),
            &TokenError::ReservedFlags { flags },
        );
    }
    for len in [31u8, 33] {
        b.bad_bytes(
            &format!("host key length byte {len}"),
            &["KeyLength", "RecomputedChecksum"],
            &with(|f| f.key_len = len).sealed(),
            &TokenError::BadKeyLength { len },
        );
    }
    let mut body = no_name.body();
    if let Some(x) = body.get_mut(91) {
        *x = 0xff;
    }
    b.bad_bytes(
        "workspace length runs into the checksum",
        &["Truncated", "RecomputedChecksum"],
        &seal(body),
        &TokenError::Truncated,
    );
    b.bad_bytes(
        "host name flag set but no host name field",
        &["Truncated", "RecomputedChecksum"],
        &with(|f| {
            f.host_name = None;
            f.flags = Some(0x01);
        })
        .sealed(),
        &TokenError::Truncated,
    );
    let mut body = base().body();
    let name_len_at = body.len() - 1 - 9;
    if let Some(x) = body.get_mut(name_len_at) {
        *x = 10;
    }
    b.bad_bytes(
        "host name length one more than the bytes present",
        &["Truncated", "RecomputedChecksum"],
        &seal(body),
        &TokenError::Truncated,
    );
    let mut body = base().body();
    body.push(0x00);
    b.bad_bytes(
        "one extra byte before the checksum",
        &["TrailingBytes", "RecomputedChecksum"],
        &seal(body),
        &TokenError::TrailingBytes,
    );
    b.bad_bytes(
        "host name present while flag bit 0 is clear",
        &["TrailingBytes", "RecomputedChecksum"],
        &with(|f| f.flags = Some(0x00)).sealed(),
        &TokenError::TrailingBytes,
    );
    b.bad_bytes(
        "trailing byte and an invalid workspace: structure is checked before content",
        &["TrailingBytes", "RecomputedChecksum", "DecodeOrder"],
        &{
            let mut body = with(|f| f.workspace = b"ACME".to_vec()).body();
            body.push(0);
            seal(body)
        },
        &TokenError::TrailingBytes,
    );

    // --- fields ---
    for (comment, ws) in [
        ("upper-case workspace id", b"Acme".to_vec()),
        ("empty workspace id", Vec::new()),
        ("workspace id of 65 bytes", vec![b'a'; 65]),
        ("slash in workspace id", b"acme/dev".to_vec()),
        ("workspace id that is not UTF-8", vec![0xff, 0x61]),
    ] {
        b.bad_bytes(
            comment,
            &["Workspace", "RecomputedChecksum"],
            &with(|f| f.workspace = ws).sealed(),
            &TokenError::BadWorkspace,
        );
    }
    for (comment, url) in [
        ("https:// relay URL", b"https://relay.example.com".to_vec()),
        ("empty relay URL", Vec::new()),
        (
            "relay URL with a space",
            b"wss://relay.example.com/a b".to_vec(),
        ),
        ("scheme only, nothing after wss://", b"wss://".to_vec()),
        ("upper-case scheme", b"WSS://relay.example.com".to_vec()),
        (
            "non-ASCII relay URL",
            "wss://relé.example".as_bytes().to_vec(),
        ),
        ("DEL character in relay URL", b"wss://relay\x7f".to_vec()),
    ] {
        b.bad_bytes(
            comment,
            &["RelayUrl", "RecomputedChecksum"],
            &with(|f| f.relay_url = url).sealed(),
            &TokenError::BadRelayUrl,
        );
    }
    b.bad_bytes(
        "bad workspace and bad relay URL: the workspace is reported",
        &["Workspace", "RecomputedChecksum", "DecodeOrder"],
        &with(|f| {
            f.workspace = b"A".to_vec();
            f.relay_url = b"http://x".to_vec();
        })
        .sealed(),
        &TokenError::BadWorkspace,
    );
    for (comment, name) in [
        ("empty host name", Vec::new()),
        ("newline in host name", b"build\nbox".to_vec()),
        ("DEL in host name", b"build\x7fbox".to_vec()),
        (
            "C1 control U+0085 in host name",
            "build\u{85}box".as_bytes().to_vec(),
        ),
        ("host name that is not UTF-8", vec![0x62, 0xc3, 0x28]),
        ("host name of 65 bytes", vec![b'n'; 65]),
    ] {
        b.bad_bytes(
            comment,
            &["HostNameConstraint", "RecomputedChecksum"],
            &with(|f| f.host_name = Some(name)).sealed(),
            &TokenError::BadHostName,
        );
    }
    // The shortest layout (section 2.1: W = 1, U = 1, no host name) is exactly 99 bytes:
    // long enough for step 6, so its one-byte relay URL is what fails (step 13).
    let shortest = with(|f| {
        f.workspace = b"a".to_vec();
        f.relay_url = b"x".to_vec();
        f.host_name = None;
    })
    .sealed();
    debug_assert_eq!(shortest.len(), 99);
    b.bad_bytes(
        "99 bytes, the shortest layout: not truncated; its 1-byte relay URL breaks TOKEN-8",
        &["RelayUrl", "RecomputedChecksum", "DecodeOrder"],
        &shortest,
        &TokenError::BadRelayUrl,
    );
    // TOKEN-12 counts characters (Unicode scalar values), not bytes.
    b.bad_text(
        "1024 two-byte characters (2048 bytes): not too long, so the prefix is checked",
        &["TextOnly", "Length", "DecodeOrder"],
        &"\u{e9}".repeat(1024),
        &TokenError::BadPrefix,
    );
    b.bad_text(
        "1025 two-byte characters: too long",
        &["TextOnly", "Length"],
        &"\u{e9}".repeat(1025),
        &TokenError::TooLong,
    );

    let n = b.tests.len();
    to_json(&json!({
        "vectors": "pairing-token",
        "specVersion": 1,
        "description": "Pairing tokens (spec/02-pairing-token.md): binary form, text form, decode order, expiry. \
            Valid cases give the text, the binary form (hex) and the decoded fields; a decoder must \
            accept text and binary, produce those fields, and an encoder given the fields must produce \
            exactly that text and binary. Invalid cases give the input(s) and the error a decoder \
            must report (the first failure in the spec's decode order).",
        "notes": {
            "HostName": "token carries a host name (flags bit 0)",
            "NoHostName": "token carries no host name",
            "MinLength": "fields at their shortest length",
            "MaxLength": "fields at their longest length",
            "Loopback": "plain ws:// to a loopback address (allowed by TOKEN-8; LINK-2 restricts its use)",
            "Utf8HostName": "host name with multi-byte UTF-8",
            "Charset": "fields using every allowed class of character",
            "Lifetime": "decoders do not enforce the minting lifetime limit (TOKEN-9)",
            "Expiry": "decodes, but check_expiry(now) must fail with Expired (TOKEN-10): now >= expiresAt",
            "ExpiryEdge": "now is within one second of expiresAt",
            "TextOnly": "invalid text with no binary form: only the text decoder is tested",
            "Length": "the 1024-character limit (TOKEN-12): characters are Unicode scalar values, not bytes",
            "Prefix": "missing or different prefix (TOKEN-3)",
            "Encoding": "text after the prefix is not canonical upper-case unpadded base32 (TOKEN-3)",
            "Truncated": "the binary ends before a field does (TOKEN-5)",
            "Version": "version byte other than 1 (TOKEN-2)",
            "Checksum": "checksum does not match (TOKEN-4)",
            "Flags": "reserved flag bit set (TOKEN-6)",
            "KeyLength": "host key length byte other than 32 (TOKEN-13)",
            "TrailingBytes": "bytes between the last field and the checksum (TOKEN-5)",
            "Workspace": "workspace id breaks its constraints (TOKEN-7)",
            "RelayUrl": "relay URL breaks its constraints (TOKEN-8)",
            "HostNameConstraint": "host name breaks its constraints (TOKEN-8)",
            "RecomputedChecksum": "the checksum is correct for the modified bytes, so the field check is reached",
            "StaleChecksum": "bytes modified without recomputing the checksum",
            "DecodeOrder": "more than one thing is wrong; the error is the first in the spec's decode order",
        },
        "schema": {
            "text": "the text form (string); present in every case",
            "binary": "the binary form (hex); present when the text after the prefix is canonical base32 of at least one byte; decoding it must give the same result as decoding the text",
            "token": "decoded fields: hostKey, tokenId, tokenSecret (hex), expiresAt (Unix seconds), workspace, relayUrl, hostName (string or null)",
            "now": "Unix seconds to check expiry against",
            "error": "name: the error variant; requirement: the requirement id it enforces",
        },
        "numberOfTests": n,
        "tests": b.tests,
    }))
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    field(v, key)?
        .as_str()
        .ok_or_else(|| format!("{key} is not a string"))
}

fn hex_array<const N: usize>(v: &Value, key: &str) -> Result<[u8; N], String> {
    hex::decode(str_field(v, key)?)
        .map_err(|e| format!("{key}: {e}"))?
        .try_into()
        .map_err(|_| format!("{key} is not {N} bytes"))
}

fn expected_token(v: &Value) -> Result<PairingToken, String> {
    let host_name = match field(v, "hostName")? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        _ => return Err("hostName is neither string nor null".into()),
    };
    PairingToken::new(
        hex_array(v, "hostKey")?,
        hex_array(v, "tokenId")?,
        hex_array(v, "tokenSecret")?,
        field(v, "expiresAt")?
            .as_u64()
            .ok_or("expiresAt is not a u64")?,
        str_field(v, "workspace")?,
        str_field(v, "relayUrl")?,
        host_name,
    )
    .map_err(|e| format!("stated fields do not make a token: {e}"))
}

fn check_case(case: &Value) -> Result<(), String> {
    let result = str_field(case, "result")?;
    let text = case.get("text").and_then(Value::as_str);
    let binary = match case.get("binary").and_then(Value::as_str) {
        Some(h) => Some(hex::decode(h).map_err(|e| format!("binary: {e}"))?),
        None => None,
    };
    let from_text = text.map(PairingToken::from_text);
    let from_binary = binary.as_deref().map(PairingToken::decode_binary);
    let decoded = match (from_text, from_binary) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!("text gives {a:?}, binary gives {b:?}"));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => return Err("neither text nor binary".into()),
    };
    let want_error = match case.get("error") {
        Some(e) => Some((str_field(e, "name")?, str_field(e, "requirement")?)),
        None => None,
    };
    let decodable = result == "valid" || want_error.is_some_and(|(n, _)| n == "Expired");
    if decodable {
        let token = decoded.map_err(|e| format!("decode failed: {e:?}"))?;
        if token != expected_token(field(case, "token")?)? {
            return Err(format!("decoded {token:?}, not the stated fields"));
        }
        if Some(token.to_text().as_str()) != text {
            return Err("re-encoded text differs".into());
        }
        if Some(token.encode_binary()) != binary {
            return Err("re-encoded binary differs".into());
        }
        let now = field(case, "now")?.as_u64().ok_or("now is not a u64")?;
        let expiry = token.check_expiry(UnixTime::from_secs(now));
        match (result, want_error, expiry) {
            ("valid", None, Ok(())) => Ok(()),
            ("invalid", Some((name, req)), Err(e))
                if e.name() == name && e.requirement() == req =>
            {
                Ok(())
            }
            (_, _, got) => Err(format!("expiry check gave {got:?}")),
        }
    } else {
        let (name, req) = want_error.ok_or("invalid case without error")?;
        if result != "invalid" {
            return Err(format!("result {result:?} with an error"));
        }
        match decoded {
            Err(e) if e.name() == name && e.requirement() == req => Ok(()),
            got => Err(format!("expected {name} ({req}), got {got:?}")),
        }
    }
}

fn check(contents: &str) -> Result<usize, String> {
    crate::format::check_cases(contents, check_case)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checker is not a rubber stamp: changing any stated outcome makes it fail.
    #[test]
    fn check_rejects_altered_cases() {
        let good = generate();
        assert!(check(&good).is_ok());
        let mut file: Value = serde_json::from_str(&good).unwrap();
        let n = file["tests"].as_array().unwrap().len();
        for i in 0..n {
            let mut altered = file.clone();
            let case = &mut altered["tests"][i];
            if case.get("error").is_some() {
                let name = case["error"]["name"].as_str().unwrap().to_owned();
                case["error"]["name"] = json!(if name == "Truncated" {
                    "BadChecksum"
                } else {
                    "Truncated"
                });
            } else {
                case["token"]["expiresAt"] =
                    json!(case["token"]["expiresAt"].as_u64().unwrap() + 1);
            }
            assert!(check(&altered.to_string()).is_err(), "case {}", i + 1);
        }
        file["numberOfTests"] = json!(n + 1);
        assert!(check(&file.to_string()).is_err());
    }

    #[test]
    fn base32_matches_the_decoder() {
        for len in 0u8..12 {
            let bytes: Vec<u8> = (0..len)
                .map(|i| i.wrapping_mul(37).wrapping_add(11))
                .collect();
            let t = format!("TETHER:{}", base32(&bytes));
            let direct = PairingToken::decode_binary(&bytes);
            assert_eq!(PairingToken::from_text(&t), direct, "{t}");
        }
    }
}
