//! Python's reading of text: `str.isspace`, `int()`, `float()`, `str.isalnum` on one
//! character, and Python string indices (code points) against Rust byte offsets.
//!
//! Date fields come out of regexes whose `\d` and `\s` are Unicode-aware, and fail2ban
//! hands them to `int()` and `float()`, which accept every Unicode decimal digit. To give
//! the same answers on hostile lines we read numbers the way Python does.

/// First code point of every run of ten Unicode decimal digits (general category Nd), as in
/// Python 3.11's Unicode 14 database. Each run holds the digits 0 to 9 in order.
const DIGIT_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The value of a Unicode decimal digit, as `unicodedata.decimal`.
pub(crate) fn decimal_value(c: char) -> Option<u32> {
    let cp = c as u32;
    if c.is_ascii_digit() {
        return Some(cp - 0x30);
    }
    if cp < 0x660 {
        return None;
    }
    // The last run starting at or below `cp`.
    let idx = DIGIT_ZEROS.partition_point(|&z| z <= cp);
    let zero = DIGIT_ZEROS[idx.checked_sub(1)?];
    (cp - zero < 10).then_some(cp - zero)
}

/// Python's `str.isspace` for one character: Rust's whitespace plus the four ASCII
/// information separators, which Python counts as whitespace and Rust does not.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` without arguments.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python's `str.isalnum` for a single character, approximated with Rust's Unicode
/// properties (they differ only for a few combining marks that Rust calls alphabetic).
pub(crate) fn is_py_alnum(c: char) -> bool {
    c.is_alphanumeric()
}

/// Python's `int(text)` for base 10: surrounding whitespace, one optional sign, digits of any
/// script, single underscores between digits. `None` where Python raises `ValueError`;
/// values beyond `i128` are clamped, which callers treat as "too large" like Python would.
pub(crate) fn py_int(text: &str) -> Option<i128> {
    // Nearly every date field: plain ASCII digits, read without the general rules.
    let bytes = text.as_bytes();
    if (1..=18).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_digit) {
        return Some(
            bytes
                .iter()
                .fold(0_i128, |v, &b| v * 10 + i128::from(b - b'0')),
        );
    }
    let s = py_strip(text);
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut value: i128 = 0;
    let mut seen_digit = false;
    let mut after_underscore = false;
    for c in body.chars() {
        if c == '_' {
            if !seen_digit || after_underscore {
                return None;
            }
            after_underscore = true;
            continue;
        }
        let d = decimal_value(c)?;
        value = value.saturating_mul(10).saturating_add(i128::from(d));
        seen_digit = true;
        after_underscore = false;
    }
    if !seen_digit || after_underscore {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// Python's `float(text)`: digits of any script are read as ASCII digits first; `None`
/// where Python raises `ValueError`.
pub(crate) fn py_float(text: &str) -> Option<f64> {
    let s = py_strip(text);
    if s.is_empty() {
        return None;
    }
    let mut ascii = String::with_capacity(s.len());
    let mut prev_digit = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(d) = decimal_value(c) {
            ascii.push(char::from(b'0' + d as u8));
            prev_digit = true;
        } else if c == '_' {
            // Python allows one underscore between two digits.
            let next_digit = chars.peek().is_some_and(|&n| decimal_value(n).is_some());
            if !(prev_digit && next_digit) {
                return None;
            }
            prev_digit = false;
        } else if c.is_ascii() {
            ascii.push(c);
            prev_digit = false;
        } else {
            return None;
        }
    }
    let lower = ascii.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if lower.len() - unsigned.len() > 1 {
        return None;
    }
    // Rust accepts the same special words as Python ("inf", "infinity", "nan").
    let valid_shape = matches!(unsigned, "inf" | "infinity" | "nan")
        || unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'));
    if !valid_shape {
        return None;
    }
    ascii.parse::<f64>().ok()
}

