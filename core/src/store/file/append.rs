//! The write path of the file store: records framed and appended to the tail segment,
//! a new segment when the tail is full, and the syncs the `fsync` policy and `wal` ask for.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::frame::{HEADER, MAGIC};
use super::{FileStore, Segment, dir, frame, recovery, segment_name};
use crate::Error;
use crate::store::{Fsync, PendingSync, Store, crash_point};

impl FileStore {
    pub(super) fn rotate(&mut self) -> Result<(), Error> {
        let path = self.tail_segment().path.clone();
        if self.durable() {
            // Always, even if a sync of it handed out is still running: every segment but
            // the last is whole on disk before a newer one exists, so recovery never finds a
            // torn segment in the middle. (Once a segment: cheap.)
            self.tail.sync_data().map_err(|e| Error::io(&path, e))?;
        } else if self.unsynced {
            self.unsynced_older.push((Arc::clone(&self.tail), path));
        }
        crash_point("file.rotate.start");
        let id = recovery::next_segment_id(&self.config.path, self.tail_segment().id)?;
        let (file, segment) = new_segment(&self.config.path, id, self.durable())?;
        crash_point("file.rotate.added");
        self.dir_unsynced |= !self.durable();
        self.tail = Arc::new(file);
        self.segments.push_back(segment);
        self.normalize_cursor();
        self.delete_consumed().map(drop)
    }

    pub(super) fn sync_now(&mut self) -> Result<(), Error> {
        for (file, path) in &self.unsynced_older {
            file.sync_data().map_err(|e| Error::io(path, e))?;
        }
        self.unsynced_older.clear();
        let path = self.tail_segment().path.clone();
        self.tail.sync_data().map_err(|e| Error::io(path, e))?;
        if self.dir_unsynced {
            dir::sync_dir(&self.config.path)?;
            self.dir_unsynced = false;
        }
        // The events are durable now. The cursor only saves sending sent ones again after a
        // restart: if it cannot be written (no space or inode for its temporary file), the
        // sync still stands, and the next one tries again.
        if self.cursor_unsynced
            && let Err(e) = self.persist_cursor(true)
        {
            self.cursor_not_written(&e);
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Hands what the records written so far still need to be durable to a [`PendingSync`]
    /// (see [`Store::append_durably`]): the segments written since the last sync, and the
    /// directory if segments were created in it unsynced. From then on the store counts them
    /// as synced; the caller reports the sync's failure.
    pub(super) fn pending_sync(&mut self) -> PendingSync {
        let mut sync = PendingSync::new();
        for (file, path) in self.unsynced_older.drain(..) {
            sync = sync.file(file, path);
        }
        if self.unsynced {
            let path = self.tail_segment().path.clone();
            sync = sync.file(Arc::clone(&self.tail), path);
            self.unsynced = false;
        }
        if self.dir_unsynced {
            sync = sync.dir(self.config.path.clone());
            self.dir_unsynced = false;
        }
        sync
    }

    /// Appends `events`, all or none; syncs as the policy says if `policy_sync`, else leaves
    /// them unsynced.
    pub(super) fn write(&mut self, events: &[&[u8]], policy_sync: bool) -> Result<(), Error> {
        self.same_process()?;
        if events.is_empty() {
            return Ok(());
        }
        let largest = self.max_record_bytes();
        if let Some(e) = events.iter().find(|e| e.len() > largest) {
            return Err(Error::store(
                "file",
                format!(
                    "{}: an event of {} bytes is over the largest record of {largest} bytes",
                    self.config.path.display(),
                    e.len()
                ),
            ));
        }
        let framed: u64 = events.iter().map(|e| (e.len() + HEADER) as u64).sum();
        let held = self.bytes + self.events * HEADER as u64;
        if held + framed > self.config.max_total_bytes {
            return Err(Error::StoreFull {
                limit: "max_total_bytes",
                value: self.config.max_total_bytes,
            });
        }
        let tail = self.tail_segment();
        let tail_has_records = tail.len > MAGIC.len() as u64;
        let tail_consumed = self.cursor.segment == tail.id && self.cursor.offset >= tail.len;
        if tail_has_records && (tail.len + framed > self.config.segment_bytes || tail_consumed) {
            self.rotate()?;
        }
        let now = frame::now_ms();
        self.buf.clear();
        for e in events {
            frame::encode(&mut self.buf, e, now);
        }
        let at = self.tail_segment().len;
        if let Err(e) = self.tail.write_all_at(&self.buf, at) {
            // Leave no partial record behind.
            let _ = self.tail.set_len(at);
            return Err(Error::io(&self.tail_segment().path, e));
        }
        crash_point("file.append.written");
        let must_sync = policy_sync
            && match self.config.fsync {
                Fsync::Always => true,
                Fsync::Interval(every) => self.last_sync.elapsed() >= every,
                Fsync::Never => false,
            };
        if must_sync {
            if let Err(e) = self.sync_now() {
                // All or none: what could not be made durable is taken back.
                let _ = self.tail.set_len(at);
                return Err(e);
            }
        } else {
            self.unsynced = true;
        }
        if let Some(t) = self.segments.back_mut() {
            t.len += framed;
        }
        self.events += events.len() as u64;
        self.bytes += events.iter().map(|e| e.len() as u64).sum::<u64>();
        self.oldest_ms.get_or_insert(now);
        Ok(())
    }
}

pub(super) fn new_segment(dir: &Path, id: u64, durable: bool) -> Result<(File, Segment), Error> {
    let path = dir.join(segment_name(id));
    let file = dir::create_private(&path, true)?;
    crash_point("file.segment.created");
    if let Err(e) = file.write_all_at(MAGIC, 0) {
        // Not left without its header (a full disk): the next open would have to write it.
        let _ = fs::remove_file(&path);
        return Err(Error::io(&path, e));
    }
    if durable {
        file.sync_data().map_err(|e| Error::io(&path, e))?;
        dir::sync_dir(dir)?;
    }
    Ok((
        file,
        Segment {
            id,
            path,
            len: MAGIC.len() as u64,
        },
    ))
}
