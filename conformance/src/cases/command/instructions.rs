//! Host cases of instruction files (`spec/05` section 5.8, `AGENTS.md`): the project root,
//! their order, the cap, and the sources a host reports (`CMD-48` to `CMD-51`).

use std::sync::Arc;

use serde_json::json;

use crate::case::{Case, case};
use crate::cases::steps::threads::{mkdirs, sources, start_thread, threads_ready, write_files};
use crate::context::Context;
use crate::host::{Res, check};

/// The instruction cases, in spec order.
pub const CASES: &[Case] = &[AGENTS_ROOT, AGENTS_ORDER, AGENTS_CAP, AGENTS_SOURCES];

const AGENTS_ROOT: Case = case! {
    id: "CMD-48/project-root",
    level: Must,
    timeout: 60 s,
    description: "the project root is the nearest ancestor of cwd holding .git",
    host: agents_root,
};
async fn agents_root(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    let root = format!("{dir}/repo");
    let deep = format!("{root}/a/b");
    mkdirs(&mut s, &[&deep, &format!("{root}/.git")], &dir).await?;
    write_files(
        &mut s,
        &[
            (format!("{dir}/AGENTS.md"), "above the root".to_owned()),
            (format!("{root}/AGENTS.md"), "root".to_owned()),
            (format!("{root}/a/b/AGENTS.md"), "deep".to_owned()),
        ],
        &dir,
    )
    .await?;
    let (_, r) = start_thread(&mut s, &deep, "never").await?;
    let got = sources(&r);
    let want = vec![format!("{root}/AGENTS.md"), format!("{root}/a/b/AGENTS.md")];
    check(got == want, || {
        format!("instructionSources {got:?}; with .git in {root} expected {want:?}")
    })?;
    s.close().await;
    Ok(())
}

const AGENTS_ORDER: Case = case! {
    id: "CMD-49/instruction-order",
    level: Must,
    timeout: 60 s,
    description: "AGENTS.override.md wins over AGENTS.md, empty files are skipped, root first",
    host: agents_order,
};
async fn agents_order(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    let root = format!("{dir}/repo");
    let mid = format!("{root}/mid");
    let leaf = format!("{mid}/leaf");
    mkdirs(&mut s, &[&leaf, &format!("{root}/.git")], &dir).await?;
    write_files(
        &mut s,
        &[
            (format!("{root}/AGENTS.md"), "root".to_owned()),
            (format!("{mid}/AGENTS.md"), "mid".to_owned()),
            (
                format!("{mid}/AGENTS.override.md"),
                "mid override".to_owned(),
            ),
            (format!("{leaf}/AGENTS.override.md"), String::new()),
            (format!("{leaf}/AGENTS.md"), "leaf".to_owned()),
        ],
        &dir,
    )
    .await?;
    let (_, r) = start_thread(&mut s, &leaf, "never").await?;
    let got = sources(&r);
    let want = vec![
        format!("{root}/AGENTS.md"),
        format!("{mid}/AGENTS.override.md"),
        format!("{leaf}/AGENTS.md"),
    ];
    check(got == want, || {
        format!("instructionSources {got:?}, expected {want:?}")
    })?;
    s.close().await;
    Ok(())
}

const AGENTS_CAP: Case = case! {
    id: "CMD-50/instruction-cap",
    level: Must,
    timeout: 60 s,
    description: "files past the 32768-byte cap are left out",
    host: agents_cap,
};
async fn agents_cap(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    let root = format!("{dir}/repo");
    let sub = format!("{root}/sub");
    let subsub = format!("{sub}/deeper");
    mkdirs(&mut s, &[&subsub, &format!("{root}/.git")], &dir).await?;
    write_files(
        &mut s,
        &[
            (format!("{root}/AGENTS.md"), "r".repeat(20_000)),
            (format!("{sub}/AGENTS.md"), "s".repeat(20_000)),
            (format!("{subsub}/AGENTS.md"), "d".repeat(10)),
        ],
        &dir,
    )
    .await?;
    let (_, r) = start_thread(&mut s, &subsub, "never").await?;
    let got = sources(&r);
    let want = vec![format!("{root}/AGENTS.md"), format!("{sub}/AGENTS.md")];
    check(got == want, || {
        format!(
            "instructionSources {got:?}; the second file is cut at the cap and the third left out, expected {want:?}"
        )
    })?;
    s.close().await;
    Ok(())
}

const AGENTS_SOURCES: Case = case! {
    id: "CMD-51/instruction-sources",
    level: Must,
    timeout: 60 s,
    description: "instructionSources are absolute host paths, also after thread/resume",
    host: agents_sources,
};
async fn agents_sources(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = threads_ready(&cx, "ctl", false).await?;
    mkdirs(&mut s, &[&format!("{dir}/.git")], &dir).await?;
    write_files(
        &mut s,
        &[(format!("{dir}/AGENTS.md"), "x".to_owned())],
        &dir,
    )
    .await?;
    let (thread, r) = start_thread(&mut s, &dir, "never").await?;
    let posix = s.info.path_style == tether_proto::channel::PathStyle::Posix;
    for src in sources(&r) {
        check(!posix || src.starts_with('/'), || {
            format!("instruction source {src:?} is not absolute")
        })?;
    }
    // Read again when the thread is resumed.
    write_files(
        &mut s,
        &[(format!("{dir}/AGENTS.override.md"), "y".to_owned())],
        &dir,
    )
    .await?;
    let r = s
        .call_ok("thread/resume", json!({"threadId": thread}))
        .await?;
    let got = sources(&r);
    check(got == vec![format!("{dir}/AGENTS.override.md")], || {
        format!("after adding AGENTS.override.md, thread/resume lists {got:?}")
    })?;
    s.close().await;
    Ok(())
}
