//! Writing text as a JSON string, byte-for-byte what `serde_json` writes, refusing what a
//! receiver cannot store, and checking UTF-8 in the same pass when the text comes as bytes.

use super::json::utf8_char_end;
use super::swar::{NeedsEscape, Stop, StringSpecial, find};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Why a string could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadText {
    /// It holds U+0000, which Postgres `text` and `jsonb` refuse.
    Nul,
    /// It is not valid UTF-8.
    Utf8,
}

impl BadText {
    /// The reason an [`Error::InvalidField`](crate::Error::InvalidField) gives.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            BadText::Nul => "contains U+0000 (NUL), which Postgres cannot store",
            BadText::Utf8 => "is not valid UTF-8",
        }
    }
}

/// Appends `s` escaped as the inside of a JSON string, without the quotes: the typed
/// encoder's key constants carry them. With `check_utf8` it validates `s` as it goes (one
/// pass over bytes from C, Go or Python); without, `s` must come from a `&str`. Does not
/// allocate when `out` has room. On error `out` holds part of `s`.
#[inline]
pub(crate) fn write_str_body(out: &mut Vec<u8>, s: &[u8], check_utf8: bool) -> Result<(), BadText> {
    if check_utf8 {
        write_checked(out, s)
    } else {
        write_trusted(out, s)
    }
}

#[inline(always)]
fn write_trusted(out: &mut Vec<u8>, b: &[u8]) -> Result<(), BadText> {
    let at = copy_then_find(out, b, NeedsEscape);
    if at == b.len() {
        return Ok(());
    }
    escape_trusted(out, b, at)
}

/// The rest of [`write_trusted`] from `b[at]`, a byte to escape, out of line: few strings
/// get here.
#[cold]
#[inline(never)]
fn escape_trusted(out: &mut Vec<u8>, b: &[u8], at: usize) -> Result<(), BadText> {
    let mut start = at;
    loop {
        let i = find(b, start, NeedsEscape);
        out.extend_from_slice(&b[start..i]);
        let Some(&c) = b.get(i) else {
            return Ok(());
        };
        write_escape(out, c)?;
        start = i + 1;
    }
}

#[inline(always)]
fn write_checked(out: &mut Vec<u8>, b: &[u8]) -> Result<(), BadText> {
    let at = copy_then_find(out, b, StringSpecial);
    if at == b.len() {
        return Ok(());
    }
    check_rest(out, b, at)
}

/// The rest of [`write_checked`] from `b[at]`, a byte to escape or to check, out of line.
#[cold]
#[inline(never)]
fn check_rest(out: &mut Vec<u8>, b: &[u8], at: usize) -> Result<(), BadText> {
    let (mut start, mut i) = (at, at);
    loop {
        // Plain ASCII runs are copied whole; a non-ASCII character is checked and stays in
        // the run; only escapes interrupt it.
        i = find(b, i, StringSpecial);
        let Some(&c) = b.get(i) else {
            out.extend_from_slice(&b[start..]);
            return Ok(());
        };
        if c >= 0x80 {
            i = utf8_char_end(b, i).ok_or(BadText::Utf8)?;
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        write_escape(out, c)?;
        i += 1;
        start = i;
    }
}

/// Appends `b` as it is and returns the index in `b` of its first byte of the class
/// `stop` (`b.len()` if none), with `out` cut back to hold `b` only up to there.
///
/// Most strings hold nothing to escape, and most are short (a name, a code). Looked at
/// where they land in `out`, a string under 16 bytes is the tail of one 16-byte block whose
/// first bytes are what `out` already held, masked off ([`find`]'s tail); looked at alone,
/// it went to the out-of-line word loop, which 19 of a full CADF event's 29 strings did:
/// `record_cadf` of that event (`scripts/instructions cadf`) took 7 135 → ~6 150
/// instructions with this and the rest of escaping out of line.
#[inline(always)]
fn copy_then_find(out: &mut Vec<u8>, b: &[u8], stop: impl Stop) -> usize {
    let start = out.len();
    out.extend_from_slice(b);
    let at = find(out, start, stop) - start;
    if at < b.len() {
        out.truncate(start + at);
    }
    at
}

#[inline]
fn write_escape(out: &mut Vec<u8>, c: u8) -> Result<(), BadText> {
    let short = match c {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        0 => return Err(BadText::Nul),
        _ => {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 0xf)],
            ]);
            return Ok(());
        }
    };
    out.extend_from_slice(&[b'\\', short]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(s: &[u8], check: bool) -> Result<String, BadText> {
        let mut out = vec![b'"'];
        write_str_body(&mut out, s, check)?;
        out.push(b'"');
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}",
            "ünïcödé — 日本語 🎉",
            "a long string that spans several eight byte words \" in the middle",
        ] {
            for check in [false, true] {
                assert_eq!(
                    ours(s.as_bytes(), check).unwrap(),
                    serde_json::to_string(s).unwrap(),
                    "{s:?}"
                );
            }
        }
    }

    #[test]
    fn nul_is_refused() {
        for check in [false, true] {
            assert_eq!(ours(b"a\0b", check), Err(BadText::Nul));
            assert_eq!(ours(b"\0", check), Err(BadText::Nul));
        }
    }

    #[test]
    fn invalid_utf8_is_refused_when_checking() {
        for bad in [
            &b"\xff"[..],
            b"ok \xc3",
            b"\xc3\x28",
            b"\xed\xa0\x80",
            b"\xe0\x80\x80",
            b"\xf4\x90\x80\x80",
            b"a long plain prefix then \xc0\xaf",
        ] {
            assert_eq!(ours(bad, true), Err(BadText::Utf8), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_string_matches_serde_json(s in any::<String>()) {
            let expect = if s.contains('\0') {
                Err(BadText::Nul)
            } else {
                Ok(serde_json::to_string(&s).unwrap())
            };
            prop_assert_eq!(ours(s.as_bytes(), false), expect.clone());
            prop_assert_eq!(ours(s.as_bytes(), true), expect);
        }

        /// What `out` holds already (keys are full of quotes) never counts as the string's:
        /// short strings are looked at in a block that starts in those bytes.
        #[test]
        fn what_out_holds_before_is_kept_and_not_looked_at(
            before in prop::collection::vec(prop::sample::select(vec![b'"', b'\\', 0, 0x1f, b'a', 0xff]), 0..40),
            s in "[\\x01-\\x7f\u{e9}]{0,40}",
        ) {
            for check in [false, true] {
                let mut out = before.clone();
                write_str_body(&mut out, s.as_bytes(), check).unwrap();
                let json = serde_json::to_string(&s).unwrap();
                prop_assert_eq!(&out[..before.len()], &before[..]);
                prop_assert_eq!(&out[before.len()..], &json.as_bytes()[1..json.len() - 1]);
            }
        }

        #[test]
        fn ascii_with_controls_matches_serde_json(s in "[\\x01-\\x7f]{0,64}") {
            prop_assert_eq!(ours(s.as_bytes(), true).unwrap(), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn checking_agrees_with_the_standard_library(b in prop::collection::vec(any::<u8>(), 0..64)) {
            let valid = std::str::from_utf8(&b).is_ok();
            match ours(&b, true) {
                Ok(_) => prop_assert!(valid),
                Err(BadText::Utf8) => prop_assert!(!valid),
                Err(BadText::Nul) => prop_assert!(b.contains(&0)),
            }
        }
    }
}
