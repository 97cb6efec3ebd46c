//! Date templates: from a `datepattern` value (or a default) to a compiled regex, with
//! fail2ban's rules for boundaries, group 1 and anchoring.
//!
//! The rules work on the regex *text*, as fail2ban's do, so their corner cases (escaped
//! characters next to `**`, global flags in the middle, …) come out the same:
//!
//! - surrounding whitespace is dropped and the first global flag group such as `(?iu)` is
//!   moved to the front;
//! - unless the regex starts with `^` or `**` (possibly after opening parentheses and a
//!   flag group) it gets a word-begin boundary `(?=^|\b|\W)`, or for `{^LN-BEG}` the
//!   line-begin prefix `^(?:\W{0,2})?`; unless it ends with `$`, `\b`, `\s` or `**` it gets
//!   a word-end boundary `(?=\b|\W|$)`;
//! - without a capturing group, everything after a leading `^`/flag groups and before a
//!   trailing `$` becomes group 1, the text cut from the line;
//! - `**` at either end is then removed;
//! - templates that start at the line begin (or end at its end) are flagged anchored,
//!   which changes how the detector searches with them.

use std::sync::atomic::{AtomicU64, Ordering};

use rampart_pyre::Regex;

use crate::Error;
use crate::codes;

pub(crate) const LINE_BEGIN: u8 = 8;
pub(crate) const LINE_END: u8 = 4;
const WORD_BEGIN: u8 = 2;
const WORD_END: u8 = 1;

const LINE_BEGIN_MARK: &str = "{^LN-BEG}";
const UNBOUND_MARK: &str = "{UNB}";
const WORD_BEGIN_BOUNDARY: &str = r"(?=^|\b|\W)";
const WORD_END_BOUNDARY: &str = r"(?=\b|\W|$)";
const LINE_BEGIN_PREFIX: &str = r"^(?:\W{0,2})?";

/// Unix time: 10 or 11 digits, optionally milliseconds to microseconds.
const EPOCH_REGEX: &str = r"\d{10,11}\b(?:\.\d{3,6})?";
/// Unix time that may also be given in milliseconds (13 digits) or microseconds (16).
const LONG_EPOCH_REGEX: &str = r"\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?";

/// What a boundary at the start of a template looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Begin {
    None,
    Word,
    Line,
}

/// How the matched text becomes a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// strptime fields in named groups.
    Pattern,
    /// Unix time in the given group; `long` also accepts milli- and microseconds.
    Epoch { long: bool, group: usize },
    /// `@` and 24 hex digits.
    Tai64n,
}

/// A named group that carries a date field, by the name fail2ban reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Year2,
    Year,
    Month,
    MonthName,
    MonthAbbr,
    Day,
    Hour24,
    Hour12,
    Minute,
    Second,
    Weekday,
    WeekdayName,
    WeekdayAbbr,
    YearDay,
    WeekOfYearSunday,
    WeekOfYearMonday,
    ZoneOffset,
    ZoneName,
}

impl Field {
    fn from_group_name(name: &str) -> Option<Field> {
        Some(match name {
            "y" => Field::Year2,
            "Y" => Field::Year,
            "m" => Field::Month,
            "B" => Field::MonthName,
            "b" => Field::MonthAbbr,
            "d" => Field::Day,
            "H" => Field::Hour24,
            "I" => Field::Hour12,
            "M" => Field::Minute,
            "S" => Field::Second,
            "w" => Field::Weekday,
            "A" => Field::WeekdayName,
            "a" => Field::WeekdayAbbr,
            "j" => Field::YearDay,
            "U" => Field::WeekOfYearSunday,
            "W" => Field::WeekOfYearMonday,
            "z" => Field::ZoneOffset,
            "Z" => Field::ZoneName,
            _ => return None,
        })
    }
}

