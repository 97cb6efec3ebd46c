//! fail2ban's regex tags: `<HOST>`, `<F-USER>…</F-USER>`, `<SKIPLINES>`, …
//!
//! Filters are written with tags that stand for address patterns and named groups;
//! they are expanded into plain Python regex text before compilation. The expansions
//! define which texts fail2ban accepts as an address, so their languages match
//! fail2ban's exactly, group names included (`ip4`, `ip6`, `dns`, `cidr`, `fid`, `fport`).

use crate::UseDns;

/// IPv4 dotted quad, optionally in IPv4-mapped IPv6 spelling (`::ffff:192.0.2.1`).
/// Out-of-range octets are accepted here and rejected when the id is normalised.
const IPV4: &str = r"(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})";

/// IPv6, compressed or not. Every repetition of the first group ends in `:`, so a
/// second `:` at the end completes a `::` (fail2ban writes that as a `(?<=:):`
/// lookbehind, which is always true at that point; plain `:` is the same language and
/// keeps the tag on the linear-time engine).
const IPV6: &str = r"(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:))";

/// A host name: word characters, dots, dashes and carets, ending in a word character.
const DNS: &str = r"(?P<dns>[\w\-.^_]*\w)";

const CIDR: &str = r"(?P<cidr>\d+)";

fn addr() -> String {
    format!(r"\[?(?:{IPV4}|{IPV6})\]?")
}

fn host(use_dns: UseDns) -> String {
    match use_dns {
        UseDns::No => addr(),
        _ => format!("(?:{}|{DNS})", addr()),
    }
}

fn subnet() -> String {
    format!(r"\[?(?:{IPV4}|{IPV6})(?:/{CIDR})?\]?")
}

