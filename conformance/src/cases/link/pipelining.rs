//! Relay cases of frames written back to back before the answer to `HELLO`
//! (`spec/03` section 3.5, `LINK-38`).

use std::sync::Arc;
use std::time::Duration;

use tether_proto::link::CloseCode;

use crate::case::{Case, case};
use crate::cases::steps::relay::{
    data_crosses, pass, pattern, pipelined_open, registered_host, send_open, wrong_credential_for,
};
use crate::context::Context;
use crate::link::{ANSWER_WAIT, Link, controller_hello, random_session};
use crate::outcome::{CaseResult, Outcome};

/// The pipelining cases, in spec order.
pub const CASES: &[Case] = &[OPEN_BEFORE_READY, OPEN_AFTER_REFUSED_HELLO];

// ----- LINK-38 ------------------------------------------------------------------------

const OPEN_BEFORE_READY: Case = case! {
    id: "LINK-38/open-before-ready",
    level: Must,
    timeout: 15 s,
    description: "a controller's OPEN sent right after its HELLO, before READY arrives, opens the session",
    relay: open_before_ready,
};
/// HELLO and OPEN written back to back: the relay processes the OPEN in READY.
async fn open_before_ready(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (mut c, mut h, s) = pipelined_open(&cx, 38, 128).await?;
    data_crosses(&mut h, &mut c, s, pattern(39, 200)).await?;
    data_crosses(&mut c, &mut h, s, pattern(40, 200)).await?;
    pass()
}

const OPEN_AFTER_REFUSED_HELLO: Case = case! {
    id: "LINK-38/open-after-refused-hello",
    level: Must,
    timeout: 15 s,
    description: "an OPEN sent right after a HELLO with a wrong credential reaches no host",
    relay: open_after_refused_hello,
};
/// HELLO with a wrong credential and OPEN back to back: GOAWAY AUTH_FAILED, and the OPEN
/// never reaches the workspace's host.
async fn open_after_refused_hello(cx: Arc<Context>) -> CaseResult<Outcome> {
    let (cred, key, mut h) = registered_host(&cx).await?;
    let mut c = Link::connect(&cx, "ctl").await?;
    let wrong = wrong_credential_for(&cred);
    c.send(&controller_hello(&wrong)).await?;
    send_open(&mut c, random_session(), &key, pattern(41, 128)).await?;
    c.expect_goaway(CloseCode::AUTH_FAILED, ANSWER_WAIT).await?;
    c.expect_end_after_goaway().await?;
    h.expect_quiet(Duration::from_millis(500)).await?;
    pass()
}
