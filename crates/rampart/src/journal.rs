//! Glue between `backend = systemd[...]` and the journal reader: the backend's options,
//! where a jail starts reading, the date text fail2ban shows with a journal line, and
//! the hint for jails whose log files are missing on a journal-only machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rampart_journal::{JournalSpec, Start};
use rampart_source::JournalPosition;
use rampart_store::JournalCursor;

use crate::engine::LineFilter;

/// Whether a backend setting (`systemd`, `systemd[journalpath=/x]`) selects the journal.
pub fn is_journal_backend(backend: &str) -> bool {
    backend.trim_start().starts_with("systemd")
}

/// The journalctl to run: `RAMPART_JOURNALCTL` if set (tests, unusual installs), else
/// the one on `PATH`.
pub fn journalctl_program() -> PathBuf {
    std::env::var_os("RAMPART_JOURNALCTL")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("journalctl"), PathBuf::from)
}

/// The reader's spec for a backend value (`systemd[journalfiles=...]`, or a
/// `systemd-journal[...]` LOG of `rampart regex`) and the journal matches.
pub fn spec_for(backend: &str, matches: &[Vec<String>]) -> Result<JournalSpec> {
    let (_, args) = rampart_config::extract_options(backend.trim())
        .map_err(|e| anyhow::anyhow!("invalid backend {backend:?}: {e}"))?;
    let options: Vec<(String, String)> = args.into_iter().collect();
    let mut spec = JournalSpec::from_backend_options(&options)
        .with_context(|| format!("backend {backend:?}"))?;
    spec.program = journalctl_program();
    spec.with_matches(matches.to_vec())
        .with_context(|| format!("journalmatch of backend {backend:?}"))
}

/// Where a jail starts, as fail2ban does: at max(saved position, now - findtime). A
/// saved cursor at or after that point resumes right after its entry; otherwise reading
/// starts at the later of the two times.
pub fn start_at(saved: Option<&JournalCursor>, now: f64, find_time: f64) -> Start {
    let earliest = now - find_time;
    let to_time = |t: f64| UNIX_EPOCH + Duration::from_secs_f64(t.max(0.0));
    match saved {
        Some(JournalCursor {
            cursor: Some(cursor),
            time,
        }) if *time >= earliest => Start::After(JournalPosition {
            cursor: cursor.clone(),
            time: to_time(*time),
        }),
        Some(saved) => Start::Since(to_time(saved.time.max(earliest))),
        None => Start::Since(to_time(earliest)),
    }
}

/// Seconds since the epoch of an entry's time.
pub fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The date fail2ban puts before a journal line in matches and reports: the entry's
/// local time in Python's ISO form (microseconds only when there are any, then the UTC
/// offset: python-systemd hands out zone-aware times) and a space.
pub fn date_text(engine: &LineFilter, t: SystemTime) -> String {
    DateTexts::default().text(engine, t).to_string()
}

