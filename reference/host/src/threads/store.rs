//! Durable threads: one file per thread, `STATE/threads/<threadId>.json` (`CMD-17`).
//!
//! Each file is replaced atomically (temporary file, fsync, rename, fsync of the
//! directory: [`tether_store::write_atomic`]) on every change the host must not lose: the
//! thread's creation, the start and end of each turn, the start and completion of each
//! item. A file this host cannot read is left untouched and reported, never overwritten.
//!
//! ```json
//! {"version": 1, "id": "thr_8346c65416f03e42", "cwd": "/home/dev/acme", "sandbox":
//!  "workspace-write", "approvalPolicy": "untrusted", "createdAt": 1798761600,
//!  "updatedAt": 1798761642, "preview": "$ cargo test", "nextItem": 3, "turns": [...]}
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tether_proto::cmd::types::{
    ApprovalPolicy, CommandExecutionStatus, SandboxMode, Thread, ThreadItem, ThreadStatus, Turn,
    TurnStatus,
};
use tether_store::{create_private_dir, write_atomic};

use crate::state::StateError;

/// The directory, inside the state directory, that holds the thread files.
pub const THREADS_DIR: &str = "threads";
/// The version of the thread file format this host writes and reads.
pub const THREAD_FILE_VERSION: u64 = 1;
/// Longest `preview` of a thread, in bytes (cut on a character boundary).
pub const PREVIEW_MAX_BYTES: usize = 80;

/// One thread as stored on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadRecord {
    /// [`THREAD_FILE_VERSION`].
    pub version: u64,
    /// The thread id (also the file name).
    pub id: String,
    /// Working directory, host-native absolute.
    pub cwd: String,
    /// The thread's sandbox mode.
    pub sandbox: SandboxMode,
    /// The thread's approval policy.
    pub approval_policy: ApprovalPolicy,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
    /// What the thread is for, if known (from an imported bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// The start of the first user message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// The number of the next item id (`item_<n>`): ids are never reused (`CMD-25`).
    pub next_item: u64,
    /// The turns, oldest first.
    pub turns: Vec<Turn>,
}

impl ThreadRecord {
    /// `active` while the last turn is in progress.
    pub fn status(&self) -> ThreadStatus {
        match self.turns.last() {
            Some(t) if t.status == TurnStatus::InProgress => ThreadStatus::Active,
            _ => ThreadStatus::Idle,
        }
    }

    /// The wire form (`Thread`).
    pub fn thread(&self) -> Thread {
        Thread {
            id: self.id.clone(),
            cwd: self.cwd.clone(),
            sandbox: self.sandbox,
            approval_policy: self.approval_policy,
            created_at: self.created_at,
            updated_at: self.updated_at,
            status: self.status(),
            preview: self.preview.clone(),
        }
    }

    /// After a host restart nothing runs: a turn still `inProgress` ends as `failed`, and
    /// so does a `commandExecution` item still `inProgress` in it (`CMD-17`; see the
    /// restart note in spec 5.3). Returns whether anything changed.
    pub fn recover(&mut self) -> bool {
        let mut changed = false;
        for turn in &mut self.turns {
            if turn.status == TurnStatus::InProgress {
                turn.status = TurnStatus::Failed;
                changed = true;
            }
            for item in &mut turn.items {
                changed |= fail_in_progress(item);
            }
        }
        changed
    }

    /// Every item of every turn, in order.
    pub fn items(&self) -> impl Iterator<Item = &ThreadItem> {
        self.turns.iter().flat_map(|t| t.items.iter())
    }
}

/// Marks an `inProgress` `commandExecution` item `failed`; returns whether it did.
pub fn fail_in_progress(item: &mut ThreadItem) -> bool {
    match item {
        ThreadItem::CommandExecution(c) if c.status == CommandExecutionStatus::InProgress => {
            c.status = CommandExecutionStatus::Failed;
            true
        }
        _ => false,
    }
}

