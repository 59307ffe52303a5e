//! Loading the published vectors in `../shared/third-party-vectors/` (shared by the
//! third-party test files).

use std::path::PathBuf;

use serde_json::Value;

/// Where the published vectors are: `$TETHER_THIRD_PARTY_VECTORS`, or `shared/` beside the
/// repository.
pub(crate) fn third_party_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TETHER_THIRD_PARTY_VECTORS") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/third-party-vectors")
}

/// Reads one published vector file. A missing file fails the test: it never skips.
pub(crate) fn load(name: &str) -> Value {
    let path = third_party_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "third-party vector file {} is missing ({e}); clone the shared vectors beside the \
             repository or set TETHER_THIRD_PARTY_VECTORS. This test does not skip.",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}
