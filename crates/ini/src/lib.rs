//! The INI dialect of Python's `configparser`, as fail2ban configures it.
//!
//! Lossless enough for error messages: every section and entry keeps its line number.
//! No fail2ban knowledge (includes, overlays, interpolation) and no IO: text in,
//! document out.
//!
//! The dialect is the one of `ConfigParser(inline_comment_prefixes=";", strict=True)`:
//!
//! - `[name]` headers, case-sensitive, kept as written (`Init?family=inet6` too). The
//!   header runs from the first `[` to the *last* `]` of the line.
//! - `key = value` or `key: value`; the key ends at the first `=` or `:`, is
//!   lower-cased, and keeps inner spaces. Values keep their case.
//! - Lines whose first non-blank character is `#` or `;` are comments, even inside a
//!   multi-line value. A `;` preceded by whitespace starts an inline comment; `#` in
//!   the middle of a line is literal (regular expressions contain it).
//! - A line indented deeper than the line that started the current entry continues its
//!   value (joined with `\n`, each line stripped). Blank lines inside a value are kept
//!   when a continuation line follows; trailing ones are dropped.
//! - Within one document a section (other than `DEFAULT`) or a key in a section may
//!   appear only once. Repeated `[DEFAULT]` headers are merged.
//!
//! Two deliberate extensions: a leading UTF-8 byte order mark is ignored, and `\r\n`
//! or a lone `\r` end a line (Python reads files with universal newlines).

use std::fmt;

/// The name of the section whose entries every other section inherits.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// A parsed document: its sections in the order of their first header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Document {
    pub sections: Vec<Section>,
}

/// One `[name]` section with its entries in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The name as written between the brackets.
    pub name: String,
    /// 1-based line of the (first) header.
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// One `key = value` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Lower-cased key.
    pub key: String,
    /// The value, continuation lines joined with `\n`.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// A syntax error, with the 1-based line it was found on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl Document {
    /// The section called `name` (case-sensitive).
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The `[DEFAULT]` section, if the document has one.
    pub fn default_section(&self) -> Option<&Section> {
        self.section(DEFAULT_SECTION)
    }
}

impl Section {
    /// The entry for `key` (compared after lower-casing, as the parser stores keys).
    pub fn get(&self, key: &str) -> Option<&Entry> {
        let key = lower(key);
        self.entries.iter().find(|e| e.key == key)
    }
}

impl fmt::Display for Document {
    /// Writes the document back in a form that parses to the same document.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for section in &self.sections {
            writeln!(f, "[{}]", section.name)?;
            for entry in &section.entries {
                let mut lines = entry.value.split('\n');
                writeln!(f, "{} = {}", entry.key, lines.next().unwrap_or_default())?;
                for line in lines {
                    writeln!(f, "    {line}")?;
                }
            }
        }
        Ok(())
    }
}

/// Python's `str.isspace()`: Unicode White_Space plus the ASCII separators 0x1C–0x1F.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` without arguments.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Keys are folded the way `optionxform = str.lower` folds them.
pub fn lower(key: &str) -> String {
    key.to_lowercase()
}

/// An entry being built: the value lines collected so far.
struct Pending {
    section: usize,
    entry: usize,
    lines: Vec<String>,
}

/// Parses one document.
pub fn parse(text: &str) -> Result<Document, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut doc = Document::default();
    // Section index the following entries go to; `None` before the first header.
    let mut current: Option<usize> = None;
    let mut pending: Option<Pending> = None;
    let mut indent_level = 0usize;
    // A malformed line does not stop Python's parser: it reports the first one at the
    // end, unless a fatal error (duplicate, missing header) comes first.
    let mut deferred: Option<ParseError> = None;
    let mut seen_sections: Vec<String> = Vec::new();

    for (index, raw) in lines(text).enumerate() {
        let lineno = index + 1;
        let comment_start = comment_start(raw);
        let content = py_strip(&raw[..comment_start.unwrap_or(raw.len())]);
        if content.is_empty() {
            // A blank line may belong to a multi-line value; a comment line never does.
            if comment_start.is_none()
                && let Some(p) = pending.as_mut()
            {
                p.lines.push(String::new());
            }
            continue;
        }
        let indent = raw.chars().take_while(|&c| is_py_space(c)).count();
        if let Some(p) = pending.as_mut()
            && indent > indent_level
        {
            p.lines.push(content.to_string());
            continue;
        }
        indent_level = indent;
        if let Some(name) = section_header(content) {
            finish(&mut doc, pending.take());
            if name == DEFAULT_SECTION {
                current = Some(match doc.sections.iter().position(|s| s.name == name) {
                    Some(i) => i,
                    None => push_section(&mut doc, name, lineno),
                });
            } else {
                if seen_sections.iter().any(|s| s == name) {
                    return Err(ParseError {
                        line: lineno,
                        message: format!("section {name:?} already exists"),
                    });
                }
                seen_sections.push(name.to_string());
                current = Some(push_section(&mut doc, name, lineno));
            }
            continue;
        }
        let Some(section) = current else {
            return Err(ParseError {
                line: lineno,
                message: "entry before the first [section] header".to_string(),
            });
        };
        finish(&mut doc, pending.take());
        let Some((key, value)) = split_entry(content) else {
            deferred.get_or_insert(ParseError {
                line: lineno,
                message: format!("expected `key = value`, found {content:?}"),
            });
            continue;
        };
        let key_is_empty = key.is_empty();
        if key_is_empty {
            deferred.get_or_insert(ParseError {
                line: lineno,
                message: format!("empty key in {content:?}"),
            });
        }
        let key = lower(key);
        let sect = &mut doc.sections[section];
        if sect.entries.iter().any(|e| e.key == key) {
            return Err(ParseError {
                line: lineno,
                message: format!("option {key:?} in section {:?} already exists", sect.name),
            });
        }
        sect.entries.push(Entry {
            key,
            value: String::new(),
            line: lineno,
        });
        // Python keeps an empty key but never continues it.
        if !key_is_empty {
            pending = Some(Pending {
                section,
                entry: sect.entries.len() - 1,
                lines: vec![value.to_string()],
            });
        }
    }
    finish(&mut doc, pending.take());
    match deferred {
        Some(e) => Err(e),
        None => Ok(doc),
    }
}

