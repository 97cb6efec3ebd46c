//! The one thing std cannot do safely: wait on several descriptors with a timeout.
//! Everything else here is a socket pair used as a wake-up channel.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// The sending half of a wake-up channel (shared by every `Waker` clone).
#[derive(Debug)]
pub(crate) struct WakeSender {
    stream: UnixStream,
}

impl WakeSender {
    pub(crate) fn wake(&self) {
        // A full buffer means a wake-up is already pending, which is all that is needed;
        // any other error cannot be acted on by the waking thread.
        let _ = (&self.stream).write(&[1]);
    }
}

/// The receiving half, owned by the source.
#[derive(Debug)]
pub(crate) struct WakeReceiver {
    stream: UnixStream,
}

impl WakeReceiver {
    /// Consumes pending wake-ups; true if there were any.
    pub(crate) fn drain(&self) -> bool {
        let mut buf = [0u8; 64];
        let mut woken = false;
        loop {
            match (&self.stream).read(&mut buf) {
                Ok(0) => return woken,
                Ok(_) => woken = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return woken,
            }
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

pub(crate) fn wake_channel() -> io::Result<(WakeSender, WakeReceiver)> {
    let (tx, rx) = UnixStream::pair()?;
    tx.set_nonblocking(true)?;
    rx.set_nonblocking(true)?;
    Ok((WakeSender { stream: tx }, WakeReceiver { stream: rx }))
}

/// Waits until one of `fds` is readable or `timeout` passes; returns which are readable
/// (all false on timeout or on an interrupting signal).
pub(crate) fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Round up so that a sub-millisecond remainder does not turn into a busy loop.
    let millis = timeout.as_micros().div_ceil(1000);
    let millis = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
    match poll(&mut pollfds, millis) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
        Err(e) => return Err(e),
    }
    Ok(pollfds
        .iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
        .collect())
}

#[allow(unsafe_code)]
fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<libc::c_int> {
    let count = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"))?;
    // SAFETY: `fds` is a valid, exclusively borrowed slice of `count` pollfd structs for
    // the whole call, and every descriptor in it is kept open by a `BorrowedFd` that
    // outlives this call (see `wait_readable`).
    let n = unsafe { libc::poll(fds.as_mut_ptr(), count, timeout_ms) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n)
    }
}
