//! Python `re` dialect, compiled to Rust regex engines.
//!
//! fail2ban's filters and date templates are Python regular expressions. This crate
//! accepts them verbatim and answers `re.search` questions with Python's semantics:
//! named groups `(?P<n>…)`, back-references `(?P=n)`, conditionals `(?(n)a|b)`,
//! lookaround, scoped flags, `$` matching before a final newline, `\Z`, `\<`/`\>` as
//! literals, `{,n}` and Python's own Unicode classes.
//!
//! A pattern is parsed into a syntax tree (`parse`), rewritten where an exact
//! equivalent avoids backtracking (`rewrite`), and lowered to the linear-time
//! `regex-automata` meta engine when nothing but regular constructs remain; otherwise it
//! runs on `fancy-regex`, a backtracking engine with a step limit (`lower`). The
//! literals any match must contain are extracted for a multi-pattern prefilter
//! (`literals`).
//!
//! Group numbers are Python's: every capturing group, named or not, numbered by its
//! opening parenthesis, whatever the pattern is rewritten to internally.
//!
//! The crate does no IO and never panics on a pattern or a haystack.

mod ast;
mod charset;
mod literals;
mod lower;
mod parse;
#[cfg(feature = "pcre2")]
mod pcre;
#[cfg(feature = "pcre2")]
mod pcre_sys;
#[cfg(feature = "pcre2")]
mod prune;
mod rewrite;
mod tables;

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::util::primitives::{NonMaxUsize, StateID};
use regex_automata::util::start;
use regex_automata::{Anchored, Input, meta, nfa::thompson};

pub use literals::{Candidates, Prefilter};

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

/// A search that could not be decided.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatchError {
    /// The backtracking engine hit its step limit on this haystack (a pathological
    /// input); whether the pattern matches is unknown.
    #[error("the backtracking engine gave up on pattern {pattern:?}: {reason}")]
    GaveUp { pattern: String, reason: String },
}

/// Haystacks longer than this (bytes) get a DFA pass before a capture search.
#[cfg(feature = "pcre2")]
const LONG_HAYSTACK: usize = 512;

/// How many steps the backtracking engine may take on one haystack.
const BACKTRACK_LIMIT: usize = 1_000_000;

/// The linear engine: one automaton specialised for ASCII haystacks (nearly all log
/// lines), one for any haystack, and the per-branch automata of [`Branches`].
///
/// The automata are built on first use: a daemon with dozens of jails holds hundreds of
/// patterns, most of which never see a line that gets that far (a failregex whose
/// literals are absent is never run, and captures go to PCRE2), and building them all
/// at start costs both the start-up time and megabytes of NFAs. Nor is the rewritten
/// tree kept: it is derived again from the pattern for each automaton built.
struct Linear {
    ascii: OnceLock<Option<meta::Regex>>,
    /// An anchored DFA for ASCII haystacks, for [`Regex::deciding_prefix`] (built on
    /// its first call; `None` when the pattern can match elsewhere than at the start).
    prefix_dfa: OnceLock<Option<PrefixDfa>>,
    branches: OnceLock<Option<Branches>>,
    unicode: OnceLock<Option<meta::Regex>>,
    caveats: lower::Caveats,
}

impl Linear {
    /// The automaton for `haystack`, or `None` when only the backtracking engine can
    /// answer exactly as Python.
    #[inline]
    fn engine_for(&self, haystack: &str, source: &Source) -> Option<&meta::Regex> {
        if !self.exact_on(haystack) {
            return None;
        }
        let ascii = haystack.is_ascii();
        let slot = if ascii { &self.ascii } else { &self.unicode };
        slot.get_or_init(|| {
            let tree = source.rewritten()?;
            build_meta(&lower::to_hir(tree, &mut lower::Caveats::default(), ascii)?)
        })
        .as_ref()
    }

    /// The per-branch automata of a top-level alternation, built on first need.
    fn branches(&self, source: &Source) -> Option<&Branches> {
        self.branches
            .get_or_init(|| Branches::new(source.rewritten()?))
            .as_ref()
    }

    /// Whether the linear engine's answer on `haystack` is exactly Python's.
    #[inline]
    fn exact_on(&self, haystack: &str) -> bool {
        let c = self.caveats;
        if c.single_line
            && let Some(body) = haystack.as_bytes().get(..haystack.len().saturating_sub(1))
            && memchr::memchr(b'\n', body).is_some()
        {
            return false;
        }
        if c.not_boundary && haystack.is_empty() {
            return false;
        }
        if c.word_boundary && !haystack.is_ascii() {
            let odd = charset::word_disagreement();
            if haystack.chars().any(|ch| charset::in_ranges(ch, odd)) {
                return false;
            }
        }
        true
    }
}

/// A pattern's text and flags, from which every tree is derived when an engine is
/// built. Parsing succeeded once when the [`Regex`] was made, and parsing is a pure
/// function of these two, so it succeeds again.
///
/// The trees an engine was built from are kept until the engines are released: a
/// pattern that runs at all builds several engines from them within its first few
/// lines (the plan, the ASCII automaton, PCRE2, the branch checks), and parsing and
/// rewriting again for each was a good part of that. A pattern that never runs (its
/// literals never seen) keeps none: [`Source::with_tree`] parses it for the moment.
struct Source {
    pattern: String,
    flags: Flags,
    tree: OnceLock<Option<Box<ast::Node>>>,
    rewritten: OnceLock<Option<Box<ast::Node>>>,
}

impl Source {
    fn new(pattern: &str, flags: Flags) -> Source {
        Source {
            pattern: pattern.to_string(),
            flags,
            tree: OnceLock::new(),
            rewritten: OnceLock::new(),
        }
    }

    fn parsed(&self) -> Option<parse::Parsed> {
        parse::parse(&self.pattern, parse_flags(self.flags)).ok()
    }

    /// The parsed tree, kept.
    fn tree(&self) -> Option<&ast::Node> {
        self.tree
            .get_or_init(|| self.parsed().map(|p| Box::new(p.root)))
            .as_deref()
    }

    /// The rewritten tree, kept.
    fn rewritten(&self) -> Option<&ast::Node> {
        self.rewritten
            .get_or_init(|| self.tree().map(|t| Box::new(rewrite::rewrite(t))))
            .as_deref()
    }

    /// `f` of the parsed tree, kept or parsed for the moment only.
    fn with_tree<R>(&self, f: impl FnOnce(&ast::Node) -> Option<R>) -> Option<R> {
        match self.tree.get() {
            Some(kept) => f(kept.as_deref()?),
            None => f(&self.parsed()?.root),
        }
    }

    /// Forgets the kept trees, with the engines built from them.
    fn release(&mut self) {
        self.tree = OnceLock::new();
        self.rewritten = OnceLock::new();
    }
}

fn parse_flags(flags: Flags) -> parse::FlagSet {
    parse::FlagSet {
        ignore_case: flags.ignore_case,
        multiline: flags.multiline,
        ..Default::default()
    }
}

/// What the searches of a pattern need first: whether the linear engine can run it
/// (rewritten, lowered), and with which caveats. Worked out at the first search.
struct Plan {
    linear: Option<Linear>,
    /// Some(n) when the pattern matches every haystack that is one line (at most a
    /// final newline) of at least n characters (see [`line_shortcut`]).
    matches_lines_from: Option<usize>,
}

