//! Required literals: strings of which every match must contain one, extracted from
//! the syntax tree, and a multi-pattern prefilter built from them.
//!
//! Soundness is what matters here: a literal set may only be reported when no match
//! can avoid all of its members. Case-insensitive characters are kept only when their
//! Python equivalence class is an ASCII letter pair (so that an ASCII case-insensitive
//! comparison finds every variant); `k`, `s`, `i` and their like, which Python also
//! equates with non-ASCII characters, end a literal instead.

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::{self, DFA};
use aho_corasick::{Anchored, MatchKind, Span, packed};

use crate::ast::{Assertion, Case, Node};
use crate::{Regex, RequiredLiterals, charset};

/// Bounds that keep the extraction cheap and the automata small.
const MAX_SET: usize = 64;
const MAX_LEN: usize = 128;
const MAX_CLASS: usize = 8;

#[derive(Clone, Debug, Default)]
struct Info {
    /// Every string the node can match, when that is a small finite set.
    exact: Option<Vec<String>>,
    /// A set of which any match contains one member.
    required: Option<Vec<String>>,
    /// Whether the strings need case-insensitive comparison.
    icase: bool,
}

pub(crate) fn required(root: &Node) -> Option<RequiredLiterals> {
    let info = analyse(root);
    let set = best(info.required.clone(), usable(info.exact.clone()))?;
    let mut literals = set;
    literals.sort();
    literals.dedup();
    Some(RequiredLiterals {
        literals,
        ignore_case: info.icase,
    })
}

fn usable(set: Option<Vec<String>>) -> Option<Vec<String>> {
    set.filter(|s| !s.is_empty() && s.iter().all(|l| !l.is_empty()))
}

fn score(set: &[String]) -> (usize, std::cmp::Reverse<usize>) {
    let min = set.iter().map(|l| l.chars().count()).min().unwrap_or(0);
    (min.min(16), std::cmp::Reverse(set.len()))
}

