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

use std::time::Duration;

mod support;

use support::Output;

/// `tether ARGS...`, run to completion (bounded: 180 s).
fn tether(args: &[&str]) -> Output {
    let mut c = support::tether();
    c.args(args);
    support::run(c, Duration::from_secs(180))
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
    assert_eq!(o.status.code(), Some(0), "{}\n{}", o.stdout, o.stderr);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let cases = v["cases"].as_array().unwrap();
    let status = |id: &str| support::case_status(&v, id);
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

/// What a filtered kernel interface lacks.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug)]
enum Missing {
    /// Landlock's three system calls.
    Landlock,
    /// seccomp filters (`seccomp(2)` and `prctl(PR_SET_SECCOMP)`).
    Seccomp,
}

/// Runs `f` on a thread whose kernel interface lacks `missing`, as a kernel built without
/// it does: a seccomp filter on that thread fails those system calls with `ENOSYS`, and
/// every process started from the thread (a `tether` process, the host it starts, the
/// commands it runs) inherits it.
#[cfg(target_os = "linux")]
fn without<T: Send + 'static>(missing: Missing, f: impl FnOnce() -> T + Send + 'static) -> T {
    use seccompiler::{BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp};
    use seccompiler::{SeccompCondition, SeccompFilter, SeccompRule, TargetArch};
    use std::collections::BTreeMap;

    std::thread::spawn(move || {
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        match missing {
            Missing::Landlock => {
                for call in [
                    libc::SYS_landlock_create_ruleset,
                    libc::SYS_landlock_add_rule,
                    libc::SYS_landlock_restrict_self,
                ] {
                    rules.insert(call, vec![]);
                }
            }
            Missing::Seccomp => {
                rules.insert(libc::SYS_seccomp, vec![]);
                let set_seccomp = SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    u64::try_from(libc::PR_SET_SECCOMP).unwrap(),
                )
                .unwrap();
                rules.insert(
                    libc::SYS_prctl,
                    vec![SeccompRule::new(vec![set_seccomp]).unwrap()],
                );
            }
        }
        let arch: TargetArch = std::env::consts::ARCH.try_into().unwrap();
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(u32::try_from(libc::ENOSYS).unwrap()),
            arch,
        )
        .unwrap();
        let program = BpfProgram::try_from(filter).unwrap();
        seccompiler::apply_filter(&program).unwrap();
        // The filter works: from here on the kernel offers no Landlock (or no seccomp: a
        // second filter is refused).
        match missing {
            Missing::Landlock => assert!(!landlock_available()),
            Missing::Seccomp => assert!(seccompiler::apply_filter(&program).is_err()),
        }
        f()
    })
    .join()
    .unwrap()
}

/// The sandbox cases run by a `tether` process whose kernel lacks `missing`.
#[cfg(target_os = "linux")]
fn sandbox_cases_without(missing: Missing) -> (Output, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let json_arg = json.to_str().unwrap().to_owned();
    let output = without(missing, move || {
        tether(&[
            "conformance",
            "--only",
            "CMD-44/*,CMD-45/*,CMD-46/*,CMD-47/*",
            "--json",
            &json_arg,
        ])
    });
    let report = serde_json::from_slice(&std::fs::read(&json).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null);
    (output, report)
}

/// The highest Landlock ABI, up to 6, that the kernel confirms, asked directly: a ruleset
/// handling every file-system right of ABI n (n ≤ 5), or the scopes of ABI 6, can be
/// created only on a kernel with at least ABI n. 0 without Landlock.
#[cfg(target_os = "linux")]
fn kernel_landlock_abi_at_least() -> u8 {
    use landlock::{ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, Scope};
    let mut confirmed = 0;
    for (n, abi) in [
        (1, ABI::V1),
        (2, ABI::V2),
        (3, ABI::V3),
        (4, ABI::V4),
        (5, ABI::V5),
    ] {
        let ok = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(abi))
            .and_then(|r| r.create())
            .is_ok();
        if !ok {
            return confirmed;
        }
        confirmed = n;
    }
    let scopes = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
        .and_then(|r| r.scope(Scope::from_all(ABI::V6)))
        .and_then(|r| r.create())
        .is_ok();
    if scopes { 6 } else { confirmed }
}