/// The start of `text` for `preview`: at most [`PREVIEW_MAX_BYTES`], on a character
/// boundary, first line only.
pub fn preview(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut end = line.len().min(PREVIEW_MAX_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line.get(..end).unwrap_or_default().to_owned()
}

/// Whether `id` is a thread id this host could have made: `thr_` and lowercase hex. Only
/// such names are read from the directory.
pub fn is_thread_id(id: &str) -> bool {
    id.strip_prefix("thr_").is_some_and(|hex| {
        !hex.is_empty() && hex.len() <= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The thread files of a state directory.
#[derive(Clone, Debug)]
pub struct ThreadStore {
    dir: PathBuf,
}

fn io_error(path: &Path, source: io::Error) -> StateError {
    StateError::Io {
        path: path.to_owned(),
        source,
    }
}

impl ThreadStore {
    /// `STATE/threads`, created (mode 0700) if missing.
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        let dir = state_dir.join(THREADS_DIR);
        if !dir.is_dir() {
            create_private_dir(&dir)?;
        }
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of thread `id`.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes `record` durably (atomic replace, fsync).
    ///
    /// # Errors
    /// [`StateError::Io`].
    pub fn save(&self, record: &ThreadRecord) -> Result<(), StateError> {
        // Cannot fail: every map key is a string.
        let mut bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
        bytes.push(b'\n');
        Ok(write_atomic(&self.path(&record.id), &bytes, 0o600)?)
    }

    /// Reads one file.
    ///
    /// # Errors
    /// [`StateError::Io`], [`StateError::Corrupt`] (also for a version this host does not
    /// read, or a file whose id is not its name).
    pub fn load(&self, path: &Path) -> Result<ThreadRecord, StateError> {
        let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
        let corrupt = |detail: String| StateError::Corrupt {
            path: path.to_owned(),
            detail,
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(THREAD_FILE_VERSION) => {}
            Some(v) => {
                return Err(corrupt(format!(
                    "thread file version {v} is not supported (this host reads version {THREAD_FILE_VERSION})"
                )));
            }
            None => return Err(corrupt("no version".to_owned())),
        }
        let record: ThreadRecord =
            serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if record.id != stem {
            return Err(corrupt(format!(
                "holds thread {:?}, not {stem:?}",
                record.id
            )));
        }
        Ok(record)
    }

    /// Reads every thread file. Files that cannot be read are reported in the second
    /// list and left as they are.
    pub fn load_all(&self) -> (Vec<ThreadRecord>, Vec<StateError>) {
        let mut records = Vec::new();
        let mut problems = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                problems.push(io_error(&self.dir, e));
                return (records, problems);
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && p.file_stem()
                        .and_then(|s| s.to_str())
                        .is_some_and(is_thread_id)
            })
            .collect();
        paths.sort();
        for path in paths {
            match self.load(&path) {
                Ok(r) => records.push(r),
                Err(e) => problems.push(e),
            }
        }
        (records, problems)
    }
}

#[cfg(test)]
mod tests {
    use tether_proto::cmd::types::{CommandExecutionItem, UserMessageItem};

    use super::*;

    fn record(id: &str) -> ThreadRecord {
        ThreadRecord {
            version: THREAD_FILE_VERSION,
            id: id.to_owned(),
            cwd: "/tmp".to_owned(),
            sandbox: SandboxMode::ReadOnly,
            approval_policy: ApprovalPolicy::Never,
            created_at: 10,
            updated_at: 11,
            goal: None,
            preview: Some("$ true".to_owned()),
            next_item: 3,
            turns: vec![Turn {
                id: "turn_1".to_owned(),
                status: TurnStatus::InProgress,
                items: vec![
                    ThreadItem::UserMessage(UserMessageItem {
                        id: "item_1".to_owned(),
                        text: "$ true".to_owned(),
                    }),
                    ThreadItem::CommandExecution(CommandExecutionItem {
                        id: "item_2".to_owned(),
                        command: "true".to_owned(),
                        cwd: "/tmp".to_owned(),
                        status: CommandExecutionStatus::InProgress,
                        exit_code: None,
                        aggregated_output: None,
                        duration_ms: None,
                    }),
                ],
            }],
        }
    }

    #[test]
    fn cmd_17_round_trip_and_restart_recovery() {
        let t = tempfile::tempdir().unwrap();
        let store = ThreadStore::open(t.path()).unwrap();
        let mut r = record("thr_00ff");
        assert_eq!(r.status(), ThreadStatus::Active);
        store.save(&r).unwrap();
        let (loaded, problems) = store.load_all();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(loaded, vec![r.clone()]);
        assert!(r.recover());
        assert_eq!(r.status(), ThreadStatus::Idle);
        assert_eq!(r.turns[0].status, TurnStatus::Failed);
        let ThreadItem::CommandExecution(c) = &r.turns[0].items[1] else {
            panic!()
        };
        assert_eq!(c.status, CommandExecutionStatus::Failed);
        assert!(!r.recover(), "nothing left to recover");
    }

    #[test]
    fn unreadable_files_are_reported_and_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let store = ThreadStore::open(t.path()).unwrap();
        store.save(&record("thr_01")).unwrap();
        fs::write(store.path("thr_02"), b"{not json").unwrap();
        let mut future = serde_json::to_value(record("thr_03")).unwrap();
        future["version"] = 2.into();
        fs::write(store.path("thr_03"), future.to_string()).unwrap();
        // Named for another thread.
        fs::write(
            store.path("thr_04"),
            serde_json::to_vec(&record("thr_05")).unwrap(),
        )
        .unwrap();
        fs::write(store.dir().join("notes.json"), b"ignored").unwrap();
        let (loaded, problems) = store.load_all();
        assert_eq!(loaded.len(), 1);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(
            fs::read(store.path("thr_02")).unwrap(),
            b"{not json",
            "left untouched"
        );
    }

    #[test]
    fn previews_are_cut_on_a_character_boundary() {
        assert_eq!(preview("$ cargo test\nmore"), "$ cargo test");
        let long = "é".repeat(100);
        let p = preview(&long);
        assert!(p.len() <= PREVIEW_MAX_BYTES);
        assert_eq!(p.len(), 80);
        assert!(is_thread_id("thr_8346c65416f03e42"));
        assert!(!is_thread_id("thr_"));
        assert!(!is_thread_id("../x"));
    }
}
