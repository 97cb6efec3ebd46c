//! The ban list of one jail: fail2ban's `BanManager` rules.

use indexmap::IndexMap;
use rampart_filter::FailureId;

use crate::Ticket;

/// What [`BanManager::ban`] did with a ticket.
#[derive(Clone, Debug, PartialEq)]
pub enum BanResult {
    /// A new ban: run the actions' ban commands for it.
    Banned,
    /// The ban would already be over at `now` ("Ignore …, expired bantime").
    Expired,
    /// The id is banned already. `prolonged` when the new ticket ends later: the
    /// existing ban was lengthened in memory (fail2ban runs no action for that).
    AlreadyBanned { prolonged: bool, since: f64 },
}

/// The bans of one jail, in the order they were made.
#[derive(Clone, Debug)]
pub struct BanManager {
    bans: IndexMap<FailureId, Ticket>,
    ban_time: f64,
    total: u64,
}

impl BanManager {
    /// An empty ban list whose tickets last `ban_time` seconds unless they carry their
    /// own (`-1` = permanent).
    pub fn new(ban_time: i64) -> BanManager {
        BanManager {
            bans: IndexMap::new(),
            #[allow(clippy::cast_precision_loss)]
            ban_time: ban_time as f64,
            total: 0,
        }
    }

    /// The jail's `bantime`, seconds.
    pub fn ban_time(&self) -> f64 {
        self.ban_time
    }

    /// Changes the jail's `bantime` (`-1` = permanent).
    pub fn set_jail_ban_time(&mut self, ban_time: i64) {
        #[allow(clippy::cast_precision_loss)]
        {
            self.ban_time = ban_time as f64;
        }
    }

