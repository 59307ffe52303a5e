//! Handshake payloads: message 1 ([`HandshakePayload`], `CHAN-3`, `CHAN-4`) and message 2
//! ([`HostInfo`], `CHAN-6`, `CHAN-25`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::ChannelError;
use crate::time::UnixTime;

/// Version byte that starts both handshake payloads.
pub const PAYLOAD_VERSION: u8 = 0x01;
/// Message-1 kind byte: an already paired controller opens a session.
pub const KIND_SESSION: u8 = 0x00;
/// Message-1 kind byte: a controller pairs with a token.
pub const KIND_PAIR: u8 = 0x01;
/// Longest device name in a PAIR payload, in bytes.
pub const MAX_DEVICE_NAME_LEN: usize = 64;
/// Largest message-2 payload, version byte included (`CHAN-25`).
pub const MAX_HOST_INFO_LEN: usize = 4096;
/// The value of the `protocol` member of [`HostInfo`] in Tether v1.
pub const HOST_INFO_PROTOCOL: &str = "tether/1";

/// TAI64 label of the Unix epoch: 2^62.
const TAI64_EPOCH: u64 = 1 << 62;
/// First TAI64 label that is reserved: 2^63.
const TAI64_RESERVED: u64 = 1 << 63;
const NANOS_PER_SEC: u32 = 1_000_000_000;

/// A message-1 timestamp in TAI64N (`CHAN-4`): 8 bytes of `2^62 + Unix seconds`, then 4
/// bytes of nanoseconds, both big-endian. Leap seconds are ignored, as in WireGuard: the
/// label is `2^62` plus the Unix time, not true TAI.
///
/// Ordering is chronological, and equals the ordering of the 12 encoded bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    tai_secs: u64,
    nanos: u32,
}

impl Timestamp {
    /// Encoded length.
    pub const LEN: usize = 12;

    /// The timestamp of a Unix time. Times later than `2^62 - 1` seconds after the epoch
    /// (about 146 billion years) are clamped.
    pub fn from_unix(t: UnixTime) -> Self {
        let secs = t.as_secs().min(TAI64_EPOCH - 1);
        Self {
            tai_secs: TAI64_EPOCH + secs,
            nanos: t.subsec_nanos(),
        }
    }

    /// The Unix time this timestamp names.
    pub fn to_unix(self) -> UnixTime {
        UnixTime::new(self.tai_secs - TAI64_EPOCH, self.nanos)
    }

    /// The timestamp a controller sends next to a host (`CHAN-5`): `now`, or 1 ns after the
    /// last one it sent to that host if `now` is not later.
    pub fn next_after(last: Option<Self>, now: UnixTime) -> Self {
        let now = Self::from_unix(now);
        match last {
            Some(last) if now <= last => last.plus_one_nanosecond(),
            _ => now,
        }
    }

    fn plus_one_nanosecond(self) -> Self {
        if self.nanos + 1 < NANOS_PER_SEC {
            Self {
                tai_secs: self.tai_secs,
                nanos: self.nanos + 1,
            }
        } else if self.tai_secs + 1 < TAI64_RESERVED {
            Self {
                tai_secs: self.tai_secs + 1,
                nanos: 0,
            }
        } else {
            self
        }
    }

    /// The 12 wire bytes.
    pub fn to_bytes(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        let (secs, nanos) = out.split_at_mut(8);
        secs.copy_from_slice(&self.tai_secs.to_be_bytes());
        nanos.copy_from_slice(&self.nanos.to_be_bytes());
        out
    }

    /// Decodes 12 wire bytes.
    ///
    /// # Errors
    /// [`ChannelError::BadTimestamp`] if the nanoseconds are 10^9 or more, or the seconds
    /// label is below `2^62` (before the Unix epoch) or at least `2^63` (reserved by TAI64)
    /// (`CHAN-4`).
    pub fn from_bytes(bytes: &[u8; 12]) -> Result<Self, ChannelError> {
        let mut secs = [0u8; 8];
        let mut nanos = [0u8; 4];
        let (s, n) = bytes.split_at(8);
        secs.copy_from_slice(s);
        nanos.copy_from_slice(n);
        let tai_secs = u64::from_be_bytes(secs);
        let nanos = u32::from_be_bytes(nanos);
        if nanos >= NANOS_PER_SEC || !(TAI64_EPOCH..TAI64_RESERVED).contains(&tai_secs) {
            return Err(ChannelError::BadTimestamp);
        }
        Ok(Self { tai_secs, nanos })
    }
}

