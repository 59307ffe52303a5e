//! Sandbox escape cases of what a confined command can see and change (`spec/05`
//! section 5.7): writes outside `cwd`, the host's processes and namespaces, the state
//! directory and credential, metadata outside the roots, a controlling terminal, privileges
//! (`CMD-44`, `CMD-62` to `CMD-66`).

use std::sync::Arc;

use crate::case::{Case, case};
use crate::cases::steps::exec::exists;
use crate::cases::steps::sandbox::{
    FIND_PYTHON, MODES, NO_WORKSPACE_WRITE, Probe, known_state_dir, lines, prepare, printed, q,
    restricted, unconfined, under,
};
use crate::context::Context;
use crate::host::{ExecRun, Res, check, hfail, host_target, skip};

/// The confinement cases, in spec order.
pub const CASES: &[Case] = &[
    EXEC_WRITES_ONLY_CWD,
    FRESH_NAMESPACES,
    STATE_DIR_INVISIBLE,
    CREDENTIAL_INVISIBLE,
    METADATA_WRITES_REFUSED,
    NO_CONTROLLING_TERMINAL,
    NO_PRIVILEGES,
];

// ---------------------------------------------------------------------------------------
// CMD-44: command/exec writes inside its cwd only

const EXEC_WRITES_ONLY_CWD: Case = case! {
    id: "CMD-44/exec-writes-only-cwd",
    level: Must,
    timeout: 60 s,
    description: "under workspace-write a command/exec writes inside its cwd, not in the project root above it",
    host: exec_writes_only_cwd,
};
async fn exec_writes_only_cwd(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    if p.inside_host_tmp().await? {
        p.close().await;
        return skip(
            "the work directory is inside the host's temporary directory, where workspace-write may write: give --work-dir elsewhere",
        );
    }
    // The project root of DIR/inner is DIR (it holds .git); command/exec may write only
    // inside its cwd (spec 5.7).
    p.subdir(".git").await?;
    let inner = p.subdir("inner").await?;
    let inside = format!("{inner}/inside");
    let outside = p.path("outside");
    let script = format!("echo x > {}; echo y > {}", q(&inside), q(&outside));
    let Some(run) = under(&mut p.s, "workspace-write", &script, &inner).await? else {
        p.close().await;
        return skip(NO_WORKSPACE_WRITE);
    };
    let dir = p.dir.clone();
    check(exists(&mut p.s, &inside, &dir).await?, || {
        format!(
            "under workspace-write a write inside cwd did not happen: {}",
            printed(&run)
        )
    })?;
    check(!exists(&mut p.s, &outside, &dir).await?, || {
        format!(
            "under workspace-write a command/exec in {inner} wrote {outside}, in the project root above its cwd (CMD-44: its writable root is cwd)"
        )
    })?;
    p.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CMD-62: fresh namespaces, none of the host's processes

const NAMESPACES: [&str; 6] = ["user", "mnt", "pid", "ipc", "uts", "net"];

/// Prints `ns KIND ID` for each namespace, `proc PID CMDLINE` for every process visible,
/// `parent PID PPID` up the probe's ancestry, `signalled PID` for each of `pids` that
/// `kill -0` reaches, the marker file's text and `end`.
fn view_script(marker: &str, pids: &[u32]) -> String {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    format!(
        "for n in {ns}; do echo \"ns $n $(readlink /proc/self/ns/$n 2>/dev/null)\"; done\n\
         for d in /proc/[0-9]*; do [ -r \"$d/cmdline\" ] || continue; printf 'proc %s ' \"${{d#/proc/}}\"; \
         tr '\\0' ' ' < \"$d/cmdline\" 2>/dev/null; echo; done\n\
         p=$$; while [ \"$p\" -gt 1 ] 2>/dev/null; do \
         pp=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$p/status 2>/dev/null); [ -n \"$pp\" ] || break; \
         echo \"parent $p $pp\"; p=$pp; done\n\
         for p in {pids}; do if kill -0 \"$p\" 2>/dev/null; then echo \"signalled $p\"; fi; done\n\
         printf 'marker %s\\n' \"$(cat {marker} 2>/dev/null)\"\n\
         echo end\n",
        ns = NAMESPACES.join(" "),
        pids = pids.join(" "),
        marker = q(marker),
    )
}

/// What [`view_script`] printed.
#[derive(Debug, Default)]
struct View {
    namespaces: Vec<(String, String)>,
    processes: Vec<(u32, String)>,
    parents: Vec<u32>,
    signalled: Vec<u32>,
    marker: String,
    complete: bool,
}

impl View {
    fn read(run: &ExecRun) -> Self {
        let mut v = Self::default();
        for line in lines(run) {
            if let Some(rest) = line.strip_prefix("ns ") {
                let (kind, id) = rest.split_once(' ').unwrap_or((rest, ""));
                v.namespaces.push((kind.to_owned(), id.trim().to_owned()));
            } else if let Some(rest) = line.strip_prefix("proc ") {
                let (pid, cmdline) = rest.split_once(' ').unwrap_or((rest, ""));
                if let Ok(pid) = pid.parse() {
                    v.processes.push((pid, cmdline.trim_end().to_owned()));
                }
            } else if let Some(rest) = line.strip_prefix("parent ") {
                if let Some(pp) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                    v.parents.push(pp);
                }
            } else if let Some(pid) = line.strip_prefix("signalled ") {
                v.signalled.extend(pid.trim().parse::<u32>().ok());
            } else if let Some(rest) = line.strip_prefix("marker ") {
                rest.clone_into(&mut v.marker);
            } else if line == "end" {
                v.complete = true;
            }
        }
        v
    }

    fn namespace(&self, kind: &str) -> Option<&str> {
        self.namespaces
            .iter()
            .find(|(k, id)| k == kind && !id.is_empty())
            .map(|(_, id)| id.as_str())
    }
}

