//! A filter regex: tags expanded, compiled, with the bookkeeping of its groups.

use std::borrow::Cow;
use std::sync::Arc;

use rampart_pyre::{Flags, Locations, Regex};

use crate::data::{FailData, Key, Value, intern};
use crate::lines::{TupleLine, split_lines_python};
use crate::text::Within;
use crate::{Error, Text, UseDns, tags};

/// Groups that identify a failure; a failregex needs one (itself or in the prefregex).
const ID_GROUPS: [&str; 5] = ["fid", "ip4", "ip6", "dns", "mlfid"];

/// A compiled filter regex.
#[derive(Debug)]
pub(crate) struct FilterRegex {
    /// The regex as configured, tags unexpanded: what reports show.
    source: String,
    regex: Regex,
    groups: Vec<(usize, Key)>,
    /// `alt_NAME[_N]` groups that fill `NAME` when it is empty, sorted by group name.
    alternates: Vec<(Key, Key)>,
    /// `tuple_NAME[_N]` groups combined with `NAME`, sorted by group name.
    tuples: Vec<(Key, Key)>,
    /// Python group numbers of `skiplines0`, `skiplines1`, … in order.
    skiplines: Vec<usize>,
}

/// Lines of a multi-line buffer that a match used, and the others. A buffer of one
/// line is all used, and is borrowed rather than copied.
#[derive(Debug, Default)]
pub(crate) struct LineSplit<'a> {
    pub matched: Cow<'a, [TupleLine]>,
    pub unmatched: Vec<TupleLine>,
}

impl FilterRegex {
    /// Drops the engines built so far (see [`Regex::release_engines`]).
    pub(crate) fn release_engines(&mut self) {
        self.regex.release_engines();
    }

    /// Builds the engines now and reports a pattern none of them accepts (see
    /// [`Regex::check`]).
    pub(crate) fn check(&self) -> Result<(), Error> {
        self.regex().check().map_err(|e| Error::Regex {
            regex: self.source().to_string(),
            reason: e.to_string(),
        })
    }

    pub(crate) fn new(source: &str, use_dns: UseDns, multiline: bool) -> Result<Self, Error> {
        let expanded = tags::scope_inline_flags(&tags::expand(source, use_dns));
        if expanded.trim_start().is_empty() {
            return Err(Error::EmptyRegex);
        }
        let regex = Regex::with_flags(
            &expanded,
            Flags {
                multiline,
                ignore_case: false,
            },
        )
        .map_err(|e| Error::Regex {
            regex: source.to_string(),
            reason: e.to_string(),
        })?;
        let mut groups: Vec<(usize, Key)> =
            regex.group_names().map(|(i, n)| (i, intern(n))).collect();
        groups.sort_by_key(|(i, _)| *i);
        let mut alternates = Vec::new();
        let mut tuples = Vec::new();
        for (_, name) in &groups {
            if name.len() <= "alt_".len() {
                continue;
            }
            if let Some(rest) = name.strip_prefix("alt_") {
                alternates.push((*name, intern(&compound_target(rest))));
            } else if let Some(rest) = name.strip_prefix("tuple_") {
                tuples.push((*name, intern(&compound_target(rest))));
            }
        }
        alternates.sort();
        tuples.sort();
        let mut skiplines = Vec::new();
        while let Some(i) = regex.group_index(&format!("skiplines{}", skiplines.len())) {
            skiplines.push(i);
        }
        Ok(FilterRegex {
            source: source.to_string(),
            regex,
            groups,
            alternates,
            tuples,
            skiplines,
        })
    }

