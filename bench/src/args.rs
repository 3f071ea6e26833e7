//! The command line: every flag with its unit and default, parsed and validated here, so the
//! rest of the tool only sees values that make sense together.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::outputs::Outputs;

const ABOUT: &str = "Offers auditbuf more audit events than a receiver on 127.0.0.1 takes, and \
shows what became of every one: delivered, turned away, dropped, stored, dead-lettered.";

const LONG_ABOUT: &str = "Offers auditbuf more audit events than a receiver on 127.0.0.1 takes, \
and shows what became of every one: delivered, turned away, dropped, stored, dead-lettered.

With no flag: 2 producers offer 250 000 typed 340-byte DataStorage events per second each \
(500 000/s) for 10 s to a pipeline whose receiver acknowledges at most 50 000 events/s: 10× \
overload, default overflow policy (drop-newest). It prints a table, checks the accounting \
invariant (the exit status is non-zero if it fails) and writes a CSV time series and a PNG \
chart of it.";

/// `auditbuf-bench`'s flags.
#[derive(Debug, Clone, Parser)]
// Negative numbers reach the parsers, which say the range, instead of reading as flags.
#[command(
    name = "auditbuf-bench",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    allow_negative_numbers = true
)]
pub struct Args {
    /// Producer threads recording events [1 to 256].
    #[arg(long, default_value = "2", value_parser = parse_producers)]
    pub producers: u32,

    /// Events per second each producer offers [1 to 100000000], or `unthrottled` (as fast as
    /// it can). Paced in bursts every millisecond.
    #[arg(long, value_name = "EVENTS/S|unthrottled", default_value = "250000", value_parser = parse_rate)]
    pub rate: Rate,

    /// Size of each event on the wire, in bytes [336, the event unpadded, to 65536]: the typed
    /// DataStorage event, its event_data padded to this size.
    #[arg(long, value_name = "BYTES", default_value = "340", value_parser = parse_event_bytes)]
    pub event_bytes: u32,

    /// Events the queue holds before the overflow policy applies [1 to 16777216].
    #[arg(long, value_name = "EVENTS", default_value = "10000", value_parser = parse_queue_capacity)]
    pub queue_capacity: u32,

    /// Most lanes auditbuf's queue splits into [1, 2, 4 or 8]: with more than one, each
    /// producer thread records into a lane of its own (the library's default is 1).
    #[arg(long, value_name = "LANES", default_value = "1", value_parser = parse_max_lanes)]
    pub max_lanes: u32,

