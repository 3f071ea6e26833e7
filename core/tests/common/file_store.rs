//! The file store's test configuration and its segments on disk, for its test files.

use std::fs;
use std::path::{Path, PathBuf};

use auditbuf::{FileStoreConfig, Fsync};

pub(crate) fn config(dir: &Path) -> FileStoreConfig {
    FileStoreConfig::new(dir)
        .segment_bytes(4096)
        .fsync(Fsync::Never)
}

pub(crate) fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut s: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    s.sort();
    s
}
