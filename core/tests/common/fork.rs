//! Running a closure in a real `fork()` child.

/// Forks; the child runs `child` and exits with its status (0: as expected) without
/// running any destructor or exit handler of the parent's.
pub(crate) fn in_forked_child(child: impl FnOnce() -> i32) -> i32 {
    // Safety: the test process has other threads; the child runs only `child`, on this
    // thread, which takes no lock they could have held at the fork but the allocator's
    // (which glibc resets in the child), and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(99);
        // Safety: ends the child at once, as a forked child must.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // Safety: waits for the child just forked; `status` outlives the call.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status), "the child did not exit: {status}");
    libc::WEXITSTATUS(status)
}
