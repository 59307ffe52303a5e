//! Pairing tokens (`spec/02-pairing-token.md`, requirements `TOKEN-*`).
//!
//! A pairing token is what a host shows in a QR code so that a controller can pair with it:
//! the host's static X25519 key, the relay and workspace to reach it through, a one-time
//! token id and secret, an expiry and optionally the host's name. It has a binary form
//! (`TOKEN-1`) protected by a 4-byte checksum (`TOKEN-4`) and a text form, `TETHER:` followed
//! by upper-case unpadded base32 (`TOKEN-3`), which fits the QR alphanumeric set.
//!
//! ```text
//! PairingToken::new(..)?  --encode_binary-->  bytes  --to_text-->  "TETHER:AEAS..."
//!            ^                                                          |
//!            +------------- from_text / decode_binary <-----------------+
//! ```
//!
//! A [`PairingToken`] value is always valid: [`PairingToken::new`] checks every field, the
//! fields are private, and [`PairingToken::decode_binary`] accepts exactly what
//! [`PairingToken::encode_binary`] produces. Expiry is not part of validity: a decoded token
//! may be expired, which [`PairingToken::check_expiry`] tells (`TOKEN-10`).

use std::fmt;
use std::time::Duration;

use blake2::{Blake2s256, Digest};
use data_encoding::BASE32_NOPAD;

use crate::limits::{PROTOCOL_VERSION, TOKEN_MAX_LIFETIME, TOKEN_MAX_TEXT_LEN};
use crate::time::UnixTime;

/// The prefix of the text form (`TOKEN-3`).
pub const TEXT_PREFIX: &str = "TETHER:";
/// The label hashed before the token bytes to make the checksum (`TOKEN-4`).
pub const CHECKSUM_LABEL: &[u8] = b"TETHER-TOKEN-CHECKSUM-V1";
/// Length of the checksum at the end of the binary form (`TOKEN-4`).
pub const CHECKSUM_LEN: usize = 4;
/// Length of the host's static X25519 public key (`TOKEN-13`).
pub const HOST_KEY_LEN: usize = 32;
/// Length of the token id (`TOKEN-11`).
pub const TOKEN_ID_LEN: usize = 16;
/// Length of the token secret (`TOKEN-11`).
pub const TOKEN_SECRET_LEN: usize = 32;
/// Shortest binary form: every fixed field, three one-byte lengths of fields with at least
/// one byte each (workspace, relay URL) and the checksum (`TOKEN-1`).
pub const MIN_BINARY_LEN: usize = 1 + 1 + 1 + 32 + 16 + 32 + 8 + 1 + 1 + 1 + 1 + 4;
/// Longest workspace id, in bytes (`TOKEN-7`, `LINK-32`).
pub const MAX_WORKSPACE_LEN: usize = 64;
/// Longest relay URL, in bytes (`TOKEN-8`).
pub const MAX_RELAY_URL_LEN: usize = 255;
/// Longest host name, in bytes of UTF-8 (`TOKEN-8`).
pub const MAX_HOST_NAME_LEN: usize = 64;

/// Flag bit 0: a host name follows the relay URL (`TOKEN-1`).
const FLAG_HOST_NAME: u8 = 0x01;

/// Whether `id` is a valid workspace id: 1 to 64 bytes, each of `a-z`, `0-9`, `.`, `_`, `-`
/// (`TOKEN-7`). The relay's `HELLO` uses the same rule (`LINK-32`).
pub fn validate_workspace(id: &str) -> bool {
    workspace_bytes_ok(id.as_bytes())
}

