//! The whole pipeline as one JSON document: the [`Config`] fields, plus the sink and the
//! backing store, so every binding (C, Go, Python) builds a pipeline from plain data.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::config::json_path::number_as_written;
use crate::sink::http::shown_url;
use crate::{
    BodyFormat, Config, DataStorageSink, Error, HttpConfig, HttpSink, NullSink, Pipeline,
    RabbitMqConfig, Sink, StoreConfig, StoreRegistry,
};

/// A pipeline's configuration, sink and store, read from one JSON document.
///
/// The document holds the fields of [`Config::from_json`], plus
/// - `"sink"`: `{"type":"datastorage","url":…}`, `{"type":"http","url":…}`,
///   `{"type":"rabbitmq","url":…,"queue":…}` or `{"type":"null"}`; the two HTTP types also
///   take `headers` (an object of strings), `bearer_token` or `token_file`,
///   `connect_timeout_ms`, `timeout_ms` and `ca_file`, and `http` takes `format`
///   (`"json_array"`, the default, or `"ndjson"`); `rabbitmq` takes `exchange`,
///   `routing_key`, `declare` (a boolean), `connect_timeout_ms`, `timeout_ms` and `ca_file`
///   (see [`RabbitMqConfig`]; building it needs the `rabbitmq` feature);
/// - `"store"`: the backing store as for [`StoreConfig::from_json`],
///   `{"type":"file","params":{"path":…}}`.
///
/// Unknown, duplicate or ill-typed fields and trailing text are errors, each an
/// [`Error::Config`] naming the field (`sink.url`, `store.params.path`, `queue_capacity`).
///
/// ```
/// use auditbuf::{CallbackSink, Error, Outcome, PipelineConfig};
/// use std::time::Duration;
///
/// let doc = r#"{"service":"gateway","queue_capacity":1000,"sink":{"type":"null"}}"#;
/// let pipeline = PipelineConfig::from_json(doc)?.build()?;
/// pipeline.record_json(br#"{"event_type":"login"}"#)?;
/// assert_eq!(pipeline.close(Duration::from_secs(5)).stats.delivered, 1);
///
/// // A sink given in code (a callback) takes the place of "sink".
/// let sink = CallbackSink::new(|_: &[&[u8]]| Outcome::Delivered);
/// let pipeline = PipelineConfig::from_json(r#"{"service":"gateway"}"#)?.build_with_sink(sink)?;
///
/// let err = PipelineConfig::from_json(r#"{"sink":{"type":"http","ulr":"x"}}"#).unwrap_err();
/// assert!(matches!(&err, Error::Config(c) if c.field == "sink.ulr"), "{err}");
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    config: Config,
    sink: Option<SinkConfig>,
}

/// Where a pipeline built from a [`PipelineConfig`] sends its batches. Its `Debug` shows
/// no password of a URL, header value or token.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkConfig {
    /// [`DataStorageSink`] at the base `url`.
    DataStorage {
        /// Base URL of the DataStorage service.
        url: String,
        /// HTTP settings (format and limits are the service's).
        http: HttpConfig,
    },
    /// [`HttpSink`] posting to `url`.
    Http {
        /// The endpoint.
        url: String,
        /// HTTP settings.
        http: HttpConfig,
    },
    /// `RabbitMqSink` publishing as the configuration says (needs the `rabbitmq` feature to
    /// be built).
    RabbitMq(RabbitMqConfig),
    /// [`NullSink`]: accepts everything, keeps nothing.
    Null,
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkConfig::DataStorage { url, http } => f
                .debug_struct("DataStorage")
                .field("url", &shown_url(url))
                .field("http", http)
                .finish(),
            SinkConfig::Http { url, http } => f
                .debug_struct("Http")
                .field("url", &shown_url(url))
                .field("http", http)
                .finish(),
            SinkConfig::RabbitMq(c) => f.debug_tuple("RabbitMq").field(c).finish(),
            SinkConfig::Null => f.write_str("Null"),
        }
    }
}

