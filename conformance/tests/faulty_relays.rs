//! Strength of the suite: each faulty relay (the reference core behind a WebSocket driver
//! that misbehaves in one way) fails the cases of the requirement named for its fault, that
//! case among them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::Fault;
use tether_conformance::{RunOptions, Status, TargetKind, Verdict, catalogue, run, select};

/// Runs, against a relay with `fault`, every relay case of the requirements that `expected`
/// names (`LINK-22/slow-reader` brings in every `LINK-22/*` case, the long ones included);
/// asserts that the run fails and that each case of `expected` is among its failures.
///
/// Only the named requirements run: the claim is that the fault is caught by the case named
/// for it, and the whole relay suite per fault cost minutes of CI in waiting on deadlines.
async fn caught(fault: Fault, expected: &[&str]) {
    let relay = common::start(fault).await;
    let cat = catalogue();
    let only: Vec<String> = expected
        .iter()
        .map(|case| {
            let (req, _) = case.split_once('/').expect("a case id is REQ/name");
            format!("{req}/*")
        })
        .collect();
    let sel: Vec<_> = select(&cat, &only, &[])
        .into_iter()
        .filter(|c| c.target == TargetKind::Relay)
        .collect();
    for case in expected {
        assert!(
            sel.iter().any(|c| c.id == *case),
            "{case} is not a relay case of the catalogue"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        strict: true,
        expectations: Default::default(),
        log_dir: dir.path().to_owned(),
        jobs: 8,
    };
    let report = run(&sel, relay.target(), &opts, |_, _, _| {}).await;
    let failed: Vec<String> = report
        .cases
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.id.to_owned())
        .collect();
    eprintln!("{fault:?}: failing cases: {failed:?}");
    for c in report.cases.iter().filter(|c| c.status == Status::Fail) {
        eprintln!("  {}: {}", c.id, c.reason.as_deref().unwrap_or(""));
    }
    assert_eq!(
        report.verdict(),
        Verdict::Fail,
        "{fault:?} passed the suite"
    );
    for case in expected {
        assert!(
            failed.iter().any(|f| f == case),
            "{fault:?} was not caught by {case}; failing: {failed:?}"
        );
    }
}

