//! Checked conversions of the raw arguments C hands over: NULL and lengths are checked
//! here, once, so the entry points stay small.

use crate::error::fail;
use crate::status::{AUDITBUF_INVALID_PARAMETER, AUDITBUF_NULL_PARAMETER, auditbuf_status};

/// The `len` bytes at `ptr`. NULL is `AUDITBUF_NULL_PARAMETER` naming `what`.
///
/// # Safety
/// `ptr` must be NULL or valid for reads of `len` bytes for `'a`.
#[inline]
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], auditbuf_status> {
    if ptr.is_null() {
        return Err(null(what));
    }
    check_len(len, what)?;
    // Safety: non-NULL, `len` readable bytes (the caller's promise), `len <= isize::MAX`.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The buffer a batch or a flat event's spans point into: like [`bytes`], except that NULL
/// with a length of 0 is an empty buffer (a batch of no events, an event of no strings).
///
/// # Safety
/// `ptr` must be NULL or valid for reads of `len` bytes for `'a`.
#[inline]
pub(crate) unsafe fn buffer<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], auditbuf_status> {
    if ptr.is_null() && len == 0 {
        return Ok(&[]);
    }
    // Safety: as this function's.
    unsafe { bytes(ptr, len, "buf") }
}

/// `n` elements at `ptr`. NULL is `AUDITBUF_NULL_PARAMETER` unless `n` is 0.
///
/// # Safety
/// `ptr` must be NULL or valid for reads of `n` elements for `'a`.
pub(crate) unsafe fn array<'a, T>(
    ptr: *const T,
    n: usize,
    what: &str,
) -> Result<&'a [T], auditbuf_status> {
    if n == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(null(what));
    }
    if n.checked_mul(size_of::<T>())
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(fail(
            AUDITBUF_INVALID_PARAMETER,
            format_args!("{what}: {n} elements cannot be in memory"),
        ));
    }
    // Safety: non-NULL, `n` readable and aligned elements (the caller's promise), size in
    // range (checked above).
    Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
}

/// A list inside a struct (a CADF resource's addresses, an event's attachments): like
/// [`array`], except that NULL with a count is `AUDITBUF_INVALID_PARAMETER`, as a view's
/// NULL `ptr` with a length is: the struct was given, its fields disagree.
///
/// # Safety
/// As [`array`]'s.
pub(crate) unsafe fn list<'a, T>(
    ptr: *const T,
    n: usize,
    what: &str,
) -> Result<&'a [T], auditbuf_status> {
    if ptr.is_null() && n != 0 {
        return Err(fail(
            AUDITBUF_INVALID_PARAMETER,
            format_args!("{what} is NULL with a count of {n}"),
        ));
    }
    // Safety: as this function's.
    unsafe { array(ptr, n, what) }
}

/// The object `ptr` points to. NULL is `AUDITBUF_NULL_PARAMETER` naming `what`.
///
/// # Safety
/// `ptr` must be NULL or point to a valid, aligned `T` for `'a`.
pub(crate) unsafe fn reference<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, auditbuf_status> {
    // Safety: NULL or valid (the caller's promise).
    unsafe { ptr.as_ref() }.ok_or_else(|| null(what))
}

/// The out-parameter `ptr` points to. NULL is `AUDITBUF_NULL_PARAMETER` naming `what`.
///
/// # Safety
/// `ptr` must be NULL or point to a writable, aligned `T` for `'a`, aliased by nothing
/// else during the call.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, auditbuf_status> {
    // Safety: NULL or valid and unaliased (the caller's promise).
    unsafe { ptr.as_mut() }.ok_or_else(|| null(what))
}

/// `AUDITBUF_NULL_PARAMETER`, with a message naming the argument.
pub(crate) fn null(what: &str) -> auditbuf_status {
    fail(AUDITBUF_NULL_PARAMETER, format_args!("{what} is NULL"))
}

fn check_len(len: usize, what: &str) -> Result<(), auditbuf_status> {
    if len > isize::MAX as usize {
        return Err(fail(
            AUDITBUF_INVALID_PARAMETER,
            format_args!("{what}: length {len} cannot be in memory"),
        ));
    }
    Ok(())
}
