//! Pipeline configuration: plain data, set in code with chained setters or read from JSON.
//!
//! - [`doc`]: reading it from JSON, strictly, and the range check every setting shares;
//! - [`json_path`]: where in the document an error sits, read back from its text;
//! - [`limits`]: the range of every setting.

pub(crate) mod doc;
pub(crate) mod json_path;
mod limits;

use std::time::Duration;

pub(crate) use doc::{in_range, parse_json, present};

use crate::encode::rules::EventRules;
use crate::{Error, RetryPolicy, StoreConfig, StoreRegistry};

/// What `record` does when it finds no slot: the queue is full (with several threads
/// recording, nearly full: see [`Config::queue_capacity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Turn the new event away with [`Error::Full`], and count it; never waits for a slot.
    /// The event is checked first, as under every policy: bad input gets its own error,
    /// never `Full`. A thread turned away again and again yields its CPU once every 32
    /// refusals while the flush thread is running (`sched_yield`, which returns at once when
    /// no other thread wants the CPU), so that callers calling again at once do not starve
    /// the thread that would make room.
    #[default]
    DropNewest,
    /// Make room by evicting the oldest queued event (with [`Config::max_lanes`] above 1, the
    /// calling thread's own oldest if it has one queued, else another thread's; counted as
    /// `dropped.oldest`) and take the
    /// new one: the newest events are the ones kept. If nothing can be evicted (every
    /// slot is being encoded into or sent, or free in another thread's bundle: see
    /// [`Config::queue_capacity`]), the new event is turned away with [`Error::Full`] after
    /// all. Never waits, never allocates.
    DropOldest,
    /// Wait up to `timeout` for a slot, then turn the event away with [`Error::Timeout`]
    /// ([`Error::Closed`] at once if the pipeline is closed meanwhile).
    /// While the flush thread is behind (the queue over half full when it last took a
    /// batch), a caller renders its own event's JSON rather than leave it to the flush
    /// thread it would wait for: fewer waits, slower calls at the p99. A sink recording
    /// into its own pipeline (on the flush thread, which alone makes room) never waits: a
    /// full queue turns its event away with [`Error::Full`].
    Block {
        /// Longest wait for a free slot.
        timeout: Duration,
    },
    /// Append the event to the backing store on the caller's thread (the slow path: it
    /// allocates and does I/O). What the queue holds is moved into the store first, so the
    /// store keeps the order. Needs a store.
    Spill,
}

/// When `record` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Once the event is in the in-memory queue. A crash loses what is buffered; the backing
    /// store, if any, holds events through outages and overflow.
    #[default]
    Buffered,
    /// Once the event is appended to the backing store and covered by an fsync ("nothing
    /// acknowledged is lost on kill -9"). Concurrent callers share each fsync (group commit).
    /// Needs a durable store (file, SQLite, Postgres).
    Wal,
}

/// How a pipeline buffers, batches and retries. Plain data: no sink, no handles.
///
/// ```
/// use auditbuf::{Config, Overflow};
/// use std::time::Duration;
///
/// let config = Config::default()
///     .service("gateway")
///     .queue_capacity(20_000)
///     .flush_interval(Duration::from_millis(250))
///     .overflow(Overflow::Block { timeout: Duration::from_millis(5) });
/// assert_eq!(config, Config::from_json(r#"{
///     "service": "gateway", "queue_capacity": 20000, "flush_interval_ms": 250,
///     "overflow": "block", "block_timeout_ms": 5
/// }"#)?);
///
/// let err = Config::from_json(r#"{"queue_capacty": 5}"#).unwrap_err();
/// assert!(err.to_string().contains("queue_capacty"));
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub(crate) store: Option<StoreConfig>,
    pub(crate) durability: Durability,
    pub(crate) service: String,
    pub(crate) queue_capacity: usize,
    pub(crate) max_lanes: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) batch_max_events: usize,
    pub(crate) batch_max_bytes: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) overflow: Overflow,
    pub(crate) retry: RetryPolicy,
    pub(crate) dead_letter_capacity: usize,
    pub(crate) initial_slot_bytes: usize,
    pub(crate) retained_slot_bytes: usize,
    pub(crate) drop_timeout: Duration,
    pub(crate) gap_markers: bool,
    pub(crate) categories: Vec<String>,
    pub(crate) timestamp_window: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: None,
            durability: Durability::Buffered,
            service: "auditbuf".to_owned(),
            queue_capacity: 10_000,
            max_lanes: 1,
            max_event_bytes: 64 * 1024,
            batch_max_events: 500,
            batch_max_bytes: 4 * 1024 * 1024,
            flush_interval: Duration::from_secs(1),
            overflow: Overflow::DropNewest,
            retry: RetryPolicy::default(),
            dead_letter_capacity: 1000,
            initial_slot_bytes: 512,
            retained_slot_bytes: 8 * 1024,
            drop_timeout: Duration::from_secs(1),
            gap_markers: false,
            categories: Vec::new(),
            timestamp_window: false,
        }
    }
}

