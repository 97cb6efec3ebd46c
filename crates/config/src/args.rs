//! `name[opt=val, opt2="quoted, value"][more=1]`: the argument syntax of `filter`,
//! `action` and `backend`, and the splitting of an `action` value into actions.
//!
//! Both functions reproduce the grammar fail2ban accepts, including what it accepts by
//! accident: keys are `[\w.-]+` written right before `=`, values are `"..."`, `'...'`
//! or a run without `,` and `]`, groups are separated by `,` or `][`.

use indexmap::IndexMap;
use rampart_ini::{is_py_space, py_strip};

/// The arguments of one `name[...]` value, in the order written (a repeated key keeps
/// its first position and its last value).
pub type Args = IndexMap<String, String>;

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_key_char(c: char) -> bool {
    is_word(c) || c == '-' || c == '.'
}

/// An argument list that does not follow the grammar.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgsError(pub String);

/// Splits `name[k=v, ...][...]` into the name and its arguments.
pub fn extract_options(option: &str) -> Result<(String, Args), ArgsError> {
    let chars: Vec<char> = option.chars().collect();
    let Some(open) = chars.iter().position(|&c| c == '[') else {
        if chars.is_empty() {
            return Err(ArgsError("empty name".into()));
        }
        return Ok((option.to_string(), Args::new()));
    };
    if open == 0 {
        return Err(ArgsError(format!("no name before '[' in {option:?}")));
    }
    let close = chars
        .iter()
        .rposition(|&c| c == ']')
        .filter(|&c| c > open && chars[c + 1..].iter().all(|&x| is_py_space(x)));
    let Some(close) = close else {
        return Err(ArgsError(format!("unbalanced '[' in {option:?}")));
    };
    let name: String = chars[..open].iter().collect();
    let body = &chars[open + 1..close];
    Ok((name, parse_args(body)?))
}

/// Python's `$` without MULTILINE: at the end, or before a final newline.
fn at_end(s: &[char], i: usize) -> bool {
    i == s.len() || (i + 1 == s.len() && s[i] == '\n')
}

fn parse_args(s: &[char]) -> Result<Args, ArgsError> {
    let mut args = Args::new();
    let mut pos = 0;
    while pos <= s.len() {
        // One `key=value` followed by a separator.
        let mut p = pos;
        while p < s.len() && is_py_space(s[p]) {
            p += 1;
        }
        let key_start = p;
        while p < s.len() && is_key_char(s[p]) {
            p += 1;
        }
        if p > key_start && p < s.len() && s[p] == '=' {
            let key: String = s[key_start..p].iter().collect();
            p += 1;
            let quoted = match s.get(p) {
                Some(&q @ ('"' | '\'')) => s[p + 1..]
                    .iter()
                    .position(|&c| c == q)
                    .map(|len| (p + 1, p + 1 + len)),
                _ => None,
            };
            let (value, after) = match quoted {
                Some((from, to)) => (s[from..to].iter().collect::<String>(), to + 1),
                None => {
                    let to = s[p..]
                        .iter()
                        .position(|&c| c == ',' || c == ']')
                        .map_or(s.len(), |l| p + l);
                    (s[p..to].iter().collect::<String>(), to)
                }
            };
            let next = if s.get(after) == Some(&',') {
                after + 1
            } else if s.get(after) == Some(&']') && {
                let mut q = after + 1;
                while q < s.len() && is_py_space(s[q]) {
                    q += 1;
                }
                s.get(q) == Some(&'[')
            } {
                let mut q = after + 1;
                while s[q] != '[' {
                    q += 1;
                }
                q + 1
            } else if at_end(s, after) {
                after
            } else {
                let rest: String = s[after..].iter().take(25).collect();
                return Err(ArgsError(format!(
                    "unexpected text {rest:?} after the value of {key:?} (at {after})"
                )));
            };
            args.insert(py_strip(&key).to_string(), py_strip(&value).to_string());
            if next == pos {
                break;
            }
            pos = next;
            continue;
        }
        // Only an optional comma and blanks may remain.
        let mut q = pos;
        if s.get(q) == Some(&',') {
            q += 1;
        }
        if s[q.min(s.len())..].iter().all(|&c| is_py_space(c)) {
            break;
        }
        let rest: String = s[pos..].iter().take(25).collect();
        return Err(ArgsError(format!(
            "expected `key=value` at {pos}, found {rest:?}"
        )));
    }
    Ok(args)
}

/// Splits a multi-action value (`a[x=1] b[y="1 2"]`, one per line or several per line)
/// into the text of each action; whitespace inside brackets does not split.
pub fn split_with_options(value: &str) -> Vec<String> {
    let s: Vec<char> = value.chars().collect();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < s.len() {
        if is_py_space(s[pos]) {
            pos += 1;
            continue;
        }
        let end = match_with_brackets(&s, pos).unwrap_or_else(|| {
            let mut e = pos;
            while e < s.len() && !is_py_space(s[e]) {
                e += 1;
            }
            e
        });
        out.push(s[pos..end].iter().collect());
        pos = end.max(pos + 1);
    }
    out
}

/// Where a token ends after trailing blanks: it must be followed by a blank or the end;
/// the match keeps all blanks but one (or all of them at the end of the text).
fn token_end(s: &[char], at: usize) -> Option<usize> {
    if at == s.len() {
        return Some(at);
    }
    if !is_py_space(s[at]) {
        return None;
    }
    let mut r = at;
    while r < s.len() && is_py_space(s[r]) {
        r += 1;
    }
    Some(if r == s.len() { r } else { r - 1 })
}

