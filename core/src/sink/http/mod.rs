//! An HTTP sink: one keep-alive ureq agent, a JSON-array or NDJSON body with a
//! `Content-Length`, and status codes mapped onto [`Outcome`]s.

mod config;

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ureq::Agent;
use ureq::tls::TlsConfig;
use ureq::unversioned::transport::DefaultConnector;

pub use config::{BodyFormat, HttpConfig};
use config::{authorization, check_header, read_token, roots_with};
pub(crate) use config::{check_url, shown_url};

use super::resolve::{Lookups, SinkResolver};
use super::{Limits, Outcome, Sink};
use crate::Error;
use crate::retry::parse_retry_after;
use crate::throttle::Throttle;

/// Posts each batch to one URL.
///
/// Answers map onto outcomes as follows: 2xx (201 and 202 alike) → delivered; 401/403 →
/// re-read the token file, then retry; 408, 429, 5xx and network errors → retry, honouring
/// `Retry-After`; 413 → split; 404, 405, 407, 410, 411, 415, 421, 425 and 426 say the endpoint is
/// wrong rather than the events, so they retry too (events are kept, not dead-lettered);
/// any other 4xx → bisect and dead-letter the events still refused alone, with the
/// `detail` of an `application/problem+json` answer as the reason.
///
/// One keep-alive connection is reused across batches. An IP address in the URL is used as
/// written, never looked up. A host name is looked up at most once every 5 s while lookups
/// succeed (on a short-lived thread, so that the lookup can be given up at the request's
/// timeout; a failed lookup is not kept, so the next request tries again). Only a new
/// connection uses the addresses: an open connection stays where it is until it breaks. A
/// request that fails in transport (refused, timed out, reset; not an HTTP error status)
/// forgets the addresses, so a host that moved is looked up again by the retry; one that
/// gets an answer keeps them.
///
/// ```no_run
/// use auditbuf::{Config, HttpConfig, HttpSink, Pipeline};
///
/// let sink = HttpSink::new("https://collector.example/events", HttpConfig::default().token_file("/var/run/secrets/token"))?;
/// let pipeline = Pipeline::new(Config::default(), sink)?;
/// # Ok::<(), auditbuf::Error>(())
/// ```
pub struct HttpSink {
    agent: Agent,
    url: String,
    /// `url` as messages show it: without the password of its user information.
    shown: String,
    config: HttpConfig,
    authorization: Option<String>,
    /// What the token file looked like when it was last read; `None` without one.
    token_seen: Option<FileStamp>,
    body: Vec<u8>,
    /// The agent's resolver's addresses, forgotten when a request fails.
    lookups: Lookups,
    /// Warnings that the token file could not be read again: one line per 10 s.
    token_warnings: Throttle,
}

/// The longest an answer's body is read for, once its status arrived.
const BODY_READ_LIMIT: Duration = Duration::from_secs(1);

/// Bodies this large are sent with `Expect: 100-continue`: a server that refuses them
/// from the headers alone (DataStorage answers 413 from `Content-Length` and closes) is
/// heard before the body is written, instead of the client seeing a broken pipe and
/// sending the same body again. Smaller bodies fit the socket buffers, so the answer is
/// read anyway, and skip the extra round trip.
pub(crate) const EXPECT_CONTINUE_BYTES: usize = 64 * 1024;

/// Enough of a file's metadata to notice that it was replaced or rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

