//! Durable threads: one file per thread, `STATE/threads/<threadId>.json` (`CMD-17`).
//!
//! Each file is replaced atomically (temporary file, fsync, rename, fsync of the
//! directory: [`tether_store::write_atomic`]) on every change the host must not lose: the
//! thread's creation, the start and end of each turn, the start and completion of each
//! item. A file this host cannot read is left untouched and reported, never overwritten.
//!
//! The turns are stored in the wire form of section 5.4. Version 1 files (tether/1 item
//! shapes) are read and upgraded in memory ([`upgrade_v1`]); they are written back as
//! version 2 on the thread's next change.
//!
//! ```json
//! {"version": 2, "id": "thr_8346c65416f03e42", "cwd": "/home/dev/acme", "sandbox":
//!  "workspace-write", "approvalPolicy": "untrusted", "createdAt": 1798761600,
//!  "updatedAt": 1798761642, "preview": "$ cargo test", "nextItem": 3, "turns": [...]}
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tether_proto::cmd::types::{
    ApprovalPolicy, CommandExecutionStatus, SandboxMode, Thread, ThreadItem, ThreadStatus,
    ThreadTether, Turn, TurnStatus,
};
use tether_store::{create_private_dir, write_atomic};

use crate::state::StateError;

/// The directory, inside the state directory, that holds the thread files.
pub const THREADS_DIR: &str = "threads";
/// The version of the thread file format this host writes (it also reads version 1).
pub const THREAD_FILE_VERSION: u64 = 2;
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
    /// The id of the Codex thread that plays this thread's agent, once the `codex`
    /// agent backend started one (spec 5.14): a restarted host resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codex_thread_id: Option<String>,
}

impl ThreadRecord {
    /// `active` while the last turn is in progress, with `waitingOnApproval` when
    /// `waiting` (section 5.3).
    pub fn status(&self, waiting: bool) -> ThreadStatus {
        match self.turns.last() {
            Some(t) if t.status == TurnStatus::InProgress => ThreadStatus::active(waiting),
            _ => ThreadStatus::Idle,
        }
    }

    /// Whether the last turn is in progress.
    pub fn is_active(&self) -> bool {
        self.status(false).is_active()
    }

