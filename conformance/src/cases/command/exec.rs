//! Host cases of `command/exec` (`spec/05` section 5.6): argv, cwd and stdin, process ids,
//! output order, the answer last, terminate, exit status, chunks, the output cap and the time
//! limit (`CMD-34` to `CMD-43`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::case::{Case, case};
use crate::cases::steps::exec::{exec_params, exec_ready, exists, result_of, sh};
use crate::cases::steps::records::{counting, first_difference, records_ready, with};
use crate::cases::steps::rpc::{call_refused, still_answers};
use crate::context::Context;
use crate::host::{HOST_WAIT, HostMessage, Res, check};

/// The `command/exec` cases, in spec order.
pub const CASES: &[Case] = &[
    CMD_EXEC_BASICS,
    CMD_EXEC_PID_IN_USE,
    CMD_OUTPUT_ORDER,
    CMD_OUTPUT_IN_RESULT,
    CMD_ANSWER_LAST,
    CMD_KILL_GROUP,
    CMD_TERMINATE,
    CMD_EXIT_STATUS,
    CMD_CHUNKS,
    CMD_OUTPUT_CAP,
    CMD_OUTPUT_CAP_NULL,
    CMD_OUTPUT_RECORDS,
    CMD_TIME_LIMIT,
    CMD_LIMIT_RANGES,
    CMD_OUTPUT_CAP_NULL_V1,
];

// ---------------------------------------------------------------------------------------
// CMD: command/exec

const CMD_EXEC_BASICS: Case = case! {
    id: "CMD-34/argv-cwd-stdin",
    level: Must,
    timeout: 60 s,
    description: "command/exec runs an argument vector without a shell, in cwd, with stdin at EOF; bad cwd -32602",
    host: cmd_exec_basics,
};
async fn cmd_exec_basics(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let run = s
        .exec(exec_params(&["echo", "a;b $HOME |c"], &dir), HOST_WAIT)
        .await?;
    check(run.stdout == b"a;b $HOME |c\n", || {
        format!(
            "echo of one argument printed {:?}: was a shell involved?",
            String::from_utf8_lossy(&run.stdout)
        )
    })?;
    let here = s
        .exec(exec_params(&["sh", "-c", "pwd -P"], &dir), HOST_WAIT)
        .await?;
    let want = s
        .exec(
            exec_params(&["sh", "-c", &format!("cd '{dir}' && pwd -P")], "/"),
            HOST_WAIT,
        )
        .await?;
    check(
        !here.stdout.is_empty() && here.stdout == want.stdout,
        || {
            format!(
                "the process ran in {:?}, not in cwd {:?}",
                String::from_utf8_lossy(&here.stdout),
                String::from_utf8_lossy(&want.stdout)
            )
        },
    )?;
    // A host that leaves stdin open makes `cat` wait for input until the 30 s time limit
    // kills it. The margin is wide: a loaded host may take seconds to answer.
    let start = Instant::now();
    let mut cat = exec_params(&["cat"], &dir);
    if let Some(o) = cat.as_object_mut() {
        o.insert("timeoutMs".to_owned(), json!(30_000));
    }
    let run = s.exec(cat, Duration::from_secs(40)).await?;
    check(
        run.exit_code() == Some(0)
            && run.stdout.is_empty()
            && run.report().and_then(|r| r.get("timedOut")) == Some(&json!(false))
            && start.elapsed() < Duration::from_secs(20),
        || {
            format!(
                "cat with empty stdin: {} after {:?}",
                run.answer,
                start.elapsed()
            )
        },
    )?;
    for (what, cwd) in [
        ("a missing directory", format!("{dir}/missing")),
        ("a relative path", "tmp".to_owned()),
    ] {
        let run = s.exec(exec_params(&["true"], &cwd), HOST_WAIT).await?;
        check(run.error_code() == Some(-32602), || {
            format!("cwd {what}: expected -32602, got {}", run.answer)
        })?;
    }
    s.close().await;
    Ok(())
}

const CMD_EXEC_PID_IN_USE: Case = case! {
    id: "CMD-34/process-id-in-use",
    level: Must,
    timeout: 60 s,
    description: "a second command/exec with a running process's id gets -32602",
    host: cmd_exec_pid_in_use,
};
async fn cmd_exec_pid_in_use(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let mut p = exec_params(&["sleep", "30"], &dir);
    if let Some(o) = p.as_object_mut() {
        o.insert("processId".to_owned(), json!("same"));
    }
    let first = s.fresh_id();
    s.send_json(&json!({"jsonrpc":"2.0","id":first,"method":"command/exec","params":p}))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    call_refused(
        &mut s,
        "command/exec",
        p.clone(),
        -32602,
        "a second command/exec with a running processId",
    )
    .await?;
    let t = s
        .call("command/exec/terminate", json!({"processId": "same"}))
        .await?;
    check(t.get("result").is_some(), || format!("terminate: {t}"))?;
    s.collect_exec(&json!(first), "same", HOST_WAIT).await?;
    s.close().await;
    Ok(())
}

