//! Captured texts that share the string they were captured from.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A text captured from a line. A long one is a range of a string shared by every
/// field captured in the same search, so a failure's fields cost one allocation, not
/// one each; a short one (a user, an address, a connection id: most fields) is kept
/// inline, because copying a few bytes is cheaper than the atomic reference count
/// every clone and drop of a shared string pays.
#[derive(Clone)]
pub struct Text(Repr);

/// Bytes a text keeps inline: with its length and the variant's tag, the size of the shared
/// form (a counted pointer, its length and a range, behind a tag of its own).
const INLINE: usize = 30;

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Shared {
        base: Arc<str>,
        start: u32,
        end: u32,
    },
}

impl Text {
    /// `base[start..end]`, sharing `base` unless it is short; both ends must be char
    /// boundaries of it.
    pub(crate) fn slice(base: &Arc<str>, start: usize, end: usize) -> Text {
        let Some(part) = base.get(start..end) else {
            return Text::from("");
        };
        if let Some(text) = Text::inline(part) {
            return text;
        }
        match (u32::try_from(start), u32::try_from(end)) {
            (Ok(s), Ok(e)) => Text(Repr::Shared {
                base: Arc::clone(base),
                start: s,
                end: e,
            }),
            // Beyond 4 GiB: a copy of its own.
            _ => Text::from(part),
        }
    }

    /// `self[start..end]`, sharing the string unless it is short; `None` past the end
    /// or off a boundary.
    pub(crate) fn sub(&self, start: usize, end: usize) -> Option<Text> {
        let part = self.as_str().get(start..end)?;
        if let Some(text) = Text::inline(part) {
            return Some(text);
        }
        match &self.0 {
            Repr::Shared { base, start: s, .. } => Some(Text(Repr::Shared {
                base: Arc::clone(base),
                start: s + u32::try_from(start).ok()?,
                end: s + u32::try_from(end).ok()?,
            })),
            Repr::Inline { .. } => Text::inline(part),
        }
    }

    /// A short text as an inline copy; `None` when it does not fit.
    pub(crate) fn inline(text: &str) -> Option<Text> {
        let len = text.len();
        if len > INLINE {
            return None;
        }
        let mut bytes = [0; INLINE];
        bytes[..len].copy_from_slice(text.as_bytes());
        Some(Text(Repr::Inline {
            len: len as u8,
            bytes,
        }))
    }

    /// `src[start..end]` as an inline copy; `None` when it does not fit or is not a
    /// piece of `src`.
    ///
    /// Where `src` goes on far enough, a fixed number of bytes is copied: a copy of
    /// the exact length (a call to `memcpy`) writes the buffer in small pieces that
    /// the moves of the new text then read back whole, and each such read waits for
    /// the writes to retire. That wait was a tenth of a busy filter's time. The bytes
    /// past the end are the ones that follow in `src`; nothing reads them.
    pub(crate) fn inline_of(src: &str, start: usize, end: usize) -> Option<Text> {
        let part = src.get(start..end)?;
        let len = part.len();
        if len > INLINE {
            return None;
        }
        let mut bytes = [0; INLINE];
        match src.as_bytes().get(start..start + INLINE) {
            Some(window) => bytes.copy_from_slice(window),
            None => bytes[..len].copy_from_slice(part.as_bytes()),
        }
        Some(Text(Repr::Inline {
            len: len as u8,
            bytes,
        }))
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => inline_str(bytes, *len),
            Repr::Shared { base, start, end } => {
                base.get(*start as usize..*end as usize).unwrap_or_default()
            }
        }
    }
}

/// A piece of a [`Text`], `base[start..end]`, borrowed: what a search ran over, whose
/// fields are then taken as [`Text::sub`]s of the base without a counted copy of the
/// piece itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Within<'a> {
    base: &'a Text,
    start: usize,
    end: usize,
}

impl<'a> Within<'a> {
    /// `base[start..end]`; `None` off its bounds or boundaries.
    pub(crate) fn new(base: &'a Text, start: usize, end: usize) -> Option<Within<'a>> {
        base.as_str().get(start..end)?;
        Some(Within { base, start, end })
    }

    pub(crate) fn as_str(&self) -> &'a str {
        self.base
            .as_str()
            .get(self.start..self.end)
            .unwrap_or_default()
    }

    /// `self[start..end]` as a text of its own (see [`Text::sub`]).
    pub(crate) fn sub(&self, start: usize, end: usize) -> Option<Text> {
        if end > self.end - self.start {
            return None;
        }
        self.base.sub(self.start + start, self.start + end)
    }
}

impl<'a> From<&'a Text> for Within<'a> {
    fn from(base: &'a Text) -> Within<'a> {
        Within {
            base,
            start: 0,
            end: base.len(),
        }
    }
}

