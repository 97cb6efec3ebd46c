//! Exact rewrites that let more patterns run on the linear-time engine.
//!
//! Every rewrite here replaces a construct the `regex` crate lacks (lookaround,
//! back-reference, conditional) by a regular one that matches the same text with the
//! same leftmost-first priority and the same group spans, *in the context where it
//! occurs*. Each function states why its rewrite is exact; when a precondition cannot
//! be established the construct is left alone and the pattern stays on the
//! backtracking engine.
//!
//! Priority is the subtle part. The `regex` crate's leftmost-first semantics explore
//! alternatives in the same order as Python's backtracking matcher, so two patterns
//! are interchangeable when, from every start position, they yield the same successful
//! matches in the same order. Distributing a *continuation* over an alternation,
//! `(a|b)c` → `(?:ac|bc)`, keeps that order; distributing a prefix, `c(a|b)` →
//! `(?:ca|cb)`, does not (all of `c`'s choices would be tried with `a` first), so the
//! expansions below only ever push what follows into the branches.

use regex_syntax::hir::ClassUnicode;

use crate::ast::{Assertion, Case, Class, ClassItem, Greed, Node, Perl};
use crate::charset;

/// Patterns may not grow beyond this many nodes through expansions.
const MAX_NODES: usize = 20_000;

pub(crate) fn rewrite(root: &Node) -> Node {
    let mut node = root.clone();
    if node.any(&|n| matches!(n, Node::Cond { .. } | Node::Backref { .. }))
        && let Some(expanded) = expand_references(&node)
    {
        node = expanded;
    }
    let node = contextual(&node, &Before::Unknown, &After::NOTHING);
    simplify(node)
}

fn size(node: &Node) -> usize {
    let mut n = 0;
    node.walk(&mut |_| n += 1);
    n
}

// ---------------------------------------------------------------------------------
// Conditionals and back-references
// ---------------------------------------------------------------------------------

/// What is known about group `g` at a point of the pattern.
#[derive(Clone, Copy)]
enum Known<'a> {
    /// The group did not take part in the match (so far).
    Unset,
    /// The group matched; when it can only have matched one fixed string, that string
    /// as a sequence of characters.
    Set(Option<&'a Node>),
}

/// Expands `(?(g)yes|no)` and `(?P=g)` wherever the group `g` is defined earlier in the
/// same sequence, by splitting the pattern on the ways `g` can match.
///
/// For a sequence `… e_i … e_k …` where `e_i` contains group `g` and a later element
/// refers to it, the continuation `e_{i+1} …` is pushed into `e_i` (`push`): through
/// alternations (`(a|b)c` → `(?:ac|bc)`, order kept), into optional groups (`x?` is
/// `(?:x|)` when `x` cannot match empty, `x??` is `(?:|x)`), and into capturing groups
/// whose content is an alternation (a group is transparent to matching, so `(a|b)` may
/// become `(a)|(b)` under the same number). At the point where `g` is known to be set
/// or unset, every reference to `g` in the continuation is decided: a conditional
/// becomes its branch, a back-reference becomes the text of `g` when `g` can match
/// only one string there (groups with a small finite language are first split into
/// one alternative per string, in Python's priority order), or a failure when `g` is
/// unset (Python's back-reference to an unmatched group fails).
pub(crate) fn expand_references(root: &Node) -> Option<Node> {
    let limit = size(root).saturating_mul(20).min(MAX_NODES);
    let mut node = root.clone();
    for _ in 0..64 {
        let (next, changed) = expand_once(&node)?;
        if size(&next) > limit {
            return None;
        }
        node = next;
        if !changed {
            break;
        }
    }
    Some(node)
}

