//! The time series: the counts of each system every 100 ms, and its CSV form.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::target::Counts;

/// How often the counts are read.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// The counts at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Seconds since the producers started.
    pub t: f64,
    /// Cumulative counts then.
    pub counts: Counts,
}

/// One system's series.
#[derive(Debug, Clone)]
pub struct Series {
    /// The system's name.
    pub system: &'static str,
    /// Samples, oldest first; the first is at t = 0 with zero counts.
    pub samples: Vec<Sample>,
    /// When the producers stopped, in seconds.
    pub run_end: f64,
}

/// One interval of a series: what happened in it, and the depths at its end.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Interval {
    /// End of the interval, seconds.
    pub t: f64,
    /// Length of the interval, seconds.
    pub dt: f64,
    /// Counts in the interval (the depths — queued, in flight, stored — are levels at `t`).
    pub delta: Counts,
}

impl Series {
    /// The intervals between consecutive samples.
    pub fn intervals(&self) -> Vec<Interval> {
        self.samples
            .windows(2)
            .map(|w| {
                let (a, b) = (&w[0].counts, &w[1].counts);
                let d = |x: fn(&Counts) -> u64| x(b).saturating_sub(x(a));
                Interval {
                    t: w[1].t,
                    dt: w[1].t - w[0].t,
                    delta: Counts {
                        offered: d(|c| c.offered),
                        accepted: d(|c| c.accepted),
                        recovered: d(|c| c.recovered),
                        delivered: d(|c| c.delivered),
                        dead_lettered: d(|c| c.dead_lettered),
                        failed: d(|c| c.failed),
                        rejected_full: d(|c| c.rejected_full),
                        rejected_timeout: d(|c| c.rejected_timeout),
                        rejected_other: d(|c| c.rejected_other),
                        dropped_oldest: d(|c| c.dropped_oldest),
                        dropped_shutdown: d(|c| c.dropped_shutdown),
                        dropped_store_full: d(|c| c.dropped_store_full),
                        dropped_damaged: d(|c| c.dropped_damaged),
                        queued: b.queued,
                        in_flight: b.in_flight,
                        stored: b.stored,
                    },
                }
            })
            .collect()
    }

    /// The counts when the producers stopped (the last sample at or before `run_end`).
    pub fn at_run_end(&self) -> Counts {
        self.samples
            .iter()
            .rev()
            .find(|s| s.t <= self.run_end + 1e-9)
            .map(|s| s.counts)
            .unwrap_or_default()
    }
}

const HEADER: &str = "system,t_s,offered,accepted,delivered,rejected_queue_full,rejected_block_timeout,rejected_other,dropped_oldest,dropped_shutdown,dropped_store_full,dropped_damaged,failed,dead_lettered,queue_depth,in_flight,store_depth";

/// The CSV text: one row per system and interval; counts are per interval (events in the
/// ~100 ms ending at `t_s`), depths are levels at `t_s`.
pub fn csv(series: &[Series]) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    for s in series {
        for i in s.intervals() {
            let c = &i.delta;
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "{},{:.3},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                s.system,
                i.t,
                c.offered,
                c.accepted,
                c.delivered,
                c.rejected_full,
                c.rejected_timeout,
                c.rejected_other,
                c.dropped_oldest,
                c.dropped_shutdown,
                c.dropped_store_full,
                c.dropped_damaged,
                c.failed,
                c.dead_lettered,
                c.queued,
                c.in_flight,
                c.stored
            );
        }
    }
    out
}

/// Whether `path` can be written (its directory created if need be), leaving what it
/// holds as it is.
pub fn check_writable(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map(drop)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes `bytes` to `path`, creating its directory.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut file =
        std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, offered: u64, delivered: u64, queued: u64) -> Sample {
        Sample {
            t,
            counts: Counts {
                offered,
                delivered,
                queued,
                ..Counts::default()
            },
        }
    }

    #[test]
    fn intervals_hold_differences_and_levels() {
        let s = Series {
            system: "auditbuf",
            samples: vec![
                sample(0.0, 0, 0, 0),
                sample(0.1, 100, 10, 90),
                sample(0.2, 250, 30, 50),
            ],
            run_end: 0.15,
        };
        let i = s.intervals();
        assert_eq!(i.len(), 2);
        assert_eq!(i[1].delta.offered, 150);
        assert_eq!(i[1].delta.delivered, 20);
        assert_eq!(i[1].delta.queued, 50);
        assert!((i[1].dt - 0.1).abs() < 1e-9);
        assert_eq!(s.at_run_end().offered, 100);
        let text = csv(&[s]);
        assert_eq!(text.lines().count(), 3);
        assert!(
            text.lines()
                .nth(2)
                .unwrap()
                .starts_with("auditbuf,0.200,150,0,20,")
        );
        assert_eq!(
            text.lines().next().unwrap().split(',').count(),
            text.lines().nth(1).unwrap().split(',').count()
        );
    }
}
