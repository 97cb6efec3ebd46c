//! POSIX path arithmetic on strings, with the exact results of Python's `os.path`.
//!
//! fail2ban builds file names by string operations (`join`, `splitext`, `dirname`), and
//! compares them as strings (include cycle detection); doing the same keeps the file
//! list identical, including its oddities (`a/../b` is not `b`).

/// `os.path.join(a, b)`.
pub fn join(a: &str, b: &str) -> String {
    if b.starts_with('/') {
        b.to_string()
    } else if a.is_empty() || a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// `os.path.split(p)`.
pub fn split(p: &str) -> (&str, &str) {
    let i = p.rfind('/').map_or(0, |i| i + 1);
    let (head, tail) = p.split_at(i);
    let head = if !head.is_empty() && head.chars().any(|c| c != '/') {
        head.trim_end_matches('/')
    } else {
        head
    };
    (head, tail)
}

/// `os.path.dirname(p)`.
pub fn dirname(p: &str) -> &str {
    split(p).0
}

/// `os.path.basename(p)`.
pub fn basename(p: &str) -> &str {
    split(p).1
}

/// `os.path.splitext(p)`: leading dots of the file name do not start an extension.
pub fn splitext(p: &str) -> (&str, &str) {
    let sep = p.rfind('/').map(|i| i as isize).unwrap_or(-1);
    if let Some(dot) = p.rfind('.')
        && dot as isize > sep
    {
        let name_start = (sep + 1) as usize;
        if p[name_start..dot].chars().any(|c| c != '.') {
            return (&p[..dot], &p[dot..]);
        }
    }
    (p, "")
}

/// `os.path.isabs(p)`.
pub fn is_abs(p: &str) -> bool {
    p.starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_os_path_results() {
        assert_eq!(
            join("/etc/fail2ban", "filter.d/sshd"),
            "/etc/fail2ban/filter.d/sshd"
        );
        assert_eq!(join("a/", "b"), "a/b");
        assert_eq!(join("a", "/abs"), "/abs");
        assert_eq!(join("", "b"), "b");
        assert_eq!(split("/a/b//c"), ("/a/b", "c"));
        assert_eq!(split("//x"), ("//", "x"));
        assert_eq!(split("x"), ("", "x"));
        assert_eq!(dirname("a/b/"), "a/b");
        assert_eq!(splitext("a/b.conf"), ("a/b", ".conf"));
        assert_eq!(splitext("a/.hidden"), ("a/.hidden", ""));
        assert_eq!(splitext("a.d/b"), ("a.d/b", ""));
        assert_eq!(splitext("x/..a.b"), ("x/..a", ".b"));
    }
}