/// One bottom-up pass; `None` when an expansion was needed but is not known exact.
fn expand_once(node: &Node) -> Option<(Node, bool)> {
    let mut changed = false;
    let out = match node {
        Node::Group { index, sub } => {
            let (s, c) = expand_once(sub)?;
            changed |= c;
            Node::group(*index, s)
        }
        Node::Atomic(sub) => {
            let (s, c) = expand_once(sub)?;
            changed |= c;
            Node::Atomic(Box::new(s))
        }
        Node::Look {
            behind,
            negate,
            sub,
        } => {
            let (s, c) = expand_once(sub)?;
            changed |= c;
            Node::Look {
                behind: *behind,
                negate: *negate,
                sub: Box::new(s),
            }
        }
        Node::Repeat {
            min,
            max,
            greed,
            sub,
        } => {
            let (s, c) = expand_once(sub)?;
            changed |= c;
            Node::Repeat {
                min: *min,
                max: *max,
                greed: *greed,
                sub: Box::new(s),
            }
        }
        Node::Alt(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let (s, c) = expand_once(item)?;
                changed |= c;
                out.push(s);
            }
            Node::Alt(out)
        }
        Node::Cond { group, yes, no } => {
            let (y, c1) = expand_once(yes)?;
            let (n, c2) = expand_once(no)?;
            changed |= c1 || c2;
            Node::Cond {
                group: *group,
                yes: Box::new(y),
                no: Box::new(n),
            }
        }
        Node::Concat(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let (s, c) = expand_once(item)?;
                changed |= c;
                out.push(s);
            }
            if let Some(done) = expand_sequence(&out)? {
                return Some((done, true));
            }
            Node::Concat(out)
        }
        Node::Empty
        | Node::Char { .. }
        | Node::Class(_)
        | Node::Any { .. }
        | Node::Assert(_)
        | Node::Backref { .. } => node.clone(),
    };
    Some((out, changed))
}

fn refers_to(node: &Node, g: usize) -> bool {
    node.any(
        &|n| matches!(n, Node::Cond { group, .. } | Node::Backref { group, .. } if *group == g),
    )
}

fn defined_groups(node: &Node) -> Vec<usize> {
    let mut out = Vec::new();
    node.walk(&mut |n| {
        if let Node::Group { index: Some(i), .. } = n {
            out.push(*i);
        }
    });
    out
}

/// Finds, in a sequence, a group defined by one element and referred to by a later
/// one, and pushes the rest of the sequence into the defining element.
/// `Ok(None)` when there is nothing to do; `None` when it cannot be done exactly.
fn expand_sequence(items: &[Node]) -> Option<Option<Node>> {
    for (i, item) in items.iter().enumerate() {
        let rest = items.get(i + 1..).unwrap_or(&[]);
        for g in defined_groups(item) {
            if !rest.iter().any(|r| refers_to(r, g)) {
                continue;
            }
            // A group referred to inside its own element, or defined twice, is beyond
            // this analysis.
            if refers_to(item, g) || rest.iter().any(|r| r.contains_group(g)) {
                return None;
            }
            let needs_text = rest
                .iter()
                .any(|r| r.any(&|n| matches!(n, Node::Backref { group, .. } if *group == g)));
            let item = if needs_text {
                split_finite_group(item, g)?
            } else {
                item.clone()
            };
            let cont = Node::Concat(rest.to_vec());
            let pushed = push(&item, &cont, g)?;
            let mut out: Vec<Node> = items.get(..i).unwrap_or(&[]).to_vec();
            out.push(pushed);
            return Some(Some(Node::Concat(out)));
        }
    }
    Some(None)
}

/// `Concat[e, cont]` with every reference to `g` in `cont` decided.
fn push(e: &Node, cont: &Node, g: usize) -> Option<Node> {
    if !e.contains_group(g) {
        return Some(Node::Concat(vec![
            e.clone(),
            resolve(cont, g, Known::Unset)?,
        ]));
    }
    match e {
        Node::Group {
            index: Some(i),
            sub,
        } if *i == g => {
            let text = is_literal(sub).then_some(sub.as_ref());
            Some(Node::Concat(vec![
                e.clone(),
                resolve(cont, g, Known::Set(text))?,
            ]))
        }
        Node::Group { index: None, sub } => push(sub, cont, g),
        Node::Group {
            index: Some(h),
            sub,
        } => match sub.as_ref() {
            Node::Alt(branches) => {
                let split: Vec<Node> = branches
                    .iter()
                    .map(|b| Node::group(Some(*h), b.clone()))
                    .collect();
                push(&Node::Alt(split), cont, g)
            }
            _ if always_sets(sub, g) && !needs_text(cont, g) => Some(Node::Concat(vec![
                e.clone(),
                resolve(cont, g, Known::Set(None))?,
            ])),
            _ => None,
        },
        Node::Alt(branches) => Some(Node::Alt(
            branches
                .iter()
                .map(|b| push(b, cont, g))
                .collect::<Option<Vec<_>>>()?,
        )),
        Node::Concat(parts) => {
            let j = parts.iter().position(|p| p.contains_group(g))?;
            let mut tail: Vec<Node> = parts.get(j + 1..).unwrap_or(&[]).to_vec();
            tail.push(cont.clone());
            let mut out: Vec<Node> = parts.get(..j).unwrap_or(&[]).to_vec();
            out.push(push(parts.get(j)?, &Node::Concat(tail), g)?);
            Some(Node::Concat(out))
        }
        Node::Repeat {
            min: 0,
            max: Some(1),
            greed,
            sub,
        } if !sub.nullable() => match greed {
            Greed::Greedy => push(&Node::Alt(vec![(**sub).clone(), Node::Empty]), cont, g),
            Greed::Lazy => push(&Node::Alt(vec![Node::Empty, (**sub).clone()]), cont, g),
            Greed::Possessive => None,
        },
        Node::Repeat {
            min: 1,
            max: Some(1),
            greed: Greed::Greedy | Greed::Lazy,
            sub,
        } => push(sub, cont, g),
        _ => None,
    }
}