/// A compiled date template. Immutable; the detector keeps per-use counters beside it.
#[derive(Debug)]
pub(crate) struct Template {
    /// Distinguishes templates in the conversion cache.
    pub id: u64,
    /// Display name, as `fail2ban-regex` prints it.
    pub name: String,
    /// The pattern it was made from, for pattern templates.
    pub pattern: Option<String>,
    /// The final regex text.
    pub regex_text: String,
    pub regex: Regex,
    pub flags: u8,
    pub kind: Kind,
    /// Date fields in group order (the order fail2ban reads them in).
    pub fields: Vec<(usize, Field)>,
    /// The `p` (AM/PM) group, if the regex has one.
    pub am_pm_group: Option<usize>,
    /// Where the seconds field is in `fields`, if there is exactly one: the field that
    /// tells most dates of a log from the one before.
    pub second_field: Option<usize>,
    /// Anchored (so the detector takes its match without consulting other templates)
    /// and looking ahead at most one character past its match (only the word-end
    /// boundary): its result on a line is decided by the match span and the text up to
    /// a few bytes after it, so a line that agrees with the previous one there can
    /// reuse its result (see `DateDetector::reuse`).
    pub reusable: bool,
}

impl Template {
    pub(crate) fn anchored(&self) -> bool {
        self.flags & (LINE_BEGIN | LINE_END) != 0
    }

    /// The same template under a new id, with none of its engines built.
    pub(crate) fn unbuilt_copy(&self) -> Result<Template, Error> {
        Template::compile(
            self.name.clone(),
            self.pattern.clone(),
            self.regex_text.clone(),
            self.flags,
            self.kind,
        )
    }

    fn compile(
        name: String,
        pattern: Option<String>,
        regex_text: String,
        flags: u8,
        kind: Kind,
    ) -> Result<Template, Error> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let regex = Regex::new(&regex_text).map_err(|e| Error::Pattern {
            pattern: pattern.clone().unwrap_or_else(|| name.clone()),
            reason: e.to_string(),
        })?;
        let mut fields: Vec<(usize, Field)> = regex
            .group_names()
            .filter_map(|(i, n)| Field::from_group_name(n).map(|f| (i, f)))
            .collect();
        fields.sort_by_key(|(i, _)| *i);
        let am_pm_group = regex.group_index("p");
        let mut seconds = (0..fields.len()).filter(|&i| fields[i].1 == Field::Second);
        let second_field = match (seconds.next(), seconds.next()) {
            (Some(i), None) => Some(i),
            _ => None,
        };
        let lookahead_free = {
            let rest = regex_text
                .replace(WORD_END_BOUNDARY, "")
                .replace(WORD_BEGIN_BOUNDARY, "");
            !rest.contains("(?=") && !rest.contains("(?!")
        };
        let reusable = flags & (LINE_BEGIN | LINE_END) != 0 && lookahead_free;
        Ok(Template {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name,
            pattern,
            regex_text,
            regex,
            flags,
            kind,
            fields,
            am_pm_group,
            second_field,
            reusable,
        })
    }
}

/// A template's definition before compilation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Spec {
    pub name: String,
    pub pattern: Option<String>,
    pub regex: String,
    pub flags: u8,
    pub kind: Kind,
}

impl Spec {
    pub(crate) fn compile(self) -> Result<Template, Error> {
        Template::compile(self.name, self.pattern, self.regex, self.flags, self.kind)
    }
}

/// A pattern template (`DatePatternRegex`): `%` codes in a regex.
pub(crate) fn pattern_spec(pattern: &str, year_prefixes: &str) -> Result<Spec, Error> {
    let mut rest = pattern;
    let mut begin = Begin::Word;
    let mut end = true;
    if let Some(r) = rest.strip_prefix(UNBOUND_MARK) {
        rest = r;
        begin = Begin::None;
        end = false;
    }
    if begin != Begin::None
        && let Some(r) = rest.strip_prefix(LINE_BEGIN_MARK)
    {
        rest = r;
        begin = Begin::Line;
    }
    let expanded = codes::expand(rest, year_prefixes).map_err(|reason| Error::Pattern {
        pattern: pattern.to_string(),
        reason,
    })?;
    let mut regex = expanded.regex;
    if codes::uses_names(rest) {
        regex.insert_str(0, "(?iu)");
    }
    let mut name = expanded.name;
    let (regex, flags) = bound(&regex, begin, end, &mut name);
    Ok(Spec {
        name,
        pattern: Some(pattern.to_string()),
        regex,
        flags,
        kind: Kind::Pattern,
    })
}

