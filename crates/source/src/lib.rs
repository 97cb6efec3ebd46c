//! Log sources: where a jail's lines come from. Here that is [`FileSource`], which follows
//! a set of `logpath` glob patterns through rotation; the systemd journal reader
//! (`rampart-journal`: entries with their own timestamps, [`Position::Journal`]) sits
//! behind the same [`LogSource`] trait, waking its `wait` through [`wake_channel`].
//!
//! Design points:
//!
//! - **The caller drives, nothing blocks.** Reading hands complete lines to a sink
//!   (bytes, line end removed; decoding is the caller's) and may be stopped after any
//!   line by the sink's [`ControlFlow::Break`] (a reactor bounds each jail's turn that
//!   way). A source says what to wait for: descriptors ([`LogSource::poll_fds`]:
//!   inotify, its wake-up channel) and a deadline ([`LogSource::poll_deadline`]:
//!   polling, sweeps, retries); [`LogSource::poll`] then says, without blocking, whether
//!   a read is due. One thread can so wait on the sources of every jail in one `poll`.
//!   `wait` is the same for a caller with one source. A [`Waker`] (cloneable, `Send`)
//!   makes the source's descriptor readable, so a jail is reached promptly.
//! - **Events are hints, `stat` is the truth.** inotify (on the files and on their
//!   directories) only decides *when* and *where* to look: a read drains the queued
//!   events and looks at the paths they name (so one busy log among hundreds costs one
//!   file's work); every look compares the path's `(dev, inode)` and size with the open
//!   descriptor. The polling backend looks at everything every `poll_interval`. A
//!   periodic sweep re-expands the glob patterns (new matching files are picked up) and
//!   re-checks everything, so a missed event costs latency, never lines.
//! - **Exactly once, in order, across rotation.** Each file is read through a descriptor
//!   kept open: when the path starts naming another file (rename-and-create, delete and
//!   re-create) the old descriptor is drained to its end first, and kept draining for a
//!   grace period in case the writer has not reopened yet; copytruncate (the size falls
//!   below what was read, or the file's first bytes changed) restarts at offset 0.
//! - **Bounded memory, no fragments.** Only complete lines are delivered; a partial last
//!   line waits for its end. A line longer than the cap is delivered cut (flagged and
//!   counted) and the rest of it, up to its newline, is skipped: a fragment of a long line
//!   is never handed out as if it were a line of its own.
//! - **fail2ban's positions.** A [`FilePosition`] is the offset of the next unread line and
//!   the hex digest of the file's first line, newline included, as fail2ban stores them
//!   (SHA-1 on Python 3; MD5 digests from older databases are recognised too), so
//!   positions saved by fail2ban resume here and the other way round.
//! - **Patterns are re-expanded, unlike fail2ban** (which globs once at start), so a
//!   pattern broad enough to match rotated names (`auth.log*`) meets the rotated files
//!   again: a renamed file keeps being read where it was (it moves to its new name once
//!   drained), and a file new to the pattern whose first line was already read is a copy
//!   (copytruncate's, or a backup) and is not read. Files that appear after the start are
//!   otherwise read from their beginning.
//! - **Starting like fail2ban.** `head` files resume at a saved position whose first-line
//!   digest still matches, else start at 0; [`FileSource::seek_to_time`] then skips the
//!   lines older than "now - findtime" by bisection, given the caller's date detection.
//!   `tail` files start after their last complete line and ignore saved positions, as in
//!   fail2ban.
//! - **IO errors are reports, not failures.** A file that cannot be opened, read or
//!   stat'ed produces a [`Notice`] and the other files carry on; nothing panics.

mod digest;
mod file;
mod reader;
mod scratch;
mod sys;

use std::fmt;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use file::{
    Backend, FileSource, FileSourceOptions, LogPath, SavedPosition, StartAt, parse_backend,
};