fn needs_text(cont: &Node, g: usize) -> bool {
    cont.any(&|n| matches!(n, Node::Backref { group, .. } if *group == g))
}

/// Whether every match of `e` sets group `g`.
fn always_sets(e: &Node, g: usize) -> bool {
    match e {
        Node::Group { index, sub } => *index == Some(g) || always_sets(sub, g),
        Node::Concat(items) => items.iter().any(|i| always_sets(i, g)),
        Node::Alt(items) => !items.is_empty() && items.iter().all(|i| always_sets(i, g)),
        Node::Repeat { min, sub, .. } => *min >= 1 && always_sets(sub, g),
        Node::Atomic(sub) => always_sets(sub, g),
        _ => false,
    }
}

/// Whether `node` matches exactly one string made of case-sensitive characters.
fn is_literal(node: &Node) -> bool {
    match node {
        Node::Empty => true,
        Node::Char {
            case: Case::Sensitive,
            ..
        } => true,
        Node::Concat(items) => items.iter().all(is_literal),
        Node::Group { index: None, sub } => is_literal(sub),
        _ => false,
    }
}

/// Decides every reference to `g` in `node`, given what is known about `g`.
fn resolve(node: &Node, g: usize, known: Known<'_>) -> Option<Node> {
    let r = |n: &Node| resolve(n, g, known);
    Some(match node {
        Node::Cond { group, yes, no } if *group == g => match known {
            Known::Unset => r(no)?,
            Known::Set(_) => r(yes)?,
        },
        Node::Backref { group, case } if *group == g => match known {
            Known::Unset => fail(),
            Known::Set(Some(text)) => {
                // A case-insensitive back-reference compares lower-cased characters;
                // the text stands for itself only when it has no cased character.
                if *case != Case::Sensitive && !uncased_text(text) {
                    return None;
                }
                Node::Group {
                    index: None,
                    sub: Box::new(text.clone()),
                }
            }
            Known::Set(None) => return None,
        },
        Node::Group { index, sub } => Node::group(*index, r(sub)?),
        Node::Atomic(sub) => Node::Atomic(Box::new(r(sub)?)),
        Node::Look {
            behind,
            negate,
            sub,
        } => Node::Look {
            behind: *behind,
            negate: *negate,
            sub: Box::new(r(sub)?),
        },
        Node::Repeat {
            min,
            max,
            greed,
            sub,
        } => Node::Repeat {
            min: *min,
            max: *max,
            greed: *greed,
            sub: Box::new(r(sub)?),
        },
        Node::Concat(items) => Node::Concat(items.iter().map(r).collect::<Option<_>>()?),
        Node::Alt(items) => Node::Alt(items.iter().map(r).collect::<Option<_>>()?),
        Node::Cond { group, yes, no } => Node::Cond {
            group: *group,
            yes: Box::new(r(yes)?),
            no: Box::new(r(no)?),
        },
        _ => node.clone(),
    })
}

fn uncased_text(node: &Node) -> bool {
    !node.any(&|n| matches!(n, Node::Char { c, .. } if c.is_alphabetic() || !c.is_ascii()))
}

/// A node that never matches.
fn fail() -> Node {
    Node::Class(Class {
        negated: false,
        items: Vec::new(),
        case: Case::Sensitive,
    })
}

