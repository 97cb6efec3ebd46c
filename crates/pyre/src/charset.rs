//! Python's character semantics as explicit sets: `\w`, `\d`, `\s`, `.` and
//! case-insensitive equivalence, from tables generated with Python itself.
//!
//! The Rust engines' own `\w`, `\s`, `\b` and `(?i)` follow Unicode's definitions,
//! which differ from Python's in places (Python's `\s` contains `\x1c`-`\x1f`, its `\w`
//! excludes combining marks, it matches `ı` case-insensitively with `i`, ...), so
//! patterns are lowered with these sets instead.

use std::sync::OnceLock;

use regex_syntax::hir::{ClassUnicode, ClassUnicodeRange};

use crate::ast::{Case, Class, ClassItem, Perl};
use crate::tables;

fn from_table(table: &[(char, char)]) -> ClassUnicode {
    ClassUnicode::new(table.iter().map(|&(a, b)| ClassUnicodeRange::new(a, b)))
}

fn ranges(list: &[(char, char)]) -> ClassUnicode {
    ClassUnicode::new(list.iter().map(|&(a, b)| ClassUnicodeRange::new(a, b)))
}

pub(crate) fn word() -> &'static ClassUnicode {
    static SET: OnceLock<ClassUnicode> = OnceLock::new();
    SET.get_or_init(|| from_table(tables::WORD))
}

fn digit() -> &'static ClassUnicode {
    static SET: OnceLock<ClassUnicode> = OnceLock::new();
    SET.get_or_init(|| from_table(tables::DIGIT))
}

fn space() -> &'static ClassUnicode {
    static SET: OnceLock<ClassUnicode> = OnceLock::new();
    SET.get_or_init(|| from_table(tables::SPACE))
}

/// Characters on which Python's `\w` and the `regex` crate's Unicode `\w` disagree;
/// a Unicode `\b` on the linear engine is exact only on text free of them.
pub(crate) fn word_disagreement() -> &'static [(char, char)] {
    static SET: OnceLock<Vec<(char, char)>> = OnceLock::new();
    SET.get_or_init(|| {
        let rust = regex_syntax::ParserBuilder::new()
            .build()
            .parse(r"\w")
            .ok()
            .and_then(|h| match h.kind() {
                regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(c)) => {
                    Some(c.clone())
                }
                _ => None,
            });
        let Some(rust) = rust else {
            // Without Rust's table every non-ASCII character is suspect.
            return vec![('\u{80}', '\u{10FFFF}')];
        };
        let mut diff = rust;
        diff.symmetric_difference(word());
        diff.ranges().iter().map(|r| (r.start(), r.end())).collect()
    })
}

pub(crate) fn in_ranges(c: char, ranges: &[(char, char)]) -> bool {
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `perl(kind, negated, ascii)`, kept: building a pattern's engines asks for `\w` and
/// the like over and over, and each Unicode one is hundreds of ranges to make.
pub(crate) fn perl_kept(kind: Perl, negated: bool, ascii: bool) -> &'static ClassUnicode {
    static SETS: [OnceLock<ClassUnicode>; 12] = [const { OnceLock::new() }; 12];
    SETS[perl_index(kind, negated, ascii)].get_or_init(|| perl(kind, negated, ascii))
}

/// `perl_kept(kind, negated, ascii)` cut down to ASCII, for the automata meant for
/// ASCII haystacks only.
pub(crate) fn perl_ascii_kept(kind: Perl, negated: bool, ascii: bool) -> &'static ClassUnicode {
    static SETS: [OnceLock<ClassUnicode>; 12] = [const { OnceLock::new() }; 12];
    SETS[perl_index(kind, negated, ascii)].get_or_init(|| {
        let mut set = perl_kept(kind, negated, ascii).clone();
        set.intersect(&ascii_set());
        set
    })
}

/// The ASCII characters.
pub(crate) fn ascii_set() -> ClassUnicode {
    ranges(&[('\0', '\x7f')])
}

/// Where the kept forms of a category go (12 of them: 3 kinds, negated or not, ASCII or
/// not).
pub(crate) fn perl_index(kind: Perl, negated: bool, ascii: bool) -> usize {
    let kind = match kind {
        Perl::Digit => 0,
        Perl::Word => 1,
        Perl::Space => 2,
    };
    kind * 4 + usize::from(negated) * 2 + usize::from(ascii)
}

/// The category a class is made of alone, if it is: its set is then the category's
/// (case-insensitivity does not apply to categories).
pub(crate) fn lone_perl(class: &Class) -> Option<(Perl, bool, bool)> {
    match class.items.as_slice() {
        [
            ClassItem::Perl {
                kind,
                negated,
                ascii,
            },
        ] if !class.negated => Some((*kind, *negated, *ascii)),
        _ => None,
    }
}

