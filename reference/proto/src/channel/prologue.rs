//! The IK prologue (`CHAN-2`): binds every handshake to its workspace, host and session.

use super::error::ChannelError;
use crate::link::frame::SessionId;

/// The 12 ASCII bytes every IK prologue starts with.
pub const PROLOGUE_LABEL: &[u8; 12] = b"TETHER-IK-V1";

/// Longest workspace id, in bytes (`TOKEN-7`).
const MAX_WORKSPACE_LEN: usize = 64;

/// The prologue both sides feed into `Noise_IK` (`CHAN-2`):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 12 | ASCII `TETHER-IK-V1` |
/// | 12 | 1 | W = workspace id length, 1..=64 |
/// | 13 | W | workspace id, `[a-z0-9._-]` |
/// | 13+W | 32 | host static X25519 public key |
/// | 45+W | 8 | session id |
///
/// A message 1 made for one workspace, host or session does not decrypt under another.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Prologue(Vec<u8>);

impl Prologue {
    /// Builds the prologue of one session.
    ///
    /// # Errors
    /// [`ChannelError::BadWorkspace`] if `workspace` is not 1–64 bytes of `[a-z0-9._-]`.
    pub fn new(
        workspace: &str,
        host_key: &[u8; 32],
        session: SessionId,
    ) -> Result<Self, ChannelError> {
        let ws = workspace.as_bytes();
        let valid_char = |b: &u8| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        };
        if ws.is_empty() || ws.len() > MAX_WORKSPACE_LEN || !ws.iter().all(valid_char) {
            return Err(ChannelError::BadWorkspace);
        }
        let ws_len = u8::try_from(ws.len()).map_err(|_| ChannelError::BadWorkspace)?;
        let mut bytes = Vec::with_capacity(PROLOGUE_LABEL.len() + 1 + ws.len() + 32 + 8);
        bytes.extend_from_slice(PROLOGUE_LABEL);
        bytes.push(ws_len);
        bytes.extend_from_slice(ws);
        bytes.extend_from_slice(host_key);
        bytes.extend_from_slice(&session.0);
        Ok(Self(bytes))
    }

    /// The prologue bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn chan_2_prologue_layout() {
        let p = Prologue::new("ws-1", &[0xaa; 32], SessionId([1, 2, 3, 4, 5, 6, 7, 8])).unwrap();
        assert_eq!(
            hex::encode(p.as_bytes()),
            concat!(
                "5445544845522d494b2d5631", // TETHER-IK-V1
                "04",
                "77732d31", // ws-1
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "0102030405060708"
            )
        );
    }

    #[test]
    fn chan_2_prologue_rejects_bad_workspace() {
        let s = SessionId([0; 8]);
        for ws in ["", "UPPER", "white space", &"a".repeat(65)] {
            assert_eq!(
                Prologue::new(ws, &[0; 32], s),
                Err(ChannelError::BadWorkspace),
                "{ws:?}"
            );
        }
        assert!(Prologue::new(&"a".repeat(64), &[0; 32], s).is_ok());
    }
}