fn best(a: Option<Vec<String>>, b: Option<Vec<String>>) -> Option<Vec<String>> {
    match (usable(a), usable(b)) {
        (Some(a), Some(b)) => Some(if score(&b) > score(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The strings a single pattern character stands for, if comparing them ASCII
/// case-insensitively (when `icase`) finds exactly the characters Python would match.
fn char_strings(c: char, case: Case) -> Option<(Vec<String>, bool)> {
    if case == Case::Sensitive {
        return Some((vec![c.to_string()], false));
    }
    let set = charset::char_set(c, case);
    let members: Vec<char> = set
        .ranges()
        .iter()
        .flat_map(|r| r.start()..=r.end())
        .take(MAX_CLASS + 1)
        .collect();
    match members.as_slice() {
        [only] => Some((vec![only.to_string()], false)),
        [a, b] if a.is_ascii_alphabetic() && a.eq_ignore_ascii_case(b) => {
            Some((vec![c.to_ascii_lowercase().to_string()], true))
        }
        _ => None,
    }
}

fn product(a: &[String], b: &[String]) -> Option<Vec<String>> {
    if a.len().saturating_mul(b.len()) > MAX_SET {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            if x.len() + y.len() > MAX_LEN {
                return None;
            }
            out.push(format!("{x}{y}"));
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

fn empty_exact() -> Info {
    Info {
        exact: Some(vec![String::new()]),
        required: None,
        icase: false,
    }
}

fn analyse(node: &Node) -> Info {
    match node {
        Node::Empty | Node::Assert(_) | Node::Look { .. } => empty_exact(),
        Node::Char { c, case } => match char_strings(*c, *case) {
            Some((strings, icase)) => Info {
                exact: Some(strings),
                required: None,
                icase,
            },
            None => Info::default(),
        },
        Node::Class(class) => {
            let set = charset::class_set(class);
            let members: Vec<char> = set
                .ranges()
                .iter()
                .flat_map(|r| r.start()..=r.end())
                .take(MAX_CLASS + 1)
                .collect();
            if members.len() > MAX_CLASS {
                return Info::default();
            }
            Info {
                exact: Some(members.iter().map(|c| c.to_string()).collect()),
                required: None,
                icase: false,
            }
        }
        Node::Any { .. } | Node::Backref { .. } => Info::default(),
        Node::Group { sub, .. } | Node::Atomic(sub) => analyse(sub),
        Node::Repeat { min, max, sub, .. } => {
            let inner = analyse(sub);
            if *min == 0 {
                return Info::default();
            }
            let mut exact = None;
            if Some(*min) == *max
                && *min <= 8
                && let Some(e) = &inner.exact
            {
                let mut acc = vec![String::new()];
                for _ in 0..*min {
                    match product(&acc, e) {
                        Some(p) => acc = p,
                        None => {
                            acc.clear();
                            break;
                        }
                    }
                }
                if !acc.is_empty() {
                    exact = Some(acc);
                }
            }
            Info {
                required: best(inner.required, inner.exact),
                exact,
                icase: inner.icase,
            }
        }
        Node::Concat(items) => {
            let mut icase = false;
            let mut candidate: Option<Vec<String>> = None;
            // The exact strings of the current run of exact children.
            let mut run = vec![String::new()];
            let mut all_exact = true;
            for item in items {
                let info = analyse(item);
                icase |= info.icase;
                if let Some(joined) = info.exact.as_ref().and_then(|e| product(&run, e)) {
                    run = joined;
                    continue;
                }
                all_exact = false;
                candidate = best(candidate, Some(std::mem::take(&mut run)));
                candidate = best(candidate, info.required);
                run = info.exact.unwrap_or_else(|| vec![String::new()]);
            }
            let exact = all_exact.then(|| run.clone());
            candidate = best(candidate, Some(run));
            Info {
                exact,
                required: candidate,
                icase,
            }
        }
        Node::Alt(items) => alternatives(items.iter()),
        Node::Cond { yes, no, .. } => alternatives([yes.as_ref(), no.as_ref()].into_iter()),
    }
}

fn alternatives<'a>(items: impl Iterator<Item = &'a Node>) -> Info {
    let mut exact: Option<Vec<String>> = Some(Vec::new());
    let mut required: Option<Vec<String>> = Some(Vec::new());
    let mut icase = false;
    for item in items {
        let info = analyse(item);
        icase |= info.icase;
        exact = match (exact, &info.exact) {
            (Some(mut acc), Some(e)) if acc.len() + e.len() <= MAX_SET => {
                acc.extend(e.iter().cloned());
                Some(acc)
            }
            _ => None,
        };
        let own = best(info.required, info.exact);
        required = match (required, own) {
            (Some(mut acc), Some(o)) if acc.len() + o.len() <= MAX_SET => {
                acc.extend(o);
                Some(acc)
            }
            _ => None,
        };
    }
    Info {
        exact,
        required,
        icase,
    }
}

/// What every match of a pattern that can only match at the haystack start begins
/// with: strings of which each match starts with one (compared ASCII
/// case-insensitively when the flag says so). `None` when the pattern can match
/// elsewhere, or when nothing is known of its first characters.
pub(crate) fn anchored_prefixes(root: &Node) -> Option<(Vec<String>, bool)> {
    if !begins_at_start(root) {
        return None;
    }
    let (prefixes, icase) = leading(root)?;
    if prefixes.is_empty() || prefixes.iter().any(String::is_empty) {
        return None;
    }
    Some((prefixes, icase))
}

/// Whether every match of `node` starts at the haystack start (`\A`, or `^` without
/// MULTILINE, before anything is consumed).
fn begins_at_start(node: &Node) -> bool {
    match node {
        Node::Assert(Assertion::TextStart) => true,
        Node::Group { sub, .. } | Node::Atomic(sub) => begins_at_start(sub),
        Node::Repeat { min, sub, .. } => *min >= 1 && begins_at_start(sub),
        Node::Alt(items) => !items.is_empty() && items.iter().all(begins_at_start),
        Node::Concat(items) => {
            for item in items {
                match item {
                    Node::Assert(Assertion::TextStart) => return true,
                    // Zero-width, consuming nothing: the next item decides.
                    Node::Empty | Node::Assert(_) | Node::Look { .. } => {}
                    other => return begins_at_start(other),
                }
            }
            false
        }
        _ => false,
    }
}

/// Strings of which every match of `node` begins with one (`""` among them: nothing
/// is known), with the case flag of [`Info`].
fn leading(node: &Node) -> Option<(Vec<String>, bool)> {
    match node {
        Node::Group { sub, .. } | Node::Atomic(sub) => leading(sub),
        Node::Repeat { min, sub, .. } if *min >= 1 => leading(sub),
        Node::Alt(items) => union_of_leading(items.iter()),
        Node::Cond { yes, no, .. } => union_of_leading([yes.as_ref(), no.as_ref()].into_iter()),
        Node::Concat(items) => {
            let mut run = vec![String::new()];
            let mut icase = false;
            for item in items {
                let info = analyse(item);
                if let Some(joined) = info.exact.as_ref().and_then(|e| product(&run, e)) {
                    run = joined;
                    icase |= info.icase;
                    continue;
                }
                // A match goes on with one of this item's matches: with what those
                // begin with, when that is known and the product stays small.
                if let Some((first, case)) = leading(item)
                    && let Some(joined) = product(&run, &first)
                {
                    run = joined;
                    icase |= case;
                }
                break;
            }
            Some((run, icase))
        }
        other => {
            let info = analyse(other);
            Some((
                info.exact.unwrap_or_else(|| vec![String::new()]),
                info.icase,
            ))
        }
    }
}

fn union_of_leading<'a>(items: impl Iterator<Item = &'a Node>) -> Option<(Vec<String>, bool)> {
    let mut all = Vec::new();
    let mut icase = false;
    for item in items {
        let (strings, case) = leading(item)?;
        all.extend(strings);
        icase |= case;
        if all.len() > MAX_SET {
            return None;
        }
    }
    all.sort();
    all.dedup();
    Some((all, icase))
}

/// The start check of one pattern that can only match at the haystack start.
#[derive(Debug)]
struct AtStart {
    prefixes: Vec<String>,
    icase: bool,
    /// Its required literals (case-sensitive sets only), one of which the haystack
    /// must hold as well.
    required: Vec<memchr::memmem::Finder<'static>>,
}

impl AtStart {
    fn starts(&self, prefix: usize, haystack: &[u8]) -> bool {
        let Some(p) = self.prefixes.get(prefix).map(String::as_bytes) else {
            return false;
        };
        let Some(h) = haystack.get(..p.len()) else {
            return false;
        };
        if self.icase {
            h.eq_ignore_ascii_case(p)
        } else {
            same_bytes(h, p)
        }
    }

    fn holds_required(&self, haystack: &[u8]) -> bool {
        self.required.is_empty() || self.required.iter().any(|f| f.find(haystack).is_some())
    }
}

/// `a == b` for slices of one length, eight bytes a step: the prefixes compared are
/// a few dozen bytes, where a call to `memcmp` costs more than the comparison.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (wa.remainder(), wb.remainder());
    let word = |c: &[u8]| c.try_into().map_or(0, u64::from_ne_bytes);
    a.len() == b.len() && wa.zip(wb).all(|(x, y)| word(x) == word(y)) && ra.iter().eq(rb.iter())
}

/// The [`AtStart`] prefixes by their first byte (both cases of it for a
/// case-insensitive one): a haystack is compared with those its first byte starts.
#[derive(Debug, Default)]
struct ByFirstByte {
    /// `(pattern, prefix)` pairs, grouped by first byte; group `b` is
    /// `entries[starts[b]..starts[b + 1]]`.
    entries: Vec<(usize, usize)>,
    starts: Vec<usize>,
}

impl ByFirstByte {
    fn new(checks: &[Option<AtStart>]) -> ByFirstByte {
        let mut keyed: Vec<(u8, usize, usize)> = Vec::new();
        for (pattern, check) in checks.iter().enumerate() {
            let Some(check) = check else { continue };
            for (k, prefix) in check.prefixes.iter().enumerate() {
                let Some(&first) = prefix.as_bytes().first() else {
                    continue;
                };
                keyed.push((first, pattern, k));
                if check.icase && first.is_ascii_alphabetic() {
                    keyed.push((first ^ 0x20, pattern, k));
                }
            }
        }
        keyed.sort_unstable();
        let mut starts = vec![0; 257];
        for &(first, _, _) in &keyed {
            starts[usize::from(first) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        ByFirstByte {
            entries: keyed.into_iter().map(|(_, p, k)| (p, k)).collect(),
            starts,
        }
    }

    fn of(&self, first: u8) -> &[(usize, usize)] {
        let b = usize::from(first);
        match (self.starts.get(b), self.starts.get(b + 1)) {
            (Some(&from), Some(&to)) => self.entries.get(from..to).unwrap_or_default(),
            _ => &[],
        }
    }
}

/// Which of a set of patterns can possibly match a haystack, decided by one
/// Aho-Corasick pass over it.
#[derive(Debug)]
pub struct Prefilter {
    sensitive: Option<Scan>,
    insensitive: Option<Scan>,
    always: Vec<usize>,
    patterns: usize,
    /// Per pattern, the check of what it must begin with, for patterns that can only
    /// match at the haystack start (see [`Prefilter::candidates_whole`]).
    at_start: Vec<Option<AtStart>>,
    by_first_byte: ByFirstByte,
    /// Whether every pattern has an [`AtStart`] check.
    all_at_start: bool,
}

/// One literal set and the search that finds which of its members occur.
#[derive(Debug)]
enum Scan {
    /// A SIMD (Teddy) search for the first literal, repeated from one byte after each
    /// hit: it skips most of a line in wide steps instead of one automaton transition
    /// per byte, and weighs a few KiB instead of an automaton's tens.
    ///
    /// It reports one literal per hit, but that loses none: the literals are ordered
    /// longest first, so a hit at `p` is the longest literal occurring at `p`; every
    /// other literal occurring at `p` is a prefix of it, and every literal starting
    /// after `p` is found by a later search, which starts at `p + 1` and finds the
    /// leftmost occurrence from there. `implied[k]` therefore lists the owners of every
    /// literal that occurs inside literal `k` (itself included).
    Packed {
        searcher: packed::Searcher,
        implied: Vec<Vec<usize>>,
    },
    /// The automaton itself rather than `AhoCorasick`, walked by a loop of our own (for
    /// sets the packed search does not take: too many literals, or case-insensitive).
    Dfa { dfa: Box<DFA>, owners: Vec<usize> },
}

impl Scan {
    fn new(lits: &[String], owners: &[usize], icase: bool) -> Option<Scan> {
        if lits.is_empty() {
            return None;
        }
        if !icase && let Some(scan) = Scan::packed(lits, owners) {
            return Some(scan);
        }
        let dfa = dfa::Builder::new()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .ascii_case_insensitive(icase)
            .build(lits)
            .ok()?;
        Some(Scan::Dfa {
            dfa: Box::new(dfa),
            owners: owners.to_vec(),
        })
    }

    fn packed(lits: &[String], owners: &[usize]) -> Option<Scan> {
        let mut order: Vec<usize> = (0..lits.len()).collect();
        order.sort_by(|&a, &b| {
            lits[b]
                .len()
                .cmp(&lits[a].len())
                .then(lits[a].cmp(&lits[b]))
        });
        order.dedup_by_key(|k| lits[*k].as_str());
        let searcher = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(order.iter().map(|&k| lits[k].as_bytes()))
            .build()?;
        let implied = order
            .iter()
            .map(|&k| {
                let mut inside: Vec<usize> = (0..lits.len())
                    .filter(|&j| lits[k].contains(lits[j].as_str()))
                    .filter_map(|j| owners.get(j).copied())
                    .collect();
                inside.sort_unstable();
                inside.dedup();
                inside
            })
            .collect();
        Some(Scan::Packed { searcher, implied })
    }

    /// Whether a literal occurs in `haystack` (true, too, when the search cannot run).
    fn any(&self, haystack: &[u8]) -> bool {
        match self {
            Scan::Packed { searcher, .. } => searcher.find(haystack).is_some(),
            Scan::Dfa { dfa, .. } => {
                let Ok(mut sid) = dfa.start_state(Anchored::No) else {
                    return true;
                };
                for &byte in haystack {
                    sid = dfa.next_state(Anchored::No, sid, byte);
                    if dfa.is_special(sid) && dfa.is_match(sid) {
                        return true;
                    }
                }
                false
            }
        }
    }

    /// Inserts into `out` the owner of every literal occurring in `haystack`; false when
    /// the search could not run (the caller must then widen `out` to everything).
    fn scan(&self, haystack: &[u8], out: &mut Candidates, all: usize) -> bool {
        match self {
            Scan::Packed { searcher, implied } => {
                let mut at = 0;
                while at < haystack.len() {
                    let Some(m) = searcher.find_in(haystack, Span::from(at..haystack.len())) else {
                        break;
                    };
                    for &owner in implied.get(m.pattern().as_usize()).into_iter().flatten() {
                        out.insert(owner);
                    }
                    if out.count == all {
                        break;
                    }
                    at = m.start() + 1;
                }
                true
            }
            Scan::Dfa { dfa, owners } => {
                // An unanchored DFA always has a start state; without one, every pattern
                // stays possible (a prefilter may only ever widen the set).
                let Ok(mut sid) = dfa.start_state(Anchored::No) else {
                    return false;
                };
                for &byte in haystack {
                    sid = dfa.next_state(Anchored::No, sid, byte);
                    if !dfa.is_special(sid) {
                        continue;
                    }
                    if dfa.is_match(sid) {
                        for i in 0..dfa.match_len(sid) {
                            let pattern = dfa.match_pattern(sid, i).as_usize();
                            if let Some(&owner) = owners.get(pattern) {
                                out.insert(owner);
                            }
                        }
                        if out.count == all {
                            break;
                        }
                    }
                }
                true
            }
        }
    }
}

/// The patterns a [`Prefilter`] found possible, reusable across haystacks: a set of
/// indices, one bit each, so that a caller steps from one to the next without a test
/// (and a mispredicted branch) for every pattern between them.
#[derive(Clone, Debug, Default)]
pub struct Candidates {
    words: Vec<u64>,
    len: usize,
    count: usize,
}

impl Candidates {
    /// An empty set.
    pub fn new() -> Candidates {
        Candidates::default()
    }

    /// Whether pattern `index` (its position in [`Prefilter::new`]'s slice) can match.
    pub fn contains(&self, index: usize) -> bool {
        self.words
            .get(index / 64)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    /// The first pattern at `from` or after that can match.
    pub fn next_from(&self, from: usize) -> Option<usize> {
        let mut at = from / 64;
        let mut word = self.words.get(at)? & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some(at * 64 + word.trailing_zeros() as usize);
            }
            at += 1;
            word = *self.words.get(at)?;
        }
    }

    /// The indices of the patterns that can match, in order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let mut from = 0;
        std::iter::from_fn(move || {
            let next = self.next_from(from)?;
            from = next + 1;
            Some(next)
        })
    }

    /// Whether no pattern can match.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn reset(&mut self, len: usize) {
        self.words.clear();
        self.words.resize(len.div_ceil(64), 0);
        self.len = len;
        self.count = 0;
    }

    fn insert(&mut self, index: usize) {
        self.set(index, true);
    }

    fn set(&mut self, index: usize, possible: bool) {
        if index >= self.len || self.contains(index) == possible {
            return;
        }
        if let Some(w) = self.words.get_mut(index / 64) {
            *w ^= 1 << (index % 64);
            if possible {
                self.count += 1;
            } else {
                self.count -= 1;
            }
        }
    }
}

impl Prefilter {
    /// Builds the prefilter for `regexes`; pattern indices are positions in the slice.
    pub fn new(regexes: &[&Regex]) -> Prefilter {
        let mut sensitive = Vec::new();
        let mut sensitive_owner = Vec::new();
        let mut insensitive = Vec::new();
        let mut insensitive_owner = Vec::new();
        let mut always = Vec::new();
        // One parse of each pattern for both its literals and its starts, not kept: a
        // pattern whose literals never show up builds nothing else.
        let starts: Vec<Option<(Vec<String>, bool)>> = regexes
            .iter()
            .map(|regex| {
                regex.source.with_tree(|tree| {
                    regex.literals.get_or_init(|| required(tree));
                    anchored_prefixes(tree)
                })
            })
            .collect();
        for (i, regex) in regexes.iter().enumerate() {
            match regex.required_literals() {
                Some(req) if !req.literals.is_empty() => {
                    for lit in &req.literals {
                        if req.ignore_case {
                            insensitive.push(lit.clone());
                            insensitive_owner.push(i);
                        } else {
                            sensitive.push(lit.clone());
                            sensitive_owner.push(i);
                        }
                    }
                }
                _ => always.push(i),
            }
        }
        let sensitive_scan = Scan::new(&sensitive, &sensitive_owner, false);
        let insensitive_scan = Scan::new(&insensitive, &insensitive_owner, true);
        // A literal set that failed to build makes its patterns unconditional.
        if sensitive_scan.is_none() {
            always.append(&mut sensitive_owner);
        }
        if insensitive_scan.is_none() {
            always.append(&mut insensitive_owner);
        }
        always.sort_unstable();
        always.dedup();
        let at_start = regexes
            .iter()
            .zip(starts)
            .map(|(regex, start)| {
                let (prefixes, icase) = start?;
                let required = match regex.required_literals() {
                    // A start that holds a required literal already says the haystack
                    // does: the search for one is only worth it when some start does not.
                    Some(req)
                        if !req.ignore_case
                            && !prefixes
                                .iter()
                                .all(|p| req.literals.iter().any(|l| p.contains(l.as_str()))) =>
                    {
                        req.literals
                            .iter()
                            .map(|l| memchr::memmem::Finder::new(l.as_bytes()).into_owned())
                            .collect()
                    }
                    _ => Vec::new(),
                };
                Some(AtStart {
                    prefixes,
                    icase,
                    required,
                })
            })
            .collect::<Vec<Option<AtStart>>>();
        Prefilter {
            sensitive: sensitive_scan,
            insensitive: insensitive_scan,
            always,
            patterns: regexes.len(),
            by_first_byte: ByFirstByte::new(&at_start),
            all_at_start: at_start.iter().all(Option::is_some),
            at_start,
        }
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.patterns
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns == 0
    }

    /// Records in `out` every pattern that can possibly match `haystack`.
    pub fn candidates(&self, haystack: &str, out: &mut Candidates) {
        out.reset(self.patterns);
        for &i in &self.always {
            out.insert(i);
        }
        for scan in [&self.sensitive, &self.insensitive].into_iter().flatten() {
            if out.count == self.patterns {
                return;
            }
            if !scan.scan(haystack.as_bytes(), out, self.patterns) {
                for i in 0..self.patterns {
                    out.insert(i);
                }
                return;
            }
        }
    }
    /// Whether any pattern can possibly match `haystack` (or a part of it): the
    /// question a non-empty [`Prefilter::candidates`] answers, answered at the first
    /// literal found.
    pub fn any(&self, haystack: &str) -> bool {
        if !self.always.is_empty() {
            return true;
        }
        let bytes = haystack.as_bytes();
        [&self.sensitive, &self.insensitive]
            .into_iter()
            .flatten()
            .any(|scan| scan.any(bytes))
    }

    /// Like [`Prefilter::candidates`], for a haystack that is the whole text the
    /// patterns are searched in (not a text containing it): a pattern that can only
    /// match at its start is a candidate when the haystack begins as every one of its
    /// matches does and holds one of its required literals, which is decided there
    /// instead of by a search through the haystack. The literal search runs only for
    /// the other patterns, when there are any.
    pub fn candidates_whole(&self, haystack: &str, out: &mut Candidates) {
        if self.all_at_start {
            out.reset(self.patterns);
        } else {
            self.candidates(haystack, out);
            for (i, check) in self.at_start.iter().enumerate() {
                if check.is_some() {
                    out.set(i, false);
                }
            }
        }
        let bytes = haystack.as_bytes();
        let Some(&first) = bytes.first() else {
            return;
        };
        for &(pattern, prefix) in self.by_first_byte.of(first) {
            if out.contains(pattern) {
                continue;
            }
            if let Some(Some(check)) = self.at_start.get(pattern)
                && check.starts(prefix, bytes)
                && check.holds_required(bytes)
            {
                out.insert(pattern);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Candidates, same_bytes};

    /// The bit set agrees with a plain list of flags, across word boundaries.
    #[test]
    fn candidates_agree_with_a_list_of_flags() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut set = Candidates::new();
        for len in [0, 1, 63, 64, 65, 130] {
            set.reset(len);
            let mut model = vec![false; len];
            for _ in 0..500 {
                let i = (next() % (len as u64 + 2)) as usize;
                let on = next() % 3 != 0;
                set.set(i, on);
                if let Some(m) = model.get_mut(i) {
                    *m = on;
                }
                let expected: Vec<usize> = (0..len).filter(|&i| model[i]).collect();
                assert_eq!(set.iter().collect::<Vec<_>>(), expected);
                assert_eq!(set.is_empty(), expected.is_empty());
                let from = (next() % (len as u64 + 2)) as usize;
                assert_eq!(
                    set.next_from(from),
                    expected.iter().copied().find(|&e| e >= from)
                );
                assert_eq!(set.contains(i), model.get(i).copied().unwrap_or(false));
            }
        }
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let text: Vec<u8> = (0u8..40).map(|i| b'a' + i % 7).collect();
        for len in 0..24 {
            for at in 0..8 {
                let a = &text[at..at + len];
                for other in 0..8 {
                    let b = &text[other..other + len];
                    assert_eq!(same_bytes(a, b), a == b, "{len} {at} {other}");
                }
                assert!(!same_bytes(a, &text[at..at + len + 1]));
            }
        }
    }
}
