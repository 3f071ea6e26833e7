//! The kubernaut DataStorage audit batch endpoint.

use super::http::{BodyFormat, HttpConfig, HttpSink};
use super::{Limits, Outcome, Sink};
use crate::Error;

/// Posts batches to `{base}/api/v1/audit/events/batch` as a JSON array, never more than
/// 500 events or 5 MiB per request (the server's limits), whatever the pipeline's batch
/// settings say. A 202 (the server parked the batch in its own dead-letter queue) counts as
/// delivered and is never sent again.
///
/// ```
/// use auditbuf::{DataStorageSink, Limits, Sink};
///
/// let sink = DataStorageSink::new("http://datastorage:8080/")?;
/// assert_eq!(sink.url(), "http://datastorage:8080/api/v1/audit/events/batch");
/// assert_eq!(sink.limits().max_events, 500);
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug)]
pub struct DataStorageSink {
    http: HttpSink,
}

impl DataStorageSink {
    /// Most events the server takes in one batch.
    pub const MAX_EVENTS: usize = 500;
    /// Bodies must stay below this many bytes.
    pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
    /// The batch endpoint, relative to the base URL.
    pub const PATH: &'static str = "/api/v1/audit/events/batch";

    /// A sink for the DataStorage service at `base_url`, with default HTTP settings.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] (`url`) when `base_url` is not `http://` or `https://` with a
    /// host.
    pub fn new(base_url: &str) -> Result<Self, Error> {
        Self::with_config(base_url, HttpConfig::default())
    }

    /// A sink for the DataStorage service at `base_url` with the given HTTP settings (token
    /// file, timeouts, CA). The body format and limits are the server's, whatever `config`
    /// says.
    ///
    /// # Errors
    ///
    /// Those of [`HttpSink::new`]: [`Error::Config`] naming the field (`url`, `headers`,
    /// `token_file`, `ca_file`, …), [`Error::Io`] naming a token or CA file it cannot
    /// read.
    pub fn with_config(base_url: &str, config: HttpConfig) -> Result<Self, Error> {
        // Checked as given, so an error shows the user's URL, not one with the path added.
        super::http::check_url(base_url)?;
        // The path goes after the base's path, before its query (`?tenant=a`).
        let (base, query) = base_url
            .split_once('?')
            .map_or((base_url, None), |(base, query)| (base, Some(query)));
        let mut url = format!("{}{}", base.trim_end_matches('/'), Self::PATH);
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        let limits = Limits {
            max_events: config.limits.max_events.min(Self::MAX_EVENTS),
            // The body is the events, a comma after each but the last, and two brackets;
            // it must stay strictly below MAX_BODY_BYTES.
            max_bytes: config.limits.max_bytes.min(Self::MAX_BODY_BYTES - 2),
        };
        let config = config.format(BodyFormat::JsonArray).limits(limits);
        Ok(DataStorageSink {
            http: HttpSink::new(url, config)?,
        })
    }

    /// The URL batches are posted to.
    pub fn url(&self) -> &str {
        self.http.url()
    }
}

impl Sink for DataStorageSink {
    fn send(&mut self, batch: &[&[u8]]) -> Outcome {
        self.http.send(batch)
    }

    fn limits(&self) -> Limits {
        self.http.limits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_base_url_is_shown_as_given() {
        let Err(Error::Config(c)) = DataStorageSink::new("not a url") else {
            panic!("a bad URL was taken");
        };
        assert_eq!(c.field, "url");
        assert!(c.reason.starts_with("\"not a url\" "), "{}", c.reason);
        assert!(!c.reason.contains(DataStorageSink::PATH), "{}", c.reason);
    }

    #[test]
    fn the_path_goes_before_the_query_and_a_fragment_is_refused() {
        let sink = DataStorageSink::new("http://ds:8080/base/?tenant=a").unwrap();
        assert_eq!(
            sink.url(),
            "http://ds:8080/base/api/v1/audit/events/batch?tenant=a"
        );
        let Err(Error::Config(c)) = DataStorageSink::new("http://ds:8080/base#x") else {
            panic!("a URL with a fragment was taken");
        };
        assert!(c.reason.contains("has a fragment"), "{}", c.reason);
    }

    #[test]
    fn a_password_in_the_url_never_shows() {
        let Err(Error::Config(c)) = DataStorageSink::new("ftp://u:S3cret@ds/") else {
            panic!("an ftp URL was taken");
        };
        assert!(c.reason.contains("ftp://u:***@ds/"), "{}", c.reason);
        let sink = DataStorageSink::new("http://u:S3cret@ds:8080").unwrap();
        assert!(!format!("{sink:?}").contains("S3cret"), "{sink:?}");
    }
}
