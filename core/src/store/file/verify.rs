//! Checking a file store without changing it: what [`FileStore::open`] would find and do,
//! worked out from the same scan of every record (`frame::scan`) and the same decisions,
//! with nothing written, renamed or cut. A test opens each store it checked and compares.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::frame::{self, HEADER, MAGIC};
use super::recovery::{describe_gaps, gaps, list_segments, read_cursor, starts_after_salvage};
use super::{FileStore, Position, dir, replay, segment_name};
use crate::Error;
use crate::store::check::{PartCheck, StoreCheck};

impl FileStore {
    /// Checks the store in `dir` as [`open`](FileStore::open) would — every record's CRC,
    /// a torn last record, damaged stretches, the saved read position, segments missing
    /// after it — and says what
    /// opening it would keep, cut, move aside and lose, and what its dead letters hold,
    /// without writing, renaming or cutting anything. It holds a shared lock on the
    /// directory meanwhile (so the store cannot be opened halfway through).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when `dir` is missing, not a directory or holds no file store, or a
    /// process has the store open (the message names it: `…/LOCK: the store is in use by
    /// another process (pid 4242)`); [`Error::Io`] naming the directory or file that cannot
    /// be read.
    pub fn verify(dir: impl AsRef<Path>) -> Result<StoreCheck, Error> {
        let dir = dir.as_ref();
        existing_store(dir)?;
        let _shared = dir::lock_shared(dir)?;
        let mut check = StoreCheck::new("file", dir.display().to_string());

        let saved = read_cursor(dir)?;
        if saved.is_none() && dir.join("cursor").exists() {
            check.cursor_reset = true;
            check.problems.push(
                "cursor: damaged; reading would restart at the oldest record kept (events already sent would be sent again)"
                    .to_owned(),
            );
        }
        let mut ids = list_segments(dir)?;
        let saved = match saved {
            Some(c) if ids.contains(&c.segment) => Some(c),
            Some(c) => {
                check.cursor_reset = true;
                check.problems.push(format!(
                    "cursor: names segment {}, which is missing; nothing would be deleted and reading would restart at the oldest segment (events already sent would be sent again)",
                    segment_name(c.segment)
                ));
                None
            }
            None => None,
        };
        if let Some(c) = saved {
            for id in ids.iter().filter(|id| **id < c.segment) {
                let name = segment_name(*id);
                let len = fs::metadata(dir.join(&name)).map_or(0, |m| m.len());
                let mut part = PartCheck::new(&name, len);
                part.state = "sent already; deleted when the store is opened".to_owned();
                check.parts.push(part);
            }
            ids.retain(|id| *id >= c.segment);
        }
        for gap in gaps(&ids) {
            let missing = describe_gaps(&[gap]);
            let them = if gap.0 == gap.1 { "it" } else { "them" };
            check.problems.push(format!(
                "{missing}: missing (deleted by hand?); the events in {them} not sent yet are \
                 lost, and how many cannot be known (no count is kept outside a segment)"
            ));
            check.missing.push(missing);
        }

        if ids.last() == Some(&u64::MAX) {
            // Opening makes a segment after the last: there is no number for it.
            let why = format!(
                "{}: the last segment number there is; the store would not open: move it aside",
                segment_name(u64::MAX)
            );
            check.problems.push(why.clone());
            check.open_error = Some(why);
        }
        let mut cursor = saved;
        let last_id = ids.last().copied();
        for id in ids {
            let name = segment_name(id);
            let path = dir.join(&name);
            let mut data = fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let mut part = PartCheck::new(&name, data.len() as u64);
            let mut found = Vec::new();
            if data.len() < MAGIC.len() && MAGIC.starts_with(&data) && Some(id) == last_id {
                data = MAGIC.to_vec();
                found.push(
                    "its header was never written (a crash as it was made): made empty".to_owned(),
                );
            }
            let scan = frame::scan(&data);
            let unread_from = cursor.filter(|c| c.segment == id).map_or(0, |c| c.offset);
            let is_last = Some(id) == last_id;
            let lost = frame::lost_in(&data, &scan, unread_from, is_last);
            check.lost_events += lost;
            let mut valid_starts: Vec<u64> = scan.records.iter().map(|r| r.at as u64).collect();
            let len;
            if scan.damaged() || (scan.torn_at.is_some() && !is_last) {
                // `salvage`: moved aside, its good records written back in its place.
                let good: usize = scan.records.iter().map(|r| r.end - r.at).sum();
                len = (MAGIC.len() + good) as u64;
                let damaged = scan.damage.iter().map(|(a, b)| b - a).sum::<usize>()
                    + scan.torn_at.map_or(0, |t| {
                        if scan.damage.iter().any(|d| d.1 == data.len()) {
                            0
                        } else {
                            data.len() - t
                        }
                    });
                check.damaged_bytes += damaged as u64;
                if scan.bad_magic {
                    found.push("does not start with a segment header".to_owned());
                }
                for &(start, end) in &scan.damage {
                    found.push(format!("damaged at offset {start} ({} bytes)", end - start));
                }
                if let Some(t) = scan
                    .torn_at
                    .filter(|_| !scan.damage.iter().any(|d| d.1 == data.len()))
                {
                    found.push(format!(
                        "ends in a torn record at offset {t} ({} bytes)",
                        data.len() - t
                    ));
                }
                found.push(format!(
                    "would be moved aside to {name}.corrupt, its {} good records kept in place{}",
                    scan.records.len(),
                    match lost {
                        0 => String::new(),
                        1 => "; 1 event lost".to_owned(),
                        n => format!("; {n} events lost"),
                    }
                ));
                part.damaged = true;
                let mut aside = path.as_os_str().to_owned();
                aside.push(".corrupt");
                check
                    .quarantined
                    .push(Path::new(&aside).display().to_string());
                let intact = starts_after_salvage(&scan, &mut valid_starts);
                if cursor.is_some_and(|c| c.segment == id && c.offset > intact) {
                    cursor = Some(Position {
                        segment: id,
                        offset: MAGIC.len() as u64,
                    });
                    reset_cursor(&mut check, &name);
                }
            } else if let Some(torn) = scan.torn_at {
                let cut = (data.len() - torn) as u64;
                check.cut_bytes += cut;
                found.push(format!(
                    "torn last record at offset {torn} ({cut} bytes, a write a crash interrupted): would be cut"
                ));
                part.damaged = true;
                len = torn as u64;
            } else {
                len = data.len() as u64;
            }
            // A cursor must point at a record start or at the end of its segment; one past
            // the end passed records that were sent and then lost to a power cut, so the
            // segment counts as consumed, as `FileStore::open` does.
            if cursor.is_some_and(|c| c.segment == id && c.offset > len) {
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
                reset_cursor(&mut check, &name);
            }
            let from = cursor.filter(|c| c.segment == id).map_or(0, |c| c.offset);
            for (start, r) in valid_starts.iter().zip(&scan.records) {
                if *start >= from {
                    part.kept += 1;
                    check.keep((r.end - r.at - HEADER) as u64, time_of(r.stored_at_ms));
                }
            }
            part.records = scan.records.len() as u64;
            if part.damaged {
                check.problems.push(format!("{name}: {}", found.join("; ")));
            }
            if !found.is_empty() {
                part.state = found.join("; ");
            }
            check.parts.push(part);
        }

        dead_letter_files(dir, &mut check)?;
        others(dir, &mut check)?;
        Ok(check)
    }
}

