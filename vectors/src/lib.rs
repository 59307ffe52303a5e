//! The Tether test vectors: a deterministic generator and a verifier.
//!
//! The JSON files in `vectors/` are generated once by `tether vectors generate` and then
//! frozen. `tether vectors verify` (and `cargo test -p tether-vectors`) checks two things
//! for every file:
//!
//! 1. the committed bytes equal what the generator produces today (nothing drifted), and
//! 2. every case in the file, read back from the JSON, gives its stated result when run
//!    through `tether-proto` (valid cases decode to the stated fields, invalid cases fail
//!    with the stated error and requirement id).
//!
//! Every key, ephemeral and random field comes from [`det_bytes`], so generation needs no
//! randomness and runs the same everywhere.

use std::fmt;
use std::path::{Path, PathBuf};

use blake2::{Blake2s256, Digest};

/// One vector file: its name and the functions that make and check it.
#[derive(Clone, Copy)]
pub struct VectorFile {
    /// File name inside `vectors/`, for example `pairing-token.json`.
    pub name: &'static str,
    /// Produces the file's exact contents.
    pub generate: fn() -> String,
    /// Runs every case of the given file contents through `tether-proto`; returns the
    /// number of cases checked, or a description of the first case that failed.
    pub check: fn(&str) -> Result<usize, String>,
}

pub mod command;
pub mod frames;
pub mod noise;
pub mod session;
pub mod token;

/// Every vector file, in the order they are generated and verified.
pub fn files() -> Vec<VectorFile> {
    [
        token::FILES,
        frames::FILES,
        noise::FILES,
        command::FILES,
        session::FILES,
    ]
    .concat()
}

/// Deterministic bytes for a vector: BLAKE2s-256 in counter mode over a label, so that
/// keys and random fields are fixed, distinct per label, and reproducible anywhere.
///
/// `out[i*32..]` is `BLAKE2s-256("tether-vectors" || be32(i) || label)`.
pub fn det_bytes(label: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut counter: u32 = 0;
    while out.len() < len {
        let mut h = Blake2s256::new();
        h.update(b"tether-vectors");
        h.update(counter.to_be_bytes());
        h.update(label.as_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// [`det_bytes`] as a fixed-size array.
pub fn det_array<const N: usize>(label: &str) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&det_bytes(label, N));
    out
}

/// Serializes a vector file: pretty JSON, two-space indent, sorted object keys where the
/// value is a map, and a trailing newline.
pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

/// A member of a JSON object, or an error naming it.
///
/// # Errors
/// When `v` has no member `name`.
pub fn field<'a>(v: &'a serde_json::Value, name: &str) -> Result<&'a serde_json::Value, String> {
    v.get(name).ok_or_else(|| format!("missing {name}"))
}

/// Checks a file in the Wycheproof layout shared by the case-list vector files: `tests`
/// is an array whose length `numberOfTests` states, `tcId`s run 1, 2, 3, …, every flag of
/// a case is explained in `notes`, and `check_case` accepts every case. Returns the
/// number of cases.
///
/// # Errors
/// The first rule broken, naming the case.
pub fn check_cases(
    contents: &str,
    check_case: fn(&serde_json::Value) -> Result<(), String>,
) -> Result<usize, String> {
    use serde_json::Value;
    let file: Value = serde_json::from_str(contents).map_err(|e| e.to_string())?;
    let tests = field(&file, "tests")?
        .as_array()
        .ok_or("tests is not an array")?;
    if field(&file, "numberOfTests")?.as_u64() != Some(tests.len() as u64) {
        return Err("numberOfTests does not match".into());
    }
    let notes = field(&file, "notes")?;
    for (i, case) in tests.iter().enumerate() {
        let id = case.get("tcId").and_then(Value::as_u64);
        if id != Some(i as u64 + 1) {
            return Err(format!("case {} has tcId {id:?}", i + 1));
        }
        for flag in field(case, "flags")?
            .as_array()
            .ok_or("flags is not an array")?
        {
            let flag = flag.as_str().ok_or("a flag is not a string")?;
            if notes.get(flag).is_none() {
                return Err(format!("tcId {}: flag {flag} has no note", i + 1));
            }
        }
        check_case(case).map_err(|e| format!("tcId {}: {e}", i + 1))?;
    }
    Ok(tests.len())
}

/// Why a vector file did not verify.
#[derive(Debug)]
pub enum VerifyError {
    /// The file could not be read.
    Missing {
        /// The path that was read.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The committed bytes differ from what the generator produces.
    Drifted {
        /// The file.
        name: &'static str,
        /// 1-based line of the first difference.
        line: usize,
    },
    /// A case did not give its stated result.
    CaseFailed {
        /// The file.
        name: &'static str,
        /// What went wrong, naming the case.
        detail: String,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { path, error } => write!(f, "{}: {error}", path.display()),
            Self::Drifted { name, line } => write!(
                f,
                "{name}: committed file differs from the generator's output (first at line {line}); \
                 the vectors are frozen: a change to them is a protocol change"
            ),
            Self::CaseFailed { name, detail } => write!(f, "{name}: {detail}"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Writes every vector file into `dir`; returns the paths written.
///
/// # Errors
/// Any I/O error writing a file.
pub fn generate_into(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    files()
        .iter()
        .map(|file| {
            let path = dir.join(file.name);
            std::fs::write(&path, (file.generate)())?;
            Ok(path)
        })
        .collect()
}

/// Verifies one vector file found in `dir`; returns the number of cases it holds.
///
/// # Errors
/// See [`VerifyError`].
pub fn verify_file(dir: &Path, file: &VectorFile) -> Result<usize, VerifyError> {
    let path = dir.join(file.name);
    let committed = std::fs::read_to_string(&path).map_err(|error| VerifyError::Missing {
        path: path.clone(),
        error,
    })?;
    let fresh = (file.generate)();
    if committed != fresh {
        let line = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(fresh.lines().count()))
            + 1;
        return Err(VerifyError::Drifted {
            name: file.name,
            line,
        });
    }
    (file.check)(&committed).map_err(|detail| VerifyError::CaseFailed {
        name: file.name,
        detail,
    })
}