const CMD_OUTPUT_ORDER: Case = case! {
    id: "CMD-35/output-in-order",
    level: Must,
    timeout: 60 s,
    description: "stdout and stderr arrive as deltas in the order written",
    host: cmd_output_order,
};
async fn cmd_output_order(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let script = "i=0; while [ $i -lt 3000 ]; do echo line$i; echo err$i >&2; i=$((i+1)); done";
    let run = s.exec(sh(script, &dir), Duration::from_secs(30)).await?;
    let mut out = String::new();
    let mut err = String::new();
    for i in 0..3000 {
        out.push_str(&format!("line{i}\n"));
        err.push_str(&format!("err{i}\n"));
    }
    check(run.stdout == out.as_bytes(), || {
        format!(
            "stdout arrived out of order or incomplete ({} of {} bytes)",
            run.stdout.len(),
            out.len()
        )
    })?;
    check(run.stderr == err.as_bytes(), || {
        format!(
            "stderr arrived out of order or incomplete ({} of {} bytes)",
            run.stderr.len(),
            err.len()
        )
    })?;
    s.close().await;
    Ok(())
}

const CMD_OUTPUT_IN_RESULT: Case = case! {
    id: "CMD-35/output-in-result",
    level: Must,
    timeout: 60 s,
    description: "without streamStdoutStderr (and without processId) no delta is sent and the output is the result's stdout and stderr, as text",
    host: cmd_output_in_result,
};
async fn cmd_output_in_result(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let mut p = sh("printf 'out\\n'; printf err >&2; exit 3", &dir);
    if let Some(o) = p.as_object_mut() {
        o.insert("streamStdoutStderr".to_owned(), json!(false));
    }
    let run = s.exec(p, HOST_WAIT).await?;
    // Whatever the host streamed, with or without a process id the runner knows of.
    let streamed: Vec<HostMessage> = s
        .backlog
        .iter()
        .filter(|m| m.method() == Some("command/exec/outputDelta"))
        .cloned()
        .collect();
    check(run.deltas.is_empty() && streamed.is_empty(), || {
        format!(
            "deltas for a command/exec without streamStdoutStderr: {:?}",
            streamed.iter().map(|m| &m.value).collect::<Vec<_>>()
        )
    })?;
    let r = run.result().cloned().unwrap_or(Value::Null);
    check(
        r.get("stdout") == Some(&json!("out\n"))
            && r.get("stderr") == Some(&json!("err"))
            && r.get("exitCode") == Some(&json!(3))
            && r.pointer("/tether/exitCode") == Some(&json!(3)),
        || format!("the result of a command/exec with its output in the result: {r}"),
    )?;
    s.close().await;
    Ok(())
}

const CMD_ANSWER_LAST: Case = case! {
    id: "CMD-36/answer-is-last",
    level: Must,
    timeout: 60 s,
    description: "the command/exec answer comes after every delta of its process",
    host: cmd_answer_last,
};
async fn cmd_answer_last(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    for _ in 0..3 {
        let run = s
            .exec(
                sh("head -c 100000 /dev/zero; echo done >&2", &dir),
                Duration::from_secs(30),
            )
            .await?;
        check(
            run.stdout.len() == 100_000 && run.stderr == b"done\n",
            || {
                format!(
                    "the answer came before all output: {} + {} bytes",
                    run.stdout.len(),
                    run.stderr.len()
                )
            },
        )?;
    }
    // A delta after its answer would fail here (recv checks, CMD-36).
    still_answers(&mut s, "three runs").await?;
    s.expect_silence(Duration::from_millis(500)).await?;
    s.close().await;
    Ok(())
}

