//! Cases: what one check of the suite is, and what it returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::context::Context;
use crate::outcome::{CaseResult, Level, Outcome, Res, TargetKind};

/// The future a case body returns.
pub type CaseFuture = Pin<Box<dyn Future<Output = CaseResult<Outcome>> + Send>>;

/// One check of the suite.
#[derive(Clone)]
pub struct Case {
    /// `REQ-ID/short-name`, for example `LINK-5/oversize-frame`; unique in the catalogue.
    pub id: &'static str,
    /// The requirement it checks, for example `LINK-5`.
    pub requirement: &'static str,
    /// The requirement's level.
    pub level: Level,
    /// One line: what the implementation under test must do.
    pub description: &'static str,
    /// The case fails if its body has not finished by then.
    pub timeout: Duration,
    /// What it runs against.
    pub target: TargetKind,
    /// Takes more than a few seconds by design (a protocol timer).
    pub slow: bool,
    /// Runs alone: it changes or exhausts something every other case depends on (the
    /// host's handshake budget, its remote-access switch).
    pub exclusive: bool,
    /// The check itself.
    pub body: fn(Arc<Context>) -> CaseFuture,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("id", &self.id)
            .field("level", &self.level)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The requirement a case id names: the part before the first `/` (`LINK-5` of
/// `LINK-5/oversize-frame`).
pub const fn requirement_of(id: &'static str) -> &'static str {
    let mut rest = id.as_bytes();
    let mut len = 0;
    while let [first, tail @ ..] = rest {
        if *first == b'/' {
            break;
        }
        len += 1;
        rest = tail;
    }
    let (head, _) = id.as_bytes().split_at(len);
    match std::str::from_utf8(head) {
        Ok(requirement) => requirement,
        Err(_) => id,
    }
}

/// Runs a host case's body: `Ok(())` passes, a [`Stop`](crate::outcome::Stop) fails or
/// skips.
pub(crate) async fn host_case<F, Fut>(cx: Arc<Context>, body: F) -> CaseResult<Outcome>
where
    F: FnOnce(Arc<Context>) -> Fut,
    Fut: Future<Output = Res<()>>,
{
    match body(cx).await {
        Ok(()) => Ok(Outcome::Pass),
        Err(stop) => stop.outcome(),
    }
}

/// Declares a [`Case`] right beside its body, as a constant:
///
/// ```text
/// const OVERSIZE_FRAME: Case = case! {
///     id: "LINK-5/oversize-frame",       // REQUIREMENT/what; the requirement is the part before `/`
///     level: Must,                       // a [`Level`] variant
///     timeout: 15 s,                     // whole seconds
///     slow: true,                        // optional: a protocol timer makes it slow
///     exclusive: true,                   // optional: it runs alone
///     description: "a frame over 65536 bytes gets GOAWAY FRAME_TOO_LARGE",
///     relay: oversize_frame,             // or `host: body`
/// };
/// ```
///
/// A `relay:` body is an `async fn(Arc<Context>) -> CaseResult<Outcome>`; a `host:` body is
/// an `async fn(Arc<Context>) -> Res<()>`, whose `Ok(())` passes and whose
/// [`Stop`](crate::outcome::Stop) fails or skips the case.
macro_rules! case {
    (@target relay) => {
        $crate::outcome::TargetKind::Relay
    };
    (@target host) => {
        $crate::outcome::TargetKind::Host
    };
    (@body relay $body:path) => {
        |cx| ::std::boxed::Box::pin($body(cx))
    };
    (@body host $body:path) => {
        |cx| ::std::boxed::Box::pin($crate::case::host_case(cx, $body))
    };
    (@flag) => {
        false
    };
    (@flag $value:literal) => {
        $value
    };
    (
        id: $id:literal,
        level: $level:ident,
        timeout: $secs:literal s,
        $(slow: $slow:literal,)?
        $(exclusive: $exclusive:literal,)?
        description: $description:literal,
        $target:ident: $body:path $(,)?
    ) => {
        $crate::case::Case {
            id: $id,
            requirement: $crate::case::requirement_of($id),
            level: $crate::outcome::Level::$level,
            description: $description,
            timeout: ::std::time::Duration::from_secs($secs),
            target: $crate::case::case!(@target $target),
            slow: $crate::case::case!(@flag $($slow)?),
            exclusive: $crate::case::case!(@flag $($exclusive)?),
            body: $crate::case::case!(@body $target $body),
        }
    };
}
pub(crate) use case;
