//! The syntax tree of a Python pattern, with every flag already applied to the
//! node it governs (so rewrites and lowering never need to track flag scopes).

/// How a character or class compares case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Case {
    Sensitive,
    /// `re.IGNORECASE` on a str pattern (Unicode rules).
    Unicode,
    /// `re.IGNORECASE | re.ASCII`.
    Ascii,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Perl {
    Digit,
    Word,
    Space,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ClassItem {
    Range(char, char),
    /// `\d`, `\w`, `\s` (negated for `\D`, `\W`, `\S`); `ascii` under `re.ASCII`.
    Perl {
        kind: Perl,
        negated: bool,
        ascii: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Class {
    pub negated: bool,
    pub items: Vec<ClassItem>,
    pub case: Case,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Assertion {
    /// `^` without MULTILINE, and `\A`.
    TextStart,
    /// `^` with MULTILINE.
    LineStart,
    /// `$` without MULTILINE: the end, or before a newline that ends the text.
    EndOrFinalNewline,
    /// `$` with MULTILINE.
    LineEnd,
    /// `\Z`.
    TextEnd,
    /// `\b` (`ascii` under `re.ASCII`).
    Boundary { ascii: bool },
    /// `\B`.
    NotBoundary { ascii: bool },
    /// Not between two word characters (produced by rewrites, never by the parser).
    NotBetweenWords { ascii: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Greed {
    Greedy,
    Lazy,
    Possessive,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Node {
    Empty,
    Char {
        c: char,
        case: Case,
    },
    Class(Class),
    /// `.`; `dotall` when it also matches `\n`.
    Any {
        dotall: bool,
    },
    Assert(Assertion),
    /// A group; `index` is the Python group number of a capturing group.
    Group {
        index: Option<usize>,
        sub: Box<Node>,
    },
    Atomic(Box<Node>),
    Look {
        behind: bool,
        negate: bool,
        sub: Box<Node>,
    },
    Repeat {
        min: u32,
        max: Option<u32>,
        greed: Greed,
        sub: Box<Node>,
    },
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Backref {
        group: usize,
        case: Case,
    },
    Cond {
        group: usize,
        yes: Box<Node>,
        no: Box<Node>,
    },
}

impl Node {
    pub fn group(index: Option<usize>, sub: Node) -> Node {
        Node::Group {
            index,
            sub: Box::new(sub),
        }
    }

    /// Visits this node and every descendant, parents first.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Node)) {
        f(self);
        match self {
            Node::Group { sub, .. }
            | Node::Atomic(sub)
            | Node::Look { sub, .. }
            | Node::Repeat { sub, .. } => sub.walk(f),
            Node::Concat(items) | Node::Alt(items) => {
                for item in items {
                    item.walk(f);
                }
            }
            Node::Cond { yes, no, .. } => {
                yes.walk(f);
                no.walk(f);
            }
            Node::Empty
            | Node::Char { .. }
            | Node::Class(_)
            | Node::Any { .. }
            | Node::Assert(_)
            | Node::Backref { .. } => {}
        }
    }

    pub fn any(&self, pred: &dyn Fn(&Node) -> bool) -> bool {
        let mut found = false;
        self.walk(&mut |n| found |= pred(n));
        found
    }

    /// Whether this node needs a backtracking engine as it stands.
    pub fn is_fancy(&self) -> bool {
        self.any(&|n| {
            matches!(
                n,
                Node::Look { .. }
                    | Node::Backref { .. }
                    | Node::Cond { .. }
                    | Node::Atomic(_)
                    | Node::Repeat {
                        greed: Greed::Possessive,
                        ..
                    }
            )
        })
    }

    pub fn contains_group(&self, group: usize) -> bool {
        self.any(&|n| matches!(n, Node::Group { index: Some(i), .. } if *i == group))
    }

    /// Minimum and maximum width in characters (`None`: unbounded), as Python's
    /// `getwidth` counts them; `groups` gives the widths of groups for back-references.
    pub fn width(&self, groups: &dyn Fn(usize) -> (u64, Option<u64>)) -> (u64, Option<u64>) {
        match self {
            Node::Empty | Node::Assert(_) | Node::Look { .. } => (0, Some(0)),
            Node::Char { .. } | Node::Class(_) | Node::Any { .. } => (1, Some(1)),
            Node::Group { sub, .. } | Node::Atomic(sub) => sub.width(groups),
            Node::Repeat { min, max, sub, .. } => {
                let (lo, hi) = sub.width(groups);
                let lo = lo.saturating_mul(u64::from(*min));
                let hi = match (hi, max) {
                    (Some(0), _) => Some(0),
                    (Some(h), Some(m)) => Some(h.saturating_mul(u64::from(*m))),
                    _ => None,
                };
                (lo, hi)
            }
            Node::Concat(items) => items.iter().fold((0, Some(0)), |(lo, hi), item| {
                let (l, h) = item.width(groups);
                (
                    lo.saturating_add(l),
                    hi.zip(h).map(|(a, b)| a.saturating_add(b)),
                )
            }),
            Node::Alt(items) => {
                let mut lo = u64::MAX;
                let mut hi = Some(0);
                for item in items {
                    let (l, h) = item.width(groups);
                    lo = lo.min(l);
                    hi = hi.zip(h).map(|(a, b)| a.max(b));
                }
                (if items.is_empty() { 0 } else { lo }, hi)
            }
            Node::Backref { group, .. } => groups(*group),
            Node::Cond { yes, no, .. } => {
                let (l1, h1) = yes.width(groups);
                let (l2, h2) = no.width(groups);
                (l1.min(l2), h1.zip(h2).map(|(a, b)| a.max(b)))
            }
        }
    }

    /// Whether the node can match the empty string (assertions count as empty).
    pub fn nullable(&self) -> bool {
        self.width(&|_| (0, None)).0 == 0
    }
}
