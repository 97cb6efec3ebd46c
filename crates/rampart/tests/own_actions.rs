//! The firewall actions of rampart's own tree, run for real inside a network namespace
//! this test creates (and always deletes): start, ban an IPv4 and an IPv6 address, see
//! the address in the firewall, unban, see it gone, stop. The host's own firewall is
//! never touched.
//!
//! The mail actions deliver their report through the local MTA, and the dummy action
//! records to its file. Not run: firewalld and shorewall (their daemons do not run on
//! these machines; the tree test resolves their commands) and abuseipdb (no network).

// Test support code: a failed setup step should stop the test where it happened.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use rampart_action::{ActionContext, CommandAction, Executor, JailAction, Ticket};

struct NetNs(String);

impl NetNs {
    fn new(tag: &str) -> NetNs {
        let name = format!("rt-act-{tag}-{}", std::process::id());
        let out = Command::new("ip").args(["netns", "add", &name]).output();
        match out {
            Ok(o) if o.status.success() => NetNs(name),
            other => panic!("this test needs `ip netns add` (root, iproute2): {other:?}"),
        }
    }

    fn run(&self, argv: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(argv)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn own_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// The action as a jail of our tree resolves it, with `args` given the jail's way.
fn resolve(action: &str, args: &str) -> rampart_config::Action {
    let dir = std::env::temp_dir().join(format!("rampart-act-{action}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    support::copy_tree(&own_config(), &dir);
    std::fs::write(dir.join("sshd.log"), "").unwrap();
    std::fs::write(
        dir.join("jail.local"),
        format!(
            "[sshd]\nenabled = true\nlogpath = {}\naction = {action}[{args}]\n",
            dir.join("sshd.log").display()
        ),
    )
    .unwrap();
    let config = rampart_config::read_configuration(
        &rampart_config::OsFs,
        &dir.to_string_lossy(),
        &rampart_config::ReadOptions::default(),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let jail = config.jails.into_iter().find(|j| j.name == "sshd").unwrap();
    assert!(
        jail.config_error.is_none(),
        "{action}: {:?}",
        jail.config_error
    );
    jail.actions.into_iter().next().unwrap()
}

/// Every action of our tree that drops traffic and can run here.
const FIREWALL_ACTIONS: [&str; 12] = [
    "nftables-multiport",
    "nftables-allports",
    "nftables-timeout",
    "iptables",
    "iptables-multiport",
    "iptables-allports",
    "iptables-new",
    "iptables-multiport-log",
    "iptables-ipset",
    "iptables-ipset-proto6",
    "iptables-ipset-proto6-allports",
    "route",
];

/// What the firewall of `ns` shows (everything an action could have changed).
fn firewall(ns: &NetNs) -> String {
    [
        ns.run(&["nft", "list", "ruleset"]),
        ns.run(&["iptables-save"]),
        ns.run(&["ip6tables-save"]),
        ns.run(&["ipset", "list"]),
        ns.run(&["ip", "route", "show", "table", "all"]),
        ns.run(&["ip", "-6", "route", "show", "table", "all"]),
    ]
    .join("\n")
}

fn exercise(action_name: &str, args: &str, shows: &dyn Fn(&NetNs) -> String) {
    let ns = NetNs::new(&action_name.chars().take(8).collect::<String>());
    let action = resolve(action_name, args);
    let mut ctx = ActionContext::new("sshd");
    ctx.executor = Executor::new().with_prefix(["ip", "netns", "exec", ns.0.as_str()]);
    let mut action = CommandAction::from_config(&action, ctx).unwrap();
    action
        .start()
        .unwrap_or_else(|e| panic!("{action_name}: start: {e}"));
    for ip in ["192.0.2.1", "2001:db8::7"] {
        let ticket = Ticket::new(ip);
        assert!(
            !shows(&ns).contains(ip),
            "{action_name}: {ip} there before the ban"
        );
        action
            .ban(&ticket)
            .unwrap_or_else(|e| panic!("{action_name}: ban {ip}: {e}"));
        assert!(
            shows(&ns).contains(ip),
            "{action_name}: {ip} not banned:\n{}",
            shows(&ns)
        );
        action
            .unban(&ticket)
            .unwrap_or_else(|e| panic!("{action_name}: unban {ip}: {e}"));
        assert!(
            !shows(&ns).contains(ip),
            "{action_name}: {ip} still there:\n{}",
            shows(&ns)
        );
    }
    action
        .stop()
        .unwrap_or_else(|e| panic!("{action_name}: stop: {e}"));
}

#[test]
fn firewall_actions_ban_and_unban_in_a_namespace() {
    for name in FIREWALL_ACTIONS {
        exercise(name, "port=ssh", &firewall);
    }
}

#[test]
fn file_actions_ban_and_unban() {
    let dir = std::env::temp_dir().join(format!("rampart-act-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let deny = dir.join("hosts.deny");
    std::fs::write(&deny, "# test\n").unwrap();
    let read = |p: PathBuf| move |_: &NetNs| std::fs::read_to_string(&p).unwrap_or_default();
    exercise(
        "hostsdeny",
        &format!("file=\"{}\"", deny.display()),
        &read(deny.clone()),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kernel_timeouts_lift_bans_by_themselves() {
    let ns = NetNs::new("nfto");
    let action = resolve("nftables-timeout", "port=ssh");
    let mut ctx = ActionContext::new("sshd");
    ctx.executor = Executor::new().with_prefix(["ip", "netns", "exec", ns.0.as_str()]);
    let mut action = CommandAction::from_config(&action, ctx).unwrap();
    action.start().unwrap();
    let mut ticket = Ticket::new("192.0.2.33");
    ticket.bantime = 2;
    action.ban(&ticket).unwrap();
    let ruleset = ns.run(&["nft", "list", "ruleset"]);
    assert!(
        ruleset.contains("192.0.2.33") && ruleset.contains("expires"),
        "{ruleset}"
    );
    let started = std::time::Instant::now();
    while ns.run(&["nft", "list", "ruleset"]).contains("192.0.2.33") {
        assert!(
            started.elapsed().as_secs() < 10,
            "the kernel did not expire the ban"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The unban that follows finds nothing to remove, and that is success.
    action.unban(&ticket).unwrap();
    action.stop().unwrap();
}

/// Two namespaces joined by a veth pair: `server` listens on port 22, `client` at
/// 198.18.0.2 connects to it. While banned by any firewall action, its connections
/// fail; after the unban they work again.
#[test]
fn a_banned_client_really_is_dropped() {
    let server = NetNs::new("srv");
    let client = NetNs::new("cli");
    let veth = format!("rtv{}", std::process::id() % 100_000);
    let ok = |argv: &[&str]| {
        let status = Command::new(argv[0]).args(&argv[1..]).status().unwrap();
        assert!(status.success(), "{argv:?}");
    };
    ok(&[
        "ip", "link", "add", &veth, "netns", &server.0, "type", "veth", "peer", "name", "c",
        "netns", &client.0,
    ]);
    ok(&[
        "ip",
        "-n",
        &server.0,
        "addr",
        "add",
        "198.18.0.1/24",
        "dev",
        &veth,
    ]);
    ok(&[
        "ip",
        "-n",
        &client.0,
        "addr",
        "add",
        "198.18.0.2/24",
        "dev",
        "c",
    ]);
    for (ns, dev) in [(&server, veth.as_str()), (&client, "c")] {
        ok(&["ip", "-n", &ns.0, "link", "set", dev, "up"]);
        ok(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
    }
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &server.0, "python3", "-c"])
        .arg(
            "import socket\n\
             s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('198.18.0.1', 22)); s.listen(16)\n\
             while True:\n    c, _ = s.accept(); c.close()\n",
        )
        .spawn()
        .unwrap();
    let connects = || {
        Command::new("ip")
            .args(["netns", "exec", &client.0, "timeout", "3", "bash", "-c"])
            .arg("exec 3<>/dev/tcp/198.18.0.1/22")
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let started = std::time::Instant::now();
    while !connects() {
        assert!(
            started.elapsed().as_secs() < 10,
            "the listener never came up"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut failures = Vec::new();
    for name in FIREWALL_ACTIONS {
        let action = resolve(name, "port=ssh");
        let mut ctx = ActionContext::new("sshd");
        ctx.executor = Executor::new().with_prefix(["ip", "netns", "exec", server.0.as_str()]);
        let mut action = CommandAction::from_config(&action, ctx).unwrap();
        action.start().unwrap();
        let ticket = Ticket::new("198.18.0.2");
        action.ban(&ticket).unwrap();
        let banned = connects();
        action.unban(&ticket).unwrap();
        let after = connects();
        action.stop().unwrap();
        if banned {
            failures.push(format!("{name}: the banned client still connects"));
        }
        if !after {
            failures.push(format!("{name}: the client cannot connect after the unban"));
        }
    }
    let _ = listener.kill();
    let _ = listener.wait();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn dummy_action_records_bans_and_unbans() {
    let dir = std::env::temp_dir().join(format!("rampart-dummy-target-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join("dummy");
    let action = resolve("dummy", &format!("target=\"{}\"", target.display()));
    let mut action = CommandAction::from_config(&action, ActionContext::new("sshd")).unwrap();
    let start = action.resolved_command("actionstart", None).unwrap();
    action.start().unwrap_or_else(|e| panic!("{e}: {start}"));
    let ticket = Ticket::new("192.0.2.61");
    action.ban(&ticket).unwrap();
    action.unban(&ticket).unwrap();
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(
        text.contains("+192.0.2.61") && text.contains("-192.0.2.61"),
        "{text}"
    );
    action.stop().unwrap();
    assert!(!target.exists(), "stop removes the target");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The mail actions deliver through the local MTA (exim4 in the test suite) to root;
/// Debian routes root's mail to `mail` when root has no alias.
#[test]
fn mail_actions_deliver_a_report_per_ban() {
    assert!(
        Path::new("/usr/sbin/sendmail").exists(),
        "this test needs a local MTA (/usr/sbin/sendmail): install exim4-daemon-light"
    );
    let mailbox = || {
        ["/var/mail/mail", "/var/mail/root"]
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<String>()
    };
    let tag = std::process::id() % 200 + 20;
    for (i, name) in [
        "sendmail",
        "sendmail-whois",
        "sendmail-whois-lines",
        "sendmail-whois-matches",
        "sendmail-whois-ipmatches",
        "sendmail-whois-ipjailmatches",
        "mail",
        "mail-whois",
        "mail-whois-lines",
    ]
    .iter()
    .enumerate()
    {
        let ip = format!("198.51.{tag}.{}", i + 1);
        let action = resolve(name, "dest=\"root@localhost\"");
        let mut action = CommandAction::from_config(&action, ActionContext::new("sshd")).unwrap();
        action
            .start()
            .unwrap_or_else(|e| panic!("{name}: start: {e}"));
        let mut ticket = Ticket::new(ip.as_str());
        ticket.matches = vec![format!(
            "Failed password for ~!touch /tmp/PWNED-{name} from {ip}"
        )];
        action
            .ban(&ticket)
            .unwrap_or_else(|e| panic!("{name}: ban: {e}"));
        action
            .unban(&ticket)
            .unwrap_or_else(|e| panic!("{name}: unban: {e}"));
        action
            .stop()
            .unwrap_or_else(|e| panic!("{name}: stop: {e}"));
        let started = std::time::Instant::now();
        while !mailbox().contains(&ip) {
            assert!(
                started.elapsed().as_secs() < 30,
                "{name}: no mail about {ip}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(
            !Path::new(&format!("/tmp/PWNED-{name}")).exists(),
            "{name} ran log text"
        );
    }
}
