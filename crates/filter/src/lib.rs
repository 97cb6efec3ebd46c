//! From log lines to failures: fail2ban's filter semantics.
//!
//! `prefregex`, `failregex` and `ignoreregex` with fail2ban's tags (`<HOST>`, `<F-*>`),
//! multi-line buffers (`maxlines`, `<SKIPLINES>`), multi-line failure ids (`<F-MLFID>`,
//! `<F-NOFAIL>`, `<F-MLFFORGET>`, `<F-MLFGAINED>`), `usedns` and address normalisation.
//!
//! The crate is pure: it reads no clock (callers pass `now`), does no IO (host names are
//! resolved through a [`Resolver`] the caller supplies) and finds no dates (callers run
//! date detection and pass the [`DateSpan`] it found). One [`Filter`] holds the state of
//! one jail's filter: its line buffer, its multi-line id cache and the last date seen.

mod addr;
mod data;
mod lines;
mod mlfid;
mod regex;
mod tags;
mod text;

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rampart_pyre::{Candidates, Locations, Prefilter};
use text::Within;

pub use addr::{AddrHint, FailureId};
pub use data::{FailData, Value};
use lines::LineRef;
pub use lines::TupleLine;
pub use text::Text;

use data::{Keys, keys};
use mlfid::MlfidCache;
use regex::{FilterRegex, LineSplit};

/// A filter that could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A regex that is empty once tags are expanded.
    #[error("cannot add an empty regex")]
    EmptyRegex,
    /// A regex the engine rejects.
    #[error("unable to compile regular expression {regex:?}: {reason}")]
    Regex { regex: String, reason: String },
    /// A failregex with no group that could identify a failure.
    #[error("no failure-id group (<HOST>, <ADDR>, <F-ID>, <F-MLFID>, …) in {0:?}")]
    NoFailureId(String),
    /// `maxlines` below one.
    #[error("maxlines must be a whole number greater than zero")]
    MaxLines,
    /// The regex engine gave up on a line (pathological backtracking).
    #[error("regex {regex:?} gave up: {reason}")]
    Match { regex: String, reason: String },
}

/// How host names captured by `<HOST>` are treated (`usedns`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UseDns {
    /// Resolve names to addresses.
    Yes,
    /// Resolve, and let the caller warn about it.
    #[default]
    Warn,
    /// `<HOST>` matches addresses only.
    No,
    /// Names are ids as they are, never resolved.
    Raw,
}

impl UseDns {
    /// Parses a `usedns` value; fail2ban maps booleans and falls back to `no`.
    pub fn parse(value: &str) -> UseDns {
        match value.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" => UseDns::Yes,
            "warn" => UseDns::Warn,
            "raw" => UseDns::Raw,
            _ => UseDns::No,
        }
    }

    fn resolves(self) -> bool {
        matches!(self, UseDns::Yes | UseDns::Warn)
    }
}

impl fmt::Display for UseDns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UseDns::Yes => "yes",
            UseDns::Warn => "warn",
            UseDns::No => "no",
            UseDns::Raw => "raw",
        })
    }
}

/// Resolves host names for `usedns = yes|warn`.
pub trait Resolver {
    /// Every address of `host` (empty when it does not resolve).
    fn resolve(&self, host: &str) -> Vec<IpAddr>;
}

/// A resolver that resolves nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoResolver;

impl Resolver for NoResolver {
    fn resolve(&self, _host: &str) -> Vec<IpAddr> {
        Vec::new()
    }
}

/// The regexes and options that define a filter (what a jail's configuration resolves to).
#[derive(Clone, Debug, Default)]
pub struct FilterSpec {
    pub prefregex: Option<String>,
    pub failregex: Vec<String>,
    pub ignoreregex: Vec<String>,
    /// Lines buffered for multi-line regexes (1 = single-line).
    pub maxlines: usize,
    pub use_dns: UseDns,
}

/// How a filter is run: by the daemon, or by a tester that wants to see everything.
#[derive(Clone, Debug)]
pub struct Mode {
    /// Try every failregex on every line (fail2ban-regex, tests), not just the first hit.
    pub check_all: bool,
    /// Host names are ids as written, never resolved (fail2ban-regex `--raw`).
    pub raw_hosts: bool,
    /// Drop multi-line matches that have no id yet, instead of reporting them.
    pub ignore_pending: bool,
    /// Apply the daemon's time rules (drop old lines while catching up; treat far-off
    /// dates as now in operation).
    pub check_find_time: bool,
    /// The jail's `findtime`, in seconds.
    pub find_time: f64,
}

