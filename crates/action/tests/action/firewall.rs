//! Debian's own nftables and iptables actions, run for real inside a namespace.

use std::time::Duration;

use rampart_action::{BanQueue, CommandAction, EventKind, Executor, JailAction, Level, Ticket};

use crate::support::{NetNs, Recorder, TempDir, context, reference_actions};

fn action_for(banaction: &str, ns: &NetNs, dir: &TempDir, events: &Recorder) -> CommandAction {
    let local = format!(
        "[sshd]\nenabled = true\nbanaction = {banaction}\nlogpath = LOGFILE\nbackend = auto\n"
    );
    let actions = reference_actions(dir, &local);
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0].file, banaction);
    let executor = Executor::new().with_prefix(ns.prefix());
    CommandAction::from_config(&actions[0], context("sshd", executor, events)).unwrap()
}

#[test]
fn nftables_bans_and_unbans_both_families() {
    let ns = NetNs::new();
    let dir = TempDir::new("nft");
    let events = Recorder::default();
    let mut action = action_for("nftables", &ns, &dir, &events);
    assert!(action.starts_on_demand(), "nftables has ?family= keys");

    action.start().unwrap();
    assert_eq!(
        ns.run(&["nft", "list", "ruleset"]),
        "",
        "started on demand only"
    );

    action.ban(&Ticket::new("192.0.2.10")).unwrap();
    action.ban(&Ticket::new("2001:db8::5")).unwrap();
    let ruleset = ns.run(&["nft", "list", "ruleset"]);
    assert!(ruleset.contains("set addr-set-sshd"), "{ruleset}");
    assert!(ruleset.contains("set addr6-set-sshd"), "{ruleset}");
    assert!(ruleset.contains("192.0.2.10"), "{ruleset}");
    assert!(ruleset.contains("2001:db8::5"), "{ruleset}");
    assert!(
        ruleset.contains("tcp dport 22 ip saddr @addr-set-sshd reject"),
        "{ruleset}"
    );
    assert_eq!(action.started_families(), vec!["inet4", "inet6"]);

    action.unban(&Ticket::new("192.0.2.10")).unwrap();
    let ruleset = ns.run(&["nft", "list", "ruleset"]);
    assert!(!ruleset.contains("192.0.2.10"), "{ruleset}");
    assert!(ruleset.contains("2001:db8::5"), "{ruleset}");

    action.stop().unwrap();
    assert_eq!(ns.run(&["nft", "list", "ruleset"]), "");
    let failures: Vec<_> = events
        .events()
        .into_iter()
        .filter(|e| e.level >= Level::Error)
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn nftables_recovers_when_its_table_disappears() {
    let ns = NetNs::new();
    let dir = TempDir::new("nft-repair");
    let events = Recorder::default();
    let mut action = action_for("nftables", &ns, &dir, &events);
    action.ban(&Ticket::new("192.0.2.20")).unwrap();
    // Someone flushes the firewall behind our back.
    ns.run(&["nft", "flush", "ruleset"]);
    assert_eq!(ns.run(&["nft", "list", "ruleset"]), "");

    // The ban fails, actioncheck fails, nftables has no actionrepair: stop, start, retry.
    action.ban(&Ticket::new("192.0.2.21")).unwrap();
    let ruleset = ns.run(&["nft", "list", "ruleset"]);
    assert!(ruleset.contains("192.0.2.21"), "{ruleset}");
    assert!(ruleset.contains("@addr-set-sshd reject"), "{ruleset}");
    assert_eq!(action.ban_epoch(), 1, "bans before the repair are suspect");
    let repaired = events.events().iter().any(|e| {
        matches!(
            &e.kind,
            EventKind::InvariantFailed {
                repairing: true,
                ..
            }
        )
    });
    assert!(repaired, "{}", events.text());
    action.stop().unwrap();
    assert_eq!(ns.run(&["nft", "list", "ruleset"]), "");
}

#[test]
fn iptables_multiport_bans_unbans_flushes_and_stops() {
    let ns = NetNs::new();
    let dir = TempDir::new("ipt");
    let events = Recorder::default();
    let mut action = action_for("iptables-multiport", &ns, &dir, &events);

    action.ban(&Ticket::new("192.0.2.30")).unwrap();
    action.ban(&Ticket::new("192.0.2.31")).unwrap();
    let rules = ns.run(&["iptables", "-w", "-S"]);
    assert!(
        rules.contains("-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd"),
        "{rules}"
    );
    assert!(
        rules
            .contains("-A f2b-sshd -s 192.0.2.30/32 -j REJECT --reject-with icmp-port-unreachable"),
        "{rules}"
    );
    assert!(rules.contains("-A f2b-sshd -s 192.0.2.31/32"), "{rules}");

    action.unban(&Ticket::new("192.0.2.30")).unwrap();
    let rules = ns.run(&["iptables", "-w", "-S"]);
    assert!(!rules.contains("192.0.2.30"), "{rules}");
    assert!(rules.contains("192.0.2.31"), "{rules}");

    assert!(action.flush().unwrap(), "iptables has an actionflush");
    let rules = ns.run(&["iptables", "-w", "-S"]);
    assert!(!rules.contains("192.0.2.31"), "{rules}");
    assert!(rules.contains("-N f2b-sshd"), "{rules}");

    action.stop().unwrap();
    let rules = ns.run(&["iptables", "-w", "-S"]);
    assert!(!rules.contains("f2b-sshd"), "{rules}");
    // The IPv6 family was never used, so nothing was created there.
    let rules6 = ns.run(&["ip6tables", "-w", "-S"]);
    assert!(!rules6.contains("f2b-sshd"), "{rules6}");
}

#[test]
fn ban_queue_drives_nftables_until_stop() {
    let ns = NetNs::new();
    let dir = TempDir::new("nft-queue");
    let events = Recorder::default();
    let action = action_for("nftables", &ns, &dir, &events);
    let queue = BanQueue::start("sshd", vec![Box::new(action)], events.sink()).unwrap();
    let banned: Vec<Ticket> = ["198.18.0.1", "198.18.0.2", "2001:db8::7"]
        .iter()
        .map(|ip| Ticket::new(*ip))
        .collect();
    for t in &banned {
        queue.ban(t.clone()).unwrap();
    }
    queue.unban(banned[0].clone()).unwrap();
    assert!(queue.wait_idle(Duration::from_secs(30)));
    let ruleset = ns.run(&["nft", "list", "ruleset"]);
    assert!(
        !ruleset.contains("198.18.0.1,") && !ruleset.contains("198.18.0.1 "),
        "{ruleset}"
    );
    assert!(ruleset.contains("198.18.0.2"), "{ruleset}");
    assert!(ruleset.contains("2001:db8::7"), "{ruleset}");
    // At stop nftables flushes its sets, then removes its rules, sets and table.
    queue.stop(banned[1..].to_vec());
    assert_eq!(ns.run(&["nft", "list", "ruleset"]), "");
    let failures: Vec<_> = events
        .events()
        .into_iter()
        .filter(|e| e.level >= Level::Error)
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    let flushed = events.text().contains("flush inet4") && events.text().contains("flush inet6");
    assert!(flushed, "{}", events.text());
}
