//! Handshake inputs and established transports for the `handshake/*` and `transport-*`
//! benchmarks.

use anyhow::{Context, Result, anyhow};
use snow::params::NoiseParams;
use tether_proto::channel::{
    HandshakePayload, HostInfo, Initiator, PathStyle, Prologue, Responder, Timestamp, Transport,
    ik_params,
};
use tether_proto::keys::public_key;
use tether_proto::link::SessionId;
use tether_proto::time::UnixTime;

/// Everything a Tether IK handshake needs, fixed so that every run does the same work.
#[derive(Clone, Debug)]
pub struct HandshakeInputs {
    /// The controller's static private key.
    pub controller_static: [u8; 32],
    /// The host's static private key.
    pub host_static: [u8; 32],
    /// The host's static public key.
    pub host_public: [u8; 32],
    /// The prologue (workspace, host key, session id).
    pub prologue: Prologue,
    /// Message 1's payload (a session handshake with a timestamp).
    pub payload: HandshakePayload,
    /// Message 2's payload.
    pub host_info: HostInfo,
}

impl HandshakeInputs {
    /// Fixed keys and payloads.
    ///
    /// # Errors
    /// Only if a fixed input is refused by `tether-proto` (a bug).
    pub fn new() -> Result<Self> {
        let controller_static = [0x42; 32];
        let host_static = [0x17; 32];
        let host_public = public_key(&host_static);
        let prologue = Prologue::new("acme", &host_public, SessionId([7; 8]))?;
        Ok(Self {
            controller_static,
            host_static,
            host_public,
            prologue,
            payload: HandshakePayload::Session {
                timestamp: Timestamp::from_unix(UnixTime::new(1_800_000_000, 5)),
            },
            host_info: HostInfo {
                name: "build-box".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                shell: "bash".into(),
                path_style: PathStyle::Posix,
                capabilities: vec!["command.exec".into()],
                protocol: "tether/1".into(),
            },
        })
    }

    /// One full Tether IK handshake, both sides in memory: message 1 written and read,
    /// message 2 written and read; returns (controller, host) transports.
    ///
    /// # Errors
    /// A handshake error (never with these inputs).
    pub fn handshake(&self) -> Result<(Transport, Transport)> {
        let initiator = Initiator::new(
            &self.controller_static,
            &self.host_public,
            &self.prologue,
            &self.payload,
        )?;
        let pending = Responder::new(&self.host_static, &self.prologue)
            .read_message1(initiator.message1())?;
        let mut message2 = Vec::with_capacity(256);
        let host = pending.write_message2(&self.host_info, &mut message2)?;
        let (controller, _info) = initiator.read_message2(&message2)?;
        Ok((controller, host))
    }
}

/// Bare snow 0.10 with its default resolver: the IK pattern Tether uses, no prologue, empty
/// payloads.
#[derive(Debug)]
pub struct SnowDefault {
    params: NoiseParams,
    initiator_static: Vec<u8>,
    responder_static: Vec<u8>,
    responder_public: Vec<u8>,
}

impl SnowDefault {
    /// Fixed keys.
    ///
    /// # Errors
    /// Only if snow cannot parse the protocol name.
    pub fn new() -> Result<Self> {
        let params = ik_params()?;
        let responder_static = vec![0x17; 32];
        let responder_public = public_key(&[0x17; 32]).to_vec();
        Ok(Self {
            params,
            initiator_static: vec![0x42; 32],
            responder_static,
            responder_public,
        })
    }

