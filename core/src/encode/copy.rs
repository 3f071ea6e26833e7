//! Copies a typed event's text fields into its slot and looks at every byte on the way,
//! for U+0000 (and, for bytes from C, Go or Python, for anything not ASCII).
//!
//! The capture used to copy the fields (`memcpy`, a call per field) and then scan the copy
//! in the slot. That scan read lines the copy had just written, in 16-byte loads that
//! straddled the copy's stores: the CPU cannot forward such stores to the load, so each
//! load waited until the stores reached the cache, which for a slot last touched by the
//! flush thread means until its lines came back from the other CPU. One `pcmpeqb` of that
//! scan held 9.5 % of `hot_path`'s samples for a typed `record` (a third of the call's
//! own). Here each block is compared in the register it was loaded into from the caller's
//! memory, and stored from there: nothing is read back.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{
    __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
    _mm_set1_epi8, _mm_setzero_si128, _mm_storeu_si128,
};

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Appends `fields` to `out`, one after the other, and tells whether any byte of them is
/// U+0000 or, with `WIDE`, 0x80 or above. A `true` is exact (a byte of that kind is
/// there), and so is a `false`. The caller reserves room for them all (the capture does,
/// for its header and every field); a field that finds none is appended and looked at
/// the plain way.
#[inline(always)]
pub(crate) fn append_flagging<'a, const WIDE: bool>(
    out: &mut Vec<u8>,
    fields: impl Iterator<Item = &'a [u8]>,
) -> bool {
    let mut flagged = false;
    for field in fields {
        let len = out.len();
        match out.spare_capacity_mut().get_mut(..field.len()) {
            Some(dst) => {
                flagged |= copy_one::<WIDE>(field, dst);
                // SAFETY: `copy_one` wrote the `field.len()` bytes after `len`, within the
                // spare capacity (`get_mut` checked the range).
                #[allow(unsafe_code)]
                unsafe {
                    out.set_len(len + field.len());
                }
            }
            // Not when the caller reserved room, as it should; correct all the same.
            None => {
                flagged |= field.iter().any(|&c| c == 0 || (WIDE && c >= 0x80));
                out.extend_from_slice(field);
            }
        }
    }
    flagged
}

/// Copies `src` into `dst` (of the same length) and tells whether it holds a byte
/// [`append_flagging`] looks for.
#[inline(always)]
fn copy_one<const WIDE: bool>(src: &[u8], dst: &mut [std::mem::MaybeUninit<u8>]) -> bool {
    let n = src.len();
    debug_assert_eq!(n, dst.len());
    let s = src.as_ptr();
    let d = dst.as_mut_ptr().cast::<u8>();
    #[cfg(target_arch = "x86_64")]
    if n >= 16 {
        // SAFETY: every load reads 16 bytes at `s + i` with `i + 16 <= n`, every store
        // writes 16 at `d + i` likewise; `src` and `dst` are `n` bytes long. The last
        // block overlaps the one before rather than running past the end. SSE2 is part of
        // x86-64 itself.
        #[allow(unsafe_code)]
        unsafe {
            let flag = |v: __m128i| {
                if WIDE {
                    // Signed `c < 1`: 0, and every byte from 0x80 (negative).
                    _mm_cmplt_epi8(v, _mm_set1_epi8(1))
                } else {
                    _mm_cmpeq_epi8(v, _mm_setzero_si128())
                }
            };
            let mut seen = _mm_setzero_si128();
            let mut i = 0;
            while i + 16 < n {
                let v = _mm_loadu_si128(s.add(i).cast());
                _mm_storeu_si128(d.add(i).cast(), v);
                seen = _mm_or_si128(seen, flag(v));
                i += 16;
            }
            let v = _mm_loadu_si128(s.add(n - 16).cast());
            _mm_storeu_si128(d.add(n - 16).cast(), v);
            seen = _mm_or_si128(seen, flag(v));
            return _mm_movemask_epi8(seen) != 0;
        }
    }
    // SAFETY: as above, with words: every access is `size` bytes at an offset at most
    // `n - size` of slices `n` bytes long, the second of a pair overlapping the first.
    #[allow(unsafe_code)]
    unsafe {
        if n >= 8 {
            let mut seen = 0;
            let mut i = 0;
            while i + 8 < n {
                let w = s.add(i).cast::<u64>().read_unaligned();
                d.add(i).cast::<u64>().write_unaligned(w);
                seen |= flag_word::<WIDE>(w);
                i += 8;
            }
            let w = s.add(n - 8).cast::<u64>().read_unaligned();
            d.add(n - 8).cast::<u64>().write_unaligned(w);
            return (seen | flag_word::<WIDE>(w)) != 0;
        }
        if n >= 4 {
            let a = s.cast::<u32>().read_unaligned();
            let b = s.add(n - 4).cast::<u32>().read_unaligned();
            d.cast::<u32>().write_unaligned(a);
            d.add(n - 4).cast::<u32>().write_unaligned(b);
            // Eight bytes of the field's own (some twice): no padding byte to mistake for
            // U+0000.
            return flag_word::<WIDE>(u64::from(a) | u64::from(b) << 32) != 0;
        }
        if n > 0 {
            // 1 to 3 bytes: the first, the middle and the last cover them all.
            let (a, b, c) = (*s, *s.add(n / 2), *s.add(n - 1));
            *d = a;
            *d.add(n / 2) = b;
            *d.add(n - 1) = c;
            let nul = a == 0 || b == 0 || c == 0;
            return nul || (WIDE && (a | b | c) >= 0x80);
        }
    }
    false
}

