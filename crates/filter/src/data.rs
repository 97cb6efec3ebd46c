//! The data a failure carries: captured fields, matched lines, users.
//!
//! fail2ban keeps this in one dictionary that mixes regex groups with bookkeeping
//! entries (`matches`, `users`, `nofail`, `mlfpending`, …), and its multi-line merging
//! rules are written in terms of that dictionary: which keys are popped, which `None`
//! values overwrite others. Modelling it the same way keeps those rules checkable line
//! by line against the reference.

use std::sync::{Mutex, OnceLock, PoisonError};

use crate::lines::TupleLine;
use crate::{FailureId, Text};

/// A value in a failure's data.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A group that did not take part in the match.
    None,
    /// A captured or assigned text.
    Text(Text),
    /// A flag set by the filter itself (`mlfpending`).
    Flag,
    /// Lines (`matches`, `nofail-matches`).
    Lines(Vec<TupleLine>),
    /// The distinct user names seen for one multi-line failure id, in first-seen order.
    Users(Vec<Text>),
    /// An address kept beside a non-address failure id (`ip`).
    Addr(FailureId),
    /// Values of `tuple_NAME_N` groups combined into `NAME`.
    Tuple(Vec<Option<String>>),
}

impl Value {
    /// Python truthiness: `None`, `""` and empty collections are false.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Text(s) => !s.is_empty(),
            Value::Flag | Value::Addr(_) | Value::Tuple(_) => true,
            Value::Lines(l) => !l.is_empty(),
            Value::Users(u) => !u.is_empty(),
        }
    }

    /// The text, for text values.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s.as_str()),
            _ => None,
        }
    }
}

/// Entries the filter may add to a failure's captured groups.
const BOOKKEEPING: usize = 4;

/// An insertion-ordered map of names to values (few keys: linear search is fastest).
#[derive(Clone, Debug, Default)]
pub struct FailData {
    entries: Vec<(Key, Value)>,
    /// [`Key::bit`] of every key ever added (removals leave theirs): a key whose bit is
    /// clear is absent without a search. Most lookups are of bookkeeping entries a
    /// failure does not have.
    present: u64,
}

/// Equal when every reader sees the same: the same values other than `None` under the
/// same keys, in whatever order they were added.
impl PartialEq for FailData {
    fn eq(&self, other: &FailData) -> bool {
        fn set(data: &FailData) -> impl Iterator<Item = &(Key, Value)> {
            data.entries.iter().filter(|(_, v)| *v != Value::None)
        }
        set(self).count() == set(other).count() && set(self).all(|(k, v)| other.get_k(k) == Some(v))
    }
}

impl FailData {
    pub(crate) fn with_capacity(n: usize) -> FailData {
        FailData {
            entries: Vec::with_capacity(n),
            present: 0,
        }
    }

    /// Empties it, keeping its room.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.present = 0;
    }

    // The writers are inlined into their callers: passed by pointer, a value just
    // built is read back in wider pieces than it was written, and waits for it.
    #[inline(always)]
    fn push(&mut self, key: Key, value: Value) {
        self.present |= key.bit();
        self.entries.push((key, value));
    }

    /// The value of `key`, if present (a present `None` group is `Some(&Value::None)`).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.0 == key)
            .map(|(_, v)| v)
    }

    /// The text of `key`, if present and text.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_text)
    }

    /// Whether `key` is present and truthy.
    pub fn truthy(&self, key: &str) -> bool {
        self.get(key).is_some_and(Value::is_truthy)
    }

    /// Whether `key` is present with a value other than `None`.
    pub fn is_set(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| *v != Value::None)
    }

    // Every key in an entry is interned (see [`intern`]), so within the crate a key is
    // found by its address: one comparison per entry instead of a string comparison.

    fn position(&self, key: &Key) -> Option<usize> {
        if self.present & key.bit() == 0 {
            return None;
        }
        self.entries.iter().position(|(k, _)| k == key)
    }

    pub(crate) fn get_k(&self, key: &Key) -> Option<&Value> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    pub(crate) fn get_mut_k(&mut self, key: &Key) -> Option<&mut Value> {
        self.position(key).map(|i| &mut self.entries[i].1)
    }

    pub(crate) fn text_k(&self, key: &Key) -> Option<&str> {
        self.get_k(key).and_then(Value::as_text)
    }

    pub(crate) fn truthy_k(&self, key: &Key) -> bool {
        self.get_k(key).is_some_and(Value::is_truthy)
    }

    #[inline(always)]
    pub(crate) fn set(&mut self, key: &Key, value: Value) {
        match self.position(key) {
            Some(i) => self.entries[i].1 = value,
            None => self.push(*key, value),
        }
    }

    /// Sets the value of `key` if it is present.
    #[inline(always)]
    pub(crate) fn overwrite(&mut self, key: &Key, value: Value) {
        if let Some(i) = self.position(key) {
            self.entries[i].1 = value;
        }
    }

    /// Adds an entry for a key known not to be present.
    #[inline(always)]
    pub(crate) fn push_new(&mut self, key: &Key, value: Value) {
        debug_assert!(self.position(key).is_none());
        self.push(*key, value);
    }

    pub(crate) fn pop(&mut self, key: &Key) -> Option<Value> {
        let pos = self.position(key)?;
        Some(self.entries.remove(pos).1)
    }

    /// `dict.update(other)`: every entry of `other` overwrites, `None` values included.
    pub(crate) fn update(&mut self, other: FailData) {
        self.entries.reserve(other.entries.len());
        for (k, v) in other.entries {
            match self.position(&k) {
                Some(i) => self.entries[i].1 = v,
                None => self.push(k, v),
            }
        }
    }

    /// A copy of this with room for `more` entries and the bookkeeping ones.
    pub(crate) fn with_room(&self, more: usize) -> FailData {
        let mut copy = FailData::with_capacity(self.entries.len() + more + BOOKKEEPING);
        copy.entries.extend(self.entries.iter().cloned());
        copy.present = self.present;
        copy
    }

    /// A copy of this updated with `other`, allocated once for both.
    pub(crate) fn updated_with(&self, other: FailData) -> FailData {
        // Room for the bookkeeping entries a failure gets next (matches, users, …).
        let mut merged = self.with_room(other.entries.len());
        merged.update(other);
        merged
    }

    /// `dict.update((k, v) for k, v in other.items() if v is not None)`.
    pub(crate) fn update_set_only(&mut self, other: FailData) {
        // Most of `other`'s keys are already here (the same regexes matched the id's
        // earlier lines): reserving room for all of them would reallocate every time.
        for (k, v) in other.entries {
            if v != Value::None {
                self.set(&k, v);
            }
        }
    }

    /// All entries, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.0, v))
    }

    /// The matched lines (`matches`).
    pub fn matches(&self) -> &[TupleLine] {
        match self.get_k(&keys().matches) {
            Some(Value::Lines(l)) => l,
            _ => &[],
        }
    }

    /// The users seen for a multi-line failure (`users`).
    pub fn users(&self) -> &[Text] {
        match self.get_k(&keys().users) {
            Some(Value::Users(u)) => u,
            _ => &[],
        }
    }

    pub(crate) fn take_lines(&mut self, key: &Key) -> Vec<TupleLine> {
        match self.pop(key) {
            Some(Value::Lines(l)) => l,
            _ => Vec::new(),
        }
    }
}

