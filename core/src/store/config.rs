//! Choosing a backing store from data: `{"type":"file","params":{…}}`, as the
//! `${PREFIX}_BACKING_STORE` environment variable gives it, with a registry for types an
//! application adds.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::limits::fsync_invalid;
use super::{FileStore, FileStoreConfig, Fsync, MemoryStore, MemoryStoreConfig, Store};
use crate::Error;
use crate::config::present;

/// Opens a store of an application's own type from its `params`.
pub type StoreFactory = Arc<dyn Fn(&Value) -> Result<Box<dyn Store>, Error> + Send + Sync>;

/// Store types an application adds to the built-in ones.
///
/// ```
/// use auditbuf::{Config, MemoryStore, MemoryStoreConfig, Store, StoreRegistry};
///
/// let registry = StoreRegistry::new().register("tiny", |params| {
///     let max = params["max_events"].as_u64().unwrap_or(10);
///     Ok(Box::new(MemoryStore::new(MemoryStoreConfig::default().max_events(max))) as Box<dyn Store>)
/// });
/// let config = Config::default().store_json_with(r#"{"type":"tiny","params":{"max_events":5}}"#, &registry)?;
/// # let _ = config;
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct StoreRegistry {
    types: BTreeMap<String, StoreFactory>,
}

impl StoreRegistry {
    /// The built-in types only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) type `name`, opened by `factory` from its `params`.
    pub fn register(
        mut self,
        name: impl Into<String>,
        factory: impl Fn(&Value) -> Result<Box<dyn Store>, Error> + Send + Sync + 'static,
    ) -> Self {
        self.types.insert(name.into(), Arc::new(factory));
        self
    }

    fn known(&self) -> String {
        let mut names = vec!["memory", "file"];
        if cfg!(feature = "sqlite") {
            names.push("sqlite");
        }
        if cfg!(feature = "postgres") {
            names.push("postgres");
        }
        names.extend(self.types.keys().map(String::as_str));
        names.join(", ")
    }
}

impl fmt::Debug for StoreRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreRegistry")
            .field("types", &self.types.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Which backing store a pipeline uses, as data.
#[derive(Clone)]
#[non_exhaustive]
pub enum StoreConfig {
    /// A bounded FIFO in memory.
    Memory(MemoryStoreConfig),
    /// A write-ahead log in a directory.
    File(FileStoreConfig),
    /// An SQLite database file.
    #[cfg(feature = "sqlite")]
    Sqlite(super::SqliteStoreConfig),
    /// A Postgres table.
    #[cfg(feature = "postgres")]
    Postgres(super::PostgresStoreConfig),
    /// A type from a [`StoreRegistry`].
    Custom {
        /// The registered name.
        kind: String,
        /// Its parameters, as given.
        params: Value,
        /// What opens it.
        factory: StoreFactory,
    },
}

impl PartialEq for StoreConfig {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StoreConfig::Memory(a), StoreConfig::Memory(b)) => a == b,
            (StoreConfig::File(a), StoreConfig::File(b)) => a == b,
            #[cfg(feature = "sqlite")]
            (StoreConfig::Sqlite(a), StoreConfig::Sqlite(b)) => a == b,
            #[cfg(feature = "postgres")]
            (StoreConfig::Postgres(a), StoreConfig::Postgres(b)) => a == b,
            (
                StoreConfig::Custom {
                    kind: a, params: p, ..
                },
                StoreConfig::Custom {
                    kind: b, params: q, ..
                },
            ) => a == b && p == q,
            _ => false,
        }
    }
}

impl Eq for StoreConfig {}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreConfig::Memory(c) => f.debug_tuple("Memory").field(c).finish(),
            StoreConfig::File(c) => f.debug_tuple("File").field(c).finish(),
            #[cfg(feature = "sqlite")]
            StoreConfig::Sqlite(c) => f.debug_tuple("Sqlite").field(c).finish(),
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres(c) => f.debug_tuple("Postgres").field(c).finish(),
            StoreConfig::Custom { kind, params, .. } => f
                .debug_struct("Custom")
                .field("kind", kind)
                .field("params", params)
                .finish_non_exhaustive(),
        }
    }
}

