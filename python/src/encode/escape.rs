//! JSON strings, quotes and escapes included: runs of plain bytes are found eight at a time
//! and copied whole.

/// What follows a backslash for each byte that must be escaped; 0 for none, `u` for
/// `\u00XX`.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Whether any of the eight bytes of `w` must be escaped: below 0x20, `"` or a
/// backslash (exact: the "has a byte less than n" bit trick, on each byte's high bit).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (below_space | quote | backslash) & HIGH != 0
}

/// Writes `s` (UTF-8) as a JSON string, quotes included; true if it holds U+0000 (written
/// as `\u0000`, for the caller to refuse). Runs of plain bytes are found eight at a time
/// and copied whole.
#[inline]
#[must_use]
pub(crate) fn write_str(out: &mut Vec<u8>, s: &[u8]) -> bool {
    let mut nul = false;
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        if let Some(chunk) = s.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if !word_needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = s[i];
        let e = ESCAPE[usize::from(b)];
        i += 1;
        if e == 0 {
            continue;
        }
        out.extend_from_slice(&s[start..i - 1]);
        nul |= b == 0;
        if e == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', e]);
        }
        start = i;
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
    nul
}
