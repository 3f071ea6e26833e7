//! Pipeline configuration: plain data, set in code with chained setters or read from JSON.

use std::time::Duration;

use serde::Deserialize;

use crate::{Error, RetryPolicy, StoreConfig, StoreRegistry};

/// What `record` does when every slot is taken (the queue is full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Turn the new event away at once with [`Error::Full`], and count it.
    #[default]
    DropNewest,
    /// Make room by evicting the oldest queued event (counted as `dropped.oldest`) and take
    /// the new one: the newest events are the ones kept. If nothing can be evicted (every
    /// slot is being encoded into or sent), the new event is turned away with
    /// [`Error::Full`] after all. Never waits, never allocates.
    DropOldest,
    /// Wait up to `timeout` for a slot, then turn the event away with [`Error::Timeout`].
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: None,
            durability: Durability::Buffered,
            service: "auditbuf".to_owned(),
            queue_capacity: 10_000,
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
        }
    }
}

impl Config {
    /// Name of the service recording events, for logs and metrics. Defaults to `"auditbuf"`.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = name.into();
        self
    }

    /// Events the queue holds before the overflow policy applies. Defaults to 10 000.
    pub fn queue_capacity(mut self, events: usize) -> Self {
        self.queue_capacity = events;
        self
    }

    /// Largest encoded event accepted; larger ones are rejected with [`Error::TooLarge`].
    /// Defaults to 64 KiB.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// Most events in one batch (lowered further if the sink has a smaller limit).
    /// Defaults to 500.
    pub fn batch_max_events(mut self, events: usize) -> Self {
        self.batch_max_events = events;
        self
    }

    /// Most bytes in one batch, counting each event plus one separator byte (lowered further
    /// if the sink has a smaller limit). Defaults to 4 MiB.
    pub fn batch_max_bytes(mut self, bytes: usize) -> Self {
        self.batch_max_bytes = bytes;
        self
    }

    /// Longest time an event waits for its batch to fill before it is sent anyway.
    /// Defaults to 1 s.
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// What `record` does when the queue is full. Defaults to [`Overflow::DropNewest`].
    pub fn overflow(mut self, policy: Overflow) -> Self {
        self.overflow = policy;
        self
    }

    /// How failed batches are retried. Defaults to [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Dead letters kept for [`Pipeline::dead_letters`](crate::Pipeline::dead_letters);
    /// older ones are evicted but stay counted. Defaults to 1000.
    pub fn dead_letter_capacity(mut self, letters: usize) -> Self {
        self.dead_letter_capacity = letters;
        self
    }

    /// Capacity a new slot starts with, and the size a grown slot shrinks back to.
    /// Defaults to 512 bytes.
    pub fn initial_slot_bytes(mut self, bytes: usize) -> Self {
        self.initial_slot_bytes = bytes;
        self
    }

    /// Largest capacity a slot keeps between events; events larger than this allocate.
    /// Defaults to 8 KiB.
    pub fn retained_slot_bytes(mut self, bytes: usize) -> Self {
        self.retained_slot_bytes = bytes;
        self
    }

    /// Deadline of the `close` that dropping the pipeline performs. Defaults to 1 s.
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
    pub fn store_json(self, text: &str) -> Result<Self, Error> {
        self.store_json_with(text, &StoreRegistry::new())
    }

    /// The backing store from its JSON form, knowing the types in `registry`.
    pub fn store_json_with(self, text: &str, registry: &StoreRegistry) -> Result<Self, Error> {
        Ok(self.store(StoreConfig::from_json_with(text, registry)?))
    }

    /// When `record` returns. Defaults to [`Durability::Buffered`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
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
    /// ```no_run
    /// // AUDIT_BACKING_STORE='{"type":"file","params":{"path":"/var/lib/audit","fsync":"always"}}'
    /// let config = auditbuf::Config::from_env("AUDIT")?;
    /// # Ok::<(), auditbuf::Error>(())
    /// ```
    pub fn from_env(prefix: &str) -> Result<Config, Error> {
        Self::from_env_with(prefix, &StoreRegistry::new())
    }

    /// Like [`from_env`](Self::from_env), also knowing the store types in `registry`.
    pub fn from_env_with(prefix: &str, registry: &StoreRegistry) -> Result<Config, Error> {
        Self::from_vars(prefix, registry, |name| std::env::var(name))
    }

    fn from_vars(
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

    /// Reads a configuration document; absent fields keep their defaults, unknown or
    /// ill-typed ones are an [`Error::Config`] naming the field. Durations are in
    /// milliseconds (`flush_interval_ms`); `overflow` is `"drop_newest"` or `"block"`
    /// (with `block_timeout_ms`); `retry` holds `max_attempts`, `max_elapsed_ms`,
    /// `backoff_base_ms` and `backoff_cap_ms`.
    pub fn from_json(text: &str) -> Result<Config, Error> {
        let doc: ConfigDoc = parse_json(text)?;
        doc.into_config()
    }

    /// Checks that the values can work together.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let at_least = |field: &str, value: u128, min: u128| {
            if value < min {
                Err(Error::config(
                    field,
                    format!("is {value}, must be at least {min}"),
                ))
            } else {
                Ok(())
            }
        };
        at_least("queue_capacity", self.queue_capacity as u128, 1)?;
        if self.queue_capacity > 1 << 24 {
            return Err(Error::config(
                "queue_capacity",
                format!("is {}, must be at most {}", self.queue_capacity, 1 << 24),
            ));
        }
        at_least("batch_max_events", self.batch_max_events as u128, 1)?;
        at_least("max_event_bytes", self.max_event_bytes as u128, 64)?;
        at_least("flush_interval_ms", self.flush_interval.as_millis(), 1)?;
        at_least("retry.max_attempts", u128::from(self.retry.max_attempts), 1)?;
        if self.max_event_bytes >= self.batch_max_bytes {
            return Err(Error::config(
                "max_event_bytes",
                format!(
                    "{} must be below batch_max_bytes ({}) so one event always fits a batch",
                    self.max_event_bytes, self.batch_max_bytes
                ),
            ));
        }
        if self.retry.backoff_base > self.retry.backoff_cap {
            return Err(Error::config(
                "retry.backoff_base_ms",
                "must not exceed retry.backoff_cap_ms",
            ));
        }
        Ok(())
    }
}