const CMD_KILL_GROUP: Case = case! {
    id: "CMD-37/terminate-kills-group",
    level: Must,
    timeout: 60 s,
    description: "command/exec/terminate kills the whole process group, children that ignore SIGTERM included",
    host: cmd_kill_group,
};
async fn cmd_kill_group(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let marker = format!("{dir}/child-survived");
    // Every process of the group ignores SIGTERM (ignored signals survive exec): only
    // SIGKILL to the whole group (CMD-37) stops the child before it writes its file.
    let mut p = sh(
        &format!("trap '' TERM; (sleep 2; touch '{marker}') & sleep 60"),
        &dir,
    );
    if let Some(o) = p.as_object_mut() {
        o.insert("processId".to_owned(), json!("group"));
    }
    let id = s.fresh_id();
    s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"command/exec","params":p}))
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = s
        .call("command/exec/terminate", json!({"processId": "group"}))
        .await?;
    check(t.get("result").is_some(), || format!("terminate: {t}"))?;
    s.collect_exec(&json!(id), "group", HOST_WAIT).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    check(!exists(&mut s, &marker, &dir).await?, || {
        "a child of the terminated process lived on and wrote its file: the group was not killed"
            .to_owned()
    })?;
    s.close().await;
    Ok(())
}

const CMD_TERMINATE: Case = case! {
    id: "CMD-38/terminate",
    level: Must,
    timeout: 60 s,
    description: "terminate of an unknown process gets -32016; of a running one {} then SIGKILL",
    host: cmd_terminate,
};
async fn cmd_terminate(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    call_refused(
        &mut s,
        "command/exec/terminate",
        json!({"processId": "nothing-runs"}),
        -32016,
        "terminate of an unknown process",
    )
    .await?;
    let mut p = exec_params(&["sleep", "30"], &dir);
    if let Some(o) = p.as_object_mut() {
        o.insert("processId".to_owned(), json!("sleeper"));
    }
    let id = s.fresh_id();
    s.send_json(&json!({"jsonrpc":"2.0","id":id,"method":"command/exec","params":p}))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = s
        .call("command/exec/terminate", json!({"processId": "sleeper"}))
        .await?;
    check(t.get("result") == Some(&json!({})), || {
        format!("terminate of a running process: {t}")
    })?;
    let run = s.collect_exec(&json!(id), "sleeper", HOST_WAIT).await?;
    let r = result_of(&run, "the terminated command/exec")?;
    check(
        r.get("signal") == Some(&json!("SIGKILL")) && r.get("exitCode") == Some(&Value::Null),
        || format!("the terminated process's answer: {r}"),
    )?;
    check(
        run.result().and_then(|r| r.get("exitCode")) == Some(&json!(137)),
        || {
            format!(
                "the terminated process's exitCode is not 137 (CMD-39): {}",
                run.answer
            )
        },
    )?;
    s.close().await;
    Ok(())
}

const CMD_EXIT_STATUS: Case = case! {
    id: "CMD-39/exit-status",
    level: Must,
    timeout: 60 s,
    description: "exit 3 gives exitCode 3 and tether.exitCode 3, signal null; kill -9 gives exitCode 137, tether.exitCode null and SIGKILL",
    host: cmd_exit_status,
};
async fn cmd_exit_status(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let run = s.exec(sh("exit 3", &dir), HOST_WAIT).await?;
    check(
        run.result().and_then(|r| r.get("exitCode")) == Some(&json!(3)),
        || format!("exit 3: exitCode {}", run.answer),
    )?;
    let r = result_of(&run, "exit 3")?;
    check(
        r.get("exitCode") == Some(&json!(3))
            && r.get("signal") == Some(&Value::Null)
            && r.get("timedOut") == Some(&json!(false))
            && r.get("capReached") == Some(&json!(false)),
        || format!("exit 3: {r}"),
    )?;
    let run = s.exec(sh("kill -9 $$", &dir), HOST_WAIT).await?;
    let r = result_of(&run, "kill -9 $$")?;
    check(
        r.get("exitCode") == Some(&Value::Null) && r.get("signal") == Some(&json!("SIGKILL")),
        || format!("a process killed by SIGKILL: {r}"),
    )?;
    check(
        run.result().and_then(|r| r.get("exitCode")) == Some(&json!(137)),
        || {
            format!(
                "a process killed by SIGKILL: exitCode is not 137: {}",
                run.answer
            )
        },
    )?;
    s.close().await;
    Ok(())
}

const CMD_CHUNKS: Case = case! {
    id: "CMD-40/delta-chunks",
    level: Must,
    timeout: 60 s,
    description: "100000 bytes of output arrive in base64 deltas of 1 to 16384 bytes",
    host: cmd_chunks,
};
async fn cmd_chunks(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let run = s
        .exec(
            exec_params(&["head", "-c", "100000", "/dev/zero"], &dir),
            Duration::from_secs(30),
        )
        .await?;
    check(
        run.stdout.len() == 100_000 && run.stdout.iter().all(|&b| b == 0),
        || format!("expected 100000 zero bytes, got {}", run.stdout.len()),
    )?;
    check(run.deltas.len() >= 7, || {
        format!(
            "100000 bytes in {} deltas: some delta carries more than 16384",
            run.deltas.len()
        )
    })?;
    s.close().await;
    Ok(())
}

