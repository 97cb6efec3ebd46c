//! Every stock action, resolved by rampart and by fail2ban's own `CommandAction`
//! (static substitution per family, then the ticket's values), must give the same
//! scripts.

use std::io::Write;
use std::process::{Command, Stdio};

use rampart_action::{CommandAction, Executor, Ticket};
use rampart_config::Value;

use crate::support::{Recorder, TempDir, context, reference_jails};

const COMMANDS: [&str; 10] = [
    "actionstart",
    "actionstop",
    "actionflush",
    "actioncheck",
    "actionrepair",
    "actionban",
    "actionreban",
    "actionunban",
    "actionprolong",
    "actionreload",
];

fn s(text: &str) -> Value {
    Value::Str(text.to_string())
}

fn hostile_ticket(ip: &str) -> Ticket {
    let mut t = Ticket::new(ip);
    t.failures = 3;
    t.time = 1_700_000_000.0;
    t.bantime = 3600;
    t.bancount = 2;
    t.matches = vec![
        format!("Failed password for $(reboot) from {ip} port 22"),
        "second line; with 'quotes' and \"more\"".to_string(),
    ];
    t.data = vec![("user".to_string(), "`id`; rm -rf / #".to_string())];
    t
}

/// The ticket as fail2ban's ActionInfo would present it, as a Python dict.
fn python_ticket(t: &Ticket) -> Value {
    let matches = t.matches.join("\n");
    let fields = t.data.iter().map(|(k, v)| (k.clone(), s(v))).collect();
    Value::Dict(vec![
        ("ip".into(), s(&t.ip)),
        ("fid".into(), s(&t.fid)),
        (
            "family".into(),
            s(t.family.map(|f| f.as_str()).unwrap_or("")),
        ),
        ("ip-rev".into(), s(&t.ip_rev())),
        ("ip-host".into(), s("")),
        ("failures".into(), Value::Int(t.failures as i64)),
        ("time".into(), s("1700000000.0")),
        ("bantime".into(), Value::Int(t.bantime)),
        ("bancount".into(), Value::Int(t.bancount as i64)),
        ("matches".into(), s(&matches)),
        ("restored".into(), Value::Int(0)),
        ("ipmatches".into(), s(&matches)),
        ("ipjailmatches".into(), s(&matches)),
        ("ipfailures".into(), Value::Int(t.failures as i64)),
        ("ipjailfailures".into(), Value::Int(t.failures as i64)),
        ("jail.banned".into(), Value::Int(0)),
        ("jail.banned_total".into(), Value::Int(0)),
        ("jail.found".into(), Value::Int(0)),
        ("jail.found_total".into(), Value::Int(0)),
        ("F-*".into(), Value::Dict(fields)),
    ])
}

#[test]
fn stock_actions_resolve_like_fail2ban() {
    let reference = rampart_reference::fail2ban();
    let dir = TempDir::new("compare");
    let action_dir = reference.config_dir().join("action.d");
    let mut names: Vec<String> = std::fs::read_dir(&action_dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".conf").map(str::to_string)
        })
        .collect();
    names.sort();
    let mut local = String::new();
    for name in &names {
        local.push_str(&format!(
            "[t-{name}]\nenabled = true\nfilter = sshd\nlogpath = LOGFILE\nbackend = auto\naction = {name}\n\n"
        ));
    }
    let jails = reference_jails(&dir, &local);
    let tickets = [hostile_ticket("192.0.2.1"), hostile_ticket("2001:db8::1")];
    let events = Recorder::default();
    let mut cases = Vec::new();
    let mut skipped = Vec::new();
    for jail in jails.iter().filter(|j| j.name.starts_with("t-")) {
        for config in &jail.actions {
            let ctx = context(&jail.name, Executor::new(), &events);
            // Include-only files (`helpers-common`, …) leave unconvertible values,
            // which rampart treats as unset and fail2ban as literal tags.
            if config.properties.iter().any(|(_, v)| *v == Value::None) {
                skipped.push(config.name.clone());
                continue;
            }
            let mut action = CommandAction::from_config(config, ctx).unwrap();
            let mut results = Vec::new();
            for command in COMMANDS {
                for (family, index) in [("", None), ("inet4", Some(0)), ("inet6", Some(1))] {
                    let fam = index.map(|i: usize| tickets[i].family.unwrap());
                    let resolved = action.resolved_command(command, fam).ok();
                    let dynamic = match index {
                        Some(i) => match action.script_for(command, &tickets[i]) {
                            Ok(script) => {
                                let mut argv = vec![s(&script.command_text())];
                                argv.extend(script.arguments().iter().map(|a| s(a)));
                                Value::List(argv)
                            }
                            Err(_) => Value::None,
                        },
                        None => Value::None,
                    };
                    results.push(Value::List(vec![
                        s(command),
                        s(family),
                        index.map_or(Value::None, |i| Value::Int(i as i64)),
                        resolved.map_or(Value::None, |r| s(&r)),
                        dynamic,
                    ]));
                }
            }
            let properties = config
                .properties
                .iter()
                .map(|(k, v)| Value::List(vec![s(k), v.clone()]))
                .collect();
            cases.push(Value::List(vec![
                s(&config.name),
                Value::List(properties),
                Value::List(tickets.iter().map(python_ticket).collect()),
                Value::List(results),
            ]));
        }
    }
    assert!(
        cases.len() >= 55,
        "only {} stock actions could be read",
        cases.len()
    );
    assert!(skipped.len() <= 3, "skipped {skipped:?}");
    let input = Value::List(cases.clone()).to_string();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/compare_with_fail2ban.py"
    );
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .env("PYTHONPATH", reference.python_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to run the reference");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = format!(
        "checked {}, 0 differences",
        cases.len() * COMMANDS.len() * 5
    );
    assert_eq!(stdout.trim(), expected, "differences:\n{stdout}");
}
