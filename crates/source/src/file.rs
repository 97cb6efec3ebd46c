//! [`FileSource`]: a jail's `logpath` patterns, the files they match, and the wake-ups.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::ops::ControlFlow;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use crate::digest::Algorithm;
use crate::reader::{FileId, Reader, Tally};
use crate::scratch;
use crate::sys::{self, WakeReceiver, WakeSender};
use crate::{
    Error, FilePosition, LogLine, LogSource, Notice, OpenedAt, Position, ReadStats, Rotation, Wake,
    Waker,
};

/// Where reading starts in a file that exists when the source is created (fail2ban's
/// `logpath = FILE head|tail`). Files that appear later are always read from their start:
/// everything in them is new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// From the saved position if the file is the same one, else from the beginning.
    #[default]
    Head,
    /// From the end; as in fail2ban, a saved position is not used.
    Tail,
}

/// One `logpath` entry: a path or glob pattern and where to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPath {
    pub pattern: String,
    pub start: StartAt,
}

impl LogPath {
    /// Parses one line of a `logpath` value. As in fail2ban, the text after the last space
    /// must be `head` or `tail` (so a path cannot contain a space).
    pub fn parse(spec: &str) -> Result<LogPath, Error> {
        let spec = spec.trim();
        let invalid = |reason: &str| Error::LogPath {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (pattern, start) = match spec.rsplit_once(' ') {
            None => (spec, StartAt::Head),
            Some((path, word)) => {
                let start = if word.eq_ignore_ascii_case("head") {
                    StartAt::Head
                } else if word.eq_ignore_ascii_case("tail") {
                    StartAt::Tail
                } else {
                    return Err(invalid("the word after the path must be head or tail"));
                };
                (path.trim_end(), start)
            }
        };
        if pattern.is_empty() {
            return Err(invalid("no path"));
        }
        Ok(LogPath {
            pattern: pattern.to_string(),
            start,
        })
    }

    /// Parses a whole (multi-line) `logpath` value; blank lines are ignored.
    pub fn parse_list(value: &str) -> Result<Vec<LogPath>, Error> {
        value
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(LogPath::parse)
            .collect()
    }
}

/// How the source learns that files changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// inotify, falling back to polling if inotify cannot be set up (fail2ban's `auto`).
    Auto,
    /// inotify (fail2ban's `pyinotify`); an error if it cannot be set up.
    Inotify,
    /// `stat` every `poll_interval` (fail2ban's `polling`).
    Polling,
}

/// Reads a jail's `backend` value for a file source. Arguments in brackets are accepted
/// and ignored (fail2ban's file backends take none that matter here); `systemd` is not a
/// file backend and is refused, as is the long-gone `gamin`.
pub fn parse_backend(value: &str) -> Result<Backend, Error> {
    let name = value.trim();
    let name = name.split_once('[').map_or(name, |(n, _)| n).trim();
    match name.to_ascii_lowercase().as_str() {
        "auto" => Ok(Backend::Auto),
        "pyinotify" | "inotify" => Ok(Backend::Inotify),
        "polling" => Ok(Backend::Polling),
        _ => Err(Error::Backend(value.trim().to_string())),
    }
}

/// A position saved by a previous run, as the store returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedPosition {
    /// The saved first-line digest (SHA-1 or MD5 hex; empty or `None`: no first line).
    pub first_line_hash: Option<String>,
    pub offset: u64,
}

/// How the source asks for the position a previous run saved for a path.
type SavedLookup<'a> = dyn FnMut(&Path) -> Option<SavedPosition> + 'a;

/// Tuning of a [`FileSource`]. The defaults suit a daemon.
#[derive(Debug, Clone)]
pub struct FileSourceOptions {
    pub backend: Backend,
    /// How often the polling backend stats the files. fail2ban has no such option: its
    /// polling loop checks after 0.2, 0.4, 0.6 and 0.8 s and starts over, about every
    /// half second on average, which is the default here.
    pub poll_interval: Duration,
    /// How often the glob patterns are re-expanded and every file re-checked whatever the
    /// events said (the safety net under inotify).
    pub sweep_interval: Duration,
    /// Lines longer than this are cut to it (and counted); the rest is skipped.
    pub max_line_bytes: usize,
    /// How long a rotated-away file is still read after it last grew, for writers that
    /// reopen their log late.
    pub rotation_grace: Duration,
}

impl Default for FileSourceOptions {
    fn default() -> Self {
        FileSourceOptions {
            backend: Backend::Auto,
            poll_interval: Duration::from_millis(500),
            sweep_interval: Duration::from_secs(5),
            max_line_bytes: 1 << 20,
            rotation_grace: Duration::from_secs(5),
        }
    }
}

/// A pattern and what is known about it.
#[derive(Debug)]
struct PatternState {
    spec: LogPath,
    glob: Option<glob::Pattern>,
    /// The directory whose entries can change what the pattern matches.
    directory: PathBuf,
    reported_empty: bool,
}

