//! Read buffers lent by the thread that reads. One reactor thread serves every jail of
//! the daemon, so a handful of buffers serve them all, where one buffer per source kept
//! 20 KiB per idle jail.

use std::cell::RefCell;

/// Size of a lent buffer: reads of this size keep a catch-up cheap in system calls, and
/// it holds many inotify events at once.
pub(crate) const SCRATCH_BYTES: usize = 16 * 1024;

/// Buffers kept for the next reads of this thread (a read lends at most two at a time).
const KEPT: usize = 2;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of [`SCRATCH_BYTES`] for this thread's use until [`give_back`].
pub(crate) fn lend() -> Vec<u8> {
    POOL.with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| vec![0u8; SCRATCH_BYTES])
}

/// Returns a buffer lent by [`lend`] (an empty one, never lent, is dropped).
pub(crate) fn give_back(buffer: Vec<u8>) {
    if buffer.len() != SCRATCH_BYTES {
        return;
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < KEPT {
            pool.push(buffer);
        }
    });
}