fn workspace_bytes_ok(id: &[u8]) -> bool {
    (1..=MAX_WORKSPACE_LEN).contains(&id.len())
        && id
            .iter()
            .all(|&b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

/// `TOKEN-8`: 1 to 255 bytes of printable ASCII (0x21 to 0x7E), starting `ws://` or
/// `wss://` with at least one byte after the scheme.
fn relay_url_bytes_ok(url: &[u8]) -> bool {
    let after_scheme = url
        .strip_prefix(b"wss://")
        .or_else(|| url.strip_prefix(b"ws://"));
    (1..=MAX_RELAY_URL_LEN).contains(&url.len())
        && url.iter().all(|&b| (0x21..=0x7e).contains(&b))
        && after_scheme.is_some_and(|rest| !rest.is_empty())
}

/// `TOKEN-8`: 1 to 64 bytes of UTF-8 with no control character (U+0000 to U+001F,
/// U+007F to U+009F).
fn host_name_ok(name: &str) -> bool {
    (1..=MAX_HOST_NAME_LEN).contains(&name.len()) && !name.chars().any(char::is_control)
}

/// BLAKE2s-256 of a token secret: what a host stores in place of the secret (`TOKEN-11`).
///
/// Compare digests with [`subtle::ConstantTimeEq`], never with `==` (`TOKEN-11`).
pub fn secret_digest(secret: &[u8; TOKEN_SECRET_LEN]) -> [u8; 32] {
    Blake2s256::digest(secret).into()
}

/// The first [`CHECKSUM_LEN`] bytes of BLAKE2s-256([`CHECKSUM_LABEL`] || `body`) (`TOKEN-4`).
fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut h = Blake2s256::new();
    h.update(CHECKSUM_LABEL);
    h.update(body);
    let digest = h.finalize();
    let mut out = [0u8; CHECKSUM_LEN];
    for (o, d) in out.iter_mut().zip(digest.iter()) {
        *o = *d;
    }
    out
}

/// A pairing token (`TOKEN-1`): everything a controller needs to reach a host and pair once.
///
/// Every value of this type is valid (see [`PairingToken::new`]); it may still be expired.
/// `Debug` does not print the token secret. `==` compares the secret in variable time: a
/// host checking a presented secret uses [`secret_digest`] and a constant-time comparison
/// (`TOKEN-11`).
#[derive(Clone, PartialEq, Eq)]
pub struct PairingToken {
    host_key: [u8; HOST_KEY_LEN],
    token_id: [u8; TOKEN_ID_LEN],
    token_secret: [u8; TOKEN_SECRET_LEN],
    expires_at: u64,
    workspace: String,
    relay_url: String,
    host_name: Option<String>,
}

impl PairingToken {
    /// A token from its fields, checked so that it encodes to a token every decoder accepts.
    ///
    /// `token_id` and `token_secret` MUST come from a CSPRNG (`TOKEN-11`); `expires_at` is
    /// Unix seconds, see [`PairingToken::expiry_after`] for the lifetime rule (`TOKEN-9`).
    ///
    /// # Errors
    /// [`TokenError::BadWorkspace`] (`TOKEN-7`), [`TokenError::BadRelayUrl`] or
    /// [`TokenError::BadHostName`] (`TOKEN-8`) when a field breaks its constraint.
    pub fn new(
        host_key: [u8; HOST_KEY_LEN],
        token_id: [u8; TOKEN_ID_LEN],
        token_secret: [u8; TOKEN_SECRET_LEN],
        expires_at: u64,
        workspace: impl Into<String>,
        relay_url: impl Into<String>,
        host_name: Option<String>,
    ) -> Result<Self, TokenError> {
        let workspace = workspace.into();
        let relay_url = relay_url.into();
        if !validate_workspace(&workspace) {
            return Err(TokenError::BadWorkspace);
        }
        if !relay_url_bytes_ok(relay_url.as_bytes()) {
            return Err(TokenError::BadRelayUrl);
        }
        if let Some(name) = &host_name
            && !host_name_ok(name)
        {
            return Err(TokenError::BadHostName);
        }
        Ok(Self {
            host_key,
            token_id,
            token_secret,
            expires_at,
            workspace,
            relay_url,
            host_name,
        })
    }

    /// The expiry, in Unix seconds, of a token minted at `now` to live `lifetime`
    /// (whole seconds; [`crate::limits::TOKEN_DEFAULT_LIFETIME`] is the default).
    ///
    /// # Errors
    /// [`TokenError::LifetimeTooLong`] when `lifetime` exceeds
    /// [`crate::limits::TOKEN_MAX_LIFETIME`] (`TOKEN-9`).
    pub fn expiry_after(now: UnixTime, lifetime: Duration) -> Result<u64, TokenError> {
        if lifetime > TOKEN_MAX_LIFETIME {
            return Err(TokenError::LifetimeTooLong);
        }
        Ok(now.as_secs().saturating_add(lifetime.as_secs()))
    }

    /// The host's static X25519 public key.
    pub fn host_key(&self) -> &[u8; HOST_KEY_LEN] {
        &self.host_key
    }

    /// The token id.
    pub fn token_id(&self) -> &[u8; TOKEN_ID_LEN] {
        &self.token_id
    }

    /// The token secret. Callers SHOULD NOT log it (`TOKEN-16`).
    pub fn token_secret(&self) -> &[u8; TOKEN_SECRET_LEN] {
        &self.token_secret
    }

    /// Expiry, in Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The workspace id.
    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    /// The relay's WebSocket URL.
    pub fn relay_url(&self) -> &str {
        &self.relay_url
    }

    /// The host's display name, if the token carries one.
    pub fn host_name(&self) -> Option<&str> {
        self.host_name.as_deref()
    }

    /// `TOKEN-10`: `Ok` while `now` is before the expiry.
    ///
    /// # Errors
    /// [`TokenError::Expired`] when `now` (whole seconds) is at or after `expires_at`.
    pub fn check_expiry(&self, now: UnixTime) -> Result<(), TokenError> {
        if now.as_secs() >= self.expires_at {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    /// The binary form (`TOKEN-1`), checksum included.
    pub fn encode_binary(&self) -> Vec<u8> {
        let name = self.host_name.as_deref();
        let mut out =
            Vec::with_capacity(MIN_BINARY_LEN + self.workspace.len() + self.relay_url.len() + 64);
        out.push(PROTOCOL_VERSION);
        out.push(if name.is_some() { FLAG_HOST_NAME } else { 0 });
        out.push(len_byte(HOST_KEY_LEN));
        out.extend_from_slice(&self.host_key);
        out.extend_from_slice(&self.token_id);
        out.extend_from_slice(&self.token_secret);
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        for field in [
            Some(self.workspace.as_str()),
            Some(self.relay_url.as_str()),
            name,
        ]
        .into_iter()
        .flatten()
        {
            out.push(len_byte(field.len()));
            out.extend_from_slice(field.as_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// The text form (`TOKEN-3`): [`TEXT_PREFIX`] and upper-case unpadded base32 of
    /// [`PairingToken::encode_binary`]. Every character is in the QR alphanumeric set.
    pub fn to_text(&self) -> String {
        let mut text = String::from(TEXT_PREFIX);
        text.push_str(&BASE32_NOPAD.encode(&self.encode_binary()));
        text
    }

    /// Parses the text form, checking in the order of `spec/02` section "Decoding".
    ///
    /// # Errors
    /// [`TokenError::TooLong`] (`TOKEN-12`), [`TokenError::BadPrefix`] and
    /// [`TokenError::BadEncoding`] (`TOKEN-3`), then any error of
    /// [`PairingToken::decode_binary`].
    pub fn from_text(text: &str) -> Result<Self, TokenError> {
        // TOKEN-12: bound the work before decoding anything.
        if text.chars().nth(TOKEN_MAX_TEXT_LEN).is_some() {
            return Err(TokenError::TooLong);
        }
        // TOKEN-3: exact, case-sensitive prefix.
        let body = text
            .strip_prefix(TEXT_PREFIX)
            .ok_or(TokenError::BadPrefix)?;
        // TOKEN-3: upper-case alphabet only, no padding or whitespace, canonical tail bits.
        let bytes = BASE32_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| TokenError::BadEncoding)?;
        Self::decode_binary(&bytes)
    }

    /// Parses the binary form, checking in the order of `spec/02` section "Decoding".
    ///
    /// # Errors
    /// [`TokenError::Truncated`], [`TokenError::UnknownVersion`],
    /// [`TokenError::BadChecksum`], [`TokenError::ReservedFlags`],
    /// [`TokenError::BadKeyLength`], [`TokenError::TrailingBytes`],
    /// [`TokenError::BadWorkspace`], [`TokenError::BadRelayUrl`],
    /// [`TokenError::BadHostName`].
    pub fn decode_binary(bytes: &[u8]) -> Result<Self, TokenError> {
        let (&version, _) = bytes.split_first().ok_or(TokenError::Truncated)?;
        // TOKEN-2: the version is checked before the checksum, so that a token of a later
        // version is reported as such and not as corrupt.
        if version != PROTOCOL_VERSION {
            return Err(TokenError::UnknownVersion { version });
        }
        if bytes.len() < MIN_BINARY_LEN {
            return Err(TokenError::Truncated);
        }
        // TOKEN-4: verify the checksum before interpreting any field.
        let (body, sum) = bytes
            .split_at_checked(bytes.len() - CHECKSUM_LEN)
            .ok_or(TokenError::Truncated)?;
        if checksum(body) != sum {
            return Err(TokenError::BadChecksum);
        }

        let mut rest = body.get(1..).ok_or(TokenError::Truncated)?;
        let flags = take_u8(&mut rest)?;
        // TOKEN-6
        if flags & !FLAG_HOST_NAME != 0 {
            return Err(TokenError::ReservedFlags { flags });
        }
        // TOKEN-13
        let key_len = take_u8(&mut rest)?;
        if usize::from(key_len) != HOST_KEY_LEN {
            return Err(TokenError::BadKeyLength { len: key_len });
        }
        let host_key = take_array::<HOST_KEY_LEN>(&mut rest)?;
        let token_id = take_array::<TOKEN_ID_LEN>(&mut rest)?;
        let token_secret = take_array::<TOKEN_SECRET_LEN>(&mut rest)?;
        let expires_at = u64::from_be_bytes(take_array::<8>(&mut rest)?);
        // TOKEN-5: every length must stay inside the bytes before the checksum.
        let workspace = take_prefixed(&mut rest)?;
        let relay_url = take_prefixed(&mut rest)?;
        let host_name = if flags & FLAG_HOST_NAME != 0 {
            Some(take_prefixed(&mut rest)?)
        } else {
            None
        };
        // TOKEN-5: nothing may be left before the checksum.
        if !rest.is_empty() {
            return Err(TokenError::TrailingBytes);
        }

        // TOKEN-7
        if !workspace_bytes_ok(workspace) {
            return Err(TokenError::BadWorkspace);
        }
        // TOKEN-8
        if !relay_url_bytes_ok(relay_url) {
            return Err(TokenError::BadRelayUrl);
        }
        let host_name = match host_name {
            None => None,
            Some(raw) => match std::str::from_utf8(raw) {
                Ok(name) if host_name_ok(name) => Some(name.to_owned()),
                _ => return Err(TokenError::BadHostName),
            },
        };
        // Both checked above to be ASCII.
        let workspace = String::from_utf8_lossy(workspace).into_owned();
        let relay_url = String::from_utf8_lossy(relay_url).into_owned();

        Ok(Self {
            host_key,
            token_id,
            token_secret,
            expires_at,
            workspace,
            relay_url,
            host_name,
        })
    }
}

impl fmt::Debug for PairingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // TOKEN-16: the secret never reaches a log through Debug.
        f.debug_struct("PairingToken")
            .field("host_key", &format_args!("{}", hex::encode(self.host_key)))
            .field("token_id", &format_args!("{}", hex::encode(self.token_id)))
            .field("token_secret", &format_args!("<redacted>"))
            .field("expires_at", &self.expires_at)
            .field("workspace", &self.workspace)
            .field("relay_url", &self.relay_url)
            .field("host_name", &self.host_name)
            .finish()
    }
}

/// A length known (by construction) to fit one byte.
fn len_byte(len: usize) -> u8 {
    u8::try_from(len).unwrap_or(u8::MAX)
}

fn take_u8(rest: &mut &[u8]) -> Result<u8, TokenError> {
    let (&b, tail) = rest.split_first().ok_or(TokenError::Truncated)?;
    *rest = tail;
    Ok(b)
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], TokenError> {
    let (head, tail) = rest.split_at_checked(n).ok_or(TokenError::Truncated)?;
    *rest = tail;
    Ok(head)
}

fn take_array<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], TokenError> {
    take(rest, N)?.try_into().map_err(|_| TokenError::Truncated)
}

fn take_prefixed<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], TokenError> {
    let len = take_u8(rest)?;
    take(rest, usize::from(len))
}

/// A pairing token could not be decoded, built or used (`spec/02`).
///
/// Decoders report the first failure in the order of `spec/02` section "Decoding" (`TOKEN-17`), so each
/// malformed input has exactly one error.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The text is longer than 1024 characters (`TOKEN-12`).
    TooLong,
    /// The text does not start with `TETHER:` (`TOKEN-3`).
    BadPrefix,
    /// The text after the prefix is not canonical upper-case unpadded base32 (`TOKEN-3`).
    BadEncoding,
    /// The binary form ends before a field does (`TOKEN-5`).
    Truncated,
    /// The version byte is not 1 (`TOKEN-2`).
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// The checksum does not match (`TOKEN-4`).
    BadChecksum,
    /// A reserved flag bit is set (`TOKEN-6`).
    ReservedFlags {
        /// The flags byte found.
        flags: u8,
    },
    /// The host key length byte is not 32 (`TOKEN-13`).
    BadKeyLength {
        /// The length byte found.
        len: u8,
    },
    /// Bytes are left between the last field and the checksum (`TOKEN-5`).
    TrailingBytes,
    /// The workspace id breaks its constraints (`TOKEN-7`).
    BadWorkspace,
    /// The relay URL breaks its constraints (`TOKEN-8`).
    BadRelayUrl,
    /// The host name breaks its constraints (`TOKEN-8`).
    BadHostName,
    /// The token's expiry is not in the future (`TOKEN-10`).
    Expired,
    /// A host asked for a token lifetime above 600 s (`TOKEN-9`).
    LifetimeTooLong,
}