fn reset_cursor(check: &mut StoreCheck, segment: &str) {
    if !check.cursor_reset {
        check.cursor_reset = true;
        check.problems.push(format!(
            "cursor: points into damage in {segment}; reading would restart at the start of that segment (events already sent would be sent again)"
        ));
    }
}

/// The dead-letter files: what they hold and any damage in them (a recovery leaves them as
/// they are).
fn dead_letter_files(dir: &Path, check: &mut StoreCheck) -> Result<(), Error> {
    for path in replay::generations(dir) {
        let Some(data) = replay::read_if_present(&path)? else {
            continue;
        };
        let scan = frame::scan(&data);
        let letters = replay::letters(&data, &scan);
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let mut part = PartCheck::new(&name, data.len() as u64);
        part.records = letters.len() as u64;
        part.dead_letters = true;
        check.dead_letters += letters.len() as u64;
        let damaged: usize = scan.damage.iter().map(|(a, b)| b - a).sum::<usize>()
            + scan.torn_at.map_or(0, |t| {
                if scan.damage.iter().any(|d| d.1 == data.len()) {
                    0
                } else {
                    data.len() - t
                }
            });
        let unreadable = scan.records.len() - letters.len();
        if damaged > 0 || scan.bad_magic || unreadable > 0 {
            let lost: u64 = scan
                .damage
                .iter()
                .map(|&(a, b)| frame::records_in(&data, a, b, scan.bad_magic))
                .sum::<u64>()
                + unreadable as u64;
            part.damaged = true;
            part.state = format!(
                "{damaged} damaged bytes{}; the readable dead letters stay readable",
                match lost {
                    0 => String::new(),
                    n => format!(", about {n} dead letters unreadable"),
                }
            );
            check.problems.push(format!("{name}: {}", part.state));
        }
        check.parts.push(part);
    }
    Ok(())
}

/// Files earlier recoveries set aside, and an interrupted replay of dead letters.
fn others(dir: &Path, check: &mut StoreCheck) -> Result<(), Error> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        if name.contains(".seg.corrupt") {
            let len = fs::metadata(dir.join(&name)).map_or(0, |m| m.len());
            check.notes.push(format!(
                "{name}: a damaged segment an earlier recovery set aside ({len} bytes); its good records were kept; remove it once it is no longer needed"
            ));
        }
    }
    if let Some(note) = replay::pending_note(dir)? {
        check.notes.push(note);
    }
    Ok(())
}

/// Fails unless `dir` is a directory holding a file store.
pub(super) fn existing_store(dir: &Path) -> Result<(), Error> {
    let fail = |what: &str| Error::store("file", format!("{}: {what}", dir.display()));
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(fail("not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail("no such directory"));
        }
        Err(e) => return Err(Error::io(dir, e)),
    }
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let known = entries.filter_map(|e| e.ok()).any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name == "LOCK"
            || name == "cursor"
            || name.ends_with(".seg")
            || name.starts_with("dead-letters.log")
    });
    if known {
        Ok(())
    } else {
        Err(fail(
            "not a file store (no LOCK, cursor, segments or dead letters in it)",
        ))
    }
}

pub(super) fn time_of(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
