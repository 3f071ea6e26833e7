//! Where and how the RabbitMQ sink publishes: plain data, read from code, from the
//! configuration document's `"sink"` or from the environment (`${PREFIX}_RABBITMQ_*`).
//! Compiled without the `rabbitmq` feature too, so every build reads the same documents
//! and can say what is missing.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::Error;

/// Where a `RabbitMqSink` (feature `rabbitmq`) publishes and how it connects. Plain data:
/// nothing is opened until the sink is built.
///
/// Each event becomes one persistent message (`delivery_mode` 2, `content_type`
/// `application/json`, `message_id` the event's `id`), published with `mandatory` set to
/// `exchange` with `routing_key` and counted delivered only once the broker confirmed it.
///
/// ```
/// use auditbuf::RabbitMqConfig;
/// use std::time::Duration;
///
/// let config = RabbitMqConfig::new("amqp://audit:secret@rabbitmq:5672/%2f", "notifications.info")
///     .declare(false)
///     .timeout(Duration::from_secs(10));
/// assert_eq!(config.queue_name(), "notifications.info");
/// // Messages and logs never show the password.
/// assert_eq!(config.redacted_url(), "amqp://audit:***@rabbitmq:5672/%2f");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RabbitMqConfig {
    pub(crate) url: String,
    pub(crate) queue: String,
    pub(crate) exchange: String,
    pub(crate) routing_key: Option<String>,
    pub(crate) declare: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) ca_file: Option<PathBuf>,
}

/// The URL without its password (as [`redacted_url`](RabbitMqConfig::redacted_url)).
impl std::fmt::Debug for RabbitMqConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqConfig")
            .field("url", &self.redacted_url())
            .field("queue", &self.queue)
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .field("declare", &self.declare)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Default for RabbitMqConfig {
    fn default() -> Self {
        RabbitMqConfig {
            url: "amqp://guest:guest@localhost:5672/%2f".to_owned(),
            queue: String::new(),
            exchange: String::new(),
            routing_key: None,
            declare: true,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            ca_file: None,
        }
    }
}

impl RabbitMqConfig {
    /// Publishing to `queue` through the default exchange, at `url`
    /// (`amqp://user:password@host:port/vhost`, `amqps://` for TLS; the default virtual host
    /// `/` is written `%2f`).
    pub fn new(url: impl Into<String>, queue: impl Into<String>) -> Self {
        RabbitMqConfig {
            url: url.into(),
            queue: queue.into(),
            ..RabbitMqConfig::default()
        }
    }

    /// The exchange to publish to; it must exist (it is checked, never declared, since
    /// its type is its owner's choice). Defaults to `""`, the default exchange, which
    /// routes by queue name.
    pub fn exchange(mut self, name: impl Into<String>) -> Self {
        self.exchange = name.into();
        self
    }

    /// The routing key of every message. Defaults to the queue's name.
    pub fn routing_key(mut self, key: impl Into<String>) -> Self {
        self.routing_key = Some(key.into());
        self
    }

    /// Whether to declare the queue on connecting (durable, no arguments; bound to the
    /// exchange with the routing key when an exchange is set), or only check that it
    /// exists, as it is (`false`: for a queue its owner declared with other settings, such
    /// as audittools' non-durable queues or a length limit). Defaults to `true`.
    pub fn declare(mut self, declare: bool) -> Self {
        self.declare = declare;
        self
    }

    /// Longest time to connect, open a channel and declare or check the queue. Defaults
    /// to 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest time to publish one batch and have every message confirmed; on expiry the
    /// unconfirmed messages are sent again on a new connection. Defaults to 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A PEM file of CA certificates to trust for `amqps://`, instead of the public (webpki)
    /// roots. Defaults to none.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// The queue's name.
    pub fn queue_name(&self) -> &str {
        &self.queue
    }

    /// The routing key messages are published with: the configured one, or the queue's
    /// name.
    pub fn routing_key_name(&self) -> &str {
        self.routing_key.as_deref().unwrap_or(&self.queue)
    }