/// The text of an inline [`Text`]. It is read on every field lookup, so it is not
/// validated again: its first `len` bytes were copied from a whole `&str` (see
/// [`Text::inline`] and [`Text::inline_of`], the only writers) and never change.
#[allow(unsafe_code)]
fn inline_str(bytes: &[u8; INLINE], len: u8) -> &str {
    let bytes = &bytes[..usize::from(len).min(INLINE)];
    debug_assert!(std::str::from_utf8(bytes).is_ok());
    // SAFETY: the first `len` bytes are a copy of all of a `&str` (`Text::inline`
    // writes `len` bytes from `text.as_bytes()`, `Text::inline_of` those of the
    // checked piece `src[start..end]` at the start of the buffer, and nothing else
    // writes them), so they are valid UTF-8.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        if let Some(text) = Text::inline(s) {
            return text;
        }
        let base: Arc<str> = Arc::from(s);
        Text::from(base)
    }
}

impl From<Arc<str>> for Text {
    fn from(base: Arc<str>) -> Text {
        match u32::try_from(base.len()) {
            Ok(end) => Text(Repr::Shared {
                base,
                start: 0,
                end,
            }),
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

// Hashed as its text, so that a map keyed by texts is searched with a `&str`.
impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

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
    fn long_slices_share_and_short_ones_are_copies() {
        let line = "user=bob ip=1.2.3.4 message=a text far longer than an inline one";
        let base: Arc<str> = Arc::from(line);
        let user = Text::slice(&base, 5, 8);
        let ip = Text::slice(&base, 12, 19);
        let message = Text::slice(&base, 28, line.len());
        assert_eq!((&*user, &*ip), ("bob", "1.2.3.4"));
        assert_eq!(&*message, "a text far longer than an inline one");
        // Only the long one holds the line.
        assert_eq!(Arc::strong_count(&base), 2);
        assert_eq!(user, Text::from("bob"));
        // Not a range of the base (past its end, inside a character): empty, no panic.
        assert_eq!(&*Text::slice(&base, 12, 400), "");
        let wide: Arc<str> = Arc::from("é");
        assert_eq!(&*Text::slice(&wide, 1, 2), "");
        let short = message.sub(2, 8).expect("inside");
        assert_eq!((&*short, Arc::strong_count(&base)), ("text f", 2));
        let long = message.sub(2, 36).expect("inside");
        assert_eq!(
            (&*long, Arc::strong_count(&base)),
            ("text far longer than an inline one", 3)
        );
        assert!(ip.sub(2, 8).is_none());
        assert_eq!(&*ip.sub(2, 5).expect("inside"), "2.3");
        // Every length around the inline limit reads back whole, multi-byte text too.
        let wide_line: String = "aé€𝄞".repeat(12);
        let wide_base: Arc<str> = Arc::from(wide_line.as_str());
        for end in (0..=wide_line.len()).filter(|&e| wide_line.is_char_boundary(e)) {
            assert_eq!(&*Text::slice(&wide_base, 0, end), &wide_line[..end]);
            assert_eq!(&*Text::from(&wide_line[..end]), &wide_line[..end]);
        }
    }

    #[test]
    fn an_inline_text_takes_no_more_room_than_a_shared_one() {
        assert_eq!(
            std::mem::size_of::<Text>(),
            std::mem::size_of::<(usize, Arc<str>, u32, u32)>()
        );
    }

    #[test]
    fn inline_pieces_read_back_whole_near_the_end_of_their_source_too() {
        let line: String = "aé€𝄞 ".repeat(6);
        for start in (0..=line.len()).filter(|&s| line.is_char_boundary(s)) {
            for end in (start..=line.len()).filter(|&e| line.is_char_boundary(e)) {
                let piece = Text::inline_of(&line, start, end);
                if end - start > INLINE {
                    assert!(piece.is_none());
                    continue;
                }
                let piece = piece.expect("short enough");
                assert_eq!(&*piece, &line[start..end]);
                assert_eq!(piece, Text::from(&line[start..end]));
            }
        }
        // Not a piece of the source: none, and no panic.
        assert!(Text::inline_of("é", 1, 2).is_none());
        assert!(Text::inline_of("abc", 2, 4).is_none());
    }

    #[test]
    fn a_borrowed_piece_gives_subs_of_its_base_within_its_bounds() {
        let base = Text::from("host sshd[42]: Failed password for root from 192.0.2.1");
        let piece = Within::new(&base, 15, base.len()).expect("in bounds");
        assert_eq!(piece.as_str(), "Failed password for root from 192.0.2.1");
        assert_eq!(piece.sub(0, 6).as_deref(), Some("Failed"));
        assert_eq!(piece.sub(30, 39).as_deref(), Some("192.0.2.1"));
        assert!(piece.sub(30, 40).is_none());
        let head = Within::new(&base, 0, 14).expect("in bounds");
        assert!(head.sub(5, 15).is_none());
        assert!(Within::new(&base, 0, base.len() + 1).is_none());
        let wide = Text::from("é");
        assert!(Within::new(&wide, 1, 2).is_none());
        assert_eq!(Within::from(&base).as_str(), base.as_str());
    }
}