/// Replaces group `g` inside `item` by one alternative per string it can match, in
/// Python's priority order, so that each alternative knows the group's text.
fn split_finite_group(item: &Node, g: usize) -> Option<Node> {
    match item {
        Node::Group {
            index: Some(i),
            sub,
        } if *i == g => {
            let strings = finite_strings(sub)?;
            if strings.is_empty() {
                return None;
            }
            Some(Node::Alt(
                strings
                    .into_iter()
                    .map(|s| {
                        let chars = s
                            .chars()
                            .map(|c| Node::Char {
                                c,
                                case: Case::Sensitive,
                            })
                            .collect();
                        Node::group(Some(g), Node::Concat(chars))
                    })
                    .collect(),
            ))
        }
        Node::Group { index, sub } => Some(Node::group(*index, split_finite_group(sub, g)?)),
        Node::Concat(items) => Some(Node::Concat(
            items
                .iter()
                .map(|n| {
                    if n.contains_group(g) {
                        split_finite_group(n, g)
                    } else {
                        Some(n.clone())
                    }
                })
                .collect::<Option<_>>()?,
        )),
        Node::Alt(items) => Some(Node::Alt(
            items
                .iter()
                .map(|n| {
                    if n.contains_group(g) {
                        split_finite_group(n, g)
                    } else {
                        Some(n.clone())
                    }
                })
                .collect::<Option<_>>()?,
        )),
        Node::Repeat {
            min,
            max,
            greed,
            sub,
        } if *max == Some(1) => Some(Node::Repeat {
            min: *min,
            max: *max,
            greed: *greed,
            sub: Box::new(split_finite_group(sub, g)?),
        }),
        _ => None,
    }
}

const MAX_STRINGS: usize = 16;

/// The strings `node` can match, in the order Python's matcher tries them; `None`
/// when there are too many, or the node has groups or assertions of its own.
fn finite_strings(node: &Node) -> Option<Vec<String>> {
    let out = match node {
        Node::Empty => vec![String::new()],
        Node::Char { c, case } => {
            // Distinct single characters exclude one another, so their order is moot.
            set_strings(&charset::char_set(*c, *case))?
        }
        Node::Class(class) => set_strings(&charset::class_set(class))?,
        Node::Group { index: None, sub } => finite_strings(sub)?,
        Node::Concat(items) => {
            let mut acc = vec![String::new()];
            for item in items {
                let next = finite_strings(item)?;
                if acc.len().saturating_mul(next.len()) > MAX_STRINGS {
                    return None;
                }
                acc = acc
                    .iter()
                    .flat_map(|a| next.iter().map(move |b| format!("{a}{b}")))
                    .collect();
            }
            acc
        }
        Node::Alt(items) => {
            let mut acc = Vec::new();
            for item in items {
                acc.extend(finite_strings(item)?);
            }
            acc
        }
        Node::Repeat {
            min,
            max: Some(max),
            greed,
            sub,
        } if *max <= 4 && !sub.nullable() => {
            let options = finite_strings(sub)?;
            repeat_strings(&options, *min, *max, *greed)?
        }
        _ => return None,
    };
    (out.len() <= MAX_STRINGS).then_some(out)
}

/// Strings of `x{min,max}` in backtracking order: each iteration's options in order,
/// a greedy loop trying one more iteration before stopping, a lazy one after.
fn repeat_strings(options: &[String], min: u32, max: u32, greed: Greed) -> Option<Vec<String>> {
    if max == 0 {
        return Some(vec![String::new()]);
    }
    let mut more = Vec::new();
    for o in options {
        for rest in repeat_strings(options, min.saturating_sub(1), max - 1, greed)? {
            more.push(format!("{o}{rest}"));
            if more.len() > MAX_STRINGS {
                return None;
            }
        }
    }
    Some(match (min, greed) {
        (0, Greed::Greedy) => {
            more.push(String::new());
            more
        }
        (0, Greed::Lazy) => {
            let mut out = vec![String::new()];
            out.extend(more);
            out
        }
        (0, Greed::Possessive) => return None,
        _ => more,
    })
}

