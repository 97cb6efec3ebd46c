//! FileSource against real files in temporary directories: real renames, truncations,
//! unlinks and real inotify.

// Helpers outside #[test] functions panic on setup failures, which is what a test wants.
#![allow(clippy::unwrap_used)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rampart_source::{
    Backend, FilePosition, FileSource, FileSourceOptions, LogPath, LogSource, Notice, OpenedAt,
    Position, ReadStats, Rotation, SavedPosition, Wake,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("rampart-source-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn text(&self, name: &str) -> String {
        self.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn quick(backend: Backend) -> FileSourceOptions {
    FileSourceOptions {
        backend,
        poll_interval: Duration::from_millis(20),
        sweep_interval: Duration::from_millis(300),
        rotation_grace: Duration::from_millis(300),
        ..FileSourceOptions::default()
    }
}

fn open_source(
    patterns: &[String],
    options: FileSourceOptions,
    saved: &mut dyn FnMut(&Path) -> Option<SavedPosition>,
) -> FileSource {
    let specs: Vec<LogPath> = patterns
        .iter()
        .map(|p| LogPath::parse(p).unwrap())
        .collect();
    FileSource::new(&specs, options, saved).unwrap()
}

fn fresh(patterns: &[String], options: FileSourceOptions) -> FileSource {
    open_source(patterns, options, &mut |_| None)
}

fn read(source: &mut dyn LogSource) -> (Vec<String>, ReadStats) {
    let mut lines = Vec::new();
    let stats = source
        .read_available(&mut |line| {
            lines.push(String::from_utf8_lossy(line.bytes).into_owned());
            ControlFlow::Continue(())
        })
        .unwrap();
    (lines, stats)
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// Loops wait → read (as a jail thread does) until `want` lines have arrived or `limit`
/// passes; returns the lines and every notice seen.
fn follow_until(
    source: &mut dyn LogSource,
    want: usize,
    limit: Duration,
) -> (Vec<String>, Vec<Notice>) {
    let end = Instant::now() + limit;
    let mut lines = Vec::new();
    let mut notices = Vec::new();
    loop {
        let (got, stats) = read(source);
        lines.extend(got);
        notices.extend(stats.notices);
        let now = Instant::now();
        if lines.len() >= want || now >= end {
            return (lines, notices);
        }
        source.wait(end - now).unwrap();
    }
}

/// Loops wait → read for `period`, returning everything seen: for checking that nothing
/// more (no duplicate) arrives.
fn settle(source: &mut dyn LogSource, period: Duration) -> (Vec<String>, Vec<Notice>) {
    follow_until(source, usize::MAX, period)
}

fn file_position(source: &FileSource, path: &Path) -> FilePosition {
    source
        .positions()
        .into_iter()
        .find_map(|position| match position {
            Position::File(p) if p.path == path => Some(p),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no position for {}", path.display()))
}

// ----- the model: every line exactly once, in order, through random rotations -----

/// A tiny deterministic generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A program writing its log the way daemons do (one append-mode descriptor), while
/// "logrotate" renames, copies and truncates, or deletes the file under it.
struct Writer {
    path: PathBuf,
    file: File,
    /// After a rename, the writer keeps writing this many lines to the old file before it
    /// reopens (a late HUP).
    late: Option<(File, u32)>,
    next_id: u64,
    /// The rest of a line written only in part.
    pending: Option<(u64, String)>,
    rotations: u32,
    written: Vec<u64>,
    unread: Vec<u64>,
    lost: Vec<u64>,
    read_since_rotation: bool,
    /// Complete lines in the file now at the path (since it was created or truncated),
    /// and whether a read happened while it had one: then its first line is known to the
    /// source, which recognises copies of it.
    lines_in_current: u32,
    first_line_seen: bool,
    /// Copies are followed (the pattern matches them).
    broad: bool,
}

impl Writer {
    fn new(path: &Path) -> Writer {
        Writer {
            path: path.to_path_buf(),
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap(),
            late: None,
            next_id: 0,
            pending: None,
            rotations: 0,
            written: Vec::new(),
            unread: Vec::new(),
            lost: Vec::new(),
            read_since_rotation: true,
            lines_in_current: 0,
            first_line_seen: false,
            broad: false,
        }
    }

    fn line_text(id: u64, rng: &mut Rng) -> String {
        // Varying lengths move line ends across the reader's chunk boundaries; some lines
        // end in CRLF, which the reader strips.
        let pad = "x".repeat(usize::try_from(rng.below(300)).unwrap());
        let end = if rng.below(8) == 0 { "\r\n" } else { "\n" };
        format!("line {id} {pad}{end}")
    }

    fn target(&mut self) -> &mut File {
        match &mut self.late {
            Some((old, _)) => old,
            None => &mut self.file,
        }
    }

    fn write_raw(&mut self, text: &str) {
        self.target().write_all(text.as_bytes()).unwrap();
    }

    fn finish_pending(&mut self) {
        if let Some((id, rest)) = self.pending.take() {
            self.write_raw(&rest);
            self.record(id);
        }
    }

    fn record(&mut self, id: u64) {
        self.written.push(id);
        // A truncation of the current file cannot lose lines of the renamed one.
        if self.late.is_none() {
            self.unread.push(id);
            self.lines_in_current += 1;
        }
        if let Some((_, left)) = &mut self.late {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.late = None;
            }
        }
    }

    fn append_lines(&mut self, count: u64, rng: &mut Rng) {
        self.finish_pending();
        for _ in 0..count {
            let id = self.next_id;
            self.next_id += 1;
            let text = Writer::line_text(id, rng);
            self.write_raw(&text);
            self.record(id);
        }
    }

    fn append_partial(&mut self, rng: &mut Rng) {
        if self.pending.is_some() {
            return self.finish_pending();
        }
        let id = self.next_id;
        self.next_id += 1;
        let text = Writer::line_text(id, rng);
        let cut = 1 + usize::try_from(rng.below(text.len() as u64 - 1)).unwrap();
        let (head, rest) = text.split_at(cut);
        self.write_raw(head);
        self.pending = Some((id, rest.to_string()));
    }

    fn can_rotate(&self) -> bool {
        self.pending.is_none() && self.late.is_none() && self.read_since_rotation
    }

    fn rotated_name(&mut self) -> PathBuf {
        self.rotations += 1;
        self.path.with_extension(format!("log.{}", self.rotations))
    }

    fn rename_and_create(&mut self, late_lines: u32) {
        let old_name = self.rotated_name();
        fs::rename(&self.path, &old_name).unwrap();
        let new = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap();
        let old = std::mem::replace(&mut self.file, new);
        if late_lines > 0 {
            self.late = Some((old, late_lines));
        }
        self.read_since_rotation = false;
        self.lines_in_current = 0;
        self.first_line_seen = false;
    }

    fn copy_truncate(&mut self) {
        let copy = self.rotated_name();
        fs::copy(&self.path, copy).unwrap();
        // Whatever the reader had not read yet now lives only in the copy, which is read
        // only if followed and not recognisable as a copy.
        if self.broad && !self.first_line_seen {
            self.unread.clear();
        } else {
            self.lost.append(&mut self.unread);
        }
        OpenOptions::new()
            .write(true)
            .open(&self.path)
            .unwrap()
            .set_len(0)
            .unwrap();
        self.read_since_rotation = false;
        self.lines_in_current = 0;
        self.first_line_seen = false;
    }

    fn delete_and_recreate(&mut self) {
        fs::remove_file(&self.path).unwrap();
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap();
        self.read_since_rotation = false;
        self.lines_in_current = 0;
        self.first_line_seen = false;
    }

    fn note_read(&mut self) {
        self.first_line_seen |= self.lines_in_current > 0;
        self.unread.clear();
        self.read_since_rotation = true;
    }
}

fn parse_id(line: &str) -> u64 {
    let rest = line
        .strip_prefix("line ")
        .unwrap_or_else(|| panic!("not a model line: {line:?}"));
    let id = rest.split(' ').next().unwrap();
    assert!(
        rest[id.len() + 1..].bytes().all(|b| b == b'x'),
        "line end left in {line:?}"
    );
    id.parse().unwrap()
}

struct ModelRun {
    lost: usize,
    renamed_or_copied: usize,
}

fn run_model(seed: u64, backend: Backend, tail: bool, broad: bool) -> ModelRun {
    let dir = TempDir::new("model");
    let path = dir.join("app.log");
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut writer = Writer::new(&path);
    writer.broad = broad;
    // Lines present before the source starts: read with head, skipped with tail.
    writer.append_lines(rng.below(4), &mut rng);
    let before_start = writer.written.len();
    // A broad pattern also matches the rotated names (app.log.1, ...): renamed files
    // must not be read twice, nor copies made by copytruncate.
    let pattern = if broad {
        dir.text("app.log*")
    } else {
        dir.text("app.log")
    };
    let spec = if tail {
        format!("{pattern} tail")
    } else {
        pattern
    };
    // With inotify, the events queued by the script's actions alone must lead each read
    // to what changed: no periodic sweep helps. Polling has no events, so it re-expands
    // the pattern at every read instead.
    let sweep_interval = match backend {
        Backend::Polling => Duration::ZERO,
        _ => Duration::from_secs(3600),
    };
    let options = FileSourceOptions {
        sweep_interval,
        ..quick(backend)
    };
    let mut source = fresh(&[spec], options);
    // Opening fingerprints the file already.
    writer.first_line_seen = writer.lines_in_current > 0;
    let mut delivered = Vec::new();
    let mut script = Vec::new();
    let mut renamed_or_copied = 0;
    let mut read_now = |source: &mut FileSource, writer: &mut Writer, delivered: &mut Vec<u64>| {
        let (lines, stats) = read(source);
        assert_eq!(stats.truncated_lines, 0);
        renamed_or_copied += stats
            .notices
            .iter()
            .filter(|n| {
                matches!(
                    n,
                    Notice::Opened {
                        how: OpenedAt::Renamed,
                        ..
                    } | Notice::CopyIgnored { .. }
                )
            })
            .count();
        delivered.extend(lines.iter().map(|l| parse_id(l)));
        writer.note_read();
    };
    for _ in 0..80 {
        match rng.below(12) {
            0..=3 => {
                let n = 1 + rng.below(4);
                script.push(format!("append {n}"));
                writer.append_lines(n, &mut rng);
            }
            4 | 5 => {
                script.push("partial".into());
                writer.append_partial(&mut rng);
            }
            6 if writer.can_rotate() => {
                let late = u32::try_from(rng.below(3)).unwrap();
                script.push(format!("rename (late {late})"));
                writer.rename_and_create(late);
            }
            7 if writer.can_rotate() => {
                let drained = rng.below(2) == 0;
                script.push(format!("copytruncate (drained first: {drained})"));
                if drained {
                    read_now(&mut source, &mut writer, &mut delivered);
                }
                writer.copy_truncate();
            }
            8 if writer.can_rotate() => {
                script.push("delete and recreate".into());
                writer.delete_and_recreate();
            }
            _ => {
                script.push("read".into());
                read_now(&mut source, &mut writer, &mut delivered);
            }
        }
    }
    writer.finish_pending();
    while writer.late.is_some() {
        writer.append_lines(1, &mut rng);
    }
    read_now(&mut source, &mut writer, &mut delivered);

    let skipped = if tail { before_start } else { 0 };
    let expected: Vec<u64> = writer.written[skipped..]
        .iter()
        .copied()
        .filter(|id| !writer.lost.contains(id))
        .collect();
    assert_eq!(
        delivered, expected,
        "seed {seed} ({backend:?}, tail {tail}, broad {broad}); script: {script:?}"
    );
    // The saved position is the end of the file now being written.
    let position = file_position(&source, &path);
    assert_eq!(position.offset, fs::metadata(&path).unwrap().len());
    assert!(broad || renamed_or_copied == 0);
    ModelRun {
        lost: writer.lost.len(),
        renamed_or_copied,
    }
}

#[test]
fn every_line_exactly_once_in_order_through_random_rotations() {
    for seed in 0..60 {
        let backend = if seed % 2 == 0 {
            Backend::Inotify
        } else {
            Backend::Polling
        };
        run_model(seed, backend, seed % 3 == 0, false);
        run_model(seed, backend, seed % 3 == 1, true);
    }
}

#[test]
fn the_model_exercises_rotations_and_losses() {
    // Guards the model itself: over the seeds, copytruncate without draining first must
    // actually lose lines, and broad patterns must meet renamed files and copies (else
    // the test above would not be testing those branches).
    let literal: Vec<ModelRun> = (0..20)
        .map(|s| run_model(s, Backend::Auto, false, false))
        .collect();
    assert!(literal.iter().any(|r| r.lost > 0));
    let broad: Vec<ModelRun> = (0..20)
        .map(|s| run_model(s, Backend::Auto, false, true))
        .collect();
    assert!(broad.iter().any(|r| r.lost > 0 && r.renamed_or_copied > 0));
}

// ----- starting, resuming, fingerprints -----

#[test]
fn restart_resumes_at_the_saved_position() {
    let dir = TempDir::new("resume");
    let path = dir.join("auth.log");
    append(&path, "one\ntwo\n");
    let patterns = [dir.text("auth.log")];
    let mut first = fresh(&patterns, quick(Backend::Auto));
    assert_eq!(read(&mut first).0, ["one", "two"]);
    let saved = file_position(&first, &path);
    assert_eq!(saved.offset, 8);
    drop(first);

    append(&path, "three\n");
    let mut asked = Vec::new();
    let mut second = open_source(&patterns, quick(Backend::Auto), &mut |p| {
        asked.push(p.to_path_buf());
        Some(SavedPosition {
            first_line_hash: Some(saved.first_line_hash.clone()),
            offset: saved.offset,
        })
    });
    assert_eq!(asked, std::slice::from_ref(&path));
    let (lines, stats) = read(&mut second);
    assert_eq!(lines, ["three"]);
    assert!(
        stats.notices.iter().any(|n| matches!(
            n,
            Notice::Opened {
                how: OpenedAt::Resumed,
                offset: 8,
                ..
            }
        )),
        "{:?}",
        stats.notices
    );
}

#[test]
fn a_changed_first_line_starts_over() {
    let dir = TempDir::new("changed");
    let path = dir.join("auth.log");
    append(&path, "first version\nmore\n");
    let patterns = [dir.text("auth.log")];
    let mut first = fresh(&patterns, quick(Backend::Auto));
    read(&mut first);
    let saved = file_position(&first, &path);
    drop(first);

    // Another file now has the name (rotated while the daemon was down).
    fs::remove_file(&path).unwrap();
    append(&path, "second version\nmore lines here\n");
    let mut second = open_source(&patterns, quick(Backend::Auto), &mut |_| {
        Some(SavedPosition {
            first_line_hash: Some(saved.first_line_hash.clone()),
            offset: saved.offset,
        })
    });
    assert_eq!(read(&mut second).0, ["second version", "more lines here"]);
}

#[test]
fn tail_starts_after_the_last_complete_line_and_ignores_saved_positions() {
    let dir = TempDir::new("tail");
    let path = dir.join("auth.log");
    append(&path, "old 1\nold 2\nhalf a li");
    let mut source = open_source(
        &[format!("{} tail", dir.text("auth.log"))],
        quick(Backend::Auto),
        &mut |_| {
            Some(SavedPosition {
                first_line_hash: None,
                offset: 0,
            })
        },
    );
    assert!(read(&mut source).0.is_empty());
    append(&path, "ne\nnew\n");
    assert_eq!(read(&mut source).0, ["half a line", "new"]);
}

#[test]
fn a_saved_position_past_the_end_of_the_same_file_restarts_at_zero() {
    let dir = TempDir::new("pastend");
    let path = dir.join("auth.log");
    append(&path, "alpha\nbeta\n");
    let patterns = [dir.text("auth.log")];
    let hash = file_position(&fresh(&patterns, quick(Backend::Auto)), &path).first_line_hash;
    let mut source = open_source(&patterns, quick(Backend::Auto), &mut |_| {
        Some(SavedPosition {
            first_line_hash: Some(hash.clone()),
            offset: 1000,
        })
    });
    let (lines, stats) = read(&mut source);
    assert_eq!(lines, ["alpha", "beta"]);
    assert!(stats.notices.iter().any(|n| matches!(
        n,
        Notice::Rotated {
            reason: Rotation::Truncated,
            ..
        }
    )));
}

/// fail2ban's own FileContainer, run from the reference package, computes the digest it
/// would store for each file; ours must be the same, and a position saved with it (or
/// with the MD5 an older fail2ban stored) must resume.
#[test]
fn first_line_digest_is_the_one_fail2ban_stores() {
    let reference = rampart_reference::fail2ban();
    let dir = TempDir::new("digest");
    let files: [(&str, &[u8]); 6] = [
        (
            "plain.log",
            b"Dec  2 03:00:01 host sshd[1]: listening\nsecond\n",
        ),
        ("crlf.log", b"first line\r\nsecond\r\n"),
        ("binary.log", b"\xff\xfe\x00 odd bytes \x80\n"),
        ("nofirstnewline.log", b"no newline yet"),
        ("empty.log", b""),
        ("long.log", &[b'a'; 70_000]),
    ];
    let mut script = String::from(
        "import sys, hashlib\nfrom fail2ban.server.filter import FileContainer\n\
         for p in sys.argv[1:]:\n    c = FileContainer(p, 'utf-8')\n    \
         line = open(p, 'rb').readline()\n    \
         md5 = hashlib.md5(line).hexdigest() if line.endswith(b'\\n') else ''\n    \
         print(c.getHash() or '-', md5 or '-')\n",
    );
    script.push('\n');
    let mut paths = Vec::new();
    for (name, content) in files {
        let path = dir.join(name);
        let mut content = content.to_vec();
        if name == "long.log" {
            content.extend_from_slice(b"\nshort\n");
        }
        fs::write(&path, &content).unwrap();
        paths.push(path);
    }
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("python3 is needed to run the reference");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(&script)
        .args(&paths)
        .env("PYTHONPATH", reference.python_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers = String::from_utf8(out.stdout).unwrap();
    let answers: Vec<(String, String)> = answers
        .lines()
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap();
            let clean = |s: &str| {
                if s == "-" {
                    String::new()
                } else {
                    s.to_string()
                }
            };
            (clean(a), clean(b))
        })
        .collect();
    assert_eq!(answers.len(), paths.len());

    for (path, (fail2ban_hash, md5)) in paths.iter().zip(&answers) {
        let pattern = [path.to_str().unwrap().to_string()];
        let ours = fresh(&pattern, quick(Backend::Auto));
        assert_eq!(
            &file_position(&ours, path).first_line_hash,
            fail2ban_hash,
            "{}",
            path.display()
        );
        if fail2ban_hash.is_empty() {
            continue;
        }
        assert_eq!(fail2ban_hash.len(), 40, "fail2ban on Python 3 stores SHA-1");
        for saved_hash in [fail2ban_hash.to_uppercase(), md5.clone()] {
            let mut resumed = open_source(&pattern, quick(Backend::Auto), &mut |_| {
                Some(SavedPosition {
                    first_line_hash: Some(saved_hash.clone()),
                    offset: 3,
                })
            });
            let stats = read(&mut resumed).1;
            assert!(
                stats.notices.iter().any(|n| matches!(
                    n,
                    Notice::Opened {
                        how: OpenedAt::Resumed,
                        offset: 3,
                        ..
                    }
                )),
                "{} with {saved_hash}: {:?}",
                path.display(),
                stats.notices
            );
        }
    }
}

// ----- lines -----

#[test]
fn partial_lines_wait_for_their_end_and_long_lines_are_cut_without_fragments() {
    let dir = TempDir::new("lines");
    let path = dir.join("a.log");
    append(&path, "");
    let options = FileSourceOptions {
        max_line_bytes: 100,
        ..quick(Backend::Auto)
    };
    let mut source = fresh(&[dir.text("a.log")], options);
    append(&path, "start of");
    assert!(read(&mut source).0.is_empty());
    append(&path, " a line\r\n");
    assert_eq!(read(&mut source).0, ["start of a line"]);

    // 250 bytes in three writes, the last one with a forged "line" after the cut point.
    let long_head = "L".repeat(90);
    append(&path, &long_head);
    assert!(read(&mut source).0.is_empty());
    append(&path, &"M".repeat(60));
    let (lines, stats) = read(&mut source);
    assert_eq!(lines, [format!("{long_head}{}", "M".repeat(10))]);
    assert_eq!(stats.truncated_lines, 1);
    assert!(
        stats
            .notices
            .iter()
            .any(|n| matches!(n, Notice::LineTooLong { kept: 100, .. }))
    );
    append(&path, "FORGED sshd: Failed password from 10.0.0.1\nafter\n");
    let (lines, stats) = read(&mut source);
    assert_eq!(lines, ["after"], "the rest of a cut line must be skipped");
    assert_eq!(stats.truncated_lines, 0);

    // Exactly at the cap is not too long.
    append(&path, &format!("{}\n", "E".repeat(100)));
    let (lines, stats) = read(&mut source);
    assert_eq!(lines, ["E".repeat(100)]);
    assert_eq!(stats.truncated_lines, 0);
    assert_eq!(
        file_position(&source, &path).offset,
        fs::metadata(&path).unwrap().len()
    );
}

#[test]
fn a_sink_can_stop_after_any_line_and_reading_continues_with_the_next() {
    let dir = TempDir::new("break");
    let path = dir.join("a.log");
    let text: String = (0..50).map(|i| format!("n{i}\n")).collect();
    append(&path, &text);
    let mut source = fresh(&[dir.text("a.log")], quick(Backend::Auto));
    let mut all = Vec::new();
    for _ in 0..100 {
        let mut got = Vec::new();
        source
            .read_available(&mut |line| {
                got.push(String::from_utf8_lossy(line.bytes).into_owned());
                if got.len() == 7 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        if got.is_empty() {
            break;
        }
        // The persisted position always sits right after the last line handed out.
        let consumed: usize = all.iter().chain(&got).map(|l: &String| l.len() + 1).sum();
        assert_eq!(file_position(&source, &path).offset, consumed as u64);
        all.extend(got);
    }
    let expected: Vec<String> = (0..50).map(|i| format!("n{i}")).collect();
    assert_eq!(all, expected);
}

// ----- files coming and going -----

#[test]
fn a_missing_file_is_reported_once_and_picked_up_when_created() {
    for backend in [Backend::Inotify, Backend::Polling] {
        let dir = TempDir::new("missing");
        let path = dir.join("later.log");
        let mut source = fresh(&[dir.text("later.log")], quick(backend));
        let (lines, stats) = read(&mut source);
        assert!(lines.is_empty());
        let reported = stats
            .notices
            .iter()
            .filter(|n| matches!(n, Notice::NothingMatches { .. }))
            .count();
        assert_eq!(reported, 1, "{backend:?}: {:?}", stats.notices);
        assert!(read(&mut source).1.notices.is_empty(), "reported once only");

        let writer = std::thread::spawn({
            let path = path.clone();
            move || {
                std::thread::sleep(Duration::from_millis(50));
                append(&path, "hello\nworld\n");
            }
        });
        let (lines, _) = follow_until(&mut source, 2, Duration::from_secs(5));
        writer.join().unwrap();
        assert_eq!(lines, ["hello", "world"], "{backend:?}");
    }
}

#[test]
fn a_glob_picks_up_new_matching_files() {
    let dir = TempDir::new("glob");
    append(&dir.join("a.log"), "a1\n");
    append(&dir.join("ignored.txt"), "nope\n");
    append(&dir.join(".hidden.log"), "hidden\n");
    let mut source = fresh(&[dir.text("*.log")], quick(Backend::Inotify));
    assert_eq!(read(&mut source).0, ["a1"]);

    let start = Instant::now();
    append(&dir.join("b.log"), "b1\n");
    let (lines, notices) = follow_until(&mut source, 1, Duration::from_secs(5));
    assert_eq!(lines, ["b1"], "{notices:?}");
    // A directory event triggers the re-expansion: no need to wait for the sweep.
    assert!(
        start.elapsed() < Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    append(&dir.join("a.log"), "a2\n");
    append(&dir.join("b.log"), "b2\n");
    let (mut lines, _) = follow_until(&mut source, 2, Duration::from_secs(5));
    lines.sort();
    assert_eq!(lines, ["a2", "b2"]);
}

#[test]
fn a_glob_in_a_directory_that_appears_later_is_found_by_the_sweep() {
    let dir = TempDir::new("latedir");
    let pattern = format!("{}/*.log", dir.text("sub"));
    let mut source = fresh(&[pattern], quick(Backend::Inotify));
    assert!(read(&mut source).0.is_empty());
    fs::create_dir(dir.join("sub")).unwrap();
    append(&dir.join("sub/x.log"), "x\n");
    let (lines, _) = follow_until(&mut source, 1, Duration::from_secs(5));
    assert_eq!(lines, ["x"]);
}

#[test]
fn a_rotated_file_is_still_read_during_the_grace_period_then_closed() {
    let dir = TempDir::new("grace");
    let path = dir.join("app.log");
    let mut old = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    old.write_all(b"before\n").unwrap();
    let mut source = fresh(&[dir.text("app.log")], quick(Backend::Inotify));
    assert_eq!(read(&mut source).0, ["before"]);

    fs::rename(&path, dir.join("app.log.1")).unwrap();
    append(&path, "");
    let (lines, stats) = read(&mut source);
    assert!(lines.is_empty());
    assert!(stats.notices.iter().any(|n| matches!(
        n,
        Notice::Rotated {
            reason: Rotation::Replaced,
            ..
        }
    )));
    // The daemon has not reopened its log yet; it writes to the renamed file, and ends
    // without a newline before it reopens.
    old.write_all(b"late\nunfinished").unwrap();
    append(&path, "new\n");
    let (lines, _) = follow_until(&mut source, 3, Duration::from_secs(5));
    assert_eq!(lines, ["late", "new", "unfinished"]);
    // Once closed, further writes to the old file are not followed.
    old.write_all(b" more\nignored\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(read(&mut source).0.is_empty());
}

#[test]
fn an_unreadable_path_is_reported_and_the_other_files_carry_on() {
    let dir = TempDir::new("errors");
    fs::create_dir(dir.join("adir.log")).unwrap();
    append(&dir.join("good.log"), "fine\n");
    let mut source = fresh(
        &[dir.text("adir.log"), dir.text("good.log")],
        quick(Backend::Auto),
    );
    let (lines, stats) = read(&mut source);
    assert_eq!(lines, ["fine"]);
    // A directory is not a log file: it matches nothing, and is waited for as a file;
    // the failure to open it is reported once.
    assert!(
        stats
            .notices
            .iter()
            .any(|n| matches!(n, Notice::NothingMatches { .. }))
    );
    let io_errors = |notices: &[Notice]| {
        notices
            .iter()
            .filter(|n| matches!(n, Notice::Io { path, .. } if path.ends_with("adir.log")))
            .count()
    };
    assert_eq!(io_errors(&stats.notices), 1, "{:?}", stats.notices);
    append(&dir.join("good.log"), "still\n");
    let (lines, stats) = read(&mut source);
    assert_eq!(lines, ["still"]);
    assert_eq!(io_errors(&stats.notices), 0, "{:?}", stats.notices);
}

#[test]
fn a_source_moves_to_a_jail_thread_behind_the_trait() {
    let dir = TempDir::new("thread");
    let path = dir.join("a.log");
    append(&path, "first\n");
    let mut source: Box<dyn LogSource> =
        Box::new(fresh(&[dir.text("a.log")], quick(Backend::Auto)));
    let waker = source.waker();
    let jail = std::thread::spawn(move || {
        let mut lines = Vec::new();
        loop {
            let (got, _) = read(source.as_mut());
            lines.extend(got);
            if source.wait(Duration::from_secs(10)).unwrap() == Wake::Woken {
                return (lines, source.positions());
            }
        }
    });
    append(&path, "second\n");
    std::thread::sleep(Duration::from_millis(200));
    waker.wake();
    let (lines, positions) = jail.join().unwrap();
    assert_eq!(lines, ["first", "second"]);
    let [Position::File(position)] = positions.as_slice() else {
        panic!("{positions:?}");
    };
    assert_eq!(position.path, path);
    assert_eq!(position.offset, 13);
    assert_eq!(position.first_line_hash.len(), 40);
}

// ----- waiting -----

#[test]
fn inotify_sees_an_appended_line_quickly() {
    let dir = TempDir::new("latency");
    let path = dir.join("a.log");
    append(&path, "");
    let mut source = fresh(&[dir.text("a.log")], quick(Backend::Inotify));
    assert!(!source.is_polling());
    read(&mut source);
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let writer = std::thread::spawn({
            let path = path.clone();
            move || {
                std::thread::sleep(Duration::from_millis(30));
                let written = Instant::now();
                append(&path, &format!("line {i}\n"));
                written
            }
        });
        let wake = source.wait(Duration::from_secs(5)).unwrap();
        let (lines, _) = read(&mut source);
        let seen = Instant::now();
        let written = writer.join().unwrap();
        assert_eq!(wake, Wake::Ready);
        assert_eq!(lines, [format!("line {i}")]);
        worst = worst.max(seen - written);
    }
    assert!(
        worst < Duration::from_millis(500),
        "worst latency {worst:?}"
    );
}

#[test]
fn a_waker_interrupts_a_wait_from_another_thread() {
    for backend in [Backend::Inotify, Backend::Polling] {
        let dir = TempDir::new("waker");
        append(&dir.join("a.log"), "");
        let mut source = fresh(&[dir.text("a.log")], quick(backend));
        read(&mut source);
        let waker = source.waker();
        let start = Instant::now();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            waker.wake();
        });
        let wake = source.wait(Duration::from_secs(10)).unwrap();
        t.join().unwrap();
        // Woken well before the (long) timeout; a sweep may come first, never the timeout.
        let mut wake = wake;
        while wake == Wake::Ready {
            read(&mut source);
            wake = source.wait(Duration::from_secs(10)).unwrap();
        }
        assert_eq!(wake, Wake::Woken, "{backend:?}");
        assert!(start.elapsed() < Duration::from_secs(2), "{backend:?}");
        // A wake given while nobody waits is kept for the next wait.
        source.waker().wake();
        assert_eq!(source.wait(Duration::from_secs(10)).unwrap(), Wake::Woken);
    }
}

#[test]
fn wait_times_out_when_nothing_happens() {
    let dir = TempDir::new("timeout");
    append(&dir.join("a.log"), "");
    let options = FileSourceOptions {
        sweep_interval: Duration::from_secs(60),
        ..quick(Backend::Polling)
    };
    let mut source = fresh(&[dir.text("a.log")], options);
    read(&mut source);
    let start = Instant::now();
    assert_eq!(
        source.wait(Duration::from_millis(150)).unwrap(),
        Wake::Timeout
    );
    assert!(start.elapsed() >= Duration::from_millis(150));
    append(&dir.join("a.log"), "x\n");
    assert_eq!(source.wait(Duration::from_secs(5)).unwrap(), Wake::Ready);
}

// ----- broad patterns that match rotated names -----

#[test]
fn a_file_renamed_into_a_broad_pattern_moves_over_once_drained() {
    let dir = TempDir::new("handover");
    let path = dir.join("app.log");
    let mut daemon = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    daemon.write_all(b"one\n").unwrap();
    let mut source = fresh(&[dir.text("app.log*")], quick(Backend::Inotify));
    assert_eq!(read(&mut source).0, ["one"]);

    fs::rename(&path, dir.join("app.log.1")).unwrap();
    append(&path, "");
    daemon.write_all(b"two\n").unwrap();
    let (lines, notices) = follow_until(&mut source, 1, Duration::from_secs(5));
    assert_eq!(lines, ["two"], "{notices:?}");
    // Past the grace period the renamed file is followed under its new name, from where
    // it was: a later line is read once, and nothing before it again.
    std::thread::sleep(Duration::from_millis(400));
    let (lines, stats) = read(&mut source);
    assert!(lines.is_empty(), "{lines:?}");
    assert!(
        stats.notices.iter().any(|n| matches!(
            n,
            Notice::Opened { how: OpenedAt::Renamed, path, offset: 8 } if path == &dir.join("app.log.1")
        )),
        "{:?}",
        stats.notices
    );
    daemon.write_all(b"three\n").unwrap();
    append(&path, "four\n");
    let (mut lines, _) = follow_until(&mut source, 2, Duration::from_secs(5));
    lines.sort();
    assert_eq!(lines, ["four", "three"]);
    std::thread::sleep(Duration::from_millis(100));
    assert!(read(&mut source).0.is_empty());
}

#[test]
fn copies_matched_by_a_broad_pattern_are_not_read_twice() {
    let dir = TempDir::new("copies");
    let path = dir.join("app.log");
    append(&path, "a\nb\n");
    let mut source = fresh(&[dir.text("app.log*")], quick(Backend::Inotify));
    assert_eq!(read(&mut source).0, ["a", "b"]);

    // A backup copy: everything in it has been read from the original.
    fs::copy(&path, dir.join("app.log.bak")).unwrap();
    append(&path, "c\n");
    let (lines, notices) = settle(&mut source, Duration::from_millis(500));
    assert_eq!(lines, ["c"]);
    let ignored = |notices: &[Notice], name: &str| {
        notices
            .iter()
            .any(|n| matches!(n, Notice::CopyIgnored { path } if path == &dir.join(name)))
    };
    assert!(ignored(&notices, "app.log.bak"), "{notices:?}");

    // copytruncate: the copy is not read again (what it holds that was not read yet is
    // lost, as with any tailer; fail2ban never sees the copy at all).
    append(&path, "d\n");
    let (lines, _) = settle(&mut source, Duration::from_millis(200));
    assert_eq!(lines, ["d"]);
    fs::copy(&path, dir.join("app.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&path, "e\n");
    let (lines, notices) = settle(&mut source, Duration::from_millis(500));
    assert_eq!(lines, ["e"], "{notices:?}");
    assert!(ignored(&notices, "app.log.1"), "{notices:?}");
    // A new file under the pattern is read whole.
    append(&dir.join("app.log.other"), "x\n");
    let (lines, _) = settle(&mut source, Duration::from_millis(500));
    assert_eq!(lines, ["x"]);
}

// ----- a jail thread and a busy writer at the same time -----

#[test]
fn a_concurrent_writer_with_rotations_loses_and_repeats_nothing() {
    for backend in [Backend::Inotify, Backend::Polling] {
        let dir = TempDir::new("concurrent");
        let path = dir.join("app.log");
        append(&path, "");
        let mut source = fresh(&[dir.text("app.log")], quick(backend));
        let delivered = std::sync::Arc::new(AtomicU64::new(0));
        let total = 600u64;
        let writer = std::thread::spawn({
            let path = path.clone();
            let delivered = std::sync::Arc::clone(&delivered);
            move || {
                let mut rng = Rng(0x1234_5678 ^ total);
                let mut file = OpenOptions::new().append(true).open(&path).unwrap();
                for id in 0..total {
                    let text = Writer::line_text(id, &mut rng);
                    // Some lines arrive in two writes.
                    let cut = if rng.below(4) == 0 {
                        text.len() / 2
                    } else {
                        text.len()
                    };
                    file.write_all(&text.as_bytes()[..cut]).unwrap();
                    file.write_all(&text.as_bytes()[cut..]).unwrap();
                    if id % 100 == 99 {
                        // Rotate once the reader has caught up (two rotations between
                        // two looks would hide a whole file from any tailer).
                        let end = Instant::now() + Duration::from_secs(10);
                        while delivered.load(Ordering::SeqCst) <= id && Instant::now() < end {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        match (id / 100) % 3 {
                            0 => {
                                fs::rename(&path, path.with_extension(format!("log.{id}"))).unwrap()
                            }
                            1 => fs::remove_file(&path).unwrap(),
                            _ => {}
                        }
                        if (id / 100) % 3 == 2 {
                            OpenOptions::new()
                                .write(true)
                                .open(&path)
                                .unwrap()
                                .set_len(0)
                                .unwrap();
                        } else {
                            file = OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(&path)
                                .unwrap();
                        }
                    }
                }
            }
        });
        let end = Instant::now() + Duration::from_secs(20);
        let mut ids = Vec::new();
        while (ids.len() as u64) < total && Instant::now() < end {
            let (lines, _) = read(&mut source);
            ids.extend(lines.iter().map(|l| parse_id(l)));
            delivered.store(ids.len() as u64, Ordering::SeqCst);
            source.wait(Duration::from_millis(200)).unwrap();
        }
        writer.join().unwrap();
        let expected: Vec<u64> = (0..total).collect();
        assert_eq!(ids, expected, "{backend:?}");
    }
}

// ----- skipping old lines at start -----

/// "T<seconds> ..." lines, every seventh without a time.
fn timed_log(count: u64) -> String {
    (0..count)
        .map(|t| {
            if t % 7 == 3 {
                format!("  continuation of {t}\n")
            } else {
                format!("T{t} host sshd[1]: message number {t}\n")
            }
        })
        .collect()
}

fn time_of(line: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(line).ok()?;
    text.strip_prefix('T')?.split(' ').next()?.parse().ok()
}

#[test]
fn seek_to_time_skips_old_lines_by_bisection() {
    let dir = TempDir::new("seek");
    let path = dir.join("big.log");
    append(&path, &timed_log(30_000));
    let tail_path = dir.join("tail.log");
    append(&tail_path, &timed_log(100));
    let mut source = fresh(
        &[
            dir.text("big.log"),
            format!("{} tail", dir.text("tail.log")),
        ],
        quick(Backend::Auto),
    );
    let mut calls = 0;
    source.seek_to_time(25_000.5, &mut |line| {
        calls += 1;
        time_of(line)
    });
    assert!(calls < 3000, "{calls} lines looked at for 30000");
    let (lines, stats) = read(&mut source);
    // Right after the last older line: 25000 itself has no time (25000 % 7 == 3).
    assert_eq!(lines[0], "  continuation of 25000");
    assert_eq!(lines[1], "T25001 host sshd[1]: message number 25001");
    assert_eq!(lines.len(), 30_000 - 25_000);
    assert!(
        stats
            .notices
            .iter()
            .any(|n| matches!(n, Notice::Skipped { from: 0, .. }))
    );
}

#[test]
fn seek_to_time_keeps_logs_without_dates_and_never_goes_back() {
    let dir = TempDir::new("seekedge");
    let undated = dir.join("undated.log");
    append(&undated, &"no date here\n".repeat(10_000));
    let dated = dir.join("dated.log");
    append(&dated, &timed_log(10_000));
    let patterns = [dir.text("undated.log"), dir.text("dated.log")];
    let hash = file_position(&fresh(&patterns, quick(Backend::Auto)), &dated).first_line_hash;
    // The saved position is past the start time already: it stays.
    let saved_at = timed_log(9_000).len() as u64;
    let mut source = open_source(&patterns, quick(Backend::Auto), &mut |p| {
        (p == dated).then(|| SavedPosition {
            first_line_hash: Some(hash.clone()),
            offset: saved_at,
        })
    });
    source.seek_to_time(5_000.0, &mut time_of);
    let mut from_undated = 0;
    let mut from_dated = Vec::new();
    source
        .read_available(&mut |line| {
            if line.origin == undated {
                from_undated += 1;
            } else {
                from_dated.push(String::from_utf8_lossy(line.bytes).into_owned());
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(from_undated, 10_000);
    assert_eq!(from_dated.len(), 1_000);
    assert_eq!(from_dated[0], "T9000 host sshd[1]: message number 9000");
    // Only before the first read.
    append(&dated, "T1 late\n");
    source.seek_to_time(f64::MAX, &mut time_of);
    assert_eq!(read(&mut source).0, ["T1 late"]);
}

// ----- the real logrotate -----

fn logrotate(dir: &TempDir, directives: &str) {
    let config = dir.join("logrotate.conf");
    fs::write(
        &config,
        format!(
            "{} {{\n  rotate 5\n  nocompress\n  missingok\n  {directives}\n}}\n",
            dir.text("app.log")
        ),
    )
    .unwrap();
    let out = std::process::Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(dir.join("logrotate.state"))
        .arg(&config)
        .output()
        .expect("logrotate is needed (Debian package logrotate)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lines_survive_real_logrotate_in_create_and_copytruncate_modes() {
    for (directives, broad) in [
        ("create", false),
        ("copytruncate", false),
        ("create", true),
        ("copytruncate", true),
    ] {
        let dir = TempDir::new("logrotate");
        let path = dir.join("app.log");
        let mut daemon = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let pattern = if broad {
            dir.text("app.log*")
        } else {
            dir.text("app.log")
        };
        let mut source = fresh(&[pattern], quick(Backend::Inotify));
        let mut expected = Vec::new();
        let mut got = Vec::new();
        let mut next = 0;
        for round in 0..4 {
            for _ in 0..20 {
                writeln!(daemon, "line {next} round {round}").unwrap();
                expected.push(format!("line {next} round {round}"));
                next += 1;
            }
            // Caught up before each rotation; the daemon then writes on during it.
            got.extend(
                follow_until(
                    &mut source,
                    expected.len() - got.len(),
                    Duration::from_secs(5),
                )
                .0,
            );
            logrotate(&dir, directives);
            if directives.starts_with("create") {
                // A late reopen (the postrotate signal): two lines still go to the old file.
                for _ in 0..2 {
                    writeln!(daemon, "line {next} late").unwrap();
                    expected.push(format!("line {next} late"));
                    next += 1;
                }
                daemon = OpenOptions::new().append(true).open(&path).unwrap();
            }
        }
        writeln!(daemon, "line {next} last").unwrap();
        expected.push(format!("line {next} last"));
        got.extend(settle(&mut source, Duration::from_millis(800)).0);
        assert_eq!(got, expected, "{directives} (broad pattern: {broad})");
    }
}