fn push_section(doc: &mut Document, name: &str, line: usize) -> usize {
    doc.sections.push(Section {
        name: name.to_string(),
        line,
        entries: Vec::new(),
    });
    doc.sections.len() - 1
}

fn finish(doc: &mut Document, pending: Option<Pending>) {
    let Some(p) = pending else { return };
    let joined = p.lines.join("\n");
    let value = joined.trim_end_matches(is_py_space).to_string();
    if let Some(entry) = doc
        .sections
        .get_mut(p.section)
        .and_then(|s| s.entries.get_mut(p.entry))
    {
        entry.value = value;
    }
}

/// Splits text into lines the way Python's universal-newline reader does.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find(['\n', '\r']) {
            Some(i) => {
                let line = &rest[..i];
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
                Some(line)
            }
            None => {
                let line = rest;
                rest = "";
                Some(line)
            }
        }
    })
}

/// Byte offset where the comment of a line starts, if it has one.
fn comment_start(line: &str) -> Option<usize> {
    let stripped = py_strip(line);
    if stripped.starts_with('#') || stripped.starts_with(';') {
        return Some(0);
    }
    let mut prev: Option<char> = None;
    for (i, c) in line.char_indices() {
        if c == ';' && (i == 0 || prev.is_some_and(is_py_space)) {
            return Some(i);
        }
        prev = Some(c);
    }
    None
}

/// `[name]`: everything between the first `[` and the last `]`, at least one character.
fn section_header(content: &str) -> Option<&str> {
    let inner = content.strip_prefix('[')?;
    let end = inner.rfind(']')?;
    (end > 0).then(|| &inner[..end])
}

/// Splits at the first `=` or `:`; both sides stripped.
fn split_entry(content: &str) -> Option<(&str, &str)> {
    let at = content.find(['=', ':'])?;
    let key = content[..at].trim_end_matches(is_py_space);
    let value = py_strip(&content[at + 1..]);
    Some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(doc: &Document, section: &str) -> Vec<(String, String)> {
        doc.section(section)
            .map(|s| {
                s.entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_are_lowered_values_keep_case_and_both_delimiters_work() {
        let doc = parse("[Sec]\nFoo Bar = Value X\nb: c = d\n").unwrap();
        assert_eq!(
            entries(&doc, "Sec"),
            pairs(&[("foo bar", "Value X"), ("b", "c = d")])
        );
        assert!(doc.section("sec").is_none());
        assert_eq!(doc.sections[0].entries[1].line, 3);
    }

    #[test]
    fn multi_line_values_keep_inner_blank_lines_and_drop_trailing_ones() {
        let text = "[a]\nfailregex =\n    ^one\n\n    ^two\n\n\nnext = x\n";
        let doc = parse(text).unwrap();
        assert_eq!(
            entries(&doc, "a"),
            pairs(&[("failregex", "\n^one\n\n^two"), ("next", "x")])
        );
    }

    #[test]
    fn comments_full_line_inline_and_inside_values() {
        let text = "[a]\n# c\nk = v ; comment\n  ; indented comment\nr = a#b;c\nm = 1\n    # skipped\n    2\n";
        let doc = parse(text).unwrap();
        assert_eq!(
            entries(&doc, "a"),
            pairs(&[("k", "v"), ("r", "a#b;c"), ("m", "1\n2")])
        );
    }

    #[test]
    fn header_takes_up_to_the_last_bracket_and_conditions_are_kept() {
        let doc = parse("[Init?family=inet6]\na=1\n[x]y] trailing\nb=2\n").unwrap();
        assert_eq!(doc.sections[0].name, "Init?family=inet6");
        assert_eq!(doc.sections[1].name, "x]y");
    }

    #[test]
    fn duplicates_are_errors_with_their_line() {
        assert_eq!(parse("[a]\nk=1\nK=2\n").unwrap_err().line, 3);
        assert_eq!(parse("[a]\n[b]\n[a]\n").unwrap_err().line, 3);
        let doc = parse("[DEFAULT]\na=1\n[x]\n[DEFAULT]\nb=2\n").unwrap();
        assert_eq!(entries(&doc, "DEFAULT"), pairs(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn malformed_lines_and_missing_headers() {
        assert_eq!(parse("k = v\n").unwrap_err().line, 1);
        assert_eq!(parse("[a]\nno delimiter\nk=v\n").unwrap_err().line, 2);
        assert_eq!(parse("[a]\n= v\n").unwrap_err().line, 2);
    }

    #[test]
    fn bom_and_crlf_are_tolerated() {
        let doc = parse("\u{feff}[a]\r\nk = v\r\n  w\r\n").unwrap();
        assert_eq!(entries(&doc, "a"), pairs(&[("k", "v\nw")]));
    }

    #[test]
    fn display_round_trips() {
        let doc = parse("[a]\nk = v\n  w\n\n  x\n[b]\nz: 1\n").unwrap();
        let again = parse(&doc.to_string()).unwrap();
        assert_eq!(doc.sections.len(), again.sections.len());
        for (s, t) in doc.sections.iter().zip(&again.sections) {
            assert_eq!(entries(&doc, &s.name), entries(&again, &t.name));
        }
    }
}