/// One line handed to the caller.
#[derive(Debug, Clone, Copy)]
pub struct LogLine<'a> {
    /// The line's bytes without its line end (`\n` and any `\r` before it).
    pub bytes: &'a [u8],
    /// Where it came from: the file's path as configured (after glob expansion).
    pub origin: &'a Path,
    /// The entry's own timestamp, for sources that have one (a journal). Files have none:
    /// the caller finds the date in the text.
    pub time: Option<SystemTime>,
    /// The line was longer than the source's cap and has been cut to it.
    pub truncated: bool,
}

/// What one `read_available` call did.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Lines handed to the sink.
    pub lines: u64,
    /// Bytes consumed from the files, line ends included.
    pub bytes: u64,
    /// Lines that were longer than the cap (delivered cut, the rest skipped).
    pub truncated_lines: u64,
    /// Things worth logging that happened since the previous call.
    pub notices: Vec<Notice>,
}

/// Why `wait` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something may be readable (or a periodic check is due): call `read_available`.
    Ready,
    /// The timeout passed with nothing to do.
    Timeout,
    /// A [`Waker`] was used (the caller decides why: stop, reload, ...).
    Woken,
}

/// Where a source has got to, for persisting and resuming.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Position {
    /// A position in a file.
    File(FilePosition),
    /// A position in the systemd journal.
    Journal(JournalPosition),
}

/// Where a jail has got to in the systemd journal: the last entry handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalPosition {
    /// The entry's cursor (`__CURSOR`), which the journal can seek to exactly.
    pub cursor: String,
    /// The entry's own time: a fallback for when the cursor is no longer in the journal
    /// (vacuumed), and what fail2ban keeps as its journal position.
    pub time: SystemTime,
}

/// The position of a jail in one file, in fail2ban's terms (its `logs` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePosition {
    /// The file's path (fail2ban's `path` column).
    pub path: PathBuf,
    /// Hex digest of the first line including its newline (fail2ban's `firstlinemd5`
    /// column); empty while the file has no complete first line, as in fail2ban.
    pub first_line_hash: String,
    /// Offset of the next line to read (fail2ban's `lastfilepos`).
    pub offset: u64,
}

/// Something that happened to a source that the operator may want in the log. None of
/// these stop the source.
#[derive(Debug)]
#[non_exhaustive]
pub enum Notice {
    /// A file started being followed.
    Opened {
        path: PathBuf,
        offset: u64,
        how: OpenedAt,
    },
    /// A `logpath` pattern matches no file (yet); reported once until it matches again.
    NothingMatches { pattern: String },
    /// A followed file's path no longer exists; it is waited for. Reported once.
    Missing { path: PathBuf },
    /// A file new to a pattern begins with a first line already read: it is a copy
    /// (copytruncate's, or a backup) and is not read.
    CopyIgnored { path: PathBuf },
    /// The file at a path was rotated or rewritten; reading restarts at its beginning.
    Rotated { path: PathBuf, reason: Rotation },
    /// Lines older than the start time were skipped (`FileSource::seek_to_time`).
    Skipped { path: PathBuf, from: u64, to: u64 },
    /// A line was longer than the cap and was cut.
    LineTooLong {
        path: PathBuf,
        offset: u64,
        kept: usize,
    },
    /// An IO error; the file is retried later.
    Io {
        path: PathBuf,
        doing: &'static str,
        error: io::Error,
    },
    /// The requested wake-up mechanism is unavailable and a fallback is used.
    Backend { message: String },
}

/// Where reading of a newly followed file begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenedAt {
    /// At the beginning (`head`, or a file that appeared after the start).
    Head,
    /// At the end of its last complete line (`tail`).
    Tail,
    /// At a saved position whose first-line fingerprint matched.
    Resumed,
    /// Where it was: a file already being read that was renamed into a pattern.
    Renamed,
}

