//! `shlex.split` in POSIX mode, which fail2ban applies to each `journalmatch` line.

/// A line that cannot be split (an open quote or a trailing backslash).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShlexError(pub &'static str);

/// Splits like a POSIX shell: blanks separate words, quotes group, `\` escapes
/// (inside double quotes only before `"` and `\`).
pub fn split(s: &str) -> Result<Vec<String>, ShlexError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next().ok_or(ShlexError("No escaped character"))?);
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(ShlexError("No closing quotation")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => word.push(e),
                            Some(e) => {
                                word.push('\\');
                                word.push(e);
                            }
                            None => return Err(ShlexError("No escaped character")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(ShlexError("No closing quotation")),
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_words() {
        assert_eq!(
            split("_SYSTEMD_UNIT=sshd.service + _COMM=sshd").unwrap(),
            vec!["_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd"]
        );
        assert_eq!(
            split(r#"a"b c"d 'e\f' "g\"\h" \ x ''"#).unwrap(),
            vec!["ab cd", "e\\f", "g\"\\h", " x", ""]
        );
        assert!(split("'open").is_err());
        assert!(split("end\\").is_err());
    }
}