impl Default for Mode {
    fn default() -> Mode {
        Mode {
            check_all: false,
            raw_hosts: false,
            ignore_pending: true,
            check_find_time: true,
            find_time: 600.0,
        }
    }
}

/// Where date detection found the date of a line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DateSpan {
    /// Byte range of the date text to cut from the line (may be empty).
    pub start: usize,
    pub end: usize,
    /// The time it denotes; `None` when the text is empty or could not be converted.
    pub time: Option<f64>,
}

/// One failure found in a line.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// Index of the failregex that matched.
    pub regex: usize,
    /// The id to count the failure under; `None` for a multi-line match still waiting
    /// for its id (reported only when pending matches are not ignored).
    pub id: Option<FailureId>,
    /// The time of the failure (epoch seconds).
    pub time: Option<f64>,
    /// Captured fields and bookkeeping (`matches`, `users`, `nofail`, …); shared with
    /// the filter's multi-line cache, which takes it back without a copy once the
    /// reader has dropped the failure.
    pub data: Arc<FailData>,
}

impl Failure {
    /// Whether this match is not a failure by itself (`<F-NOFAIL>`, access gained).
    pub fn is_nofail(&self) -> bool {
        self.data.truthy_k(&keys().nofail)
    }
}

/// Things worth a warning that the filter noticed (the caller logs them, rate-limited).
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// A match on a line without a usable date.
    MatchWithoutDate { line: String },
    /// A date that could not be converted to a time.
    UnparsableDate { text: String },
    /// In operation, a date more than a minute away from now; treated as now.
    TimeSkew { delta: f64, line: String },
    /// While catching up, a line older than `findtime`; dropped.
    TooOld { line: String },
    /// A regex engine gave up on a line (pathological backtracking).
    RegexGaveUp { regex: String },
}

/// The compiled regexes of a filter.
#[derive(Debug)]
struct Regexes {
    prefregex: Option<FilterRegex>,
    failregex: Vec<FilterRegex>,
    ignoreregex: Vec<FilterRegex>,
    /// Which failregexes can match a buffer, from their required literals: most lines
    /// are rejected by one Aho-Corasick pass instead of one regex run per failregex.
    /// Built at the first line: the literal analysis and the automaton cost start-up
    /// time and tens of KiB per jail, and many jails never see a line.
    fail_prefilter: OnceLock<Prefilter>,
    ignore_prefilter: OnceLock<Prefilter>,
}

impl Regexes {
    /// fail2ban runs the ignoreregexes before the failregexes when there are far
    /// fewer of them.
    fn ignore_first(&self) -> bool {
        !self.ignoreregex.is_empty()
            && (self.ignoreregex.len() as isize) < (self.failregex.len() as isize) - 2
    }

    fn fail_prefilter(&self) -> &Prefilter {
        self.fail_prefilter
            .get_or_init(|| prefilter_of(&self.failregex))
    }

    fn ignore_prefilter(&self) -> &Prefilter {
        self.ignore_prefilter
            .get_or_init(|| prefilter_of(&self.ignoreregex))
    }
}

fn prefilter_of(list: &[FilterRegex]) -> Prefilter {
    Prefilter::new(&list.iter().map(FilterRegex::regex).collect::<Vec<_>>())
}

/// A jail's filter: compiled regexes plus the state carried from line to line.
#[derive(Debug)]
pub struct Filter {
    regexes: Regexes,
    settings: Settings,
    state: State,
}

#[derive(Debug)]
struct Settings {
    maxlines: usize,
    use_dns: UseDns,
    mode: Mode,
    /// Whether the daemon is past its initial catch-up read.
    in_operation: bool,
}