/// A Unix-time template (`DateEpoch`): bare (searched anywhere after a line start, a `[`
/// at the line start or `audit(`), at the line begin only, or inside a user regex through
/// `{EPOCH}`/`{LEPOCH}`.
pub(crate) fn epoch_spec(line_begin_only: bool, user_pattern: Option<&str>, long: bool) -> Spec {
    let digits = if long { LONG_EPOCH_REGEX } else { EPOCH_REGEX };
    let mut name = match (user_pattern, long) {
        (Some(p), _) => p.to_string(),
        (None, false) => "Epoch".to_string(),
        (None, true) => "LongEpoch".to_string(),
    };
    let (regex, flags, group) = if let Some(p) = user_pattern {
        let inner = replace_epoch_marks(p, &format!("({digits})"));
        let (regex, flags) = bound(&format!("({inner})"), Begin::Word, true, &mut name);
        (regex, flags, 2)
    } else if line_begin_only {
        let (regex, flags) = bound(&format!("({digits})"), Begin::Line, true, &mut name);
        (regex, flags, 1)
    } else {
        // fail2ban's own regex adds conditionals that require `]` or `:nn)` after the
        // number, but backtracking always lets them match empty, so they are left out.
        let regex = format!(r"((?:^|(?<=^\[)|(?<=\baudit\()){digits})");
        let (regex, flags) = bound(&regex, Begin::None, true, &mut name);
        (regex, flags, 1)
    };
    Spec {
        name,
        pattern: None,
        regex,
        flags,
        kind: Kind::Epoch { long, group },
    }
}

/// A TAI64N label template.
pub(crate) fn tai64n_spec(begin: Begin) -> Spec {
    let mut name = "TAI64N".to_string();
    let (regex, flags) = bound("@[0-9a-f]{24}", begin, true, &mut name);
    Spec {
        name,
        pattern: None,
        regex,
        flags,
        kind: Kind::Tai64n,
    }
}

