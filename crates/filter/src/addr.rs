//! Failure ids: addresses as fail2ban normalises them, or raw text.
//!
//! fail2ban compares failure ids by value: two spellings of one IPv6 address are one
//! offender, `::ffff:192.0.2.1` is the IPv4 address it maps, and a captured text that is
//! not an address (a user name with `<F-ID>`, a host name with `usedns = raw`) is kept
//! verbatim.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The identity a failure is counted and banned under.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureId {
    /// An address, or a network when `prefix` is shorter than the address.
    Addr { ip: IpAddr, prefix: u8 },
    /// Text that was meant to be an address but is not one (`999.1.1.1`).
    Invalid(String),
    /// Text taken as it is: `usedns = raw`, raw hosts, or a non-address `F-ID`.
    Raw(String),
}

/// How a captured text is to be read (fail2ban's `cidr` argument of `IPAddr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrHint {
    /// Verbatim, never parsed.
    Raw,
    /// Either family; `[v6]` brackets and `/prefix` or `/netmask` suffixes understood.
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only (IPv4-mapped addresses become IPv4).
    V6,
    /// Either family, masked to this prefix length.
    Prefix(u32),
}

impl FailureId {
    /// Reads `text` as fail2ban's `IPAddr(text, cidr)` does.
    pub fn parse(text: &str, hint: AddrHint) -> FailureId {
        match hint {
            AddrHint::Raw => FailureId::Raw(text.to_string()),
            AddrHint::V4 => match parse_v4(text) {
                Some(v4) => FailureId::from_ip(IpAddr::V4(v4), None),
                None => FailureId::Invalid(text.to_string()),
            },
            AddrHint::V6 => match parse_v6(text) {
                Some(v6) => FailureId::from_ip(IpAddr::V6(v6), None),
                None => FailureId::Invalid(text.to_string()),
            },
            AddrHint::Prefix(prefix) => match parse_either(text) {
                Some(ip) => FailureId::from_ip(ip, Some(prefix)),
                None => FailureId::Invalid(text.to_string()),
            },
            AddrHint::Any => parse_unspecified(text),
        }
    }

    /// Whether this is a valid address or network (not raw or invalid text).
    pub fn is_addr(&self) -> bool {
        matches!(self, FailureId::Addr { .. })
    }

    /// The address, for ids that are one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            FailureId::Addr { ip, .. } => Some(*ip),
            _ => None,
        }
    }

    /// `inet4` or `inet6` for addresses, as fail2ban's `<family>` tag.
    pub fn family(&self) -> Option<&'static str> {
        match self {
            FailureId::Addr {
                ip: IpAddr::V4(_), ..
            } => Some("inet4"),
            FailureId::Addr {
                ip: IpAddr::V6(_), ..
            } => Some("inet6"),
            _ => None,
        }
    }

    fn from_ip(ip: IpAddr, prefix: Option<u32>) -> FailureId {
        match (ip, prefix) {
            (IpAddr::V4(v4), Some(p)) => FailureId::Addr {
                ip: IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(v4), p))),
                prefix: clamp_prefix(p),
            },
            (IpAddr::V6(v6), Some(p)) => FailureId::Addr {
                ip: IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(v6), p))),
                prefix: clamp_prefix(p),
            },
            (IpAddr::V4(_), None) => FailureId::Addr { ip, prefix: 32 },
            (IpAddr::V6(v6), None) => match v6.to_ipv4_mapped() {
                Some(v4) => FailureId::Addr {
                    ip: IpAddr::V4(v4),
                    prefix: 32,
                },
                None => FailureId::Addr { ip, prefix: 128 },
            },
        }
    }
}

/// fail2ban stores the prefix as given; lengths beyond the family's width mask nothing
/// and print no suffix, so saturating at 128 keeps both behaviours.
fn clamp_prefix(p: u32) -> u8 {
    u8::try_from(p.min(128)).unwrap_or(128)
}

fn mask_v4(addr: u32, prefix: u32) -> u32 {
    if prefix >= 32 {
        addr
    } else {
        addr & !(u32::MAX >> prefix)
    }
}

fn mask_v6(addr: u128, prefix: u32) -> u128 {
    if prefix >= 128 {
        addr
    } else {
        addr & !(u128::MAX >> prefix)
    }
}

/// `text.parse::<Ipv4Addr>()`, without the general parser's machinery: this runs on
/// every failure's address. Four decimal octets of one to three ASCII digits, none
/// above 255 and none with a leading zero, separated by dots, nothing else.
fn parse_v4(text: &str) -> Option<Ipv4Addr> {
    let bytes = text.as_bytes();
    if !(7..=15).contains(&bytes.len()) {
        return None;
    }
    let digit = |at: usize| {
        bytes
            .get(at)
            .and_then(|b| b.is_ascii_digit().then(|| u32::from(b - b'0')))
    };
    let mut octets = [0u8; 4];
    let mut at = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if bytes.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let first = digit(at)?;
        let mut value = first;
        at += 1;
        if let Some(second) = digit(at) {
            if first == 0 {
                return None;
            }
            value = value * 10 + second;
            at += 1;
            if let Some(third) = digit(at) {
                value = value * 10 + third;
                at += 1;
            }
        }
        *octet = u8::try_from(value).ok()?;
    }
    (at == bytes.len()).then_some(Ipv4Addr::from(octets))
}

