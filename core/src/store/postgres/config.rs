//! Settings of the Postgres store, as code writes them and as `{"type":"postgres","params":…}`
//! gives them; the password never shows in `Debug` or in messages.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::Error;
use crate::config::present;
use crate::store::limits::{MAX_STORE_BYTES, MIN_STORE_BYTES, out_of_range};

/// Longest lease: a day.
const MAX_LEASE_MS: u128 = 86_400_000;
/// Most claims of a row before it is dead-lettered.
const MAX_CLAIMS: u32 = 1000;

/// Longest table name: `<table>_dead` must stay within Postgres's 63-byte identifiers.
const MAX_TABLE_LEN: usize = 63 - "_dead".len();

/// Settings of a [`PostgresStore`](super::PostgresStore). Plain data; `Debug` hides any password in the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresStoreConfig {
    pub(crate) url: String,
    pub(crate) table: String,
    pub(crate) lease: Duration,
    pub(crate) max_claims: u32,
    pub(crate) max_total_bytes: Option<u64>,
}

impl PostgresStoreConfig {
    /// A store on the server and database of `url`, either a URL
    /// (`postgres://user:password@host:5432/db?connect_timeout=5`) or `key=value` pairs
    /// (`host=db user=audit dbname=audit`). TLS is not supported.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresStoreConfig {
            url: url.into(),
            table: "auditbuf_events".to_owned(),
            lease: Duration::from_secs(60),
            max_claims: 10,
            max_total_bytes: None,
        }
    }

    /// The table the events live in (created if missing, with `<table>_dead` for dead
    /// letters): a lowercase SQL identifier, `[a-z_][a-z0-9_]*`, of at most 58 characters.
    /// Replicas that drain the same events name the same table. Defaults to
    /// `"auditbuf_events"`.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// How long rows a read claimed stay reserved for this store. While it holds them
    /// (until the commit), the store renews the lease from [`Store::tick`](crate::Store::tick), so a live
    /// replica keeps its rows however long the sink is down; once a replica stops (crash,
    /// or a thread stuck longer than this), another replica may claim and send them. Keep
    /// it well above the time one delivery attempt takes. 1 ms to 1 day. Defaults to 60 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How many times a row may be claimed by different owners that never committed it
    /// (they crashed while sending it) before it is moved to `<table>_dead`. Reads again by
    /// the same live store do not count. 1 to 1000. Defaults to 10.
    pub fn max_claims(mut self, n: u32) -> Self {
        self.max_claims = n;
        self
    }

    /// Most payload bytes the table may hold; appending more fails with
    /// [`Error::StoreFull`]. The count is this store's view, set right from the table's
    /// size counter once a second. 4 KiB to 16 TiB. Defaults to no limit.
    pub fn max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = Some(bytes);
        self
    }

    /// The first setting that is out of range, by its field name, with the reason.
    pub(crate) fn invalid(&self) -> Option<(&'static str, String)> {
        if self.url.trim().is_empty() {
            return Some(("url", "must not be empty".to_owned()));
        }
        if let Err(e) = postgres::Config::from_str(&self.url) {
            return Some(("url", format!("is not a Postgres connection string: {e}")));
        }
        if !valid_table(&self.table) {
            return Some((
                "table",
                format!(
                    "{:?} must match ^[a-z_][a-z0-9_]{{0,{}}}$ (a lowercase SQL identifier short enough \
                     for \"<table>_dead\" to fit in 63 bytes)",
                    self.table,
                    MAX_TABLE_LEN - 1
                ),
            ));
        }
        // The lease ends up in an SQL interval: keep it within what Postgres can add.
        out_of_range("lease", self.lease.as_millis(), 1, MAX_LEASE_MS)
            .or_else(|| out_of_range("max_claims", self.max_claims.into(), 1, MAX_CLAIMS.into()))
            .or_else(|| {
                self.max_total_bytes.and_then(|bytes| {
                    out_of_range(
                        "max_total_bytes",
                        bytes.into(),
                        MIN_STORE_BYTES.into(),
                        MAX_STORE_BYTES.into(),
                    )
                })
            })
    }
}

impl fmt::Debug for PostgresStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStoreConfig")
            .field("url", &redacted(&self.url))
            .field("table", &self.table)
            .field("lease", &self.lease)
            .field("max_claims", &self.max_claims)
            .field("max_total_bytes", &self.max_total_bytes)
            .finish()
    }
}