impl PipelineConfig {
    /// Reads a configuration document; see the type's documentation for its fields.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`(document)`, `queue_capacity`, `sink.url`,
    /// `store.params.path`, …) when the text is not one JSON object, a field is
    /// duplicated, or a part fails [`Config::from_json`], [`StoreConfig::from_json`] or
    /// the sink's rules.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let members = serde_json::from_str::<Members>(text)
            .map_err(|e| Error::config("(document)", e.to_string()))?
            .0;
        let mut seen = std::collections::BTreeSet::new();
        let mut rest = String::from("{");
        let (mut sink, mut store) = (None, None);
        for (key, value) in &members {
            if !seen.insert(key.as_str()) {
                return Err(Error::config(key.as_str(), "duplicate field"));
            }
            match key.as_str() {
                "sink" => sink = Some(value),
                "store" => store = Some(value),
                _ => {
                    if rest.len() > 1 {
                        rest.push(',');
                    }
                    rest.push_str(
                        &serde_json::to_string(key)
                            .map_err(|e| Error::config(key.as_str(), e.to_string()))?,
                    );
                    rest.push(':');
                    rest.push_str(value.get());
                }
            }
        }
        rest.push('}');
        let mut config = Config::from_json(&rest).map_err(|e| match in_document(e) {
            // The settings are read without `sink` and `store`, which are fields of the
            // document too (not of a part of it: `retry.max_attemps` lists retry's own).
            Error::Config(mut c)
                if c.reason
                    .starts_with(&format!("unknown field `{}`,", c.field)) =>
            {
                c.reason.push_str(", `sink`, `store`");
                Error::Config(c)
            }
            other => other,
        })?;
        if let Some(store) = store {
            let store = StoreConfig::from_json(store.get()).map_err(in_document);
            config = config.store(store.map_err(within("store"))?);
        }
        // A sink's fields are read from a `Value`, where a number too large for its field is
        // already a float: its text is found again in the document.
        let sink = sink.map(|s| {
            SinkConfig::from_json(s.get())
                .map_err(|e| in_document(number_as_written(e, s.get(), "sink")))
        });
        let sink = sink.transpose()?;
        Ok(PipelineConfig { config, sink })
    }

    /// Reads the pipeline from the environment: [`Config::from_env`]'s variables
    /// (`${PREFIX}_CONFIG`, `${PREFIX}_BACKING_STORE`), and the RabbitMQ sink from
    /// `${PREFIX}_RABBITMQ_URL` and `${PREFIX}_RABBITMQ_QUEUE` — or, as audittools names
    /// them, `${PREFIX}_RABBITMQ_HOSTNAME` (`localhost`), `_PORT` (5672), `_USERNAME` and
    /// `_PASSWORD` (`guest`) and `_QUEUE_NAME`. Without any of those the document has no
    /// sink: give one to [`build_with_sink`](Self::build_with_sink).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] whose field is the variable's name (and the field inside it):
    /// those of [`Config::from_env`], a queue missing or given twice, a URL given both
    /// whole and in parts, a port that is not a number, a URL that is not `amqp://` or
    /// `amqps://`. Messages never show the password.
    ///
    /// ```no_run
    /// // AUDIT_RABBITMQ_URL=amqp://audit:secret@rabbitmq:5672/%2f AUDIT_RABBITMQ_QUEUE=notifications.info
    /// let pipeline = auditbuf::PipelineConfig::from_env("AUDIT")?.build()?;
    /// # Ok::<(), auditbuf::Error>(())
    /// ```
    pub fn from_env(prefix: &str) -> Result<Self, Error> {
        Self::from_env_with(prefix, &StoreRegistry::new())
    }

    /// Like [`from_env`](Self::from_env), also knowing the store types in `registry`.
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_env_with(prefix: &str, registry: &StoreRegistry) -> Result<Self, Error> {
        Self::from_vars(prefix, registry, |name| std::env::var(name))
    }

    fn from_vars(
        prefix: &str,
        registry: &StoreRegistry,
        lookup: impl Fn(&str) -> Result<String, std::env::VarError>,
    ) -> Result<Self, Error> {
        let var = |name: &str| -> Result<Option<String>, Error> {
            match lookup(name) {
                Ok(v) => Ok(Some(v)),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(Error::config(name, "is not valid UTF-8"))
                }
            }
        };
        let config = Config::from_vars(prefix, registry, &lookup)?;
        let sink = RabbitMqConfig::from_vars(prefix, &var)?.map(SinkConfig::RabbitMq);
        Ok(PipelineConfig { config, sink })
    }

    /// The pipeline settings (with the store, if the document named one).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The sink the document named, if any.
    pub fn sink(&self) -> Option<&SinkConfig> {
        self.sink.as_ref()
    }

    /// Starts the pipeline with the sink the document names.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] (`sink`) when the document names no sink; those of
    /// [`SinkConfig::open`] (`sink.url`, a missing `token_file`) and of [`Pipeline::new`]
    /// (a value out of range, a locked store directory, the flush thread not starting).
    pub fn build(self) -> Result<Pipeline, Error> {
        let Some(sink) = self.sink else {
            return Err(Error::config(
                "sink",
                "missing field (\"datastorage\", \"http\", \"rabbitmq\" or \"null\")",
            ));
        };
        Pipeline::new(self.config, sink.open()?)
    }

    /// Starts the pipeline with `sink` (a callback, say). The document must not name a
    /// sink of its own.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] (`sink`) when the document names a sink; those of
    /// [`Pipeline::new`].
    pub fn build_with_sink<S: Sink>(self, sink: S) -> Result<Pipeline, Error> {
        if self.sink.is_some() {
            return Err(Error::config(
                "sink",
                "not allowed here: the sink is given in code (a callback)",
            ));
        }
        Pipeline::new(self.config, sink)
    }
}

