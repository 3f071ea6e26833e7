//! `auditbuf_stats` and `auditbuf_report`: counters copied out in structs that can grow.

use auditbuf::{Report, Stats};

use crate::error::fail;
use crate::status::{AUDITBUF_INVALID_PARAMETER, auditbuf_status};

/// A snapshot of a pipeline's counters (`auditbuf::Stats`), all in events (or calls, for
/// `rejected_*`, or batches, for `sends` and `retries`). In every snapshot
/// `recorded + recovered == delivered + dead_lettered + failed + dropped_shutdown +
/// dropped_store_full + dropped_damaged + dropped_oldest + in_flight + queued + stored`.
///
/// The struct grows: fields are only ever added at the end. Set `size` to
/// `sizeof(auditbuf_stats)` before the call; the library fills the fields that fit in both
/// its version and yours, and sets `size` to the number of bytes it filled.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct auditbuf_stats {
    /// In: the size of the caller's struct. Out: the bytes filled.
    pub size: usize,
    /// Events accepted by the `auditbuf_record_*` calls.
    pub recorded: u64,
    /// Events found in the backing store when the pipeline opened it (an earlier run's).
    pub recovered: u64,
    /// Events the sink acknowledged.
    pub delivered: u64,
    /// Events the sink refused for good (after bisection), with its reason.
    pub dead_lettered: u64,
    /// Events whose batch ran out of retries with no backing store.
    pub failed: u64,
    /// Events still buffered when `auditbuf_close`'s deadline passed, with no store.
    pub dropped_shutdown: u64,
    /// Events that should have gone to the backing store, but it was full.
    pub dropped_store_full: u64,
    /// Events lost to damage the backing store found reading them back.
    pub dropped_damaged: u64,
    /// Events held by the flush thread: batched, being sent or waiting for a retry.
    pub in_flight: u64,
    /// Events accepted and not yet taken by the flush thread.
    pub queued: u64,
    /// Events in the backing store.
    pub stored: u64,
    /// Batches handed to the sink, retries and split halves included.
    pub sends: u64,
    /// Sends answered with a retryable failure.
    pub retries: u64,
    /// Calls turned away with `AUDITBUF_FULL`.
    pub rejected_queue_full: u64,
    /// Calls turned away with `AUDITBUF_TIMEOUT`.
    pub rejected_block_timeout: u64,
    /// Calls turned away with `AUDITBUF_CLOSED` or `AUDITBUF_FORKED`.
    pub rejected_closed: u64,
    /// Calls turned away with `AUDITBUF_INVALID_UTF8`.
    pub rejected_invalid_utf8: u64,
    /// Calls turned away with `AUDITBUF_INVALID_JSON`.
    pub rejected_invalid_json: u64,
    /// Calls turned away with `AUDITBUF_NOT_AN_OBJECT`.
    pub rejected_not_an_object: u64,
    /// Calls turned away with `AUDITBUF_TOO_LARGE`.
    pub rejected_too_large: u64,
    /// Calls turned away with `AUDITBUF_MISSING_FIELD`.
    pub rejected_missing_field: u64,
    /// Calls turned away with `AUDITBUF_INVALID_FIELD`.
    pub rejected_invalid_field: u64,
    /// Calls turned away with `AUDITBUF_SERIALIZE`.
    pub rejected_serialize: u64,
    /// Calls turned away with `AUDITBUF_STORE_FULL`.
    pub rejected_store_full: u64,
    /// Calls turned away with `AUDITBUF_STORE`, `AUDITBUF_IO` or `AUDITBUF_CONFIG`.
    pub rejected_store_error: u64,
    /// Events sent again because the store failed to record their delivery (the receiver
    /// saw them twice; they count once in `delivered`). Not part of the invariant.
    pub redelivered: u64,
    /// Times the receiver refused every event it was shown alone with the same answer and
    /// the events were kept as after any failure, not dead-lettered.
    pub endpoint_refusals: u64,
    /// Queued events evicted to make room for newer ones (overflow `"drop_oldest"`).
    pub dropped_oldest: u64,
    /// Batches whose retry budget ran out (their events went to the store, or failed).
    pub batches_failed: u64,
    /// Of `recorded`: gap markers the pipeline added (`"gap_markers": true`).
    pub gap_markers: u64,
    /// Of `dead_lettered`: events refused with 413 even alone.
    pub dead_lettered_too_large: u64,
    /// Of `dead_lettered`: events the store dead-lettered on its own (Postgres rows whose
    /// claimers kept dying).
    pub dead_lettered_by_store: u64,
}

/// What `auditbuf_flush` or `auditbuf_close` achieved by its deadline.
///
/// Grows like `auditbuf_stats` (its last member): set `size` to `sizeof(auditbuf_report)`
/// (and need not set `stats.size`); the library fills what fits and sets both sizes to
/// the bytes it filled.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct auditbuf_report {
    /// In: the size of the caller's struct. Out: the bytes filled.
    pub size: usize,
    /// 1 if the requested work finished before the deadline, else 0.
    pub completed: u32,
    /// Always 0.
    pub reserved: u32,
    /// Events still queued or in flight when the call returned.
    pub left: u64,
    /// The counters when the call returned.
    pub stats: auditbuf_stats,
}