/// The payload of message 1, written by the controller (`CHAN-3`).
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 1 | version `0x01` |
/// | 1 | 1 | kind: `0x00` SESSION, `0x01` PAIR |
/// | 2 | 12 | [`Timestamp`] |
/// | 14 | 16 | PAIR only: token id |
/// | 30 | 32 | PAIR only: token secret |
/// | 62 | 1+N | PAIR only: device name, length 1..=64, UTF-8 without control characters |
#[derive(Clone, PartialEq, Eq)]
pub enum HandshakePayload {
    /// An already paired controller opens a session.
    Session {
        /// Strictly increasing per host (`CHAN-5`, `CHAN-10`).
        timestamp: Timestamp,
    },
    /// A controller pairs, presenting a token (`CHAN-12`).
    Pair {
        /// Strictly increasing per host (`CHAN-5`, `CHAN-10`).
        timestamp: Timestamp,
        /// The token id from the pairing token.
        token_id: [u8; 16],
        /// The token secret from the pairing token.
        token_secret: [u8; 32],
        /// The name the host records for this device.
        device_name: String,
    },
}

impl fmt::Debug for HandshakePayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session { timestamp } => f
                .debug_struct("Session")
                .field("timestamp", timestamp)
                .finish(),
            Self::Pair {
                timestamp,
                token_id,
                device_name,
                ..
            } => f
                .debug_struct("Pair")
                .field("timestamp", timestamp)
                .field("token_id", &hex::encode(token_id))
                .field("token_secret", &"<redacted>")
                .field("device_name", device_name)
                .finish(),
        }
    }
}

fn bad(reason: &'static str) -> ChannelError {
    ChannelError::BadPayload { reason }
}

fn check_device_name(name: &str) -> Result<u8, ChannelError> {
    if name.is_empty() || name.len() > MAX_DEVICE_NAME_LEN {
        return Err(bad("device name length not in 1..=64"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("device name contains a control character"));
    }
    u8::try_from(name.len()).map_err(|_| bad("device name length not in 1..=64"))
}

/// Splits `n` bytes off the front of `input`, or fails as truncated.
fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], ChannelError> {
    if input.len() < n {
        return Err(bad("truncated"));
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn take_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], ChannelError> {
    let mut out = [0u8; N];
    out.copy_from_slice(take(input, N)?);
    Ok(out)
}

impl HandshakePayload {
    /// The timestamp, of either kind.
    pub fn timestamp(&self) -> Timestamp {
        match self {
            Self::Session { timestamp } | Self::Pair { timestamp, .. } => *timestamp,
        }
    }

    /// Encodes the payload.
    ///
    /// # Errors
    /// [`ChannelError::BadPayload`] if a PAIR device name is empty, longer than 64 bytes or
    /// contains a control character.
    pub fn encode(&self) -> Result<Vec<u8>, ChannelError> {
        match self {
            Self::Session { timestamp } => {
                let mut out = Vec::with_capacity(14);
                out.extend_from_slice(&[PAYLOAD_VERSION, KIND_SESSION]);
                out.extend_from_slice(&timestamp.to_bytes());
                Ok(out)
            }
            Self::Pair {
                timestamp,
                token_id,
                token_secret,
                device_name,
            } => {
                let name_len = check_device_name(device_name)?;
                let mut out = Vec::with_capacity(63 + device_name.len());
                out.extend_from_slice(&[PAYLOAD_VERSION, KIND_PAIR]);
                out.extend_from_slice(&timestamp.to_bytes());
                out.extend_from_slice(token_id);
                out.extend_from_slice(token_secret);
                out.push(name_len);
                out.extend_from_slice(device_name.as_bytes());
                Ok(out)
            }
        }
    }

    /// Decodes a message-1 payload, strictly (`CHAN-3`).
    ///
    /// # Errors
    /// [`ChannelError::BadPayload`] for an unknown version or kind, a short payload, a bad
    /// device name or trailing bytes; [`ChannelError::BadTimestamp`] for a malformed
    /// timestamp (`CHAN-4`).
    pub fn decode(bytes: &[u8]) -> Result<Self, ChannelError> {
        let mut input = bytes;
        let [version] = take_array::<1>(&mut input)?;
        if version != PAYLOAD_VERSION {
            return Err(bad("unknown payload version"));
        }
        let [kind] = take_array::<1>(&mut input)?;
        if kind != KIND_SESSION && kind != KIND_PAIR {
            return Err(bad("unknown payload kind"));
        }
        let timestamp = Timestamp::from_bytes(&take_array::<12>(&mut input)?)?;
        let payload = if kind == KIND_SESSION {
            Self::Session { timestamp }
        } else {
            let token_id = take_array::<16>(&mut input)?;
            let token_secret = take_array::<32>(&mut input)?;
            let [len] = take_array::<1>(&mut input)?;
            let len = usize::from(len);
            if len == 0 || len > MAX_DEVICE_NAME_LEN {
                return Err(bad("device name length not in 1..=64"));
            }
            let name = take(&mut input, len)?;
            let device_name = std::str::from_utf8(name)
                .map_err(|_| bad("device name is not UTF-8"))?
                .to_owned();
            check_device_name(&device_name)?;
            Self::Pair {
                timestamp,
                token_id,
                token_secret,
                device_name,
            }
        };
        if !input.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(payload)
    }
}

/// Path convention of the host's file system, as a controller should display and send paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathStyle {
    /// `/`-separated absolute paths.
    Posix,
    /// Drive letters and `\` separators.
    Windows,
}