/// The runner's own process as a probe lists it: its pid and its command line with NULs
/// turned into spaces.
fn runner_process() -> Option<(u32, String)> {
    let raw = std::fs::read("/proc/self/cmdline").ok()?;
    let text: String = String::from_utf8_lossy(&raw).replace('\0', " ");
    Some((std::process::id(), text.trim_end().to_owned()))
}

const FRESH_NAMESPACES: Case = case! {
    id: "CMD-62/fresh-namespaces-and-view",
    level: Must,
    timeout: 120 s,
    description: "a sandboxed command is in fresh user, mount, PID, IPC, UTS and network namespaces and sees none of the host's processes",
    host: fresh_namespaces,
};
async fn fresh_namespaces(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let ww = p.subdir("ww").await?;
    let token = hex::encode(crate::link::random_bytes::<8>());
    for cwd in [&dir, &ww] {
        prepare(&mut p.s, &format!("printf %s {} > marker", q(&token)), cwd).await?;
    }
    // The control: the namespaces of the host's commands and the processes above them
    // (the host, its parents, the system's init), as an unsandboxed command sees them.
    let control = View::read(&unconfined(&mut p.s, &view_script("marker", &[]), &dir).await?);
    let outer: Vec<(&str, &str)> = NAMESPACES
        .iter()
        .filter_map(|k| control.namespace(k).map(|id| (*k, id)))
        .collect();
    if !control.complete || outer.len() != NAMESPACES.len() {
        p.close().await;
        return skip(
            "an unsandboxed command cannot read its namespaces in /proc/self/ns (not Linux?): nothing to compare",
        );
    }
    let mut host_side: Vec<(u32, String)> = control
        .processes
        .iter()
        .filter(|(pid, cmd)| control.parents.contains(pid) && !cmd.is_empty())
        .cloned()
        .collect();
    if let Some(me) = runner_process()
        && control.processes.contains(&me)
    {
        host_side.push(me);
    }
    // The processes outside the sandbox that it must not be able to signal either (other
    // than init, whose number a PID namespace reuses for its own).
    let outside: Vec<u32> = host_side
        .iter()
        .map(|(pid, _)| *pid)
        .filter(|pid| *pid > 1)
        .collect();
    let mut tried = 0;
    for (mode, cwd) in restricted(&dir, &ww) {
        let Some(run) = under(&mut p.s, mode, &view_script("marker", &outside), cwd).await? else {
            continue;
        };
        tried += 1;
        let view = View::read(&run);
        check(view.complete, || {
            format!(
                "the probe did not run to its end under {mode}: {}",
                printed(&run)
            )
        })?;
        check(view.marker == token, || {
            format!(
                "under {mode} the command could not read a file in its cwd ({cwd}/marker): {}",
                printed(&run)
            )
        })?;
        for (kind, id) in &outer {
            check(view.namespace(kind) != Some(id), || {
                format!(
                    "under {mode} the command is in the host's {kind} namespace ({id}); a sandboxed command gets a fresh one (CMD-62)"
                )
            })?;
        }
        if let Some((pid, cmd)) = view.processes.iter().find(|p| host_side.contains(p)) {
            return hfail(format!(
                "under {mode} the command sees a process outside its sandbox: {pid} `{cmd}` (CMD-62)"
            ));
        }
        // A process it can signal is one of its own, so it must be in its own view.
        if let Some(pid) = view
            .signalled
            .iter()
            .find(|pid| !view.processes.iter().any(|(p, _)| p == *pid))
        {
            return hfail(format!(
                "under {mode} the command can signal process {pid}, which is not one of its own (CMD-62)"
            ));
        }
    }
    p.finish(tried).await
}