/// What a filter carries from line to line, and its scratch space.
#[derive(Debug)]
struct State {
    line_buffer: Vec<TupleLine>,
    mlfid_cache: MlfidCache,
    last_time_text: String,
    last_date: Option<f64>,
    locs: Locations,
    buf: String,
    /// The prefregex's groups of the line at hand.
    pre_groups: FailData,
    prefregex_matched: bool,
    ignored_by: Vec<usize>,
    notices: Vec<Notice>,
    fail_candidates: Candidates,
    ignore_candidates: Candidates,
}

impl Filter {
    /// Compiles a filter.
    pub fn new(spec: &FilterSpec, mode: Mode) -> Result<Filter, Error> {
        let maxlines = spec.maxlines;
        if maxlines == 0 {
            return Err(Error::MaxLines);
        }
        let multiline = maxlines > 1;
        let prefregex = match spec.prefregex.as_deref() {
            Some(p) if !p.trim().is_empty() => Some(FilterRegex::new(p, spec.use_dns, false)?),
            _ => None,
        };
        let pref_has_id = prefregex.as_ref().is_some_and(FilterRegex::has_id_group);
        let mut failregex = Vec::with_capacity(spec.failregex.len());
        for r in &spec.failregex {
            let compiled = FilterRegex::new(r, spec.use_dns, multiline)?;
            if !compiled.has_id_group() && !pref_has_id {
                return Err(Error::NoFailureId(r.clone()));
            }
            failregex.push(compiled);
        }
        let ignoreregex = spec
            .ignoreregex
            .iter()
            .map(|r| FilterRegex::new(r, spec.use_dns, false))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Filter {
            regexes: Regexes {
                fail_prefilter: OnceLock::new(),
                ignore_prefilter: OnceLock::new(),
                prefregex,
                failregex,
                ignoreregex,
            },
            settings: Settings {
                maxlines,
                use_dns: spec.use_dns,
                mode,
                in_operation: true,
            },
            state: State {
                line_buffer: Vec::new(),
                mlfid_cache: MlfidCache::default(),
                last_time_text: String::new(),
                last_date: None,
                locs: Locations::new(),
                pre_groups: FailData::default(),
                buf: String::new(),
                prefregex_matched: false,
                ignored_by: Vec::new(),
                notices: Vec::new(),
                fail_candidates: Candidates::new(),
                ignore_candidates: Candidates::new(),
            },
        })
    }

    /// Drops the regexes' engines and prefilters (built again by the next line), keeping
    /// what the filter carries from line to line: for a jail that has been quiet.
    pub fn release_engines(&mut self) {
        let r = &mut self.regexes;
        r.prefregex
            .iter_mut()
            .chain(&mut r.failregex)
            .chain(&mut r.ignoreregex)
            .for_each(FilterRegex::release_engines);
        r.fail_prefilter = OnceLock::new();
        r.ignore_prefilter = OnceLock::new();
    }

    /// Builds every regex's engines now instead of at first need, and reports one that
    /// no engine accepts. Testers call this; a daemon leaves it to the first lines.
    pub fn check(&self) -> Result<(), Error> {
        let r = &self.regexes;
        r.prefregex
            .iter()
            .chain(&r.failregex)
            .chain(&r.ignoreregex)
            .try_for_each(FilterRegex::check)
    }

    /// The failregexes as configured (tags unexpanded).
    pub fn failregex_sources(&self) -> impl Iterator<Item = &str> {
        self.regexes.failregex.iter().map(FilterRegex::source)
    }

    /// The ignoreregexes as configured.
    pub fn ignoreregex_sources(&self) -> impl Iterator<Item = &str> {
        self.regexes.ignoreregex.iter().map(FilterRegex::source)
    }

    /// The prefregex as configured.
    pub fn prefregex_source(&self) -> Option<&str> {
        self.regexes.prefregex.as_ref().map(FilterRegex::source)
    }

    /// `maxlines`.
    pub fn maxlines(&self) -> usize {
        self.settings.maxlines
    }

    /// Marks the end (or a restart) of the initial catch-up read.
    pub fn set_in_operation(&mut self, in_operation: bool) {
        self.settings.in_operation = in_operation;
    }

    /// Whether the prefregex matched the last time it was tried.
    pub fn prefregex_matched(&self) -> bool {
        self.state.prefregex_matched
    }

    /// Indices of the ignoreregexes that matched on the last line.
    pub fn ignored_by(&self) -> &[usize] {
        &self.state.ignored_by
    }

    /// The lines currently held in the multi-line buffer.
    pub fn buffered_lines(&self) -> &[TupleLine] {
        &self.state.line_buffer
    }

    /// Takes the notices gathered since the last call.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.state.notices)
    }

    /// Forgets the state carried between lines (multi-line buffer, ids, last date).
    pub fn reset(&mut self) {
        let s = &mut self.state;
        s.line_buffer.clear();
        s.mlfid_cache.clear();
        s.last_time_text.clear();
        s.last_date = None;
    }

    /// Processes one log line (without its line ending) whose date, if any, is at
    /// `date`; `now` is the current time.
    pub fn process_line(
        &mut self,
        line: &str,
        date: Option<DateSpan>,
        now: f64,
        resolver: &dyn Resolver,
    ) -> Vec<Failure> {
        let mut found = Vec::new();
        self.process_line_into(line, date, now, resolver, &mut found);
        found
    }

    /// [`Filter::process_line`] appending to `found`: a caller that reuses the
    /// vector spares an allocation per failure.
    pub fn process_line_into(
        &mut self,
        line: &str,
        date: Option<DateSpan>,
        now: f64,
        resolver: &dyn Resolver,
        found: &mut Vec<Failure>,
    ) {
        let state = &mut self.state;
        let mut tuple;
        let mut time = None;
        match date {
            Some(span) => {
                tuple = LineRef::split(line, span.start, span.end);
                if span.start < span.end {
                    match span.time {
                        Some(t) => {
                            time = Some(t);
                            state.last_time_text.clear();
                            state.last_time_text.push_str(tuple.date());
                            state.last_date = Some(t);
                        }
                        None => state.notices.push(Notice::UnparsableDate {
                            text: tuple.date().to_string(),
                        }),
                    }
                } else if state.recent_last_date(now) {
                    tuple =
                        LineRef::Owned(TupleLine::with_date_prefix(&state.last_time_text, line));
                    time = state.last_date;
                } else {
                    time = Some(now);
                }
            }
            None => tuple = LineRef::split(line, 0, 0),
        }
        let mut no_date = false;
        if time.is_none() {
            no_date = true;
            if state.recent_last_date(now) {
                tuple = LineRef::Owned(TupleLine::with_date_prefix(&state.last_time_text, line));
                time = state.last_date;
            } else if self.settings.mode.check_find_time && self.settings.in_operation {
                time = Some(now);
            }
        }
        if let Some(t) = time {
            match self.settings.apply_time_rules(state, t, now, line) {
                Some(t) => time = Some(t),
                None => return,
            }
        }
        find_failure(
            &self.regexes,
            &self.settings,
            state,
            tuple,
            time,
            no_date,
            now,
            resolver,
            found,
        );
    }

    /// Processes a line whose time is already known (journal entries): no date
    /// detection; the regexes see `line`, reports show `date_text` before it.
    pub fn process_dated_line(
        &mut self,
        date_text: &str,
        line: &str,
        time: f64,
        now: f64,
        resolver: &dyn Resolver,
    ) -> Vec<Failure> {
        let mut found = Vec::new();
        let state = &mut self.state;
        let tuple = LineRef::Owned(TupleLine::with_date_prefix(date_text, line));
        state.last_time_text.clear();
        state.last_time_text.push_str(date_text);
        state.last_date = Some(time);
        let Some(time) = self.settings.apply_time_rules(state, time, now, line) else {
            return found;
        };
        find_failure(
            &self.regexes,
            &self.settings,
            state,
            tuple,
            Some(time),
            false,
            now,
            resolver,
            &mut found,
        );
        found
    }
}