    /// Bans `ticket` at `now`. The ban ends at the ticket's time (its last failure)
    /// plus its ban time, so a ticket found late may already be over. A new ban counts
    /// in the totals and increments the ticket's ban count.
    pub fn ban(&mut self, mut ticket: Ticket, now: f64) -> BanResult {
        let end = ticket.end_of_ban(self.ban_time);
        if end.is_some_and(|end| end < now) {
            return BanResult::Expired;
        }
        if let Some(existing) = self.bans.get_mut(&ticket.id) {
            let since = existing.time;
            let longer = match (end, existing.end_of_ban(self.ban_time)) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(new), Some(old)) => new > old,
            };
            if longer {
                // Keep the original start; stretch its ban time to the new end.
                let mut ban_time = ticket.ban_time_or(self.ban_time);
                if ban_time != -1.0 {
                    let later = ticket.time - existing.time;
                    if later > 0.0 {
                        ban_time += later;
                    }
                }
                existing.ban_time = Some(ban_time);
            }
            return BanResult::AlreadyBanned {
                prolonged: longer,
                since,
            };
        }
        ticket.ban_count = ticket.ban_count.saturating_add(1);
        self.bans.insert(ticket.id.clone(), ticket);
        self.total += 1;
        BanResult::Banned
    }

    /// The banned ticket of `id`.
    pub fn get(&self, id: &FailureId) -> Option<&Ticket> {
        self.bans.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &FailureId) -> Option<&mut Ticket> {
        self.bans.get_mut(id)
    }

    /// Sets the ban time of an existing ban (after `bantime.increment` lengthened it,
    /// say). Returns false when `id` is not banned.
    pub fn set_ban_time(&mut self, id: &FailureId, ban_time: f64) -> bool {
        match self.bans.get_mut(id) {
            Some(t) => {
                t.ban_time = Some(ban_time);
                true
            }
            None => false,
        }
    }

    /// Removes and returns the bans that are over at `now` (strictly after their end),
    /// in ban order.
    pub fn unban_due(&mut self, now: f64) -> Vec<Ticket> {
        let ban_time = self.ban_time;
        let due: Vec<FailureId> = self
            .bans
            .values()
            .filter(|t| t.end_of_ban(ban_time).is_some_and(|end| now > end))
            .map(|t| t.id.clone())
            .collect();
        due.iter()
            .filter_map(|id| self.bans.shift_remove(id))
            .collect()
    }

    /// The end of the earliest ban still running (`None` when all are permanent or
    /// there are none). [`BanManager::unban_due`] releases it once the clock is past it.
    pub fn next_unban_at(&self) -> Option<f64> {
        self.bans
            .values()
            .filter_map(|t| t.end_of_ban(self.ban_time))
            .min_by(f64::total_cmp)
    }

    /// Lifts the ban of `id` now (manual `unbanip`).
    pub fn unban(&mut self, id: &FailureId) -> Option<Ticket> {
        self.bans.shift_remove(id)
    }

    /// Lifts every ban (jail stop, `unban --all`), in ban order.
    pub fn unban_all(&mut self) -> Vec<Ticket> {
        self.bans.drain(..).map(|(_, t)| t).collect()
    }

    /// Whether `id` is banned.
    pub fn is_banned(&self, id: &FailureId) -> bool {
        self.bans.contains_key(id)
    }

    /// The banned ids in ban order (`Banned IP list`).
    pub fn banned(&self) -> impl Iterator<Item = &FailureId> {
        self.bans.keys()
    }

    /// The banned tickets ordered by the end of their ban, permanent ones last
    /// (`get JAIL banip --with-time`).
    pub fn by_end(&self) -> Vec<&Ticket> {
        let mut list: Vec<&Ticket> = self.bans.values().collect();
        list.sort_by(|a, b| {
            let key = |t: &Ticket| t.end_of_ban(self.ban_time).unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        });
        list
    }

    /// Ids banned now (`Currently banned`).
    pub fn len(&self) -> usize {
        self.bans.len()
    }

    /// Whether nothing is banned.
    pub fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }

    /// Bans made since start (`Total banned`).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Sets the total, e.g. to carry it over a reload.
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_filter::AddrHint;

    fn ticket(ip: &str, time: f64) -> Ticket {
        Ticket::new(FailureId::parse(ip, AddrHint::Any), time)
    }

    #[test]
    fn ban_ends_after_the_last_failure_not_after_now() {
        let mut b = BanManager::new(600);
        assert_eq!(
            b.ban(ticket("192.0.2.1", 1000.0), 1200.0),
            BanResult::Banned
        );
        assert_eq!(b.next_unban_at(), Some(1600.0));
        assert!(b.unban_due(1600.0).is_empty(), "strictly after the end");
        let released = b.unban_due(1600.5);
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].ban_count, 1);
        assert!(b.is_empty());
        assert_eq!(b.total(), 1);
        assert_eq!(
            b.ban(ticket("192.0.2.2", 100.0), 1200.0),
            BanResult::Expired
        );
        assert_eq!(b.total(), 1);
    }

    #[test]
    fn rebanning_prolongs_from_the_original_start() {
        let mut b = BanManager::new(600);
        b.ban(ticket("192.0.2.1", 1000.0), 1000.0);
        let r = b.ban(ticket("192.0.2.1", 1300.0), 1300.0);
        assert_eq!(
            r,
            BanResult::AlreadyBanned {
                prolonged: true,
                since: 1000.0
            }
        );
        let id = FailureId::parse("192.0.2.1", AddrHint::Any);
        let t = b.get(&id).unwrap();
        assert_eq!(t.time, 1000.0);
        assert_eq!(t.end_of_ban(600.0), Some(1900.0));
        assert_eq!(t.ban_count, 1);
        // An earlier-ending ticket changes nothing.
        let r = b.ban(ticket("192.0.2.1", 1100.0), 1300.0);
        assert_eq!(
            r,
            BanResult::AlreadyBanned {
                prolonged: false,
                since: 1000.0
            }
        );
        assert_eq!(b.total(), 1);
    }

    #[test]
    fn permanent_bans_never_end() {
        let mut b = BanManager::new(-1);
        b.ban(ticket("192.0.2.1", 0.0), 0.0);
        let mut short = ticket("192.0.2.2", 0.0);
        short.ban_time = Some(10.0);
        b.ban(short, 0.0);
        assert_eq!(b.next_unban_at(), Some(10.0));
        assert_eq!(b.unban_due(1e12).len(), 1);
        assert_eq!(b.next_unban_at(), None);
        assert_eq!(b.len(), 1);
        assert_eq!(b.unban_all().len(), 1);
        assert!(b.is_empty());
    }

    #[test]
    fn listing_order() {
        let mut b = BanManager::new(600);
        let mut long = ticket("192.0.2.1", 0.0);
        long.ban_time = Some(5000.0);
        b.ban(long, 0.0);
        b.ban(ticket("192.0.2.2", 0.0), 0.0);
        let mut forever = ticket("192.0.2.3", 0.0);
        forever.ban_time = Some(-1.0);
        b.ban(forever, 0.0);
        let names: Vec<String> = b.banned().map(ToString::to_string).collect();
        assert_eq!(names, ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
        let by_end: Vec<String> = b.by_end().iter().map(|t| t.id.to_string()).collect();
        assert_eq!(by_end, ["192.0.2.2", "192.0.2.1", "192.0.2.3"]);
        assert!(
            b.unban(&FailureId::parse("192.0.2.2", AddrHint::Any))
                .is_some()
        );
        assert!(!b.is_banned(&FailureId::parse("192.0.2.2", AddrHint::Any)));
    }
}