// ---------------------------------------------------------------------------------------
// CMD-63: the state directory and the credential out of sight

const STATE_DIR_INVISIBLE: Case = case! {
    id: "CMD-63/state-dir-invisible",
    level: Must,
    timeout: 60 s,
    description: "the host's state directory and every file in it do not exist for a sandboxed command",
    host: state_dir_invisible,
};
async fn state_dir_invisible(cx: Arc<Context>) -> Res<()> {
    let state = known_state_dir(&cx)?;
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let listing = unconfined(&mut p.s, &format!("cd {} && ls -A", q(&state)), &dir).await?;
    if listing.exit_code() != Some(0) {
        p.close().await;
        return skip(format!(
            "the state directory {state} does not exist for an unsandboxed command: nothing to hide"
        ));
    }
    let mut paths = vec![state.clone()];
    paths.extend(lines(&listing).iter().map(|e| format!("{state}/{e}")));
    let script: String = paths
        .iter()
        .map(|path| {
            format!(
                "if [ -e {p} ] || [ -L {p} ]; then echo visible {p}; fi\n",
                p = q(path)
            )
        })
        .chain(std::iter::once(format!(
            "if ls -A {s} >/dev/null 2>&1; then echo \"listed {state}\"; fi\necho end\n",
            s = q(&state)
        )))
        .collect();
    let ww = p.subdir("ww").await?;
    let mut tried = 0;
    for (mode, cwd) in restricted(&dir, &ww) {
        let Some(run) = under(&mut p.s, mode, &script, cwd).await? else {
            continue;
        };
        tried += 1;
        let out = lines(&run);
        check(out.iter().any(|l| l == "end"), || {
            format!(
                "the probe did not run to its end under {mode}: {}",
                printed(&run)
            )
        })?;
        if let Some(seen) = out
            .iter()
            .find(|l| l.starts_with("visible ") || l.starts_with("listed "))
        {
            return hfail(format!(
                "under {mode} the host's state directory is in sight: {seen} (CMD-63: it must not exist for the command)"
            ));
        }
    }
    p.finish(tried).await
}