    /// One full handshake with snow's default resolver; returns (initiator, responder)
    /// transports.
    ///
    /// # Errors
    /// A snow error (never with these inputs).
    pub fn handshake(&self) -> Result<(snow::TransportState, snow::TransportState)> {
        let mut initiator = snow::Builder::new(self.params.clone())
            .local_private_key(&self.initiator_static)
            .and_then(|b| b.remote_public_key(&self.responder_public))
            .and_then(|b| b.build_initiator())
            .map_err(|e| anyhow!("snow initiator: {e}"))?;
        let mut responder = snow::Builder::new(self.params.clone())
            .local_private_key(&self.responder_static)
            .and_then(|b| b.build_responder())
            .map_err(|e| anyhow!("snow responder: {e}"))?;
        let mut m1 = [0u8; 128];
        let mut m2 = [0u8; 128];
        let mut scratch = [0u8; 128];
        let n1 = initiator
            .write_message(&[], &mut m1)
            .map_err(|e| anyhow!("message 1: {e}"))?;
        responder
            .read_message(m1.get(..n1).context("message 1 length")?, &mut scratch)
            .map_err(|e| anyhow!("message 1: {e}"))?;
        let n2 = responder
            .write_message(&[], &mut m2)
            .map_err(|e| anyhow!("message 2: {e}"))?;
        initiator
            .read_message(m2.get(..n2).context("message 2 length")?, &mut scratch)
            .map_err(|e| anyhow!("message 2: {e}"))?;
        Ok((
            initiator
                .into_transport_mode()
                .map_err(|e| anyhow!("split: {e}"))?,
            responder
                .into_transport_mode()
                .map_err(|e| anyhow!("split: {e}"))?,
        ))
    }
}

/// The raw AEAD of the backend `tether-proto` was built with ([`BACKEND`]): seal and open
/// in place, no Noise state around it.
///
/// [`BACKEND`]: tether_proto::channel::BACKEND
pub struct RawAead {
    aws: aws_lc_rs::aead::LessSafeKey,
    rust: chacha20poly1305::ChaCha20Poly1305,
    use_aws: bool,
}

impl std::fmt::Debug for RawAead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAead")
            .field("use_aws", &self.use_aws)
            .finish_non_exhaustive()
    }
}

impl RawAead {
    /// A fixed key, for the compiled backend.
    ///
    /// # Errors
    /// Only if aws-lc refuses a 32-byte key.
    pub fn new() -> Result<Self> {
        use chacha20poly1305::KeyInit;
        let key = [0x5a; 32];
        let aws = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::CHACHA20_POLY1305, &key)
            .map_err(|_| anyhow!("aws-lc key"))?;
        Ok(Self {
            aws: aws_lc_rs::aead::LessSafeKey::new(aws),
            rust: chacha20poly1305::ChaCha20Poly1305::new(&key.into()),
            use_aws: tether_proto::channel::BACKEND == "aws-lc",
        })
    }

    /// Which implementation runs: `"aws-lc"` or `"rust"`.
    pub fn backend(&self) -> &'static str {
        if self.use_aws { "aws-lc" } else { "rust" }
    }

    /// Seals `buf` in place with `nonce` and opens it again (one encrypt + decrypt, as a
    /// transport message goes one way).
    ///
    /// # Errors
    /// If the tag does not verify (never).
    pub fn seal_open(&self, nonce: u64, buf: &mut [u8]) -> Result<()> {
        let mut n = [0u8; 12];
        if let Some(tail) = n.get_mut(4..) {
            tail.copy_from_slice(&nonce.to_le_bytes());
        }
        if self.use_aws {
            use aws_lc_rs::aead::{Aad, Nonce};
            let tag = self
                .aws
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), buf)
                .map_err(|_| anyhow!("seal"))?;
            self.aws
                .open_in_place_separate_tag(
                    Nonce::assume_unique_for_key(n),
                    Aad::empty(),
                    tag.as_ref(),
                    buf,
                )
                .map_err(|_| anyhow!("open"))?;
        } else {
            use chacha20poly1305::AeadInPlace;
            let tag = self
                .rust
                .encrypt_in_place_detached(&n.into(), &[], buf)
                .map_err(|_| anyhow!("seal"))?;
            self.rust
                .decrypt_in_place_detached(&n.into(), &[], buf, &tag)
                .map_err(|_| anyhow!("open"))?;
        }
        Ok(())
    }
}
