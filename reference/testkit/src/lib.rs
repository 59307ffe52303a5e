//! Scaffolding shared by Tether's tests and benches: child processes killed on drop,
//! scratch directories, the `tether` binary's launchers, an in-process relay and host,
//! bounded waits, and a real Codex (`codex app-server`) run offline against a scriptable
//! mock of a model service.
//!
//! It is dev tooling only: no crate depends on it except as a dev-dependency (and the
//! `tether-benches` tools), and it is never published. It checks nothing about the
//! protocol itself; the rules the tests check live in `spec/` and are named by the
//! tests that use this kit.
//!
//! Every wait here is bounded: a helper that waits takes a limit or uses [`LIMIT`], and
//! panics (or returns an error) when it passes.

// A test kit reports a broken test set-up the way a test does: by panicking.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod cli;
pub mod codex;
pub mod dirs;
pub mod inproc;
pub mod model;
pub mod proc;
pub mod tap;
pub mod wait;

use std::time::Duration;

/// The default bound of a wait: a child's first line, a command's run, an `eventually`.
pub const LIMIT: Duration = Duration::from_secs(30);
