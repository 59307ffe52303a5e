//! The reports: JUnit XML parses back as well-formed XML with the right counts and escaped
//! text; the JSON document has the documented fields; the verdict follows the statuses.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tether_conformance::report::{junit, run_json};
use tether_conformance::{CaseReport, Level, RunReport, Status, Verdict};

/// A parsed XML element.
#[derive(Debug)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<&Element> {
        let mut out = Vec::new();
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            out.extend(c.all(name));
        }
        out
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find(';').expect("unterminated entity") + i;
        let ent = &rest[i + 1..j];
        match ent {
            "amp" => out.push('&'),
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "quot" => out.push('"'),
            "apos" => out.push('\''),
            e if e.starts_with('#') => {
                let n: u32 = e[1..].parse().expect("bad character reference");
                out.push(char::from_u32(n).unwrap());
            }
            e => panic!("unknown entity &{e};"),
        }
        rest = &rest[j + 1..];
    }
    out.push_str(rest);
    assert!(!out.is_empty() || s.is_empty());
    out
}

fn check_chars(s: &str) {
    for c in s.chars() {
        let ok =
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}');
        assert!(ok, "character U+{:04X} is not allowed in XML 1.0", c as u32);
    }
    assert!(!s.contains('<'), "raw < in text: {s}");
}

/// A small well-formedness checker: one root, matching tags, quoted attributes, only the
/// five predefined entities and character references, no raw `<` or `&` in text.
fn parse_xml(doc: &str) -> Element {
    let mut s = doc.trim_start();
    if s.starts_with("<?xml") {
        let end = s.find("?>").unwrap();
        s = &s[end + 2..];
    }
    let mut stack: Vec<Element> = vec![Element {
        name: "#doc".into(),
        attrs: vec![],
        children: vec![],
        text: String::new(),
    }];
    loop {
        let Some(lt) = s.find('<') else {
            assert!(s.trim().is_empty(), "text after the root: {s:?}");
            break;
        };
        let text = &s[..lt];
        check_chars(text);
        stack.last_mut().unwrap().text.push_str(&unescape(text));
        s = &s[lt..];
        let gt = s.find('>').expect("unterminated tag");
        let tag = &s[1..gt];
        s = &s[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let el = stack.pop().unwrap();
            assert_eq!(el.name, name.trim(), "mismatched end tag");
            stack.last_mut().unwrap().children.push(el);
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, mut rest) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "bad name {name:?}"
        );
        let mut attrs = Vec::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            let eq = rest.find('=').expect("attribute without =");
            let key = rest[..eq].trim().to_owned();
            rest = &rest[eq + 1..];
            assert!(rest.starts_with('"'), "unquoted attribute {key}");
            let close = rest[1..].find('"').expect("unterminated attribute") + 1;
            let raw = &rest[1..close];
            check_chars(raw);
            assert!(
                !attrs.iter().any(|(k, _): &(String, String)| *k == key),
                "duplicate attribute {key}"
            );
            attrs.push((key, unescape(raw)));
            rest = &rest[close + 1..];
        }
        let el = Element {
            name: name.to_owned(),
            attrs,
            children: vec![],
            text: String::new(),
        };
        if self_closing {
            stack.last_mut().unwrap().children.push(el);
        } else {
            stack.push(el);
        }
    }
    assert_eq!(stack.len(), 1, "unclosed elements");
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1, "exactly one root element");
    doc.children.pop().unwrap()
}

fn case(
    id: &'static str,
    level: Level,
    status: Status,
    counts: bool,
    reason: Option<&str>,
) -> CaseReport {
    CaseReport {
        id,
        requirement: id.split('/').next().unwrap(),
        level,
        description: "d",
        status,
        reason: reason.map(str::to_owned),
        duration: Duration::from_millis(12),
        counts,
        log: (status == Status::Fail)
            .then(|| "+   0.001s ctl      -> binary  1 B  <&>\u{1}\n".to_owned()),
        log_file: None,
    }
}

fn report(cases: Vec<CaseReport>) -> RunReport {
    RunReport {
        target: "relay ws://127.0.0.1:1/?a=<b>&c=\"d\"".to_owned(),
        target_kind: "relay",
        started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_478_401),
        duration: Duration::from_millis(1500),
        strict: false,
        cases,
        log_dir: PathBuf::from("/tmp/x"),
    }
}

