//! Where the state directory and the workspace credential may be (`SEC-22`, `SEC-23`).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::{StateError, io_err};

/// Whether `secret` (the host's state directory, or another path no command may touch)
/// overlaps one of `writable_roots`: lies inside one, is one, or contains one (`SEC-22`).
/// A command whose writable roots overlap the state directory could rewrite the paired
/// devices or read the key, so such a command, thread or host configuration is refused.
///
/// Paths are compared canonicalized (symbolic links and `..` resolved), component by
/// component; a path that cannot be canonicalized (it does not exist yet) is compared as
/// given. Pure apart from resolving the paths.
pub fn state_dir_exposed(secret: &Path, writable_roots: &[PathBuf]) -> bool {
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let secret = canonical(secret);
    writable_roots.iter().any(|root| {
        let root = canonical(root);
        secret.starts_with(&root) || root.starts_with(&secret)
    })
}

/// The environment variable `tether host run` reads the workspace credential from when
/// no `--credential-file` is given (`SEC-23`). Commands the host runs never get it.
pub const CREDENTIAL_ENV: &str = "TETHER_CREDENTIAL";

/// The largest credential file read: credentials are at most 255 bytes (`LINK-10`), with
/// room for a line break.
const MAX_CREDENTIAL_FILE: u64 = 4096;

