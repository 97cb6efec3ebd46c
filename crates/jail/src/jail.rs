//! One jail's counting and banning state, built from its option strings.

use std::collections::HashMap;
use std::net::IpAddr;

use rampart_filter::FailureId;

use crate::bantime::{Increment, IncrementOptions, parse_ban_time, parse_seconds};
use crate::{BanManager, BanResult, Error, FailManager, IgnoreCheck, IgnoreList, Resolver, Ticket};

/// fail2ban's server-side defaults, used for options the configuration leaves unset
/// (its `jail.conf` normally sets them all).
const DEFAULT_MAX_RETRY: u32 = 3;
const DEFAULT_FIND_TIME: f64 = 600.0;
const DEFAULT_BAN_TIME: i64 = 600;

/// A jail's settings for counting and banning.
#[derive(Clone, Debug)]
pub struct JailConfig {
    /// `maxretry`.
    pub max_retry: u32,
    /// `maxmatches`.
    pub max_matches: usize,
    /// `findtime`, seconds.
    pub find_time: f64,
    /// `bantime`, whole seconds, `-1` permanent.
    pub ban_time: i64,
    /// `bantime.increment` and companions; `None` when the increment is off.
    pub increment: Option<Increment>,
    /// `ignoreip`, `ignoreself`, `ignorecommand`.
    pub ignore: IgnoreList,
}

/// fail2ban's booleans: `1`, `on`, `true`, `yes` in any case; anything else is false.
fn as_bool(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "on" | "true" | "yes"
    )
}

/// Python's `int(text)`, clamped to what a count can be (negative counts act as 0).
fn as_count(option: &'static str, value: &str) -> Result<u32, Error> {
    let clean: String = value.trim().chars().filter(|c| *c != '_').collect();
    let n: i128 = clean.parse().map_err(|_| Error::Option {
        option,
        value: value.to_string(),
        reason: "not a whole number".to_string(),
    })?;
    Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
}

impl JailConfig {
    /// Reads the options of one jail (`maxretry`, `maxmatches`, `findtime`, `bantime`,
    /// `bantime.*`, `ignoreip`, `ignoreself`, `ignorecommand`; others are ignored), as
    /// the configuration resolved them. Unset options take fail2ban's server defaults
    /// (`maxretry` 3, `findtime` and `bantime` 600 s, `ignoreself` on), `maxmatches`
    /// defaults to `maxretry` as in `jail.conf`. `self_addresses` are the host's own
    /// addresses for `ignoreself`.
    pub fn from_options<'a>(
        options: impl IntoIterator<Item = (&'a str, &'a str)>,
        self_addresses: &[IpAddr],
    ) -> Result<JailConfig, Error> {
        let options: HashMap<&str, &str> = options.into_iter().collect();
        let get = |name: &str| options.get(name).copied().filter(|v| !v.is_empty());
        let max_retry = get("maxretry")
            .map(|v| as_count("maxretry", v))
            .transpose()?
            .unwrap_or(DEFAULT_MAX_RETRY);
        let max_matches = get("maxmatches")
            .map(|v| as_count("maxmatches", v))
            .transpose()?
            .unwrap_or(max_retry);
        let find_time = get("findtime")
            .map(|v| parse_seconds("findtime", v))
            .transpose()?
            .unwrap_or(DEFAULT_FIND_TIME);
        let ban_time = get("bantime")
            .map(parse_ban_time)
            .transpose()?
            .unwrap_or(DEFAULT_BAN_TIME);
        let increment = if get("bantime.increment").is_some_and(as_bool) {
            Some(Increment::from_options(&IncrementOptions {
                factor: get("bantime.factor"),
                formula: get("bantime.formula"),
                multipliers: get("bantime.multipliers"),
                max_time: get("bantime.maxtime"),
                rnd_time: get("bantime.rndtime"),
                overall_jails: get("bantime.overalljails").is_some_and(as_bool),
            })?)
        } else {
            None
        };
        let ignore = IgnoreList::new(
            get("ignoreip").unwrap_or(""),
            get("ignoreself").is_none_or(as_bool),
            self_addresses,
            get("ignorecommand"),
        );
        Ok(JailConfig {
            max_retry,
            max_matches: usize::try_from(max_matches).unwrap_or(usize::MAX),
            find_time,
            ban_time,
            increment,
            ignore,
        })
    }

    /// The longest ban time a restored ban keeps: `bantime.maxtime` with the increment
    /// on (`None`: unlimited), else `bantime` (`None` when permanent).
    pub fn max_ban_time(&self) -> Option<i64> {
        let max = match &self.increment {
            Some(inc) => match inc.max_time() {
                #[allow(clippy::cast_possible_truncation)]
                Some(m) => m as i64,
                None => -1,
            },
            None => self.ban_time,
        };
        (max != -1).then_some(max)
    }
}

