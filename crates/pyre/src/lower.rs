//! Lowering of the syntax tree to the two engines: a `regex-syntax` `Hir` for the
//! linear-time engine, and pattern text for `fancy-regex`.
//!
//! Both lowerings spell out Python's character sets explicitly (see `charset`), and
//! both keep Python's group numbers: `Hir` capture indices are the Python numbers
//! (a group duplicated by a rewrite keeps its number), and the fancy text keeps every
//! capturing parenthesis in its original order.

use std::fmt::Write;
use std::sync::OnceLock;

use regex_syntax::hir::{self, ClassUnicode, Hir, Look};

use crate::ast::{Assertion, Greed, Node, Perl};
use crate::charset;

/// What the linear engine cannot decide on every haystack by itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Caveats {
    /// A non-MULTILINE `$` was lowered to "end of line", which equals Python's
    /// "end, or before a final newline" only on text with no other newline.
    pub single_line: bool,
    /// A Unicode `\b`/`\B` was lowered to the `regex` crate's, whose notion of a word
    /// character differs from Python's on a few characters.
    pub word_boundary: bool,
    /// Python's `\B` never matches in an empty text; the `regex` crate's does.
    pub not_boundary: bool,
}

/// Lowers a tree free of lookaround, back-references, conditionals and atomic groups.
///
/// With `ascii`, the result is only meant for ASCII haystacks: every set is cut down
/// to its ASCII part and word boundaries become ASCII ones (Python's word characters
/// among ASCII are exactly `[0-9A-Za-z_]`), which is exact on such haystacks and
/// gives much smaller automata than Python's large Unicode classes.
pub(crate) fn to_hir(node: &Node, caveats: &mut Caveats, ascii: bool) -> Option<Hir> {
    let set = |mut s: ClassUnicode| {
        if ascii {
            s.intersect(&charset::ascii_set());
        }
        class_hir(s)
    };
    Some(match node {
        Node::Empty => Hir::empty(),
        Node::Char { c, case } => set(charset::char_set(*c, *case)),
        Node::Class(class) => match charset::lone_perl(class) {
            Some((kind, negated, a)) if ascii => {
                class_hir(charset::perl_ascii_kept(kind, negated, a).clone())
            }
            _ => set(charset::class_set(class)),
        },
        Node::Any { dotall } => set(charset::any(*dotall)),
        Node::Assert(a) => match look(*a, caveats, ascii) {
            Looks::One(l) => Hir::look(l),
            Looks::Either(a, b) => Hir::alternation(vec![Hir::look(a), Hir::look(b)]),
        },
        Node::Group { index, sub } => {
            let sub = to_hir(sub, caveats, ascii)?;
            match index {
                Some(i) => Hir::capture(hir::Capture {
                    index: u32::try_from(*i).ok()?,
                    name: None,
                    sub: Box::new(sub),
                }),
                None => sub,
            }
        }
        Node::Repeat {
            min,
            max,
            greed,
            sub,
        } => {
            let greedy = match greed {
                Greed::Greedy => true,
                Greed::Lazy => false,
                Greed::Possessive => return None,
            };
            Hir::repetition(hir::Repetition {
                min: *min,
                max: *max,
                greedy,
                sub: Box::new(to_hir(sub, caveats, ascii)?),
            })
        }
        Node::Concat(items) => Hir::concat(
            items
                .iter()
                .map(|n| to_hir(n, caveats, ascii))
                .collect::<Option<Vec<_>>>()?,
        ),
        Node::Alt(items) => Hir::alternation(
            items
                .iter()
                .map(|n| to_hir(n, caveats, ascii))
                .collect::<Option<Vec<_>>>()?,
        ),
        // Hand-made lowerings of exact rewrites use these wrappers.
        Node::Look { .. } | Node::Backref { .. } | Node::Cond { .. } | Node::Atomic(_) => {
            return None;
        }
    })
}

/// The `regex` crate's assertions for a Python one: one, or either of two.
enum Looks {
    One(Look),
    Either(Look, Look),
}

fn look(a: Assertion, caveats: &mut Caveats, ascii: bool) -> Looks {
    Looks::One(match a {
        Assertion::TextStart => Look::Start,
        Assertion::LineStart => Look::StartLF,
        Assertion::EndOrFinalNewline => {
            caveats.single_line = true;
            Look::EndLF
        }
        Assertion::LineEnd => Look::EndLF,
        Assertion::TextEnd => Look::End,
        Assertion::Boundary { ascii: true } => Look::WordAscii,
        Assertion::Boundary { ascii: false } if ascii => Look::WordAscii,
        Assertion::Boundary { ascii: false } => {
            caveats.word_boundary = true;
            Look::WordUnicode
        }
        Assertion::NotBetweenWords { ascii: a } => {
            return if a || ascii {
                Looks::Either(Look::WordStartHalfAscii, Look::WordEndHalfAscii)
            } else {
                caveats.word_boundary = true;
                Looks::Either(Look::WordStartHalfUnicode, Look::WordEndHalfUnicode)
            };
        }
        Assertion::NotBoundary { ascii: a } => {
            caveats.not_boundary = true;
            if a || ascii {
                Look::WordAsciiNegate
            } else {
                caveats.word_boundary = true;
                Look::WordUnicodeNegate
            }
        }
    })
}