impl SinkConfig {
    fn from_json(text: &str) -> Result<Self, Error> {
        // A `Map` keeps the last of two equal keys: a second `url` would win silently.
        crate::config::doc::check_keys(text, "sink")?;
        let mut map: Map<String, Value> = serde_json::from_str(text).map_err(|e| {
            Error::config("sink", format!("{e}; expected {{\"type\":…,\"url\":…}}"))
        })?;
        let kind = match map.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(_) => return Err(Error::config("sink.type", "must be a string")),
            None => return Err(Error::config("sink.type", "missing field")),
        };
        let rest = Value::Object(map);
        match kind.as_str() {
            "datastorage" => {
                let d: HttpDoc = parse_value(rest, false)?;
                Ok(SinkConfig::DataStorage {
                    url: d.url.clone(),
                    http: d.into_http()?,
                })
            }
            "http" => {
                let d: HttpDoc = parse_value(rest, true)?;
                Ok(SinkConfig::Http {
                    url: d.url.clone(),
                    http: d.into_http()?,
                })
            }
            "rabbitmq" => Ok(SinkConfig::RabbitMq(RabbitMqConfig::from_doc(rest)?)),
            "null" => {
                let _: NullDoc = parse_value(rest, false)?;
                Ok(SinkConfig::Null)
            }
            other => Err(Error::config(
                "sink.type",
                format!(
                    "unknown sink type {other:?}; known types: datastorage, http, rabbitmq, null"
                ),
            )),
        }
    }

    /// Builds the sink: checks the URL and headers, reads the token and CA files.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`sink.url`, `sink.headers`, `sink.token_file`,
    /// `sink.ca_file`, …) as [`HttpSink::new`] or
    /// `RabbitMqSink::new` (feature `rabbitmq`) find it, or `sink.type` for
    /// `rabbitmq` without that feature; [`Error::Io`] naming a token or CA file that cannot
    /// be read.
    pub fn open(self) -> Result<Box<dyn Sink>, Error> {
        Ok(match self {
            SinkConfig::DataStorage { url, http } => {
                Box::new(DataStorageSink::with_config(&url, http).map_err(within("sink"))?)
            }
            SinkConfig::Http { url, http } => {
                Box::new(HttpSink::new(url, http).map_err(within("sink"))?)
            }
            #[cfg(feature = "rabbitmq")]
            SinkConfig::RabbitMq(config) => {
                Box::new(crate::RabbitMqSink::new(config).map_err(within("sink"))?)
            }
            #[cfg(not(feature = "rabbitmq"))]
            SinkConfig::RabbitMq(_) => {
                return Err(Error::config(
                    "sink.type",
                    "\"rabbitmq\" needs auditbuf built with its `rabbitmq` cargo feature",
                ));
            }
            SinkConfig::Null => Box::new(NullSink),
        })
    }
}

