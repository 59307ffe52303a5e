//! Bounded waits: retry a check until it holds or a limit passes, then fail with the last
//! attempt's account, never hang.

use std::future::Future;
use std::thread;
use std::time::{Duration, Instant};

/// Retries `f` every 200 ms until it returns `Ok` or `limit` passes; then panics with
/// `what` and the last `Err`.
pub fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                if Instant::now() > deadline {
                    panic!("{what}: not within {limit:?}; last attempt: {last}");
                }
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Checks `check` every 10 ms until it holds or `limit` passes (then panics with `what`
/// and the last account `check` gave); for async tests.
pub async fn eventually_async(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<(), String>,
) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match check() {
            Ok(()) => return,
            Err(last) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {limit:?}; last: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Awaits `f` for at most `limit`; panics with `what` if it takes longer.
pub async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {limit:?}"))
}