/// The payload of message 2, written by the host (`CHAN-6`): `0x01` then a UTF-8 JSON
/// object, at most 4096 bytes in all (`CHAN-25`). Unknown members are ignored; unknown
/// capability names are kept here and ignored by whoever reads them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostInfo {
    /// Host name to display.
    pub name: String,
    /// Operating system, for example `linux`, `macos`, `windows`.
    pub os: String,
    /// CPU architecture, for example `x86_64`, `aarch64`.
    pub arch: String,
    /// Shell commands run under, for example `bash`.
    pub shell: String,
    /// Path convention of the host.
    pub path_style: PathStyle,
    /// Capability names (`spec/06-registries.md`).
    pub capabilities: Vec<String>,
    /// Always [`HOST_INFO_PROTOCOL`] in Tether v1.
    pub protocol: String,
}

fn bad_info(reason: &'static str) -> ChannelError {
    ChannelError::BadHostInfo { reason }
}

impl HostInfo {
    /// Whether the host advertised a capability.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c == name)
    }

    /// Encodes the payload: `0x01` then compact JSON, members in declaration order.
    ///
    /// # Errors
    /// [`ChannelError::HostInfoTooLarge`] if the result exceeds 4096 bytes (`CHAN-25`);
    /// [`ChannelError::BadHostInfo`] if `protocol` is not `tether/1`.
    pub fn encode(&self) -> Result<Vec<u8>, ChannelError> {
        if self.protocol != HOST_INFO_PROTOCOL {
            return Err(bad_info("protocol is not tether/1"));
        }
        let mut out = vec![PAYLOAD_VERSION];
        serde_json::to_writer(&mut out, self).map_err(|_| bad_info("cannot serialize"))?;
        if out.len() > MAX_HOST_INFO_LEN {
            return Err(ChannelError::HostInfoTooLarge { len: out.len() });
        }
        Ok(out)
    }

    /// Decodes a message-2 payload (`CHAN-6`).
    ///
    /// # Errors
    /// [`ChannelError::HostInfoTooLarge`] above 4096 bytes (`CHAN-25`);
    /// [`ChannelError::BadHostInfo`] for a missing or unknown version byte, text that is not
    /// one JSON object, a required member missing, duplicated or of the wrong type, a
    /// `pathStyle` other than `posix`/`windows`, or a `protocol` other than `tether/1`.
    pub fn decode(bytes: &[u8]) -> Result<Self, ChannelError> {
        if bytes.len() > MAX_HOST_INFO_LEN {
            return Err(ChannelError::HostInfoTooLarge { len: bytes.len() });
        }
        let (&version, json) = bytes.split_first().ok_or(bad_info("empty payload"))?;
        if version != PAYLOAD_VERSION {
            return Err(bad_info("unknown payload version"));
        }
        // serde would also accept a JSON array for a struct: require an object.
        let first = json
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if first != Some(&b'{') {
            return Err(bad_info("not a JSON object"));
        }
        let info: Self = serde_json::from_slice(json).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => {
                bad_info("member missing, duplicated or of the wrong type")
            }
            _ => bad_info("not valid JSON"),
        })?;
        if info.protocol != HOST_INFO_PROTOCOL {
            return Err(bad_info("protocol is not tether/1"));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn ts() -> Timestamp {
        Timestamp::from_unix(UnixTime::new(1_700_000_000, 123_456_789))
    }

    #[test]
    fn chan_4_tai64n_encoding() {
        // 2^62 + 1_700_000_000 = 0x400000006553f100; 123456789 = 0x075bcd15.
        assert_eq!(hex::encode(ts().to_bytes()), "400000006553f100075bcd15");
        let back = Timestamp::from_bytes(&ts().to_bytes()).unwrap();
        assert_eq!(back, ts());
        assert_eq!(back.to_unix(), UnixTime::new(1_700_000_000, 123_456_789));
        assert_eq!(
            hex::encode(Timestamp::from_unix(UnixTime::EPOCH).to_bytes()),
            "400000000000000000000000"
        );
    }

    #[test]
    fn chan_4_rejects_malformed_timestamps() {
        let cases = [
            "400000006553f1003b9aca00", // nanoseconds = 10^9
            "400000006553f100ffffffff",
            "3fffffffffffffff00000000", // before 2^62
            "800000000000000000000000", // 2^63 reserved
        ];
        for c in cases {
            let b: [u8; 12] = hex::decode(c).unwrap().try_into().unwrap();
            assert_eq!(
                Timestamp::from_bytes(&b),
                Err(ChannelError::BadTimestamp),
                "{c}"
            );
        }
        let ok: [u8; 12] = hex::decode("400000006553f1003b9ac9ff")
            .unwrap()
            .try_into()
            .unwrap();
        assert!(Timestamp::from_bytes(&ok).is_ok());
    }

    #[test]
    fn chan_5_next_timestamp_is_strictly_greater() {
        let now = UnixTime::new(100, 999_999_999);
        let first = Timestamp::next_after(None, now);
        let second = Timestamp::next_after(Some(first), now);
        assert!(second > first);
        assert_eq!(second.to_unix(), UnixTime::new(101, 0));
        // A clock that went backwards still gives a later timestamp.
        let third = Timestamp::next_after(Some(second), UnixTime::from_secs(5));
        assert_eq!(third.to_unix(), UnixTime::new(101, 1));
        // A clock ahead of the last one is used as is.
        let fourth = Timestamp::next_after(Some(third), UnixTime::from_secs(500));
        assert_eq!(fourth.to_unix(), UnixTime::from_secs(500));
    }

    #[test]
    fn chan_4_ordering_matches_bytes() {
        let a = Timestamp::from_unix(UnixTime::new(10, 999_999_999));
        let b = Timestamp::from_unix(UnixTime::new(11, 0));
        assert!(a < b);
        assert!(a.to_bytes() < b.to_bytes());
    }

    #[test]
    fn chan_3_session_payload_bytes() {
        let p = HandshakePayload::Session { timestamp: ts() };
        let bytes = p.encode().unwrap();
        assert_eq!(hex::encode(&bytes), "0100400000006553f100075bcd15");
        assert_eq!(HandshakePayload::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn chan_3_pair_payload_bytes() {
        let p = HandshakePayload::Pair {
            timestamp: ts(),
            token_id: [0x11; 16],
            token_secret: [0x22; 32],
            device_name: "phone".into(),
        };
        let bytes = p.encode().unwrap();
        assert_eq!(
            hex::encode(&bytes),
            concat!(
                "0101",
                "400000006553f100075bcd15",
                "11111111111111111111111111111111",
                "2222222222222222222222222222222222222222222222222222222222222222",
                "05",
                "70686f6e65"
            )
        );
        assert_eq!(HandshakePayload::decode(&bytes).unwrap(), p);
        assert!(
            !format!("{p:?}").contains("2222"),
            "secret must not be logged"
        );
    }

    #[test]
    fn chan_3_payload_decoder_rejects() {
        let session = "0100400000006553f100075bcd15";
        let pair_head = concat!(
            "0101",
            "400000006553f100075bcd15",
            "11111111111111111111111111111111",
            "2222222222222222222222222222222222222222222222222222222222222222",
        );
        let cases: &[(String, &str)] = &[
            (String::new(), "BadPayload"),
            ("0200400000006553f100075bcd15".into(), "BadPayload"),
            ("0102400000006553f100075bcd15".into(), "BadPayload"),
            ("0100400000006553f100075bcd".into(), "BadPayload"),
            (format!("{session}00"), "BadPayload"),
            ("0100400000006553f1003b9aca00".into(), "BadTimestamp"),
            (format!("{pair_head}00"), "BadPayload"),
            (format!("{pair_head}41{}", "61".repeat(65)), "BadPayload"),
            (format!("{pair_head}0270"), "BadPayload"),
            (format!("{pair_head}02c328"), "BadPayload"),
            (format!("{pair_head}02610a"), "BadPayload"),
            (format!("{pair_head}016161"), "BadPayload"),
            (pair_head[..40].to_string(), "BadPayload"),
        ];
        for (hex_in, name) in cases {
            let err = HandshakePayload::decode(&hex::decode(hex_in).unwrap()).unwrap_err();
            assert_eq!(err.name(), *name, "{hex_in}");
            assert_eq!(
                err.close_code(),
                crate::link::codes::CloseCode::HANDSHAKE_FAILED
            );
        }
    }

    fn info() -> HostInfo {
        HostInfo {
            name: "box".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            shell: "bash".into(),
            path_style: PathStyle::Posix,
            capabilities: vec!["agent.test".into()],
            protocol: HOST_INFO_PROTOCOL.into(),
        }
    }

    #[test]
    fn chan_6_host_info_bytes() {
        let bytes = info().encode().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&bytes[1..]),
            r#"{"name":"box","os":"linux","arch":"x86_64","shell":"bash","pathStyle":"posix","capabilities":["agent.test"],"protocol":"tether/1"}"#
        );
        assert_eq!(bytes[0], 0x01);
        assert_eq!(HostInfo::decode(&bytes).unwrap(), info());
    }

    #[test]
    fn chan_6_unknown_members_and_capabilities_are_ignored() {
        let text = r#"{"future":{"a":[1,2]},"name":"w","os":"windows","arch":"aarch64","shell":"pwsh","pathStyle":"windows","capabilities":["x.unknown"],"protocol":"tether/1"}"#;
        let mut bytes = vec![1u8];
        bytes.extend_from_slice(text.as_bytes());
        let got = HostInfo::decode(&bytes).unwrap();
        assert_eq!(got.path_style, PathStyle::Windows);
        assert!(got.has_capability("x.unknown"));
        assert!(!got.has_capability("agent.test"));
    }

    #[test]
    fn chan_6_host_info_decoder_rejects() {
        let good =
            r#""name":"w","os":"l","arch":"a","shell":"s","capabilities":[],"protocol":"tether/1""#;
        let cases = [
            String::new(),
            format!("{{{good},\"pathStyle\":\"dos\"}}"),
            format!("{{{good}}}"),
            format!("{{{good},\"pathStyle\":\"posix\",\"name\":\"dup\"}}"),
            r#"["w","l","a","s","posix",[],"tether/1"]"#.to_string(),
            format!("{{{good},\"pathStyle\":\"posix\"}} x"),
            format!(
                "{{{},\"pathStyle\":\"posix\"}}",
                good.replace("tether/1", "tether/2")
            ),
        ];
        for c in &cases {
            let mut bytes = vec![1u8];
            bytes.extend_from_slice(c.as_bytes());
            let err = HostInfo::decode(&bytes).unwrap_err();
            assert_eq!(err.name(), "BadHostInfo", "{c}");
            assert_eq!(err.requirement(), "CHAN-6");
        }
        assert_eq!(HostInfo::decode(&[]).unwrap_err().name(), "BadHostInfo");
        let ok = format!("{{{good},\"pathStyle\":\"posix\"}}");
        let mut v2 = vec![2u8];
        v2.extend_from_slice(ok.as_bytes());
        assert_eq!(HostInfo::decode(&v2).unwrap_err().name(), "BadHostInfo");
    }

    #[test]
    fn chan_25_host_info_size_limit() {
        let mut big = info();
        big.name = "n".repeat(3900);
        assert!(big.encode().is_ok());
        big.name = "n".repeat(4096);
        assert_eq!(big.encode().unwrap_err().name(), "HostInfoTooLarge");
        let huge = vec![1u8; 4097];
        assert_eq!(
            HostInfo::decode(&huge).unwrap_err(),
            ChannelError::HostInfoTooLarge { len: 4097 }
        );
    }
}
