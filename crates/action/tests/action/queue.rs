//! The ban queue: non-blocking pushes, order, batches, flush, stop, norestored.

use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_action::{
    ActionError, BanQueue, CommandAction, EventKind, Executor, IDLE_END, JailAction, Job, Ticket,
};
use rampart_config::Value;

use crate::support::{Recorder, TempDir, context, props};

fn logging_action(
    name: &str,
    dir: &TempDir,
    events: &Recorder,
    extra: &[(&str, &str)],
) -> CommandAction {
    let mut list = vec![
        ("actionstart", "echo <who> start >> <log>"),
        ("actionstop", "echo <who> stop >> <log>"),
        ("actionban", "echo <who> ban <ip> >> <log>"),
        ("actionunban", "echo <who> unban <ip> >> <log>"),
        ("who", name),
    ];
    let log = dir.str("journal");
    list.push(("log", &log));
    list.extend_from_slice(extra);
    CommandAction::new(name, props(&list), context("j", Executor::new(), events)).unwrap()
}

fn lines(dir: &TempDir) -> Vec<String> {
    std::fs::read_to_string(dir.join("journal"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn pushes_return_at_once_and_jobs_run_in_order() {
    let dir = TempDir::new("queue-order");
    let events = Recorder::default();
    let slow = logging_action(
        "a",
        &dir,
        &events,
        &[("actionban", "sleep 0.3; echo <who> ban <ip> >> <log>")],
    );
    let queue = BanQueue::start("j", vec![Box::new(slow)], events.sink()).unwrap();
    let started = Instant::now();
    queue.ban(Ticket::new("192.0.2.1")).unwrap();
    queue.ban(Ticket::new("192.0.2.2")).unwrap();
    queue.unban(Ticket::new("192.0.2.1")).unwrap();
    queue.ban(Ticket::new("192.0.2.3")).unwrap();
    queue.unban(Ticket::new("192.0.2.2")).unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    assert!(queue.wait_idle(Duration::from_secs(20)));
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        lines(&dir),
        [
            "a start",
            "a ban 192.0.2.1",
            "a ban 192.0.2.2",
            "a unban 192.0.2.1",
            "a ban 192.0.2.3",
            "a unban 192.0.2.2"
        ]
    );
    queue.stop(vec![Ticket::new("192.0.2.3")]);
    assert_eq!(lines(&dir)[6..], ["a unban 192.0.2.3", "a stop"]);
}

/// An action that records the batches it gets; its start waits for the test.
struct Batches {
    gate: Receiver<()>,
    sizes: Arc<Mutex<Vec<usize>>>,
}

impl JailAction for Batches {
    fn name(&self) -> &str {
        "batches"
    }
    fn start(&mut self) -> Result<(), ActionError> {
        let _ = self.gate.recv();
        Ok(())
    }
    fn stop(&mut self) -> Result<(), ActionError> {
        Ok(())
    }
    fn ban(&mut self, _ticket: &Ticket) -> Result<(), ActionError> {
        unreachable!("the worker hands over batches")
    }
    fn ban_batch(&mut self, tickets: &[&Ticket]) -> Vec<Result<(), ActionError>> {
        self.sizes.lock().unwrap().push(tickets.len());
        tickets.iter().map(|_| Ok(())).collect()
    }
    fn unban(&mut self, _ticket: &Ticket) -> Result<(), ActionError> {
        Ok(())
    }
}

#[test]
fn queued_bans_reach_an_action_as_one_batch() {
    let (open, gate) = mpsc::channel();
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let action = Batches {
        gate,
        sizes: Arc::clone(&sizes),
    };
    let events = Recorder::default();
    let queue = BanQueue::start("j", vec![Box::new(action)], events.sink()).unwrap();
    for i in 0..50 {
        queue.ban(Ticket::new(format!("198.18.0.{i}"))).unwrap();
    }
    queue.unban(Ticket::new("198.18.0.1")).unwrap();
    for i in 50..60 {
        queue.ban(Ticket::new(format!("198.18.0.{i}"))).unwrap();
    }
    open.send(()).unwrap();
    assert!(queue.wait_idle(Duration::from_secs(10)));
    assert_eq!(*sizes.lock().unwrap(), [50, 10], "an unban splits the run");
    queue.stop(Vec::new());
}

#[test]
fn flush_uses_actionflush_or_unbans_each_ticket() {
    let dir = TempDir::new("queue-flush");
    let events = Recorder::default();
    let flushing = logging_action(
        "f",
        &dir,
        &events,
        &[("actionflush", "echo <who> flush >> <log>")],
    );
    let plain = logging_action("p", &dir, &events, &[]);
    let queue = BanQueue::start(
        "j",
        vec![Box::new(flushing), Box::new(plain)],
        events.sink(),
    )
    .unwrap();
    let banned = vec![Ticket::new("192.0.2.1"), Ticket::new("192.0.2.2")];
    for t in &banned {
        queue.ban(t.clone()).unwrap();
    }
    queue.push(Job::Flush(banned.clone())).unwrap();
    assert!(queue.wait_idle(Duration::from_secs(10)));
    let flushed = lines(&dir);
    assert_eq!(
        flushed[6..],
        ["f flush", "p unban 192.0.2.1", "p unban 192.0.2.2"],
        "{flushed:?}"
    );
    // Nothing is banned any more: the stop flushes nothing and stops in reverse order.
    queue.stop(Vec::new());
    assert_eq!(lines(&dir)[9..], ["p stop", "f stop"]);
}

#[test]
fn restored_tickets_skip_norestored_actions_and_failures_are_reported() {
    let dir = TempDir::new("queue-restored");
    let events = Recorder::default();
    let mut mail_props = vec![(
        "actionban".to_string(),
        Value::Str(format!("echo mail <ip> >> {}", dir.str("journal"))),
    )];
    mail_props.push(("norestored".to_string(), Value::Bool(true)));
    let mail =
        CommandAction::new("mail", mail_props, context("j", Executor::new(), &events)).unwrap();
    let broken = CommandAction::new(
        "broken",
        props(&[("actionban", "exit 3")]),
        context("j", Executor::new(), &events),
    )
    .unwrap();
    let firewall = logging_action("fw", &dir, &events, &[]);
    let queue = BanQueue::start(
        "j",
        vec![Box::new(mail), Box::new(broken), Box::new(firewall)],
        events.sink(),
    )
    .unwrap();
    let mut restored = Ticket::new("192.0.2.8");
    restored.restored = true;
    queue.ban(restored).unwrap();
    queue.ban(Ticket::new("192.0.2.9")).unwrap();
    assert!(queue.wait_idle(Duration::from_secs(10)));
    assert_eq!(
        lines(&dir),
        [
            "fw start",
            "mail 192.0.2.9",
            "fw ban 192.0.2.8",
            "fw ban 192.0.2.9"
        ]
    );
    let failures: Vec<String> = events
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Failed { what, .. } => Some(format!("{} {what}", e.action)),
            _ => None,
        })
        .collect();
    assert_eq!(failures, ["broken ban 192.0.2.8", "broken ban 192.0.2.9"]);
    queue.stop(Vec::new());
}