/// Expands every fail2ban tag in `regex`; unknown tags stay as they are.
pub fn expand(regex: &str, use_dns: UseDns) -> String {
    let mut out = String::with_capacity(regex.len() + 64);
    let mut open_tags: Vec<String> = Vec::new();
    let mut skiplines = 0usize;
    let mut rest = regex;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let after = &rest[lt..];
        match tag_at(after) {
            Some(len) => {
                let tag = &after[..len];
                let name = &tag[1..len - 1];
                out.push_str(&replacement(
                    tag,
                    name,
                    use_dns,
                    &mut open_tags,
                    &mut skiplines,
                ));
                rest = &after[len..];
            }
            None => {
                out.push('<');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Length of a tag `</?[\w\-]+/?>` at the start of `s`, if one is there.
fn tag_at(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    if bytes.get(i) == Some(&b'/') {
        i += 1;
    }
    let name_start = i;
    while let Some(c) = s[i..].chars().next() {
        if c.is_alphanumeric() || c == '_' || c == '-' {
            i += c.len_utf8();
        } else {
            break;
        }
    }
    if i == name_start {
        return None;
    }
    if bytes.get(i) == Some(&b'/') {
        i += 1;
    }
    (bytes.get(i) == Some(&b'>')).then_some(i + 1)
}

fn replacement(
    tag: &str,
    name: &str,
    use_dns: UseDns,
    open_tags: &mut Vec<String>,
    skiplines: &mut usize,
) -> String {
    match name {
        "HOST" => return host(use_dns),
        "SKIPLINES" => {
            let n = *skiplines;
            *skiplines += 1;
            return format!(r"\n(?P<skiplines{n}>(?:(?:.*\n)*?))");
        }
        "IP4" | "F-IP4/" => return IPV4.to_string(),
        "IP6" | "F-IP6/" => return IPV6.to_string(),
        "ADDR" | "F-ADDR/" => return addr(),
        "CIDR" | "F-CIDR/" => return CIDR.to_string(),
        "SUBNET" | "F-SUBNET/" => return subnet(),
        "DNS" | "F-DNS/" => return DNS.to_string(),
        "F-ID/" => return r"(?P<fid>\S+)".to_string(),
        "F-PORT/" => return r"(?P<fport>\w+)".to_string(),
        _ => {}
    }
    let (closing, custom) = match name.strip_prefix('/') {
        Some(n) => (true, n),
        None => (false, name),
    };
    let Some(field) = custom.strip_prefix("F-") else {
        return tag.to_string();
    };
    // Custom field names are upper case only; anything else is not a tag of ours.
    let valid = !field.is_empty()
        && field
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        return tag.to_string();
    }
    if closing {
        if open_tags.iter().any(|t| t == field) {
            ")".to_string()
        } else {
            tag.to_string()
        }
    } else {
        if !open_tags.iter().any(|t| t == field) {
            open_tags.push(field.to_string());
        }
        format!("(?P<{}>", group_name(field))
    }
}

/// The group name a custom `F-NAME` tag captures into.
pub fn group_name(field: &str) -> String {
    let lower = field.to_ascii_lowercase();
    match lower.as_str() {
        "id" => "fid".to_string(),
        "port" => "fport".to_string(),
        _ => lower,
    }
}

/// Python 3.11 rejects global flags in the middle of a pattern; fail2ban rewrites the
/// common `((?i)x)` and `(?:(?i)x)` spellings to the scoped `(?i:x)` first.
pub fn scope_inline_flags(regex: &str) -> String {
    let mut out = String::with_capacity(regex.len());
    let bytes = regex.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'(' && !escaped(bytes, i) {
            let start = if regex[i + 1..].starts_with("?:(?") {
                i + 3
            } else if regex[i + 1..].starts_with("(?") {
                i + 1
            } else {
                0
            };
            if start > 0 {
                let flags_start = start + 2;
                let flags_len = bytes[flags_start..]
                    .iter()
                    .take_while(|b| b.is_ascii_lowercase())
                    .count();
                let close = flags_start + flags_len;
                if flags_len > 0 && bytes.get(close) == Some(&b')') {
                    out.push_str("(?");
                    out.push_str(&regex[flags_start..close]);
                    out.push(':');
                    i = close + 1;
                    continue;
                }
            }
        }
        let c = regex[i..].chars().next().unwrap_or('\0');
        out.push(c);
        i += c.len_utf8().max(1);
    }
    out
}

fn escaped(bytes: &[u8], i: usize) -> bool {
    i > 0 && bytes[i - 1] == b'\\'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_fields() {
        assert_eq!(
            expand(
                "<F-USER>\\S+</F-USER> x <F-ALT_USER1>a</F-ALT_USER1>",
                UseDns::Yes
            ),
            r"(?P<user>\S+) x (?P<alt_user1>a)"
        );
        assert_eq!(expand("<F-ID>x</F-ID>", UseDns::Yes), "(?P<fid>x)");
        // A closing tag that was never opened stays literal, as does a lower-case one.
        assert_eq!(expand("a</F-USER>", UseDns::Yes), "a</F-USER>");
        assert_eq!(expand("<F-user>", UseDns::Yes), "<F-user>");
        assert_eq!(expand("<br>", UseDns::Yes), "<br>");
    }

    #[test]
    fn host_follows_usedns() {
        assert!(expand("<HOST>", UseDns::Yes).contains("(?P<dns>"));
        assert!(!expand("<HOST>", UseDns::No).contains("(?P<dns>"));
        assert!(expand("<HOST>", UseDns::No).contains("(?P<ip6>"));
    }

    #[test]
    fn skiplines_are_numbered() {
        let e = expand("a<SKIPLINES>b<SKIPLINES>", UseDns::Yes);
        assert!(e.contains("skiplines0") && e.contains("skiplines1"));
    }

    #[test]
    fn inline_flags_become_scoped() {
        assert_eq!(scope_inline_flags("a((?i)b)c"), "a(?i:b)c");
        assert_eq!(scope_inline_flags("a(?:(?i)b)c"), "a(?i:b)c");
        assert_eq!(scope_inline_flags(r"a\((?i)b)"), r"a\((?i)b)");
    }
}
