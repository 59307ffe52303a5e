//! The outer layer's arguments: the namespaces and the file-system view bubblewrap builds
//! for one command (`CMD-62` … `CMD-66`, `CMD-68`, `CMD-70`).
//!
//! The view, in the order bubblewrap mounts it:
//!
//! ```text
//! /                  the host's root, read-only (recursively: every submount too)   CMD-64
//!   └ hidden paths   absent: each directory on the way to one is rebuilt from its    CMD-63
//!                    entries (read-only binds and symlinks), the hidden entry left out
//! /dev, /proc        fresh: a minimal /dev; the procfs of the command's PID namespace CMD-62
//! /tmp               a private, empty tmpfs (TMPDIR=/tmp)
//! writable roots     read-write binds (workspace-write only)                         CMD-44
//!   └ R/.git         read-only again                                                 CMD-70
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tether_proto::cmd::types::SandboxMode;

use crate::policy::{Policy, SandboxError};

/// Top-level directories the view mounts itself, never copied from the host.
const OWN_MOUNTS: [&str; 3] = ["/dev", "/proc", "/tmp"];

/// The bubblewrap arguments (before `--` and the program) that confine a command under
/// `policy`, started in `cwd`.
///
/// Paths are canonicalized; hidden paths that do not exist are ignored.
///
/// # Errors
/// [`SandboxError::BadRoot`] when a writable root does not exist, is `/`, lies inside a
/// hidden path or contains one (a hidden path inside a read-write bind could not be
/// removed from the view), or lies inside a directory the view replaces (`/dev`, `/proc`).
pub fn bwrap_args(policy: &Policy, cwd: &Path) -> Result<Vec<OsString>, SandboxError> {
    let secrets: Vec<PathBuf> = policy
        .hidden
        .iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    let writable = if policy.mode == SandboxMode::WorkspaceWrite {
        writable_roots(&policy.writable_roots, &secrets)?
    } else {
        Vec::new()
    };
    // Already out of sight: the view replaces these directories.
    let hidden: Vec<PathBuf> = secrets
        .into_iter()
        .filter(|p| !OWN_MOUNTS.iter().any(|m| p.starts_with(m)))
        .collect();

    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&dyn AsRef<std::ffi::OsStr>]| {
        args.extend(items.iter().map(|i| i.as_ref().to_owned()));
    };
    // CMD-62, CMD-66, CMD-68: fresh namespaces; no user namespaces inside; every
    // capability dropped (also for a host running as root); a new session without a
    // controlling terminal (CMD-65); the sandbox dies with its parent (the host's kill of
    // the launcher's process group reaches it).
    push(&[
        &"--unshare-user",
        &"--unshare-pid",
        &"--unshare-ipc",
        &"--unshare-uts",
        &"--unshare-net",
        &"--unshare-cgroup-try",
        &"--disable-userns",
        &"--cap-drop",
        &"ALL",
        &"--die-with-parent",
        &"--new-session",
        &"--hostname",
        &"tether-sandbox",
    ]);

    // CMD-63, CMD-64: the read-only system, without the hidden paths.
    if hidden.is_empty() {
        args.extend(["--ro-bind", "/", "/"].map(OsString::from));
    } else {
        rebuild(Path::new("/"), &hidden, &mut args);
    }
    args.extend(
        [
            "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--setenv", "TMPDIR", "/tmp",
        ]
        .map(OsString::from),
    );
    // The working directory stays visible (read-only) where the private /tmp or a hidden
    // path's rebuilt parent would otherwise cover it.
    if let Ok(dir) = cwd.canonicalize()
        && dir.starts_with("/tmp")
        && !writable.iter().any(|w| dir.starts_with(w))
        && !hidden.iter().any(|h| dir.starts_with(h))
    {
        args.push("--ro-bind".into());
        args.push(dir.clone().into());
        args.push(dir.into());
    }
    // CMD-44, CMD-70
    for root in &writable {
        args.push("--bind".into());
        args.push(root.into());
        args.push(root.into());
        let git = root.join(".git");
        if git.symlink_metadata().is_ok() {
            args.push("--ro-bind".into());
            args.push(git.clone().into());
            args.push(git.into());
        }
    }
    if !hidden.is_empty() {
        // The directories rebuilt on bubblewrap's own root are not writable either.
        args.extend(["--remount-ro", "/"].map(OsString::from));
    }
    args.push("--chdir".into());
    args.push(cwd.into());
    Ok(args)
}

/// The canonical writable roots, checked against the hidden paths.
fn writable_roots(roots: &[PathBuf], hidden: &[PathBuf]) -> Result<Vec<PathBuf>, SandboxError> {
    let mut out = Vec::new();
    for root in roots {
        let bad = |detail: String| SandboxError::BadRoot {
            path: root.clone(),
            detail,
        };
        let canon = root.canonicalize().map_err(|e| bad(e.to_string()))?;
        if !canon.is_dir() {
            return Err(bad("not a directory".to_owned()));
        }
        if canon == Path::new("/") {
            return Err(bad(
                "the whole file system cannot be a writable root".to_owned()
            ));
        }
        if OWN_MOUNTS
            .iter()
            .filter(|m| **m != "/tmp")
            .any(|m| canon.starts_with(m))
        {
            return Err(bad("lies in a directory the sandbox replaces".to_owned()));
        }
        if let Some(h) = hidden
            .iter()
            .find(|h| canon.starts_with(h) || h.starts_with(&canon))
        {
            return Err(bad(format!(
                "would expose {}, which the host keeps out of its commands' sight (CMD-63)",
                h.display()
            )));
        }
        out.push(canon);
    }
    Ok(out)
}