/// A path being followed.
#[derive(Debug)]
struct Tracked {
    /// Literal paths are waited for forever; glob matches are dropped once gone.
    literal: bool,
    current: Option<Reader>,
    /// Earlier files at this path, still read until they stop growing.
    retired: Vec<Reader>,
    reported_missing: bool,
    last_error: Option<(&'static str, io::ErrorKind)>,
    /// Found by re-expanding a pattern after the start and not opened yet: it may be an
    /// old file renamed or copied into the pattern (see `open_current`).
    discovered: bool,
    /// The path names a copy of a file already read, which is not read.
    ignored: Option<FileId>,
    /// What the path named when last looked at without opening it, so that polling
    /// wakes up for it only when that changes.
    unopened: Option<(FileId, u64)>,
    /// Opened at creation with `head` and not read yet: `seek_to_time` may move it.
    seek_allowed: bool,
}

enum Watcher {
    Inotify(InotifyWatcher),
    Polling { next_poll: Instant },
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Watcher::Inotify(w) => f
                .debug_struct("Inotify")
                .field("directories", &w.directories.keys().collect::<Vec<_>>())
                .finish(),
            Watcher::Polling { .. } => f.write_str("Polling"),
        }
    }
}

struct InotifyWatcher {
    inotify: Inotify,
    directories: HashMap<PathBuf, WatchDescriptor>,
    reported_watch_failure: bool,
}

const FILE_EVENTS: WatchMask = WatchMask::MODIFY
    .union(WatchMask::ATTRIB)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::DELETE_SELF);
const DIRECTORY_EVENTS: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::ONLYDIR);

impl InotifyWatcher {
    fn new() -> io::Result<InotifyWatcher> {
        Ok(InotifyWatcher {
            inotify: Inotify::init()?,
            directories: HashMap::new(),
            reported_watch_failure: false,
        })
    }

    /// Reads the pending events (without blocking) into hints.
    fn take_events(&mut self, hints: &mut Hints) -> io::Result<()> {
        let mut buffer = scratch::lend();
        let taken = self.take_events_into(&mut buffer, hints);
        scratch::give_back(buffer);
        taken
    }

    fn take_events_into(&mut self, buffer: &mut [u8], hints: &mut Hints) -> io::Result<()> {
        loop {
            let events = match self.inotify.read_events(buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            for event in events {
                hints.any = true;
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    hints.everything = true;
                    hints.rescan = true;
                    continue;
                }
                let directory = self
                    .directories
                    .iter()
                    .find(|(_, wd)| **wd == event.wd)
                    .map(|(dir, _)| dir.clone());
                match (directory, event.name) {
                    (Some(dir), Some(name)) => {
                        hints.entries.push(dir.join(name));
                        hints.rescan = true;
                    }
                    (Some(dir), None) => {
                        if event.mask.intersects(
                            EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF,
                        ) {
                            // The directory is gone or moved: forget its watch so the
                            // next sweep watches whatever then has its name.
                            self.directories.remove(&dir);
                            hints.everything = true;
                            hints.rescan = true;
                        }
                    }
                    (None, _) => hints.files.push(event.wd.clone()),
                }
            }
        }
        Ok(())
    }
}

/// What inotify said since the last look: which paths may have changed.
#[derive(Debug, Default)]
struct Hints {
    any: bool,
    /// Look at everything (queue overflow, a watched directory gone).
    everything: bool,
    /// A directory entry changed: the patterns may match something else.
    rescan: bool,
    files: Vec<WatchDescriptor>,
    entries: Vec<PathBuf>,
}

/// Follows the files of one jail's `logpath` patterns. See the crate documentation.
#[derive(Debug)]
pub struct FileSource {
    patterns: Vec<PatternState>,
    /// Boxed: a map node has room for eleven entries, and most jails follow one file.
    files: BTreeMap<PathBuf, Box<Tracked>>,
    options: FileSourceOptions,
    watcher: Watcher,
    wake_rx: WakeReceiver,
    wake_tx: Arc<WakeSender>,
    notices: Vec<Notice>,
    /// The read buffer, lent by the reading thread for the time of a read (see
    /// [`scratch`]); empty in between.
    scratch: Vec<u8>,
    next_sweep: Instant,
    rescan_due: bool,
    /// First-line digests of files read so far, to recognise copies of them.
    seen_first_lines: VecDeque<String>,
    /// Paths inotify says may have changed (all of them when `all_dirty`); the others
    /// are left alone until the next sweep.
    dirty: HashSet<PathBuf>,
    all_dirty: bool,
}

