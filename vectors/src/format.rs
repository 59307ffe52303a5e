//! What every vector file is made of: [`VectorFile`], the deterministic bytes its keys
//! and random fields come from, its JSON rendering, and the checks every file's cases
//! pass. Below the per-area modules (`token`, `frames`, `noise`, `command`, `session`,
//! `records`), which build on it; it refers to none of them.

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
