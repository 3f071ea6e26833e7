//! Where something sits in a configuration document, read back from its text: the full
//! path of a duplicate key, and a number as it was written. serde's errors name neither —
//! a duplicate found by the byte scan is known only by its offset, and a number too large
//! for its field reaches serde as a float (`1.8446744073709552e+19`) — so the document is
//! walked again, once, when such an error is reported.

use crate::Error;

/// The path of the key whose opening quote is at byte `at` of `text`, in the form serde's
/// errors use (`params.path`, `sink.headers.a`, `categories[2].x`), or `None` if no key
/// starts there.
pub(crate) fn key_path_at(text: &str, at: usize) -> Option<String> {
    let mut found = None;
    walk(text, |item| match item {
        Item::Key { start, path } if start == at => {
            found = Some(path);
            true
        }
        _ => start_of(&item) > at,
    });
    found
}

/// The number at `path` in `text` (a path as serde's errors write it), as written.
pub(crate) fn number_at<'t>(text: &'t str, path: &str) -> Option<&'t str> {
    let mut found = None;
    walk(text, |item| match item {
        Item::Number { span, path: p } if p == path => {
            found = text.get(span.0..span.1);
            true
        }
        _ => false,
    });
    found
}

/// Rewords serde's "invalid type: floating point `…`, expected u64" for an integer field
/// given a number it cannot hold (beyond its type, or with a fraction or exponent): the
/// number as the user wrote it and the field's limit, not a float the user never wrote.
/// `text` is the document the error's field is a path in, once `prefix` and its dot are
/// taken off the field. Any other error is returned as it is.
pub(crate) fn number_as_written(e: Error, text: &str, prefix: &str) -> Error {
    let Error::Config(c) = &e else {
        return e;
    };
    let Some(rest) = c.reason.strip_prefix("invalid type: floating point `") else {
        return e;
    };
    let Some(max) = rest
        .split_once("`, expected ")
        .and_then(|(_, expected)| type_max(expected))
    else {
        return e;
    };
    let path = if prefix.is_empty() {
        Some(c.field.as_str())
    } else {
        c.field
            .strip_prefix(prefix)
            .and_then(|p| p.strip_prefix('.'))
    };
    // The field's own range may be narrower (`queue_capacity`): a number it can hold is
    // then checked against that range, and the error says so.
    let reason = match path.and_then(|p| number_at(text, p)) {
        Some(written) if written.starts_with('-') => {
            format!("is {written}, out of range: must not be negative")
        }
        Some(written) if written.bytes().all(|b| b.is_ascii_digit()) => {
            // The limit named is the field's own (the pipeline document's settings); where
            // it is not known here (a store's or a sink's), none is named: the type's would
            // mislead, a field's range being narrower.
            match prefix
                .is_empty()
                .then(|| super::limits::largest(&c.field))
                .flatten()
            {
                Some(limit) => format!("is {written}, must be at most {limit}"),
                None => format!("is {written}, too large for this field"),
            }
        }
        Some(written) => format!(
            "is {written}, must be a whole number written in digits, without a fraction or \
             exponent"
        ),
        None => format!("is not a whole number the field can hold (0 to {max})"),
    };
    Error::config(c.field.clone(), reason)
}

/// The largest value of the unsigned type serde names after "expected ".
fn type_max(expected: &str) -> Option<u64> {
    let name = expected.split_whitespace().next()?;
    Some(match name {
        "u8" => u8::MAX.into(),
        "u16" => u16::MAX.into(),
        "u32" => u32::MAX.into(),
        "u64" => u64::MAX,
        "usize" => usize::MAX as u64,
        _ => return None,
    })
}

enum Item {
    Key { start: usize, path: String },
    Number { span: (usize, usize), path: String },
    Other { start: usize },
}

fn start_of(item: &Item) -> usize {
    match item {
        Item::Key { start, .. } | Item::Other { start } => *start,
        Item::Number { span, .. } => span.0,
    }
}