const CMD_OUTPUT_CAP: Case = case! {
    id: "CMD-41/output-cap",
    level: Must,
    timeout: 60 s,
    description: "with outputBytesCap 1000 exactly 1000 bytes are forwarded, capReached, and the process ends",
    host: cmd_output_cap,
};
async fn cmd_output_cap(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let mut p = sh("while :; do echo 0123456789; echo abc >&2; done", &dir);
    if let Some(o) = p.as_object_mut() {
        o.insert("outputBytesCap".to_owned(), json!(1000));
        o.insert("timeoutMs".to_owned(), json!(20000));
    }
    let start = Instant::now();
    let run = s.exec(p, Duration::from_secs(30)).await?;
    let total = run.stdout.len() + run.stderr.len();
    check(total == 1000, || {
        format!("with outputBytesCap 1000, {total} bytes were forwarded")
    })?;
    let last_cap = run
        .deltas
        .last()
        .and_then(|d| d.get("capReached"))
        .and_then(Value::as_bool);
    check(last_cap == Some(true), || {
        "the last delta does not carry capReached: true".to_owned()
    })?;
    let early = run
        .deltas
        .iter()
        .rev()
        .skip(1)
        .any(|d| d.get("capReached") == Some(&json!(true)));
    check(!early, || {
        "a delta followed the one with capReached".to_owned()
    })?;
    let r = result_of(&run, "the capped command")?;
    check(r.get("capReached") == Some(&json!(true)), || {
        format!("result without capReached: {r}")
    })?;
    check(
        start.elapsed() < Duration::from_secs(15) && r.get("timedOut") == Some(&json!(false)),
        || {
            format!(
                "the capped process was not killed at the cap: {r} after {:?}",
                start.elapsed()
            )
        },
    )?;
    s.close().await;
    Ok(())
}

const CMD_OUTPUT_CAP_NULL: Case = case! {
    id: "CMD-41/output-cap-null",
    level: Must,
    timeout: 120 s,
    description: "in a session with records, disableOutputCap forwards all of 3 MiB of output, byte-exact, capReached false",
    host: cmd_output_cap_null,
};
async fn cmd_output_cap_null(cx: Arc<Context>) -> Res<()> {
    let mut s = records_ready(&cx, "ctl").await?;
    if let Err(e) = s.need_exec() {
        s.close().await;
        return Err(e);
    }
    let dir = s.work_dir(&cx)?;
    // 393216 lines of 8 bytes: 3 MiB, three times the default cap.
    let (params, expected) = counting(393_216, &dir);
    let run = s
        .exec(
            with(params, "disableOutputCap", json!(true)),
            Duration::from_secs(90),
        )
        .await?;
    check(run.stdout == expected && run.stderr.is_empty(), || {
        format!(
            "with disableOutputCap, stdout is {} (stderr {} bytes): not all of the output (CMD-41)",
            first_difference(&run.stdout, &expected),
            run.stderr.len()
        )
    })?;
    check(
        run.deltas
            .iter()
            .all(|d| d.get("capReached") == Some(&json!(false))),
        || "a delta with capReached true under disableOutputCap".to_owned(),
    )?;
    let r = result_of(&run, "3 MiB with disableOutputCap")?;
    check(
        r.get("capReached") == Some(&json!(false)) && r.get("exitCode") == Some(&json!(0)),
        || format!("the answer of a command with disableOutputCap: {r}"),
    )?;
    s.close().await;
    Ok(())
}

const CMD_OUTPUT_RECORDS: Case = case! {
    id: "CMD-76/output-in-records",
    level: Must,
    timeout: 120 s,
    description: "in a session with records, command/exec output comes in OUTPUT records (no JSON outputDelta), byte-exact, before the answer",
    host: cmd_output_records,
};
async fn cmd_output_records(cx: Arc<Context>) -> Res<()> {
    let mut s = records_ready(&cx, "ctl").await?;
    if let Err(e) = s.need_exec() {
        s.close().await;
        return Err(e);
    }
    let dir = s.work_dir(&cx)?;
    // 65536 lines of 8 bytes: 512 KiB, several records' worth. The runner fails the case
    // on any JSON outputDelta of a session with records (CMD-76).
    let (params, expected) = counting(65_536, &dir);
    let run = s.exec(params, Duration::from_secs(60)).await?;
    check(run.stdout == expected && run.stderr.is_empty(), || {
        format!(
            "stdout is {} (stderr {} bytes) (CMD-76)",
            first_difference(&run.stdout, &expected),
            run.stderr.len()
        )
    })?;
    let outputs = s.records().map_or(0, |r| r.host_outputs);
    check(outputs > 0, || {
        "the output arrived without a single OUTPUT record (CMD-76)".to_owned()
    })?;
    result_of(&run, "512 KiB in OUTPUT records")?;
    s.close().await;
    Ok(())
}

