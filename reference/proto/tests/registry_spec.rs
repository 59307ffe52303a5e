//! The registries of `spec/06-registries.md` match the code.
//!
//! - "Close codes": every row's value, name, range, description and cited requirements
//!   equal `tether_proto::link::CloseCode::ALL` and the doc comments of `link/codes.rs`.
//! - "Limit constants": every constant of `tether_proto::limits` has a row with the same
//!   value and unit, the rows follow the order of `limits.rs`, and each row cites at least
//!   the requirements that the constant's doc comment cites.
//!
//! So a change to a close code or a limit fails here until the spec says the same.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use tether_proto::limits;
use tether_proto::link::CloseCode;

const CLOSE_CODE_HEADER: &[&str] = &[
    "value",
    "name",
    "range",
    "carried in",
    "sent by",
    "description",
    "requirement",
];
const LIMITS_HEADER: &[&str] = &["constant", "value", "requirement", "meaning"];

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn registries() -> String {
    read("../../spec/06-registries.md")
}

/// The cells of a Markdown table row, trimmed; `None` if the line is not a row.
fn cells(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(|c| c.trim().to_owned()).collect())
}

/// The body rows of the one table in `doc` whose header row is `header`.
fn table(doc: &str, header: &[&str]) -> Vec<Vec<String>> {
    let lines: Vec<&str> = doc.lines().collect();
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| cells(l).is_some_and(|c| c == header))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        starts.len(),
        1,
        "spec/06 must have exactly one table with header {header:?}"
    );
    let start = starts[0];
    let separator = cells(lines[start + 1]).expect("separator row");
    assert!(
        separator
            .iter()
            .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':'))),
        "row after the header of {header:?} is not a separator"
    );
    let rows: Vec<Vec<String>> = lines[start + 2..].iter().map_while(|l| cells(l)).collect();
    for row in &rows {
        assert_eq!(
            row.len(),
            header.len(),
            "row {row:?} of table {header:?} has the wrong number of cells"
        );
    }
    assert!(!rows.is_empty(), "table {header:?} is empty");
    rows
}

fn unquote(cell: &str) -> &str {
    cell.trim_matches('`')
}

/// Requirement-id prefixes of the spec (`ci/spec-index.py` keeps the same list).
const PREFIXES: &[&str] = &["TOKEN", "LINK", "CHAN", "CMD", "REG", "SEC"];

/// Requirement ids such as `LINK-4` in a piece of text.
fn ids_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| {
            word.split_once('-').is_some_and(|(prefix, number)| {
                PREFIXES.contains(&prefix)
                    && !number.is_empty()
                    && number.chars().all(|c| c.is_ascii_digit())
            })
        })
        .map(str::to_owned)
        .collect()
}

/// For each item defined in `source`, the ids cited by the `///` comments just above it.
/// `item_name` picks the item's name out of a non-comment line, or says it is not an item.
fn doc_ids(
    source: &str,
    item_name: impl Fn(&str) -> Option<String>,
) -> Vec<(String, BTreeSet<String>)> {
    let mut out = Vec::new();
    let mut doc = String::new();
    for line in source.lines() {
        let line = line.trim();
        if let Some(comment) = line.strip_prefix("///") {
            doc.push_str(comment);
            doc.push('\n');
            continue;
        }
        if let Some(name) = item_name(line) {
            out.push((name, ids_in(&doc)));
        }
        doc.clear();
    }
    out
}

fn range_of(value: u16) -> &'static str {
    match value {
        0..=15 => "link",
        16..=31 => "session",
        32..=63 => "end-to-end",
        _ => "reserved",
    }
}

/// A registry row of the close-code table.
struct CodeRow {
    value: u16,
    name: String,
    range: String,
    carried_in: BTreeSet<String>,
    description: String,
    ids: BTreeSet<String>,
}

fn close_code_rows() -> Vec<CodeRow> {
    table(&registries(), CLOSE_CODE_HEADER)
        .into_iter()
        .map(|row| CodeRow {
            value: row[0]
                .parse()
                .unwrap_or_else(|e| panic!("close code value {:?}: {e}", row[0])),
            name: unquote(&row[1]).to_owned(),
            range: row[2].clone(),
            carried_in: row[3].split(',').map(|s| s.trim().to_owned()).collect(),
            description: row[5].clone(),
            ids: ids_in(&row[6]),
        })
        .collect()
}