#[test]
fn junit_is_well_formed_and_counts_right() {
    let r = report(vec![
        case("LINK-1/a", Level::Must, Status::Pass, true, None),
        case(
            "LINK-2/b",
            Level::Must,
            Status::Fail,
            true,
            Some("expected GOAWAY <PROTOCOL_ERROR> & \"close\" 'x' \u{7}"),
        ),
        case(
            "LINK-3/c",
            Level::Must,
            Status::Skip,
            true,
            Some("needs --other-workspace"),
        ),
        case(
            "LINK-4/d",
            Level::Must,
            Status::Disabled,
            true,
            Some("our relay: 30 s"),
        ),
        case(
            "LINK-28/e",
            Level::Should,
            Status::Fail,
            false,
            Some("no backoff"),
        ),
    ]);
    let xml = junit(&r);
    let root = parse_xml(&xml);
    assert_eq!(root.name, "testsuites");
    assert_eq!(root.attr("tests"), Some("5"));
    assert_eq!(root.attr("failures"), Some("1"));
    assert_eq!(root.attr("skipped"), Some("3"));
    let suites = root.all("testsuite");
    assert_eq!(suites.len(), 1);
    assert_eq!(suites[0].attr("name"), Some("tether-conformance.relay"));
    assert_eq!(
        suites[0].attr("hostname"),
        Some("relay ws://127.0.0.1:1/?a=<b>&c=\"d\"")
    );
    assert_eq!(suites[0].attr("timestamp"), Some("2026-11-24T00:00:01"));
    let cases = root.all("testcase");
    assert_eq!(cases.len(), 5);
    assert_eq!(cases[0].attr("name"), Some("LINK-1/a"));
    assert_eq!(cases[0].attr("classname"), Some("relay.LINK-1"));
    assert!(cases[0].children.is_empty());
    let failure = &cases[1].all("failure")[0];
    assert_eq!(
        failure.attr("message"),
        Some("expected GOAWAY <PROTOCOL_ERROR> & \"close\" 'x' \u{FFFD}")
    );
    assert_eq!(failure.attr("type"), Some("MUST"));
    assert!(cases[1].all("system-out")[0].text.contains("<&>\u{FFFD}"));
    assert_eq!(
        cases[2].all("skipped")[0].attr("message"),
        Some("needs --other-workspace")
    );
    assert!(
        cases[3].all("skipped")[0]
            .attr("message")
            .unwrap()
            .contains("our relay: 30 s")
    );
    // An uncounted SHOULD failure is reported as skipped, not as a failure.
    assert!(cases[4].all("failure").is_empty());
    assert!(
        cases[4].all("skipped")[0]
            .attr("message")
            .unwrap()
            .contains("SHOULD")
    );
    assert_eq!(r.verdict(), Verdict::Fail);
}

#[test]
fn the_checker_rejects_broken_xml() {
    for bad in [
        "<a><b></a></b>",
        "<a x=1/>",
        "<a>&nbsp;</a>",
        "<a>x < y</a>",
        "<a/><b/>",
        "<a>\u{1}</a>",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_xml(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn verdicts() {
    let pass = report(vec![case(
        "LINK-1/a",
        Level::Must,
        Status::Pass,
        true,
        None,
    )]);
    assert_eq!(pass.verdict(), Verdict::Pass);
    assert_eq!(pass.verdict().exit_code(), 0);
    let should = report(vec![
        case("LINK-1/a", Level::Must, Status::Pass, true, None),
        case("LINK-28/a", Level::Should, Status::Fail, false, Some("x")),
    ]);
    assert_eq!(should.verdict(), Verdict::Pass);
    let strict = report(vec![case(
        "LINK-28/a",
        Level::Should,
        Status::Fail,
        true,
        Some("x"),
    )]);
    assert_eq!(strict.verdict().exit_code(), 1);
    let none = report(vec![
        case("LINK-1/a", Level::Must, Status::Skip, true, Some("x")),
        case("LINK-2/a", Level::Must, Status::Disabled, true, Some("y")),
    ]);
    assert_eq!(none.verdict(), Verdict::NoneRan);
    assert_eq!(none.verdict().exit_code(), 2);
    assert_eq!(report(vec![]).verdict().exit_code(), 2);
}

#[test]
fn json_has_the_documented_fields() {
    let r = report(vec![
        case("LINK-1/a", Level::Must, Status::Pass, true, None),
        case("LINK-2/b", Level::Must, Status::Fail, true, Some("why")),
    ]);
    let v = run_json(&r);
    assert_eq!(v["schema"], "tether-conformance-run");
    assert_eq!(v["schemaVersion"], 1);
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["exitCode"], 1);
    assert_eq!(v["startedAt"], "2026-11-24T00:00:01Z");
    assert_eq!(v["counts"]["total"], 2);
    assert_eq!(v["counts"]["fail"], 1);
    assert_eq!(v["target"]["kind"], "relay");
    let c = &v["cases"][1];
    for k in [
        "id",
        "requirement",
        "level",
        "description",
        "status",
        "counted",
        "reason",
        "durationMs",
        "log",
    ] {
        assert!(c.get(k).is_some(), "case field {k} missing");
    }
    assert_eq!(c["status"], "fail");
    assert_eq!(c["reason"], "why");
    assert_eq!(c["requirement"], "LINK-2");
}
