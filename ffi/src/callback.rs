//! The callback sink: each batch handed to a C function on the flush thread.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use auditbuf::{Outcome, Sink};

use crate::event::auditbuf_bytes;

/// The callback took the batch: every event is delivered.
pub const AUDITBUF_SINK_DELIVERED: u32 = 0;
/// A passing failure: the pipeline sends the same batch again after a backoff.
pub const AUDITBUF_SINK_RETRY: u32 = 1;
/// The batch's content was refused: the pipeline bisects it, delivers the rest and
/// dead-letters the events refused alone.
pub const AUDITBUF_SINK_REJECTED: u32 = 2;
/// The batch is too large: the pipeline sends it again in halves; a single event still too
/// large is dead-lettered.
pub const AUDITBUF_SINK_TOO_LARGE: u32 = 3;

/// A sink callback: receives one batch of `n` encoded events (each one JSON object, UTF-8,
/// no trailing newline) and returns an `AUDITBUF_SINK_*` outcome; any other value is
/// treated as `AUDITBUF_SINK_RETRY`.
///
/// Called on the pipeline's flush thread, one batch at a time, never concurrently with
/// itself. `events` and the bytes they point to are valid only during the call: copy what
/// you keep. `user` is the pointer given to `auditbuf_pipeline_new_callback`. The callback
/// may call back into its own pipeline, though nothing there waits for the flush thread
/// that runs it: a record call is turned away with `AUDITBUF_FULL` rather than wait for a
/// slot (even under `block`); `auditbuf_flush` and `auditbuf_close` return at once with
/// `AUDITBUF_TIMEOUT` (the close takes effect when the callback returns, by its deadline);
/// `auditbuf_pipeline_free` releases the handle and the callback is not called again (what
/// the pipeline still holds is then kept in its store, or counted as `dropped_shutdown`, or
/// `failed` once its retries run out).
pub type auditbuf_sink_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, events: *const auditbuf_bytes, n: usize) -> u32>;

/// The callback and its user data, until the handle is freed.
struct Target {
    callback: unsafe extern "C" fn(*mut c_void, *const auditbuf_bytes, usize) -> u32,
    user: *mut c_void,
}

// Safety: the caller of `auditbuf_pipeline_new_callback` promises that the callback may be
// called with `user` from the flush thread (documented there); the pointer is only passed
// back to that callback.
unsafe impl Send for Target {}

/// Shared by the sink (on the flush thread) and the handle: once the handle is freed the
/// callback is never called again, even if the flush thread outlives the handle (a
/// `close` whose deadline passed while the callback hung).
#[derive(Default)]
pub(crate) struct Gate {
    target: Mutex<Option<Target>>,
    /// Set by a handle freed from inside the callback, which holds `target`'s lock.
    shut: AtomicBool,
}

impl Gate {
    /// Stops all further calls; waits for a call in progress to return, unless `no_wait`:
    /// the caller is that call (the handle freed by its own callback), or a `fork()` child,
    /// where a call the parent's flush thread was making when the process forked holds the
    /// lock for good (no thread is left to release it).
    pub(crate) fn shut(&self, no_wait: bool) {
        self.shut.store(true, Ordering::SeqCst);
        if !no_wait {
            *self.target.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

/// The sink handed to the pipeline.
pub(crate) struct CallbackSink {
    gate: Arc<Gate>,
    /// Reused for every batch: no allocation per send once it has grown.
    views: Vec<auditbuf_bytes>,
}

// Safety: `views` holds pointers into the batch only during `send`; it is cleared before
// `send` returns, so moving the sink to the flush thread moves no live pointer.
unsafe impl Send for CallbackSink {}

impl CallbackSink {
    pub(crate) fn new(
        callback: unsafe extern "C" fn(*mut c_void, *const auditbuf_bytes, usize) -> u32,
        user: *mut c_void,
    ) -> (Self, Arc<Gate>) {
        let gate = Arc::new(Gate {
            target: Mutex::new(Some(Target { callback, user })),
            shut: AtomicBool::new(false),
        });
        let sink = CallbackSink {
            gate: Arc::clone(&gate),
            views: Vec::new(),
        };
        (sink, gate)
    }
}

impl Sink for CallbackSink {
    fn send(&mut self, batch: &[&[u8]]) -> Outcome {
        let target = self
            .gate
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(target) = target
            .as_ref()
            .filter(|_| !self.gate.shut.load(Ordering::SeqCst))
        else {
            return Outcome::retry("the pipeline's handle was freed; the callback is gone");
        };
        self.views.clear();
        self.views.extend(batch.iter().map(|e| auditbuf_bytes {
            ptr: e.as_ptr(),
            len: e.len(),
        }));
        let views = &self.views;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            // Safety: the callback and `user` are the caller's, valid until the handle is
            // freed (we hold the gate, so it is not yet); `views` holds `batch.len()`
            // views of bytes alive for this call.
            unsafe { (target.callback)(target.user, views.as_ptr(), views.len()) }
        }));
        self.views.clear();
        match outcome {
            Ok(AUDITBUF_SINK_DELIVERED) => Outcome::Delivered,
            Ok(AUDITBUF_SINK_RETRY) => Outcome::retry("the callback asked to retry"),
            Ok(AUDITBUF_SINK_REJECTED) => Outcome::rejected("refused by the callback"),
            Ok(AUDITBUF_SINK_TOO_LARGE) => Outcome::TooLarge {
                reason: "too large for the callback".to_owned(),
            },
            Ok(other) => Outcome::retry(format!(
                "the callback returned {other}, not an AUDITBUF_SINK_* outcome; retrying"
            )),
            Err(_) => Outcome::retry("the callback panicked; retrying"),
        }
    }

    /// The callback's `AUDITBUF_SINK_REJECTED` is its judgement of the events: it has no
    /// answer to tell "refuses everything" from "refuses each" (it returns
    /// `AUDITBUF_SINK_RETRY` for that).
    fn rejections_are_final(&self) -> bool {
        true
    }
}
