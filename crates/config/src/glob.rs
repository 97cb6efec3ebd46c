//! Python's `glob.glob` over a [`FileSystem`]: `*`, `?` and `[...]` per path component,
//! hidden names only matched by patterns that start with a dot, results in directory
//! order (not sorted), names without wildcards checked for existence.

use crate::fs::FileSystem;
use crate::pypath;

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// All paths matching `pattern`, in the order Python's `glob.glob` yields them.
pub fn glob(fs: &dyn FileSystem, pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    iglob(fs, pattern, false, &mut out, 0);
    out
}

fn iglob(fs: &dyn FileSystem, pathname: &str, dir_only: bool, out: &mut Vec<String>, depth: usize) {
    if depth > 256 {
        return;
    }
    let (dirname, basename) = pypath::split(pathname);
    if !has_magic(pathname) {
        let found = if basename.is_empty() {
            fs.is_dir(dirname)
        } else {
            fs.lexists(pathname)
        };
        if found {
            out.push(pathname.to_string());
        }
        return;
    }
    if dirname.is_empty() {
        out.extend(glob_in_dir(fs, "", basename, dir_only));
        return;
    }
    let dirs = if dirname != pathname && has_magic(dirname) {
        let mut dirs = Vec::new();
        iglob(fs, dirname, true, &mut dirs, depth + 1);
        dirs
    } else {
        vec![dirname.to_string()]
    };
    for dir in dirs {
        let names = if has_magic(basename) {
            glob_in_dir(fs, &dir, basename, dir_only)
        } else if basename.is_empty() {
            if fs.is_dir(&dir) {
                vec![String::new()]
            } else {
                Vec::new()
            }
        } else if fs.lexists(&pypath::join(&dir, basename)) {
            vec![basename.to_string()]
        } else {
            Vec::new()
        };
        out.extend(names.into_iter().map(|n| pypath::join(&dir, &n)));
    }
}

fn glob_in_dir(fs: &dyn FileSystem, dir: &str, pattern: &str, dir_only: bool) -> Vec<String> {
    let Ok(entries) = fs.list_dir(dir) else {
        return Vec::new();
    };
    let pattern_hidden = pattern.starts_with('.');
    let matcher = Pattern::new(pattern);
    entries
        .into_iter()
        .filter(|e| !dir_only || e.is_dir)
        .map(|e| e.name)
        .filter(|n| pattern_hidden || !n.starts_with('.'))
        .filter(|n| matcher.matches(n))
        .collect()
}

#[derive(Debug, Clone)]
enum Token {
    Literal(char),
    Any,
    Star,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
    Never,
}

/// A compiled `fnmatch` pattern (case-sensitive, as on POSIX).
#[derive(Debug, Clone)]
pub struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles a pattern the way `fnmatch.translate` reads it: an unclosed `[` is a
    /// literal, `[!...]` negates, empty ranges are dropped.
    pub fn new(pattern: &str) -> Self {
        let pat: Vec<char> = pattern.chars().collect();
        let n = pat.len();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < n {
            let c = pat[i];
            i += 1;
            match c {
                '*' => {
                    if !matches!(tokens.last(), Some(Token::Star)) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::Any),
                '[' => {
                    let mut j = i;
                    if j < n && pat[j] == '!' {
                        j += 1;
                    }
                    if j < n && pat[j] == ']' {
                        j += 1;
                    }
                    while j < n && pat[j] != ']' {
                        j += 1;
                    }
                    if j >= n {
                        tokens.push(Token::Literal('['));
                    } else {
                        tokens.push(class_token(&pat, i, j));
                        i = j + 1;
                    }
                }
                c => tokens.push(Token::Literal(c)),
            }
        }
        Pattern { tokens }
    }

    /// Whether the whole name matches.
    pub fn matches(&self, name: &str) -> bool {
        let text: Vec<char> = name.chars().collect();
        let (mut t, mut p) = (0usize, 0usize);
        let mut backtrack: Option<(usize, usize)> = None;
        loop {
            if p < self.tokens.len() {
                match &self.tokens[p] {
                    Token::Star => {
                        backtrack = Some((p, t));
                        p += 1;
                        continue;
                    }
                    tok if t < text.len() && single(tok, text[t]) => {
                        p += 1;
                        t += 1;
                        continue;
                    }
                    _ => {}
                }
            } else if t == text.len() {
                return true;
            }
            match backtrack {
                Some((sp, st)) if st < text.len() => {
                    backtrack = Some((sp, st + 1));
                    p = sp + 1;
                    t = st + 1;
                }
                _ => return false,
            }
        }
    }
}