impl Settings {
    /// The daemon's rules for odd times; `None` drops the line.
    fn apply_time_rules(&self, state: &mut State, time: f64, now: f64, line: &str) -> Option<f64> {
        if !self.mode.check_find_time {
            return Some(time);
        }
        if self.in_operation {
            let delta = (time - now).trunc();
            if delta.abs() > 60.0 {
                state.notices.push(Notice::TimeSkew {
                    delta,
                    line: line.to_string(),
                });
                state.last_date = Some(now);
                return Some(now);
            }
            Some(time)
        } else if time < now - self.mode.find_time {
            state.notices.push(Notice::TooOld {
                line: line.to_string(),
            });
            None
        } else {
            Some(time)
        }
    }
}

impl State {
    fn recent_last_date(&self, now: f64) -> bool {
        self.last_date.is_some_and(|d| d != 0.0 && d > now - 60.0)
    }

    /// Runs `regex`, counting an engine that gave up as a non-match.
    fn run<'a>(
        &mut self,
        regex: &FilterRegex,
        buf: &str,
        org: &'a [TupleLine],
    ) -> Option<LineSplit<'a>> {
        match regex.search(buf, org, &mut self.locs) {
            Ok(found) => found,
            Err(_) => {
                self.notices.push(Notice::RegexGaveUp {
                    regex: regex.source().to_string(),
                });
                None
            }
        }
    }

    /// Whether an ignoreregex matches; records which ones did. After a failregex
    /// match, a multi-line buffer is checked on the lines that match used only.
    fn ignore_line(
        &mut self,
        regexes: &Regexes,
        settings: &Settings,
        buf: &str,
        org: &[TupleLine],
        fail: Option<&LineSplit>,
    ) -> bool {
        let own;
        let (buf, org): (&str, &[TupleLine]) = match fail {
            Some(split) if settings.maxlines > 1 => {
                let mut b = String::new();
                lines::join_into(&split.matched, &mut b);
                own = b;
                (&own, &split.matched)
            }
            _ => (buf, org),
        };
        let check_all = settings.mode.check_all;
        let mut found = false;
        regexes
            .ignore_prefilter()
            .candidates(buf, &mut self.ignore_candidates);
        for (index, regex) in regexes.ignoreregex.iter().enumerate() {
            if !self.ignore_candidates.contains(index) || self.run(regex, buf, org).is_none() {
                continue;
            }
            found = true;
            self.ignored_by.push(index);
            if let (true, Some(split)) = (!check_all || settings.maxlines > 1, fail) {
                self.line_buffer = split.unmatched.clone();
            }
            if !check_all {
                break;
            }
        }
        found
    }
}

