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

pub mod command;
mod format;
pub mod frames;
pub mod noise;
pub mod records;
pub mod session;
pub mod token;

pub use format::{VectorFile, check_cases, det_array, det_bytes, field, to_json};

/// Every vector file, in the order they are generated and verified.
pub fn files() -> Vec<VectorFile> {
    [
        token::FILES,
        frames::FILES,
        noise::FILES,
        command::FILES,
        session::FILES,
        records::FILES,
    ]
    .concat()
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