impl FileSource {
    /// Expands the patterns and opens the files they match now, each at its start
    /// position: `tail` at the end, `head` at the saved position `saved(path)` returns if
    /// its first-line fingerprint still matches, else at the beginning. Files that do not
    /// exist yet are waited for. Call [`LogSource::read_available`] right after.
    pub fn new(
        paths: &[LogPath],
        options: FileSourceOptions,
        saved: &mut dyn FnMut(&Path) -> Option<SavedPosition>,
    ) -> Result<FileSource, Error> {
        let mut patterns = Vec::new();
        for spec in paths {
            patterns.push(compile(spec)?);
        }
        let mut notices = Vec::new();
        let watcher = match options.backend {
            Backend::Polling => Watcher::Polling {
                next_poll: Instant::now(),
            },
            Backend::Inotify => Watcher::Inotify(InotifyWatcher::new().map_err(Error::Inotify)?),
            Backend::Auto => match InotifyWatcher::new() {
                Ok(w) => Watcher::Inotify(w),
                Err(e) => {
                    notices.push(Notice::Backend {
                        message: format!("inotify is unavailable ({e}); polling the log files"),
                    });
                    Watcher::Polling {
                        next_poll: Instant::now(),
                    }
                }
            },
        };
        let (tx, rx) = sys::wake_channel().map_err(Error::Waker)?;
        let mut source = FileSource {
            patterns,
            files: BTreeMap::new(),
            scratch: Vec::new(),
            next_sweep: Instant::now() + options.sweep_interval,
            options,
            watcher,
            wake_rx: rx,
            wake_tx: Arc::new(tx),
            notices,
            rescan_due: false,
            seen_first_lines: VecDeque::new(),
            dirty: HashSet::new(),
            all_dirty: true,
        };
        source.watch_directories();
        source.expand_patterns(Some(saved));
        Ok(source)
    }