/// fail2ban's `findFailure`: runs the regexes over the buffered line(s).
#[allow(clippy::too_many_arguments)]
fn find_failure(
    regexes: &Regexes,
    settings: &Settings,
    state: &mut State,
    line: LineRef,
    date: Option<f64>,
    no_date: bool,
    now: f64,
    resolver: &dyn Resolver,
    out: &mut Vec<Failure>,
) {
    state.ignored_by.clear();
    let multi = settings.maxlines > 1;
    let raw_default = settings.use_dns == UseDns::Raw || settings.mode.raw_hosts;

    let mut buf = std::mem::take(&mut state.buf);
    let mut joined = false;
    if let Some(pref) = &regexes.prefregex
        && !multi
        && !regexes.ignore_first()
    {
        // The failregexes see the prefregex's content, a part of this line: when no
        // failregex's literals occur in the whole line, none can match, and all that
        // is left to know is whether the prefregex matches (a cheap question instead
        // of a capture search), with nothing of the line kept. With several lines
        // buffered the content also replaces the buffer, so there the full path
        // always runs. Which failregexes can match is asked of the content itself,
        // once the prefregex has cut it: most can only match at its start.
        line.text_into(&mut buf);
        joined = true;
        if !regexes.fail_prefilter().any(&buf) {
            state.line_buffer.clear();
            state.prefregex_matched = match pref.regex().try_is_match(&buf) {
                Ok(matched) => matched,
                Err(_) => {
                    state.notices.push(Notice::RegexGaveUp {
                        regex: pref.source().to_string(),
                    });
                    false
                }
            };
            state.buf = buf;
            return;
        }
    }
    let tuple = line.into_tuple();
    // What the regexes run over stays as it is while matches change the buffer; a
    // single line needs no vector for it.
    let single;
    let several: Vec<TupleLine>;
    let org: &[TupleLine] = if multi {
        state.line_buffer.push(tuple);
        let excess = state.line_buffer.len().saturating_sub(settings.maxlines);
        state.line_buffer.drain(..excess);
        several = state.line_buffer.clone();
        &several
    } else {
        state.line_buffer.clear();
        state.line_buffer.push(tuple.clone());
        single = [tuple];
        &single
    };
    if !joined {
        lines::join_into(org, &mut buf);
    }
    find_in_buffer(
        regexes,
        settings,
        state,
        org,
        &mut buf,
        date,
        no_date,
        now,
        raw_default,
        resolver,
        out,
    );
    state.buf = buf;
}