    /// The URL with its password replaced by `***`, for messages and logs.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// Checks what can be checked without a broker, naming the field.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.url.is_empty() {
            return Err(Error::config(
                "url",
                "is empty, must be an amqp:// or amqps:// URL",
            ));
        }
        let rest = self
            .url
            .strip_prefix("amqp://")
            .or_else(|| self.url.strip_prefix("amqps://"));
        let Some(rest) = rest else {
            return Err(Error::config(
                "url",
                format!(
                    "{}: must start with amqp:// or amqps://",
                    self.redacted_url()
                ),
            ));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or("");
        if host.is_empty() || host.starts_with(':') {
            return Err(Error::config(
                "url",
                format!("{}: names no host", self.redacted_url()),
            ));
        }
        if self.queue.is_empty() && self.exchange.is_empty() {
            return Err(Error::config(
                "queue",
                "must not be empty (or set an exchange and a routing key)",
            ));
        }
        if self.queue.is_empty() && self.routing_key.is_none() {
            return Err(Error::config(
                "routing_key",
                "must be set when no queue is given",
            ));
        }
        for (field, value) in [
            ("queue", self.queue.as_str()),
            ("exchange", self.exchange.as_str()),
            ("routing_key", self.routing_key_name()),
        ] {
            // AMQP short strings.
            if value.len() > 255 {
                return Err(Error::config(field, "must be at most 255 bytes"));
            }
        }
        for (field, value) in [
            ("connect_timeout", self.connect_timeout),
            ("timeout", self.timeout),
        ] {
            if value.is_zero() {
                return Err(Error::config(field, "must be at least 1 ms"));
            }
        }
        Ok(())
    }

    /// The `"sink"` document's fields (its `type` already taken out).
    pub(crate) fn from_doc(value: Value) -> Result<Self, Error> {
        let d: RabbitMqDoc = crate::setup::parse_sink_fields(value)?;
        let mut c = RabbitMqConfig::new(d.url, d.queue.unwrap_or_default());
        if let Some(exchange) = d.exchange {
            c = c.exchange(exchange);
        }
        if let Some(key) = d.routing_key {
            c = c.routing_key(key);
        }
        if let Some(declare) = d.declare {
            c = c.declare(declare);
        }
        if let Some(ms) = d.connect_timeout_ms {
            c = c.connect_timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = d.timeout_ms {
            c = c.timeout(Duration::from_millis(ms));
        }
        if let Some(path) = d.ca_file {
            c = c.ca_file(path);
        }
        c.validate().map_err(|e| crate::setup::within("sink")(e))?;
        Ok(c)
    }

    /// Reads `${PREFIX}_RABBITMQ_URL` and `${PREFIX}_RABBITMQ_QUEUE`. Like audittools
    /// (whose variables are `${PREFIX}_HOSTNAME`, `_PORT`, `_USERNAME`, `_PASSWORD` and
    /// `_QUEUE_NAME`, with a prefix that usually ends in `_RABBITMQ`), the URL may instead be
    /// given in parts — `${PREFIX}_RABBITMQ_HOSTNAME` (`localhost`), `_PORT` (5672),
    /// `_USERNAME` and `_PASSWORD` (`guest`) — and the queue as `_QUEUE_NAME`. `None` when
    /// none of these is set.
    pub(crate) fn from_vars(
        prefix: &str,
        var: &dyn Fn(&str) -> Result<Option<String>, Error>,
    ) -> Result<Option<Self>, Error> {
        let name = |suffix: &str| format!("{prefix}_RABBITMQ_{suffix}");
        let get = |suffix: &str| var(&name(suffix));
        let (url, queue, queue_name) = (get("URL")?, get("QUEUE")?, get("QUEUE_NAME")?);
        let parts = [
            get("HOSTNAME")?,
            get("PORT")?,
            get("USERNAME")?,
            get("PASSWORD")?,
        ];
        if url.is_none()
            && queue.is_none()
            && queue_name.is_none()
            && parts.iter().all(Option::is_none)
        {
            return Ok(None);
        }
        let queue = match (queue, queue_name) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    name("QUEUE_NAME"),
                    format!("set {} or this, not both", name("QUEUE")),
                ));
            }
            (Some(q), None) | (None, Some(q)) => q,
            (None, None) => {
                return Err(Error::config(
                    name("QUEUE"),
                    "missing: the queue to publish to",
                ));
            }
        };
        let url = match url {
            Some(url) => {
                if let Some(i) = parts.iter().position(Option::is_some) {
                    let part = ["HOSTNAME", "PORT", "USERNAME", "PASSWORD"][i];
                    return Err(Error::config(
                        name(part),
                        format!("set {} or the URL's parts, not both", name("URL")),
                    ));
                }
                url
            }
            None => {
                let [host, port, user, password] = parts;
                let port = port.unwrap_or_else(|| "5672".to_owned());
                if port.parse::<u16>().is_err() {
                    return Err(Error::config(name("PORT"), "must be a port number"));
                }
                let host = host.unwrap_or_else(|| "localhost".to_owned());
                let host = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host
                };
                format!(
                    "amqp://{}:{}@{host}:{port}/%2f",
                    percent_encode(&user.unwrap_or_else(|| "guest".to_owned())),
                    percent_encode(&password.unwrap_or_else(|| "guest".to_owned())),
                )
            }
        };
        let config = RabbitMqConfig::new(url, queue);
        config.validate().map_err(|e| match e {
            Error::Config(c) => Error::config(name(&c.field.to_uppercase()), c.reason),
            other => other,
        })?;
        Ok(Some(config))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RabbitMqDoc {
    url: String,
    queue: Option<String>,
    exchange: Option<String>,
    routing_key: Option<String>,
    declare: Option<bool>,
    connect_timeout_ms: Option<u64>,
    timeout_ms: Option<u64>,
    ca_file: Option<PathBuf>,
}

