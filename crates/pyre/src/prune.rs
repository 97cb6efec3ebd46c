//! PCRE2 from the first branch of a pattern that can match a haystack.
//!
//! A conditional such as sshd's `(?P<u>\S+)|…` … `(?(u): |…)` expands into a top-level
//! alternation, one branch per way the condition can go (the rewrite's
//! `expand_references`, which keeps Python's priority order). PCRE2 tries the branches
//! in order and pays for every dead one on every line: on sshd's `Failed password for
//! …` lines the first branch runs to the end of the line before it fails. One DFA pass
//! over the branches *relaxed* (lookarounds dropped, atomic and possessive constructs
//! allowed to backtrack: a relaxed branch matches a superset of its branch's texts),
//! leftmost-first and anchored, reports the first branch that can match at all; the
//! branches before it cannot match, so dropping them changes no result, and PCRE2 runs
//! from that one (a compiled variant per starting branch, built on first need). Group
//! numbers of a variant are mapped back to Python's.

use std::sync::{Mutex, OnceLock};

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::{Anchored, Input, nfa::thompson};
use regex_syntax::hir::Look;

use crate::ast::{Greed, Node};
use crate::{Locations, flat_branches, lower, pcre, rewrite, with_spare};

/// At most this many branches are told apart.
const MAX_BRANCHES: usize = 8;

/// Room for the states of the branches' lazy automaton.
const CHECK_CACHE: usize = 256 << 10;

pub(crate) struct Pruned {
    /// The relaxed branches as one automaton for ASCII haystacks, pattern `i` for
    /// branch `i`.
    check: DFA,
    /// The search cache, held for the length of a search; a search that finds it in
    /// use makes its own.
    cache: Mutex<Option<Cache>>,
    /// A relaxed `$` was lowered to "end of line": exact only without another newline.
    single_line: bool,
    prefix: Vec<Node>,
    branches: Vec<Node>,
    /// `variants[k]`: the pattern with branches `k..` only (`k` ≥ 1).
    variants: Vec<OnceLock<Option<Variant>>>,
}

/// PCRE2 on some of the branches.
pub(crate) struct Variant {
    pcre: pcre::Pcre,
    /// Python's group number of each of PCRE2's groups (index 0 is the whole match).
    groups: Vec<usize>,
}

/// What the branch pass said about a haystack.
pub(crate) enum Live<'a> {
    /// No branch can match: neither can the pattern.
    None,
    /// The first branch may match: the full pattern is the one to run.
    All,
    /// The leading branches cannot: the variant without them answers for the pattern.
    From(&'a Variant),
}

impl Pruned {
    /// For a pattern whose conditionals and back-references expand into a sequence
    /// ending in an alternation of 2 to 8 branches (with no reference left: a variant
    /// renumbers groups, which a reference would not follow).
    pub(crate) fn new(tree: &Node) -> Option<Pruned> {
        let expanded = rewrite::expand_references(tree)?;
        if expanded.any(&|n| matches!(n, Node::Cond { .. } | Node::Backref { .. })) {
            return None;
        }
        let Node::Concat(items) = &expanded else {
            return None;
        };
        let (last, prefix) = items.split_last()?;
        let branches = flat_branches(last);
        if !(2..=MAX_BRANCHES).contains(&branches.len()) {
            return None;
        }
        let mut caveats = lower::Caveats::default();
        let hirs = branches
            .iter()
            .map(|b| {
                let mut seq: Vec<Node> = prefix.iter().map(relax).collect();
                seq.push(relax(b));
                lower::to_hir(&Node::Concat(seq), &mut caveats, true)
            })
            .collect::<Option<Vec<_>>>()?;
        // Anchored branches only: then the leftmost-first match of all of them at once
        // is one of the first branch that can match at all.
        if !hirs
            .iter()
            .all(|h| h.properties().look_set_prefix().contains(Look::Start))
        {
            return None;
        }
        let nfa = thompson::Compiler::new()
            .configure(thompson::Config::new().nfa_size_limit(Some(1 << 20)))
            .build_many_from_hir(&hirs)
            .ok()?;
        let check = DFA::builder()
            .configure(DFA::config().cache_capacity(CHECK_CACHE))
            .build_from_nfa(nfa)
            .ok()?;
        Some(Pruned {
            check,
            cache: Mutex::new(None),
            single_line: caveats.single_line,
            prefix: prefix.to_vec(),
            variants: (0..branches.len()).map(|_| OnceLock::new()).collect(),
            branches,
        })
    }