#[allow(clippy::too_many_arguments)]
fn find_in_buffer(
    regexes: &Regexes,
    settings: &Settings,
    state: &mut State,
    org: &[TupleLine],
    buf: &mut String,
    date: Option<f64>,
    no_date: bool,
    now: f64,
    raw_default: bool,
    resolver: &dyn Resolver,
    failures: &mut Vec<Failure>,
) {
    let check_all = settings.mode.check_all;
    let multi = settings.maxlines > 1;
    let k = keys();
    let mut buf_valid = true;
    // Which failregexes can match `buf`, asked of `buf` itself (all a failregex
    // searches): found once for a single line, again for each new multi-line buffer.
    let mut candidates_valid = false;

    if regexes.ignore_first() && state.ignore_line(regexes, settings, buf, org, None) {
        return;
    }

    // The prefregex's groups go to `state.pre_groups`, whose room serves line after
    // line.
    let mut has_pre_groups = false;
    if let Some(pref) = &regexes.prefregex {
        let split = state.run(pref, buf, org);
        state.prefregex_matched = split.is_some();
        if split.is_none() {
            return;
        }
        let shared = match org {
            [only] => only.shared_text(),
            _ => None,
        };
        pref.groups_into(&mut state.pre_groups, buf, &state.locs, shared);
        let content = state.pre_groups.pop(&k.content);
        if let Some(Value::Text(content)) = content.filter(Value::is_truthy) {
            state.line_buffer.clear();
            state.line_buffer.push(TupleLine::undated_shared(content));
            buf_valid = false;
        }
        has_pre_groups = true;
    }

    // The failregexes are tried in order, from one candidate to the next.
    let mut from = 0;
    loop {
        if !buf_valid {
            lines::join_into(&state.line_buffer, buf);
            buf_valid = true;
            // The candidates hold for the text they were asked of only: a pattern
            // anchored at its start may match a part of it that starts elsewhere.
            candidates_valid = false;
        }
        if !candidates_valid {
            regexes
                .fail_prefilter()
                .candidates_whole(buf, &mut state.fail_candidates);
            candidates_valid = true;
        }
        let Some(index) = state.fail_candidates.next_from(from) else {
            break;
        };
        from = index + 1;
        let Some(regex) = regexes.failregex.get(index) else {
            break;
        };
        let Some(split) = state.run(regex, buf, org) else {
            continue;
        };
        // A single undated line (the prefregex's content) is the start of `buf`.
        let shared = match state.line_buffer.as_slice() {
            [only] if !multi => only.undated_text().cloned(),
            _ => None,
        };
        // The ignoreregexes' searches overwrite the locations: take the groups first.
        let groups = (!regexes.ignoreregex.is_empty())
            .then(|| regex.groups_in(buf, &state.locs, shared.as_ref().map(Within::from)));
        if groups.is_some() && state.ignore_line(regexes, settings, buf, org, Some(&split)) {
            buf_valid = false;
            if !check_all {
                break;
            }
            continue;
        }
        if no_date {
            state.notices.push(Notice::MatchWithoutDate {
                line: split
                    .matched
                    .iter()
                    .map(TupleLine::full)
                    .collect::<Vec<_>>()
                    .join("\n"),
            });
            if date.is_none() && settings.mode.check_find_time {
                continue;
            }
        }
        if !check_all || multi {
            state.line_buffer = split.unmatched.clone();
            buf_valid = false;
        }
        let pre = has_pre_groups.then_some(&state.pre_groups);
        let mut fail = match (groups, pre) {
            (Some(fail), Some(pre)) => pre.updated_with(fail),
            (Some(fail), None) => fail,
            (None, Some(pre)) => {
                regex.groups_onto(pre, buf, &state.locs, shared.as_ref().map(Within::from))
            }
            (None, None) => regex.groups_in(buf, &state.locs, shared.as_ref().map(Within::from)),
        };
        let mlfid = match fail.get_k(&k.mlfid) {
            Some(Value::Text(id)) => Some(id.clone()),
            _ => None,
        };
        let mut slot = None;
        match &mlfid {
            Some(id) => {
                let merged;
                (merged, slot) =
                    mlfid::merge(&mut state.mlfid_cache, id, fail, &split.matched, now, k);
                fail = merged;
                if fail.truthy_k(&k.nofail) && !check_all {
                    if let Some(slot) = slot {
                        state.mlfid_cache.update(slot, &Arc::new(fail));
                    }
                    return;
                }
            }
            None => {
                let mut lines = fail.take_lines(&k.matches);
                lines.extend(split.matched.iter().cloned());
                fail.set(&k.matches, Value::Lines(lines));
            }
        }
        let ids = failure_ids(
            &mut fail,
            mlfid.is_some(),
            raw_default,
            settings.use_dns,
            k,
            resolver,
        );
        if let Ok(None) = ids {
            fail.set(&k.mlfpending, Value::Flag);
        }
        // fail2ban's cache holds the very dictionary it goes on changing: it is stored
        // once, as it is when the failure leaves the filter.
        let fail = Arc::new(fail);
        if let Some(slot) = slot {
            state.mlfid_cache.update(slot, &fail);
        }
        let Ok(ids) = ids else {
            continue;
        };
        match ids {
            None => {
                if !check_all && settings.mode.ignore_pending {
                    return;
                }
                failures.push(Failure {
                    regex: index,
                    id: None,
                    time: date,
                    data: fail,
                });
            }
            Some(Ids::One(id)) => failures.push(Failure {
                regex: index,
                id: Some(id),
                time: date,
                data: fail,
            }),
            Some(Ids::Many(ids)) => {
                for id in ids {
                    failures.push(Failure {
                        regex: index,
                        id: Some(id),
                        time: date,
                        data: Arc::clone(&fail),
                    });
                }
            }
        }
        if !check_all {
            break;
        }
    }
}

