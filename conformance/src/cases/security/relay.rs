//! Relay cases of `spec/07`: a registration with a low-order key is refused (`SEC-8`,
//! section 7.3), whichever low-order point it is, however it is encoded, and whether it is
//! the host's ephemeral (`ee`) or its static key (`se`).
//!
//! A relay may refuse such a registration at once (its `ee` is all zeros as soon as it reads
//! message 1) or only when it checks the proof. So that a relay of the second kind is
//! tested too, the runner answers a `HOST_CHALLENGE` with the proof a host would send if the
//! relay carried on with the all-zero `ee` (`forged_initiator`): a relay that checks no DH
//! output accepts that proof, so only a refusal passes.

use std::sync::Arc;

use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{Builder, HandshakeState};
use tether_proto::link::registration::{
    REGISTRATION_MSG1_LEN, REGISTRATION_PROTOCOL, registration_prologue,
};
use tether_proto::link::{CloseCode, RelayFrame};

use crate::case::{Case, case};
use crate::cases::steps::relay::{pass, ws};
use crate::context::{Context, Credential};
use crate::link::{ANSWER_WAIT, HostKey, Link, host_hello};
use crate::outcome::{CaseError, CaseResult, Outcome, fail};
use crate::traffic::describe;

/// The relay security cases, in spec order.
pub const CASES: &[Case] = &[
    LOW_ORDER_REGISTRATION,
    EVERY_LOW_ORDER_EPHEMERAL,
    LOW_ORDER_HIGH_BIT,
    LOW_ORDER_STATIC,
];

/// The encodings, canonical (bit 255 clear), of the points of small order of Curve25519
/// (Wycheproof's X25519 vectors, libsodium's list), in hex: 0, 1, the two points of order 8,
/// p - 1, and p and p + 1 (non-canonical encodings of 0 and 1). X25519 with any of them
/// gives the all-zero output whatever the private key.
pub const LOW_ORDER_POINTS_CANONICAL: [&str; 7] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

/// [`LOW_ORDER_POINTS_CANONICAL`] as bytes.
fn low_order_points() -> Vec<[u8; 32]> {
    LOW_ORDER_POINTS_CANONICAL
        .iter()
        .filter_map(|h| hex::decode(h).ok())
        .filter_map(|v| <[u8; 32]>::try_from(v).ok())
        .collect()
}

/// `point` with bit 255 set: X25519 ignores that bit, so it is the same point.
fn with_high_bit(mut point: [u8; 32]) -> [u8; 32] {
    if let Some(last) = point.last_mut() {
        *last |= 0x80;
    }
    point
}

const LOW_ORDER_REGISTRATION: Case = case! {
    id: "SEC-8/low-order-registration-key",
    level: Must,
    timeout: 15 s,
    description: "registration message 1 with an all-zero ephemeral gets GOAWAY REGISTRATION_FAILED",
    relay: low_order_registration,
};
async fn low_order_registration(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    low_order_refused(&cx, "host", &cred, [0u8; 32]).await?;
    pass()
}

const EVERY_LOW_ORDER_EPHEMERAL: Case = case! {
    id: "SEC-8/every-low-order-ephemeral",
    level: Must,
    timeout: 30 s,
    description: "registration message 1 with each other low-order point (1, the two of order 8, p - 1, p, p + 1) gets REGISTRATION_FAILED, never READY",
    relay: every_low_order_ephemeral,
};
async fn every_low_order_ephemeral(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    for (i, point) in low_order_points().into_iter().enumerate().skip(1) {
        low_order_refused(&cx, &format!("host-{i}"), &cred, point).await?;
    }
    pass()
}

const LOW_ORDER_HIGH_BIT: Case = case! {
    id: "SEC-8/low-order-ephemeral-high-bit",
    level: Must,
    timeout: 30 s,
    description: "registration message 1 with each low-order point with bit 255 set (the same point to X25519) gets REGISTRATION_FAILED, never READY",
    relay: low_order_ephemeral_high_bit,
};
async fn low_order_ephemeral_high_bit(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    for (i, point) in low_order_points().into_iter().enumerate() {
        low_order_refused(&cx, &format!("host-{i}-high"), &cred, with_high_bit(point)).await?;
    }
    pass()
}