/// What the store knows about earlier bans of an id (its `bips` row: ban count and
/// start of the latest ban), for `bantime.increment`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriorBans {
    /// Bans so far.
    pub count: u32,
    /// Start (ticket time) of the latest one.
    pub last_ban: f64,
}

/// What [`Jail::ban`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum BanOutcome {
    /// A new ban; the caller runs the ban actions with `ticket` (unless it was restored
    /// and an action has `norestored`).
    Banned {
        /// The ticket as banned: ban time (if not the jail's) and ban count set.
        ticket: Ticket,
        /// `(jail bantime, new ban time)` when `bantime.increment` changed the ban
        /// time ("Increase Ban"; actions with `actionprolong` run it).
        increased: Option<(f64, f64)>,
        /// Whether to write the ban to the store. Not for restored bans, for failures
        /// the store has already seen banned, nor for bans over already.
        record: bool,
        /// The formula failed; the ban keeps the jail's ban time (logged by fail2ban).
        formula_error: Option<String>,
    },
    /// Already banned; see [`BanResult::AlreadyBanned`].
    AlreadyBanned { prolonged: bool, since: f64 },
    /// Over before it began ("Ignore …, expired bantime").
    Expired,
}

/// The failure counting, ban list and ban times of one jail.
#[derive(Clone, Debug)]
pub struct Jail {
    config: JailConfig,
    failures: FailManager,
    bans: BanManager,
}