    /// The overflow policy. (The help text is set apart: it shows brackets that rustdoc
    /// would read as a link.)
    #[arg(
        long,
        value_name = "POLICY",
        default_value = "drop-newest",
        value_parser = parse_overflow,
        help = "What `record` does when the queue is full: drop-newest, drop-oldest, \
                block[:TIMEOUT] (TIMEOUT in ms, or with a unit: 250ms, 2s; default 1s), or spill \
                (needs --store)"
    )]
    pub overflow: OverflowArg,

    /// How the receiver answers, comma-separated to combine: fast, latency:MS (every answer
    /// MS later), outage:START-END (503 from START to END, seconds into the run),
    /// errors:FRACTION (500 for that fraction of requests), reject:FRACTION (400 for that
    /// fraction of batches).
    #[arg(long, value_name = "BEHAVIOUR", default_value = "fast", value_parser = parse_sink)]
    pub sink: SinkBehaviour,

    /// Most events per second the receiver acknowledges (it holds its answers back to keep to
    /// it) [1 to 100000000], or `unlimited`.
    #[arg(long, value_name = "EVENTS/S|unlimited", default_value = "50000", value_parser = parse_sink_rate)]
    pub sink_rate: SinkRate,

    /// Backing store, in a temporary directory (auditbuf-bench-*) removed at the end, but
    /// left behind by a run that is interrupted.
    #[arg(long, value_enum, default_value_t = StoreKind::None)]
    pub store: StoreKind,

    /// When `record` returns: buffered (once queued) or wal (once in the store and synced;
    /// needs --store file or sqlite).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Buffered)]
    pub durability: DurabilityArg,

    /// When a file or sqlite store syncs: always, interval (every 1 s), never [default: the
    /// store's own, interval].
    #[arg(long, value_enum)]
    pub fsync: Option<FsyncArg>,

    /// Seconds of recording [0.1 to 3600].
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub duration: Duration,

    /// Seconds a failing batch is retried before it goes to the store, or counts as failed
    /// without one [0.1 to 3600; default: the library's 60].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub retry_for: Option<Duration>,

    /// Seconds `close` may take at the end to send what is left [0.1 to 3600].
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub drain_timeout: Duration,

    /// Where to write the time series (one row per 100 ms) [default:
    /// $CARGO_TARGET_DIR/auditbuf-bench/series.csv, or target/auditbuf-bench/series.csv when
    /// CARGO_TARGET_DIR is not set].
    #[arg(long, value_name = "PATH")]
    pub csv: Option<PathBuf>,

    /// Where to write the chart of the time series [default:
    /// $CARGO_TARGET_DIR/auditbuf-bench/chart.png, or target/auditbuf-bench/chart.png].
    #[arg(long, value_name = "PATH")]
    pub png: Option<PathBuf>,

    /// Also run tracing-appender and a naive queue; see the help text.
    #[arg(
        long,
        help = "Run the same scenario, one after the other in this run, through \
                tracing-appender's non_blocking writer and a naive Mutex<VecDeque> queue with a \
                sender thread, and show the three side by side"
    )]
    pub compare: bool,

    /// Instead of a run: measure the resident memory of an idle pipeline at defaults.
    /// Takes `--event-bytes`; a flag of the run it replaces is an error, not ignored.
    #[arg(
        long,
        conflicts_with_all = [
            "compare", "producers", "rate", "queue_capacity", "max_lanes", "overflow", "sink",
            "sink_rate", "store", "durability", "fsync", "duration", "retry_for",
            "drain_timeout", "csv", "png", "seed",
        ]
    )]
    pub idle: bool,

    /// Seed of the receiver's random answers (errors, reject).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Offered events per second, per producer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as the producer can call.
    Unthrottled,
    /// This many calls per second.
    PerSecond(u64),
}

/// The receiver's throughput ceiling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SinkRate {
    /// As fast as it can.
    Unlimited,
    /// At most this many events acknowledged per second.
    PerSecond(u64),
}

/// The overflow policy, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OverflowArg {
    /// `drop-newest`.
    DropNewest,
    /// `drop-oldest`.
    DropOldest,
    /// `block[:timeout]`.
    Block(Duration),
    /// `spill`.
    Spill,
}

impl OverflowArg {
    /// The name used in flags and messages.
    pub fn name(&self) -> String {
        match self {
            OverflowArg::DropNewest => "drop-newest".to_owned(),
            OverflowArg::DropOldest => "drop-oldest".to_owned(),
            OverflowArg::Block(t) => format!("block:{}", crate::report::duration(*t)),
            OverflowArg::Spill => "spill".to_owned(),
        }
    }
}

/// How the receiver answers. The default is `fast`: at once, 201.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SinkBehaviour {
    /// Extra time before every answer.
    pub latency: Duration,
    /// 503 for every request in this window (seconds from the start of the run).
    pub outage: Option<(f64, f64)>,
    /// Fraction of requests answered 500.
    pub errors: f64,
    /// Fraction of batches answered 400.
    pub reject: f64,
}

impl SinkBehaviour {
    /// As the user would write it.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.latency.is_zero() {
            parts.push(format!("latency:{}", self.latency.as_millis()));
        }
        if let Some((a, b)) = self.outage {
            parts.push(format!("outage:{a}-{b}"));
        }
        if self.errors > 0.0 {
            parts.push(format!("errors:{}", self.errors));
        }
        if self.reject > 0.0 {
            parts.push(format!("reject:{}", self.reject));
        }
        if parts.is_empty() {
            "fast".to_owned()
        } else {
            parts.join(",")
        }
    }
}

/// The backing store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// No store.
    None,
    /// A bounded FIFO in memory.
    Memory,
    /// A write-ahead log in a directory.
    File,
    /// An SQLite database.
    Sqlite,
}

/// `--durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// `record` returns once the event is queued.
    Buffered,
    /// `record` returns once the event is in the store and synced.
    Wal,
}