    /// The wire form (`Thread`, section 5.3), without its turns; `waiting`: an approval
    /// of the thread is pending.
    pub fn thread(&self, waiting: bool) -> Thread {
        Thread {
            id: self.id.clone(),
            session_id: self.id.clone(),
            cwd: self.cwd.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            status: self.status(waiting),
            preview: self.preview.clone().unwrap_or_default(),
            turns: Vec::new(),
            ephemeral: false,
            cli_version: env!("CARGO_PKG_VERSION").to_owned(),
            model_provider: super::clock::TEST_MODEL.to_owned(),
            source: "appServer".into(),
            project_id: None,
            tether: Some(ThreadTether {
                sandbox: self.sandbox,
                approval_policy: self.approval_policy,
            }),
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

/// Upgrades a version 1 thread file (tether/1 shapes) to version 2 in memory:
/// `userMessage.text` becomes `content: [{type: "text", text, text_elements: []}]`,
/// `commandExecution` items get `commandActions: [{type: "unknown", command}]`, and the
/// approval policy `on-failure`, which tether/2 no longer has, becomes `on-request`, the
/// nearest policy (both run in the sandbox without asking first).
pub fn upgrade_v1(value: &mut Value) {
    if let Some(obj) = value.as_object_mut() {
        obj.insert("version".to_owned(), THREAD_FILE_VERSION.into());
        if obj.get("approvalPolicy").and_then(Value::as_str) == Some("on-failure") {
            obj.insert("approvalPolicy".to_owned(), "on-request".into());
        }
    }
    let Some(turns) = value.get_mut("turns").and_then(Value::as_array_mut) else {
        return;
    };
    for turn in turns {
        let Some(items) = turn.get_mut("items").and_then(Value::as_array_mut) else {
            continue;
        };
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            match item.get("type").and_then(Value::as_str) {
                Some("userMessage") if !item.contains_key("content") => {
                    let text = item.remove("text").unwrap_or_else(|| "".into());
                    item.insert(
                        "content".to_owned(),
                        serde_json::json!([{"type": "text", "text": text, "text_elements": []}]),
                    );
                }
                Some("commandExecution") if !item.contains_key("commandActions") => {
                    let command = item.get("command").cloned().unwrap_or_else(|| "".into());
                    item.insert(
                        "commandActions".to_owned(),
                        serde_json::json!([{"type": "unknown", "command": command}]),
                    );
                }
                _ => {}
            }
        }
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
        let mut value: Value =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        match value.get("version").and_then(Value::as_u64) {
            Some(THREAD_FILE_VERSION) => {}
            Some(1) => upgrade_v1(&mut value),
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
    use tether_proto::cmd::types::{
        CommandAction, CommandExecutionItem, TurnItemsView, UserInput, UserMessageItem,
    };

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
            codex_thread_id: None,
            turns: vec![Turn {
                id: "turn_1".to_owned(),
                status: TurnStatus::InProgress,
                items: vec![
                    ThreadItem::UserMessage(UserMessageItem {
                        id: "item_1".to_owned(),
                        content: vec![UserInput::text("$ true")],
                        started_at_ms: Some(10_000),
                        completed_at_ms: Some(10_000),
                    }),
                    ThreadItem::CommandExecution(CommandExecutionItem {
                        id: "item_2".to_owned(),
                        command: "true".to_owned(),
                        cwd: "/tmp".to_owned(),
                        status: CommandExecutionStatus::InProgress,
                        command_actions: CommandAction::unknown("true"),
                        exit_code: None,
                        aggregated_output: None,
                        duration_ms: None,
                        started_at_ms: Some(10_001),
                        completed_at_ms: None,
                    }),
                ],
                items_view: Some(TurnItemsView::Full),
                started_at: Some(10),
                completed_at: None,
                duration_ms: None,
            }],
        }
    }

    #[test]
    fn cmd_17_round_trip_and_restart_recovery() {
        let t = tempfile::tempdir().unwrap();
        let store = ThreadStore::open(t.path()).unwrap();
        let mut r = record("thr_00ff");
        assert_eq!(r.status(false), ThreadStatus::active(false));
        assert_eq!(r.status(true), ThreadStatus::active(true));
        store.save(&r).unwrap();
        let (loaded, problems) = store.load_all();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(loaded, vec![r.clone()]);
        assert!(r.recover());
        assert_eq!(r.status(false), ThreadStatus::Idle);
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
        future["version"] = 3.into();
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

    /// A version 1 file (tether/1 item shapes, `on-failure`) still loads, upgraded; it is
    /// written back as version 2.
    #[test]
    fn version_1_files_load_upgraded() {
        let t = tempfile::tempdir().unwrap();
        let store = ThreadStore::open(t.path()).unwrap();
        let v1 = serde_json::json!({
            "version": 1, "id": "thr_0a", "cwd": "/tmp", "sandbox": "workspace-write",
            "approvalPolicy": "on-failure", "createdAt": 10, "updatedAt": 11,
            "preview": "$ true", "nextItem": 3,
            "turns": [{"id": "turn_1", "status": "completed", "items": [
                {"type": "userMessage", "id": "item_1", "text": "$ true"},
                {"type": "commandExecution", "id": "item_2", "command": "true", "cwd": "/tmp",
                 "status": "completed", "exitCode": 0, "aggregatedOutput": "", "durationMs": 3}
            ]}]
        });
        fs::write(store.path("thr_0a"), v1.to_string()).unwrap();
        let (loaded, problems) = store.load_all();
        assert!(problems.is_empty(), "{problems:?}");
        let r = &loaded[0];
        assert_eq!(r.version, THREAD_FILE_VERSION);
        assert_eq!(r.approval_policy, ApprovalPolicy::OnRequest);
        let ThreadItem::UserMessage(u) = &r.turns[0].items[0] else {
            panic!()
        };
        assert_eq!(u.text(), "$ true");
        let ThreadItem::CommandExecution(c) = &r.turns[0].items[1] else {
            panic!()
        };
        assert_eq!(c.command_actions, CommandAction::unknown("true"));
        store.save(r).unwrap();
        let back: Value = serde_json::from_slice(&fs::read(store.path("thr_0a")).unwrap()).unwrap();
        assert_eq!(back["version"], 2);
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