enum Frame {
    Object(Option<String>),
    Array(usize),
}

/// Calls `visit` with every key and scalar value of `text` in order, until it returns
/// `true` or the text ends. Lenient: it reads what the strict reading already accepted up
/// to the error being explained, and stops quietly at anything it cannot follow.
fn walk(text: &str, mut visit: impl FnMut(Item) -> bool) {
    let b = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        let item_start = i;
        match b[i] {
            b'"' => {
                let Some(end) = string_end(b, i) else {
                    return;
                };
                if expect_key {
                    let Some(key) = text
                        .get(i..end)
                        .and_then(|s| serde_json::from_str::<String>(s).ok())
                    else {
                        return;
                    };
                    let path = join(&stack, Some(&key));
                    if let Some(Frame::Object(current)) = stack.last_mut() {
                        *current = Some(key);
                    }
                    expect_key = false;
                    if visit(Item::Key { start: i, path }) {
                        return;
                    }
                } else if visit(Item::Other { start: i }) {
                    return;
                }
                i = end;
                continue;
            }
            b'-' | b'0'..=b'9' => {
                let end = b[i..]
                    .iter()
                    .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .map_or(b.len(), |n| i + n);
                let path = join(&stack, None);
                if visit(Item::Number {
                    span: (i, end),
                    path,
                }) {
                    return;
                }
                i = end;
                continue;
            }
            b'{' => {
                stack.push(Frame::Object(None));
                expect_key = true;
            }
            b'[' => {
                stack.push(Frame::Array(0));
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object(_)) => expect_key = true,
                Some(Frame::Array(n)) => *n += 1,
                None => {}
            },
            b':' => expect_key = false,
            _ => {}
        }
        if !b[i].is_ascii_whitespace() && visit(Item::Other { start: item_start }) {
            return;
        }
        i += 1;
    }
}

/// The byte after the closing quote of the string opening at `start`.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The path of the value the walk is in (or of `key` in the innermost object), as
/// serde_path_to_error writes it: keys joined by dots, indexes in brackets.
fn join(stack: &[Frame], key: Option<&str>) -> String {
    let mut path = String::new();
    let (outer, innermost) = match key {
        // A key's own object contributes the key, not the member before it.
        Some(_) => (stack.split_last().map_or(&[][..], |(_, rest)| rest), key),
        None => (stack, None),
    };
    for frame in outer {
        match frame {
            Frame::Object(Some(k)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object(None) => {}
            Frame::Array(n) => path.push_str(&format!("[{n}]")),
        }
    }
    if let Some(k) = innermost {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(k);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_by_their_whole_path() {
        let text = r#"{"type":"file","params":{"path":"/a","path":"/b"}}"#;
        let at = text.rfind("\"path\"").unwrap();
        assert_eq!(key_path_at(text, at).as_deref(), Some("params.path"));
        let text = r#"{"a":[{"x":1},{"b":{"c":1,"c":2}}]}"#;
        let at = text.rfind("\"c\"").unwrap();
        assert_eq!(key_path_at(text, at).as_deref(), Some("a[1].b.c"));
        let text = r#"{"k\"q":{"z":1,"z":2}}"#;
        let at = text.rfind("\"z\"").unwrap();
        assert_eq!(key_path_at(text, at).as_deref(), Some("k\"q.z"));
        assert_eq!(key_path_at(text, 3), None);
    }

    #[test]
    fn numbers_are_found_as_written() {
        let text = r#"{"a":{"n":1.8e19},"b":[1, 18446744073709551616],"s":"9"}"#;
        assert_eq!(number_at(text, "a.n"), Some("1.8e19"));
        assert_eq!(number_at(text, "b[1]"), Some("18446744073709551616"));
        assert_eq!(number_at(text, "s"), None);
        assert_eq!(number_at(text, "c"), None);
    }
}
