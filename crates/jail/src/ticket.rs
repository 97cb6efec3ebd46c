//! Tickets: one id's failures, and later its ban.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rampart_filter::{Failure, FailureId, Value as FailValue};
use serde_json::{Map, Value, json};

/// What is known about one offender: its failures while counted, its ban once banned.
///
/// A ticket is plain data; [`crate::FailManager`] and [`crate::BanManager`] apply
/// fail2ban's rules to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticket {
    /// The id failures are counted and banned under (`<fid>`).
    pub id: FailureId,
    /// An address captured beside a non-address id (`ip` in fail2ban's ticket data);
    /// see [`Ticket::ip`].
    pub address: Option<IpAddr>,
    /// The time of the last counted failure (log time, epoch seconds). A ban ends
    /// `ban time` after it, not after the moment the ban was made.
    pub time: f64,
    /// Failures seen (`<failures>`).
    pub failures: u32,
    /// Matched lines, oldest first, at most the jail's `maxmatches` (`<matches>`).
    pub matches: Vec<String>,
    /// Captured fields: `F-*` groups and fields such as `user` (`<F-USER>`, …).
    pub data: BTreeMap<String, String>,
    /// Distinct user names of a multi-line failure, in first-seen order.
    pub users: Vec<String>,
    /// This ticket's own ban time in seconds (`-1` = permanent); `None` means the
    /// jail's `bantime`.
    pub ban_time: Option<f64>,
    /// How many times the id has been banned, this ban included (`<bancount>`).
    pub ban_count: u32,
    /// Whether the ban was restored from the store at start (`<restored>`).
    pub restored: bool,
}

impl Ticket {
    /// A ticket for one failure of `id` at `time`, with nothing captured.
    pub fn new(id: FailureId, time: f64) -> Ticket {
        Ticket {
            id,
            address: None,
            time,
            failures: 0,
            matches: Vec::new(),
            data: BTreeMap::new(),
            users: Vec::new(),
            ban_time: None,
            ban_count: 0,
            restored: false,
        }
    }

    /// The ticket of one failure the filter found; `None` for a failure without an id
    /// (a multi-line match still waiting for one). `now` stands in for a missing time.
    ///
    /// Matched lines keep their date, as fail2ban's `<matches>` shows them.
    pub fn from_failure(failure: &Failure, now: f64) -> Option<Ticket> {
        let id = failure.id.clone()?;
        let mut ticket = Ticket::new(id, failure.time.unwrap_or(now));
        for (key, value) in failure.data.iter() {
            match value {
                FailValue::Text(text) => {
                    ticket.data.insert(key.to_string(), text.to_string());
                }
                FailValue::Lines(lines) if key == "matches" => {
                    ticket.matches = lines.iter().map(|l| l.full().to_string()).collect();
                }
                FailValue::Users(users) => {
                    ticket.users = users.iter().map(|u| u.to_string()).collect();
                }
                FailValue::Addr(addr) if key == "ip" => ticket.address = addr.ip(),
                _ => {}
            }
        }
        Some(ticket)
    }

