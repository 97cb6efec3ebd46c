//! Time values of the configuration (`bantime = 1d12h`, `findtime = 10m`), read as
//! fail2ban's `MyTime.str2seconds` reads them.
//!
//! fail2ban rewrites the text into a Python expression and `eval`s it:
//!
//! 1. a space is put between a letter and a following digit (`1d12h` → `1d 12h`);
//! 2. unit words after a digit or a space become multiplications (`12h` → `12*3600`);
//!    note that `m` is minutes and `mo` months, a month is a twelfth of a 365.25-day year;
//! 3. a space between two digits becomes `+` (`1*86400 12*3600` → `1*86400+12*3600`);
//! 4. the result is evaluated.
//!
//! Steps 1–3 are reproduced on the text; step 4 is a small arithmetic evaluator (numbers,
//! `+ - * / // % **`, parentheses) instead of `eval`, so that anything else is an error.

use crate::Error;
use crate::pytext::{decimal_value, is_py_space};

/// Unit words in fail2ban's order of substitution, each with its alternatives in regex
/// order and the multiplication that replaces it.
const UNITS: [(&[&str], &str); 7] = [
    (&["days", "day", "da", "dd", "d"], "*86400"),
    (&["weeks", "week", "wee", "we", "ww", "w"], "*604800"),
    (&["months", "month", "mon", "mo"], "*2629800.0"),
    (&["years", "year", "yea", "ye", "yy", "y"], "*31557600.0"),
    (&["seconds", "second", "sec", "se", "ss", "s"], "*1"),
    (&["minutes", "minute", "min", "mi", "mm", "m"], "*60"),
    (&["hours", "hour", "hou", "ho", "hh", "h"], "*3600"),
];

/// Seconds of a fail2ban time value (`10m`, `1d12h`, `1h 30m`, `1year-6mo`, `-1`, `3600`,
/// `2*60`).
pub fn str2seconds(value: &str) -> Result<f64, Error> {
    let fail = |reason: &str| Error::Duration {
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let mut text = space_letter_digit(value);
    for (words, replacement) in UNITS {
        text = replace_unit(&text, words, replacement);
    }
    let text = plus_between_numbers(&text);
    evaluate(&text).map_err(|reason| fail(&reason))
}

/// Letters that Python's case-insensitive `[a-z]` accepts.
fn is_latin_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '\u{130}' | '\u{131}' | '\u{17F}' | '\u{212A}')
}

/// Step 1: a space before every digit that follows a letter.
fn space_letter_digit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut previous: Option<char> = None;
    for c in s.chars() {
        if decimal_value(c).is_some() && previous.is_some_and(is_latin_letter) {
            out.push(' ');
        }
        out.push(c);
        previous = Some(c);
    }
    out
}