fn set_strings(set: &ClassUnicode) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for r in set.ranges() {
        for c in r.start()..=r.end() {
            out.push(c.to_string());
            if out.len() > MAX_STRINGS {
                return None;
            }
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------
// Context-dependent rewrites: lookbehinds, boundary lookaheads, tempered loops
// ---------------------------------------------------------------------------------

/// What can precede a position, worked out only where a lookbehind asks: most of a
/// pattern has none, and working it out at every element of every sequence walked
/// each element's subtree once per enclosing sequence.
#[derive(Clone, Copy)]
enum Before<'a> {
    /// Possibly nothing (the start of the text), or anything.
    Unknown,
    /// What `base` says, followed by the elements `items` of a sequence.
    After {
        base: &'a Before<'a>,
        items: &'a [Node],
    },
}

impl Before<'_> {
    /// `None`: possibly nothing, or anything; otherwise always some character, from
    /// this set. The elements are read from the last one back: the first that cannot
    /// match empty ends the set, as it would have started it over going forwards.
    fn chars(&self) -> Option<ClassUnicode> {
        let Before::After { base, items } = self else {
            return None;
        };
        let mut set = ClassUnicode::empty();
        for item in items.iter().rev() {
            set.union(&last_chars(item)?);
            if !item.nullable() {
                return Some(set);
            }
        }
        let mut before = base.chars()?;
        before.union(&set);
        Some(before)
    }
}

/// What follows a position: the elements `items`, then what follows them (`outer`).
/// Linked rather than copied: each element of a sequence would otherwise get a copy
/// of the rest of it and of everything after.
#[derive(Clone, Copy)]
struct After<'a> {
    items: &'a [Node],
    outer: Option<&'a After<'a>>,
}

impl<'a> After<'a> {
    const NOTHING: After<'static> = After {
        items: &[],
        outer: None,
    };

    fn iter(&self) -> impl Iterator<Item = &'a Node> + use<'a> {
        let mut at = Some(*self);
        std::iter::from_fn(move || {
            loop {
                let here = at.as_mut()?;
                if let Some((first, rest)) = here.items.split_first() {
                    here.items = rest;
                    return Some(first);
                }
                at = here.outer.copied();
            }
        })
    }
}

/// Rewrites `node` knowing what precedes it and what follows it (`after`: the
/// elements that come next, innermost first, as far as the sequence structure shows).
fn contextual(node: &Node, before: &Before<'_>, after: &After<'_>) -> Node {
    match node {
        Node::Look {
            behind: true,
            negate,
            sub,
        } => lookbehind(*negate, sub, before).unwrap_or_else(|| node.clone()),
        Node::Look {
            behind: false,
            negate: false,
            sub,
        } => boundary_lookahead(sub, after).unwrap_or_else(|| node.clone()),
        Node::Repeat {
            min: 0,
            max: None,
            greed: Greed::Greedy | Greed::Lazy,
            sub,
        } if tempered_parts(sub).is_some() => tempered(sub, after).unwrap_or_else(|| node.clone()),
        Node::Group { index, sub } => Node::group(*index, contextual(sub, before, after)),
        Node::Alt(items) => Node::Alt(items.iter().map(|i| contextual(i, before, after)).collect()),
        Node::Concat(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let here = Before::After {
                    base: before,
                    items: items.get(..i).unwrap_or(&[]),
                };
                let follow = After {
                    items: items.get(i + 1..).unwrap_or(&[]),
                    outer: Some(after),
                };
                out.push(contextual(item, &here, &follow));
            }
            Node::Concat(out)
        }
        Node::Repeat {
            min,
            max,
            greed,
            sub,
        } => Node::Repeat {
            min: *min,
            max: *max,
            greed: *greed,
            // Inside a loop the context is the loop itself; claim nothing.
            sub: Box::new(contextual(sub, &Before::Unknown, &After::NOTHING)),
        },
        _ => node.clone(),
    }
}

/// The characters a non-empty match of `node` can end with (`None`: unknown).
fn last_chars(node: &Node) -> Option<ClassUnicode> {
    Some(match node {
        Node::Empty | Node::Assert(_) | Node::Look { .. } => ClassUnicode::empty(),
        Node::Char { c, case } => charset::char_set(*c, *case),
        Node::Class(class) => charset::class_set(class),
        Node::Any { dotall } => charset::any(*dotall),
        Node::Group { sub, .. } | Node::Atomic(sub) => last_chars(sub)?,
        Node::Repeat { sub, max, .. } => {
            if *max == Some(0) {
                ClassUnicode::empty()
            } else {
                last_chars(sub)?
            }
        }
        Node::Alt(items) => {
            let mut set = ClassUnicode::empty();
            for i in items {
                set.union(&last_chars(i)?);
            }
            set
        }
        Node::Concat(items) => {
            let mut set = ClassUnicode::empty();
            for i in items.iter().rev() {
                set.union(&last_chars(i)?);
                if !i.nullable() {
                    break;
                }
            }
            set
        }
        Node::Backref { .. } | Node::Cond { .. } => return None,
    })
}

