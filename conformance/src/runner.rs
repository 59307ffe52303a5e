//! Running cases and deciding the verdict.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;

use crate::case::Case;
use crate::context::{Context, Target};
use crate::outcome::{Level, Outcome};
use crate::select::Expectations;
use crate::traffic::TrafficLog;

/// What became of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It passed.
    Pass,
    /// It failed.
    Fail,
    /// It could not run against this target.
    Skip,
    /// The expectations file disabled it.
    Disabled,
}

impl Status {
    /// `"pass"`, `"fail"`, `"skip"`, `"disabled"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Skip => "skip",
            Self::Disabled => "disabled",
        }
    }
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// The case's id.
    pub id: &'static str,
    /// Its requirement.
    pub requirement: &'static str,
    /// Its level.
    pub level: Level,
    /// Its one-line description.
    pub description: &'static str,
    /// What became of it.
    pub status: Status,
    /// Why it failed, was skipped or disabled.
    pub reason: Option<String>,
    /// Wall time it took.
    pub duration: Duration,
    /// Whether a failure of this case fails the run (MUST, or SHOULD with `--strict`).
    pub counts: bool,
    /// The traffic log, kept for failures.
    pub log: Option<String>,
    /// Where the log was written, for failures.
    pub log_file: Option<PathBuf>,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// SHOULD failures fail the run too.
    pub strict: bool,
    /// Cases disabled with reasons.
    pub expectations: Expectations,
    /// Where failing cases' logs go (created if missing).
    pub log_dir: PathBuf,
    /// Cases run at once (at least 1).
    pub jobs: usize,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// What was tested.
    pub target: String,
    /// Target kind (`relay`, `host`).
    pub target_kind: &'static str,
    /// When the run started.
    pub started: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// `--strict` was given.
    pub strict: bool,
    /// One entry per selected case, in catalogue order.
    pub cases: Vec<CaseReport>,
    /// Where logs went.
    pub log_dir: PathBuf,
}

/// The overall verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every counted case passed (exit 0).
    Pass,
    /// A counted case failed (exit 1).
    Fail,
    /// No case ran (exit 2).
    NoneRan,
}

impl Verdict {
    /// The process exit code: 0, 1 or 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Pass => 0,
            Self::Fail => 1,
            Self::NoneRan => 2,
        }
    }

    /// `"pass"`, `"fail"`, `"none-ran"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::NoneRan => "none-ran",
        }
    }
}

impl RunReport {
    /// Number of cases with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.cases.iter().filter(|c| c.status == status).count()
    }

    /// The verdict: `NoneRan` when no case passed or failed; `Fail` when a counted case
    /// failed; else `Pass`.
    pub fn verdict(&self) -> Verdict {
        let ran = self
            .cases
            .iter()
            .any(|c| matches!(c.status, Status::Pass | Status::Fail));
        if !ran {
            Verdict::NoneRan
        } else if self
            .cases
            .iter()
            .any(|c| c.status == Status::Fail && c.counts)
        {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    }
}

fn log_file_name(id: &str) -> String {
    let mut s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.push_str(".log");
    s
}

async fn run_one(case: Case, target: Arc<Target>) -> (Outcome, Duration, String) {
    let log = TrafficLog::new();
    let cx = Arc::new(Context {
        case_id: case.id,
        target,
        log: log.clone(),
    });
    let start = Instant::now();
    let body = tokio::spawn(tokio::time::timeout(case.timeout, (case.body)(cx)));
    let outcome = match body.await {
        Ok(Ok(Ok(outcome))) => outcome,
        Ok(Ok(Err(e))) => Outcome::Fail(e.0),
        Ok(Err(_)) => Outcome::Fail(format!(
            "no verdict within the case's timeout of {} s",
            case.timeout.as_secs()
        )),
        Err(e) => Outcome::Fail(format!("the case's task failed: {e}")),
    };
    (outcome, start.elapsed(), log.render())
}