#[test]
fn close_code_table_lists_exactly_the_registered_codes() {
    let spec: BTreeMap<u16, String> = close_code_rows()
        .into_iter()
        .map(|r| (r.value, r.name))
        .collect();
    let code: BTreeMap<u16, String> = CloseCode::ALL
        .iter()
        .map(|c| {
            (
                c.0,
                c.name().expect("registered code has a name").to_owned(),
            )
        })
        .collect();
    assert_eq!(spec, code, "spec/06 close codes differ from CloseCode::ALL");
    assert_eq!(
        close_code_rows().len(),
        CloseCode::ALL.len(),
        "a close code is listed twice in spec/06"
    );
}

#[test]
fn close_code_rows_match_descriptions_and_ranges() {
    for row in close_code_rows() {
        let code = CloseCode(row.value);
        assert_eq!(
            Some(row.description.as_str()),
            code.description(),
            "description of {} ({})",
            row.name,
            row.value
        );
        assert_eq!(row.range, range_of(row.value), "range of {}", row.name);
        assert_ne!(row.range, "reserved", "{} uses a reserved value", row.name);
        assert!(
            !row.carried_in.is_empty()
                && row.carried_in.iter().all(|f| f == "GOAWAY" || f == "CLOSE"),
            "carried-in column of {} must list GOAWAY and/or CLOSE",
            row.name
        );
        // Session and end-to-end codes end one session: only CLOSE carries them.
        if row.value >= 16 {
            assert!(
                !row.carried_in.contains("GOAWAY"),
                "{} is a session code but is listed for GOAWAY",
                row.name
            );
        }
    }
}

#[test]
fn close_code_rows_cite_the_requirements_the_code_cites() {
    let source = read("src/link/codes.rs");
    // Items of the `codes!` invocation look like `NAME = 5, "text";`.
    let cited: BTreeMap<String, BTreeSet<String>> = doc_ids(&source, |line| {
        let (name, rest) = line.split_once(" = ")?;
        let is_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        (is_name && rest.ends_with(';')).then(|| name.to_owned())
    })
    .into_iter()
    .collect();
    assert_eq!(
        cited.len(),
        CloseCode::ALL.len(),
        "could not find every code in src/link/codes.rs"
    );
    for row in close_code_rows() {
        let in_code = cited
            .get(&row.name)
            .unwrap_or_else(|| panic!("{} not in codes.rs", row.name));
        assert_eq!(
            &row.ids, in_code,
            "requirements cited for {} in spec/06 vs codes.rs",
            row.name
        );
    }
}

#[test]
fn unregistered_close_codes_have_no_name() {
    // REG-1: a receiver must still accept these; they have no registry entry.
    for value in [13u16, 15, 21, 31, 43, 63, 64, 0xffff] {
        assert_eq!(CloseCode(value).name(), None, "code {value}");
        assert!(close_code_rows().iter().all(|r| r.value != value));
    }
}

fn secs(d: Duration) -> u64 {
    assert_eq!(d.subsec_nanos(), 0, "limit {d:?} is not whole seconds");
    d.as_secs()
}

fn n(v: usize) -> u64 {
    u64::try_from(v).unwrap()
}

