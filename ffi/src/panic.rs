//! The panic boundary every entry point runs its body in: no panic crosses into C.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::fail;
use crate::status::{AUDITBUF_PANIC, auditbuf_status};

/// Runs `body`; a panic becomes `AUDITBUF_PANIC`, with its message as the last error.
///
/// The body may leave the pipeline's state half-changed by the panic; the core is written
/// so that a panic leaves it usable (no lock is poisoned, counters stay consistent), and
/// treats a panicking sink as a failed send.
#[inline]
pub(crate) fn guard(body: impl FnOnce() -> auditbuf_status) -> auditbuf_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(status) => status,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            fail(AUDITBUF_PANIC, format_args!("auditbuf panicked: {what}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        #[allow(clippy::panic)]
        let status = guard(|| panic!("boom at {}", 3));
        assert_eq!(status, AUDITBUF_PANIC);
        let mut buf = [0 as std::ffi::c_char; 64];
        // Safety: `buf` has 64 bytes.
        let n = unsafe { crate::auditbuf_last_error(buf.as_mut_ptr(), buf.len()) };
        // Safety: auditbuf_last_error NUL-terminates.
        let msg = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(msg.to_str().unwrap(), "auditbuf panicked: boom at 3");
        assert_eq!(n, msg.to_bytes().len());
        assert_eq!(guard(|| 7), 7);
    }
}