/// A host `HELLO` whose registration message 1 is `point`, a low-order key, must end in
/// `GOAWAY REGISTRATION_FAILED` (`SEC-8`): at once, or after the proof a host would send
/// if the relay went on with the all-zero `ee`.
async fn low_order_refused(
    cx: &Context,
    name: &str,
    cred: &Credential,
    point: [u8; 32],
) -> CaseResult<()> {
    let key = HostKey::random();
    let mut init = forged_initiator(&cred.workspace, &key.private, Forge::Ephemeral(point))?;
    let mut msg1 = [0u8; 128];
    let n = init
        .write_message(&[], &mut msg1)
        .map_err(|e| CaseError(format!("{name}: writing message 1: {e}")))?;
    let msg1 = msg1.get(..n).unwrap_or_default();
    if msg1 != point.as_slice() || n != REGISTRATION_MSG1_LEN {
        return fail(format!(
            "{name}: the forged message 1 is not the low-order point (runner bug)"
        ));
    }
    let mut l = Link::connect(cx, name).await?;
    l.send(&host_hello(cred, msg1)).await?;
    let point_hex = hex::encode(point);
    match l.recv(ANSWER_WAIT).await {
        Ok(RelayFrame::GoAway { code, .. }) if code == CloseCode::REGISTRATION_FAILED => {
            l.expect_end_after_goaway().await
        }
        Ok(RelayFrame::HostChallenge { message }) => {
            // A relay that computes `ee` only when checking the proof: send the proof that
            // verifies if it went on with `ee` = 0.
            let mut scratch = [0u8; 128];
            let proof = match init.read_message(&message, &mut scratch) {
                Ok(_) => {
                    let mut msg3 = [0u8; 128];
                    let n = init
                        .write_message(&[], &mut msg3)
                        .map_err(|e| CaseError(format!("{name}: writing message 3: {e}")))?;
                    msg3.get(..n).unwrap_or_default().to_vec()
                }
                // Its challenge was not made with `ee` = 0: any proof is as good.
                Err(_) => vec![0u8; 64],
            };
            l.send(&RelayFrame::HostProof { message: proof }).await?;
            match l.recv(ANSWER_WAIT).await {
                Ok(RelayFrame::GoAway { code, .. }) if code == CloseCode::REGISTRATION_FAILED => {
                    l.expect_end_after_goaway().await
                }
                Ok(RelayFrame::Ready) => fail(format!(
                    "{name}: registration with the low-order ephemeral {point_hex} completed (READY): the relay carried on with an all-zero DH output"
                )),
                Ok(other) => fail(format!(
                    "{name}: ephemeral {point_hex}: expected GOAWAY REGISTRATION_FAILED after the proof, got {}",
                    describe(&other)
                )),
                Err(e) => fail(format!(
                    "{name}: ephemeral {point_hex}: expected GOAWAY REGISTRATION_FAILED; {e}"
                )),
            }
        }
        Ok(other) => fail(format!(
            "{name}: ephemeral {point_hex}: expected GOAWAY REGISTRATION_FAILED, got {}",
            describe(&other)
        )),
        Err(e) => fail(format!(
            "{name}: ephemeral {point_hex}: expected GOAWAY REGISTRATION_FAILED; {e}"
        )),
    }
}

const LOW_ORDER_STATIC: Case = case! {
    id: "SEC-8/low-order-host-static",
    level: Must,
    timeout: 30 s,
    description: "a registration whose proof carries a low-order static key (its se all zeros) gets REGISTRATION_FAILED, never READY",
    relay: low_order_static,
};
async fn low_order_static(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    for (i, point) in low_order_points().into_iter().enumerate() {
        let name = format!("host-{i}");
        let key = HostKey::random();
        let mut init = forged_initiator(&cred.workspace, &key.private, Forge::Static(point))?;
        let mut msg1 = [0u8; 128];
        let n = init
            .write_message(&[], &mut msg1)
            .map_err(|e| CaseError(format!("{name}: writing message 1: {e}")))?;
        let mut l = Link::connect(&cx, &name).await?;
        l.send(&host_hello(&cred, msg1.get(..n).unwrap_or_default()))
            .await?;
        // Message 1 is a genuine ephemeral: the relay must challenge it.
        let msg2 = match l.recv(ANSWER_WAIT).await? {
            RelayFrame::HostChallenge { message } => message,
            other => {
                return fail(format!(
                    "{name}: expected HOST_CHALLENGE, got {}",
                    describe(&other)
                ));
            }
        };
        let mut scratch = [0u8; 128];
        init.read_message(&msg2, &mut scratch).map_err(|e| {
            CaseError(format!(
                "{name}: HOST_CHALLENGE does not verify (LINK-12): {e}"
            ))
        })?;
        let mut msg3 = [0u8; 128];
        let n = init
            .write_message(&[], &mut msg3)
            .map_err(|e| CaseError(format!("{name}: writing message 3: {e}")))?;
        l.send(&RelayFrame::HostProof {
            message: msg3.get(..n).unwrap_or_default().to_vec(),
        })
        .await?;
        let point_hex = hex::encode(point);
        match l.recv(ANSWER_WAIT).await {
            Ok(RelayFrame::GoAway { code, .. }) if code == CloseCode::REGISTRATION_FAILED => {
                l.expect_end_after_goaway().await?;
            }
            Ok(RelayFrame::Ready) => {
                return fail(format!(
                    "{name}: registration with the low-order static key {point_hex} completed (READY): the relay did not check se"
                ));
            }
            Ok(other) => {
                return fail(format!(
                    "{name}: static {point_hex}: expected GOAWAY REGISTRATION_FAILED, got {}",
                    describe(&other)
                ));
            }
            Err(e) => {
                return fail(format!(
                    "{name}: static {point_hex}: expected GOAWAY REGISTRATION_FAILED; {e}"
                ));
            }
        }
    }
    pass()
}