const CREDENTIAL_INVISIBLE: Case = case! {
    id: "CMD-63/credential-invisible",
    level: Must,
    timeout: 90 s,
    description: "no process a sandboxed command can see has the workspace credential in its command line or environment",
    host: credential_invisible,
};
async fn credential_invisible(cx: Arc<Context>) -> Res<()> {
    let credential = host_target(&cx)?.relay.workspace.credential.clone();
    let Ok(credential) = String::from_utf8(credential) else {
        return skip(
            "the workspace credential is not UTF-8 text: a shell probe cannot search for it",
        );
    };
    if credential.contains(['\0', '\n']) || credential.len() < 2 {
        return skip(
            "the workspace credential holds NUL or newline: a shell probe cannot search for it",
        );
    }
    // The probe must not carry the credential in its own command line: it is put together
    // from two halves inside the shell (printf is a builtin).
    let mut half = credential.len() / 2;
    while !credential.is_char_boundary(half) {
        half -= 1;
    }
    let (a, b) = credential.split_at(half);
    let script = format!(
        "c=\"$(printf %s {a} {b})\"\nn=0\n\
         for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do \
         v=$(tr '\\0' '\\n' < \"$f\" 2>/dev/null) || continue; n=$((n+1)); \
         case $v in *\"$c\"*) echo \"found $f\";; esac; done\n\
         echo \"scanned $n\"\n",
        a = q(a),
        b = q(b)
    );
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let ww = p.subdir("ww").await?;
    let mut tried = 0;
    for (mode, cwd) in restricted(&dir, &ww) {
        let Some(run) = under(&mut p.s, mode, &script, cwd).await? else {
            continue;
        };
        tried += 1;
        let out = lines(&run);
        check(out.iter().any(|l| l.starts_with("scanned ")), || {
            format!(
                "the probe did not run to its end under {mode}: {}",
                printed(&run)
            )
        })?;
        if let Some(found) = out.iter().find(|l| l.starts_with("found ")) {
            return hfail(format!(
                "under {mode} the command reads the workspace credential from {} (CMD-63)",
                found.trim_start_matches("found ")
            ));
        }
    }
    p.finish(tried).await
}

// ---------------------------------------------------------------------------------------
// CMD-64: metadata writes outside the writable roots

/// Prints `xattrs NAME...`: the extended attributes of the file named by its argument.
const LIST_XATTRS_PY: &str = r#"import os, sys
print("xattrs", " ".join(os.listxattr(sys.argv[1])))
"#;

const METADATA_WRITES_REFUSED: Case = case! {
    id: "CMD-64/metadata-writes-refused",
    level: Must,
    timeout: 60 s,
    description: "chmod, chown, utime and setxattr of a file outside the writable roots change nothing",
    host: metadata_writes_refused,
};
async fn metadata_writes_refused(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let ww = p.subdir("ww").await?;
    let outside_tmp = !p.inside_host_tmp().await?;
    let target = p.path("target");
    prepare(
        &mut p.s,
        &format!(
            "printf x > {t} && chmod 644 {t} && touch -m -t 201001010000 {t}",
            t = q(&target)
        ),
        &dir,
    )
    .await?;
    // The extended attributes, read unsandboxed (python3's os.listxattr), if the host has
    // the tool.
    let list_xattrs = format!(
        "{FIND_PYTHON}if [ -n \"$PY\" ]; then \"$PY\" -c {} {}; fi\n",
        q(LIST_XATTRS_PY),
        q(&target)
    );
    let script = format!(
        "{FIND_PYTHON}chmod 600 {t}; chmod 777 {t}; touch -c -m -t 200001010000 {t}; \
         chown 12345:12345 {t}; chgrp 12345 {t}\n\
         if [ -n \"$PY\" ]; then \"$PY\" -c 'import os, sys; os.setxattr(sys.argv[1], \"user.tether\", b\"1\")' {t}; fi\n\
         echo end\n",
        t = q(&target)
    );
    let mut tried = 0;
    for mode in MODES {
        // Under workspace-write the file must lie outside the writable roots: outside cwd
        // and outside the host's temporary directory.
        if mode == "workspace-write" && !outside_tmp {
            continue;
        }
        let cwd = if mode == "read-only" { &dir } else { &ww };
        let before = p.metadata(&target).await?;
        let Some(_run) = under(&mut p.s, mode, &script, cwd).await? else {
            continue;
        };
        tried += 1;
        let after = p.metadata(&target).await?;
        check(after == before, || {
            format!(
                "under {mode} chmod/chown/touch of {target}, outside the writable roots, changed it: {before} became {after} (CMD-64)"
            )
        })?;
        let xattrs = lines(&unconfined(&mut p.s, &list_xattrs, &dir).await?);
        check(
            !xattrs
                .iter()
                .any(|l| l.starts_with("xattrs ") && l.contains("user.tether")),
            || {
                format!(
                    "under {mode} setxattr of {target}, outside the writable roots, added user.tether (CMD-64)"
                )
            },
        )?;
    }
    p.finish(tried).await
}

