//! Relay cases of authentication and host registration (`spec/03` sections 3.4, 3.5):
//! what a `HELLO` must carry, wrong and unknown credentials, remote access, the
//! challenge-proof exchange and a second registration (`LINK-9` to `LINK-14`).

use std::sync::Arc;

use tether_proto::limits::PROTOCOL_VERSION;
use tether_proto::link::frame::{MAX_CREDENTIAL_LEN, MIN_CREDENTIAL_LEN};
use tether_proto::link::registration::HostRegistration;
use tether_proto::link::{CloseCode, RelayFrame};

use crate::case::{Case, case};
use crate::cases::steps::relay::{
    first_frame_gets, hello_bytes, pass, start_registration, wrong_credential_for, ws,
};
use crate::context::{Context, Credential};
use crate::link::{
    ANSWER_WAIT, ConnectOptions, HostKey, Incoming, Link, controller, controller_hello, host,
    host_hello, host_with, open_session, random_bytes, random_session,
};
use crate::outcome::{CaseError, CaseResult, Outcome, ensure, fail};
use crate::traffic::describe;

/// The authentication and registration cases, in spec order.
pub const CASES: &[Case] = &[
    CONTROLLER_WITH_REGISTRATION,
    HOST_WITHOUT_REGISTRATION,
    WRONG_CREDENTIAL,
    UNKNOWN_WORKSPACE,
    ANOTHER_WORKSPACES_CREDENTIAL,
    CREDENTIAL_LAST_BYTE,
    CREDENTIAL_PREFIX,
    CREDENTIAL_WITH_SUFFIX,
    SHORT_CREDENTIAL,
    REMOTE_ACCESS_OFF,
    REGISTRATION_COMPLETES,
    BAD_PROOF,
    PROOF_WRONG_LENGTH,
    FRESH_CHALLENGE,
    REPLAYED_PROOF,
    REPLACES,
];

// ----- LINK-9, LINK-10, LINK-11 ----------------------------------------------------------