/// Reads the workspace credential from `path` (`SEC-23`): a regular file of this account
/// that no other account can read or write, holding the credential on one line (a trailing
/// line break is dropped). The file is opened without blocking, so a FIFO put in its place
/// cannot stall the host, and checked before it is read.
///
/// # Errors
/// [`StateError::Io`] when it cannot be read; [`StateError::Insecure`] for a file other
/// accounts can read or write, or that belongs to another account; [`StateError::Corrupt`]
/// for a file that is not a regular file, is larger than 4 KiB, is not UTF-8, or is empty.
pub fn read_credential_file(path: &Path) -> Result<String, StateError> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| io_err(path)(io::Error::from(e)))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(io_err(path))?;
    let corrupt = |detail: &str| StateError::Corrupt {
        path: path.to_owned(),
        detail: detail.to_owned(),
    };
    if !meta.is_file() {
        return Err(corrupt("not a regular file"));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid && euid != 0 {
        return Err(StateError::Insecure {
            path: path.to_owned(),
            detail: format!(
                "the credential file belongs to uid {}, not to this account (uid {euid})",
                meta.uid()
            ),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(StateError::Insecure {
            path: path.to_owned(),
            detail: format!(
                "mode {mode:o} lets other accounts read the workspace credential; chmod 600 it (SEC-23)"
            ),
        });
    }
    if meta.len() > MAX_CREDENTIAL_FILE {
        return Err(corrupt(
            "larger than 4 KiB; a workspace credential is 16 to 255 bytes",
        ));
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(
        &mut io::Read::take(&file, MAX_CREDENTIAL_FILE + 1),
        &mut bytes,
    )
    .map_err(io_err(path))?;
    let text = String::from_utf8(bytes).map_err(|_| corrupt("not UTF-8"))?;
    let credential = text.trim_end_matches(['\n', '\r']);
    if credential.is_empty() {
        return Err(corrupt(
            "empty; it holds the workspace credential on one line",
        ));
    }
    Ok(credential.to_owned())
}

/// Refuses a state directory that overlaps one of `writable` (`SEC-22`), each a directory
/// that sandboxed commands may write with what it is ("the commands' temporary
/// directory"); see [`state_dir_exposed`].
///
/// # Errors
/// [`StateError::Exposed`] naming the first such directory.
pub fn check_state_placement(state: &Path, writable: &[(&str, PathBuf)]) -> Result<(), StateError> {
    for (role, root) in writable {
        if state_dir_exposed(state, std::slice::from_ref(root)) {
            return Err(StateError::Exposed {
                path: state.to_owned(),
                root: root.clone(),
                role: (*role).to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// SEC-22: `state_dir_exposed` sees the state directory inside a writable root, equal
    /// to one, or containing one, through symbolic links, and nothing else.
    #[test]
    fn sec_22_state_dir_exposed() {
        let tmp = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(tmp.path()).unwrap();
        let state = base.join("home/.local/state/tether");
        let project = base.join("home/src/acme");
        let temp = base.join("tmp");
        for d in [&state, &project, &temp] {
            fs::create_dir_all(d).unwrap();
        }
        assert!(!state_dir_exposed(&state, &[]));
        assert!(!state_dir_exposed(&state, &[project.clone(), temp.clone()]));
        // Inside, equal, containing.
        assert!(state_dir_exposed(
            &state,
            &[project.clone(), base.join("home")]
        ));
        assert!(state_dir_exposed(&state, std::slice::from_ref(&state)));
        assert!(state_dir_exposed(&state, &[state.join("threads")]));
        assert!(state_dir_exposed(&state, &[PathBuf::from("/")]));
        // Component-wise: ".../state/tether-other" is not inside ".../state/tether".
        let sibling = base.join("home/.local/state/tether-other");
        fs::create_dir_all(&sibling).unwrap();
        assert!(!state_dir_exposed(&state, &[sibling]));
        // Through a symbolic link and `..`.
        let link = base.join("link");
        std::os::unix::fs::symlink(base.join("home/.local"), &link).unwrap();
        assert!(state_dir_exposed(&state, std::slice::from_ref(&link)));
        assert!(state_dir_exposed(
            &link.join("state/tether"),
            &[base.join("home")]
        ));
        assert!(state_dir_exposed(
            &state,
            &[project.join("../../.local/state")]
        ));
        // A root that does not exist yet is compared as given.
        assert!(!state_dir_exposed(&state, &[base.join("missing")]));
        assert!(state_dir_exposed(&state, &[state.join("missing")]));
    }

    /// SEC-22: the placement check names the directory the state lies in.
    #[test]
    fn sec_22_state_inside_a_writable_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("tmp/tether-host");
        fs::create_dir_all(&state).unwrap();
        let sibling_tmp = tmp.path().join("host-tmp");
        fs::create_dir_all(&sibling_tmp).unwrap();
        let e = check_state_placement(
            &state,
            &[
                ("the commands' temporary directory", sibling_tmp.clone()),
                ("the default project", tmp.path().join("tmp")),
            ],
        )
        .unwrap_err();
        match &e {
            StateError::Exposed { root, role, .. } => {
                assert_eq!(root, &tmp.path().join("tmp"));
                assert_eq!(role, "the default project");
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("SEC-22"), "{e}");
        check_state_placement(
            &state,
            &[("the commands' temporary directory", sibling_tmp)],
        )
        .unwrap();
    }

    /// SEC-23: the credential file is read only when it is this account's alone.
    #[test]
    fn sec_23_credential_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("credential");
        let write = |bytes: &[u8], mode: u32| {
            let _ = fs::remove_file(&path);
            fs::write(&path, bytes).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        };
        write(b"acme-credential-0123456789\n", 0o600);
        assert_eq!(
            read_credential_file(&path).unwrap(),
            "acme-credential-0123456789"
        );
        write(b"acme-credential-0123456789\r\n", 0o400);
        assert_eq!(
            read_credential_file(&path).unwrap(),
            "acme-credential-0123456789"
        );
        // Spaces inside and at the end are part of the credential.
        write(b"with space \n", 0o600);
        assert_eq!(read_credential_file(&path).unwrap(), "with space ");
        for mode in [0o640, 0o604, 0o620, 0o644] {
            write(b"acme-credential-0123456789\n", mode);
            let e = read_credential_file(&path).unwrap_err();
            assert!(matches!(e, StateError::Insecure { .. }), "{mode:o}: {e}");
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        write(b"\n", 0o600);
        assert!(matches!(
            read_credential_file(&path),
            Err(StateError::Corrupt { .. })
        ));
        write(&[b'x'; 5000], 0o600);
        assert!(matches!(
            read_credential_file(&path),
            Err(StateError::Corrupt { .. })
        ));
        write(&[0xff, 0xfe], 0o600);
        assert!(matches!(
            read_credential_file(&path),
            Err(StateError::Corrupt { .. })
        ));
        // A FIFO in its place: refused at once, not waited on.
        fs::remove_file(&path).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let started = Instant::now();
        assert!(matches!(
            read_credential_file(&path),
            Err(StateError::Corrupt { .. })
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(
            read_credential_file(&tmp.path().join("missing")),
            Err(StateError::Io { .. })
        ));
    }
}
