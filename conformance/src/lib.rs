//! `tether-conformance`: holds a Tether relay (and, next, a host) to the specification.
//!
//! An implementer points the runner at their own relay; it plays hosts and controllers
//! through it, speaking raw relay frames (`spec/03-relay-link.md`), and reports a verdict
//! per case. Each [`Case`] is named after the requirement it checks (`LINK-5/oversize-frame`
//! checks `LINK-5`), has the requirement's level (MUST/SHOULD/MAY, from
//! `spec/08-requirements.md`), a one-line description and a timeout, and its body returns
//! [`Outcome::Pass`], [`Outcome::Fail`] or [`Outcome::Skip`]. Every message a case sends or
//! receives goes into its [`TrafficLog`] (hex, with timestamps), kept for failures.
//!
//! It is not a fuzzer and not a load test: each case provokes one behaviour the spec names
//! and checks the exact answer (the close code, the bytes forwarded, the timing of a timer).
//! It does not test the implementation's inside (key storage, constant-time comparison):
//! `conformance/untestable.toml` lists the requirements that cannot be checked from outside,
//! each with the reason, and `ci/conformance-trace` checks every MUST has a case or a reason.
//!
//! | module | what |
//! |---|---|
//! | [`outcome`] | [`Outcome`], [`Level`], [`TargetKind`], and how a case body ends early ([`CaseError`], [`host::Stop`]) |
//! | [`case`] | [`Case`], and the `case!` macro that declares one beside its body |
//! | [`cases`] | the cases, one module per spec chapter: [`cases::token`] (`spec/02`), [`cases::link`] (`spec/03`), [`cases::channel`] (`spec/04`), [`cases::command`] (`spec/05`), [`cases::registries`] (`spec/06`), [`cases::security`] (`spec/07`) |
//! | [`context`] | what a case gets: the [`Target`] (a [`RelayTarget`] or a [`HostTarget`]) and its credentials |
//! | [`admin`] | what the runner may ask of an operator outside the protocol: [`HostAdmin`], [`RelayAdmin`] |
//! | [`link`] | the runner's end of a relay link: raw frames, host registration, helpers |
//! | [`host`] | the runner's side of a host under test: its paired device, handshakes, a controller session that can misbehave |
//! | [`token_check`] | the runner's own decoder of pairing tokens |
//! | [`random`] | session ids, keys |
//! | [`mod@select`] | `--only` / `--skip` globs and the expectations file |
//! | [`mod@runner`] | running cases, the verdict and exit code |
//! | [`report`] | the summary table, `--json`, `--junit` |
//! | [`traffic`] | the per-case traffic log |
//! | [`codex_schema`] | the pinned Codex app-server schemas, and the check of a message against its method's (`CMD-78`) |
//!
//! The files depend on each other in one direction only (`ci/import-cycles.py` checks it):
//! `outcome`, `traffic`, `random`, `admin` and `codex_schema` use nothing of the crate; `host::device` uses
//! `random`; `context` uses those; `link` and `case` use `context`; the rest of `host` uses
//! `link`; `cases` use all of them (and their own `steps`); `select`, `runner` and `report`
//! use `case` and `context`.

pub mod admin;
pub mod case;
pub mod cases;
pub mod codex_schema;
pub mod context;
pub mod host;
pub mod link;
pub mod outcome;
pub mod random;
pub mod report;
pub mod runner;
pub mod select;
pub mod token_check;
pub mod traffic;

pub use admin::{CommandAdmin, CommandRelayAdmin, GivenTokens, HostAdmin, RelayAdmin};
pub use case::Case;
pub use cases::catalogue;
pub use context::{Context, Credential, HostTarget, RelayTarget, Target, TlsOptions};
pub use outcome::{CaseError, CaseResult, Level, Outcome, TargetKind};
pub use runner::{CaseReport, RunOptions, RunReport, Status, Verdict, run};
pub use select::{Expectations, glob_match, select};
pub use traffic::TrafficLog;
