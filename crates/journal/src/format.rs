//! A journal entry as the one line a filter sees, in fail2ban's layout:
//! `HOST IDENT[PID]: MESSAGE` (a kernel entry gets its monotonic time, `[%12.6f]`, after
//! `kernel:`), with newlines written as `\n` so an entry stays one line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::export::Entry;

/// The entry's own time: when the writer logged it, else when journald received it.
pub fn entry_time(entry: &Entry) -> Option<SystemTime> {
    let micros = entry.source_realtime.or(entry.realtime)?;
    UNIX_EPOCH.checked_add(Duration::from_micros(micros))
}

/// The line for `entry`.
pub fn format_entry(entry: &Entry) -> Vec<u8> {
    let mut line: Vec<u8> = Vec::with_capacity(128);
    let push_part = |line: &mut Vec<u8>, part: &[u8]| {
        if !line.is_empty() {
            line.push(b' ');
        }
        line.extend_from_slice(part);
    };
    if let Some(host) = non_empty(&entry.hostname) {
        push_part(&mut line, host);
    }
    let ident = non_empty(&entry.syslog_identifier).or_else(|| non_empty(&entry.comm));
    if let Some(ident) = ident {
        push_part(&mut line, ident);
        let pid = pid_text(&entry.syslog_pid).or_else(|| pid_text(&entry.pid));
        let has_pid = pid.is_some();
        if let Some(pid) = pid {
            line.push(b'[');
            line.extend_from_slice(&pid);
            line.push(b']');
        }
        line.push(b':');
        if !has_pid && ident == b"kernel" {
            let micros = entry.source_monotonic.or(entry.monotonic).unwrap_or(0);
            #[allow(clippy::cast_precision_loss)]
            let seconds = micros as f64 / 1e6;
            push_part(&mut line, format!("[{seconds:12.6}]").as_bytes());
        }
    }
    push_part(&mut line, &entry.message);
    escape_newlines(line)
}

fn non_empty(v: &[u8]) -> Option<&[u8]> {
    (!v.is_empty()).then_some(v)
}

fn escape_newlines(line: Vec<u8>) -> Vec<u8> {
    if memchr::memchr(b'\n', &line).is_none() {
        return line;
    }
    let mut out = Vec::with_capacity(line.len() + 8);
    for &b in &line {
        if b == b'\n' {
            out.extend_from_slice(b"\\n");
        } else {
            out.push(b);
        }
    }
    out
}

/// What goes between the brackets for a PID field, or `None` when it is left out.
///
/// fail2ban reads PIDs through python-systemd, which makes them integers when they are
/// decimal; otherwise it tries Python's `int(text, 0)` (hex, octal, binary prefixes), and
/// failing that prints the raw value. A PID of zero counts as absent there, and here.
fn pid_text(raw: &[u8]) -> Option<Vec<u8>> {
    let raw = non_empty(raw)?;
    let text = std::str::from_utf8(raw).ok();
    let number =
        text.and_then(|t| parse_python_int(t, false).or_else(|| parse_python_int(t, true)));
    match number {
        Some(0) => None,
        Some(n) => Some(n.to_string().into_bytes()),
        None => Some(python_bytes_repr(raw).into_bytes()),
    }
}