/// A compiled Python regular expression.
///
/// Making one only parses the pattern, which is where Python's own errors come from;
/// the engines, the rewrite that decides between them, and the required literals are
/// worked out on first need. Most patterns of a daemon with many jails never get that
/// far, and those that do pay once.
pub struct Regex {
    source: Source,
    names: Vec<(usize, String)>,
    group_count: usize,
    /// Boxed, as the other engines: a regex that never runs (most of a daemon's)
    /// then costs a pointer for each, not the room of what it would build.
    plan: OnceLock<Box<Plan>>,
    fancy: OnceLock<Box<Result<fancy_regex::Regex, String>>>,
    /// The capture engine of choice, compiled on the first capture search.
    #[cfg(feature = "pcre2")]
    pcre: OnceLock<Option<pcre::Pcre>>,
    /// PCRE2 on the live branches of an expanded conditional, built with the first
    /// capture search that PCRE2 runs.
    #[cfg(feature = "pcre2")]
    pruned: OnceLock<Option<Box<prune::Pruned>>>,
    literals: OnceLock<Option<RequiredLiterals>>,
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Regex")
            .field("pattern", &self.source.pattern)
            // Not `engine()`: looking must not build what searches have not needed yet.
            .field(
                "engine",
                &self.plan.get().map(|p| {
                    if p.linear.is_some() {
                        Engine::Linear
                    } else {
                        Engine::Backtracking
                    }
                }),
            )
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
        let parsed = parse::parse(pattern, parse_flags(flags)).map_err(|reason| Error::Syntax {
            pattern: pattern.to_string(),
            reason,
        })?;
        Ok(Regex {
            source: Source::new(pattern, flags),
            names: parsed.names,
            group_count: parsed.groups,
            plan: OnceLock::new(),
            fancy: OnceLock::new(),
            #[cfg(feature = "pcre2")]
            pcre: OnceLock::new(),
            #[cfg(feature = "pcre2")]
            pruned: OnceLock::new(),
            literals: OnceLock::new(),
        })
    }

    /// Whether a search has built any engine yet (see [`Regex::release_engines`]).
    pub fn engines_built(&self) -> bool {
        #[cfg(feature = "pcre2")]
        if self.pcre.get().is_some() {
            return true;
        }
        self.plan.get().is_some() || self.fancy.get().is_some()
    }

    /// Drops the engines built so far; the next search builds them again. A daemon
    /// gives back the memory of a jail that has seen no line for a while.
    pub fn release_engines(&mut self) {
        self.source.release();
        self.plan = OnceLock::new();
        self.fancy = OnceLock::new();
        #[cfg(feature = "pcre2")]
        {
            self.pcre = OnceLock::new();
            self.pruned = OnceLock::new();
        }
    }

    /// Builds now what searches would build on first need, and reports a pattern that
    /// no engine accepts (one beyond an engine's limits, which Python's syntax does not
    /// know of). For testers such as `rampart regex`; a daemon lets searches do it.
    pub fn check(&self) -> Result<(), Error> {
        if self.linear().is_some() {
            return Ok(());
        }
        #[cfg(feature = "pcre2")]
        if self.pcre().is_some() {
            return Ok(());
        }
        self.fancy().map(|_| ()).map_err(|reason| Error::Syntax {
            pattern: self.source.pattern.clone(),
            reason: reason.clone(),
        })
    }

    fn plan(&self) -> &Plan {
        self.plan.get_or_init(|| {
            let linear = self
                .source
                .rewritten()
                .filter(|t| !t.is_fancy())
                .and_then(build_linear);
            let matches_lines_from = self.source.tree().and_then(line_shortcut);
            Box::new(Plan {
                linear,
                matches_lines_from,
            })
        })
    }

    #[inline]
    fn linear(&self) -> Option<&Linear> {
        self.plan().linear.as_ref()
    }

    /// See [`prune`]: only for patterns with a conditional or back-reference, the
    /// constructs whose expansion makes the branches.
    #[cfg(feature = "pcre2")]
    fn pruned(&self) -> Option<&prune::Pruned> {
        self.pruned
            .get_or_init(|| {
                let tree = self.source.tree()?;
                if !tree.any(&|n| matches!(n, ast::Node::Cond { .. } | ast::Node::Backref { .. })) {
                    return None;
                }
                prune::Pruned::new(tree).map(Box::new)
            })
            .as_deref()
    }

    #[inline]
    fn linear_engine(&self, haystack: &str) -> Option<&meta::Regex> {
        self.linear()?.engine_for(haystack, &self.source)
    }

    #[cfg(feature = "pcre2")]
    fn pcre(&self) -> Option<&pcre::Pcre> {
        self.pcre
            .get_or_init(|| pcre::Pcre::new(self.source.tree()?, self.group_count))
            .as_ref()
    }

    fn fancy(&self) -> Result<&fancy_regex::Regex, &String> {
        let built = self.fancy.get_or_init(|| Box::new(self.build_fancy()));
        built.as_ref().as_ref()
    }

    fn build_fancy(&self) -> Result<fancy_regex::Regex, String> {
        let tree = self
            .source
            .tree()
            .ok_or_else(|| "the pattern no longer parses".to_string())?;
        let text = lower::to_fancy(tree);
        fancy_regex::RegexBuilder::new(&text)
            .backtrack_limit(BACKTRACK_LIMIT)
            .build()
            .map_err(|e| format!("backtracking engine refused the pattern: {e}"))
    }

    /// The Python pattern this was compiled from.
    pub fn as_str(&self) -> &str {
        &self.source.pattern
    }

    /// The engine that runs this pattern.
    ///
    /// A linear pattern may still hand a rare haystack to the backtracking engine when
    /// only that one can answer exactly as Python (text with several newlines for a
    /// `$`, or characters on which Python's and Unicode's `\w` disagree for a `\b`).
    pub fn engine(&self) -> Engine {
        if self.linear().is_some() {
            Engine::Linear
        } else {
            Engine::Backtracking
        }
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

    /// Whether `re.search(pattern, haystack)` finds a match (false when the
    /// backtracking engine gave up; see [`Regex::try_is_match`]).
    pub fn is_match(&self, haystack: &str) -> bool {
        self.try_is_match(haystack).unwrap_or(false)
    }

    /// Whether `re.search(pattern, haystack)` finds a match, or an error when the
    /// backtracking engine gave up on a pathological haystack.
    pub fn try_is_match(&self, haystack: &str) -> Result<bool, MatchError> {
        if let Some(min) = self.plan().matches_lines_from {
            let bytes = haystack.as_bytes();
            // The line is all of the haystack but perhaps a final newline; `min` is 0
            // or 1, so a byte count tells as well as a character count.
            let line = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
            if line >= min && line + 1 >= bytes.len() {
                return Ok(true);
            }
        }
        if let Some(regex) = self.linear_engine(haystack) {
            return Ok(regex.is_match(haystack));
        }
        let fancy = self.fancy().map_err(|e| self.gave_up(e.clone()))?;
        fancy
            .is_match(haystack)
            .map_err(|e| self.gave_up(e.to_string()))
    }

    fn gave_up(&self, reason: String) -> MatchError {
        MatchError::GaveUp {
            pattern: self.source.pattern.clone(),
            reason,
        }
    }

    /// The span of `re.search`'s match, found by the linear engine without captures, when
    /// that engine answers exactly on `haystack`; `None` when only a capture engine can.
    /// Much cheaper than [`Regex::captures`]: a caller can tell from it that a haystack
    /// matches exactly as a previous one did.
    pub fn find_linear(&self, haystack: &str) -> Option<Option<(usize, usize)>> {
        let regex = self.linear_engine(haystack)?;
        Some(regex.find(haystack).map(|m| (m.start(), m.end())))
    }

    /// The start of `haystack` that decides every search of this pattern on it, for a
    /// pattern that can only match at the haystack start: any haystack for which
    /// [`DecidingPrefix::decides`] holds gets the same answers from every search (the
    /// same match, the same groups) as `haystack`. The prefix covers at least the first
    /// `at_least` bytes. It is written into `prefix`, whose buffer a caller taking one
    /// per line keeps. False (and `prefix` then decides nothing) when that cannot be
    /// told cheaply (a pattern that can match further in, a non-ASCII haystack, an
    /// automaton too big).
    ///
    /// Why this is exact: an anchored DFA that keeps every thread alive (no
    /// leftmost-first pruning) walks the haystack until no thread is left. Every path of
    /// every match, and every assertion on it (the automaton reads the byte after a
    /// position before it decides one there), lies in the bytes read up to there; a
    /// haystack with the same bytes there has the same paths, so the same winner, what
    /// comes after them. The automaton is the ASCII one, taken only where the linear
    /// engine is exact, so the prefix is ASCII (the classes mean there what they mean
    /// anywhere) and holds no newline (a `$` inside it means what it means in any
    /// longer haystack); a prefix that needed the haystack's end is the whole haystack.
    ///
    /// A `prefix` last filled by this pattern for a haystack that begins like this one
    /// spares the walk over the bytes the two share: the automaton is deterministic, so
    /// it is in the states it was in then.
    pub fn deciding_prefix(
        &self,
        haystack: &str,
        at_least: usize,
        prefix: &mut DecidingPrefix,
    ) -> bool {
        prefix.taken = false;
        let Some(linear) = self.linear() else {
            return false;
        };
        if !haystack.is_ascii() || !linear.exact_on(haystack) {
            return false;
        }
        let Some(PrefixDfa { id, dfa, .. }) = linear
            .prefix_dfa
            .get_or_init(|| build_prefix_dfa(&self.source))
            .as_ref()
        else {
            return false;
        };
        let bytes = haystack.as_bytes();
        let shared = if prefix.dfa == *id {
            let walked = &prefix.bytes[..prefix.states.len()];
            let parting = bytes.iter().zip(walked).position(|(a, b)| a != b);
            parting.unwrap_or(walked.len().min(bytes.len()))
        } else {
            0
        };
        // The states are rewritten from `shared` on: they stand for this haystack only
        // once the walk is over.
        prefix.dfa = 0;
        prefix.states.truncate(shared);
        let mut read = None;
        let mut sid = match prefix.states.last() {
            Some(&last) => {
                if dfa.is_dead_state(last) {
                    read = Some(shared);
                }
                last
            }
            None => match dfa.start_state(&start::Config::new().anchored(Anchored::Yes)) {
                Ok(start) => start,
                Err(_) => return false,
            },
        };
        if read.is_none() {
            for (i, &b) in bytes[shared..].iter().enumerate() {
                sid = dfa.next_state(sid, b);
                prefix.states.push(sid);
                if dfa.is_dead_state(sid) {
                    read = Some(shared + i + 1);
                    break;
                }
                if dfa.is_quit_state(sid) {
                    return false;
                }
            }
        }
        // Without a dead state the end of the haystack takes part: only the same
        // haystack is decided the same way.
        let (len, whole) = match read {
            Some(n) if n.max(at_least) < bytes.len() => (n.max(at_least), false),
            _ => (bytes.len(), true),
        };
        prefix.bytes.clear();
        prefix.bytes.extend_from_slice(&bytes[..len]);
        prefix.whole = whole;
        prefix.taken = true;
        prefix.dfa = *id;
        true
    }

    /// Whether `haystack` is the haystack `prefix` was last taken for (by
    /// [`Regex::deciding_prefix`] of this pattern, or by this) with some ASCII digits
    /// in the byte range `digits` replaced by digits the pattern cannot tell from them
    /// where they stand: every search of this pattern then gives on `haystack` what it
    /// gave there (the same match, the same groups). On true, `prefix` is taken for
    /// `haystack`, as [`Regex::deciding_prefix`] would take it; on false it is left as
    /// it was.
    ///
    /// Why this is exact: at each changed byte, the NFA states that read it (those
    /// alive there, every thread kept) are asked about the old digit and the new one;
    /// when each goes to the same state on both (or fails on both), the paths through
    /// that byte are the same paths on both haystacks. No assertion can tell one digit
    /// from another (all are ASCII word bytes, none is a line break), so the states
    /// alive after it are the same too, and so on to the next changed byte: the two
    /// haystacks have the same paths, each with the same groups, and the linear engine
    /// (exact there: see [`Regex::deciding_prefix`]), which picks among paths by
    /// their order alone, picks the same one. Bytes past where the automaton died are
    /// read by no path. The DFA's states after each byte stay what they were, so the
    /// prefix goes on from them.
    ///
    /// The states alive where a digit is read are worked out by walking the NFA from
    /// the haystack start, once per DFA state it is read from: a DFA state is the set
    /// of NFA states alive before the byte with what the assertions there need (its
    /// automaton is not minimised), and for a digit byte that set decides which are
    /// alive at the byte.
    pub fn decides_moved_digits(
        &self,
        haystack: &str,
        digits: (usize, usize),
        prefix: &mut DecidingPrefix,
    ) -> bool {
        let Some(PrefixDfa { id, nfa, .. }) = self
            .linear()
            .and_then(|l| l.prefix_dfa.get())
            .and_then(Option::as_ref)
        else {
            return false;
        };
        if !prefix.taken || prefix.dfa != *id {
            return false;
        }
        let (new, len) = (haystack.as_bytes(), prefix.bytes.len());
        if new.len() < len || (prefix.whole && new.len() != len) {
            return false;
        }
        let (from, to) = (digits.0.min(len), digits.1.min(len));
        let old = &prefix.bytes;
        if from > to || new[..from] != old[..from] || new[to..len] != old[to..len] {
            return false;
        }
        if prefix.classes_dfa != *id {
            prefix.digit_classes.clear();
            prefix.classes_dfa = *id;
        }
        for k in from..to {
            let (a, b) = (old[k], new[k]);
            if a == b {
                continue;
            }
            if !(a.is_ascii_digit() && b.is_ascii_digit()) {
                return false;
            }
            // The automaton died before this byte (the last state is the dead one).
            if k >= prefix.states.len() {
                continue;
            }
            let from_state = k.checked_sub(1).map(|i| prefix.states[i]);
            let known = prefix
                .digit_classes
                .iter()
                .find(|(s, _)| *s == from_state)
                .map(|(_, c)| *c);
            let classes = match known {
                Some(c) => c,
                None => {
                    let Some(alive) = alive_at(nfa, old, k) else {
                        return false;
                    };
                    let c = digit_classes(nfa, &alive);
                    // A bound on what a pattern with many contexts may keep.
                    if prefix.digit_classes.len() >= 64 {
                        prefix.digit_classes.clear();
                    }
                    prefix.digit_classes.push((from_state, c));
                    c
                }
            };
            if classes[usize::from(a - b'0')] != classes[usize::from(b - b'0')] {
                return false;
            }
        }
        prefix.bytes[from..to].copy_from_slice(&new[from..to]);
        true
    }

    /// Runs `re.search` and, on a match, records every group's span in `locations`.
    ///
    /// Returns false (and leaves `locations` cleared) when there is no match, or when
    /// the backtracking engine gave up on a pathological input.
    pub fn captures(&self, haystack: &str, locations: &mut Locations) -> bool {
        match self.try_captures(haystack, locations) {
            Ok(found) => found,
            Err(_) => {
                locations.clear(self.group_count + 1);
                false
            }
        }
    }

    /// Like [`Regex::captures`], but tells "no match" (`Ok(false)`) from "the
    /// backtracking engine gave up" (`Err`).
    pub fn try_captures(
        &self,
        haystack: &str,
        locations: &mut Locations,
    ) -> Result<bool, MatchError> {
        locations.clear(self.group_count + 1);
        // PCRE2 is compiled at the first haystack the pattern matches, not the first it
        // is tried on: most date templates and most of an idle jail's regexes never
        // match, and each compiled pattern (its emission, code and JIT) costs tens of KiB.
        #[cfg(feature = "pcre2")]
        if self.pcre.get().is_none()
            && let Some(regex) = self.linear_engine(haystack)
            && !regex.is_match(haystack)
        {
            return Ok(false);
        }
        #[cfg(feature = "pcre2")]
        if let Some(pcre) = self.pcre() {
            // On long haystacks a backtracker that tries every start position costs
            // far more than one DFA pass: let the DFA find where the leftmost match
            // starts (both follow the same leftmost-first rule), or that there is none,
            // and start PCRE2 there.
            let mut start = 0;
            if haystack.len() > LONG_HAYSTACK
                && let Some(regex) = self.linear_engine(haystack)
            {
                match regex.find(haystack) {
                    Some(m) => start = m.start(),
                    None => return Ok(false),
                }
            }
            if start == 0
                && let Some(pruned) = self.pruned()
            {
                match pruned.live(haystack) {
                    prune::Live::None => return Ok(false),
                    prune::Live::From(variant) => match variant.captures(haystack, 0, locations) {
                        pcre::Outcome::Match => return Ok(true),
                        pcre::Outcome::NoMatch => return Ok(false),
                        pcre::Outcome::Undecided => locations.clear(self.group_count + 1),
                    },
                    prune::Live::All => {}
                }
            }
            match pcre.captures(haystack, start, locations) {
                pcre::Outcome::Match => return Ok(true),
                pcre::Outcome::NoMatch => return Ok(false),
                pcre::Outcome::Undecided => locations.clear(self.group_count + 1),
            }
        }
        if let Some(regex) = self.linear_engine(haystack) {
            let mut regex = regex;
            if let Some(branches) = self.linear().and_then(|l| l.branches(&self.source))
                && haystack.is_ascii()
            {
                match branches.engine_for(haystack) {
                    Err(()) => return Ok(false),
                    Ok(Some(pruned)) => regex = pruned,
                    Ok(None) => {}
                }
            }
            locations.slots.clear();
            locations.slots.resize(regex.group_info().slot_len(), None);
            let input = Input::new(haystack);
            if regex.search_slots(&input, &mut locations.slots).is_none() {
                return Ok(false);
            }
            let Locations { spans, slots } = locations;
            for (i, span) in spans.iter_mut().enumerate() {
                let start = slots.get(2 * i).copied().flatten();
                let end = slots.get(2 * i + 1).copied().flatten();
                *span = start.zip(end).map(|(s, e)| (s.get(), e.get()));
            }
            return Ok(true);
        }
        let fancy = self.fancy().map_err(|e| self.gave_up(e.clone()))?;
        let caps = fancy
            .captures(haystack)
            .map_err(|e| self.gave_up(e.to_string()))?;
        let Some(caps) = caps else {
            return Ok(false);
        };
        for (i, span) in locations.spans.iter_mut().enumerate() {
            *span = caps.get(i).map(|m| (m.start(), m.end()));
        }
        Ok(true)
    }

    /// Literals of which at least one must occur in any haystack this pattern matches
    /// (compared ASCII case-insensitively when `ignore_case` says so).
    ///
    /// `None` when no such set is known; callers must then always run the pattern.
    pub fn required_literals(&self) -> Option<&RequiredLiterals> {
        self.literals
            .get_or_init(|| self.source.with_tree(literals::required))
            .as_ref()
    }
}

