//! The thread-local message of the last failed call, and `auditbuf_last_error`.

use std::cell::RefCell;
use std::ffi::c_char;
use std::fmt::{Display, Write};

use auditbuf::Error;

use crate::status::auditbuf_status;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `message` as this thread's last error and returns `status`. Reuses the
/// thread's buffer, so a rejected call does not allocate once it has grown.
pub(crate) fn fail(status: auditbuf_status, message: impl Display) -> auditbuf_status {
    LAST_ERROR.with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            last.clear();
            let _ = write!(last, "{message}");
        }
    });
    status
}

/// Prefixes this thread's last error with `events[i]: ` (a batch's failing event) and
/// returns `status`.
pub(crate) fn at_index(status: auditbuf_status, i: usize) -> auditbuf_status {
    LAST_ERROR.with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            let message = std::mem::take(&mut *last);
            let _ = write!(last, "events[{i}]: {message}");
        }
    });
    status
}

/// Names element `i` of `list` in this thread's last error, which names a field of one of
/// them — `initiator.addresses.url` becomes `initiator.addresses[2].url` — and returns
/// `status`. The list's name must stand there whole: not inside a longer one
/// (`attachments` in `initiator.attachments`).
pub(crate) fn at_element(status: auditbuf_status, list: &str, i: usize) -> auditbuf_status {
    LAST_ERROR.with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            let whole = |at: usize| {
                let before = last[..at].chars().next_back();
                !before.is_some_and(|c| c == '.' || c.is_alphanumeric())
                    && last[at + list.len()..].starts_with('.')
            };
            if let Some(at) = last
                .match_indices(list)
                .map(|(at, _)| at)
                .find(|&at| whole(at))
            {
                last.insert_str(at + list.len(), &format!("[{i}]"));
            }
        }
    });
    status
}

/// The status of `error`, its message kept as this thread's last error.
pub(crate) fn status_of(error: &Error) -> auditbuf_status {
    fail(error.code(), error)
}

/// The status of a call's result.
pub(crate) fn status(result: Result<(), Error>) -> auditbuf_status {
    match result {
        Ok(()) => crate::AUDITBUF_OK,
        Err(e) => status_of(&e),
    }
}

/// Copies the message of the last call on this thread that did not return `AUDITBUF_OK`
/// (an error or the `AUDITBUF_NOT_DURABLE` warning) into `buf`, NUL-terminated, truncated to
/// `len - 1` bytes at a character boundary, and returns the message's full length in
/// bytes (without the NUL), like `snprintf`: a result `>= len` means it was cut. Returns
/// 0 when no call on this thread has failed yet. Successful calls leave the message as
/// it was. `buf` may be NULL when `len` is 0, to ask for the length. The message is
/// UTF-8 and names the field, limit or file involved, e.g.
/// `"event of 70000 bytes is over the max_event_bytes limit of 65536"`. Thread-safe: each
/// thread has its own.
///
/// # Safety
/// `buf` must be NULL or point to `len` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn auditbuf_last_error(buf: *mut c_char, len: usize) -> usize {
    let result = std::panic::catch_unwind(|| {
        LAST_ERROR.with(|last| {
            let Ok(last) = last.try_borrow() else {
                return 0;
            };
            // Safety: as this function's.
            unsafe { copy_text(&last, buf, len) }
        })
    });
    result.unwrap_or(0)
}

/// Copies `text` into `buf` NUL-terminated, cut to `len - 1` bytes at a character
/// boundary, and returns its full length, like `snprintf`. Nothing is written when `buf` is
/// NULL or `len` is 0.
///
/// # Safety
/// `buf` must be NULL or point to `len` writable bytes, not inside `text`.
pub(crate) unsafe fn copy_text(text: &str, buf: *mut c_char, len: usize) -> usize {
    if !buf.is_null() && len > 0 {
        let mut n = text.len().min(len - 1);
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        // Safety: `buf` has `len` writable bytes (the caller's promise) and `n < len`; the
        // text is our own memory, so the two cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last(len: usize) -> (usize, String) {
        let mut buf = vec![b'x' as c_char; len];
        // Safety: `buf` has `len` bytes.
        let n = unsafe { auditbuf_last_error(buf.as_mut_ptr(), len) };
        let text = buf
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect::<Vec<u8>>();
        (n, String::from_utf8(text).unwrap())
    }

    #[test]
    fn an_element_is_named_in_the_message_where_its_list_stands_whole() {
        std::thread::spawn(|| {
            fail(19, "field initiator.attachments.name: is not valid UTF-8");
            at_element(19, "attachments", 4);
            assert_eq!(
                last(100).1,
                "field initiator.attachments.name: is not valid UTF-8"
            );
            at_element(19, "initiator.attachments", 4);
            assert_eq!(
                last(100).1,
                "field initiator.attachments[4].name: is not valid UTF-8"
            );
            fail(18, "required field attachments.typeURI is empty");
            at_element(18, "attachments", 0);
            assert_eq!(
                last(100).1,
                "required field attachments[0].typeURI is empty"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn messages_are_copied_truncated_and_measured() {
        std::thread::spawn(|| {
            // Safety: NULL with length 0 asks for the length.
            assert_eq!(unsafe { auditbuf_last_error(std::ptr::null_mut(), 0) }, 0);
            assert_eq!(fail(12, "pipeline is closed"), 12);
            assert_eq!(last(100), (18, "pipeline is closed".to_owned()));
            assert_eq!(last(9), (18, "pipeline".to_owned()));
            assert_eq!(last(1), (18, String::new()));
            fail(15, "zoë");
            // "zo" + the two bytes of "ë": a cut inside it keeps "zo".
            assert_eq!(last(4), (4, "zo".to_owned()));
            // Safety: NULL with length 0 asks for the length.
            assert_eq!(unsafe { auditbuf_last_error(std::ptr::null_mut(), 0) }, 4);
        })
        .join()
        .unwrap();
    }
}
