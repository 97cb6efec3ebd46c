//! Reading log lines: bounded buffers, encodings, invalid bytes.
//!
//! Logs are written by attackers as much as by daemons: invalid UTF-8, NUL bytes and
//! lines of megabytes are expected and must neither crash nor balloon memory. Lines are
//! decoded the way fail2ban decodes them (undecodable bytes become U+FFFD and are
//! counted), and their trailing `\r`/`\n` are removed.

use std::borrow::Cow;
use std::io::{self, Read};

/// A text encoding fail2ban users name in `logencoding` / `-e`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same value.
    Latin1,
    /// ASCII: bytes above 0x7f are invalid.
    Ascii,
}

impl Encoding {
    /// Parses an encoding name as Python's codec registry spells the common ones;
    /// `auto` is the locale's, which on the systems we run on is UTF-8.
    pub fn parse(name: &str) -> Option<Encoding> {
        let n = name.trim().to_ascii_lowercase().replace(['-', '_'], "");
        match n.as_str() {
            "auto" | "utf8" | "u8" | "utf" | "cp65001" => Some(Encoding::Utf8),
            "latin1" | "latin" | "l1" | "iso88591" | "iso885915" | "8859" | "cp819" => {
                Some(Encoding::Latin1)
            }
            "ascii" | "usascii" | "646" => Some(Encoding::Ascii),
            _ => None,
        }
    }

    /// The name to show in reports.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Latin1 => "latin-1",
            Encoding::Ascii => "ascii",
        }
    }

    /// Decodes one line; the flag tells whether bytes had to be replaced.
    pub fn decode(self, bytes: &[u8]) -> (Cow<'_, str>, bool) {
        match self {
            Encoding::Utf8 => match std::str::from_utf8(bytes) {
                Ok(s) => (Cow::Borrowed(s), false),
                Err(_) => (String::from_utf8_lossy(bytes), true),
            },
            Encoding::Latin1 => match std::str::from_utf8(bytes) {
                Ok(s) if bytes.is_ascii() => (Cow::Borrowed(s), false),
                _ => (
                    Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
                    false,
                ),
            },
            Encoding::Ascii => {
                if bytes.is_ascii() {
                    // ASCII is valid UTF-8.
                    (String::from_utf8_lossy(bytes), false)
                } else {
                    let s = bytes
                        .iter()
                        .map(|&b| {
                            if b.is_ascii() {
                                char::from(b)
                            } else {
                                '\u{FFFD}'
                            }
                        })
                        .collect();
                    (Cow::Owned(s), true)
                }
            }
        }
    }
}

/// A line read by [`LineReader::next_utf8_line`].
#[derive(Debug)]
pub struct Line<'a> {
    /// The line with its `\n`, if it has one.
    pub bytes: &'a [u8],
    /// The same, as text, when it is UTF-8.
    pub text: Option<&'a str>,
    /// Whether it ends with `\n` (only the last line of the input may not).
    pub complete: bool,
}

