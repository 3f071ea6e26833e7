//! Noticing, cheaply, that this process is a `fork()` child of the one that built a
//! pipeline.
//!
//! A child inherits the pipeline's memory but not its flush thread, and shares the
//! parent's open store files and locks: recording there would acknowledge events nobody
//! will send, or write the parent's store behind its back, and waiting there would wait for
//! a thread that does not exist. `getpid()` on every `record` costs a system call (~150 ns
//! on the development machine, half a `record`), so a `pthread_atfork` child handler bumps a
//! generation counter instead, and `record` compares it with the one its pipeline was built
//! in: one load of a line that is never written outside a fork.

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

#[cfg(unix)]
extern "C" fn before_fork() {
    // In the parent, in the forking thread's normal context: thread-locals may be read.
    crate::lanes::before_fork();
}

#[cfg(unix)]
extern "C" fn in_child() {
    // Async-signal-safe: lock-free atomics, nothing else.
    GENERATION.fetch_add(1, Ordering::Relaxed);
    crate::lanes::after_fork();
}

/// The fork generation of this process, registering the child handler on first use.
pub(crate) fn generation() -> u64 {
    REGISTER.call_once(|| {
        #[cfg(unix)]
        #[allow(unsafe_code)]
        // Safety: both are plain `extern "C" fn`s that live as long as the program;
        // `in_child` only does atomic operations, which POSIX allows in a child after
        // fork(), and `before_fork` runs in the parent before it, as any code. The
        // return value only says whether the handler could be registered; without it,
        // `flush`, `close` and the store paths still compare process ids.
        unsafe {
            libc::pthread_atfork(Some(before_fork), None, Some(in_child));
        }
    });
    GENERATION.load(Ordering::Relaxed)
}

/// Whether this process forked from the one whose generation and process id are given.
/// The generation check is the cheap one for `record`; the process id covers a fork the
/// handler could not see (a raw `clone`), on the paths where a system call is affordable.
#[inline]
pub(crate) fn forked_since(born: u64) -> bool {
    GENERATION.load(Ordering::Relaxed) != born
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generation_is_stable_without_a_fork() {
        let g = generation();
        assert!(!forked_since(g));
        assert_eq!(generation(), g);
    }
}
