//! Fixtures of Tether's benchmarks (`BENCHMARKS.md`): the criterion benches in `benches/`,
//! `relay-capacity`, `stream-cpu` and `exec-cpu` share them (`tcp-forwarder` is the
//! baseline's forwarder process).
//!
//! - [`config`]: criterion settings for `TETHER_BENCH_MODE=quick` (the CI gate) and `full`.
//! - [`channel`]: handshake inputs and established transports, Tether's and bare snow's.
//! - [`e2e`]: the reference relay, host and controller on loopback, and the baselines
//!   (WebSocket + bare snow IK responder, plain TCP forwarder).
//! - [`exec`]: the `tether` binary's relay, host and controller as processes, a plain TCP
//!   forwarder process, and runs of a command read to the end with the CPU time of every
//!   process on the path.
//! - [`ssh`]: an `sshd` of the bench's own on loopback, the OpenSSH baseline.
//! - [`sys`]: file-descriptor limit, resident memory and CPU time of processes and
//!   threads (Linux `/proc`).

pub mod channel;
pub mod config;
pub mod e2e;
pub mod exec;
pub mod ssh;
pub mod sys;
