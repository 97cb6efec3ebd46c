//! Message framing: a pickle followed by `<F2B_END_COMMAND>`, both ways.

use std::io::{self, Read};

/// Ends every request and every reply.
pub const END: &[u8] = b"<F2B_END_COMMAND>";
/// Sent (followed by [`END`]) by a client that is done with the connection.
pub const CLOSE: &[u8] = b"<F2B_CLOSE_COMMAND>";

#[derive(Debug)]
pub(crate) enum FrameError {
    Io(io::Error),
    /// More than the limit arrived without a terminator.
    TooLarge(usize),
    /// The peer closed the connection in the middle of a message.
    Truncated,
}

/// Splits a byte stream into messages. Like fail2ban's server, [`Framer::next_message`]
/// ends a message at the first terminator (a request that happens to contain the
/// terminator bytes is cut there, and then fails to decode).
#[derive(Debug, Default)]
pub(crate) struct Framer {
    buf: Vec<u8>,
    /// Where in `buf` the search for the terminator resumes.
    from: usize,
}

impl Framer {
    /// The next message, without its terminator; `Ok(None)` when the peer closed the
    /// connection between messages.
    pub(crate) fn next_message(
        &mut self,
        reader: &mut impl Read,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, FrameError> {
        self.next_frame(reader, limit, |m| Some(m.to_vec()))
    }

    /// The next message that `accept` takes: a terminator is the end of the message
    /// only if `accept` returns `Some` for the bytes before it, so that a reply whose
    /// text contains the terminator bytes is not cut short.
    pub(crate) fn next_frame<T>(
        &mut self,
        reader: &mut impl Read,
        limit: usize,
        mut accept: impl FnMut(&[u8]) -> Option<T>,
    ) -> Result<Option<T>, FrameError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            while let Some(end) = self.find_end() {
                if let Some(taken) = accept(&self.buf[..end]) {
                    self.buf.drain(..end + END.len());
                    self.from = 0;
                    return Ok(Some(taken));
                }
                self.from = end + 1;
            }
            if self.buf.len() > limit {
                return Err(FrameError::TooLarge(limit));
            }
            let n = match reader.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FrameError::Io(e)),
            };
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The first terminator at or after `from`; when there is none, `from` moves to
    /// where one could still begin (it may straddle two reads).
    fn find_end(&mut self) -> Option<usize> {
        let found = self
            .buf
            .get(self.from..)?
            .windows(END.len())
            .position(|w| w == END)
            .map(|i| self.from + i);
        if found.is_none() {
            self.from = self.from.max(self.buf.len().saturating_sub(END.len() - 1));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte at a time, the worst case for straddling.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            match self.0.split_first() {
                Some((b, rest)) if !out.is_empty() => {
                    out[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn splits_messages_across_reads() {
        let mut stream = b"abc".to_vec();
        stream.extend_from_slice(END);
        stream.extend_from_slice(b"de");
        stream.extend_from_slice(END);
        let mut framer = Framer::default();
        let mut r = Trickle(&stream);
        assert_eq!(
            framer.next_message(&mut r, 100).ok().flatten(),
            Some(b"abc".to_vec())
        );
        assert_eq!(
            framer.next_message(&mut r, 100).ok().flatten(),
            Some(b"de".to_vec())
        );
        assert!(matches!(framer.next_message(&mut r, 100), Ok(None)));
    }

    #[test]
    fn a_terminator_inside_a_message_can_be_skipped() {
        let mut stream = b"a".to_vec();
        stream.extend_from_slice(END);
        stream.extend_from_slice(b"b");
        stream.extend_from_slice(END);
        stream.extend_from_slice(b"c");
        stream.extend_from_slice(END);
        let mut framer = Framer::default();
        let mut r = Trickle(&stream);
        let whole = |m: &[u8]| m.ends_with(b"b").then(|| m.to_vec());
        let mut first = b"a".to_vec();
        first.extend_from_slice(END);
        first.push(b'b');
        assert_eq!(
            framer.next_frame(&mut r, 100, whole).ok().flatten(),
            Some(first)
        );
        assert_eq!(
            framer.next_message(&mut r, 100).ok().flatten(),
            Some(b"c".to_vec())
        );
    }

    #[test]
    fn bounds_and_truncation() {
        let mut framer = Framer::default();
        let big = vec![b'x'; 1000];
        assert!(matches!(
            framer.next_message(&mut &big[..], 100),
            Err(FrameError::TooLarge(100))
        ));
        let mut framer = Framer::default();
        assert!(matches!(
            framer.next_message(&mut &b"<F2B_END_COMM"[..], 100),
            Err(FrameError::Truncated)
        ));
    }
}