/// How a rotation was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The path now names another file (rename-and-create, delete and re-create); the old
    /// file was read to its end first.
    Replaced,
    /// The file became shorter than what had been read (copytruncate).
    Truncated,
    /// The file no longer begins with the bytes seen before (truncated and refilled, or
    /// rewritten in place, between two looks).
    Rewritten,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Opened { path, offset, how } => {
                let how = match how {
                    OpenedAt::Head => "from the beginning",
                    OpenedAt::Tail => "from the end",
                    OpenedAt::Resumed => "at the saved position",
                    OpenedAt::Renamed => "where it was before being renamed",
                };
                write!(f, "following {} {how} (offset {offset})", path.display())
            }
            Notice::NothingMatches { pattern } => {
                write!(f, "no file matches {pattern:?} yet; waiting for one")
            }
            Notice::Missing { path } => {
                write!(
                    f,
                    "{} is missing (rotation?); waiting for it",
                    path.display()
                )
            }
            Notice::CopyIgnored { path } => write!(
                f,
                "not reading {}: it is a copy of a log already read",
                path.display()
            ),
            Notice::Rotated { path, reason } => {
                let why = match reason {
                    Rotation::Replaced => "replaced by a new file",
                    Rotation::Truncated => "truncated",
                    Rotation::Rewritten => "rewritten (its beginning changed)",
                };
                write!(f, "log rotation detected for {}: {why}", path.display())
            }
            Notice::Skipped { path, from, to } => write!(
                f,
                "skipped bytes {from} to {to} of {}: older than the find time",
                path.display()
            ),
            Notice::LineTooLong { path, offset, kept } => write!(
                f,
                "line at offset {offset} of {} is too long; only its first {kept} bytes are used",
                path.display()
            ),
            Notice::Io { path, doing, error } => {
                write!(f, "{doing} {}: {error}", path.display())
            }
            Notice::Backend { message } => f.write_str(message),
        }
    }
}

/// Errors that stop a source from being created or from working at all. Per-file
/// problems are [`Notice`]s instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid logpath {spec:?}: {reason}")]
    LogPath { spec: String, reason: String },
    #[error("invalid glob pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("unknown backend {0:?} (expected auto, pyinotify, inotify or polling)")]
    Backend(String),
    #[error("cannot set up inotify: {0}")]
    Inotify(#[source] io::Error),
    #[error("cannot set up the wake-up channel: {0}")]
    Waker(#[source] io::Error),
    #[error("waiting for log changes failed: {0}")]
    Wait(#[source] io::Error),
}

/// A source of log lines that a jail's thread reads and waits on.
pub trait LogSource: Send {
    /// Hands every complete line available now to `sink`, in order, and returns what was
    /// done. The sink may stop the reading after any line with `ControlFlow::Break`; the
    /// next call continues with the following line.
    fn read_available(
        &mut self,
        sink: &mut dyn FnMut(LogLine<'_>) -> ControlFlow<()>,
    ) -> Result<ReadStats, Error>;

    /// The descriptors to wait on for this source: when one becomes readable, [`poll`]
    /// has something to look at. A reactor waits on those of many sources at once.
    ///
    /// [`poll`]: LogSource::poll
    fn poll_fds(&self) -> Vec<BorrowedFd<'_>>;

    /// The latest moment [`poll`] must be called even if no descriptor became readable
    /// (a polling backend's next look, a periodic sweep, a retry, lines left over from a
    /// read that was stopped); `None` when only the descriptors matter.
    ///
    /// [`poll`]: LogSource::poll
    fn poll_deadline(&self) -> Option<Instant>;

    /// Looks, without blocking, at what the descriptors signalled and at what is due, and
    /// consumes the descriptors' readiness (so that waiting on them again blocks):
    /// [`Wake::Woken`] if the waker was used, [`Wake::Ready`] if a read is due,
    /// [`Wake::Timeout`] if neither. Spurious `Ready`s are allowed.
    fn poll(&mut self) -> Result<Wake, Error>;

    /// Blocks until there may be something to read, `timeout` passes or the waker is
    /// used; [`poll`] and the descriptors, for a caller that waits on one source.
    /// Spurious `Ready`s are allowed; callers read after any return.
    ///
    /// [`poll`]: LogSource::poll
    fn wait(&mut self, timeout: Duration) -> Result<Wake, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.poll()? {
                Wake::Timeout => {}
                woke => return Ok(woke),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Wake::Timeout);
            }
            let until = self.poll_deadline().map_or(deadline, |d| d.min(deadline));
            let fds = self.poll_fds();
            sys::wait_readable(&fds, until.saturating_duration_since(now)).map_err(Error::Wait)?;
        }
    }

    /// A handle that interrupts `wait` from another thread (makes the wake-up
    /// descriptor readable and the next `poll` return [`Wake::Woken`]).
    fn waker(&self) -> Waker;

    /// Before the first read, skips what is older than `not_before` (Unix seconds) where
    /// the source can find it without reading everything, with `line_time` giving a
    /// line's time; see [`FileSource::seek_to_time`]. Sources that start at a time of
    /// their own (the journal) do nothing.
    fn skip_older_than(
        &mut self,
        not_before: f64,
        line_time: &mut dyn FnMut(&[u8]) -> Option<f64>,
    ) {
        let _ = (not_before, line_time);
    }

    /// Where each followed file has got to (the offset after the last line handed out).
    fn positions(&self) -> Vec<Position>;

    /// `set JAIL addlogpath`: follows one more pattern from now on, its files opened at
    /// its `head`/`tail` position. Sources without paths refuse.
    fn add_path(&mut self, path: &LogPath) -> Result<(), Error> {
        Err(Error::LogPath {
            spec: path.pattern.clone(),
            reason: "this backend has no log files".to_string(),
        })
    }

    /// `set JAIL dellogpath`: stops following a pattern given as it was added; whether
    /// it was followed.
    fn remove_path(&mut self, _pattern: &str) -> bool {
        false
    }
}

