//! Python `re` dialect, compiled to Rust regex engines.
//!
//! fail2ban's filters and date templates are Python regular expressions. This crate
//! accepts them verbatim and answers `re.search` questions with Python's semantics:
//! named groups `(?P<n>…)`, back-references `(?P=n)`, conditionals `(?(n)a|b)`,
//! lookaround, scoped flags, `$` matching before a final newline, `\Z`, `\<`/`\>` as
//! literals, `{,n}` and Unicode classes.
//!
//! Group numbers are Python's: every capturing group, named or not, numbered by its
//! opening parenthesis, whatever the pattern is rewritten to internally.
//!
//! The crate does no IO and never panics on a pattern or a haystack.

mod translate;

use std::fmt;

/// Compile-time flags that apply to the whole pattern (Python's `re.compile` flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// `re.MULTILINE`: `^`/`$` also match at line breaks inside the haystack.
    pub multiline: bool,
    /// `re.IGNORECASE`.
    pub ignore_case: bool,
}

/// Which engine runs a compiled pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The linear-time `regex` crate.
    Linear,
    /// A backtracking engine, needed for lookaround, back-references or conditionals.
    Backtracking,
}

/// A pattern that could not be compiled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The pattern is not valid Python `re` syntax, or uses something we do not support.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    Syntax { pattern: String, reason: String },
}

/// A compiled Python regular expression.
pub struct Regex {
    pattern: String,
    engine: fancy_regex::Regex,
    names: Vec<(usize, String)>,
    group_count: usize,
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Regex")
            .field("pattern", &self.pattern)
            .finish()
    }
}

impl Regex {
    /// Compiles `pattern` with no flags.
    pub fn new(pattern: &str) -> Result<Regex, Error> {
        Regex::with_flags(pattern, Flags::default())
    }

    /// Compiles `pattern` with `flags`.
    pub fn with_flags(pattern: &str, flags: Flags) -> Result<Regex, Error> {
        let translated = translate::to_fancy(pattern, flags).map_err(|reason| Error::Syntax {
            pattern: pattern.to_string(),
            reason,
        })?;
        let engine = fancy_regex::RegexBuilder::new(&translated)
            .backtrack_limit(1_000_000)
            .build()
            .map_err(|e| Error::Syntax {
                pattern: pattern.to_string(),
                reason: e.to_string(),
            })?;
        let names = engine
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, n.to_string())))
            .collect();
        let group_count = engine.captures_len().saturating_sub(1);
        Ok(Regex {
            pattern: pattern.to_string(),
            engine,
            names,
            group_count,
        })
    }

    /// The Python pattern this was compiled from.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The engine that runs this pattern.
    pub fn engine(&self) -> Engine {
        Engine::Backtracking
    }

    /// Number of capturing groups (group 0 not counted), as Python's `re.groups`.
    pub fn group_count(&self) -> usize {
        self.group_count
    }

    /// Named groups with their Python group numbers, in pattern order.
    pub fn group_names(&self) -> impl Iterator<Item = (usize, &str)> {
        self.names.iter().map(|(i, n)| (*i, n.as_str()))
    }

    /// The Python group number of the group called `name`.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.names.iter().find(|(_, n)| n == name).map(|(i, _)| *i)
    }

    /// Whether `re.search(pattern, haystack)` finds a match.
    pub fn is_match(&self, haystack: &str) -> bool {
        self.engine.is_match(haystack).unwrap_or(false)
    }

    /// Runs `re.search` and, on a match, records every group's span in `locations`.
    ///
    /// Returns false (and leaves `locations` cleared) when there is no match, or when
    /// the backtracking engine gave up on a pathological input.
    pub fn captures(&self, haystack: &str, locations: &mut Locations) -> bool {
        locations.spans.clear();
        locations.spans.resize(self.group_count + 1, None);
        let Ok(Some(caps)) = self.engine.captures(haystack) else {
            return false;
        };
        for (i, span) in locations.spans.iter_mut().enumerate() {
            *span = caps.get(i).map(|m| (m.start(), m.end()));
        }
        true
    }

    /// Literals of which at least one must occur in any haystack this pattern matches
    /// (compared ASCII case-insensitively when `ignore_case` says so).
    ///
    /// `None` when no such set is known; callers must then always run the pattern.
    pub fn required_literals(&self) -> Option<&RequiredLiterals> {
        None
    }
}

/// A set of literals of which any match must contain at least one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredLiterals {
    /// The alternatives.
    pub literals: Vec<String>,
    /// Whether they are to be compared ASCII case-insensitively.
    pub ignore_case: bool,
}

/// Byte spans of the groups of one match, indexed by Python group number (0 = whole match).
#[derive(Clone, Debug, Default)]
pub struct Locations {
    spans: Vec<Option<(usize, usize)>>,
}

impl Locations {
    /// Empty locations, reusable across calls to [`Regex::captures`].
    pub fn new() -> Locations {
        Locations::default()
    }

    /// Span of group `index`, if the group took part in the match.
    pub fn get(&self, index: usize) -> Option<(usize, usize)> {
        self.spans.get(index).copied().flatten()
    }

    /// Text of group `index` in `haystack`, if the group took part in the match.
    pub fn text<'h>(&self, haystack: &'h str, index: usize) -> Option<&'h str> {
        self.get(index).and_then(|(s, e)| haystack.get(s..e))
    }
}