/// Whether word `w` has a zero byte or, with `WIDE`, a byte from 0x80. The zero test's
/// high bits may be set above a real zero byte (borrows), never without one.
#[inline(always)]
fn flag_word<const WIDE: bool>(w: u64) -> u64 {
    let zero = w.wrapping_sub(LO) & !w & HI;
    if WIDE { zero | (w & HI) } else { zero }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends `fields` after four bytes, with room reserved as the capture reserves it,
    /// and checks that without room the answer and the bytes are the same.
    fn flagged<const WIDE: bool>(fields: &[&[u8]]) -> (Vec<u8>, bool) {
        let total: usize = fields.iter().map(|f| f.len()).sum();
        let mut out = Vec::with_capacity(4 + total);
        out.extend_from_slice(b"head");
        let flagged = append_flagging::<WIDE>(&mut out, fields.iter().copied());
        let mut tight = b"head".to_vec();
        tight.shrink_to_fit();
        let without_room = append_flagging::<WIDE>(&mut tight, fields.iter().copied());
        assert_eq!((&tight, without_room), (&out, flagged), "without room");
        (out, flagged)
    }

    #[test]
    fn copies_every_length_and_finds_every_byte_it_looks_for() {
        for n in 0..80 {
            let plain: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            for wide in [false, true] {
                let expect: Vec<u8> = [&b"head"[..], &plain, b"xyz"].concat();
                let fields: [&[u8]; 2] = [&plain, b"xyz"];
                let (out, hit) = if wide {
                    flagged::<true>(&fields)
                } else {
                    flagged::<false>(&fields)
                };
                assert_eq!(out, expect, "n {n}");
                assert!(!hit, "n {n}: plain ASCII flagged");
            }
            for at in 0..n {
                for (byte, nul) in [(0u8, true), (0x80, false), (0xff, false), (0x7f, false)] {
                    let mut field = plain.clone();
                    field[at] = byte;
                    let (out, hit) = flagged::<false>(&[b"ab", &field]);
                    assert_eq!(out, [&b"headab"[..], &field].concat());
                    assert_eq!(hit, nul, "n {n} at {at} byte {byte:#x}");
                    let (out, hit) = flagged::<true>(&[&field, b"c"]);
                    assert_eq!(out, [&b"head"[..], &field, b"c"].concat());
                    assert_eq!(
                        hit,
                        byte == 0 || byte >= 0x80,
                        "wide, n {n} at {at} byte {byte:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_flag_in_one_field_is_not_lost_among_clean_ones() {
        let (_, hit) = flagged::<false>(&[b"clean", b"\0", b"a longer clean field, 32 bytes.."]);
        assert!(hit);
        let (out, hit) = flagged::<true>(&[]);
        assert_eq!((out.as_slice(), hit), (&b"head"[..], false));
    }
}