impl StoreConfig {
    /// Reads `{"type":…,"params":{…}}` for a built-in type, checking every parameter
    /// against the range its setter documents.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`type`, `params.path`, `params.fsync`, or
    /// `(document)`) when the text is not one JSON object or has anything after it; the
    /// type is unknown; a field is unknown, duplicated (at any depth), `null`, of the wrong
    /// type or out of range. Nothing is opened yet.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        Self::from_json_with(text, &StoreRegistry::new())
    }

    /// Like [`from_json`](Self::from_json), also knowing the types in `registry` (whose
    /// `params` their factory checks when the store is opened).
    ///
    /// # Errors
    ///
    /// As [`from_json`](Self::from_json).
    pub fn from_json_with(text: &str, registry: &StoreRegistry) -> Result<Self, Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Doc {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default, deserialize_with = "present")]
            params: Option<Value>,
        }
        let doc: Doc = crate::config::parse_json(text)?;
        let params = doc
            .params
            .unwrap_or_else(|| Value::Object(Default::default()));
        if !params.is_object() {
            return Err(Error::config("params", "must be an object"));
        }
        // `params` was read into a `Value`, where a number too large for its field is
        // already a float: its text is found again in the document.
        Self::from_params(doc.kind, params, registry)
            .map_err(|e| crate::config::json_path::number_as_written(e, text, ""))
    }

    fn from_params(kind: String, params: Value, registry: &StoreRegistry) -> Result<Self, Error> {
        let config = match kind.as_str() {
            "memory" => StoreConfig::Memory(parse_params::<MemoryParams>(&params)?.into()),
            "file" => StoreConfig::File(parse_params::<FileParams>(&params)?.try_into()?),
            #[cfg(feature = "sqlite")]
            "sqlite" => StoreConfig::Sqlite(super::sqlite::config_from_params(&params)?),
            #[cfg(feature = "postgres")]
            "postgres" => StoreConfig::Postgres(super::postgres::config_from_params(&params)?),
            other => match registry.types.get(other) {
                Some(factory) => StoreConfig::Custom {
                    kind: other.to_owned(),
                    params,
                    factory: Arc::clone(factory),
                },
                None => {
                    return Err(Error::config(
                        "type",
                        format!(
                            "unknown store type {other:?}; known types: {}",
                            registry.known()
                        ),
                    ));
                }
            },
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every setting against the range its setter documents; the error names it as
    /// in the JSON form, `params.<field>`.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let invalid = match self {
            StoreConfig::Memory(c) => c.invalid(),
            StoreConfig::File(c) => c.invalid(),
            #[cfg(feature = "sqlite")]
            StoreConfig::Sqlite(c) => c.invalid(),
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres(c) => c.invalid(),
            StoreConfig::Custom { .. } => None,
        };
        match invalid {
            // The setter is `lease`, the JSON field `lease_ms`.
            Some(("lease", reason)) => Err(Error::config("params.lease_ms", reason)),
            Some((field, reason)) => Err(Error::config(format!("params.{field}"), reason)),
            None => Ok(()),
        }
    }

    /// Opens the store.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a setting out of range (a configuration built in code is
    /// checked here), and the store's own errors when it cannot be opened:
    /// [`Error::Io`], [`Error::Store`] (locked by another process, a database error), or
    /// whatever a registered factory returns.
    pub fn open(&self) -> Result<Box<dyn Store>, Error> {
        self.validate()?;
        Ok(match self {
            StoreConfig::Memory(c) => Box::new(MemoryStore::new(*c)),
            StoreConfig::File(c) => Box::new(FileStore::open(c.clone())?),
            #[cfg(feature = "sqlite")]
            StoreConfig::Sqlite(c) => Box::new(super::SqliteStore::open(c.clone())?),
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres(c) => Box::new(super::PostgresStore::open(c.clone())?),
            StoreConfig::Custom {
                factory, params, ..
            } => factory(params)?,
        })
    }
}

/// Deserialises store `params`, naming the offending field as `params.<field>`.
pub(crate) fn parse_params<T: for<'de> Deserialize<'de>>(params: &Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let field = match path.as_str() {
            "." | "?" | "" => "params".to_owned(),
            _ => format!("params.{path}"),
        };
        Error::config(field, e.into_inner().to_string())
    })
}

