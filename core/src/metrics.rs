//! Prometheus metrics, collected from the pipeline's counters on each scrape.
//!
//! The names are those of kubernaut's `pkg/audit` README (`audit_events_buffered_total`,
//! `audit_events_dropped_total`, `audit_events_written_total`, `audit_batches_failed_total`,
//! `audit_buffer_size`, `audit_write_duration_seconds`), so its dashboards and alerts keep
//! working, plus what that library could not tell: dead letters, retries, the backing
//! store's events, bytes and oldest age, and the buffer's capacity. Every series carries a
//! constant `service` label. Nothing is added to `record`: counters are the atomics the
//! pipeline keeps anyway, read when Prometheus asks; only the flush thread writes the
//! histogram of sink calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::shared::Shared;
use crate::{Pipeline, Stats};

/// Upper bounds of the `audit_write_duration_seconds` buckets: a loopback call takes
/// about a millisecond, a DataStorage batch of 500 about half a second, a timeout 30 s.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Durations of sink calls, written by the flush thread only.
#[derive(Debug, Default)]
pub(crate) struct WriteDurations {
    /// One per bucket, and one for +Inf; not cumulative.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl WriteDurations {
    pub(crate) fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|le| seconds <= *le)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Sum in seconds, count, and `(upper bound, count)` per bucket (not cumulative; the
    /// last bound is `f64::MAX` for +Inf).
    fn read(&self) -> (f64, u64, [(f64, u64); BUCKETS.len() + 1]) {
        let mut buckets = [(0.0, 0); BUCKETS.len() + 1];
        let mut count = 0;
        for (i, bucket) in buckets.iter_mut().enumerate() {
            let n = self.counts[i].load(Ordering::Relaxed);
            *bucket = (BUCKETS.get(i).copied().unwrap_or(f64::MAX), n);
            count += n;
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, buckets)
    }

    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.read();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// What the store holds, as of its last change: readable without its lock.
#[derive(Debug, Default)]
pub(crate) struct StoreGauges {
    pub(crate) bytes: AtomicU64,
    /// When the oldest event was appended, in milliseconds since the epoch; 0 when empty.
    pub(crate) oldest_ms: AtomicU64,
}

impl StoreGauges {
    pub(crate) fn note(&self, bytes: u64, oldest_age: Option<Duration>) {
        self.bytes.store(bytes, Ordering::Relaxed);
        let oldest = oldest_age.map_or(0, |age| now_ms().saturating_sub(millis(age)).max(1));
        self.oldest_ms.store(oldest, Ordering::Relaxed);
    }

    fn oldest_age_seconds(&self) -> f64 {
        match self.oldest_ms.load(Ordering::Relaxed) {
            0 => 0.0,
            at => now_ms().saturating_sub(at) as f64 / 1e3,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// A counter or gauge family with its series, as collected from one snapshot; encoded once
/// for a `prometheus-client` registry (OpenMetrics) and once as the classic text format.
struct Family {
    /// The name without the unit and `_total` suffixes.
    base: &'static str,
    help: &'static str,
    counter: bool,
    unit: Option<Unit>,
    /// `(reason label, value)`; an empty reason means no `reason` label.
    series: Vec<(&'static str, f64)>,
}

impl Family {
    fn counter(base: &'static str, help: &'static str, series: Vec<(&'static str, u64)>) -> Self {
        Family {
            base,
            help,
            counter: true,
            unit: None,
            series: series.into_iter().map(|(r, v)| (r, v as f64)).collect(),
        }
    }

    fn gauge(base: &'static str, help: &'static str, unit: Option<Unit>, value: f64) -> Self {
        Family {
            base,
            help,
            counter: false,
            unit,
            series: vec![("", value)],
        }
    }

    /// The sample name of the classic text format.
    fn name(&self) -> String {
        let mut name = self.base.to_owned();
        match &self.unit {
            Some(Unit::Bytes) => name.push_str("_bytes"),
            Some(Unit::Seconds) => name.push_str("_seconds"),
            _ => {}
        }
        if self.counter {
            name.push_str("_total");
        }
        name
    }
}

/// Every family of a pipeline, from one consistent snapshot.
fn families(shared: &Shared, capacity: u64) -> Vec<Family> {
    let s: Stats = shared.counters.snapshot();
    let (r, d) = (s.rejected, s.dropped);
    let gauges = &shared.store_gauges;
    vec![
        Family::counter(
            "audit_events_buffered",
            "Events accepted by record (buffered for delivery).",
            vec![("", s.recorded)],
        ),
        Family::counter(
            "audit_events_dropped",
            "Events lost, by reason: turned away by record (queue_full, block_timeout, bad \
             input...) or given up after being accepted (oldest, store_full, shutdown, damaged, \
             failed).",
            vec![
                ("queue_full", r.queue_full),
                ("block_timeout", r.block_timeout),
                ("closed", r.closed),
                ("invalid_utf8", r.invalid_utf8),
                ("invalid_json", r.invalid_json),
                ("not_an_object", r.not_an_object),
                ("too_large", r.too_large),
                ("missing_field", r.missing_field),
                ("invalid_field", r.invalid_field),
                ("serialize", r.serialize),
                ("store_error", r.store_error),
                ("store_full", r.store_full + d.store_full),
                ("oldest", d.oldest),
                ("shutdown", d.shutdown),
                ("damaged", d.damaged),
                ("failed", s.failed),
            ],
        ),
        Family::counter(
            "audit_events_written",
            "Events the receiver acknowledged (any 2xx).",
            vec![("", s.delivered)],
        ),
        Family::counter(
            "audit_events_dead_lettered",
            "Events the receiver refused for good, by reason (rejected: a 4xx for the event \
             alone; too_large: a 413 for the event alone; store: a store row whose claimers \
             kept dying).",
            vec![
                ("rejected", s.dead_lettered_rejected()),
                ("too_large", s.dead_lettered_too_large),
                ("store", s.dead_lettered_by_store),
            ],
        ),
        Family::counter(
            "audit_batches_failed",
            "Batches whose retry budget ran out (kept in the backing store, or failed).",
            vec![("", s.batches_failed)],
        ),
        Family::counter(
            "audit_retries",
            "Sink calls answered with a retryable failure.",
            vec![("", s.retries)],
        ),
        Family::gauge(
            "audit_buffer_size",
            "Events buffered in memory: queued or being sent.",
            None,
            (s.queued + s.in_flight) as f64,
        ),
        Family::gauge(
            "audit_buffer_capacity",
            "Events the queue holds before the overflow policy applies.",
            None,
            capacity as f64,
        ),
        Family::gauge(
            "audit_backing_store_events",
            "Events waiting in the backing store.",
            None,
            shared.store_events() as f64,
        ),
        Family::gauge(
            "audit_backing_store",
            "Bytes of events waiting in the backing store.",
            Some(Unit::Bytes),
            gauges.bytes.load(Ordering::Relaxed) as f64,
        ),
        Family::gauge(
            "audit_backing_store_oldest_age",
            "Age of the oldest event in the backing store (0 when empty).",
            Some(Unit::Seconds),
            gauges.oldest_age_seconds(),
        ),
    ]
}

const WRITE_DURATION: &str = "audit_write_duration";
const WRITE_DURATION_HELP: &str =
    "Duration of sink calls (one per batch sent, retries and split halves included).";

/// The collector of one pipeline's metrics, for a `prometheus-client` registry.
#[derive(Debug)]
struct PipelineCollector {
    shared: Arc<Shared>,
    service: String,
    capacity: u64,
}

impl Collector for PipelineCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let service = [("service", self.service.as_str())];
        for family in families(&self.shared, self.capacity) {
            let kind = if family.counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let mut metric =
                e.encode_descriptor(family.base, family.help, family.unit.as_ref(), kind)?;
            for (reason, value) in &family.series {
                let with_reason = [("service", self.service.as_str()), ("reason", reason)];
                let mut series = if reason.is_empty() {
                    metric.encode_family(&service)?
                } else {
                    metric.encode_family(&with_reason)?
                };
                if family.counter {
                    series.encode_counter::<NoLabelSet, _, u64>(&(*value as u64), None)?;
                } else {
                    series.encode_gauge(value)?;
                }
            }
        }
        let mut metric = e.encode_descriptor(
            WRITE_DURATION,
            WRITE_DURATION_HELP,
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        self.shared
            .write_durations
            .encode(metric.encode_family(&service)?)
    }
}

/// The classic Prometheus text format (version 0.0.4), which every scraper and `promtool`
/// read: counters are named with their `_total` in `HELP` and `TYPE` too.
pub(crate) fn classic_text(shared: &Shared, service: &str, capacity: u64) -> String {
    use std::fmt::Write;
    let service = escape_label(service);
    let mut out = String::new();
    for family in families(shared, capacity) {
        let name = family.name();
        let kind = if family.counter { "counter" } else { "gauge" };
        let _ = writeln!(out, "# HELP {name} {}", family.help);
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (reason, value) in &family.series {
            if reason.is_empty() {
                let _ = writeln!(out, "{name}{{service=\"{service}\"}} {value}");
            } else {
                let _ = writeln!(
                    out,
                    "{name}{{service=\"{service}\",reason=\"{reason}\"}} {value}"
                );
            }
        }
    }
    let name = format!("{WRITE_DURATION}_seconds");
    let _ = writeln!(out, "# HELP {name} {WRITE_DURATION_HELP}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    let (sum, count, buckets) = shared.write_durations.read();
    let mut cumulative = 0;
    for (le, n) in buckets {
        cumulative += n;
        let le = if le == f64::MAX {
            "+Inf".to_owned()
        } else {
            le.to_string()
        };
        let _ = writeln!(
            out,
            "{name}_bucket{{service=\"{service}\",le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(out, "{name}_sum{{service=\"{service}\"}} {sum}");
    let _ = writeln!(out, "{name}_count{{service=\"{service}\"}} {count}");
    out
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Pipeline {
    /// Registers this pipeline's metrics in `registry`, collected from its counters on
    /// each scrape (nothing is added to `record`). The names follow kubernaut's `pkg/audit`
    /// (`audit_events_buffered_total`, `audit_events_dropped_total{reason}`,
    /// `audit_events_written_total`, `audit_batches_failed_total`, `audit_buffer_size`,
    /// `audit_write_duration_seconds`) plus `audit_events_dead_lettered_total{reason}`,
    /// `audit_retries_total`, `audit_buffer_capacity`, `audit_backing_store_events`,
    /// `audit_backing_store_bytes` and `audit_backing_store_oldest_age_seconds`, each with a
    /// `service` label.
    ///
    /// A registry holds one pipeline's metrics: for several pipelines, give each its own
    /// registry, or a sub-registry with a prefix (`registry.sub_registry_with_prefix`).
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) naming `metrics` if this pipeline's metrics
    /// were registered before (twice in one registry would expose every series twice).
    ///
    /// ```
    /// use auditbuf::{Config, NullSink, Pipeline};
    /// use prometheus_client::registry::Registry;
    ///
    /// let pipeline = Pipeline::new(Config::default().service("gateway"), NullSink)?;
    /// let mut registry = Registry::default();
    /// pipeline.register_metrics(&mut registry)?;
    /// assert!(pipeline.register_metrics(&mut registry).is_err());
    ///
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    /// assert!(text.contains(r#"audit_events_buffered_total{service="gateway"} 0"#));
    /// # Ok::<(), auditbuf::Error>(())
    /// ```
    pub fn register_metrics(&self, registry: &mut Registry) -> Result<(), crate::Error> {
        if self
            .shared()
            .metrics_registered
            .swap(true, Ordering::SeqCst)
        {
            return Err(crate::Error::config(
                "metrics",
                "this pipeline's metrics are registered already",
            ));
        }
        registry.register_collector(Box::new(self.collector()));
        Ok(())
    }

    /// This pipeline's metrics in the classic Prometheus text format (version 0.0.4, what
    /// every scraper and `promtool check metrics` read), for an endpoint of your own or for
    /// the C, Go and Python bindings. Same names and values as
    /// [`register_metrics`](Self::register_metrics).
    ///
    /// ```
    /// use auditbuf::{Config, NullSink, Pipeline};
    ///
    /// let pipeline = Pipeline::new(Config::default().service("gateway"), NullSink)?;
    /// let _ = pipeline.record_json(b"{not json");
    /// let text = pipeline.metrics_text();
    /// assert!(text.contains("# TYPE audit_events_dropped_total counter"));
    /// assert!(text.contains(r#"audit_events_dropped_total{service="gateway",reason="invalid_json"} 1"#));
    /// # Ok::<(), auditbuf::Error>(())
    /// ```
    pub fn metrics_text(&self) -> String {
        classic_text(self.shared(), self.service(), self.capacity() as u64)
    }

    fn collector(&self) -> PipelineCollector {
        PipelineCollector {
            shared: Arc::clone(self.shared()),
            service: self.service().to_owned(),
            capacity: self.capacity() as u64,
        }
    }
}
