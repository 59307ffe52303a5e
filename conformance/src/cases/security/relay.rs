//! Relay cases of `spec/07`: a registration with a low-order key is refused (`SEC-8`,
//! section 7.3).

use std::sync::Arc;

use tether_proto::link::{CloseCode, RelayFrame};

use crate::case::{Case, case};
use crate::cases::steps::relay::{pass, ws};
use crate::context::Context;
use crate::link::{ANSWER_WAIT, Link, host_hello};
use crate::outcome::{CaseResult, Outcome, fail};
use crate::traffic::describe;

/// The relay security cases, in spec order.
pub const CASES: &[Case] = &[LOW_ORDER_REGISTRATION];

const LOW_ORDER_REGISTRATION: Case = case! {
    id: "SEC-8/low-order-registration-key",
    level: Must,
    timeout: 15 s,
    description: "registration message 1 with an all-zero ephemeral gets GOAWAY REGISTRATION_FAILED",
    relay: low_order_registration,
};
async fn low_order_registration(cx: Arc<Context>) -> CaseResult<Outcome> {
    let cred = ws(&cx)?;
    let mut l = Link::connect(&cx, "host").await?;
    l.send(&host_hello(&cred, &[0u8; 32])).await?;
    match l.recv(ANSWER_WAIT).await {
        Ok(RelayFrame::GoAway { code, .. }) if code == CloseCode::REGISTRATION_FAILED => {
            l.expect_end_after_goaway().await?;
            pass()
        }
        Ok(RelayFrame::HostChallenge { .. }) => {
            // Some relays compute `ee` only when checking the proof; then any proof fails.
            l.send(&RelayFrame::HostProof {
                message: vec![0u8; 64],
            })
            .await?;
            l.expect_goaway(CloseCode::REGISTRATION_FAILED, ANSWER_WAIT)
                .await?;
            pass()
        }
        Ok(other) => fail(format!(
            "expected GOAWAY REGISTRATION_FAILED, got {}",
            describe(&other)
        )),
        Err(e) => fail(format!("expected GOAWAY REGISTRATION_FAILED; {e}")),
    }
}