    /// The paths currently followed (present or waited for).
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }

    /// Skips, in each file that is to be read from its beginning or from a saved position
    /// (`head`) and has not been read yet, the lines older than `not_before` (Unix
    /// seconds), found by bisection with `line_time` (the caller's date detection; `None`
    /// for a line without a date). fail2ban does this with "now - findtime" so that a
    /// long log is not read whole at start. Call it right after [`FileSource::new`].
    pub fn seek_to_time(
        &mut self,
        not_before: f64,
        line_time: &mut dyn FnMut(&[u8]) -> Option<f64>,
    ) {
        let max_line = self.options.max_line_bytes;
        for (path, tracked) in &mut self.files {
            if !std::mem::take(&mut tracked.seek_allowed) {
                continue;
            }
            let Some(reader) = tracked.current.as_mut() else {
                continue;
            };
            let from = reader.offset();
            match reader.seek_to_time(not_before, line_time, max_line) {
                Ok(offset) if offset != from => self.notices.push(Notice::Skipped {
                    path: path.clone(),
                    from,
                    to: offset,
                }),
                Ok(_) => {}
                Err(error) => self.notices.push(Notice::Io {
                    path: path.clone(),
                    doing: "cannot look for the start time in",
                    error,
                }),
            }
        }
    }

    fn add_pattern(&mut self, spec: &LogPath) -> Result<(), Error> {
        if self.patterns.iter().any(|p| p.spec.pattern == spec.pattern) {
            return Ok(());
        }
        self.patterns.push(compile(spec)?);
        // Only files not followed yet are opened, at the new pattern's position; none
        // has a saved position worth resuming (fail2ban's addlogpath starts afresh).
        self.expand_patterns(Some(&mut |_: &Path| None));
        Ok(())
    }

    fn remove_pattern(&mut self, pattern: &str) -> bool {
        let before = self.patterns.len();
        self.patterns.retain(|p| p.spec.pattern != pattern);
        if self.patterns.len() == before {
            return false;
        }
        let mut kept: HashSet<PathBuf> = HashSet::new();
        for p in &self.patterns {
            kept.extend(expand(p));
            if p.glob.is_none() {
                kept.insert(PathBuf::from(&p.spec.pattern));
            }
        }
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|path| !kept.contains(*path))
            .cloned()
            .collect();
        for path in gone {
            if let Some(tracked) = self.files.remove(&path) {
                for reader in tracked.current.iter().chain(&tracked.retired) {
                    self.unwatch_file(reader);
                }
            }
            self.dirty.remove(&path);
        }
        true
    }

    /// Whether the source fell back to (or was asked for) polling.
    pub fn is_polling(&self) -> bool {
        matches!(self.watcher, Watcher::Polling { .. })
    }

    fn watch_directories(&mut self) {
        let Watcher::Inotify(w) = &mut self.watcher else {
            return;
        };
        let mut wanted: Vec<&Path> = self
            .patterns
            .iter()
            .map(|p| p.directory.as_path())
            .collect();
        for path in self.files.keys() {
            if let Some(parent) = path.parent() {
                wanted.push(parent);
            }
        }
        for dir in wanted {
            if dir.as_os_str().is_empty() || w.directories.contains_key(dir) {
                continue;
            }
            // A directory that does not exist yet is retried at the next sweep.
            if let Ok(wd) = w.inotify.watches().add(dir, DIRECTORY_EVENTS) {
                w.directories.insert(dir.to_path_buf(), wd);
            }
        }
    }

    /// Adds the files the patterns match that are not followed yet. With `saved` (only at
    /// creation) files start at their configured position; later ones at their start.
    fn expand_patterns(&mut self, mut saved: Option<&mut SavedLookup<'_>>) {
        let mut found: Vec<(PathBuf, StartAt, bool)> = Vec::new();
        for pattern in &mut self.patterns {
            let matches = expand(pattern);
            if matches.is_empty() {
                if !pattern.reported_empty {
                    pattern.reported_empty = true;
                    self.notices.push(Notice::NothingMatches {
                        pattern: pattern.spec.pattern.clone(),
                    });
                }
            } else {
                pattern.reported_empty = false;
            }
            for path in matches {
                found.push((path, pattern.spec.start, pattern.glob.is_none()));
            }
            if pattern.glob.is_none() {
                // A literal path is followed even while missing, to catch its creation.
                let path = PathBuf::from(&pattern.spec.pattern);
                found.push((path, pattern.spec.start, true));
            }
        }
        for (path, start, literal) in found {
            if let Some(tracked) = self.files.get_mut(&path) {
                tracked.literal |= literal;
                continue;
            }
            let mut tracked = Box::new(Tracked {
                literal,
                current: None,
                retired: Vec::new(),
                reported_missing: false,
                last_error: None,
                discovered: saved.is_none() && !literal,
                ignored: None,
                unopened: None,
                seek_allowed: false,
            });
            match saved.as_deref_mut() {
                Some(saved) => self.open_initial(&path, start, &mut tracked, saved),
                None => {
                    // Opened by the next read (at its start), which also reports it.
                }
            }
            self.files.insert(path, tracked);
        }
        self.watch_directories();
    }

    fn open_initial(
        &mut self,
        path: &Path,
        start: StartAt,
        tracked: &mut Tracked,
        saved: &mut dyn FnMut(&Path) -> Option<SavedPosition>,
    ) {
        let mut reader = match Reader::open(path) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracked.reported_missing = true;
                return;
            }
            Err(e) => {
                report_error(&mut self.notices, tracked, path, "cannot open", e);
                return;
            }
        };
        let how = match start {
            StartAt::Tail => match reader.start_at_tail(self.options.max_line_bytes) {
                Ok(()) => OpenedAt::Tail,
                Err(e) => {
                    report_error(&mut self.notices, tracked, path, "cannot read", e);
                    return;
                }
            },
            StartAt::Head => match saved(path) {
                Some(position) if self.same_file(&reader, path, &position) => {
                    reader.resume_at(position.offset);
                    OpenedAt::Resumed
                }
                _ => OpenedAt::Head,
            },
        };
        self.notices.push(Notice::Opened {
            path: path.to_path_buf(),
            offset: reader.offset(),
            how,
        });
        self.watch_file(path, &mut reader);
        tracked.seek_allowed = how != OpenedAt::Tail;
        tracked.current = Some(reader);
    }

    /// Whether a saved position belongs to the file now at `path` (fail2ban's rule: the
    /// first-line digests are equal, an empty digest meaning no complete first line).
    fn same_file(&mut self, reader: &Reader, path: &Path, saved: &SavedPosition) -> bool {
        let saved_hash = saved.first_line_hash.as_deref().unwrap_or("").trim();
        if saved_hash.is_empty() {
            return reader.first_line_hash().is_empty();
        }
        let Some(algorithm) = Algorithm::for_hex_len(saved_hash.len()) else {
            return false;
        };
        match reader.first_line_digest(algorithm) {
            Ok(current) => !current.is_empty() && current.eq_ignore_ascii_case(saved_hash),
            Err(error) => {
                self.notices.push(Notice::Io {
                    path: path.to_path_buf(),
                    doing: "cannot read the first line of",
                    error,
                });
                false
            }
        }
    }

    fn watch_file(&mut self, path: &Path, reader: &mut Reader) {
        if let Watcher::Inotify(w) = &mut self.watcher {
            match w.inotify.watches().add(path, FILE_EVENTS) {
                Ok(wd) => reader.watch = Some(wd),
                // Gone already: the next look handles it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Typically the per-user watch limit: the file is still read, at
                    // each sweep instead of at once.
                    if !std::mem::replace(&mut w.reported_watch_failure, true) {
                        self.notices.push(Notice::Backend {
                            message: format!(
                                "cannot watch {} with inotify ({e}); it is checked every {:?} instead",
                                path.display(),
                                self.options.sweep_interval
                            ),
                        });
                    }
                }
            }
        }
    }

    fn unwatch_file(&mut self, reader: &Reader) {
        let (Watcher::Inotify(w), Some(wd)) = (&mut self.watcher, &reader.watch) else {
            return;
        };
        // The kernel has one watch per inode; keep it while another reader uses it.
        let shared = self.files.values().any(|t| {
            t.current
                .iter()
                .chain(&t.retired)
                .any(|r| r.watch.as_ref() == Some(wd))
        });
        if !shared {
            let _ = w.inotify.watches().remove(wd.clone());
        }
    }

    /// Reads the rotated-away files of one path (closing those idle for the grace period).
    fn drain_retired(
        &mut self,
        path: &Path,
        tracked: &mut Tracked,
        sink: &mut dyn FnMut(LogLine<'_>) -> ControlFlow<()>,
        tally: &mut Tally,
    ) -> ControlFlow<()> {
        let max_line = self.options.max_line_bytes;
        let grace = self.options.rotation_grace;
        let mut index = 0;
        while index < tracked.retired.len() {
            let reader = &mut tracked.retired[index];
            match reader.read_lines(
                path,
                max_line,
                &mut self.scratch,
                sink,
                tally,
                &mut self.notices,
            ) {
                Ok(ControlFlow::Break(())) => return ControlFlow::Break(()),
                Ok(ControlFlow::Continue(())) => {}
                Err(error) => {
                    self.notices.push(Notice::Io {
                        path: path.to_path_buf(),
                        doing: "cannot read the rotated file of",
                        error,
                    });
                    // An unreadable old file cannot be drained; let it go.
                    reader.last_growth = Instant::now() - grace;
                }
            }
            if reader.last_growth.elapsed() >= grace {
                let reader = tracked.retired.remove(index);
                let Some(mut reader) = self.hand_over(reader) else {
                    continue;
                };
                let flow = reader.flush_partial(path, sink, tally);
                self.unwatch_file(&reader);
                if flow.is_break() {
                    return flow;
                }
            } else {
                index += 1;
            }
        }
        ControlFlow::Continue(())
    }

    /// Reads the file now at one path, switching to a new file only after the old one
    /// was read to its end.
    fn service(
        &mut self,
        path: &Path,
        tracked: &mut Tracked,
        sink: &mut dyn FnMut(LogLine<'_>) -> ControlFlow<()>,
        tally: &mut Tally,
    ) -> ControlFlow<()> {
        let max_line = self.options.max_line_bytes;
        let now_at_path = std::fs::metadata(path);
        let replaced = match (&now_at_path, &tracked.current) {
            (Ok(meta), Some(current)) => FileId::of(meta) != current.id,
            (Err(_), Some(_)) => now_at_path
                .as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::NotFound),
            (_, None) => false,
        };
        if replaced && let Some(mut old) = tracked.current.take() {
            let flow = old.read_lines(
                path,
                max_line,
                &mut self.scratch,
                sink,
                tally,
                &mut self.notices,
            );
            match flow {
                Ok(ControlFlow::Break(())) => {
                    // Not drained yet: keep it current until the sink takes more.
                    tracked.current = Some(old);
                    return ControlFlow::Break(());
                }
                Ok(ControlFlow::Continue(())) => {}
                Err(error) => self.notices.push(Notice::Io {
                    path: path.to_path_buf(),
                    doing: "cannot finish reading the rotated file",
                    error,
                }),
            }
            old.last_growth = Instant::now();
            tracked.retired.push(old);
            if now_at_path.is_ok() {
                self.notices.push(Notice::Rotated {
                    path: path.to_path_buf(),
                    reason: Rotation::Replaced,
                });
            }
        }

        match &now_at_path {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !tracked.reported_missing {
                    tracked.reported_missing = true;
                    self.notices.push(Notice::Missing {
                        path: path.to_path_buf(),
                    });
                }
            }
            Err(_) => {
                if let Err(e) = now_at_path {
                    report_error(&mut self.notices, tracked, path, "cannot stat", e);
                }
            }
            Ok(meta) if tracked.current.is_none() => {
                let id = FileId::of(meta);
                if tracked.ignored.is_some_and(|ignored| ignored != id) {
                    // Something else has the name now: look at it afresh.
                    tracked.ignored = None;
                    tracked.discovered = true;
                }
                if tracked.ignored.is_none() {
                    self.open_current(path, tracked);
                }
                tracked.unopened = tracked.current.is_none().then_some((id, meta.len()));
            }
            Ok(_) => {}
        }

        if !check_current(path, tracked, &mut self.notices, &mut self.seen_first_lines) {
            return ControlFlow::Continue(());
        }
        let Some(reader) = tracked.current.as_mut() else {
            return ControlFlow::Continue(());
        };
        match reader.read_lines(
            path,
            max_line,
            &mut self.scratch,
            sink,
            tally,
            &mut self.notices,
        ) {
            Ok(flow) => {
                tracked.last_error = None;
                flow
            }
            Err(e) => {
                report_error(&mut self.notices, tracked, path, "cannot read", e);
                ControlFlow::Continue(())
            }
        }
    }

    /// Opens the file now at `path`, which appeared after the start (or replaced the one
    /// read before), from its beginning: everything in it is new. Except when it is not
    /// new at all, which re-expanding a broad pattern (`auth.log*`) runs into at every
    /// rotation:
    /// - a file still being read under another name (renamed into the pattern) is left
    ///   to that reader, which moves here when done (`hand_over`);
    /// - a file beginning with a first line already read is a copy and is not read.
    fn open_current(&mut self, path: &Path, tracked: &mut Tracked) {
        let mut reader = match Reader::open(path) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                report_error(&mut self.notices, tracked, path, "cannot open", e);
                return;
            }
        };
        tracked.reported_missing = false;
        tracked.last_error = None;
        let discovered = std::mem::take(&mut tracked.discovered);
        if let Some(i) = tracked.retired.iter().position(|r| r.id == reader.id) {
            tracked.current = Some(tracked.retired.remove(i));
            return;
        }
        let how = OpenedAt::Head;
        if discovered {
            if self.is_being_read(reader.id) {
                // Its lines come before those of the file that replaced it under its old
                // name, so it is read there until drained, then moves here.
                tracked.discovered = true;
                return;
            }
            let hash = reader.first_line_hash();
            if hash.is_empty() && reader.size().map_or(true, |size| size > 0) {
                // Not recognisable yet (a copy being made starts like this): looked at
                // again once its first line is complete. Waiting loses nothing.
                tracked.discovered = true;
                return;
            }
            if self.seen_first_lines.iter().any(|h| h == hash) {
                // A copy (copytruncate's, or a backup) of a file read before: its lines
                // were read from the original, or were lost with its truncation.
                tracked.ignored = Some(reader.id);
                self.notices.push(Notice::CopyIgnored {
                    path: path.to_path_buf(),
                });
                return;
            }
        }
        self.notices.push(Notice::Opened {
            path: path.to_path_buf(),
            offset: reader.offset(),
            how,
        });
        self.watch_file(path, &mut reader);
        tracked.current = Some(reader);
    }

    /// Whether some path has file `id` open (the path being serviced excepted).
    fn is_being_read(&self, id: FileId) -> bool {
        self.files
            .values()
            .any(|t| t.current.iter().chain(&t.retired).any(|r| r.id == id))
    }

    /// A drained rotated file that another followed path now names (a broad pattern
    /// matching rotated names) goes on being read there, where it was; otherwise it is
    /// given back to be closed.
    fn hand_over(&mut self, reader: Reader) -> Option<Reader> {
        let id = reader.id;
        let taker = self.files.iter_mut().find(|(path, t)| {
            t.current.is_none() && std::fs::metadata(path).is_ok_and(|m| FileId::of(&m) == id)
        });
        let Some((path, taker)) = taker else {
            return Some(reader);
        };
        self.notices.push(Notice::Opened {
            path: path.clone(),
            offset: reader.offset(),
            how: OpenedAt::Renamed,
        });
        taker.discovered = false;
        taker.current = Some(reader);
        None
    }

    /// Reads inotify's pending events (if inotify is used) and marks what they concern.
    fn take_hints(&mut self) -> Result<bool, Error> {
        let Watcher::Inotify(w) = &mut self.watcher else {
            return Ok(false);
        };
        let mut hints = Hints::default();
        w.take_events(&mut hints).map_err(Error::Wait)?;
        self.rescan_due |= hints.rescan;
        self.all_dirty |= hints.everything;
        for wd in &hints.files {
            for (path, tracked) in &self.files {
                let watched = tracked
                    .current
                    .iter()
                    .chain(&tracked.retired)
                    .any(|r| r.watch.as_ref() == Some(wd));
                if watched {
                    self.dirty.insert(path.clone());
                }
            }
        }
        self.dirty.extend(hints.entries);
        Ok(hints.any)
    }

    /// Whether a path must be looked at in this read: inotify said so, or inotify cannot
    /// say (polling, no watch on the file), or it is in a state that is re-checked at
    /// every read (waiting for a file, draining a rotated one).
    fn due(&self, path: &Path, tracked: &Tracked) -> bool {
        self.all_dirty
            || self.dirty.contains(path)
            || !tracked.retired.is_empty()
            || tracked.current.as_ref().is_none_or(|r| r.watch.is_none())
    }

    /// The sink stopped the read: whatever this read was to look at is still to be looked
    /// at (a second look at a path already read costs a stat).
    fn after_break(&mut self, was_all: bool, paths: &[PathBuf]) {
        self.all_dirty |= was_all;
        self.dirty.extend(paths.iter().cloned());
    }

    fn stats(&mut self, tally: Tally) -> ReadStats {
        ReadStats {
            lines: tally.lines,
            bytes: tally.bytes,
            truncated_lines: tally.truncated_lines,
            notices: std::mem::take(&mut self.notices),
        }
    }

    /// True when some file looks different from what was read (the polling backend's
    /// test, and the truth under inotify's hints).
    fn anything_changed(&self) -> bool {
        self.files.iter().any(|(path, tracked)| {
            let readers_news = tracked
                .current
                .iter()
                .chain(&tracked.retired)
                .any(|r| r.has_news().unwrap_or(true));
            let identity_changed = match (std::fs::metadata(path), &tracked.current) {
                (Ok(meta), Some(current)) => FileId::of(&meta) != current.id,
                (Ok(meta), None) => tracked.unopened != Some((FileId::of(&meta), meta.len())),
                (Err(_), Some(_)) => true,
                (Err(_), None) => false,
            };
            readers_news || identity_changed
        })
    }

    /// The next moment a read is due whatever happens: the sweep, or a retired file's
    /// grace running out.
    fn next_deadline(&self) -> Instant {
        let grace = self.options.rotation_grace;
        self.files
            .values()
            .flat_map(|t| &t.retired)
            .map(|r| r.last_growth + grace)
            .fold(self.next_sweep, Instant::min)
    }
}

