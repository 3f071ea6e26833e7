//! Settings of the file store.

use std::path::PathBuf;
use std::time::Duration;

use crate::store::Fsync;
#[cfg(doc)]
use crate::{Error, FileStore};

/// Settings of a [`FileStore`]. Plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStoreConfig {
    pub(crate) path: PathBuf,
    pub(crate) max_total_bytes: u64,
    pub(crate) segment_bytes: u64,
    pub(crate) fsync: Fsync,
}

impl FileStoreConfig {
    /// A store in directory `path` (created, mode 0700, if missing).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStoreConfig {
            path: path.into(),
            max_total_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            fsync: Fsync::Interval(Duration::from_secs(1)),
        }
    }

    /// Most bytes of unconsumed records (headers included); appending more fails with
    /// [`Error::StoreFull`]. Defaults to 1 GiB.
    pub fn max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = bytes;
        self
    }

    /// Size at which a new segment is started (a batch is never split, so a segment may end
    /// up larger by one append). Defaults to 64 MiB.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// When appends are forced to disk. Defaults to [`Fsync::Interval`] of 1 s.
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }
}