/// [`date_text`] for a stream of entries: the text of the last second is kept, since
/// entries come in bursts within one second and the zone lookup is what costs.
#[derive(Debug, Default)]
pub struct DateTexts {
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS` of that second.
    head: String,
    /// `+HH:MM` of that second.
    offset: String,
    out: String,
}

impl DateTexts {
    pub fn text(&mut self, engine: &LineFilter, t: SystemTime) -> &str {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        if self.second != Some(secs) {
            let signed = i64::try_from(secs).unwrap_or(i64::MAX);
            #[allow(clippy::cast_precision_loss)]
            let local = engine.format_time(signed as f64);
            self.head = local.replacen(' ', "T", 1);
            self.offset.clear();
            if let Some(local_secs) = naive_epoch(&local) {
                let offset = local_secs - signed;
                let sign = if offset < 0 { '-' } else { '+' };
                let a = offset.abs();
                self.offset = format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60);
                if a % 60 != 0 {
                    self.offset.push_str(&format!(":{:02}", a % 60));
                }
            }
            self.second = Some(secs);
        }
        self.out.clear();
        self.out.push_str(&self.head);
        let micros = since.subsec_micros();
        if micros != 0 {
            use std::fmt::Write as _;
            let _ = write!(self.out, ".{micros:06}");
        }
        self.out.push_str(&self.offset);
        self.out.push(' ');
        &self.out
    }
}

/// `YYYY-MM-DD HH:MM:SS` read as if it were UTC, in seconds since the epoch.
fn naive_epoch(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(' ')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// The machine's journal directories, where journald keeps its files.
pub const JOURNAL_DIRS: [&str; 2] = ["/var/log/journal", "/run/log/journal"];

/// [`JOURNAL_DIRS`], or the `:`-separated list in `RAMPART_JOURNAL_DIRS` (tests, and
/// machines whose journald keeps its files elsewhere).
pub fn journal_dirs() -> Vec<PathBuf> {
    match std::env::var_os("RAMPART_JOURNAL_DIRS").filter(|v| !v.is_empty()) {
        Some(list) => std::env::split_paths(&list).collect(),
        None => JOURNAL_DIRS.iter().map(PathBuf::from).collect(),
    }
}

/// The first of `dirs` that holds journal files (directly or in a machine-id
/// subdirectory), for the hint given to jails whose files are missing.
pub fn journal_with_files(dirs: &[&Path]) -> Option<PathBuf> {
    let has_journal = |dir: &Path| -> bool {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let path = e.path();
                path.extension().is_some_and(|x| x == "journal")
                    || (path.is_dir()
                        && std::fs::read_dir(&path).is_ok_and(|inner| {
                            inner
                                .flatten()
                                .any(|f| f.path().extension().is_some_and(|x| x == "journal"))
                        }))
            })
        })
    };
    dirs.iter()
        .find(|d| has_journal(d))
        .map(|d| d.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_follows_fail2ban() {
        let now = 10_000.0;
        let with = |cursor: Option<&str>, time| JournalCursor {
            cursor: cursor.map(String::from),
            time,
        };
        // A recent cursor: resume right after it.
        match start_at(Some(&with(Some("s=1;i=2"), 9_800.0)), now, 600.0) {
            Start::After(p) => assert_eq!(p.cursor, "s=1;i=2"),
            other => panic!("{other:?}"),
        }
        // An old one: nothing before now - findtime counts anyway.
        assert_eq!(
            start_at(Some(&with(Some("s=1;i=2"), 100.0)), now, 600.0),
            Start::Since(UNIX_EPOCH + Duration::from_secs(9_400))
        );
        // fail2ban's own row (time only), and no row at all.
        assert_eq!(
            start_at(Some(&with(None, 9_900.0)), now, 600.0),
            Start::Since(UNIX_EPOCH + Duration::from_secs(9_900))
        );
        assert_eq!(
            start_at(None, now, 600.0),
            Start::Since(UNIX_EPOCH + Duration::from_secs(9_400))
        );
    }

    #[test]
    fn dates_are_pythons_iso_form() {
        assert_eq!(naive_epoch("1970-01-01 00:00:00"), Some(0));
        assert_eq!(naive_epoch("2005-08-14 10:00:00"), Some(1_124_013_600));
        assert_eq!(naive_epoch("2024-02-29 23:59:59"), Some(1_709_251_199));
        let filter = rampart_filter::Filter::new(
            &rampart_filter::FilterSpec {
                failregex: vec!["x <HOST>".into()],
                maxlines: 1,
                ..rampart_filter::FilterSpec::default()
            },
            rampart_filter::Mode {
                check_all: true,
                raw_hosts: false,
                ignore_pending: false,
                check_find_time: false,
                find_time: 600.0,
            },
        )
        .unwrap();
        let utc = LineFilter::with_local_zone(
            filter,
            None,
            None,
            rampart_dates::TimeZone::from_log_timezone("UTC").unwrap(),
        )
        .unwrap();
        let t = UNIX_EPOCH + Duration::from_micros(1_124_013_600_250_000);
        assert_eq!(date_text(&utc, t), "2005-08-14T10:00:00.250000+00:00 ");
        let t = UNIX_EPOCH + Duration::from_secs(1_124_013_600);
        assert_eq!(date_text(&utc, t), "2005-08-14T10:00:00+00:00 ");
        let india = LineFilter::with_local_zone(
            rampart_filter::Filter::new(
                &rampart_filter::FilterSpec {
                    failregex: vec!["x <HOST>".into()],
                    maxlines: 1,
                    ..rampart_filter::FilterSpec::default()
                },
                rampart_filter::Mode {
                    check_all: true,
                    raw_hosts: false,
                    ignore_pending: false,
                    check_find_time: false,
                    find_time: 600.0,
                },
            )
            .unwrap(),
            None,
            None,
            rampart_dates::TimeZone::fixed(19_800),
        )
        .unwrap();
        assert_eq!(date_text(&india, t), "2005-08-14T15:30:00+05:30 ");
    }

    #[test]
    fn journal_files_are_found_in_machine_directories() {
        let base = std::env::temp_dir().join(format!("rampart-jdirs-{}", std::process::id()));
        let empty = base.join("empty");
        let full = base.join("full");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::create_dir_all(full.join("0123abcd")).unwrap();
        assert_eq!(journal_with_files(&[&empty, &full]), None);
        std::fs::write(full.join("0123abcd/system.journal"), b"").unwrap();
        assert_eq!(journal_with_files(&[&empty, &full]), Some(full.clone()));
        assert_eq!(journal_with_files(&[&base.join("missing")]), None);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn backend_values_become_specs() {
        let spec = spec_for(
            "systemd[journalfiles=\"/a.journal /b.journal\", journalflags=1]",
            &[vec!["_COMM=sshd".into()]],
        )
        .unwrap();
        assert_eq!(
            spec.location,
            rampart_journal::Location::Files(vec!["/a.journal".into(), "/b.journal".into()])
        );
        assert_eq!(spec.matches, vec![vec!["_COMM=sshd".to_string()]]);
        assert!(spec_for("systemd[journalflags=x]", &[]).is_err());
        assert!(spec_for("systemd", &[vec!["/usr/bin/x".into()]]).is_err());
        assert!(is_journal_backend("systemd[journalpath=/x]"));
        assert!(!is_journal_backend("auto"));
    }
}