impl HttpSink {
    /// A sink posting to `url` (`http://` or `https://`). Reads the token and CA files now,
    /// so a missing file is an error here rather than at the first send.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field: `url` not `http://` or `https://` with a host;
    /// `headers` with an invalid name or value, or naming one the sink sets itself
    /// (`Content-Length`, `Transfer-Encoding`, `Host`, `Content-Type`, `Expect`, and
    /// `Authorization` with a token); `bearer_token`, or the `token_file`'s
    /// content, empty or with control characters; both given (`token_file`); `ca_file`
    /// holding no PEM certificate. [`Error::Io`] naming the token or CA file it cannot
    /// read.
    pub fn new(url: impl Into<String>, config: HttpConfig) -> Result<Self, Error> {
        let url = url.into();
        check_url(&url)?;
        let has_token = config.bearer_token.is_some() || config.token_file.is_some();
        for (name, value) in &config.headers {
            check_header(name, value, has_token)?;
        }
        let authorization = match (&config.bearer_token, &config.token_file) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "token_file",
                    "set either bearer_token or token_file, not both",
                ));
            }
            (Some(token), None) => Some(authorization("bearer_token", token)?),
            (None, Some(path)) => Some(read_token(path)?),
            (None, None) => None,
        };
        let token_seen = config.token_file.as_deref().and_then(FileStamp::of);
        let mut tls = TlsConfig::builder();
        if let Some(path) = &config.ca_file {
            tls = tls.root_certs(roots_with(path)?);
        }
        let agent_config = Agent::config_builder()
            .timeout_connect(Some(config.connect_timeout))
            .timeout_global(Some(config.timeout))
            // The answer's body is read only to reuse the connection (or for an error's
            // detail): a server trickling it must not hold the flush thread for the whole
            // request timeout once its status is known.
            .timeout_recv_body(Some(config.timeout.min(BODY_READ_LIMIT)))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(config.user_agent.as_str())
            .tls_config(tls.build())
            .build();
        let lookups = Lookups::default();
        let agent = Agent::with_parts(
            agent_config,
            DefaultConnector::default(),
            SinkResolver::new(lookups.clone()),
        );
        Ok(HttpSink {
            agent,
            shown: shown_url(&url),
            url,
            config,
            authorization,
            token_seen,
            body: Vec::new(),
            lookups,
            token_warnings: Throttle::default(),
        })
    }

    /// The URL batches are posted to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `text` (an error from ureq, which may quote the URL) with the URL shown as
    /// [`shown`](Self::shown) does.
    fn scrub(&self, text: String) -> String {
        if self.shown == self.url {
            text
        } else {
            text.replace(&self.url, &self.shown)
        }
    }

    #[cfg(test)]
    pub(crate) fn lookups(&self) -> &Lookups {
        &self.lookups
    }

    fn fill_body(&mut self, batch: &[&[u8]]) {
        self.body.clear();
        match self.config.format {
            BodyFormat::JsonArray => {
                self.body.push(b'[');
                for (i, event) in batch.iter().enumerate() {
                    if i > 0 {
                        self.body.push(b',');
                    }
                    self.body.extend_from_slice(event);
                }
                self.body.push(b']');
            }
            BodyFormat::Ndjson => {
                for event in batch {
                    self.body.extend_from_slice(event);
                    self.body.push(b'\n');
                }
            }
        }
    }

    fn reload_token(&mut self) -> Option<String> {
        let path = self.config.token_file.as_ref()?;
        let stamp = FileStamp::of(path);
        match read_token(path) {
            Ok(auth) => {
                self.authorization = Some(auth);
                self.token_seen = stamp;
                None
            }
            Err(e) => Some(e.to_string()),
        }
    }

    /// Re-reads the token file if it changed since it was last read, so a rotated token is
    /// used by the very next request (a `stat` per request: microseconds, against a request
    /// that takes milliseconds).
    fn refresh_token(&mut self) -> Option<String> {
        let path = self.config.token_file.as_deref()?;
        if FileStamp::of(path) == self.token_seen {
            return None;
        }
        self.reload_token()
    }
}

impl HttpSink {
    /// Posts the body, with `Expect: 100-continue` when `expect`.
    fn post(&self, expect: bool) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut request = self
            .agent
            .post(&self.url)
            .content_type(self.config.format.content_type());
        if expect {
            request = request.header("Expect", "100-continue");
        }
        for (name, value) in &self.config.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth.as_str());
        }
        request.send(&self.body[..])
    }
}

impl Sink for HttpSink {
    fn send(&mut self, batch: &[&[u8]]) -> Outcome {
        self.fill_body(batch);
        let token_problem = self.refresh_token();
        let expect = self.body.len() >= EXPECT_CONTINUE_BYTES;
        let mut sent = self.post(expect);
        // A server or proxy that does not do expectations answers 417: the same request
        // goes again without one (RFC 9110, 10.1.1).
        if expect && sent.as_ref().is_ok_and(|r| r.status().as_u16() == 417) {
            sent = self.post(false);
        }
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                self.lookups.forget();
                return Outcome::retry(self.scrub(format!("POST {}: {e}", self.shown)));
            }
        };
        if let Some(problem) = token_problem
            && let Some(n) = self.token_warnings.note(1)
        {
            log::warn!(
                "token file changed but could not be read again ({n} time{} since the last \
                 such line): {problem}; the token read before is sent",
                if n == 1 { "" } else { "s" }
            );
        }
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            // Read the answer to its end so the connection goes back to the pool.
            let mut rest = response.body_mut().with_config().limit(1 << 20).reader();
            let _ = std::io::copy(&mut rest, &mut std::io::sink());
            return Outcome::Delivered;
        }
        let after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut detail = problem_detail(&mut response, status);
        if (300..400).contains(&status) {
            // Redirects are not followed: a batch of audit events (and its token) goes only
            // where it was configured to go. Say where the server points.
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok());
            detail = format!(
                "redirects to {} (not followed: configure that URL){}",
                location.map_or_else(|| "nowhere given".to_owned(), shown_url),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!("; {detail}")
                }
            );
        }
        let mut reason = format!("HTTP {status} from {}: {detail}", self.shown);
        match status {
            401 | 403 => {
                if let Some(e) = self.reload_token() {
                    reason.push_str("; re-reading the token failed: ");
                    reason.push_str(&e);
                }
                Outcome::Retry { after, reason }
            }
            413 => Outcome::TooLarge { reason },
            404 | 405 | 407 | 410 | 411 | 415 | 421 | 425 | 426 => Outcome::Retry { after, reason },
            400..=499 if status != 408 && status != 429 => Outcome::Rejected {
                index: blamed_index(&detail),
                reason,
            },
            _ => Outcome::Retry { after, reason },
        }
    }

    fn limits(&self) -> Limits {
        self.config.limits
    }
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.shown)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The `detail` (and `title`) of a problem+json answer, or the start of the body.
fn problem_detail(response: &mut ureq::http::Response<ureq::Body>, status: u16) -> String {
    let mut text = String::new();
    let _ = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .reader()
        .take(64 * 1024)
        .read_to_string(&mut text);
    #[derive(serde::Deserialize)]
    struct Problem {
        title: Option<String>,
        detail: Option<String>,
    }
    if let Ok(p) = serde_json::from_str::<Problem>(&text) {
        match (p.title, p.detail) {
            (Some(t), Some(d)) => return format!("{t}: {d}"),
            (None, Some(d)) | (Some(d), None) => return d,
            (None, None) => {}
        }
    }
    let text = text.trim();
    if text.is_empty() {
        return ureq::http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no detail")
            .to_owned();
    }
    text.chars().take(500).collect()
}