#[test]
fn a_stopped_queue_refuses_jobs() {
    let events = Recorder::default();
    let dir = TempDir::new("queue-stop");
    let queue = BanQueue::start(
        "j",
        vec![Box::new(logging_action("a", &dir, &events, &[]))],
        events.sink(),
    )
    .unwrap();
    queue.push(Job::Stop(Vec::new())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue.ban(Ticket::new("192.0.2.1")).is_ok() {
        assert!(Instant::now() < deadline, "the worker did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!queue.wait_idle(Duration::from_secs(1)));
    assert_eq!(lines(&dir), ["a start", "a stop"]);
}

#[test]
fn the_worker_ends_when_idle_and_the_next_job_brings_one_back() {
    let dir = TempDir::new("queue-lazy");
    let events = Recorder::default();
    let queue = BanQueue::with_idle_end(
        "lazy",
        vec![Box::new(logging_action("a", &dir, &events, &[]))],
        events.sink(),
        Duration::from_millis(100),
    )
    .unwrap();
    let workers = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim() == "actions-lazy")
            .count()
    };
    // The start is work of its own: it runs at once, then the thread ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines(&dir).is_empty() || workers() > 0 {
        assert!(Instant::now() < deadline, "the idle worker did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(lines(&dir), ["a start"]);
    for round in 0..2 {
        queue.ban(Ticket::new(format!("192.0.2.{round}"))).unwrap();
        queue
            .unban(Ticket::new(format!("192.0.2.{round}")))
            .unwrap();
        assert!(queue.wait_idle(Duration::from_secs(10)));
        while workers() > 0 {
            assert!(Instant::now() < deadline, "the idle worker did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The actions were started once and kept their state across workers; the stop runs
    // with no worker left.
    queue.stop(Vec::new());
    assert_eq!(
        lines(&dir),
        [
            "a start",
            "a ban 192.0.2.0",
            "a unban 192.0.2.0",
            "a ban 192.0.2.1",
            "a unban 192.0.2.1",
            "a stop"
        ]
    );
}

#[test]
fn a_deferred_queue_starts_its_actions_once_on_the_starter_or_at_the_first_ban() {
    let dir = TempDir::new("queue-deferred");
    let events = Recorder::default();
    let idle = Duration::from_millis(100);

    // Nothing runs until the starter does, on the calling thread.
    let queue = BanQueue::deferred(
        "j",
        vec![Box::new(logging_action("a", &dir, &events, &[]))],
        events.sink(),
        idle,
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(lines(&dir).is_empty(), "{:?}", lines(&dir));
    queue.starter().start_here();
    assert_eq!(lines(&dir), ["a start"]);
    queue.starter().start_here();
    queue.ban(Ticket::new("192.0.2.1")).unwrap();
    assert!(queue.wait_idle(Duration::from_secs(10)));
    queue.stop(Vec::new());
    assert_eq!(lines(&dir), ["a start", "a ban 192.0.2.1", "a stop"]);

    // A ban before the starter's turn starts the actions on a worker; the starter then
    // finds nothing to do.
    let dir = TempDir::new("queue-deferred-ban");
    let queue = BanQueue::deferred(
        "j",
        vec![Box::new(logging_action("b", &dir, &events, &[]))],
        events.sink(),
        idle,
    );
    queue.ban(Ticket::new("192.0.2.2")).unwrap();
    assert!(queue.wait_idle(Duration::from_secs(10)));
    queue.starter().start_here();
    queue.stop(Vec::new());
    assert_eq!(lines(&dir), ["b start", "b ban 192.0.2.2", "b stop"]);
}

#[test]
fn a_stop_waits_for_the_starter_thread_that_holds_the_actions() {
    let (open, gate) = mpsc::channel();
    let action = Batches {
        gate,
        sizes: Arc::new(Mutex::new(Vec::new())),
    };
    let events = Recorder::default();
    let queue = BanQueue::deferred("j", vec![Box::new(action)], events.sink(), IDLE_END);
    let starter = queue.starter();
    let starting = std::thread::spawn(move || starter.start_here());
    // The starter is inside the action's start; the stop has to wait for it.
    std::thread::sleep(Duration::from_millis(100));
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        open.send(()).unwrap();
    });
    let asked = Instant::now();
    queue.stop(Vec::new());
    assert!(
        asked.elapsed() >= Duration::from_millis(250),
        "{:?}",
        asked.elapsed()
    );
    starting.join().unwrap();
    opener.join().unwrap();
}
