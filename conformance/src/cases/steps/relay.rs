//! Steps of the relay cases: a link's first frame, a `READY` link's frame and the `GOAWAY`
//! they get, a host and a controller with a session between them, `DATA` that must cross
//! unchanged.

use tether_proto::link::registration::HostRegistration;
use tether_proto::link::{CloseCode, RelayFrame, SessionId};

use crate::context::{Context, Credential};
use crate::link::{
    ANSWER_WAIT, HostKey, Link, controller, controller_hello, handshake_bytes, host, host_hello,
    open_session, random_bytes, random_session,
};
use crate::outcome::{CaseError, CaseResult, Outcome, fail};
use crate::traffic::describe;

/// The workspace the relay under test serves, with its credential.
pub(crate) fn ws(cx: &Context) -> CaseResult<Credential> {
    Ok(cx.relay()?.workspace.clone())
}

/// The case passed.
pub(crate) fn pass() -> CaseResult<Outcome> {
    Ok(Outcome::Pass)
}

/// A credential that is certainly wrong for `cred`'s workspace.
pub(crate) fn wrong_credential_for(cred: &Credential) -> Credential {
    let mut c = hex::encode(random_bytes::<16>()).into_bytes();
    if c == cred.credential {
        c.push(b'x');
    }
    Credential {
        workspace: cred.workspace.clone(),
        credential: c,
    }
}

/// `frame` encoded, or a failure naming it.
pub(crate) fn hello_bytes(frame: &RelayFrame) -> CaseResult<Vec<u8>> {
    frame
        .to_bytes()
        .map_err(|e| CaseError(format!("encoding {}: {e}", describe(frame))))
}

/// Connects, sends `bytes` as the first message, expects `GOAWAY code`.
pub(crate) async fn first_frame_gets(
    cx: &Context,
    name: &str,
    bytes: Vec<u8>,
    code: CloseCode,
) -> CaseResult<()> {
    let mut l = Link::connect(cx, name).await?;
    l.send_bytes(bytes).await?;
    l.expect_goaway(code, ANSWER_WAIT).await.map(|_| ())
}

/// A READY controller link sends `bytes`, expects `GOAWAY code`.
pub(crate) async fn ready_frame_gets(
    cx: &Context,
    name: &str,
    bytes: Vec<u8>,
    code: CloseCode,
) -> CaseResult<()> {
    let mut l = controller(cx, name, &ws(cx)?).await?;
    l.send_bytes(bytes).await?;
    l.expect_goaway(code, ANSWER_WAIT).await.map(|_| ())
}

/// A host, a controller, and one open session between them.
pub(crate) async fn session_pair(cx: &Context) -> CaseResult<(Link, Link, HostKey, SessionId)> {
    let cred = ws(cx)?;
    let key = HostKey::random();
    let mut h = host(cx, "host", &cred, &key).await?;
    let mut c = controller(cx, "ctl", &cred).await?;
    let s = random_session();
    open_session(&mut c, &mut h, &key, s).await?;
    Ok((h, c, key, s))
}

/// A `DATA` frame of `session`.
pub(crate) fn data(session: SessionId, payload: Vec<u8>) -> RelayFrame {
    RelayFrame::Data { session, payload }
}

/// Sends DATA one way and checks it arrives unchanged.
pub(crate) async fn data_crosses(
    from: &mut Link,
    to: &mut Link,
    s: SessionId,
    payload: Vec<u8>,
) -> CaseResult<()> {
    let f = data(s, payload);
    from.send(&f).await?;
    to.expect_frame(&f, ANSWER_WAIT).await
}

/// `len` pseudo-random bytes from `seed` (xorshift), the same for the same seed.
pub(crate) fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_be_bytes()[0]
        })
        .collect()
}

/// A fresh link named `name` that sent a host `HELLO` for `key` (`LINK-9`), and the
/// registration it started.
async fn host_hello_sent(
    cx: &Context,
    name: &str,
    cred: &Credential,
    key: &HostKey,
) -> CaseResult<(Link, HostRegistration)> {
    let mut l = Link::connect(cx, name).await?;
    let (reg, msg1) = HostRegistration::start(&key.private, &cred.workspace)
        .map_err(|e| CaseError(format!("registration: {e}")))?;
    l.send(&host_hello(cred, &msg1)).await?;
    Ok((l, reg))
}

