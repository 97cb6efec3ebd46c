//! The systemd journal as a jail's log source: `backend = systemd`.
//!
//! Design points:
//!
//! - **journalctl, not libsystemd.** Entries are read from a `journalctl --output=export`
//!   subprocess. The journal's file format and its reading rules (interleaving files,
//!   matches, cursors, rotation, vacuuming, corruption) stay systemd's own code, the build
//!   needs no libsystemd headers, and a crash or a hang in that code cannot take the
//!   daemon with it. The export format is binary-safe (a value with a newline or any byte
//!   comes length-prefixed); `--output-fields` keeps it to the fields a line is built
//!   from. journalctl's own search and export bound the speed (about 250k journal
//!   entries/s scanned with sshd's journalmatch on the benchmark machine); parsing and
//!   formatting run on a reader thread so matching overlaps with them.
//! - **Lines as fail2ban builds them.** Each entry becomes `HOST IDENT[PID]: MESSAGE`
//!   ([`format_entry`]) with the entry's own time (`_SOURCE_REALTIME_TIMESTAMP`, else
//!   `__REALTIME_TIMESTAMP`) in [`rampart_source::LogLine::time`]: no date is parsed from
//!   the text, and the filters' `logtype = journal` prefix applies.
//! - **Following.** A journal directory (`journalpath`, or the system journal) is followed
//!   by one long-lived `journalctl --follow`, which handles rotation and vacuuming itself.
//!   journalctl cannot follow files named with `--file`, so `journalfiles` are watched
//!   (stat every 200 ms) and each change runs a short journalctl from the position.
//! - **Positions are cursors with their time.** The position is the last entry handed
//!   out: its cursor and its `__REALTIME_TIMESTAMP` ([`rampart_source::JournalPosition`]).
//!   A run resumes with `--since` that time (µs precision) and skips entries up to the
//!   cursor, so nothing is repeated or missed. journalctl's own `--after-cursor` is not
//!   used: given the cursor of a vacuumed or replaced file it finds no entry at all, and
//!   the jail would stall; here a vanished cursor only means reading from its time.
//! - **Failures are notices.** A journalctl that is missing, exits, or reports an error
//!   (an unreadable directory, a corrupted file) is reported once, as a
//!   [`rampart_source::Notice`], and run again with a growing delay (up to 30 s); the
//!   jail keeps running and no other jail notices. The process dies with the source.

mod child;
mod export;
mod format;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::ops::ControlFlow;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rampart_source::{
    Error as SourceError, JournalPosition, LogLine, LogSource, Notice, Position, ReadStats, Wake,
    WakeListener, Waker,
};

pub use child::JournalLine;
pub use export::{Entry, ExportError, ExportReader, MAX_VALUE};
pub use format::{entry_time, format_entry};

use child::{Child, Message};

/// The name a journal goes by in the `logs` table and in reports, as in fail2ban.
pub const JOURNAL_NAME: &str = "systemd-journal";

/// Which journal files are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The machine's journal (`/var/log/journal`, `/run/log/journal`), with
    /// `sd_journal_open` flags (`journalflags`; fail2ban's default is 4, the system
    /// journal).
    System { flags: u32 },
    /// Every journal file in a directory (`journalpath`).
    Directory(PathBuf),
    /// Files named by glob patterns (`journalfiles`), expanded again at every look.
    Files(Vec<String>),
}

/// What to read: the backend's options and the jail's `journalmatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSpec {
    pub location: Location,
    /// `namespace=`: a journal namespace (journald's `--namespace`).
    pub namespace: Option<String>,
    /// `journalmatch` lines as words: `FIELD=value` terms, and `+` between alternatives.
    /// Lines are alternatives of each other, as in fail2ban.
    pub matches: Vec<Vec<String>>,
    /// `rotated=on`: read archived files too. journalctl always does, so this only
    /// records the setting; see [`JournalSpec::from_backend_options`].
    pub rotated: bool,
    /// The journalctl to run.
    pub program: PathBuf,
}