/// The set of a node that matches exactly one character.
fn single_char_set(node: &Node) -> Option<ClassUnicode> {
    match node {
        Node::Char { c, case } => Some(charset::char_set(*c, *case)),
        Node::Class(class) => Some(charset::class_set(class)),
        Node::Any { dotall } => Some(charset::any(*dotall)),
        Node::Group { index: None, sub } => single_char_set(sub),
        _ => None,
    }
}

fn subset(a: &ClassUnicode, b: &ClassUnicode) -> bool {
    let mut d = a.clone();
    d.difference(b);
    d.ranges().is_empty()
}

/// `(?<=L)` where `L` is one character class: when every character that can precede
/// this point lies in `L`, the assertion always holds (a preceding character always
/// exists in that context) and is dropped. fail2ban's IPv6 tag ends in
/// `(?:…|(?<=:):)` after a repetition whose every iteration ends in `:`.
/// `(?<!L)` is dropped when no preceding character can lie in `L`.
fn lookbehind(negate: bool, sub: &Node, before: &Before<'_>) -> Option<Node> {
    let set = single_char_set(sub)?;
    let prev = before.chars()?;
    if !negate && subset(&prev, &set) {
        return Some(Node::Empty);
    }
    if negate {
        let mut both = prev;
        both.intersect(&set);
        if both.ranges().is_empty() {
            return Some(Node::Empty);
        }
    }
    None
}

fn is_word_class(node: &Node, negated: bool) -> Option<bool> {
    match node {
        Node::Class(Class {
            negated: false,
            items,
            ..
        }) => match items.as_slice() {
            [
                ClassItem::Perl {
                    kind: Perl::Word,
                    negated: n,
                    ascii,
                },
            ] if *n == negated => Some(*ascii),
            _ => None,
        },
        _ => None,
    }
}

/// Date templates are wrapped in `(?=^|\b|\W)` … `(?=\b|\W|$)`.
///
/// `(?=\b|\W|$)` holds unless both neighbours are word characters: after a word
/// character, `\b` covers a following non-word character or the end, `\W` a following
/// non-word character, `$` the end or a final newline (itself non-word); after a
/// non-word character (or at the start) any next character satisfies `\b` or `\W`,
/// and the end satisfies `$`. So it is exactly "not between two word characters".
///
/// `(?=^|\b|\W)` differs from that only at the end of the text after a non-word
/// character (where `^`, `\b` and `\W` all fail), so it is rewritten only when what
/// follows cannot match the empty string at the end of the text anyway.
fn boundary_lookahead(sub: &Node, after: &After<'_>) -> Option<Node> {
    let Node::Alt(items) = sub else {
        return None;
    };
    let [a, b, c] = items.as_slice() else {
        return None;
    };
    // (?=\b|\W|$)
    if let (Node::Assert(Assertion::Boundary { ascii }), Node::Assert(end)) = (a, c) {
        if matches!(end, Assertion::EndOrFinalNewline | Assertion::LineEnd)
            && is_word_class(b, true) == Some(*ascii)
        {
            return Some(Node::Assert(Assertion::NotBetweenWords { ascii: *ascii }));
        }
        return None;
    }
    // (?=^|\b|\W)
    if let (Node::Assert(start), Node::Assert(Assertion::Boundary { ascii })) = (a, b)
        && matches!(start, Assertion::TextStart | Assertion::LineStart)
        && is_word_class(c, true) == Some(*ascii)
        && !after.iter().all(|n| n.nullable())
    {
        return Some(Node::Assert(Assertion::NotBetweenWords { ascii: *ascii }));
    }
    None
}

