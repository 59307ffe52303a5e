//! What a case returns: its verdict ([`Outcome`]), the level of the requirement it checks
//! ([`Level`]), what it runs against ([`TargetKind`]), and how its body ends early: a
//! [`CaseError`] for relay cases, a [`Stop`] (failure or skip) for host cases.

use std::fmt;

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

/// How a host case ends early: a failure or a skip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The host broke the rule.
    Fail(String),
    /// The case cannot run against this target (the reason says what to give the runner).
    Skip(String),
}

impl From<CaseError> for Stop {
    fn from(e: CaseError) -> Self {
        Self::Fail(e.0)
    }
}

impl Stop {
    /// The case outcome.
    pub fn outcome(self) -> Result<Outcome, CaseError> {
        match self {
            Self::Fail(r) => Err(CaseError(r)),
            Self::Skip(r) => Ok(Outcome::Skip(r)),
        }
    }
}

/// What host helpers return.
pub type Res<T> = Result<T, Stop>;

/// Fails with `reason`.
pub fn hfail<T>(reason: impl Into<String>) -> Res<T> {
    Err(Stop::Fail(reason.into()))
}

/// Skips with `reason`.
pub fn skip<T>(reason: impl Into<String>) -> Res<T> {
    Err(Stop::Skip(reason.into()))
}

/// Fails with `reason()` unless `cond`.
pub fn check(cond: bool, reason: impl FnOnce() -> String) -> Res<()> {
    if cond { Ok(()) } else { hfail(reason()) }
}