impl From<&Stats> for auditbuf_stats {
    fn from(s: &Stats) -> Self {
        let r = &s.rejected;
        auditbuf_stats {
            size: size_of::<auditbuf_stats>(),
            recorded: s.recorded,
            recovered: s.recovered,
            delivered: s.delivered,
            dead_lettered: s.dead_lettered,
            failed: s.failed,
            dropped_shutdown: s.dropped.shutdown,
            dropped_store_full: s.dropped.store_full,
            dropped_damaged: s.dropped.damaged,
            in_flight: s.in_flight,
            queued: s.queued,
            stored: s.stored,
            sends: s.sends,
            retries: s.retries,
            rejected_queue_full: r.queue_full,
            rejected_block_timeout: r.block_timeout,
            rejected_closed: r.closed,
            rejected_invalid_utf8: r.invalid_utf8,
            rejected_invalid_json: r.invalid_json,
            rejected_not_an_object: r.not_an_object,
            rejected_too_large: r.too_large,
            rejected_missing_field: r.missing_field,
            rejected_invalid_field: r.invalid_field,
            rejected_serialize: r.serialize,
            rejected_store_full: r.store_full,
            rejected_store_error: r.store_error,
            redelivered: s.redelivered,
            endpoint_refusals: s.endpoint_refusals,
            dropped_oldest: s.dropped.oldest,
            batches_failed: s.batches_failed,
            gap_markers: s.gap_markers,
            dead_lettered_too_large: s.dead_lettered_too_large,
            dead_lettered_by_store: s.dead_lettered_by_store,
        }
    }
}

/// How many bytes of a struct of `ours` bytes to copy into the caller's of `theirs`:
/// whole 8-byte fields after the leading `size`, never a torn one.
fn fitting(theirs: usize, ours: usize, what: &str) -> Result<usize, auditbuf_status> {
    if theirs < size_of::<usize>() {
        return Err(fail(
            AUDITBUF_INVALID_PARAMETER,
            format_args!(
                "{what}.size is {theirs}; set it to sizeof({what}) ({ours} in this library)"
            ),
        ));
    }
    let n = theirs.min(ours);
    Ok(n - (n - size_of::<usize>()) % 8)
}

/// Copies the first `n` bytes of `ours` over `out`.
///
/// # Safety
/// `out` must point to at least `n` writable bytes, `n <= size_of::<T>()`.
unsafe fn copy_prefix<T: Copy>(ours: &T, out: *mut T, n: usize) {
    // Safety: `ours` has `size_of::<T>() >= n` bytes; `out` has `n` writable bytes (the
    // caller's promise); a local cannot overlap the caller's struct.
    unsafe { std::ptr::copy_nonoverlapping((ours as *const T).cast::<u8>(), out.cast::<u8>(), n) };
}

/// Fills the caller's `auditbuf_stats`, honouring its `size`.
///
/// # Safety
/// `out` must be non-NULL, aligned, and point to at least `(*out).size` writable bytes.
pub(crate) unsafe fn write_stats(stats: &Stats, out: *mut auditbuf_stats) -> auditbuf_status {
    // Safety: `out` is valid for its leading `size` field (the caller's promise).
    let theirs = unsafe { (*out).size };
    let n = match fitting(theirs, size_of::<auditbuf_stats>(), "auditbuf_stats") {
        Ok(n) => n,
        Err(status) => return status,
    };
    let mut ours = auditbuf_stats::from(stats);
    ours.size = n;
    // Safety: `n <= theirs`, the bytes the caller has.
    unsafe { copy_prefix(&ours, out, n) };
    crate::AUDITBUF_OK
}

/// Checks the caller's `auditbuf_report` before the work it reports on: NULL is fine
/// (no report wanted), a `size` too small to hold anything is `AUDITBUF_INVALID_PARAMETER`.
///
/// # Safety
/// `out` must be NULL or aligned and readable for its leading `size` field.
pub(crate) unsafe fn check_size(out: *const auditbuf_report) -> Result<(), auditbuf_status> {
    if out.is_null() {
        return Ok(());
    }
    // Safety: non-NULL, readable for its `size` (the caller's promise).
    let theirs = unsafe { (*out).size };
    fitting(theirs, size_of::<auditbuf_report>(), "auditbuf_report").map(|_| ())
}

/// Fills the caller's `auditbuf_report` (if not NULL), honouring its `size`.
///
/// # Safety
/// `out` must be NULL, or aligned and point to at least `(*out).size` writable bytes.
pub(crate) unsafe fn write_report(report: &Report, out: *mut auditbuf_report) {
    // Safety: as this function's.
    unsafe { write_report_of(&report.stats, report.completed, out) };
}

/// Like `write_report`, from a snapshot.
///
/// # Safety
/// As `write_report`'s.
pub(crate) unsafe fn write_report_of(stats: &Stats, completed: bool, out: *mut auditbuf_report) {
    if out.is_null() {
        return;
    }
    // Safety: non-NULL, valid for its leading `size` field (the caller's promise).
    let theirs = unsafe { (*out).size };
    let Ok(n) = fitting(theirs, size_of::<auditbuf_report>(), "auditbuf_report") else {
        return;
    };
    let stats_at = std::mem::offset_of!(auditbuf_report, stats);
    let mut inner = auditbuf_stats::from(stats);
    inner.size = n.saturating_sub(stats_at);
    let ours = auditbuf_report {
        size: n,
        completed: u32::from(completed),
        reserved: 0,
        left: stats.queued + stats.in_flight,
        stats: inner,
    };
    // Safety: `n <= theirs`, the bytes the caller has.
    unsafe { copy_prefix(&ours, out, n) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_fields_that_fit_are_copied() {
        let full = size_of::<auditbuf_stats>();
        assert_eq!(fitting(full, full, "s"), Ok(full));
        assert_eq!(fitting(full + 64, full, "s"), Ok(full));
        assert_eq!(fitting(8 + 3 * 8, full, "s"), Ok(32));
        assert_eq!(fitting(8 + 3 * 8 + 5, full, "s"), Ok(32));
        assert_eq!(fitting(8, full, "s"), Ok(8));
        assert!(fitting(4, full, "s").is_err());
        assert_eq!(std::mem::offset_of!(auditbuf_report, stats) % 8, 0);
    }
}
