//! Ids never to ban: `ignoreself`, `ignoreip` (addresses, networks, host names) and
//! the hook for `ignorecommand`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use rampart_filter::{AddrHint, FailureId};

/// Resolves host names of `ignoreip` entries. The caller does the DNS; `now` lets an
/// implementation cache (fail2ban keeps answers five minutes, see [`CachingResolver`]).
pub trait Resolver {
    /// The addresses of `name`; empty when it does not resolve.
    fn resolve(&mut self, name: &str, now: f64) -> Vec<IpAddr>;
}

/// A [`Resolver`] that remembers answers (empty ones too) for `ttl` seconds, as
/// fail2ban's name cache does, so a slow resolver is not asked for every failure.
#[derive(Debug)]
pub struct CachingResolver<R> {
    inner: R,
    ttl: f64,
    cache: HashMap<String, (f64, Vec<IpAddr>)>,
}

impl<R: Resolver> CachingResolver<R> {
    /// Caches `inner`'s answers for `ttl` seconds (fail2ban: 300).
    pub fn new(inner: R, ttl: f64) -> CachingResolver<R> {
        CachingResolver {
            inner,
            ttl,
            cache: HashMap::new(),
        }
    }
}

impl<R: Resolver> Resolver for CachingResolver<R> {
    fn resolve(&mut self, name: &str, now: f64) -> Vec<IpAddr> {
        if let Some((expires, addrs)) = self.cache.get(name)
            && now < *expires
        {
            return addrs.clone();
        }
        let addrs = self.inner.resolve(name, now);
        // Bound the cache: names come from configuration, but be safe anyway.
        if self.cache.len() >= 1000 {
            self.cache.retain(|_, (expires, _)| now < *expires);
        }
        self.cache
            .insert(name.to_string(), (now + self.ttl, addrs.clone()));
        addrs
    }
}

/// Why an id is ignored (fail2ban logs `Ignore <id> by <reason>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IgnoreReason {
    /// One of the host's own addresses (`ignoreself`).
    SelfAddress,
    /// An `ignoreip` address or network; the entry as written.
    Ip(String),
    /// An `ignoreip` host name resolving to the id.
    Dns(String),
}

impl IgnoreReason {
    /// fail2ban's wording: `ignoreself rule`, `ip`, `dns`.
    pub fn source(&self) -> &'static str {
        match self {
            IgnoreReason::SelfAddress => "ignoreself rule",
            IgnoreReason::Ip(_) => "ip",
            IgnoreReason::Dns(_) => "dns",
        }
    }
}

/// The outcome of [`IgnoreList::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IgnoreCheck {
    /// Do not count or ban the id.
    Ignored(IgnoreReason),
    /// Not ignored, and there is no `ignorecommand`.
    NotIgnored,
    /// Not ignored by the lists; the caller runs [`IgnoreList::command`] with the
    /// ticket's tags: exit status 0 ignores, anything else does not.
    AskCommand,
}

#[derive(Clone, Debug)]
enum Entry {
    Net {
        ip: IpAddr,
        prefix: u8,
        text: String,
    },
    Name(String),
}

/// A jail's ignore rules.
#[derive(Clone, Debug, Default)]
pub struct IgnoreList {
    ignore_self: bool,
    self_addresses: HashSet<IpAddr>,
    singles: HashMap<IpAddr, String>,
    entries: Vec<Entry>,
    command: Option<String>,
}

