//! The path the daemon takes: a real filter finds failures in log lines, the jail
//! counts them, bans, and releases the ban when the clock passes its end.

use rampart_filter::{Filter, FilterSpec, Mode, NoResolver, UseDns};
use rampart_jail::{BanOutcome, CachingResolver, IgnoreCheck, Jail, JailConfig, Resolver, Ticket};

struct NoNames;

impl Resolver for NoNames {
    fn resolve(&mut self, _name: &str, _now: f64) -> Vec<std::net::IpAddr> {
        Vec::new()
    }
}

#[test]
fn log_lines_to_ban_to_unban() {
    let spec = FilterSpec {
        prefregex: None,
        failregex: vec![
            r"^sshd\[\d+\]: Failed password for <F-USER>\S+</F-USER> from <HOST> port \d+"
                .to_string(),
        ],
        ignoreregex: Vec::new(),
        maxlines: 1,
        use_dns: UseDns::No,
    };
    let mode = Mode {
        find_time: 600.0,
        ..Mode::default()
    };
    let mut filter = Filter::new(&spec, mode).unwrap();
    filter.set_in_operation(true);
    let config = JailConfig::from_options(
        [
            ("maxretry", "3"),
            ("findtime", "10m"),
            ("bantime", "1h"),
            ("ignoreip", "127.0.0.1/8 192.0.2.0/24"),
        ],
        &[],
    )
    .unwrap();
    let mut jail = Jail::new(config);
    let mut dns = CachingResolver::new(NoNames, 300.0);

    let start = 1_700_000_000.0;
    let mut banned = Vec::new();
    for (i, (user, host)) in [
        ("root", "198.51.100.4"),
        ("admin", "198.51.100.4"),
        ("root", "192.0.2.10"),
        ("root", "192.0.2.10"),
        ("root", "192.0.2.10"),
        ("oracle", "198.51.100.4"),
    ]
    .into_iter()
    .enumerate()
    {
        let time = start + 10.0 * i as f64;
        let line = format!(
            "sshd[{}]: Failed password for {user} from {host} port 22 ssh2",
            100 + i
        );
        for failure in filter.process_dated_line("Nov 14 22:13:20", &line, time, time, &NoResolver)
        {
            let ticket = Ticket::from_failure(&failure, time).unwrap();
            match jail.check_ignore(&ticket.id, time, &mut dns) {
                IgnoreCheck::NotIgnored => {}
                IgnoreCheck::Ignored(_) => continue,
                IgnoreCheck::AskCommand => unreachable!("no ignorecommand"),
            }
            if let Some(ticket) = jail.add_failure(ticket, None) {
                banned.push(jail.ban(ticket, None, time, || 0.0));
            }
        }
    }
    assert_eq!(banned.len(), 1, "{banned:?}");
    let BanOutcome::Banned { ticket, record, .. } = &banned[0] else {
        panic!("{banned:?}");
    };
    assert!(record);
    assert_eq!(ticket.id.to_string(), "198.51.100.4");
    assert_eq!(ticket.failures, 3);
    // The first failure's captures stay; the matched lines are all three, dated.
    assert_eq!(ticket.data.get("user").map(String::as_str), Some("root"));
    assert_eq!(ticket.matches.len(), 3);
    assert!(
        ticket.matches[2].starts_with("Nov 14 22:13:20"),
        "{:?}",
        ticket.matches
    );
    assert!(ticket.matches[2].contains("oracle"));
    assert_eq!(ticket.data_json()["failures"], 3);

    assert_eq!(
        jail.failures().total(),
        6 - 3,
        "ignored failures are not counted"
    );
    let end = start + 50.0 + 3600.0;
    assert_eq!(jail.next_unban_at(), Some(end));
    assert!(jail.tick(end).is_empty());
    let released = jail.tick(end + 1.0);
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].id, ticket.id);
    assert!(jail.bans().is_empty());
}
