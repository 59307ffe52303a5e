//! Fixtures of Tether's benchmarks (`BENCHMARKS.md`): the criterion benches in `benches/`,
//! `relay-capacity` and `stream-cpu` share them.
//!
//! - [`config`]: criterion settings for `TETHER_BENCH_MODE=quick` (the CI gate) and `full`.
//! - [`channel`]: handshake inputs and established transports, Tether's and bare snow's.
//! - [`e2e`]: the reference relay, host and controller on loopback, and the baselines
//!   (WebSocket + bare snow IK responder, plain TCP forwarder).
//! - [`sys`]: file-descriptor limit, resident memory and CPU time of a process (Linux
//!   `/proc`).

pub mod channel;
pub mod config;
pub mod e2e;
pub mod sys;