/// `text.parse::<Ipv6Addr>()`. The forms of hexadecimal groups alone (nearly every
/// address a log shows) are read here; one with a dot, an IPv4 address in its last
/// 32 bits, goes to the standard parser.
fn parse_v6(text: &str) -> Option<Ipv6Addr> {
    // A zone index (`fe80::1%eth0`) is not part of an address fail2ban recognises.
    let bytes = text.as_bytes();
    if bytes.contains(&b'.') {
        return text.parse::<Ipv6Addr>().ok();
    }
    // Up to eight groups of four digits and their colons.
    if bytes.len() < 2 || bytes.len() > 39 {
        return None;
    }
    let mut groups = [0u16; 8];
    let mut count = 0;
    // Where `::` stands, as a count of the groups before it.
    let mut gap: Option<usize> = None;
    let mut at = 0;
    if bytes.starts_with(b"::") {
        gap = Some(0);
        at = 2;
    }
    while at < bytes.len() {
        let start = at;
        let mut value = 0u16;
        while let Some(d) = bytes.get(at).and_then(|&b| (b as char).to_digit(16)) {
            if at - start == 4 {
                return None;
            }
            value = (value << 4) | d as u16;
            at += 1;
        }
        if at == start || count == 8 {
            return None;
        }
        groups[count] = value;
        count += 1;
        if at == bytes.len() {
            break;
        }
        if bytes[at] != b':' {
            return None;
        }
        at += 1;
        if bytes.get(at) == Some(&b':') {
            if gap.is_some() {
                return None;
            }
            gap = Some(count);
            at += 1;
        } else if at == bytes.len() {
            return None;
        }
    }
    let mut out = [0u16; 8];
    match gap {
        None if count == 8 => out = groups,
        // `::` stands for one group at least.
        Some(before) if count < 8 => {
            let after = count - before;
            out[..before].copy_from_slice(&groups[..before]);
            out[8 - after..].copy_from_slice(&groups[before..count]);
        }
        _ => return None,
    }
    Some(Ipv6Addr::from(out))
}

fn parse_either(text: &str) -> Option<IpAddr> {
    if let Some(v4) = parse_v4(text) {
        return Some(IpAddr::V4(v4));
    }
    parse_v6(text).map(IpAddr::V6)
}

/// `IPAddr(text)` with no family given: strips `[...]`, honours `/prefix` and `/netmask`.
fn parse_unspecified(text: &str) -> FailureId {
    let inner = if text.len() > 2 && text.starts_with('[') && text.ends_with(']') {
        &text[1..text.len() - 1]
    } else {
        text
    };
    let Some((addr, mask)) = inner.split_once('/') else {
        return match parse_either(inner) {
            Some(ip) => FailureId::from_ip(ip, None),
            None => FailureId::Invalid(inner.to_string()),
        };
    };
    let prefix = if mask.contains('.') || mask.contains(':') {
        match netmask_prefix(mask) {
            Some(p) => p,
            None => return FailureId::Invalid(inner.to_string()),
        }
    } else {
        match mask.trim().parse::<u32>() {
            Ok(p) => p,
            Err(_) => return FailureId::Invalid(inner.to_string()),
        }
    };
    match parse_either(addr) {
        Some(ip) => FailureId::from_ip(ip, Some(prefix)),
        None => FailureId::Invalid(addr.to_string()),
    }
}