/// Every constant of `tether_proto::limits` as (name, value, unit in the spec).
fn code_limits() -> Vec<(&'static str, u64, &'static str)> {
    vec![
        ("PROTOCOL_VERSION", u64::from(limits::PROTOCOL_VERSION), ""),
        (
            "TOKEN_DEFAULT_LIFETIME",
            secs(limits::TOKEN_DEFAULT_LIFETIME),
            "s",
        ),
        ("TOKEN_MAX_LIFETIME", secs(limits::TOKEN_MAX_LIFETIME), "s"),
        (
            "TOKEN_MAX_TEXT_LEN",
            n(limits::TOKEN_MAX_TEXT_LEN),
            "characters",
        ),
        ("MAX_FRAME_LEN", n(limits::MAX_FRAME_LEN), "bytes"),
        (
            "PRE_AUTH_MAX_FRAME_LEN",
            n(limits::PRE_AUTH_MAX_FRAME_LEN),
            "bytes",
        ),
        ("MAX_HANDSHAKE_LEN", n(limits::MAX_HANDSHAKE_LEN), "bytes"),
        ("AUTH_DEADLINE", secs(limits::AUTH_DEADLINE), "s"),
        ("LINK_IDLE_TIMEOUT", secs(limits::LINK_IDLE_TIMEOUT), "s"),
        ("KEEPALIVE_INTERVAL", secs(limits::KEEPALIVE_INTERVAL), "s"),
        (
            "MAX_SESSIONS_PER_HOST",
            n(limits::MAX_SESSIONS_PER_HOST),
            "sessions",
        ),
        (
            "MAX_SESSIONS_PER_CONTROLLER_LINK",
            n(limits::MAX_SESSIONS_PER_CONTROLLER_LINK),
            "sessions",
        ),
        (
            "SESSION_QUEUE_BYTES",
            n(limits::SESSION_QUEUE_BYTES),
            "bytes",
        ),
        ("LINK_QUEUE_BYTES", n(limits::LINK_QUEUE_BYTES), "bytes"),
        (
            "MAX_NOISE_MESSAGE_LEN",
            n(limits::MAX_NOISE_MESSAGE_LEN),
            "bytes",
        ),
        (
            "MAX_TRANSPORT_PLAINTEXT_LEN",
            n(limits::MAX_TRANSPORT_PLAINTEXT_LEN),
            "bytes",
        ),
        ("REKEY_INTERVAL", limits::REKEY_INTERVAL, "messages"),
        ("INITIAL_WINDOW", limits::INITIAL_WINDOW, "bytes"),
        ("MAX_SESSION_CREDIT", limits::MAX_SESSION_CREDIT, "bytes"),
        ("MAX_LINK_CREDIT", limits::MAX_LINK_CREDIT, "bytes"),
        (
            "MIN_WINDOW_INCREMENT",
            limits::MIN_WINDOW_INCREMENT,
            "bytes",
        ),
        ("MIN_CREDIT", limits::MIN_CREDIT, "bytes"),
        ("MAX_MESSAGE_LEN", n(limits::MAX_MESSAGE_LEN), "bytes"),
        ("MAX_CLOCK_SKEW", secs(limits::MAX_CLOCK_SKEW), "s"),
        ("HANDSHAKE_TIMEOUT", secs(limits::HANDSHAKE_TIMEOUT), "s"),
        ("CONFIRM_TIMEOUT", secs(limits::CONFIRM_TIMEOUT), "s"),
        (
            "HANDSHAKE_RATE_PER_SEC",
            u64::from(limits::HANDSHAKE_RATE_PER_SEC),
            "handshakes/s",
        ),
        (
            "HANDSHAKE_BURST",
            u64::from(limits::HANDSHAKE_BURST),
            "handshakes",
        ),
        (
            "HANDSHAKE_READ_RATE_PER_SEC",
            u64::from(limits::HANDSHAKE_READ_RATE_PER_SEC),
            "handshakes/s",
        ),
        (
            "HANDSHAKE_READ_BURST",
            u64::from(limits::HANDSHAKE_READ_BURST),
            "handshakes",
        ),
        (
            "DEVICE_HANDSHAKE_RATE_PER_SEC",
            u64::from(limits::DEVICE_HANDSHAKE_RATE_PER_SEC),
            "handshakes/s",
        ),
        (
            "DEVICE_HANDSHAKE_BURST",
            u64::from(limits::DEVICE_HANDSHAKE_BURST),
            "handshakes",
        ),
        ("MAX_JSON_DEPTH", n(limits::MAX_JSON_DEPTH), "levels"),
        ("APPROVAL_TIMEOUT", secs(limits::APPROVAL_TIMEOUT), "s"),
        ("MAX_OUTPUT_CHUNK", n(limits::MAX_OUTPUT_CHUNK), "bytes"),
        ("DEFAULT_OUTPUT_CAP", limits::DEFAULT_OUTPUT_CAP, "bytes"),
        ("MAX_BUFFERED_OUTPUT", limits::MAX_BUFFERED_OUTPUT, "bytes"),
        (
            "DEFAULT_EXEC_TIMEOUT",
            secs(limits::DEFAULT_EXEC_TIMEOUT),
            "s",
        ),
        (
            "AGENTS_MD_MAX_BYTES",
            n(limits::AGENTS_MD_MAX_BYTES),
            "bytes",
        ),
    ]
}

/// The constants declared in `src/limits.rs`, in order, with the ids their docs cite.
fn source_limits() -> Vec<(String, BTreeSet<String>)> {
    doc_ids(&read("src/limits.rs"), |line| {
        let rest = line.strip_prefix("pub const ")?;
        Some(rest.split_once(':')?.0.trim().to_owned())
    })
}

