//! Noticing that a store's file or directory was deleted or replaced while the store has
//! it open (`rm -rf` of a "stale" directory, a database file restored from a backup over
//! the live one): the store keeps writing to what it opened, which a restart will not
//! find. Nothing can bring it back, so the store says so instead of losing what it holds
//! at the next restart without a word: an error (in `last_error`) and a log line, every
//! 10 s while it lasts.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::throttle::Throttle;

/// The file or directory a store opened, by device and inode.
#[derive(Debug)]
pub(crate) struct Watch {
    path: PathBuf,
    opened: Option<(u64, u64)>,
    said: Throttle,
}

impl Watch {
    /// Watches `path` as it is now.
    pub(crate) fn new(path: &Path) -> Self {
        Watch {
            path: path.to_owned(),
            opened: identity(path),
            said: Throttle::default(),
        }
    }

    /// An error when `path` is found gone or replaced (at most every 10 s); `Ok`
    /// otherwise. One `stat`.
    pub(crate) fn check(&mut self, store: &'static str) -> Result<(), Error> {
        if self.opened.is_none() {
            return Ok(());
        }
        let now = identity(&self.path);
        if now == self.opened || self.said.note(1).is_none() {
            return Ok(());
        }
        let what = if now.is_none() { "deleted" } else { "replaced" };
        let message = format!(
            "{}: {what} while the store has it open: what the store holds now will not be \
             found after a restart (restart the program to open the store anew)",
            self.path.display()
        );
        log::error!("{store} store: {message}");
        Err(Error::store(store, message))
    }
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::Watch;

    #[test]
    fn a_deleted_or_replaced_path_is_reported_every_10_s() {
        let dir = std::env::temp_dir().join(format!("auditbuf-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("db");
        std::fs::write(&file, b"x").unwrap();
        let mut watch = Watch::new(&file);
        assert!(watch.check("sqlite").is_ok());
        std::fs::remove_file(&file).unwrap();
        let err = watch.check("sqlite").unwrap_err().to_string();
        assert!(
            err.contains("db: deleted while the store has it open"),
            "{err}"
        );
        assert!(watch.check("sqlite").is_ok(), "not again within 10 s");
        std::fs::write(&file, b"y").unwrap();
        let mut watch = Watch::new(&file);
        std::fs::write(dir.join("db.new"), b"z").unwrap();
        std::fs::rename(dir.join("db.new"), &file).unwrap();
        let err = watch.check("sqlite").unwrap_err().to_string();
        assert!(err.contains("db: replaced while"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
