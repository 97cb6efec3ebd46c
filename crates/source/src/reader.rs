//! One open file: splitting it into lines, remembering where the next line starts, and
//! noticing when the file under the descriptor was truncated or rewritten.

use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::Instant;

use crate::digest::{Algorithm, Digest};
use crate::{LogLine, Notice, Rotation};

/// How far the first line is looked for before the file is treated as having no complete
/// first line (and so no fingerprint). Bounded so a hostile file cannot stall a jail.
const FIRST_LINE_SCAN_LIMIT: u64 = 16 << 20;
/// How many of the file's first bytes are kept to recognise it cheaply: a file whose
/// beginning changed was rewritten (truncated and refilled) under the same descriptor.
const HEAD_BYTES: usize = 512;

/// The identity of a file as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl FileId {
    pub(crate) fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// What a file is recognised by.
#[derive(Debug, Clone, Default)]
struct Fingerprint {
    /// The file's first bytes as last seen (fewer than `HEAD_BYTES` while it is short).
    /// Kept even while the first line is incomplete, so that a truncate-and-refill is
    /// noticed at any time.
    head: Vec<u8>,
    /// SHA-1 hex of the first line including its newline (what fail2ban stores); empty
    /// until the first line is complete.
    first_line_hash: String,
}

impl Fingerprint {
    fn read(file: &File) -> io::Result<Fingerprint> {
        let mut fingerprint = Fingerprint::default();
        fingerprint.refresh(file)?;
        Ok(fingerprint)
    }

    /// Re-reads the head; false if the file no longer begins with the head seen before.
    fn refresh(&mut self, file: &File) -> io::Result<bool> {
        let mut now = vec![0u8; HEAD_BYTES];
        let got = read_fully_at(file, &mut now, 0)?;
        now.truncate(got);
        if !now.starts_with(&self.head) {
            return Ok(false);
        }
        let grown = now.len() > self.head.len();
        self.head = now;
        if self.first_line_hash.is_empty() && (grown || self.head.len() == HEAD_BYTES) {
            self.first_line_hash =
                scan_first_line(file, Algorithm::Sha1)?.map_or(String::new(), |(h, _)| h);
        }
        Ok(true)
    }
}

/// Hashes the first line of `file` (newline included) with `algorithm`; returns the hex
/// digest and the line's length, or `None` if there is no complete first line within the
/// scan limit.
pub(crate) fn scan_first_line(
    file: &File,
    algorithm: Algorithm,
) -> io::Result<Option<(String, u64)>> {
    let mut digest = Digest::new(algorithm);
    let mut chunk = vec![0u8; 8192];
    let mut pos = 0u64;
    while pos < FIRST_LINE_SCAN_LIMIT {
        let n = read_some_at(file, &mut chunk, pos)?;
        if n == 0 {
            return Ok(None);
        }
        let data = &chunk[..n];
        let (part, done) = match memchr::memchr(b'\n', data) {
            Some(i) => (&data[..=i], true),
            None => (data, false),
        };
        digest.update(part);
        pos += part.len() as u64;
        if done {
            return Ok(Some((digest.finish_hex(), pos)));
        }
    }
    Ok(None)
}

fn read_some_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, pos) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn read_fully_at(file: &File, buf: &mut [u8], mut pos: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = read_some_at(file, &mut buf[got..], pos)?;
        if n == 0 {
            break;
        }
        got += n;
        pos += n as u64;
    }
    Ok(got)
}

/// Counters a read adds to.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) lines: u64,
    pub(crate) bytes: u64,
    pub(crate) truncated_lines: u64,
}

/// An open log file being read line by line.
#[derive(Debug)]
pub(crate) struct Reader {
    file: File,
    pub(crate) id: FileId,
    /// Offset of the next line not yet handed out: the position to persist.
    offset: u64,
    /// Where the next read starts; beyond `offset` by the buffered partial line (or by the
    /// skipped part of an overlong one).
    read_pos: u64,
    /// The partial line read so far, never longer than the line cap.
    partial: Vec<u8>,
    /// Inside an overlong line whose cut head was already handed out.
    skipping: bool,
    fingerprint: Fingerprint,
    seen_size: u64,
    seen_mtime: (i64, i64),
    /// When the file last grew (or was opened): retired files are closed once idle.
    pub(crate) last_growth: Instant,
    pub(crate) watch: Option<inotify::WatchDescriptor>,
}

