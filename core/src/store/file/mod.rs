//! A segmented write-ahead log in a directory.
//!
//! ```text
//! <dir>/LOCK                     locked while open, as is <dir> itself; holds the pid
//! <dir>/0000000000000001.seg     segments of framed records (see frame.rs), oldest first
//! <dir>/cursor                   where the oldest unconsumed record starts (atomic rewrite)
//! <dir>/dead-letters.log         dead letters, framed the same way (see dead_letters.rs)
//! <dir>/*.seg.corrupt            damaged segments, moved aside on open, good records salvaged
//! <dir>/replay.seg.tmp, replay.pending   a replay of dead letters under way (see replay.rs)
//! ```

mod append;
mod config;
mod dead_letters;
mod dir;
mod frame;
mod recovery;
mod replay;
mod verify;

pub use config::FileStoreConfig;
pub use recovery::Recovery;

use std::collections::VecDeque;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Appended, Fsync, Store, StoreSize, StoredBatch, crash_point, fits};
use crate::Error;
use append::new_segment;
use frame::{HEADER, MAGIC, MAX_RECORD};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    segment: u64,
    offset: u64,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    path: PathBuf,
    len: u64,
}

/// Events in a segmented write-ahead log on disk: survives restarts and, with
/// [`Fsync::Always`], crashes.
///
/// ```
/// use auditbuf::{FileStore, FileStoreConfig, Store, StoredBatch};
///
/// let dir = std::env::temp_dir().join(format!("auditbuf-doc-{}", std::process::id()));
/// {
///     let mut store = FileStore::open(FileStoreConfig::new(&dir))?;
///     store.append(&[b"{\"n\":1}", b"{\"n\":2}"])?;
/// }
/// let mut store = FileStore::open(FileStoreConfig::new(&dir))?; // reopened: still there
/// let mut batch = StoredBatch::new();
/// store.read_oldest(10, 1 << 20, &mut batch)?;
/// assert_eq!(batch.len(), 2);
/// store.commit(2)?;
/// assert_eq!(store.size().events, 0);
/// # drop(store); std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), auditbuf::Error>(())
/// ```
#[derive(Debug)]
pub struct FileStore {
    config: FileStoreConfig,
    /// The store's lock (on the directory and its `LOCK` file), held while open: `close`
    /// lets go of it, so that another pipeline (or the tools) may open the store while this
    /// one's handle lingers.
    lock: Option<dir::Lock>,
    segments: VecDeque<Segment>,
    /// Shared with the [`PendingSync`]s handed out, which may outlive its time as the tail.
    tail: Arc<File>,
    /// Segments rotated away with data not yet synced (`Fsync::Never`): the next sync,
    /// whoever runs it, covers them too.
    unsynced_older: Vec<(Arc<File>, PathBuf)>,
    cursor: Position,
    /// For each event of the last read, where the next record starts and the event's size.
    read: VecDeque<(Position, u64, u64)>,
    events: u64,
    bytes: u64,
    oldest_ms: Option<u64>,
    unsynced: bool,
    /// The cursor file is behind `cursor`, or not synced: the next sync writes it.
    cursor_unsynced: bool,
    /// Warnings that the cursor file could not be written: one line per 10 s.
    cursor_warnings: crate::throttle::Throttle,
    /// Segments were created or deleted without syncing the directory (`Fsync::Never`).
    dir_unsynced: bool,
    /// Events found unreadable since `take_lost` was last called.
    lost: u64,
    last_sync: Instant,
    reader: Option<(u64, File)>,
    buf: Vec<u8>,
    recovery: Recovery,
    /// The process that opened the store: a `fork()` child inherits the descriptors and
    /// the lock, but writing through them would overwrite what the parent writes.
    pid: u32,
    /// The directory as opened: deleted or replaced meanwhile, it is said (every 10 s).
    watch: crate::store::watch::Watch,
}

fn segment_name(id: u64) -> String {
    format!("{id:016x}.seg")
}