/// Prefixes the field of a configuration error with `outer.`.
/// An error from reading a part of the pipeline document on its own (the settings rebuilt
/// without `sink` and `store`, or the text of one of those): without its position (serde's
/// " at line L column C", the key check's " at byte N"), which counts from the start of
/// that part, not of the user's document. The field's path says where it is.
fn in_document(e: Error) -> Error {
    let Error::Config(mut c) = e else {
        return e;
    };
    let digits = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    if let Some(at) = c.reason.rfind(" at line ") {
        let position = &c.reason[at + " at line ".len()..];
        if position
            .split_once(" column ")
            .is_some_and(|(l, c)| digits(l) && digits(c))
        {
            c.reason.truncate(at);
        }
    }
    if let Some(at) = c.reason.rfind(" at byte ")
        && digits(&c.reason[at + " at byte ".len()..])
    {
        c.reason.truncate(at);
    }
    Error::Config(c)
}

pub(crate) fn within(outer: &'static str) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Config(c) => Error::config(format!("{outer}.{}", c.field), c.reason),
        other => other,
    }
}

/// Deserialises the fields of a sink without a body format, naming the offending one.
pub(crate) fn parse_sink_fields<T: for<'de> Deserialize<'de>>(value: Value) -> Result<T, Error> {
    parse_value(value, false)
}

/// Deserialises a sink's fields, naming the offending one (`sink.timeout_ms`).
fn parse_value<T: for<'de> Deserialize<'de>>(value: Value, with_format: bool) -> Result<T, Error> {
    if !with_format
        && let Value::Object(m) = &value
        && m.contains_key("format")
    {
        return Err(Error::config(
            "sink.format",
            "unknown field: only the \"http\" sink has a body format",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let reason = e.into_inner().to_string();
        // A missing field is reported at its parent: name the field itself.
        let missing = reason
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => format!("sink.{name}"),
            (".", None) => "sink".to_owned(),
            (_, Some(name)) => format!("sink.{path}.{name}"),
            _ => format!("sink.{path}"),
        };
        Error::config(field, reason)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NullDoc {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpDoc {
    url: String,
    format: Option<FormatDoc>,
    headers: Option<BTreeMap<String, String>>,
    bearer_token: Option<String>,
    token_file: Option<PathBuf>,
    connect_timeout_ms: Option<u64>,
    timeout_ms: Option<u64>,
    ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FormatDoc {
    JsonArray,
    Ndjson,
}

impl HttpDoc {
    fn into_http(self) -> Result<HttpConfig, Error> {
        let mut http = HttpConfig::default();
        if let Some(format) = self.format {
            http = http.format(match format {
                FormatDoc::JsonArray => BodyFormat::JsonArray,
                FormatDoc::Ndjson => BodyFormat::Ndjson,
            });
        }
        for (name, value) in self.headers.unwrap_or_default() {
            http = http.header(name, value);
        }
        if let Some(token) = self.bearer_token {
            http = http.bearer_token(token);
        }
        if let Some(path) = self.token_file {
            http = http.token_file(path);
        }
        let ms = |field: &str, v: u64| {
            if v == 0 {
                Err(Error::config(format!("sink.{field}"), "must be at least 1"))
            } else {
                Ok(Duration::from_millis(v))
            }
        };
        if let Some(v) = self.connect_timeout_ms {
            http = http.connect_timeout(ms("connect_timeout_ms", v)?);
        }
        if let Some(v) = self.timeout_ms {
            http = http.timeout(ms("timeout_ms", v)?);
        }
        if let Some(path) = self.ca_file {
            http = http.ca_file(path);
        }
        Ok(http)
    }
}

/// The members of a JSON object in document order, values kept as written.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
#[path = "setup_tests.rs"]
mod tests;