/// `--fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FsyncArg {
    /// After every append.
    Always,
    /// At most 1 s after an append.
    Interval,
    /// Never explicitly.
    Never,
}

impl Args {
    /// Checks what single flags cannot: combinations.
    pub fn validate(&self) -> Result<(), String> {
        let durable = matches!(self.store, StoreKind::File | StoreKind::Sqlite);
        if self.durability == DurabilityArg::Wal && !durable {
            return Err("--durability wal needs --store file or --store sqlite".to_owned());
        }
        if self.overflow == OverflowArg::Spill && self.store == StoreKind::None {
            return Err(
                "--overflow spill needs a backing store (--store memory, file or sqlite)"
                    .to_owned(),
            );
        }
        if let Some(max) = self.max_event_bytes()
            && self.event_bytes as usize > max
        {
            return Err(format!(
                "--event-bytes {} with --queue-capacity {}: a queue may hold 64 GiB, so its \
                 events may take {max} bytes each at most",
                self.event_bytes, self.queue_capacity
            ));
        }
        self.outputs()?;
        if self.fsync.is_some() && !durable {
            return Err("--fsync applies to --store file or --store sqlite only".to_owned());
        }
        if let Some((start, _)) = self.sink.outage
            && start >= self.duration.as_secs_f64()
        {
            return Err(format!(
                "--sink outage:{start}-…: the outage starts after the run ends ({} s)",
                self.duration.as_secs_f64()
            ));
        }
        Ok(())
    }

    /// Where the series and the chart go: as given, else under `CARGO_TARGET_DIR`.
    pub fn outputs(&self) -> Result<Outputs, String> {
        Outputs::from_env(self.csv.as_deref(), self.png.as_deref())
    }

    /// The largest event the pipeline is to allow, when its default (64 KiB) times the
    /// queue's capacity would pass the 64 GiB a queue may hold: what fits.
    pub fn max_event_bytes(&self) -> Option<usize> {
        const QUEUE_BYTES: u64 = 64 << 30;
        let capacity = u64::from(self.queue_capacity);
        (capacity * 64 * 1024 > QUEUE_BYTES).then(|| (QUEUE_BYTES / capacity) as usize)
    }

    /// Events per second offered by all producers together, if throttled.
    pub fn offered_rate(&self) -> Option<u64> {
        match self.rate {
            Rate::Unthrottled => None,
            Rate::PerSecond(r) => Some(r * u64::from(self.producers)),
        }
    }
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    if s.eq_ignore_ascii_case("unthrottled") {
        return Ok(Rate::Unthrottled);
    }
    parse_count(s, 1, 100_000_000, "events per second")
        .map(Rate::PerSecond)
        .map_err(|e| format!("{e}, or unthrottled"))
}

fn parse_sink_rate(s: &str) -> Result<SinkRate, String> {
    if s.eq_ignore_ascii_case("unlimited") {
        return Ok(SinkRate::Unlimited);
    }
    parse_count(s, 1, 100_000_000, "events per second")
        .map(SinkRate::PerSecond)
        .map_err(|e| format!("{e}, or unlimited"))
}

fn parse_producers(s: &str) -> Result<u32, String> {
    parse_u32(s, 1, 256, "producers")
}

/// The bench's event with no padding, in bytes: the smallest `--event-bytes` (checked
/// against the encoder by `event`'s tests).
pub const SMALLEST_EVENT_BYTES: u32 = 336;

fn parse_event_bytes(s: &str) -> Result<u32, String> {
    parse_u32(s, SMALLEST_EVENT_BYTES, 65_536, "bytes")
}

fn parse_queue_capacity(s: &str) -> Result<u32, String> {
    parse_u32(s, 1, 16_777_216, "events")
}

fn parse_max_lanes(s: &str) -> Result<u32, String> {
    match parse_u32(s, 1, 8, "lanes")? {
        n @ (1 | 2 | 4 | 8) => Ok(n),
        n => Err(format!("{n} lanes: must be 1, 2, 4 or 8")),
    }
}

fn parse_u32(s: &str, min: u32, max: u32, what: &str) -> Result<u32, String> {
    parse_count(s, min.into(), max.into(), what).map(|n| n as u32)
}