impl FileStore {
    /// What opening the store found and repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    fn durable(&self) -> bool {
        self.config.fsync != Fsync::Never
    }

    /// Whether the store may be changed here: [`Error::Forked`] in a process other than the
    /// one that opened it (a `fork()` child), [`Error::Store`] after `close` let go of its
    /// lock (another opener may be writing).
    fn same_process(&self) -> Result<(), Error> {
        if std::process::id() != self.pid {
            Err(Error::Forked)
        } else if self.lock.is_none() {
            Err(Error::store(
                "file",
                format!("{}: the store was closed", self.config.path.display()),
            ))
        } else {
            Ok(())
        }
    }

    fn tail_segment(&self) -> &Segment {
        // There is always a tail segment: `open` creates one and `rotate` replaces it.
        &self.segments[self.segments.len() - 1]
    }

    /// Moves the cursor off the end of a finished segment.
    fn normalize_cursor(&mut self) {
        let tail_id = self.tail_segment().id;
        while self.cursor.segment != tail_id {
            match self.segments.iter().find(|s| s.id == self.cursor.segment) {
                Some(s) if self.cursor.offset < s.len => return,
                _ => {
                    let next = self
                        .segments
                        .iter()
                        .map(|s| s.id)
                        .find(|id| *id > self.cursor.segment)
                        .unwrap_or(tail_id);
                    self.cursor = Position {
                        segment: next,
                        offset: MAGIC.len() as u64,
                    };
                }
            }
        }
    }

    /// Deletes segments wholly before the cursor, after writing the cursor (durably, if the
    /// deletions will be): a crash in between leaves a cursor that names a segment that
    /// still exists, so reading goes on where it was. Returns whether it wrote the cursor.
    fn delete_consumed(&mut self) -> Result<bool, Error> {
        let consumed = self
            .segments
            .iter()
            .take(self.segments.len().saturating_sub(1))
            .take_while(|s| s.id < self.cursor.segment)
            .count();
        if consumed == 0 {
            return Ok(false);
        }
        // The cursor goes first, so that a crash after a deletion never finds it behind
        // the deleted segments. If it cannot be written (a full disk, a directory made
        // read-only), the segments go anyway: the space they free may be what it needs,
        // and a cursor whose segment is gone only makes the next open read from the oldest
        // segment left, sending again what was sent of it (recovery.rs).
        let persisted = self.persist_cursor(self.durable());
        crash_point("file.delete.before");
        for _ in 0..consumed {
            if let Some(s) = self.segments.pop_front() {
                if self.reader.as_ref().is_some_and(|(id, _)| *id == s.id) {
                    self.reader = None;
                }
                fs::remove_file(&s.path).map_err(|e| Error::io(&s.path, e))?;
                // Consumed: its records need no sync any more.
                self.unsynced_older.retain(|(_, path)| *path != s.path);
                crash_point("file.delete.removed");
            }
        }
        crash_point("file.delete.before_dir_sync");
        if self.durable() {
            dir::sync_dir(&self.config.path)?;
        } else {
            self.dir_unsynced = true;
        }
        if persisted.is_err()
            && let Err(e) = self.persist_cursor(self.durable())
        {
            self.cursor_not_written(&e);
        }
        Ok(true)
    }

    fn persist_cursor(&mut self, durable: bool) -> Result<(), Error> {
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(b"ABCUR01\n");
        bytes.extend_from_slice(&self.cursor.segment.to_le_bytes());
        bytes.extend_from_slice(&self.cursor.offset.to_le_bytes());
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        dir::write_atomically(&self.config.path.join("cursor"), &bytes, durable)?;
        self.cursor_unsynced = !durable;
        Ok(())
    }

    fn file_for(&mut self, id: u64) -> Result<&File, Error> {
        if id == self.tail_segment().id {
            return Ok(&*self.tail);
        }
        if self.reader.as_ref().is_none_or(|(r, _)| *r != id) {
            let path = self.config.path.join(segment_name(id));
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            self.reader = Some((id, file));
        }
        match &self.reader {
            Some((_, f)) => Ok(f),
            None => Err(Error::store("file", "segment reader vanished")),
        }
    }

    /// Reads `[offset, offset + len)` of segment `id` into `self.buf`.
    fn load(&mut self, id: u64, offset: u64, len: u64) -> Result<(), Error> {
        let path = self.config.path.join(segment_name(id));
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.resize(len as usize, 0);
        let result = self.file_for(id)?.read_exact_at(&mut buf, offset);
        self.buf = buf;
        result.map_err(|e| Error::io(path, e))
    }

    /// The cursor file could not be written: the next commit or sync writes it; until
    /// then a restart sends again what was sent since the last one written.
    pub(super) fn cursor_not_written(&mut self, e: &Error) {
        self.cursor_unsynced = true;
        if let Some(n) = self.cursor_warnings.note(1) {
            log::warn!(
                "{}: could not record the delivery of sent events ({n} time{} since the last \
                 such line; a restart before it is recorded sends them again): {e}",
                self.config.path.display(),
                if n == 1 { "" } else { "s" }
            );
        }
    }
}

