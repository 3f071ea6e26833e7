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

/// Index of the first byte at or after `i` for which `mask` reports interest, scanning
/// whole eight-byte words only; returns the first index whose word was interesting, or where
/// fewer than eight bytes remain. Callers finish byte by byte.
#[inline(always)]
pub(crate) fn skip_plain(b: &[u8], mut i: usize, mask: fn(u64) -> u64) -> usize {
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let m = mask(u64::from_le_bytes(word));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
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
                let i = skip_plain(&b, 0, string_special);
                let expect = first_special_bytewise(&b);
                // skip_plain stops at the special byte, or earlier at the short tail.
                assert!(i <= expect, "special {special:#x} at {pos}: got {i}");
                assert!(i == expect || b.len() - i < 8);
            }
        }
    }

    #[test]
    fn plain_ascii_and_del_are_not_special() {
        let b: Vec<u8> = (0x20u8..0x80)
            .filter(|&c| c != b'"' && c != b'\\')
            .collect();
        let i = skip_plain(&b, 0, string_special);
        assert!(b.len() - i < 8);
        let utf8 = "héllo wörld ünïcode".as_bytes();
        assert!(skip_plain(utf8, 0, needs_escape) + 8 > utf8.len());
    }
}