async fn caught_by(fault: Fault, case: &str) {
    caught(fault, &[case]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_flips_a_data_byte() {
    caught_by(Fault::FlipDataByte, "LINK-18/forward-both-ways").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_routes_across_workspaces() {
    caught_by(Fault::CrossWorkspace, "LINK-17/cross-workspace").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_auth_deadline() {
    caught_by(Fault::NoAuthDeadline, "LINK-7/auth-deadline").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_accepts_any_version() {
    caught_by(Fault::AnyVersion, "LINK-3/unsupported-version").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_reuses_its_registration_ephemeral() {
    caught_by(Fault::FixedEphemeral, "LINK-13/fresh-challenge").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_ignores_text_messages() {
    caught_by(Fault::IgnoreText, "LINK-1/text-message-after-ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_session_limits() {
    caught_by(Fault::NoSessionLimit, "LINK-20/controller-session-limit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_unbounded_queues() {
    caught(
        Fault::UnboundedQueues,
        &["LINK-22/slow-reader", "LINK-23/link-slow-reader"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_sends_after_its_goaway() {
    caught_by(Fault::FrameAfterGoaway, "LINK-27/relay-goaway-is-last").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_reveals_unknown_workspaces() {
    caught_by(
        Fault::RevealsWorkspace,
        "LINK-10/unknown-workspace-like-wrong-credential",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_drops_close() {
    caught_by(Fault::DropsClose, "LINK-21/close-forwarded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_ignores_reconfiguration() {
    caught(
        Fault::IgnoresReconfiguration,
        &[
            "LINK-37/credential-changed",
            "LINK-37/remote-access-off",
            "LINK-37/workspace-removed",
        ],
    )
    .await;
}

// ----- LINK-10: what a credential is compared with -----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_takes_any_workspaces_credential() {
    caught_by(
        Fault::CredentialOfAnyWorkspace,
        "LINK-10/credential-of-another-workspace",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_compares_the_first_16_credential_bytes() {
    caught_by(
        Fault::ComparesFirst16Bytes,
        "LINK-10/credential-differs-in-last-byte",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_accepts_a_credential_prefix() {
    caught_by(Fault::AcceptsCredentialPrefix, "LINK-10/credential-prefix").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_accepts_a_credential_with_a_suffix() {
    caught_by(
        Fault::AcceptsCredentialSuffix,
        "LINK-10/credential-with-suffix",
    )
    .await;
}

// ----- LINK-39 (LINK-17): the order of the OPEN checks ------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_checks_a_foreign_hosts_session_ids() {
    caught_by(
        Fault::ForeignHostIdChecked,
        "LINK-39/foreign-host-id-in-use",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_checks_a_foreign_hosts_session_limit() {
    caught_by(
        Fault::ForeignHostLimitChecked,
        "LINK-39/foreign-host-at-limit",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_routes_before_the_controller_link_checks() {
    caught_by(
        Fault::RoutesBeforeLinkChecks,
        "LINK-39/controller-link-checked-first",
    )
    .await;
}

// ----- SEC-8: every low-order registration key ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_refuses_only_the_all_zero_key() {
    caught_by(Fault::RejectsOnlyZeroKey, "SEC-8/every-low-order-ephemeral").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_a_byte_exact_low_order_blocklist() {
    caught_by(
        Fault::LowOrderBlocklist,
        "SEC-8/low-order-ephemeral-high-bit",
    )
    .await;
}

// ----- LINK-5: messages far past the limit -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_swallows_huge_messages() {
    caught_by(Fault::SwallowsHugeMessages, "LINK-5/far-oversize-frames").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_drops_the_link_on_huge_messages() {
    caught_by(Fault::DropsLinkOnHugeMessage, "LINK-5/far-oversize-frames").await;
}

// ----- Chapter 3 MUSTs that had fewer than two faulty relays -------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_answers_ping_before_hello() {
    caught_by(Fault::PingBeforeHello, "LINK-8/first-frame-not-hello").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_checks_the_credential_before_the_version() {
    caught_by(
        Fault::CredentialBeforeVersion,
        "LINK-3/version-checked-before-credential",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_ignores_malformed_frames() {
    caught(
        Fault::IgnoresMalformed,
        &[
            "LINK-4/empty-message",
            "LINK-4/unknown-type",
            "LINK-4/truncated-frame",
            "LINK-4/trailing-bytes",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_decodes_long_frames_before_ready() {
    caught_by(
        Fault::DecodesLongFrameBeforeReady,
        "LINK-6/oversize-before-ready",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_keeps_the_websocket_open_after_goaway() {
    caught_by(Fault::NoCloseAfterGoaway, "LINK-27/relay-goaway-is-last").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_a_host_session_limit() {
    caught_by(Fault::NoHostSessionLimit, "LINK-20/host-session-limit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_never_sends_peer_gone() {
    caught_by(Fault::NoPeerGone, "LINK-21/peer-gone-on-link-loss").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_silent_on_unknown_sessions() {
    caught_by(Fault::SilentUnknownSession, "LINK-19/unknown-session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_a_session_queue_bound() {
    caught_by(Fault::NoSessionQueueBound, "LINK-22/slow-reader").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_a_link_queue_bound() {
    caught_by(Fault::NoLinkQueueBound, "LINK-23/link-slow-reader").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_idle_timeout() {
    caught_by(Fault::NoIdleTimeout, "LINK-24/idle-timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_never_pings() {
    caught_by(Fault::NoKeepalivePing, "LINK-25/relay-sends-ping").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_checks_only_the_ephemeral_dh() {
    caught_by(Fault::ChecksOnlyEphemeralDh, "SEC-8/low-order-host-static").await;
}

// ----- The 2026-12-07 answers: one faulty relay per new case ------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_counts_text_as_a_frame() {
    caught_by(Fault::TextCountsAsFrame, "LINK-40/long-text-before-hello").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_checks_the_state_before_decoding() {
    caught_by(
        Fault::StateBeforeDecode,
        "LINK-40/malformed-before-unexpected",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_decodes_hello_before_its_version() {
    caught_by(Fault::DecodesBeforeVersion, "LINK-41/future-hello-layout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_caps_pipelined_frames() {
    caught_by(
        Fault::CapsPipelinedFrames,
        "LINK-6/pipelined-frame-after-accepted-hello",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_drops_queued_data_on_goaway() {
    caught_by(
        Fault::DropsQueueOnGoaway,
        "LINK-42/data-flushed-before-goaway",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_drops_queued_data_on_peer_gone() {
    caught_by(
        Fault::DropsDataOnPeerGone,
        "LINK-42/data-delivered-before-peer-gone",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_ends_one_direction_of_a_slow_session() {
    caught_by(Fault::SlowReaderOneDirection, "LINK-22/slow-reader").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_whose_deadline_starts_at_accept() {
    caught_by(
        Fault::DeadlineFromAccept,
        "LINK-44/auth-deadline-from-upgrade",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_pings_late() {
    caught_by(Fault::LatePing, "LINK-25/relay-sends-ping").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_requires_a_subprotocol() {
    caught_by(Fault::RequiresSubprotocol, "LINK-45/no-subprotocol-needed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_selects_an_offered_subprotocol() {
    caught_by(
        Fault::SelectsOfferedSubprotocol,
        "LINK-45/offered-subprotocol-not-selected",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_negotiates_compression() {
    caught_by(Fault::NegotiatesDeflate, "LINK-45/no-compression").await;
}

// ----- Chapter 3 MUSTs that had no faulty relay --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_ignores_a_controllers_registration_bytes() {
    caught_by(
        Fault::AcceptsControllerRegistration,
        "LINK-9/controller-hello-with-registration",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_ignores_remote_access() {
    caught_by(Fault::IgnoresRemoteAccess, "LINK-11/remote-access-off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_accepts_a_bad_proof() {
    caught_by(Fault::AcceptsBadProof, "LINK-12/bad-proof").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_replaces_silently() {
    caught_by(Fault::SilentReplace, "LINK-14/second-registration-replaces").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_a_handshake_bound() {
    caught(
        Fault::NoHandshakeBound,
        &["LINK-15/empty-handshake", "LINK-15/oversize-handshake"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_delivers_an_id_in_use() {
    caught(
        Fault::DuplicateIncoming,
        &[
            "LINK-16/id-in-use-on-controller-link",
            "LINK-16/id-in-use-on-host-link",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_duplicates_data() {
    caught_by(Fault::DuplicatesData, "LINK-26/order-and-integrity").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_sends_a_malformed_ready() {
    caught_by(Fault::MalformedReady, "LINK-30/relay-frames-well-formed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_accepts_any_role() {
    caught_by(Fault::AcceptsAnyRole, "LINK-31/bad-role").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_case_folds_workspaces() {
    caught_by(Fault::CaseFoldsWorkspace, "LINK-32/bad-workspace").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_ignores_empty_data() {
    caught_by(Fault::IgnoresEmptyData, "LINK-33/empty-data-payload").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_accepts_a_reason_not_utf8() {
    caught_by(
        Fault::AcceptsBadUtf8Reason,
        "LINK-34/goaway-reason-not-utf8",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_drops_pipelined_frames() {
    caught_by(Fault::DropsPipelinedFrames, "LINK-38/open-before-ready").await;
}

// ----- Second faulty relays for chapter 3 MUSTs that had one --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_closes_silently_on_text() {
    caught_by(Fault::TextClosesSilently, "LINK-1/text-message-after-ready").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_calls_malformed_frames_unexpected() {
    caught(
        Fault::MalformedIsUnexpected,
        &[
            "LINK-4/empty-message",
            "LINK-4/unknown-type",
            "LINK-4/truncated-frame",
            "LINK-4/trailing-bytes",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_a_5_second_auth_deadline() {
    caught_by(Fault::ShortAuthDeadline, "LINK-7/auth-deadline").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_ignores_a_second_hello() {
    caught_by(Fault::IgnoresSecondHello, "LINK-8/second-hello").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_silent_on_an_unreachable_host() {
    caught_by(Fault::SilentOnUnreachable, "LINK-17/offline-host").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_truncates_incoming() {
    caught_by(Fault::TruncatesIncoming, "LINK-18/forward-both-ways").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_ends_the_link_on_an_unknown_session() {
    caught_by(Fault::UnknownSessionEndsLink, "LINK-19/unknown-session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_a_30_second_idle_timeout() {
    caught_by(Fault::ShortIdleTimeout, "LINK-24/idle-timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_needs_three_bytes_to_read_a_version() {
    caught_by(Fault::VersionNeedsThreeBytes, "LINK-41/future-hello-layout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_reorders_data() {
    caught_by(Fault::ReordersData, "LINK-26/order-and-integrity").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_sends_a_malformed_pong() {
    caught_by(Fault::MalformedPong, "LINK-30/relay-frames-well-formed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_ignores_a_goaway_not_utf8() {
    caught_by(
        Fault::IgnoresBadUtf8Goaway,
        "LINK-34/goaway-reason-not-utf8",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_checks_remote_access_before_the_credential() {
    caught_by(
        Fault::RemoteAccessBeforeCredential,
        "LINK-11/remote-access-off",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_calls_a_short_proof_a_failed_one() {
    caught_by(
        Fault::ProofLengthIsRegistrationFailed,
        "LINK-12/proof-wrong-length",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_tells_the_host_of_a_refused_open() {
    caught(
        Fault::IdInUseTellsHost,
        &[
            "LINK-16/id-in-use-on-controller-link",
            "LINK-16/id-in-use-on-host-link",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_refuses_a_pipelined_open() {
    caught_by(Fault::UnexpectedPipelinedOpen, "LINK-38/open-before-ready").await;
}

// ----- Second faulty relays for LINK-9, LINK-13, LINK-15, LINK-31, LINK-32, LINK-33 ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_takes_a_host_without_registration_for_a_controller() {
    caught_by(
        Fault::HostWithoutRegistrationIsController,
        "LINK-9/host-hello-without-registration",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_derives_its_ephemeral_from_the_hello() {
    caught(
        Fault::EphemeralFromHello,
        &["LINK-13/fresh-challenge", "LINK-13/replayed-proof"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_whose_handshake_bound_is_off_by_one() {
    caught_by(Fault::HandshakeBoundOffByOne, "LINK-15/oversize-handshake").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_calls_a_bad_role_an_auth_failure() {
    caught_by(Fault::BadRoleIsAuthFailed, "LINK-31/bad-role").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_looks_up_a_malformed_workspace() {
    caught_by(Fault::LooksUpMalformedWorkspace, "LINK-32/bad-workspace").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_closes_the_session_on_empty_data() {
    caught_by(Fault::EmptyDataClosesSession, "LINK-33/empty-data-payload").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_keeps_the_sessions_of_a_replaced_link() {
    caught_by(
        Fault::ReplaceKeepsSessions,
        "LINK-14/second-registration-replaces",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_revokes_only_ready_links() {
    caught(
        Fault::RevokesOnlyReadyLinks,
        &[
            "LINK-37/credential-changed",
            "LINK-37/remote-access-off",
            "LINK-37/workspace-removed",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_acts_late_on_its_auth_deadline() {
    caught_by(
        Fault::LateAuthDeadline,
        "LINK-44/auth-deadline-from-upgrade",
    )
    .await;
}
