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
//! | [`case`] | [`Case`], [`Level`], [`Outcome`] |
//! | [`context`] | what a case gets: the [`Target`] and its credentials |
//! | [`link`] | the runner's end of a relay link: raw frames, host registration, helpers |
//! | [`relay_cases`] | the relay cases |
//! | [`host`] | the runner's side of a host under test: tokens, a controller that can misbehave |
//! | [`host_cases`] | the host cases: tokens, channel, envelope, command/exec |
//! | [`host_thread_cases`] | the host cases of threads, turns, approvals, AGENTS.md, hand-off |
//! | [`sandbox_cases`] | the host cases of the sandbox's escapes: namespaces, secrets, terminal, privileges, sockets, containment |
//! | [`hygiene_cases`] | the host cases of where a host keeps its state and credential, where a command without `cwd` runs, what it reads from a project (`AGENTS.md`, imported `cwd`), and whose messages it acts on (revoked answers, message-1 floods) |
//! | [`mod@select`] | `--only` / `--skip` globs and the expectations file |
//! | [`mod@runner`] | running cases, the verdict and exit code |
//! | [`report`] | the summary table, `--json`, `--junit` |
//! | [`traffic`] | the per-case traffic log |

pub mod case;
pub mod context;
pub mod host;
pub mod host_cases;
pub mod host_thread_cases;
pub mod hygiene_cases;
pub mod link;
pub mod relay_cases;
pub mod report;
pub mod runner;
pub mod sandbox_cases;
pub mod select;
pub mod token_check;
pub mod traffic;

pub use case::{Case, CaseError, CaseResult, Level, Outcome, TargetKind};
pub use context::{
    CommandRelayAdmin, Context, Credential, RelayAdmin, RelayTarget, Target, TlsOptions,
};
pub use host::{CommandAdmin, GivenTokens, HostAdmin, HostTarget};
pub use runner::{CaseReport, RunOptions, RunReport, Status, Verdict, run};
pub use select::{Expectations, glob_match, select};
pub use traffic::TrafficLog;

/// Every case the runner knows, relay cases first, then host cases, in spec order.
pub fn catalogue() -> Vec<Case> {
    let mut cases = relay_cases::catalogue();
    cases.extend(host_cases::catalogue());
    cases.extend(sandbox_cases::catalogue());
    cases.extend(hygiene_cases::catalogue());
    cases.extend(host_thread_cases::catalogue());
    cases
}
