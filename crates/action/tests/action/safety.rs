//! Values from log lines reach commands as data, never as shell code.

use std::time::Duration;

use rampart_action::{CommandAction, Executor, JailAction, ShellScript, Ticket};

use crate::support::{Recorder, TempDir, context, props};

/// User names an attacker could put in a log line, each trying to create `MARK`.
const HOSTILE: &[&str] = &[
    "$(touch MARK)",
    "`touch MARK`",
    "x; touch MARK",
    "x && touch MARK",
    "x | touch MARK",
    "x' ; touch MARK ; '",
    "x\" ; touch MARK ; \"",
    "x\ntouch MARK",
    "x\rtouch MARK",
    "$(touch${IFS}MARK)",
    "x > MARK",
    "<ip>; touch MARK",
    "<F-USER>",
    "\\\"; touch MARK; #",
    "x\ttouch MARK",
    "x\0; touch MARK",
];

fn hostile_action(dir: &TempDir, events: &Recorder) -> CommandAction {
    let log = dir.str("seen.log");
    let properties = props(&[
        // Every way a command can use a value: quoted, unquoted, inside single quotes
        // of another program, as part of a word.
        (
            "actionban",
            "printf '%s\\n' \"<F-USER>\" >> <log>\n\
             echo user=<F-USER> matches=<matches> host=<ip-host> >> <log>\n\
             sh -c 'echo <F-USER>' >> <log> 2>&1\n\
             echo '<F-USER>' >> <log>",
        ),
        ("log", &log),
    ]);
    CommandAction::new(
        "hostile",
        properties,
        context("sshd", Executor::new(), events),
    )
    .unwrap()
}

struct Lookups(String);

impl rampart_action::TagSource for Lookups {
    fn lookup(&self, tag: &str, _jail: &str, _ticket: &Ticket) -> Option<String> {
        (tag == "ip-host").then(|| self.0.clone())
    }
}

#[test]
fn hostile_user_names_are_never_executed() {
    let dir = TempDir::new("hostile");
    let mark = dir.str("pwned");
    let events = Recorder::default();
    for template in HOSTILE {
        let value = template.replace("MARK", &mark);
        let mut action = hostile_action(&dir, &events);
        let mut ticket = Ticket::new("192.0.2.7");
        ticket.data = vec![("user".to_string(), value.clone())];
        ticket.matches = vec![format!("Failed password for {value} from 192.0.2.7")];
        action.ban(&ticket).unwrap();
        assert!(
            !std::path::Path::new(&mark).exists(),
            "{value:?} created the marker file"
        );
        // The quoted use saw the value itself (NUL bytes cannot be arguments).
        let seen = std::fs::read_to_string(dir.join("seen.log")).unwrap();
        let expected = value.replace('\0', "");
        assert!(
            seen.starts_with(&format!("{expected}\n")),
            "{value:?} arrived as {seen:?}"
        );
        std::fs::remove_file(dir.join("seen.log")).unwrap();
    }
    assert!(!events.text().contains("ban 192.0.2.7 failed"));
}

/// The payloads are real: pasted into the script they do create the marker.
#[test]
fn pasted_payloads_would_run() {
    let dir = TempDir::new("control");
    let mark = dir.str("pwned");
    for template in [
        "$(touch MARK)",
        "`touch MARK`",
        "x; touch MARK",
        "x\ntouch MARK",
    ] {
        let value = template.replace("MARK", &mark);
        let naive = format!("echo user={value} > /dev/null");
        let out = Executor::new()
            .run(&ShellScript::new(naive), Duration::from_secs(10))
            .unwrap();
        assert!(out.success(), "{out:?}");
        assert!(
            std::path::Path::new(&mark).exists(),
            "{value:?} is no payload"
        );
        std::fs::remove_file(&mark).unwrap();
    }
}

#[test]
fn hostile_reverse_dns_names_are_never_executed() {
    let dir = TempDir::new("hostile-dns");
    let mark = dir.str("pwned");
    let events = Recorder::default();
    let mut ctx = context("sshd", Executor::new(), &events);
    ctx.lookups = std::sync::Arc::new(Lookups(format!("$(touch {mark}).example.org")));
    let properties = props(&[("actionban", "echo <ip-host> > /dev/null")]);
    let mut action = CommandAction::new("dns", properties, ctx).unwrap();
    action.ban(&Ticket::new("192.0.2.8")).unwrap();
    assert!(!std::path::Path::new(&mark).exists());
}

#[test]
fn plain_values_are_inlined_and_unsafe_ones_passed_as_arguments() {
    let dir = TempDir::new("script");
    let events = Recorder::default();
    let mut action = hostile_action(&dir, &events);
    let mut ticket = Ticket::new("192.0.2.9");
    ticket.data = vec![("user".to_string(), "alice".to_string())];
    ticket.matches = vec!["a line; with `syntax`".to_string()];
    let script = action.script_for("actionban", &ticket).unwrap();
    assert!(
        script
            .script
            .contains("echo user=alice matches=${f2bV_matches}")
    );
    assert_eq!(
        script.vars,
        vec![(
            "f2bV_matches".to_string(),
            "a line; with `syntax`".to_string()
        )]
    );
}
