//! Host registration with a relay: `Noise_XN_25519_ChaChaPoly_BLAKE2s` (`LINK-12`).
//!
//! A host proves to the relay that it holds the private half of its static key (the same
//! key it uses as the responder of `Noise_IK` sessions) by completing a Noise `XN`
//! handshake against a fresh relay ephemeral:
//!
//! ```text
//!   host (initiator)                               relay (responder)
//!   HostRegistration::start ── msg 1: -> e ──────▶ RelayRegistration::read_hello
//!            (32 bytes, in HELLO)                        │ fresh ephemeral (LINK-13)
//!   HostRegistration::respond ◀── msg 2: <- e, ee ─────  ┘
//!            (48 bytes, in HOST_CHALLENGE)
//!            └── msg 3: -> s, se ────────────────▶ RelayRegistration::read_proof
//!                (64 bytes, in HOST_PROOF)               → the host's static key
//! ```
//!
//! The prologue is ASCII `TETHER-REG-V1` || u8 len(workspace) || workspace, and every
//! payload is empty. Because the protocol name (`XN`) and prologue differ from the
//! channel's (`IK`, `TETHER-IK-V1`), no registration transcript can serve as, or be turned
//! into, a message of an IK session. The proof is bound to the relay's ephemeral, so a proof
//! recorded on one link never verifies on another (no replay), and to the workspace.
//!
//! Both types are sans-IO: the relay's ephemeral private key is passed in by the caller
//! (drawn from a CSPRNG, a new one for every registration, `LINK-13`).

use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{BoxedCryptoResolver, CryptoResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{Builder, HandshakeState};

use super::error::LinkError;
use crate::channel::TetherResolver;

/// The Noise protocol name of host registration (`LINK-12`).
pub const REGISTRATION_PROTOCOL: &str = "Noise_XN_25519_ChaChaPoly_BLAKE2s";
/// The label that starts the registration prologue (`LINK-12`).
pub const REGISTRATION_PROLOGUE_LABEL: &[u8] = b"TETHER-REG-V1";
pub use super::frame::{REGISTRATION_MSG1_LEN, REGISTRATION_MSG2_LEN, REGISTRATION_MSG3_LEN};

/// The registration prologue: `TETHER-REG-V1` || u8 len(workspace) || workspace (`LINK-12`).
///
/// # Errors
/// [`LinkError::RegistrationFailed`] if the workspace id is longer than 255 bytes (it cannot
/// be framed; valid workspace ids are at most 64 bytes).
pub fn registration_prologue(workspace: &str) -> Result<Vec<u8>, LinkError> {
    let len = u8::try_from(workspace.len()).map_err(|_| LinkError::RegistrationFailed)?;
    let mut prologue = Vec::with_capacity(REGISTRATION_PROLOGUE_LABEL.len() + 1 + workspace.len());
    prologue.extend_from_slice(REGISTRATION_PROLOGUE_LABEL);
    prologue.push(len);
    prologue.extend_from_slice(workspace.as_bytes());
    Ok(prologue)
}

/// Writes the next handshake message with an empty payload and checks its length. snow
/// wants room for a tag even where none is written, hence the scratch buffer.
fn write_empty<const N: usize>(state: &mut HandshakeState) -> Result<[u8; N], LinkError> {
    let mut scratch = [0u8; 128];
    let n = state
        .write_message(&[], &mut scratch)
        .map_err(|_| LinkError::RegistrationFailed)?;
    scratch
        .get(..n)
        .and_then(|m| <[u8; N]>::try_from(m).ok())
        .ok_or(LinkError::RegistrationFailed)
}

/// Reads the next handshake message, which must be `N` bytes with an empty payload.
fn read_empty<const N: usize>(state: &mut HandshakeState, msg: &[u8]) -> Result<(), LinkError> {
    if msg.len() != N {
        return Err(LinkError::RegistrationFailed);
    }
    let mut payload = [0u8; 128];
    let n = state
        .read_message(msg, &mut payload)
        .map_err(|_| LinkError::RegistrationFailed)?;
    if n != 0 {
        // Payloads are empty (LINK-12).
        return Err(LinkError::RegistrationFailed);
    }
    Ok(())
}

fn params() -> Result<NoiseParams, LinkError> {
    REGISTRATION_PROTOCOL
        .parse()
        .map_err(|_| LinkError::RegistrationFailed)
}

/// The host side of registration: the `XN` initiator.
///
/// Call order: [`HostRegistration::start`] (send message 1 in `HELLO`), then
/// [`HostRegistration::respond`] with the relay's `HOST_CHALLENGE` (send message 3 in
/// `HOST_PROOF`).
pub struct HostRegistration {
    state: HandshakeState,
}

impl std::fmt::Debug for HostRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostRegistration").finish_non_exhaustive()
    }
}

impl HostRegistration {
    /// Starts a registration for `workspace` with the host's static private key, using an
    /// ephemeral key from the operating system's CSPRNG. Returns the state and message 1.
    ///
    /// # Errors
    /// [`LinkError::RegistrationFailed`] if the workspace id is longer than 255 bytes or the
    /// CSPRNG fails.
    pub fn start(
        static_private: &[u8; 32],
        workspace: &str,
    ) -> Result<(Self, [u8; REGISTRATION_MSG1_LEN]), LinkError> {
        Self::start_inner(static_private, workspace, None)
    }

    /// Like [`HostRegistration::start`], with the ephemeral private key supplied by the
    /// caller (for deterministic tests and vectors; in production it must come from a CSPRNG).
    ///
    /// # Errors
    /// [`LinkError::RegistrationFailed`] if the workspace id is longer than 255 bytes.
    pub fn start_with_ephemeral(
        static_private: &[u8; 32],
        workspace: &str,
        ephemeral_private: [u8; 32],
    ) -> Result<(Self, [u8; REGISTRATION_MSG1_LEN]), LinkError> {
        Self::start_inner(static_private, workspace, Some(ephemeral_private))
    }

