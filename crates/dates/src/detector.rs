//! The date detector: which template finds the date in a line, in what order templates are
//! tried, and how that order adapts, exactly as fail2ban's `DateDetector.matchTime`.
//!
//! The order in which templates are tried changes results on real logs (a line can hold
//! several date-like strings), so the bookkeeping is reproduced in full:
//!
//! 1. The template that won last time is tried first. An anchored one (line begin/end)
//!    searches the whole line; another one, if the characters around its last match are
//!    the same (or non-alphanumeric) again, searches only the span of its last match. A
//!    match at the same place wins at once; elsewhere it becomes a candidate.
//! 2. Otherwise every template is tried in list order. The last one and anchored ones win
//!    at once, as does any match at the line start. A match further right than this
//!    template's last match, or than the last winner's, is kept as a candidate (the
//!    leftmost candidate wins if nothing better comes).
//! 3. The winner's hits, last use and distance are updated and it bubbles up the list:
//!    to the first never-used slot or half-way if its weight (hits × template weight /
//!    distance) beats the template there or that one was unused for five minutes, else by
//!    one slot under the same condition.
//!
//! Positions are kept in Python string indices (characters), since they are compared
//! across lines of different byte layouts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rampart_pyre::{DecidingPrefix, Locations, Regex};

use crate::convert::{self, AmPm, DefaultZone, Failure, Fields, Shift};
use crate::pytext::{
    byte_of_char, char_after, char_at, char_before, char_len, char_of_byte, is_py_alnum, py_strip,
};
use crate::template::{self, Kind, LINE_BEGIN, Spec, Template};
use crate::tz::MktimeRun;
use crate::{DateError, DateMatch, Error, TimeZone, codes};

/// fail2ban's default templates, in its order, written in its pattern syntax. Their texts
/// are part of the interface: `fail2ban-regex` shows names derived from them.
const DEFAULT_PATTERNS: [&str; 17] = [
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    r"%m/%d/%ExY:%H:%M:%S",
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    "EPOCH",
    r"{^LN-BEG}%H:%M:%S",
    r"^<%m/%d/%Exy@%H:%M:%S>",
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    r"%b %d, %ExY %I:%M:%S %p",
    r"^%b-%d-%Exy %k:%M:%S",
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    "TAI64N",
];

/// Weight of the line-begin copies of the default templates: they should win the
/// bubbling-up whenever they match.
const ANCHORED_COPY_WEIGHT: f64 = 100.0;
/// A template unused for this long (seconds) gives way to any other.
const UNUSED_TIME: f64 = 300.0;
/// Context kept before a region search that cannot start at the line start.
const REGION_CONTEXT_CHARS: usize = 32;
const MICROS: f64 = 1_000_000.0;

/// A template in one detector, with its counters.
#[derive(Debug)]
struct Slot {
    template: Arc<Template>,
    weight: f64,
    hits: u64,
    last_used: f64,
    distance: usize,
    /// Region-search regexes by number of context characters (see [`DateDetector::search`]).
    region_regexes: Vec<(usize, Option<Regex>)>,
}

impl Slot {
    fn new(template: Arc<Template>, weight: f64) -> Slot {
        Slot {
            template,
            weight,
            hits: 0,
            last_used: 0.0,
            distance: 0x7fff_ffff,
            region_regexes: Vec::new(),
        }
    }

    fn effective_weight(&self) -> f64 {
        self.hits as f64 * self.weight / self.distance.max(1) as f64
    }
}

/// How to read group spans of the last search from the locations buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Hit {
    /// Added to group numbers (region searches wrap the regex in one more group).
    group_shift: usize,
    /// Added to byte offsets (region searches may run on a suffix of the line).
    offset: usize,
}

/// The template display name and statistics `fail2ban-regex` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateStats {
    /// Display name, e.g. `{^LN-BEG}(?:DAY )?MON Day %k:Minute:Second(?:\.Microseconds)?(?: ExYear)?`.
    pub name: String,
    /// Lines on which this template found the date.
    pub hits: u64,
    /// Current weight in the ordering (`hits × template weight / distance`).
    pub weight: f64,
    /// The template's own weight (100 for the line-begin copies of the defaults, else 1).
    pub template_weight: f64,
    /// The pattern the template was made from, if it is a pattern template.
    pub pattern: Option<String>,
    /// The regex it runs.
    pub regex: String,
}

/// Character before a match position (`line[i-1:i]`).
#[derive(Clone, Copy, Debug)]
struct LastStart {
    at: usize,
    before: Option<char>,
    first: Option<char>,
}

#[derive(Clone, Copy, Debug)]
struct LastEnd {
    at: usize,
    last: Option<char>,
    after: Option<char>,
}

/// The last converted date, reused while the same text comes again.
#[derive(Debug, Default)]
struct ConversionCache {
    template_id: u64,
    zone_id: u64,
    /// The date text (bytes, so that the seconds can be written over in place).
    text: Vec<u8>,
    spans: Vec<Option<(usize, usize)>>,
    /// The span of the template's one seconds field in `spans`, when no other field
    /// reaches into it: a text that differs from `text` only there has the same fields
    /// but for the seconds (see [`DateDetector::fields_but_second`]).
    second_span: Option<(usize, usize)>,
    /// The search (its number in [`DateDetector::searches`]) and the hit whose groups
    /// `spans` were taken from: while they are the groups in the locations, `spans`
    /// is what they give again.
    groups: Option<(u64, Hit)>,
    /// The fields read from `text`, when reading them succeeded.
    fields: Option<Fields>,
    /// What their conversion left for other seconds (see [`convert::Shift`]).
    shift: Option<Shift>,
    outcome: Option<Result<f64, Failure>>,
    needs_now: bool,
    valid_from: i64,
    valid_to: i64,
}

impl ConversionCache {
    /// Records the result of converting the cached text.
    fn settle(&mut self, result: Result<convert::Converted, Failure>, used_now: bool) {
        self.shift = result.ok().and_then(|c| c.shift);
        self.outcome = Some(result.map(|c| c.epoch));
        self.needs_now = used_now;
        (self.valid_from, self.valid_to) = match result {
            Ok(c) => (c.valid_from, c.valid_to),
            // A failure that depends on now is not reused.
            Err(_) if used_now => (0, 0),
            Err(_) => (i64::MIN, i64::MAX),
        };
    }

    /// Whether `text` has the cached text's length and bytes outside `a..b`.
    fn differs_at_most_in(&self, text: &[u8], a: usize, b: usize) -> bool {
        let old = self.text.as_slice();
        old.len() == text.len()
            && matches!((old.get(..a), text.get(..a)), (Some(x), Some(y)) if same_bytes(x, y))
            && matches!((old.get(b..), text.get(b..)), (Some(x), Some(y)) if same_bytes(x, y))
    }
}

