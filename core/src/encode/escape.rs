//! Writing a `&str` as a JSON string, byte-for-byte what `serde_json` writes.

use super::swar::{find, needs_escape};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` escaped as the inside of a JSON string, without the quotes: the typed
/// encoder's key constants carry them. Does not allocate when `out` has room.
#[inline]
pub(crate) fn write_str_body(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut start = 0;
    loop {
        let i = find(b, start, needs_escape);
        out.extend_from_slice(&b[start..i]);
        let Some(&c) = b.get(i) else { break };
        write_escape(out, c);
        start = i + 1;
    }
}

fn write_escape(out: &mut Vec<u8>, c: u8) {
    let short = match c {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        _ => {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 0xf)],
            ]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(s: &str) -> String {
        let mut out = vec![b'"'];
        write_str_body(&mut out, s);
        out.push(b'"');
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}",
            "ünïcödé — 日本語 🎉",
            "a long string that spans several eight byte words \" in the middle",
        ] {
            assert_eq!(ours(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn any_string_matches_serde_json(s in any::<String>()) {
            prop_assert_eq!(ours(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn ascii_with_controls_matches_serde_json(s in "[\\x00-\\x7f]{0,64}") {
            prop_assert_eq!(ours(&s), serde_json::to_string(&s).unwrap());
        }
    }
}
