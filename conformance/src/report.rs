//! Reports: the terminal summary, `--json` and `--junit`.

use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::case::Case;
use crate::runner::{RunReport, Status};

/// Version of the JSON documents written by [`run_json`] and [`list_json`].
pub const JSON_SCHEMA_VERSION: u32 = 1;

/// `2026-11-23T23:59:01Z` for `t` (UTC, whole seconds).
pub fn rfc3339(t: SystemTime) -> String {
    tether_proto::time::UnixTime::from(t).rfc3339()
}

/// The terminal summary: one row per case, then the totals and the verdict.
pub fn summary(report: &RunReport) -> String {
    let width = report
        .cases
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:<6}  {:<8}  {:>7}  detail",
        "case", "level", "result", "time"
    );
    let _ = writeln!(out, "{}", "-".repeat(width + 40));
    for c in &report.cases {
        let result = match (c.status, c.counts) {
            (Status::Fail, false) => "fail*",
            (s, _) => s.as_str(),
        };
        let detail = c.reason.as_deref().unwrap_or("");
        let detail: String = detail.chars().take(110).collect();
        let _ = writeln!(
            out,
            "{:<width$}  {:<6}  {:<8}  {:>6.2}s  {}",
            c.id,
            c.level.as_str(),
            result.to_uppercase(),
            c.duration.as_secs_f64(),
            detail
        );
    }
    let _ = writeln!(out, "{}", "-".repeat(width + 40));
    let _ = writeln!(
        out,
        "{} cases: {} passed, {} failed, {} skipped, {} disabled  ({:.1} s)",
        report.cases.len(),
        report.count(Status::Pass),
        report.count(Status::Fail),
        report.count(Status::Skip),
        report.count(Status::Disabled),
        report.duration.as_secs_f64()
    );
    if report
        .cases
        .iter()
        .any(|c| c.status == Status::Fail && !c.counts)
    {
        let _ = writeln!(
            out,
            "FAIL* = failure not counted in the verdict (SHOULD or MAY; --strict counts SHOULD)"
        );
    }
    let _ = writeln!(
        out,
        "verdict: {} against {}",
        report.verdict().as_str().to_uppercase(),
        report.target
    );
    out
}

/// The `--json` document of a run (schema in `conformance/README.md`).
pub fn run_json(report: &RunReport) -> Value {
    let cases: Vec<Value> = report
        .cases
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "requirement": c.requirement,
                "level": c.level.as_str(),
                "description": c.description,
                "status": c.status.as_str(),
                "counted": c.counts,
                "reason": c.reason,
                "durationMs": u64::try_from(c.duration.as_millis()).unwrap_or(u64::MAX),
                "log": c.log_file.as_ref().map(|p| p.display().to_string()),
            })
        })
        .collect();
    json!({
        "schema": "tether-conformance-run",
        "schemaVersion": JSON_SCHEMA_VERSION,
        "tool": {"name": "tether-conformance", "version": env!("CARGO_PKG_VERSION")},
        "specVersion": tether_proto::limits::PROTOCOL_VERSION,
        "target": {"kind": report.target_kind, "description": report.target},
        "startedAt": rfc3339(report.started),
        "durationMs": u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
        "strict": report.strict,
        "verdict": report.verdict().as_str(),
        "exitCode": report.verdict().exit_code(),
        "counts": {
            "total": report.cases.len(),
            "pass": report.count(Status::Pass),
            "fail": report.count(Status::Fail),
            "skip": report.count(Status::Skip),
            "disabled": report.count(Status::Disabled),
        },
        "logDir": report.log_dir.display().to_string(),
        "cases": cases,
    })
}