/// A name (no blank, no `[`) followed by an optional bracketed argument list.
fn match_with_brackets(s: &[char], start: usize) -> Option<usize> {
    let mut n = start;
    while n < s.len() && !is_py_space(s[n]) && s[n] != '[' {
        n += 1;
    }
    if n == start {
        return None;
    }
    // With the bracket group first (the regex tries it first), then without.
    let mut p = n;
    while p < s.len() && is_py_space(s[p]) {
        p += 1;
    }
    if s.get(p) == Some(&'[') {
        p += 1;
        while p < s.len() && is_py_space(s[p]) {
            p += 1;
        }
        let mut failed = std::collections::HashSet::new();
        if let Some(end) = args_loop(s, p, &mut failed) {
            return Some(end);
        }
    }
    token_end(s, n)
}

/// The repeated `key=value [sep]` items, then `]` and the token end; returns the first
/// successful end in the order a backtracking regex engine would find it. Failed start
/// positions are remembered: the continuation after them is always the same.
fn args_loop(s: &[char], p: usize, failed: &mut std::collections::HashSet<usize>) -> Option<usize> {
    if failed.contains(&p) {
        return None;
    }
    if let Some(end) = args_item(s, p, failed) {
        return Some(end);
    }
    if s.get(p) == Some(&']')
        && let Some(end) = token_end(s, p + 1)
    {
        return Some(end);
    }
    failed.insert(p);
    None
}

fn args_item(s: &[char], p: usize, failed: &mut std::collections::HashSet<usize>) -> Option<usize> {
    let mut k = p;
    while k < s.len() && is_key_char(s[k]) {
        k += 1;
    }
    if k == p || s.get(k) != Some(&'=') {
        return None;
    }
    let v = k + 1;
    // Candidate value ends, in the order the alternatives are tried.
    let mut ends = Vec::new();
    for q in ['"', '\''] {
        if s.get(v) == Some(&q)
            && let Some(len) = s[v + 1..].iter().position(|&c| c == q)
        {
            ends.push(v + 1 + len + 1);
        }
    }
    let mut u = v;
    while u < s.len() && s[u] != ',' && s[u] != ']' {
        u += 1;
    }
    ends.extend((v..=u).rev());
    for value_end in ends {
        let mut w = value_end;
        while w < s.len() && is_py_space(s[w]) {
            w += 1;
        }
        for ws_end in (value_end..=w).rev() {
            let mut seps = Vec::new();
            if s.get(ws_end) == Some(&',') {
                seps.push(ws_end + 1);
            }
            if s.get(ws_end) == Some(&']') {
                let mut q = ws_end + 1;
                while q < s.len() && is_py_space(s[q]) {
                    q += 1;
                }
                if s.get(q) == Some(&'[') {
                    seps.push(q + 1);
                }
            }
            seps.push(ws_end);
            for sep_end in seps {
                let mut t = sep_end;
                while t < s.len() && is_py_space(s[t]) {
                    t += 1;
                }
                for next in (sep_end..=t).rev() {
                    if let Some(end) = args_loop(s, next, failed) {
                        return Some(end);
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[(&str, &str)]) -> Args {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_and_arguments() {
        assert_eq!(
            extract_options("sshd").unwrap(),
            ("sshd".into(), Args::new())
        );
        assert_eq!(
            extract_options(r#"iptables[name=SSH, port="a, b", protocol='tcp'][x=1]"#).unwrap(),
            (
                "iptables".into(),
                args(&[
                    ("name", "SSH"),
                    ("port", "a, b"),
                    ("protocol", "tcp"),
                    ("x", "1")
                ])
            )
        );
        assert_eq!(
            extract_options("a[x= 1 ,y=2,]").unwrap().1,
            args(&[("x", "1"), ("y", "2")])
        );
        assert_eq!(extract_options("a[]").unwrap().1, Args::new());
        assert_eq!(
            extract_options("a[x=1,x=2]").unwrap().1,
            args(&[("x", "2")])
        );
    }

    #[test]
    fn malformed_arguments() {
        for bad in [
            "joho[foo",
            "[x=1]",
            "a[x = 1]",
            "a[x=\"1\"y]",
            "a[x=1]b",
            "a[x]",
            "",
        ] {
            assert!(extract_options(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn splitting_actions() {
        assert_eq!(
            split_with_options("a[x=1] b\n  c[y=\"1 2\", z='3 4']\nd"),
            // As fail2ban splits it: blanks before a new line stay (they are stripped later).
            vec!["a[x=1]", "b\n ", "c[y=\"1 2\", z='3 4']", "d"]
        );
        assert_eq!(
            split_with_options(
                "iptables-multiport[name=x, port=\"ssh\"]\n  sendmail-whois[name=x, dest=root]"
            ),
            vec![
                "iptables-multiport[name=x, port=\"ssh\"]\n ",
                "sendmail-whois[name=x, dest=root]"
            ]
        );
        assert_eq!(split_with_options("a [x=1]"), vec!["a [x=1]"]);
        assert_eq!(split_with_options("a[x=1] [y]"), vec!["a[x=1]", "[y]"]);
        assert_eq!(split_with_options("  "), Vec::<String>::new());
    }
}
