//! Strength of the host cases: each faulty host (the reference session state machine and
//! command layer, with a store or a command layer wrapped to misbehave in one way) fails
//! the cases of the requirement named for its fault, that case among them. The same host
//! without a fault passes the whole host suite.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;
mod hosts;

use hosts::HostFault;
use tether_conformance::{RunOptions, Status, TargetKind, Verdict, catalogue, run, select};

/// Runs every host case but the rekey (65540 round trips) against a test host with
/// `fault`; returns the report's failing ids, the verdict and the passing ids.
async fn run_host(fault: HostFault) -> (Vec<String>, Verdict, Vec<String>) {
    // CONF_ONLY (comma-separated patterns) narrows the run while debugging.
    let only: Vec<String> = std::env::var("CONF_ONLY")
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    run_host_with(fault, &only, 4).await
}

/// [`run_host`] with the cases `only` selects (all when empty), `jobs` at once.
async fn run_host_with(
    fault: HostFault,
    only: &[String],
    jobs: usize,
) -> (Vec<String>, Verdict, Vec<String>) {
    let relay = common::start(common::Fault::None).await;
    let host = hosts::start(&relay.url, common::WORKSPACE, common::CREDENTIAL, fault).await;
    let cat = catalogue();
    let sel: Vec<_> = select(&cat, only, &["CHAN-19/*".to_owned()])
        .into_iter()
        .filter(|c| c.target == TargetKind::Host)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        strict: true,
        expectations: Default::default(),
        log_dir: dir.path().to_owned(),
        jobs,
    };
    let target = host.target(common::CREDENTIAL);
    let report = run(&sel, target, &opts, |_, _, _| {}).await;
    for c in report.cases.iter().filter(|c| c.status != Status::Pass) {
        eprintln!(
            "{fault:?}: {} {}: {}",
            c.status.as_str(),
            c.id,
            c.reason.as_deref().unwrap_or("")
        );
        if std::env::var("CONF_ONLY").is_ok() {
            eprintln!("{}", c.log.as_deref().unwrap_or(""));
        }
    }
    let with = |status| {
        report
            .cases
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.id.to_owned())
            .collect()
    };
    (with(Status::Fail), report.verdict(), with(Status::Pass))
}