/// The fsync policy as configuration writes it: `"always"`, `"never"`, or `"interval"` with
/// `fsync_interval_ms` (default 1000).
pub(crate) fn fsync_from(
    policy: Option<&str>,
    interval_ms: Option<u64>,
    default: Fsync,
) -> Result<Fsync, Error> {
    match (policy, interval_ms) {
        (None, None) => Ok(default),
        (Some("always"), None) => Ok(Fsync::Always),
        (Some("never"), None) => Ok(Fsync::Never),
        (Some("interval") | None, ms) => {
            let interval = Fsync::Interval(Duration::from_millis(ms.unwrap_or(1000)));
            match fsync_invalid(interval) {
                Some((field, reason)) => Err(Error::config(format!("params.{field}"), reason)),
                None => Ok(interval),
            }
        }
        (Some("always" | "never"), Some(_)) => Err(Error::config(
            "params.fsync_interval_ms",
            "is only allowed with \"fsync\": \"interval\"",
        )),
        (Some(other), _) => Err(Error::config(
            "params.fsync",
            format!("unknown policy {other:?}; expected \"always\", \"interval\" or \"never\""),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryParams {
    #[serde(default, deserialize_with = "present")]
    max_events: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    max_bytes: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    dead_letters: Option<usize>,
}

impl From<MemoryParams> for MemoryStoreConfig {
    fn from(p: MemoryParams) -> Self {
        let mut c = MemoryStoreConfig::default();
        if let Some(v) = p.max_events {
            c = c.max_events(v);
        }
        if let Some(v) = p.max_bytes {
            c = c.max_bytes(v);
        }
        if let Some(v) = p.dead_letters {
            c = c.dead_letters(v);
        }
        c
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileParams {
    path: PathBuf,
    #[serde(default, deserialize_with = "present")]
    max_total_bytes: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    segment_bytes: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    fsync: Option<String>,
    #[serde(default, deserialize_with = "present")]
    fsync_interval_ms: Option<u64>,
}

impl TryFrom<FileParams> for FileStoreConfig {
    type Error = Error;

    fn try_from(p: FileParams) -> Result<Self, Error> {
        let mut c = FileStoreConfig::new(p.path);
        if let Some(v) = p.max_total_bytes {
            c = c.max_total_bytes(v);
        }
        if let Some(v) = p.segment_bytes {
            c = c.segment_bytes(v);
        }
        let default = c.fsync;
        Ok(c.fsync(fsync_from(
            p.fsync.as_deref(),
            p.fsync_interval_ms,
            default,
        )?))
    }
}

/// The field a store configuration document's error names (tests of every store type).
#[cfg(test)]
pub(crate) fn field_of(text: &str) -> String {
    match StoreConfig::from_json(text) {
        Err(Error::Config(c)) => c.field,
        other => panic!("{text}: {other:?}"),
    }
}

/// The durable store types this build has, as an error message lists them (SQLite and
/// Postgres are cargo features: the C ABI, Go and Python builds have SQLite only).
pub(crate) fn durable_types() -> &'static str {
    match (cfg!(feature = "sqlite"), cfg!(feature = "postgres")) {
        (true, true) => "file, sqlite or postgres",
        (true, false) => "file or sqlite",
        (false, true) => "file or postgres",
        (false, false) => "file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_types_read() {
        let c = StoreConfig::from_json(
            r#"{"type":"file","params":{"path":"/tmp/x","max_total_bytes":4096,"fsync":"always"}}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            StoreConfig::File(
                FileStoreConfig::new("/tmp/x")
                    .max_total_bytes(4096)
                    .fsync(Fsync::Always)
            )
        );
        let c = StoreConfig::from_json(r#"{"type":"file","params":{"path":"/tmp/x","fsync":"interval","fsync_interval_ms":250}}"#).unwrap();
        assert_eq!(
            c,
            StoreConfig::File(
                FileStoreConfig::new("/tmp/x").fsync(Fsync::Interval(Duration::from_millis(250)))
            )
        );
        let c = StoreConfig::from_json(r#"{"type":"memory"}"#).unwrap();
        assert_eq!(c, StoreConfig::Memory(MemoryStoreConfig::default()));
    }

    #[test]
    fn every_malformed_value_names_its_field() {
        assert_eq!(field_of("not json"), "(document)");
        assert_eq!(field_of("[]"), "(document)");
        assert_eq!(field_of(r#"{"params":{}}"#), "(document)");
        assert_eq!(
            field_of(r#"{"type":"file","params":{},"extra":1}"#),
            "extra"
        );
        assert_eq!(field_of(r#"{"type":"floppy"}"#), "type");
        assert_eq!(field_of(r#"{"type":7}"#), "type");
        assert_eq!(field_of(r#"{"type":"file","params":[]}"#), "params");
        assert_eq!(field_of(r#"{"type":"file","params":{}}"#), "params");
        assert_eq!(
            field_of(r#"{"type":"file","params":{"path":3}}"#),
            "params.path"
        );
        assert_eq!(
            field_of(r#"{"type":"file","params":{"path":"/x","max_total_bytes":"big"}}"#),
            "params.max_total_bytes"
        );
        assert_eq!(
            field_of(r#"{"type":"file","params":{"path":"/x","colour":"red"}}"#),
            "params.colour"
        );
        assert_eq!(
            field_of(r#"{"type":"file","params":{"path":"/x","fsync":"sometimes"}}"#),
            "params.fsync"
        );
        assert_eq!(
            field_of(
                r#"{"type":"file","params":{"path":"/x","fsync":"always","fsync_interval_ms":5}}"#
            ),
            "params.fsync_interval_ms"
        );
        assert_eq!(
            field_of(r#"{"type":"memory","params":{"max_events":-1}}"#),
            "params.max_events"
        );
        let e = StoreConfig::from_json(r#"{"type":"floppy"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("known types: memory, file"), "{e}");
    }

    /// The field and reason of a document's error.
    fn error_of(text: &str) -> (String, String) {
        match StoreConfig::from_json(text) {
            Err(Error::Config(c)) => (c.field, c.reason),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn every_parameter_is_checked_when_read() {
        for (params, field, reason) in [
            (
                r#""type":"file","params":{"path":""}"#,
                "params.path",
                "must not be empty",
            ),
            (
                r#""type":"file","params":{"path":"a\u0000b"}"#,
                "(document)",
                "\\u0000 in a string",
            ),
            (
                r#""type":"file","params":{"path":"/x","segment_bytes":0}"#,
                "params.segment_bytes",
                "is 0, must be at least 4096",
            ),
            (
                r#""type":"file","params":{"path":"/x","segment_bytes":1073741825}"#,
                "params.segment_bytes",
                "must be at most 1073741824",
            ),
            (
                r#""type":"file","params":{"path":"/x","max_total_bytes":0}"#,
                "params.max_total_bytes",
                "is 0, must be at least 4096",
            ),
            (
                r#""type":"file","params":{"path":"/x","max_total_bytes":17592186044417}"#,
                "params.max_total_bytes",
                "must be at most 17592186044416",
            ),
            (
                r#""type":"file","params":{"path":"/x","fsync_interval_ms":0}"#,
                "params.fsync_interval_ms",
                "is 0, must be at least 1",
            ),
            (
                r#""type":"file","params":{"path":"/x","fsync":"interval","fsync_interval_ms":0}"#,
                "params.fsync_interval_ms",
                "is 0, must be at least 1",
            ),
            (
                r#""type":"file","params":{"path":"/x","max_total_bytes":null}"#,
                "params.max_total_bytes",
                "is null",
            ),
            (
                r#""type":"file","params":{"path":"/a","path":"/b"}"#,
                "params.path",
                "duplicate key in an object: \"path\"",
            ),
            (r#""type":"file","params":null"#, "params", "is null"),
            (
                r#""type":"file","params":{"path":"/x","max_total_bytes":18446744073709551616}"#,
                "params.max_total_bytes",
                "is 18446744073709551616, too large for this field",
            ),
            (
                r#""type":"memory","params":{"max_events":0}"#,
                "params.max_events",
                "is 0, must be at least 1",
            ),
            (
                r#""type":"memory","params":{"max_bytes":0}"#,
                "params.max_bytes",
                "is 0, must be at least 4096",
            ),
            (
                r#""type":"memory","params":{"max_bytes":68719476737}"#,
                "params.max_bytes",
                "must be at most 68719476736",
            ),
            (
                r#""type":"memory","params":{"dead_letters":1000001}"#,
                "params.dead_letters",
                "must be at most 1000000",
            ),
        ] {
            let (f, r) = error_of(&format!("{{{params}}}"));
            assert_eq!(f, field, "{params}: {r}");
            assert!(r.contains(reason), "{params}: {r}");
        }
    }

    #[test]
    fn nothing_may_follow_the_document() {
        for text in [
            r#"{"type":"memory"} x"#,
            r#"{"type":"memory"}{"type":"file"}"#,
        ] {
            let (field, reason) = error_of(text);
            assert_eq!(field, "(document)");
            assert!(reason.contains("trailing characters"), "{reason}");
        }
    }

    #[test]
    fn stores_built_in_code_are_checked_before_opening() {
        let e = StoreConfig::File(FileStoreConfig::new(""))
            .open()
            .err()
            .unwrap()
            .to_string();
        assert_eq!(e, "invalid configuration: params.path: must not be empty");
        let e = StoreConfig::Memory(MemoryStoreConfig::default().max_events(0))
            .open()
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "invalid configuration: params.max_events: is 0, must be at least 1"
        );
        let config = crate::Config::default().store(StoreConfig::File(
            FileStoreConfig::new("/x").segment_bytes(0),
        ));
        assert!(config.validate().is_err());
    }

    #[test]
    fn registered_types_are_known() {
        let registry = StoreRegistry::new().register("mine", |_| {
            Ok(Box::new(MemoryStore::new(MemoryStoreConfig::default())) as Box<dyn Store>)
        });
        let c =
            StoreConfig::from_json_with(r#"{"type":"mine","params":{"x":1}}"#, &registry).unwrap();
        assert!(matches!(&c, StoreConfig::Custom { kind, .. } if kind == "mine"));
        assert!(c.open().is_ok());
        assert!(StoreConfig::from_json(r#"{"type":"mine"}"#).is_err());
    }
}
