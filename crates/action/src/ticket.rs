//! What an action knows about a ban: the ticket the server hands over, and the values
//! that are only looked up when a command asks for them.

use std::fmt;
use std::net::IpAddr;

/// The address family of a ticket, which selects `name?family=inet6` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Inet4,
    Inet6,
}

impl Family {
    /// `inet4` / `inet6`, the value of `<family>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet4 => "inet4",
            Family::Inet6 => "inet6",
        }
    }

    /// The family of an address, `None` for an id that is not one (a user name from
    /// `<F-ID>`, a host name).
    pub fn of(id: &str) -> Option<Family> {
        match id.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => Some(Family::Inet4),
            Ok(IpAddr::V6(_)) => Some(Family::Inet6),
            Err(_) => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ban (or unban) as the actions see it. The server fills it from the jail's ticket
/// and the store; every text field may come from a log line and is treated as hostile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ticket {
    /// `<ip>`: the address (or the ticket's `ip` data when the id is not one).
    pub ip: String,
    /// `<fid>`: the failure id.
    pub fid: String,
    /// `<family>`; `None` for ids that are not addresses.
    pub family: Option<Family>,
    /// `<failures>`.
    pub failures: u64,
    /// `<time>`: time of the last counted failure, epoch seconds.
    pub time: f64,
    /// `<bantime>`: effective ban time in seconds, -1 for permanent.
    pub bantime: i64,
    /// `<bancount>`: how often this id has been banned, this ban included.
    pub bancount: u64,
    /// `<restored>`: the ban was restored from the database at start.
    pub restored: bool,
    /// `<matches>`: the matched log lines.
    pub matches: Vec<String>,
    /// Captured `F-*` fields under fail2ban's option names (`user`, `fid` for `F-ID`,
    /// `fport` for `F-PORT`, other names lowercased).
    pub data: Vec<(String, String)>,
}

impl Ticket {
    /// A ticket for an id, with the family taken from it.
    pub fn new(id: impl Into<String>) -> Ticket {
        let id = id.into();
        Ticket {
            family: Family::of(&id),
            ip: id.clone(),
            fid: id,
            failures: 1,
            bancount: 1,
            bantime: 600,
            ..Ticket::default()
        }
    }

    /// The captured field for `<F-NAME>` (`name` as written in the tag, `USER`).
    pub fn field(&self, tag_name: &str) -> Option<&str> {
        let option = option_name(tag_name);
        self.data
            .iter()
            .find(|(k, _)| *k == option)
            .map(|(_, v)| v.as_str())
    }

    /// `<ip-rev>`: the reversed address for a PTR query, without the zone suffix
    /// (`5.2.0.192.`); empty for an id that is not an address.
    pub fn ip_rev(&self) -> String {
        match self.ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => {
                let o = v4.octets();
                format!("{}.{}.{}.{}.", o[3], o[2], o[1], o[0])
            }
            Ok(IpAddr::V6(v6)) => {
                let mut out = String::with_capacity(64);
                for byte in v6.octets().iter().rev() {
                    out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
                }
                out
            }
            Err(_) => String::new(),
        }
    }

    /// The key of the family in `name?family=…` lookups and in the started-state
    /// bookkeeping (empty for ids that are not addresses).
    pub(crate) fn family_key(&self) -> &'static str {
        self.family.map(Family::as_str).unwrap_or("")
    }
}

/// fail2ban's option name of a `<F-NAME>` tag.
pub(crate) fn option_name(tag_name: &str) -> String {
    let lower = tag_name.to_ascii_lowercase();
    match lower.as_str() {
        "id" => "fid".to_string(),
        "port" => "fport".to_string(),
        _ => lower,
    }
}

/// `<time>` as Python prints a float (`1700000000.0`, `1700000000.25`).
pub(crate) fn py_float(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e16 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

/// Values that cost a lookup (the store, DNS, the jail's counters) and are computed
/// only when a command uses their tag, at most once per command.
///
/// Tags this crate asks for: `ipmatches`, `ipjailmatches`, `ipfailures`,
/// `ipjailfailures`, `ip-host`, `jail.banned`, `jail.banned_total`, `jail.found`,
/// `jail.found_total`, and any other tag that is neither a ticket value nor an action
/// property (return `None` to leave it as written).
pub trait TagSource: Send + Sync {
    fn lookup(&self, tag: &str, jail: &str, ticket: &Ticket) -> Option<String>;
}

/// No store, no DNS: the merged values fall back to the ticket itself, as fail2ban does
/// without a database.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLookups;

impl TagSource for NoLookups {
    fn lookup(&self, _tag: &str, _jail: &str, _ticket: &Ticket) -> Option<String> {
        None
    }
}

/// The host's names for `<fq-hostname>` and `<sh-hostname>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hostnames {
    pub fq: String,
    pub short: String,
}

impl Hostnames {
    /// From the kernel's host name; `fq` is the same name (the server may put the
    /// resolver's canonical name there).
    pub fn from_system() -> Hostnames {
        let name = ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_string());
        let short = name.split('.').next().unwrap_or(&name).to_string();
        Hostnames { fq: name, short }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_and_families() {
        let t = Ticket::new("192.0.2.5");
        assert_eq!(t.family, Some(Family::Inet4));
        assert_eq!(t.ip_rev(), "5.2.0.192.");
        let t6 = Ticket::new("2001:db8::1");
        assert_eq!(t6.family, Some(Family::Inet6));
        let rev = t6.ip_rev();
        assert!(rev.starts_with("1.0.0.0.0.0.0.0."), "{rev}");
        assert!(rev.ends_with("8.b.d.0.1.0.0.2."), "{rev}");
        assert_eq!(rev.len(), 64);
        let user = Ticket::new("alice");
        assert_eq!((user.family, user.ip_rev()), (None, String::new()));
    }

    #[test]
    fn field_names_follow_fail2ban() {
        let mut t = Ticket::new("192.0.2.5");
        t.data = vec![("user".into(), "bob".into()), ("fport".into(), "22".into())];
        assert_eq!(t.field("USER"), Some("bob"));
        assert_eq!(t.field("PORT"), Some("22"));
        assert_eq!(t.field("HOST"), None);
        assert_eq!(py_float(1.7e9), "1700000000.0");
        assert_eq!(py_float(1.5), "1.5");
    }
}
