//! An independent reading of a host's pairing token (`spec/02-pairing-token.md`).
//!
//! The runner pairs with the host under test through `tether-proto`'s token decoder, the
//! same code the reference host encodes with. A fault shared by both sides would cancel out,
//! so the `TOKEN-*` cases judge the token the host printed with this module instead: a
//! base32 decoder, a field reader and the rules of chapter 2, written from the spec and
//! sharing nothing with `tether_proto::token` but the BLAKE2s primitive.
//!
//! [`read`] checks structure in the spec's decode order (section 2.3) and returns the raw
//! fields; the content rules are separate functions so that each case reports its own
//! requirement.

use blake2::{Blake2s256, Digest};

/// `TETHER:` (TOKEN-3).
const PREFIX: &str = "TETHER:";
/// The checksum label (TOKEN-4).
const CHECKSUM_LABEL: &[u8; 24] = b"TETHER-TOKEN-CHECKSUM-V1";
/// Shortest binary form: no host name, W = 1, U = 1 (section 2.1).
const MIN_BINARY: usize = 99;
/// Longest text form a decoder accepts (TOKEN-12).
const MAX_TEXT: usize = 1024;

/// The fields of a token as the host wrote them, before any content rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawToken {
    /// The whole binary form, checksum included.
    pub binary: Vec<u8>,
    /// Byte 0.
    pub version: u8,
    /// Byte 1.
    pub flags: u8,
    /// Byte 2.
    pub key_len: u8,
    /// The host's static public key.
    pub host_key: [u8; 32],
    /// Token id.
    pub token_id: [u8; 16],
    /// Token secret.
    pub token_secret: [u8; 32],
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// Workspace id bytes.
    pub workspace: Vec<u8>,
    /// Relay URL bytes.
    pub relay_url: Vec<u8>,
    /// Host name bytes, when flag bit 0 is set.
    pub host_name: Option<Vec<u8>>,
    /// The four checksum bytes.
    pub checksum: [u8; 4],
}

/// Why a token text is not a well-formed token: the spec's error name, its requirement and
/// what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The error name of section 2.3 (`BadChecksum`, …).
    pub name: &'static str,
    /// The requirement id.
    pub requirement: &'static str,
    /// What the runner found.
    pub detail: String,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.name, self.requirement, self.detail)
    }
}

fn fault(name: &'static str, requirement: &'static str, detail: impl Into<String>) -> Fault {
    Fault {
        name,
        requirement,
        detail: detail.into(),
    }
}

/// The value of one base32 character (RFC 4648 section 6), upper case only.
fn b32_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'2'..=b'7' => Some(c - b'2' + 26),
        _ => None,
    }
}

/// Strict unpadded base32: every character in the alphabet, no final group of 1, 3 or 6
/// characters, unused bits zero (TOKEN-3).
pub fn base32_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for (i, c) in text.bytes().enumerate() {
        let v = b32_value(c)
            .ok_or_else(|| format!("character {i} ({:?}) is outside A-Z 2-7", char::from(c)))?;
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if matches!(text.len() % 8, 1 | 3 | 6) {
        return Err(format!(
            "{} base32 characters: a final group of {} cannot encode whole bytes",
            text.len(),
            text.len() % 8
        ));
    }
    if acc != 0 {
        return Err(format!(
            "the {bits} unused bits of the last character are not zero"
        ));
    }
    Ok(out)
}

/// Canonical unpadded upper-case base32 of `bytes`.
pub fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut push = |v: u32| {
        if let Some(&c) = ALPHABET.get((v & 31) as usize) {
            out.push(char::from(c));
        }
    };
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            push(acc >> bits);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        push(acc << (5 - bits));
    }
    out
}

/// The checksum TOKEN-4 defines over `body` (every byte before the checksum).
pub fn checksum(body: &[u8]) -> [u8; 4] {
    let mut h = Blake2s256::new();
    h.update(CHECKSUM_LABEL);
    h.update(body);
    let d = h.finalize();
    let mut out = [0; 4];
    out.copy_from_slice(d.get(..4).unwrap_or(&[0; 4]));
    out
}

