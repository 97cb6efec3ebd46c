//! `rampart regex`: fail2ban-regex, with the same arguments and report.
//!
//! Reads a filter (by name from `CONFIG/filter.d`, from a file, or a literal
//! failregex), runs it over a log file or literal lines in check-all mode, and reports
//! hits per regex, date templates and line counts as fail2ban-regex does. Two additions
//! are a stable contract for machines and tests: `--now EPOCH` freezes the clock and
//! `--json` prints one JSON object per failure and nothing else on stdout.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rampart_filter::{Failure, FailureId, Filter, FilterSpec, Mode, UseDns, Value};

use crate::engine::{self, LineFilter, SystemResolver};
use crate::logread::{Encoding, Line, LineReader, trim_line_end};

/// Arguments of `rampart regex` (and of `fail2ban-regex`).
#[derive(clap::Args, Debug, Clone)]
#[command(disable_version_flag = true)]
pub struct RegexArgs {
    /// Configuration directory (where `filter.d` is).
    #[arg(short = 'c', long = "config", value_name = "DIR")]
    pub config: Option<PathBuf>,
    /// Custom pattern for dates and times (replaces the filter's).
    #[arg(short = 'd', long = "datepattern", value_name = "PATTERN")]
    pub datepattern: Option<String>,
    /// Time zone of dates without one (`UTC`, `UTC+0200`, …).
    #[arg(long = "timezone", visible_alias = "TZ", value_name = "TZ")]
    pub timezone: Option<String>,
    /// Encoding of the log file.
    #[arg(short = 'e', long = "encoding", value_name = "ENCODING")]
    pub encoding: Option<String>,
    /// Raw hosts: never resolve host names.
    #[arg(short = 'r', long = "raw")]
    pub raw: bool,
    /// How `<HOST>` treats names: yes, warn, no (addresses only) or raw.
    #[arg(long = "usedns", value_name = "MODE")]
    pub usedns: Option<String>,
    /// Lines buffered for multi-line regexes.
    #[arg(short = 'L', long = "maxlines", value_name = "N")]
    pub maxlines: Option<usize>,
    /// journalctl-style matches (for `systemd-journal` logs).
    #[arg(short = 'm', long = "journalmatch", value_name = "MATCH")]
    pub journalmatch: Option<String>,
    /// Log level of diagnostics (accepted for compatibility).
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// More detail: matched addresses per regex, all regexes and templates.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Verbosity as a number (0..4).
    #[arg(long = "verbosity", value_name = "N")]
    pub verbosity: Option<u8>,
    /// Show date template weights and regexes.
    #[arg(long = "verbose-date", visible_alias = "VD")]
    pub verbose_date: bool,
    /// Stop at the first matching failregex, as the daemon does.
    #[arg(long = "no-check-all")]
    pub no_check_all: bool,
    /// Print only this for each failure: id, ip, msg, row, or a field name.
    #[arg(short = 'o', long = "out", value_name = "FORMAT")]
    pub out: Option<String>,
    #[arg(long = "print-no-missed")]
    pub print_no_missed: bool,
    #[arg(long = "print-no-ignored")]
    pub print_no_ignored: bool,
    #[arg(long = "print-all-matched")]
    pub print_all_matched: bool,
    #[arg(long = "print-all-missed", conflicts_with = "print_no_missed")]
    pub print_all_missed: bool,
    #[arg(long = "print-all-ignored", conflicts_with = "print_no_ignored")]
    pub print_all_ignored: bool,
    /// The current time, in epoch seconds (year inference, undated lines).
    #[arg(long = "now", value_name = "EPOCH")]
    pub now: Option<f64>,
    /// Print one JSON object per failure found, and nothing else, on stdout.
    #[arg(long = "json")]
    pub json: bool,
    /// Print the version in short form and exit.
    #[arg(short = 'V')]
    pub short_version: bool,
    /// A log file, or literal log line(s).
    #[arg(value_name = "LOG", required_unless_present = "short_version")]
    pub log: Option<String>,
    /// A filter name with options (`sshd[mode=aggressive]`), a filter file, or a regex.
    #[arg(value_name = "REGEX", required_unless_present = "short_version")]
    pub regex: Option<String>,
    /// An ignoreregex, or a filter file to take ignoreregexes from.
    #[arg(value_name = "IGNOREREGEX")]
    pub ignoreregex: Option<String>,
}