const CMD_TIME_LIMIT: Case = case! {
    id: "CMD-42/time-limit",
    level: Must,
    timeout: 60 s,
    description: "with timeoutMs 500 a sleeping process is killed and reported timedOut",
    host: cmd_time_limit,
};
async fn cmd_time_limit(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let mut p = exec_params(&["sleep", "30"], &dir);
    if let Some(o) = p.as_object_mut() {
        o.insert("timeoutMs".to_owned(), json!(500));
    }
    let start = Instant::now();
    let run = s.exec(p, Duration::from_secs(20)).await?;
    let r = result_of(&run, "sleep 30 with timeoutMs 500")?;
    check(r.get("timedOut") == Some(&json!(true)), || {
        format!("result: {r}")
    })?;
    // CMD-39: Codex's exitCode of a command its time limit ended.
    check(
        run.result().and_then(|r| r.get("exitCode")) == Some(&json!(124)),
        || format!("a timed-out command's exitCode is not 124: {}", run.answer),
    )?;
    check(start.elapsed() < Duration::from_secs(10), || {
        format!("the answer came after {:?}", start.elapsed())
    })?;
    s.close().await;
    Ok(())
}

const CMD_LIMIT_RANGES: Case = case! {
    id: "CMD-43/limit-ranges",
    level: Must,
    timeout: 30 s,
    description: "timeoutMs 0 or 86400001, outputBytesCap 67108865 or -1, 8193 with the output in the result, timeoutMs with disableTimeout, tty, an external sandbox and writableRoots get -32602",
    host: cmd_limit_ranges,
};
async fn cmd_limit_ranges(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    for (what, members) in [
        ("timeoutMs 0", json!({"timeoutMs": 0})),
        ("timeoutMs 86400001", json!({"timeoutMs": 86_400_001u64})),
        (
            "outputBytesCap 67108865",
            json!({"outputBytesCap": 67_108_865u64}),
        ),
        ("outputBytesCap -1", json!({"outputBytesCap": -1})),
        (
            "outputBytesCap 8193 with the output in the result",
            json!({"streamStdoutStderr": false, "outputBytesCap": 8193}),
        ),
        (
            "timeoutMs with disableTimeout",
            json!({"timeoutMs": 1000, "disableTimeout": true}),
        ),
        ("tty", json!({"tty": true})),
        (
            "an external sandbox",
            json!({"sandboxPolicy": {"type": "externalSandbox"}}),
        ),
        (
            "writableRoots",
            json!({"sandboxPolicy": {"type": "workspaceWrite", "writableRoots": ["/"]}}),
        ),
    ] {
        let mut p = exec_params(&["true"], &dir);
        if let (Some(o), Some(m)) = (p.as_object_mut(), members.as_object()) {
            for (k, v) in m {
                o.insert(k.clone(), v.clone());
            }
        }
        let run = s.exec(p, HOST_WAIT).await?;
        check(run.error_code() == Some(-32602), || {
            format!("{what}: expected -32602, got {}", run.answer)
        })?;
    }
    s.close().await;
    Ok(())
}

const CMD_OUTPUT_CAP_NULL_V1: Case = case! {
    id: "CMD-43/output-cap-null-version-1",
    level: Must,
    timeout: 30 s,
    description: "in a version 1 session disableOutputCap gets -32602 and nothing runs",
    host: cmd_output_cap_null_v1,
};
async fn cmd_output_cap_null_v1(cx: Arc<Context>) -> Res<()> {
    let (mut s, dir) = exec_ready(&cx, "ctl").await?;
    let marker = format!("{dir}/ran");
    let p = with(
        exec_params(&["touch", &marker], &dir),
        "disableOutputCap",
        json!(true),
    );
    let run = s.exec(p, HOST_WAIT).await?;
    check(run.error_code() == Some(-32602), || {
        format!(
            "disableOutputCap in a version 1 session: expected -32602 (CMD-43), got {}",
            run.answer
        )
    })?;
    check(!exists(&mut s, &marker, &dir).await?, || {
        "the refused command ran anyway".to_owned()
    })?;
    s.close().await;
    Ok(())
}
