//! Failure counting per id: fail2ban's `FailManager` rules.
//!
//! The count is not a sliding window of timestamps. Each id keeps one entry: the
//! start of its observed interval, the last failure time and a retry count. When a new
//! failure arrives later than the last one and the interval has grown beyond
//! `findtime`, the count is scaled to the rate seen so far (`retry / interval *
//! findtime`, rounded half to even) and the interval restarts `findtime` before the new
//! failure. So an id failing steadily but slower than `maxretry` per `findtime` never
//! gets there, while a burst after a long quiet phase is judged by the burst.

use std::collections::HashMap;

use rampart_filter::FailureId;

use crate::Ticket;

#[derive(Clone, Debug)]
struct Entry {
    ticket: Ticket,
    first_time: f64,
    retry: u32,
}

/// The failures of one jail not yet banned.
#[derive(Clone, Debug)]
pub struct FailManager {
    entries: HashMap<FailureId, Entry>,
    max_retry: u32,
    find_time: f64,
    max_matches: usize,
    total: u64,
}

impl FailManager {
    /// Counting with `maxretry`, `findtime` (seconds) and `maxmatches`.
    pub fn new(max_retry: u32, find_time: f64, max_matches: usize) -> FailManager {
        FailManager {
            entries: HashMap::new(),
            max_retry,
            find_time,
            max_matches,
            total: 0,
        }
    }

    /// `maxretry`.
    pub fn set_max_retry(&mut self, max_retry: u32) {
        self.max_retry = max_retry;
    }

    pub fn set_find_time(&mut self, find_time: f64) {
        self.find_time = find_time;
    }

    pub fn set_max_matches(&mut self, max_matches: usize) {
        self.max_matches = max_matches;
    }

    pub fn max_retry(&self) -> u32 {
        self.max_retry
    }

    /// `findtime` in seconds.
    pub fn find_time(&self) -> f64 {
        self.find_time
    }

    /// `maxmatches`.
    pub fn max_matches(&self) -> usize {
        self.max_matches
    }

    /// Counts one failure `ticket` (its `time`, matched lines and captured fields) as
    /// `weight` attempts (1, or more for known offenders: see
    /// [`crate::Increment::failure_weight`]). Returns the id's ticket, removed from the
    /// counting, once its retry count reaches `maxretry`: that ticket is to be banned.
    ///
    /// The first failure of an id keeps its captured fields; later ones add only their
    /// matched lines and attempts, as fail2ban does.
    pub fn add_failure(&mut self, ticket: Ticket, weight: u32) -> Option<Ticket> {
        self.total += 1;
        let id = ticket.id.clone();
        let retry = match self.entries.get_mut(&id) {
            Some(entry) => {
                let attempts = ticket.failures.max(1);
                if ticket.time > entry.ticket.time {
                    if entry.first_time < ticket.time - self.find_time {
                        let rate = f64::from(entry.retry) / (ticket.time - entry.first_time);
                        entry.retry = to_count((rate * self.find_time).round_ties_even());
                        entry.first_time = ticket.time - self.find_time;
                    }
                    entry.ticket.time = ticket.time;
                }
                entry.retry = entry.retry.saturating_add(weight);
                entry.ticket.failures = entry.ticket.failures.saturating_add(attempts);
                if self.max_matches == 0 {
                    entry.ticket.matches.clear();
                } else {
                    entry.ticket.matches.extend(ticket.matches);
                    let excess = entry.ticket.matches.len().saturating_sub(self.max_matches);
                    entry.ticket.matches.drain(..excess);
                }
                entry.retry
            }
            None => {
                let mut ticket = ticket;
                // fail2ban starts the count at the ticket's attempts, or at the weight if
                // that is more; the first failure's lines are kept whole.
                let retry = if weight > ticket.failures {
                    ticket.failures = ticket.failures.max(1);
                    weight
                } else {
                    ticket.failures
                };
                let first_time = ticket.time;
                self.entries.insert(
                    id.clone(),
                    Entry {
                        ticket,
                        first_time,
                        retry,
                    },
                );
                retry
            }
        };
        if retry >= self.max_retry {
            return self.entries.remove(&id).map(|e| e.ticket);
        }
        None
    }

    /// Forgets ids whose last failure is `findtime` or more before `now`.
    pub fn cleanup(&mut self, now: f64) {
        let limit = now - self.find_time;
        self.entries.retain(|_, e| e.ticket.time > limit);
    }

    /// Forgets one id (after a manual ban, say).
    pub fn remove(&mut self, id: &FailureId) -> Option<Ticket> {
        self.entries.remove(id).map(|e| e.ticket)
    }