/// Where reading starts when there is no position to resume from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// With the oldest entry.
    Beginning,
    /// With the first entry at or after this time (fail2ban: now - findtime).
    Since(SystemTime),
    /// After this entry.
    After(JournalPosition),
}

/// Whether the source follows the journal or reads it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Keep reading new entries (a jail).
    Live,
    /// Read what is there and finish (`rampart regex`).
    Once,
}

/// A configuration the journal reader cannot use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    #[error(
        "unknown systemd backend option {0:?} (expected journalpath, journalfiles, journalflags, namespace or rotated)"
    )]
    UnknownOption(String),
    #[error("journalflags {0:?} is not a number")]
    Flags(String),
    #[error("journalpath and journalfiles cannot both be given")]
    PathAndFiles,
    #[error(
        "invalid journal match {0:?}: expected FIELD=value (FIELD in capitals, digits and _) or +"
    )]
    Match(String),
    #[error(transparent)]
    Source(#[from] SourceError),
}

impl JournalSpec {
    /// The spec for `backend = systemd[OPTIONS]`, given its options as key/value pairs.
    ///
    /// `journalflags` applies to the machine's journal only (journalctl's `--system`,
    /// `--user`, `--merge`); with files or a directory every file given is read, as
    /// fail2ban does when it sets no flags. `rotated` is accepted (`on`/`off`) and kept:
    /// journalctl reads archived files in any case, which is what `rotated=on` asks for;
    /// with `off` they are opened but, since reading starts at now - findtime, their old
    /// entries are not read.
    pub fn from_backend_options(options: &[(String, String)]) -> Result<JournalSpec, JournalError> {
        let mut path = None;
        let mut files = None;
        let mut flags = None;
        let mut namespace = None;
        let mut rotated = false;
        for (key, value) in options {
            match key.as_str() {
                "journalpath" => path = Some(PathBuf::from(value)),
                "journalfiles" => {
                    files = Some(value.split_whitespace().map(String::from).collect());
                }
                "journalflags" => {
                    flags = Some(
                        value
                            .trim()
                            .parse::<u32>()
                            .map_err(|_| JournalError::Flags(value.clone()))?,
                    );
                }
                "namespace" => namespace = Some(value.clone()).filter(|v| !v.is_empty()),
                "rotated" => {
                    rotated = matches!(
                        value.to_ascii_lowercase().as_str(),
                        "1" | "on" | "true" | "yes"
                    );
                }
                other => return Err(JournalError::UnknownOption(other.to_string())),
            }
        }
        let location = match (path, files) {
            (Some(_), Some(_)) => return Err(JournalError::PathAndFiles),
            (Some(p), None) => Location::Directory(p),
            (None, Some(f)) => Location::Files(f),
            (None, None) => Location::System {
                flags: flags.unwrap_or(4),
            },
        };
        Ok(JournalSpec {
            location,
            namespace,
            matches: Vec::new(),
            rotated,
            program: PathBuf::from("journalctl"),
        })
    }

    /// Sets the matches after checking them (journalctl would take a path as a match
    /// on an executable; fail2ban accepts only `FIELD=value`).
    pub fn with_matches(mut self, matches: Vec<Vec<String>>) -> Result<JournalSpec, JournalError> {
        for word in matches.iter().flatten() {
            if word != "+" && !is_match_term(word) {
                return Err(JournalError::Match(word.clone()));
            }
        }
        self.matches = matches.into_iter().filter(|m| !m.is_empty()).collect();
        Ok(self)
    }

    /// The matches as journalctl arguments: lines joined by `+`.
    fn match_args(&self) -> Vec<OsString> {
        let mut out = Vec::new();
        for (i, line) in self.matches.iter().enumerate() {
            if i > 0 {
                out.push(OsString::from("+"));
            }
            out.extend(line.iter().map(OsString::from));
        }
        out
    }