/// Checks the open file of a path for truncation or rewriting (restarting it at 0), after
/// noting its first line, by which copies of it are recognised. False if the file could
/// not be checked.
fn check_current(
    path: &Path,
    tracked: &mut Tracked,
    notices: &mut Vec<Notice>,
    seen: &mut VecDeque<String>,
) -> bool {
    let Some(reader) = tracked.current.as_mut() else {
        return true;
    };
    remember_first_line(seen, reader.first_line_hash());
    match reader.check() {
        Ok(Some(reason)) => {
            notices.push(Notice::Rotated {
                path: path.to_path_buf(),
                reason,
            });
            true
        }
        Ok(None) => true,
        Err(e) => {
            report_error(notices, tracked, path, "cannot stat", e);
            false
        }
    }
}

fn remember_first_line(seen: &mut VecDeque<String>, hash: &str) {
    const KEPT: usize = 64;
    if hash.is_empty() || seen.iter().any(|h| h == hash) {
        return;
    }
    if seen.len() == KEPT {
        seen.pop_front();
    }
    seen.push_back(hash.to_string());
}

fn report_error(
    notices: &mut Vec<Notice>,
    tracked: &mut Tracked,
    path: &Path,
    doing: &'static str,
    error: io::Error,
) {
    // Repeating the same failure every cycle would flood the log.
    let key = (doing, error.kind());
    if tracked.last_error != Some(key) {
        tracked.last_error = Some(key);
        notices.push(Notice::Io {
            path: path.to_path_buf(),
            doing,
            error,
        });
    }
}

