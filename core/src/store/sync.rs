//! Syncing apart from the store. Durability `wal` appends a group of events with the store
//! locked, then makes it durable; a store that can hand that second step out as a
//! [`PendingSync`] lets the group commit run it after releasing the lock, so the flush
//! thread's reads and commits (and other callers) never wait behind an fsync.

use std::fmt;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use super::crash_point;
use crate::Error;

/// How an append for durability `wal` ended: see
/// [`Store::append_durably`](super::Store::append_durably). In every case the events are in
/// the store and will be sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum Appended {
    /// They are durable already.
    Durable,
    /// Making them durable failed: they may not survive a crash.
    NotDurable(Error),
    /// They are durable once this has run; it needs no access to the store.
    Pending(PendingSync),
}

/// What appended events still need to be durable, done without the store: files to
/// `fdatasync`, directories to `fsync` (making the entries created in them durable), and any
/// step of a store's own, in the order added.
///
/// Files are shared handles of the ones the store writes, so a segment the store rotates
/// away, or even deletes, while this waits to run is still synced.
///
/// ```
/// use std::sync::Arc;
/// use auditbuf::PendingSync;
///
/// let dir = std::env::temp_dir();
/// let path = dir.join(format!("auditbuf-pending-sync-doc-{}", std::process::id()));
/// let file = Arc::new(std::fs::File::create(&path)?);
/// let sync = PendingSync::new().file(file, &path).dir(&dir);
/// assert!(!sync.is_empty());
/// sync.run()?;
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct PendingSync {
    steps: Vec<Step>,
}

type Custom = Box<dyn FnOnce() -> Result<(), Error> + Send>;

enum Step {
    File(Arc<File>, PathBuf),
    Dir(PathBuf),
    Custom(Custom),
}

impl PendingSync {
    /// Nothing to do yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an `fdatasync` of `file`; `path` names it in errors.
    pub fn file(mut self, file: Arc<File>, path: impl Into<PathBuf>) -> Self {
        self.steps.push(Step::File(file, path.into()));
        self
    }

    /// Adds an `fsync` of the directory at `path`.
    pub fn dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.steps.push(Step::Dir(path.into()));
        self
    }

    /// Adds a step of the store's own (or a wrapper's), run after those added before it.
    pub fn then(mut self, step: impl FnOnce() -> Result<(), Error> + Send + 'static) -> Self {
        self.steps.push(Step::Custom(Box::new(step)));
        self
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs every step, in order, up to the first that fails, whose error it returns.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file or directory whose sync failed, or whatever a step
    /// added with [`then`](Self::then) returns.
    pub fn run(self) -> Result<(), Error> {
        crash_point("store.sync.run");
        for step in self.steps {
            match step {
                Step::File(file, path) => file.sync_data().map_err(|e| Error::io(path, e))?,
                Step::Dir(path) => File::open(&path)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| Error::io(path, e))?,
                Step::Custom(step) => step()?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PendingSync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for step in &self.steps {
            match step {
                Step::File(_, path) => list.entry(&format_args!("fdatasync {}", path.display())),
                Step::Dir(path) => list.entry(&format_args!("fsync {}", path.display())),
                Step::Custom(_) => list.entry(&format_args!("(the store's own step)")),
            };
        }
        list.finish()
    }
}