    /// The matches as fail2ban shows them (`get JAIL journalmatch`).
    pub fn describe_matches(&self) -> String {
        self.matches
            .iter()
            .map(|m| m.join(" "))
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// The files `journalfiles` names now (globs expanded, duplicates removed).
    fn expand_files(patterns: &[String]) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for p in patterns {
            if let Ok(paths) = glob::glob(p) {
                out.extend(paths.filter_map(Result::ok));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn is_match_term(word: &str) -> bool {
    let Some((field, _)) = word.split_once('=') else {
        return false;
    };
    !field.is_empty()
        && field
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// How often `journalfiles` are looked at for changes.
const FILE_POLL: Duration = Duration::from_millis(200);
/// Even without a visible change, files are read again this often (a write journalctl
/// would see but stat does not show must not wait forever).
const FILE_REREAD: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Lines handed out by one `read_available` at most.
const READ_BUDGET: u64 = 16 * 1024;

/// A jail's journal reader.
#[derive(Debug)]
pub struct JournalSource {
    spec: JournalSpec,
    follow: Follow,
    start: Start,
    last: Option<JournalPosition>,
    child: Option<Child>,
    pending: VecDeque<Message>,
    unread: VecDeque<JournalLine>,
    waker: Waker,
    listener: WakeListener,
    notices: Vec<Notice>,
    /// Set for a run that resumes at a position: entries up to that one are skipped.
    skip: Option<(String, u64)>,
    /// The problem last reported, so that a repeating one is reported once.
    reported: Option<String>,
    failures: u32,
    retry_at: Option<Instant>,
    /// `journalfiles`: the files' identity and sizes when journalctl last ran.
    seen_files: Option<Vec<FileStamp>>,
    last_run: Option<Instant>,
    /// `journalfiles`: when they are next looked at.
    next_file_look: Instant,
    finished: bool,
    origin: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp_files(patterns: &[String]) -> Vec<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    JournalSpec::expand_files(patterns)
        .into_iter()
        .filter_map(|path| {
            let meta = std::fs::metadata(&path).ok()?;
            Some(FileStamp {
                inode: meta.ino(),
                len: meta.len(),
                modified: meta.modified().ok(),
                path,
            })
        })
        .collect()
}

impl JournalSource {
    /// A source reading `spec` from `start` (or, in `Once` mode, just once).
    pub fn new(
        spec: JournalSpec,
        start: Start,
        follow: Follow,
    ) -> Result<JournalSource, JournalError> {
        let (waker, listener) = rampart_source::wake_channel()?;
        let last = match &start {
            Start::After(p) => Some(p.clone()),
            _ => None,
        };
        Ok(JournalSource {
            spec,
            follow,
            start,
            last,
            child: None,
            skip: None,
            pending: VecDeque::new(),
            unread: VecDeque::new(),
            waker,
            listener,
            notices: Vec::new(),
            reported: None,
            failures: 0,
            retry_at: Some(Instant::now()),
            seen_files: None,
            last_run: None,
            next_file_look: Instant::now(),
            finished: false,
            origin: PathBuf::from(JOURNAL_NAME),
        })
    }

    /// In `Once` mode: everything has been read (or reading failed; see the notices).
    pub fn is_finished(&self) -> bool {
        self.finished && self.unread.is_empty() && self.pending.is_empty()
    }

    /// The spec being read.
    pub fn spec(&self) -> &JournalSpec {
        &self.spec
    }

    /// Something is waiting to be read (or reported, or, read once, the end).
    fn has_news(&self) -> bool {
        !self.unread.is_empty()
            || !self.pending.is_empty()
            || !self.notices.is_empty()
            || (self.follow == Follow::Once && self.finished)
    }

    fn polls_files(&self) -> bool {
        self.follow == Follow::Live && matches!(self.spec.location, Location::Files(_))
    }

    /// journalctl's arguments for the next run, and the entries it must skip.
    fn arguments(&self) -> (Vec<OsString>, Option<(String, u64)>) {
        let mut args: Vec<OsString> = [
            "--output=export",
            "--no-pager",
            "--quiet",
            "--output-fields",
            export::WANTED_FIELDS,
        ]
        .iter()
        .map(OsString::from)
        .collect();
        match &self.spec.location {
            Location::System { flags } => {
                if flags & 1 == 0 {
                    args.push("--merge".into());
                }
                if flags & 4 != 0 {
                    args.push("--system".into());
                }
                if flags & 8 != 0 {
                    args.push("--user".into());
                }
            }
            Location::Directory(dir) => {
                let mut a = OsString::from("--directory=");
                a.push(dir);
                args.push(a);
                // Following without --merge shows only the journal's last boot: entries
                // written before a reboot while rampart was down would be skipped.
                args.push("--merge".into());
            }
            Location::Files(patterns) => {
                for file in JournalSpec::expand_files(patterns) {
                    let mut a = OsString::from("--file=");
                    a.push(file);
                    args.push(a);
                }
            }
        }
        if let Some(ns) = &self.spec.namespace {
            args.push(format!("--namespace={ns}").into());
        }
        if self.follow == Follow::Live && !self.polls_files() {
            // --no-tail: all of it from the start point, not journalctl's last ten.
            args.push("--follow".into());
            args.push("--no-tail".into());
        }
        let mut skip = None;
        match (&self.last, &self.start) {
            (Some(p), _) => {
                let micros = epoch_micros(p.time);
                args.push(since_arg(micros));
                skip = Some((p.cursor.clone(), micros));
            }
            (None, Start::Since(t)) => args.push(since_arg(epoch_micros(*t))),
            (None, Start::Beginning | Start::After(_)) => {}
        }
        args.push("--".into());
        args.extend(self.spec.match_args());
        (args, skip)
    }

    fn report(&mut self, message: String) {
        if self.reported.as_deref() != Some(message.as_str()) {
            self.notices.push(Notice::Backend {
                message: message.clone(),
            });
            self.reported = Some(message);
        }
    }

    fn recovered(&mut self) {
        self.failures = 0;
        if self.reported.take().is_some() {
            self.notices.push(Notice::Backend {
                message: "journalctl is reading the journal again".into(),
            });
        }
    }

    fn schedule_retry(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let delay = Duration::from_millis(500)
            .saturating_mul(1u32 << self.failures.min(7))
            .min(MAX_BACKOFF);
        self.retry_at = Some(Instant::now() + delay);
    }

    /// Starts journalctl when one is due: at start, after a failure's delay, or (for
    /// `journalfiles`) when the files changed.
    fn maybe_spawn(&mut self) {
        if self.child.is_some() || (self.follow == Follow::Once && self.finished) {
            return;
        }
        let now = Instant::now();
        let due = self.retry_at.is_some_and(|t| now >= t);
        let mut files_changed = false;
        if let Location::Files(patterns) = &self.spec.location {
            let stamps = stamp_files(patterns);
            if stamps.is_empty() {
                let message = format!(
                    "no journal file matches {}; waiting for one",
                    patterns.join(" ")
                );
                self.report(message);
                if self.follow == Follow::Once {
                    self.finished = true;
                }
                return;
            }
            files_changed = self.seen_files.as_ref() != Some(&stamps);
            let stale = self
                .last_run
                .is_none_or(|t| now.duration_since(t) >= FILE_REREAD);
            if self.polls_files() && self.retry_at.is_none() && !files_changed && !stale {
                return;
            }
            if self.retry_at.is_some() && !due {
                return;
            }
            self.seen_files = Some(stamps);
        } else if !due {
            return;
        }
        let _ = files_changed;
        let (args, skip) = self.arguments();
        match Child::spawn(&self.spec.program, &args, self.waker.clone()) {
            Ok(child) => {
                self.child = Some(child);
                self.skip = skip;
                self.retry_at = None;
                self.last_run = Some(now);
            }
            Err(e) => {
                let message = format!(
                    "cannot run {}: {e}; the journal is not read until it can be run",
                    self.spec.program.display()
                );
                self.report(message);
                if self.follow == Follow::Once {
                    self.finished = true;
                } else {
                    self.schedule_retry();
                }
            }
        }
    }

    /// Takes the next message from the reader thread, if none is waiting here already.
    /// One at a time: the bounded channel is what keeps a fast journalctl from filling
    /// memory, so nothing is hoarded on this side of it.
    fn collect(&mut self) {
        if !self.pending.is_empty() {
            return;
        }
        if let Some(child) = &self.child
            && let Some(m) = child.try_next()
        {
            self.pending.push_back(m);
        }
    }

    /// journalctl's output ended: find out how, and decide what runs next.
    fn on_end(&mut self, malformed: Option<String>, stderr: String, produced: bool) {
        let Some(child) = self.child.take() else {
            return;
        };
        let ran_for = child.started.elapsed();
        let status = child.finish();
        let success = status.is_some_and(|s| s.success());
        let what = match status {
            Some(s) if s.success() => "ended".to_string(),
            Some(s) => format!("failed ({s})"),
            None => "ended (status unknown)".to_string(),
        };
        let detail = if stderr.is_empty() {
            String::new()
        } else {
            format!(": {}", stderr.lines().collect::<Vec<_>>().join("; "))
        };
        if let Some(m) = malformed {
            self.report(format!("journalctl's output could not be read: {m}"));
            self.finish_or_retry();
            return;
        }
        match self.follow {
            Follow::Once => {
                if !success {
                    self.report(format!("journalctl {what}{detail}"));
                }
                self.finished = true;
            }
            Follow::Live if self.polls_files() => {
                if success {
                    if produced || self.reported.is_some() {
                        self.recovered();
                    }
                } else {
                    self.report(format!(
                        "journalctl {what}{detail}; retrying with a growing delay"
                    ));
                    self.schedule_retry();
                }
            }
            Follow::Live => {
                // A follower is never meant to end.
                self.report(format!(
                    "journalctl {what}{detail}; restarting it with a growing delay"
                ));
                if produced || ran_for > MAX_BACKOFF {
                    self.failures = 0;
                }
                self.schedule_retry();
            }
        }
    }

    fn finish_or_retry(&mut self) {
        if self.follow == Follow::Once {
            self.finished = true;
        } else {
            self.schedule_retry();
        }
    }
}

fn epoch_micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn since_arg(micros: u64) -> OsString {
    format!("--since=@{}.{:06}", micros / 1_000_000, micros % 1_000_000).into()
}

/// Whether `line` was handed out before the position being resumed (`skip`); clears
/// `skip` once the position is passed.
fn already_read(skip: &mut Option<(String, u64)>, line: &JournalLine) -> bool {
    let Some((cursor, micros)) = skip.as_ref() else {
        return false;
    };
    if line.cursor.as_deref() == Some(cursor.as_str()) {
        *skip = None;
        return true;
    }
    if line.realtime.is_some_and(|t| t <= *micros) {
        // Before the position, or beside it in the same microsecond.
        return true;
    }
    // Past the position's time without meeting its entry: the entry is gone (vacuumed,
    // or its file replaced), and everything from here on is new.
    *skip = None;
    false
}

impl LogSource for JournalSource {
    fn read_available(
        &mut self,
        sink: &mut dyn FnMut(LogLine<'_>) -> ControlFlow<()>,
    ) -> Result<ReadStats, SourceError> {
        let mut stats = ReadStats::default();
        let mut produced = false;
        let mut stopped = false;
        'outer: loop {
            while let Some(line) = self.unread.pop_front() {
                if already_read(&mut self.skip, &line) {
                    continue;
                }
                stats.lines += 1;
                stats.bytes += line.bytes.len() as u64 + 1;
                if line.cut {
                    stats.truncated_lines += 1;
                }
                produced = true;
                let flow = sink(LogLine {
                    bytes: &line.bytes,
                    origin: &self.origin,
                    time: line.time,
                    truncated: line.cut,
                });
                if let (Some(cursor), Some(micros)) = (line.cursor, line.realtime) {
                    self.last = Some(JournalPosition {
                        cursor,
                        time: UNIX_EPOCH + Duration::from_micros(micros),
                    });
                }
                if flow.is_break() {
                    stopped = true;
                    break 'outer;
                }
            }
            if stats.lines >= READ_BUDGET {
                // More is there; the caller gets to save positions and unban first, and
                // its next wait returns at once.
                break;
            }
            self.collect();
            match self.pending.pop_front() {
                Some(Message::Lines(lines)) => self.unread.extend(lines),
                Some(Message::End { malformed, stderr }) => {
                    self.on_end(malformed, stderr, produced);
                }
                None => break,
            }
        }
        if produced && self.reported.is_some() && self.child.is_some() {
            self.recovered();
        }
        if !stopped {
            self.maybe_spawn();
        }
        stats.notices = std::mem::take(&mut self.notices);
        Ok(stats)
    }

    fn poll_fds(&self) -> Vec<BorrowedFd<'_>> {
        // The reader thread wakes this after every batch it hands over.
        vec![self.listener.fd()]
    }

    fn poll_deadline(&self) -> Option<Instant> {
        if self.has_news() {
            return Some(Instant::now());
        }
        if self.child.is_some() {
            return None;
        }
        let retry = self.retry_at;
        let look = self.polls_files().then_some(self.next_file_look);
        match (retry, look) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll(&mut self) -> Result<Wake, SourceError> {
        if self.listener.take() {
            self.collect();
            return Ok(if self.has_news() {
                Wake::Ready
            } else {
                Wake::Woken
            });
        }
        self.collect();
        if self.has_news() {
            return Ok(Wake::Ready);
        }
        let now = Instant::now();
        if self.child.is_none() && self.retry_at.is_some_and(|t| now >= t) {
            return Ok(Wake::Ready);
        }
        if self.polls_files() && self.child.is_none() && now >= self.next_file_look {
            self.next_file_look = now + FILE_POLL;
            if let Location::Files(patterns) = &self.spec.location {
                let stamps = stamp_files(patterns);
                let stale = self.last_run.is_none_or(|t| t.elapsed() >= FILE_REREAD);
                if (self.seen_files.as_ref() != Some(&stamps) || stale) && self.retry_at.is_none() {
                    return Ok(Wake::Ready);
                }
            }
        }
        Ok(Wake::Timeout)
    }

    fn waker(&self) -> Waker {
        self.waker.clone()
    }

    fn positions(&self) -> Vec<Position> {
        self.last.iter().cloned().map(Position::Journal).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn backend_options() {
        let spec = JournalSpec::from_backend_options(&[]).unwrap();
        assert_eq!(spec.location, Location::System { flags: 4 });
        let spec = JournalSpec::from_backend_options(&opts(&[("journalpath", "/j")])).unwrap();
        assert_eq!(spec.location, Location::Directory("/j".into()));
        let spec = JournalSpec::from_backend_options(&opts(&[(
            "journalfiles",
            "/a.journal  /b*.journal",
        )]))
        .unwrap();
        assert_eq!(
            spec.location,
            Location::Files(vec!["/a.journal".into(), "/b*.journal".into()])
        );
        let spec = JournalSpec::from_backend_options(&opts(&[
            ("journalflags", "1"),
            ("rotated", "on"),
            ("namespace", "ns"),
        ]))
        .unwrap();
        assert_eq!(spec.location, Location::System { flags: 1 });
        assert!(spec.rotated);
        assert_eq!(spec.namespace.as_deref(), Some("ns"));
        assert!(JournalSpec::from_backend_options(&opts(&[("journalflags", "x")])).is_err());
        assert!(JournalSpec::from_backend_options(&opts(&[("bogus", "1")])).is_err());
        assert!(
            JournalSpec::from_backend_options(&opts(&[
                ("journalpath", "/j"),
                ("journalfiles", "/f")
            ]))
            .is_err()
        );
    }

    #[test]
    fn matches_are_checked_and_joined() {
        let spec = JournalSpec::from_backend_options(&[]).unwrap();
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let spec = spec
            .with_matches(vec![
                words("_SYSTEMD_UNIT=sshd.service + _COMM=sshd"),
                words("_COMM=dropbear"),
            ])
            .unwrap();
        assert_eq!(
            spec.match_args(),
            [
                "_SYSTEMD_UNIT=sshd.service",
                "+",
                "_COMM=sshd",
                "+",
                "_COMM=dropbear"
            ]
            .map(OsString::from)
        );
        assert_eq!(
            spec.describe_matches(),
            "_SYSTEMD_UNIT=sshd.service + _COMM=sshd + _COMM=dropbear"
        );
        for bad in ["/usr/sbin/sshd", "=x", "lower=x", "NOEQUALS"] {
            let spec = JournalSpec::from_backend_options(&[]).unwrap();
            assert!(spec.with_matches(vec![vec![bad.into()]]).is_err(), "{bad}");
        }
    }

    #[test]
    fn arguments_resume_at_the_cursor() {
        let spec = JournalSpec::from_backend_options(&opts(&[("journalpath", "/j")])).unwrap();
        let at = JournalPosition {
            cursor: "s=abc;i=5".into(),
            time: UNIX_EPOCH + Duration::from_secs(100),
        };
        let source = JournalSource::new(spec.clone(), Start::After(at), Follow::Live).unwrap();
        let (args, skip) = source.arguments();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(skip, Some(("s=abc;i=5".to_string(), 100_000_000)));
        assert!(args.contains(&"--since=@100.000000".to_string()));
        assert!(args.contains(&"--directory=/j".to_string()));
        assert!(args.contains(&"--follow".to_string()));
        let since = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let source = JournalSource::new(spec, Start::Since(since), Follow::Once).unwrap();
        let (args, skip) = source.arguments();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(skip, None);
        assert!(args.contains(&"--since=@1700000000.000000".to_string()));
        assert!(!args.contains(&"--follow".to_string()));
    }

    #[test]
    fn resuming_skips_up_to_the_cursor_or_past_its_time() {
        let line = |cursor: &str, realtime| JournalLine {
            bytes: Vec::new(),
            time: None,
            realtime: Some(realtime),
            cursor: Some(cursor.to_string()),
            cut: false,
        };
        // The cursor's entry is there: everything up to it is skipped, then nothing.
        let mut skip = Some(("c2".to_string(), 200));
        assert!(already_read(&mut skip, &line("c1", 200)));
        assert!(already_read(&mut skip, &line("c2", 200)));
        assert!(!already_read(&mut skip, &line("c3", 200)));
        assert_eq!(skip, None);
        // It was vacuumed: the first later entry ends the skipping.
        let mut skip = Some(("gone".to_string(), 200));
        assert!(already_read(&mut skip, &line("c1", 150)));
        assert!(!already_read(&mut skip, &line("c4", 201)));
        assert!(!already_read(&mut skip, &line("c5", 100)));
    }

    #[test]
    fn a_missing_journalctl_is_reported_once_and_does_not_panic() {
        let mut spec = JournalSpec::from_backend_options(&opts(&[("journalpath", "/j")])).unwrap();
        spec.program = PathBuf::from("/nonexistent/journalctl");
        let mut source = JournalSource::new(spec, Start::Beginning, Follow::Live).unwrap();
        let mut reports = 0;
        for _ in 0..3 {
            let stats = source
                .read_available(&mut |_| ControlFlow::Continue(()))
                .unwrap();
            reports += stats.notices.len();
            assert_eq!(stats.lines, 0);
        }
        assert_eq!(reports, 1);
        // The retry waits: no busy loop.
        let started = Instant::now();
        let _ = source.wait(Duration::from_millis(300)).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
}