impl Store for FileStore {
    fn append(&mut self, events: &[&[u8]]) -> Result<(), Error> {
        self.write(events, true)
    }

    /// Writes the records under the caller's lock and leaves their `fdatasync` (and that of
    /// the directory, after a rotation without one) to the returned [`PendingSync`](crate::store::PendingSync).
    fn append_durably(&mut self, events: &[&[u8]]) -> Result<Appended, Error> {
        self.write(events, false)?;
        Ok(Appended::Pending(self.pending_sync()))
    }

    fn read_oldest(
        &mut self,
        max_events: usize,
        max_bytes: usize,
        out: &mut StoredBatch,
    ) -> Result<(), Error> {
        out.clear();
        self.read.clear();
        if max_events == 0 {
            return Ok(());
        }
        let mut bytes = 0usize;
        let mut pos = self.cursor;
        'segments: while let Some(len) = self
            .segments
            .iter()
            .find(|s| s.id == pos.segment)
            .map(|s| s.len)
        {
            if pos.offset >= len {
                match self
                    .segments
                    .iter()
                    .map(|s| s.id)
                    .find(|id| *id > pos.segment)
                {
                    Some(next) => {
                        pos = Position {
                            segment: next,
                            offset: MAGIC.len() as u64,
                        };
                        continue;
                    }
                    None => break,
                }
            }
            // Read what the limits could still take, headers included, in one go.
            let room = max_bytes
                .saturating_sub(bytes)
                .saturating_add(HEADER * max_events.saturating_sub(out.len()).min(4096));
            let mut chunk = (len - pos.offset).min(room.max(64 * 1024) as u64);
            self.load(pos.segment, pos.offset, chunk)?;
            let mut at = 0usize;
            while at < self.buf.len() {
                match frame::decode(&self.buf, at) {
                    Ok(r) => {
                        let event = r.event(&self.buf);
                        if !fits(out.len(), bytes, event.len(), max_events, max_bytes) {
                            pos.offset += at as u64;
                            break 'segments;
                        }
                        bytes += event.len() + 1;
                        out.push(event);
                        let next = Position {
                            segment: pos.segment,
                            offset: pos.offset + r.end as u64,
                        };
                        self.read
                            .push_back((next, event.len() as u64, r.stored_at_ms));
                        at = r.end;
                    }
                    Err(frame::Bad::Short) if at > 0 => break,
                    Err(frame::Bad::Short) if chunk < len - pos.offset => {
                        // One record larger than the chunk: read all of it.
                        let need = self.buf.get(..4).map_or(0, |b| {
                            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64 + 8
                        });
                        chunk = need.clamp(chunk + 1, len - pos.offset);
                        self.load(pos.segment, pos.offset, chunk)?;
                    }
                    Err(_) => {
                        // Damage that appeared after open: skip to the next good record.
                        let skip = frame::resync(&self.buf, at + 1).unwrap_or(self.buf.len());
                        log::warn!(
                            "{}: skipping {} damaged bytes at offset {}",
                            self.config.path.join(segment_name(pos.segment)).display(),
                            skip - at,
                            pos.offset + at as u64
                        );
                        self.recovery.damaged_bytes += (skip - at) as u64;
                        if self.read.is_empty() {
                            self.cursor = Position {
                                segment: pos.segment,
                                offset: pos.offset + skip as u64,
                            };
                        }
                        at = skip;
                    }
                }
                if out.len() == max_events {
                    pos.offset += at as u64;
                    break 'segments;
                }
            }
            pos.offset += at as u64;
        }
        if out.is_empty() && self.events > 0 {
            // Everything the counts still claim was lost to damage found while reading.
            log::warn!(
                "{}: {} events unreadable; dropping them from the count",
                self.config.path.display(),
                self.events
            );
            self.lost += self.events;
            self.events = 0;
            self.bytes = 0;
            self.oldest_ms = None;
            self.cursor = pos;
            self.normalize_cursor();
        }
        Ok(())
    }