fn has_glob_syntax(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

fn compile(spec: &LogPath) -> Result<PatternState, Error> {
    let glob = if has_glob_syntax(&spec.pattern) {
        Some(
            glob::Pattern::new(&spec.pattern).map_err(|e| Error::Pattern {
                pattern: spec.pattern.clone(),
                reason: e.msg.to_string(),
            })?,
        )
    } else {
        None
    };
    // The deepest directory named without wildcards: creations there can add matches.
    let mut directory = PathBuf::new();
    let path = Path::new(&spec.pattern);
    let components: Vec<Component<'_>> = path.components().collect();
    for (i, component) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        if last || has_glob_syntax(&component.as_os_str().to_string_lossy()) {
            break;
        }
        directory.push(component);
    }
    if directory.as_os_str().is_empty() {
        directory.push(".");
    }
    Ok(PatternState {
        spec: spec.clone(),
        glob,
        directory,
        reported_empty: false,
    })
}

/// The files a pattern matches now, sorted. Python's glob semantics, which fail2ban uses:
/// wildcards do not cross `/` nor match a leading dot; directories and dangling symbolic
/// links are not log files.
fn expand(pattern: &PatternState) -> Vec<PathBuf> {
    let is_log_file = |path: &Path| std::fs::metadata(path).is_ok_and(|m| !m.is_dir());
    match &pattern.glob {
        None => {
            let path = PathBuf::from(&pattern.spec.pattern);
            if is_log_file(&path) {
                vec![path]
            } else {
                Vec::new()
            }
        }
        Some(_) => {
            let options = glob::MatchOptions {
                case_sensitive: true,
                require_literal_separator: true,
                require_literal_leading_dot: true,
            };
            let Ok(paths) = glob::glob_with(&pattern.spec.pattern, options) else {
                return Vec::new();
            };
            let mut found: Vec<PathBuf> = paths
                .filter_map(Result::ok)
                .filter(|p| is_log_file(p))
                .collect();
            found.sort();
            found
        }
    }
}