/// A whole number in `min..=max`; `_` may separate thousands (`250_000`).
fn parse_count(s: &str, min: u64, max: u64, what: &str) -> Result<u64, String> {
    let n: i128 = s
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number of {what}"))?;
    match u64::try_from(n) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{s} is out of range: {min} to {max} {what}")),
    }
}

/// Seconds, with decimals allowed (`0.5`), or with a unit (`500ms`, `2s`).
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let out_of_range = || format!("{s} is out of range: 0.1 to 3600 seconds");
    if s.trim_start().starts_with('-') {
        return Err(out_of_range());
    }
    let d = parse_duration(s, Unit::Seconds)?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(out_of_range());
    }
    Ok(d)
}

enum Unit {
    Seconds,
    Millis,
}

/// A duration: a number with an optional `ms` or `s` suffix; a bare number is in `bare`.
fn parse_duration(s: &str, bare: Unit) -> Result<Duration, String> {
    let (number, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, Unit::Millis)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, Unit::Seconds)
    } else {
        (s, bare)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (a number, optionally ending in ms or s)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!(
            "{s:?} is not a duration: it must be a positive number"
        ));
    }
    let seconds = match unit {
        Unit::Seconds => value,
        Unit::Millis => value / 1000.0,
    };
    if seconds > 86_400.0 {
        return Err(format!("{s:?} is longer than a day"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_overflow(s: &str) -> Result<OverflowArg, String> {
    match s {
        "drop-newest" => Ok(OverflowArg::DropNewest),
        "drop-oldest" => Ok(OverflowArg::DropOldest),
        "spill" => Ok(OverflowArg::Spill),
        "block" => Ok(OverflowArg::Block(Duration::from_secs(1))),
        _ => match s.strip_prefix("block:") {
            Some(t) => {
                let timeout = parse_duration(t, Unit::Millis)?;
                if timeout < Duration::from_millis(1) || timeout > Duration::from_secs(60) {
                    return Err(format!("block timeout {t} is out of range: 1 ms to 60 s"));
                }
                Ok(OverflowArg::Block(timeout))
            }
            None => Err(format!(
                "unknown overflow policy {s:?}; known: drop-newest, drop-oldest, block[:TIMEOUT], spill"
            )),
        },
    }
}

fn parse_fraction(s: &str, what: &str) -> Result<f64, String> {
    let f: f64 = s
        .parse()
        .map_err(|_| format!("{what}:{s}: {s:?} is not a number"))?;
    if !(0.0..=1.0).contains(&f) {
        return Err(format!("{what}:{s}: the fraction must be between 0 and 1"));
    }
    Ok(f)
}

fn parse_sink(s: &str) -> Result<SinkBehaviour, String> {
    let mut b = SinkBehaviour::default();
    for part in s.split(',').map(str::trim) {
        let (kind, value) = part.split_once(':').unwrap_or((part, ""));
        match (kind, value) {
            ("fast", "") => {}
            ("latency", v) => {
                let ms = parse_count(v, 0, 10_000, "milliseconds of latency")
                    .map_err(|e| format!("latency:{v}: {e}"))?;
                b.latency = Duration::from_millis(ms);
            }
            ("outage", v) => {
                let (a, z) = v.split_once('-').ok_or_else(|| {
                    format!("outage:{v}: expected START-END in seconds, e.g. outage:2-5")
                })?;
                let number = |x: &str| -> Result<f64, String> {
                    x.parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite() && *n >= 0.0)
                        .ok_or_else(|| format!("outage:{v}: {x:?} is not a number of seconds"))
                };
                let (start, end) = (number(a)?, number(z)?);
                if end <= start {
                    return Err(format!("outage:{v}: the end must come after the start"));
                }
                b.outage = Some((start, end));
            }
            ("errors", v) => b.errors = parse_fraction(v, "errors")?,
            ("reject", v) => b.reject = parse_fraction(v, "reject")?,
            _ => {
                return Err(format!(
                    "unknown receiver behaviour {part:?}; known: fast, latency:MS, outage:START-END, errors:FRACTION, reject:FRACTION"
                ));
            }
        }
    }
    Ok(b)
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
