//! Reading the dead letters of a file store from outside, and moving them back into its log.
//!
//! ```text
//! <dir>/dead-letters.log.1, dead-letters.log   the dead letters, older generation first
//! <dir>/replay.seg.tmp                         the events of a replay, before they join the log
//! <dir>/replay.pending                         a replay committed but not finished: the
//!                                              headers of the dead letters it moves
//! ```
//!
//! The dead letters and the log are different files, so no single write can move one from
//! the first to the second. A replay is made crash-proof with a journal instead:
//! 1. the events are written, synced, to `replay.seg.tmp`, which no reader looks at;
//! 2. `replay.pending` is written atomically (temporary file, fsync, rename, fsync of the
//!    directory): **the commit point**. It names each dead letter moved by its frame
//!    header (length, CRC of reason and event, time), which identifies it;
//! 3. `replay.seg.tmp` is renamed to the segment after the newest one: it joins the log
//!    whole or not at all;
//! 4. the named dead letters are cut out of their files (each rewritten atomically);
//! 5. `replay.pending` is removed.
//!
//! A crash before 2 leaves the dead letters where they were (the next replay deletes the
//! orphaned `replay.seg.tmp`); after 2, the next replay finishes steps 3–5, each of which
//! can be done again without effect (a renamed file is gone, a cut dead letter is no longer
//! found). A store opened by a pipeline meanwhile sends what step 3 placed and never reads
//! `replay.*`; the dead letters a replay moved are never moved twice, because the next
//! replay finishes the journal before it picks anything.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::dead_letters::DEAD_LETTERS;
use super::frame::{self, HEADER, MAGIC, Scan};
use super::recovery::list_segments;
use super::verify::existing_store;
use super::{FileStore, FileStoreConfig, dir, segment_name};
use crate::{DeadLetter, Error};

const JOURNAL: &str = "replay.pending";
const EVENTS: &str = "replay.seg.tmp";
const JOURNAL_MAGIC: &[u8; 8] = b"ABRPL01\n";

/// A dead letter's frame header: its length, CRC (over reason and event) and time.
type Identity = [u8; HEADER];

impl FileStore {
    /// The dead letters of the store in `dir`, oldest first (both generations of
    /// `dead-letters.log`), read without changing anything; damaged ones are skipped.
    ///
    /// # Errors
    ///
    /// As [`verify`](FileStore::verify): [`Error::Store`] when `dir` is missing or holds no
    /// file store, or a process has it open; [`Error::Io`] naming the file it cannot read.
    pub fn read_dead_letters(dir: impl AsRef<Path>) -> Result<Vec<DeadLetter>, Error> {
        let dir = dir.as_ref();
        existing_store(dir)?;
        let _shared = dir::lock_shared(dir)?;
        let mut all = Vec::new();
        for path in generations(dir) {
            if let Some(data) = read_if_present(&path)? {
                let scan = frame::scan(&data);
                all.extend(letters(&data, &scan).into_iter().map(|(_, letter)| letter));
            }
        }
        Ok(all)
    }