    /// The address to act on (`<ip>`): the captured `ip` if any, else the id's address.
    /// `None` for a raw id without a captured address.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.or_else(|| self.id.ip())
    }

    /// The ban time in effect: the ticket's own or the jail's `default`.
    pub fn ban_time_or(&self, default: f64) -> f64 {
        self.ban_time.unwrap_or(default)
    }

    /// When the ban ends, with the jail's `default` ban time; `None` for a permanent
    /// ban (exactly `-1`, as in fail2ban; other negative times end before they start).
    pub fn end_of_ban(&self, default: f64) -> Option<f64> {
        let ban_time = self.ban_time_or(default);
        if ban_time == -1.0 {
            None
        } else {
            Some(self.time + ban_time)
        }
    }

    /// The ticket data as fail2ban stores it in its database: an object with `matches`,
    /// `failures`, the captured fields and `users`, `ip` when present.
    pub fn data_json(&self) -> Value {
        let mut map = Map::new();
        for (k, v) in &self.data {
            map.insert(k.clone(), Value::String(v.clone()));
        }
        if !self.matches.is_empty() {
            map.insert("matches".to_string(), json!(self.matches));
        }
        map.insert("failures".to_string(), json!(self.failures));
        if !self.users.is_empty() {
            map.insert("users".to_string(), json!(self.users));
        }
        if let Some(ip) = self.address {
            map.insert("ip".to_string(), Value::String(ip.to_string()));
        }
        Value::Object(map)
    }

    /// A ticket from a stored ban: its id, time of ban, ban time, ban count and data (as
    /// [`Ticket::data_json`] writes it, or as fail2ban did: matches as lists of line
    /// parts). Unusable parts of `data` are skipped, never an error: the store is not
    /// trusted to hold what we wrote.
    pub fn from_stored(
        id: FailureId,
        time_of_ban: f64,
        ban_time: f64,
        ban_count: u32,
        data: &Value,
    ) -> Ticket {
        let mut ticket = Ticket::new(id, time_of_ban);
        ticket.ban_time = Some(ban_time);
        ticket.ban_count = ban_count;
        let Some(map) = data.as_object() else {
            return ticket;
        };
        for (key, value) in map {
            match (key.as_str(), value) {
                ("matches", Value::Array(lines)) => {
                    ticket.matches = lines.iter().map(line_text).collect();
                }
                ("failures", v) => {
                    ticket.failures = v
                        .as_u64()
                        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
                }
                ("users", Value::Array(users)) => {
                    ticket.users = users
                        .iter()
                        .filter_map(|u| u.as_str().map(str::to_string))
                        .collect();
                }
                ("ip", Value::String(ip)) => ticket.address = ip.parse().ok(),
                (_, Value::String(s)) => {
                    ticket.data.insert(key.clone(), s.clone());
                }
                (_, Value::Number(n)) => {
                    ticket.data.insert(key.clone(), n.to_string());
                }
                _ => {}
            }
        }
        ticket
    }
}

fn line_text(line: &Value) -> String {
    match line {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().map(line_text).collect(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_filter::AddrHint;

    fn id(text: &str) -> FailureId {
        FailureId::parse(text, AddrHint::Any)
    }

    #[test]
    fn permanent_is_exactly_minus_one() {
        let mut t = Ticket::new(id("192.0.2.1"), 1000.0);
        assert_eq!(t.end_of_ban(600.0), Some(1600.0));
        t.ban_time = Some(-1.0);
        assert_eq!(t.end_of_ban(600.0), None);
        t.ban_time = Some(-2.0);
        assert_eq!(t.end_of_ban(600.0), Some(998.0));
    }

    #[test]
    fn stored_data_round_trips_and_reads_fail2ban_rows() {
        let mut t = Ticket::new(id("alice"), 1000.0);
        t.failures = 3;
        t.matches = vec!["line one".to_string(), "line two".to_string()];
        t.data.insert("user".to_string(), "alice".to_string());
        t.users = vec!["alice".to_string(), "bob".to_string()];
        t.address = Some("2001:db8::1".parse().unwrap());
        let json = t.data_json();
        let back = Ticket::from_stored(t.id.clone(), 1000.0, 600.0, 2, &json);
        assert_eq!(back.failures, 3);
        assert_eq!(back.matches, t.matches);
        assert_eq!(back.data, t.data);
        assert_eq!(back.users, t.users);
        assert_eq!(back.address, t.address);
        assert_eq!(back.ban_count, 2);

        // fail2ban writes matched lines as (before, date, after) parts.
        let row: Value = serde_json::from_str(
            r#"{"matches": [["", "Jan  1 00:00:01", " sshd: fail"]], "failures": 5, "user": "root", "bad": [1]}"#,
        )
        .unwrap();
        let restored = Ticket::from_stored(id("192.0.2.1"), 5.0, -1.0, 1, &row);
        assert_eq!(restored.matches, vec!["Jan  1 00:00:01 sshd: fail"]);
        assert_eq!(restored.failures, 5);
        assert_eq!(restored.data.get("user").map(String::as_str), Some("root"));
        assert!(!restored.data.contains_key("bad"));
        assert_eq!(restored.end_of_ban(600.0), None);

        let garbage = Ticket::from_stored(id("192.0.2.1"), 5.0, 60.0, 1, &json!([1, 2]));
        assert_eq!(garbage.failures, 0);
    }
}