/// Runs, against a test host with `fault`, every host case of the requirements that `cases`
/// names (`CMD-41/output-cap` brings in every `CMD-41/*` case); asserts that the run fails
/// and that each of `cases` is among its failures. Only the named requirements run: the
/// claim is that the fault is caught by the case named for it, and the whole host suite per
/// fault cost minutes of CI; the host without a fault runs the whole suite.
async fn caught_by(fault: HostFault, cases: &[&str]) {
    let only: Vec<String> = cases
        .iter()
        .map(|case| {
            let (req, _) = case.split_once('/').expect("a case id is REQ/name");
            format!("{req}/*")
        })
        .collect();
    let (failed, verdict, passed) = run_host_with(fault, &only, 4).await;
    for case in cases {
        assert!(
            failed.iter().chain(&passed).any(|c| c == case),
            "{case} is not a host case of the catalogue"
        );
    }
    assert_eq!(verdict, Verdict::Fail, "{fault:?} passed the suite");
    for case in cases {
        assert!(
            failed.iter().any(|f| f == case),
            "{fault:?} was not caught by {case}; failing: {failed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_host_without_a_fault_passes() {
    let (failed, verdict, passed) = run_host(HostFault::None).await;
    assert!(failed.is_empty(), "failing: {failed:?}");
    assert_eq!(verdict, Verdict::Pass);
    // The inactivity cases ran (the target knows the host's age) rather than being skipped.
    if std::env::var("CONF_ONLY").is_err() {
        for case in ["CHAN-9/inactive-device", "CHAN-9/active-within-age"] {
            assert!(passed.iter().any(|p| p == case), "{case} did not pass");
        }
    }
}

/// One case at a time: the two inactivity cases run first and leave the runner's paired
/// device (paired by the first of them) unused by any case for about 24 s, more than twice
/// the test host's inactivity age. The runner keeps it active (CHAN-9), so the cases after
/// them, which use it, still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_paired_device_stays_active_through_a_long_pause() {
    let only: Vec<String> = ["CHAN-9/*", "CHAN-10/*", "CMD-14/*"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    let (failed, verdict, passed) = run_host_with(HostFault::None, &only, 1).await;
    assert!(failed.is_empty(), "failing: {failed:?}");
    assert_eq!(verdict, Verdict::Pass);
    for case in [
        "CHAN-9/inactive-device",
        "CHAN-9/active-within-age",
        "CMD-14/each-request-answered-once",
    ] {
        assert!(passed.iter().any(|p| p == case), "{case} did not pass");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_accepts_a_consumed_token() {
    caught_by(
        HostFault::AcceptsConsumedToken,
        &["TOKEN-15/consumed-token-refused"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_skips_the_replay_check() {
    caught_by(
        HostFault::NoReplayCheck,
        &["CHAN-10/replayed-message-1", "CHAN-10/timestamp-not-newer"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_answers_before_initialize() {
    caught_by(
        HostFault::AnswersBeforeInitialize,
        &["CMD-15/initialize-first"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_ignores_the_output_cap() {
    caught_by(HostFault::IgnoresOutputCap, &["CMD-41/output-cap"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_refuses_plain_app_server_clients_is_caught() {
    caught_by(
        HostFault::RequiresTetherMember,
        &["CMD-15/initialize-first"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_always_streams_is_caught() {
    caught_by(HostFault::AlwaysStreams, &["CMD-35/output-in-result"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_accepts_any_secret() {
    caught_by(HostFault::AnySecret, &["CHAN-12/wrong-secret"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_ignores_token_expiry() {
    caught_by(HostFault::IgnoresExpiry, &["CHAN-12/expired-token"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_ignores_revocation() {
    caught_by(
        HostFault::IgnoresRevocation,
        &["CHAN-9/revoked-device", "CMD-56/revoked-in-session"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_ignores_its_inactivity_limit() {
    caught_by(HostFault::IgnoresInactivity, &["CHAN-9/inactive-device"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_accepts_any_relay_certificate() {
    caught_by(
        HostFault::AcceptsAnyCertificate,
        &["SEC-19/untrusted-relay-certificate"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_claims_a_sandbox_it_does_not_enforce() {
    caught_by(
        HostFault::ClaimsUnenforcedSandbox,
        &["CMD-44/read-only-write-denied", "CMD-44/network-denied"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_one_handshake_bucket_for_everyone() {
    caught_by(
        HostFault::SharedHandshakeBucket,
        &["CHAN-30/flood-does-not-lock-out-paired-devices"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_acts_on_answers_of_revoked_devices() {
    caught_by(
        HostFault::ActsOnAnswersOfRevokedDevices,
        &["CMD-75/answer-after-revocation"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_imports_through_links_out_of_the_project() {
    caught_by(
        HostFault::ImportFollowsLinksOut,
        &["CMD-73/import-through-link-out"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_reads_instruction_files_blocking() {
    caught_by(
        HostFault::ReadsInstructionsBlocking,
        &[
            "CMD-72/fifo-not-waited-on",
            "CMD-72/device-not-read",
            "CMD-72/link-out-of-project",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_ignores_the_controllers_window() {
    caught_by(
        HostFault::IgnoresWindow,
        &["CHAN-34/host-stays-within-window"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_refuses_messages_longer_than_version_1() {
    caught_by(HostFault::RefusesBigMessages, &["CHAN-33/large-request"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_grants_past_258048() {
    caught_by(HostFault::GrantsBeyondCap, &["CHAN-35/host-credit-bounded"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_sends_records_to_a_version_1_controller() {
    caught_by(
        HostFault::RecordsToVersion1Controller,
        &["CHAN-31/version-1-controller"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_lifts_the_output_cap_in_version_1() {
    caught_by(
        HostFault::UncappedInVersion1,
        &["CMD-43/output-cap-null-version-1"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_lists_that_disagree_are_caught() {
    caught_by(HostFault::CapabilityListsDisagree, &["CMD-16/capabilities"]).await;
}

/// `tether/host/info` that misreports a default, where a command runs (CMD-77).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_info_that_misreports_the_default_cwd_is_caught() {
    caught_by(HostFault::MisreportsDefaultCwd, &["CMD-77/host-info"]).await;
}

/// `tether/host/info` that misreports a default, where a thread gets it (CMD-77).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_info_that_misreports_the_default_policy_is_caught() {
    caught_by(HostFault::MisreportsDefaultPolicy, &["CMD-77/host-info"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_sends_tether_1_threads() {
    caught_by(HostFault::SendsV1Threads, &["CMD-17/thread-start"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_omits_item_times() {
    caught_by(HostFault::OmitsItemTimes, &["CMD-24/notification-order"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_takes_decisions_it_did_not_offer() {
    caught_by(
        HostFault::TakesUnofferedDecisions,
        &["CMD-28/approval-request"],
    )
    .await;
}

/// Threads without members only Codex's schema requires: no other rule reads them, the
/// shared-schema check does (CMD-79).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_threads_lack_codex_members() {
    caught_by(
        HostFault::OmitsCodexThreadMembers,
        &["CMD-79/shared-messages"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_omits_the_null_cursor() {
    caught_by(HostFault::OmitsNullCursor, &["CMD-20/list-order-and-pages"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_sends_base64_item_deltas() {
    caught_by(
        HostFault::SendsBase64ItemDeltas,
        &["CMD-40/item-deltas-are-text"],
    )
    .await;
}
