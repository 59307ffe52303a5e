//! The sandbox cases of `tether conformance` (`CMD-44` … `CMD-47`) against the embedded
//! reference host: the test `cargo mutants` runs over `tether-sandbox`
//! (`conformance/README.md`, mutation figure), and a check on its own that the kernel
//! sandbox holds as the cases see it from outside.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tether(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            panic!("tether {args:?} did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether this kernel offers Landlock with file-system rules, asked directly (not through
/// `tether-sandbox`, whose mutants this test must catch): creating a ruleset restricts
/// nothing until it is applied.
#[cfg(target_os = "linux")]
fn landlock_available() -> bool {
    use landlock::{ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr};
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
        .and_then(|r| r.create())
        .is_ok()
}

#[cfg(not(target_os = "linux"))]
fn landlock_available() -> bool {
    false
}

#[test]
fn the_sandbox_cases_pass_against_the_reference_host() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let o = tether(&[
        "conformance",
        "--only",
        "CMD-44/*,CMD-45/*,CMD-46/*,CMD-47/*",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    let status = |id: &str| {
        cases
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no case {id}"))
    };
    for id in ["CMD-45/sandbox-report", "CMD-46/unenforceable-mode"] {
        assert_eq!(status(id), "pass", "{id}");
    }
    // Where the kernel offers Landlock, the host must enforce both modes, so the escapes
    // are tried, not skipped.
    if landlock_available() {
        assert_eq!(status("CMD-44/read-only-write-denied"), "pass");
        assert_eq!(status("CMD-44/workspace-write-outside-denied"), "pass");
    }
    assert!(cases.iter().all(|c| c["status"] != "fail"));
}
