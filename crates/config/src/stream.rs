//! The command stream: what fail2ban's client sends to its server, and its printed form.

use std::fmt::{self, Write};

/// One value of a command, with Python's types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Python's `None` (an option whose conversion failed, for instance).
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Value>),
    /// A dict in insertion order (`['set', 'thread', {'stacksize': 0}]`).
    Dict(Vec<(String, Value)>),
}

/// One command: `['set', 'sshd', 'maxretry', 5]`.
pub type Command = Vec<Value>;

/// The whole configuration as commands, in the order the server receives them.
pub type Stream = Vec<Command>;

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Python's `str(value)`, which is what a value becomes when it is interpolated.
    pub fn to_py_str(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            _ => self.to_string(),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

/// Python's `repr`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => f.write_str(&py_repr_str(s)),
            Value::List(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(']')
            }
            Value::Dict(items) => {
                f.write_char('{')?;
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {v}", py_repr_str(k))?;
                }
                f.write_char('}')
            }
        }
    }
}

/// One command as `fail2ban-client -d` prints it.
pub fn format_command(command: &Command) -> String {
    Value::List(command.clone()).to_string()
}

/// The stream as `fail2ban-client -d` prints it: one command per line.
pub fn format_stream(stream: &Stream) -> String {
    let mut out = String::new();
    for command in stream {
        out.push_str(&format_command(command));
        out.push('\n');
    }
    out
}

/// Python's `repr(str)`: single quotes unless the text has a single quote and no
/// double quote; non-printable characters escaped.
pub fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_printable(c) => {
                let n = c as u32;
                if n <= 0xff {
                    let _ = write!(out, "\\x{n:02x}");
                } else if n <= 0xffff {
                    let _ = write!(out, "\\u{n:04x}");
                } else {
                    let _ = write!(out, "\\U{n:08x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable` for one character, without the full Unicode tables:
/// controls, separators other than space, format characters, private use and
/// non-characters are not printable; unassigned code points are treated as printable.
fn is_printable(c: char) -> bool {
    let n = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() {
        return false;
    }
    let not_printable: &[(u32, u32)] = &[
        (0x00a0, 0x00a0),
        (0x00ad, 0x00ad),
        (0x0600, 0x0605),
        (0x061c, 0x061c),
        (0x06dd, 0x06dd),
        (0x070f, 0x070f),
        (0x0890, 0x0891),
        (0x08e2, 0x08e2),
        (0x1680, 0x1680),
        (0x180e, 0x180e),
        (0x2000, 0x200f),
        (0x2028, 0x202f),
        (0x205f, 0x2064),
        (0x2066, 0x206f),
        (0x3000, 0x3000),
        (0xd800, 0xf8ff),
        (0xfdd0, 0xfdef),
        (0xfeff, 0xfeff),
        (0xfff9, 0xfffb),
        (0x110bd, 0x110bd),
        (0x110cd, 0x110cd),
        (0x13430, 0x1343f),
        (0x1bca0, 0x1bca3),
        (0x1d173, 0x1d17a),
        (0xe0001, 0xe0001),
        (0xe0020, 0xe007f),
        (0xf0000, 0x10ffff),
    ];
    if n & 0xfffe == 0xfffe {
        return false;
    }
    !not_printable.iter().any(|&(lo, hi)| lo <= n && n <= hi)
}

/// `json.dumps` of a string map with Python's defaults (ASCII only, `", "` and `": "`).
pub fn py_json_dumps(map: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        json_str(&mut out, k);
        out.push_str(": ");
        json_str(&mut out, v);
    }
    out.push('}');
    out
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (' '..='~').contains(&c) => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_repr() {
        assert_eq!(py_repr_str("a"), "'a'");
        assert_eq!(py_repr_str("it's"), "\"it's\"");
        assert_eq!(py_repr_str("'\""), "'\\'\"'");
        assert_eq!(py_repr_str("a\\b\n\t\x01\x7f"), "'a\\\\b\\n\\t\\x01\\x7f'");
        assert_eq!(py_repr_str("é\u{a0}\u{200b}"), "'é\\xa0\\u200b'");
        let cmd = vec![
            Value::from("set"),
            Value::Int(5),
            Value::Bool(true),
            Value::None,
            Value::List(vec![Value::from("x")]),
            Value::Dict(vec![("stacksize".into(), Value::Int(0))]),
        ];
        assert_eq!(
            format_command(&cmd),
            "['set', 5, True, None, ['x'], {'stacksize': 0}]"
        );
    }

    #[test]
    fn python_json() {
        assert_eq!(
            py_json_dumps(&[("a".into(), "é\"\n".into()), ("b".into(), "𝄞".into())]),
            r#"{"a": "\u00e9\"\n", "b": "\ud834\udd1e"}"#
        );
    }
}
