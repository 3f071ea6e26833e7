//! Opening a file store: what a crash or damage left behind is found and repaired here.
//!
//! Every record's CRC is checked. A torn tail (an incomplete last record) is cut at the last
//! good record. A segment damaged in the middle is moved aside to `*.seg.corrupt` and its
//! good records, found again by CRC and plausibility after the damage, are written back in
//! its place. A cursor that names a missing segment is not trusted. A segment missing
//! between the cursor's and the newest (deleted by hand: the store only ever deletes the
//! oldest, and numbers new ones consecutively) is reported: its events are lost, and how
//! many cannot be known, since no count of them is kept outside the segment itself.

use std::collections::VecDeque;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::frame::{self, HEADER, MAGIC};
use super::{FileStore, FileStoreConfig, Position, Segment, dir, new_segment, segment_name};
use crate::Error;
use crate::store::{Fsync, crash_point};

/// What opening a store found and repaired: [`FileStore::recovery`], or
/// [`Store::recovery`](crate::Store::recovery) for any store (the file store fills every
/// field; another store may fill only `lost_events`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Events lost to damage found on open, at least one per damaged stretch (exact when
    /// the damage left the records' lengths readable). A pipeline counts them as
    /// `recovered` and `dropped.damaged`.
    pub lost_events: u64,
    /// Bytes cut from the end of the last segment: a write torn by a crash.
    pub truncated_bytes: u64,
    /// Damaged segments moved aside (`*.seg.corrupt`); their good records were kept.
    pub corrupt_segments: Vec<PathBuf>,
    /// Bytes of damage skipped inside those segments.
    pub damaged_bytes: u64,
    /// The cursor file was missing, damaged or pointed into damage: reading restarts at
    /// the oldest kept record (some events may be sent again).
    pub cursor_reset: bool,
    /// Segment files missing between the cursor's segment and the newest (deleted by
    /// hand): the events they held are lost, and are not in `lost_events`, since how many
    /// there were cannot be known. The warning logged names them.
    pub missing_segments: u64,
}