/// The batch index a receiver blamed, as in DataStorage's "event at index 3 failed
/// validation". Only a hint: the pipeline confirms it by sending that event alone.
fn blamed_index(detail: &str) -> Option<usize> {
    let rest = &detail[detail.find("index ")? + "index ".len()..];
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        assert!(check_url("https://example.com").is_ok());
        for bad in ["", "127.0.0.1:80", "ftp://x/", "http://", "not a url"] {
            assert!(matches!(check_url(bad), Err(Error::Config(_))), "{bad}");
        }
    }

    #[test]
    fn bodies_are_framed() {
        let mut sink = HttpSink::new("http://127.0.0.1:1/", HttpConfig::default()).unwrap();
        sink.fill_body(&[b"{\"a\":1}", b"{}"]);
        assert_eq!(sink.body, b"[{\"a\":1},{}]");
        sink.fill_body(&[]);
        assert_eq!(sink.body, b"[]");
        sink.config.format = BodyFormat::Ndjson;
        sink.fill_body(&[b"{\"a\":1}", b"{}"]);
        assert_eq!(sink.body, b"{\"a\":1}\n{}\n");
    }

    #[test]
    fn headers_are_checked_when_the_sink_is_built() {
        let bad_name = HttpConfig::default().header("bad name", "v");
        assert!(matches!(
            HttpSink::new("http://127.0.0.1:1/", bad_name),
            Err(Error::Config(_))
        ));
        let bad_value = HttpConfig::default().header("X-Ok", "line\nbreak");
        assert!(matches!(
            HttpSink::new("http://127.0.0.1:1/", bad_value),
            Err(Error::Config(_))
        ));
        assert!(
            HttpSink::new(
                "http://127.0.0.1:1/",
                HttpConfig::default().header("X-Ok", "fine")
            )
            .is_ok()
        );
    }

    #[test]
    fn headers_the_sink_sets_itself_are_refused() {
        for name in [
            "Content-Length",
            "content-type",
            "Transfer-Encoding",
            "HOST",
            "Expect",
        ] {
            let given = HttpConfig::default().header(name, "5");
            let e = HttpSink::new("http://127.0.0.1:1/", given)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("headers") && e.contains(name), "{name}: {e:?}");
        }
        // Authorization only clashes with a token.
        let own = HttpConfig::default().header("Authorization", "ApiKey k");
        assert!(HttpSink::new("http://127.0.0.1:1/", own).is_ok());
        let both = HttpConfig::default()
            .header("authorization", "ApiKey k")
            .bearer_token("t");
        let e = HttpSink::new("http://127.0.0.1:1/", both)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("bearer_token"), "{e:?}");
    }

    #[test]
    fn tokens_must_fit_a_header() {
        assert_eq!(authorization("t", " abc\n").unwrap(), "Bearer abc");
        assert!(authorization("t", "").is_err());
        assert!(authorization("t", "a\nb").is_err());
        let missing = HttpSink::new(
            "http://127.0.0.1:1/",
            HttpConfig::default().token_file("/nonexistent/token"),
        );
        assert!(matches!(missing, Err(Error::Io(_))));
        let both = HttpConfig::default().bearer_token("a").token_file("/x");
        assert!(matches!(
            HttpSink::new("http://127.0.0.1:1/", both),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn blamed_index_is_read_from_the_detail() {
        assert_eq!(
            blamed_index("event at index 12 failed validation"),
            Some(12)
        );
        assert_eq!(blamed_index("did not pass OpenAPI schema validation"), None);
        assert_eq!(blamed_index("index x"), None);
    }
}