impl Reader {
    /// Opens `path` at offset 0.
    pub(crate) fn open(path: &Path) -> io::Result<Reader> {
        // std opens with O_CLOEXEC, so action commands never inherit log descriptors.
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            ));
        }
        let fingerprint = Fingerprint::read(&file)?;
        Ok(Reader {
            id: FileId::of(&meta),
            offset: 0,
            read_pos: 0,
            partial: Vec::new(),
            skipping: false,
            fingerprint,
            seen_size: meta.len(),
            seen_mtime: (meta.mtime(), meta.mtime_nsec()),
            last_growth: Instant::now(),
            watch: None,
            file,
        })
    }

    pub(crate) fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    pub(crate) fn first_line_hash(&self) -> &str {
        &self.fingerprint.first_line_hash
    }

    /// The first line's digest with another algorithm (to compare with an old MD5
    /// fingerprint); empty when there is no complete first line.
    pub(crate) fn first_line_digest(&self, algorithm: Algorithm) -> io::Result<String> {
        match algorithm {
            Algorithm::Sha1 => Ok(self.first_line_hash().to_string()),
            Algorithm::Md5 => {
                Ok(scan_first_line(&self.file, algorithm)?.map_or(String::new(), |(h, _)| h))
            }
        }
    }

    /// Continues at `offset` (a saved position, assumed to be a line start). An offset
    /// past the end is caught by the next `check` as a truncation.
    pub(crate) fn resume_at(&mut self, offset: u64) {
        self.offset = offset;
        self.read_pos = offset;
        self.partial.clear();
        self.skipping = false;
    }

    /// Starts after the last complete line, so that a line being written right now is
    /// read whole once finished rather than as a fragment.
    pub(crate) fn start_at_tail(&mut self, max_line: usize) -> io::Result<()> {
        let size = self.file.metadata()?.len();
        let window = (max_line as u64 + 1).min(size);
        let mut tail = vec![0u8; usize::try_from(window).unwrap_or(max_line)];
        let got = read_fully_at(&self.file, &mut tail, size - window)?;
        tail.truncate(got);
        match memchr::memrchr(b'\n', &tail) {
            Some(i) => self.resume_at(size - window + i as u64 + 1),
            None if size <= max_line as u64 => self.resume_at(0),
            None => {
                // The end of an overlong line: skip to its newline like any overlong line.
                self.resume_at(size);
                self.skipping = true;
            }
        }
        Ok(())
    }

    /// Moves forward to the first line whose time (as `line_time` finds it) is at least
    /// `not_before`, by bisection over the bytes from the current offset on: fail2ban's
    /// seek to "now - findtime" when it starts reading a file from its beginning, so that
    /// a big log is not read whole. As in fail2ban, the log is assumed to be in time
    /// order. Returns the new offset.
    pub(crate) fn seek_to_time(
        &mut self,
        not_before: f64,
        line_time: &mut dyn FnMut(&[u8]) -> Option<f64>,
        max_line: usize,
    ) -> io::Result<u64> {
        /// Below this the rest is scanned line by line.
        const LINEAR: u64 = 64 * 1024;
        /// Lines looked at from a probe point to find one with a time.
        const PROBE_LINES: usize = 5;
        let size = self.size()?;
        let mut lo = self.offset;
        let mut hi = size;
        let mut line = Vec::new();
        'bisect: while hi.saturating_sub(lo) > LINEAR {
            let mid = lo + (hi - lo) / 2;
            let Some(mut at) = self.next_line_start(mid, hi)? else {
                // No line starts in the upper half.
                hi = mid;
                continue;
            };
            for _ in 0..PROBE_LINES {
                let Some(end) = self.line_at(at, max_line, &mut line)? else {
                    hi = mid;
                    continue 'bisect;
                };
                if let Some(time) = line_time(&line) {
                    if time >= not_before {
                        hi = at;
                    } else {
                        lo = end;
                    }
                    continue 'bisect;
                }
                at = end;
            }
            // No time found near the middle: finish line by line from `lo`.
            break;
        }
        // Start after the last line known to be older; lines without a time after it are
        // kept (continuations, or a log without dates at all).
        let mut keep = lo;
        let mut at = lo;
        while let Some(end) = self.line_at(at, max_line, &mut line)? {
            match line_time(&line) {
                Some(time) if time >= not_before => break,
                Some(_) => keep = end,
                None => {}
            }
            at = end;
        }
        self.resume_at(keep);
        Ok(keep)
    }

    /// The start of the first line beginning after `from` and before `limit`.
    fn next_line_start(&self, from: u64, limit: u64) -> io::Result<Option<u64>> {
        let mut chunk = vec![0u8; 8192];
        let mut pos = from;
        while pos < limit {
            let n = read_some_at(&self.file, &mut chunk, pos)?;
            if n == 0 {
                return Ok(None);
            }
            if let Some(i) = memchr::memchr(b'\n', &chunk[..n]) {
                let start = pos + i as u64 + 1;
                return Ok((start < limit).then_some(start));
            }
            pos += n as u64;
        }
        Ok(None)
    }

    /// Reads the complete line starting at `at` into `line` (cut to `max_line`, line end
    /// removed); returns where the next line starts, or `None` at the end of the file or
    /// before a line that is not complete yet.
    fn line_at(&self, at: u64, max_line: usize, line: &mut Vec<u8>) -> io::Result<Option<u64>> {
        line.clear();
        let mut chunk = vec![0u8; 8192];
        let mut pos = at;
        loop {
            let n = read_some_at(&self.file, &mut chunk, pos)?;
            if n == 0 {
                return Ok(None);
            }
            let data = &chunk[..n];
            let newline = memchr::memchr(b'\n', data);
            let part = &data[..newline.unwrap_or(n)];
            let room = max_line.saturating_sub(line.len());
            line.extend_from_slice(&part[..room.min(part.len())]);
            if let Some(i) = newline {
                while line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(pos + i as u64 + 1));
            }
            pos += n as u64;
        }
    }

    /// Compares the file under the descriptor with what was read: a file shorter than the
    /// read position, or whose first line changed, is read again from its start.
    pub(crate) fn check(&mut self) -> io::Result<Option<Rotation>> {
        let meta = self.file.metadata()?;
        let size = meta.len();
        let mtime = (meta.mtime(), meta.mtime_nsec());
        let changed = size != self.seen_size || mtime != self.seen_mtime;
        self.seen_size = size;
        self.seen_mtime = mtime;
        let mut rotation = None;
        if size < self.read_pos {
            rotation = Some(Rotation::Truncated);
        } else if changed && !self.fingerprint.refresh(&self.file)? {
            rotation = Some(Rotation::Rewritten);
        }
        if rotation.is_some() {
            self.resume_at(0);
            self.fingerprint = Fingerprint::read(&self.file)?;
        }
        Ok(rotation)
    }

    /// True when the file holds bytes not read yet, or fewer bytes than were read.
    pub(crate) fn has_news(&self) -> io::Result<bool> {
        Ok(self.file.metadata()?.len() != self.read_pos)
    }

    /// Hands every complete line up to the end of the file to `sink`.
    pub(crate) fn read_lines(
        &mut self,
        origin: &Path,
        max_line: usize,
        scratch: &mut [u8],
        sink: &mut dyn FnMut(LogLine<'_>) -> ControlFlow<()>,
        tally: &mut Tally,
        notices: &mut Vec<Notice>,
    ) -> io::Result<ControlFlow<()>> {
        loop {
            let n = read_some_at(&self.file, scratch, self.read_pos)?;
            if n == 0 {
                return Ok(ControlFlow::Continue(()));
            }
            self.last_growth = Instant::now();
            let chunk_start = self.read_pos;
            let chunk = &scratch[..n];
            let mut i = 0;
            while i < n {
                let rest = &chunk[i..];
                let newline = memchr::memchr(b'\n', rest);
                let segment = &rest[..newline.unwrap_or(rest.len())];
                i += newline.map_or(rest.len(), |p| p + 1);
                let after = chunk_start + i as u64;
                if self.skipping {
                    if newline.is_some() {
                        self.skipping = false;
                        self.advance_to(after, tally);
                    }
                    continue;
                }
                let room = max_line - self.partial.len();
                let flow = if segment.len() > room {
                    self.partial.extend_from_slice(&segment[..room]);
                    tally.truncated_lines += 1;
                    notices.push(Notice::LineTooLong {
                        path: origin.to_path_buf(),
                        offset: self.offset,
                        kept: max_line,
                    });
                    let flow = deliver(&self.partial, origin, true, sink, tally);
                    self.partial.clear();
                    if newline.is_some() {
                        self.advance_to(after, tally);
                    } else {
                        self.skipping = true;
                    }
                    flow
                } else if newline.is_some() {
                    let flow = if self.partial.is_empty() {
                        deliver(segment, origin, false, sink, tally)
                    } else {
                        self.partial.extend_from_slice(segment);
                        let flow = deliver(&self.partial, origin, false, sink, tally);
                        self.partial.clear();
                        flow
                    };
                    self.advance_to(after, tally);
                    flow
                } else {
                    self.partial.extend_from_slice(segment);
                    ControlFlow::Continue(())
                };
                if flow.is_break() {
                    // Resume right after what has been consumed; the partial buffer and
                    // the skipping flag already describe that point.
                    self.read_pos = after;
                    return Ok(ControlFlow::Break(()));
                }
            }
            self.read_pos = chunk_start + n as u64;
        }
    }

    /// Hands out a last line that never got its newline. Only for a file that is being
    /// closed after rotation: nothing will ever complete it.
    pub(crate) fn flush_partial(
        &mut self,
        origin: &Path,
        sink: &mut dyn FnMut(LogLine<'_>) -> ControlFlow<()>,
        tally: &mut Tally,
    ) -> ControlFlow<()> {
        if self.skipping || self.partial.is_empty() {
            return ControlFlow::Continue(());
        }
        let flow = deliver(&self.partial, origin, false, sink, tally);
        self.partial.clear();
        let end = self.read_pos;
        self.advance_to(end, tally);
        flow
    }

    fn advance_to(&mut self, offset: u64, tally: &mut Tally) {
        tally.bytes += offset.saturating_sub(self.offset);
        self.offset = offset;
    }
}

fn deliver(
    line: &[u8],
    origin: &Path,
    truncated: bool,
    sink: &mut dyn FnMut(LogLine<'_>) -> ControlFlow<()>,
    tally: &mut Tally,
) -> ControlFlow<()> {
    // fail2ban strips every trailing CR and LF; only CRs can remain here.
    let mut end = line.len();
    while end > 0 && line[end - 1] == b'\r' {
        end -= 1;
    }
    tally.lines += 1;
    sink(LogLine {
        bytes: &line[..end],
        origin,
        time: None,
        truncated,
    })
}