    pub(crate) fn regex(&self) -> &Regex {
        &self.regex
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn has_id_group(&self) -> bool {
        ID_GROUPS
            .iter()
            .any(|g| self.regex.group_index(g).is_some())
    }

    /// Runs the regex on `buf`; on a match, splits `org` into the lines the match used
    /// and the others, as fail2ban does for multi-line buffers.
    pub(crate) fn search<'a>(
        &self,
        buf: &str,
        org: &'a [TupleLine],
        locs: &mut Locations,
    ) -> Result<Option<LineSplit<'a>>, Error> {
        let found = self
            .regex
            .try_captures(buf, locs)
            .map_err(|e| Error::Match {
                regex: self.source.clone(),
                reason: e.to_string(),
            })?;
        if !found {
            return Ok(None);
        }
        if org.len() <= 1 {
            return Ok(Some(LineSplit {
                matched: Cow::Borrowed(org),
                unmatched: Vec::new(),
            }));
        }
        let (start, end) = locs.get(0).unwrap_or((0, 0));
        let bytes = buf.as_bytes();
        let line_start = bytes[..(start + 1).min(bytes.len())]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        // Python's `index("\n", end - 1)` with end 0 searches from the last character.
        let from = if end == 0 {
            bytes.len().saturating_sub(1)
        } else {
            end - 1
        };
        let line_end = bytes[from.min(bytes.len())..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| from + p + 1);
        let count1 = bytecount_newlines(&bytes[..line_start]);
        let count2 = bytecount_newlines(&bytes[..line_end.min(bytes.len())]);
        let count1 = count1.min(org.len());
        let count2 = count2.clamp(count1, org.len());
        let mut matched: Vec<TupleLine> = org[count1..count2].to_vec();
        let mut unmatched: Vec<TupleLine> = org[..count1].to_vec();
        let skipped = self.skipped_lines(buf, locs);
        let mut n = 0;
        for skipped_line in split_lines_python(&skipped) {
            if let Some(m) = matched[n.min(matched.len())..]
                .iter()
                .position(|l| l.text() == skipped_line)
            {
                unmatched.push(matched.remove(n + m));
                n += m;
            }
        }
        unmatched.extend_from_slice(&org[count2..]);
        Ok(Some(LineSplit {
            matched: Cow::Owned(matched),
            unmatched,
        }))
    }

    fn skipped_lines(&self, buf: &str, locs: &Locations) -> String {
        let mut s = String::new();
        for &g in &self.skiplines {
            if let Some(t) = locs.text(buf, g) {
                s.push_str(t);
            }
        }
        s
    }

    /// The named groups of the last match, with `alt_` and `tuple_` groups merged.
    #[cfg(test)]
    pub(crate) fn groups(&self, buf: &str, locs: &Locations) -> FailData {
        self.groups_in(buf, locs, None)
    }

    /// `base.updated_with(self.groups_in(buf, locs, shared))`, built in one map.
    pub(crate) fn groups_onto(
        &self,
        base: &FailData,
        buf: &str,
        locs: &Locations,
        shared: Option<Within<'_>>,
    ) -> FailData {
        // Alternates and tuples are worked out on the regex's own groups alone.
        if !self.alternates.is_empty() || !self.tuples.is_empty() {
            return base.updated_with(self.groups_in(buf, locs, shared));
        }
        let mut data = base.with_room(self.groups.len());
        self.fill(&mut data, buf, locs, shared, Fill::Onto);
        data
    }

    /// The named groups of the last match, with `alt_` and `tuple_` groups merged;
    /// when `buf` starts with `shared`'s text, fields within it share its string
    /// instead of a copy of `buf`.
    pub(crate) fn groups_in(
        &self,
        buf: &str,
        locs: &Locations,
        shared: Option<Within<'_>>,
    ) -> FailData {
        let mut data = FailData::with_capacity(self.groups.len() + 2);
        self.groups_with(&mut data, buf, locs, shared, true);
        data
    }

    /// [`FilterRegex::groups_in`] written into `data` (emptied first), whose room is
    /// kept, without the groups that took no part in the match: what is only read,
    /// never used to [`FailData::update`] another, needs no `None` entries (a reader
    /// sees `None` and absent alike).
    pub(crate) fn groups_into(
        &self,
        data: &mut FailData,
        buf: &str,
        locs: &Locations,
        shared: Option<Within<'_>>,
    ) {
        self.groups_with(data, buf, locs, shared, false);
    }

    fn groups_with(
        &self,
        data: &mut FailData,
        buf: &str,
        locs: &Locations,
        shared: Option<Within<'_>>,
        unset: bool,
    ) {
        data.clear();
        self.fill(data, buf, locs, shared, Fill::Empty { unset });
        for (alt, target) in &self.alternates {
            let value = data.get_k(alt).filter(|v| v.is_truthy()).cloned();
            if let Some(v) = value.filter(|_| !data.truthy_k(target)) {
                data.set(target, v);
            }
        }
        for (part, target) in &self.tuples {
            let part = data.text_k(part).map(str::to_string);
            let combined = match data.get_k(target) {
                Some(Value::Tuple(items)) => {
                    let mut items = items.clone();
                    items.push(part);
                    items
                }
                Some(other) => vec![other.as_text().map(str::to_string), part],
                None => vec![None, part],
            };
            data.set(target, Value::Tuple(combined));
        }
    }
}