/// `url` with the password of its user information replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    crate::sink::redact::password_hidden(url, Some("(not an amqp:// URL)"))
}

/// Percent-encodes what may not appear as such in a URL's user information.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            ("amqp://u:p@h:5672/%2f", "amqp://u:***@h:5672/%2f"),
            (
                "amqps://u:p%40ss@h/v?heartbeat=5",
                "amqps://u:***@h/v?heartbeat=5",
            ),
            ("amqp://u@h", "amqp://u@h"),
            ("amqp://h:5672", "amqp://h:5672"),
            ("amqp://u:p:q@h", "amqp://u:***@h"),
            ("amqp://a@b:c@h/x@y", "amqp://a@b:***@h/x@y"),
            ("secret", "(not an amqp:// URL)"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    fn field_of(c: RabbitMqConfig) -> String {
        match c.validate() {
            Err(Error::Config(c)) => c.field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_can_be_checked_without_a_broker_is() {
        RabbitMqConfig::new("amqp://h", "q").validate().unwrap();
        RabbitMqConfig::new("amqps://u:p@h:5671/v", "q")
            .validate()
            .unwrap();
        RabbitMqConfig::new("amqp://h", "")
            .exchange("audit")
            .routing_key("k")
            .validate()
            .unwrap();
        assert_eq!(field_of(RabbitMqConfig::new("http://h", "q")), "url");
        assert_eq!(
            RabbitMqConfig::new("", "q")
                .validate()
                .unwrap_err()
                .to_string(),
            "invalid configuration: url: is empty, must be an amqp:// or amqps:// URL"
        );
        assert_eq!(field_of(RabbitMqConfig::new("amqp://u:p@", "q")), "url");
        assert_eq!(field_of(RabbitMqConfig::new("amqp://:5672", "q")), "url");
        assert_eq!(field_of(RabbitMqConfig::new("amqp://h", "")), "queue");
        assert_eq!(
            field_of(RabbitMqConfig::new("amqp://h", "").exchange("x")),
            "routing_key"
        );
        assert_eq!(
            field_of(RabbitMqConfig::new("amqp://h", "q".repeat(256))),
            "queue"
        );
        assert_eq!(
            field_of(RabbitMqConfig::new("amqp://h", "q").timeout(Duration::ZERO)),
            "timeout"
        );
        let err = RabbitMqConfig::new("ftp://u:hunter2@h", "q")
            .validate()
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    fn vars(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Result<Option<String>, Error> {
        move |name: &str| {
            Ok(pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned()))
        }
    }

    #[test]
    fn the_environment_is_read_the_audittools_way_too() {
        assert_eq!(RabbitMqConfig::from_vars("A", &vars(&[])).unwrap(), None);
        let c = RabbitMqConfig::from_vars(
            "A",
            &vars(&[
                ("A_RABBITMQ_URL", "amqp://u:p@h/%2f"),
                ("A_RABBITMQ_QUEUE", "q"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c, RabbitMqConfig::new("amqp://u:p@h/%2f", "q"));
        let c = RabbitMqConfig::from_vars(
            "A",
            &vars(&[
                ("A_RABBITMQ_HOSTNAME", "rabbit"),
                ("A_RABBITMQ_PASSWORD", "p@ss:w/rd"),
                ("A_RABBITMQ_QUEUE_NAME", "notifications.info"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.url, "amqp://guest:p%40ss%3Aw%2Frd@rabbit:5672/%2f");
        assert_eq!(c.queue, "notifications.info");
        for (pairs, field) in [
            (&[("A_RABBITMQ_URL", "amqp://h")][..], "A_RABBITMQ_QUEUE"),
            (
                &[("A_RABBITMQ_QUEUE", "q"), ("A_RABBITMQ_QUEUE_NAME", "q")][..],
                "A_RABBITMQ_QUEUE_NAME",
            ),
            (
                &[
                    ("A_RABBITMQ_URL", "amqp://h"),
                    ("A_RABBITMQ_PORT", "1"),
                    ("A_RABBITMQ_QUEUE", "q"),
                ][..],
                "A_RABBITMQ_PORT",
            ),
            (
                &[("A_RABBITMQ_PORT", "x"), ("A_RABBITMQ_QUEUE", "q")][..],
                "A_RABBITMQ_PORT",
            ),
            (
                &[("A_RABBITMQ_URL", "http://h"), ("A_RABBITMQ_QUEUE", "q")][..],
                "A_RABBITMQ_URL",
            ),
        ] {
            let pairs: &'static [(&'static str, &'static str)] = pairs;
            match RabbitMqConfig::from_vars("A", &vars(pairs)) {
                Err(Error::Config(c)) => assert_eq!(c.field, field, "{pairs:?}: {}", c.reason),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    fn doc_field_of(text: &str) -> String {
        match crate::PipelineConfig::from_json(text) {
            Err(Error::Config(c)) => c.field,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn the_rabbitmq_sink_reads_and_names_its_fields() {
        let c = crate::PipelineConfig::from_json(
            r#"{"sink":{"type":"rabbitmq","url":"amqps://u:p@rabbit:5671/%2f","queue":"q",
                        "exchange":"audit","routing_key":"k","declare":false,
                        "connect_timeout_ms":100,"timeout_ms":2000}}"#,
        )
        .unwrap();
        let expect = RabbitMqConfig::new("amqps://u:p@rabbit:5671/%2f", "q")
            .exchange("audit")
            .routing_key("k")
            .declare(false)
            .connect_timeout(Duration::from_millis(100))
            .timeout(Duration::from_secs(2));
        assert_eq!(c.sink(), Some(&crate::SinkConfig::RabbitMq(expect)));
        for (doc, field) in [
            (r#"{"sink":{"type":"rabbitmq","queue":"q"}}"#, "sink.url"),
            (
                r#"{"sink":{"type":"rabbitmq","url":"amqp://h","qeue":"q"}}"#,
                "sink.qeue",
            ),
            (
                r#"{"sink":{"type":"rabbitmq","url":"http://h","queue":"q"}}"#,
                "sink.url",
            ),
            (
                r#"{"sink":{"type":"rabbitmq","url":"amqp://h"}}"#,
                "sink.queue",
            ),
            (
                r#"{"sink":{"type":"rabbitmq","url":"amqp://h","queue":"q","declare":"yes"}}"#,
                "sink.declare",
            ),
            (
                r#"{"sink":{"type":"rabbitmq","url":"amqp://h","queue":"q","timeout_ms":0}}"#,
                "sink.timeout",
            ),
            (
                r#"{"sink":{"type":"rabbitmq","url":"amqp://h","queue":"q","format":"ndjson"}}"#,
                "sink.format",
            ),
        ] {
            assert_eq!(doc_field_of(doc), field, "{doc}");
        }
        let err = crate::PipelineConfig::from_json(
            r#"{"sink":{"type":"rabbitmq","url":"ftp://u:hunter22@h","queue":"q"}}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter22"), "{err}");
    }
}