/// Which key of a registration initiator is a low-order point.
#[derive(Clone, Copy)]
enum Forge {
    /// The ephemeral (message 1): the relay's `ee` is all zeros.
    Ephemeral([u8; 32]),
    /// The static key (message 3): the relay's `se` is all zeros.
    Static([u8; 32]),
}

/// A registration initiator (`Noise_XN`, `LINK-12`) for `workspace` with the static key
/// `private`, one of whose public keys is replaced by a low-order point (for which no
/// private key exists), every DH with it giving the all-zero output a relay computes with
/// it. Everything else is the real handshake, so a relay that checks no DH output accepts
/// its proof.
fn forged_initiator(
    workspace: &str,
    private: &[u8; 32],
    forge: Forge,
) -> CaseResult<HandshakeState> {
    let params = REGISTRATION_PROTOCOL
        .parse()
        .map_err(|e| CaseError(format!("registration protocol name: {e}")))?;
    let prologue = registration_prologue(workspace)
        .map_err(|e| CaseError(format!("registration prologue: {e}")))?;
    Builder::with_resolver(params, Box::new(ForgedResolver { forge }))
        .prologue(&prologue)
        .and_then(|b| b.local_private_key(private))
        .and_then(Builder::build_initiator)
        .map_err(|e| CaseError(format!("forged registration initiator: {e}")))
}

/// snow's primitives, with [`ForgedDh`] for X25519.
struct ForgedResolver {
    forge: Forge,
}

impl CryptoResolver for ForgedResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        DefaultResolver.resolve_rng()
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        Some(Box::new(ForgedDh {
            inner: DefaultResolver.resolve_dh(choice)?,
            forge: self.forge,
            forged: false,
        }))
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// X25519 as snow computes it, except for the key [`Forge`] names (a generated key is the
/// ephemeral, a key set from a private key the static): that one's public key is the
/// low-order point and its every DH output is all zeros, as the relay's is.
struct ForgedDh {
    inner: Box<dyn Dh>,
    forge: Forge,
    forged: bool,
}

impl ForgedDh {
    fn point(&self) -> &[u8; 32] {
        match &self.forge {
            Forge::Ephemeral(p) | Forge::Static(p) => p,
        }
    }
}

impl Dh for ForgedDh {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn pub_len(&self) -> usize {
        self.inner.pub_len()
    }

    fn priv_len(&self) -> usize {
        self.inner.priv_len()
    }

    fn set(&mut self, privkey: &[u8]) {
        self.forged = matches!(self.forge, Forge::Static(_));
        self.inner.set(privkey);
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        self.forged = matches!(self.forge, Forge::Ephemeral(_));
        if self.forged {
            Ok(())
        } else {
            self.inner.generate(rng)
        }
    }

    fn pubkey(&self) -> &[u8] {
        if self.forged {
            self.point()
        } else {
            self.inner.pubkey()
        }
    }

    fn privkey(&self) -> &[u8] {
        self.inner.privkey()
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        if self.forged {
            out.iter_mut().take(32).for_each(|b| *b = 0);
            Ok(())
        } else {
            self.inner.dh(pubkey, out)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    /// Every listed point, and its high-bit twin, gives X25519's all-zero output.
    #[test]
    fn the_listed_points_are_of_low_order() {
        let mut dh = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
        dh.set(&[0x42; 32]);
        assert_eq!(low_order_points().len(), 7);
        for p in low_order_points() {
            for q in [p, with_high_bit(p)] {
                let mut out = [0xffu8; 32];
                dh.dh(&q, &mut out).unwrap();
                assert_eq!(out, [0u8; 32], "{}", hex::encode(q));
            }
        }
    }

    /// A responder that checks no DH output accepts the forged proof: the case's input is
    /// otherwise a valid registration.
    #[test]
    fn an_unchecking_responder_accepts_the_forged_registration() {
        let key = HostKey::random();
        for p in low_order_points() {
            for forge in [Forge::Ephemeral(p), Forge::Static(p)] {
                let mut init = forged_initiator("conf-main", &key.private, forge).unwrap();
                let params = REGISTRATION_PROTOCOL.parse().unwrap();
                let prologue = registration_prologue("conf-main").unwrap();
                let mut resp = Builder::new(params)
                    .prologue(&prologue)
                    .unwrap()
                    .build_responder()
                    .unwrap();
                let (mut a, mut b) = ([0u8; 128], [0u8; 128]);
                let n = init.write_message(&[], &mut a).unwrap();
                if let Forge::Ephemeral(_) = forge {
                    assert_eq!(&a[..n], p.as_slice());
                }
                resp.read_message(&a[..n], &mut b).unwrap();
                let n = resp.write_message(&[], &mut a).unwrap();
                init.read_message(&a[..n], &mut b).unwrap();
                let n = init.write_message(&[], &mut a).unwrap();
                assert_eq!(n, 64);
                resp.read_message(&a[..n], &mut b).unwrap();
                let want = match forge {
                    Forge::Ephemeral(_) => key.public,
                    Forge::Static(p) => p,
                };
                assert_eq!(resp.get_remote_static().unwrap(), want.as_slice());
            }
        }
    }
}