/// The prefix length of a contiguous netmask such as `255.255.255.0`.
fn netmask_prefix(mask: &str) -> Option<u32> {
    let bits: u128 = match parse_either(mask)? {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let width = if mask.contains(':') { 128 } else { 32 };
    let ones = bits.count_ones();
    let expected = if ones == 0 {
        0
    } else {
        (u128::MAX >> (128 - ones)) << (width - ones)
    };
    (bits == expected).then_some(ones)
}

impl fmt::Display for FailureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureId::Addr {
                ip: IpAddr::V4(v4),
                prefix,
            } => {
                write!(f, "{v4}")?;
                if *prefix > 0 && *prefix < 32 {
                    write!(f, "/{prefix}")?;
                }
                Ok(())
            }
            FailureId::Addr {
                ip: IpAddr::V6(v6),
                prefix,
            } => {
                write!(f, "{v6}")?;
                if *prefix > 0 && *prefix < 128 {
                    write!(f, "/{prefix}")?;
                }
                Ok(())
            }
            FailureId::Invalid(s) | FailureId::Raw(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls `check` on every string of up to `depth` pieces of `alphabet`; returns
    /// how many.
    fn for_every_string(alphabet: &[&str], depth: usize, mut check: impl FnMut(&str)) -> usize {
        let mut layer = vec![String::new()];
        let mut checked = 0;
        for _ in 0..depth {
            let mut next = Vec::new();
            for s in &layer {
                for a in alphabet {
                    let t = format!("{s}{a}");
                    check(&t);
                    checked += 1;
                    next.push(t);
                }
            }
            layer = next;
        }
        checked
    }

    /// The fast IPv4 reader accepts exactly what the standard parser accepts.
    #[test]
    fn v4_reader_agrees_with_std() {
        let alphabet = ["0", "1", "2", "5", "9", ".", "a", " ", "25", "255", "256"];
        let checked = for_every_string(&alphabet, 6, |t| {
            assert_eq!(parse_v4(t), t.parse::<Ipv4Addr>().ok(), "{t:?}");
        });
        for t in [
            "1.2.3.4",
            "255.255.255.255",
            "0.0.0.0",
            "01.2.3.4",
            "1.2.3.4.",
            "1.2.3.04",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            "1.2.3.256",
            "1.2.3.4 ",
            "١.2.3.4",
        ] {
            assert_eq!(parse_v4(t), t.parse::<Ipv4Addr>().ok(), "{t:?}");
        }
        assert!(checked > 1_000_000);
    }

    /// The IPv6 reader accepts exactly what the standard parser accepts, and reads
    /// the same address.
    #[test]
    fn v6_reader_agrees_with_std() {
        let alphabet = [
            "0", "1", "a", "F", "ffff", "12345", ":", "::", "g", ".", " ", "1.2.3.4", "%1",
        ];
        let mut checked = for_every_string(&alphabet, 6, |t| {
            assert_eq!(parse_v6(t), t.parse::<Ipv6Addr>().ok(), "{t:?}");
        });
        let mut rng = crate::test_random(0x9e37_79b9_7f4a_7c15);
        let pieces = ["0", "ab", "fff", "ffff", "0000", "00000", ":", "::", ":::"];
        for _ in 0..200_000 {
            let n = 1 + rng() % 12;
            let t: String = (0..n).map(|_| pieces[(rng() % 9) as usize]).collect();
            assert_eq!(parse_v6(&t), t.parse::<Ipv6Addr>().ok(), "{t:?}");
            checked += 1;
        }
        for t in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::8",
            "1:2:3:4:5:6:7:8::",
            "2001:db8::1:0:0:1",
            "2001:DB8:0:0:8:800:200C:417A",
            "fe80::1%eth0",
            "::ffff:192.0.2.1",
            ":1::",
            "1:",
        ] {
            assert_eq!(parse_v6(t), t.parse::<Ipv6Addr>().ok(), "{t:?}");
        }
        assert!(checked > 2_000_000);
    }

    fn show(text: &str, hint: AddrHint) -> String {
        FailureId::parse(text, hint).to_string()
    }

    #[test]
    fn ipv4_forms() {
        assert_eq!(show("192.0.2.7", AddrHint::V4), "192.0.2.7");
        assert_eq!(
            FailureId::parse("999.1.1.1", AddrHint::V4),
            FailureId::Invalid("999.1.1.1".into())
        );
        assert_eq!(show("192.0.2.7", AddrHint::Prefix(24)), "192.0.2.0/24");
        assert_eq!(show("192.0.2.7/255.255.0.0", AddrHint::Any), "192.0.0.0/16");
        assert_eq!(show("[192.0.2.7]", AddrHint::Any), "192.0.2.7");
    }

    #[test]
    fn ipv6_forms_are_normalised() {
        assert_eq!(show("2001:DB8:0:0:0:0:0:1", AddrHint::V6), "2001:db8::1");
        assert_eq!(show("::ffff:192.0.2.1", AddrHint::V6), "192.0.2.1");
        assert_eq!(show("2001:db8::1", AddrHint::Prefix(64)), "2001:db8::/64");
        assert!(!FailureId::parse("2001:db8:::1", AddrHint::V6).is_addr());
    }

    #[test]
    fn equal_spellings_are_one_id() {
        assert_eq!(
            FailureId::parse("2001:db8::0:1", AddrHint::V6),
            FailureId::parse("2001:db8:0::1", AddrHint::Any)
        );
        assert_ne!(
            FailureId::parse("host", AddrHint::Raw),
            FailureId::parse("host", AddrHint::Any)
        );
    }

    #[test]
    fn raw_keeps_text() {
        assert_eq!(show("[::1]", AddrHint::Raw), "[::1]");
    }
}