/// Deserialises `text` into `T`, naming the offending field in the error.
pub(crate) fn parse_json<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = match path.as_str() {
            "." | "?" => "(document)".to_owned(),
            _ => path,
        };
        let reason = e.into_inner().to_string();
        Error::config(field, reason)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigDoc {
    service: Option<String>,
    queue_capacity: Option<usize>,
    max_event_bytes: Option<usize>,
    batch_max_events: Option<usize>,
    batch_max_bytes: Option<usize>,
    flush_interval_ms: Option<u64>,
    overflow: Option<OverflowDoc>,
    block_timeout_ms: Option<u64>,
    durability: Option<DurabilityDoc>,
    retry: Option<RetryDoc>,
    dead_letter_capacity: Option<usize>,
    initial_slot_bytes: Option<usize>,
    retained_slot_bytes: Option<usize>,
    drop_timeout_ms: Option<u64>,
    gap_markers: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum OverflowDoc {
    DropNewest,
    DropOldest,
    Block,
    Spill,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DurabilityDoc {
    Buffered,
    Wal,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryDoc {
    max_attempts: Option<u32>,
    max_elapsed_ms: Option<u64>,
    backoff_base_ms: Option<u64>,
    backoff_cap_ms: Option<u64>,
}

impl ConfigDoc {
    fn into_config(self) -> Result<Config, Error> {
        let mut c = Config::default();
        let ms = Duration::from_millis;
        if let Some(v) = self.service {
            c.service = v;
        }
        if let Some(v) = self.queue_capacity {
            c.queue_capacity = v;
        }
        if let Some(v) = self.max_event_bytes {
            c.max_event_bytes = v;
        }
        if let Some(v) = self.batch_max_events {
            c.batch_max_events = v;
        }
        if let Some(v) = self.batch_max_bytes {
            c.batch_max_bytes = v;
        }
        if let Some(v) = self.flush_interval_ms {
            c.flush_interval = ms(v);
        }
        c.overflow = match (self.overflow, self.block_timeout_ms) {
            (None | Some(OverflowDoc::DropNewest), None) => Overflow::DropNewest,
            (Some(OverflowDoc::Spill), None) => Overflow::Spill,
            (Some(OverflowDoc::DropOldest), None) => Overflow::DropOldest,
            (Some(OverflowDoc::Block), Some(t)) => Overflow::Block { timeout: ms(t) },
            (Some(OverflowDoc::Block), None) => {
                return Err(Error::config(
                    "block_timeout_ms",
                    "is required when overflow is \"block\"",
                ));
            }
            (_, Some(_)) => {
                return Err(Error::config(
                    "block_timeout_ms",
                    "is only allowed when overflow is \"block\"",
                ));
            }
        };
        c.durability = match self.durability {
            None | Some(DurabilityDoc::Buffered) => Durability::Buffered,
            Some(DurabilityDoc::Wal) => Durability::Wal,
        };
        if let Some(r) = self.retry {
            if let Some(v) = r.max_attempts {
                c.retry.max_attempts = v;
            }
            if let Some(v) = r.max_elapsed_ms {
                c.retry.max_elapsed = ms(v);
            }
            if let Some(v) = r.backoff_base_ms {
                c.retry.backoff_base = ms(v);
            }
            if let Some(v) = r.backoff_cap_ms {
                c.retry.backoff_cap = ms(v);
            }
        }
        if let Some(v) = self.dead_letter_capacity {
            c.dead_letter_capacity = v;
        }
        if let Some(v) = self.initial_slot_bytes {
            c.initial_slot_bytes = v;
        }
        if let Some(v) = self.retained_slot_bytes {
            c.retained_slot_bytes = v;
        }
        if let Some(v) = self.drop_timeout_ms {
            c.drop_timeout = ms(v);
        }
        if let Some(v) = self.gap_markers {
            c.gap_markers = v;
        }
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(text: &str) -> String {
        match Config::from_json(text) {
            Err(Error::Config(c)) => c.field,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn environment_variables_are_read_and_errors_name_them() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
                    .ok_or(std::env::VarError::NotPresent)
            }
        };
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
        ] {
            let vars: &'static [(&'static str, &'static str)] = vars;
            match Config::from_vars("AUDIT", &registry, env(vars)) {
                Err(Error::Config(c)) => assert_eq!(c.field, field, "{vars:?}: {}", c.reason),
                other => panic!("{vars:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn empty_document_is_the_default() {
        assert_eq!(Config::from_json("{}").unwrap(), Config::default());
        Config::default().validate().unwrap();
    }

    #[test]
    fn every_field_reads() {
        let c = Config::from_json(
            r#"{"service":"s","queue_capacity":7,"max_event_bytes":100,"batch_max_events":3,
                "batch_max_bytes":1000,"flush_interval_ms":5,"overflow":"drop_newest",
                "retry":{"max_attempts":2,"max_elapsed_ms":9,"backoff_base_ms":1,"backoff_cap_ms":4},
                "dead_letter_capacity":0,"initial_slot_bytes":64,"retained_slot_bytes":128,
                "drop_timeout_ms":10}"#,
        )
        .unwrap();
        let expect = Config::default()
            .service("s")
            .queue_capacity(7)
            .max_event_bytes(100)
            .batch_max_events(3)
            .batch_max_bytes(1000)
            .flush_interval(Duration::from_millis(5))
            .retry(
                RetryPolicy::default()
                    .max_attempts(2)
                    .max_elapsed(Duration::from_millis(9))
                    .backoff(Duration::from_millis(1), Duration::from_millis(4)),
            )
            .dead_letter_capacity(0)
            .initial_slot_bytes(64)
            .retained_slot_bytes(128)
            .drop_timeout(Duration::from_millis(10));
        assert_eq!(c, expect);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{"queue_capacty":1}"#), "queue_capacty");
        assert!(
            Config::from_json(r#"{"queue_capacty":1}"#)
                .unwrap_err()
                .to_string()
                .contains("unknown field `queue_capacty`")
        );
        assert_eq!(field_of(r#"{"queue_capacity":"big"}"#), "queue_capacity");
        assert_eq!(
            field_of(r#"{"retry":{"max_attempts":-1}}"#),
            "retry.max_attempts"
        );
        assert_eq!(field_of(r#"{"retry":{"tries":1}}"#), "retry.tries");
        assert_eq!(field_of(r#"{"overflow":"spill_to_mars"}"#), "overflow");
        assert_eq!(field_of(r#"{"overflow":"block"}"#), "block_timeout_ms");
        assert_eq!(field_of(r#"{"block_timeout_ms":3}"#), "block_timeout_ms");
        assert_eq!(field_of(r#"{"queue_capacity":0}"#), "queue_capacity");
        assert_eq!(
            field_of(r#"{"max_event_bytes":5000000}"#),
            "max_event_bytes"
        );
        assert_eq!(field_of(r#"{"flush_interval_ms":0}"#), "flush_interval_ms");
        assert_eq!(field_of("[]"), "(document)");
        assert_eq!(field_of("{"), "(document)");
    }
}
