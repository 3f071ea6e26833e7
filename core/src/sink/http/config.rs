//! An [`HttpSink`](super::HttpSink)'s settings and the checks made when it is built: the
//! URL, the headers a caller may add, the bearer token and the extra CA certificates.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem, RootCerts};

use crate::{Error, Limits};

/// How a batch is framed in the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BodyFormat {
    /// `[event,event,…]` as `application/json`.
    #[default]
    JsonArray,
    /// One event per line as `application/x-ndjson`.
    Ndjson,
}

impl BodyFormat {
    pub(super) fn content_type(self) -> &'static str {
        match self {
            BodyFormat::JsonArray => "application/json",
            BodyFormat::Ndjson => "application/x-ndjson",
        }
    }
}

/// Settings of an [`HttpSink`](super::HttpSink). Plain data; the token is never printed by `Debug`.
///
/// ```
/// use auditbuf::{BodyFormat, HttpConfig};
/// use std::time::Duration;
///
/// let config = HttpConfig::default()
///     .format(BodyFormat::Ndjson)
///     .header("X-Tenant", "blue")
///     .bearer_token("s3cr3t")
///     .timeout(Duration::from_secs(10));
/// assert!(!format!("{config:?}").contains("s3cr3t"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub(crate) format: BodyFormat,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) bearer_token: Option<String>,
    pub(crate) token_file: Option<PathBuf>,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) limits: Limits,
    pub(crate) user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            format: BodyFormat::JsonArray,
            headers: Vec::new(),
            bearer_token: None,
            token_file: None,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            ca_file: None,
            limits: Limits::NONE,
            user_agent: concat!("auditbuf/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl HttpConfig {
    /// Body framing. Defaults to [`BodyFormat::JsonArray`].
    pub fn format(mut self, format: BodyFormat) -> Self {
        self.format = format;
        self
    }

    /// Adds a header sent with every request. Defaults to none.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends `Authorization: Bearer <token>`. Defaults to no token.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Reads the bearer token from a file (a Kubernetes service-account token, say), and
    /// reads it again after a 401 or 403 because such files are rotated. Defaults to none.
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = Some(path.into());
        self
    }

    /// Longest time to open the connection, TLS handshake included. Defaults to 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest time for a whole request, from connecting to reading the answer; a slower
    /// answer is a retryable failure. Defaults to 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A PEM file of CA certificates trusted in addition to the bundled Mozilla roots.
    /// Defaults to none.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Batch limits of the receiver. Defaults to [`Limits::NONE`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// `User-Agent` header. Defaults to `auditbuf/<version>`.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may be credentials (an `Authorization` or API-key header).
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(name, _)| format!("{name}: <redacted>"))
            .collect();
        f.debug_struct("HttpConfig")
            .field("format", &self.format)
            .field("headers", &headers)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("token_file", &self.token_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("limits", &self.limits)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

pub(crate) fn check_url(url: &str) -> Result<(), Error> {
    let shown = shown_url(url);
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| Error::config("url", format!("{shown:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        // A fragment is never sent: the request would go to the URL without it.
        Some("http" | "https") if url.contains('#') => Err(Error::config(
            "url",
            format!("{shown:?} has a fragment (#…), which is never sent: remove it"),
        )),
        Some("http" | "https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err(Error::config(
            "url",
            format!("{shown:?} must be an http:// or https:// URL with a host"),
        )),
    }
}

/// `url` without the password of its user information, for messages.
pub(crate) fn shown_url(url: &str) -> String {
    crate::sink::redact::password_hidden(url, None)
}

/// Headers the sink writes itself: one given again would be sent twice or replace the
/// sink's (a `Content-Length` other than the body's makes every request fail).
const SINK_HEADERS: [(&str, &str); 5] = [
    ("content-length", "the body's length"),
    ("transfer-encoding", "the body's framing"),
    ("host", "`url`"),
    ("content-type", "`format`"),
    ("expect", "the body's size"),
];

pub(super) fn check_header(name: &str, value: &str, has_token: bool) -> Result<(), Error> {
    if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(Error::config(
            "headers",
            format!("{name:?} is not a valid header name"),
        ));
    }
    if let Some((_, from)) = SINK_HEADERS
        .iter()
        .find(|(sink, _)| name.eq_ignore_ascii_case(sink))
    {
        return Err(Error::config(
            "headers",
            format!("{name:?} is set by the sink from {from}; leave it out"),
        ));
    }
    if has_token && name.eq_ignore_ascii_case("authorization") {
        return Err(Error::config(
            "headers",
            "\"Authorization\" is set by the sink from bearer_token or token_file; give one or the other",
        ));
    }
    if ureq::http::HeaderValue::from_str(value).is_err() {
        return Err(Error::config(
            "headers",
            format!("the value of header {name:?} has characters a header cannot carry"),
        ));
    }
    Ok(())
}

pub(super) fn authorization(field: &str, token: &str) -> Result<String, Error> {
    let token = token.trim();
    if token.is_empty() || token.bytes().any(|b| b.is_ascii_control()) {
        return Err(Error::config(
            field,
            "the token is empty or has characters a header cannot carry",
        ));
    }
    Ok(format!("Bearer {token}"))
}

pub(super) fn read_token(path: &Path) -> Result<String, Error> {
    let token = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    authorization("token_file", &token)
}

/// The bundled Mozilla roots plus every certificate in the PEM file at `path`.
pub(super) fn roots_with(path: &Path) -> Result<RootCerts, Error> {
    let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut certs: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    let bundled = certs.len();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::config(
                    "ca_file",
                    format!("{}: not a PEM certificate file: {e}", path.display()),
                ));
            }
        }
    }
    if certs.len() == bundled {
        return Err(Error::config(
            "ca_file",
            format!("{}: holds no PEM certificate", path.display()),
        ));
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}