    /// Moves the dead letters `select` picks back into the log of the store `config`
    /// names, oldest first, after everything it holds, so that a pipeline sends them again;
    /// each leaves the dead letters in the same step (see the journal above: a crash
    /// never leaves one both in the log and a dead letter). Returns how many moved,
    /// counting those of a replay a crash interrupted after its commit point, which this
    /// one finishes first (the interrupted one returned nothing).
    ///
    /// Opens the store as a pipeline would (recovering it, and failing if another process
    /// has it open) unless no dead letter is picked and no replay is to be finished.
    /// `select` may see a dead letter more than once.
    ///
    /// # Errors
    ///
    /// Those of [`read_dead_letters`](FileStore::read_dead_letters) and
    /// [`open`](FileStore::open); [`Error::StoreFull`] (`max_total_bytes`) if the events
    /// would take the store over it; [`Error::Store`] when an interrupted replay's
    /// `replay.pending` is damaged; [`Error::Io`] naming a file that cannot be written.
    pub fn replay_dead_letters(
        config: &FileStoreConfig,
        mut select: impl FnMut(&DeadLetter) -> bool,
    ) -> Result<u64, Error> {
        existing_store(&config.path)?;
        // Nothing to do (and nothing to finish) leaves the store as it was: opening it
        // would not.
        if !config.path.join(JOURNAL).exists()
            && !Self::read_dead_letters(&config.path)?
                .iter()
                .any(&mut select)
        {
            return Ok(0);
        }
        let store = FileStore::open(config.clone())?;
        let dir = store.config.path.as_path();
        let finished = finish_pending(dir)?;

        let now = frame::now_ms();
        let mut segment = MAGIC.to_vec();
        let mut moved: Vec<Identity> = Vec::new();
        let mut bytes = 0u64;
        for path in generations(dir) {
            let Some(data) = read_if_present(&path)? else {
                continue;
            };
            let scan = frame::scan(&data);
            for (header, letter) in letters(&data, &scan) {
                if select(&letter) {
                    frame::encode(&mut segment, &letter.event, now);
                    bytes += (letter.event.len() + HEADER) as u64;
                    moved.push(header);
                }
            }
        }
        if moved.is_empty() {
            return Ok(finished);
        }
        let held = store.bytes + store.events * HEADER as u64;
        if held + bytes > store.config.max_total_bytes {
            return Err(Error::StoreFull {
                limit: "max_total_bytes",
                value: store.config.max_total_bytes,
            });
        }

        // 1. The events, beside the log, where no reader looks.
        let events = dir.join(EVENTS);
        let _ = fs::remove_file(&events);
        let file = dir::create_private(&events, true)?;
        file.write_all_at(&segment, 0)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&events, e))?;
        drop(file);
        // 2. The commit point.
        let mut journal = JOURNAL_MAGIC.to_vec();
        journal.extend_from_slice(&(moved.len() as u64).to_le_bytes());
        for header in &moved {
            journal.extend_from_slice(header);
        }
        let crc = crc32c::crc32c(&journal);
        journal.extend_from_slice(&crc.to_le_bytes());
        dir::write_atomically(&dir.join(JOURNAL), &journal, true)?;
        crate::store::crash_point("file.replay.committed");
        // 3–5.
        finish(dir, &moved)?;
        Ok(finished + moved.len() as u64)
    }
}

/// The dead-letter files of `dir`, the older generation first.
pub(super) fn generations(dir: &Path) -> [PathBuf; 2] {
    [
        dir.join(format!("{DEAD_LETTERS}.1")),
        dir.join(DEAD_LETTERS),
    ]
}

/// The content of `path`, or `None` if there is no such file.
pub(super) fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The dead letters among the records of a dead-letter file (`reason_len:u32le reason
/// event`), with the header identifying each.
pub(super) fn letters(data: &[u8], scan: &Scan) -> Vec<(Identity, DeadLetter)> {
    scan.records
        .iter()
        .filter_map(|r| {
            let body = r.event(data);
            let reason_len = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
            let reason = body.get(4..4_usize.checked_add(reason_len)?)?;
            let header: Identity = data.get(r.at..r.at + HEADER)?.try_into().ok()?;
            Some((
                header,
                DeadLetter {
                    event: body.get(4 + reason_len..)?.to_vec(),
                    reason: String::from_utf8_lossy(reason).into_owned(),
                    at: UNIX_EPOCH + Duration::from_millis(r.stored_at_ms),
                },
            ))
        })
        .collect()
}

/// What `verify` says about a replay left unfinished, if there is one.
pub(super) fn pending_note(dir: &Path) -> Result<Option<String>, Error> {
    let events = dir.join(EVENTS).exists();
    Ok(match read_journal(dir)? {
        Some(moved) if events => Some(format!(
            "{JOURNAL}: a replay of {} dead letters was interrupted after it committed; the next `dead-letters replay` adds them to the log and removes them from the dead letters",
            moved.len()
        )),
        Some(moved) => Some(format!(
            "{JOURNAL}: a replay of {} dead letters was interrupted after their events joined the log; the next `dead-letters replay` removes them from the dead letters",
            moved.len()
        )),
        None if events => Some(format!(
            "{EVENTS}: a replay was interrupted before it committed; nothing was moved, and the next `dead-letters replay` deletes this file"
        )),
        None => None,
    })
}