/// The tempered loop `(?:(?!S).)*` (any greed), `S` a plain string, in two contexts:
///
/// * followed by `$`: the loop's `.` never crosses a newline and `$` holds only at the
///   end of a line, so from a given start the only possible end is the end of the
///   line, and the loop gets there exactly when no occurrence of `S` starts on the
///   way; an occurrence cannot run past the end of the line since `S` has no
///   newline. The loop is replaced by a regular expression for "a line fragment
///   not containing `S`".
/// * followed by `S` itself: the loop cannot step over the first occurrence of `S`
///   after its start, and must stop where `S` follows, so it ends exactly at that
///   first occurrence. It is replaced by a regular expression for "`w` such that the
///   first occurrence of `S` in `wS` is the final one".
///
/// Both sets have at most one member ending at a usable position, so priority
/// among the loop's choices is moot.
fn tempered(sub: &Node, after: &After<'_>) -> Option<Node> {
    let (s, dotall) = tempered_parts(sub)?;
    let flat = flatten_follow(after);
    match flat.first() {
        Some(Node::Assert(Assertion::EndOrFinalNewline | Assertion::LineEnd)) if !dotall => {
            not_containing(&s, dotall, false)
        }
        _ => {
            let follows_s = flat.len() >= s.len()
                && s.iter().zip(flat.iter()).all(
                    |(c, n)| matches!(n, Node::Char { c: x, case: Case::Sensitive } if x == c),
                );
            if follows_s {
                not_containing(&s, dotall, true)
            } else {
                None
            }
        }
    }
}

/// `(?!S).` inside a (possibly non-capturing) group: the string `S` and the dot mode.
fn tempered_parts(sub: &Node) -> Option<(Vec<char>, bool)> {
    let inner = match sub {
        Node::Group { index: None, sub } => sub.as_ref(),
        other => other,
    };
    let Node::Concat(items) = inner else {
        return None;
    };
    let [
        Node::Look {
            behind: false,
            negate: true,
            sub: look,
        },
        Node::Any { dotall },
    ] = items.as_slice()
    else {
        return None;
    };
    let mut s = Vec::new();
    flatten_literal(look, &mut s)?;
    if s.is_empty() || s.len() > 32 || s.contains(&'\n') {
        return None;
    }
    Some((s, *dotall))
}

fn flatten_literal(node: &Node, out: &mut Vec<char>) -> Option<()> {
    match node {
        Node::Char {
            c,
            case: Case::Sensitive,
        } => out.push(*c),
        Node::Concat(items) => {
            for i in items {
                flatten_literal(i, out)?;
            }
        }
        Node::Group { index: None, sub } => flatten_literal(sub, out)?,
        _ => return None,
    }
    Some(())
}

/// The atoms that follow, with sequences and groups opened up (groups do not affect
/// what text can follow) and empty nodes skipped.
fn flatten_follow<'a>(after: &After<'a>) -> Vec<&'a Node> {
    fn go<'a>(n: &'a Node, out: &mut Vec<&'a Node>) -> bool {
        match n {
            Node::Empty => true,
            Node::Concat(items) => items.iter().all(|i| go(i, out)),
            Node::Group { sub, .. } => go(sub, out),
            other => {
                out.push(other);
                // Stop after the first atom that is not a plain character.
                matches!(other, Node::Char { .. })
            }
        }
    }
    let mut out = Vec::new();
    for n in after.iter() {
        if !go(n, &mut out) {
            break;
        }
    }
    out
}

