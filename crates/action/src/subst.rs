//! The two substitutions of an action command.
//!
//! *Static*: the action's own properties (`[Init]`, `port`, `name`, …), recursive and
//! family-conditional, cached per command and family. These come from the
//! configuration and may build shell code.
//!
//! *Dynamic*: the ticket's values (`<ip>`, `<matches>`, `<F-USER>`, …), in one pass
//! that never looks at what it inserted. A value holding any character the shell could
//! read as syntax is not inserted at all: the tag becomes `$f2bV_name` and the value
//! travels as a positional parameter (see [`ShellScript`]).

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;
use rampart_config::{MAX_TAG_REPLACE_COUNT, TagOptions, find_tag, substitute_tags};

use crate::exec::ShellScript;
use crate::ticket::{Hostnames, option_name};

/// Properties that fail2ban backslash-escapes when they are substituted statically
/// (they normally arrive per ticket, where the variable mechanism applies instead).
const ESCAPED_TAGS: [&str; 3] = ["matches", "ipmatches", "ipjailmatches"];

/// Characters that make a value unsafe to paste into a script: fail2ban's set, plus
/// every other control character.
fn needs_variable(value: &str) -> bool {
    value.chars().any(|c| {
        matches!(
            c,
            '\\' | '#'
                | '&'
                | ';'
                | '`'
                | '|'
                | '*'
                | '?'
                | '~'
                | '<'
                | '>'
                | '^'
                | '('
                | ')'
                | '['
                | ']'
                | '{'
                | '}'
                | '$'
                | '\''
                | '"'
        ) || c.is_control()
    })
}

/// fail2ban's legacy escaping: a backslash before each special character.
fn escape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' | '#' | '&' | ';' | '`' | '|' | '*' | '?' | '~' | '<' | '>' | '^' | '(' | ')'
            | '[' | ']' | '{' | '}' | '$' | '\'' | '"' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The fixed tags every command may use.
pub(crate) fn constant(tag: &str, hosts: &Hostnames) -> Option<String> {
    match tag {
        "br" => Some("\n".to_string()),
        "sp" => Some(" ".to_string()),
        "fq-hostname" => Some(hosts.fq.clone()),
        "sh-hostname" => Some(hosts.short.clone()),
        _ => None,
    }
}

/// One left-to-right pass: each tag is replaced by what `replace` gives (or kept),
/// and the inserted text is not searched again.
fn one_pass(text: &str, replace: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some((start, end, name)) = find_tag(text, pos) {
        out.push_str(&text[pos..start]);
        match replace(name) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&text[start..end]),
        }
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

/// A property value that refers to itself or never stops growing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubstError {
    #[error(transparent)]
    Recursive(#[from] rampart_config::TagError),
    #[error("tag replacement does not end (self-referencing definitions?): {0:?}")]
    Endless(String),
}

/// The action's properties and the cache of resolved commands.
#[derive(Clone, Debug, Default)]
pub(crate) struct StaticTags {
    values: IndexMap<String, String>,
    resolved: HashMap<String, IndexMap<String, String>>,
    commands: HashMap<(String, String), String>,
}

