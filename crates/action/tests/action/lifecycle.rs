//! fail2ban's state machine: start on demand per family, no double start, unban only
//! what was banned, check and repair after a failure.

use rampart_action::{CommandAction, EventKind, Executor, JailAction, Level, Repair, Ticket};
use rampart_config::Value;

use crate::support::{Recorder, TempDir, context, props};

struct Journal {
    dir: TempDir,
    events: Recorder,
}

impl Journal {
    fn new(tag: &str) -> Journal {
        Journal {
            dir: TempDir::new(tag),
            events: Recorder::default(),
        }
    }

    /// An action whose commands are `list`, with `<log>` and `<state>` pointing into
    /// the journal's directory.
    fn action(&self, list: &[(&str, &str)]) -> CommandAction {
        let mut properties = props(list);
        properties.push(("log".into(), Value::Str(self.dir.str("journal"))));
        properties.push(("state".into(), Value::Str(self.dir.str("state"))));
        CommandAction::new(
            "test",
            properties,
            context("j", Executor::new(), &self.events),
        )
        .unwrap()
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("journal"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn break_state(&self) {
        std::fs::remove_file(self.dir.join("state")).unwrap();
    }
}

const LOGGING: &[(&str, &str)] = &[
    ("actionstart", "echo start >> <log>"),
    ("actionstop", "echo stop >> <log>"),
    ("actionban", "echo ban <ip> <family> >> <log>"),
    ("actionunban", "echo unban <ip> >> <log>"),
];

#[test]
fn conditional_actions_start_on_demand_once_per_command() {
    let j = Journal::new("ondemand");
    let mut list = LOGGING.to_vec();
    list.push(("blocktype?family=inet6", "six"));
    let mut action = j.action(&list);
    assert!(action.starts_on_demand());
    action.start().unwrap();
    assert!(j.lines().is_empty());
    action.ban(&Ticket::new("192.0.2.1")).unwrap();
    action.unban(&Ticket::new("2001:db8::9")).unwrap();
    action.ban(&Ticket::new("2001:db8::1")).unwrap();
    action.unban(&Ticket::new("192.0.2.1")).unwrap();
    action.stop().unwrap();
    // No unban for a family without bans. The inet6 start and stop resolve to the
    // same commands as inet4's: they run once.
    assert_eq!(
        j.lines(),
        [
            "start",
            "ban 192.0.2.1 inet4",
            "ban 2001:db8::1 inet6",
            "unban 192.0.2.1",
            "stop"
        ]
    );
    assert!(action.started_families().is_empty());
    // After a stop the next ban starts again.
    action.ban(&Ticket::new("192.0.2.2")).unwrap();
    assert_eq!(j.lines()[5..], ["start", "ban 192.0.2.2 inet4"]);
}

#[test]
fn family_commands_differ_so_both_families_start() {
    let j = Journal::new("families");
    let mut list = LOGGING.to_vec();
    list[0] = ("actionstart", "echo start <family> <set> >> <log>");
    list.push(("set", "v4set"));
    list.push(("set?family=inet6", "v6set"));
    let mut action = j.action(&list);
    action.ban(&Ticket::new("192.0.2.1")).unwrap();
    action.ban(&Ticket::new("2001:db8::1")).unwrap();
    assert_eq!(
        j.lines(),
        [
            "start inet4 v4set",
            "ban 192.0.2.1 inet4",
            "start inet6 v6set",
            "ban 2001:db8::1 inet6"
        ]
    );
}

#[test]
fn plain_actions_start_at_once_and_unban_only_banned_families() {
    let j = Journal::new("plain");
    let mut action = j.action(LOGGING);
    assert!(!action.starts_on_demand());
    action.start().unwrap();
    assert_eq!(j.lines(), ["start"]);
    action.unban(&Ticket::new("192.0.2.1")).unwrap();
    assert_eq!(j.lines(), ["start"], "nothing banned yet: no unban command");
    action.ban(&Ticket::new("192.0.2.1")).unwrap();
    action.unban(&Ticket::new("192.0.2.1")).unwrap();
    action.stop().unwrap();
    assert_eq!(
        j.lines(),
        ["start", "ban 192.0.2.1 inet4", "unban 192.0.2.1", "stop"]
    );
}

const CHECKED: &[(&str, &str)] = &[
    ("actionstart", "touch <state>; echo start >> <log>"),
    ("actionstop", "rm -f <state>; echo stop >> <log>"),
    ("actioncheck", "test -f <state>"),
    ("actionban", "test -f <state> && echo ban <ip> >> <log>"),
    ("actionunban", "test -f <state> && echo unban <ip> >> <log>"),
];

fn with_repair(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut list = CHECKED.to_vec();
    list.push(("actionrepair", "touch <state>; echo repair >> <log>"));
    list.extend_from_slice(extra);
    list
}

#[test]
fn failed_ban_is_checked_repaired_and_retried() {
    let j = Journal::new("repair");
    let mut action = j.action(&with_repair(&[]));
    action.start().unwrap();
    action.ban(&Ticket::new("192.0.2.1")).unwrap();
    j.break_state();
    action.ban(&Ticket::new("192.0.2.2")).unwrap();
    assert_eq!(
        j.lines(),
        ["start", "ban 192.0.2.1", "repair", "ban 192.0.2.2"]
    );
    assert_eq!(action.ban_epoch(), 1);
}

#[test]
fn without_repair_command_the_action_is_restarted() {
    let j = Journal::new("restart");
    let mut action = j.action(CHECKED);
    action.start().unwrap();
    j.break_state();
    action.ban(&Ticket::new("192.0.2.3")).unwrap();
    assert_eq!(j.lines(), ["start", "stop", "start", "ban 192.0.2.3"]);
}

#[test]
fn failed_unban_is_not_repaired_unless_asked() {
    let j = Journal::new("unban");
    let mut action = j.action(&with_repair(&[]));
    action.start().unwrap();
    action.ban(&Ticket::new("192.0.2.4")).unwrap();
    j.break_state();
    let err = action.unban(&Ticket::new("192.0.2.4")).unwrap_err();
    assert!(err.to_string().contains("unban 192.0.2.4"), "{err}");
    assert_eq!(j.lines(), ["start", "ban 192.0.2.4"]);
    let refused = j.events.events().iter().any(|e| {
        matches!(
            e.kind,
            EventKind::InvariantFailed {
                repairing: false,
                ..
            }
        )
    });
    assert!(refused, "{}", j.events.text());

    let j = Journal::new("unban-repair");
    let mut action = j.action(&with_repair(&[("actionrepair_on_unban", "true")]));
    action.start().unwrap();
    action.ban(&Ticket::new("192.0.2.4")).unwrap();
    j.break_state();
    action.unban(&Ticket::new("192.0.2.4")).unwrap();
    assert_eq!(
        j.lines(),
        ["start", "ban 192.0.2.4", "repair", "unban 192.0.2.4"]
    );
}

#[test]
fn a_repair_that_fails_is_critical() {
    let j = Journal::new("norepair");
    let mut list = CHECKED.to_vec();
    list.push(("actionrepair", "false"));
    let mut action = j.action(&list);
    action.start().unwrap();
    j.break_state();
    assert!(action.ban(&Ticket::new("192.0.2.5")).is_err());
    let critical =
        j.events.events().iter().any(|e| {
            e.level == Level::Critical && matches!(e.kind, EventKind::RestoreFailed { .. })
        });
    assert!(critical, "{}", j.events.text());
    assert!(
        action.started_families().is_empty(),
        "the broken family is reset"
    );
}

#[test]
fn consistency_check_repairs_started_families() {
    let j = Journal::new("consistency");
    let mut action = j.action(&with_repair(&[]));
    action.start().unwrap();
    assert!(action.consistency_check(Repair::Allowed));
    assert_eq!(j.lines(), ["start"]);
    j.break_state();
    assert!(action.consistency_check(Repair::Allowed));
    assert_eq!(j.lines(), ["start", "repair"]);
    j.break_state();
    assert!(!action.consistency_check(Repair::OnlyIfRepairOnUnban));
}

#[test]
fn static_tags_constants_and_ticket_values() {
    let j = Journal::new("tags");
    let mut action = j.action(&[
        (
            "actionban",
            "echo <ip> <fid> <ip-rev> <failures> <bantime> <bancount> <restored> <time> \
             [<name>]<sp>[<sh-hostname>] [<fq-hostname>] <ipfailures> >> <log>",
        ),
        ("name", "<jailname>-x"),
        ("jailname", "sshd"),
    ]);
    let mut ticket = Ticket::new("192.0.2.6");
    ticket.failures = 5;
    ticket.bantime = 3600;
    ticket.bancount = 2;
    ticket.time = 1_700_000_000.0;
    action.ban(&ticket).unwrap();
    assert_eq!(
        j.lines(),
        [
            "192.0.2.6 192.0.2.6 6.2.0.192. 5 3600 2 0 1700000000.0 [sshd-x] [host] [host.example.org] 5"
        ]
    );
}

#[test]
fn python_actions_are_refused() {
    let action = rampart_config::Action {
        name: "smtp".into(),
        file: "/etc/fail2ban/action.d/smtp.py".into(),
        python: Some("{}".into()),
        properties: Vec::new(),
    };
    let events = Recorder::default();
    let err =
        CommandAction::from_config(&action, context("j", Executor::new(), &events)).unwrap_err();
    assert!(
        err.to_string().contains("Python actions are not supported"),
        "{err}"
    );
}
