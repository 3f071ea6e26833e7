//! Which store a command works on: JSON as `${PREFIX}_BACKING_STORE` holds it, that
//! variable itself (`--from-env PREFIX`), or a bare path.

use std::env::{self, VarError};
use std::path::PathBuf;

use auditbuf::{Error, FileStoreConfig, SqliteStoreConfig, StoreConfig};

use crate::{Failure, StoreArgs};

/// The store the arguments name.
pub(crate) fn store(args: &StoreArgs) -> Result<StoreConfig, Failure> {
    match (&args.store, &args.from_env) {
        (_, Some(prefix)) if prefix.is_empty() => Err(Failure(
            "--from-env: the prefix is empty (AUDIT reads AUDIT_BACKING_STORE)".to_owned(),
        )),
        (_, Some(prefix)) => {
            let var = format!("{prefix}_BACKING_STORE");
            match env::var(&var) {
                Ok(text) => parse_json(&text, &var),
                Err(VarError::NotPresent) => Err(Failure(format!(
                    "{var} is not set (it holds the store's JSON, e.g. '{{\"type\":\"file\",\"params\":{{\"path\":\"/var/lib/audit\"}}}}')"
                ))),
                Err(VarError::NotUnicode(_)) => Err(Failure(format!("{var} is not UTF-8"))),
            }
        }
        (Some(text), None) if text.trim_start().starts_with('{') => {
            parse_json(text, "the store's JSON")
        }
        (Some(path), None) => Ok(from_path(PathBuf::from(path))),
        (None, None) => Err(Failure(
            "name a store: its JSON, a path, or --from-env PREFIX".to_owned(),
        )),
    }
}

fn parse_json(text: &str, what: &str) -> Result<StoreConfig, Failure> {
    StoreConfig::from_json(text).map_err(|e| match e {
        Error::Config(c) => Failure(format!("{what}: {}: {}", c.field, c.reason)),
        other => Failure(format!("{what}: {other}")),
    })
}

/// A bare path: a file is an SQLite database (whose own errors then say what is wrong with
/// it: unreadable, damaged, not a database), anything else a file store's directory (whose
/// absence the store reports).
fn from_path(path: PathBuf) -> StoreConfig {
    if path.is_file() {
        StoreConfig::Sqlite(SqliteStoreConfig::new(path))
    } else {
        StoreConfig::File(FileStoreConfig::new(path))
    }
}