impl Jail {
    /// Empty state for `config`.
    pub fn new(config: JailConfig) -> Jail {
        Jail {
            failures: FailManager::new(config.max_retry, config.find_time, config.max_matches),
            bans: BanManager::new(config.ban_time),
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &JailConfig {
        &self.config
    }

    /// `set JAIL bantime`: also the ban time of running bans that have none of their
    /// own, as in fail2ban.
    pub fn set_ban_time(&mut self, ban_time: i64) {
        self.config.ban_time = ban_time;
        self.bans.set_jail_ban_time(ban_time);
    }

    /// `set JAIL findtime`.
    pub fn set_find_time(&mut self, find_time: f64) {
        self.config.find_time = find_time;
        self.failures.set_find_time(find_time);
    }

    /// `set JAIL maxretry`.
    pub fn set_max_retry(&mut self, max_retry: u32) {
        self.config.max_retry = max_retry;
        self.failures.set_max_retry(max_retry);
    }

    /// `set JAIL maxmatches`.
    pub fn set_max_matches(&mut self, max_matches: usize) {
        self.config.max_matches = max_matches;
        self.failures.set_max_matches(max_matches);
    }

    /// The ignore rules, for `addignoreip`, `delignoreip`, `ignoreself` and
    /// `ignorecommand` at run time.
    pub fn ignore_mut(&mut self) -> &mut IgnoreList {
        &mut self.config.ignore
    }

    /// The failure counts (`Currently failed` = `len()`, `Total failed` = `total()`).
    pub fn failures(&self) -> &FailManager {
        &self.failures
    }

    /// The failure counts, for manual changes.
    pub fn failures_mut(&mut self) -> &mut FailManager {
        &mut self.failures
    }

    /// The ban list (`Currently banned`, `Total banned`, `Banned IP list`).
    pub fn bans(&self) -> &BanManager {
        &self.bans
    }

    /// The ban list, for `unbanip` and `unban --all`.
    pub fn bans_mut(&mut self) -> &mut BanManager {
        &mut self.bans
    }

    /// Whether `id` is to be ignored (see [`IgnoreList::check`]); the caller checks
    /// every found failure and every restored ban, but not manual bans.
    pub fn check_ignore(
        &self,
        id: &FailureId,
        now: f64,
        resolver: &mut dyn Resolver,
    ) -> IgnoreCheck {
        self.config.ignore.check(id, now, resolver)
    }

    /// Counts a failure that passed the ignore check. With `bantime.increment`, `prior`
    /// are the id's earlier bans in this jail (never all jails: fail2ban asks per jail
    /// here); a failure after the last of them counts more than once. Returns the ticket
    /// to ban when the id reaches `maxretry`; pass it to [`Jail::ban`].
    pub fn add_failure(&mut self, ticket: Ticket, prior: Option<PriorBans>) -> Option<Ticket> {
        let weight = match (&self.config.increment, prior) {
            (Some(_), Some(prior)) if ticket.time > prior.last_ban => {
                Increment::failure_weight(prior.count.max(ticket.ban_count), self.config.max_retry)
            }
            _ => 1,
        };
        self.failures.add_failure(ticket, weight)
    }

    /// Bans `ticket` at `now`. With `bantime.increment`, `prior` are the id's earlier
    /// bans (in this jail, or all jails with `bantime.overalljails`), and `random`
    /// gives a number in `[0, 1)` for `bantime.rndtime`.
    ///
    /// The increment is applied after the ban is listed, as fail2ban's observer does:
    /// whether a ban is new or expired is decided with the jail's ban time.
    pub fn ban(
        &mut self,
        ticket: Ticket,
        prior: Option<PriorBans>,
        now: f64,
        random: impl FnOnce() -> f64,
    ) -> BanOutcome {
        let id = ticket.id.clone();
        let restored = ticket.restored;
        let own_ban_time = ticket.ban_time;
        match self.bans.ban(ticket, now) {
            BanResult::Banned => {}
            BanResult::Expired => return BanOutcome::Expired,
            BanResult::AlreadyBanned { prolonged, since } => {
                return BanOutcome::AlreadyBanned { prolonged, since };
            }
        }
        let base = self.config.ban_time;
        let mut increased = None;
        let mut formula_error = None;
        let mut seen_before = false;
        if let (Some(increment), Some(prior), false, None) =
            (&self.config.increment, prior, restored, own_ban_time)
            && base > 0
            && let Some(t) = self.bans.get_mut(&id)
        {
            if prior.count >= t.ban_count {
                t.ban_count = prior.count.saturating_add(1);
            }
            if prior.count > 0 {
                match increment.ban_time(base, prior.count, random) {
                    Ok(new) => {
                        t.ban_time = Some(new);
                        #[allow(clippy::cast_precision_loss)]
                        let base = base as f64;
                        if new != base {
                            increased = Some((base, new));
                        }
                    }
                    Err(e) => formula_error = Some(e.to_string()),
                }
            }
            seen_before = t.time <= prior.last_ban;
        }
        let Some(ticket) = self.bans.get(&id).cloned() else {
            return BanOutcome::Expired;
        };
        let over = ticket
            .end_of_ban(self.bans.ban_time())
            .is_some_and(|end| end < now);
        BanOutcome::Banned {
            record: !restored && !seen_before && !over,
            ticket,
            increased,
            formula_error,
        }
    }

    /// Prepares a ban read from the store for [`Jail::ban`] at start: marks it
    /// restored, corrects its ban time to what the jail allows now (see
    /// [`JailConfig::max_ban_time`]) and keeps at most `maxmatches` lines. `None` when
    /// the ban is over at `now` or, without the increment, older than `bantime`.
    pub fn restore(&self, mut ticket: Ticket, now: f64) -> Option<Ticket> {
        #[allow(clippy::cast_precision_loss)]
        let jail_ban_time = self.config.ban_time as f64;
        let mut ban_time = ticket.ban_time_or(jail_ban_time);
        let stored_running = ban_time <= -1.0 || ticket.time + ban_time > now;
        let in_window = self.config.increment.is_some()
            || self.config.ban_time == -1
            || ticket.time > now - jail_ban_time;
        if !stored_running || !in_window {
            return None;
        }
        if ban_time == -2.0 {
            // Unknown after a database upgrade.
            ban_time = jail_ban_time;
        } else if let Some(max) = self.config.max_ban_time() {
            #[allow(clippy::cast_precision_loss)]
            let max = max as f64;
            if max >= 0.0 && (ban_time == -1.0 || ban_time > max) {
                ban_time = max;
            }
        }
        if ban_time != -1.0 && ticket.time + ban_time <= now {
            return None;
        }
        let max_matches = self.config.max_matches;
        if max_matches == 0 {
            ticket.matches.clear();
        } else {
            let excess = ticket.matches.len().saturating_sub(max_matches);
            ticket.matches.drain(..excess);
        }
        ticket.ban_time = Some(ban_time);
        ticket.restored = true;
        Some(ticket)
    }

    /// Advances the clock: forgets failures older than `findtime` and returns the bans
    /// that are over, for the caller to run the unban actions. fail2ban cleans the
    /// failures at most every 5 s (and after bans); calling this at that pace keeps its
    /// counting, since a failure list cleaned later counts an old failure longer.
    pub fn tick(&mut self, now: f64) -> Vec<Ticket> {
        self.failures.cleanup(now);
        self.bans.unban_due(now)
    }

    /// When [`Jail::tick`] will next release a ban.
    pub fn next_unban_at(&self) -> Option<f64> {
        self.bans.next_unban_at()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_filter::AddrHint;

    fn id(text: &str) -> FailureId {
        FailureId::parse(text, AddrHint::Any)
    }

    fn jail(options: &[(&str, &str)]) -> Jail {
        Jail::new(JailConfig::from_options(options.iter().copied(), &[]).unwrap())
    }

    #[test]
    fn options_are_read_like_fail2ban() {
        let c = JailConfig::from_options(
            [
                ("maxretry", "5"),
                ("findtime", "10m"),
                ("bantime", "1.5h"),
                ("ignoreip", "127.0.0.1/8 ::1"),
                ("ignoreself", "false"),
                ("bantime.increment", "On"),
                ("bantime.maxtime", "1w"),
                ("unrelated", "x"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.max_retry, 5);
        assert_eq!(c.max_matches, 5);
        assert_eq!(c.find_time, 600.0);
        assert_eq!(c.ban_time, 5400);
        assert_eq!(c.max_ban_time(), Some(604_800));
        assert!(c.increment.is_some());
        let c = JailConfig::from_options([("bantime", "-1"), ("bantime.increment", "no")], &[])
            .unwrap();
        assert_eq!((c.ban_time, c.max_retry), (-1, 3));
        assert!(c.increment.is_none());
        assert_eq!(c.max_ban_time(), None);
        for bad in [
            ("maxretry", "five"),
            ("findtime", "10 parsecs"),
            ("bantime", "forever"),
        ] {
            let err = JailConfig::from_options([bad], &[]).unwrap_err();
            assert!(err.to_string().contains(bad.0), "{err}");
        }
        let err = JailConfig::from_options(
            [
                ("bantime.increment", "true"),
                ("bantime.formula", "__import__('os')"),
            ],
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("bantime.formula"), "{err}");
    }

    #[test]
    fn failures_to_ban_to_unban() {
        let mut j = jail(&[("maxretry", "3"), ("findtime", "600"), ("bantime", "600")]);
        for t in [100.0, 110.0] {
            assert!(
                j.add_failure(Ticket::new(id("192.0.2.1"), t), None)
                    .is_none()
            );
        }
        let ticket = j
            .add_failure(Ticket::new(id("192.0.2.1"), 120.0), None)
            .unwrap();
        assert_eq!(ticket.failures, 3);
        let BanOutcome::Banned {
            ticket,
            record,
            increased,
            ..
        } = j.ban(ticket, None, 121.0, || 0.0)
        else {
            panic!("not banned");
        };
        assert!(record);
        assert_eq!(increased, None);
        assert_eq!(ticket.ban_count, 1);
        assert_eq!(j.next_unban_at(), Some(720.0));
        assert!(j.tick(720.0).is_empty());
        let released = j.tick(721.0);
        assert_eq!(released.len(), 1);
        assert_eq!((j.bans().len(), j.bans().total()), (0, 1));
        assert_eq!((j.failures().len(), j.failures().total()), (0, 3));
    }

    #[test]
    fn increment_lengthens_bans_of_repeat_offenders() {
        let mut j = jail(&[
            ("maxretry", "5"),
            ("bantime", "600"),
            ("bantime.increment", "true"),
            ("bantime.rndtime", "100"),
            ("bantime.maxtime", "3000"),
        ]);
        let prior = PriorBans {
            count: 2,
            last_ban: 50.0,
        };
        // A known offender (2 bans): each failure counts 3 attempts.
        assert!(
            j.add_failure(Ticket::new(id("192.0.2.9"), 100.0), Some(prior))
                .is_none()
        );
        let ticket = j
            .add_failure(Ticket::new(id("192.0.2.9"), 101.0), Some(prior))
            .unwrap();
        let BanOutcome::Banned {
            ticket,
            increased,
            record,
            formula_error,
        } = j.ban(ticket, Some(prior), 102.0, || 0.5)
        else {
            panic!("not banned");
        };
        // 600 * 2^2 = 2400, under the 3000 cap, plus half of rndtime.
        assert_eq!(increased, Some((600.0, 2450.0)));
        assert_eq!(ticket.ban_time, Some(2450.0));
        assert_eq!(ticket.ban_count, 3);
        assert!(record && formula_error.is_none());
        assert_eq!(j.next_unban_at(), Some(101.0 + 2450.0));

        // A failure older than the last ban counts once and a ban of it is not recorded.
        let mut j2 = jail(&[("maxretry", "2"), ("bantime.increment", "true")]);
        let late = PriorBans {
            count: 3,
            last_ban: 1000.0,
        };
        assert!(
            j2.add_failure(Ticket::new(id("192.0.2.9"), 900.0), Some(late))
                .is_none()
        );
        let t = j2
            .add_failure(Ticket::new(id("192.0.2.9"), 901.0), Some(late))
            .unwrap();
        let BanOutcome::Banned { record, .. } = j2.ban(t, Some(late), 902.0, || 0.0) else {
            panic!("not banned");
        };
        assert!(!record);
    }

    #[test]
    fn restore_corrects_ban_times() {
        let j = jail(&[("bantime", "600")]);
        let stored = |time: f64, ban_time: f64| {
            let mut t = Ticket::new(id("192.0.2.1"), time);
            t.ban_time = Some(ban_time);
            t
        };
        let t = j.restore(stored(1000.0, 3600.0), 1200.0).unwrap();
        assert_eq!(t.ban_time, Some(600.0));
        assert!(t.restored);
        assert!(j.restore(stored(1000.0, 3600.0), 1700.0).is_none());
        assert_eq!(
            j.restore(stored(1000.0, -1.0), 1200.0).unwrap().ban_time,
            Some(600.0)
        );

        let inc = jail(&[("bantime", "600"), ("bantime.increment", "true")]);
        let t = inc.restore(stored(1000.0, -1.0), 1e9).unwrap();
        assert_eq!(t.ban_time, Some(-1.0));
        let mut j = inc;
        let BanOutcome::Banned { record, ticket, .. } = j.ban(t, None, 1e9, || 0.0) else {
            panic!("not banned");
        };
        assert!(!record);
        assert!(ticket.restored);
    }
}
