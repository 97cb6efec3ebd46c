//! Recursive `<tag>` substitution over a set of named values.
//!
//! A tag is `<name>` with no blank and no angle bracket inside, so the innermost tag of
//! `<lt_<logtype>/__prefix_line>` is found first and the outer one resolves on the next
//! round. Unknown tags stay verbatim (`<HOST>`, `<ip>`, shell `<STDIN>`).

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

/// How often the same tag may be replaced inside one value before the definitions are
/// declared self-referencing.
pub const MAX_TAG_REPLACE_COUNT: usize = 25;

/// A value that refers to itself, directly or through a cycle.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("self-referencing tag definitions: <{found}> in {tag} = {value:?}")]
pub struct TagError {
    /// The value being resolved.
    pub tag: String,
    /// The tag that could not be resolved.
    pub found: String,
    /// The value at the moment of the failure.
    pub value: String,
}

/// What to resolve, besides the values themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct TagOptions<'a> {
    /// `family=inet6`: tries `name?family=inet6` before `name`.
    pub conditional: Option<&'a str>,
    /// Tags that are neither replaced nor resolved.
    pub ignore: Option<&'a HashSet<String>>,
}

/// Finds the next `<name>` at or after `from`: returns (start, end, name).
pub fn find_tag(value: &str, from: usize) -> Option<(usize, usize, &str)> {
    let mut start = None;
    for (i, c) in value.get(from..)?.char_indices() {
        let i = i + from;
        match c {
            '<' => start = Some(i),
            '>' => {
                if let Some(s) = start
                    && i > s + 1
                {
                    return Some((s, i + 1, &value[s + 1..i]));
                }
                start = None;
            }
            ' ' => start = None,
            _ => {}
        }
    }
    None
}

/// Resolves the tags of every value with the other values (and `extra` for names that
/// are not among them), repeating until nothing changes. Values that are `None` are
/// kept and do not resolve tags.
pub fn substitute_tags(
    tags: &IndexMap<String, String>,
    options: TagOptions<'_>,
    extra: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, TagError> {
    let mut values: IndexMap<String, Option<String>> = tags
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    substitute_in_place(&mut values, options, extra)?;
    Ok(values
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

pub(crate) fn substitute_in_place(
    tags: &mut IndexMap<String, Option<String>>,
    options: TagOptions<'_>,
    extra: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<(), TagError> {
    let empty = HashSet::new();
    let ignore = options.ignore.unwrap_or(&empty);
    let mut done: HashSet<String> = HashSet::new();
    let mut rep_counts: HashMap<String, HashMap<String, usize>> = HashMap::new();
    let keys: Vec<String> = tags.keys().cloned().collect();
    loop {
        let mut again = false;
        for tag in &keys {
            if ignore.contains(tag) || done.contains(tag) {
                continue;
            }
            let Some(Some(original)) = tags.get(tag).cloned() else {
                continue;
            };
            let mut value = original.clone();
            let mut counts = rep_counts.get(tag).cloned().unwrap_or_default();
            let mut found = find_tag(&value, 0).map(|(s, e, n)| (s, e, n.to_string()));
            while let Some((start, end, name)) = found {
                if ignore.contains(&name) {
                    found = find_tag(&value, end).map(|(s, e, n)| (s, e, n.to_string()));
                    continue;
                }
                if &name == tag || counts.get(&name).copied().unwrap_or(1) > MAX_TAG_REPLACE_COUNT {
                    return Err(TagError {
                        tag: tag.clone(),
                        found: name,
                        value,
                    });
                }
                let mut replacement = None;
                if let Some(cond) = options.conditional {
                    replacement = tags.get(&format!("{name}?{cond}")).cloned().flatten();
                }
                if replacement.is_none() {
                    replacement = tags.get(&name).cloned().flatten();
                    if replacement.is_none() {
                        replacement = extra(&name);
                    }
                }
                let Some(replacement) = replacement else {
                    found = find_tag(&value, end).map(|(s, e, n)| (s, e, n.to_string()));
                    continue;
                };
                value = value.replace(&format!("<{name}>"), &replacement);
                *counts.entry(name).or_insert(0) += 1;
                found = find_tag(&value, start).map(|(s, e, n)| (s, e, n.to_string()));
            }
            let changed = value != original;
            let more = changed && find_tag(&value, 0).is_some();
            // The counts of a value that still holds tags carry over to the next round.
            if more || rep_counts.contains_key(tag) {
                rep_counts.insert(tag.clone(), counts);
            }
            if changed {
                again |= more;
                tags.insert(tag.clone(), Some(value.clone()));
            }
            if !value.contains('<') {
                done.insert(tag.clone());
            }
        }
        if !again {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(list: &[(&str, &str)]) -> IndexMap<String, String> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn finds_innermost_tags() {
        assert_eq!(
            find_tag("<lt_<logtype>/x>", 0).map(|t| t.2),
            Some("logtype")
        );
        assert_eq!(find_tag("a < b > <c>", 0).map(|t| t.2), Some("c"));
        assert_eq!(find_tag("<>", 0), None);
    }

    #[test]
    fn nested_and_recursive_tags_resolve() {
        let tags = map(&[
            ("logtype", "file"),
            ("lt_file", "F"),
            ("prefix", "<lt_<logtype>>"),
            ("a", "<b>_3"),
            ("b", "<c>"),
            ("c", "3"),
            ("keep", "<HOST> <ip>"),
        ]);
        let out = substitute_tags(&tags, TagOptions::default(), &mut none).unwrap();
        assert_eq!(out["prefix"], "F");
        assert_eq!(out["a"], "3_3");
        assert_eq!(out["keep"], "<HOST> <ip>");
    }

    #[test]
    fn conditional_ignore_and_extra() {
        let tags = map(&[
            ("x", "<t> <u> <v>"),
            ("t", "v4"),
            ("t?family=inet6", "v6"),
            ("u", "U"),
        ]);
        let ignore: HashSet<String> = ["u".to_string()].into();
        let mut extra = |n: &str| (n == "v").then(|| "V".to_string());
        let out = substitute_tags(
            &tags,
            TagOptions {
                conditional: Some("family=inet6"),
                ignore: Some(&ignore),
            },
            &mut extra,
        )
        .unwrap();
        assert_eq!(out["x"], "v6 <u> V");
    }

    #[test]
    fn self_reference_is_an_error() {
        let err =
            substitute_tags(&map(&[("a", "x<a>")]), TagOptions::default(), &mut none).unwrap_err();
        assert_eq!((err.tag.as_str(), err.found.as_str()), ("a", "a"));
        let cycle = map(&[("a", "<b>"), ("b", "<a>")]);
        assert!(substitute_tags(&cycle, TagOptions::default(), &mut none).is_err());
    }

    #[test]
    fn replacement_limit() {
        // Each round doubles the number of <b>, but the count is per replacement.
        let ok = map(&[("a", "<b>"), ("b", "<c><c>"), ("c", "x")]);
        assert_eq!(
            substitute_tags(&ok, TagOptions::default(), &mut none).unwrap()["a"],
            "xx"
        );
    }
}
