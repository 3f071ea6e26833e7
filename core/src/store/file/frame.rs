//! How records sit in a segment, and how a damaged segment is read anyway.
//!
//! ```text
//! segment = MAGIC record*
//! record  = len:u32le crc:u32le stored_at_ms:u64le event[len - 8]
//!           crc = crc32c(len bytes ++ stored_at bytes ++ event)
//! ```
//! The CRC covers the length, so a torn or flipped length is caught. After damage, the next
//! record is found by its CRC and by the frames that follow it (see [`resync`]), never by
//! its timestamp: a clock before NTP sync (1970) or far ahead (2099) stamps records like
//! any other.

use std::time::{SystemTime, UNIX_EPOCH};

/// First bytes of every segment file.
pub(crate) const MAGIC: &[u8; 8] = b"ABWAL01\n";
/// Length, CRC and timestamp.
pub(crate) const HEADER: usize = 16;
/// Larger lengths are damage, not records.
pub(crate) const MAX_RECORD: usize = 256 * 1024 * 1024;

/// Appends one framed record to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, event: &[u8], stored_at_ms: u64) {
    let len = (event.len() + 8) as u32;
    let mut crc = crc32c::crc32c(&len.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &stored_at_ms.to_le_bytes());
    crc = crc32c::crc32c_append(crc, event);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&stored_at_ms.to_le_bytes());
    out.extend_from_slice(event);
}

/// A record found in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    /// Offset of the record's header.
    pub(crate) at: usize,
    /// Offset just past the record.
    pub(crate) end: usize,
    pub(crate) stored_at_ms: u64,
}

impl Record {
    /// The event bytes of this record within `buf`.
    pub(crate) fn event<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.at + HEADER..self.end]
    }
}

/// Why no record could be read at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bad {
    /// The buffer ends inside the record (a torn write, or simply not read yet).
    Short,
    /// The bytes are not a record.
    Damaged,
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}

/// Decodes the record at `at`.
pub(crate) fn decode(buf: &[u8], at: usize) -> Result<Record, Bad> {
    let (Some(len), Some(crc), Some(stored_at_ms)) =
        (u32_at(buf, at), u32_at(buf, at + 4), u64_at(buf, at + 8))
    else {
        return Err(Bad::Short);
    };
    let len = len as usize;
    if !(8..=MAX_RECORD).contains(&len) {
        return Err(Bad::Damaged);
    }
    let end = at + 8 + len;
    let Some(body) = buf.get(at + 8..end) else {
        return Err(Bad::Short);
    };
    let actual = crc32c::crc32c_append(crc32c::crc32c(&(len as u32).to_le_bytes()), body);
    if actual != crc {
        return Err(Bad::Damaged);
    }
    Ok(Record {
        at,
        end,
        stored_at_ms,
    })
}

/// Records up to this size are checked by CRC even when the frames after them do not chain
/// (a second damaged stretch right behind): checking one costs at most this many bytes, so
/// trying it at every offset of garbage stays linear.
const SMALL_RECORD: usize = 64 * 1024;

/// How many frames after a candidate must have a plausible length (unless the buffer ends
/// first) before the candidate's CRC is worth computing. Each frame passes by chance about
/// once in 64 offsets of garbage, so two keep the CRC work over garbage linear.
const CHAIN: usize = 2;

/// The length field at `at`, if it is one a record could have.
fn plausible_len(buf: &[u8], at: usize) -> Option<usize> {
    u32_at(buf, at)
        .map(|l| l as usize)
        .filter(|l| (8..=MAX_RECORD).contains(l))
}

/// Whether the frames from `next` on hang together: each of the next [`CHAIN`] has a
/// plausible length and fits, or the buffer ends first: exactly, inside a header, or inside
/// a small frame (a torn write, or the end of what was read). A large frame running past
/// the end does not count: most lengths in garbage would.
fn chains(buf: &[u8], mut next: usize) -> bool {
    for _ in 0..CHAIN {
        if next + 4 > buf.len() {
            return true;
        }
        let Some(len) = plausible_len(buf, next) else {
            return false;
        };
        next += 8 + len;
        if next > buf.len() {
            return len <= SMALL_RECORD;
        }
    }
    true
}

