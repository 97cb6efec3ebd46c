//! Differential test of `ignoreip`: random entry lists and ids through fail2ban's
//! `Filter.addIgnoreIP`/`inIgnoreIPList` and through ours. Host names are resolved by
//! the system resolver on both sides (only `localhost`, which /etc/hosts answers).

use std::net::{IpAddr, ToSocketAddrs};

use rampart_jail::{CachingResolver, FailureId, IgnoreCheck, IgnoreList, Resolver};
use serde_json::{Value, json};

use crate::differential::{Rng, python};

struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&mut self, name: &str, _now: f64) -> Vec<IpAddr> {
        (name, 0)
            .to_socket_addrs()
            .map(|addrs| addrs.map(|a| a.ip()).collect())
            .unwrap_or_default()
    }
}

const ENTRIES: [&str; 16] = [
    "127.0.0.1/8",
    "::1",
    "192.168.0.0/255.255.0.0",
    "10.0.0.1/8",
    "2001:db8::/32",
    "2001:db8:1::5",
    "198.51.100.7/32",
    "::ffff:203.0.113.9",
    "[2001:db8:2::1]",
    "172.16.0.0/12",
    "localhost",
    "192.0.2.0/24",
    "fe80::/10",
    "203.0.113.0/255.255.255.128",
    "100.64.0.0/10",
    "2001:db8:abcd::/48",
];

const IDS: [&str; 24] = [
    "127.0.0.1",
    "127.255.0.9",
    "128.0.0.1",
    "::1",
    "::2",
    "192.168.44.1",
    "192.169.0.1",
    "10.1.2.3",
    "11.0.0.1",
    "2001:db8:ffff::1",
    "2001:db9::1",
    "2001:db8:1::5",
    "2001:db8:1::6",
    "198.51.100.7",
    "198.51.100.8",
    "203.0.113.9",
    "203.0.113.200",
    "::ffff:192.168.1.1",
    "172.31.255.255",
    "172.32.0.0",
    "fe80::1",
    "fec0::1",
    "100.127.0.1",
    "2001:db8:abcd:12::1",
];

#[test]
fn ignoreip_matches_like_fail2ban() {
    let mut rng = Rng(0x5EED_0005);
    let cases: Vec<Value> = (0..60)
        .map(|_| {
            let entries: Vec<&str> = (0..1 + rng.below(5)).map(|_| *rng.pick(&ENTRIES)).collect();
            json!({"kind": "ignore", "entries": entries, "ids": IDS})
        })
        .collect();
    let reference = python(&Value::Array(cases.clone()));
    let mut resolver = CachingResolver::new(SystemResolver, 300.0);
    let (mut ignored, mut kept) = (0, 0);
    for (case, theirs) in cases.iter().zip(&reference) {
        let entries: Vec<&str> = case["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        let list = IgnoreList::new(&entries.join(" "), false, &[], None);
        for (ip, theirs) in IDS.iter().zip(theirs["ignored"].as_array().unwrap()) {
            let id = FailureId::parse(ip, rampart_filter::AddrHint::Any);
            let ours = matches!(list.check(&id, 0.0, &mut resolver), IgnoreCheck::Ignored(_));
            assert_eq!(
                Some(ours),
                theirs.as_bool(),
                "{ip} with ignoreip {entries:?}"
            );
            if ours {
                ignored += 1;
            } else {
                kept += 1;
            }
        }
    }
    assert!(ignored > 100 && kept > 100, "{ignored} ignored, {kept} not");
}