/// Names of the bookkeeping entries.
pub(crate) mod names {
    pub const MATCHES: &str = "matches";
    pub const USERS: &str = "users";
    pub const USER: &str = "user";
    pub const NOFAIL: &str = "nofail";
    pub const NOFAIL_MATCHES: &str = "nofail-matches";
    pub const MLFID: &str = "mlfid";
    pub const MLFGAINED: &str = "mlfgained";
    pub const MLFFORGET: &str = "mlfforget";
    pub const MLFPENDING: &str = "mlfpending";
    pub const CONTENT: &str = "content";
    pub const FID: &str = "fid";
    pub const IP4: &str = "ip4";
    pub const IP6: &str = "ip6";
    pub const DNS: &str = "dns";
    pub const CIDR: &str = "cidr";
    pub const IP: &str = "ip";
}

/// A group or bookkeeping name, interned for the whole process (see [`intern`]): two
/// keys are equal when they are the same name, which is one address comparison.
///
/// Keys are plain references rather than `Arc<str>` because every failure copies and
/// drops several of them per line; an atomic count on each was measurable.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Key(&'static str);

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.0.cmp(other.0)
    }
}

impl Key {
    /// One of 64 bits, from the name's address (distinct names, distinct addresses;
    /// two names sharing a bit only cost a search).
    fn bit(self) -> u64 {
        let spread = (self.0.as_ptr().addr() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        1 << (spread >> 58)
    }
}

impl std::ops::Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

/// The one [`Key`] of a name. Names come from filter definitions (a small, repeating
/// vocabulary that a reload finds again in the table), so the names kept for the
/// process's life stay few.
pub(crate) fn intern(name: &str) -> Key {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    // A panic elsewhere while the table was held leaves it intact (pushes are whole).
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(n) = names.iter().find(|n| **n == name) {
        return Key(n);
    }
    let n: &'static str = Box::leak(name.into());
    names.push(n);
    Key(n)
}

/// Interned keys for the entries the filter reads and writes itself.
#[derive(Debug)]
pub(crate) struct Keys {
    pub matches: Key,
    pub users: Key,
    pub user: Key,
    pub nofail: Key,
    pub nofail_matches: Key,
    pub mlfid: Key,
    pub mlfgained: Key,
    pub mlfforget: Key,
    pub mlfpending: Key,
    pub content: Key,
    pub fid: Key,
    pub ip4: Key,
    pub ip6: Key,
    pub dns: Key,
    pub cidr: Key,
    pub ip: Key,
}

/// The interned bookkeeping keys.
pub(crate) fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        matches: intern(names::MATCHES),
        users: intern(names::USERS),
        user: intern(names::USER),
        nofail: intern(names::NOFAIL),
        nofail_matches: intern(names::NOFAIL_MATCHES),
        mlfid: intern(names::MLFID),
        mlfgained: intern(names::MLFGAINED),
        mlfforget: intern(names::MLFFORGET),
        mlfpending: intern(names::MLFPENDING),
        content: intern(names::CONTENT),
        fid: intern(names::FID),
        ip4: intern(names::IP4),
        ip6: intern(names::IP6),
        dns: intern(names::DNS),
        cidr: intern(names::CIDR),
        ip: intern(names::IP),
    })
}