    /// The current retry count of `id`, if it is being counted.
    pub fn retry(&self, id: &FailureId) -> Option<u32> {
        self.entries.get(id).map(|e| e.retry)
    }

    /// Ids being counted (`Currently failed`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no id is being counted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Failures counted since start (`Total failed`).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Sets the total, e.g. to carry it over a reload.
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
    }
}

fn to_count(x: f64) -> u32 {
    if x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = x as u32;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_filter::AddrHint;

    fn failure(ip: &str, time: f64) -> Ticket {
        let mut t = Ticket::new(FailureId::parse(ip, AddrHint::Any), time);
        t.matches = vec![format!("line at {time}")];
        t
    }

    /// The retry count after each failure, and at which failure a ban came.
    fn run(manager: &mut FailManager, times: &[f64]) -> (Vec<Option<u32>>, Option<usize>) {
        let id = FailureId::parse("192.0.2.1", AddrHint::Any);
        let mut counts = Vec::new();
        let mut banned = None;
        for (i, &t) in times.iter().enumerate() {
            if manager.add_failure(failure("192.0.2.1", t), 1).is_some() && banned.is_none() {
                banned = Some(i);
            }
            counts.push(manager.retry(&id));
        }
        (counts, banned)
    }

    #[test]
    fn rate_extrapolation_not_a_sliding_window() {
        // The spec's verified examples (maxretry 3, findtime 600).
        let mut m = FailManager::new(3, 600.0, 3);
        let (counts, banned) = run(&mut m, &[0.0, 500.0, 1000.0, 1100.0]);
        assert_eq!(counts[..3], [Some(1), Some(2), Some(2)]);
        assert_eq!(banned, Some(3));

        let mut m = FailManager::new(3, 600.0, 3);
        let (counts, banned) = run(&mut m, &[0.0, 590.0, 1180.0, 1770.0, 2360.0, 2950.0]);
        assert_eq!(banned, None);
        assert!(
            counts.iter().all(|c| c.is_some_and(|c| c < 3)),
            "{counts:?}"
        );
    }

    #[test]
    fn ban_ticket_carries_last_time_failures_and_last_matches() {
        let mut m = FailManager::new(3, 600.0, 2);
        let mut first = failure("192.0.2.7", 10.0);
        first.data.insert("user".to_string(), "root".to_string());
        assert!(m.add_failure(first, 1).is_none());
        let mut second = failure("192.0.2.7", 20.0);
        second.data.insert("user".to_string(), "admin".to_string());
        assert!(m.add_failure(second, 1).is_none());
        // An older failure counts but does not move the time back.
        let banned = m.add_failure(failure("192.0.2.7", 15.0), 1).unwrap();
        assert_eq!(banned.time, 20.0);
        assert_eq!(banned.failures, 3);
        assert_eq!(banned.matches, vec!["line at 20", "line at 15"]);
        assert_eq!(banned.data.get("user").map(String::as_str), Some("root"));
        assert!(m.is_empty());
        assert_eq!(m.total(), 3);
    }

    #[test]
    fn cleanup_drops_ids_quiet_for_findtime() {
        let mut m = FailManager::new(5, 600.0, 5);
        m.add_failure(failure("192.0.2.1", 100.0), 1);
        m.add_failure(failure("192.0.2.2", 400.0), 1);
        m.cleanup(700.0);
        assert_eq!(m.len(), 1);
        m.cleanup(1000.0);
        assert!(m.is_empty());
        assert_eq!(m.total(), 2);
    }

    #[test]
    fn weight_counts_known_offenders_faster() {
        let mut m = FailManager::new(5, 600.0, 5);
        assert!(m.add_failure(failure("192.0.2.1", 1.0), 3).is_none());
        let id = FailureId::parse("192.0.2.1", AddrHint::Any);
        assert_eq!(m.retry(&id), Some(3));
        let banned = m.add_failure(failure("192.0.2.1", 2.0), 3).unwrap();
        assert_eq!(banned.failures, 2);
    }

    #[test]
    fn maxretry_one_bans_at_once_and_maxmatches_zero_keeps_no_later_lines() {
        let mut m = FailManager::new(1, 600.0, 0);
        assert!(m.add_failure(failure("192.0.2.1", 1.0), 1).is_some());
        let mut m = FailManager::new(2, 600.0, 0);
        m.add_failure(failure("192.0.2.1", 1.0), 1);
        let banned = m.add_failure(failure("192.0.2.1", 2.0), 1).unwrap();
        assert!(banned.matches.is_empty());
    }
}
