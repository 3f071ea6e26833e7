//! Scans for the bytes that end a run of plain string content: sixteen bytes at a time
//! with SSE2 on x86-64 (every x86-64 CPU has it; the last block of a slice overlaps the one
//! before), eight at a time "within a register" (SWAR, plain integer ops) for slices
//! shorter than a block and on other CPUs. The JSON check of a 1 KiB event took 787 ns with
//! blocks against 863 with words only (fastest of 8 interleaved runs).
//!
//! Each word mask has the high bit of a byte set where that byte is interesting. Bits above
//! the lowest one may be false positives (borrows propagate upwards), so callers only ever
//! use the lowest set bit, which is exact. The SSE2 masks are exact in every bit.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8,
    _mm_or_si128, _mm_set1_epi8,
};

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
const QUOTE: u64 = LO * b'"' as u64;
const BACKSLASH: u64 = LO * b'\\' as u64;
const SPACE: u64 = LO * 0x20;

#[inline(always)]
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

/// A class of bytes a scan stops at, tested a word or (on x86-64) a block at a time.
pub(crate) trait Stop: Copy {
    /// The word's mask: the lowest set high bit marks the first byte of the class.
    fn word(self, w: u64) -> u64;
    /// The block's mask: bit `k` set where byte `k` is of the class.
    #[cfg(target_arch = "x86_64")]
    fn block(self, v: __m128i) -> u32;
}

/// Bytes that a JSON string writer must escape: `"`, `\` and controls below 0x20.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NeedsEscape;

/// Bytes a JSON string reader must look at: those of [`NeedsEscape`] plus any non-ASCII
/// byte, whose UTF-8 sequence must be checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StringSpecial;

/// The block mask of `"`, `\` and the bytes below 0x20, and with `wide` those from 0x80 too.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn block_mask(v: __m128i, wide: bool) -> u32 {
    // SAFETY: SSE2 is part of x86-64 itself, so every CPU this runs on has it; these
    // intrinsics touch only registers.
    #[allow(unsafe_code)]
    unsafe {
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        let low = if wide {
            // Signed `c < 0x20`: the controls, and every byte from 0x80 (negative).
            _mm_cmplt_epi8(v, _mm_set1_epi8(0x20))
        } else {
            // Unsigned `c <= 0x1f`: the smaller of `c` and 0x1f is `c`.
            _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v)
        };
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), low)) as u32
    }
}

