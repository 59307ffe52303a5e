//! AGENTS.md discovery (`spec/05` section 5.8, `CMD-48` … `CMD-51`, `CMD-72`).
//!
//! The files live in the project, which commands of the thread may write: an instruction
//! file can be a FIFO, a device, a symlink out of the project or a huge file. So a file is
//! taken only when it is a regular file whose resolved path lies inside the resolved
//! project root, it is opened non-blocking and checked on the open descriptor (no gap
//! between the check and the read), and at most what still fits under the cap is read
//! (`CMD-72`). [`discover`] may still block on a slow file system: the host runs it off
//! the session's task with a time bound ([`crate::threads`]).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tether_proto::limits::AGENTS_MD_MAX_BYTES;

/// How long the host waits for the instruction files of a thread it opens (`CMD-72`);
/// after that the thread opens without them.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The instruction files of a thread, in the order the agent reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instructions {
    /// The project root (`CMD-48`).
    pub project_root: PathBuf,
    /// The files given, whole or cut, root first (`CMD-51`).
    pub sources: Vec<PathBuf>,
    /// Their contents concatenated, at most 32 768 bytes (`CMD-50`).
    pub text: String,
    /// Whether the cap cut or left out a file.
    pub truncated: bool,
}

pub use tether_sandbox::project_root;

/// Whether the open file `file` is the one at a path inside `root` (a resolved path), as
/// the kernel sees the descriptor now: a directory swapped for a symlink between the
/// resolution and the open shows here (`CMD-72`). Where `/proc` is not mounted, falls back
/// to comparing the descriptor with what `resolved` names now (device and inode).
fn opened_inside(file: &File, resolved: &Path, root: &Path) -> bool {
    use std::os::fd::AsRawFd;
    match std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        Ok(actual) => actual.starts_with(root),
        Err(_) => match (file.metadata(), std::fs::metadata(resolved)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        },
    }
}