/// Runs `search` with the scratch kept in `spare` (made by `make` the first time),
/// held for the length of the search: one lock, no allocation. A search that finds it
/// held by another thread (or poisoned) makes scratch of its own.
#[cfg(feature = "pcre2")]
pub(crate) fn with_spare<T, R>(
    spare: &std::sync::Mutex<Option<T>>,
    make: impl FnOnce() -> T,
    search: impl FnOnce(&mut T) -> R,
) -> R {
    match spare.try_lock() {
        Ok(mut held) => search(held.get_or_insert_with(make)),
        Err(_) => search(&mut make()),
    }
}

/// Capture engines explore every alternative in priority order, so a pattern whose
/// expansion ends in several long alternatives (a conditional split into branches)
/// pays for the dead ones on every match. When the tree is a sequence ending in an
/// alternation, one multi-pattern pass finds which `prefix·branch` can match anywhere
/// in the haystack; a branch that cannot is part of no match, so dropping it changes
/// nothing, and captures run on the live branches only (automata built on demand per
/// combination). ASCII haystacks only.
struct Branches {
    any: meta::Regex,
    prefix: Vec<ast::Node>,
    branches: Vec<ast::Node>,
    variants: Vec<OnceLock<Option<meta::Regex>>>,
}

impl Branches {
    fn new(tree: &ast::Node) -> Option<Branches> {
        let ast::Node::Concat(items) = tree else {
            return None;
        };
        let (ast::Node::Alt(top), prefix) = items.split_last()? else {
            return None;
        };
        let branches: Vec<ast::Node> = top.iter().flat_map(flat_branches).collect();
        let n = branches.len();
        if !(2..=6).contains(&n) {
            return None;
        }
        let hirs = branches
            .iter()
            .map(|b| {
                let mut seq = prefix.to_vec();
                seq.push(b.clone());
                lower::to_hir(
                    &ast::Node::Concat(seq),
                    &mut lower::Caveats::default(),
                    true,
                )
            })
            .collect::<Option<Vec<_>>>()?;
        let any = meta::Builder::new()
            .configure(
                meta::Config::new()
                    .match_kind(regex_automata::MatchKind::All)
                    .nfa_size_limit(Some(64 << 20)),
            )
            .build_many_from_hir(&hirs)
            .ok()?;
        Some(Branches {
            any,
            prefix: prefix.to_vec(),
            branches,
            variants: (0..1usize << n).map(|_| OnceLock::new()).collect(),
        })
    }

