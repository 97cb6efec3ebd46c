//! PCRE2 (with its JIT) as the capture engine.
//!
//! Capture searches are where fail2ban's work goes: every line runs the prefregex and
//! the date template with groups, and every candidate failregex too. The linear
//! engine answers "is there a match" at DFA speed but needs a slower NFA pass for the
//! groups; PCRE2's JIT finds groups several times faster. PCRE2 backtracks in the same
//! priority order as Python's `re`, so given a pattern whose every class and assertion
//! is spelled out exactly (the same emission the backtracking fallback gets), it
//! reports Python's groups. Patterns PCRE2 refuses (say a repeat bound above its
//! limit) and searches it gives up on (its match limit) go to the other engines.

use std::sync::Mutex;

use crate::pcre_sys::{Code, MatchData};
use crate::{Locations, ast, lower, with_spare};

pub(crate) struct Pcre {
    code: Code,
    /// Match data for reuse, held for the length of a search, so searching needs no
    /// allocation after the first line; a search that finds it in use (another thread
    /// on the same pattern) makes its own. `Some(None)`: PCRE2 could not allocate it.
    spare: Mutex<Option<Option<MatchData>>>,
    line_tail: Option<Box<LineTail>>,
}

/// A pattern that ends in a group of `.+` and `$`, as every prefregex does
/// (`<F-CONTENT>.+</F-CONTENT>$`): on a haystack with no newline before its last
/// character, `(.+)$` matches from a position exactly when a character other than a
/// newline is there, and then takes the rest of the line. So the pattern without its
/// tail, ended by `(?=[^\n])`, finds the same match in the same priority order, and
/// the last group is the rest of the line: PCRE2 is spared the walk to the end of the
/// line character by character.
struct LineTail {
    cut: Pcre,
    /// The tail's group: the pattern's last (nothing follows it).
    group: usize,
}

/// What a PCRE2 search said.
pub(crate) enum Outcome {
    Match,
    NoMatch,
    /// PCRE2 could not decide (match or JIT stack limit): ask another engine.
    Undecided,
}

impl Pcre {
    /// Compiles the tree for PCRE2, or `None` when PCRE2 refuses it or the group
    /// numbering would differ from Python's.
    pub(crate) fn new(tree: &ast::Node, group_count: usize) -> Option<Pcre> {
        let mut pcre = Pcre::compile(&lower::to_pcre2(tree))?;
        if pcre.group_len() != group_count + 1 {
            return None;
        }
        pcre.line_tail = LineTail::new(tree, group_count).map(Box::new);
        Some(pcre)
    }

    /// Compiles an emitted pattern, or `None` when PCRE2 refuses it.
    pub(crate) fn compile(text: &str) -> Option<Pcre> {
        let code = Code::compile(text)?;
        Some(Pcre {
            code,
            spare: Mutex::new(None),
            line_tail: None,
        })
    }

    /// Whether one-line searches run without the pattern's `(.+)$` tail.
    #[cfg(test)]
    pub(crate) fn cuts_line_tail(&self) -> bool {
        self.line_tail.is_some()
    }

    /// Number of groups, the whole match included.
    pub(crate) fn group_len(&self) -> usize {
        self.code.group_len()
    }

    /// Searches from byte `start` (earlier text still counts for lookbehinds).
    pub(crate) fn captures(
        &self,
        haystack: &str,
        start: usize,
        locations: &mut Locations,
    ) -> Outcome {
        if let Some(tail) = &self.line_tail
            && let Some(line_end) = line_end(haystack)
        {
            let group = tail.group;
            return tail.cut.search(haystack, start, |locs| {
                for (i, span) in locations.spans.iter_mut().enumerate().take(group) {
                    *span = locs.get(i);
                }
                if let Some((s, e)) = locs.get(0) {
                    for (g, from) in [(0, s), (group, e)] {
                        if let Some(span) = locations.spans.get_mut(g) {
                            *span = Some((from, line_end));
                        }
                    }
                }
            });
        }
        self.search(haystack, start, |locs| {
            for (i, span) in locations.spans.iter_mut().enumerate() {
                *span = locs.get(i);
            }
        })
    }

    /// [`Pcre::captures`] for a pattern whose group `i` is Python's group `groups[i]`
    /// (a group may occur more than once: the one that took part gives the span).
    pub(crate) fn captures_mapped(
        &self,
        haystack: &str,
        start: usize,
        locations: &mut Locations,
        groups: &[usize],
    ) -> Outcome {
        self.search(haystack, start, |locs| {
            for (i, &python) in groups.iter().enumerate() {
                if let (Some(span), Some(slot)) = (locs.get(i), locations.spans.get_mut(python)) {
                    *slot = Some(span);
                }
            }
        })
    }

    fn search(&self, haystack: &str, start: usize, record: impl FnOnce(&MatchData)) -> Outcome {
        with_spare(
            &self.spare,
            || self.code.match_data(),
            |data| {
                let Some(data) = data.as_mut() else {
                    return Outcome::Undecided;
                };
                match self.code.find(data, haystack.as_bytes(), start) {
                    Ok(true) => {
                        record(data);
                        Outcome::Match
                    }
                    Ok(false) => Outcome::NoMatch,
                    Err(_) => Outcome::Undecided,
                }
            },
        )
    }
}

impl LineTail {
    fn new(tree: &ast::Node, group_count: usize) -> Option<LineTail> {
        use ast::{Assertion, Greed, Node};
        let Node::Concat(items) = tree else {
            return None;
        };
        let [
            head @ ..,
            Node::Group {
                index: Some(group),
                sub,
            },
            Node::Assert(Assertion::EndOrFinalNewline),
        ] = items.as_slice()
        else {
            return None;
        };
        let Node::Repeat {
            min: 1,
            max: None,
            greed: Greed::Greedy,
            sub: any,
        } = sub.as_ref()
        else {
            return None;
        };
        // A reference to the group could only be inside the head, before the group.
        if **any != (Node::Any { dotall: false })
            || *group != group_count
            || tree.any(&|n| matches!(n, Node::Backref { .. } | Node::Cond { .. }))
        {
            return None;
        }
        let mut cut = head.to_vec();
        cut.push(Node::Look {
            behind: false,
            negate: false,
            sub: Box::new(Node::Any { dotall: false }),
        });
        let cut = Pcre::compile(&lower::to_pcre2(&Node::Concat(cut)))?;
        (cut.group_len() == group_count).then_some(LineTail { cut, group: *group })
    }
}

/// Where `$` ends a one-line haystack (before its final newline, if any); `None` when
/// a newline comes earlier.
fn line_end(haystack: &str) -> Option<usize> {
    let bytes = haystack.as_bytes();
    let body = match bytes.last() {
        Some(b'\n') => &bytes[..bytes.len() - 1],
        _ => bytes,
    };
    memchr::memchr(b'\n', body).is_none().then_some(body.len())
}