/// A cursor over the fields before the checksum (section 2.3 steps 10–11).
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Fault> {
        if self.rest.len() < n {
            return Err(fault(
                "Truncated",
                "TOKEN-5",
                format!(
                    "the {what} ({n} bytes) runs into the checksum: {} bytes left",
                    self.rest.len()
                ),
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Fault> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn prefixed(&mut self, what: &str) -> Result<Vec<u8>, Fault> {
        let len = self.array::<1>(&format!("{what} length byte"))?[0];
        Ok(self.take(usize::from(len), what)?.to_vec())
    }
}

/// Reads a token text in the decode order of section 2.3, steps 1–11: length, prefix,
/// canonical base32, version, minimum length, checksum, reserved flags, key length, then
/// the structure of every field. Content rules (steps 12–14) are [`workspace_fault`],
/// [`relay_url_fault`] and [`host_name_fault`].
pub fn read(text: &str) -> Result<RawToken, Fault> {
    if text.chars().count() > MAX_TEXT {
        return Err(fault(
            "TooLong",
            "TOKEN-12",
            format!("{} characters, at most {MAX_TEXT}", text.chars().count()),
        ));
    }
    let Some(b32) = text.strip_prefix(PREFIX) else {
        return Err(fault(
            "BadPrefix",
            "TOKEN-3",
            format!(
                "the text begins {:?}",
                text.chars().take(7).collect::<String>()
            ),
        ));
    };
    let binary = base32_decode(b32).map_err(|e| fault("BadEncoding", "TOKEN-3", e))?;
    let Some(&version) = binary.first() else {
        return Err(fault("Truncated", "TOKEN-5", "the binary form is empty"));
    };
    if version != 1 {
        return Err(fault(
            "UnknownVersion",
            "TOKEN-2",
            format!("version byte {version:#04x}"),
        ));
    }
    if binary.len() < MIN_BINARY {
        return Err(fault(
            "Truncated",
            "TOKEN-5",
            format!("{} bytes, at least {MIN_BINARY}", binary.len()),
        ));
    }
    let (body, sum) = binary.split_at(binary.len() - 4);
    let mut stored = [0; 4];
    stored.copy_from_slice(sum);
    let expected = checksum(body);
    if stored != expected {
        return Err(fault(
            "BadChecksum",
            "TOKEN-4",
            format!(
                "checksum {}, BLAKE2s of the label and the other bytes gives {}",
                hex::encode(stored),
                hex::encode(expected)
            ),
        ));
    }
    let mut f = Fields { rest: body };
    let [_, flags, key_len] = f.array::<3>("header")?;
    if flags & 0xfe != 0 {
        return Err(fault(
            "ReservedFlags",
            "TOKEN-6",
            format!("flags byte {flags:#04x}"),
        ));
    }
    if key_len != 32 {
        return Err(fault(
            "BadKeyLength",
            "TOKEN-13",
            format!("host key length byte {key_len}"),
        ));
    }
    let host_key = f.array::<32>("host key")?;
    let token_id = f.array::<16>("token id")?;
    let token_secret = f.array::<32>("token secret")?;
    let expires_at = u64::from_be_bytes(f.array::<8>("expiry")?);
    let workspace = f.prefixed("workspace id")?;
    let relay_url = f.prefixed("relay URL")?;
    let host_name = if flags & 1 == 1 {
        Some(f.prefixed("host name")?)
    } else {
        None
    };
    if !f.rest.is_empty() {
        return Err(fault(
            "TrailingBytes",
            "TOKEN-5",
            format!("{} bytes after the last field", f.rest.len()),
        ));
    }
    Ok(RawToken {
        version,
        flags,
        key_len,
        host_key,
        token_id,
        token_secret,
        expires_at,
        workspace,
        relay_url,
        host_name,
        checksum: stored,
        binary,
    })
}

/// TOKEN-7: 1–64 bytes of `a-z 0-9 . _ -`.
pub fn workspace_fault(ws: &[u8]) -> Option<String> {
    let ok_byte = |b: &u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-');
    if ws.is_empty() || ws.len() > 64 {
        return Some(format!(
            "workspace id of {} bytes, 1 to 64 allowed",
            ws.len()
        ));
    }
    ws.iter()
        .find(|b| !ok_byte(b))
        .map(|b| format!("workspace id has byte {b:#04x}"))
}

/// TOKEN-8: 1–255 bytes of `0x21..=0x7e`, `ws://` or `wss://` and at least one byte more.
pub fn relay_url_fault(url: &[u8]) -> Option<String> {
    let shown = String::from_utf8_lossy(url);
    if let Some(b) = url.iter().find(|b| !(0x21..=0x7e).contains(*b)) {
        return Some(format!("relay URL {shown:?} has byte {b:#04x}"));
    }
    let after = url
        .strip_prefix(b"wss://")
        .or_else(|| url.strip_prefix(b"ws://"));
    match after {
        Some(rest) if !rest.is_empty() => None,
        Some(_) => Some(format!("relay URL {shown:?} has nothing after the scheme")),
        None => Some(format!("relay URL {shown:?} is not ws:// or wss://")),
    }
}

/// TOKEN-8: 1–64 bytes of UTF-8 without a control character.
pub fn host_name_fault(name: &[u8]) -> Option<String> {
    if name.is_empty() || name.len() > 64 {
        return Some(format!(
            "host name of {} bytes, 1 to 64 allowed",
            name.len()
        ));
    }
    match std::str::from_utf8(name) {
        Err(_) => Some(format!("host name {} is not UTF-8", hex::encode(name))),
        Ok(s) => s
            .chars()
            .find(|c| matches!(u32::from(*c), 0..=0x1f | 0x7f..=0x9f))
            .map(|c| {
                format!(
                    "host name {s:?} has control character U+{:04X}",
                    u32::from(c)
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    /// `vectors/pairing-token.json` case 1 (spec section 2.5).
    const CASE_1: &str = "TETHER:AEASBYXXNTTCXILTTRSLPHH5CFG3FMDF4Z3NTRN4DQYWZNQQNRTQKOCP6OBQZPTXP4TGVPW6VTJ3O3V5PWHVXTHJXPBT3WNYBB46HFEJQYC7HMDAWNAC7FPWFH6XC2K4BXOCEAAAAAAGWNXMQAEGCY3NMUWWIZLWDJ3XG4Z2F4XXEZLMMF4S4ZLYMFWXA3DFFZRW63JPOYYQSYTVNFWGILLCN54NQALKS4";

    #[test]
    fn reads_the_spec_example() {
        let t = read(CASE_1).unwrap();
        assert_eq!(t.flags, 1);
        assert_eq!(t.workspace, b"acme-dev");
        assert_eq!(t.relay_url, b"wss://relay.example.com/v1");
        assert_eq!(t.host_name.as_deref(), Some(&b"build-box"[..]));
        assert_eq!(t.expires_at, 1_798_761_600);
        assert_eq!(
            hex::encode(t.host_key),
            "e2f76ce62ba1739c64b79cfd114db2b065e676d9c5bc1c316cb6106c6705384f"
        );
        assert_eq!(format!("TETHER:{}", base32_encode(&t.binary)), CASE_1);
        assert_eq!(workspace_fault(&t.workspace), None);
        assert_eq!(relay_url_fault(&t.relay_url), None);
        assert_eq!(host_name_fault(t.host_name.as_deref().unwrap()), None);
    }

    /// Every case of `vectors/pairing-token.json`: valid ones read with the same fields,
    /// invalid ones (other than `Expired`, which is not a decoding error) with the same
    /// error name and requirement.
    #[test]
    fn agrees_with_every_token_vector() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/pairing-token.json");
        let file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut checked = 0;
        for t in file["tests"].as_array().unwrap() {
            let text = t["text"].as_str().unwrap();
            let got = read(text).and_then(|raw| {
                let content = workspace_fault(&raw.workspace)
                    .map(|d| fault("BadWorkspace", "TOKEN-7", d))
                    .or_else(|| {
                        relay_url_fault(&raw.relay_url).map(|d| fault("BadRelayUrl", "TOKEN-8", d))
                    })
                    .or_else(|| {
                        raw.host_name
                            .as_deref()
                            .and_then(host_name_fault)
                            .map(|d| fault("BadHostName", "TOKEN-8", d))
                    });
                content.map_or(Ok(raw), Err)
            });
            let id = &t["tcId"];
            match t["error"]["name"].as_str() {
                Some("Expired") | None => {
                    let raw = got.unwrap_or_else(|e| panic!("tcId {id}: {e:?}"));
                    let tok = &t["token"];
                    assert_eq!(hex::encode(raw.host_key), tok["hostKey"], "tcId {id}");
                    assert_eq!(hex::encode(raw.token_id), tok["tokenId"], "tcId {id}");
                    assert_eq!(
                        hex::encode(raw.token_secret),
                        tok["tokenSecret"],
                        "tcId {id}"
                    );
                    assert_eq!(raw.expires_at, tok["expiresAt"], "tcId {id}");
                    assert_eq!(raw.workspace, tok["workspace"].as_str().unwrap().as_bytes());
                    assert_eq!(raw.relay_url, tok["relayUrl"].as_str().unwrap().as_bytes());
                    assert_eq!(
                        raw.host_name,
                        tok["hostName"].as_str().map(|s| s.as_bytes().to_vec()),
                        "tcId {id}"
                    );
                }
                Some(name) => {
                    let e = got.expect_err(&format!("tcId {id} reads, expected {name}"));
                    assert_eq!(e.name, name, "tcId {id}: {}", e.detail);
                    assert_eq!(e.requirement, t["error"]["requirement"], "tcId {id}");
                }
            }
            checked += 1;
        }
        assert_eq!(checked, file["numberOfTests"].as_u64().unwrap());
    }

    #[test]
    fn base32_round_trips_every_length() {
        let bytes: Vec<u8> = (0..=255u8).rev().collect();
        for n in 0..40 {
            let enc = base32_encode(&bytes[..n]);
            assert_eq!(base32_decode(&enc).unwrap(), &bytes[..n], "{n} bytes");
        }
        assert!(base32_decode("AB").is_err(), "unused bits set");
        assert!(base32_decode("A").is_err(), "final group of 1");
        assert!(base32_decode("ae").is_err(), "lower case");
    }
}