impl IgnoreList {
    /// Rules from `ignoreip` (entries split on spaces, commas and newlines),
    /// `ignoreself` with the host's own addresses (the caller collects them: those of
    /// `localhost`, the host name and the FQDN, as fail2ban does) and `ignorecommand`.
    pub fn new(
        ignoreip: &str,
        ignore_self: bool,
        self_addresses: &[IpAddr],
        ignorecommand: Option<&str>,
    ) -> IgnoreList {
        let mut list = IgnoreList {
            ignore_self,
            self_addresses: self_addresses.iter().map(|ip| normalise(*ip)).collect(),
            command: ignorecommand
                .filter(|c| !c.trim().is_empty())
                .map(str::to_string),
            ..IgnoreList::default()
        };
        for entry in ignoreip
            .split([' ', ',', '\n', '\t', '\r'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            list.add(entry);
        }
        list
    }

    /// Adds one `ignoreip` entry: an address, `addr/prefix`, `addr/netmask`, or
    /// anything else as a host name (`set JAIL addignoreip`).
    pub fn add(&mut self, entry: &str) {
        match FailureId::parse(entry, AddrHint::Any) {
            FailureId::Addr { ip, prefix } => {
                let single = match ip {
                    IpAddr::V4(_) => prefix >= 32,
                    IpAddr::V6(_) => prefix >= 128,
                };
                if single {
                    self.singles.entry(ip).or_insert_with(|| entry.to_string());
                } else if !self
                    .entries
                    .iter()
                    .any(|e| matches!(e, Entry::Net { ip: i, prefix: p, .. } if *i == ip && *p == prefix))
                {
                    self.entries.push(Entry::Net {
                        ip,
                        prefix,
                        text: entry.to_string(),
                    });
                }
            }
            FailureId::Invalid(name) | FailureId::Raw(name) => {
                if !self
                    .entries
                    .iter()
                    .any(|e| matches!(e, Entry::Name(n) if *n == name))
                {
                    self.entries.push(Entry::Name(name));
                }
            }
        }
    }

    /// Removes one `ignoreip` entry (`set JAIL delignoreip`), given as it was added or
    /// as the same address or network; whether there was one.
    pub fn remove(&mut self, entry: &str) -> bool {
        let entry = entry.trim();
        match FailureId::parse(entry, AddrHint::Any) {
            FailureId::Addr { ip, prefix } if prefix >= if ip.is_ipv4() { 32 } else { 128 } => {
                self.singles.remove(&ip).is_some()
            }
            parsed => {
                let before = self.entries.len();
                self.entries.retain(|e| match (e, &parsed) {
                    (Entry::Net { ip, prefix, .. }, FailureId::Addr { ip: i, prefix: p }) => {
                        !(ip == i && prefix == p)
                    }
                    (Entry::Name(name), FailureId::Invalid(n) | FailureId::Raw(n)) => name != n,
                    _ => true,
                });
                self.entries.len() != before
            }
        }
    }

    /// `ignoreself`.
    pub fn ignore_self(&self) -> bool {
        self.ignore_self
    }

    /// `set JAIL ignoreself`.
    pub fn set_ignore_self(&mut self, on: bool) {
        self.ignore_self = on;
    }

    /// `set JAIL ignorecommand`: an empty command switches it off.
    pub fn set_command(&mut self, command: &str) {
        self.command = Some(command.trim())
            .filter(|c| !c.is_empty())
            .map(str::to_string);
    }

    /// The `ignoreip` entries, networks and names first, then single addresses (as
    /// `get JAIL ignoreip` lists them).
    pub fn entries(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .iter()
            .map(|e| match e {
                Entry::Net { text, .. } => text.clone(),
                Entry::Name(n) => n.clone(),
            })
            .collect();
        let mut singles: Vec<&String> = self.singles.values().collect();
        singles.sort();
        out.extend(singles.into_iter().cloned());
        out
    }

    /// The `ignorecommand`, with its tags not yet replaced.
    pub fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// Checks `id` in fail2ban's order: own addresses, listed addresses, networks and
    /// host names in the order given, then the command. Ids that are not addresses are
    /// only ever ignored by the command.
    pub fn check(&self, id: &FailureId, now: f64, resolver: &mut dyn Resolver) -> IgnoreCheck {
        if let Some(ip) = id.ip().map(normalise) {
            if self.ignore_self && self.self_addresses.contains(&ip) {
                return IgnoreCheck::Ignored(IgnoreReason::SelfAddress);
            }
            if let Some(text) = self.singles.get(&ip) {
                return IgnoreCheck::Ignored(IgnoreReason::Ip(text.clone()));
            }
            for entry in &self.entries {
                match entry {
                    Entry::Net {
                        ip: net,
                        prefix,
                        text,
                    } => {
                        if in_net(ip, *net, *prefix) {
                            return IgnoreCheck::Ignored(IgnoreReason::Ip(text.clone()));
                        }
                    }
                    Entry::Name(name) => {
                        if resolver
                            .resolve(name, now)
                            .into_iter()
                            .any(|a| normalise(a) == ip)
                        {
                            return IgnoreCheck::Ignored(IgnoreReason::Dns(name.clone()));
                        }
                    }
                }
            }
        }
        if self.command.is_some() {
            IgnoreCheck::AskCommand
        } else {
            IgnoreCheck::NotIgnored
        }
    }
}

/// fail2ban compares IPv4-mapped IPv6 addresses as the IPv4 address they map.
fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        calls: usize,
    }

    impl Resolver for Fixed {
        fn resolve(&mut self, name: &str, _now: f64) -> Vec<IpAddr> {
            self.calls += 1;
            match name {
                "gateway.example" => vec![
                    "192.0.2.50".parse().unwrap(),
                    "2001:db8::50".parse().unwrap(),
                ],
                _ => Vec::new(),
            }
        }
    }

    fn id(text: &str) -> FailureId {
        FailureId::parse(text, AddrHint::Any)
    }

    #[test]
    fn entries_removed_and_switched_at_run_time() {
        let mut list = IgnoreList::new(
            "192.0.2.1 198.51.100.0/24 gateway.example",
            false,
            &[],
            None,
        );
        let mut dns = Fixed { calls: 0 };
        assert!(matches!(
            list.check(&id("198.51.100.7"), 0.0, &mut dns),
            IgnoreCheck::Ignored(_)
        ));
        assert!(list.remove("198.51.100.0/24"));
        assert!(!list.remove("198.51.100.0/24"));
        assert_eq!(
            list.check(&id("198.51.100.7"), 0.0, &mut dns),
            IgnoreCheck::NotIgnored
        );
        assert!(list.remove("192.0.2.1"));
        assert_eq!(
            list.check(&id("192.0.2.1"), 0.0, &mut dns),
            IgnoreCheck::NotIgnored
        );
        assert!(list.remove("gateway.example"));
        assert_eq!(list.entries(), Vec::<String>::new());
        assert_eq!(
            list.check(&id("192.0.2.50"), 0.0, &mut dns),
            IgnoreCheck::NotIgnored
        );

        let mut list = IgnoreList::new("", false, &["127.0.0.1".parse().unwrap()], None);
        assert_eq!(
            list.check(&id("127.0.0.1"), 0.0, &mut dns),
            IgnoreCheck::NotIgnored
        );
        list.set_ignore_self(true);
        assert!(list.ignore_self());
        assert!(matches!(
            list.check(&id("127.0.0.1"), 0.0, &mut dns),
            IgnoreCheck::Ignored(_)
        ));
        list.set_command("  ");
        assert_eq!(list.command(), None);
        list.set_command("/bin/true <ip>");
        assert_eq!(
            list.check(&id("192.0.2.9"), 0.0, &mut dns),
            IgnoreCheck::AskCommand
        );
    }

    #[test]
    fn addresses_networks_names_and_self() {
        let own: [IpAddr; 1] = ["10.9.9.9".parse().unwrap()];
        let list = IgnoreList::new(
            "127.0.0.1/8 ::1, 192.168.0.0/255.255.0.0\n2001:db8:1::/48 198.51.100.7 gateway.example",
            true,
            &own,
            None,
        );
        let mut dns = Fixed { calls: 0 };
        let mut check = |text: &str| list.check(&id(text), 0.0, &mut dns);
        assert_eq!(
            check("10.9.9.9"),
            IgnoreCheck::Ignored(IgnoreReason::SelfAddress)
        );
        assert_eq!(
            check("127.4.5.6"),
            IgnoreCheck::Ignored(IgnoreReason::Ip("127.0.0.1/8".into()))
        );
        assert_eq!(check("128.0.0.1"), IgnoreCheck::NotIgnored);
        assert_eq!(
            check("::1"),
            IgnoreCheck::Ignored(IgnoreReason::Ip("::1".into()))
        );
        assert_eq!(
            check("192.168.200.1"),
            IgnoreCheck::Ignored(IgnoreReason::Ip("192.168.0.0/255.255.0.0".into()))
        );
        assert_eq!(
            check("2001:db8:1:ffff::1"),
            IgnoreCheck::Ignored(IgnoreReason::Ip("2001:db8:1::/48".into()))
        );
        assert_eq!(check("2001:db8:2::1"), IgnoreCheck::NotIgnored);
        assert_eq!(
            check("::ffff:198.51.100.7"),
            IgnoreCheck::Ignored(IgnoreReason::Ip("198.51.100.7".into()))
        );
        assert_eq!(
            check("2001:db8::50"),
            IgnoreCheck::Ignored(IgnoreReason::Dns("gateway.example".into()))
        );
        // A raw id is not an address: no list can ignore it.
        assert_eq!(
            list.check(
                &FailureId::Raw("gateway.example".into()),
                0.0,
                &mut Fixed { calls: 0 }
            ),
            IgnoreCheck::NotIgnored
        );
        let listed = list.entries();
        assert_eq!(listed.len(), 6);
    }

    #[test]
    fn ignoreself_off_and_command_last() {
        let own: [IpAddr; 1] = ["10.9.9.9".parse().unwrap()];
        let list = IgnoreList::new("", false, &own, Some("/bin/check <ip>"));
        let mut dns = Fixed { calls: 0 };
        assert_eq!(
            list.check(&id("10.9.9.9"), 0.0, &mut dns),
            IgnoreCheck::AskCommand
        );
        assert_eq!(list.command(), Some("/bin/check <ip>"));
        assert_eq!(dns.calls, 0);
    }

    #[test]
    fn caching_resolver_keeps_answers_for_ttl() {
        let mut cached = CachingResolver::new(Fixed { calls: 0 }, 300.0);
        let list = IgnoreList::new("nowhere.example gateway.example", false, &[], None);
        for now in [0.0, 10.0, 299.0] {
            list.check(&id("192.0.2.50"), now, &mut cached);
        }
        assert_eq!(cached.inner.calls, 2);
        list.check(&id("192.0.2.50"), 300.0, &mut cached);
        assert_eq!(cached.inner.calls, 4);
    }
}