impl Stop for NeedsEscape {
    #[inline(always)]
    fn word(self, w: u64) -> u64 {
        zero_bytes(w ^ QUOTE) | zero_bytes(w ^ BACKSLASH) | (w.wrapping_sub(SPACE) & !w & HI)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn block(self, v: __m128i) -> u32 {
        block_mask(v, false)
    }
}

impl Stop for StringSpecial {
    #[inline(always)]
    fn word(self, w: u64) -> u64 {
        NeedsEscape.word(w) | (w & HI)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn block(self, v: __m128i) -> u32 {
        block_mask(v, true)
    }
}

/// The 16 bytes of `b` from `i`, if there are so many.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn load_block(b: &[u8], i: usize) -> Option<__m128i> {
    let block: &[u8; 16] = b.get(i..i.checked_add(16)?)?.try_into().ok()?;
    // SAFETY: `block` is 16 readable bytes, and `_mm_loadu_si128` needs no alignment.
    #[allow(unsafe_code)]
    Some(unsafe { _mm_loadu_si128(block.as_ptr().cast()) })
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

/// The first eight bytes of `b` (fewer if it is shorter, the rest zeros) as a little-endian
/// word: two slices of at most eight bytes are equal exactly when their lengths and their
/// words are.
#[inline(always)]
pub(crate) fn prefix_word(b: &[u8]) -> u64 {
    match b.get(..8) {
        Some(head) => load(head, 0),
        None => load_short(b),
    }
}

/// Index of the first byte at or after `i` of the class `stop`, or `b.len()`.
///
/// Whole blocks first; the last few bytes are read as the slice's final (overlapping)
/// block, shifted so only the unread bytes count, so a short tail costs one more block
/// rather than a loop. Slices shorter than a block, and other CPUs, go by words
/// ([`find_words`]).
#[inline(always)]
pub(crate) fn find(b: &[u8], #[allow(unused_mut)] mut i: usize, stop: impl Stop) -> usize {
    #[cfg(target_arch = "x86_64")]
    let len = b.len();
    #[cfg(target_arch = "x86_64")]
    while let Some(block) = load_block(b, i) {
        let m = stop.block(block);
        if m != 0 {
            return i + m.trailing_zeros() as usize;
        }
        i += 16;
    }
    // Nothing left (a slice of whole blocks, such as a 32-digit id): no call for it.
    #[cfg(target_arch = "x86_64")]
    if i >= len {
        return len;
    }
    // The tail as the last (overlapping) block, the bytes before `i` shifted out.
    #[cfg(target_arch = "x86_64")]
    if let Some(start) = len.checked_sub(16)
        && let Some(block) = load_block(b, start)
    {
        let m = stop.block(block) >> (i - start);
        return if m != 0 {
            i + m.trailing_zeros() as usize
        } else {
            len
        };
    }
    find_short(b, i, stop)
}

/// [`find_words`] out of line (on x86-64), for a slice shorter than a block.
/// Inlined, the word loop's offsets and shifts were kept up to date in the block loop too
/// (eight induction variables in the flat check's key scan, five now), which every JSON
/// string paid. Out of line, `record_json` of the 300 B line took 2 954–2 963 → 2 752–2 757
/// instructions in all threads, of 1 KiB 9 893–9 982 → 9 423–9 540, a typed event
/// 3 065–3 078 → 3 002–3 037.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn find_short(b: &[u8], i: usize, stop: impl Stop) -> usize {
    find_words(b, i, stop)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn find_short(b: &[u8], i: usize, stop: impl Stop) -> usize {
    find_words(b, i, stop)
}

/// [`find`] a word at a time, the tail read as the slice's final (overlapping) word.
#[inline(always)]
fn find_words(b: &[u8], mut i: usize, stop: impl Stop) -> usize {
    let len = b.len();
    while i + 8 <= len {
        let m = stop.word(load(b, i));
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
    let m = stop.word(word);
    if m != 0 {
        i + (m.trailing_zeros() / 8) as usize
    } else {
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_word_is_the_first_eight_bytes_zero_padded() {
        let text = b"abcdefghijkl";
        for len in 0..=text.len() {
            let mut word = [0u8; 8];
            let n = len.min(8);
            word[..n].copy_from_slice(&text[..n]);
            assert_eq!(prefix_word(&text[..len]), u64::from_le_bytes(word), "{len}");
        }
    }

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
                    let i = find(&b, start, StringSpecial);
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
        assert_eq!(find(&b, 0, StringSpecial), b.len());
        let utf8 = "héllo wörld ünïcode".as_bytes();
        assert_eq!(find(utf8, 0, NeedsEscape), utf8.len());
        assert_eq!(find(utf8, 0, StringSpecial), 1);
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
                        find(&b, start, StringSpecial),
                        expect,
                        "len {len} pos {pos} start {start}"
                    );
                }
            }
            let b = vec![b'x'; len];
            assert_eq!(find(&b, 0, NeedsEscape), len);
        }
    }

    /// Every byte value in every position of slices up to 70 bytes (past four blocks, so
    /// whole blocks, the overlapping last block, and the word scan of short slices all
    /// run), from starts around it, for every class, against a byte-by-byte reference; the
    /// word scan alone too, as other CPUs run it for every slice.
    #[test]
    fn agrees_with_a_bytewise_scan_for_every_byte_value() {
        let escape = |c: u8| c == b'"' || c == b'\\' || c < 0x20;
        let special = |c: u8| escape(c) || c >= 0x80;
        let reference = |b: &[u8], start: usize, class: &dyn Fn(u8) -> bool| {
            (start..b.len()).find(|&i| class(b[i])).unwrap_or(b.len())
        };
        type Scan = fn(&[u8], usize) -> usize;
        let escapes: [Scan; 2] = [
            |b, i| find(b, i, NeedsEscape),
            |b, i| find_words(b, i, NeedsEscape),
        ];
        let specials: [Scan; 2] = [
            |b, i| find(b, i, StringSpecial),
            |b, i| find_words(b, i, StringSpecial),
        ];
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 70] {
            for pos in 0..len {
                for c in 0..=255u8 {
                    let mut b = vec![b'a'; len];
                    b[pos] = c;
                    // Callers may start past the end (after an escape at the very end).
                    for start in [
                        0,
                        pos.saturating_sub(1),
                        pos,
                        pos + 1,
                        len,
                        len + 1,
                        len + 17,
                    ] {
                        for scan in escapes {
                            assert_eq!(
                                scan(&b, start),
                                reference(&b, start, &escape),
                                "NeedsEscape: {c:#x} at {pos} of {len} from {start}"
                            );
                        }
                        for scan in specials {
                            assert_eq!(
                                scan(&b, start),
                                reference(&b, start, &special),
                                "StringSpecial: {c:#x} at {pos} of {len} from {start}"
                            );
                        }
                    }
                }
            }
        }
    }
}
