//! Fault injection for tests (internal feature `_crash_points`): the process aborts at the
//! named point, as a crash would leave it. Without the feature, a point compiles to nothing.
//!
//! `AUDITBUF_CRASH_POINT=<name>` picks the point; `AUDITBUF_CRASH_SKIP=<n>` lets it pass `n`
//! times first. The tests run a child process with them set (see `core/tests/file_crash.rs`).

/// Aborts the process if the environment names this point and its passes are used up.
#[cfg(feature = "_crash_points")]
pub(crate) fn crash_point(name: &str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static PASSED: AtomicU64 = AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let point = std::env::var("AUDITBUF_CRASH_POINT").ok()?;
        let skip = std::env::var("AUDITBUF_CRASH_SKIP")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Some((point, skip))
    });
    if let Some((point, skip)) = target
        && point == name
        && PASSED.fetch_add(1, Ordering::SeqCst) >= *skip
    {
        std::process::abort();
    }
}

/// Nothing: crash points exist only with the internal feature `_crash_points`.
#[cfg(not(feature = "_crash_points"))]
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {}
