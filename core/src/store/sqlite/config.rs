//! Settings of the SQLite store, as code writes them and as `{"type":"sqlite","params":…}`
//! gives them.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::Error;
use crate::config::present;
use crate::store::Fsync;
use crate::store::config::{fsync_from, parse_params};
use crate::store::limits::{
    Invalid, MAX_STORE_BYTES, MIN_STORE_BYTES, fsync_invalid, out_of_range, path_invalid,
};

/// Settings of an [`SqliteStore`](super::SqliteStore). Plain data.
///
/// ```
/// use auditbuf::{Fsync, SqliteStoreConfig, StoreConfig};
///
/// let config = SqliteStoreConfig::new("/var/lib/app/audit.db")
///     .max_total_bytes(64 << 20)
///     .fsync(Fsync::Always);
/// let same = StoreConfig::from_json(
///     r#"{"type":"sqlite","params":{"path":"/var/lib/app/audit.db","max_total_bytes":67108864,"fsync":"always"}}"#,
/// )?;
/// assert_eq!(same, StoreConfig::Sqlite(config));
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteStoreConfig {
    pub(crate) path: PathBuf,
    pub(crate) max_total_bytes: u64,
    pub(crate) fsync: Fsync,
}

impl SqliteStoreConfig {
    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// A store in database file `path` (created, mode 0600, if missing; so is its directory,
    /// mode 0700).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteStoreConfig {
            path: path.into(),
            max_total_bytes: 1 << 30,
            fsync: Fsync::Interval(Duration::from_secs(1)),
        }
    }

    /// Most payload bytes of unconsumed events; appending more fails with
    /// [`Error::StoreFull`] and appends none of the batch. Dead letters are kept within an
    /// eighth of it (at least 1 MiB), newest first. 4 KiB to 16 TiB. Defaults to 1 GiB.
    pub fn max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = bytes;
        self
    }

    /// When appends are forced to disk: [`Fsync::Always`] syncs every append's transaction
    /// (`synchronous = FULL`); [`Fsync::Interval`] checkpoints the WAL into the database,
    /// synced, at most that long after an append (`synchronous = NORMAL`); [`Fsync::Never`]
    /// leaves it to the operating system (`synchronous = OFF`). [`Store::sync`](crate::Store::sync) makes
    /// everything durable under every policy. An interval is at least 1 ms. Defaults to
    /// [`Fsync::Interval`] of 1 s.
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }

    /// The first setting out of range, by its configuration name, with the reason.
    pub(crate) fn invalid(&self) -> Invalid {
        path_invalid(&self.path)
            .or_else(|| {
                out_of_range(
                    "max_total_bytes",
                    self.max_total_bytes.into(),
                    MIN_STORE_BYTES.into(),
                    MAX_STORE_BYTES.into(),
                )
            })
            .or_else(|| fsync_invalid(self.fsync))
    }
}

/// `params` of `{"type":"sqlite","params":{…}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqliteParams {
    path: PathBuf,
    #[serde(default, deserialize_with = "present")]
    max_total_bytes: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    fsync: Option<String>,
    #[serde(default, deserialize_with = "present")]
    fsync_interval_ms: Option<u64>,
}

/// Reads the `params` of an `sqlite` store, naming a bad field as `params.<field>`; the
/// ranges are checked by [`StoreConfig::validate`](crate::StoreConfig) after it.
pub(crate) fn config_from_params(params: &Value) -> Result<SqliteStoreConfig, Error> {
    let p: SqliteParams = parse_params(params)?;
    let mut c = SqliteStoreConfig::new(p.path);
    if let Some(v) = p.max_total_bytes {
        c = c.max_total_bytes(v);
    }
    let default = c.fsync;
    Ok(c.fsync(fsync_from(
        p.fsync.as_deref(),
        p.fsync_interval_ms,
        default,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::config::field_of;

    #[test]
    fn params_read() {
        let c = config_from_params(&serde_json::json!({"path": "/tmp/a.db"})).unwrap();
        assert_eq!(c, SqliteStoreConfig::new("/tmp/a.db"));
        assert_eq!(c.fsync, Fsync::Interval(Duration::from_secs(1)));
        assert_eq!(c.max_total_bytes, 1 << 30);
        let c = config_from_params(&serde_json::json!({
            "path": "/tmp/a.db", "max_total_bytes": 4096, "fsync": "interval", "fsync_interval_ms": 250
        }))
        .unwrap();
        assert_eq!(
            c,
            SqliteStoreConfig::new("/tmp/a.db")
                .max_total_bytes(4096)
                .fsync(Fsync::Interval(Duration::from_millis(250)))
        );
        let c = config_from_params(&serde_json::json!({"path": "/tmp/a.db", "fsync": "never"}))
            .unwrap();
        assert_eq!(c.fsync, Fsync::Never);
    }

    #[test]
    fn every_malformed_param_names_its_field() {
        assert_eq!(field_of(r#"{"type":"sqlite","params":{}}"#), "params");
        assert_eq!(
            field_of(r#"{"type":"sqlite","params":{"path":3}}"#),
            "params.path"
        );
        assert_eq!(
            field_of(r#"{"type":"sqlite","params":{"path":"/x","max_total_bytes":-1}}"#),
            "params.max_total_bytes"
        );
        assert_eq!(
            field_of(r#"{"type":"sqlite","params":{"path":"/x","segment_bytes":4096}}"#),
            "params.segment_bytes"
        );
        assert_eq!(
            field_of(r#"{"type":"sqlite","params":{"path":"/x","fsync":"sometimes"}}"#),
            "params.fsync"
        );
        assert_eq!(
            field_of(
                r#"{"type":"sqlite","params":{"path":"/x","fsync":"never","fsync_interval_ms":5}}"#
            ),
            "params.fsync_interval_ms"
        );
    }
}