/// Whether `name` matches `^[a-z_][a-z0-9_]*$` and leaves room for the `_dead` suffix.
fn valid_table(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b == b'_' || b.is_ascii_lowercase());
    first_ok
        && name.len() <= MAX_TABLE_LEN
        && bytes.all(|b| b == b'_' || b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `url` with the password, if any, replaced by `***`: in the user-info part of a URL and
/// in `password=` pairs (URL query or `key=value` form).
fn redacted(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let rest = &out[rest_start..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let user_info = rest[..authority_end]
            .rfind('@')
            .map(|at| (at, rest[..at].find(':')));
        if let Some((at, Some(colon))) = user_info {
            out.replace_range(rest_start + colon + 1..rest_start + at, "***");
        }
    }
    let mut from = 0;
    while let Some(found) = out[from..].to_ascii_lowercase().find("password") {
        let key_end = from + found + "password".len();
        let after = &out[key_end..];
        let trimmed = after.trim_start();
        if !trimmed.starts_with('=') {
            from = key_end;
            continue;
        }
        let value_start = key_end + (after.len() - trimmed.len()) + 1;
        let value = &out[value_start..];
        let lead = value.len() - value.trim_start().len();
        let value = &value[lead..];
        let len = if let Some(quoted) = value.strip_prefix('\'') {
            // A quoted key=value value: up to the closing quote (\' escapes one).
            let mut escaped = false;
            let close = quoted.char_indices().find(|&(_, c)| {
                let end = c == '\'' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            });
            close.map_or(value.len(), |(i, _)| i + 2)
        } else {
            value
                .find(|c: char| c == '&' || c.is_whitespace())
                .unwrap_or(value.len())
        };
        let start = value_start + lead;
        out.replace_range(start..start + len, "***");
        from = start + 3;
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresParams {
    url: String,
    #[serde(default, deserialize_with = "present")]
    table: Option<String>,
    #[serde(default, deserialize_with = "present")]
    lease_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    max_claims: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    max_total_bytes: Option<u64>,
}

/// The configuration of `{"type":"postgres","params":{…}}`: `url` (required), `table`,
/// `lease_ms`, `max_claims`, `max_total_bytes`. Errors name the field as `params.<field>`.
pub(crate) fn config_from_params(params: &Value) -> Result<PostgresStoreConfig, Error> {
    let p: PostgresParams = crate::store::config::parse_params(params)?;
    let mut c = PostgresStoreConfig::new(p.url);
    if let Some(v) = p.table {
        c = c.table(v);
    }
    if let Some(v) = p.lease_ms {
        c = c.lease(Duration::from_millis(v));
    }
    if let Some(v) = p.max_claims {
        c = c.max_claims(v);
    }
    if let Some(v) = p.max_total_bytes {
        c = c.max_total_bytes(v);
    }
    match c.invalid() {
        Some(("lease", reason)) => Err(Error::config("params.lease_ms", reason)),
        Some((field, reason)) => Err(Error::config(format!("params.{field}"), reason)),
        None => Ok(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redacted("postgres://audit:s3cret@db:5432/x"),
            "postgres://audit:***@db:5432/x"
        );
        assert_eq!(
            redacted("postgresql://audit@db/x"),
            "postgresql://audit@db/x"
        );
        assert_eq!(
            redacted("postgres://a:p%40ss@db/x?password=other&sslmode=disable"),
            "postgres://a:***@db/x?password=***&sslmode=disable"
        );
        assert_eq!(
            redacted("host=db password=s3cret user=a"),
            "host=db password=*** user=a"
        );
        assert_eq!(
            redacted("host=db password = 'it\\'s x' user=a"),
            "host=db password = *** user=a"
        );
        let c = PostgresStoreConfig::new("postgres://audit:s3cret@db/x");
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");
    }

    #[test]
    fn table_names_are_checked() {
        assert!(valid_table("auditbuf_events"));
        assert!(valid_table("_t1"));
        assert!(valid_table(&"a".repeat(58)));
        assert!(!valid_table(&"a".repeat(59)));
        for bad in ["", "1t", "Events", "a-b", "a b", "t\"", "ä"] {
            assert!(!valid_table(bad), "{bad}");
        }
    }

    #[test]
    fn params_are_read_and_checked() {
        let c = config_from_params(&serde_json::json!({
            "url": "postgres://u@h/db", "table": "t", "lease_ms": 1500, "max_claims": 3, "max_total_bytes": 4096
        }))
        .unwrap();
        assert_eq!(
            c,
            PostgresStoreConfig::new("postgres://u@h/db")
                .table("t")
                .lease(Duration::from_millis(1500))
                .max_claims(3)
                .max_total_bytes(4096)
        );
        let field = |v: Value| match config_from_params(&v) {
            Err(Error::Config(c)) => c.field,
            other => panic!("{v}: {other:?}"),
        };
        assert_eq!(field(serde_json::json!({})), "params");
        assert_eq!(
            field(serde_json::json!({"url": "postgres://h", "table": "Bad"})),
            "params.table"
        );
        assert_eq!(
            field(serde_json::json!({"url": "postgres://h", "lease_ms": 0})),
            "params.lease_ms"
        );
        assert_eq!(
            field(serde_json::json!({"url": "postgres://h", "max_claims": 0})),
            "params.max_claims"
        );
        assert_eq!(
            field(serde_json::json!({"url": "postgres://h:port/x"})),
            "params.url"
        );
        assert_eq!(
            field(serde_json::json!({"url": "postgres://h", "lease": 5})),
            "params.lease"
        );
    }
}
