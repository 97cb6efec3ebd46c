//! The Python values that travel over the control socket, and how Python prints them.
//!
//! `fail2ban-client` prints most replies with Python's `print()`, so a list of bans shows
//! as `[{'sshd': ['192.0.2.1']}]` and a count as `2`. [`PyValue`]'s `Display` is Python's
//! `str()` and [`PyValue::repr`] is Python's `repr()`, so rampart prints byte for byte
//! what the Python client prints.

use std::fmt::{self, Write as _};

/// A Python value as the control protocol carries it.
///
/// Dictionaries and sets keep their wire order (Python dictionaries are ordered, and
/// `banned` lists jails in the server's order).
#[derive(Clone, Debug, PartialEq)]
pub enum PyValue {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<PyValue>),
    Tuple(Vec<PyValue>),
    Dict(Vec<(PyValue, PyValue)>),
    Set(Vec<PyValue>),
    /// An instance rebuilt from its class and constructor arguments; in this protocol,
    /// always an exception in an error reply.
    Exception(PyException),
}

/// A Python exception as pickle carries it: a class named by module and name, and the
/// constructor arguments (`e.args`).
#[derive(Clone, Debug, PartialEq)]
pub struct PyException {
    pub module: String,
    pub name: String,
    pub args: Vec<PyValue>,
}

impl PyException {
    /// An exception of class `module.name` with one string argument.
    pub fn new(module: &str, name: &str, message: impl Into<String>) -> Self {
        PyException {
            module: module.to_string(),
            name: name.to_string(),
            args: vec![PyValue::Str(message.into())],
        }
    }

    /// `Exception(message)`: what fail2ban's server raises for an invalid command or a
    /// failed operation; the client prints the message.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new("builtins", "Exception", message)
    }

    /// `ValueError(message)`: a malformed argument (a number that is not one, …).
    pub fn value_error(message: impl Into<String>) -> Self {
        Self::new("builtins", "ValueError", message)
    }

    /// `IndexError(message)`: a missing argument; the client prints
    /// "Sorry but the command is invalid".
    pub fn missing_argument(message: impl Into<String>) -> Self {
        Self::new("builtins", "IndexError", message)
    }

    /// `KeyError(key)`: an unknown action, property or other name.
    pub fn key_error(key: impl Into<String>) -> Self {
        Self::new("builtins", "KeyError", key)
    }

    /// fail2ban's `UnknownJailException(jail)`; the client prints
    /// "Sorry but the jail 'JAIL' does not exist".
    pub fn unknown_jail(jail: impl Into<String>) -> Self {
        Self::new("fail2ban.exceptions", "UnknownJailException", jail)
    }

    /// fail2ban's `DuplicateJailException(jail)`; the client prints
    /// "The jail 'JAIL' already exists".
    pub fn duplicate_jail(jail: impl Into<String>) -> Self {
        Self::new("fail2ban.exceptions", "DuplicateJailException", jail)
    }

    /// Whether this is an instance of `name` or of a class fail2ban derives from it.
    /// Pickle names only the exact class, so the known subclasses are listed here.
    pub fn is_a(&self, name: &str) -> bool {
        self.name == name
            || match name {
                "KeyError" => self.name == "UnknownJailException",
                "LookupError" => {
                    matches!(
                        self.name.as_str(),
                        "KeyError" | "IndexError" | "UnknownJailException"
                    )
                }
                _ => false,
            }
    }

    /// The first argument when it is a string (the jail of a jail exception, the
    /// message of most others).
    pub fn first_arg_str(&self) -> Option<&str> {
        match self.args.first() {
            Some(PyValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Python's `repr(e.args)`, as fail2ban-client logs a failed command.
    pub fn args_repr(&self) -> String {
        PyValue::Tuple(self.args.clone()).repr()
    }
}

impl From<String> for PyException {
    fn from(message: String) -> Self {
        PyException::failed(message)
    }
}

impl From<&str> for PyException {
    fn from(message: &str) -> Self {
        PyException::failed(message)
    }
}

impl fmt::Display for PyException {
    /// Python's `str(e)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.args.as_slice() {
            [] => Ok(()),
            // KeyError quotes its key, which is why an unknown jail prints as 'x'.
            [arg] if self.is_a("KeyError") => f.write_str(&arg.repr()),
            [arg] => write!(f, "{arg}"),
            args => f.write_str(&PyValue::Tuple(args.to_vec()).repr()),
        }
    }
}

impl PyValue {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Self {
        PyValue::Str(s.into())
    }

