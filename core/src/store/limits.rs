//! The ranges store settings share, checked when a configuration is read and again when a
//! store configured in code is opened.

use std::path::Path;

use super::Fsync;

/// Smallest `max_total_bytes` of a durable store (and `max_bytes` of the memory store).
pub(crate) const MIN_STORE_BYTES: u64 = 4096;
/// Largest `max_total_bytes` of a durable store: 16 TiB.
pub(crate) const MAX_STORE_BYTES: u64 = 1 << 44;

/// A setting out of range: its configuration name and why.
pub(crate) type Invalid = Option<(&'static str, String)>;

/// `Some` unless `min <= value <= max`.
pub(crate) fn out_of_range(field: &'static str, value: u128, min: u128, max: u128) -> Invalid {
    if value < min {
        Some((field, format!("is {value}, must be at least {min}")))
    } else if value > max {
        Some((field, format!("is {value}, must be at most {max}")))
    } else {
        None
    }
}

/// `Some` when `path` cannot name a file: empty, or holding a NUL byte.
pub(crate) fn path_invalid(path: &Path) -> Invalid {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        Some(("path", "must not be empty".to_owned()))
    } else if bytes.contains(&0) {
        Some(("path", "must not contain a NUL byte".to_owned()))
    } else {
        None
    }
}

/// `Some` when an interval fsync is shorter than 1 ms.
pub(crate) fn fsync_invalid(fsync: Fsync) -> Invalid {
    match fsync {
        Fsync::Interval(d) => out_of_range("fsync_interval_ms", d.as_millis(), 1, u128::MAX),
        Fsync::Always | Fsync::Never => None,
    }
}