/// A line inside a range of the buffer that `from_utf8` accepted.
#[allow(unsafe_code)]
fn utf8_within_validated(bytes: &[u8]) -> &str {
    debug_assert!(std::str::from_utf8(bytes).is_ok());
    // SAFETY: `bytes` lies inside a range `from_utf8` accepted (`valid_to` is only set
    // from its verdict, and moved with the buffer), and both its ends are character
    // boundaries of that range: it starts at the range start or after a `\n`, and ends
    // after a `\n` or at the end of the validated bytes. A slice of valid UTF-8 between
    // character boundaries is valid UTF-8.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// Strips every trailing `\r` and `\n` (Python's `rstrip('\r\n')`).
pub fn trim_line_end(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// Splits a byte stream into lines without copying them more than once.
///
/// The buffer grows to hold the longest line seen and shrinks back afterwards, so a
/// single multi-megabyte line does not pin its memory for the rest of the run.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// `buf[start..valid_to]` is known to be UTF-8 (validated in one pass over all
    /// that was read, which costs far less than one call a line).
    valid_to: usize,
    /// Bytes consumed so far (for progress reports).
    pub consumed: u64,
}

const CHUNK: usize = 256 * 1024;

impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> LineReader<R> {
        LineReader {
            inner,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            valid_to: 0,
            consumed: 0,
        }
    }

    /// The next line including its `\n`; a last line without one is returned as well
    /// (`complete` false). `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(&[u8], bool)>> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.start + scanned..self.end]) {
                let line_start = self.start;
                let line_end = self.start + scanned + pos + 1;
                self.start = line_end;
                self.consumed += (line_end - line_start) as u64;
                return Ok(Some((&self.buf[line_start..line_end], true)));
            }
            scanned = self.end - self.start;
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let line_start = self.start;
                self.start = self.end;
                self.consumed += (self.end - line_start) as u64;
                return Ok(Some((&self.buf[line_start..self.end], false)));
            }
            self.fill()?;
        }
    }

    /// The next line, with its text when it is UTF-8, like [`LineReader::next_line`].
    pub fn next_utf8_line(&mut self) -> io::Result<Option<Line<'_>>> {
        let Some((len, complete)) = self.next_line()?.map(|(line, c)| (line.len(), c)) else {
            return Ok(None);
        };
        let (line_start, line_end) = (self.start - len, self.start);
        if self.valid_to < line_end {
            // Validate from this line on to the end of what was read. A line starts
            // after a `\n` (or at the start of the input), never inside a character.
            self.valid_to = match std::str::from_utf8(&self.buf[line_start..self.end]) {
                Ok(_) => self.end,
                Err(e) => line_start + e.valid_up_to(),
            };
        }
        let bytes = &self.buf[line_start..line_end];
        let text = (line_end <= self.valid_to).then(|| utf8_within_validated(bytes));
        Ok(Some(Line {
            bytes,
            text,
            complete,
        }))
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.valid_to = self.valid_to.saturating_sub(self.start);
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        } else if self.buf.len() > CHUNK * 4 && self.end < CHUNK {
            self.buf.truncate(CHUNK * 2);
            self.buf.shrink_to_fit();
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(Vec<u8>, bool)> {
        let mut r = LineReader::new(input);
        let mut out = Vec::new();
        while let Some((l, c)) = r.next_line().unwrap() {
            out.push((l.to_vec(), c));
        }
        out
    }

    /// The text given for a line is the line itself exactly when it is UTF-8, whatever
    /// the buffer boundaries cut: multi-byte characters across reads, invalid bytes
    /// before, in and after lines, a truncated character at the end.
    #[test]
    fn lines_are_text_exactly_when_utf8() {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        let pieces: [&[u8]; 6] = [
            b"plain ascii",
            "caf\u{e9} \u{1d11e}".as_bytes(),
            b"bad \xff byte",
            b"\xe2\x82",
            b"",
            "\u{20ac}".as_bytes(),
        ];
        let mut k = 0usize;
        while input.len() < CHUNK * 3 {
            let piece = pieces[k % pieces.len()];
            // Lengths that put characters across every alignment of the chunk ends.
            let pad = "\u{e9}".repeat(k % 7);
            let mut line = pad.into_bytes();
            line.extend_from_slice(piece);
            line.extend_from_slice(&b"x".repeat(k % 13));
            line.push(b'\n');
            expected.push(line.clone());
            input.extend_from_slice(&line);
            k += 1;
        }
        input.extend_from_slice(b"last \xe2\x82");
        expected.push(b"last \xe2\x82".to_vec());
        let mut reader = LineReader::new(input.as_slice());
        let mut seen = 0;
        while let Some(Line { bytes, text, .. }) = reader.next_utf8_line().unwrap() {
            assert_eq!(bytes, expected[seen].as_slice());
            assert_eq!(text, std::str::from_utf8(bytes).ok(), "line {seen}");
            seen += 1;
        }
        assert_eq!(seen, expected.len());
    }

    #[test]
    fn splits_and_keeps_incomplete_last_line() {
        let got = lines(b"a\nbb\r\n\nccc");
        assert_eq!(
            got,
            vec![
                (b"a\n".to_vec(), true),
                (b"bb\r\n".to_vec(), true),
                (b"\n".to_vec(), true),
                (b"ccc".to_vec(), false)
            ]
        );
    }

    #[test]
    fn long_lines_cross_buffer_boundaries() {
        let mut input = vec![b'x'; CHUNK * 3 + 17];
        input.push(b'\n');
        input.extend_from_slice(b"short\n");
        let got = lines(&input);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.len(), CHUNK * 3 + 18);
        assert_eq!(got[1].0, b"short\n");
    }

    #[test]
    fn decoding_replaces_and_reports() {
        let (s, bad) = Encoding::Utf8.decode(b"ok \xff\xfe end");
        assert!(bad);
        assert_eq!(s, "ok \u{FFFD}\u{FFFD} end");
        let (s, bad) = Encoding::Latin1.decode(b"caf\xe9");
        assert!(!bad);
        assert_eq!(s, "café");
        assert_eq!(trim_line_end("x\r\r\n\n"), "x");
        assert_eq!(Encoding::parse("UTF-8"), Some(Encoding::Utf8));
        assert_eq!(Encoding::parse("ISO-8859-1"), Some(Encoding::Latin1));
        assert_eq!(Encoding::parse("klingon"), None);
    }
}
