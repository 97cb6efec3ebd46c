//! Multi-line failure ids: failures assembled from several lines of one connection.
//!
//! sshd logs a connection's address on one line and its failure on another, tied by a
//! connection prefix (`host sshd[123]: `) captured as `<F-MLFID>`. The cache keeps what
//! is known per id for five minutes (at most 100 ids), as fail2ban does, and the merge
//! rules decide when a `<F-NOFAIL>` line becomes part of a failure and when access
//! gained (`<F-MLFGAINED>`) cancels pending ones.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::Text;
use crate::data::{FailData, Keys, Value};
use crate::lines::TupleLine;

const MAX_ENTRIES: usize = 100;
const TTL_SECONDS: f64 = 300.0;

/// What is known per multi-line failure id. Every sshd line looks its connection up
/// here and, under load, the cache is full, so each new id drops the oldest: a hash
/// map finds ids, and a queue of insertion numbers keeps fail2ban's first-in-first-out
/// order without re-indexing anything on removal (entries removed leave stale numbers
/// in the queue, skipped when they come up). Entries live in slots the map points to:
/// a line finds its id once and puts its result back by the slot.
#[derive(Debug, Default)]
pub(crate) struct MlfidCache {
    index: HashMap<Text, usize, BuildHasherDefault<Fnv>>,
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
    order: VecDeque<(u64, usize)>,
    next_seq: u64,
}

#[derive(Debug)]
struct Entry {
    /// The id as the line gave it: a connection prefix is short enough to be kept
    /// inline, so a new id costs no allocation (and a dropped one no free).
    id: Text,
    seq: u64,
    /// Shared with the failure last reported for the id, which its reader has usually
    /// dropped by the id's next line: the merge then takes the data without a copy.
    /// `None` until the first merge of a new id stores its result.
    data: Option<Arc<FailData>>,
    expires: f64,
}

/// FNV-1a: ids are short, and the hash only has to tell them apart quickly.
#[derive(Debug)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        // A multiplication carries a difference only upwards: the high bits are mixed
        // down into the low ones, which pick the bucket (MurmurHash3's finaliser).
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    /// FNV-1a over 8-byte words rather than bytes: an id is hashed on every line of
    /// its connection, and a byte at a time was a tenth of the cache's cost.
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0; 8];
            w.copy_from_slice(word);
            self.0 = (self.0 ^ u64::from_le_bytes(w)).wrapping_mul(0x0100_0000_01b3);
        }
        let rest = words.remainder();
        let mut w = [0; 8];
        w[..rest.len()].copy_from_slice(rest);
        // The length keeps "a" and "a\0" apart.
        let last = u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59);
        self.0 = (self.0 ^ last).wrapping_mul(0x0100_0000_01b3);
    }
}

impl MlfidCache {
    /// fail2ban's `Cache.get`: the data of a live entry (taken out; the merge puts the
    /// result back through the slot), and an expired entry is dropped.
    fn take(&mut self, id: &str, now: f64) -> Option<(usize, FailData)> {
        let slot = *self.index.get(id)?;
        let entry = self.slots.get_mut(slot)?.as_mut()?;
        if entry.expires > now {
            let data = entry.data.take().map(Arc::unwrap_or_clone);
            return Some((slot, data.unwrap_or_default()));
        }
        self.remove_slot(slot);
        None
    }