/// A regular expression over `.` (newline excluded unless `dotall`) for the strings
/// that do not contain `s`; with `before_s`, for the strings `w` such that `w` followed
/// by `s` has its first occurrence of `s` at the end. Built from the string-matching
/// automaton of `s` by state elimination.
fn not_containing(s: &[char], dotall: bool, before_s: bool) -> Option<Node> {
    let m = s.len();
    let mut distinct: Vec<char> = s.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    // Failure function of `s`.
    let mut fail = vec![0usize; m + 1];
    let mut k = 0;
    for i in 1..m {
        while k > 0 && s[i] != s[k] {
            k = fail[k];
        }
        if s[i] == s[k] {
            k += 1;
        }
        fail[i + 1] = k;
    }
    let step = |mut q: usize, c: char| -> usize {
        loop {
            if q < m && s[q] == c {
                return q + 1;
            }
            if q == 0 {
                return 0;
            }
            q = fail[q];
        }
    };
    let accepting: Vec<bool> = (0..m)
        .map(|q| {
            if !before_s {
                return true;
            }
            let mut state = q;
            for (j, &c) in s.iter().enumerate() {
                state = step(state, c);
                if state == m && j + 1 < m {
                    return false;
                }
            }
            state == m
        })
        .collect();
    // Edge labels: character sets between live states 0..m.
    let mut other = charset::any(dotall);
    for &c in &distinct {
        other.difference(&charset::char_set(c, Case::Sensitive));
    }
    // Matrix of regexes; index m is the start, m+1 the final state.
    let n = m + 2;
    let mut r: Vec<Vec<Option<Node>>> = vec![vec![None; n]; n];
    for q in 0..m {
        let mut labels: Vec<(usize, ClassUnicode)> = Vec::new();
        let mut add = |to: usize, set: &ClassUnicode| {
            if to == m {
                return;
            }
            if let Some(e) = labels.iter_mut().find(|(t, _)| *t == to) {
                e.1.union(set);
            } else {
                labels.push((to, set.clone()));
            }
        };
        for &c in &distinct {
            let set = charset::char_set(c, Case::Sensitive);
            if c == '\n' && !dotall {
                continue;
            }
            add(step(q, c), &set);
        }
        // A character outside `s` sends every state back to the start.
        if !other.ranges().is_empty() {
            add(0, &other);
        }
        for (to, set) in labels {
            r[q][to] = Some(set_node(set));
        }
        if accepting[q] {
            r[q][m + 1] = Some(Node::Empty);
        }
    }
    r[m][0] = Some(Node::Empty);
    // Eliminating the deepest states first keeps the expression nested and small:
    // each partial match of `s` becomes a suffix of the way back to the start.
    for k in (0..m).rev() {
        let self_loop = r[k][k].take();
        let star = self_loop.map(|l| Node::Repeat {
            min: 0,
            max: None,
            greed: Greed::Greedy,
            sub: Box::new(l),
        });
        let ins: Vec<usize> = (0..n).filter(|&i| i != k && r[i][k].is_some()).collect();
        let outs: Vec<usize> = (0..n).filter(|&j| j != k && r[k][j].is_some()).collect();
        for &i in &ins {
            for &j in &outs {
                let mut seq = vec![r[i][k].clone()?];
                if let Some(s) = &star {
                    seq.push(s.clone());
                }
                seq.push(r[k][j].clone()?);
                let path = Node::Concat(seq);
                r[i][j] = Some(match r[i][j].take() {
                    None => path,
                    Some(existing) => Node::Alt(vec![existing, path]),
                });
                if size(r[i][j].as_ref()?) > 4000 {
                    return None;
                }
            }
        }
        for row in r.iter_mut() {
            row[k] = None;
        }
        for cell in r[k].iter_mut() {
            *cell = None;
        }
    }
    let result = r[m][m + 1].take()?;
    Some(Node::group(None, simplify(result)))
}

fn set_node(set: ClassUnicode) -> Node {
    Node::Class(Class {
        negated: false,
        items: set
            .ranges()
            .iter()
            .map(|r| ClassItem::Range(r.start(), r.end()))
            .collect(),
        case: Case::Sensitive,
    })
}

/// Removes empty nodes from sequences and flattens nested sequences.
fn simplify(node: Node) -> Node {
    match node {
        Node::Concat(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match simplify(item) {
                    Node::Empty => {}
                    Node::Concat(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            match out.len() {
                0 => Node::Empty,
                1 => out.pop().unwrap_or(Node::Empty),
                _ => Node::Concat(out),
            }
        }
        Node::Alt(items) => Node::Alt(items.into_iter().map(simplify).collect()),
        Node::Group { index, sub } => Node::group(index, simplify(*sub)),
        Node::Repeat {
            min,
            max,
            greed,
            sub,
        } => Node::Repeat {
            min,
            max,
            greed,
            sub: Box::new(simplify(*sub)),
        },
        Node::Look {
            behind,
            negate,
            sub,
        } => Node::Look {
            behind,
            negate,
            sub: Box::new(simplify(*sub)),
        },
        Node::Atomic(sub) => Node::Atomic(Box::new(simplify(*sub))),
        Node::Cond { group, yes, no } => Node::Cond {
            group,
            yes: Box::new(simplify(*yes)),
            no: Box::new(simplify(*no)),
        },
        other => other,
    }
}