/// What `to_hir(node, caveats, false)` would say about `node` (whether it lowers, and
/// its caveats) without building the `Hir`: deciding whether the linear engine runs
/// a pattern is done for every pattern that runs, and the Unicode `Hir` it would
/// build is rarely needed (nearly every haystack takes the ASCII automaton).
pub(crate) fn lowers(node: &Node, caveats: &mut Caveats) -> bool {
    match node {
        Node::Empty | Node::Char { .. } | Node::Class(_) | Node::Any { .. } => true,
        Node::Assert(a) => {
            look(*a, caveats, false);
            true
        }
        Node::Group { index, sub } => {
            lowers(sub, caveats) && index.is_none_or(|i| u32::try_from(i).is_ok())
        }
        Node::Repeat { greed, sub, .. } => *greed != Greed::Possessive && lowers(sub, caveats),
        Node::Concat(items) | Node::Alt(items) => items.iter().all(|n| lowers(n, caveats)),
        Node::Look { .. } | Node::Backref { .. } | Node::Cond { .. } | Node::Atomic(_) => false,
    }
}

fn class_hir(set: ClassUnicode) -> Hir {
    let ranges = set.ranges();
    if let [r] = ranges
        && r.start() == r.end()
    {
        let mut buf = [0u8; 4];
        return Hir::literal(r.start().encode_utf8(&mut buf).as_bytes());
    }
    Hir::class(hir::Class::Unicode(set))
}

/// Writes `node` as `fancy-regex` pattern text with Python's semantics.
pub(crate) fn to_fancy(node: &Node) -> String {
    let mut out = String::new();
    fancy(node, &mut out, Dialect::Fancy);
    out
}

/// The same pattern for PCRE2. Nothing in it depends on PCRE2's own idea of word
/// characters or case (UCP may be on): every class and boundary is spelled out.
#[cfg(feature = "pcre2")]
pub(crate) fn to_pcre2(node: &Node) -> String {
    let mut out = String::new();
    fancy(node, &mut out, Dialect::Pcre2);
    out
}

/// Where the two backtracking dialects differ.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Fancy,
    #[cfg_attr(not(feature = "pcre2"), allow(dead_code))]
    Pcre2,
}

fn push_char(c: char, out: &mut String, dialect: Dialect) {
    // PCRE2 (in UTF mode, not extended) takes a non-ASCII character as itself, in a
    // class or out of one; spelled out it would cost PCRE2 an escape to parse for
    // each end of each of the hundreds of ranges of a Unicode class.
    if c.is_ascii_alphanumeric()
        || c == '_'
        || c == ' '
        || (dialect == Dialect::Pcre2 && !c.is_ascii())
    {
        out.push(c);
    } else {
        // By hand: Unicode classes spell out hundreds of ranges, and the formatting
        // machinery was a good part of building a pattern.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let code = u32::from(c);
        out.push_str("\\x{");
        let digits = (32 - code.leading_zeros()).div_ceil(4).max(1);
        for shift in (0..digits).rev() {
            out.push(char::from(HEX[((code >> (shift * 4)) & 0xf) as usize]));
        }
        out.push('}');
    }
}

fn push_set(set: &ClassUnicode, out: &mut String, dialect: Dialect) {
    let ranges = set.ranges();
    if let [r] = ranges
        && r.start() == r.end()
    {
        push_char(r.start(), out, dialect);
        return;
    }
    if ranges.is_empty() {
        // A class that matches nothing.
        out.push_str("[^\\x{0}-\\x{10ffff}]");
        return;
    }
    out.push('[');
    for r in ranges {
        push_char(r.start(), out, dialect);
        if r.end() != r.start() {
            out.push('-');
            push_char(r.end(), out, dialect);
        }
    }
    out.push(']');
}

fn word_class(out: &mut String, dialect: Dialect) {
    push_perl(Perl::Word, false, false, out, dialect);
}