/// The first offset after `from` where a whole, valid record starts, if any: its length is
/// plausible and fits, the frames after it chain (or it is small), and its CRC matches.
pub(crate) fn resync(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len().saturating_sub(HEADER - 1)).find(|&at| {
        plausible_len(buf, at).is_some_and(|len| {
            let end = at + 8 + len;
            end <= buf.len() && (len <= SMALL_RECORD || chains(buf, end)) && decode(buf, at).is_ok()
        })
    })
}

/// How many records the damaged stretch `[start, end)` of `buf` held, at least one: the
/// lengths are followed from `start`, and trusted only if they land exactly on `end`. The
/// magic of a segment that does not start with it is not a record.
pub(crate) fn records_in(buf: &[u8], start: usize, end: usize, bad_magic: bool) -> u64 {
    let start = if bad_magic && start == 0 {
        MAGIC.len()
    } else {
        start
    };
    if start >= end {
        return 0;
    }
    let (mut at, mut n) = (start, 0);
    while at < end {
        match plausible_len(buf, at) {
            Some(len) if at + 8 + len <= end => {
                at += 8 + len;
                n += 1;
            }
            _ => return 1,
        }
    }
    n.max(1)
}

/// Events lost to the damage `scan` found in `buf` past `unread_from` (the cursor's offset
/// in this segment, 0 if it is not there): at least one per damaged stretch, and at least
/// one for a segment with nothing readable at all (its header damaged, or emptied: only a
/// segment with records is ever followed by another). A torn record ending a segment that
/// is not the `last` is damage too: the next segment was begun only after this one's
/// records were whole, so it was cut short afterwards, and what followed it is gone
/// (counted as one event: its number is unknown).
pub(crate) fn lost_in(buf: &[u8], scan: &Scan, unread_from: u64, last: bool) -> u64 {
    let mut lost: u64 = scan
        .damage
        .iter()
        .filter(|d| d.1 as u64 > unread_from)
        .map(|&(start, end)| {
            let start = start.max(unread_from as usize);
            records_in(buf, start, end, scan.bad_magic)
        })
        .sum();
    if let Some(torn) = scan.torn_at.filter(|&t| {
        !last && (t as u64) >= unread_from && !scan.damage.iter().any(|d| d.1 == buf.len())
    }) {
        lost += records_in(buf, torn, buf.len(), scan.bad_magic);
    }
    if scan.bad_magic && scan.records.is_empty() && unread_from == 0 {
        lost.max(1)
    } else {
        lost
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a scan of a whole segment found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Every valid record, in order.
    pub(crate) records: Vec<Record>,
    /// Damaged stretches skipped between records: (start, end).
    pub(crate) damage: Vec<(usize, usize)>,
    /// Where an incomplete last record starts, if the segment ends in one.
    pub(crate) torn_at: Option<usize>,
    /// The segment does not even start with the magic.
    pub(crate) bad_magic: bool,
}

impl Scan {
    /// Whether anything but a torn tail is wrong.
    pub(crate) fn damaged(&self) -> bool {
        self.bad_magic || !self.damage.is_empty()
    }
}

/// Reads every record of a segment's bytes, skipping damage.
pub(crate) fn scan(buf: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut at = MAGIC.len();
    if !buf.starts_with(MAGIC) {
        scan.bad_magic = true;
        at = 0;
    }
    while at < buf.len() {
        match decode(buf, at) {
            Ok(record) => {
                scan.records.push(record);
                at = record.end;
            }
            Err(bad) => match resync(buf, at + 1) {
                Some(next) => {
                    scan.damage.push((at, next));
                    at = next;
                }
                // A short write at the end; but with a damaged header and nothing read since,
                // the whole segment is damage, and its events are counted lost.
                None if bad == Bad::Short && (!scan.bad_magic || !scan.records.is_empty()) => {
                    scan.torn_at = Some(at);
                    break;
                }
                None => {
                    // Damage running to the end of the file, not merely a short write.
                    scan.torn_at = Some(at);
                    scan.damage.push((at, buf.len()));
                    break;
                }
            },
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(events: &[&[u8]]) -> Vec<u8> {
        let mut buf = MAGIC.to_vec();
        for e in events {
            encode(&mut buf, e, now_ms());
        }
        buf
    }

    fn events_of(buf: &[u8], scan: &Scan) -> Vec<Vec<u8>> {
        scan.records.iter().map(|r| r.event(buf).to_vec()).collect()
    }

    #[test]
    fn round_trip() {
        let buf = segment(&[b"one", b"", b"three"]);
        let s = scan(&buf);
        assert_eq!(
            events_of(&buf, &s),
            vec![b"one".to_vec(), b"".to_vec(), b"three".to_vec()]
        );
        assert!(!s.damaged() && s.torn_at.is_none());
    }

    #[test]
    fn a_torn_tail_is_reported_at_every_cut() {
        let full = segment(&[b"first", b"second", b"third record"]);
        let last = scan(&full).records[2];
        for cut in last.at + 1..full.len() {
            let s = scan(&full[..cut]);
            assert_eq!(s.records.len(), 2, "cut at {cut}");
            assert_eq!(s.torn_at, Some(last.at), "cut at {cut}");
            assert!(!s.damaged(), "cut at {cut}");
        }
    }

    #[test]
    fn damage_in_the_middle_is_skipped_and_later_records_kept() {
        let mut buf = segment(&[b"a-first-event", b"b-second-event", b"c-third-event"]);
        let second = scan(&buf).records[1];
        buf[second.at + HEADER + 3] ^= 0x40;
        let s = scan(&buf);
        assert_eq!(
            events_of(&buf, &s),
            vec![b"a-first-event".to_vec(), b"c-third-event".to_vec()]
        );
        assert!(s.damaged());
        assert_eq!(s.damage, vec![(second.at, second.end)]);
    }

    #[test]
    fn a_flipped_length_is_caught() {
        let mut buf = segment(&[b"xxxxxxxx", b"yyyyyyyy"]);
        buf[MAGIC.len()] ^= 0x01;
        let s = scan(&buf);
        assert_eq!(events_of(&buf, &s), vec![b"yyyyyyyy".to_vec()]);
    }

    #[test]
    fn resync_ignores_timestamps() {
        for stamp in [0, 86_400_000, 4_070_908_800_000, u64::MAX] {
            let mut buf = MAGIC.to_vec();
            for e in [
                &b"first event"[..],
                b"second event",
                b"third event",
                b"fourth",
            ] {
                encode(&mut buf, e, stamp);
            }
            let records = scan(&buf).records;
            buf[records[1].at + HEADER + 1] ^= 0x08;
            let s = scan(&buf);
            assert_eq!(
                events_of(&buf, &s),
                vec![
                    b"first event".to_vec(),
                    b"third event".to_vec(),
                    b"fourth".to_vec()
                ],
                "stamped {stamp}"
            );
            assert_eq!(s.damage, vec![(records[1].at, records[1].end)]);
        }
    }

    #[test]
    fn a_large_record_is_found_again_by_the_frames_after_it() {
        let big = vec![b'x'; SMALL_RECORD + 1];
        let mut buf = MAGIC.to_vec();
        for e in [&b"damaged"[..], &big, b"after"] {
            encode(&mut buf, e, 0);
        }
        buf[MAGIC.len() + HEADER] ^= 0x01;
        let s = scan(&buf);
        assert_eq!(events_of(&buf, &s), vec![big.clone(), b"after".to_vec()]);
    }

    #[test]
    fn garbage_is_not_taken_for_records_and_is_scanned_in_linear_time() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut buf = MAGIC.to_vec();
        buf.extend((0..4 << 20).map(|_| rng.u8(..)));
        encode(&mut buf, b"after the garbage", 0);
        let started = std::time::Instant::now();
        let s = scan(&buf);
        assert_eq!(events_of(&buf, &s), vec![b"after the garbage".to_vec()]);
        // Quadratic work would take minutes here; linear takes well under a second even
        // unoptimised.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
}