/// (name, value, unit, ids) for every row of the limits table.
fn spec_limits() -> Vec<(String, u64, String, BTreeSet<String>)> {
    table(&registries(), LIMITS_HEADER)
        .into_iter()
        .map(|row| {
            // "262144 bytes (256 KiB)": number, unit, then an optional gloss.
            let value = row[1].split(" (").next().unwrap_or_default().trim();
            let (number, unit) = value.split_once(' ').unwrap_or((value, ""));
            let number = number
                .parse()
                .unwrap_or_else(|e| panic!("value {:?} of {}: {e}", row[1], row[0]));
            (
                unquote(&row[0]).to_owned(),
                number,
                unit.trim().to_owned(),
                ids_in(&row[2]),
            )
        })
        .collect()
}

#[test]
fn limits_table_lists_every_constant_in_source_order() {
    let source: Vec<String> = source_limits().into_iter().map(|(n, _)| n).collect();
    let listed_here: BTreeSet<&str> = code_limits().iter().map(|(n, _, _)| *n).collect();
    let in_source: BTreeSet<&str> = source.iter().map(String::as_str).collect();
    assert_eq!(
        listed_here, in_source,
        "code_limits() in this test must list every constant of src/limits.rs"
    );
    let spec: Vec<String> = spec_limits().into_iter().map(|(n, ..)| n).collect();
    assert_eq!(
        spec, source,
        "spec/06 limits table must list the constants of src/limits.rs, in that order"
    );
}

#[test]
fn limits_table_values_and_units_match_the_constants() {
    let spec: BTreeMap<String, (u64, String)> = spec_limits()
        .into_iter()
        .map(|(name, value, unit, _)| (name, (value, unit)))
        .collect();
    for (name, value, unit) in code_limits() {
        let (spec_value, spec_unit) = spec
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from spec/06"));
        assert_eq!(*spec_value, value, "value of {name} in spec/06");
        assert_eq!(spec_unit, unit, "unit of {name} in spec/06");
    }
}

#[test]
fn limits_table_cites_the_requirements_the_code_cites() {
    let spec: BTreeMap<String, BTreeSet<String>> = spec_limits()
        .into_iter()
        .map(|(name, _, _, ids)| (name, ids))
        .collect();
    for (name, in_code) in source_limits() {
        let in_spec = &spec[&name];
        assert!(
            !in_spec.is_empty(),
            "{name} cites no requirement in spec/06"
        );
        assert!(
            in_code.is_subset(in_spec),
            "{name}: limits.rs cites {in_code:?}, spec/06 only {in_spec:?}"
        );
    }
}

// Relations between limits that hold by construction; checked when this test compiles.
const _: () = {
    // LINK-5: a DATA frame is type (1) + session id (8) + one full Noise message.
    assert!(limits::MAX_FRAME_LEN == 1 + 8 + limits::MAX_NOISE_MESSAGE_LEN);
    // CHAN-16: the ChaChaPoly tag is 16 bytes.
    assert!(limits::MAX_TRANSPORT_PLAINTEXT_LEN + 16 == limits::MAX_NOISE_MESSAGE_LEN);
    // LINK-6 / LINK-9: the largest HELLO (type, version, role, workspace of 64, credential
    // of 255, registration message 1 of 32) fits the pre-auth cap.
    assert!(1 + 1 + 1 + (1 + 64) + (1 + 255) + 32 <= limits::PRE_AUTH_MAX_FRAME_LEN);
    assert!(limits::PRE_AUTH_MAX_FRAME_LEN <= limits::MAX_FRAME_LEN);
    // LINK-22 / LINK-23: one session's queue fits in the link's.
    assert!(limits::SESSION_QUEUE_BYTES < limits::LINK_QUEUE_BYTES);
};

#[test]
fn duration_limits_are_ordered() {
    // TOKEN-9: the default lifetime is within the maximum.
    assert!(limits::TOKEN_DEFAULT_LIFETIME <= limits::TOKEN_MAX_LIFETIME);
    // LINK-25 / LINK-24: two keepalives fit in the idle timeout.
    assert!(limits::KEEPALIVE_INTERVAL * 2 < limits::LINK_IDLE_TIMEOUT);
}

#[test]
fn table_parser_rejects_what_it_should() {
    let doc = "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\ntext\n";
    assert_eq!(
        table(doc, &["a", "b"]),
        vec![vec!["1", "2"], vec!["3", "4"]]
    );
    assert_eq!(cells("not a row"), None);
    assert_eq!(
        ids_in("LINK-5, CHAN-16 and SEC-2 but not UTF-8, X-1 or LINK-"),
        ["CHAN-16", "LINK-5", "SEC-2"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    );
}
