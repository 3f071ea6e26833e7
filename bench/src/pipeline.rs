//! auditbuf as a target: a pipeline configured from the flags, with a DataStorage sink to the
//! loopback receiver and, if asked, a backing store in a temporary directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auditbuf::{
    Config, DataStorageSink, Durability, Error, FileStoreConfig, Fsync, MemoryStoreConfig,
    Overflow, Pipeline, RetryPolicy, SqliteStoreConfig, StoreConfig,
};

use crate::args::{Args, DurabilityArg, FsyncArg, OverflowArg, StoreKind};
use crate::event::EventParts;
use crate::report::count;
use crate::target::{Accounting, Counts, Finish, Refusal, Target};

/// A directory removed, with everything in it, when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

/// How this tool's temporary directories are named: the prefix, the process id, a number.
const TEMP_PREFIX: &str = "auditbuf-bench-";

impl TempDir {
    /// A new empty directory under the system's temporary directory. The directories of
    /// earlier runs that were stopped before they could remove their own (Ctrl-C, `kill`)
    /// are removed first: a store of a 10-second run at overload holds megabytes.
    pub fn new() -> Result<TempDir, String> {
        let temp = std::env::temp_dir();
        remove_leftovers(&temp);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = temp.join(format!("{TEMP_PREFIX}{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir(path))
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes this tool's directories in `temp` whose process is gone (by `/proc/<pid>`; where
/// there is no `/proc`, none), leaving those of runs still going.
fn remove_leftovers(temp: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !proc.join(pid.to_string()).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The pipeline under test.
#[derive(Debug)]
pub struct Auditbuf {
    pipeline: Pipeline,
    pad: usize,
    /// Kept until the pipeline is dropped: the store lives in it.
    _dir: Option<TempDir>,
}

impl Auditbuf {
    /// A pipeline as the flags say, sending to `url`.
    pub fn new(args: &Args, url: &str, pad: usize) -> Result<Auditbuf, String> {
        let (config, dir) = config(args)?;
        let sink = DataStorageSink::new(url).map_err(|e| e.to_string())?;
        let pipeline = Pipeline::new(config, sink).map_err(|e| format!("pipeline: {e}"))?;
        Ok(Auditbuf {
            pipeline,
            pad,
            _dir: dir,
        })
    }
}

/// The pipeline's configuration from the flags, and the store's directory if it needs one.
pub fn config(args: &Args) -> Result<(Config, Option<TempDir>), String> {
    let overflow = match args.overflow {
        OverflowArg::DropNewest => Overflow::DropNewest,
        OverflowArg::DropOldest => Overflow::DropOldest,
        OverflowArg::Block(timeout) => Overflow::Block { timeout },
        OverflowArg::Spill => Overflow::Spill,
    };
    let mut config = Config::default()
        .service("auditbuf-bench")
        .queue_capacity(args.queue_capacity as usize)
        .max_lanes(args.max_lanes as usize)
        .overflow(overflow)
        .durability(match args.durability {
            DurabilityArg::Buffered => Durability::Buffered,
            DurabilityArg::Wal => Durability::Wal,
        });
    // A queue over 1 048 576 events of the default 64 KiB each could hold more than the
    // 64 GiB a pipeline allows: the benchmark's events are far smaller, so the largest
    // event it allows shrinks to fit instead.
    if let Some(max) = args.max_event_bytes() {
        config = config.max_event_bytes(max);
    }
    if let Some(budget) = args.retry_for {
        config = config.retry(RetryPolicy::default().max_elapsed(budget));
    }
    let fsync = args.fsync.map(|f| match f {
        FsyncArg::Always => Fsync::Always,
        FsyncArg::Interval => Fsync::Interval(Duration::from_secs(1)),
        FsyncArg::Never => Fsync::Never,
    });
    let (store, dir) = match args.store {
        StoreKind::None => (None, None),
        StoreKind::Memory => (
            Some(StoreConfig::Memory(MemoryStoreConfig::default())),
            None,
        ),
        StoreKind::File => {
            let dir = TempDir::new()?;
            let mut c = FileStoreConfig::new(dir.path().join("store"));
            if let Some(f) = fsync {
                c = c.fsync(f);
            }
            (Some(StoreConfig::File(c)), Some(dir))
        }
        StoreKind::Sqlite => {
            let dir = TempDir::new()?;
            let mut c = SqliteStoreConfig::new(dir.path().join("events.db"));
            if let Some(f) = fsync {
                c = c.fsync(f);
            }
            (Some(StoreConfig::Sqlite(c)), Some(dir))
        }
    };
    if let Some(store) = store {
        config = config.store(store);
    }
    Ok((config, dir))
}

impl Target for Auditbuf {
    type Payload = EventParts;

    fn name(&self) -> &'static str {
        "auditbuf"
    }

    fn payload(&self, index: usize) -> EventParts {
        EventParts::new(index, self.pad)
    }

    #[inline]
    fn offer(&self, parts: &mut EventParts) -> Result<(), Refusal> {
        match self.pipeline.record(&parts.event()) {
            // Accepted; only its survival of a crash is in doubt (wal, failed sync).
            Ok(()) | Err(Error::NotDurable(_)) => Ok(()),
            Err(Error::Full) => Err(Refusal::Full),
            Err(Error::Timeout(_)) => Err(Refusal::Timeout),
            Err(_) => Err(Refusal::Other),
        }
    }

    fn counts(&self, offered: u64) -> Counts {
        counts(&self.pipeline.stats(), offered)
    }

    fn finish(&self, offered: u64, timeout: Duration) -> Finish {
        let report = self.pipeline.close(timeout);
        let s = report.stats;
        let mut notes = vec![format!(
            "auditbuf: {} requests sent, {} answered with a retryable failure, {} batches ran out of retries",
            count(s.sends),
            count(s.retries),
            count(s.batches_failed)
        )];
        if s.redelivered > 0 {
            notes.push(format!(
                "auditbuf: {} events sent again after a failed store commit (counted delivered once)",
                count(s.redelivered)
            ));
        }
        if s.endpoint_refusals > 0 {
            notes.push(format!(
                "auditbuf: the receiver refused every event tried alone {} times: kept as an endpoint failure, not dead-lettered",
                count(s.endpoint_refusals)
            ));
        }
        let r = &s.rejected;
        let other = [
            ("closed", r.closed),
            ("invalid UTF-8", r.invalid_utf8),
            ("invalid JSON", r.invalid_json),
            ("not an object", r.not_an_object),
            ("too large", r.too_large),
            ("missing field", r.missing_field),
            ("invalid field", r.invalid_field),
            ("serialize", r.serialize),
            ("store full", r.store_full),
            ("store error", r.store_error),
        ];
        let other: Vec<String> = other
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{what}: {}", count(*n)))
            .collect();
        if !other.is_empty() {
            notes.push(format!("auditbuf: other rejections: {}", other.join(", ")));
        }
        let left = s.recorded + s.recovered;
        let right = s.settled() + s.in_flight + s.queued + s.stored;
        Finish {
            counts: counts(&s, offered),
            completed: report.completed,
            accounting: Accounting::Checked {
                holds: s.is_consistent(),
                detail: format!("{} = {}", count(left), count(right)),
            },
            last_error: self.pipeline.last_error(),
            redelivered: s.redelivered,
            notes,
        }
    }
}

fn counts(s: &auditbuf::Stats, offered: u64) -> Counts {
    let r = &s.rejected;
    Counts {
        offered,
        accepted: s.recorded,
        recovered: s.recovered,
        delivered: s.delivered,
        dead_lettered: s.dead_lettered,
        failed: s.failed,
        rejected_full: r.queue_full,
        rejected_timeout: r.block_timeout,
        rejected_other: r.total() - r.queue_full - r.block_timeout,
        dropped_oldest: s.dropped.oldest,
        dropped_shutdown: s.dropped.shutdown,
        dropped_store_full: s.dropped.store_full,
        dropped_damaged: s.dropped.damaged,
        queued: s.queued,
        in_flight: s.in_flight,
        stored: s.stored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of a run whose process is gone is removed; this process's, and other
    /// names, stay.
    #[test]
    fn leftovers_of_runs_that_are_gone_are_removed() {
        let base = std::env::temp_dir().join(format!("leftovers-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        // No process has an id this high (Linux's pid_max is at most 2^22).
        let gone = base.join(format!("{TEMP_PREFIX}4000000000-1"));
        let ours = base.join(format!("{TEMP_PREFIX}{}-2", std::process::id()));
        let other = base.join("auditbuf-bench-notapid-3");
        for dir in [&gone, &ours, &other] {
            std::fs::create_dir_all(dir.join("store")).unwrap();
        }
        remove_leftovers(&base);
        assert!(!gone.exists());
        assert!(ours.exists() && other.exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