    /// The automaton for the branches that can match `haystack`; `Err` when none can.
    fn engine_for(&self, haystack: &str) -> Result<Option<&meta::Regex>, ()> {
        let mut set = regex_automata::PatternSet::new(self.branches.len());
        self.any
            .which_overlapping_matches(&Input::new(haystack), &mut set);
        let mask = set.iter().fold(0usize, |m, p| m | 1 << p.as_usize());
        if mask == 0 {
            return Err(());
        }
        let Some(slot) = self.variants.get(mask) else {
            return Ok(None);
        };
        Ok(slot
            .get_or_init(|| {
                let live: Vec<ast::Node> = self
                    .branches
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, b)| b.clone())
                    .collect();
                let mut seq = self.prefix.clone();
                seq.push(ast::Node::Alt(live));
                build_meta(&lower::to_hir(
                    &ast::Node::Concat(seq),
                    &mut lower::Caveats::default(),
                    true,
                )?)
            })
            .as_ref())
    }
}

/// The alternatives of `node` with nested alternations opened up: `(?:a|b)|c` is
/// `a|b|c`, and `d(?:a|b)` is `da|db` when `d` can match in only one way (a choice-free
/// prefix tried before each alternative in turn keeps the order of the matches).
pub(crate) fn flat_branches(node: &ast::Node) -> Vec<ast::Node> {
    fn choice_free(n: &ast::Node) -> bool {
        match n {
            ast::Node::Empty
            | ast::Node::Char { .. }
            | ast::Node::Class(_)
            | ast::Node::Any { .. }
            | ast::Node::Assert(_) => true,
            ast::Node::Group { sub, .. } => choice_free(sub),
            ast::Node::Concat(items) => items.iter().all(choice_free),
            _ => false,
        }
    }
    match node {
        ast::Node::Alt(items) => items.iter().flat_map(flat_branches).collect(),
        ast::Node::Group { index: None, sub } => flat_branches(sub),
        ast::Node::Concat(items) => match items.split_last() {
            Some((last, head)) if head.iter().all(choice_free) => {
                let tails = flat_branches(last);
                if tails.len() < 2 {
                    return vec![node.clone()];
                }
                tails
                    .into_iter()
                    .map(|t| {
                        let mut seq = head.to_vec();
                        seq.push(t);
                        ast::Node::Concat(seq)
                    })
                    .collect()
            }
            _ => vec![node.clone()],
        },
        _ => vec![node.clone()],
    }
}

/// Patterns such as a prefregex `^(?:optional parts)*(?P<content>.+)$` match every
/// one-line haystack: the optional parts can all match nothing at the start, `.+` then
/// takes the line, and `$` holds at its end. Recognised on the tree as written: a
/// text-start assertion, items that can each match the empty string without any
/// condition, a greedy or lazy `.*`/`.+` (no DOTALL, perhaps inside groups), and `$`.
/// Returns the least number of characters the line needs. Only the "matches" answer
/// is taken from this; any other haystack goes to the engines (the optional parts
/// could, say, take a newline).
fn line_shortcut(tree: &ast::Node) -> Option<usize> {
    use ast::{Assertion, Node};
    fn flatten<'a>(node: &'a Node, out: &mut Vec<&'a Node>) {
        match node {
            Node::Concat(items) => items.iter().for_each(|i| flatten(i, out)),
            Node::Group { index: None, sub } if matches!(**sub, Node::Concat(_)) => {
                flatten(sub, out);
            }
            _ => out.push(node),
        }
    }
    fn empty_ok(node: &Node) -> bool {
        match node {
            Node::Empty => true,
            // Possessive and atomic parts do not give back what they took.
            Node::Repeat {
                greed: ast::Greed::Possessive,
                ..
            } => false,
            Node::Repeat { min: 0, .. } => true,
            Node::Repeat { sub, .. } | Node::Group { sub, .. } => empty_ok(sub),
            Node::Concat(items) => items.iter().all(empty_ok),
            Node::Alt(items) => items.iter().any(empty_ok),
            _ => false,
        }
    }
    fn rest_of_line(node: &Node) -> Option<usize> {
        match node {
            Node::Group { sub, .. } => rest_of_line(sub),
            Node::Repeat {
                min,
                max: None,
                greed: ast::Greed::Greedy | ast::Greed::Lazy,
                sub,
            } if matches!(**sub, Node::Any { dotall: false }) => usize::try_from(*min).ok(),
            _ => None,
        }
    }
    let mut items = Vec::new();
    flatten(tree, &mut items);
    let (first, rest) = items.split_first()?;
    let (last, rest) = rest.split_last()?;
    let (tail, middle) = rest.split_last()?;
    let anchored = matches!(first, Node::Assert(Assertion::TextStart));
    let ends = matches!(last, Node::Assert(Assertion::EndOrFinalNewline));
    if !anchored || !ends || !middle.iter().all(|n| empty_ok(n)) {
        return None;
    }
    rest_of_line(tail).filter(|&m| m <= 1)
}