impl FileSource {
    /// [`LogSource::read_available`] with the read buffer lent.
    fn read_lent(
        &mut self,
        sink: &mut dyn FnMut(LogLine<'_>) -> ControlFlow<()>,
    ) -> Result<ReadStats, Error> {
        // Events already queued cover every change made before this call.
        if self.take_hints().is_err() {
            self.all_dirty = true;
        }
        let now = Instant::now();
        if self.rescan_due || now >= self.next_sweep {
            self.rescan_due = false;
            if now >= self.next_sweep {
                self.next_sweep = now + self.options.sweep_interval;
                self.all_dirty = true;
            }
            self.watch_directories();
            self.expand_patterns(None);
        }
        if matches!(self.watcher, Watcher::Polling { .. }) {
            self.all_dirty = true;
        }
        let mut tally = Tally::default();
        // Truncations first, so that a copy made by copytruncate is recognised as such
        // below; and files new to the patterns before the others, as they hold older
        // lines (rotated or copied) than the files that took their place.
        let due: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(path, t)| self.due(path, t))
            .map(|(path, _)| path.clone())
            .collect();
        let FileSource {
            files,
            notices,
            seen_first_lines,
            ..
        } = self;
        for path in &due {
            if let Some(tracked) = files.get_mut(path) {
                check_current(path, tracked, notices, seen_first_lines);
            }
        }
        let (mut paths, others): (Vec<PathBuf>, Vec<PathBuf>) = due
            .into_iter()
            .partition(|path| self.files.get(path).is_some_and(|t| t.discovered));
        paths.extend(others);
        let was_all = std::mem::take(&mut self.all_dirty);
        for path in &paths {
            self.dirty.remove(path);
        }
        // Rotated-away files hold the oldest lines of all.
        for path in &paths {
            let Some(mut tracked) = self.files.remove(path) else {
                continue;
            };
            let flow = self.drain_retired(path, &mut tracked, sink, &mut tally);
            self.files.insert(path.clone(), tracked);
            if flow.is_break() {
                self.after_break(was_all, &paths);
                return Ok(self.stats(tally));
            }
        }
        for path in &paths {
            let Some(mut tracked) = self.files.remove(path) else {
                continue;
            };
            tracked.seek_allowed = false;
            let flow = self.service(path, &mut tracked, sink, &mut tally);
            let gone = tracked.current.is_none()
                && tracked.retired.is_empty()
                && !tracked.literal
                && std::fs::metadata(path).is_err();
            if !gone {
                self.files.insert(path.clone(), tracked);
            }
            if flow.is_break() {
                self.after_break(was_all, &paths);
                break;
            }
        }
        Ok(self.stats(tally))
    }
}