/// Per-regex hit counts and, with `-v`, the failures behind them.
#[derive(Debug, Default)]
struct RegexStat {
    hits: u64,
    failures: Vec<(String, f64, bool)>,
}

#[derive(Debug, Default)]
struct LineStats {
    tested: u64,
    matched: u64,
    missed: u64,
    ignored: u64,
    matched_lines: Vec<String>,
    missed_lines: Vec<String>,
    ignored_lines: Vec<String>,
}

/// How many lines of each kind are listed before "too many to print".
const PRINT_LIMIT: usize = 20;

/// Runs `rampart regex`; returns the process exit code.
pub fn run(args: &RegexArgs, default_config: &Path) -> Result<u8> {
    if args.short_version {
        println!("{}", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    let (Some(log), Some(regex)) = (args.log.as_deref(), args.regex.as_deref()) else {
        bail!("provide both LOG and REGEX");
    };
    let mut out = Report::new(args.json || args.out.is_some());
    out.line("");
    out.line("Running tests");
    out.line("=============");
    out.line("");

    let config_dir = args
        .config
        .clone()
        .unwrap_or_else(|| default_config.to_path_buf());
    let encoding = match args.encoding.as_deref() {
        Some(e) => Encoding::parse(e).with_context(|| format!("unknown encoding {e:?}"))?,
        None => Encoding::Utf8,
    };
    let use_dns = if args.raw {
        UseDns::Raw
    } else {
        args.usedns.as_deref().map_or(UseDns::Warn, UseDns::parse)
    };

    // The filter: regexes from a filter file or the command line.
    let mut spec = FilterSpec {
        maxlines: 1,
        use_dns,
        ..FilterSpec::default()
    };
    let mut datepattern: Option<String> = None;
    // fail2ban-regex reads the filter for the systemd backend when LOG is the journal.
    let journal_log = log.starts_with("systemd-journal");
    let backend = if journal_log { "systemd" } else { "auto" };
    let fail_source = engine::load_regex_source_for(regex, &config_dir, true, backend)?;
    out.line(&fail_source.describe("failregex"));
    fail_source.apply(&mut spec, &mut datepattern, true);
    if let Some(ignore) = args.ignoreregex.as_deref() {
        let ignore_source = engine::load_regex_source(ignore, &config_dir, false)?;
        out.line(&ignore_source.describe("ignoreregex"));
        ignore_source.apply(&mut spec, &mut datepattern, false);
    }
    if let Some(n) = args.maxlines {
        spec.maxlines = n;
    }
    if spec.maxlines > 1 || args.maxlines.is_some() {
        out.line(&format!("Use         maxlines : {}", spec.maxlines));
    }
    if args.datepattern.is_some() {
        datepattern.clone_from(&args.datepattern);
    }

    let check_all = !args.no_check_all && args.out.is_none();
    let mode = Mode {
        check_all,
        raw_hosts: args.raw,
        ignore_pending: args.out.is_some(),
        check_find_time: false,
        find_time: 600.0,
    };
    let filter = Filter::new(&spec, mode).map_err(anyhow::Error::from)?;
    filter.check().map_err(anyhow::Error::from)?;
    let engine = LineFilter::new(filter, datepattern.as_deref(), args.timezone.as_deref())?;
    if let Some(dp) = &datepattern {
        out.line(&format!(
            "Use      datepattern : {dp} : {}",
            engine.date_description()
        ));
    }

    let now = args.now.unwrap_or_else(engine::wall_clock);
    let resolver = SystemResolver::default();
    let mut run = Run {
        args,
        engine,
        now,
        resolver,
        stats: LineStats::default(),
        fail_stats: Vec::new(),
        ignore_stats: Vec::new(),
        prefregex_hits: 0,
        stdout: io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
        found: Vec::new(),
    };
    run.fail_stats
        .resize_with(spec.failregex.len(), RegexStat::default);
    run.ignore_stats
        .resize_with(spec.ignoreregex.len(), RegexStat::default);

    let started = Instant::now();
    let path = Path::new(log);
    if journal_log && !path.is_file() {
        out.line("Use         systemd journal");
        out.line(&format!("Use         encoding : {}", encoding.name()));
        // -m wins; otherwise the filter's journalmatch (its last line, as fail2ban-regex
        // keeps only that one).
        let matches: Vec<Vec<String>> = match &args.journalmatch {
            Some(m) => vec![
                rampart_config::shlex_split(m)
                    .with_context(|| format!("invalid --journalmatch {m:?}"))?,
            ],
            None => match &fail_source {
                engine::RegexSource::Filter { resolved, .. } => {
                    resolved.journalmatch.last().cloned().into_iter().collect()
                }
                engine::RegexSource::Literal(_) => Vec::new(),
            },
        };
        let spec = crate::journal::spec_for(log, &matches)?;
        if !spec.matches.is_empty() {
            out.line(&format!(
                "Use    journal match : {}",
                spec.describe_matches()
            ));
        }
        out.line("");
        out.flush();
        run.process_journal(spec, encoding)?;
    } else if path.is_file() {
        out.line(&format!("Use         log file : {log}"));
        out.line(&format!("Use         encoding : {}", encoding.name()));
        out.line("");
        out.flush();
        let file = File::open(path).with_context(|| format!("cannot open {log}"))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        run.process_file(file, size, encoding)?;
    } else {
        let lines: Vec<&str> = log.split('\n').collect();
        if spec.maxlines <= 1 && lines.len() == 1 {
            out.line(&format!(
                "Use      single line : {}",
                short(&log.replace('\n', "\\n"), 53)
            ));
        } else {
            out.line(&format!("Use      multi line : {} line(s)", lines.len()));
            for (i, l) in lines.iter().enumerate() {
                if i >= 5 {
                    out.line("| ...");
                    break;
                }
                out.line(&format!("| {:>2.2}: {}", i + 1, short(l, 53)));
            }
            out.line("`-");
        }
        out.line("");
        out.flush();
        for (i, l) in lines.iter().enumerate() {
            run.process(l, i as u64 + 1)?;
        }
    }
    let elapsed = started.elapsed();
    run.stdout.flush()?;
    if !out.quiet {
        run.print_report(&mut out, elapsed);
    }
    Ok(0)
}

struct Run<'a> {
    args: &'a RegexArgs,
    engine: LineFilter,
    now: f64,
    resolver: SystemResolver,
    stats: LineStats,
    fail_stats: Vec<RegexStat>,
    ignore_stats: Vec<RegexStat>,
    prefregex_hits: u64,
    stdout: io::BufWriter<io::StdoutLock<'static>>,
    /// The current line's failures (kept for its room).
    found: Vec<Failure>,
}

impl Run<'_> {
    fn process_file(&mut self, file: File, size: u64, encoding: Encoding) -> Result<()> {
        let mut reader = LineReader::new(file);
        let mut progress = Progress::new(size);
        let mut number = 0u64;
        let mut undecodable = 0u64;
        while let Some(Line {
            bytes,
            text: utf8,
            complete,
        }) = reader.next_utf8_line()?
        {
            number += 1;
            if !complete {
                // fail2ban waits for the line to be completed; so do we.
                eprintln!("note: last line of the file has no line end and was not processed");
                break;
            }
            let (text, replaced) = match utf8 {
                Some(text) if encoding == Encoding::Utf8 => (Cow::Borrowed(text), false),
                _ => encoding.decode(bytes),
            };
            undecodable += u64::from(replaced);
            self.process(&text, number)?;
            if number.is_multiple_of(4096) {
                progress.update(reader.consumed, number);
            }
        }
        progress.finish();
        if undecodable > 0 {
            eprintln!(
                "note: {undecodable} line(s) had bytes invalid in {}; they were replaced",
                encoding.name()
            );
        }
        Ok(())
    }

    /// Reads the whole journal once; entries are numbered from 1 in the order read.
    fn process_journal(
        &mut self,
        spec: rampart_journal::JournalSpec,
        encoding: Encoding,
    ) -> Result<()> {
        use rampart_journal::{Follow, JournalSource, Start};
        use rampart_source::LogSource;
        let mut source = JournalSource::new(spec, Start::Beginning, Follow::Once)?;
        let mut number = 0u64;
        let mut undecodable = 0u64;
        let mut failed: Option<anyhow::Error> = None;
        let mut problems = Vec::new();
        let mut dates = crate::journal::DateTexts::default();
        loop {
            let stats = source.read_available(&mut |line| {
                number += 1;
                let (text, replaced) = encoding.decode(line.bytes);
                undecodable += u64::from(replaced);
                let time = line.time.unwrap_or(std::time::UNIX_EPOCH);
                let date = dates.text(&self.engine, time).to_string();
                match self.process_entry(&text, (&date, crate::journal::epoch(time)), number) {
                    Ok(()) => std::ops::ControlFlow::Continue(()),
                    Err(e) => {
                        failed = Some(e);
                        std::ops::ControlFlow::Break(())
                    }
                }
            })?;
            problems.extend(stats.notices.into_iter().map(|n| n.to_string()));
            if let Some(e) = failed {
                return Err(e);
            }
            if source.is_finished() {
                break;
            }
            source.wait(Duration::from_secs(1))?;
        }
        for p in &problems {
            eprintln!("ERROR: {p}");
        }
        if undecodable > 0 {
            eprintln!(
                "note: {undecodable} entries had bytes invalid in {}; they were replaced",
                encoding.name()
            );
        }
        if !problems.is_empty() && number == 0 {
            bail!("the journal could not be read");
        }
        if number == 0 {
            eprintln!(
                "note: no journal entry was read (an empty journal, or none passes the journal match)"
            );
        }
        Ok(())
    }

    fn process(&mut self, raw_line: &str, number: u64) -> Result<()> {
        let line = trim_line_end(raw_line);
        if line.starts_with('#') || line.is_empty() {
            return Ok(());
        }
        self.process_checked(line, None, number)
    }

    /// A journal entry: its time is known and it is never a comment.
    fn process_entry(&mut self, line: &str, dated: (&str, f64), number: u64) -> Result<()> {
        self.process_checked(line, Some(dated), number)
    }

    fn process_checked(
        &mut self,
        line: &str,
        dated: Option<(&str, f64)>,
        number: u64,
    ) -> Result<()> {
        let buffered_before: Vec<String> = if self.engine.filter.maxlines() > 1 {
            self.engine
                .filter
                .buffered_lines()
                .iter()
                .map(|l| l.full().to_string())
                .collect()
        } else {
            Vec::new()
        };
        // One vector from line to line, emptied after each: no allocation per failure,
        // and the failures are gone before the next line (the filter's multi-line
        // cache then takes their data back without a copy).
        let mut failures = std::mem::take(&mut self.found);
        match dated {
            Some((date, time)) => failures.extend(self.engine.filter.process_dated_line(
                date,
                line,
                time,
                self.now,
                &self.resolver,
            )),
            None => self
                .engine
                .process_into(line, self.now, &self.resolver, &mut failures),
        }
        let result = self.account(line, dated, number, &buffered_before, &failures);
        failures.clear();
        self.found = failures;
        result
    }

    /// Counts and prints what one line gave.
    fn account(
        &mut self,
        line: &str,
        dated: Option<(&str, f64)>,
        number: u64,
        buffered_before: &[String],
        failures: &[Failure],
    ) -> Result<()> {
        // fail2ban-regex shows a journal line with its date in front.
        let shown;
        let line = match dated {
            Some((date, _)) => {
                shown = format!("{date}{line}");
                shown.as_str()
            }
            None => line,
        };
        let mut is_ignored = !self.engine.filter.ignored_by().is_empty();
        for &i in self.engine.filter.ignored_by() {
            if let Some(s) = self.ignore_stats.get_mut(i) {
                s.hits += 1;
            }
        }
        if self.engine.filter.prefregex_source().is_some() && self.engine.filter.prefregex_matched()
        {
            self.prefregex_hits += 1;
        }
        let mut real = 0usize;
        let verbose = self.verbosity() > 0;
        for (k, f) in failures.iter().enumerate() {
            if let Some(s) = self.fail_stats.get_mut(f.regex) {
                s.hits += 1;
                if verbose {
                    let id = f.id.as_ref().map(ToString::to_string).unwrap_or_default();
                    s.failures.push((id, f.time.unwrap_or(0.0), k > 1));
                }
            }
            if f.is_nofail() {
                is_ignored = true;
            } else {
                real += 1;
            }
        }
        if self.args.json {
            for f in failures.iter().filter(|f| !f.is_nofail()) {
                if let Some(id) = &f.id {
                    writeln!(self.stdout, "{}", json_failure(number, id, f))?;
                }
            }
            return Ok(());
        }
        if let Some(fmt) = &self.args.out {
            if !is_ignored {
                for f in failures.iter().filter(|f| !f.is_nofail()) {
                    for row in out_format(fmt, f) {
                        writeln!(self.stdout, "{row}")?;
                    }
                }
            }
            return Ok(());
        }
        // Lines of a multi-line buffer that a match consumed count as matched too.
        if self.engine.filter.maxlines() > 1 {
            let full = buffered_before.len() >= self.engine.filter.maxlines();
            let now_buffered: Vec<&str> = self
                .engine
                .filter
                .buffered_lines()
                .iter()
                .map(|l| l.full())
                .collect();
            for old in buffered_before.iter().skip(usize::from(full)) {
                if !now_buffered.contains(&old.as_str()) {
                    if let Some(p) = self.stats.missed_lines.iter().position(|l| l == old) {
                        self.stats.missed_lines.remove(p);
                    }
                    if self.args.print_all_matched {
                        self.stats.matched_lines.push(old.clone());
                    }
                    self.stats.matched += 1;
                    self.stats.missed = self.stats.missed.saturating_sub(1);
                }
            }
        }
        let keep =
            |all: bool, no: bool, count: u64| !no && (all || count <= PRINT_LIMIT as u64 + 1);
        if is_ignored {
            self.stats.ignored += 1;
            if keep(
                self.args.print_all_ignored,
                self.args.print_no_ignored,
                self.stats.ignored,
            ) {
                self.stats.ignored_lines.push(line.to_string());
            }
        } else if real > 0 {
            self.stats.matched += 1;
            if self.args.print_all_matched {
                self.stats.matched_lines.push(line.to_string());
            }
        } else {
            self.stats.missed += 1;
            if keep(
                self.args.print_all_missed,
                self.args.print_no_missed,
                self.stats.missed,
            ) {
                self.stats.missed_lines.push(line.to_string());
            }
        }
        self.stats.tested += 1;
        Ok(())
    }

    fn verbosity(&self) -> u8 {
        self.args.verbosity.unwrap_or(self.args.verbose)
    }

    fn print_report(&self, out: &mut Report, elapsed: Duration) {
        let verbose = self.verbosity() > 0;
        out.line("");
        out.line("Results");
        out.line("=======");
        if let Some(pref) = self.engine.filter.prefregex_source() {
            out.line("");
            out.line(&format!("Prefregex: {} total", self.prefregex_hits));
            out.list(&[pref.to_string()], None);
        }
        let print_regexes =
            |out: &mut Report, title: &str, sources: Vec<&str>, stats: &[RegexStat]| {
                let total: u64 = stats.iter().map(|s| s.hits).sum();
                let mut rows = Vec::new();
                for (i, (src, st)) in sources.iter().zip(stats).enumerate() {
                    if st.hits > 0 || verbose {
                        rows.push(format!("{:2}) [{}] {}", i + 1, st.hits, src));
                    }
                    if verbose {
                        for (id, time, multiple) in &st.failures {
                            rows.push(format!(
                                "    {id}  {}{}",
                                self.engine.format_time(*time),
                                if *multiple {
                                    " (multiple regex matched)"
                                } else {
                                    ""
                                }
                            ));
                        }
                    }
                }
                out.line("");
                out.line(&format!("{title}: {total} total"));
                out.list(&rows, Some(" #) [# of hits] regular expression"));
            };
        print_regexes(
            out,
            "Failregex",
            self.engine.filter.failregex_sources().collect(),
            &self.fail_stats,
        );
        print_regexes(
            out,
            "Ignoreregex",
            self.engine.filter.ignoreregex_sources().collect(),
            &self.ignore_stats,
        );
        out.line("");
        out.line("Date template hits:");
        let rows: Vec<String> = self
            .engine
            .template_hits()
            .into_iter()
            .filter(|(_, hits)| verbose || *hits > 0)
            .map(|(name, hits)| format!("[{hits}] {name}"))
            .collect();
        out.list(&rows, Some("[# of hits] date format"));
        let s = &self.stats;
        out.line("");
        out.line(&format!(
            "Lines: {} lines, {} ignored, {} matched, {} missed",
            s.tested, s.ignored, s.matched, s.missed
        ));
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            format!(", {:.0} lines/s", s.tested as f64 / secs)
        } else {
            String::new()
        };
        out.line(&format!("[processed in {secs:.2} sec{rate}]"));
        out.line("");
        let print_lines =
            |out: &mut Report, kind: &str, count: u64, lines: &[String], all: bool| {
                if count == 0 {
                    return;
                }
                let header = format!("{} line(s):", capitalize(kind));
                if count < PRINT_LIMIT as u64 || all {
                    let rows: Vec<String> =
                        lines.iter().map(|l| l.trim_end().to_string()).collect();
                    out.list(&rows, Some(&header));
                } else {
                    out.line(&format!(
                    "{header} too many to print.  Use --print-all-{kind} to print all {count} lines"
                ));
                }
            };
        if self.args.print_all_matched {
            print_lines(out, "matched", s.matched, &s.matched_lines, true);
        }
        if !self.args.print_no_ignored {
            print_lines(
                out,
                "ignored",
                s.ignored,
                &s.ignored_lines,
                self.args.print_all_ignored,
            );
        }
        if !self.args.print_no_missed {
            print_lines(
                out,
                "missed",
                s.missed,
                &s.missed_lines,
                self.args.print_all_missed,
            );
        }
        out.flush();
    }
}