    fn start_inner(
        static_private: &[u8; 32],
        workspace: &str,
        ephemeral: Option<[u8; 32]>,
    ) -> Result<(Self, [u8; REGISTRATION_MSG1_LEN]), LinkError> {
        let prologue = registration_prologue(workspace)?;
        let mut state = Builder::with_resolver(params()?, resolver(ephemeral))
            .local_private_key(static_private)
            .and_then(|b| b.prologue(&prologue))
            .and_then(Builder::build_initiator)
            .map_err(|_| LinkError::RegistrationFailed)?;
        let msg1 = write_empty::<REGISTRATION_MSG1_LEN>(&mut state)?;
        Ok((Self { state }, msg1))
    }

    /// Reads the relay's challenge (message 2) and returns the proof (message 3).
    ///
    /// # Errors
    /// [`LinkError::RegistrationFailed`] if the challenge is not 48 bytes, does not
    /// authenticate, or yields an all-zero DH output (`LINK-12`, `CHAN-7`).
    pub fn respond(mut self, challenge: &[u8]) -> Result<[u8; REGISTRATION_MSG3_LEN], LinkError> {
        read_empty::<REGISTRATION_MSG2_LEN>(&mut self.state, challenge)?;
        write_empty::<REGISTRATION_MSG3_LEN>(&mut self.state)
    }
}

/// The relay side of registration: the `XN` responder.
///
/// Call order: [`RelayRegistration::new`] with a fresh ephemeral (`LINK-13`),
/// [`RelayRegistration::read_hello`] with message 1 from `HELLO` (send message 2 in
/// `HOST_CHALLENGE`), then [`RelayRegistration::read_proof`] with message 3 from
/// `HOST_PROOF`, which yields the host's static key.
pub struct RelayRegistration {
    state: HandshakeState,
}

impl std::fmt::Debug for RelayRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayRegistration").finish_non_exhaustive()
    }
}

impl RelayRegistration {
    /// A registration for `workspace`. `ephemeral_private` MUST be fresh CSPRNG output,
    /// never reused for another registration (`LINK-13`).
    ///
    /// # Errors
    /// [`LinkError::RegistrationFailed`] if the workspace id is longer than 255 bytes.
    pub fn new(workspace: &str, ephemeral_private: [u8; 32]) -> Result<Self, LinkError> {
        let prologue = registration_prologue(workspace)?;
        let state = Builder::with_resolver(params()?, resolver(Some(ephemeral_private)))
            .prologue(&prologue)
            .and_then(Builder::build_responder)
            .map_err(|_| LinkError::RegistrationFailed)?;
        Ok(Self { state })
    }

    /// Reads message 1 (from `HELLO`) and returns message 2 (for `HOST_CHALLENGE`).
    ///
    /// # Errors
    /// [`LinkError::RegistrationFailed`] if message 1 is not 32 bytes or the host's
    /// ephemeral gives an all-zero DH output (`LINK-12`, `CHAN-7`).
    pub fn read_hello(&mut self, msg1: &[u8]) -> Result<[u8; REGISTRATION_MSG2_LEN], LinkError> {
        read_empty::<REGISTRATION_MSG1_LEN>(&mut self.state, msg1)?;
        write_empty::<REGISTRATION_MSG2_LEN>(&mut self.state)
    }

    /// Reads message 3 (from `HOST_PROOF`) and returns the host's static public key.
    ///
    /// # Errors
    /// [`LinkError::RegistrationFailed`] if message 3 is not 64 bytes, does not decrypt
    /// (wrong workspace, another relay ephemeral, altered bytes), arrives before
    /// [`RelayRegistration::read_hello`], or gives an all-zero DH output (`LINK-12`).
    pub fn read_proof(mut self, msg3: &[u8]) -> Result<[u8; 32], LinkError> {
        read_empty::<REGISTRATION_MSG3_LEN>(&mut self.state, msg3)?;
        if !self.state.is_handshake_finished() {
            return Err(LinkError::RegistrationFailed);
        }
        let key = self
            .state
            .get_remote_static()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or(LinkError::RegistrationFailed)?;
        Ok(key)
    }
}

/// The crypto resolver of registration: Tether's [`TetherResolver`] (DH outputs of all
/// zeros rejected, `CHAN-7`), with, where the caller supplied one, the ephemeral private key
/// served as the only output of the RNG (sans-IO randomness).
fn resolver(ephemeral: Option<[u8; 32]>) -> BoxedCryptoResolver {
    Box::new(RegistrationResolver {
        inner: Box::new(TetherResolver::default()),
        ephemeral,
    })
}

struct RegistrationResolver {
    inner: BoxedCryptoResolver,
    ephemeral: Option<[u8; 32]>,
}

impl CryptoResolver for RegistrationResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        match self.ephemeral {
            Some(bytes) => Some(Box::new(SuppliedRandom { bytes: Some(bytes) })),
            None => self.inner.resolve_rng(),
        }
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        self.inner.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        self.inner.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        self.inner.resolve_cipher(choice)
    }
}

/// An RNG that yields the 32 supplied bytes once and then fails: the handshake draws
/// exactly one ephemeral key, and a second draw would be a bug, not a reason to reuse it.
struct SuppliedRandom {
    bytes: Option<[u8; 32]>,
}

impl Random for SuppliedRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        match self.bytes.take() {
            Some(bytes) if dest.len() == bytes.len() => {
                dest.copy_from_slice(&bytes);
                Ok(())
            }
            _ => Err(snow::Error::Rng),
        }
    }
}