/// The `--list --json` document: the case catalogue (schema in `conformance/README.md`).
pub fn list_json(cases: &[&Case]) -> Value {
    let cases: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "requirement": c.requirement,
                "level": c.level.as_str(),
                "target": c.target.as_str(),
                "description": c.description,
                "timeoutMs": u64::try_from(c.timeout.as_millis()).unwrap_or(u64::MAX),
                "slow": c.slow,
            })
        })
        .collect();
    json!({
        "schema": "tether-conformance-cases",
        "schemaVersion": JSON_SCHEMA_VERSION,
        "tool": {"name": "tether-conformance", "version": env!("CARGO_PKG_VERSION")},
        "specVersion": tether_proto::limits::PROTOCOL_VERSION,
        "cases": cases,
    })
}

/// The `--list` text: one line per case.
pub fn list_text(cases: &[&Case]) -> String {
    let width = cases.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in cases {
        let _ = writeln!(
            out,
            "{:<width$}  {:<6}  {:<5}  {}{}",
            c.id,
            c.level.as_str(),
            c.target.as_str(),
            c.description,
            if c.slow { " [slow]" } else { "" }
        );
    }
    let _ = writeln!(out, "{} cases", cases.len());
    out
}

/// Escapes text for XML 1.0 attribute values and character data. Characters XML 1.0 does
/// not allow (most C0 controls, U+FFFE, U+FFFF) become U+FFFD.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The `--junit` document: one `testsuite` for the target, one `testcase` per case
/// (`classname` = requirement id, `name` = case id), `failure` for counted failures,
/// `skipped` for skipped, disabled and uncounted (SHOULD/MAY) failures; the traffic log
/// of a failure in `system-out`.
pub fn junit(report: &RunReport) -> String {
    let failures = report
        .cases
        .iter()
        .filter(|c| c.status == Status::Fail && c.counts)
        .count();
    let skipped = report.cases.len() - failures - report.count(Status::Pass);
    let secs = report.duration.as_secs_f64();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"tether-conformance\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{secs:.3}\">",
        report.cases.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"tether-conformance.{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{secs:.3}\" timestamp=\"{}\" hostname=\"{}\">",
        report.target_kind,
        report.cases.len(),
        rfc3339(report.started).trim_end_matches('Z'),
        xml_escape(&report.target)
    );
    let _ = writeln!(
        out,
        "    <properties><property name=\"target\" value=\"{}\"/><property name=\"strict\" value=\"{}\"/></properties>",
        xml_escape(&report.target),
        report.strict
    );
    for c in &report.cases {
        let _ = write!(
            out,
            "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
            report.target_kind,
            xml_escape(c.requirement),
            xml_escape(c.id),
            c.duration.as_secs_f64()
        );
        let reason = xml_escape(c.reason.as_deref().unwrap_or(""));
        match (c.status, c.counts) {
            (Status::Pass, _) => out.push_str("/>\n"),
            (Status::Fail, true) => {
                let _ = writeln!(out, ">");
                let _ = writeln!(
                    out,
                    "      <failure message=\"{reason}\" type=\"{}\">{} {}: {reason}</failure>",
                    c.level.as_str(),
                    xml_escape(c.requirement),
                    c.level.as_str()
                );
                if let Some(log) = &c.log {
                    let _ = writeln!(out, "      <system-out>{}</system-out>", xml_escape(log));
                }
                out.push_str("    </testcase>\n");
            }
            (Status::Fail, false) => {
                let _ = writeln!(out, ">");
                let _ = writeln!(
                    out,
                    "      <skipped message=\"{} failure not counted without --strict: {reason}\"/>",
                    c.level.as_str()
                );
                if let Some(log) = &c.log {
                    let _ = writeln!(out, "      <system-out>{}</system-out>", xml_escape(log));
                }
                out.push_str("    </testcase>\n");
            }
            (Status::Skip, _) => {
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"{reason}\"/>\n    </testcase>"
                );
            }
            (Status::Disabled, _) => {
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"disabled by the expectations file: {reason}\"/>\n    </testcase>"
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_478_401)),
            "2026-11-24T00:00:01Z"
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(xml_escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(xml_escape("x\u{1}y\u{FFFF}"), "x\u{FFFD}y\u{FFFD}");
        assert_eq!(xml_escape("l1\nl2\t"), "l1&#10;l2&#9;");
    }
}