/// How [`FilterRegex::fill`] writes a match's groups.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fill {
    /// Into data holding none of the regex's groups (names are distinct within a
    /// pattern); `unset` adds `None` for the groups that took no part in the match.
    Empty { unset: bool },
    /// Over data that may hold them: `dict.update`, where a group that took no part
    /// overwrites with `None` (one absent before stays absent, which reads the same).
    Onto,
}

impl FilterRegex {
    /// Writes every group's value to `data` as `how` says.
    fn fill(
        &self,
        data: &mut FailData,
        buf: &str,
        locs: &Locations,
        shared: Option<Within<'_>>,
        how: Fill,
    ) {
        debug_assert!(shared.is_none_or(|t| buf.starts_with(t.as_str())));
        // Every field shares one copy of the searched text.
        let mut base: Option<Arc<str>> = None;
        for (i, name) in &self.groups {
            let Some((s, e)) = locs.get(*i).filter(|&(s, e)| buf.get(s..e).is_some()) else {
                match how {
                    Fill::Empty { unset: true } => data.push_new(name, Value::None),
                    Fill::Empty { unset: false } => {}
                    Fill::Onto => data.overwrite(name, Value::None),
                }
                continue;
            };
            let text = match Text::inline_of(buf, s, e) {
                Some(short) => short,
                None => shared.and_then(|t| t.sub(s, e)).unwrap_or_else(|| {
                    Text::slice(base.get_or_insert_with(|| Arc::from(buf)), s, e)
                }),
            };
            match how {
                Fill::Empty { .. } => data.push_new(name, Value::Text(text)),
                Fill::Onto => data.set(name, Value::Text(text)),
            }
        }
    }
}

/// `alt_user_1` and `tuple_id_2` name `user` and `id` (mapped like tags: `id` → `fid`).
fn compound_target(rest: &str) -> String {
    let base = match rest.rfind('_') {
        Some(p) if p + 1 < rest.len() && rest[p + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            &rest[..p]
        }
        _ => rest,
    };
    tags::group_name(base)
}

fn bytecount_newlines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternates_fill_empty_targets() {
        let r = FilterRegex::new(
            "u=<F-USER>\\S*</F-USER> a=<F-ALT_USER>\\S*</F-ALT_USER>",
            UseDns::No,
            false,
        )
        .unwrap();
        let mut locs = Locations::new();
        let buf = "u= a=bob\n";
        assert!(r.search(buf, &[], &mut locs).unwrap().is_some());
        assert_eq!(r.groups(buf, &locs).text("user"), Some("bob"));
        let buf = "u=eve a=bob\n";
        assert!(r.search(buf, &[], &mut locs).unwrap().is_some());
        assert_eq!(r.groups(buf, &locs).text("user"), Some("eve"));
    }

    #[test]
    fn groups_onto_a_base_update_it() {
        let pre = FilterRegex::new(
            "^<F-MLFID>\\S+</F-MLFID> u=<F-USER>\\S*</F-USER>",
            UseDns::No,
            false,
        )
        .unwrap();
        let fail =
            FilterRegex::new("u=<F-USER>\\S*</F-USER>(?: h=<HOST>)?", UseDns::No, false).unwrap();
        let mut locs = Locations::new();
        let buf = "sshd[1] u=bob\n";
        assert!(pre.search(buf, &[], &mut locs).unwrap().is_some());
        let base = pre.groups(buf, &locs);
        for (buf, user) in [("u=eve h=192.0.2.1\n", "eve"), ("u= \n", "")] {
            assert!(fail.search(buf, &[], &mut locs).unwrap().is_some());
            let onto = fail.groups_onto(&base, buf, &locs, None);
            assert_eq!(onto, base.updated_with(fail.groups(buf, &locs)));
            // The base's order is kept, its values overwritten, the new ones appended.
            let keys: Vec<&str> = onto.iter().map(|(k, _)| k).collect();
            assert_eq!(&keys[..2], ["mlfid", "user"]);
            assert_eq!(onto.text("user"), Some(user));
        }
    }

    #[test]
    fn compound_names() {
        assert_eq!(compound_target("user_1"), "user");
        assert_eq!(compound_target("user"), "user");
        assert_eq!(compound_target("id"), "fid");
        assert_eq!(compound_target("a_b"), "a_b");
    }
}
