//! journalctl's export format, read as a stream.
//!
//! An entry is a run of fields ended by an empty line. A field is either `NAME=value\n`
//! (the value has no newline and is printable) or, for any other value, `NAME\n`, the
//! value's length as 64-bit little endian, the bytes, and `\n`. Only the fields a jail
//! uses are kept; the others are skipped without copying.

use std::io::{self, BufRead, Read};

/// The largest field value kept. journald caps messages far below this; anything longer
/// is cut here, so one hostile entry cannot make the reader allocate without bound.
pub const MAX_VALUE: usize = 1 << 20;

/// The fields of one journal entry that rampart reads. Values are raw bytes: journald
/// stores whatever the writer sent, and decoding is the jail's business. An absent field
/// is empty: fail2ban treats the two alike for every field used here. The buffers are
/// reused from entry to entry ([`ExportReader::next_into`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Entry {
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP`: when journald received the entry, µs since the epoch.
    pub realtime: Option<u64>,
    /// `_SOURCE_REALTIME_TIMESTAMP`: when the writer says it logged it, µs.
    pub source_realtime: Option<u64>,
    /// `__MONOTONIC_TIMESTAMP`, µs since boot.
    pub monotonic: Option<u64>,
    /// `_SOURCE_MONOTONIC_TIMESTAMP` (the kernel's own clock for kernel messages), µs.
    pub source_monotonic: Option<u64>,
    pub hostname: Vec<u8>,
    pub syslog_identifier: Vec<u8>,
    pub comm: Vec<u8>,
    pub syslog_pid: Vec<u8>,
    pub pid: Vec<u8>,
    /// Every `MESSAGE` field, joined by spaces (an entry may carry several, and
    /// fail2ban joins them so).
    pub message: Vec<u8>,
    /// How many `MESSAGE` fields there were.
    pub messages: usize,
    /// A value was longer than [`MAX_VALUE`] and was cut.
    pub cut: bool,
}

impl Entry {
    /// Empties every field, keeping the buffers.
    pub fn clear(&mut self) {
        self.cursor.clear();
        self.realtime = None;
        self.source_realtime = None;
        self.monotonic = None;
        self.source_monotonic = None;
        self.hostname.clear();
        self.syslog_identifier.clear();
        self.comm.clear();
        self.syslog_pid.clear();
        self.pid.clear();
        self.message.clear();
        self.messages = 0;
        self.cut = false;
    }
}

/// The fields journalctl is asked for (`--output-fields`); the `__` fields come anyway.
pub const WANTED_FIELDS: &str = "_HOSTNAME,SYSLOG_IDENTIFIER,_COMM,SYSLOG_PID,_PID,MESSAGE,\
_SOURCE_REALTIME_TIMESTAMP,_SOURCE_MONOTONIC_TIMESTAMP";

/// A stream that is not in export format.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("reading journalctl's output: {0}")]
    Io(#[from] io::Error),
    #[error("the stream ends inside an entry (after {0} bytes of it)")]
    Truncated(usize),
    #[error("field {name:?} announces a binary value but the stream ends in its length")]
    ShortLength { name: String },
    #[error("binary field {name:?} is not followed by a newline")]
    MissingNewline { name: String },
}

/// Reads entries one by one from export-format bytes.
#[derive(Debug)]
pub struct ExportReader<R> {
    input: R,
    line: Vec<u8>,
    /// Bytes consumed, for error messages and statistics.
    pub consumed: u64,
}

impl<R: BufRead> ExportReader<R> {
    pub fn new(input: R) -> ExportReader<R> {
        ExportReader {
            input,
            line: Vec::with_capacity(256),
            consumed: 0,
        }
    }

    /// The underlying reader (to ask whether more bytes are buffered).
    pub fn get_ref(&self) -> &R {
        &self.input
    }

    /// The next entry; `None` at a clean end of the stream (between entries).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ExportError> {
        let mut entry = Entry::default();
        Ok(self.next_into(&mut entry)?.then_some(entry))
    }

    /// Reads the next entry into `entry` (cleared first); false at a clean end of the
    /// stream (between entries).
    pub fn next_into(&mut self, entry: &mut Entry) -> Result<bool, ExportError> {
        entry.clear();
        let mut entry_bytes = 0usize;
        loop {
            self.line.clear();
            let n = self.input.read_until(b'\n', &mut self.line)?;
            self.consumed += n as u64;
            if n == 0 {
                return if entry_bytes == 0 {
                    Ok(false)
                } else {
                    Err(ExportError::Truncated(entry_bytes))
                };
            }
            entry_bytes += n;
            if self.line.last() != Some(&b'\n') {
                return Err(ExportError::Truncated(entry_bytes));
            }
            self.line.pop();
            if self.line.is_empty() {
                if entry_bytes == 1 {
                    // Stray blank lines between entries carry nothing.
                    entry_bytes = 0;
                    continue;
                }
                return Ok(true);
            }
            if let Some(eq) = memchr::memchr(b'=', &self.line) {
                let (name, value) = (&self.line[..eq], &self.line[eq + 1..]);
                store_field(entry, name, value);
            } else {
                let name = std::mem::take(&mut self.line);
                entry_bytes += self.read_binary(entry, &name)?;
                self.line = name;
            }
        }
    }

    /// Reads the length-prefixed value of field `name`; returns the bytes consumed.
    fn read_binary(&mut self, entry: &mut Entry, name: &[u8]) -> Result<usize, ExportError> {
        let field_name = || String::from_utf8_lossy(name).into_owned();
        let mut len_bytes = [0u8; 8];
        self.input
            .read_exact(&mut len_bytes)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => ExportError::ShortLength { name: field_name() },
                _ => ExportError::Io(e),
            })?;
        let len = u64::from_le_bytes(len_bytes);
        let keep = usize::try_from(len).unwrap_or(usize::MAX).min(MAX_VALUE);
        let interesting = is_wanted(name);
        let mut value = Vec::new();
        if interesting {
            value.reserve(keep);
            (&mut self.input)
                .take(keep as u64)
                .read_to_end(&mut value)?;
            if value.len() < keep {
                return Err(ExportError::Truncated(value.len()));
            }
        }
        let skip = if interesting { len - keep as u64 } else { len };
        let skipped = io::copy(&mut (&mut self.input).take(skip), &mut io::sink())?;
        if skipped < skip {
            return Err(ExportError::Truncated(
                usize::try_from(skipped).unwrap_or(0),
            ));
        }
        let mut newline = [0u8; 1];
        match self.input.read_exact(&mut newline) {
            Ok(()) if newline[0] == b'\n' => {}
            Ok(()) => return Err(ExportError::MissingNewline { name: field_name() }),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ExportError::Truncated(0));
            }
            Err(e) => return Err(ExportError::Io(e)),
        }
        let total = 8 + usize::try_from(len).unwrap_or(usize::MAX).saturating_add(1);
        self.consumed += total as u64;
        if interesting {
            entry.cut |= len > keep as u64;
            store_field(entry, name, &value);
        }
        Ok(total)
    }
}

fn is_wanted(name: &[u8]) -> bool {
    matches!(
        name,
        b"__CURSOR"
            | b"__REALTIME_TIMESTAMP"
            | b"__MONOTONIC_TIMESTAMP"
            | b"_SOURCE_REALTIME_TIMESTAMP"
            | b"_SOURCE_MONOTONIC_TIMESTAMP"
            | b"_HOSTNAME"
            | b"SYSLOG_IDENTIFIER"
            | b"_COMM"
            | b"SYSLOG_PID"
            | b"_PID"
            | b"MESSAGE"
    )
}

fn micros(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

fn store_field(entry: &mut Entry, name: &[u8], value: &[u8]) {
    // The first non-empty occurrence of a single-valued field wins.
    fn first(slot: &mut Vec<u8>, value: &[u8]) {
        if slot.is_empty() {
            slot.extend_from_slice(value);
        }
    }
    let value = if value.len() > MAX_VALUE {
        entry.cut = true;
        &value[..MAX_VALUE]
    } else {
        value
    };
    match name {
        b"MESSAGE" => {
            if entry.messages > 0 {
                entry.message.push(b' ');
            }
            entry.message.extend_from_slice(value);
            entry.messages += 1;
        }
        b"__CURSOR" if entry.cursor.is_empty() => {
            entry.cursor.push_str(&String::from_utf8_lossy(value));
        }
        b"__REALTIME_TIMESTAMP" => entry.realtime = entry.realtime.or(micros(value)),
        b"__MONOTONIC_TIMESTAMP" => entry.monotonic = entry.monotonic.or(micros(value)),
        b"_SOURCE_REALTIME_TIMESTAMP" => {
            entry.source_realtime = entry.source_realtime.or(micros(value));
        }
        b"_SOURCE_MONOTONIC_TIMESTAMP" => {
            entry.source_monotonic = entry.source_monotonic.or(micros(value));
        }
        b"_HOSTNAME" => first(&mut entry.hostname, value),
        b"SYSLOG_IDENTIFIER" => first(&mut entry.syslog_identifier, value),
        b"_COMM" => first(&mut entry.comm, value),
        b"SYSLOG_PID" => first(&mut entry.syslog_pid, value),
        b"_PID" => first(&mut entry.pid, value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Result<Vec<Entry>, ExportError> {
        let mut r = ExportReader::new(bytes);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            out.push(e);
        }
        Ok(out)
    }

    fn binary_field(name: &str, value: &[u8]) -> Vec<u8> {
        let mut v = name.as_bytes().to_vec();
        v.push(b'\n');
        v.extend_from_slice(&(value.len() as u64).to_le_bytes());
        v.extend_from_slice(value);
        v.push(b'\n');
        v
    }

    #[test]
    fn text_fields_and_entry_boundaries() {
        let input = b"__CURSOR=s=1;i=1\n__REALTIME_TIMESTAMP=1700000000123456\n\
_HOSTNAME=web\nSYSLOG_IDENTIFIER=sshd\n_PID=42\nOTHER=x=y\nMESSAGE=hello = world\n\n\
__CURSOR=s=1;i=2\nMESSAGE=second\n\n";
        let entries = parse_all(input).unwrap();
        assert_eq!(entries.len(), 2);
        let e = &entries[0];
        assert_eq!(e.cursor, "s=1;i=1");
        assert_eq!(e.realtime, Some(1_700_000_000_123_456));
        assert_eq!(e.hostname, b"web");
        assert_eq!(e.syslog_identifier, b"sshd");
        assert_eq!(e.pid, b"42");
        // Only the first `=` separates name and value.
        assert_eq!(e.message, b"hello = world");
        assert_eq!(entries[1].message, b"second");
        assert_eq!(entries[1].realtime, None);
    }

    #[test]
    fn binary_fields_keep_newlines_and_any_byte() {
        let mut input = b"__CURSOR=c1\n".to_vec();
        input.extend(binary_field("MESSAGE", b"line one\nline\xff two\x00"));
        input.extend(binary_field("IGNORED_BLOB", &[b'\n'; 300]));
        input.extend(b"_COMM=sshd\n\n");
        let entries = parse_all(&input).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].message, b"line one\nline\xff two\x00");
        assert_eq!(entries[0].comm, b"sshd");
        assert!(!entries[0].cut);
    }

    #[test]
    fn repeated_messages_are_all_kept() {
        let entries = parse_all(b"MESSAGE=a\nMESSAGE=b\n_PID=1\n_PID=2\n\n").unwrap();
        assert_eq!(entries[0].message, b"a b");
        assert_eq!(entries[0].messages, 2);
        assert_eq!(entries[0].pid, b"1");
    }

    #[test]
    fn truncated_streams_are_errors_not_entries() {
        assert!(matches!(
            parse_all(b"MESSAGE=a\n\nMESSAGE=b\n"),
            Err(ExportError::Truncated(_))
        ));
        assert!(matches!(
            parse_all(b"MESSAGE=a"),
            Err(ExportError::Truncated(_))
        ));
        let mut short = b"MESSAGE\n".to_vec();
        short.extend_from_slice(&[5, 0, 0]);
        assert!(matches!(
            parse_all(&short),
            Err(ExportError::ShortLength { .. })
        ));
        let mut cut = binary_field("MESSAGE", b"abcdef");
        cut.truncate(cut.len() - 3);
        assert!(matches!(parse_all(&cut), Err(ExportError::Truncated(_))));
        let mut no_newline = binary_field("MESSAGE", b"abc");
        *no_newline.last_mut().unwrap() = b'x';
        assert!(matches!(
            parse_all(&no_newline),
            Err(ExportError::MissingNewline { .. })
        ));
    }

    #[test]
    fn huge_values_are_cut_not_allocated() {
        let big = vec![b'a'; MAX_VALUE + 10];
        let mut input = binary_field("MESSAGE", &big);
        input.extend(b"\n");
        let entries = parse_all(&input).unwrap();
        assert_eq!(entries[0].message.len(), MAX_VALUE);
        assert!(entries[0].cut);
    }

    #[test]
    fn empty_stream_and_blank_lines() {
        assert!(parse_all(b"").unwrap().is_empty());
        assert_eq!(parse_all(b"\n\nMESSAGE=x\n\n\n").unwrap().len(), 1);
    }
}