impl Config {
    /// Name of the service recording events, for logs and metrics: 1 to 255 bytes, no
    /// control characters. Defaults to `"auditbuf"`.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = name.into();
        self
    }

    /// Events the queue holds before the overflow policy applies: 1 to
    /// 16 777 216 (2²⁴). A full queue of the largest events takes
    /// `queue_capacity × max_event_bytes` of memory (or `× initial_slot_bytes`, if that is
    /// larger), which may not exceed 64 GiB. Defaults to 10 000.
    ///
    /// Free places are handed to recording threads in bundles of up to 1/64 of the queue
    /// (at most 32), so with several threads recording the policy can apply while up to
    /// an eighth of the places wait, free, in other threads' bundles (the README's "When
    /// the queue is full"). With [`max_lanes`](Self::max_lanes) above 1 the queue has a lane
    /// for each recording thread, up to that many (fewer for large queues): each adds 32
    /// bytes a place, at most 8 MiB in all (a queue of 131 073 places or more has one lane,
    /// of 32 bytes a place, as the default single lane has).
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events;
        self
    }

    /// Most lanes the queue splits into: 1 (the default), 2, 4 or 8 (a large queue gets
    /// fewer, see [`queue_capacity`](Self::queue_capacity)).
    ///
    /// With one lane every caller shares one queue, and each caller's events arrive in the
    /// order it recorded them whatever OS thread each call runs on — an async task that a
    /// multi-threaded runtime (tokio's) moves between worker threads at an `.await`, a
    /// goroutine, a coroutine. With more, each OS thread records into a lane of its own, so
    /// threads recording at once on different CPUs write different cache lines (four
    /// producers on 2 vCPUs delivered 23–40 % more in the README's `hot_path` runs, with room
    /// in the queue, and the Go package's parallel benchmarks were 16–22 % cheaper); events
    /// then keep their order only per OS thread: a task or goroutine that moves between
    /// threads may see two of its events arrive in the other order.
    ///
    /// ```
    /// use auditbuf::{Config, NullSink, Pipeline};
    ///
    /// let err = Pipeline::new(Config::default().max_lanes(3), NullSink).unwrap_err();
    /// assert!(err.to_string().contains("max_lanes"));
    /// let pipeline = Pipeline::new(Config::default().max_lanes(1), NullSink)?;
    /// pipeline.record_json(br#"{"event_type":"a.b"}"#)?;
    /// # Ok::<(), auditbuf::Error>(())
    /// ```
    pub fn max_lanes(mut self, lanes: usize) -> Self {
        self.max_lanes = lanes;
        self
    }

    /// Largest encoded event accepted; larger ones are rejected with [`Error::TooLarge`].
    /// 64 bytes to 64 MiB, and below `batch_max_bytes`.
    /// Defaults to 64 KiB.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// Most events in one batch (lowered further if the sink has a smaller limit): 1 to
    /// 100 000. Defaults to 500.
    pub fn batch_max_events(mut self, events: usize) -> Self {
        self.batch_max_events = events;
        self
    }

    /// Most bytes in one batch, counting each event plus one separator byte (lowered further
    /// if the sink has a smaller limit): above `max_event_bytes`, at most
    /// 256 MiB. Defaults to 4 MiB.
    pub fn batch_max_bytes(mut self, bytes: usize) -> Self {
        self.batch_max_bytes = bytes;
        self
    }

    /// Longest time an event waits for its batch to fill before it is sent anyway: at least
    /// 1 ms ([`Duration::MAX`] waits for full batches and `flush`). Defaults to 1 s.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// What `record` does when the queue is full. Defaults to [`Overflow::DropNewest`].
    pub fn overflow(mut self, policy: Overflow) -> Self {
        self.overflow = policy;
        self
    }

    /// How failed batches are retried: `max_attempts` at least 1, the backoff base no
    /// larger than its cap. Defaults to [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Dead letters kept for [`Pipeline::dead_letters`](crate::Pipeline::dead_letters);
    /// older ones are evicted but stay counted. 0 to 100 000. Defaults to 1000.
    pub fn dead_letter_capacity(mut self, letters: usize) -> Self {
        self.dead_letter_capacity = letters;
        self
    }

    /// Capacity a new slot starts with, and the size a grown slot shrinks back to: 0 to
    /// 1 MiB. Defaults to 512 bytes.
    pub fn initial_slot_bytes(mut self, bytes: usize) -> Self {
        self.initial_slot_bytes = bytes;
        self
    }

    /// Largest capacity a slot keeps between events; events larger than this allocate. At
    /// most 64 MiB; a value below `initial_slot_bytes` acts as it.
    /// Defaults to 8 KiB.
    pub fn retained_slot_bytes(mut self, bytes: usize) -> Self {
        self.retained_slot_bytes = bytes;
        self
    }

    /// Deadline of the `close` that dropping the pipeline performs (any duration).
    /// Defaults to 1 s.
    pub fn drop_timeout(mut self, timeout: Duration) -> Self {
        self.drop_timeout = timeout;
        self
    }

    /// Puts a gap marker in the trail when events were lost: the next events sent are
    /// preceded by a synthetic `auditbuf.events.lost` event (DataStorage shape, category
    /// `security`) saying how many were lost, why (`queue_full`, `block_timeout`, `oldest`,
    /// `store_full`, `store_error`, `damaged`, `failed`) and between which times. At most one
    /// a second; each counts as recorded and in `Stats::gap_markers`. Defaults to off.
    pub fn gap_markers(mut self, on: bool) -> Self {
        self.gap_markers = on;
        self
    }

    /// The backing store that keeps events through outages, overflow (`Spill`) and, in
    /// `wal` mode, crashes. Defaults to none.
    pub fn store(mut self, store: StoreConfig) -> Self {
        self.store = Some(store);
        self
    }

    /// The backing store from its JSON form, `{"type":"file","params":{…}}`.
    ///
    /// # Errors
    ///
    /// As [`StoreConfig::from_json`]: [`Error::Config`] naming the field (`type`,
    /// `params.path`, …) when the document is malformed or a parameter is out of range.
    pub fn store_json(self, text: &str) -> Result<Self, Error> {
        self.store_json_with(text, &StoreRegistry::new())
    }

    /// The backing store from its JSON form, knowing the types in `registry`.
    ///
    /// # Errors
    ///
    /// As [`StoreConfig::from_json_with`].
    pub fn store_json_with(self, text: &str, registry: &StoreRegistry) -> Result<Self, Error> {
        Ok(self.store(StoreConfig::from_json_with(text, registry)?))
    }

    /// When `record` returns. Defaults to [`Durability::Buffered`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The only `event_category` values a typed event may have; others are rejected with
    /// [`Error::InvalidField`]. DataStorage's list grows with the server (14 values in its
    /// v1 spec: `gateway`, `notification`, `analysis`, `aiagent`, `signalprocessing`,
    /// `workflow`, `workflowexecution`, `orchestration`, `approval`, `effectiveness`,
    /// `actiontype`, `apifrontend`, `security`, `agentsession`), so checking it is up to
    /// you. 1 to 256 names of 1 to 50 characters. Defaults to none:
    /// any category of 1 to 50 characters.
    pub fn categories<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.categories = names.into_iter().map(Into::into).collect();
        self
    }

    /// Rejects a typed event whose `event_timestamp` lies outside the window DataStorage
    /// accepts, [now − 7 days, now + 60 min], by this machine's clock, with
    /// [`Error::InvalidField`]. Off by default: the server judges by its own clock and at
    /// delivery, which after an outage can be days after `record`, so a check here can
    /// neither promise acceptance nor replace the server's; the server's refusal is
    /// dead-lettered with its reason without costing other events. Turn it on to hear
    /// about a wrong clock or a stale replay at once. Defaults to `false`.
    pub fn check_timestamp_window(mut self, check: bool) -> Self {
        self.timestamp_window = check;
        self
    }

    /// What the configuration adds to the typed event's rules.
    pub(crate) fn event_rules(&self) -> EventRules {
        EventRules {
            categories: self.categories.iter().map(|c| c.as_str().into()).collect(),
            timestamp_window: self.timestamp_window,
        }
    }

    /// The service name.
    pub fn service_name(&self) -> &str {
        &self.service
    }

    /// Reads the configuration from the environment: `${PREFIX}_CONFIG` (a document as for
    /// [`from_json`](Self::from_json)) and `${PREFIX}_BACKING_STORE`
    /// (`{"type":"file","params":{"path":"…","max_total_bytes":…,"fsync":"always"}}`).
    /// Unset variables leave the defaults; errors name the variable and the field, e.g.
    /// `invalid configuration: AUDIT_BACKING_STORE: params.path: missing field`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`], whose field starts with the variable's name, when a variable is
    /// not UTF-8, or its document is malformed (see [`from_json`](Self::from_json) and
    /// [`StoreConfig::from_json`]) or out of range. Nothing is opened: a store's directory
    /// or server is first used by [`Pipeline::new`](crate::Pipeline::new).
    ///
    /// ```no_run
    /// // AUDIT_BACKING_STORE='{"type":"file","params":{"path":"/var/lib/audit","fsync":"always"}}'
    /// let config = auditbuf::Config::from_env("AUDIT")?;
    /// # Ok::<(), auditbuf::Error>(())
    /// ```
    pub fn from_env(prefix: &str) -> Result<Config, Error> {
        Self::from_env_with(prefix, &StoreRegistry::new())
    }

    /// Like [`from_env`](Self::from_env), also knowing the store types in `registry`.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_env_with(prefix: &str, registry: &StoreRegistry) -> Result<Config, Error> {
        Self::from_vars(prefix, registry, |name| std::env::var(name))
    }

    /// For bindings: [`from_env_with`](Self::from_env_with) reading the variables through
    /// `lookup` (the Go package hands over the values it read). Not part of the stable API.
    #[doc(hidden)]
    pub fn from_vars(
        prefix: &str,
        registry: &StoreRegistry,
        lookup: impl Fn(&str) -> Result<String, std::env::VarError>,
    ) -> Result<Config, Error> {
        let var = |name: &str| -> Result<Option<String>, Error> {
            match lookup(name) {
                Ok(v) => Ok(Some(v)),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(Error::config(name, "is not valid UTF-8"))
                }
            }
        };
        let in_var = |name: String| {
            move |e: Error| match e {
                Error::Config(c) => Error::config(format!("{name}: {}", c.field), c.reason),
                other => other,
            }
        };
        let config_var = format!("{prefix}_CONFIG");
        let mut config = match var(&config_var)? {
            Some(text) => Config::from_json(&text).map_err(in_var(config_var))?,
            None => Config::default(),
        };
        let store_var = format!("{prefix}_BACKING_STORE");
        if let Some(text) = var(&store_var)? {
            config.store =
                Some(StoreConfig::from_json_with(&text, registry).map_err(in_var(store_var))?);
        }
        Ok(config)
    }

    /// Reads a configuration document; absent fields keep their defaults. Field names are
    /// the setters' (`queue_capacity`, `categories`, `check_timestamp_window`, …); durations
    /// are in milliseconds (`flush_interval_ms`, `drop_timeout_ms`); `overflow` is
    /// `"drop_newest"`, `"drop_oldest"`, `"spill"` or `"block"` (with `block_timeout_ms`); `durability` is
    /// `"buffered"` or `"wal"`; `retry` holds `max_attempts`, `max_elapsed_ms`,
    /// `backoff_base_ms` and `backoff_cap_ms`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`retry.max_attempts`, or `(document)` for the
    /// document as a whole) when the text is not one JSON object, or has anything after it;
    /// a field is unknown, duplicated, `null` (leave it out instead), of the wrong type, or
    /// out of the range its setter documents; or the fields do not fit together
    /// (`max_event_bytes` not below `batch_max_bytes`, a backoff base above its cap,
    /// `block_timeout_ms` without `"block"`).
    pub fn from_json(text: &str) -> Result<Config, Error> {
        let doc: doc::ConfigDoc = parse_json(text)?;
        doc.into_config()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(super) fn field_of(text: &str) -> String {
        match Config::from_json(text) {
            Err(Error::Config(c)) => c.field,
            other => panic!("{text}: {other:?}"),
        }
    }

    /// An environment of `pairs` only, for `from_vars`.
    pub(crate) fn fake_env(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Result<String, std::env::VarError> {
        move |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
                .ok_or(std::env::VarError::NotPresent)
        }
    }

    #[test]
    fn environment_variables_are_read_and_errors_name_them() {
        let env = crate::config::tests::fake_env;
        let registry = StoreRegistry::new();
        let c = Config::from_vars("AUDIT", &registry, env(&[])).unwrap();
        assert_eq!(c, Config::default());
        let c = Config::from_vars(
            "AUDIT",
            &registry,
            env(&[
                ("AUDIT_CONFIG", r#"{"queue_capacity":7,"durability":"wal"}"#),
                (
                    "AUDIT_BACKING_STORE",
                    r#"{"type":"file","params":{"path":"/var/lib/a","fsync":"always"}}"#,
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.queue_capacity, 7);
        assert_eq!(c.durability, Durability::Wal);
        assert!(matches!(c.store, Some(StoreConfig::File(_))));
        for (vars, field) in [
            (
                &[(
                    "AUDIT_BACKING_STORE",
                    r#"{"type":"file","params":{"pth":"/x"}}"#,
                )][..],
                "AUDIT_BACKING_STORE: params.pth",
            ),
            (
                &[("AUDIT_BACKING_STORE", r#"{"type":"file"}"#)][..],
                "AUDIT_BACKING_STORE: params",
            ),
            (
                &[("AUDIT_BACKING_STORE", "file")][..],
                "AUDIT_BACKING_STORE: (document)",
            ),
            (
                &[("AUDIT_BACKING_STORE", r#"{"type":"tape"}"#)][..],
                "AUDIT_BACKING_STORE: type",
            ),
            (
                &[("AUDIT_CONFIG", r#"{"durability":"eventually"}"#)][..],
                "AUDIT_CONFIG: durability",
            ),
            (
                &[(
                    "AUDIT_BACKING_STORE",
                    r#"{"type":"file","params":{"path":"/x","segment_bytes":0}}"#,
                )][..],
                "AUDIT_BACKING_STORE: params.segment_bytes",
            ),
            (
                &[(
                    "AUDIT_BACKING_STORE",
                    r#"{"type":"file","params":{"path":""}}"#,
                )][..],
                "AUDIT_BACKING_STORE: params.path",
            ),
            (
                &[("AUDIT_BACKING_STORE", r#"{"type":"memory"} x"#)][..],
                "AUDIT_BACKING_STORE: (document)",
            ),
            (
                &[(
                    "AUDIT_CONFIG",
                    r#"{"queue_capacity":5}{"queue_capacity":0}"#,
                )][..],
                "AUDIT_CONFIG: (document)",
            ),
        ] {
            let vars: &'static [(&'static str, &'static str)] = vars;
            match Config::from_vars("AUDIT", &registry, env(vars)) {
                Err(Error::Config(c)) => assert_eq!(c.field, field, "{vars:?}: {}", c.reason),
                other => panic!("{vars:?}: {other:?}"),
            }
        }
    }
}