// ---------------------------------------------------------------------------------------
// CMD-65: no controlling terminal

/// Prints `tty-open` when `/dev/tty` opens (the command has a controlling terminal),
/// else `tty-none`.
const TTY_SCRIPT: &str =
    "if (: </dev/tty) 2>/dev/null; then echo tty-open; else echo tty-none; fi\n";

/// Prints `pts PATH` for the device of the process's controlling terminal.
const FIND_TERMINAL_PY: &str = r#"import os
f = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
n = int(f[4])
if n:
    dev = os.makedev((n >> 8) & 0xfff, (n & 0xff) | ((n >> 12) & 0xfff00))
    names = [os.path.join("/dev/pts", e) for e in os.listdir("/dev/pts")]
    names += [os.path.join("/dev", e) for e in os.listdir("/dev") if e.startswith("tty") and e != "tty"]
    for p in names:
        try:
            if os.stat(p).st_rdev == dev:
                print("pts", p)
        except OSError:
            pass
"#;

/// For each path argument: opens it (for reading: enough for `TIOCSTI`, and what a
/// read-only view allows) and pushes one character into its input with `TIOCSTI`, then the terminal's erase character (so that nothing is left typed); prints
/// `sti-done PATH` when that worked.
const TIOCSTI_PY: &str = r##"import fcntl, os, sys, termios
for p in sys.argv[1:]:
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOCTTY)
    except OSError as e:
        print("open-refused", p, e.errno)
        continue
    try:
        erase = termios.tcgetattr(fd)[6][termios.VERASE]
    except Exception:
        erase = b"\x7f"
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"#")
    except OSError as e:
        print("sti-refused", p, e.errno)
        continue
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, erase)
    except OSError:
        pass
    print("sti-done", p)
"##;

const NO_CONTROLLING_TERMINAL: Case = case! {
    id: "CMD-65/no-controlling-terminal",
    level: Must,
    timeout: 60 s,
    description: "a sandboxed command cannot open the host's controlling terminal nor push input into it with TIOCSTI",
    host: no_controlling_terminal,
};
async fn no_controlling_terminal(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let control_script = format!(
        "{TTY_SCRIPT}{FIND_PYTHON}if [ -n \"$PY\" ]; then echo python; \"$PY\" -c {}; fi\n",
        q(FIND_TERMINAL_PY)
    );
    let control = lines(&unconfined(&mut p.s, &control_script, &dir).await?);
    if !control.iter().any(|l| l == "tty-open") {
        p.close().await;
        return skip(
            "the host has no controlling terminal (run it from a terminal or under script(1))",
        );
    }
    let python = control.iter().any(|l| l == "python");
    let mut terminals = vec!["/dev/tty".to_owned()];
    terminals.extend(
        control
            .iter()
            .filter_map(|l| l.strip_prefix("pts "))
            .map(str::to_owned),
    );
    let mut script = format!("{TTY_SCRIPT}{FIND_PYTHON}");
    if python {
        script.push_str(&format!(
            "if [ -n \"$PY\" ]; then \"$PY\" -c {} {}; fi\n",
            q(TIOCSTI_PY),
            terminals.iter().map(|t| q(t)).collect::<Vec<_>>().join(" ")
        ));
    }
    let ww = p.subdir("ww").await?;
    let mut tried = 0;
    for (mode, cwd) in restricted(&dir, &ww) {
        let Some(run) = under(&mut p.s, mode, &script, cwd).await? else {
            continue;
        };
        tried += 1;
        let out = lines(&run);
        check(out.iter().any(|l| l == "tty-none"), || {
            format!(
                "under {mode} the command opened /dev/tty: it has the host's controlling terminal (CMD-65): {}",
                printed(&run)
            )
        })?;
        if let Some(done) = out.iter().find(|l| l.starts_with("sti-done ")) {
            return hfail(format!(
                "under {mode} TIOCSTI on {} worked: the command can type into the host's terminal (CMD-65)",
                done.trim_start_matches("sti-done ")
            ));
        }
    }
    p.finish(tried).await
}