/// The ids of a failure: one, except for a host name that resolves to several.
enum Ids {
    One(FailureId),
    Many(Vec<FailureId>),
}

/// Resolves a failure's ids: `Ok(None)` when it has none yet (multi-line pending),
/// `Err` when the regex captured nothing usable at all.
fn failure_ids(
    fail: &mut FailData,
    has_mlfid: bool,
    raw_default: bool,
    use_dns: UseDns,
    k: &Keys,
    resolver: &dyn Resolver,
) -> Result<Option<Ids>, ()> {
    let default_hint = if raw_default {
        AddrHint::Raw
    } else {
        AddrHint::Any
    };
    let cidr = fail
        .text_k(&k.cidr)
        .filter(|c| !c.is_empty())
        .and_then(|c| c.parse::<u32>().ok());
    let fid = fail.text_k(&k.fid);
    let (ip, hint, raw) = if let Some(ip4) = fail.text_k(&k.ip4) {
        (ip4, cidr.map_or(AddrHint::V4, AddrHint::Prefix), true)
    } else if let Some(ip6) = fail.text_k(&k.ip6) {
        (ip6, cidr.map_or(AddrHint::V6, AddrHint::Prefix), true)
    } else if let Some(dns) = fail.text_k(&k.dns) {
        (dns, default_hint, raw_default)
    } else {
        match fid {
            Some(f) => (f, default_hint, true),
            None if has_mlfid => return Ok(None),
            None => return Err(()),
        }
    };
    if !raw {
        return Ok(Some(Ids::Many(text_to_ips(ip, use_dns, resolver))));
    }
    match fid {
        Some(f) if f != ip => {
            let addr = FailureId::parse(ip, hint);
            let id = FailureId::parse(f, default_hint);
            fail.set(&k.ip, Value::Addr(addr));
            Ok(Some(Ids::One(id)))
        }
        _ => Ok(Some(Ids::One(FailureId::parse(ip, hint)))),
    }
}