const CONTROLLER_WITH_REGISTRATION: Case = case! {
    id: "LINK-9/controller-hello-with-registration",
    level: Must,
    timeout: 15 s,
    description: "a controller HELLO carrying 32 registration bytes gets GOAWAY PROTOCOL_ERROR",
    relay: controller_with_registration,
};
async fn controller_with_registration(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut b = hello_bytes(&controller_hello(&ws(&cx)?))?;
    b.extend_from_slice(&[0x44; 32]);
    first_frame_gets(&cx, "ctl", b, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

const HOST_WITHOUT_REGISTRATION: Case = case! {
    id: "LINK-9/host-hello-without-registration",
    level: Must,
    timeout: 15 s,
    description: "a host HELLO without registration message 1 gets GOAWAY PROTOCOL_ERROR",
    relay: host_without_registration,
};
async fn host_without_registration(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut b = hello_bytes(&controller_hello(&ws(&cx)?))?;
    if let Some(role) = b.get_mut(2) {
        *role = 0x01;
    }
    first_frame_gets(&cx, "host", b, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

async fn auth_failed_bytes(cx: &Context, name: &str, hello: &RelayFrame) -> CaseResult<Vec<u8>> {
    let mut l = Link::connect(cx, name).await?;
    l.send(hello).await?;
    let got = match l.next(ANSWER_WAIT).await? {
        Incoming::Binary(b) => b,
        other => {
            return fail(format!(
                "{name}: expected GOAWAY AUTH_FAILED, got {other:?}"
            ));
        }
    };
    match RelayFrame::decode(&got) {
        Ok(RelayFrame::GoAway { code, .. }) if code == CloseCode::AUTH_FAILED => {}
        Ok(f) => {
            return fail(format!(
                "{name}: expected GOAWAY AUTH_FAILED, got {}",
                describe(&f)
            ));
        }
        Err(e) => {
            return fail(format!(
                "{name}: expected GOAWAY AUTH_FAILED, got undecodable bytes ({})",
                e.name()
            ));
        }
    }
    l.expect_end_after_goaway().await?;
    Ok(got)
}

const WRONG_CREDENTIAL: Case = case! {
    id: "LINK-10/wrong-credential",
    level: Must,
    timeout: 15 s,
    description: "a wrong credential gets GOAWAY AUTH_FAILED, for a controller and for a host",
    relay: wrong_credential,
};
async fn wrong_credential(cx: Arc<Context>) -> CaseResult<Outcome> {
    let bad = wrong_credential_for(&ws(&cx)?);
    auth_failed_bytes(&cx, "ctl", &controller_hello(&bad)).await?;
    let key = HostKey::random();
    let (_reg, msg1) = HostRegistration::start(&key.private, &bad.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    auth_failed_bytes(&cx, "host", &host_hello(&bad, &msg1)).await?;
    pass()
}

const UNKNOWN_WORKSPACE: Case = case! {
    id: "LINK-10/unknown-workspace-like-wrong-credential",
    level: Must,
    timeout: 15 s,
    description: "an unknown workspace gets the same GOAWAY AUTH_FAILED, byte for byte, as a wrong credential",
    relay: unknown_workspace,
};
async fn unknown_workspace(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let wrong = auth_failed_bytes(
        &cx,
        "ctl-wrong-cred",
        &controller_hello(&wrong_credential_for(&cred)),
    )
    .await?;
    let unknown = Credential {
        workspace: format!("conf-{}", hex::encode(random_bytes::<6>())),
        credential: cred.credential.clone(),
    };
    let unknown_bytes =
        auth_failed_bytes(&cx, "ctl-unknown-ws", &controller_hello(&unknown)).await?;
    ensure(wrong == unknown_bytes, || {
        format!(
            "unknown workspace and wrong credential are answered differently ({} vs {}): the answer reveals which workspaces exist",
            hex::encode(&unknown_bytes),
            hex::encode(&wrong)
        )
    })?;
    pass()
}

/// `bad` gets `GOAWAY AUTH_FAILED` from the relay, in a controller's `HELLO` and in a
/// host's (with a valid registration message 1): a wrong credential (`LINK-10`).
async fn refused_for_both_roles(cx: &Context, bad: &Credential) -> CaseResult<()> {
    auth_failed_bytes(cx, "ctl", &controller_hello(bad)).await?;
    let key = HostKey::random();
    let (_reg, msg1) = HostRegistration::start(&key.private, &bad.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    auth_failed_bytes(cx, "host", &host_hello(bad, &msg1)).await?;
    Ok(())
}

const ANOTHER_WORKSPACES_CREDENTIAL: Case = case! {
    id: "LINK-10/credential-of-another-workspace",
    level: Must,
    timeout: 15 s,
    description: "the valid credential of another workspace of the same relay gets GOAWAY AUTH_FAILED: a credential belongs to one workspace",
    relay: another_workspaces_credential,
};
async fn another_workspaces_credential(cx: Arc<Context>) -> CaseResult<Outcome> {
    let Some(other) = cx.relay()?.other_workspace.clone() else {
        return Ok(Outcome::Skip(
            "needs a second workspace of the same relay (--other-workspace NAME=CREDENTIAL)"
                .to_owned(),
        ));
    };
    let cred = ws(&cx)?;
    if other.credential == cred.credential || other.workspace == cred.workspace {
        return Ok(Outcome::Skip(
            "the two workspaces given have the same name or the same credential".to_owned(),
        ));
    }
    // Each workspace's name with the other's credential: both credentials are valid, for
    // their own workspace only.
    for (workspace, credential) in [
        (&cred.workspace, &other.credential),
        (&other.workspace, &cred.credential),
    ] {
        let bad = Credential {
            workspace: workspace.clone(),
            credential: credential.clone(),
        };
        refused_for_both_roles(&cx, &bad).await?;
    }
    pass()
}

const CREDENTIAL_LAST_BYTE: Case = case! {
    id: "LINK-10/credential-differs-in-last-byte",
    level: Must,
    timeout: 15 s,
    description: "the right credential with only its last byte changed gets GOAWAY AUTH_FAILED: the whole credential is compared",
    relay: credential_last_byte,
};
async fn credential_last_byte(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut bad = ws(&cx)?;
    if let Some(b) = bad.credential.last_mut() {
        *b ^= 0x01;
    }
    refused_for_both_roles(&cx, &bad).await?;
    pass()
}

const CREDENTIAL_PREFIX: Case = case! {
    id: "LINK-10/credential-prefix",
    level: Must,
    timeout: 15 s,
    description: "the right credential without its last byte (still 16 bytes or more) gets GOAWAY AUTH_FAILED",
    relay: credential_prefix,
};
async fn credential_prefix(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut bad = ws(&cx)?;
    if bad.credential.len() <= MIN_CREDENTIAL_LEN {
        return Ok(Outcome::Skip(format!(
            "the workspace's credential is {} bytes: a shorter prefix is malformed, not wrong",
            bad.credential.len()
        )));
    }
    bad.credential.pop();
    refused_for_both_roles(&cx, &bad).await?;
    pass()
}

const CREDENTIAL_WITH_SUFFIX: Case = case! {
    id: "LINK-10/credential-with-suffix",
    level: Must,
    timeout: 15 s,
    description: "the right credential with one byte appended (still 255 bytes or fewer) gets GOAWAY AUTH_FAILED",
    relay: credential_with_suffix,
};
async fn credential_with_suffix(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut bad = ws(&cx)?;
    if bad.credential.len() >= MAX_CREDENTIAL_LEN {
        return Ok(Outcome::Skip(format!(
            "the workspace's credential is {} bytes: a longer one cannot be framed",
            bad.credential.len()
        )));
    }
    bad.credential.push(b'x');
    refused_for_both_roles(&cx, &bad).await?;
    pass()
}

const SHORT_CREDENTIAL: Case = case! {
    id: "LINK-10/short-credential",
    level: Must,
    timeout: 15 s,
    description: "a 15-byte credential is malformed: GOAWAY PROTOCOL_ERROR",
    relay: short_credential,
};
async fn short_credential(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let mut b = vec![RelayFrame::HELLO, PROTOCOL_VERSION, 0x02];
    let w = cred.workspace.as_bytes();
    b.push(u8::try_from(w.len()).unwrap_or(0));
    b.extend_from_slice(w);
    b.push(15);
    b.extend_from_slice(cred.credential.get(..15).unwrap_or(&[0x61; 15]));
    first_frame_gets(&cx, "ctl", b, CloseCode::PROTOCOL_ERROR).await?;
    pass()
}

const REMOTE_ACCESS_OFF: Case = case! {
    id: "LINK-11/remote-access-off",
    level: Must,
    timeout: 15 s,
    description: "a valid HELLO for a workspace with remote access off gets GOAWAY REMOTE_ACCESS_DISABLED",
    relay: remote_access_off,
};
async fn remote_access_off(cx: Arc<Context>) -> CaseResult<Outcome> {
    let Some(off) = cx.relay()?.remote_access_off.clone() else {
        return Ok(Outcome::Skip(
            "no workspace with remote access off was given (--remote-access-off-workspace NAME=CREDENTIAL)".to_owned(),
        ));
    };
    first_frame_gets(
        &cx,
        "ctl",
        hello_bytes(&controller_hello(&off))?,
        CloseCode::REMOTE_ACCESS_DISABLED,
    )
    .await?;
    let key = HostKey::random();
    let (_reg, msg1) = HostRegistration::start(&key.private, &off.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    first_frame_gets(
        &cx,
        "host",
        hello_bytes(&host_hello(&off, &msg1))?,
        CloseCode::REMOTE_ACCESS_DISABLED,
    )
    .await?;
    // The credential is checked first (spec/03 section 3.5 order).
    let bad = wrong_credential_for(&off);
    first_frame_gets(
        &cx,
        "ctl-bad",
        hello_bytes(&controller_hello(&bad))?,
        CloseCode::AUTH_FAILED,
    )
    .await?;
    pass()
}

// ----- LINK-12, LINK-13, LINK-14, SEC-8 --------------------------------------------------

const REGISTRATION_COMPLETES: Case = case! {
    id: "LINK-12/registration-completes",
    level: Must,
    timeout: 15 s,
    description: "a host completes Noise_XN registration (TETHER-REG-V1 prologue) and gets READY",
    relay: registration_completes,
};
async fn registration_completes(cx: Arc<Context>) -> CaseResult<Outcome> {
    let mut h = host(&cx, "host", &ws(&cx)?, &HostKey::random()).await?;
    h.expect_alive().await?;
    pass()
}

const BAD_PROOF: Case = case! {
    id: "LINK-12/bad-proof",
    level: Must,
    timeout: 15 s,
    description: "a HOST_PROOF with one flipped byte gets GOAWAY REGISTRATION_FAILED",
    relay: bad_proof,
};
async fn bad_proof(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    for (name, at) in [("host-static", 0usize), ("host-tag", 63)] {
        let key = HostKey::random();
        let (mut l, reg, msg2) = start_registration(&cx, name, &cred, &key).await?;
        let mut msg3 = reg
            .respond(&msg2)
            .map_err(|e| CaseError(format!("HOST_CHALLENGE does not verify (LINK-12): {e}")))?;
        if let Some(b) = msg3.get_mut(at) {
            *b ^= 0x01;
        }
        l.send(&RelayFrame::HostProof {
            message: msg3.to_vec(),
        })
        .await?;
        l.expect_goaway(CloseCode::REGISTRATION_FAILED, ANSWER_WAIT)
            .await?;
    }
    pass()
}

const PROOF_WRONG_LENGTH: Case = case! {
    id: "LINK-12/proof-wrong-length",
    level: Must,
    timeout: 15 s,
    description: "a 63-byte HOST_PROOF is malformed: GOAWAY PROTOCOL_ERROR",
    relay: proof_wrong_length,
};
async fn proof_wrong_length(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let (mut l, reg, msg2) = start_registration(&cx, "host", &cred, &key).await?;
    let msg3 = reg
        .respond(&msg2)
        .map_err(|e| CaseError(format!("HOST_CHALLENGE does not verify (LINK-12): {e}")))?;
    let mut b = vec![RelayFrame::HOST_PROOF];
    b.extend_from_slice(msg3.get(..63).unwrap_or(&msg3));
    l.send_bytes(b).await?;
    l.expect_goaway(CloseCode::PROTOCOL_ERROR, ANSWER_WAIT)
        .await?;
    pass()
}

const FRESH_CHALLENGE: Case = case! {
    id: "LINK-13/fresh-challenge",
    level: Must,
    timeout: 15 s,
    description: "the same registration message 1 on two links gets two different HOST_CHALLENGEs",
    relay: fresh_challenge,
};
async fn fresh_challenge(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let eph = random_bytes::<32>();
    let mut challenges = Vec::new();
    for name in ["host-a", "host-b"] {
        let mut l = Link::connect(&cx, name).await?;
        let (_reg, msg1) =
            HostRegistration::start_with_ephemeral(&key.private, &cred.workspace, eph)
                .map_err(|e| CaseError(format!("registration: {e}")))?;
        l.send(&host_hello(&cred, &msg1)).await?;
        match l.recv(ANSWER_WAIT).await? {
            RelayFrame::HostChallenge { message } => challenges.push(message),
            other => {
                return fail(format!(
                    "{name}: expected HOST_CHALLENGE, got {}",
                    describe(&other)
                ));
            }
        }
        l.goaway(CloseCode::NORMAL).await?;
    }
    ensure(challenges.first() != challenges.get(1), || {
        "two registrations with the same message 1 got the same HOST_CHALLENGE: the relay re-used its ephemeral key".to_owned()
    })?;
    pass()
}

const REPLAYED_PROOF: Case = case! {
    id: "LINK-13/replayed-proof",
    level: Must,
    timeout: 15 s,
    description: "a proof recorded on one link, replayed on a new link, gets GOAWAY REGISTRATION_FAILED",
    relay: replayed_proof,
};
async fn replayed_proof(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let (mut first, rec) = host_with(&cx, "host", &cred, &key, ConnectOptions::default()).await?;
    let mut replay = Link::connect(&cx, "replayer").await?;
    replay.send(&host_hello(&cred, &rec.msg1)).await?;
    match replay.recv(ANSWER_WAIT).await? {
        RelayFrame::HostChallenge { .. } => {}
        other => {
            return fail(format!(
                "replayer: expected HOST_CHALLENGE, got {}",
                describe(&other)
            ));
        }
    }
    replay
        .send(&RelayFrame::HostProof {
            message: rec.msg3.clone(),
        })
        .await?;
    replay
        .expect_goaway(CloseCode::REGISTRATION_FAILED, ANSWER_WAIT)
        .await?;
    // The genuine host is still the one sessions reach.
    let mut c = controller(&cx, "ctl", &cred).await?;
    open_session(&mut c, &mut first, &key, random_session()).await?;
    pass()
}

const REPLACES: Case = case! {
    id: "LINK-14/second-registration-replaces",
    level: Must,
    timeout: 15 s,
    description: "a second registration of a host key: GOAWAY REPLACED on the old link, CLOSE PEER_GONE for its sessions",
    relay: replaces,
};
async fn replaces(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let key = HostKey::random();
    let mut old = host(&cx, "host-old", &cred, &key).await?;
    let mut c = controller(&cx, "ctl", &cred).await?;
    let s = random_session();
    open_session(&mut c, &mut old, &key, s).await?;
    let mut new = host(&cx, "host-new", &cred, &key).await?;
    old.expect_goaway(CloseCode::REPLACED, ANSWER_WAIT).await?;
    c.expect_close(s, CloseCode::PEER_GONE, ANSWER_WAIT).await?;
    open_session(&mut c, &mut new, &key, random_session()).await?;
    pass()
}