impl StaticTags {
    pub(crate) fn new(values: IndexMap<String, String>) -> Self {
        StaticTags {
            values,
            ..StaticTags::default()
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The command `name` (`actionban`) with every property resolved for the family
    /// (`conditional` is `family=inet6`, or empty). Ticket tags stay as written.
    pub(crate) fn command(
        &mut self,
        name: &str,
        conditional: &str,
        hosts: &Hostnames,
    ) -> Result<String, SubstError> {
        let key = (name.to_string(), conditional.to_string());
        if let Some(cached) = self.commands.get(&key) {
            return Ok(cached.clone());
        }
        if !self.resolved.contains_key(conditional) {
            let ignore: HashSet<String> = ESCAPED_TAGS.iter().map(|s| s.to_string()).collect();
            let options = TagOptions {
                conditional: (!conditional.is_empty()).then_some(conditional),
                ignore: Some(&ignore),
            };
            let resolved = substitute_tags(&self.values, options, &mut |_| None)?;
            self.resolved.insert(conditional.to_string(), resolved);
        }
        let tags = self.resolved.get(conditional).cloned().unwrap_or_default();
        let mut query = format!("<{name}>");
        let mut rounds = MAX_TAG_REPLACE_COUNT + 1;
        let value = loop {
            let value = one_pass(&query, &mut |tag| {
                let found = (!conditional.is_empty())
                    .then(|| tags.get(&format!("{tag}?{conditional}")))
                    .flatten()
                    .or_else(|| tags.get(tag));
                match found {
                    Some(v) if ESCAPED_TAGS.contains(&tag) => Some(escape_tag(v)),
                    Some(v) => Some(v.clone()),
                    None => constant(tag, hosts),
                }
            });
            if value == query || !value.contains('<') {
                break value;
            }
            query = value;
            rounds -= 1;
            if rounds == 0 {
                return Err(SubstError::Endless(query));
            }
        };
        self.commands.insert(key, value.clone());
        Ok(value)
    }
}

/// Where a dynamic tag's value comes from.
pub(crate) enum Dynamic {
    /// A ticket value (possibly hostile).
    Value(String),
    /// Not a ticket tag: keep it as written.
    Unknown,
}

/// Replaces the ticket's tags in a statically resolved command. `lookup` answers for
/// plain tags (`ip`, `matches`, …), `field` for `<F-NAME>` tags (missing fields
/// become empty).
pub(crate) fn dynamic(
    command: &str,
    hosts: &Hostnames,
    lookup: &mut dyn FnMut(&str) -> Dynamic,
    field: &mut dyn FnMut(&str) -> Option<String>,
) -> ShellScript {
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut as_variable = |tag: &str, value: String| -> String {
        if !needs_variable(&value) {
            return value;
        }
        let base: String = format!("f2bV_{tag}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut name = base.clone();
        let mut n = 1;
        loop {
            match vars.iter().find(|(k, _)| *k == name) {
                Some((_, v)) if *v == value => break,
                Some(_) => {
                    n += 1;
                    name = format!("{base}_{n}");
                }
                None => {
                    vars.push((name.clone(), value));
                    break;
                }
            }
        }
        format!("${{{name}}}")
    };
    let script = one_pass(command, &mut |tag| {
        if let Some(field_tag) = field_tag(tag) {
            let value = field(field_tag).unwrap_or_default();
            return Some(as_variable(&format!("F_{}", option_name(field_tag)), value));
        }
        match lookup(tag) {
            Dynamic::Value(v) => Some(as_variable(tag, v)),
            Dynamic::Unknown => constant(tag, hosts),
        }
    });
    ShellScript { script, vars }
}

/// `F-USER` → `USER`, for the names fail2ban treats as captured fields.
fn field_tag(tag: &str) -> Option<&str> {
    let rest = tag.strip_prefix("F-")?;
    let valid = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-');
    valid.then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Hostnames {
        Hostnames {
            fq: "box.example.org".into(),
            short: "box".into(),
        }
    }

    fn props(list: &[(&str, &str)]) -> StaticTags {
        StaticTags::new(
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn static_is_recursive_conditional_and_cached() {
        let mut tags = props(&[
            (
                "actionban",
                "<iptables> -I f2b-<name> 1 -s <ip> -j <blocktype><br>",
            ),
            ("iptables", "iptables <lockingopt>"),
            ("iptables?family=inet6", "ip6tables <lockingopt>"),
            ("lockingopt", "-w"),
            ("name", "sshd"),
            ("blocktype", "REJECT"),
        ]);
        let v4 = tags.command("actionban", "family=inet4", &hosts()).unwrap();
        assert_eq!(v4, "iptables -w -I f2b-sshd 1 -s <ip> -j REJECT\n");
        let v6 = tags.command("actionban", "family=inet6", &hosts()).unwrap();
        assert_eq!(v6, "ip6tables -w -I f2b-sshd 1 -s <ip> -j REJECT\n");
        assert_eq!(tags.command("actionban", "", &hosts()).unwrap(), v4);
        assert_eq!(tags.command("nothing", "", &hosts()).unwrap(), "<nothing>");
    }

    #[test]
    fn static_errors_and_legacy_escaping() {
        let mut looped = props(&[("actionban", "<a>"), ("a", "x<a>")]);
        assert!(looped.command("actionban", "", &hosts()).is_err());
        let mut escaped = props(&[("actionban", "echo <matches>"), ("matches", "a;b $c")]);
        assert_eq!(
            escaped.command("actionban", "", &hosts()).unwrap(),
            "echo a\\;b \\$c"
        );
    }

    #[test]
    fn dynamic_values_with_shell_syntax_become_variables() {
        let mut lookup = |tag: &str| match tag {
            "ip" => Dynamic::Value("192.0.2.1".into()),
            "matches" => Dynamic::Value("line one\nline `two`".into()),
            "name" => Dynamic::Value("<ip>".into()),
            _ => Dynamic::Unknown,
        };
        let mut field = |tag: &str| (tag == "USER").then(|| "$(id)".to_string());
        let s = dynamic(
            "ban <ip> <matches> <F-USER> <F-MISSING> <name> <sh-hostname> <STDIN> <matches>",
            &hosts(),
            &mut lookup,
            &mut field,
        );
        assert_eq!(
            s.script,
            "ban 192.0.2.1 ${f2bV_matches} ${f2bV_F_user}  ${f2bV_name} box <STDIN> ${f2bV_matches}"
        );
        assert_eq!(
            s.vars,
            vec![
                (
                    "f2bV_matches".to_string(),
                    "line one\nline `two`".to_string()
                ),
                ("f2bV_F_user".to_string(), "$(id)".to_string()),
                ("f2bV_name".to_string(), "<ip>".to_string()),
            ]
        );
    }

    #[test]
    fn variable_names_do_not_collide() {
        let mut lookup = |tag: &str| match tag {
            "ip-host" => Dynamic::Value("a;".into()),
            "ip_host" => Dynamic::Value("b;".into()),
            _ => Dynamic::Unknown,
        };
        let s = dynamic("<ip-host> <ip_host>", &hosts(), &mut lookup, &mut |_| None);
        assert_eq!(s.script, "${f2bV_ip_host} ${f2bV_ip_host_2}");
    }
}