/// A host link that sent its `HELLO` and read `HOST_CHALLENGE`: it awaits its proof
/// (`LINK-12`). Returns the registration and the challenge too.
pub(crate) async fn start_registration(
    cx: &Context,
    name: &str,
    cred: &Credential,
    key: &HostKey,
) -> CaseResult<(Link, HostRegistration, Vec<u8>)> {
    let (mut l, reg) = host_hello_sent(cx, name, cred, key).await?;
    let msg2 = match l.recv(ANSWER_WAIT).await? {
        RelayFrame::HostChallenge { message } => message,
        other => {
            return fail(format!(
                "{name}: expected HOST_CHALLENGE, got {}",
                describe(&other)
            ));
        }
    };
    Ok((l, reg, msg2))
}

/// A link named `host` that sent a host `HELLO` and read `HOST_CHALLENGE`: it awaits its
/// proof, which it never sends.
pub(crate) async fn awaiting_proof(
    cx: &Context,
    cred: &Credential,
    key: &HostKey,
) -> CaseResult<Link> {
    let (mut l, _reg) = host_hello_sent(cx, "host", cred, key).await?;
    match l.recv(ANSWER_WAIT).await? {
        RelayFrame::HostChallenge { .. } => {}
        other => return fail(format!("expected HOST_CHALLENGE, got {}", describe(&other))),
    }
    Ok(l)
}

/// Sends `OPEN` for `session` to `key` (a 64-byte handshake) and expects `CLOSE code` for
/// it.
pub(crate) async fn open_refused(
    c: &mut Link,
    session: SessionId,
    key: &HostKey,
    code: CloseCode,
) -> CaseResult<()> {
    send_open(c, session, key, handshake_bytes(64)).await?;
    c.expect_close(session, code, ANSWER_WAIT).await
}

/// A host of the target's workspace registered with a fresh key (`LINK-12`): the
/// workspace's credential, the key, and the host's `READY` link.
pub(crate) async fn registered_host(cx: &Context) -> CaseResult<(Credential, HostKey, Link)> {
    let cred = ws(cx)?;
    let key = HostKey::random();
    let h = host(cx, "host", &cred, &key).await?;
    Ok((cred, key, h))
}

/// Sends `OPEN` for `session` to the host with `key`, carrying `handshake` (`LINK-15`).
/// A registered host and a controller whose `HELLO` and an `OPEN` to that host, with a
/// handshake of `pattern(seed, len)`, reach the relay in one write (`LINK-38`); after
/// `READY`, the host has the `INCOMING`. Returns the controller's link, the host's link and
/// the session.
pub(crate) async fn pipelined_open(
    cx: &Context,
    seed: u32,
    len: usize,
) -> CaseResult<(Link, Link, SessionId)> {
    let (cred, key, mut h) = registered_host(cx).await?;
    let mut c = Link::connect(cx, "ctl").await?;
    let s = random_session();
    let handshake = pattern(seed, len);
    let open = hello_bytes(&RelayFrame::Open {
        session: s,
        host_key: key.public,
        handshake: handshake.clone(),
    })?;
    // One write: the OPEN reaches the relay with the HELLO, before READY can be sent.
    c.send_together(vec![hello_bytes(&controller_hello(&cred))?, open])
        .await?;
    c.expect_frame(&RelayFrame::Ready, ANSWER_WAIT).await?;
    h.expect_frame(
        &RelayFrame::Incoming {
            session: s,
            handshake,
        },
        ANSWER_WAIT,
    )
    .await?;
    Ok((c, h, s))
}

pub(crate) async fn send_open(
    c: &mut Link,
    session: SessionId,
    key: &HostKey,
    handshake: Vec<u8>,
) -> CaseResult<()> {
    c.send(&RelayFrame::Open {
        session,
        host_key: key.public,
        handshake,
    })
    .await
}
