//! Fault injection: a test hook, compiled into every build and inert unless the
//! environment variable [`FAULT_ENV`] names a point.
//!
//! `TETHER_FAULT=POINT[:FILE[:N]]` makes the `N`-th (default first) atomic write
//! ([`crate::stage`], host and controller alike) of the file named `FILE` (default any)
//! in this process stop at `POINT`: the crash points kill the process with `SIGKILL` (as
//! `kill -9` would; `abort` if that fails), and [`ENOSPC`] fails the write with `ENOSPC`,
//! as a full file system would. The variable is read once. The reliability tests loop
//! over [`CRASH_POINTS`] to show that a crash at any of them leaves either the old or the
//! new file, and a full disk a clear error and the old file.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the fault.
pub const FAULT_ENV: &str = "TETHER_FAULT";
/// The temporary file exists and is empty.
pub const BEFORE_TEMP_WRITE: &str = "before-temp-write";
/// Half the new content is in the temporary file.
pub const MID_TEMP_WRITE: &str = "mid-temp-write";
/// The new content is written to the temporary file, not yet fsynced.
pub const AFTER_TEMP_WRITE: &str = "after-temp-write";
/// The temporary file is fsynced, not yet renamed.
pub const AFTER_FSYNC: &str = "after-fsync";
/// The temporary file is renamed over the target; the directory is not yet fsynced.
pub const AFTER_RENAME: &str = "after-rename";
/// The write is complete; the caller has not yet been told.
pub const AFTER_DIR_FSYNC: &str = "after-dir-fsync";
/// Not a crash: the write of the temporary file fails with `ENOSPC`.
pub const ENOSPC: &str = "enospc";
/// Every crash point, in the order a write passes them.
pub const CRASH_POINTS: &[&str] = &[
    BEFORE_TEMP_WRITE,
    MID_TEMP_WRITE,
    AFTER_TEMP_WRITE,
    AFTER_FSYNC,
    AFTER_RENAME,
    AFTER_DIR_FSYNC,
];

struct Fault {
    point: String,
    file: Option<String>,
    nth: u64,
    hits: AtomicU64,
}

fn parse(spec: &str) -> Option<Fault> {
    let mut parts = spec.splitn(3, ':');
    let point = parts.next()?.trim();
    if point.is_empty() {
        return None;
    }
    let file = parts.next().filter(|f| !f.is_empty()).map(str::to_owned);
    let nth = match parts.next() {
        Some(n) => n.trim().parse().ok()?,
        None => 1,
    };
    Some(Fault {
        point: point.to_owned(),
        file,
        nth,
        hits: AtomicU64::new(0),
    })
}

fn configured() -> Option<&'static Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    FAULT
        .get_or_init(|| std::env::var(FAULT_ENV).ok().and_then(|v| parse(&v)))
        .as_ref()
}

/// Whether the configured fault fires now, at `point` of a write of `target`.
pub(crate) fn hit(point: &str, target: &Path) -> bool {
    let Some(fault) = configured() else {
        return false;
    };
    if fault.point != point {
        return false;
    }
    if let Some(file) = &fault.file
        && target
            .file_name()
            .is_none_or(|n| n.to_string_lossy() != *file)
    {
        return false;
    }
    fault.hits.fetch_add(1, Ordering::SeqCst) + 1 == fault.nth
}

/// Ends the process at once, as `kill -9` would.
pub(crate) fn crash(point: &str, target: &Path) -> ! {
    eprintln!(
        "tether: {FAULT_ENV}: killing the process at {point} of a write of {}",
        target.display()
    );
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    std::process::abort()
}

/// Crashes if the configured fault is `point` for this write.
pub(crate) fn crash_at(point: &str, target: &Path) {
    if hit(point, target) {
        crash(point, target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let f = parse("after-rename:host.json:2").unwrap();
        assert_eq!(
            (f.point.as_str(), f.file.as_deref(), f.nth),
            ("after-rename", Some("host.json"), 2)
        );
        let f = parse("enospc").unwrap();
        assert_eq!((f.file, f.nth), (None, 1));
        assert!(parse("").is_none());
        assert!(parse("after-fsync:host.json:x").is_none());
    }
}