/// `CMD-72`: the first `limit` bytes of the instruction file at `path`, or `None` when it
/// is absent, empty, not a regular file, or resolves outside `root` (the resolved project
/// root). Reads at most `limit` bytes whatever the file's size.
fn read_instruction_file(path: &Path, root: &Path, limit: usize) -> Option<Vec<u8>> {
    // Symlinks resolved: the file must lie inside the project root (CMD-72).
    let resolved = std::fs::canonicalize(path).ok()?;
    if !resolved.starts_with(root) {
        return None;
    }
    // Non-blocking, so that a FIFO (or a device) cannot hold the open; no controlling
    // terminal; the last component must not have become a symlink since.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW)
        .open(&resolved)
        .ok()?;
    // Checked on the open descriptor: what is read is what was checked.
    let meta = file.metadata().ok()?;
    if !meta.file_type().is_file() || meta.len() == 0 || !opened_inside(&file, &resolved, root) {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(u64::try_from(limit).unwrap_or(u64::MAX))
        .read_to_end(&mut bytes)
        .ok()?;
    (!bytes.is_empty()).then_some(bytes)
}

/// The largest prefix of `bytes` of at most `max` bytes that ends on a UTF-8 character
/// boundary (invalid UTF-8 is replaced first).
fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// Discovers the instruction files for a thread whose working directory is `cwd`
/// (`CMD-48` … `CMD-51`, `CMD-72`). `cwd` must be absolute; directories that cannot be
/// read are skipped. Blocking: see the module documentation.
pub fn discover(cwd: &Path) -> Instructions {
    let root = project_root(cwd);
    let mut out = Instructions {
        project_root: root.clone(),
        ..Instructions::default()
    };
    // CMD-72: files are compared with the resolved root.
    let Ok(real_root) = std::fs::canonicalize(&root) else {
        return out;
    };
    // Directories from the root down to cwd, root first (CMD-49).
    let mut dirs: Vec<&Path> = cwd
        .ancestors()
        .take_while(|d| d.starts_with(&root))
        .collect();
    dirs.reverse();
    for dir in dirs {
        let room = AGENTS_MD_MAX_BYTES.saturating_sub(out.text.len());
        // One byte more than fits, to tell a file that fits from one the cap cuts.
        let limit = room.saturating_add(1);
        let found = ["AGENTS.override.md", "AGENTS.md"]
            .iter()
            .map(|name| dir.join(name))
            .find_map(|path| {
                read_instruction_file(&path, &real_root, limit).map(|bytes| (path, bytes))
            });
        let Some((path, bytes)) = found else { continue };
        let text = String::from_utf8_lossy(&bytes);
        if text.len() <= room {
            out.text.push_str(&text);
            out.sources.push(path);
        } else {
            // CMD-50: cut at the last character boundary within the cap; later files are
            // left out.
            let part = cut(&text, room);
            if !part.is_empty() {
                out.text.push_str(part);
                out.sources.push(path);
            }
            out.truncated = true;
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, s: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, s).unwrap();
    }

    #[test]
    fn cmd_48_49_root_first_override_wins_per_directory() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("repo");
        let deep = root.join("a/b");
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(&deep).unwrap();
        write(&t.path().join("AGENTS.md"), "above the root\n");
        write(&root.join("AGENTS.md"), "root\n");
        write(&root.join("a/AGENTS.md"), "a plain\n");
        write(&root.join("a/AGENTS.override.md"), "a override\n");
        write(&root.join("a/b/AGENTS.override.md"), "");
        write(&root.join("a/b/AGENTS.md"), "b\n");
        let i = discover(&deep);
        assert_eq!(i.project_root, root);
        assert_eq!(i.text, "root\na override\nb\n");
        assert_eq!(
            i.sources,
            vec![
                root.join("AGENTS.md"),
                root.join("a/AGENTS.override.md"),
                root.join("a/b/AGENTS.md")
            ]
        );
        assert!(!i.truncated);
    }

    #[test]
    fn cmd_48_no_git_means_cwd_is_the_root() {
        let t = tempfile::tempdir().unwrap();
        let cwd = t.path().join("x");
        write(&t.path().join("AGENTS.md"), "parent\n");
        write(&cwd.join("AGENTS.md"), "here\n");
        let i = discover(&cwd);
        assert_eq!(i.project_root, cwd);
        assert_eq!(i.text, "here\n");
    }

    #[test]
    fn cmd_50_cap_cuts_on_a_char_boundary_and_drops_later_files() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        let big = "é".repeat(AGENTS_MD_MAX_BYTES); // 2 bytes each
        write(&root.join("AGENTS.md"), "1234567\n");
        write(&root.join("sub/AGENTS.md"), &big);
        write(&root.join("sub/deeper/AGENTS.md"), "never\n");
        let i = discover(&root.join("sub/deeper"));
        assert!(i.truncated);
        assert!(i.text.len() <= AGENTS_MD_MAX_BYTES);
        assert_eq!(i.text.len(), AGENTS_MD_MAX_BYTES); // 8 + an even number of bytes
        assert!(!i.text.contains("never"));
        assert_eq!(i.sources.len(), 2);
    }

    /// A project with `.git` and a `sub` directory: (tempdir, root).
    fn project() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("repo");
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("sub")).unwrap();
        (t, root)
    }

    fn mkfifo(path: &Path) {
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
    }

    #[test]
    fn cmd_72_a_fifo_is_skipped_without_blocking() {
        // Opened blocking, a FIFO without a writer would hold discovery (and, on the
        // runtime's task, the whole host) for ever; read, it would wait for a writer.
        let (_t, root) = project();
        mkfifo(&root.join("AGENTS.override.md"));
        write(&root.join("AGENTS.md"), "plain\n");
        mkfifo(&root.join("sub/AGENTS.md"));
        let (tx, rx) = std::sync::mpsc::channel();
        let cwd = root.join("sub");
        std::thread::spawn(move || tx.send(discover(&cwd)));
        let i = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("discovery blocked on a FIFO");
        // The FIFO override counts as absent: the plain file of the root is taken.
        assert_eq!(i.text, "plain\n");
        assert_eq!(i.sources, vec![root.join("AGENTS.md")]);
    }

    #[test]
    fn cmd_72_a_symlink_to_dev_zero_is_skipped() {
        let (_t, root) = project();
        std::os::unix::fs::symlink("/dev/zero", root.join("AGENTS.md")).unwrap();
        write(&root.join("sub/AGENTS.md"), "sub\n");
        let i = discover(&root.join("sub"));
        assert_eq!(i.text, "sub\n");
        assert_eq!(i.sources, vec![root.join("sub/AGENTS.md")]);
        assert!(!i.truncated);
    }

    #[test]
    fn cmd_72_symlinks_out_of_the_project_are_skipped_and_inside_taken() {
        let (t, root) = project();
        // A secret next to the project (the host's state directory, say).
        let secret = t.path().join("host-state/host.key");
        write(&secret, "SECRET KEY MATERIAL\n");
        std::os::unix::fs::symlink("../host-state/host.key", root.join("AGENTS.md")).unwrap();
        // Through a directory symlink too.
        std::os::unix::fs::symlink(t.path().join("host-state"), root.join("sub/link")).unwrap();
        std::os::unix::fs::symlink("link/host.key", root.join("sub/AGENTS.override.md")).unwrap();
        let i = discover(&root.join("sub"));
        assert!(!i.text.contains("SECRET"), "{:?}", i.text);
        assert!(i.sources.is_empty());
        // A symlink that stays inside the project is followed.
        write(&root.join("docs/agents.txt"), "shared\n");
        std::fs::remove_file(root.join("AGENTS.md")).unwrap();
        std::os::unix::fs::symlink("docs/agents.txt", root.join("AGENTS.md")).unwrap();
        let i = discover(&root.join("sub"));
        assert_eq!(i.text, "shared\n");
        assert_eq!(i.sources, vec![root.join("AGENTS.md")]);
    }

    #[test]
    fn cmd_72_a_cwd_through_a_symlink_reads_nothing_outside_the_root() {
        // cwd names a directory of the project that is a symlink to elsewhere.
        let (t, root) = project();
        write(&t.path().join("elsewhere/AGENTS.md"), "outside\n");
        std::os::unix::fs::symlink(t.path().join("elsewhere"), root.join("away")).unwrap();
        write(&root.join("AGENTS.md"), "root\n");
        let i = discover(&root.join("away"));
        assert_eq!(i.project_root, root);
        assert_eq!(i.text, "root\n");
    }

    #[test]
    fn cmd_72_a_huge_file_is_read_only_up_to_the_cap() {
        // A sparse file of 4 GiB: reading it whole would take 4 GiB of memory; the cap
        // bounds the read to what fits plus one byte.
        let (_t, root) = project();
        let f = File::create(root.join("AGENTS.md")).unwrap();
        f.set_len(4 << 30).unwrap();
        drop(f);
        write(&root.join("sub/AGENTS.md"), "never\n");
        let i = discover(&root.join("sub"));
        assert!(i.truncated);
        assert_eq!(i.text.len(), AGENTS_MD_MAX_BYTES);
        assert_eq!(i.sources, vec![root.join("AGENTS.md")]);
        // And a second file gets only the room the first left.
        let (_t, root) = project();
        write(
            &root.join("AGENTS.md"),
            &"x".repeat(AGENTS_MD_MAX_BYTES - 3),
        );
        write(&root.join("sub/AGENTS.md"), &"y".repeat(1 << 20));
        let i = discover(&root.join("sub"));
        assert!(i.truncated);
        assert!(i.text.ends_with("xyyy"));
        assert_eq!(i.text.len(), AGENTS_MD_MAX_BYTES);
    }

    #[test]
    fn cmd_72_the_bounded_read_takes_what_fits_and_no_more() {
        let (_t, root) = project();
        let path = root.join("AGENTS.md");
        let real = std::fs::canonicalize(&root).unwrap();
        write(&path, "0123456789");
        assert_eq!(read_instruction_file(&path, &real, 4).unwrap(), b"0123");
        assert_eq!(
            read_instruction_file(&path, &real, 100).unwrap(),
            b"0123456789"
        );
        // A directory of that name, or nothing there: absent.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert_eq!(read_instruction_file(&path, &real, 100), None);
        assert_eq!(read_instruction_file(&root.join("nope"), &real, 100), None);
    }
}