/// Replaces every `{EPOCH}`/`{LEPOCH}` (any case, not after a backslash) by `with`.
fn replace_epoch_marks(pattern: &str, with: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + with.len());
    let mut i = 0;
    let bytes = pattern.as_bytes();
    while i < bytes.len() {
        let escaped = i > 0 && bytes[i - 1] == b'\\';
        let mark_len = epoch_mark_len(&pattern[i..]);
        match mark_len {
            Some(n) if !escaped => {
                out.push_str(with);
                i += n;
            }
            _ => {
                let ch_len = pattern[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&pattern[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    out
}

/// Length of a `{EPOCH}` or `{LEPOCH}` mark (ASCII case-insensitive) at the start of `s`.
fn epoch_mark_len(s: &str) -> Option<usize> {
    ["{EPOCH}", "{LEPOCH}"].into_iter().find_map(|mark| {
        s.get(..mark.len())
            .filter(|head| head.eq_ignore_ascii_case(mark))
            .map(|_| mark.len())
    })
}

/// Whether the pattern contains an `{EPOCH}`/`{LEPOCH}` mark.
pub(crate) fn has_epoch_mark(pattern: &str) -> bool {
    let b = pattern.as_bytes();
    (0..b.len()).any(|i| (i == 0 || b[i - 1] != b'\\') && epoch_mark_len(&pattern[i..]).is_some())
}

/// Applies the boundary, group and anchoring rules (module docs) to `regex`; may prefix
/// `name` with `{^LN-BEG}`. Returns the final regex and the template flags.
pub(crate) fn bound(regex: &str, begin: Begin, end: bool, name: &mut String) -> (String, u8) {
    let mut regex = crate::pytext::py_strip(regex).to_string();
    let global_flags = first_global_flags(&regex).map(|(from, to)| {
        let flags = regex[from..to].to_string();
        regex.replace_range(from..to, "");
        flags
    });
    let bound_begin = begin != Begin::None && !starts_unbounded(&regex);
    let bound_end = end && !ends_unbounded(&regex);
    if !has_capturing_group(&regex) {
        regex = wrap_in_group(&regex);
    }
    let mut flags = 0;
    if bound_begin {
        if begin == Begin::Line {
            flags |= LINE_BEGIN;
            regex.insert_str(0, LINE_BEGIN_PREFIX);
            if !name.starts_with(LINE_BEGIN_MARK) {
                name.insert_str(0, LINE_BEGIN_MARK);
            }
        } else {
            flags |= WORD_BEGIN;
            regex.insert_str(0, WORD_BEGIN_BOUNDARY);
        }
    }
    if bound_end {
        flags |= WORD_END;
        regex.push_str(WORD_END_BOUNDARY);
    }
    if flags & LINE_BEGIN == 0 && starts_at_line_begin(&regex) {
        flags |= LINE_BEGIN;
    }
    if ends_at_line_end(&regex) {
        flags |= LINE_END;
    }
    let mut regex = remove_star_marks(&regex);
    if let Some(f) = global_flags {
        regex.insert_str(0, &f);
    }
    (regex, flags)
}

/// Python's `\w` for one character.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Length of a flag group `(?word)` at the start of `s`.
fn flag_group_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("(?")?;
    let word = body
        .char_indices()
        .find(|&(_, c)| !is_word_char(c))
        .map_or(body.len(), |(i, _)| i);
    (word > 0 && body[word..].starts_with(')')).then_some(2 + word + 1)
}

/// The first `(?letters)` group (lower-case ASCII letters), anywhere.
fn first_global_flags(regex: &str) -> Option<(usize, usize)> {
    let b = regex.as_bytes();
    (0..b.len()).find_map(|i| {
        let rest = b.get(i..)?;
        if !rest.starts_with(b"(?") {
            return None;
        }
        let letters = rest[2..]
            .iter()
            .take_while(|c| c.is_ascii_lowercase())
            .count();
        (letters > 0 && rest.get(2 + letters) == Some(&b')')).then_some((i, i + 3 + letters))
    })
}

/// The ways `s` can start with opening parentheses, then an optional flag group: yields the
/// remaining text for each split, as a backtracking regex would try them.
fn after_parens_and_flags(s: &str) -> impl Iterator<Item = &str> {
    let parens = s.bytes().take_while(|&b| b == b'(').count();
    (0..=parens).rev().flat_map(move |k| {
        let rest = &s[k..];
        let with_flags = flag_group_len(rest).map(|n| &rest[n..]);
        with_flags.into_iter().chain([rest])
    })
}

/// Whether a word-begin boundary must not be added: the regex starts with `^`, `(^`,
/// `(?:^` or `**` (after any opening parentheses and a flag group).
fn starts_unbounded(regex: &str) -> bool {
    after_parens_and_flags(regex).any(|rest| {
        rest.starts_with('^')
            || rest.trim_start_matches('(').starts_with("**")
            || rest.starts_with("(^")
            || rest.starts_with("(?:^")
    })
}

/// Whether a word-end boundary must not be added: the regex ends with an unescaped `$`,
/// `$)`, `\b`, `\s`, or `**` followed by closing parentheses.
fn ends_unbounded(regex: &str) -> bool {
    let not_escaped_before = |end_of_prefix: &str| !end_of_prefix.ends_with('\\');
    let ends_with_unescaped = |tail: &str| regex.strip_suffix(tail).is_some_and(not_escaped_before);
    if ["$", "$)", r"\b", r"\s"]
        .into_iter()
        .any(ends_with_unescaped)
    {
        return true;
    }
    let trimmed = regex.trim_end_matches(')');
    trimmed.strip_suffix("**").is_some_and(not_escaped_before)
}

/// Whether the regex has a capturing group: a `(` not escaped, not followed by `?` and not
/// directly after `(?` (the condition of a conditional).
fn has_capturing_group(regex: &str) -> bool {
    let b = regex.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'('
            && (i == 0 || b[i - 1] != b'\\')
            && !(i >= 2 && &b[i - 2..i] == b"(?")
            && b.get(i + 1) != Some(&b'?')
    })
}

/// Wraps the regex in group 1, leaving leading flag groups and `^` and a trailing `$`
/// outside. A regex with a line break is left alone (fail2ban's rule cannot span it).
fn wrap_in_group(regex: &str) -> String {
    if regex.contains('\n') {
        return regex.to_string();
    }
    let mut head = 0;
    head += flag_group_len(regex).unwrap_or(0);
    if regex[head..].starts_with('^') {
        head += 1;
    }
    head += flag_group_len(&regex[head..]).unwrap_or(0);
    let (body, dollar) = match regex[head..].strip_suffix('$') {
        Some(b) => (b, "$"),
        None => (&regex[head..], ""),
    };
    format!("{}({body}){dollar}", &regex[..head])
}

/// Whether the regex starts at the line begin: `^`, or `(^`/`(?:^` not followed by `|`,
/// possibly after a flag group.
fn starts_at_line_begin(regex: &str) -> bool {
    let starts = |s: &str| {
        s.starts_with('^')
            || ["(^", "(?:^"]
                .iter()
                .any(|p| s.strip_prefix(p).is_some_and(|r| !r.starts_with('|')))
    };
    starts(regex) || flag_group_len(regex).is_some_and(|n| starts(&regex[n..]))
}

/// Whether the regex ends at the line end: `$` or `$)` not after `\` or `|`.
fn ends_at_line_end(regex: &str) -> bool {
    let ok = |p: &str| !p.ends_with(['\\', '|']);
    regex.strip_suffix('$').is_some_and(ok) || regex.strip_suffix("$)").is_some_and(ok)
}

/// Removes the `**` marks: one at the start (after opening parentheses, a flag group and
/// more parentheses) and one at the end (before closing parentheses, not escaped).
fn remove_star_marks(regex: &str) -> String {
    let mut out = regex.to_string();
    let mut start_mark_end = 0;
    let leading = leading_star_mark(regex);
    if let Some(at) = leading {
        start_mark_end = at + 2;
    }
    let trimmed = regex.trim_end_matches(')');
    let trailing = trimmed
        .strip_suffix("**")
        .filter(|p| !p.ends_with('\\'))
        .map(str::len)
        .filter(|&at| at >= start_mark_end);
    if let Some(at) = trailing {
        out.replace_range(at..at + 2, "");
    }
    if let Some(at) = leading {
        out.replace_range(at..at + 2, "");
    }
    out
}

/// Byte offset of a `**` that follows only opening parentheses and a flag group.
fn leading_star_mark(regex: &str) -> Option<usize> {
    after_parens_and_flags(regex).find_map(|rest| {
        let after = rest.trim_start_matches('(');
        after.starts_with("**").then(|| regex.len() - after.len())
    })
}

/// fail2ban's `unboundPattern`: strips `{UNB}`, `{^LN-BEG}`, a leading word-begin
/// alternation and a trailing word-end boundary, to embed a template in `{DATE}`.
pub(crate) fn unbound(pattern: &str) -> String {
    let mut s = pattern;
    s = s.strip_prefix(UNBOUND_MARK).unwrap_or(s);
    s = s.strip_prefix(LINE_BEGIN_MARK).unwrap_or(s);
    for prefix in [r"(?:^|\b|\W)", r"(^|\b|\W)"] {
        if let Some(r) = s.strip_prefix(prefix) {
            s = r;
            break;
        }
    }
    if let Some(r) = s.strip_suffix(WORD_END_BOUNDARY) {
        return r.to_string();
    }
    if let Some(r) = s
        .strip_suffix('\n')
        .and_then(|r| r.strip_suffix(WORD_END_BOUNDARY))
    {
        return format!("{r}\n");
    }
    s.to_string()
}

/// The template fail2ban makes for a single pattern (`_getPatternTemplate`): `key` is the
/// pattern, upper-cased when it has no `%`.
pub(crate) fn spec_for(pattern: &str, key: &str, year_prefixes: &str) -> Result<Spec, Error> {
    if key.contains("EPOCH") {
        if has_epoch_mark(pattern) {
            return Ok(epoch_spec(false, Some(pattern), key.contains("LEPOCH")));
        }
        match key {
            "EPOCH" => return Ok(epoch_spec(false, None, false)),
            "{^LN-BEG}EPOCH" | "^EPOCH" => return Ok(epoch_spec(true, None, false)),
            "LEPOCH" => return Ok(epoch_spec(false, None, true)),
            "{^LN-BEG}LEPOCH" | "^LEPOCH" => return Ok(epoch_spec(true, None, true)),
            _ => {}
        }
    }
    match key {
        "TAI64N" => Ok(tai64n_spec(Begin::None)),
        "{^LN-BEG}TAI64N" | "^TAI64N" => Ok(tai64n_spec(Begin::Line)),
        _ => pattern_spec(pattern, year_prefixes),
    }
}

/// fail2ban's lookup key of a pattern: upper-cased unless it contains `%`.
pub(crate) fn pattern_key(pattern: &str) -> String {
    if pattern.contains('%') {
        pattern.to_string()
    } else {
        pattern.to_uppercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(regex: &str, begin: Begin, end: bool) -> (String, u8) {
        bound(regex, begin, end, &mut String::new())
    }

    #[test]
    fn boundaries_are_added_unless_anchored_or_starred() {
        assert_eq!(
            built("abc", Begin::Word, true),
            (
                r"(?=^|\b|\W)(abc)(?=\b|\W|$)".to_string(),
                WORD_BEGIN | WORD_END
            )
        );
        assert_eq!(
            built("^abc$", Begin::Word, true),
            (r"^(abc)$".to_string(), LINE_BEGIN | LINE_END)
        );
        assert_eq!(
            built("**abc**", Begin::Word, true),
            ("(abc)".to_string(), 0)
        );
        assert_eq!(
            built(r"^WARNING:()**", Begin::Word, true),
            ("^WARNING:()".to_string(), LINE_BEGIN)
        );
        assert_eq!(built(r"abc\b", Begin::Word, true).1, WORD_BEGIN);
        assert_eq!(built(r"abc\\\**", Begin::Word, true).1 & WORD_END, WORD_END);
        assert_eq!(
            built(" (?iu)abc ", Begin::Word, false).0,
            r"(?iu)(?=^|\b|\W)(abc)"
        );
    }

    #[test]
    fn line_begin_prefix_renames_the_template() {
        let mut name = "x".to_string();
        let (regex, flags) = bound("x", Begin::Line, true, &mut name);
        assert_eq!(regex, r"^(?:\W{0,2})?(x)(?=\b|\W|$)");
        assert_eq!(flags, LINE_BEGIN | WORD_END);
        assert_eq!(name, "{^LN-BEG}x");
    }

    #[test]
    fn group_detection_ignores_escapes_and_conditions() {
        assert!(has_capturing_group("a(b)"));
        assert!(!has_capturing_group(r"a\(b\)"));
        assert!(!has_capturing_group("(?:a)(?P<x>b)"));
        assert!(!has_capturing_group("(?(x)a|b)"));
        assert_eq!(wrap_in_group("(?i)^abc$"), "(?i)^(abc)$");
        assert_eq!(wrap_in_group("a\nb"), "a\nb");
    }

    #[test]
    fn line_flags_follow_the_regex_text() {
        assert!(starts_at_line_begin("(?:^x)"));
        assert!(!starts_at_line_begin("(?:^|x)"));
        assert!(starts_at_line_begin("(?i)^x"));
        assert!(ends_at_line_end("x$"));
        assert!(!ends_at_line_end(r"x\$"));
        assert!(!ends_at_line_end("(?=a|$)"));
    }

    #[test]
    fn epoch_marks_are_found_case_insensitively() {
        assert!(has_epoch_mark("^{epoch} x"));
        assert!(!has_epoch_mark(r"\{EPOCH}"));
        assert_eq!(replace_epoch_marks("a{LEpoch}b", "N"), "aNb");
    }

    #[test]
    fn unbound_strips_marks_and_boundaries() {
        assert_eq!(unbound("{^LN-BEG}%H:%M:%S"), "%H:%M:%S");
        assert_eq!(unbound(r"(x)(?=\b|\W|$)"), "(x)");
        assert_eq!(unbound(r"(?:^|\b|\W)x"), "x");
    }

    #[test]
    fn specs_follow_the_pattern_kind() {
        let years = codes::ANY_21ST_CENTURY;
        let s = spec_for("{^LN-BEG}Epoch", &pattern_key("{^LN-BEG}Epoch"), years).expect("valid");
        assert_eq!(s.name, "{^LN-BEG}Epoch");
        assert_eq!(s.flags & LINE_BEGIN, LINE_BEGIN);
        let s = spec_for("^TAI64N", "^TAI64N", years).expect("valid");
        assert_eq!(s.name, "{^LN-BEG}TAI64N");
        let s = spec_for("^x{LEPOCH}", "^X{LEPOCH}", years).expect("valid");
        assert_eq!(
            s.kind,
            Kind::Epoch {
                long: true,
                group: 2
            }
        );
        let s = spec_for("%b %d", "%b %d", years).expect("valid");
        assert!(s.regex.starts_with("(?iu)"));
        assert_eq!(s.name, "MON Day");
    }
}