pub(crate) fn perl(kind: Perl, negated: bool, ascii: bool) -> ClassUnicode {
    let mut set = match (kind, ascii) {
        (Perl::Digit, true) => ranges(&[('0', '9')]),
        (Perl::Word, true) => ranges(&[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')]),
        (Perl::Space, true) => ranges(&[('\t', '\r'), (' ', ' ')]),
        (Perl::Digit, false) => digit().clone(),
        (Perl::Word, false) => word().clone(),
        (Perl::Space, false) => space().clone(),
    };
    if negated {
        set.negate();
    }
    set
}

fn case_entry(c: char) -> Option<(u16, bool)> {
    tables::CASE_CLASSES
        .binary_search_by(|e| e.0.cmp(&c))
        .ok()
        .and_then(|i| tables::CASE_CLASSES.get(i))
        .map(|e| (e.1, e.2))
}

/// Members of each case-equivalence class, indexed by class id.
fn case_members() -> &'static Vec<Vec<char>> {
    static MEMBERS: OnceLock<Vec<Vec<char>>> = OnceLock::new();
    MEMBERS.get_or_init(|| {
        let mut members: Vec<Vec<char>> = Vec::new();
        for &(c, id, _) in tables::CASE_CLASSES {
            let id = usize::from(id);
            if members.len() <= id {
                members.resize(id + 1, Vec::new());
            }
            if let Some(m) = members.get_mut(id) {
                m.push(c);
            }
        }
        members
    })
}

fn ascii_swap(c: char) -> Option<char> {
    if c.is_ascii_lowercase() {
        Some(c.to_ascii_uppercase())
    } else if c.is_ascii_uppercase() {
        Some(c.to_ascii_lowercase())
    } else {
        None
    }
}

/// The characters a pattern character `c` matches.
pub(crate) fn char_set(c: char, case: Case) -> ClassUnicode {
    let mut set = ranges(&[(c, c)]);
    match case {
        Case::Sensitive => {}
        Case::Ascii => {
            if let Some(o) = ascii_swap(c) {
                set.push(ClassUnicodeRange::new(o, o));
            }
        }
        Case::Unicode => {
            // An uncased pattern character matches only itself.
            if let Some((id, true)) = case_entry(c)
                && let Some(members) = case_members().get(usize::from(id))
            {
                for &m in members {
                    set.push(ClassUnicodeRange::new(m, m));
                }
            }
        }
    }
    set
}

/// The characters a `.` matches.
pub(crate) fn any(dotall: bool) -> ClassUnicode {
    if dotall {
        ranges(&[('\0', '\u{10FFFF}')])
    } else {
        ranges(&[('\0', '\x09'), ('\x0b', '\u{10FFFF}')])
    }
}

/// The characters a class matches, with Python's rules for case-insensitivity: the
/// class's characters are closed under case equivalence when any of them is cased,
/// categories (`\w` …) are not.
pub(crate) fn class_set(class: &Class) -> ClassUnicode {
    if let Some((kind, negated, ascii)) = lone_perl(class) {
        return perl_kept(kind, negated, ascii).clone();
    }
    let mut chars = ClassUnicode::empty();
    let mut cats = ClassUnicode::empty();
    for item in &class.items {
        match *item {
            ClassItem::Range(a, b) => chars.push(ClassUnicodeRange::new(a, b)),
            ClassItem::Perl {
                kind,
                negated,
                ascii,
            } => cats.union(perl_kept(kind, negated, ascii)),
        }
    }
    match class.case {
        Case::Sensitive => {}
        Case::Ascii => {
            let mut extra = Vec::new();
            for r in chars.ranges() {
                for c in r.start()..=r.end().min('\x7f') {
                    if let Some(o) = ascii_swap(c) {
                        extra.push(ClassUnicodeRange::new(o, o));
                    }
                }
            }
            chars.union(&ClassUnicode::new(extra));
        }
        Case::Unicode => {
            let mut cased = false;
            let mut ids = Vec::new();
            for r in chars.ranges() {
                let start = tables::CASE_CLASSES.partition_point(|e| e.0 < r.start());
                for e in tables::CASE_CLASSES.get(start..).unwrap_or(&[]) {
                    if e.0 > r.end() {
                        break;
                    }
                    cased |= e.2;
                    ids.push(e.1);
                }
            }
            if cased {
                ids.sort_unstable();
                ids.dedup();
                let members = case_members();
                let extra = ids
                    .iter()
                    .filter_map(|id| members.get(usize::from(*id)))
                    .flatten()
                    .map(|&m| ClassUnicodeRange::new(m, m));
                chars.union(&ClassUnicode::new(extra));
            }
        }
    }
    chars.union(&cats);
    if class.negated {
        chars.negate();
    }
    chars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(set: &ClassUnicode, c: char) -> bool {
        set.ranges().iter().any(|r| r.start() <= c && c <= r.end())
    }

    #[test]
    fn python_space_includes_information_separators() {
        let s = perl(Perl::Space, false, false);
        for c in ['\x1c', '\x1d', '\x1e', '\x1f', ' ', '\u{3000}'] {
            assert!(has(&s, c), "{c:?}");
        }
        assert!(!has(&s, 'a'));
        assert!(!has(&perl(Perl::Space, false, true), '\x1c'));
    }

    #[test]
    fn python_word_excludes_combining_marks() {
        let w = perl(Perl::Word, false, false);
        assert!(has(&w, 'é') && has(&w, '_') && has(&w, '²'));
        assert!(!has(&w, '\u{301}'));
        assert!(in_ranges('\u{301}', word_disagreement()));
        assert!(!in_ranges('a', word_disagreement()));
    }

    #[test]
    fn case_folding_follows_python() {
        let i = char_set('i', Case::Unicode);
        assert!(has(&i, 'I') && has(&i, 'ı') && has(&i, 'İ'));
        let k = char_set('k', Case::Unicode);
        assert!(has(&k, 'K') && has(&k, '\u{212a}'));
        assert!(!has(&char_set('k', Case::Ascii), '\u{212a}'));
        assert!(!has(&char_set('1', Case::Unicode), 'a'));
        let class = Class {
            negated: true,
            items: vec![ClassItem::Range('a', 'c')],
            case: Case::Unicode,
        };
        let set = class_set(&class);
        assert!(!has(&set, 'B') && has(&set, 'd'));
    }
}
