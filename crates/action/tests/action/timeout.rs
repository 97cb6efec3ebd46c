//! Commands that do not end are killed, with everything they started.

use std::time::{Duration, Instant};

use rampart_action::{CommandAction, EventKind, Executor, Exit, JailAction, ShellScript, Ticket};

use crate::support::{Recorder, TempDir, context, props};

/// Whether a process is gone (or only a zombie waiting for its new parent).
fn dead(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_dead(pid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn a_sleeping_command_is_killed_with_its_group() {
    let dir = TempDir::new("timeout");
    let pidfile = dir.str("bg.pid");
    let script = ShellScript::new(format!(
        "sleep 100 & echo $! > {pidfile}; echo started; sleep 100"
    ));
    let started = Instant::now();
    let out = Executor::new()
        .run(&script, Duration::from_millis(300))
        .unwrap();
    assert_eq!(out.exit, Exit::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.stdout, "started\n", "output before the kill is kept");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(wait_dead(pid.trim()), "background child {pid} survived");
}

#[test]
fn a_command_ignoring_sigterm_gets_sigkill() {
    let script = ShellScript::new("trap '' TERM; sleep 100; sleep 100");
    let started = Instant::now();
    let out = Executor::new()
        .with_kill_grace(Duration::from_millis(100))
        .run(&script, Duration::from_millis(200))
        .unwrap();
    assert_eq!(out.exit, Exit::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn action_timeout_uses_time_abbreviations_and_retries_once() {
    let events = Recorder::default();
    let properties = props(&[("actionban", "sleep 100"), ("timeout", "0.4s")]);
    let mut action =
        CommandAction::new("slow", properties, context("j", Executor::new(), &events)).unwrap();
    assert_eq!(action.timeout(), Duration::from_millis(400));
    let started = Instant::now();
    let err = action.ban(&Ticket::new("192.0.2.1")).unwrap_err();
    let elapsed = started.elapsed();
    assert!(err.to_string().contains("timed out"), "{err}");
    // fail2ban runs a failed ban command a second time.
    assert!(elapsed >= Duration::from_millis(800), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    let timeouts = events
        .events()
        .iter()
        .filter(|e| {
            matches!(&e.kind, EventKind::Command { outcome, .. } if outcome.exit == Exit::TimedOut)
        })
        .count();
    assert_eq!(timeouts, 2);
}

#[test]
fn bad_timeouts_are_errors() {
    let events = Recorder::default();
    for bad in ["soon", "-5"] {
        let properties = props(&[("actionban", "true"), ("timeout", bad)]);
        let err = CommandAction::new("x", properties, context("j", Executor::new(), &events))
            .unwrap_err();
        assert!(err.to_string().contains("invalid timeout"), "{err}");
    }
}