/// A host name to its addresses: a literal address as itself, otherwise through the
/// resolver when `usedns` allows it.
fn text_to_ips(text: &str, use_dns: UseDns, resolver: &dyn Resolver) -> Vec<FailureId> {
    let literal = literal_address(text).map(|a| FailureId::parse(a, AddrHint::Any));
    if let Some(id) = literal.filter(FailureId::is_addr) {
        return vec![id];
    }
    if !use_dns.resolves() {
        return Vec::new();
    }
    let mut ids: Vec<FailureId> = Vec::new();
    for ip in resolver.resolve(text) {
        let hint = if ip.is_ipv4() {
            AddrHint::V4
        } else {
            AddrHint::V6
        };
        let id = FailureId::parse(&ip.to_string(), hint);
        if id.is_addr() && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// fail2ban's `searchIP`: the whole text is an IPv4 address or a (bracketed) IPv6 one.
fn literal_address(text: &str) -> Option<&str> {
    let looks_v4 = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if looks_v4 {
        return Some(text);
    }
    let inner = text
        .strip_prefix('[')
        .map_or(text, |t| t.strip_suffix(']').unwrap_or(t));
    let looks_v6 = inner.contains(':') && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    looks_v6.then_some(inner)
}

/// A seeded xorshift generator for the randomized tests.
#[cfg(test)]
pub(crate) fn test_random(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(found: &[Failure]) -> Vec<String> {
        found
            .iter()
            .filter_map(|f| f.id.as_ref().map(ToString::to_string))
            .collect()
    }

    #[test]
    fn released_engines_are_built_again_and_the_line_buffer_survives() {
        let spec = FilterSpec {
            prefregex: None,
            failregex: vec![
                r"^fail from <HOST>$".to_string(),
                r"^login (?P<u>\w+)\n.*\nrefused <HOST>$".to_string(),
            ],
            ignoreregex: vec![r"from 192\.0\.2\.99".to_string()],
            maxlines: 3,
            use_dns: UseDns::No,
        };
        let mut filter = Filter::new(&spec, Mode::default()).unwrap();
        let run = |filter: &mut Filter, line: &str| {
            ids(&filter.process_line(line, None, 1_000.0, &NoResolver))
        };
        assert_eq!(run(&mut filter, "fail from 192.0.2.1"), ["192.0.2.1"]);
        filter.release_engines();
        assert_eq!(
            run(&mut filter, "fail from 192.0.2.99"),
            Vec::<String>::new()
        );
        assert_eq!(run(&mut filter, "login alice"), Vec::<String>::new());
        filter.release_engines();
        // The first line of the multi-line match was buffered before the release.
        assert_eq!(run(&mut filter, "something else"), Vec::<String>::new());
        assert_eq!(run(&mut filter, "refused 192.0.2.7"), ["192.0.2.7"]);
        filter.release_engines();
        assert_eq!(run(&mut filter, "fail from 192.0.2.2"), ["192.0.2.2"]);
    }

    /// Attempts on several accounts over one connection: every user is kept, in the
    /// order seen, and `users` keeps its place among the keys as fail2ban's set does.
    #[test]
    fn users_of_a_connection_accumulate_in_place() {
        let spec = FilterSpec {
            prefregex: Some(r"^<F-MLFID>c\d+:</F-MLFID> <F-CONTENT>.+</F-CONTENT>$".to_string()),
            failregex: vec![r"^bad <F-USER>\w+</F-USER> from <HOST>$".to_string()],
            ignoreregex: Vec::new(),
            maxlines: 1,
            use_dns: UseDns::No,
        };
        let mut filter = Filter::new(&spec, Mode::default()).unwrap();
        let mut last = None;
        for user in ["root", "admin", "root", "guest"] {
            let found = filter.process_line(
                &format!("c7: bad {user} from 192.0.2.5"),
                None,
                1_000.0,
                &NoResolver,
            );
            assert_eq!(ids(&found), ["192.0.2.5"]);
            last = found.into_iter().next();
        }
        let data = &last.expect("a failure").data;
        let users: Vec<&str> = data.users().iter().map(|u| u.as_str()).collect();
        assert_eq!(users, ["root", "admin", "guest"]);
        let keys: Vec<&str> = data.iter().map(|(k, _)| k).collect();
        let at = |name: &str| keys.iter().position(|k| *k == name);
        assert!(at("users") < at("matches"), "{keys:?}");
        // Each failure was reported with its own line: the next starts afresh.
        assert_eq!(data.matches().len(), 1);
    }
}