    /// fail2ban's `Cache.set` of an id it does not hold: when full, the oldest entries
    /// go until one is still live and there is room. Returns the new entry's slot.
    fn insert(&mut self, id: &Text, now: f64) -> usize {
        if self.index.len() >= MAX_ENTRIES {
            while let Some((seq, oldest)) = self.order.pop_front() {
                let Some(expires) = self.live(oldest, seq).map(|e| e.expires) else {
                    continue;
                };
                self.remove_slot(oldest);
                if expires > now && self.index.len() < MAX_ENTRIES {
                    break;
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry {
            id: id.clone(),
            seq,
            data: None,
            expires: now + TTL_SECONDS,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(entry);
                slot
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        };
        self.index.insert(id.clone(), slot);
        self.order.push_back((seq, slot));
        if self.order.len() > 4 * MAX_ENTRIES {
            let slots = &self.slots;
            self.order.retain(|&(seq, slot)| {
                slots
                    .get(slot)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| e.seq == seq)
            });
        }
        slot
    }

    /// The entry in `slot` if it is still the one inserted as number `seq`.
    fn live(&self, slot: usize, seq: u64) -> Option<&Entry> {
        self.slots
            .get(slot)
            .and_then(Option::as_ref)
            .filter(|e| e.seq == seq)
    }

    /// Stores what the merge of a line ended with in the entry `slot` (returned by the
    /// merge for that line; nothing else changes the cache in between).
    pub(crate) fn update(&mut self, slot: usize, data: &Arc<FailData>) {
        if let Some(Some(e)) = self.slots.get_mut(slot) {
            e.data = Some(Arc::clone(data));
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(slot) = self.index.get(id).copied() {
            self.remove_slot(slot);
        }
    }

    fn remove_slot(&mut self, slot: usize) {
        if let Some(entry) = self.slots.get_mut(slot).and_then(Option::take) {
            self.index.remove(&entry.id);
            self.free.push(slot);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.order.clear();
    }
}

const NOFAIL: u8 = 1;
const FORGET: u8 = 2;
const CACHED_NOFAIL: u8 = 4;
const GAINED: u8 = 8;

/// Adds the failure's user to the id's set of users; returns how many there are.
fn record_user(data: &mut FailData, user: Option<Text>, k: &Keys) -> usize {
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return data.users().len();
    };
    // fail2ban adds to the set where it stands, or puts a new one last.
    if let Some(Value::Users(users)) = data.get_mut_k(&k.users) {
        if !users.contains(&user) {
            users.push(user);
        }
        return users.len();
    }
    data.set(&k.users, Value::Users(vec![user]));
    1
}

/// Merges a new match of a multi-line failure id into what is known about the id.
///
/// Returns the merged data, and the id's slot when it stays cached: the caller stores
/// there what the data finally is, with [`MlfidCache::update`].
pub(crate) fn merge(
    cache: &mut MlfidCache,
    id: &Text,
    mut fail: FailData,
    matched: &[TupleLine],
    now: f64,
    k: &Keys,
) -> (FailData, Option<usize>) {
    let known = cache.take(id, now);
    let mut flags = 0u8;
    if fail.truthy_k(&k.mlfgained) {
        flags |= GAINED | NOFAIL;
        if !fail.truthy_k(&k.nofail) {
            let gained = fail.get_k(&k.mlfgained).cloned().unwrap_or(Value::None);
            fail.set(&k.nofail, gained);
        }
    } else if fail.truthy_k(&k.nofail) {
        flags |= NOFAIL;
    }
    if fail.pop(&k.mlfforget).is_some_and(|v| v.is_truthy()) {
        flags |= FORGET;
    }
    let user = match fail.get_k(&k.user) {
        Some(Value::Text(u)) => Some(u.clone()),
        _ => None,
    };
    let mut slot = None;
    let (mut merged, users) = match known {
        Some((known_slot, mut groups)) => {
            let users = record_user(&mut groups, user, k);
            if groups.pop(&k.nofail).is_some_and(|v| v.is_truthy()) {
                flags |= CACHED_NOFAIL;
            }
            if groups.pop(&k.mlfgained).is_some_and(|v| v.is_truthy()) {
                flags |= CACHED_NOFAIL;
            }
            if flags & GAINED != 0 {
                groups.pop(&k.mlfpending);
            }
            if flags & CACHED_NOFAIL == 0 && !groups.truthy_k(&k.mlfpending) {
                groups.pop(&k.matches);
            }
            groups.update_set_only(fail);
            if flags & FORGET != 0 {
                cache.remove(id);
            } else {
                slot = Some(known_slot);
            }
            (groups, users)
        }
        None if flags & FORGET == 0 => {
            let users = record_user(&mut fail, user, k);
            // A placeholder: the `update` at the end stores the merged data.
            slot = Some(cache.insert(id, now));
            (fail, users)
        }
        None => (fail, 0),
    };
    let pending = merged.pop(&k.mlfpending).is_some_and(|v| v.is_truthy());
    if pending || users > 1 {
        // Pending failures, or attempts on several accounts: not a harmless line.
        merged.pop(&k.nofail);
        merged.pop(&k.mlfgained);
        flags &= !(GAINED | NOFAIL);
    }
    if flags & NOFAIL == 0 {
        let mut lines = merged.take_lines(&k.nofail_matches);
        lines.extend(merged.matches().iter().cloned());
        if flags & GAINED == 0 {
            lines.extend_from_slice(matched);
        }
        merged.set(&k.matches, Value::Lines(lines));
    } else if flags & (NOFAIL | FORGET) == NOFAIL {
        let mut lines = merged.take_lines(&k.nofail_matches);
        lines.extend_from_slice(matched);
        merged.set(&k.nofail_matches, Value::Lines(lines));
    }
    (merged, slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(id: &str) -> u64 {
        let mut h = Fnv::default();
        h.write(id.as_bytes());
        h.finish()
    }

    /// Connection ids differ in a digit or two, anywhere in a word: their hashes must
    /// still spread over the low bits a small table's buckets are picked by.
    #[test]
    fn ids_one_digit_apart_spread_over_buckets() {
        let ids: Vec<String> = (0..1000)
            .map(|pid| format!("bastion sshd[{pid}]: "))
            .collect();
        let mut buckets = std::collections::HashSet::new();
        let mut full = std::collections::HashSet::new();
        for id in &ids {
            buckets.insert(hash(id) & 127);
            full.insert(hash(id));
        }
        assert_eq!(full.len(), ids.len());
        assert!(buckets.len() > 120, "{} of 128 buckets", buckets.len());
        // Trailing zero bytes are part of the id.
        assert_ne!(hash("a"), hash("a\0"));
        assert_ne!(hash("abcdefgh"), hash("abcdefgh\0"));
    }

    /// The cache against fail2ban's own (an ordered dict: `get` drops an expired
    /// entry, a `set` when full drops the oldest until one still live went and there
    /// is room) over a long run of lookups, inserts and removals.
    #[test]
    fn the_cache_keeps_what_fail2bans_keeps() {
        let mut cache = MlfidCache::default();
        let mut model: Vec<(String, f64)> = Vec::new();
        let mut next = crate::test_random(0x2545_f491_4f6c_dd1d);
        let mut now = 1_000.0;
        let (mut hits, mut full) = (0, 0);
        for _ in 0..20_000 {
            now += (next() % 4) as f64;
            let id = format!("host sshd[{}]: ", next() % 400);
            if next().is_multiple_of(10) {
                cache.remove(&id);
                model.retain(|(k, _)| *k != id);
                continue;
            }
            let known = match model.iter().position(|(k, _)| *k == id) {
                Some(p) if model[p].1 > now => true,
                Some(p) => {
                    model.remove(p);
                    false
                }
                None => false,
            };
            let taken = cache.take(&id, now);
            assert_eq!(taken.is_some(), known, "{id} at {now}");
            if let Some((slot, _)) = taken {
                hits += 1;
                cache.update(slot, &Arc::new(FailData::default()));
                continue;
            }
            if model.len() >= MAX_ENTRIES {
                full += 1;
                while !model.is_empty() {
                    let (_, expires) = model.remove(0);
                    if expires > now && model.len() < MAX_ENTRIES {
                        break;
                    }
                }
            }
            model.push((id.clone(), now + TTL_SECONDS));
            let slot = cache.insert(&Text::from(id.as_str()), now);
            cache.update(slot, &Arc::new(FailData::default()));
            let mut held: Vec<&str> = cache.index.keys().map(|k| &**k).collect();
            let mut expected: Vec<&str> = model.iter().map(|(k, _)| k.as_str()).collect();
            held.sort_unstable();
            expected.sort_unstable();
            assert_eq!(held, expected, "after inserting {id} at {now}");
        }
        assert!(hits > 1_000 && full > 1_000, "{hits} hits, {full} full");
    }
}