    /// Where PCRE2 should start on `haystack`.
    pub(crate) fn live(&self, haystack: &str) -> Live<'_> {
        let bytes = haystack.as_bytes();
        if !haystack.is_ascii()
            || (self.single_line
                && memchr::memchr(b'\n', &bytes[..bytes.len().saturating_sub(1)]).is_some())
        {
            return Live::All;
        }
        let input = Input::new(haystack).anchored(Anchored::Yes);
        let found = with_spare(
            &self.cache,
            || self.check.create_cache(),
            |cache| self.check.try_search_fwd(cache, &input),
        );
        let first = match found {
            Ok(Some(m)) => m.pattern().as_usize(),
            Ok(None) => return Live::None,
            // The automaton gave up (its cache thrashed): any branch may match.
            Err(_) => return Live::All,
        };
        if first == 0 {
            return Live::All;
        }
        let variant = self.variants.get(first).and_then(|slot| {
            slot.get_or_init(|| {
                let mut seq = self.prefix.clone();
                seq.push(Node::Alt(self.branches[first..].to_vec()));
                Variant::new(&Node::Concat(seq))
            })
            .as_ref()
        });
        match variant {
            Some(v) => Live::From(v),
            None => Live::All,
        }
    }
}

impl Variant {
    fn new(tree: &Node) -> Option<Variant> {
        let pcre = pcre::Pcre::compile(&lower::to_pcre2(tree))?;
        // PCRE2 numbers groups by their opening parenthesis, the order of this walk.
        let mut groups = vec![0];
        tree.walk(&mut |n| {
            if let Node::Group { index: Some(i), .. } = n {
                groups.push(*i);
            }
        });
        (pcre.group_len() == groups.len()).then_some(Variant { pcre, groups })
    }

    /// Searches from `start`; `locations` must hold a slot for every Python group.
    pub(crate) fn captures(
        &self,
        haystack: &str,
        start: usize,
        locations: &mut Locations,
    ) -> pcre::Outcome {
        self.pcre
            .captures_mapped(haystack, start, locations, &self.groups)
    }
}

/// A pattern that matches every text `node` matches (and maybe more), with nothing
/// the linear engine lacks: assertions on what is around are dropped, conditionals
/// offer both arms, a back-reference matches anything, atomic and possessive
/// constructs may backtrack. No capturing groups: only whether it matches counts.
fn relax(node: &Node) -> Node {
    match node {
        Node::Empty | Node::Char { .. } | Node::Class(_) | Node::Any { .. } | Node::Assert(_) => {
            node.clone()
        }
        Node::Look { .. } => Node::Empty,
        Node::Group { sub, .. } | Node::Atomic(sub) => Node::Group {
            index: None,
            sub: Box::new(relax(sub)),
        },
        Node::Repeat {
            min,
            max,
            greed,
            sub,
        } => Node::Repeat {
            min: *min,
            max: *max,
            greed: match greed {
                Greed::Possessive => Greed::Greedy,
                g => *g,
            },
            sub: Box::new(relax(sub)),
        },
        Node::Concat(items) => Node::Concat(items.iter().map(relax).collect()),
        Node::Alt(items) => Node::Alt(items.iter().map(relax).collect()),
        Node::Backref { .. } => Node::Repeat {
            min: 0,
            max: None,
            greed: Greed::Greedy,
            sub: Box::new(Node::Any { dotall: true }),
        },
        Node::Cond { yes, no, .. } => Node::Alt(vec![relax(yes), relax(no)]),
    }
}