fn single(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::Any => true,
        Token::Class { negated, items } => {
            items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
        Token::Star | Token::Never => false,
    }
}

/// Builds the set for `pat[i..j]` (between the brackets), following the chunking that
/// `fnmatch.translate` does for ranges.
fn class_token(pat: &[char], start: usize, end: usize) -> Token {
    let stuff: Vec<char> = pat[start..end].to_vec();
    // Each chunk is a run of literal characters; consecutive chunks are joined by a
    // range from the last character of one to the first of the next.
    let chunks: Vec<Vec<char>> = if !stuff.contains(&'-') {
        vec![stuff]
    } else {
        let mut chunks: Vec<Vec<char>> = Vec::new();
        let mut i = start;
        let mut k = if pat[start] == '!' {
            start + 2
        } else {
            start + 1
        };
        loop {
            let found = (k..end).find(|&x| pat[x] == '-');
            let Some(dash) = found else { break };
            chunks.push(pat[i..dash].to_vec());
            i = dash + 1;
            k = dash + 3;
        }
        let last: Vec<char> = pat[i.min(end)..end].to_vec();
        if !last.is_empty() {
            chunks.push(last);
        } else if let Some(prev) = chunks.last_mut() {
            prev.push('-');
        }
        let mut idx = chunks.len().saturating_sub(1);
        while idx > 0 {
            let prev_last = chunks[idx - 1].last().copied();
            let next_first = chunks[idx].first().copied();
            if let (Some(a), Some(b)) = (prev_last, next_first)
                && a > b
            {
                let mut merged = chunks[idx - 1].clone();
                merged.pop();
                merged.extend_from_slice(&chunks[idx][1..]);
                chunks[idx - 1] = merged;
                chunks.remove(idx);
            }
            idx -= 1;
        }
        chunks
    };
    let flat_len: usize =
        chunks.iter().map(Vec::len).sum::<usize>() + chunks.len().saturating_sub(1);
    if flat_len == 0 {
        return Token::Never;
    }
    let mut chunks = chunks;
    if chunks.len() == 1 && chunks[0] == ['!'] {
        return Token::Any;
    }
    let mut negated = false;
    if chunks.first().and_then(|c| c.first()) == Some(&'!') {
        negated = true;
        chunks[0].remove(0);
    }
    let mut items = Vec::new();
    let count = chunks.len();
    for (ci, chunk) in chunks.iter().enumerate() {
        let mut chars: &[char] = chunk;
        if ci > 0 {
            // The range from the previous chunk's last character.
            let lo = chunks[ci - 1].last().copied();
            match (lo, chars.first()) {
                (Some(lo), Some(&hi)) => {
                    if lo <= hi {
                        items.push((lo, hi));
                    }
                    chars = &chars[1..];
                }
                (None, Some(_)) => items.push(('-', '-')),
                _ => {}
            }
        }
        let keep_last = ci + 1 < count;
        let upto = if keep_last {
            chars.len().saturating_sub(1)
        } else {
            chars.len()
        };
        for &c in &chars[..upto] {
            items.push((c, c));
        }
    }
    Token::Class { negated, items }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::MemFs;

    #[test]
    fn fnmatch_semantics() {
        let m = |p: &str, n: &str| Pattern::new(p).matches(n);
        assert!(m("*.log", "auth.log"));
        assert!(!m("*.log", "auth.log.1"));
        assert!(m("a?c", "abc"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(m("[]]", "]"));
        assert!(m("[", "["));
        assert!(m("x[", "x["));
        assert!(m("[a-]", "-"));
        assert!(!m("[z-a]", "m"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(m("[!]", "[!]"));
        assert!(m("[!]]", "a") && !m("[!]]", "]"));
    }

    #[test]
    fn glob_like_python() {
        let fs = MemFs::new()
            .file("/var/log/auth.log", "")
            .file("/var/log/.hidden.log", "")
            .file("/var/log/apache2/error.log", "")
            .file("/var/log/nginx/error.log", "")
            .dangling("/var/log/broken.log");
        assert_eq!(
            glob(&fs, "/var/log/*.log"),
            vec!["/var/log/auth.log", "/var/log/broken.log"]
        );
        assert_eq!(glob(&fs, "/var/log/.*.log"), vec!["/var/log/.hidden.log"]);
        assert_eq!(
            glob(&fs, "/var/log/*/error.log"),
            vec!["/var/log/apache2/error.log", "/var/log/nginx/error.log"]
        );
        assert_eq!(glob(&fs, "/var/log/auth.log"), vec!["/var/log/auth.log"]);
        assert!(glob(&fs, "/var/log/none.log").is_empty());
        assert!(glob(&fs, "").is_empty());
    }
}