/// Interrupts a source's `wait` from any thread. Waking a source that is not waiting makes
/// its next `wait` return at once.
#[derive(Debug, Clone)]
pub struct Waker {
    inner: Arc<sys::WakeSender>,
}

impl Waker {
    /// Makes the source's current or next `wait` return [`Wake::Woken`].
    pub fn wake(&self) {
        self.inner.wake();
    }
}

/// The receiving end of a wake-up channel, for sources built outside this crate (the
/// journal): they hand out the [`Waker`] and block on this in their `wait`.
#[derive(Debug)]
pub struct WakeListener {
    rx: sys::WakeReceiver,
}

impl WakeListener {
    /// Blocks until a wake-up arrives or `timeout` passes; true if woken. Pending wake-ups
    /// are consumed.
    pub fn wait(&self, timeout: Duration) -> Result<bool, Error> {
        if self.rx.drain() {
            return Ok(true);
        }
        let readable = sys::wait_readable(&[self.rx.fd()], timeout).map_err(Error::Wait)?;
        Ok(readable.first() == Some(&true) && self.rx.drain())
    }
}

impl WakeListener {
    /// The descriptor that becomes readable when a wake-up is pending.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.rx.fd()
    }

    /// Consumes pending wake-ups without blocking; true if there were any.
    pub fn take(&self) -> bool {
        self.rx.drain()
    }
}

/// Waits until one of `fds` is readable (or hung up, or in error) or `timeout` passes;
/// says which are. An interrupting signal counts as a timeout. This is what a reactor
/// waits on the [`LogSource::poll_fds`] of its sources with.
pub fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<Vec<bool>> {
    sys::wait_readable(fds, timeout)
}

/// A new wake-up channel: wakers for other threads, the listener for the source.
pub fn wake_channel() -> Result<(Waker, WakeListener), Error> {
    let (tx, rx) = sys::wake_channel().map_err(Error::Waker)?;
    Ok((
        Waker {
            inner: Arc::new(tx),
        },
        WakeListener { rx },
    ))
}