impl LogSource for FileSource {
    fn skip_older_than(
        &mut self,
        not_before: f64,
        line_time: &mut dyn FnMut(&[u8]) -> Option<f64>,
    ) {
        self.seek_to_time(not_before, line_time);
    }

    fn read_available(
        &mut self,
        sink: &mut dyn FnMut(LogLine<'_>) -> ControlFlow<()>,
    ) -> Result<ReadStats, Error> {
        self.scratch = scratch::lend();
        let read = self.read_lent(sink);
        scratch::give_back(std::mem::take(&mut self.scratch));
        read
    }

    fn poll_fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = vec![self.wake_rx.fd()];
        if let Watcher::Inotify(w) = &self.watcher {
            fds.push(w.inotify.as_fd());
        }
        fds
    }

    fn poll_deadline(&self) -> Option<Instant> {
        let due = self.next_deadline();
        Some(match &self.watcher {
            Watcher::Polling { next_poll } => due.min(*next_poll),
            Watcher::Inotify(_) => due,
        })
    }

    fn poll(&mut self) -> Result<Wake, Error> {
        // The wake-up first: the caller reads after any return, which takes the events.
        if self.wake_rx.drain() {
            return Ok(Wake::Woken);
        }
        let now = Instant::now();
        let mut ready = now >= self.next_deadline();
        match &mut self.watcher {
            Watcher::Inotify(_) => ready |= self.take_hints()?,
            Watcher::Polling { next_poll } => {
                if !ready && now >= *next_poll {
                    *next_poll = now + self.options.poll_interval;
                    ready = self.anything_changed();
                }
            }
        }
        Ok(if ready { Wake::Ready } else { Wake::Timeout })
    }

    fn waker(&self) -> Waker {
        Waker {
            inner: Arc::clone(&self.wake_tx),
        }
    }

    fn add_path(&mut self, path: &LogPath) -> Result<(), Error> {
        self.add_pattern(path)
    }

    fn remove_path(&mut self, pattern: &str) -> bool {
        self.remove_pattern(pattern)
    }

    fn positions(&self) -> Vec<Position> {
        self.files
            .iter()
            .filter_map(|(path, tracked)| {
                tracked.current.as_ref().map(|reader| {
                    Position::File(FilePosition {
                        path: path.clone(),
                        first_line_hash: reader.first_line_hash().to_string(),
                        offset: reader.offset(),
                    })
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logpath_words() {
        let p = LogPath::parse("  /var/log/auth.log tail ").unwrap();
        assert_eq!(p.pattern, "/var/log/auth.log");
        assert_eq!(p.start, StartAt::Tail);
        assert_eq!(LogPath::parse("/x HEAD").unwrap().start, StartAt::Head);
        assert_eq!(LogPath::parse("/x").unwrap().start, StartAt::Head);
        assert!(LogPath::parse("/a b").is_err());
        assert!(LogPath::parse("   ").is_err());
        let list = LogPath::parse_list("/a\n\n  /b/*.log tail\n").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].pattern, "/b/*.log");
    }

    #[test]
    fn backends() {
        assert_eq!(parse_backend("auto").unwrap(), Backend::Auto);
        assert_eq!(parse_backend(" pyinotify ").unwrap(), Backend::Inotify);
        assert_eq!(parse_backend("polling[x=1]").unwrap(), Backend::Polling);
        assert!(parse_backend("systemd").is_err());
        assert!(parse_backend("gamin").is_err());
    }

    #[test]
    fn pattern_directories() {
        let dir = |p: &str| compile(&LogPath::parse(p).unwrap()).unwrap().directory;
        assert_eq!(dir("/var/log/auth.log"), PathBuf::from("/var/log"));
        assert_eq!(dir("/var/log/nginx/*.log"), PathBuf::from("/var/log/nginx"));
        assert_eq!(dir("/var/log/*/error.log"), PathBuf::from("/var/log"));
        assert_eq!(dir("auth.log"), PathBuf::from("."));
        assert!(compile(&LogPath::parse("/var/log/[.log").unwrap()).is_err());
    }
}