impl TokenError {
    /// The requirement this error enforces, for example `"TOKEN-4"`.
    pub fn requirement(&self) -> &'static str {
        match self {
            Self::TooLong => "TOKEN-12",
            Self::BadPrefix | Self::BadEncoding => "TOKEN-3",
            Self::Truncated | Self::TrailingBytes => "TOKEN-5",
            Self::UnknownVersion { .. } => "TOKEN-2",
            Self::BadChecksum => "TOKEN-4",
            Self::ReservedFlags { .. } => "TOKEN-6",
            Self::BadKeyLength { .. } => "TOKEN-13",
            Self::BadWorkspace => "TOKEN-7",
            Self::BadRelayUrl | Self::BadHostName => "TOKEN-8",
            Self::Expired => "TOKEN-10",
            Self::LifetimeTooLong => "TOKEN-9",
        }
    }

    /// The variant's name as the vector files spell it, for example `"BadChecksum"`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TooLong => "TooLong",
            Self::BadPrefix => "BadPrefix",
            Self::BadEncoding => "BadEncoding",
            Self::Truncated => "Truncated",
            Self::UnknownVersion { .. } => "UnknownVersion",
            Self::BadChecksum => "BadChecksum",
            Self::ReservedFlags { .. } => "ReservedFlags",
            Self::BadKeyLength { .. } => "BadKeyLength",
            Self::TrailingBytes => "TrailingBytes",
            Self::BadWorkspace => "BadWorkspace",
            Self::BadRelayUrl => "BadRelayUrl",
            Self::BadHostName => "BadHostName",
            Self::Expired => "Expired",
            Self::LifetimeTooLong => "LifetimeTooLong",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => write!(f, "text longer than {TOKEN_MAX_TEXT_LEN} characters"),
            Self::BadPrefix => write!(f, "text does not start with {TEXT_PREFIX}"),
            Self::BadEncoding => f.write_str("not upper-case unpadded base32"),
            Self::Truncated => f.write_str("token ends before a field does"),
            Self::UnknownVersion { version } => write!(f, "unknown token version {version}"),
            Self::BadChecksum => f.write_str("checksum mismatch"),
            Self::ReservedFlags { flags } => {
                write!(f, "reserved flag bits set (flags 0x{flags:02x})")
            }
            Self::BadKeyLength { len } => write!(f, "host key length {len}, expected 32"),
            Self::TrailingBytes => f.write_str("bytes left before the checksum"),
            Self::BadWorkspace => f.write_str("invalid workspace id"),
            Self::BadRelayUrl => f.write_str("invalid relay URL"),
            Self::BadHostName => f.write_str("invalid host name"),
            Self::Expired => f.write_str("token expired"),
            Self::LifetimeTooLong => {
                write!(f, "token lifetime above {} s", TOKEN_MAX_LIFETIME.as_secs())
            }
        }
    }
}

impl std::error::Error for TokenError {}
