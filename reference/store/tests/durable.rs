//! Atomic replace, the lock file and the private directory, on the real file system.
//! Scratch directories live under `CARGO_TARGET_TMPDIR`, not `/tmp`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tether_store::{FileLock, StoreError, create_private_dir, stage, write_atomic};

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("tether-store")
        .join(format!("{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    create_private_dir(&dir).unwrap();
    dir
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The files of `dir` other than `keep`.
fn others(dir: &Path, keep: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != keep)
        .collect()
}

#[test]
fn write_atomic_replaces_with_the_mode_given() {
    let dir = scratch("replace");
    let target = dir.join("host.key");
    write_atomic(&target, b"old\n", 0o600).unwrap();
    write_atomic(&target, b"new\n", 0o600).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"new\n");
    assert_eq!(mode(&target), 0o600);
    assert!(
        others(&dir, "host.key").is_empty(),
        "no temporary file left"
    );
}

/// A failure before the rename (the staged write is dropped, as an error on the way
/// would drop it) leaves the old file and no temporary file.
#[test]
fn failure_before_rename_leaves_the_old_file() {
    let dir = scratch("fail");
    let target = dir.join("host.json");
    write_atomic(&target, b"old", 0o600).unwrap();
    let staged = stage(&target, b"new", 0o600).unwrap();
    assert_eq!(fs::read(staged.temporary()).unwrap(), b"new");
    drop(staged);
    assert_eq!(fs::read(&target).unwrap(), b"old");
    assert!(others(&dir, "host.json").is_empty());
}

/// A crash between the fsync of the temporary file and the rename leaves the old file
/// in place (and the temporary file behind, for the next writer to sweep).
#[test]
fn crash_before_rename_leaves_the_old_file() {
    let dir = scratch("crash");
    let target = dir.join("controller.json");
    write_atomic(&target, b"old", 0o600).unwrap();
    let staged = stage(&target, b"new", 0o600).unwrap();
    let tmp = staged.temporary().to_owned();
    staged.abandon_for_testing();
    assert_eq!(fs::read(&target).unwrap(), b"old");
    assert_eq!(fs::read(&tmp).unwrap(), b"new");
    assert_eq!(mode(&tmp), 0o600);
    let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(".controller.json.") && name.ends_with(".tmp"),
        "{name}"
    );
    // The next write still succeeds.
    write_atomic(&target, b"newer", 0o600).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"newer");
}

#[test]
fn a_write_that_cannot_start_names_the_temporary_file() {
    let dir = scratch("missing");
    let target = dir.join("absent").join("host.json");
    match write_atomic(&target, b"x", 0o600) {
        Err(StoreError::Io { what, path, .. }) => {
            assert_eq!(what, "creating");
            assert_eq!(path.parent(), target.parent());
        }
        other => panic!("{other:?}"),
    }
    assert!(!target.exists());
}

#[test]
fn private_directory_and_lock_file_modes() {
    let dir = scratch("modes");
    let nested = dir.join("a").join("state");
    create_private_dir(&nested).unwrap();
    assert_eq!(mode(&nested), 0o700);
    create_private_dir(&nested).unwrap(); // already there: fine
    let lock_path = nested.join("lock");
    let lock = FileLock::take(&lock_path).unwrap();
    assert_eq!(mode(&lock_path), 0o600);
    // flock(2) locks belong to the open file: a second open of the same file is refused
    // while the first holds the lock.
    let other = fs::File::open(&lock_path).unwrap();
    assert!(other.try_lock().is_err());
    drop(lock);
    other.try_lock().unwrap();
}
