//! Multi-line failure ids: failures assembled from several lines of one connection.
//!
//! sshd logs a connection's address on one line and its failure on another, tied by a
//! connection prefix (`host sshd[123]: `) captured as `<F-MLFID>`. The cache keeps what
//! is known per id for five minutes (at most 100 ids), as fail2ban does, and the merge
//! rules decide when a `<F-NOFAIL>` line becomes part of a failure and when access
//! gained (`<F-MLFGAINED>`) cancels pending ones.

use indexmap::IndexMap;

use crate::data::{FailData, Keys, Value, keys};
use crate::lines::TupleLine;

const MAX_ENTRIES: usize = 100;
const TTL_SECONDS: f64 = 300.0;

/// What is known per multi-line failure id, oldest first. Every sshd line looks its
/// connection up here, so lookups are hashed rather than a scan over 100 ids that
/// share their first bytes.
#[derive(Debug, Default)]
pub(crate) struct MlfidCache {
    entries: IndexMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    data: FailData,
    expires: f64,
}

impl MlfidCache {
    /// The data of a live id, moved out (the entry keeps its place and expiry; the
    /// merge writes the new data back with [`MlfidCache::update`]). Expired ids go.
    fn take(&mut self, id: &str, now: f64) -> Option<FailData> {
        let pos = self.entries.get_index_of(id)?;
        match self.entries.get_index_mut(pos) {
            Some((_, e)) if e.expires > now => Some(std::mem::take(&mut e.data)),
            _ => {
                self.entries.shift_remove_index(pos);
                None
            }
        }
    }

    /// Adds a new id; when full, drops ids from the oldest end up to and including the
    /// first one that has not expired.
    fn insert(&mut self, id: &str, data: FailData, now: f64) {
        if self.entries.len() >= MAX_ENTRIES {
            while let Some((_, e)) = self.entries.shift_remove_index(0) {
                if e.expires > now && self.entries.len() < MAX_ENTRIES {
                    break;
                }
            }
        }
        // A new id goes to the young end, as an append would put it.
        self.entries.shift_remove(id);
        self.entries.insert(
            id.to_string(),
            Entry {
                data,
                expires: now + TTL_SECONDS,
            },
        );
    }

    /// Replaces the data of a cached id in place (its position and expiry stay).
    pub(crate) fn update(&mut self, id: &str, data: &FailData) {
        if let Some(e) = self.entries.get_mut(id) {
            e.data = data.clone();
        }
    }

    fn remove(&mut self, id: &str) {
        self.entries.shift_remove(id);
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

const NOFAIL: u8 = 1;
const FORGET: u8 = 2;
const CACHED_NOFAIL: u8 = 4;
const GAINED: u8 = 8;

/// Adds the failure's user to the id's set of users; returns how many there are.
fn record_user(data: &mut FailData, user: Option<String>, k: &Keys) -> usize {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return data.users().len();
    };
    let mut users = match data.pop(keys::USERS) {
        Some(Value::Users(u)) => u,
        _ => Vec::new(),
    };
    if !users.contains(&user) {
        users.push(user);
    }
    let n = users.len();
    data.set(&k.users, Value::Users(users));
    n
}

/// Merges a new match of a multi-line failure id into what is known about the id.
///
/// Returns the merged data; when the id stays cached, the cache holds the same data
/// (the caller writes later changes back with [`MlfidCache::update`]).
pub(crate) fn merge(
    cache: &mut MlfidCache,
    id: &str,
    mut fail: FailData,
    matched: &[TupleLine],
    now: f64,
    k: &Keys,
) -> FailData {
    let known = cache.take(id, now);
    let mut flags = 0u8;
    if fail.truthy(keys::MLFGAINED) {
        flags |= GAINED | NOFAIL;
        if !fail.truthy(keys::NOFAIL) {
            let gained = fail.get(keys::MLFGAINED).cloned().unwrap_or(Value::None);
            fail.set(&k.nofail, gained);
        }
    } else if fail.truthy(keys::NOFAIL) {
        flags |= NOFAIL;
    }
    if fail.pop(keys::MLFFORGET).is_some_and(|v| v.is_truthy()) {
        flags |= FORGET;
    }
    let user = fail.text(keys::USER).map(str::to_string);
    let (mut merged, users) = match known {
        Some(mut groups) => {
            let users = record_user(&mut groups, user, k);
            if groups.pop(keys::NOFAIL).is_some_and(|v| v.is_truthy()) {
                flags |= CACHED_NOFAIL;
            }
            if groups.pop(keys::MLFGAINED).is_some_and(|v| v.is_truthy()) {
                flags |= CACHED_NOFAIL;
            }
            if flags & GAINED != 0 {
                groups.pop(keys::MLFPENDING);
            }
            if flags & CACHED_NOFAIL == 0 && !groups.truthy(keys::MLFPENDING) {
                groups.pop(keys::MATCHES);
            }
            groups.update_set_only(fail);
            if flags & FORGET != 0 {
                cache.remove(id);
            }
            (groups, users)
        }
        None if flags & FORGET == 0 => {
            let users = record_user(&mut fail, user, k);
            cache.insert(id, fail.clone(), now);
            (fail, users)
        }
        None => (fail, 0),
    };
    let pending = merged.pop(keys::MLFPENDING).is_some_and(|v| v.is_truthy());
    if pending || users > 1 {
        // Pending failures, or attempts on several accounts: not a harmless line.
        merged.pop(keys::NOFAIL);
        merged.pop(keys::MLFGAINED);
        flags &= !(GAINED | NOFAIL);
    }
    if flags & NOFAIL == 0 {
        let mut lines = merged.take_lines(keys::NOFAIL_MATCHES);
        lines.extend(merged.matches().iter().cloned());
        if flags & GAINED == 0 {
            lines.extend_from_slice(matched);
        }
        merged.set(&k.matches, Value::Lines(lines));
    } else if flags & (NOFAIL | FORGET) == NOFAIL {
        let mut lines = merged.take_lines(keys::NOFAIL_MATCHES);
        lines.extend_from_slice(matched);
        merged.set(&k.nofail_matches, Value::Lines(lines));
    }
    cache.update(id, &merged);
    merged
}