    /// A list of strings.
    pub fn str_list<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        PyValue::List(items.into_iter().map(|s| PyValue::Str(s.into())).collect())
    }

    /// A two-element tuple, the shape of every line of a `status` reply.
    pub fn pair(key: impl Into<String>, value: PyValue) -> Self {
        PyValue::Tuple(vec![PyValue::Str(key.into()), value])
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items of a list or tuple.
    pub fn as_seq(&self) -> Option<&[PyValue]> {
        match self {
            PyValue::List(v) | PyValue::Tuple(v) => Some(v),
            _ => None,
        }
    }

    /// Python's `repr()`.
    pub fn repr(&self) -> String {
        let mut out = String::new();
        write_repr(&mut out, self);
        out
    }
}

impl fmt::Display for PyValue {
    /// Python's `str()`: strings bare, everything else as `repr()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyValue::Str(s) => f.write_str(s),
            PyValue::Exception(e) => write!(f, "{e}"),
            other => f.write_str(&other.repr()),
        }
    }
}

fn write_repr(out: &mut String, value: &PyValue) {
    match value {
        PyValue::None => out.push_str("None"),
        PyValue::Bool(true) => out.push_str("True"),
        PyValue::Bool(false) => out.push_str("False"),
        PyValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        PyValue::Float(x) => out.push_str(&float_repr(*x)),
        PyValue::Str(s) => out.push_str(&str_repr(s)),
        PyValue::Bytes(b) => out.push_str(&bytes_repr(b)),
        PyValue::List(items) => {
            out.push('[');
            write_items(out, items);
            out.push(']');
        }
        PyValue::Tuple(items) => {
            out.push('(');
            write_items(out, items);
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        PyValue::Dict(items) => {
            out.push('{');
            for (n, (k, v)) in items.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                write_repr(out, k);
                out.push_str(": ");
                write_repr(out, v);
            }
            out.push('}');
        }
        PyValue::Set(items) if items.is_empty() => out.push_str("set()"),
        PyValue::Set(items) => {
            out.push('{');
            write_items(out, items);
            out.push('}');
        }
        PyValue::Exception(e) => {
            out.push_str(&e.name);
            out.push('(');
            write_items(out, &e.args);
            out.push(')');
        }
    }
}

fn write_items(out: &mut String, items: &[PyValue]) {
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        write_repr(out, item);
    }
}

/// Python's `repr(float)`: the shortest digits that read back to the same float, in
/// positional notation for decimal exponents -4..16 and scientific notation otherwise.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits; only the layout differs.
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// Python's `repr(str)`: single quotes unless the text holds a single quote and no
/// double quote; backslash escapes for control and non-printable characters.
pub fn str_repr(s: &str) -> String {
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
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x7f || is_printable(c) => out.push(c),
            c if (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable()` for one non-ASCII character, approximated: the
/// control, format, separator and private-use characters likely to turn up in log
/// text are escaped; unassigned code points are not recognised.
fn is_printable(c: char) -> bool {
    let u = c as u32;
    !matches!(u,
        0x80..=0xa0
        | 0xad
        | 0x600..=0x605
        | 0x61c
        | 0x6dd
        | 0x70f
        | 0x1680
        | 0x180e
        | 0x2000..=0x200f
        | 0x2028..=0x202f
        | 0x205f..=0x2064
        | 0x2066..=0x206f
        | 0x3000
        | 0xe000..=0xf8ff
        | 0xfeff
        | 0xfff9..=0xfffb
        | 0xfffe..=0xffff
        | 0x110bd
        | 0x1d173..=0x1d17a
        | 0xe0001
        | 0xe0020..=0xe007f
        | 0xf0000..)
}

fn bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::from("b");
    out.push(quote as char);
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push(quote as char);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (600.0, "600.0"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (123.456, "123.456"),
            (f64::INFINITY, "inf"),
            (2.5e-300, "2.5e-300"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x), want, "{x:e}");
        }
    }

    #[test]
    fn strings_quote_like_python() {
        assert_eq!(str_repr("sshd"), "'sshd'");
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(str_repr("a\\b\n\t\x01\x7f"), "'a\\\\b\\n\\t\\x01\\x7f'");
        assert_eq!(str_repr("é\u{a0}\u{200b}"), "'é\\xa0\\u200b'");
    }

    #[test]
    fn containers_and_exceptions_print_like_python() {
        let v = PyValue::List(vec![PyValue::Dict(vec![(
            PyValue::str("sshd"),
            PyValue::str_list(["192.0.2.1"]),
        )])]);
        assert_eq!(v.to_string(), "[{'sshd': ['192.0.2.1']}]");
        assert_eq!(PyValue::Tuple(vec![PyValue::Int(1)]).repr(), "(1,)");
        assert_eq!(PyValue::Set(vec![]).repr(), "set()");
        let e = PyException::unknown_jail("x");
        assert_eq!(e.to_string(), "'x'");
        assert_eq!(
            PyValue::Exception(e.clone()).repr(),
            "UnknownJailException('x')"
        );
        assert_eq!(e.args_repr(), "('x',)");
        assert_eq!(
            PyException::failed("Invalid command").to_string(),
            "Invalid command"
        );
    }
}
