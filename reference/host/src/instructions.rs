//! AGENTS.md discovery (`spec/05` section 5.8, `CMD-48` … `CMD-51`).

use std::path::{Path, PathBuf};

use tether_proto::limits::AGENTS_MD_MAX_BYTES;

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

fn non_empty_file(path: &Path) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) if !bytes.is_empty() => Some(bytes),
        _ => None,
    }
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
/// (`CMD-48` … `CMD-51`). `cwd` must be absolute; directories that cannot be read are
/// skipped.
pub fn discover(cwd: &Path) -> Instructions {
    let root = project_root(cwd);
    // Directories from the root down to cwd, root first (CMD-49).
    let mut dirs: Vec<&Path> = cwd
        .ancestors()
        .take_while(|d| d.starts_with(&root))
        .collect();
    dirs.reverse();
    let mut out = Instructions {
        project_root: root.clone(),
        ..Instructions::default()
    };
    for dir in dirs {
        let found = ["AGENTS.override.md", "AGENTS.md"]
            .iter()
            .map(|name| dir.join(name))
            .find_map(|path| non_empty_file(&path).map(|bytes| (path, bytes)));
        let Some((path, bytes)) = found else { continue };
        let text = String::from_utf8_lossy(&bytes);
        let room = AGENTS_MD_MAX_BYTES - out.text.len();
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
}
