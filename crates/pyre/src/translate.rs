//! Placeholder translation from Python syntax to fancy-regex syntax.
//!
//! Handles the spots where the two dialects disagree on the same text; the full
//! front end (parser, exact rewrites, engine selection) replaces it.

use crate::Flags;

pub(crate) fn to_fancy(pattern: &str, flags: Flags) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 16);
    if flags.ignore_case {
        out.push_str("(?i)");
    }
    let multiline = flags.multiline;
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    return Err("bad escape (end of pattern)".into());
                };
                match (in_class, n) {
                    (false, 'Z') => out.push_str(r"\z"),
                    (_, '<') => out.push('<'),
                    (_, '>') => out.push('>'),
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str(r"\]");
                }
                continue;
            }
            '[' if in_class => out.push_str(r"\["),
            ']' if in_class && !class_start => {
                in_class = false;
                out.push(']');
            }
            '$' if !in_class => {
                // Python's `$` also matches before a final newline.
                if multiline {
                    out.push_str("(?m:$)");
                } else {
                    out.push_str(r"(?=\n?\z)");
                }
            }
            '^' if !in_class && multiline => out.push_str("(?m:^)"),
            '{' if !in_class => {
                let rest: String = chars.clone().take_while(|&c| c != '}').collect();
                let valid = !rest.is_empty()
                    && rest.len() < 12
                    && rest.chars().all(|c| c.is_ascii_digit() || c == ',')
                    && rest.matches(',').count() <= 1
                    && chars.clone().nth(rest.len()) == Some('}');
                if valid {
                    out.push('{');
                    if rest.starts_with(',') {
                        out.push('0');
                    }
                } else {
                    out.push_str(r"\{");
                }
            }
            '}' if !in_class => {
                // A `}` that closes a valid quantifier was consumed through `{` handling
                // above only as far as `{`; decide by looking at what we emitted.
                if quantifier_open(&out) {
                    out.push('}');
                } else {
                    out.push_str(r"\}");
                }
            }
            _ => out.push(c),
        }
        class_start = false;
    }
    if in_class {
        return Err("unterminated character set".into());
    }
    Ok(out)
}

/// Whether the output ends inside an unescaped `{m,n` quantifier.
fn quantifier_open(out: &str) -> bool {
    let Some(pos) = out.rfind('{') else {
        return false;
    };
    let escaped = out[..pos].ends_with('\\') && !out[..pos].ends_with("\\\\");
    !escaped
        && out[pos + 1..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',')
}