fn build_linear(tree: &ast::Node) -> Option<Linear> {
    let mut caveats = lower::Caveats::default();
    // The Unicode lowering decides feasibility and the caveats; the automata come later.
    if !lower::lowers(tree, &mut caveats) {
        return None;
    }
    Some(Linear {
        prefix_dfa: OnceLock::new(),
        branches: OnceLock::new(),
        ascii: OnceLock::new(),
        unicode: OnceLock::new(),
        caveats,
    })
}

fn build_meta(hir: &regex_syntax::hir::Hir) -> Option<meta::Regex> {
    meta::Builder::new()
        .configure(
            meta::Config::new()
                .nfa_size_limit(Some(64 << 20))
                .hybrid_cache_capacity(8 << 20),
        )
        .build_from_hir(hir)
        .ok()
}

/// The anchored DFA of [`Regex::deciding_prefix`], with an id no other one has (a
/// [`DecidingPrefix`] keeps the states it went through, which only it can read).
struct PrefixDfa {
    id: u64,
    dfa: dense::DFA<Vec<u32>>,
    /// The automaton the DFA was made from, for [`Regex::decides_moved_digits`], which
    /// needs the states each byte is read by.
    nfa: thompson::NFA,
}

/// The anchored DFA of [`Regex::deciding_prefix`]: every thread kept (`All`), small.
fn build_prefix_dfa(source: &Source) -> Option<PrefixDfa> {
    let hir = lower::to_hir(source.rewritten()?, &mut lower::Caveats::default(), true)?;
    if !hir
        .properties()
        .look_set_prefix()
        .contains(regex_syntax::hir::Look::Start)
    {
        return None;
    }
    let nfa = thompson::Compiler::new()
        .configure(thompson::Config::new().nfa_size_limit(Some(1 << 20)))
        .build_from_hir(&hir)
        .ok()?;
    let dfa = dense::Builder::new()
        .configure(
            dense::Config::new()
                .match_kind(regex_automata::MatchKind::All)
                .start_kind(StartKind::Anchored)
                // Unminimised, each state is the set of NFA states it was made from:
                // `decides_moved_digits` keys what it learns of a state by that set.
                .minimize(false)
                .dfa_size_limit(Some(PREFIX_DFA_LIMIT))
                .determinize_size_limit(Some(4 * PREFIX_DFA_LIMIT)),
        )
        .build_from_nfa(&nfa)
        .ok()?;
    // 0 is no automaton's: a prefix that holds it has no states to go on from.
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    Some(PrefixDfa {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        dfa,
        nfa,
    })
}

/// The byte-reading states of `nfa` alive at `at` in an anchored walk over
/// `haystack` (every thread kept), assertions judged on `haystack`. `None` for an
/// assertion that needs Unicode data (a DFA is not built for those anyway).
fn alive_at(nfa: &thompson::NFA, haystack: &[u8], at: usize) -> Option<Vec<StateID>> {
    let mut seen = vec![false; nfa.states().len()];
    let mut stack = Vec::new();
    let mut alive = Vec::new();
    let start = nfa.start_anchored();
    closure(nfa, start, haystack, 0, &mut seen, &mut stack, &mut alive)?;
    for (i, &byte) in haystack.iter().enumerate().take(at) {
        seen.fill(false);
        let mut next = Vec::new();
        for &sid in &alive {
            if let Some(to) = step(nfa.state(sid), byte) {
                closure(nfa, to, haystack, i + 1, &mut seen, &mut stack, &mut next)?;
            }
        }
        alive = next;
    }
    Some(alive)
}

/// Adds the byte-reading states reached from `from` without reading (assertions
/// judged at `at`) to `out`.
fn closure(
    nfa: &thompson::NFA,
    from: StateID,
    haystack: &[u8],
    at: usize,
    seen: &mut [bool],
    stack: &mut Vec<StateID>,
    out: &mut Vec<StateID>,
) -> Option<()> {
    use regex_automata::util::look::Look;
    use thompson::State;
    stack.push(from);
    while let Some(sid) = stack.pop() {
        let mark = seen.get_mut(sid.as_usize())?;
        if std::mem::replace(mark, true) {
            continue;
        }
        match nfa.state(sid) {
            State::ByteRange { .. } | State::Sparse(_) | State::Dense(_) => out.push(sid),
            State::Look { look, next } => {
                let unicode = matches!(
                    look,
                    Look::WordUnicode
                        | Look::WordUnicodeNegate
                        | Look::WordStartUnicode
                        | Look::WordEndUnicode
                        | Look::WordStartHalfUnicode
                        | Look::WordEndHalfUnicode
                );
                if unicode {
                    return None;
                }
                if nfa.look_matcher().matches(*look, haystack, at) {
                    stack.push(*next);
                }
            }
            State::Union { alternates } => stack.extend(alternates.iter().copied()),
            State::BinaryUnion { alt1, alt2 } => stack.extend([*alt1, *alt2]),
            State::Capture { next, .. } => stack.push(*next),
            State::Fail | State::Match { .. } => {}
        }
    }
    Some(())
}

/// Where a byte-reading state goes on `byte`.
fn step(state: &thompson::State, byte: u8) -> Option<StateID> {
    match state {
        thompson::State::ByteRange { trans } => trans.matches_byte(byte).then_some(trans.next),
        thompson::State::Sparse(t) => t.matches_byte(byte),
        thompson::State::Dense(t) => t.matches_byte(byte),
        _ => None,
    }
}

/// For each digit, the least digit that every state of `alive` treats as it.
fn digit_classes(nfa: &thompson::NFA, alive: &[StateID]) -> [u8; 10] {
    let on = |sid: StateID, d: u8| step(nfa.state(sid), b'0' + d);
    let mut classes = [0; 10];
    for d in 0..10u8 {
        let same = (0..d).find(|&e| alive.iter().all(|&s| on(s, d) == on(s, e)));
        classes[usize::from(d)] = same.unwrap_or(d);
    }
    classes
}

/// Bytes a [`Regex::deciding_prefix`] automaton may take (it is built once per pattern,
/// for date templates, which are shared by every jail).
const PREFIX_DFA_LIMIT: usize = 64 << 10;

/// A haystack start that decides a pattern's searches (see [`Regex::deciding_prefix`]).
/// The default one decides nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecidingPrefix {
    bytes: Vec<u8>,
    /// The whole haystack: its end took part in the decision.
    whole: bool,
    /// Whether [`Regex::deciding_prefix`] filled it: an empty prefix would otherwise
    /// decide every haystack.
    taken: bool,
    /// The automaton's state after each byte it read of `bytes` (the dead one last, if
    /// it got there), and which automaton's (0: none).
    states: Vec<StateID>,
    dfa: u64,
    /// Which digits the pattern tells apart where a digit is read from a DFA state
    /// (none: at the haystack start), for [`Regex::decides_moved_digits`]; and which
    /// automaton's states they are for.
    digit_classes: Vec<(Option<StateID>, [u8; 10])>,
    classes_dfa: u64,
}

impl DecidingPrefix {
    /// Whether the pattern this prefix was taken for (another one it tells nothing
    /// about) gives on `haystack` what it gave on the haystack of the prefix.
    pub fn decides(&self, haystack: &str) -> bool {
        if !self.taken {
            return false;
        }
        if self.whole {
            haystack.as_bytes() == self.bytes.as_slice()
        } else {
            haystack.as_bytes().starts_with(&self.bytes)
        }
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
    slots: Vec<Option<NonMaxUsize>>,
}

impl Locations {
    /// Empty locations, reusable across calls to [`Regex::captures`].
    pub fn new() -> Locations {
        Locations::default()
    }

    fn clear(&mut self, len: usize) {
        self.spans.clear();
        self.spans.resize(len, None);
    }

    /// Span of group `index`, if the group took part in the match.
    pub fn get(&self, index: usize) -> Option<(usize, usize)> {
        self.spans.get(index).copied().flatten()
    }