    fn commit(&mut self, n: usize) -> Result<(), Error> {
        self.same_process()?;
        let n = n.min(self.read.len());
        if n == 0 {
            return Ok(());
        }
        crash_point("file.commit.start");
        for (next, size, _) in self.read.drain(..n) {
            self.cursor = next;
            // Saturating: counts that went wrong must not wrap (or, in a debug build, panic).
            self.events = self.events.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(size);
        }
        self.normalize_cursor();
        self.oldest_ms = match self.read.front() {
            Some((_, _, ms)) => Some(*ms),
            None if self.events == 0 => None,
            None => self.peek_oldest_ms(),
        };
        // The receiver has these events: they are consumed here, whatever the disk does.
        // The cursor file only carries that across a restart. If it cannot be written, the
        // next commit or sync writes it, and a restart before then sends again what was
        // sent since the last one written (at least once). Failing the commit instead
        // would have the pipeline count as still held, and resend, events this store no
        // longer returns.
        let persisted = match self.delete_consumed() {
            Ok(true) => Ok(()),
            Ok(false) => self.persist_cursor(self.config.fsync == Fsync::Always),
            Err(e) => Err(e),
        };
        if let Err(e) = persisted {
            self.cursor_not_written(&e);
        }
        Ok(())
    }

    fn dead_letter(&mut self, event: &[u8], reason: &str) -> Result<(), Error> {
        self.same_process()?;
        self.keep_dead_letter(event, reason)
    }

    fn size(&self) -> StoreSize {
        StoreSize {
            events: self.events,
            bytes: self.bytes,
        }
    }

    fn oldest_age(&self) -> Option<Duration> {
        self.oldest_ms
            .map(|ms| Duration::from_millis(frame::now_ms().saturating_sub(ms)))
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.same_process()?;
        if self.unsynced
            || self.cursor_unsynced
            || self.dir_unsynced
            || !self.unsynced_older.is_empty()
        {
            self.sync_now()?;
        }
        Ok(())
    }

    /// Syncs, then releases the store's lock: the pipeline calls it once, last.
    fn close(&mut self) -> Result<(), Error> {
        if self.lock.is_none() {
            return Ok(());
        }
        let synced = self.sync();
        if self.pid == std::process::id() {
            self.lock = None;
        }
        synced
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn tick(&mut self) -> Result<(), Error> {
        self.watch.check("file")?;
        match self.config.fsync {
            Fsync::Interval(every) if self.last_sync.elapsed() >= every => self.sync(),
            _ => Ok(()),
        }
    }

    fn take_lost(&mut self) -> u64 {
        std::mem::take(&mut self.lost)
    }

    fn recovery(&self) -> Option<Recovery> {
        Some(self.recovery.clone())
    }

    /// A frame's length field covers the timestamp too; and one record must fit the cap.
    fn max_record_bytes(&self) -> usize {
        let cap = self.config.max_total_bytes.saturating_sub(HEADER as u64);
        (MAX_RECORD - 8).min(usize::try_from(cap).unwrap_or(usize::MAX))
    }

    fn kind(&self) -> &str {
        "file"
    }
}

impl FileStore {
    fn peek_oldest_ms(&mut self) -> Option<u64> {
        let c = self.cursor;
        self.load(c.segment, c.offset, HEADER as u64).ok()?;
        Some(u64::from_le_bytes(self.buf.get(8..16)?.try_into().ok()?))
    }
}