/// Runs `cases` against `target`, at most `opts.jobs` at once, calling `progress` as each
/// finishes (in completion order). Exclusive cases run first, each alone; slow cases start
/// next. The report lists the cases in the order given.
pub async fn run(
    cases: &[&Case],
    target: Arc<Target>,
    opts: &RunOptions,
    mut progress: impl FnMut(&CaseReport, usize, usize),
) -> RunReport {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let total = cases.len();
    let mut slots: Vec<Option<CaseReport>> = vec![None; total];
    let mut done = 0usize;
    let mut set = JoinSet::new();
    // Exclusive cases first (each alone, before anything else starts), then the slow ones
    // (protocol timers), so that neither waits for the other; the report keeps the order
    // given.
    let mut order: Vec<(usize, &&Case)> = cases.iter().enumerate().collect();
    order.sort_by_key(|(_, c)| (!c.exclusive, !c.slow));
    let queue = order.into_iter();
    let jobs = opts.jobs.max(1);

    let make = |case: &Case, status, reason, duration, log| CaseReport {
        id: case.id,
        requirement: case.requirement,
        level: case.level,
        description: case.description,
        status,
        reason,
        duration,
        counts: case.level == Level::Must || (opts.strict && case.level == Level::Should),
        log,
        log_file: None,
    };

    let mut queue = queue.peekable();
    // An exclusive case runs alone: the queue waits until the set is empty, and nothing
    // else starts while it runs.
    let mut alone = false;
    loop {
        while set.len() < jobs && !alone {
            let Some(&(_, next)) = queue.peek() else {
                break;
            };
            let exclusive = next.exclusive && opts.expectations.reason(next.id).is_none();
            if exclusive && !set.is_empty() {
                break;
            }
            let Some((i, case)) = queue.next() else { break };
            let skip = if target.runs(case.target) {
                None
            } else {
                Some(format!(
                    "a {} case; the target is not a {}",
                    case.target, case.target
                ))
            };
            if let Some(reason) = skip {
                let r = make(case, Status::Skip, Some(reason), Duration::ZERO, None);
                done += 1;
                progress(&r, done, total);
                if let Some(slot) = slots.get_mut(i) {
                    *slot = Some(r);
                }
                continue;
            }
            if let Some(reason) = opts.expectations.reason(case.id) {
                let r = make(
                    case,
                    Status::Disabled,
                    Some(reason.to_owned()),
                    Duration::ZERO,
                    None,
                );
                done += 1;
                progress(&r, done, total);
                if let Some(slot) = slots.get_mut(i) {
                    *slot = Some(r);
                }
                continue;
            }
            let case = (*case).clone();
            let target = target.clone();
            alone = case.exclusive;
            set.spawn(async move { (i, run_one(case, target).await) });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        alone = false;
        let Ok((i, (outcome, duration, log))) = joined else {
            continue;
        };
        let Some(case) = cases.get(i) else { continue };
        let (status, reason, log) = match outcome {
            Outcome::Pass => (Status::Pass, None, None),
            Outcome::Skip(r) => (Status::Skip, Some(r), None),
            Outcome::Fail(r) => (Status::Fail, Some(r), Some(log)),
        };
        let mut r = make(case, status, reason, duration, log);
        if let Some(text) = &r.log
            && std::fs::create_dir_all(&opts.log_dir).is_ok()
        {
            let path = opts.log_dir.join(log_file_name(case.id));
            let header = format!(
                "case {}\nrequirement {} ({})\n{}\nresult: FAIL: {}\n\n",
                case.id,
                case.requirement,
                case.level,
                case.description,
                r.reason.as_deref().unwrap_or("")
            );
            if std::fs::write(&path, header + text).is_ok() {
                r.log_file = Some(path);
            }
        }
        done += 1;
        progress(&r, done, total);
        if let Some(slot) = slots.get_mut(i) {
            *slot = Some(r);
        }
    }

    RunReport {
        target: target.describe(),
        target_kind: target.kind().as_str(),
        started,
        duration: t0.elapsed(),
        strict: opts.strict,
        cases: slots.into_iter().flatten().collect(),
        log_dir: opts.log_dir.clone(),
    }
}