    /// Text of group `index` in `haystack`, if the group took part in the match.
    pub fn text<'h>(&self, haystack: &'h str, index: usize) -> Option<&'h str> {
        self.get(index).and_then(|(s, e)| haystack.get(s..e))
    }

    /// Number of entries (groups plus one for the whole match).
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no entries (nothing was searched yet).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(regex: &Regex, locs: &Locations) -> Vec<Option<(usize, usize)>> {
        (0..=regex.group_count()).map(|g| locs.get(g)).collect()
    }

    /// Every string over `alphabet` up to `max` characters.
    fn strings(alphabet: &[&str], max: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut layer = vec![String::new()];
        for _ in 0..max {
            let next: Vec<String> = layer
                .iter()
                .flat_map(|s| alphabet.iter().map(move |a| format!("{s}{a}")))
                .collect();
            out.extend(next.iter().cloned());
            layer = next;
        }
        out
    }

    /// The rewritten linear engine and the backtracking engine running the pattern as
    /// written must agree on every haystack.
    /// `captures` (whichever engine answers) gives fancy-regex's groups on `h`.
    #[cfg(feature = "pcre2")]
    fn assert_agrees_with_fancy(regex: &Regex, h: &str, locs: &mut Locations) {
        let found = regex.captures(h, locs);
        let ours = found.then(|| spans(regex, locs));
        let fancy = regex.fancy().expect("fancy compiles");
        let theirs = fancy.captures(h).expect("no limit").map(|c| {
            (0..=regex.group_count())
                .map(|g| c.get(g).map(|m| (m.start(), m.end())))
                .collect::<Vec<_>>()
        });
        assert_eq!(ours, theirs, "{} on {h:?}", regex.source.pattern);
    }

    fn linear_agrees(pattern: &str, haystacks: &[String]) {
        let regex = Regex::new(pattern).expect("compiles");
        assert_eq!(
            regex.engine(),
            Engine::Linear,
            "{pattern} stays backtracking"
        );
        let fancy = regex.fancy().expect("fancy compiles");
        let mut locs = Locations::new();
        for h in haystacks {
            let found = regex.captures(h, &mut locs);
            let ours = found.then(|| spans(&regex, &locs));
            let theirs = fancy.captures(h).expect("no limit").map(|c| {
                (0..=regex.group_count())
                    .map(|g| c.get(g).map(|m| (m.start(), m.end())))
                    .collect::<Vec<_>>()
            });
            assert_eq!(ours, theirs, "{pattern} on {h:?}");
        }
    }

    #[test]
    fn lookbehind_implied_by_preceding_characters_is_dropped() {
        let hs = strings(&["a", ":", "1", " "], 6);
        linear_agrees(r"(?:[0-9a]{1,2}::?|::){1,3}(?:[0-9a]{1,2}|(?<=:):)", &hs);
        linear_agrees(r"x(?<!:)y|:(?<=:)z", &strings(&["x", "y", ":", "z"], 4));
        assert_eq!(
            Regex::new(r"a?(?<=:)b").expect("ok").engine(),
            Engine::Backtracking
        );
    }

    #[test]
    fn boundary_lookaheads_become_word_assertions() {
        let hs = strings(&["a", "1", " ", "-", "\n", "é"], 5);
        linear_agrees(r"(?=^|\b|\W)(a1|1|-a)(?=\b|\W|$)", &hs);
        linear_agrees(r"(?=\b|\W|$)", &hs);
        // Nullable after the leading form: not rewritten.
        assert_eq!(
            Regex::new(r"(?=^|\b|\W)a?").expect("ok").engine(),
            Engine::Backtracking
        );
    }

    #[test]
    fn conditionals_expand_with_priority_kept() {
        let hs = strings(&["a", "b", "c", ":", " "], 5);
        linear_agrees(
            r"^(?P<x>a)?(?P<u>(?P<y>b+)|(?(x)c*?|[^:]+))(?(y): |c*$)",
            &hs,
        );
        linear_agrees(r"(a)??b(?(1)c|a)", &hs);
        linear_agrees(r"(?:(a)|b)(?(1)b|a)", &hs);
    }

    /// sshd's failed-login shape: a conditional whose expansion leaves lookarounds, so
    /// PCRE2 answers, from the first branch the relaxed automata cannot rule out.
    #[cfg(feature = "pcre2")]
    #[test]
    fn pruned_branches_agree_with_the_full_pattern() {
        let pattern = r"^F (?P<i>iu )?(?P<u>(?P<c>\S+)|(?(i)(?:(?! f ).)*?|[^:]+)) f (?P<h>\d+)(?: p \d+)?(?(c): |(?:(?:(?! f ).)*)$)";
        let regex = Regex::new(pattern).expect("compiles");
        assert!(regex.pruned().is_some(), "no branches to prune");
        let mut locs = Locations::new();
        let mut pruned = 0;
        for tail in strings(&["iu ", "a", " f ", "1", " p ", ": ", ":"], 5) {
            let h = format!("F {tail}");
            if matches!(
                regex.pruned().map(|p| p.live(&h)),
                Some(prune::Live::From(_))
            ) {
                pruned += 1;
            }
            assert_agrees_with_fancy(&regex, &h, &mut locs);
        }
        assert!(pruned > 100, "only {pruned} haystacks took a variant");
    }

    /// A prefregex's `(?P<content>.+)$` is cut from what PCRE2 runs on one-line
    /// haystacks and put back as the rest of the line.
    #[cfg(feature = "pcre2")]
    #[test]
    fn line_tail_agrees_with_the_full_pattern() {
        for pattern in [
            r"^(?P<p>(?:\S+ )?(?:a:\s+)?)(?:(?:b|a): )?(?P<c>.+)$",
            r"(?P<p>a|b )(?P<c>.+)$",
        ] {
            let regex = Regex::new(pattern).expect("compiles");
            assert!(
                regex.pcre().is_some_and(|p| p.cuts_line_tail()),
                "{pattern}"
            );
            let mut locs = Locations::new();
            for h in strings(&["a", "b", " ", ":", "\n", "é"], 6) {
                assert_agrees_with_fancy(&regex, &h, &mut locs);
            }
        }
        // Not a tail that can be cut: a DOTALL dot, a lazy loop, a group that is not last.
        for pattern in [r"(?s)^a(.+)$", r"^a(.+?)$", r"^a(.+)(b)?$"] {
            let regex = Regex::new(pattern).expect("compiles");
            assert!(
                !regex.pcre().is_some_and(|p| p.cuts_line_tail()),
                "{pattern}"
            );
        }
    }

    /// Threads sharing a pattern each get match data of their own when another holds
    /// the pattern's spare: the same groups as a search alone.
    #[test]
    fn concurrent_searches_agree() {
        let regex = Regex::new(r"^(?P<a>\w+) (?P<b>\d+)(?: (?P<c>x))?$").expect("compiles");
        let hs: Vec<String> = (0..2000)
            .map(|i| format!("w{i} {i}{}", if i % 3 == 0 { " x" } else { "" }))
            .collect();
        let alone: Vec<_> = hs
            .iter()
            .map(|h| {
                let mut locs = Locations::new();
                regex.captures(h, &mut locs).then(|| spans(&regex, &locs))
            })
            .collect();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    let mut locs = Locations::new();
                    for _ in 0..20 {
                        for (h, want) in hs.iter().zip(&alone) {
                            let got = regex.captures(h, &mut locs).then(|| spans(&regex, &locs));
                            assert_eq!(&got, want, "{h}");
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn backreferences_to_finite_groups_expand() {
        let hs = strings(&["1", "-", "/", ".", "\""], 5);
        linear_agrees(r"1(?P<s>[-/.])1(?P=s)1", &hs);
        linear_agrees(r#"(?P<q>"?)1(?P=q)"#, &hs);
        assert_eq!(
            Regex::new(r"(\d+)-\1").expect("ok").engine(),
            Engine::Backtracking
        );
    }

    #[test]
    fn tempered_loops_become_regular() {
        let hs = strings(&[" ", "f", "r", "o", "m", "x"], 7);
        linear_agrees(r"^x(?:(?! from ).)*$", &hs);
        linear_agrees(r"^(.)((?:(?! fr ).)*?) fr (.*)$", &hs);
        linear_agrees(r"^((?:(?!oo).)*)oo", &strings(&["o", "x"], 7));
        linear_agrees(r"((?:(?!aab).)*?)aab", &strings(&["a", "b"], 8));
    }

    #[test]
    fn python_dollar_and_newlines() {
        let re = Regex::new("a$").expect("ok");
        assert!(re.is_match("a\n") && re.is_match("a") && !re.is_match("a\n\n"));
        assert!(!re.is_match("a\nb\n"));
        let re = Regex::new(r"a\Z").expect("ok");
        assert!(!re.is_match("a\n"));
        let ml = Regex::with_flags(
            "^b$",
            Flags {
                multiline: true,
                ignore_case: false,
            },
        )
        .expect("ok");
        assert!(ml.is_match("a\nb\nc"));
    }

    #[test]
    fn captures_keep_python_anchors() {
        // Spans as Python reports them; the capture engines differ from Python here
        // unless the emission spells Python's meaning out.
        let ml = Flags {
            multiline: true,
            ignore_case: false,
        };
        let mut locs = Locations::new();
        let re = Regex::with_flags(r"^\Z", ml).expect("ok");
        assert!(re.captures("a\n", &mut locs));
        assert_eq!(locs.get(0), Some((2, 2)));
        let re = Regex::new(r"\B").expect("ok");
        assert!(!re.captures("", &mut locs));
        let re = Regex::new(r"(a)$").expect("ok");
        assert!(re.captures("a\n", &mut locs));
        assert_eq!(locs.get(1), Some((0, 1)));
        let re = Regex::with_flags(r"(b)$\n(c)", ml).expect("ok");
        assert!(re.captures("b\nc", &mut locs));
        assert_eq!(locs.get(2), Some((2, 3)));
    }

    #[test]
    fn required_literals_are_sound() {
        let re = Regex::new(r"^Failed (?:password|publickey) for \S+ from").expect("ok");
        let lits = re.required_literals().expect("some");
        assert!(lits.literals.iter().all(|l| !l.is_empty()));
        assert!(!lits.ignore_case);
        let re = Regex::new(r"(?i)kernel").expect("ok");
        // `k` also matches KELVIN SIGN: it cannot be part of an ASCII-folded literal.
        let lits = re.required_literals().expect("some");
        assert!(
            lits.literals
                .iter()
                .all(|l| !l.to_lowercase().contains('k'))
        );
        assert!(lits.ignore_case);
        assert!(
            Regex::new(r"\S+")
                .expect("ok")
                .required_literals()
                .is_none()
        );
        let re = Regex::new(r"foo|bar\d").expect("ok");
        let mut lits = re.required_literals().expect("some").literals.clone();
        lits.sort();
        assert_eq!(lits, ["bar", "foo"]);
    }

    #[test]
    fn prefilter_reports_possible_patterns() {
        let a = Regex::new(r"^Failed \S+ for").expect("ok");
        let b = Regex::new(r"(?i)invalid user").expect("ok");
        let c = Regex::new(r"\d+").expect("ok");
        let pf = Prefilter::new(&[&a, &b, &c]);
        let mut cands = Candidates::new();
        pf.candidates("INVALID USER x", &mut cands);
        assert_eq!(cands.iter().collect::<Vec<_>>(), [1, 2]);
        pf.candidates("Failed password for root", &mut cands);
        assert_eq!(cands.iter().collect::<Vec<_>>(), [0, 2]);
    }

    /// Literals inside, overlapping and ending with other literals are all found: the
    /// walk must report every pattern of a match state, not only the longest.
    #[test]
    fn prefilter_finds_overlapping_and_nested_literals() {
        let patterns = [
            "Connection closed by",
            "closed",
            "by user",
            "user root",
            "root",
        ];
        let regexes: Vec<Regex> = patterns
            .iter()
            .map(|p| Regex::new(p).expect("ok"))
            .collect();
        let refs: Vec<&Regex> = regexes.iter().collect();
        let pf = Prefilter::new(&refs);
        let mut cands = Candidates::new();
        pf.candidates("Connection closed by user root", &mut cands);
        assert_eq!(cands.iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        pf.candidates("closed by use", &mut cands);
        assert_eq!(cands.iter().collect::<Vec<_>>(), [1]);
        pf.candidates("", &mut cands);
        assert!(cands.is_empty());
    }

    /// The packed search reports one literal per hit; the literals it skips must still
    /// be found, whatever their overlaps (checked against plain substring tests).
    #[test]
    fn prefilter_agrees_with_substring_search() {
        let words = ["ab", "b", "aba", "ba", "bab", "abab", "a b", " ab", "bb a"];
        let regexes: Vec<Regex> = words.iter().map(|w| Regex::new(w).expect("ok")).collect();
        let refs: Vec<&Regex> = regexes.iter().collect();
        let pf = Prefilter::new(&refs);
        let mut cands = Candidates::new();
        // Short haystacks take the packed searcher's fallback, long ones its SIMD path.
        let pad = "x".repeat(40);
        for short in strings(&["a", "b", " "], 6) {
            for h in [short.clone(), format!("{pad}{short}{pad}")] {
                pf.candidates(&h, &mut cands);
                let expected: Vec<usize> =
                    (0..words.len()).filter(|&i| h.contains(words[i])).collect();
                assert_eq!(cands.iter().collect::<Vec<_>>(), expected, "{h:?}");
            }
        }
    }

    /// A pattern is left out by the start check only where it cannot match: over every
    /// short haystack, each matching pattern is among the candidates of the whole
    /// haystack, and the line holding it is kept by `any`. Some patterns are left out
    /// somewhere, or the check would be untested.
    #[test]
    fn start_checks_keep_every_pattern_that_matches() {
        let sources = [
            r"^ab",
            r"^(?:ab|ba)c",
            r"(?i)^ab",
            r"\Ab+a",
            r"^(?:a|b)?ba",
            r"^(?=a)ab",
            r"^(?P<x>a)(?(x)b|a)",
            r"(?m)^ab",
            r"b^a",
            r"^a+b",
            r"^[ab]a b",
            r"^ba.*a",
            r"^a(?:b|.)b",
            r"ab$",
        ];
        let regexes: Vec<Regex> = sources.iter().map(|p| Regex::new(p).expect("ok")).collect();
        let refs: Vec<&Regex> = regexes.iter().collect();
        let pf = Prefilter::new(&refs);
        let mut cands = Candidates::new();
        let mut left_out = 0;
        for h in strings(&["a", "b", "A", " ", "\n", "c"], 5) {
            pf.candidates_whole(&h, &mut cands);
            for (i, re) in regexes.iter().enumerate() {
                if re.is_match(&h) {
                    assert!(cands.contains(i), "{} on {h:?}", sources[i]);
                    assert!(pf.any(&h), "{} on {h:?}", sources[i]);
                    assert!(pf.any(&format!("xy{h}z")), "{} in {h:?}", sources[i]);
                } else if !cands.contains(i) {
                    left_out += 1;
                }
            }
        }
        assert!(left_out > 1000, "{left_out}");
    }

    /// A deciding prefix is taken for what it claims: every haystack it decides gets
    /// the same groups as the one it was taken from.
    #[test]
    fn deciding_prefixes_decide() {
        let hs = strings(&["a", "b", " ", ":", "\n"], 5);
        for pattern in [
            r"^(?:\W{0,2})?(a+)(?::(b))?(?=\b|\W|$)",
            r"^(a|ab)(b*)$",
            r"^a\b",
        ] {
            let regex = Regex::new(pattern).expect("ok");
            let mut locs = Locations::new();
            let mut decided = 0;
            let mut prefix = DecidingPrefix::default();
            for a in &hs {
                // One prefix goes on from the states of the haystack before; it must
                // come out as one taken afresh.
                let mut fresh = DecidingPrefix::default();
                let taken = regex.deciding_prefix(a, 0, &mut prefix);
                assert_eq!(taken, regex.deciding_prefix(a, 0, &mut fresh), "{a:?}");
                if !taken {
                    continue;
                }
                assert_eq!(prefix, fresh, "{pattern}: {a:?}");
                let found = regex.captures(a, &mut locs);
                let theirs = found.then(|| spans(&regex, &locs));
                for b in hs.iter().filter(|b| prefix.decides(b)) {
                    let found = regex.captures(b, &mut locs);
                    let ours = found.then(|| spans(&regex, &locs));
                    assert_eq!(ours, theirs, "{pattern}: {a:?} decides {b:?}");
                    decided += 1;
                }
            }
            assert!(decided > hs.len(), "{pattern}: prefixes decide too little");
        }
        assert!(!Regex::new("a").expect("ok").deciding_prefix(
            "a",
            0,
            &mut DecidingPrefix::default()
        ));
    }

    /// Digits moved under a deciding prefix are moved only where no search can tell:
    /// every haystack it takes gets the same groups, and the prefix comes out as one
    /// taken for it afresh. Patterns whose branches tell some digits apart (and with
    /// groups only on some of them) must refuse some moves and take others.
    #[test]
    fn moved_digits_keep_every_group() {
        let hs = strings(&["0", "1", "2", "5", "6", "9", ":"], 3);
        for pattern in [
            r"^(?:\W{0,2})?(?P<H>[0-1]?\d|2[0-3]):?(?P<S>[0-5]\d|6[0-1])?(?=\b|\W|$)",
            r"^(?:(1)\d|\d(\d))",
            r"^(?:(1)5|15|(1)6|\d+)",
            r"^(\d)(\d)?\b",
            r"^(?:1(\d)|\d\d)(:)?",
            r"^\d*?(\d)$",
        ] {
            let regex = Regex::new(pattern).expect("ok");
            let mut locs = Locations::new();
            let (mut moved, mut refused) = (0, 0);
            for a in &hs {
                let mut prefix = DecidingPrefix::default();
                if !regex.deciding_prefix(a, 0, &mut prefix) {
                    continue;
                }
                let found = regex.captures(a, &mut locs);
                let theirs = found.then(|| spans(&regex, &locs));
                let taken = |d: &DecidingPrefix| (d.bytes.clone(), d.states.clone(), d.whole);
                for b in hs.iter().filter(|b| b.len() == a.len()) {
                    let mut p = prefix.clone();
                    if !regex.decides_moved_digits(b, (0, b.len()), &mut p) {
                        assert_eq!(taken(&p), taken(&prefix), "{pattern}: {a:?} to {b:?}");
                        refused += 1;
                        continue;
                    }
                    let found = regex.captures(b, &mut locs);
                    let ours = found.then(|| spans(&regex, &locs));
                    assert_eq!(ours, theirs, "{pattern}: {a:?} moved to {b:?}");
                    let mut fresh = DecidingPrefix::default();
                    assert!(regex.deciding_prefix(b, 0, &mut fresh));
                    assert_eq!(taken(&p), taken(&fresh), "{pattern}: {a:?} moved to {b:?}");
                    moved += usize::from(a != b);
                }
            }
            assert!(
                moved > 100 && refused > 100,
                "{pattern}: {moved} moved, {refused} refused"
            );
        }
    }

    /// The one-line shortcut answers only where the backtracking engine agrees.
    #[test]
    fn one_line_shortcut_agrees() {
        let hs = strings(&["x", " ", "e", ":", "\n"], 5);
        for (pattern, shortcut) in [
            (r"^(?P<a>\s*(?:x\s+)?)(?:(?:e|x): )?(?P<c>.+)$", Some(1)),
            (r"^(?:x)?(?:.*?)$", Some(0)),
            (r"^(?>\s*).+$", None),
            (r"^x?.+\Z", None),
            (r"(?:x)?.+$", None),
        ] {
            let regex = Regex::new(pattern).expect("ok");
            assert_eq!(regex.plan().matches_lines_from, shortcut, "{pattern}");
            let fancy = regex.fancy().expect("fancy compiles");
            for h in &hs {
                let expected = fancy.is_match(h).expect("no limit");
                assert_eq!(regex.is_match(h), expected, "{pattern} on {h:?}");
            }
        }
    }

    #[test]
    fn groups_are_numbered_as_python() {
        let re = Regex::new(r"(a)(?:b)(?P<n>c)(?P<m>(d))").expect("ok");
        assert_eq!(re.group_count(), 4);
        assert_eq!(re.group_index("n"), Some(2));
        assert_eq!(re.group_names().collect::<Vec<_>>(), [(2, "n"), (3, "m")]);
        let mut locs = Locations::new();
        assert!(re.captures("xabcd", &mut locs));
        assert_eq!(locs.get(4), Some((4, 5)));
        assert_eq!(locs.text("xabcd", 3), Some("d"));
    }

    /// PCRE2 gets non-ASCII characters as they are, in classes and out of them.
    #[test]
    fn captures_over_unicode_classes() {
        let re = Regex::new(r"(\w+)-([^a\U0010ffff]+)(é|\u2028)([\S]*)\b").expect("ok");
        let mut locs = Locations::new();
        let h = "§ naïve_ü-b\u{10fffe}ñ\u{2028}x☃";
        assert!(re.captures(h, &mut locs));
        let texts: Vec<Option<&str>> = (0..5).map(|g| locs.text(h, g)).collect();
        assert_eq!(
            texts,
            [
                Some("naïve_ü-b\u{10fffe}ñ\u{2028}x"),
                Some("naïve_ü"),
                Some("b\u{10fffe}ñ"),
                Some("\u{2028}"),
                Some("x"),
            ]
        );
        assert!(!re.captures("naïve-\u{10ffff}é", &mut locs));
    }

    /// Whether the linear engine runs a pattern, and with which caveats, is decided
    /// without lowering it; the answer must be the lowering's.
    #[test]
    fn lowering_is_foreseen() {
        let patterns = [
            r"^a$",
            r"(?m)^a$",
            r"\Aa\Z",
            r"\ba\B",
            r"(?a)\ba\B",
            r"(?=^|\b|\W)\d+(?=\b|\W|$)",
            r"(?a)(?=^|\b|\W)\d+(?=\b|\W|$)",
            r"(?P<g>a)(?P=g)",
            r"(a)\1",
            r"(?>a)",
            r"a++",
            r"(?<=a)b",
            r"(?<=:):",
            r"(?:(?! from ).)*$",
            r"(?P<u>\S+)|x (?(u)a|b)",
            r"[\w.]*\w{2,}?",
            r"",
        ];
        for pattern in patterns {
            for ignore_case in [false, true] {
                let flags = Flags {
                    ignore_case,
                    multiline: false,
                };
                let tree = parse::parse(pattern, parse_flags(flags))
                    .expect("parses")
                    .root;
                let tree = rewrite::rewrite(&tree);
                let mut foreseen = lower::Caveats::default();
                let mut lowered = lower::Caveats::default();
                let lowers = lower::lowers(&tree, &mut foreseen);
                let hir = lower::to_hir(&tree, &mut lowered, false);
                assert_eq!(lowers, hir.is_some(), "{pattern}");
                if lowers {
                    assert_eq!(foreseen, lowered, "{pattern}");
                }
            }
        }
    }

    /// The kept trees stand for the pattern with its flags (a tree kept from other
    /// flags, or from before a release, would build wrong engines), are kept only by
    /// engine builds, and go with the engines.
    #[test]
    fn kept_trees_are_the_patterns_own() {
        let pattern = r"^(?P<a>x)?(?(a)y|z)\w+ from (?:(?! from ).)*$";
        let flags = Flags {
            ignore_case: true,
            multiline: false,
        };
        let mut regex = Regex::with_flags(pattern, flags).expect("compiles");
        assert!(regex.required_literals().is_some());
        assert!(regex.source.tree.get().is_none(), "literals keep no tree");
        let mut locs = Locations::new();
        for round in 0..2 {
            assert!(regex.captures("XYab from here", &mut locs), "round {round}");
            assert!(
                !regex.captures("xzab from here", &mut locs),
                "round {round}"
            );
            let fresh = parse::parse(pattern, parse_flags(flags))
                .expect("parses")
                .root;
            let plain = parse::parse(pattern, parse_flags(Flags::default()))
                .expect("parses")
                .root;
            assert_ne!(fresh, plain);
            assert_eq!(regex.source.tree(), Some(&fresh));
            assert_eq!(regex.source.rewritten(), Some(&rewrite::rewrite(&fresh)));
            regex.release_engines();
            assert!(regex.source.tree.get().is_none());
            assert!(regex.source.rewritten.get().is_none());
        }
    }

    #[test]
    fn match_errors_are_reported() {
        // Exponential backtracking on the fancy engine ends in an error, not a hang.
        let re = Regex::new(r"^(?=x)?(a|aa)+(?!y)\1$").expect("ok");
        assert_eq!(re.engine(), Engine::Backtracking);
        let hay = format!("{}b", "a".repeat(64));
        let mut locs = Locations::new();
        assert!(re.try_captures(&hay, &mut locs).is_err());
        assert!(!re.captures(&hay, &mut locs));
    }
}