/// The human-readable report on stdout; silent in machine modes.
struct Report {
    quiet: bool,
    out: io::BufWriter<io::Stdout>,
}

impl Report {
    fn new(quiet: bool) -> Report {
        Report {
            quiet,
            out: io::BufWriter::new(io::stdout()),
        }
    }

    fn line(&mut self, s: &str) {
        if !self.quiet {
            let _ = writeln!(self.out, "{s}");
        }
    }

    /// fail2ban-regex's list layout: `|- header`, `|  row`, `` `- ``.
    fn list(&mut self, rows: &[String], header: Option<&str>) {
        if rows.is_empty() {
            return;
        }
        let mut s = String::new();
        if let Some(h) = header {
            s.push_str("|- ");
            s.push_str(h);
            s.push('\n');
        }
        s.push_str("|  ");
        s.push_str(&rows.join("\n|  "));
        s.push_str("\n`-");
        self.line(&s);
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        let mut t: String = s.chars().take(max - 3).collect();
        t.push_str("...");
        t
    } else {
        s.to_string()
    }
}

/// The `--json` record of one failure.
fn json_failure(line: u64, id: &FailureId, f: &Failure) -> String {
    let mut fields = serde_json::Map::new();
    for (k, v) in f.data.iter() {
        let value = match (k, v) {
            ("matches" | "nofail-matches" | "mlfpending" | "nofail" | "users", _) => continue,
            (_, Value::Text(t)) => serde_json::Value::String(t.to_string()),
            (_, Value::Addr(a)) => serde_json::Value::String(a.to_string()),
            (_, Value::Tuple(items)) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| {
                        i.as_ref().map_or(serde_json::Value::Null, |s| {
                            serde_json::Value::String(s.clone())
                        })
                    })
                    .collect(),
            ),
            _ => continue,
        };
        fields.insert(k.to_string(), value);
    }
    if f.data.is_set("mlfid") {
        let users = f.data.users();
        if !users.is_empty() {
            let mut sorted: Vec<&str> = users.iter().map(|u| u.as_str()).collect();
            sorted.sort();
            fields.insert(
                "users".into(),
                serde_json::Value::Array(
                    sorted
                        .into_iter()
                        .map(|u| serde_json::Value::String(u.to_string()))
                        .collect(),
                ),
            );
        }
        fields.insert(
            "attempts".into(),
            serde_json::Value::from(f.data.matches().len()),
        );
    }
    let mut obj = serde_json::Map::new();
    obj.insert("line".into(), serde_json::Value::from(line));
    obj.insert("id".into(), serde_json::Value::String(id.to_string()));
    obj.insert(
        "time".into(),
        f.time
            .and_then(serde_json::Number::from_f64)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
    );
    obj.insert("fields".into(), serde_json::Value::Object(fields));
    serde_json::Value::Object(obj).to_string()
}

