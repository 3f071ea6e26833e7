//! What the tests of the `auditbuf` command share: a scratch directory, the command, a
//! fingerprint of every file of a directory, and events.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use assert_cmd::Command;
use serde_json::Value;

/// Held by each test for its whole run, so that the tests of one file run one at a time.
///
/// A store a test closes keeps its `flock` while any process forked from the test process
/// still shares the descriptor, that is, until another test's child process has called
/// `exec` (descriptors are closed on exec, not on fork). Run side by side, a test could find
/// the store it just closed still "in use by another process" for a moment.
pub fn serial() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A scratch directory, removed when dropped.
pub struct Scope(pub PathBuf);

impl Scope {
    pub fn new(name: &str) -> Scope {
        let dir = std::env::temp_dir().join(format!("auditbuf-cli-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scope(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The `auditbuf` command, with `args`.
pub fn auditbuf(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_auditbuf"));
    cmd.args(args).env_remove("AUDIT_BACKING_STORE");
    cmd
}

/// What the command printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

pub fn run(args: &[&str]) -> Run {
    let out = auditbuf(args).output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "the command panicked:\n{}",
        run.stderr
    );
    run
}

/// Every file under `dir` (recursively) with its content, size, mode and modification
/// time: equal fingerprints mean nothing was written, created, removed or touched.
pub fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, i64, i64)> {
    let mut all = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                todo.push(path.clone());
            }
            let content = if meta.is_file() {
                fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            all.insert(
                path,
                (
                    content,
                    meta.permissions().mode(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                ),
            );
        }
    }
    all
}

/// Event `i`: a JSON object about 100 bytes long.
pub fn event(i: usize) -> Vec<u8> {
    format!(
        r#"{{"event_type":"test.event","n":{i},"pad":"{}"}}"#,
        "x".repeat(50)
    )
    .into_bytes()
}

/// The `n` of an event.
pub fn number(event: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(event).unwrap();
    v["n"].as_u64().unwrap()
}
