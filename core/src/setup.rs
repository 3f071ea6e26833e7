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
        let mut config = Config::from_json(&rest)?;
        if let Some(store) = store {
            config = config.store(StoreConfig::from_json(store.get()).map_err(within("store"))?);
        }
        // A sink's fields are read from a `Value`, where a number too large for its field is
        // already a float: its text is found again in the document.
        let sink = sink.map(|s| {
            SinkConfig::from_json(s.get()).map_err(|e| number_as_written(e, s.get(), "sink"))
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
mod tests {
    use super::*;

    fn field_of(text: &str) -> String {
        match PipelineConfig::from_json(text) {
            Err(Error::Config(c)) => c.field,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        for doc in [
            r#"{"sink":{"type":"http","url":"http://u:S3cret@h/x","bearer_token":"S3cret",
                        "headers":{"Authorization":"Bearer S3cret"}}}"#,
            r#"{"sink":{"type":"datastorage","url":"https://u:S3cret@h"}}"#,
            r#"{"sink":{"type":"rabbitmq","url":"amqp://u:S3cret@h/%2f","queue":"q"}}"#,
        ] {
            let shown = format!("{:?}", PipelineConfig::from_json(doc).unwrap());
            assert!(!shown.contains("S3cret"), "{shown}");
            assert!(shown.contains("u:***@h"), "{shown}");
        }
    }

    #[test]
    fn every_part_reads() {
        let c = PipelineConfig::from_json(
            r#"{"service":"s","queue_capacity":7,
                "sink":{"type":"http","url":"http://127.0.0.1:9/x","format":"ndjson",
                        "headers":{"X-Tenant":"blue"},"bearer_token":"t",
                        "connect_timeout_ms":100,"timeout_ms":2000},
                "store":{"type":"memory","params":{"max_events":5}}}"#,
        )
        .unwrap();
        assert_eq!(c.config().queue_capacity, 7);
        assert_eq!(c.config().service_name(), "s");
        assert!(matches!(c.config().store, Some(StoreConfig::Memory(_))));
        let expect = HttpConfig::default()
            .format(BodyFormat::Ndjson)
            .header("X-Tenant", "blue")
            .bearer_token("t")
            .connect_timeout(Duration::from_millis(100))
            .timeout(Duration::from_secs(2));
        assert_eq!(
            c.sink(),
            Some(&SinkConfig::Http {
                url: "http://127.0.0.1:9/x".into(),
                http: expect
            })
        );
        let c = PipelineConfig::from_json(r#"{"sink":{"type":"datastorage","url":"http://h"}}"#)
            .unwrap();
        assert!(matches!(c.sink(), Some(SinkConfig::DataStorage { .. })));
        assert_eq!(c.config(), &Config::default());
        assert!(PipelineConfig::from_json("{}").unwrap().sink().is_none());
    }

    #[test]
    fn errors_name_the_field() {
        for (doc, field) in [
            (r#"{"queue_capacty":1}"#, "queue_capacty"),
            (
                r#"{"queue_capacity":1,"queue_capacity":2}"#,
                "queue_capacity",
            ),
            (r#"{"sink":{"type":"null"},"sink":{"type":"null"}}"#, "sink"),
            (r#"{"sink":{"type":"null"}} x"#, "(document)"),
            ("[]", "(document)"),
            (r#"{"sink":"http"}"#, "sink"),
            (r#"{"sink":{"url":"http://h"}}"#, "sink.type"),
            (r#"{"sink":{"type":5}}"#, "sink.type"),
            (r#"{"sink":{"type":"tape"}}"#, "sink.type"),
            (r#"{"sink":{"type":"http"}}"#, "sink.url"),
            (r#"{"sink":{"type":"http","url":"h","ulr":1}}"#, "sink.ulr"),
            // A second value of a key would win silently.
            (
                r#"{"sink":{"type":"http","url":"http://a","url":"http://b"}}"#,
                "sink.url",
            ),
            (r#"{"sink":{"type":"null","type":"http"}}"#, "sink.type"),
            (
                r#"{"sink":{"type":"http","url":"h","headers":{"X-A":"1","X-A":"2"}}}"#,
                "sink.headers.X-A",
            ),
            (
                r#"{"sink":{"type":"http","url":"h","timeout_ms":"x"}}"#,
                "sink.timeout_ms",
            ),
            (
                r#"{"sink":{"type":"http","url":"h","timeout_ms":0}}"#,
                "sink.timeout_ms",
            ),
            (
                r#"{"sink":{"type":"http","url":"h","format":"xml"}}"#,
                "sink.format",
            ),
            (
                r#"{"sink":{"type":"http","url":"h","headers":{"a":1}}}"#,
                "sink.headers.a",
            ),
            (
                r#"{"sink":{"type":"datastorage","url":"h","format":"ndjson"}}"#,
                "sink.format",
            ),
            (r#"{"sink":{"type":"null","url":"h"}}"#, "sink.url"),
            (
                r#"{"store":{"type":"file","params":{"pth":"/x"}}}"#,
                "store.params.pth",
            ),
            (r#"{"store":{"type":"tape"}}"#, "store.type"),
        ] {
            assert_eq!(field_of(doc), field, "{doc}");
        }
    }

    #[test]
    fn the_environment_names_the_rabbitmq_sink() {
        let env = crate::config::tests::fake_env;
        let registry = StoreRegistry::new();
        let c = PipelineConfig::from_vars("AUDIT", &registry, env(&[])).unwrap();
        assert_eq!(c.sink(), None);
        let c = PipelineConfig::from_vars(
            "AUDIT",
            &registry,
            env(&[
                ("AUDIT_RABBITMQ_URL", "amqp://u:p@rabbit/%2f"),
                ("AUDIT_RABBITMQ_QUEUE", "notifications.info"),
                ("AUDIT_CONFIG", r#"{"queue_capacity":7}"#),
                ("AUDIT_BACKING_STORE", r#"{"type":"memory"}"#),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.sink(),
            Some(&SinkConfig::RabbitMq(RabbitMqConfig::new(
                "amqp://u:p@rabbit/%2f",
                "notifications.info"
            )))
        );
        assert_eq!(c.config().queue_capacity, 7);
        assert!(c.config().store.is_some());
        match PipelineConfig::from_vars(
            "AUDIT",
            &registry,
            env(&[("AUDIT_RABBITMQ_URL", "amqp://h")]),
        ) {
            Err(Error::Config(c)) => assert_eq!(c.field, "AUDIT_RABBITMQ_QUEUE"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sinks_are_checked_when_built() {
        let err = |doc: &str| PipelineConfig::from_json(doc).unwrap().build().unwrap_err();
        assert!(
            matches!(err("{}"), Error::Config(c) if c.field == "sink"),
            "a document without a sink cannot build"
        );
        let e = err(r#"{"sink":{"type":"http","url":"ftp://h"}}"#);
        assert!(
            matches!(&e, Error::Config(c) if c.field.starts_with("sink.")),
            "{e}"
        );
        let e = err(r#"{"sink":{"type":"http","url":"http://h","token_file":"/nonexistent/t"}}"#);
        assert!(e.to_string().contains("/nonexistent/t"), "{e}");
        let with_sink = PipelineConfig::from_json(r#"{"sink":{"type":"null"}}"#).unwrap();
        assert!(matches!(
            with_sink.build_with_sink(NullSink),
            Err(Error::Config(c)) if c.field == "sink"
        ));
    }
}