/// `tether sandbox-exec --probe --mode MODE`: what the kernel enforces, as the host sees it
/// (`CMD-45`).
fn probe(mode: &str) -> serde_json::Value {
    let tmp = std::env::temp_dir();
    let o = tether(&[
        "sandbox-exec",
        "--probe",
        "--mode",
        mode,
        "--writable",
        tmp.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap()
}

/// `tether sandbox-exec --mode read-only [--allow-degraded] -- sh -c 'echo x > TARGET'`:
/// its exit status, and whether TARGET was written.
fn sandboxed_write(degraded_ok: bool) -> (Option<i32>, bool) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("written");
    let script = format!("echo x > '{}'", target.display());
    let mut args = vec!["sandbox-exec", "--mode", "read-only"];
    if degraded_ok {
        args.push("--allow-degraded");
    }
    args.extend(["--", "sh", "-c", &script]);
    let o = tether(&args);
    (o.status.code(), target.exists())
}

/// The program ran (`sandbox-exec` did not refuse it with 125) and its write failed.
fn assert_ran_but_write_failed((code, written): (Option<i32>, bool)) {
    assert!(!written, "the write happened");
    assert!(code.is_some_and(|c| c != 0 && c != 125), "{code:?}");
}

/// `CMD-45`: on this kernel the probe reports what the kernel offers, asked directly:
/// Landlock with its ABI, and seccomp, so `landlock+seccomp` with the network denied.
#[cfg(target_os = "linux")]
#[test]
fn cmd_45_sandbox_exec_reports_what_the_kernel_enforces() {
    if !landlock_available() {
        return;
    }
    let abi = kernel_landlock_abi_at_least();
    for mode in ["read-only", "workspace-write"] {
        let p = probe(mode);
        assert_eq!(p["filesystem"], true, "{mode}: {p}");
        assert_eq!(p["network"], "denied", "{mode}: {p}");
        assert_eq!(p["mechanism"], "landlock+seccomp", "{mode}: {p}");
        let reported = p["landlockAbi"].as_u64().unwrap();
        assert!(
            reported >= u64::from(abi) && reported > 0,
            "{mode}: Landlock ABI reported {reported}, the kernel confirms at least {abi}: {p}"
        );
    }
    // Enforced: the program runs and its write fails.
    assert_ran_but_write_failed(sandboxed_write(false));
}

/// `CMD-46` in `tether sandbox-exec` itself: on a kernel without Landlock, or without
/// seccomp, the probe says what is missing, and the program is not run unless
/// `--allow-degraded` is given (exit 125, nothing written); with it, it runs unconfined.
#[cfg(target_os = "linux")]
#[test]
fn cmd_46_sandbox_exec_refuses_to_run_what_it_cannot_confine() {
    for missing in [Missing::Landlock, Missing::Seccomp] {
        let (p, refused, degraded) = without(missing, || {
            (
                probe("read-only"),
                sandboxed_write(false),
                sandboxed_write(true),
            )
        });
        match missing {
            Missing::Landlock => {
                assert_eq!(p["filesystem"], false, "{p}");
                assert_eq!(p["landlockAbi"], 0, "{p}");
                assert_eq!(p["network"], "denied", "{p}");
                assert_eq!(p["mechanism"], "seccomp", "{p}");
            }
            Missing::Seccomp => {
                assert_eq!(p["filesystem"], true, "{p}");
                assert_eq!(p["network"], "unenforced", "{p}");
                assert_eq!(p["mechanism"], "landlock", "{p}");
            }
        }
        assert_eq!(refused, (Some(125), false), "without {missing:?}");
        // Degraded on request the program runs: without Landlock its write happens, with
        // Landlock it fails.
        let (code, written) = degraded;
        match missing {
            Missing::Landlock => assert_eq!((code, written), (Some(0), true)),
            Missing::Seccomp => assert_ran_but_write_failed((code, written)),
        }
    }
}

/// `CMD-45`, `CMD-46` on a kernel without Landlock or without seccomp: the host refuses the
/// modes it cannot enforce (it lists only `danger-full-access` in `initialize`, the sandbox
/// report says so, and it never claims a mode the escapes would break).
#[cfg(target_os = "linux")]
#[test]
fn cmd_46_a_kernel_without_landlock_or_seccomp_makes_the_host_refuse_the_modes() {
    for missing in [Missing::Landlock, Missing::Seccomp] {
        let (o, v) = sandbox_cases_without(missing);
        assert_eq!(
            o.status.code(),
            Some(0),
            "without {missing:?}:\n{}\n{}",
            o.stdout,
            o.stderr
        );
        let status = |id: &str| support::case_status(&v, id);
        for id in ["CMD-45/sandbox-report", "CMD-46/unenforceable-mode"] {
            assert_eq!(status(id), "pass", "without {missing:?}: {id}");
        }
        // Nothing enforced, so nothing for the escapes to try: the host did not claim
        // either mode.
        for id in [
            "CMD-44/read-only-write-denied",
            "CMD-44/workspace-write-outside-denied",
        ] {
            assert_eq!(status(id), "skip", "without {missing:?}: {id}");
        }
    }
}
