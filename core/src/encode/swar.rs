//! Eight-bytes-at-a-time ("SIMD within a register") scans for the bytes that end a run of
//! plain string content. Safe Rust; compiles to plain loads and integer ops.
//!
//! Each mask has the high bit of a byte set where that byte is interesting. Bits above the
//! lowest one may be false positives (borrows propagate upwards), so callers only ever use
//! the lowest set bit, which is exact.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
const QUOTE: u64 = LO * b'"' as u64;
const BACKSLASH: u64 = LO * b'\\' as u64;
const SPACE: u64 = LO * 0x20;

#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

/// Bytes that a JSON string writer must escape: `"`, `\` and controls below 0x20.
#[inline(always)]
pub(crate) fn needs_escape(w: u64) -> u64 {
    zero_bytes(w ^ QUOTE) | zero_bytes(w ^ BACKSLASH) | (w.wrapping_sub(SPACE) & !w & HI)
}

/// Bytes a JSON string reader must look at: those of [`needs_escape`] plus any non-ASCII
/// byte, whose UTF-8 sequence must be checked.
#[inline(always)]
pub(crate) fn string_special(w: u64) -> u64 {
    needs_escape(w) | (w & HI)
}

/// A word of plain bytes (`a`), never interesting to either mask.
const PLAIN: u64 = LO * b'a' as u64;

#[inline(always)]
fn load(b: &[u8], i: usize) -> u64 {
    match b.get(i..i + 8).map(<[u8; 8]>::try_from) {
        Some(Ok(word)) => u64::from_le_bytes(word),
        _ => PLAIN,
    }
}

/// The 1 to 7 bytes of `b` as the low bytes of a word, from two overlapping loads (the
/// bytes they share are equal, so or-ing them is harmless), in registers: assembling the
/// word byte by byte in memory would stall the load that reads it back.
#[inline(always)]
fn load_short(b: &[u8]) -> u64 {
    let n = b.len();
    let w4 = |s: &[u8]| <[u8; 4]>::try_from(s).map_or(0, |a| u64::from(u32::from_le_bytes(a)));
    let w2 = |s: &[u8]| <[u8; 2]>::try_from(s).map_or(0, |a| u64::from(u16::from_le_bytes(a)));
    match n {
        4..=7 => w4(&b[..4]) | (w4(&b[n - 4..]) << (8 * (n - 4))),
        2..=3 => w2(&b[..2]) | (w2(&b[n - 2..]) << (8 * (n - 2))),
        1 => u64::from(b[0]),
        _ => 0,
    }
}

/// Index of the first byte at or after `i` for which `mask` reports interest, or `b.len()`.
///
/// Whole words first; the last few bytes are read as the final (overlapping) word of the
/// slice, shifted so only the unread bytes count, so a short tail costs one more word
/// rather than a loop.
#[inline(always)]
pub(crate) fn find(b: &[u8], mut i: usize, mask: impl Fn(u64) -> u64) -> usize {
    let len = b.len();
    while i + 8 <= len {
        let m = mask(load(b, i));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = len - i.min(len);
    if rest == 0 {
        return len;
    }
    let word = if len >= 8 {
        // Bytes before `i` are shifted out; plain bytes fill the top.
        let skip = 8 - rest;
        (load(b, len - 8) >> (8 * skip)) | (PLAIN << (8 * rest))
    } else {
        load_short(&b[i..]) | (PLAIN << (8 * rest))
    };
    let m = mask(word);
    if m != 0 {
        i + (m.trailing_zeros() / 8) as usize
    } else {
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_special_bytewise(b: &[u8]) -> usize {
        b.iter()
            .position(|&c| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c))
            .unwrap_or(b.len())
    }

    #[test]
    fn finds_the_first_special_byte_in_every_position() {
        for special in [b'"', b'\\', 0x00, 0x1f, 0x80, 0xff] {
            for pos in 0..24 {
                let mut b = vec![b'a'; 24];
                b[pos] = special;
                // A second special byte after the first must not confuse the scan.
                if pos + 1 < 24 {
                    b[pos + 1] = 0x00;
                }
                for start in 0..=pos {
                    let i = find(&b, start, string_special);
                    assert_eq!(
                        i,
                        first_special_bytewise(&b),
                        "special {special:#x} at {pos} from {start}"
                    );
                }
            }
        }
    }

    #[test]
    fn plain_ascii_and_del_are_not_special() {
        let b: Vec<u8> = (0x20u8..0x80)
            .filter(|&c| c != b'"' && c != b'\\')
            .collect();
        assert_eq!(find(&b, 0, string_special), b.len());
        let utf8 = "héllo wörld ünïcode".as_bytes();
        assert_eq!(find(utf8, 0, needs_escape), utf8.len());
        assert_eq!(find(utf8, 0, string_special), 1);
    }

    #[test]
    fn short_slices_and_tails() {
        for len in 0..20 {
            for pos in 0..len {
                let mut b = vec![b'x'; len];
                b[pos] = b'"';
                for start in 0..=len {
                    let expect = if start <= pos { pos } else { len };
                    assert_eq!(
                        find(&b, start, string_special),
                        expect,
                        "len {len} pos {pos} start {start}"
                    );
                }
            }
            let b = vec![b'x'; len];
            assert_eq!(find(&b, 0, needs_escape), len);
        }
    }
}
