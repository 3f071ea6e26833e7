//! `--idle`: the resident memory of a pipeline at defaults, idle, before and after a burst.
//!
//! The pipeline allocates its slots on first use and, after 3 s without an event, frees the
//! spare ones and returns the memory to the system; this shows both ends.

use std::fmt::Write as _;
use std::time::Duration;

use auditbuf::{Config, DataStorageSink, Error, Pipeline};

use crate::args::{SinkBehaviour, SinkRate};
use crate::event::EventParts;
use crate::memory::rss;
use crate::receiver::Receiver;
use crate::report::{count, mib};

/// Events recorded in the burst: the default queue's capacity, so every slot is used once.
const BURST: u64 = 10_000;
/// Longer than the pipeline waits before it frees its spare slots (3 s).
const IDLE: Duration = Duration::from_secs(5);

/// The limit the README sets for an idle pipeline.
pub const TARGET_BYTES: u64 = 8 * 1024 * 1024;

/// Measures, and returns the report's text, and whether the accounting held (a missed memory
/// target is reported, not an error: it depends on the machine).
pub fn measure(pad: usize, event_bytes: u32) -> Result<(String, bool), String> {
    let receiver = Receiver::start(SinkBehaviour::default(), SinkRate::Unlimited, 1)
        .map_err(|e| format!("cannot start the receiver on 127.0.0.1: {e}"))?;
    let read = || rss().ok_or_else(|| "cannot read /proc/self/status (not Linux?)".to_owned());
    std::thread::sleep(Duration::from_millis(200));
    let before = read()?;
    let sink = DataStorageSink::new(&receiver.url()).map_err(|e| e.to_string())?;
    let pipeline = Pipeline::new(Config::default(), sink).map_err(|e| format!("pipeline: {e}"))?;
    std::thread::sleep(Duration::from_millis(500));
    let started = read()?;
    let parts = EventParts::new(0, pad);
    let mut accepted = 0;
    while accepted < BURST {
        match pipeline.record(&parts.event()) {
            Ok(()) => accepted += 1,
            // The queue is full for a moment: let the flush thread catch up.
            Err(Error::Full) => std::thread::sleep(Duration::from_micros(200)),
            Err(e) => return Err(format!("the burst's event was refused: {e}")),
        }
    }
    let burst = read()?;
    let report = pipeline.flush(Duration::from_secs(30));
    if report.stats.delivered != BURST {
        return Err(format!(
            "only {} of {} events were delivered within 30 s",
            report.stats.delivered, BURST
        ));
    }
    std::thread::sleep(IDLE);
    let idle = read()?;
    let report = pipeline.close(Duration::from_secs(5));

    let plus = |b: u64| {
        let d = b as i64 - before as i64;
        format!(
            "{}{:.1} MiB",
            if d < 0 { "-" } else { "+" },
            d.unsigned_abs() as f64 / 1048576.0
        )
    };
    let met = idle <= TARGET_BYTES;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "auditbuf-bench --idle: resident memory (VmRSS) of a pipeline at defaults (Config::default(),\n\
         DataStorage sink to a receiver on 127.0.0.1), the whole process\n"
    );
    let burst_label = format!("{} events of {event_bytes} B recorded", count(BURST));
    let idle_label = format!("delivered, then {} s idle", IDLE.as_secs());
    for (i, (label, bytes)) in [
        ("before the pipeline", before),
        ("pipeline started, idle", started),
        (burst_label.as_str(), burst),
        (idle_label.as_str(), idle),
    ]
    .into_iter()
    .enumerate()
    {
        let delta = if i == 0 { String::new() } else { plus(bytes) };
        let line = format!("{label:<34} {:>10}   {delta}", mib(bytes));
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(
        out,
        "\nidle process ≤ {}: {}; delivered {}, accounting {}",
        mib(TARGET_BYTES),
        if met { "met" } else { "NOT MET" },
        count(report.stats.delivered),
        if report.stats.is_consistent() {
            "holds"
        } else {
            "DOES NOT HOLD"
        }
    );
    Ok((out, report.stats.is_consistent()))
}