/// Finishes a replay a crash interrupted after its commit point (returning how many dead
/// letters it moved), or forgets one interrupted before it.
fn finish_pending(dir: &Path) -> Result<u64, Error> {
    match read_journal(dir)? {
        Some(moved) => finish(dir, &moved).map(|()| moved.len() as u64),
        None => {
            let events = dir.join(EVENTS);
            match fs::remove_file(&events) {
                Ok(()) => Ok(0),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(Error::io(events, e)),
            }
        }
    }
}

/// Steps 3–5 of a committed replay; each may already have been done.
fn finish(dir: &Path, moved: &[Identity]) -> Result<(), Error> {
    let events = dir.join(EVENTS);
    if events.exists() {
        let next = list_segments(dir)?.last().map_or(1, |id| id + 1);
        let segment = dir.join(segment_name(next));
        fs::rename(&events, &segment).map_err(|e| Error::io(&segment, e))?;
        dir::sync_dir(dir)?;
    }
    crate::store::crash_point("file.replay.placed");
    for path in generations(dir) {
        cut_out(&path, moved)?;
        crate::store::crash_point("file.replay.cut");
    }
    let journal = dir.join(JOURNAL);
    fs::remove_file(&journal).map_err(|e| Error::io(&journal, e))?;
    dir::sync_dir(dir)
}

/// Rewrites the dead-letter file `path` without the records whose headers are in `moved`,
/// keeping every other byte (damage included) as it was.
fn cut_out(path: &Path, moved: &[Identity]) -> Result<(), Error> {
    let Some(data) = read_if_present(path)? else {
        return Ok(());
    };
    let scan = frame::scan(&data);
    let mut kept = Vec::with_capacity(data.len());
    let mut from = 0;
    let mut cut = false;
    for r in &scan.records {
        let header = &data[r.at..r.at + HEADER];
        if moved.iter().any(|m| m[..] == *header) {
            kept.extend_from_slice(&data[from..r.at]);
            from = r.end;
            cut = true;
        }
    }
    if !cut {
        return Ok(());
    }
    kept.extend_from_slice(&data[from..]);
    if kept.len() <= MAGIC.len() {
        fs::remove_file(path).map_err(|e| Error::io(path, e))?;
        if let Some(parent) = path.parent() {
            dir::sync_dir(parent)?;
        }
        Ok(())
    } else {
        dir::write_atomically(path, &kept, true)
    }
}

/// The dead letters a committed replay moves, or `None` if there is no journal.
fn read_journal(dir: &Path) -> Result<Option<Vec<Identity>>, Error> {
    let path = dir.join(JOURNAL);
    let Some(bytes) = read_if_present(&path)? else {
        return Ok(None);
    };
    let damaged = || {
        Error::store(
            "file",
            format!(
                "{}: damaged; the dead letters a replay moved may still be listed as dead letters: check the log before replaying again, then remove this file",
                path.display()
            ),
        )
    };
    let body_len = bytes.len().checked_sub(4).ok_or_else(damaged)?;
    let (body, crc) = bytes.split_at(body_len);
    if !body.starts_with(JOURNAL_MAGIC)
        || crc32c::crc32c(body).to_le_bytes() != crc
        || body.len() < 16
    {
        return Err(damaged());
    }
    let count = u64::from_le_bytes(body[8..16].try_into().map_err(|_| damaged())?) as usize;
    let headers = &body[16..];
    if headers.len() != count.saturating_mul(HEADER) {
        return Err(damaged());
    }
    Ok(Some(
        headers
            .chunks_exact(HEADER)
            .filter_map(|c| c.try_into().ok())
            .collect(),
    ))
}
