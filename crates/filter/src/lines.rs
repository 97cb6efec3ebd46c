//! Log lines split around their date, and the text the regexes see.

use std::sync::Arc;

use crate::Text;
use crate::text::Within;

/// A log line with the span of its date text.
///
/// fail2ban matches regexes against the line *without* its date (`before + after`) and
/// reports the whole line (`before + date + after`) as the matched line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TupleLine {
    full: Text,
    date_start: usize,
    date_end: usize,
}

impl TupleLine {
    /// A line whose date text is `line[date_start..date_end]` (an empty span when none).
    pub fn new(line: &str, date_start: usize, date_end: usize) -> TupleLine {
        let (date_start, date_end) = checked_span(line, date_start, date_end);
        TupleLine {
            full: Text::from(line),
            date_start,
            date_end,
        }
    }

    /// A line with no date text.
    pub fn undated(line: &str) -> TupleLine {
        TupleLine::new(line, 0, 0)
    }

    /// An undated line that shares its text with a captured value.
    pub(crate) fn undated_shared(line: Text) -> TupleLine {
        TupleLine {
            full: line,
            date_start: 0,
            date_end: 0,
        }
    }

    /// A line given as a date text (already known) and the rest of the line.
    pub fn with_date_prefix(date: &str, rest: &str) -> TupleLine {
        let mut full = String::with_capacity(date.len() + rest.len());
        full.push_str(date);
        full.push_str(rest);
        TupleLine {
            full: Text::from(Arc::<str>::from(full)),
            date_start: 0,
            date_end: date.len(),
        }
    }

    /// The line's text when it has no date (then all of it is what regexes see).
    pub(crate) fn undated_text(&self) -> Option<&Text> {
        (self.date_start == self.date_end).then_some(&self.full)
    }

    /// What the regexes see of this line, sharing its string, when that is one piece
    /// of it (no date, or a date at the start or the end).
    pub(crate) fn shared_text(&self) -> Option<Within<'_>> {
        let len = self.full.len();
        if self.date_start == 0 {
            Within::new(&self.full, self.date_end, len)
        } else if self.date_end == len {
            Within::new(&self.full, 0, self.date_start)
        } else {
            None
        }
    }

    /// The whole line, date included.
    pub fn full(&self) -> &str {
        &self.full
    }

    /// The date text.
    pub fn date(&self) -> &str {
        &self.full.as_str()[self.date_start..self.date_end]
    }

    /// Appends the line without its date to `out`.
    pub fn push_text(&self, out: &mut String) {
        let full = self.full.as_str();
        out.push_str(&full[..self.date_start]);
        out.push_str(&full[self.date_end..]);
    }

    /// The line without its date.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(self.full.len());
        self.push_text(&mut s);
        s
    }
}

/// The date span if it is one of `line`, else an empty one.
fn checked_span(line: &str, start: usize, end: usize) -> (usize, usize) {
    if start <= end
        && end <= line.len()
        && line.is_char_boundary(start)
        && line.is_char_boundary(end)
    {
        (start, end)
    } else {
        (0, 0)
    }
}

/// A line on its way into the filter, borrowed while it may still be dropped unseen
/// (most lines are: no failregex can match them), owned once it has to be kept.
#[derive(Debug)]
pub(crate) enum LineRef<'a> {
    Split {
        full: &'a str,
        date_start: usize,
        date_end: usize,
    },
    Owned(TupleLine),
}

impl LineRef<'_> {
    pub(crate) fn split(full: &str, date_start: usize, date_end: usize) -> LineRef<'_> {
        let (date_start, date_end) = checked_span(full, date_start, date_end);
        LineRef::Split {
            full,
            date_start,
            date_end,
        }
    }

    pub(crate) fn date(&self) -> &str {
        match self {
            LineRef::Split {
                full,
                date_start,
                date_end,
            } => &full[*date_start..*date_end],
            LineRef::Owned(t) => t.date(),
        }
    }

    /// The text the regexes see, as [`join_into`] gives it for this line alone.
    pub(crate) fn text_into(&self, out: &mut String) {
        out.clear();
        match self {
            LineRef::Split {
                full,
                date_start,
                date_end,
            } => {
                out.push_str(&full[..*date_start]);
                out.push_str(&full[*date_end..]);
            }
            LineRef::Owned(t) => t.push_text(out),
        }
        out.push('\n');
    }

    pub(crate) fn into_tuple(self) -> TupleLine {
        match self {
            LineRef::Split {
                full,
                date_start,
                date_end,
            } => TupleLine {
                full: Text::from(full),
                date_start,
                date_end,
            },
            LineRef::Owned(t) => t,
        }
    }
}

/// Builds the text fail2ban searches: the lines without dates, joined and ended by `\n`.
pub(crate) fn join_into(lines: &[TupleLine], out: &mut String) {
    out.clear();
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        l.push_text(out);
    }
    out.push('\n');
}

/// Python's `str.splitlines()`: every line boundary Python knows, without the ends.
pub(crate) fn split_lines_python(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut iter = s.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let boundary = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if boundary {
            out.push(&s[start..i]);
            let mut next = i + c.len_utf8();
            if let (true, Some(&(j, '\n'))) = (c == '\r', iter.peek()) {
                iter.next();
                next = j + 1;
            }
            start = next;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cuts_the_date() {
        let l = TupleLine::new("[2005-01-23 21:59:59] msg", 1, 20);
        assert_eq!(l.text(), "[] msg");
        assert_eq!(l.date(), "2005-01-23 21:59:59");
        assert_eq!(l.full(), "[2005-01-23 21:59:59] msg");
    }

    #[test]
    fn bad_spans_are_ignored() {
        let l = TupleLine::new("é", 0, 1);
        assert_eq!(l.text(), "é");
    }

    #[test]
    fn python_splitlines() {
        assert_eq!(split_lines_python("a\nb\r\nc\rd"), vec!["a", "b", "c", "d"]);
        assert_eq!(split_lines_python("a\n"), vec!["a"]);
        assert!(split_lines_python("").is_empty());
    }
}
