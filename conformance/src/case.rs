//! Cases: what one check of the suite is, and what it returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::context::Context;

/// The RFC 2119 level of the requirement a case checks (`spec/08-requirements.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// MUST / MUST NOT / REQUIRED / SHALL: a failure fails the run.
    Must,
    /// SHOULD / RECOMMENDED: a failure fails the run only with `--strict`.
    Should,
    /// MAY / OPTIONAL: reported, never counted.
    May,
}

impl Level {
    /// The word as the spec writes it: `"MUST"`, `"SHOULD"`, `"MAY"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Must => "MUST",
            Self::Should => "SHOULD",
            Self::May => "MAY",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of implementation a case checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// A relay: the runner plays hosts and controllers (`spec/03`).
    Relay,
    /// A host: the runner plays the relay and controllers (`spec/04`, `spec/05`).
    Host,
}

impl TargetKind {
    /// `"relay"` or `"host"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Relay => "relay",
            Self::Host => "host",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict of one case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The implementation did what the requirement says.
    Pass,
    /// It did not; the text says what was expected and what arrived.
    Fail(String),
    /// The case could not run against this target (the text says why, and what to give the
    /// runner so that it can).
    Skip(String),
}

/// A case failed: what was expected and what happened instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseError(pub String);

impl fmt::Display for CaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaseError {}

/// What case bodies and their helpers return: `Err` is a failure with its reason.
pub type CaseResult<T> = Result<T, CaseError>;

/// A failure with the given reason.
pub fn fail<T>(reason: impl Into<String>) -> CaseResult<T> {
    Err(CaseError(reason.into()))
}

/// Fails with `reason` unless `cond` holds.
pub fn ensure(cond: bool, reason: impl FnOnce() -> String) -> CaseResult<()> {
    if cond {
        Ok(())
    } else {
        Err(CaseError(reason()))
    }
}

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