/// `-o/--out`: fail2ban-regex's per-failure output forms.
fn out_format(fmt: &str, f: &Failure) -> Vec<String> {
    let id = f.id.as_ref().map(ToString::to_string).unwrap_or_default();
    match fmt {
        "id" | "fid" => vec![id],
        "ip" => vec![match f.data.get("ip") {
            Some(Value::Addr(a)) => a.to_string(),
            _ => id,
        }],
        "msg" => f
            .data
            .matches()
            .iter()
            .map(|l| l.full().to_string())
            .collect(),
        "row" => {
            let fields: BTreeMap<&str, String> = f
                .data
                .iter()
                .filter(|(k, _)| *k != "matches")
                .filter_map(|(k, v)| v.as_text().map(|t| (k, t.to_string())))
                .collect();
            vec![format!(
                "[{id:?},\t{:?},\t{fields:?}],",
                f.time.unwrap_or(0.0)
            )]
        }
        field => vec![f.data.text(field).unwrap_or("None").to_string()],
    }
}

/// A progress line on a terminal for long runs; nothing in pipes or for small files.
struct Progress {
    enabled: bool,
    size: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(size: u64) -> Progress {
        let now = Instant::now();
        Progress {
            enabled: io::stderr().is_terminal() && size > 16 * 1024 * 1024,
            size,
            started: now,
            last: now,
        }
    }

    fn update(&mut self, done: u64, lines: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let frac = done as f64 / self.size.max(1) as f64;
        let width = 30;
        let filled = ((frac * width as f64) as usize).min(width);
        let rate = lines as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r[{}{}] {:5.1}%  {} lines  {:.0} lines/s ",
            "#".repeat(filled),
            " ".repeat(width - filled),
            frac * 100.0,
            lines,
            rate
        );
    }

    fn finish(&self) {
        if self.enabled {
            eprint!("\r{}\r", " ".repeat(80));
        }
    }
}
