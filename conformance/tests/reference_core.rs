//! Every relay case passes against the reference relay core driven correctly, and the
//! reports of that run are well formed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use tether_conformance::{RunOptions, Status, TargetKind, Verdict, catalogue, run, select};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_relay_case_passes_against_the_reference_core() {
    let relay = common::start(common::Fault::None).await;
    let cat = catalogue();
    // CONF_ONLY (comma-separated patterns) narrows the run while debugging, or for a
    // quicker mutation run.
    let only: Vec<String> = std::env::var("CONF_ONLY")
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let sel: Vec<_> = select(&cat, &only, &[])
        .into_iter()
        .filter(|c| c.target == TargetKind::Relay)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        strict: true,
        expectations: Default::default(),
        log_dir: dir.path().to_owned(),
        jobs: 8,
    };
    let report = run(&sel, relay.target(), &opts, |r, i, n| {
        eprintln!(
            "[{i:>2}/{n}] {:<5} {} {}",
            r.status.as_str(),
            r.id,
            r.reason.as_deref().unwrap_or("")
        );
    })
    .await;
    for c in &report.cases {
        if c.status != Status::Pass {
            eprintln!(
                "---- {} {:?}: {:?}\n{}",
                c.id,
                c.status,
                c.reason,
                c.log.as_deref().unwrap_or("")
            );
        }
    }
    assert_eq!(report.cases.len(), sel.len());
    assert!(
        report.cases.iter().all(|c| c.status == Status::Pass),
        "not every case passed"
    );
    assert_eq!(report.verdict(), Verdict::Pass);
}