// ---------------------------------------------------------------------------------------
// CMD-66: no privileges

const PRIVILEGE_SCRIPT: &str = "while IFS= read -r l; do case $l in Cap*|NoNewPrivs*) echo \"$l\";; esac; done < /proc/self/status\n\
     if command -v unshare >/dev/null 2>&1; then \
     if unshare -Ur true >/dev/null 2>&1; then echo unshare-worked; else echo unshare-refused; fi; \
     fi\necho end\n";

const NO_PRIVILEGES: Case = case! {
    id: "CMD-66/no-privileges",
    level: Must,
    timeout: 60 s,
    description: "a sandboxed command has every capability set empty, no_new_privs set, and cannot create a user namespace",
    host: no_privileges,
};
async fn no_privileges(cx: Arc<Context>) -> Res<()> {
    let mut p = Probe::new(&cx).await?;
    let dir = p.dir.clone();
    let ww = p.subdir("ww").await?;
    let mut tried = 0;
    for (mode, cwd) in restricted(&dir, &ww) {
        let Some(run) = under(&mut p.s, mode, PRIVILEGE_SCRIPT, cwd).await? else {
            continue;
        };
        let out = lines(&run);
        let field = |name: &str| {
            out.iter()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        if field("CapEff:").is_none() {
            if out.iter().any(|l| l == "end") {
                continue; // no capability sets in /proc/self/status: not Linux
            }
            return hfail(format!(
                "the probe did not run to its end under {mode}: {}",
                printed(&run)
            ));
        }
        tried += 1;
        for set in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            let value = field(set).unwrap_or_default();
            check(
                !value.is_empty() && value.bytes().all(|b| b == b'0'),
                || {
                    format!(
                        "under {mode} the command's {} set is {value:?}, not empty (CMD-66)",
                        set.trim_end_matches(':')
                    )
                },
            )?;
        }
        check(field("NoNewPrivs:").as_deref() == Some("1"), || {
            format!(
                "under {mode} the command runs without no_new_privs (NoNewPrivs: {:?}) (CMD-66)",
                field("NoNewPrivs:")
            )
        })?;
        check(!out.iter().any(|l| l == "unshare-worked"), || {
            format!("under {mode} `unshare -Ur true` created a user namespace (CMD-66)")
        })?;
    }
    p.close().await;
    if tried == 0 {
        return skip(
            "the host enforces neither read-only nor workspace-write, or its commands have no capability sets in /proc/self/status (not Linux)",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use std::path::Path;

    use serde_json::json;

    use crate::host::ExecRun;

    use super::*;

    #[test]
    fn the_probe_scripts_run_here_as_the_cases_read_them() {
        // Unsandboxed on the machine running the tests: the scripts parse and print what
        // the cases look for (a failure here is a broken probe, not a broken host).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("marker"), "m1").unwrap();
        let run = |script: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(dir.path())
                .output()
                .unwrap();
            ExecRun {
                answer: json!({"result": {"exitCode": out.status.code(), "tether": {"exitCode": out.status.code()}}}),
                stdout: out.stdout,
                stderr: out.stderr,
                deltas: Vec::new(),
            }
        };
        if Path::new("/proc/self/ns/pid").exists() {
            let v = View::read(&run(&view_script("marker", &[std::process::id()])));
            assert!(v.complete);
            assert_eq!(v.marker, "m1");
            for ns in NAMESPACES {
                assert!(v.namespace(ns).unwrap().starts_with(ns), "{ns}: {v:?}");
            }
            // This process is visible, with its command line as the runner reads it.
            assert!(v.processes.contains(&runner_process().unwrap()), "{v:?}");
            assert!(!v.parents.is_empty());
            assert_eq!(v.signalled, [std::process::id()]);
        }
        let out = lines(&run(PRIVILEGE_SCRIPT));
        assert!(out.iter().any(|l| l == "end"), "{out:?}");
        assert!(out.iter().any(|l| l.starts_with("CapEff:")), "{out:?}");
    }
}
