//! The store directory: created private, locked against a second process, and changed only
//! in ways a crash cannot half-do (write a temporary file, sync, rename, sync the directory).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::store::crash_point;

/// Creates `dir` (mode 0700) if needed and makes sure it is a private directory.
pub(crate) fn prepare(dir: &Path) -> Result<(), Error> {
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::store(
                "file",
                format!("{}: not a directory", dir.display()),
            ));
        }
        Ok(_) => {}
        Err(_) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(dir, e))?,
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(dir, e))
}

/// The store's lock, released when dropped: a `flock` on the directory itself and one on
/// its `LOCK` file. The directory's is what keeps a second opener out when `LOCK` was
/// deleted by hand (it would create a new `LOCK` and lock that); `LOCK` holds the pid
/// that a refused opener names, and is the lock on file systems that refuse `flock` on a
/// directory.
#[derive(Debug)]
pub(crate) struct Lock {
    _dir: Option<File>,
    _file: Option<File>,
}

/// Takes the exclusive lock on `dir` and writes this process's id into `LOCK` so that a
/// process refused can say who holds it.
pub(crate) fn lock(dir: &Path) -> Result<Lock, Error> {
    let path = dir.join("LOCK");
    let on_dir = lock_dir(dir, &path, |d| d.try_lock())?;
    let file = create_private(&path, false)?;
    match patiently(|| file.try_lock()) {
        Ok(()) => {
            let pid = format!("{}\n", std::process::id());
            file.set_len(0)
                .and_then(|()| file.write_all_at(pid.as_bytes(), 0))
                .map_err(|e| Error::io(&path, e))?;
            Ok(Lock {
                _dir: on_dir,
                _file: Some(file),
            })
        }
        Err(fs::TryLockError::WouldBlock) => Err(in_use(&path, dir)),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

/// Takes a shared lock on `dir`, for reading it without changing it: held as long as the
/// returned lock is, it keeps a process from opening the store meanwhile. Without a `LOCK`
/// file (no process ever opened the store, or it was deleted) only the directory is locked.
pub(crate) fn lock_shared(dir: &Path) -> Result<Lock, Error> {
    let path = dir.join("LOCK");
    let on_dir = lock_dir(dir, &path, |d| d.try_lock_shared())?;
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Lock {
                _dir: on_dir,
                _file: None,
            });
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    match patiently(|| file.try_lock_shared()) {
        Ok(()) => Ok(Lock {
            _dir: on_dir,
            _file: Some(file),
        }),
        Err(fs::TryLockError::WouldBlock) => Err(in_use(&path, dir)),
        Err(fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

/// Locks the directory `dir` with `take`; `None` where its file system refuses (NFS
/// emulates `flock` with `fcntl` locks, and an exclusive one needs a file open for writing,
/// which a directory cannot be): `LOCK` alone then keeps a second opener out. (A shared
/// lock may still succeed there; it conflicts with nothing that matters.)
fn lock_dir(
    dir: &Path,
    lock: &Path,
    take: impl Fn(&File) -> Result<(), fs::TryLockError>,
) -> Result<Option<File>, Error> {
    let handle = File::open(dir).map_err(|e| Error::io(dir, e))?;
    match patiently(|| take(&handle)) {
        Ok(()) => Ok(Some(handle)),
        Err(fs::TryLockError::WouldBlock) => Err(in_use(lock, dir)),
        Err(fs::TryLockError::Error(_)) => Ok(None),
    }
}

/// Tries `take` for up to 200 ms while the lock is held. A lock just released can still
/// be held for a moment by a child process forked elsewhere in this program, which keeps
/// a copy of the descriptor until it calls `exec`; a process that really holds the store
/// holds it longer than that.
fn patiently(take: impl Fn() -> Result<(), fs::TryLockError>) -> Result<(), fs::TryLockError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
    loop {
        match take() {
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// The process that holds the store's lock: the id it wrote into `LOCK`, or else those
/// `/proc/locks` names for `LOCK` or for the directory (`LOCK` deleted by hand).
fn holders(lock: &Path, dir: &Path) -> Vec<u32> {
    let written = fs::read_to_string(lock)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    match written {
        Some(pid) => vec![pid],
        None => match crate::store::locks::holders(lock) {
            pids if pids.is_empty() => crate::store::locks::holders(dir),
            pids => pids,
        },
    }
}

fn in_use(lock: &Path, dir: &Path) -> Error {
    let holders = holders(lock, dir);
    let by = if holders == [std::process::id()] {
        // This process's own: a pipeline or store on it not yet closed.
        format!(
            "already open in this process (pid {}), by a pipeline or store not yet closed",
            std::process::id()
        )
    } else {
        format!(
            "in use by another process{}",
            crate::store::locks::describe(&holders)
        )
    };
    Error::store("file", format!("{}: the store is {by}", lock.display()))
}

/// Opens (creating, mode 0600) `path` for reading and writing; `exclusive` fails if it exists.
pub(crate) fn create_private(path: &Path, exclusive: bool) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).mode(0o600);
    if exclusive {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    options.open(path).map_err(|e| Error::io(path, e))
}

/// Makes the directory's entries (files created, renamed, deleted) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Replaces `path` with `bytes` atomically: a crash leaves the old or the new content.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], durable: bool) -> Result<(), Error> {
    let tmp: PathBuf = path.with_extension("tmp");
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        if durable {
            file.sync_data().map_err(|e| Error::io(&tmp, e))?;
        }
    }
    crash_point("file.replace.written");
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    crash_point("file.replace.renamed");
    if durable && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}