/// Case-insensitive equality of a text character with a lower-case unit letter, with
/// the extra equivalences of Python's Unicode matching.
fn same_letter(text: char, unit: char) -> bool {
    text.to_ascii_lowercase() == unit
        || match unit {
            's' => text == '\u{17F}',
            'k' => text == '\u{212A}',
            'i' => matches!(text, '\u{130}' | '\u{131}'),
            _ => false,
        }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Step 2 for one unit: every unit word (first fitting alternative) after a digit or a
/// space and followed by a word boundary becomes `replacement`.
fn replace_unit(s: &str, words: &[&str], replacement: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let after_number =
            i > 0 && (decimal_value(chars[i - 1]).is_some() || is_py_space(chars[i - 1]));
        let matched = after_number
            .then(|| {
                words.iter().find_map(|w| {
                    let n = w.chars().count();
                    let fits = chars.len() >= i + n
                        && chars[i..i + n]
                            .iter()
                            .zip(w.chars())
                            .all(|(&t, u)| same_letter(t, u));
                    let boundary = chars.get(i + n).is_none_or(|&c| !is_word_char(c));
                    (fits && boundary).then_some(n)
                })
            })
            .flatten();
        match matched {
            Some(n) => {
                out.push_str(replacement);
                i += n;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// Step 3: `digit whitespace+ digit` becomes `digit+digit`, scanning left to right without
/// overlaps (so `1 2 3` gives `1+2 3`, an error, as in fail2ban).
fn plus_between_numbers(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if decimal_value(chars[i]).is_some() {
            let mut j = i + 1;
            while j < chars.len() && is_py_space(chars[j]) {
                j += 1;
            }
            if j > i + 1 && j < chars.len() && decimal_value(chars[j]).is_some() {
                out.push(chars[i]);
                out.push('+');
                out.push(chars[j]);
                i = j + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// A Python number.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(Number),
    Op(&'static str),
    Open,
    Close,
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let b = s.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let (number, len) = number_literal(&s[i..])?;
            tokens.push(Token::Number(number));
            i += len;
            continue;
        }
        let two = s.get(i..i + 2);
        let op: &'static str = match (two, c) {
            (Some("**"), _) => "**",
            (Some("//"), _) => "//",
            (_, b'+') => "+",
            (_, b'-') => "-",
            (_, b'*') => "*",
            (_, b'/') => "/",
            (_, b'%') => "%",
            (_, b'(') => {
                tokens.push(Token::Open);
                i += 1;
                continue;
            }
            (_, b')') => {
                tokens.push(Token::Close);
                i += 1;
                continue;
            }
            _ => {
                let shown: String = s[i..].chars().take(1).collect();
                return Err(format!("unexpected {shown:?}"));
            }
        };
        tokens.push(Token::Op(op));
        i += op.len();
    }
    Ok(tokens)
}

/// A Python numeric literal at the start of `s`: its value and length.
fn number_literal(s: &str) -> Result<(Number, usize), String> {
    let b = s.as_bytes();
    let bad = || {
        format!(
            "invalid number {:?}",
            s.split(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '_')
                .next()
                .unwrap_or(s)
        )
    };
    // Digits with single underscores between them.
    let digits = |from: usize, ok: fn(u8) -> bool| -> usize {
        let mut j = from;
        while j < b.len()
            && (ok(b[j]) || (b[j] == b'_' && j > from && b.get(j + 1).copied().is_some_and(ok)))
        {
            j += 1;
        }
        j
    };
    if b.len() > 1 && b[0] == b'0' && matches!(b[1] | 0x20, b'x' | b'o' | b'b') {
        let (radix, ok): (u32, fn(u8) -> bool) = match b[1] | 0x20 {
            b'x' => (16, |c: u8| c.is_ascii_hexdigit()),
            b'o' => (8, |c: u8| (b'0'..=b'7').contains(&c)),
            _ => (2, |c: u8| c == b'0' || c == b'1'),
        };
        let start = if b.get(2) == Some(&b'_') { 3 } else { 2 };
        let end = digits(start, ok);
        if end == start || b.get(end).is_some_and(|c| c.is_ascii_alphanumeric()) {
            return Err(bad());
        }
        let text: String = s[start..end].chars().filter(|&c| c != '_').collect();
        let value = i128::from_str_radix(&text, radix).map_err(|_| bad())?;
        return Ok((Number::Int(value), end));
    }
    let int_end = digits(0, |c| c.is_ascii_digit());
    let mut end = int_end;
    let mut is_float = false;
    if b.get(end) == Some(&b'.') {
        is_float = true;
        end = digits(end + 1, |c| c.is_ascii_digit());
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_end = digits(j, |c| c.is_ascii_digit());
        if exp_end == j {
            return Err(bad());
        }
        is_float = true;
        end = exp_end;
    }
    if b.get(end)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.')
    {
        return Err(bad());
    }
    let text: String = s[..end].chars().filter(|&c| c != '_').collect();
    if is_float {
        return text
            .parse()
            .map(|f| (Number::Float(f), end))
            .map_err(|_| bad());
    }
    // Python 3 rejects leading zeros in non-zero decimal integers.
    if text.len() > 1 && text.starts_with('0') && text.bytes().any(|c| c != b'0') {
        return Err(bad());
    }
    let value = text.parse::<i128>().map_err(|_| bad())?;
    Ok((Number::Int(value), end))
}

fn evaluate(text: &str) -> Result<f64, String> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err("empty expression".to_string());
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    let value = parser.sum()?;
    if parser.at != parser.tokens.len() {
        return Err("unexpected text after the expression".to_string());
    }
    Ok(value.as_f64())
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

/// Deep enough for any real value, shallow enough for the stack.
const MAX_DEPTH: usize = 200;

impl Parser {
    fn peek_op(&self) -> Option<&'static str> {
        match self.tokens.get(self.at) {
            Some(Token::Op(op)) => Some(op),
            _ => None,
        }
    }

    fn sum(&mut self) -> Result<Number, String> {
        let mut value = self.product()?;
        while let Some(op @ ("+" | "-")) = self.peek_op() {
            self.at += 1;
            let rhs = self.product()?;
            value = arithmetic(op, value, rhs)?;
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<Number, String> {
        let mut value = self.unary()?;
        while let Some(op @ ("*" | "/" | "//" | "%")) = self.peek_op() {
            self.at += 1;
            let rhs = self.unary()?;
            value = arithmetic(op, value, rhs)?;
        }
        Ok(value)
    }

    fn unary(&mut self) -> Result<Number, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("expression nested too deeply".to_string());
        }
        let result = match self.peek_op() {
            Some("-") => {
                self.at += 1;
                self.unary()
                    .and_then(|v| arithmetic("-", Number::Int(0), v))
            }
            Some("+") => {
                self.at += 1;
                self.unary()
            }
            _ => self.power(),
        };
        self.depth -= 1;
        result
    }

    fn power(&mut self) -> Result<Number, String> {
        let base = self.atom()?;
        if self.peek_op() == Some("**") {
            self.at += 1;
            let exponent = self.unary()?;
            return arithmetic("**", base, exponent);
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Number, String> {
        match self.tokens.get(self.at).cloned() {
            Some(Token::Number(n)) => {
                self.at += 1;
                Ok(n)
            }
            Some(Token::Open) => {
                self.at += 1;
                let value = self.sum()?;
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    return Err("missing closing parenthesis".to_string());
                }
                self.at += 1;
                Ok(value)
            }
            _ => Err("expected a number".to_string()),
        }
    }
}

/// One Python arithmetic operation: integers stay exact, `/` and floats give floats.
fn arithmetic(op: &str, a: Number, b: Number) -> Result<Number, String> {
    let overflow = || "number too large".to_string();
    let zero = || "division by zero".to_string();
    if let (Number::Int(x), Number::Int(y)) = (a, b) {
        let exact = match op {
            "+" => x.checked_add(y),
            "-" => x.checked_sub(y),
            "*" => x.checked_mul(y),
            "//" | "%" if y == 0 => return Err(zero()),
            "//" => Some(x.div_euclid(y) - i128::from(y < 0 && x.rem_euclid(y) != 0)),
            "%" => Some(x - y * (x.div_euclid(y) - i128::from(y < 0 && x.rem_euclid(y) != 0))),
            "**" if y >= 0 => u32::try_from(y).ok().and_then(|e| x.checked_pow(e)),
            _ => None,
        };
        match (op, exact) {
            (_, Some(v)) => return Ok(Number::Int(v)),
            ("+" | "-" | "*" | "//" | "%", None) => return Err(overflow()),
            _ => {}
        }
    }
    let (x, y) = (a.as_f64(), b.as_f64());
    let value = match op {
        "+" => x + y,
        "-" => x - y,
        "*" => x * y,
        "/" | "//" | "%" if y == 0.0 => return Err(zero()),
        "/" => x / y,
        "//" => (x / y).floor(),
        "%" => x - y * (x / y).floor(),
        "**" if x == 0.0 && y < 0.0 => return Err(zero()),
        "**" => x.powf(y),
        _ => return Err(format!("unknown operator {op}")),
    };
    if value.is_finite() {
        Ok(Number::Float(value))
    } else {
        Err(overflow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> f64 {
        str2seconds(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn rewriting_follows_fail2ban() {
        assert_eq!(space_letter_digit("1d12h"), "1d 12h");
        assert_eq!(
            replace_unit("1d 12h", UNITS[0].0, UNITS[0].1),
            "1*86400 12h"
        );
        assert_eq!(plus_between_numbers("1 2 3"), "1+2 3");
        assert_eq!(replace_unit("5 mins", UNITS[5].0, UNITS[5].1), "5 mins");
        assert_eq!(replace_unit("5 min", UNITS[5].0, UNITS[5].1), "5 *60");
    }

    #[test]
    fn documented_values() {
        assert_eq!(secs("10m"), 600.0);
        assert_eq!(secs("1d12h"), 129_600.0);
        assert_eq!(secs("1h 30m"), 5400.0);
        assert_eq!(secs("3m 10s"), 190.0);
        assert_eq!(secs("1year-6mo"), 15_778_800.0);
        assert_eq!(secs("6 months"), 15_778_800.0);
        assert_eq!(secs("-1"), -1.0);
        assert_eq!(secs("1mo"), 2_629_800.0);
        assert_eq!(secs("1hour+30min"), 5400.0);
        assert_eq!(secs("0d 1h 30m"), 5400.0);
        assert_eq!(secs("600"), 600.0);
        assert_eq!(secs("2*(3+4)/7"), 2.0);
        assert_eq!(secs("1.5h"), 5400.0);
        assert_eq!(secs("1w"), 604_800.0);
        assert_eq!(secs("7 // 2"), 3.0);
        assert_eq!(secs("-7 % 3"), 2.0);
        assert_eq!(secs("2**-1"), 0.5);
    }

    #[test]
    fn invalid_values_are_errors() {
        for bad in [
            "",
            "abc",
            "1 2 3",
            "10x",
            "(1",
            "1/0",
            "012",
            "import os",
            "1e",
            "9**9**9",
        ] {
            assert!(str2seconds(bad).is_err(), "{bad:?} should fail");
        }
        assert!(str2seconds(&"(".repeat(100_000)).is_err());
    }
}