impl FileStore {
    /// Opens (or creates) the store, recovering from whatever a crash left: see [`Recovery`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the field (`path`, `max_total_bytes`, `segment_bytes`,
    /// `fsync_interval_ms`) when it is out of range; [`Error::Store`] when `path` is not a
    /// directory or another process has the store open (naming it from `LOCK`);
    /// [`Error::Io`] naming the directory or file that cannot be created, read or written.
    pub fn open(config: FileStoreConfig) -> Result<Self, Error> {
        if let Some((field, reason)) = config.invalid() {
            return Err(Error::config(field, reason));
        }
        let dir = config.path.clone();
        dir::prepare(&dir)?;
        let lock = dir::lock(&dir)?;
        let durable = config.fsync != Fsync::Never;
        let mut recovery = Recovery::default();
        let saved_cursor = read_cursor(&dir)?;
        recovery.cursor_reset = saved_cursor.is_none() && dir.join("cursor").exists();

        let mut ids = list_segments(&dir)?;
        // Segments before the cursor's are consumed. A cursor whose segment is gone (removed
        // by hand, or lost with the directory entry in a power cut) proves nothing: then
        // nothing is deleted and reading starts at the oldest segment.
        let highest_named = ids
            .last()
            .copied()
            .max(saved_cursor.map(|c| c.segment))
            .unwrap_or(0);
        let saved_cursor = match saved_cursor {
            Some(c) if ids.contains(&c.segment) => Some(c),
            Some(_) => {
                recovery.cursor_reset = true;
                None
            }
            None => None,
        };
        if let Some(c) = saved_cursor {
            for id in ids.iter().filter(|id| **id < c.segment) {
                let path = dir.join(segment_name(*id));
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
            ids.retain(|id| *id >= c.segment);
        }
        let gaps = gaps(&ids);
        if !gaps.is_empty() {
            recovery.missing_segments = gaps.iter().map(|(a, b)| b - a + 1).sum();
            log::warn!(
                "{}: {} missing (deleted by hand?): the events in {} not sent yet are lost; \
                 how many cannot be known (no count is kept outside a segment), so they are not \
                 counted in dropped.damaged",
                dir.display(),
                describe_gaps(&gaps),
                if recovery.missing_segments == 1 {
                    "it"
                } else {
                    "them"
                }
            );
        }
        // An empty newest segment removed below leaves its number free: the new tail takes
        // it, or the next open would find a hole where it was.
        let mut free_id = None;

        let mut segments = VecDeque::new();
        let mut cursor = saved_cursor;
        let (mut events, mut bytes, mut oldest_ms) = (0u64, 0u64, None);
        let last_id = ids.last().copied();
        for id in ids {
            let path = dir.join(segment_name(id));
            let mut data = fs::read(&path).map_err(|e| Error::io(&path, e))?;
            if data.len() < MAGIC.len() && MAGIC.starts_with(&data) && Some(id) == last_id {
                // A segment whose creation a crash interrupted before its header was
                // written: empty, not damaged. Only the newest can be that; an older one
                // emptied is damage (its events are counted lost below).
                data = MAGIC.to_vec();
                match rewrite(&path, &data, durable) {
                    Ok(()) => {}
                    // On a full disk (where such a header is left unwritten), it holds
                    // nothing and goes.
                    Err(e) if no_space(&e) && cursor.is_none_or(|c| c.segment != id) => {
                        fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                        free_id = Some(id);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let scan = frame::scan(&data);
            // Damage the saved cursor had not passed lost events; before it, they were sent.
            let unread_from = cursor.filter(|c| c.segment == id).map_or(0, |c| c.offset);
            let is_last = Some(id) == last_id;
            recovery.lost_events += frame::lost_in(&data, &scan, unread_from, is_last);
            let mut valid_starts: Vec<u64> = scan.records.iter().map(|r| r.at as u64).collect();
            let len;
            if scan.damaged() || (scan.torn_at.is_some() && !is_last) {
                len = salvage(&dir, &path, &data, &scan, durable, &mut recovery)?;
                let intact = starts_after_salvage(&scan, &mut valid_starts);
                if let Some(c) = cursor.filter(|c| c.segment == id && c.offset > intact) {
                    let _ = c;
                    cursor = Some(Position {
                        segment: id,
                        offset: MAGIC.len() as u64,
                    });
                    recovery.cursor_reset = true;
                }
            } else if let Some(torn) = scan.torn_at {
                let file = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?;
                file.set_len(torn as u64).map_err(|e| Error::io(&path, e))?;
                if durable {
                    file.sync_all().map_err(|e| Error::io(&path, e))?;
                }
                recovery.truncated_bytes += (data.len() - torn) as u64;
                log::warn!(
                    "{}: cut a torn record of {} bytes at offset {torn}",
                    path.display(),
                    data.len() - torn
                );
                len = torn as u64;
            } else {
                len = data.len() as u64;
            }
            // A cursor must point at a record start or at the end of its segment. One past
            // the end passed records that were sent, and lost afterwards with a power cut
            // (the flush thread may send what a `wal` append wrote before its sync ends):
            // the segment was consumed.
            if let Some(c) = cursor.filter(|c| c.segment == id && c.offset > len) {
                log::warn!(
                    "{}: the cursor was {} bytes past the end; those records had been sent",
                    path.display(),
                    c.offset - len
                );
                cursor = Some(Position {
                    segment: id,
                    offset: len,
                });
            } else if let Some(c) = cursor.filter(|c| c.segment == id)
                && c.offset != len
                && !valid_starts.contains(&c.offset)
            {
                cursor = Some(Position {
                    segment: id,
                    offset: MAGIC.len() as u64,
                });
                recovery.cursor_reset = true;
            }
            let from = cursor.filter(|c| c.segment == id).map_or(0, |c| c.offset);
            for (start, r) in valid_starts.iter().zip(&scan.records) {
                if *start >= from {
                    events += 1;
                    bytes += (r.end - r.at - HEADER) as u64;
                    oldest_ms.get_or_insert(r.stored_at_ms);
                }
            }
            segments.push_back(Segment { id, path, len });
        }

        let next_id = match free_id {
            Some(id) if id == highest_named => id,
            _ => next_segment_id(&dir, highest_named)?,
        };
        // Matched before the fallback below takes the last segment out of `segments`: a
        // cursor inside it stays there (reset, it would re-read records sent already, which
        // `events` does not count).
        let cursor = match cursor {
            Some(c) if segments.iter().any(|s| s.id == c.segment) => c,
            _ => Position {
                segment: segments.front().map_or(next_id, |s| s.id),
                offset: MAGIC.len() as u64,
            },
        };
        let (tail, tail_segment) = match new_segment(&dir, next_id, durable) {
            Ok(made) => made,
            // No room for a new segment (a full disk): appends go after the last one, whose
            // records were all checked above, so that the store opens and can be drained,
            // which frees the space. (Its records stay where they are; only the tail moves.)
            Err(e) if no_space(&e) && !segments.is_empty() => {
                let _ = fs::remove_file(dir.join(segment_name(next_id)));
                let last = segments.pop_back().ok_or(e)?;
                let file = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&last.path)
                    .map_err(|e| Error::io(&last.path, e))?;
                log::warn!(
                    "{}: no space for a new segment: appending to {} until there is",
                    dir.display(),
                    last.path.display()
                );
                (file, last)
            }
            Err(e) => return Err(e),
        };
        segments.push_back(tail_segment);
        if recovery != Recovery::default() {
            log::warn!("{}: recovered with {recovery:?}", dir.display());
        }
        let mut store = FileStore {
            config,
            lock: Some(lock),
            segments,
            tail: Arc::new(tail),
            unsynced_older: Vec::new(),
            cursor,
            read: VecDeque::new(),
            events,
            bytes,
            oldest_ms,
            unsynced: false,
            cursor_unsynced: false,
            cursor_warnings: Default::default(),
            dir_unsynced: false,
            lost: 0,
            last_sync: Instant::now(),
            reader: None,
            buf: Vec::new(),
            recovery,
            pid: std::process::id(),
            watch: crate::store::watch::Watch::new(&dir),
        };
        crash_point("file.open.scanned");
        store.normalize_cursor();
        // The cursor on disk must name a segment that exists from now on; if it cannot be
        // written (a full disk), the next commit or sync writes it.
        if !store.delete_consumed()?
            && let Err(e) = store.persist_cursor(durable)
        {
            store.cursor_not_written(&e);
        }
        Ok(store)
    }
}

/// Replaces the content of the segment at `path` with `data`, in place.
fn rewrite(path: &Path, data: &[u8], durable: bool) -> Result<(), Error> {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.set_len(0).map_err(|e| Error::io(path, e))?;
    file.write_all_at(data, 0).map_err(|e| Error::io(path, e))?;
    if durable {
        file.sync_all().map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// The segments' ids, oldest first: files named exactly as the store names them, 16
/// lowercase hex digits and `.seg` (`segment_name`). Other names (`5.seg`, an upper-case
/// copy) are not the store's and are left alone.
pub(super) fn list_segments(dir: &Path) -> Result<Vec<u64>, Error> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let name = entry.map_err(|e| Error::io(dir, e))?.file_name();
        let name = name.to_string_lossy();
        if let Some(hex) = name.strip_suffix(".seg")
            && hex.len() == 16
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && let Ok(id) = u64::from_str_radix(hex, 16)
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The runs of ids missing between the first and the last of `ids` (sorted), each as
/// `(first, last)`: segments are numbered consecutively and only the oldest are deleted,
/// so a run is segments deleted by someone else.
pub(super) fn gaps(ids: &[u64]) -> Vec<(u64, u64)> {
    ids.windows(2)
        .filter(|w| w[1] > w[0] + 1)
        .map(|w| (w[0] + 1, w[1] - 1))
        .collect()
}

/// The missing segments of `gaps`, named: `0000000000000003.seg`, or a run as
/// `0000000000000003.seg to 0000000000000005.seg (3 segments)`.
pub(super) fn describe_gaps(gaps: &[(u64, u64)]) -> String {
    let runs: Vec<String> = gaps
        .iter()
        .map(|&(a, b)| {
            if a == b {
                segment_name(a)
            } else {
                format!(
                    "{} to {} ({} segments)",
                    segment_name(a),
                    segment_name(b),
                    b - a + 1
                )
            }
        })
        .collect();
    runs.join(", ")
}

/// The id after `id`, or an error naming the store when there is none (a segment named
/// `ffffffffffffffff.seg`).
pub(super) fn next_segment_id(dir: &Path, id: u64) -> Result<u64, Error> {
    id.checked_add(1).ok_or_else(|| {
        Error::store(
            "file",
            format!(
                "{}: no segment number after {id:016x}: move the segment of that name aside",
                dir.display()
            ),
        )
    })
}

/// The saved cursor: `None` when there is none or it is damaged (reading restarts at the
/// oldest record); an error when it cannot be read (permissions): restarting would send
/// again what was sent.
pub(super) fn read_cursor(dir: &Path) -> Result<Option<Position>, Error> {
    let path = dir.join("cursor");
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    if bytes.len() != 28 || !bytes.starts_with(b"ABCUR01\n") {
        return Ok(None);
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&bytes[24..28]);
    if crc32c::crc32c(&bytes[..24]) != u32::from_le_bytes(crc) {
        return Ok(None);
    }
    Ok(Some(Position {
        segment: word(8),
        offset: word(16),
    }))
}

/// Makes `corrupt` a copy of the damaged segment at `path` (a hard link where possible).
/// A `corrupt` left by an interrupted earlier salvage may already be that very file: it is
/// then kept as it is, never truncated; an unrelated one is moved out of the way.
fn keep_aside(path: &Path, corrupt: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let same_file = |a: &Path, b: &Path| match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    match fs::hard_link(path, corrupt) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if same_file(path, corrupt) {
                return Ok(());
            }
            let mut older = corrupt.as_os_str().to_owned();
            older.push(format!(".{}", frame::now_ms()));
            fs::rename(corrupt, PathBuf::from(older)).map_err(|e| Error::io(corrupt, e))?;
            keep_aside(path, corrupt)
        }
        // No hard links here (another file system, permissions): copy instead.
        Err(_) => fs::copy(path, corrupt)
            .map(|_| ())
            .map_err(|e| Error::io(corrupt, e)),
    }
}

/// Moves a damaged segment aside and writes its good records, in order, in its place.
/// Returns the new length.
fn salvage(
    dir: &Path,
    path: &Path,
    data: &[u8],
    scan: &frame::Scan,
    durable: bool,
    recovery: &mut Recovery,
) -> Result<u64, Error> {
    let sibling = |suffix: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    let (corrupt, salvaged) = (sibling(".corrupt"), sibling(".salvaged"));
    let mut good = MAGIC.to_vec();
    for r in &scan.records {
        good.extend_from_slice(&data[r.at..r.end]);
    }
    // Write the good records beside the damaged segment first, so a crash at any step
    // leaves them in a file that open reads: the original, or its replacement.
    let _ = fs::remove_file(&salvaged);
    let file = dir::create_private(&salvaged, true)?;
    file.write_all_at(&good, 0)
        .map_err(|e| Error::io(&salvaged, e))?;
    file.sync_data().map_err(|e| Error::io(&salvaged, e))?;
    crash_point("file.salvage.written");
    keep_aside(path, &corrupt)?;
    crash_point("file.salvage.kept_aside");
    fs::rename(&salvaged, path).map_err(|e| Error::io(path, e))?;
    crash_point("file.salvage.renamed");
    if durable {
        dir::sync_dir(dir)?;
    }
    let damaged: usize = scan.damage.iter().map(|(a, b)| b - a).sum::<usize>()
        + scan.torn_at.map_or(0, |t| {
            if scan.damage.iter().any(|d| d.1 == data.len()) {
                0
            } else {
                data.len() - t
            }
        });
    recovery.damaged_bytes += damaged as u64;
    log::warn!(
        "{}: damaged ({damaged} bytes); moved to {} and kept its {} good records",
        path.display(),
        corrupt.display(),
        scan.records.len()
    );
    recovery.corrupt_segments.push(corrupt);
    Ok(good.len() as u64)
}

/// Where the records of `scan` start once its segment was salvaged (damaged bytes cut out),
/// into `starts`; returns the offset up to which the segment was intact. Offsets before the
/// first damage are unchanged; later ones moved up.
pub(super) fn starts_after_salvage(scan: &frame::Scan, starts: &mut Vec<u64>) -> u64 {
    let intact = scan
        .damage
        .first()
        .map(|d| d.0)
        .or(scan.torn_at)
        .unwrap_or(0) as u64;
    let mut at = MAGIC.len() as u64;
    starts.clear();
    for r in &scan.records {
        starts.push(if (r.at as u64) < intact {
            r.at as u64
        } else {
            at
        });
        at += (r.end - r.at) as u64;
    }
    intact
}

/// Whether `e` says the disk (or the user's quota) is full.
fn no_space(e: &Error) -> bool {
    matches!(e, Error::Io(io) if matches!(
        io.source.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ))
}
