//! Settings of the file store.

use std::path::PathBuf;
use std::time::Duration;

use crate::store::Fsync;
use crate::store::limits::{
    Invalid, MAX_STORE_BYTES, MIN_STORE_BYTES, fsync_invalid, out_of_range, path_invalid,
};
#[cfg(doc)]
use crate::{Error, FileStore};

/// Smallest and largest `segment_bytes`: 4 KiB and 1 GiB.
const MIN_SEGMENT_BYTES: u64 = 4096;
const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// Settings of a [`FileStore`]. Plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStoreConfig {
    pub(crate) path: PathBuf,
    pub(crate) max_total_bytes: u64,
    pub(crate) segment_bytes: u64,
    pub(crate) fsync: Fsync,
}

impl FileStoreConfig {
    /// The store's directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// A store in directory `path` (created, mode 0700, if missing; not empty).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStoreConfig {
            path: path.into(),
            max_total_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            fsync: Fsync::Interval(Duration::from_secs(1)),
        }
    }

    /// Most bytes of unconsumed records (headers included); appending more fails with
    /// [`Error::StoreFull`]. 4 KiB to 16 TiB. Defaults to 1 GiB.
    pub fn max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = bytes;
        self
    }

    /// Size at which a new segment is started (a batch is never split, so a segment may end
    /// up larger by one append): 4 KiB to 1 GiB. Defaults to 64 MiB.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// When appends are forced to disk; an interval is at least 1 ms. Defaults to
    /// [`Fsync::Interval`] of 1 s.
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }

    /// The first setting out of range, by its configuration name, with the reason.
    pub(crate) fn invalid(&self) -> Invalid {
        path_invalid(&self.path)
            .or_else(|| {
                out_of_range(
                    "max_total_bytes",
                    self.max_total_bytes.into(),
                    MIN_STORE_BYTES.into(),
                    MAX_STORE_BYTES.into(),
                )
            })
            .or_else(|| {
                out_of_range(
                    "segment_bytes",
                    self.segment_bytes.into(),
                    MIN_SEGMENT_BYTES.into(),
                    MAX_SEGMENT_BYTES.into(),
                )
            })
            .or_else(|| fsync_invalid(self.fsync))
    }
}