/// Rebuilds directory `dir` (on bubblewrap's root tmpfs) from its entries, leaving the
/// hidden ones out and descending into the directories that lead to one.
fn rebuild(dir: &Path, hidden: &[PathBuf], args: &mut Vec<OsString>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if dir == Path::new("/") && OWN_MOUNTS.iter().any(|m| path == Path::new(m)) {
            continue;
        }
        if hidden.iter().any(|h| h == &path) {
            continue; // CMD-63: not in the view at all
        }
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if let Ok(target) = std::fs::read_link(&path) {
                args.push("--symlink".into());
                args.push(target.into());
                args.push(path.into());
            }
        } else if meta.is_dir() && hidden.iter().any(|h| h.starts_with(&path)) {
            use std::os::unix::fs::PermissionsExt;
            args.push("--perms".into());
            args.push(format!("{:o}", meta.permissions().mode() & 0o7777).into());
            args.push("--dir".into());
            args.push(path.clone().into());
            rebuild(&path, hidden, args);
        } else {
            args.push("--ro-bind-try".into());
            args.push(path.clone().into());
            args.push(path.into());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn policy(mode: SandboxMode, writable: Vec<PathBuf>, hidden: Vec<PathBuf>) -> Policy {
        Policy {
            mode,
            writable_roots: writable,
            hidden,
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// Index of `window` in `args`.
    fn find(args: &[String], window: &[&str]) -> Option<usize> {
        args.windows(window.len())
            .position(|w| w.iter().zip(window).all(|(a, b)| a == b))
    }

    #[test]
    fn cmd_62_66_fresh_namespaces_no_caps_new_session() {
        let a = strings(
            &bwrap_args(
                &policy(SandboxMode::ReadOnly, vec![], vec![]),
                Path::new("/"),
            )
            .unwrap(),
        );
        for flag in [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-net",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
        ] {
            assert!(a.iter().any(|x| x == flag), "{flag} missing: {a:?}");
        }
        assert!(find(&a, &["--cap-drop", "ALL"]).is_some());
        assert!(find(&a, &["--ro-bind", "/", "/"]).is_some());
        assert!(find(&a, &["--tmpfs", "/tmp"]).is_some());
        // read-only binds nothing read-write
        assert!(!a.iter().any(|x| x == "--bind"));
    }

    #[test]
    fn cmd_63_hidden_path_is_left_out_and_its_siblings_kept() {
        // Outside /tmp, which the view replaces whole (a hidden path there needs no
        // rebuilding), wherever the checkout is: /var/tmp (FHS).
        let dir = tempfile::Builder::new()
            .prefix("tether-view")
            .tempdir_in("/var/tmp")
            .unwrap();
        let base = dir.path().canonicalize().unwrap();
        assert!(!base.starts_with("/tmp"), "{}", base.display());
        let state = base.join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(base.join("sibling"), "x").unwrap();
        std::os::unix::fs::symlink("sibling", base.join("link")).unwrap();
        let a = strings(
            &bwrap_args(
                &policy(SandboxMode::ReadOnly, vec![], vec![state.clone()]),
                Path::new("/"),
            )
            .unwrap(),
        );
        let s = |p: &Path| p.to_string_lossy().into_owned();
        assert!(find(&a, &["--ro-bind", "/", "/"]).is_none(), "{a:?}");
        assert!(!a.contains(&s(&state)), "the hidden path appears: {a:?}");
        let sib = s(&base.join("sibling"));
        assert!(find(&a, &["--ro-bind-try", &sib, &sib]).is_some(), "{a:?}");
        assert!(find(&a, &["--symlink", "sibling", &s(&base.join("link"))]).is_some());
        assert!(find(&a, &["--dir", &s(&base)]).is_some(), "{a:?}");
        assert_eq!(a[a.len() - 4..a.len() - 2], ["--remount-ro", "/"]);
    }

    #[test]
    fn cmd_63_writable_root_around_or_inside_a_hidden_path_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let project = base.path().join("project");
        let state = project.join("state");
        std::fs::create_dir_all(&state).unwrap();
        for (w, h) in [(&project, &state), (&state, &project)] {
            let e = bwrap_args(
                &policy(
                    SandboxMode::WorkspaceWrite,
                    vec![w.clone()],
                    vec![h.clone()],
                ),
                &project,
            )
            .unwrap_err();
            assert!(e.to_string().contains("CMD-63"), "{e}");
        }
    }

    #[test]
    fn cmd_44_root_of_everything_is_refused() {
        let e = bwrap_args(
            &policy(SandboxMode::WorkspaceWrite, vec!["/".into()], vec![]),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("whole file system"), "{e}");
    }

    #[test]
    fn cmd_70_git_of_a_writable_root_is_bound_read_only_after_it() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join(".git/hooks")).unwrap();
        let a = strings(
            &bwrap_args(
                &policy(SandboxMode::WorkspaceWrite, vec![root.clone()], vec![]),
                &root,
            )
            .unwrap(),
        );
        let r = root.to_string_lossy().into_owned();
        let g = root.join(".git").to_string_lossy().into_owned();
        let rw = find(&a, &["--bind", &r, &r]).unwrap();
        let ro = find(&a, &["--ro-bind", &g, &g]).unwrap();
        assert!(
            ro > rw,
            "the read-only .git must be mounted over the root: {a:?}"
        );
        assert!(rw > find(&a, &["--tmpfs", "/tmp"]).unwrap());
    }
}