/// `x == y`, eight bytes at a time (date texts are a few words long: a call to
/// `memcmp` costs more than the comparison).
fn same_bytes(x: &[u8], y: &[u8]) -> bool {
    fn word(s: &[u8], at: usize) -> u64 {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
    }
    let n = x.len();
    if n != y.len() {
        return false;
    }
    if n < 8 {
        return x.iter().zip(y).fold(0, |d, (a, b)| d | (a ^ b)) == 0;
    }
    let mut at = 0;
    while at + 8 < n {
        if word(x, at) != word(y, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping the words compared before.
    word(x, n - 8) == word(y, n - 8)
}

/// The local offset of "now", kept while no zone transition is crossed.
#[derive(Clone, Copy, Debug)]
struct NowOffset {
    zone_id: u64,
    from: i64,
    to: i64,
    offset: i32,
    /// The last clock reading (its bits) and its wall clock: a log read at one "now"
    /// asks for it on every miss.
    last: Option<(u64, i64)>,
}

/// Where zone-less dates are taken to be, as configured.
#[derive(Clone, Debug)]
enum LogZone {
    Local,
    Fixed(i64),
    Rules(TimeZone),
}

/// Finds and converts dates in log lines with fail2ban's templates and rules.
#[derive(Debug)]
pub struct DateDetector {
    slots: Vec<Slot>,
    /// Default templates not yet in use: fail2ban adds them at the first line.
    pending_defaults: Option<Vec<(Arc<Template>, f64)>>,
    last_start: LastStart,
    last_end: LastEnd,
    last_index: usize,
    first_unused: usize,
    log_zone: LogZone,
    year_prefixes: String,
    locations: Locations,
    candidate_locations: Locations,
    /// Template searches so far, which each may change the locations.
    searches: u64,
    spans_scratch: Vec<Option<(usize, usize)>>,
    conversion: ConversionCache,
    now_offset: Option<NowOffset>,
    /// What `mktime` of the zones converted in tells of the next calls.
    mktime_run: MktimeRun,
    reuse: Option<Reuse>,
    /// Conversions [`DateDetector::convert_seconds`] gave, for tests to tell.
    #[cfg(test)]
    seconds_taken: usize,
}

/// Bytes after a match that must agree for a result to be reused: the word-end
/// boundary looks at one character (up to 4 bytes) and `\b` at the one before it.
const REUSE_MARGIN: usize = 8;

/// The previous line's result, reusable on a line that agrees with it (most lines of a
/// busy log share their second with the one before).
///
/// Why this is exact: for a [`Template::reusable`] template the linear engine (exact
/// whenever it answers) gives the match span on the new line. If that span equals the
/// previous one, and the text from the line start to [`REUSE_MARGIN`] bytes past the
/// span's end is the same, the winning path is the same: the paths ending at that end
/// succeed or fail alike on both lines (everything they and their look-arounds see is
/// in the compared text), and the winner is the highest-priority one among them. The
/// conversion then sees the same groups, the same clock and the same zone.
#[derive(Debug)]
struct Reuse {
    index: usize,
    template: u64,
    now: u64,
    zone: u64,
    span: (usize, usize),
    /// Where the match's groups are in `locations`, which still hold them.
    hit: Hit,
    /// The text to agree on when there is no deciding prefix.
    window: Vec<u8>,
    /// When the template's automaton can tell it, the line start that decides the
    /// match: agreeing on it spares even the linear engine's run (it covers the
    /// window too).
    prefix: DecidingPrefix,
    decided: bool,
    result: DateMatch,
}

impl DateDetector {
    /// A detector for a jail's `datepattern` (one pattern per line; `None` or blank: the
    /// default templates). `%ExY` accepts the years 2000–2099; see
    /// [`DateDetector::with_current_year`] for fail2ban's narrower, clock-dependent range.
    pub fn new(datepattern: Option<&str>) -> Result<DateDetector, Error> {
        DateDetector::build(datepattern, codes::ANY_21ST_CENTURY.to_string())
    }

    /// Like [`DateDetector::new`], with `%ExY` accepting what fail2ban accepts when started
    /// in `current_year`: years from 2000 to the end of the decade of `current_year + 3`.
    pub fn with_current_year(
        datepattern: Option<&str>,
        current_year: i32,
    ) -> Result<DateDetector, Error> {
        DateDetector::build(datepattern, codes::year_prefixes(i64::from(current_year)))
    }

    fn build(datepattern: Option<&str>, year_prefixes: String) -> Result<DateDetector, Error> {
        let mut detector = DateDetector {
            slots: Vec::new(),
            pending_defaults: None,
            last_start: LastStart {
                at: 1,
                before: None,
                first: None,
            },
            last_end: LastEnd {
                at: 0x7fff_ffff,
                last: None,
                after: None,
            },
            last_index: usize::MAX,
            first_unused: 0,
            log_zone: LogZone::Local,
            year_prefixes,
            locations: Locations::new(),
            candidate_locations: Locations::new(),
            searches: 0,
            spans_scratch: Vec::new(),
            conversion: ConversionCache::default(),
            now_offset: None,
            mktime_run: MktimeRun::default(),
            reuse: None,
            #[cfg(test)]
            seconds_taken: 0,
        };
        let patterns = datepattern
            .into_iter()
            .flat_map(|p| p.split('\n'))
            .map(py_strip)
            .filter(|p| !p.is_empty());
        for pattern in patterns {
            detector.append(pattern)?;
        }
        if detector.slots.is_empty() {
            detector.pending_defaults = Some(default_templates(&detector.year_prefixes)?);
        }
        Ok(detector)
    }

    /// Adds one `datepattern` line (fail2ban's `appendTemplate`).
    fn append(&mut self, pattern: &str) -> Result<(), Error> {
        let key = template::pattern_key(pattern);
        let spec = match key.as_str() {
            "{^LN-BEG}" => return self.add_defaults(|t| t.flags & LINE_BEGIN != 0),
            // fail2ban's filter for `{DEFAULT}` rejects every template; the defaults then
            // only come in if no other pattern is given.
            "{DEFAULT}" => return Ok(()),
            k if k.contains("{DATE}") => return self.add_wrapped_defaults(pattern),
            "{NONE}" => template::spec_for("{UNB}^", "{NONE}", &self.year_prefixes)?,
            _ => template::spec_for(pattern, &key, &self.year_prefixes)?,
        };
        self.push(compile(spec)?, shared_weight(&key), false)
    }

    fn push(
        &mut self,
        template: Arc<Template>,
        weight: f64,
        ignore_duplicate: bool,
    ) -> Result<(), Error> {
        if self.slots.iter().any(|s| s.template.name == template.name) {
            if ignore_duplicate {
                return Ok(());
            }
            return Err(Error::DuplicateTemplate {
                name: template.name.clone(),
            });
        }
        self.slots.push(Slot::new(template, weight));
        Ok(())
    }

    /// The 31 default templates (line-begin copies first), filtered.
    fn add_defaults(&mut self, keep: impl Fn(&Template) -> bool) -> Result<(), Error> {
        let ignore_duplicate = !self.slots.is_empty();
        for (template, weight) in default_templates(&self.year_prefixes)? {
            if keep(&template) {
                self.push(template, weight, ignore_duplicate)?;
            }
        }
        Ok(())
    }

    /// The 17 default templates with `{DATE}` in `pre_match` replaced by each of them.
    fn add_wrapped_defaults(&mut self, pre_match: &str) -> Result<(), Error> {
        let ignore_duplicate = !self.slots.is_empty();
        for pattern in DEFAULT_PATTERNS {
            let original = template::spec_for(
                pattern,
                &template::pattern_key(pattern),
                &self.year_prefixes,
            )?;
            // Pattern templates embed their pattern; the others their name, which is then
            // read as a pattern of its own (so `^{DATE}` makes a line-begin `Epoch`).
            let embedded = original.pattern.as_deref().unwrap_or(&original.name);
            let wrapped = replace_date_marks(pre_match, &template::unbound(embedded));
            let key = template::pattern_key(&wrapped);
            let spec = template::spec_for(&wrapped, &key, &self.year_prefixes)?;
            self.push(compile(spec)?, shared_weight(&key), ignore_duplicate)?;
        }
        Ok(())
    }

    /// Sets the jail's `logtimezone`: zone-less dates are then in that zone instead of the
    /// local one. A fixed-offset zone (what fail2ban supports) is applied as fail2ban does.
    pub fn set_log_timezone(&mut self, tz: Option<TimeZone>) {
        self.reuse = None;
        self.log_zone = match tz {
            None => LogZone::Local,
            Some(z) => match z.fixed_offset() {
                Some(seconds) => LogZone::Fixed(i64::from(seconds / 60)),
                None => LogZone::Rules(z),
            },
        };
        self.conversion.outcome = None;
    }

    /// Lets go of the engines this detector's templates have built, keeping the
    /// templates, their order and counters: for a jail that has been quiet. Templates
    /// are shared by every detector that uses the same pattern, so each detector moves
    /// to a copy with nothing built, the same copy for all of them (the cache's), and
    /// the built one is freed once no busy detector holds it.
    pub fn release_engines(&mut self) {
        self.reuse = None;
        for slot in &mut self.slots {
            slot.region_regexes = Vec::new();
            if let Some(unbuilt) = unbuilt_shared(&slot.template) {
                slot.template = unbuilt;
            }
        }
    }

    /// What `fail2ban-regex` prints after `Use      datepattern : <pattern> :`: the name of
    /// the first template when there are one or two, else `Default Detectors`.
    pub fn description(&self) -> String {
        match self.slots.len() {
            1 | 2 => self.slots[0].template.name.clone(),
            _ => "Default Detectors".to_string(),
        }
    }

    /// Display name and hits of every template, in the current order.
    pub fn template_hits(&self) -> Vec<(String, u64)> {
        self.slots
            .iter()
            .map(|s| (s.template.name.clone(), s.hits))
            .collect()
    }

    /// Everything `fail2ban-regex --VD` shows about the templates, in the current order.
    pub fn template_stats(&self) -> Vec<TemplateStats> {
        self.slots
            .iter()
            .map(|s| TemplateStats {
                name: s.template.name.clone(),
                hits: s.hits,
                weight: s.effective_weight(),
                template_weight: s.weight,
                pattern: s.template.pattern.clone(),
                regex: s.template.regex_text.clone(),
            })
            .collect()
    }

    /// Finds the date in `line` and converts it.
    ///
    /// `now` is the clock (frozen in tests) in Unix seconds and `local` the local zone.
    /// `None`: no template matched. Otherwise the span of the date text (empty when the
    /// template allows a missing date, as `{NONE}` or `()`; the caller then uses the last
    /// date or now) and its time, or why there is none.
    pub fn match_time(&mut self, line: &str, now: f64, local: &TimeZone) -> Option<DateMatch> {
        if let Some(defaults) = self.pending_defaults.take() {
            self.slots
                .extend(defaults.into_iter().map(|(t, w)| Slot::new(t, w)));
        }
        if let Some(reused) = self.reuse(line, now, local) {
            return Some(reused);
        }
        if let Some(moved) = self.moved_digits(line, now, local) {
            return Some(moved);
        }
        // Its buffers take the next line's result: a miss allocates nothing for it.
        let spare = self.reuse.take();
        let (index, hit) = self.find_template(line)?;
        let (current, result) = match self.conclude(index, hit, line, now, local)? {
            Ok(done) => done,
            Err(early) => return Some(early),
        };
        let template = Arc::clone(&self.slots[current].template);
        if template.reusable {
            let (start, end) = self.group_span(hit, 0)?;
            let (mut window, mut prefix) = match spare {
                Some(r) => (r.window, r.prefix),
                None => (Vec::new(), DecidingPrefix::default()),
            };
            // The capture search above found the same leftmost match the linear engine
            // would (anchored templates search the whole line).
            let window_end = (end + REUSE_MARGIN).min(line.len());
            let decided = template
                .regex
                .deciding_prefix(line, window_end, &mut prefix);
            let span = if decided {
                Some(Some((start, end)))
            } else {
                template.regex.find_linear(line)
            };
            if let Some(Some(span)) = span {
                window.clear();
                if !decided {
                    let window_end = (span.1 + REUSE_MARGIN).min(line.len());
                    window.extend_from_slice(&line.as_bytes()[..window_end]);
                }
                self.reuse = Some(Reuse {
                    index: current,
                    template: template.id,
                    now: now.to_bits(),
                    zone: local.id(),
                    span,
                    hit,
                    window,
                    prefix,
                    decided,
                    result: result.clone(),
                });
            }
        }
        Some(result)
    }

    /// What follows the choice of the template at `index` with its match `hit` on
    /// `line`: its counters, the boundaries kept for the next line, its move up the
    /// list and the conversion. `Err` for a result taken before the conversion, which
    /// is not kept for reuse; else the template's new index and the result.
    fn conclude(
        &mut self,
        index: usize,
        hit: Hit,
        line: &str,
        now: f64,
        local: &TimeZone,
    ) -> Option<Result<(usize, DateMatch), DateMatch>> {
        let (start, end) = self.group_span(hit, 0)?;
        let start_char = char_of_byte(line, start);
        let end_char = char_of_byte(line, end);
        let slot = &mut self.slots[index];
        slot.hits += 1;
        slot.last_used = now;
        slot.distance = start_char;
        if self.first_unused == index {
            self.first_unused += 1;
        }
        // fail2ban reads `line[start]` and `line[end - 1]` here and fails on the line
        // when the match is empty at its end.
        let first = char_after(line, start);
        let last = if end == 0 {
            line.chars().next_back()
        } else {
            char_before(line, end)
        };
        if first.is_none() || last.is_none() {
            return Some(Err(DateMatch {
                start: 0,
                end: 0,
                time: None,
                error: Some(DateError::LineFailed("IndexError")),
            }));
        }
        self.last_start = LastStart {
            at: start_char,
            before: char_before(line, start),
            first,
        };
        self.last_end = LastEnd {
            at: end_char,
            last,
            after: char_after(line, end),
        };
        let mut current = index;
        if index != 0 && index != self.last_index {
            current = self.reorder(index);
        }
        self.last_index = current;

        let template = Arc::clone(&self.slots[current].template);
        let (cut_start, cut_end) = self.group_span(hit, 1).unwrap_or((0, 0));
        if cut_start == cut_end {
            return Some(Err(DateMatch {
                start: cut_start,
                end: cut_end,
                time: None,
                error: None,
            }));
        }
        let outcome = self.convert(&template, line, hit, now, local);
        Some(Ok((
            current,
            DateMatch {
                start: cut_start,
                end: cut_end,
                time: outcome.ok(),
                error: match outcome {
                    Ok(_) => None,
                    Err(Failure::Invalid) => Some(DateError::Unparsable),
                    Err(Failure::Fatal(what)) => Some(DateError::LineFailed(what)),
                },
            },
        )))
    }

    /// The previous line's match, converted anew, for a line that differs from it
    /// only in digits of the date that the template cannot tell from the old ones
    /// where they stand (see [`Regex::decides_moved_digits`]), or only in the clock:
    /// most lines of a busy log whose date is not the last one's.
    ///
    /// Why this is exact: the template is the one tried first (the last winner, at
    /// the same index) and anchored, so a full match would search it on the whole
    /// line and take its match without consulting another; that search would give
    /// the same groups as the last one, which are still in `self.locations` (only
    /// a search writes them). What follows is the full path's, from those groups.
    fn moved_digits(&mut self, line: &str, now: f64, local: &TimeZone) -> Option<DateMatch> {
        let reuse = self.reuse.as_mut()?;
        let slot = self.slots.get(reuse.index)?;
        if !reuse.decided
            || self.last_index != reuse.index
            || slot.template.id != reuse.template
            || local.id() != reuse.zone
        {
            return None;
        }
        let (start, end) = self
            .locations
            .get(reuse.hit.group_shift)
            .map(|(s, e)| (s + reuse.hit.offset, e + reuse.hit.offset))?;
        if !slot
            .template
            .regex
            .decides_moved_digits(line, (start, end), &mut reuse.prefix)
        {
            return None;
        }
        let (index, hit) = (reuse.index, reuse.hit);
        match self.conclude(index, hit, line, now, local)? {
            Ok((_, result)) => {
                if let Some(reuse) = &mut self.reuse {
                    reuse.now = now.to_bits();
                    reuse.result = result.clone();
                }
                Some(result)
            }
            // As after a full match: nothing is kept.
            Err(early) => {
                self.reuse = None;
                Some(early)
            }
        }
    }

    /// The previous line's result when `line` agrees with it (see [`Reuse`]), with the
    /// bookkeeping a full match would have done: same slot, same boundaries, no reorder.
    fn reuse(&mut self, line: &str, now: f64, local: &TimeZone) -> Option<DateMatch> {
        let reuse = self.reuse.as_ref()?;
        let slot = self.slots.get(reuse.index)?;
        if self.last_index != reuse.index
            || slot.template.id != reuse.template
            || now.to_bits() != reuse.now
            || local.id() != reuse.zone
        {
            return None;
        }
        let agrees = if reuse.decided {
            reuse.prefix.decides(line)
        } else {
            let window_end = (reuse.span.1 + REUSE_MARGIN).min(line.len());
            line.as_bytes().get(..window_end) == Some(reuse.window.as_slice())
                && slot.template.regex.find_linear(line) == Some(Some(reuse.span))
        };
        if !agrees {
            return None;
        }
        let result = reuse.result.clone();
        let slot = &mut self.slots[reuse.index];
        slot.hits += 1;
        slot.last_used = now;
        Some(result)
    }

    fn group_span(&self, hit: Hit, group: usize) -> Option<(usize, usize)> {
        self.locations
            .get(group + hit.group_shift)
            .map(|(s, e)| (s + hit.offset, e + hit.offset))
    }

    /// Steps 1 and 2 of the module docs: the winning template and its match (left in
    /// `self.locations`).
    fn find_template(&mut self, line: &str) -> Option<(usize, Hit)> {
        self.searches += 1;
        let count = self.slots.len();
        let mut ignore = usize::MAX;
        let mut candidate: Option<(usize, usize, Hit)> = None;
        let last = self.last_index;
        if last < count {
            let anchored = self.slots[last].template.anchored();
            let (start, end) = (self.last_start.at, self.last_end.at);
            let hit = if anchored {
                ignore = last;
                self.search(last, line, None)
            } else if self.boundaries_agree(line) {
                self.search(last, line, Some((start, end)))
            } else {
                ignore = last;
                self.search(last, line, None)
            };
            if let Some(hit) = hit {
                let (s, e) = self.char_span(line, hit)?;
                if count == 1 || anchored || (s == start && e == end) {
                    return Some((last, hit));
                }
                std::mem::swap(&mut self.locations, &mut self.candidate_locations);
                candidate = Some((last, s, hit));
            }
        }
        for index in 0..count {
            if index == ignore {
                continue;
            }
            let Some(hit) = self.search(index, line, None) else {
                continue;
            };
            if index + 1 >= count || self.slots[index].template.anchored() {
                return Some((index, hit));
            }
            let (distance, _) = self.char_span(line, hit)?;
            // A match at the line start always wins; one further right than before may be
            // a date-like string in the message: keep the leftmost and look further.
            if distance > self.slots[index].distance || distance > self.last_start.at {
                if candidate.is_none_or(|(_, d, _)| distance < d) {
                    std::mem::swap(&mut self.locations, &mut self.candidate_locations);
                    candidate = Some((index, distance, hit));
                }
                continue;
            }
            return Some((index, hit));
        }
        let (index, _, hit) = candidate?;
        std::mem::swap(&mut self.locations, &mut self.candidate_locations);
        Some((index, hit))
    }

    fn char_span(&self, line: &str, hit: Hit) -> Option<(usize, usize)> {
        let (s, e) = self.group_span(hit, 0)?;
        Some((char_of_byte(line, s), char_of_byte(line, e)))
    }

    /// Whether the text around the last match position looks the same in `line`.
    fn boundaries_agree(&self, line: &str) -> bool {
        let LastStart {
            at: start,
            before,
            first,
        } = self.last_start;
        let LastEnd {
            at: end,
            last,
            after,
        } = self.last_end;
        let char_before = |at: usize| if at == 0 { None } else { char_at(line, at - 1) };
        let left = char_before(start) == before
            || first.is_some_and(|c| char_at(line, start) == Some(c) && !is_py_alnum(c));
        let right = char_at(line, end) == after
            || last.is_some_and(|c| char_before(end) == Some(c) && !is_py_alnum(c));
        left && right
    }

    /// Python's `regex.search(line)`, or `regex.search(line, pos, endpos)` with character
    /// positions for `region`. Leaves the groups in `self.locations`.
    fn search(&mut self, index: usize, line: &str, region: Option<(usize, usize)>) -> Option<Hit> {
        let direct = Hit {
            group_shift: 0,
            offset: 0,
        };
        let Some((pos, endpos)) = region else {
            let regex = &self.slots[index].template.regex;
            return regex.captures(line, &mut self.locations).then_some(direct);
        };
        let end = byte_of_char(line, endpos);
        let start = byte_of_char(line, pos).min(end);
        let haystack = &line[..end];
        // The leftmost match of the prefix is the answer if it does not start too early:
        // every earlier start was tried with the same context as Python would.
        if !self.slots[index]
            .template
            .regex
            .captures(haystack, &mut self.locations)
        {
            return None;
        }
        if self.locations.get(0).is_some_and(|(s, _)| s >= start) {
            return Some(direct);
        }
        self.search_from(index, line, start, end)
    }

    /// Leftmost match starting at or after byte `start` in `line[..end]`, with the
    /// characters before `start` still visible to look-behinds and `\b` (up to
    /// [`REGION_CONTEXT_CHARS`] of them), as Python's `search(line, pos, endpos)`.
    fn search_from(&mut self, index: usize, line: &str, start: usize, end: usize) -> Option<Hit> {
        let context_chars = char_len(&line[..start]).min(REGION_CONTEXT_CHARS);
        let base = line[..start]
            .char_indices()
            .rev()
            .nth(context_chars.saturating_sub(1))
            .map_or(start, |(b, _)| b);
        let base = if context_chars == 0 { start } else { base };
        let slot = &mut self.slots[index];
        let regex = match slot
            .region_regexes
            .iter()
            .position(|(n, _)| *n == context_chars)
        {
            Some(i) => &slot.region_regexes[i].1,
            None => {
                let compiled = region_regex(&slot.template.regex_text, context_chars);
                slot.region_regexes.push((context_chars, compiled));
                &slot.region_regexes[slot.region_regexes.len() - 1].1
            }
        };
        let haystack = &line[base..end];
        match regex {
            Some(r) => r.captures(haystack, &mut self.locations).then_some(Hit {
                group_shift: 1,
                offset: base,
            }),
            // The regex refers to groups by number and cannot be wrapped: search the
            // region alone (exact unless it looks behind its start).
            None => self.slots[index]
                .template
                .regex
                .captures(&line[start..end], &mut self.locations)
                .then_some(Hit {
                    group_shift: 0,
                    offset: start,
                }),
        }
    }

    /// Step 3 of the module docs; returns the new index of the template.
    fn reorder(&mut self, index: usize) -> usize {
        let slot = &self.slots[index];
        let unused_since = slot.last_used - UNUSED_TIME;
        let weight = slot.effective_weight();
        let movable = |slots: &[Slot], to: usize| {
            weight > slots[to].effective_weight() || unused_since > slots[to].last_used
        };
        let mut to = if self.first_unused < index {
            self.first_unused
        } else {
            index / 2
        };
        if !movable(&self.slots, to) {
            if to == index - 1 {
                return index;
            }
            to = index - 1;
            if !movable(&self.slots, to) {
                return index;
            }
        }
        let slot = self.slots.remove(index);
        self.slots.insert(to, slot);
        while self.first_unused < self.slots.len() && self.slots[self.first_unused].hits > 0 {
            self.first_unused += 1;
        }
        to
    }

    /// Converts the match of `template`, reusing the last conversion when the same date
    /// text comes again.
    fn convert(
        &mut self,
        template: &Template,
        line: &str,
        hit: Hit,
        now: f64,
        local: &TimeZone,
    ) -> Result<f64, Failure> {
        match template.kind {
            Kind::Epoch { long, group } => {
                let text = self.group_span(hit, group).map(|(s, e)| &line[s..e]);
                let text = text.ok_or(Failure::Fatal("TypeError"))?;
                return convert::epoch_value(text, long);
            }
            Kind::Tai64n => {
                let (s, e) = self.group_span(hit, 1).ok_or(Failure::Invalid)?;
                return convert::tai64n_value(&line[s..e]);
            }
            Kind::Pattern => {}
        }
        let (g0_start, g0_end) = self.group_span(hit, 0).ok_or(Failure::Invalid)?;
        let zone_id = match &self.log_zone {
            LogZone::Local => local.id(),
            LogZone::Fixed(_) => 0,
            LogZone::Rules(z) => z.id(),
        };
        // The cache key: template, zone, date text and where each field sits in it.
        // The last conversion's spans are still those of the groups when they were
        // taken from the same search and hit (a line whose match was taken again).
        let cache = &self.conversion;
        let known_groups =
            cache.template_id == template.id && cache.groups == Some((self.searches, hit));
        let mut cacheable = true;
        if !known_groups {
            self.spans_scratch.clear();
            let groups = template
                .fields
                .iter()
                .map(|(g, _)| *g)
                .chain(template.am_pm_group);
            for group in groups {
                let span = self.group_span(hit, group).map(|(s, e)| {
                    if s < g0_start || e > g0_end {
                        cacheable = false;
                    }
                    (s.wrapping_sub(g0_start), e.wrapping_sub(g0_start))
                });
                self.spans_scratch.push(span);
            }
        }
        let text = &line[g0_start..g0_end];
        if known_groups
            && let Some(outcome) = self.convert_seconds(text.as_bytes(), zone_id, now, local)
        {
            return outcome;
        }
        let cache = &self.conversion;
        let same_spans = known_groups
            || (cacheable && cache.template_id == template.id && cache.spans == self.spans_scratch);
        let same_key = same_spans && cache.zone_id == zone_id && cache.text == text.as_bytes();
        if same_key && let Some(outcome) = cache.outcome {
            if !cache.needs_now {
                return outcome;
            }
            let (from, to) = (cache.valid_from, cache.valid_to);
            if let Some(n) = self.now_local_micros(now, local)
                && (from..to).contains(&n)
            {
                return outcome;
            }
        }

        let cached_fields = if same_spans {
            self.fields_but_second(template, text)
        } else {
            None
        };
        // A shift holds the zone's offset or rules: it is for the zone it was made in
        // (a configured zone's change, which keeps the id of fixed offsets, clears the
        // outcome).
        let cache = &self.conversion;
        let shift = match cached_fields {
            Some(_) if cache.zone_id == zone_id && cache.outcome.is_some() => cache.shift,
            _ => None,
        };
        let fields = cached_fields.unwrap_or_else(|| {
            let values = template.fields.iter().map(|(g, f)| {
                let value = self.group_span(hit, *g).map(|(s, e)| &line[s..e]);
                (*f, value)
            });
            let am_pm = match template.am_pm_group {
                None => AmPm::NoGroup,
                Some(g) => match self.group_span(hit, g) {
                    None => AmPm::Unmatched,
                    Some((s, e)) => AmPm::Text(&line[s..e]),
                },
            };
            Fields::read(values, am_pm)
        });
        let zone = default_zone(&self.log_zone, local);
        let mut now_cache = self.now_offset;
        let mut used_now = false;
        let run = &mut self.mktime_run;
        let result = fields.and_then(|f| {
            let now_local = || {
                used_now = true;
                now_local_micros(&mut now_cache, now, local)
            };
            f.resolve_after(shift, zone, now_local, run)
        });
        self.now_offset = now_cache;
        let outcome = result.map(|c| c.epoch);
        if cacheable {
            let cache = &mut self.conversion;
            cache.template_id = template.id;
            cache.zone_id = zone_id;
            cache.text.clear();
            cache.text.extend_from_slice(text.as_bytes());
            if !known_groups {
                std::mem::swap(&mut cache.spans, &mut self.spans_scratch);
                cache.second_span = template.second_field.and_then(|k| {
                    let (a, b) = cache.spans.get(k).copied().flatten()?;
                    let apart = cache
                        .spans
                        .iter()
                        .enumerate()
                        .all(|(i, span)| i == k || span.is_none_or(|(s, e)| e <= a || s >= b));
                    apart.then_some((a, b))
                });
            }
            cache.groups = Some((self.searches, hit));
            cache.fields = fields.ok();
            cache.settle(result, used_now);
        } else {
            self.conversion.outcome = None;
            self.conversion.groups = None;
        }
        outcome
    }

    /// The fields of the date `text` (whose field spans are the cached conversion's),
    /// taken from the cached conversion's when the two differ at most in the seconds:
    /// same template, no other field reaching into the seconds, the same text around
    /// them. Only the seconds are then read; every other field reads the same text as
    /// before (see [`Fields`]).
    fn fields_but_second(
        &self,
        template: &Template,
        text: &str,
    ) -> Option<Result<Fields, Failure>> {
        let cache = &self.conversion;
        let cached = cache.fields?;
        if cache.template_id != template.id {
            return None;
        }
        let (a, b) = cache.second_span?;
        if !cache.differs_at_most_in(text.as_bytes(), a, b) {
            return None;
        }
        Some(cached.with_second(text.get(a..b)?))
    }

    /// The conversion of a date whose groups are the cached conversion's (taken from
    /// the same search) and whose text differs from the cached one in the seconds
    /// alone; what the general path in [`DateDetector::convert`] gives (fields from
    /// [`DateDetector::fields_but_second`], time from [`Shift::seconds`]) and leaves in
    /// the cache, without its copies. `None` where that path would not take the time
    /// from the shift (then nothing has changed), or for the cached text itself.
    ///
    /// Why this is exact: with the same groups the general path finds the same spans
    /// (`same_spans`), not the same text (`same_key` fails), then the cached fields
    /// with the seconds read anew (same template, `second_span` apart from the other
    /// fields, the same bytes around it), and the cached shift (a success in this
    /// zone): it asks [`Shift::seconds`] the same question with the same clock, and
    /// records what is recorded here (template, zone, spans and groups stay).
    fn convert_seconds(
        &mut self,
        text: &[u8],
        zone_id: u64,
        now: f64,
        local: &TimeZone,
    ) -> Option<Result<f64, Failure>> {
        let cache = &self.conversion;
        let (a, b) = cache.second_span?;
        // The general path takes a shift only from a cached success in this zone.
        let shift = cache.shift?;
        if cache.zone_id != zone_id || cache.outcome.is_none() || cache.fields.is_none() {
            return None;
        }
        let digits = text.get(a..b)?;
        if !cache.differs_at_most_in(text, a, b) || cache.text.get(a..b) == Some(digits) {
            return None;
        }
        // `py_int` reads one or two ASCII digits (bytes of their own characters, so
        // `a` and `b` are character boundaries) as their decimal value; anything else
        // goes the general way.
        let second = match *digits {
            [d] if d.is_ascii_digit() => i128::from(d - b'0'),
            [t, u] if t.is_ascii_digit() && u.is_ascii_digit() => {
                i128::from(t - b'0') * 10 + i128::from(u - b'0')
            }
            _ => return None,
        };
        let zone = default_zone(&self.log_zone, local);
        let mut now_cache = self.now_offset;
        let mut used_now = false;
        let mut now_local = || {
            used_now = true;
            now_local_micros(&mut now_cache, now, local)
        };
        let result = shift.seconds(second, zone, &mut now_local, &mut self.mktime_run)?;
        self.now_offset = now_cache;
        let cache = &mut self.conversion;
        // Outside the seconds the text is the cached one already (one or two bytes:
        // copied without a call to `memcpy`).
        for (old, new) in cache.text.get_mut(a..b)?.iter_mut().zip(digits) {
            *old = *new;
        }
        if let Some(fields) = &mut cache.fields {
            fields.set_second(second);
        }
        cache.settle(result, used_now);
        #[cfg(test)]
        {
            self.seconds_taken += 1;
        }
        Some(result.map(|c| c.epoch))
    }

    fn now_local_micros(&mut self, now: f64, local: &TimeZone) -> Option<i64> {
        now_local_micros(&mut self.now_offset, now, local)
    }
}

/// The zone a date without an offset of its own is read in.
fn default_zone<'a>(log_zone: &'a LogZone, local: &'a TimeZone) -> DefaultZone<'a> {
    match log_zone {
        LogZone::Local => DefaultZone::Rules(local),
        LogZone::Fixed(m) => DefaultZone::Fixed(*m),
        LogZone::Rules(z) => DefaultZone::Rules(z),
    }
}

/// The local wall clock of `now` in microseconds, through a cache of the offset in force.
fn now_local_micros(cache: &mut Option<NowOffset>, now: f64, local: &TimeZone) -> Option<i64> {
    if !now.is_finite() || now.abs() > 1e15 {
        return None;
    }
    if let Some(NowOffset {
        zone_id,
        last: Some((bits, micros)),
        ..
    }) = *cache
        && zone_id == local.id()
        && bits == now.to_bits()
    {
        return Some(micros);
    }
    let seconds = now.floor() as i64;
    let offset = match cache {
        Some(c) if c.zone_id == local.id() && (c.from..c.to).contains(&seconds) => c.offset,
        _ => {
            let (offset, from, to) = local.offset_span(seconds)?;
            *cache = Some(NowOffset {
                zone_id: local.id(),
                from,
                to,
                offset,
                last: None,
            });
            offset
        }
    };
    // `datetime.fromtimestamp` rounds to microseconds, half to even.
    let shifted = now + f64::from(offset);
    let whole = shifted.trunc();
    let mut micros = ((shifted - whole) * MICROS).round_ties_even() as i64;
    let mut whole = whole as i64;
    if micros >= 1_000_000 {
        micros -= 1_000_000;
        whole += 1;
    } else if micros < 0 {
        micros += 1_000_000;
        whole -= 1;
    }
    let wall = whole * 1_000_000 + micros;
    if let Some(c) = cache {
        c.last = Some((now.to_bits(), wall));
    }
    Some(wall)
}

/// The regex for a search that starts `context_chars` characters into the haystack: the
/// template's regex as group 1 after a lazy skip. `None` when the regex uses numbered
/// back-references, which the extra group would shift.
fn region_regex(regex_text: &str, context_chars: usize) -> Option<Regex> {
    let bytes = regex_text.as_bytes();
    let numbered_backref = bytes
        .windows(2)
        .enumerate()
        .any(|(i, w)| w[0] == b'\\' && w[1].is_ascii_digit() && (i == 0 || bytes[i - 1] != b'\\'));
    if numbered_backref {
        return None;
    }
    // Global flags must stay at the very start.
    let flags_len = if let Some(after) = regex_text.strip_prefix("(?") {
        after
            .bytes()
            .take_while(u8::is_ascii_lowercase)
            .count()
            .checked_add(3)
            .filter(|&n| regex_text.as_bytes().get(n - 1) == Some(&b')'))
            .unwrap_or(0)
    } else {
        0
    };
    let (flags, body) = regex_text.split_at(flags_len);
    Regex::new(&format!(
        r"{flags}\A[\s\S]{{{context_chars}}}[\s\S]*?({body})"
    ))
    .ok()
}

/// Replaces each `{DATE}` (any case, not after a backslash) by `with`.
fn replace_date_marks(pre_match: &str, with: &str) -> String {
    const MARK: &str = "{DATE}";
    let mut out = String::with_capacity(pre_match.len() + with.len());
    let mut i = 0;
    while i < pre_match.len() {
        let escaped = i > 0 && pre_match.as_bytes()[i - 1] == b'\\';
        let is_mark = pre_match
            .get(i..i + MARK.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(MARK));
        if is_mark && !escaped {
            out.push_str(with);
            i += MARK.len();
        } else {
            let n = pre_match[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&pre_match[i..i + n]);
            i += n;
        }
    }
    out
}

/// Compiles a template, sharing compiled templates across detectors.
fn compile(spec: Spec) -> Result<Arc<Template>, Error> {
    let key = SpecKey::of(&spec);
    let cache = compiled_templates();
    if let Ok(map) = cache.lock()
        && let Some(t) = map.get(&key)
    {
        return Ok(Arc::clone(t));
    }
    let template = Arc::new(spec.compile()?);
    if let Ok(mut map) = cache.lock() {
        map.insert(key, Arc::clone(&template));
    }
    Ok(template)
}

/// The templates compiled so far, by definition: one object per definition and process,
/// as fail2ban keeps them.
fn compiled_templates() -> &'static Mutex<HashMap<SpecKey, Arc<Template>>> {
    static COMPILED: OnceLock<Mutex<HashMap<SpecKey, Arc<Template>>>> = OnceLock::new();
    COMPILED.get_or_init(|| Mutex::new(HashMap::new()))
}

/// What a detector releasing `template` uses instead: `None` (keep it) when it has
/// built nothing; else the cache's copy with nothing built, made now if the cache
/// still holds `template` itself.
fn unbuilt_shared(template: &Arc<Template>) -> Option<Arc<Template>> {
    if !template.regex.engines_built() {
        return None;
    }
    let key = SpecKey::of_template(template);
    let mut map = compiled_templates().lock().ok()?;
    match map.get(&key) {
        Some(current) if !Arc::ptr_eq(current, template) => Some(Arc::clone(current)),
        _ => {
            let unbuilt = Arc::new(template.unbuilt_copy().ok()?);
            map.insert(key, Arc::clone(&unbuilt));
            Some(unbuilt)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SpecKey {
    name: String,
    pattern: Option<String>,
    regex: String,
    flags: u8,
    kind: String,
}

impl SpecKey {
    fn of(spec: &Spec) -> SpecKey {
        SpecKey {
            name: spec.name.clone(),
            pattern: spec.pattern.clone(),
            regex: spec.regex.clone(),
            flags: spec.flags,
            kind: format!("{:?}", spec.kind),
        }
    }

    fn of_template(template: &Template) -> SpecKey {
        SpecKey {
            name: template.name.clone(),
            pattern: template.pattern.clone(),
            regex: template.regex_text.clone(),
            flags: template.flags,
            kind: format!("{:?}", template.kind),
        }
    }
}

/// The key fail2ban caches the line-begin copy of a default template under, for the
/// defaults that get one.
fn anchored_copy_key(pattern: &str) -> Option<String> {
    let base = match pattern {
        "EPOCH" => "Epoch",
        "TAI64N" => "TAI64N",
        p if p.starts_with("{^LN-BEG}") || p.starts_with('^') => return None,
        p => p,
    };
    Some(template::pattern_key(&format!("{{^LN-BEG}}{base}")))
}

/// The weight of a template made from a pattern with this key. fail2ban keeps one template
/// object per key for the whole process; the line-begin copies of the defaults get weight
/// 100, and so does any jail's template that is the same object (e.g. `{^LN-BEG}Epoch`).
fn shared_weight(key: &str) -> f64 {
    let shared = DEFAULT_PATTERNS
        .iter()
        .filter_map(|p| anchored_copy_key(p))
        .any(|k| k == key);
    if shared { ANCHORED_COPY_WEIGHT } else { 1.0 }
}

/// The 31 default templates with their weights: the line-begin copies of those that are
/// not anchored already, then the 17 originals.
fn default_templates(year_prefixes: &str) -> Result<Vec<(Arc<Template>, f64)>, Error> {
    // Every jail without a datepattern starts from the same list: spelling the 31
    // templates out again for each would be most of a jail's start-up. The definitions
    // are kept and the templates taken from the compiled cache, so that a detector made
    // after others released their engines gets the copies they share.
    type Defaults = Vec<(Spec, f64)>;
    static BUILT: OnceLock<Mutex<HashMap<String, Defaults>>> = OnceLock::new();
    let cache = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let known = cache
        .lock()
        .ok()
        .and_then(|map| map.get(year_prefixes).cloned());
    let specs = match known {
        Some(specs) => specs,
        None => {
            let specs = default_specs(year_prefixes)?;
            if let Ok(mut map) = cache.lock() {
                map.insert(year_prefixes.to_string(), specs.clone());
            }
            specs
        }
    };
    specs
        .into_iter()
        .map(|(spec, weight)| Ok((compile(spec)?, weight)))
        .collect()
}

fn default_specs(year_prefixes: &str) -> Result<Vec<(Spec, f64)>, Error> {
    let mut copies = Vec::new();
    let mut originals = Vec::new();
    for pattern in DEFAULT_PATTERNS {
        let spec = template::spec_for(pattern, &template::pattern_key(pattern), year_prefixes)?;
        if let Some(key) = anchored_copy_key(pattern) {
            let anchored = format!(
                "{{^LN-BEG}}{}",
                spec.pattern.as_deref().unwrap_or(&spec.name)
            );
            let copy = template::spec_for(&anchored, &key, year_prefixes)?;
            copies.push((copy, ANCHORED_COPY_WEIGHT));
        }
        originals.push((spec, 1.0));
    }
    copies.extend(originals);
    Ok(copies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Field;

    fn cet() -> TimeZone {
        TimeZone::from_tz_value(Some("CET-01CEST-02,M3.5.0,M10.5.0"))
    }

    const NOW: f64 = 1_124_013_600.0;

    #[test]
    fn released_detectors_share_one_unbuilt_copy_and_find_the_same_times() {
        let pattern = "^%Y/%m/%d %H:%M:%S";
        let line = "2005/08/14 12:00:00 sshd[1]: x";
        let mut a = DateDetector::new(Some(pattern)).unwrap();
        let mut b = DateDetector::new(Some(pattern)).unwrap();
        let first = a.match_time(line, NOW, &cet()).unwrap().time;
        assert!(first.is_some());
        assert_eq!(b.match_time(line, NOW, &cet()).unwrap().time, first);
        let built = Arc::clone(&a.slots[0].template);
        assert!(Arc::ptr_eq(&built, &b.slots[0].template));
        assert!(built.regex.engines_built());

        a.release_engines();
        assert!(!Arc::ptr_eq(&a.slots[0].template, &built));
        assert!(!a.slots[0].template.regex.engines_built());
        // The busy detector keeps the built one until it lets go too, then joins `a`.
        assert!(Arc::ptr_eq(&b.slots[0].template, &built));
        b.release_engines();
        assert!(Arc::ptr_eq(&a.slots[0].template, &b.slots[0].template));
        assert_eq!(Arc::strong_count(&built), 1);
        // A detector made now starts from the shared copy too.
        let c = DateDetector::new(Some(pattern)).unwrap();
        assert!(Arc::ptr_eq(&c.slots[0].template, &a.slots[0].template));

        assert_eq!(a.match_time(line, NOW, &cet()).unwrap().time, first);
        assert_eq!(a.slots[0].hits, 2, "the counters survive the release");
    }

    /// Lines that share their date text with the line before (so the previous result
    /// is offered for reuse) but differ right after it, where an optional part of the
    /// template (`.Microseconds`, ` ExYear`) or the end boundary decides the match.
    #[test]
    fn reused_results_equal_full_matches() {
        let lines = [
            "Nov 23 00:00:01 bastion sshd[1]: a",
            "Nov 23 00:00:01 bastion sshd[2]: b",
            "Nov 23 00:00:01 2005 bastion sshd[3]: with a year",
            "Nov 23 00:00:01 2005 bastion sshd[4]: same year",
            "Nov 23 00:00:01 bastion sshd[5]: no year again",
            "Nov 23 00:00:01.250 bastion sshd[6]: microseconds",
            "Nov 23 00:00:01x not a boundary",
            "Nov 23 00:00:01",
            "Nov 23 00:00:01",
            "Nov 23 00:00:01 ",
            "Nov 23 00:00:01\u{e9}t\u{e9}",
            "Nov 23 00:00:02 bastion sshd[7]: next second",
            "[Nov 23 00:00:02] bracketed",
            "Nov 23 00:00:02 bastion sshd[8]: back",
        ];
        assert_reuse_is_exact(None, &lines);
        // An optional part that reaches far past the compared bytes: only the match
        // span tells these lines apart.
        assert_reuse_is_exact(
            Some("{^LN-BEG}%H:%M:%S(?:,[a-z]{12} %Y)?"),
            &[
                "10:00:00,abcdefghijkl rest",
                "10:00:00,abcdefghijkl 2005 now with a year",
                "10:00:00,abcdefghijkl rest",
            ],
        );
    }

    fn assert_reuse_is_exact(pattern: Option<&str>, lines: &[&str]) {
        let mut reusing = DateDetector::with_current_year(pattern, 2026).expect("compiles");
        let mut fresh = DateDetector::with_current_year(pattern, 2026).expect("compiles");
        // One zone: a result is only reused for the zone it was made in.
        let zone = cet();
        for line in lines {
            fresh.reuse = None;
            let got = reusing.match_time(line, NOW, &zone);
            let want = fresh.match_time(line, NOW, &zone);
            assert_eq!(got, want, "{line:?}");
            assert_eq!(reusing.template_hits(), fresh.template_hits(), "{line:?}");
        }
    }

    /// Lines whose dates move on by a few seconds at a time (with jumps over minutes,
    /// hours, days, years, the zone's gap and fold, and "now" near New Year, so the
    /// year inference turns), in several shapes: the previous line's match taken
    /// again with other digits (and its conversion from the same groups) must give
    /// what a full match gives, template hits and order included. Some lines break
    /// the shape (seconds 60 to 99, one-digit fields, a date further in, text that is
    /// not ASCII, a year or microseconds after the seconds), so that other templates
    /// win in between and the digits that the template tells apart are refused.
    ///
    /// The detector compared with goes the full way through the conversion as well
    /// (fields read anew, `mktime` asked afresh), in a zone whose changes fall inside
    /// a minute (so the seconds alone cross them), in a zone file's, and in a
    /// configured fixed offset: most lines' times come from the last one's by their
    /// seconds alone (see [`DateDetector::convert_seconds`]), across the gap, the fold,
    /// the leap seconds 60 and 61 (refused: the general way takes them), New Year and
    /// the year inference turning.
    #[test]
    fn matches_taken_again_with_other_digits_equal_full_matches() {
        let mut zones = vec![
            ("CET-01CEST-02,M3.5.0/2:00:30,M10.5.0/3:00:30", None),
            (
                "CET-01CEST-02,M3.5.0/2:00:30,M10.5.0/3:00:30",
                Some("UTC+0200"),
            ),
        ];
        if std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin").is_file() {
            zones.push(("Europe/Berlin", None));
        }
        for (zone, log_zone) in zones {
            let log_zone = log_zone.map(|z| TimeZone::from_log_timezone(z).expect("valid"));
            let (moved, taken) = moved_digits_equal_full_matches(zone, log_zone);
            let context = format!("{zone}: {moved} lines taken again, {taken} from the seconds");
            assert!(moved > 5_000, "{context}");
            assert!(taken > moved / 2, "{context}");
        }
    }

    /// See [`matches_taken_again_with_other_digits_equal_full_matches`]: the lines
    /// taken again with other digits and the conversions from their seconds alone.
    fn moved_digits_equal_full_matches(zone: &str, log_zone: Option<TimeZone>) -> (usize, usize) {
        use crate::civil::Civil;
        let mut random = crate::test_random(0x2545_f491_4f6c_dd1d_u64);
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let starts = [
            (2005, 3, 27, 1, 58, 0),
            (2005, 10, 30, 1, 58, 0),
            (2005, 12, 31, 23, 55, 0),
            (2005, 8, 14, 11, 59, 30),
            (2004, 2, 28, 23, 59, 0),
        ];
        let patterns = [
            None,
            Some("^%Y-%m-%d %H:%M:%S"),
            Some("{^LN-BEG}%H:%M:%S"),
            Some("^%b %d %H:%M:%S(?:,%f)?"),
        ];
        let (mut moved, mut taken) = (0, 0);
        for pattern in patterns {
            for &(y, mo, d, h, mi, se) in &starts {
                let start = Civil {
                    year: y,
                    month: mo,
                    day: d,
                    hour: h,
                    minute: mi,
                    second: se,
                };
                let mut naive = start.to_naive();
                let tz = || TimeZone::from_tz_value(Some(zone));
                let (zone_a, zone_b) = (tz(), tz());
                let mut moving = DateDetector::with_current_year(pattern, 2026).expect("compiles");
                let mut full = DateDetector::with_current_year(pattern, 2026).expect("compiles");
                moving.set_log_timezone(log_zone.clone());
                full.set_log_timezone(log_zone.clone());
                // "Now" a few minutes after the first date: later dates pass it and go
                // to the year before.
                let mut now = (start.to_naive() - 3600 + 300) as f64;
                let mut last = None;
                for i in 0..1500 {
                    naive += match random(100) {
                        0 => 3600,
                        1 => 86_400 - 7,
                        2 => 61,
                        3..=40 => 0,
                        _ => random(3) as i64,
                    };
                    if random(200) == 0 {
                        now += 0.5;
                    }
                    let c = Civil::from_naive(naive);
                    let mut second = format!("{:02}", c.second);
                    if random(40) == 0 {
                        second = format!("{}", 60 + random(40));
                    } else if random(40) == 0 {
                        second = format!("{}", 60 + random(2));
                    } else if random(40) == 0 {
                        second = format!("{}", c.second);
                    }
                    let hour = if random(50) == 0 {
                        format!("{}", c.hour)
                    } else {
                        format!("{:02}", c.hour)
                    };
                    let time = format!("{hour}:{:02}:{second}", c.minute);
                    let month = MONTHS[(c.month - 1) as usize];
                    let date = match pattern {
                        Some(p) if p.starts_with("^%Y") => {
                            format!("{}-{:02}-{:02} {time}", c.year, c.month, c.day)
                        }
                        Some(p) if p.starts_with("{^LN-BEG}") => time,
                        _ => format!("{month} {:02} {time}", c.day),
                    };
                    let tail = match random(30) {
                        0 => " 2005 with a year",
                        1 => ".250 microseconds",
                        2 => ",123 a comma",
                        3 => "\u{e9}t\u{e9} not ascii",
                        4 => "x no boundary",
                        5 => "",
                        _ => " bastion sshd[42]: Failed password",
                    };
                    let line = match random(60) {
                        0 => format!("[{date}]{tail}"),
                        1 => format!("\u{e9} {date}{tail}"),
                        _ => format!("{date}{tail}"),
                    };
                    let before = moving.searches;
                    full.reuse = None;
                    full.conversion.fields = None;
                    full.mktime_run = MktimeRun::default();
                    let got = moving.match_time(&line, now, &zone_a);
                    let want = full.match_time(&line, now, &zone_b);
                    let context = format!("{pattern:?} line {i}: {line:?}");
                    assert_eq!(got, want, "{context}");
                    assert_eq!(moving.template_hits(), full.template_hits(), "{context}");
                    // Not searched, and not the last result: taken again with other digits.
                    moved += usize::from(before == moving.searches && got != last);
                    last = got;
                }
                taken += moving.seconds_taken;
            }
        }
        (moved, taken)
    }

    /// Dates one second apart, where the conversion starts from the previous date's
    /// fields and reads only the seconds: across zone changes that fall inside a minute
    /// (a gap and a fold), a change of the inferred year, Feb 29th of a year inferred
    /// to be no leap year, seconds `60` and `61`, one-digit seconds, AM/PM, explicit and
    /// configured offsets, a clock that moves.
    #[test]
    fn dates_read_from_the_previous_fields_equal_full_conversions() {
        let zone = "CET-01CEST-02,M3.5.0/2:00:30,M10.5.0/3:00:30";
        let local = |y, m, d, h, mi, s| {
            let epoch = TimeZone::from_tz_value(Some(zone)).mktime(y, m, d, h, mi, s);
            epoch.expect("a local time") as f64
        };
        let summer = local(2005, 8, 14, 12, 0, 0);
        let new_year = local(2006, 1, 1, 0, 0, 30);
        let leap_day_eve = local(2004, 2, 28, 12, 0, 0);
        let at = |now: f64, lines: &'static [&'static str]| lines.iter().map(move |l| (*l, now));
        let lines: Vec<(&str, f64)> = at(
            summer,
            &[
                "Mar 27 02:00:29 before the gap",
                "Mar 27 02:00:31 in the gap",
                "Mar 27 02:00:30 at its start",
                "Mar 27 03:00:31 after it",
                "Mar 27 03:00:29 in it again",
                "Oct 30 02:00:29 before the fold",
                "Oct 30 02:00:31 in the fold",
                "Oct 30 03:00:29 still in it",
                "Oct 30 03:00:31 after it",
                "Oct 30 03:00:30 at its end",
                "Aug 15 12:00:00 this year",
                "Aug 15 12:00:01 last year",
                "Aug 15 12:00:00 this year again",
                "Aug 14 10:00:59 another day",
                "Aug 14 10:00:60 a leap second",
                "Aug 14 10:00:61 past it",
                "Aug 14 10:00:58 back",
                "Aug 14 10:01:00 the next minute",
            ],
        )
        .chain(at(
            new_year,
            &[
                "Jan 01 00:00:29 this year",
                "Jan 01 00:00:31 still",
                "Jan 02 00:00:30 this year",
                "Jan 02 00:00:31 last year",
                "Dec 31 23:59:58 last year",
                "Dec 31 23:59:59 as well",
            ],
        ))
        .chain(at(
            leap_day_eve,
            &[
                "Feb 29 12:00:00 this leap year",
                "Feb 29 12:00:01 last year, no leap year",
                "Feb 29 12:00:00 this year again",
            ],
        ))
        .chain([
            ("Feb 29 12:00:01 the clock moved on", leap_day_eve + 1.0),
            ("Feb 29 12:00:02 and on", leap_day_eve + 1.0),
            ("Feb 29 12:00:03 past a day", leap_day_eve + 90_000.0),
            ("Aug 14, 2005 10:00:01 PM", summer),
            ("Aug 14, 2005 10:00:02 PM", summer),
            ("Aug 14, 2005 10:00:02 AM", summer),
            ("2005-08-14 10:00:01 +0200", summer),
            ("2005-08-14 10:00:02 +0200", summer),
            ("2005-08-14 10:00:02 -0100", summer),
        ])
        .collect();
        // `s`: only the seconds were read and the time shifted from the last one's;
        // `x`: only the seconds were read (the year inference went the other way, or
        // the last date was invalid). A date invalid either way shows neither.
        let taken = seconds_only_read(None, None, zone, &lines);
        assert_eq!(taken, "-ss-s-s-ss-xx---x--s-x-s-xxsxx-s--s-");

        let lines = [
            ("Aug 14 10:00:5 one digit", summer),
            ("Aug 14 10:00:7 one digit", summer),
            ("Aug 14 10:00:10 two", summer),
            ("Aug 14 10:00:11 two", summer),
        ];
        let taken = seconds_only_read(Some("^%b %d %H:%M:%S"), None, zone, &lines);
        assert_eq!(taken, "-s-s");
        let fixed = TimeZone::from_log_timezone("UTC+0200").ok();
        let taken = seconds_only_read(None, fixed, zone, &lines);
        assert_eq!(taken, "-s-s");
    }

    /// The wall clock of "now" through a cache is the one computed afresh, as the clock
    /// and the zone change and come back.
    #[test]
    fn cached_wall_clocks_follow_the_clock_and_the_zone() {
        let (cet, utc) = (cet(), TimeZone::utc());
        let mut cache = None;
        for (now, zone) in [
            (NOW, &cet),
            (NOW, &cet),
            (NOW + 0.5, &cet),
            (NOW + 0.5, &utc),
            (NOW, &utc),
            (NOW, &cet),
        ] {
            let fresh = now_local_micros(&mut None, now, zone);
            assert_eq!(now_local_micros(&mut cache, now, zone), fresh);
        }
    }

    /// Runs `lines` (each with its clock) through a detector and through one that reads
    /// every date's fields anew, which must agree; tells on which lines the first one
    /// read only the seconds (`x`) and took the time from the previous one's shift too
    /// (`s`), seen by replaying it with wrong fields or a wrong shift to start from.
    fn seconds_only_read(
        pattern: Option<&str>,
        log_zone: Option<TimeZone>,
        zone: &str,
        lines: &[(&str, f64)],
    ) -> String {
        let detector = || {
            let mut d = DateDetector::with_current_year(pattern, 2026).expect("compiles");
            d.set_log_timezone(log_zone.clone());
            d
        };
        // A zone each: `mktime` answers in a fold from the zone's previous call.
        let zone = || TimeZone::from_tz_value(Some(zone));
        let (mut reading, reading_zone) = (detector(), zone());
        let (mut full, full_zone) = (detector(), zone());
        let wrong = [
            (Field::Year, "1999"),
            (Field::Month, "1"),
            (Field::Day, "1"),
        ];
        let wrong = Fields::read(wrong.map(|(f, v)| (f, Some(v))), AmPm::NoGroup);
        let mut taken = String::new();
        for (i, &(line, now)) in lines.iter().enumerate() {
            full.conversion.fields = None;
            full.mktime_run = MktimeRun::default();
            let got = reading.match_time(line, now, &reading_zone);
            let want = full.match_time(line, now, &full_zone);
            assert_eq!(got, want, "{line:?}");
            let replayed = |spoil: &dyn Fn(&mut ConversionCache)| {
                let (mut replay, replay_zone) = (detector(), zone());
                for &(l, n) in &lines[..i] {
                    replay.match_time(l, n, &replay_zone);
                }
                spoil(&mut replay.conversion);
                replay.match_time(line, now, &replay_zone) != want
            };
            let shifted = replayed(&|c| c.shift = c.shift.map(Shift::a_day_late));
            let read = replayed(&|c| {
                if c.fields.is_some() {
                    (c.fields, c.shift) = (wrong.ok(), None);
                }
            });
            taken.push(match (shifted, read) {
                (true, _) => 's',
                (false, true) => 'x',
                (false, false) => '-',
            });
        }
        taken
    }

    #[test]
    fn defaults_are_31_line_begin_copies_first() {
        let mut d = DateDetector::with_current_year(None, 2026).expect("defaults compile");
        // Like fail2ban, the defaults come in with the first line.
        assert!(d.template_hits().is_empty());
        assert!(d.match_time("no date", NOW, &cet()).is_none());
        let names: Vec<String> = d.template_hits().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 31);
        assert!(names[..14].iter().all(|n| n.starts_with("{^LN-BEG}")));
        assert_eq!(
            names[1],
            r"{^LN-BEG}(?:DAY )?MON Day %k:Minute:Second(?:\.Microseconds)?(?: ExYear)?"
        );
        assert_eq!(names[7], "{^LN-BEG}Epoch");
        assert_eq!(names[13], "{^LN-BEG}TAI64N");
        assert_eq!(names[22], "{^LN-BEG}24hour:Minute:Second");
        assert_eq!(names[30], "TAI64N");
        assert_eq!(d.description(), "Default Detectors");
    }

    #[test]
    fn line_begin_keyword_keeps_anchored_defaults() {
        let d = DateDetector::new(Some("{^LN-BEG}")).expect("valid");
        assert_eq!(d.template_hits().len(), 17);
    }

    #[test]
    fn syslog_date_is_found_and_converted() {
        let mut d = DateDetector::with_current_year(None, 2026).expect("valid");
        let tz = cet();
        let line = "Jan 14 08:03:07 host sshd[123]: Failed password";
        let m = d.match_time(line, NOW, &tz).expect("date found");
        assert_eq!(&line[m.start..m.end], "Jan 14 08:03:07");
        assert_eq!(m.time, Some(1_105_686_187.0));
        // Cached conversion gives the same answer.
        let again = d.match_time(line, NOW, &tz).expect("date found");
        assert_eq!(again, m);
        // The winner bubbled up to the first slot.
        let (name, hits) = &d.template_hits()[0];
        assert!(name.starts_with("{^LN-BEG}(?:DAY )?MON Day"));
        assert_eq!(*hits, 2);
    }

    #[test]
    fn duplicate_patterns_are_rejected() {
        assert!(matches!(
            DateDetector::new(Some("^EPOCH\n{^LN-BEG}EPOCH")),
            Err(Error::DuplicateTemplate { .. })
        ));
    }

    #[test]
    fn none_pattern_matches_empty() {
        let mut d = DateDetector::new(Some("{NONE}")).expect("valid");
        let m = d
            .match_time("anything", NOW, &cet())
            .expect("always matches");
        assert_eq!((m.start, m.end, m.time, m.error), (0, 0, None, None));
        let m = d.match_time("", NOW, &cet()).expect("matches, then fails");
        assert_eq!(m.error, Some(DateError::LineFailed("IndexError")));
    }

    #[test]
    fn date_marks_are_replaced() {
        assert_eq!(replace_date_marks(r"^x{date}\{DATE}", "D"), r"^xD\{DATE}");
    }

    #[test]
    fn region_regex_wraps_after_flags() {
        let r = region_regex("(?iu)ab", 2).expect("compiles");
        assert_eq!(r.as_str(), r"(?iu)\A[\s\S]{2}[\s\S]*?(ab)");
        assert!(region_regex(r"(a)\1", 2).is_none());
    }
}
