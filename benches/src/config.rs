//! Criterion settings by mode.
//!
//! `TETHER_BENCH_MODE=quick` (what `ci/bench-gate --quick` sets): short warm-up and
//! measurement, few samples, so that the whole set runs in well under a minute; the
//! budgets of the quick gate leave room for that noise. `full` (the default): criterion's
//! usual settings, for release pipelines and the figures in `BENCHMARKS.md`.

use std::time::Duration;

/// The benchmark mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Short runs for CI (`TETHER_BENCH_MODE=quick`).
    Quick,
    /// Criterion's usual settings.
    Full,
}

/// The mode from `TETHER_BENCH_MODE` (`quick` or anything else for full).
pub fn mode() -> Mode {
    match std::env::var("TETHER_BENCH_MODE").as_deref() {
        Ok("quick") => Mode::Quick,
        _ => Mode::Full,
    }
}

/// Warm-up time, measurement time and sample count of a benchmark whose iterations are
/// short (in-memory cryptography and codecs).
pub fn fast_settings() -> (Duration, Duration, usize) {
    match mode() {
        Mode::Quick => (Duration::from_millis(300), Duration::from_millis(900), 20),
        Mode::Full => (Duration::from_secs(2), Duration::from_secs(5), 100),
    }
}

/// The same for end-to-end benchmarks (sockets, tasks, several milliseconds an
/// iteration).
pub fn e2e_settings() -> (Duration, Duration, usize) {
    match mode() {
        Mode::Quick => (Duration::from_millis(300), Duration::from_millis(1500), 10),
        Mode::Full => (Duration::from_secs(2), Duration::from_secs(8), 30),
    }
}

/// Bytes `e2e/exec-256m`, `e2e/exec-256m-ssh` and the CPU ids (`e2e/exec-cpu`,
/// `e2e/relay-cpu` and their baselines) stream per iteration: 256 MiB (full) or 32 MiB
/// (quick), both sides of a ratio the same in one run; `TETHER_BENCH_EXEC_BYTES` overrides.
pub fn exec_stream_bytes() -> u64 {
    if let Some(n) = std::env::var("TETHER_BENCH_EXEC_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    match mode() {
        Mode::Quick => 32 << 20,
        Mode::Full => 256 << 20,
    }
}

/// Warm-up time, measurement time and sample count of a benchmark that runs processes
/// (`e2e/exec-*`, one iteration from tens of milliseconds to seconds): criterion's
/// fewest samples (10), one per iteration once an iteration takes longer than the
/// measurement time / 10 (flat sampling).
pub fn process_settings() -> (Duration, Duration, usize) {
    match mode() {
        Mode::Quick => (Duration::from_millis(200), Duration::from_secs(1), 10),
        Mode::Full => (Duration::from_secs(1), Duration::from_secs(10), 10),
    }
}
