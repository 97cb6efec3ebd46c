//! `rampart server` end to end, on a copy of Debian's fail2ban tree: a log written by
//! the test, the stock sshd filter, an action of the test's own that records what it is
//! asked to do, a real SQLite database, the control socket driven by rampart's client
//! and by the unmodified `fail2ban-client` of the package.
//!
//! The firewall and mail scenarios with a real sshd live in the network-namespace tests;
//! this one checks the daemon's own logic: counting, banning, unbanning on time,
//! persistence across a SIGKILL, and that attacker text never reaches a shell.

// Test support code: a failed setup step should stop the test where it happened.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RAMPART: &str = env!("CARGO_BIN_EXE_rampart");

struct Env {
    dir: PathBuf,
    server: Option<Child>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    fn new(name: &str, bantime: u32) -> Env {
        Env::with_extra(name, bantime, "")
    }

    /// With more `jail.local` text after the `[sshd]` jail (`{d}` is the test's dir).
    fn with_extra(name: &str, bantime: u32, extra: &str) -> Env {
        let dir =
            std::env::temp_dir().join(format!("rampart-server-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let conf = dir.join("conf");
        support::copy_tree(&rampart_reference::fail2ban().config_dir(), &conf);
        let d = dir.display();
        std::fs::write(
            conf.join("action.d/record.conf"),
            format!(
                "[Definition]\n\
                 actionstart = echo start >> {d}/actions\n\
                 actionstop = echo stop >> {d}/actions\n\
                 actionban = echo \"ban <ip> <failures> user=<F-USER>\" >> {d}/actions\n\
                 actionunban = echo \"unban <ip>\" >> {d}/actions\n"
            ),
        )
        .unwrap();
        std::fs::write(
            conf.join("fail2ban.local"),
            format!("[Definition]\ndbfile = {d}/db.sqlite3\nsocket = {d}/sock\npidfile = {d}/pid\nlogtarget = {d}/log\n"),
        )
        .unwrap();
        std::fs::write(
            conf.join("jail.local"),
            format!(
                "[sshd]\nenabled = true\nlogpath = {d}/auth.log\nmaxretry = 5\nfindtime = 600\n\
                 bantime = {bantime}\naction = record\n{}",
                extra.replace("{d}", &d.to_string())
            ),
        )
        .unwrap();
        std::fs::write(dir.join("auth.log"), "").unwrap();
        Env { dir, server: None }
    }

    fn start(&mut self) {
        let child = Command::new(RAMPART)
            .args(["server", "-f", "-c"])
            .arg(self.dir.join("conf"))
            .stdin(Stdio::null())
            .spawn()
            .expect("rampart server starts");
        self.server = Some(child);
        let before = self.log().matches("Server ready").count();
        self.wait_for(
            |e| e.log().matches("Server ready").count() > before,
            "the server to be ready",
        );
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn stop(&mut self) {
        let out = self.client(&["stop"]);
        assert!(out.contains("Shutdown successful"), "{out}");
        if let Some(mut child) = self.server.take() {
            let status = child.wait().unwrap();
            assert!(status.success(), "server exit: {status}");
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn actions(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("actions"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn failed_login(&self, ip: &str, user: &str) {
        self.failed_login_in("auth.log", ip, user);
    }

    fn failed_login_in(&self, file: &str, ip: &str, user: &str) {
        use std::io::Write;
        // A syslog date of now, as sshd would write it.
        let date = Command::new("date")
            .arg("+%b %e %H:%M:%S")
            .output()
            .unwrap();
        let date = String::from_utf8_lossy(&date.stdout).trim().to_string();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join(file))
            .unwrap();
        writeln!(
            f,
            "{date} host sshd[4242]: Failed password for invalid user {user} from {ip} port 50022 ssh2"
        )
        .unwrap();
    }

    fn wait_for(&self, cond: impl Fn(&Env) -> bool, what: &str) {
        let waited = Duration::from_secs(20);
        if !support::poll_until(waited, Duration::from_millis(20), || cond(self)) {
            panic!("timed out waiting for {what}; log:\n{}", self.log());
        }
    }

    fn client(&self, args: &[&str]) -> String {
        let out = Command::new(RAMPART)
            .arg("-s")
            .arg(self.dir.join("sock"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    fn fail2ban_client(&self, args: &[&str]) -> String {
        let reference = rampart_reference::fail2ban();
        let out = reference
            .script("fail2ban-client")
            .expect("python3 runs the reference client")
            .arg("-c")
            .arg(self.dir.join("conf"))
            .arg("-s")
            .arg(self.dir.join("sock"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "fail2ban-client {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn bans_at_maxretry_unbans_on_time_and_survives_a_kill() {
    let mut env = Env::new("ban", 6);
    env.start();
    let hostile = "$(touch${IFS}PWNED)`touch${IFS}PWNED2`";
    for _ in 0..4 {
        env.failed_login("192.0.2.7", hostile);
    }
    env.wait_for(
        |e| e.log().matches("Found 192.0.2.7").count() == 4,
        "four failures",
    );
    assert!(
        !env.log().contains("Ban 192.0.2.7"),
        "banned too early:\n{}",
        env.log()
    );
    let status = env.client(&["status", "sshd"]);
    assert!(status.contains("Currently failed:\t1"), "{status}");
    assert!(status.contains("Currently banned:\t0"), "{status}");

    env.failed_login("192.0.2.7", hostile);
    env.wait_for(
        |e| e.actions().iter().any(|a| a.starts_with("ban 192.0.2.7 5")),
        "the ban action",
    );
    assert!(
        env.log().contains("NOTICE  [sshd] Ban 192.0.2.7"),
        "{}",
        env.log()
    );
    // The user name came from the log: it is data for the action, never shell text.
    let ban_line = env
        .actions()
        .into_iter()
        .find(|a| a.starts_with("ban "))
        .unwrap();
    assert_eq!(ban_line, format!("ban 192.0.2.7 5 user={hostile}"));
    assert!(!env.dir.join("PWNED").exists() && !Path::new("PWNED").exists());
    assert!(!env.dir.join("PWNED2").exists() && !Path::new("PWNED2").exists());

    let status = env.fail2ban_client(&["status", "sshd"]);
    assert!(status.contains("Status for the jail: sshd"), "{status}");
    assert!(status.contains("Currently banned:\t1"), "{status}");
    assert!(status.contains("Banned IP list:\t192.0.2.7"), "{status}");
    assert!(
        env.fail2ban_client(&["status"])
            .contains("Jail list:\tsshd")
    );

    // SIGKILL: no stop action, no cleanup. The ban comes back from the database, once.
    env.kill();
    let before = env.actions().len();
    env.start();
    env.wait_for(
        |e| e.actions().len() >= before + 2,
        "start and restored ban",
    );
    let after: Vec<String> = env.actions()[before..].to_vec();
    assert_eq!(after[0], "start");
    assert_eq!(
        after
            .iter()
            .filter(|a| a.starts_with("ban 192.0.2.7"))
            .count(),
        1,
        "{after:?}"
    );
    assert!(env.log().contains("Restore Ban 192.0.2.7"));
    // The lines read before the kill are not read again.
    assert_eq!(
        env.log().matches("Found 192.0.2.7").count(),
        5,
        "{}",
        env.log()
    );

    env.wait_for(
        |e| e.actions().iter().any(|a| a == "unban 192.0.2.7"),
        "the unban after bantime",
    );
    assert!(
        env.client(&["status", "sshd"])
            .contains("Currently banned:\t0")
    );
    env.stop();
    assert_eq!(env.actions().last().map(String::as_str), Some("stop"));

    // Expired bans are not restored.
    env.start();
    std::thread::sleep(Duration::from_millis(300));
    let status = env.client(&["status", "sshd"]);
    assert!(
        status.contains("Currently banned:\t0"),
        "{status}\n{}",
        env.log()
    );
    env.stop();
}

#[test]
fn control_commands_ban_and_unban_by_hand() {
    let mut env = Env::new("manual", 600);
    env.start();
    let out = env.client(&["set", "sshd", "banip", "198.51.100.9", "2001:db8::1"]);
    assert_eq!(out.trim(), "2", "{out}");
    env.wait_for(
        |e| e.actions().iter().filter(|a| a.starts_with("ban ")).count() == 2,
        "two bans",
    );
    let banned = env.client(&["banned"]);
    assert!(
        banned.contains("198.51.100.9") && banned.contains("2001:db8::1"),
        "{banned}"
    );
    assert_eq!(env.client(&["unban", "2001:db8::1"]).trim(), "1");
    env.wait_for(
        |e| e.actions().iter().any(|a| a == "unban 2001:db8::1"),
        "the unban",
    );
    assert!(
        env.client(&["status", "nosuchjail"])
            .contains("does not exist")
    );
    assert!(env.client(&["frobnicate"]).contains("Invalid command"));
    assert_eq!(env.client(&["set", "sshd", "maxretry", "7"]).trim(), "7");
    assert_eq!(env.client(&["get", "sshd", "maxretry"]).trim(), "7");
    assert_eq!(env.client(&["set", "sshd", "bantime", "1h"]).trim(), "3600");
    assert_eq!(env.client(&["get", "sshd", "bantime"]).trim(), "3600");
    assert_eq!(
        env.fail2ban_client(&["get", "sshd", "findtime"]).trim(),
        "600"
    );

    // A jail stopped and started again over the socket keeps its bans (the store).
    env.client(&["stop", "sshd"]);
    assert!(env.client(&["status", "sshd"]).contains("does not exist"));
    assert!(env.client(&["status"]).contains("Number of jail:\t0"));
    env.client(&["start", "sshd"]);
    let status = env.client(&["status", "sshd"]);
    assert!(status.contains("198.51.100.9"), "{status}");
    // Reloaded with --unban, it starts without them.
    env.fail2ban_client(&["reload", "--unban", "sshd"]);
    let status = env.client(&["status", "sshd"]);
    assert!(status.contains("Currently banned:\t0"), "{status}");
    env.stop();
}

#[test]
fn a_hanging_action_delays_neither_other_jails_nor_its_own_log() {
    let extra = "[slow]\nenabled = true\nfilter = sshd\nlogpath = {d}/slow.log\nmaxretry = 1\n\
                 action = sleepy\n";
    let mut env = Env::with_extra("slow", 600, extra);
    let d = env.dir.display().to_string();
    std::fs::write(
        env.dir.join("conf/action.d/sleepy.conf"),
        format!(
            "[Definition]\nactionban = echo slow-ban-begins >> {d}/actions; sleep 60\n\
             actionunban = true\n[Init]\ntimeout = 120\n"
        ),
    )
    .unwrap();
    std::fs::write(env.dir.join("slow.log"), "").unwrap();
    env.start();
    env.failed_login_in("slow.log", "203.0.113.50", "x");
    env.wait_for(
        |e| e.actions().iter().any(|a| a == "slow-ban-begins"),
        "the slow jail's ban action to hang",
    );
    // Its own log goes on being read while its action hangs...
    env.failed_login_in("slow.log", "203.0.113.51", "y");
    env.wait_for(
        |e| e.log().contains("[slow] Ban 203.0.113.51"),
        "the slow jail's next ban",
    );
    // ...and another jail bans at once.
    let started = Instant::now();
    for _ in 0..5 {
        env.failed_login("192.0.2.99", "z");
    }
    env.wait_for(
        |e| e.actions().iter().any(|a| a.starts_with("ban 192.0.2.99")),
        "the other jail's ban",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    env.kill();
}

#[test]
fn old_lines_in_the_log_at_start_count_for_nothing() {
    let mut env = Env::new("old", 600);
    let old = Command::new("date")
        .args(["-d", "2 days ago", "+%b %e %H:%M:%S"])
        .output()
        .unwrap();
    let old = String::from_utf8_lossy(&old.stdout).trim().to_string();
    let lines: String = (0..8)
        .map(|i| {
            format!(
                "{old} host sshd[77{i}]: Failed password for invalid user old from 192.0.2.50 port 4{i} ssh2\n"
            )
        })
        .collect();
    std::fs::write(env.dir.join("auth.log"), lines).unwrap();
    env.start();
    env.failed_login("192.0.2.51", "new");
    env.wait_for(|e| e.log().contains("Found 192.0.2.51"), "the new failure");
    let status = env.client(&["status", "sshd"]);
    assert!(status.contains("Total failed:\t1"), "{status}");
    assert!(status.contains("Currently banned:\t0"), "{status}");
    assert!(!env.log().contains("192.0.2.50"), "{}", env.log());
    // As fail2ban does at start, the old part is skipped by bisection, not read.
    assert!(
        env.log().contains("older than the find time"),
        "{}",
        env.log()
    );
    env.stop();
}

#[test]
fn a_broken_jail_is_reported_and_the_others_run() {
    let extra = "[broken]\nenabled = true\nfilter = broken-filter\nlogpath = {d}/auth.log\n\
                 action = record\n\
                 [nofilter]\nenabled = true\nfilter = no-such-filter\nlogpath = {d}/auth.log\n";
    let mut env = Env::with_extra("broken", 600, extra);
    std::fs::write(
        env.dir.join("conf/filter.d/broken-filter.conf"),
        "[Definition]\nfailregex = ^Failed (unclosed from <HOST>\n",
    )
    .unwrap();
    env.start();
    let log = env.log();
    assert!(log.contains("Jail \"broken\" is skipped"), "{log}");
    assert!(log.contains("nofilter"), "{log}");
    assert!(env.client(&["status"]).contains("Jail list:\tsshd"));
    for _ in 0..5 {
        env.failed_login("192.0.2.77", "u");
    }
    env.wait_for(
        |e| e.actions().iter().any(|a| a.starts_with("ban 192.0.2.77")),
        "the healthy jail's ban",
    );
    env.stop();
}
