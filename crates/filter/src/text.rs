//! Captured texts that share the string they were captured from.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A text captured from a line: a range of a string shared by every field captured
/// in the same search, so a failure's fields cost one allocation, not one each.
#[derive(Clone)]
pub struct Text {
    base: Arc<str>,
    start: u32,
    end: u32,
}

impl Text {
    /// `base[start..end]`, sharing `base`; both ends must be char boundaries of it.
    pub(crate) fn slice(base: &Arc<str>, start: usize, end: usize) -> Text {
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(s), Ok(e)) if base.get(start..end).is_some() => Text {
                base: Arc::clone(base),
                start: s,
                end: e,
            },
            // Beyond 4 GiB (or not a range of it): a copy of its own.
            _ => Text::from(base.get(start..end).unwrap_or_default()),
        }
    }

    /// `self[start..end]`, sharing the string; `None` past the end or off a boundary.
    pub(crate) fn sub(&self, start: usize, end: usize) -> Option<Text> {
        self.as_str().get(start..end)?;
        Some(Text {
            base: Arc::clone(&self.base),
            start: self.start + u32::try_from(start).ok()?,
            end: self.start + u32::try_from(end).ok()?,
        })
    }

    pub fn as_str(&self) -> &str {
        self.base
            .get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        let base: Arc<str> = Arc::from(s);
        Text::from(base)
    }
}

impl From<Arc<str>> for Text {
    fn from(base: Arc<str>) -> Text {
        match u32::try_from(base.len()) {
            Ok(end) => Text {
                base,
                start: 0,
                end,
            },
            // Not reachable for a log line; keep the first 4 GiB rather than fail.
            Err(_) => {
                let mut cut = u32::MAX as usize;
                while !base.is_char_boundary(cut) {
                    cut -= 1;
                }
                Text::from(&base[..cut])
            }
        }
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_share_and_compare_by_text() {
        let base: Arc<str> = Arc::from("user=bob ip=1.2.3.4");
        let user = Text::slice(&base, 5, 8);
        let ip = Text::slice(&base, 12, 19);
        assert_eq!((&*user, &*ip), ("bob", "1.2.3.4"));
        assert_eq!(Arc::strong_count(&base), 3);
        assert_eq!(user, Text::from("bob"));
        // Not a range of the base (past its end, inside a character): empty, no panic.
        assert_eq!(&*Text::slice(&base, 12, 40), "");
        let wide: Arc<str> = Arc::from("é");
        assert_eq!(&*Text::slice(&wide, 1, 2), "");
        let sub = ip.sub(2, 5).expect("inside");
        assert_eq!((&*sub, Arc::strong_count(&base)), ("2.3", 4));
        assert!(ip.sub(2, 8).is_none());
    }
}
