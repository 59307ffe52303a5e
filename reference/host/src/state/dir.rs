//! [`StateDir`]: the directory, opened and checked (`SEC-1`, `SEC-22`), its key, its run
//! information, and every read and read-modify-write of `host.json`.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tether_proto::time::UnixTime;
use tether_proto::token::{PairingToken, secret_digest};
use tether_store::write_atomic;

use super::disk::{RunInfo, hex_array, parse_state, render_state};
use super::error::{KEY_FILE, LOCK_FILE, RUN_FILE, STATE_FILE, StateError, io_err, random_bytes};
use super::lock::{FileStamp, RACY_RECHECK, RACY_WINDOW, StateLock, StateSnapshot};
use super::model::{Device, HostState, TokenRecord};

/// A host state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
    tightened: Vec<(PathBuf, u32)>,
}

/// The files of a state directory whose modes [`StateDir::open`] tightens to 0600 (the key
/// is refused instead, `SEC-1`).
const TIGHTENED_FILES: &[&str] = &[STATE_FILE, RUN_FILE, LOCK_FILE];

impl StateDir {
    /// Opens `path`, creating it with mode 0700 if it does not exist (`SEC-1`, `SEC-22`).
    ///
    /// An existing directory must belong to this account (or the account be root) and
    /// must not be writable by group or others: files planted in it by another account
    /// would be trusted, so such a directory is refused. One that is only readable or
    /// searchable by others (a `mkdir` under umask 022) is tightened to 0700, and so are
    /// its `host.json`, `run.json` and `lock` to 0600; [`StateDir::tightened`] says what
    /// changed, for the caller to report.
    ///
    /// # Errors
    /// [`StateError::Io`] if it cannot be created, inspected or tightened, or is not a
    /// directory; [`StateError::Insecure`] for a directory of another account or one
    /// others may write.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StateError> {
        let path = path.into();
        if !path.exists() {
            tether_store::create_private_dir(&path)?;
        }
        let meta = fs::metadata(&path).map_err(io_err(&path))?;
        if !meta.is_dir() {
            return Err(StateError::Io {
                path,
                source: io::Error::other("not a directory"),
            });
        }
        let mut tightened = Vec::new();
        // SEC-22: owner only.
        let euid = rustix::process::geteuid().as_raw();
        if meta.uid() != euid && euid != 0 {
            return Err(StateError::Insecure {
                detail: format!(
                    "it belongs to uid {}, not to this account (uid {euid})",
                    meta.uid()
                ),
                path,
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(StateError::Insecure {
                detail: format!(
                    "mode {mode:o} lets other accounts change it; check its files, then chmod 700 it"
                ),
                path,
            });
        }
        if mode & 0o077 != 0 {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(io_err(&path))?;
            tightened.push((path.clone(), mode));
        }
        for name in TIGHTENED_FILES {
            let file = path.join(name);
            let Ok(meta) = fs::symlink_metadata(&file) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_file() && mode & 0o077 != 0 {
                fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
                    .map_err(io_err(&file))?;
                tightened.push((file, mode));
            }
        }
        Ok(Self { path, tightened })
    }

    /// What [`StateDir::open`] tightened: each path with the mode it had (`SEC-22`).
    pub fn tightened(&self) -> &[(PathBuf, u32)] {
        &self.tightened
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of `host.json`.
    pub fn state_path(&self) -> PathBuf {
        self.path.join(STATE_FILE)
    }

    /// Takes the exclusive lock on `DIR/lock`, waiting for another holder.
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn lock(&self) -> Result<StateLock, StateError> {
        StateLock::take(&self.path.join(LOCK_FILE))
    }

    fn read_unlocked(&self) -> Result<HostState, StateError> {
        let path = self.state_path();
        match fs::read(&path) {
            Ok(bytes) => parse_state(&bytes, &path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HostState::default()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Reads `host.json` under the lock (an absent file is the empty state).
    ///
    /// # Errors
    /// [`StateError::Io`], [`StateError::Corrupt`], [`StateError::UnsupportedVersion`].
    pub fn read(&self) -> Result<HostState, StateError> {
        let _lock = self.lock()?;
        self.read_unlocked()
    }

    /// `host.json` as of now, re-read (under the lock) only when the file changed since
    /// `snapshot` was taken: the per-request checks of `CMD-55` and `CMD-56` and the
    /// re-checks of `SEC-13` cost one `stat` instead of a lock, a read and a parse.
    ///
    /// "Changed" is any difference in device, inode, size, modification or change time.
    /// Every writer replaces the file by renaming a new one over it (a new inode), and an
    /// edit in place moves its times; a file replaced between the `stat` and the read is
    /// re-read on the next call. File times move in clock ticks (up to a second on some
    /// file systems), so an edit in place within a tick of the read could keep every
    /// field: a snapshot of a file modified less than [`RACY_WINDOW`] before it was read
    /// is trusted for at most [`RACY_RECHECK`], then read again (git's "racily clean"
    /// rule, with a bound on the cost).
    ///
    /// # Errors
    /// As [`StateDir::read`]; the snapshot is left as it was.
    pub fn read_fresh<'a>(
        &self,
        snapshot: &'a mut StateSnapshot,
    ) -> Result<&'a HostState, StateError> {
        let (stamp, _) = self.stamp()?;
        let recheck = snapshot.recheck_at.is_some_and(|t| Instant::now() >= t);
        if recheck || snapshot.stamp != Some(stamp) {
            let _lock = self.lock()?;
            // Stamped under the lock, before the read: a later write changes the stamp.
            let (stamp, modified) = self.stamp()?;
            let read_at = SystemTime::now();
            snapshot.state = self.read_unlocked()?;
            snapshot.stamp = Some(stamp);
            snapshot.recheck_at = modified
                .is_some_and(|m| m + RACY_WINDOW > read_at)
                .then(|| Instant::now() + RACY_RECHECK);
        }
        Ok(&snapshot.state)
    }

    fn stamp(&self) -> Result<(FileStamp, Option<SystemTime>), StateError> {
        let path = self.state_path();
        match fs::metadata(&path) {
            Ok(m) => Ok((
                FileStamp::Present {
                    dev: m.dev(),
                    ino: m.ino(),
                    size: m.size(),
                    mtime: (m.mtime(), m.mtime_nsec()),
                    ctime: (m.ctime(), m.ctime_nsec()),
                },
                m.modified().ok(),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((FileStamp::Absent, None)),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// One read-modify-write of `host.json` under the lock: `f` sees the current state;
    /// if it returns `Ok` the state is written durably before this returns, if it returns
    /// `Err` nothing is written.
    ///
    /// # Errors
    /// The outer error is the store's ([`StateError`]); the inner one is `f`'s.
    pub fn update<T, E>(
        &self,
        f: impl FnOnce(&mut HostState) -> Result<T, E>,
    ) -> Result<Result<T, E>, StateError> {
        self.update_with(None, f)
    }

    /// [`StateDir::update`] that leaves what it wrote in `snapshot`, so that the next
    /// [`StateDir::read_fresh`] need not read it back.
    ///
    /// # Errors
    /// As [`StateDir::update`].
    pub fn update_with<T, E>(
        &self,
        snapshot: Option<&mut StateSnapshot>,
        f: impl FnOnce(&mut HostState) -> Result<T, E>,
    ) -> Result<Result<T, E>, StateError> {
        let _lock = self.lock()?;
        let mut state = self.read_unlocked()?;
        match f(&mut state) {
            Ok(t) => {
                self.sweep_temporaries(STATE_FILE);
                let mut snapshot = snapshot;
                if let Some(snapshot) = snapshot.as_deref_mut() {
                    // Whatever happens next, the old snapshot no longer describes the file.
                    snapshot.stamp = None;
                }
                write_atomic(&self.state_path(), &render_state(&state), 0o600)?;
                if let Some(snapshot) = snapshot
                    && let Ok((stamp, _)) = self.stamp()
                {
                    snapshot.stamp = Some(stamp);
                    snapshot.state = state;
                    // Just written: trusted for RACY_RECHECK only.
                    snapshot.recheck_at = Some(Instant::now() + RACY_RECHECK);
                }
                Ok(Ok(t))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Removes the temporary files a crashed write of `name` left behind. Only called under
    /// the lock: every writer of the directory's files holds it, so no write is in progress.
    fn sweep_temporaries(&self, name: &str) {
        let prefix = format!(".{name}.");
        let Ok(entries) = fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            if file.starts_with(&prefix) && file.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The static private key, created (from the CSPRNG, mode 0600) on first use.
    ///
    /// # Errors
    /// [`StateError::Io`], [`StateError::Corrupt`] for a key file that is not 64 hex
    /// digits, [`StateError::Random`].
    pub fn load_or_create_key(&self) -> Result<[u8; 32], StateError> {
        let _lock = self.lock()?;
        match self.read_key() {
            Err(StateError::NoKey { .. }) => {
                let key = random_bytes::<32>()?;
                let mut text = hex::encode(key);
                text.push('\n');
                write_atomic(&self.path.join(KEY_FILE), text.as_bytes(), 0o600)?;
                Ok(key)
            }
            other => other,
        }
    }

    /// The static private key.
    ///
    /// # Errors
    /// [`StateError::NoKey`] when there is none yet, [`StateError::Corrupt`] for a key
    /// file that is not 64 hex digits or is readable by others, [`StateError::Io`].
    pub fn read_key(&self) -> Result<[u8; 32], StateError> {
        let path = self.path.join(KEY_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NoKey {
                    path,
                    dir: self.path.clone(),
                });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mode = fs::metadata(&path)
            .map_err(io_err(&path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(StateError::Corrupt {
                path,
                detail: format!(
                    "mode {:o} lets others read the private key; chmod 600 it",
                    mode & 0o777
                ),
            });
        }
        hex_array::<32>(text.trim(), "host key")
            .map_err(|detail| StateError::Corrupt { path, detail })
    }

    /// Records the run information.
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn write_run_info(&self, info: &RunInfo) -> Result<(), StateError> {
        let _lock = self.lock()?;
        let mut bytes = serde_json::to_vec_pretty(info).unwrap_or_default();
        bytes.push(b'\n');
        Ok(write_atomic(&self.path.join(RUN_FILE), &bytes, 0o600)?)
    }

    /// The run information `tether host run` recorded.
    ///
    /// # Errors
    /// [`StateError::NotRunYet`], [`StateError::Corrupt`], [`StateError::Io`].
    pub fn read_run_info(&self) -> Result<RunInfo, StateError> {
        let path = self.path.join(RUN_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotRunYet {
                    path,
                    dir: self.path.clone(),
                });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let info: RunInfo = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if info.version != 1 {
            return Err(StateError::UnsupportedVersion {
                path,
                version: info.version,
            });
        }
        Ok(info)
    }

    /// Mints a pairing token for the relay and workspace of `run.json`, living `ttl`
    /// (`TOKEN-9`: at most 600 s), and stores its id and secret digest (`TOKEN-11`).
    ///
    /// # Errors
    /// [`StateError::Token`] for a lifetime over 600 s or a bad field, the errors of
    /// [`StateDir::read_key`], [`StateDir::read_run_info`] and [`StateDir::update`].
    pub fn mint_token(&self, ttl: Duration, now: UnixTime) -> Result<PairingToken, StateError> {
        let expires_at = PairingToken::expiry_after(now, ttl).map_err(StateError::Token)?;
        let host_private = self.read_key()?;
        let run = self.read_run_info()?;
        let token_id = random_bytes::<16>()?; // TOKEN-11
        let token_secret = random_bytes::<32>()?;
        let token = PairingToken::new(
            tether_proto::keys::public_key(&host_private),
            token_id,
            token_secret,
            expires_at,
            run.workspace,
            run.relay,
            Some(run.host_name),
        )
        .map_err(StateError::Token)?;
        let record = TokenRecord {
            id: token_id,
            secret_digest: secret_digest(&token_secret),
            expires_at,
            consumed: false,
        };
        self.update(|s| {
            s.add_token(record, now);
            Ok::<(), StateError>(())
        })??;
        Ok(token)
    }

    /// Revokes the device `query` names (name, or fingerprint prefix).
    ///
    /// # Errors
    /// [`StateError::NoSuchDevice`], [`StateError::AmbiguousDevice`], store errors.
    pub fn revoke(&self, query: &str) -> Result<Device, StateError> {
        self.update(|s| s.revoke(query))?
    }

    /// Sets the inactivity age in seconds, or removes it with `None` (`CHAN-9`): see
    /// [`HostSettings::set_max_inactive`](super::HostSettings::set_max_inactive).
    ///
    /// # Errors
    /// Store errors.
    pub fn set_max_inactive(&self, secs: Option<u64>) -> Result<(), StateError> {
        self.update(|s| {
            s.config.set_max_inactive(secs);
            Ok::<(), StateError>(())
        })?
    }

    /// Switches remote access on or off (`CHAN-26`, `CMD-55`).
    ///
    /// # Errors
    /// Store errors.
    pub fn set_remote_access(&self, on: bool) -> Result<(), StateError> {
        self.update(|s| {
            s.config.remote_access = on;
            Ok::<(), StateError>(())
        })?
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use tether_proto::channel::Timestamp;

    use super::*;
    use crate::state::model::{Access, HostSettings};

    pub(crate) fn ts(secs: u64) -> Timestamp {
        Timestamp::from_unix(UnixTime::from_secs(secs))
    }

    pub(crate) fn dir() -> (tempfile::TempDir, StateDir) {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path().join("state")).unwrap();
        (tmp, state)
    }

    pub(crate) fn run_info(state: &StateDir) {
        state
            .write_run_info(&RunInfo {
                version: 1,
                relay: "ws://127.0.0.1:7400/".into(),
                workspace: "acme".into(),
                host_name: "build-box".into(),
            })
            .unwrap();
    }

    #[test]
    fn directory_and_key_modes() {
        let (_tmp, state) = dir();
        let mode = fs::metadata(state.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let key = state.load_or_create_key().unwrap();
        assert_eq!(state.load_or_create_key().unwrap(), key, "created once");
        let path = state.path().join(KEY_FILE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(state.read_key(), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn cmd_56_read_fresh_sees_every_change_of_host_json() {
        let (_tmp, state) = dir();
        let mut snap = StateSnapshot::default();
        assert!(state.read_fresh(&mut snap).unwrap().devices.is_empty());
        let now = UnixTime::from_secs(1_800_000_000);
        let device = [7u8; 32];
        // A write by this process (atomic replace).
        state
            .update(|s| {
                s.record_device(&device, "phone", ts(1_800_000_000), now);
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(
            state.read_fresh(&mut snap).unwrap().access(&device, now),
            Access::Allowed
        );
        // Unchanged: the same answer from the snapshot.
        assert_eq!(
            state.read_fresh(&mut snap).unwrap().access(&device, now),
            Access::Allowed
        );
        // A revocation by another process (`tether host revoke`).
        state.revoke("phone").unwrap();
        assert_eq!(
            state.read_fresh(&mut snap).unwrap().access(&device, now),
            Access::NotAuthorized
        );
        // An edit in place, as an editor might make it: same inode, new content.
        let before = fs::read(state.state_path()).unwrap();
        let mut f = OpenOptions::new()
            .write(true)
            .open(state.state_path())
            .unwrap();
        f.write_all(&render_state(&HostState::default())).unwrap();
        f.set_len(render_state(&HostState::default()).len() as u64)
            .unwrap();
        drop(f);
        assert_ne!(fs::read(state.state_path()).unwrap(), before);
        assert!(state.read_fresh(&mut snap).unwrap().devices.is_empty());
        // An edit in place that keeps the size, within a tick of the last read, may keep
        // every field of the stamp: it is seen once RACY_RECHECK has passed.
        assert!(state.read_fresh(&mut snap).unwrap().config.remote_access);
        let text = String::from_utf8(fs::read(state.state_path()).unwrap()).unwrap();
        assert!(text.contains("\"remoteAccess\": true"), "{text}");
        let edited = text.replacen("\"remoteAccess\": true", "\"remoteAccess\":false", 1);
        assert_eq!(edited.len(), text.len());
        let mut f = OpenOptions::new()
            .write(true)
            .open(state.state_path())
            .unwrap();
        f.write_all(edited.as_bytes()).unwrap();
        drop(f);
        std::thread::sleep(RACY_RECHECK + Duration::from_millis(20));
        assert!(!state.read_fresh(&mut snap).unwrap().config.remote_access);
        // Removed: the empty state.
        state
            .update(|s| {
                s.record_device(&device, "phone", ts(1_800_000_001), now);
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(state.read_fresh(&mut snap).unwrap().devices.len(), 1);
        fs::remove_file(state.state_path()).unwrap();
        assert!(state.read_fresh(&mut snap).unwrap().devices.is_empty());
        // A corrupt file is an error and leaves the snapshot as it was.
        fs::write(state.state_path(), b"{not json").unwrap();
        assert!(matches!(
            state.read_fresh(&mut snap),
            Err(StateError::Corrupt { .. })
        ));
    }

    #[test]
    fn versions_migrate_or_are_refused() {
        let (_tmp, state) = dir();
        // v0: no version member, no config/tokens, devices without lastTimestamp.
        let key = hex::encode([4u8; 32]);
        let v0 = format!(
            "{{\"devices\":[{{\"key\":\"{key}\",\"name\":\"old\",\"pairedAt\":10,\"lastSeen\":20}}]}}"
        );
        fs::write(state.state_path(), &v0).unwrap();
        let s = state.read().unwrap();
        assert_eq!(s.devices.len(), 1);
        assert_eq!(s.devices[0].last_timestamp, ts(0));
        assert!(!s.devices[0].revoked);
        assert_eq!(s.config, HostSettings::default());
        // The first write stores version 1.
        state.set_remote_access(true).unwrap();
        let text = fs::read_to_string(state.state_path()).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
        assert_eq!(state.read().unwrap().devices, s.devices);
        // A newer version is refused, and left as it is.
        let v2 = b"{\"version\":2,\"devices\":[],\"tokens\":[],\"config\":{}}";
        fs::write(state.state_path(), v2).unwrap();
        assert!(matches!(
            state.read(),
            Err(StateError::UnsupportedVersion { version: 2, .. })
        ));
        assert!(state.set_remote_access(false).is_err());
        assert_eq!(fs::read(state.state_path()).unwrap(), v2);
    }

    #[test]
    fn state_files_with_and_without_max_inactive_secs_load() {
        let (_tmp, state) = dir();
        // A version-1 file written before maxInactiveSecs existed.
        let old = b"{\"version\":1,\"devices\":[],\"tokens\":[],\"config\":{\"remoteAccess\":true,\"maxInactiveDays\":3}}";
        fs::write(state.state_path(), old).unwrap();
        let s = state.read().unwrap();
        assert_eq!(s.config.max_inactive(), Some(3 * 86_400));
        // With it: it wins over maxInactiveDays.
        let new = b"{\"version\":1,\"devices\":[],\"tokens\":[],\"config\":{\"remoteAccess\":true,\"maxInactiveDays\":3,\"maxInactiveSecs\":12}}";
        fs::write(state.state_path(), new).unwrap();
        let s = state.read().unwrap();
        assert_eq!(s.config.max_inactive(), Some(12));
        // Round trip; a file without the setting renders as before (no new member).
        assert_eq!(
            parse_state(&render_state(&s), &state.state_path()).unwrap(),
            s
        );
        let plain = render_state(&HostState::default());
        assert!(
            !String::from_utf8(plain)
                .unwrap()
                .contains("maxInactiveSecs")
        );
    }

    /// SEC-22: a state directory others can read is tightened (and says so), one others
    /// can write is refused, and files created in it are 0600.
    #[test]
    fn sec_22_existing_state_directory_is_tightened_or_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("state");
        fs::create_dir(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(path.join(STATE_FILE), b"{}").unwrap();
        fs::set_permissions(path.join(STATE_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        let state = StateDir::open(&path).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o700);
        assert_eq!(mode(&path.join(STATE_FILE)), 0o600);
        assert_eq!(
            state.tightened(),
            &[(path.clone(), 0o755), (path.join(STATE_FILE), 0o644)]
        );
        // Opened again: nothing left to tighten.
        assert!(StateDir::open(&path).unwrap().tightened().is_empty());
        // New files: 0600.
        state.load_or_create_key().unwrap();
        run_info(&state);
        for name in [KEY_FILE, RUN_FILE, LOCK_FILE] {
            assert_eq!(mode(&path.join(name)), 0o600, "{name}");
        }

        for loose in [0o775, 0o757, 0o722] {
            fs::set_permissions(&path, fs::Permissions::from_mode(loose)).unwrap();
            let e = StateDir::open(&path).unwrap_err();
            assert!(matches!(e, StateError::Insecure { .. }), "{loose:o}: {e}");
            assert!(e.to_string().contains("SEC-22"), "{e}");
            // Refused, not changed.
            assert_eq!(mode(&path), loose);
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();

        // A new directory (and its missing parents) is created 0700.
        let deep = tmp.path().join("a/b/state");
        StateDir::open(&deep).unwrap();
        assert_eq!(mode(&deep), 0o700);
    }
}