/// A category as `push_set` writes it, kept: a Unicode `\w` is some 700 ranges to
/// write, and a pattern's `\b`s and categories write them again and again.
fn push_perl(kind: Perl, negated: bool, ascii: bool, out: &mut String, dialect: Dialect) {
    static TEXTS: [[OnceLock<String>; 12]; 2] = [const { [const { OnceLock::new() }; 12] }; 2];
    let texts = match dialect {
        Dialect::Fancy => &TEXTS[0],
        Dialect::Pcre2 => &TEXTS[1],
    };
    out.push_str(
        texts[charset::perl_index(kind, negated, ascii)].get_or_init(|| {
            let mut text = String::new();
            push_set(charset::perl_kept(kind, negated, ascii), &mut text, dialect);
            text
        }),
    );
}

fn fancy(node: &Node, out: &mut String, dialect: Dialect) {
    match node {
        Node::Empty => out.push_str("(?:)"),
        Node::Char { c, case } => push_set(&charset::char_set(*c, *case), out, dialect),
        Node::Class(class) => match charset::lone_perl(class) {
            Some((kind, negated, ascii)) => push_perl(kind, negated, ascii, out, dialect),
            None => push_set(&charset::class_set(class), out, dialect),
        },
        Node::Any { dotall } => push_set(&charset::any(*dotall), out, dialect),
        Node::Assert(a) => match *a {
            Assertion::TextStart => out.push_str("\\A"),
            // PCRE2's multi-line `^` does not match after a newline that ends the
            // text; Python's does.
            Assertion::LineStart => out.push_str(match dialect {
                Dialect::Fancy => "(?m:^)",
                Dialect::Pcre2 => "(?<![^\\n])",
            }),
            Assertion::EndOrFinalNewline => out.push_str("(?=\\n?\\z)"),
            Assertion::LineEnd => out.push_str(match dialect {
                Dialect::Fancy => "(?m:$)",
                Dialect::Pcre2 => "(?=\\n|\\z)",
            }),
            Assertion::TextEnd => out.push_str("\\z"),
            Assertion::Boundary { ascii: true } => out.push_str(match dialect {
                Dialect::Fancy => "(?-u:\\b)",
                Dialect::Pcre2 => "(?:(?<=[0-9A-Za-z_])(?![0-9A-Za-z_])|(?<![0-9A-Za-z_])(?=[0-9A-Za-z_]))",
            }),
            Assertion::NotBoundary { ascii: true } => out.push_str(match dialect {
                Dialect::Fancy => "(?:(?-u:\\B)(?!\\A\\z))",
                Dialect::Pcre2 => {
                    "(?:(?<=[0-9A-Za-z_])(?=[0-9A-Za-z_])|(?<![0-9A-Za-z_])(?![0-9A-Za-z_]))(?!\\A\\z)"
                }
            }),
            Assertion::NotBetweenWords { ascii: true } => {
                out.push_str("(?:(?<![0-9A-Za-z_])|(?![0-9A-Za-z_]))");
            }
            Assertion::NotBetweenWords { ascii: false } => {
                out.push_str("(?:(?<!");
                word_class(out, dialect);
                out.push_str(")|(?!");
                word_class(out, dialect);
                out.push_str("))");
            }
            Assertion::Boundary { ascii: false } => {
                out.push_str("(?:(?<=");
                word_class(out, dialect);
                out.push_str(")(?!");
                word_class(out, dialect);
                out.push_str(")|(?<!");
                word_class(out, dialect);
                out.push_str(")(?=");
                word_class(out, dialect);
                out.push_str("))");
            }
            Assertion::NotBoundary { ascii: false } => {
                out.push_str("(?:(?<=");
                word_class(out, dialect);
                out.push_str(")(?=");
                word_class(out, dialect);
                out.push_str(")|(?<!");
                word_class(out, dialect);
                out.push_str(")(?!");
                word_class(out, dialect);
                out.push_str(")(?!\\A\\z))");
            }
        },
        Node::Group { index, sub } => {
            out.push_str(if index.is_some() { "(" } else { "(?:" });
            fancy(sub, out, dialect);
            out.push(')');
        }
        Node::Atomic(sub) => {
            out.push_str("(?>");
            fancy(sub, out, dialect);
            out.push(')');
        }
        Node::Look {
            behind,
            negate,
            sub,
        } => {
            out.push_str(match (behind, negate) {
                (false, false) => "(?=",
                (false, true) => "(?!",
                (true, false) => "(?<=",
                (true, true) => "(?<!",
            });
            fancy(sub, out, dialect);
            out.push(')');
        }
        Node::Repeat {
            min,
            max,
            greed,
            sub,
        } if sub.width(&|_| (0, None)).1 == Some(0) && !matches!(max, Some(0)) => {
            // fancy-regex refuses to repeat an assertion. Repeating something that
            // consumes nothing is the same as doing it once; with a minimum of zero
            // it may also be skipped, in the order the greed says.
            if *min > 0 {
                fancy(sub, out, dialect);
            } else {
                out.push_str("(?:");
                if *greed == Greed::Lazy {
                    out.push('|');
                    fancy(sub, out, dialect);
                } else {
                    fancy(sub, out, dialect);
                    out.push('|');
                }
                out.push(')');
            }
        }
        Node::Repeat {
            min,
            max,
            greed,
            sub,
        } => {
            if *greed == Greed::Possessive {
                out.push_str("(?>");
            }
            // A repeated single character goes out bare (`[…]+`, not `(?:[…]){1,}`):
            // PCRE2 runs it as one loop opcode and can make it possessive where what
            // follows cannot overlap, instead of keeping a backtracking frame per
            // repetition of a group.
            if matches!(**sub, Node::Char { .. } | Node::Class(_) | Node::Any { .. }) {
                fancy(sub, out, dialect);
            } else {
                out.push_str("(?:");
                fancy(sub, out, dialect);
                out.push(')');
            }
            match (min, max) {
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                (0, Some(1)) => out.push('?'),
                (_, Some(max)) => {
                    let _ = write!(out, "{{{min},{max}}}");
                }
                (_, None) => {
                    let _ = write!(out, "{{{min},}}");
                }
            }
            if *greed == Greed::Lazy {
                out.push('?');
            }
            if *greed == Greed::Possessive {
                out.push(')');
            }
        }
        Node::Concat(items) => {
            out.push_str("(?:");
            for item in items {
                fancy(item, out, dialect);
            }
            out.push(')');
        }
        Node::Alt(items) => {
            out.push_str("(?:");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                fancy(item, out, dialect);
            }
            out.push(')');
        }
        Node::Backref { group, case } => {
            // Grouped, so that a following digit cannot extend the number.
            if *case == crate::ast::Case::Sensitive {
                let _ = write!(out, "(?:\\{group})");
            } else {
                let _ = write!(out, "(?i:\\{group})");
            }
        }
        Node::Cond { group, yes, no } => {
            let _ = write!(out, "(?({group})");
            fancy(yes, out, dialect);
            out.push('|');
            fancy(no, out, dialect);
            out.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_lower_case_hex() {
        for c in [
            '\0',
            '\t',
            '\x10',
            '.',
            '\u{ff}',
            '\u{100}',
            '\u{2028}',
            '\u{1f600}',
            '\u{10ffff}',
        ] {
            let mut out = String::new();
            push_char(c, &mut out, Dialect::Fancy);
            assert_eq!(out, format!("\\x{{{:x}}}", u32::from(c)));
        }
        let mut out = String::new();
        push_char('a', &mut out, Dialect::Fancy);
        assert_eq!(out, "a");
    }

    /// The kept categories and their kept texts are what would be made afresh.
    #[test]
    fn kept_categories_are_made_afresh_alike() {
        use crate::ast::{Case, Class, ClassItem};
        for kind in [Perl::Digit, Perl::Word, Perl::Space] {
            for negated in [false, true] {
                for ascii in [false, true] {
                    let fresh = charset::perl(kind, negated, ascii);
                    assert_eq!(charset::perl_kept(kind, negated, ascii), &fresh);
                    let mut cut = fresh.clone();
                    cut.intersect(&charset::ascii_set());
                    assert_eq!(charset::perl_ascii_kept(kind, negated, ascii), &cut);
                    for case in [Case::Sensitive, Case::Ascii, Case::Unicode] {
                        let class = Class {
                            negated: false,
                            items: vec![ClassItem::Perl {
                                kind,
                                negated,
                                ascii,
                            }],
                            case,
                        };
                        assert_eq!(charset::class_set(&class), fresh);
                        for dialect in [Dialect::Fancy, Dialect::Pcre2] {
                            let (mut kept, mut made) = (String::new(), String::new());
                            fancy(&Node::Class(class.clone()), &mut kept, dialect);
                            push_set(&fresh, &mut made, dialect);
                            assert_eq!(kept, made);
                        }
                    }
                }
            }
        }
        for dialect in [Dialect::Fancy, Dialect::Pcre2] {
            let (mut kept, mut made) = (String::new(), String::new());
            word_class(&mut kept, dialect);
            push_set(charset::word(), &mut made, dialect);
            assert_eq!(kept, made);
        }
    }

    #[test]
    fn pcre2_takes_non_ascii_characters_as_they_are() {
        for (c, text) in [
            ('\0', "\\x{0}"),
            ('-', "\\x{2d}"),
            (']', "\\x{5d}"),
            ('\x7f', "\\x{7f}"),
            ('\u{80}', "\u{80}"),
            ('\u{2028}', "\u{2028}"),
            ('\u{10ffff}', "\u{10ffff}"),
        ] {
            let mut out = String::new();
            push_char(c, &mut out, Dialect::Pcre2);
            assert_eq!(out, text);
        }
    }
}
