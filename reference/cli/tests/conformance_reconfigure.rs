//! `tether conformance relay … --reconfigure-cmd` end to end (`LINK-37`): the runner
//! reconfigures a `tether relay --config FILE` process through a shell script that rewrites
//! the file and sends SIGHUP, as a third-party relay's operator tooling would; without the
//! option the `LINK-37` cases are skipped with the reason. Every wait is bounded.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use std::time::Duration;

use support::{Relay, TempDir, run, tether};

const MAIN: &str = "main-credential-0123456789";
const OTHER: &str = "other-credential-0123456789";

/// Rewrites `relay.toml` from `base.toml` plus one file per workspace the runner set, sends
/// the relay SIGHUP, and waits for the relay's `reload:` log line (it is written once the
/// change is applied). `flock` keeps concurrent cases from interleaving.
const SCRIPT: &str = r#"#!/bin/sh
set -eu
dir=$(dirname "$0")
exec 9>"$dir/lock"
flock 9
case "$1" in
  set) printf '[[workspace]]\nid = "%s"\ncredential = "%s"\nremote_access = %s\n' "$2" "$3" "$4" > "$dir/ws.d/$2.toml" ;;
  remove) rm -f "$dir/ws.d/$2.toml" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
cat "$dir/base.toml" "$dir"/ws.d/*.toml > "$dir/relay.toml.new" 2>/dev/null || cp "$dir/base.toml" "$dir/relay.toml.new"
mv "$dir/relay.toml.new" "$dir/relay.toml"
before=$(grep -c 'reload:' "$dir/relay.log" || true)
kill -HUP "$(cat "$dir/relay.pid")"
i=0
while [ "$(grep -c 'reload:' "$dir/relay.log" || true)" -le "$before" ]; do
  i=$((i + 1))
  if [ "$i" -gt 200 ]; then echo "the relay did not apply the change" >&2; exit 1; fi
  sleep 0.05
done
"#;

struct ConfiguredRelay {
    _relay: Relay,
    url: String,
    dir: TempDir,
}

fn start_configured_relay() -> ConfiguredRelay {
    let dir = TempDir::new("reconfigure");
    std::fs::create_dir_all(dir.join("ws.d")).unwrap();
    let base = format!(
        "[[workspace]]\nid = \"main\"\ncredential = \"{MAIN}\"\n\n\
         [[workspace]]\nid = \"other\"\ncredential = \"{OTHER}\"\n"
    );
    std::fs::write(dir.join("base.toml"), &base).unwrap();
    std::fs::write(dir.join("relay.toml"), &base).unwrap();
    std::fs::write(dir.join("reconfigure.sh"), SCRIPT).unwrap();
    let log = std::fs::File::create(dir.join("relay.log")).unwrap();
    let mut c = tether();
    c.args(["relay", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.join("relay.toml"))
        .env("RUST_LOG", "info")
        .stderr(log);
    let relay = Relay::start(c);
    std::fs::write(dir.join("relay.pid"), relay.proc.pid().to_string()).unwrap();
    ConfiguredRelay {
        url: relay.url.clone(),
        _relay: relay,
        dir,
    }
}

fn conformance(
    relay: &ConfiguredRelay,
    only: &str,
    reconfigure: bool,
) -> (support::Output, serde_json::Value) {
    let json = relay.dir.join("report.json");
    let mut c = tether();
    c.args(["conformance", "relay", &relay.url])
        .args(["--workspace", &format!("main={MAIN}")])
        .args(["--other-workspace", &format!("other={OTHER}")])
        .args(["--only", only, "--json"])
        .arg(&json)
        .arg("--log-dir")
        .arg(relay.dir.join("logs"));
    if reconfigure {
        let script = relay.dir.join("reconfigure.sh");
        c.arg("--reconfigure-cmd").arg(format!(
            "sh '{}' {{action}} {{workspace}} {{credential}} {{remote_access}}",
            script.display()
        ));
    }
    let out = run(c, Duration::from_secs(120));
    let report = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (out, report)
}

#[test]
fn a_relay_reconfigured_by_command_passes_the_link37_cases() {
    let relay = start_configured_relay();
    let (out, report) = conformance(&relay, "LINK-37/*", true);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5, "{report:#}");
    for c in cases {
        assert_eq!(c["status"], "pass", "{c:#}");
    }
    // Every case removed the workspace it added.
    let left: Vec<_> = std::fs::read_dir(relay.dir.join("ws.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "workspaces left behind: {left:?}");
    let log = std::fs::read_to_string(relay.dir.join("relay.log")).unwrap();
    assert!(log.contains("credential changed"), "{log}");
    assert!(log.contains("remote access switched off"), "{log}");
}

#[test]
fn without_a_reconfigure_command_the_link37_cases_are_skipped() {
    let relay = start_configured_relay();
    // With a case that can run, so that the run is not empty (exit 2).
    let (out, report) = conformance(&relay, "LINK-37/*,LINK-25/ping-pong", false);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let cases: Vec<_> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with("LINK-37/"))
        .collect();
    assert_eq!(cases.len(), 5, "{report:#}");
    for c in cases {
        assert_eq!(c["status"], "skip", "{c:#}");
        assert!(
            c["reason"].as_str().unwrap().contains("--reconfigure-cmd"),
            "{c:#}"
        );
    }
}