/// Python's `int(text)` (`any_base == false`) or `int(text, 0)`: surrounding whitespace,
/// a sign, digits with single underscores between them; with base 0 a `0x`/`0o`/`0b`
/// prefix chooses the base and a decimal number may not start with 0.
fn parse_python_int(text: &str, any_base: bool) -> Option<i128> {
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = t.to_ascii_lowercase();
    let (radix, digits) = if any_base && lower.len() > 1 && lower.starts_with('0') {
        match &lower[..2] {
            "0x" => (16, &lower[2..]),
            "0o" => (8, &lower[2..]),
            "0b" => (2, &lower[2..]),
            _ => {
                // Base 0: a decimal with a leading zero must be all zeros.
                if lower.bytes().any(|b| b != b'0' && b != b'_') {
                    return None;
                }
                (10, lower.as_str())
            }
        }
    } else {
        (10, lower.as_str())
    };
    // After a base prefix one underscore may come first ("0x_1f").
    let digits = if radix != 10 {
        digits.strip_prefix('_').unwrap_or(digits)
    } else {
        digits
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    let value = i128::from_str_radix(&clean, radix).ok()?;
    Some(if negative { -value } else { value })
}

/// Python's `repr()` of a bytes object (`b'...'`), as fail2ban prints an odd PID.
fn python_bytes_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from("b");
    out.push(quote);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if char::from(b) == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[(&str, &[u8])]) -> Entry {
        let mut e = Entry::default();
        for (name, value) in fields {
            let v = value.to_vec();
            match *name {
                "_HOSTNAME" => e.hostname = v,
                "SYSLOG_IDENTIFIER" => e.syslog_identifier = v,
                "_COMM" => e.comm = v,
                "SYSLOG_PID" => e.syslog_pid = v,
                "_PID" => e.pid = v,
                "MESSAGE" => {
                    if e.messages > 0 {
                        e.message.push(b' ');
                    }
                    e.message.extend_from_slice(value);
                    e.messages += 1;
                }
                _ => panic!("field {name} not in this helper"),
            }
        }
        e
    }

    fn line(fields: &[(&str, &[u8])]) -> String {
        String::from_utf8(format_entry(&entry(fields))).unwrap()
    }

    #[test]
    fn host_ident_pid_message() {
        assert_eq!(
            line(&[
                ("_HOSTNAME", b"web1"),
                ("SYSLOG_IDENTIFIER", b"sshd"),
                ("_COMM", b"sshd-session"),
                ("_PID", b"812"),
                (
                    "MESSAGE",
                    b"Failed password for root from 192.0.2.7 port 22 ssh2"
                ),
            ]),
            "web1 sshd[812]: Failed password for root from 192.0.2.7 port 22 ssh2"
        );
    }

    #[test]
    fn fallbacks_and_absent_parts() {
        // _COMM stands in for an empty identifier; SYSLOG_PID wins over _PID.
        assert_eq!(
            line(&[
                ("SYSLOG_IDENTIFIER", b""),
                ("_COMM", b"dovecot"),
                ("SYSLOG_PID", b"7"),
                ("_PID", b"8"),
                ("MESSAGE", b"m"),
            ]),
            "dovecot[7]: m"
        );
        assert_eq!(line(&[("MESSAGE", b"bare")]), "bare");
        assert_eq!(line(&[("_HOSTNAME", b"h")]), "h ");
        assert_eq!(line(&[("_COMM", b"x"), ("_PID", b"0")]), "x: ");
    }

    #[test]
    fn pids_as_python_reads_them() {
        let with_pid = |pid: &[u8]| line(&[("_COMM", b"d"), ("_PID", pid), ("MESSAGE", b"m")]);
        assert_eq!(with_pid(b"010"), "d[10]: m");
        assert_eq!(with_pid(b" 12 "), "d[12]: m");
        assert_eq!(with_pid(b"0x1f"), "d[31]: m");
        assert_eq!(with_pid(b"1_000"), "d[1000]: m");
        assert_eq!(with_pid(b"abc"), "d[b'abc']: m");
        assert_eq!(with_pid(b"it's"), "d[b\"it's\"]: m");
        assert_eq!(with_pid(b"\xff1"), "d[b'\\xff1']: m");
    }

    #[test]
    fn kernel_entries_carry_their_monotonic_time() {
        let mut e = entry(&[("SYSLOG_IDENTIFIER", b"kernel"), ("MESSAGE", b"oops")]);
        e.monotonic = Some(12_345_678);
        assert_eq!(format_entry(&e), b"kernel: [   12.345678] oops".to_vec());
        e.source_monotonic = Some(1_500_000);
        assert_eq!(format_entry(&e), b"kernel: [    1.500000] oops".to_vec());
    }

    #[test]
    fn several_messages_and_newlines() {
        assert_eq!(
            line(&[("MESSAGE", b"one\ntwo"), ("MESSAGE", b"three")]),
            "one\\ntwo three"
        );
    }

    #[test]
    fn the_writers_time_wins() {
        let mut e = Entry {
            realtime: Some(2_000_000),
            ..Entry::default()
        };
        assert_eq!(
            entry_time(&e),
            UNIX_EPOCH.checked_add(Duration::from_secs(2))
        );
        e.source_realtime = Some(1_500_000);
        assert_eq!(
            entry_time(&e),
            UNIX_EPOCH.checked_add(Duration::from_millis(1500))
        );
        assert_eq!(entry_time(&Entry::default()), None);
    }
}