/// Number of characters (Python indices) in `s`.
pub(crate) fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// Byte offset of the character with Python index `index` in `s`, clamped to the end.
pub(crate) fn byte_of_char(s: &str, index: usize) -> usize {
    match s.as_bytes().get(..index) {
        Some(prefix) if prefix.is_ascii() => index,
        Some(_) => s.char_indices().nth(index).map_or(s.len(), |(b, _)| b),
        None if s.is_ascii() => s.len(),
        None => s.char_indices().nth(index).map_or(s.len(), |(b, _)| b),
    }
}

/// Python index of the character at byte offset `byte` (a char boundary) in `s`.
pub(crate) fn char_of_byte(s: &str, byte: usize) -> usize {
    let prefix = &s.as_bytes()[..byte.min(s.len())];
    if prefix.is_ascii() {
        prefix.len()
    } else {
        // Count the bytes that start a character.
        prefix.iter().filter(|&&b| (b as i8) >= -0x40).count()
    }
}

/// `s[..byte].chars().next_back()`: an ASCII byte before `byte` is that character
/// (it ends one, and no other byte of a character is ASCII).
pub(crate) fn char_before(s: &str, byte: usize) -> Option<char> {
    match byte.checked_sub(1).and_then(|i| s.as_bytes().get(i)) {
        Some(&b) if b.is_ascii() => Some(char::from(b)),
        _ => s[..byte].chars().next_back(),
    }
}

/// `s[byte..].chars().next()`: an ASCII byte at `byte` is that character.
pub(crate) fn char_after(s: &str, byte: usize) -> Option<char> {
    match s.as_bytes().get(byte) {
        Some(&b) if b.is_ascii() => Some(char::from(b)),
        _ => s[byte..].chars().next(),
    }
}

/// Python's `line[i]` for a character index, `None` past the end.
pub(crate) fn char_at(s: &str, index: usize) -> Option<char> {
    let b = byte_of_char(s, index);
    s[b..].chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_of_other_scripts_have_values() {
        assert_eq!(decimal_value('7'), Some(7));
        assert_eq!(decimal_value('\u{663}'), Some(3)); // ARABIC-INDIC DIGIT THREE
        assert_eq!(decimal_value('\u{FF19}'), Some(9)); // FULLWIDTH DIGIT NINE
        assert_eq!(decimal_value('\u{1D7D8}'), Some(0)); // MATHEMATICAL DOUBLE-STRUCK ZERO
        assert_eq!(decimal_value('a'), None);
        assert_eq!(decimal_value('\u{B2}'), None); // SUPERSCRIPT TWO is not Nd
        assert_eq!(decimal_value('\u{66A}'), None); // ARABIC PERCENT SIGN follows the run
    }

    #[test]
    fn int_follows_python() {
        assert_eq!(py_int(" 5"), Some(5));
        assert_eq!(py_int("-07"), Some(-7));
        assert_eq!(py_int("+1_000"), Some(1000));
        assert_eq!(py_int("\u{663}\u{660}"), Some(30));
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("_1"), None);
        assert_eq!(py_int(""), None);
        assert_eq!(py_int("1.5"), None);
        assert_eq!(py_int("\u{1c}12\u{1f}"), Some(12));
    }

    #[test]
    fn float_follows_python() {
        assert_eq!(py_float("1138943654.123"), Some(1138943654.123));
        assert_eq!(py_float("\u{661}\u{662}"), Some(12.0));
        assert_eq!(py_float("1_0.5"), Some(10.5));
        assert_eq!(py_float("1e3"), Some(1000.0));
        assert_eq!(py_float("abc"), None);
        assert_eq!(py_float("--1"), None);
        assert_eq!(py_float(""), None);
    }

    #[test]
    fn indices_convert_between_chars_and_bytes() {
        let s = "é1x";
        assert_eq!(byte_of_char(s, 1), 2);
        assert_eq!(char_of_byte(s, 3), 2);
        assert_eq!(char_at(s, 2), Some('x'));
        assert_eq!(char_at(s, 3), None);
        assert_eq!(byte_of_char("abc", 10), 3);
        assert_eq!(char_len(s), 3);
    }
}
