//! The control socket's `get`/`set` of a running jail, against a running `rampart
//! server` on a copy of Debian's tree (stock sshd filter, a log the test writes, an
//! action of the test's own that records what it is asked to do): each change is
//! shown to take effect on the next log lines, and the replies are printed the same by
//! rampart's client and by the unmodified `fail2ban-client` of the package. Also: a
//! failing action is retried after actioncheck/actionrepair with the ban kept, and
//! garbage on the socket gets an error reply while the server carries on.

// Test support code: a failed setup step should stop the test where it happened.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const RAMPART: &str = env!("CARGO_BIN_EXE_rampart");

struct Env {
    dir: PathBuf,
    server: Option<Child>,
    /// Servers this test started itself (others come from `restart`).
    spawned: Vec<u32>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A server that `restart` started in the background is known by its pid file.
        if let Some(pid) = std::fs::read_to_string(self.dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .filter(|pid| !self.spawned.contains(pid))
        {
            let _ = Command::new("kill")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    /// `action` is the jail's `action.d/test.conf` body (`{d}` is the test's dir).
    fn start(name: &str, action: &str) -> Env {
        let dir =
            std::env::temp_dir().join(format!("rampart-control-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let conf = dir.join("conf");
        support::copy_tree(&rampart_reference::fail2ban().config_dir(), &conf);
        let d = dir.display().to_string();
        std::fs::write(
            conf.join("action.d/test.conf"),
            format!("[Definition]\n{}", action.replace("{d}", &d)),
        )
        .unwrap();
        std::fs::write(
            conf.join("fail2ban.local"),
            format!(
                "[Definition]\ndbfile = {d}/db.sqlite3\nsocket = {d}/sock\npidfile = {d}/pid\n\
                 logtarget = {d}/log\n"
            ),
        )
        .unwrap();
        std::fs::write(
            conf.join("jail.local"),
            format!(
                "[sshd]\nenabled = true\nlogpath = {d}/auth.log\nmaxretry = 5\nfindtime = 600\n\
                 bantime = 600\nignoreself = false\naction = test\n\
                 bantime.maxtime = 5w\nbantime.factor = 2\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("auth.log"), "").unwrap();
        let mut env = Env {
            dir,
            server: None,
            spawned: Vec::new(),
        };
        env.spawn();
        env
    }

    fn spawn(&mut self) {
        let before = self.log().matches("Server ready").count();
        let server = Command::new(RAMPART)
            .args(["server", "-f", "-c"])
            .arg(self.dir.join("conf"))
            .stdin(Stdio::null())
            .spawn()
            .expect("rampart server starts");
        self.spawned.push(server.id());
        self.server = Some(server);
        self.wait_for(
            |e| e.log().matches("Server ready").count() > before,
            "the server",
        );
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn stop(&mut self) {
        assert!(self.ok(&["stop"]).contains("Shutdown successful"));
        if let Some(mut child) = self.server.take() {
            assert!(child.wait().unwrap().success());
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn actions(&self) -> String {
        std::fs::read_to_string(self.dir.join("actions")).unwrap_or_default()
    }

    /// Appends sshd failure lines for `ip`, dated now, to `file` in the test's dir.
    fn failures(&self, file: &str, ip: &str, n: usize) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join(file))
            .unwrap();
        for _ in 0..n {
            writeln!(
                f,
                "{} host sshd[4242]: Failed password for invalid user bob from {ip} port 50022 ssh2",
                now()
            )
            .unwrap();
        }
    }

    fn wait_for(&self, cond: impl Fn(&Env) -> bool, what: &str) {
        let waited = Duration::from_secs(30);
        if !support::poll_until(waited, Duration::from_millis(20), || cond(self)) {
            panic!("timed out waiting for {what}; log:\n{}", self.log());
        }
    }

    fn banned(&self, ip: &str) -> bool {
        self.log().contains(&format!("[sshd] Ban {ip}\n"))
    }

    /// rampart's client: (exit code, stdout, stderr).
    fn client(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(RAMPART)
            .arg("-s")
            .arg(self.dir.join("sock"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.client(args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    }

    /// The unmodified fail2ban-client's stdout (it must succeed).
    fn fail2ban_client(&self, args: &[&str]) -> String {
        let out = rampart_reference::fail2ban()
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

/// A syslog date of now, as sshd would write it.
fn now() -> String {
    let out = Command::new("date")
        .arg("+%b %e %H:%M:%S")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const RECORD: &str = "actionban = echo \"ban <ip> <failures>\" >> {d}/actions\n\
                      actionunban = echo \"unban <ip>\" >> {d}/actions\n";

#[test]
fn ignore_rules_change_at_run_time() {
    let env = Env::start("ignore", RECORD);
    let out = env.ok(&["set", "sshd", "addignoreip", "192.0.2.7", "198.51.100.0/24"]);
    assert!(
        out.contains("192.0.2.7") && out.contains("198.51.100.0/24"),
        "{out}"
    );
    env.failures("auth.log", "192.0.2.7", 5);
    env.failures("auth.log", "198.51.100.20", 5);
    env.wait_for(
        |e| e.log().matches("Ignore 198.51.100.20 by ip").count() == 5,
        "the network to be ignored",
    );
    assert_eq!(env.log().matches("Ignore 192.0.2.7 by ip").count(), 5);
    assert!(!env.banned("192.0.2.7") && !env.banned("198.51.100.20"));

    let out = env.ok(&["set", "sshd", "delignoreip", "192.0.2.7"]);
    assert!(
        !out.contains("192.0.2.7") && out.contains("198.51.100.0/24"),
        "{out}"
    );
    env.failures("auth.log", "192.0.2.7", 5);
    env.wait_for(|e| e.banned("192.0.2.7"), "the ban once no longer ignored");
    env.wait_for(
        |e| e.actions().contains("ban 192.0.2.7 5"),
        "the ban action",
    );

    // ignoreself and ignorecommand: loopback is ours; the command ignores 203.0.113.5.
    assert_eq!(
        env.ok(&["set", "sshd", "ignoreself", "true"]).trim(),
        "True"
    );
    let cmd = "test <ip> = 203.0.113.5";
    assert_eq!(env.ok(&["set", "sshd", "ignorecommand", cmd]).trim(), cmd);
    env.failures("auth.log", "127.0.0.1", 5);
    env.failures("auth.log", "203.0.113.5", 5);
    env.wait_for(
        |e| e.log().matches("Ignore 203.0.113.5 by command").count() == 5,
        "the ignore command",
    );
    env.wait_for(
        |e| e.log().matches("Ignore 127.0.0.1 by ignoreself").count() == 5,
        "ignoreself",
    );
    assert!(!env.banned("203.0.113.5") && !env.banned("127.0.0.1"));

    // The same replies, as both clients print them.
    for args in [
        &["get", "sshd", "ignoreip"][..],
        &["get", "sshd", "ignoreself"],
        &["get", "sshd", "ignorecommand"],
        &["get", "sshd", "banip", "--with-time"],
        &["status", "sshd", "short"],
    ] {
        assert_eq!(env.ok(args), env.fail2ban_client(args), "{args:?}");
    }
}

#[test]
fn filter_paths_and_idleness_change_at_run_time() {
    let env = Env::start("filter", RECORD);

    // A failregex added at run time finds failures in the next lines.
    let bad = env.client(&["set", "sshd", "addfailregex", "^knock (from <HOST>$"]);
    assert_ne!(bad.0, 0, "an uncompilable regex is refused: {bad:?}");
    let out = env.ok(&["set", "sshd", "addfailregex", "^knock knock from <HOST>$"]);
    assert!(out.contains("knock knock from <HOST>"), "{out}");
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(env.dir.join("auth.log"))
            .unwrap();
        for _ in 0..5 {
            writeln!(f, "{} host sshd[4242]: knock knock from 192.0.2.10", now()).unwrap();
        }
    }
    env.wait_for(|e| e.banned("192.0.2.10"), "a ban by the added failregex");
    let count = env.ok(&["get", "sshd", "failregex"]).lines().count();
    let last = env.ok(&["set", "sshd", "delfailregex", "-1"]);
    assert!(!last.contains("knock knock"), "{last}");
    assert!(last.lines().count() < count, "{last}");

    // A log path added at run time is read; a deleted one no longer is.
    std::fs::write(env.dir.join("second.log"), "").unwrap();
    let second = env.dir.join("second.log").display().to_string();
    let out = env.ok(&["set", "sshd", "addlogpath", &second]);
    assert!(
        out.contains("second.log") && out.contains("auth.log"),
        "{out}"
    );
    assert_eq!(
        env.ok(&["get", "sshd", "logpath"]),
        env.fail2ban_client(&["get", "sshd", "logpath"])
    );
    env.wait_for(
        |e| e.ok(&["status", "sshd"]).contains("second.log"),
        "the new file to be followed",
    );
    env.failures("second.log", "192.0.2.9", 5);
    env.wait_for(|e| e.banned("192.0.2.9"), "a ban from the added log");
    let out = env.ok(&["set", "sshd", "dellogpath", &second]);
    assert!(!out.contains("second.log"), "{out}");
    env.wait_for(
        |e| !e.ok(&["status", "sshd"]).contains("second.log"),
        "the file to be dropped",
    );
    env.failures("second.log", "192.0.2.19", 5);
    env.failures("auth.log", "192.0.2.20", 1);
    env.wait_for(
        |e| e.log().contains("Found 192.0.2.20"),
        "a line of auth.log",
    );
    assert!(!env.log().contains("Found 192.0.2.19"), "{}", env.log());

    // Idle: nothing is read meanwhile; afterwards the lines are, as in fail2ban.
    assert_eq!(env.ok(&["set", "sshd", "idle", "on"]).trim(), "True");
    env.failures("auth.log", "192.0.2.8", 5);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!env.log().contains("Found 192.0.2.8"), "{}", env.log());
    assert!(env.ok(&["status", "sshd"]).contains("Currently failed:\t1"));
    assert_ne!(env.client(&["set", "sshd", "idle", "maybe"]).0, 0);
    assert_eq!(env.ok(&["set", "sshd", "idle", "off"]).trim(), "False");
    env.wait_for(|e| e.banned("192.0.2.8"), "the lines written while idle");

    // maxlines, usedns, datepattern, logencoding: replies as fail2ban-client prints them.
    assert_eq!(env.ok(&["set", "sshd", "maxlines", "3"]).trim(), "3");
    assert_eq!(env.ok(&["set", "sshd", "usedns", "no"]).trim(), "no");
    assert!(
        env.ok(&["set", "sshd", "logencoding", "latin-1"])
            .ends_with("\nlatin-1\n")
    );
    assert_ne!(env.client(&["set", "sshd", "logencoding", "klingon"]).0, 0);
    for args in [
        &["get", "sshd", "maxlines"][..],
        &["get", "sshd", "usedns"],
        &["get", "sshd", "logencoding"],
        &["get", "sshd", "datepattern"],
        &["get", "sshd", "prefregex"],
        &["get", "sshd", "journalmatch"],
        &["get", "sshd", "actions"],
        &["get", "dbmaxmatches"],
    ] {
        assert_eq!(env.ok(args), env.fail2ban_client(args), "{args:?}");
    }
    // After the changes the filter still works (maxlines 3, latin-1).
    env.failures("auth.log", "192.0.2.30", 5);
    env.wait_for(|e| e.banned("192.0.2.30"), "a ban after the filter changes");

    // attempt: one failure per match line given.
    assert_eq!(
        env.ok(&[
            "set",
            "sshd",
            "attempt",
            "192.0.2.40",
            "a",
            "b",
            "c",
            "d",
            "e"
        ])
        .trim(),
        "1"
    );
    env.wait_for(|e| e.banned("192.0.2.40"), "a ban by attempt");
    env.wait_for(|e| e.actions().contains("ban 192.0.2.40"), "its action");
}

#[test]
fn jail_and_server_commands_answer_like_fail2ban() {
    let env = Env::start("server", RECORD);
    let (code, out, _) = env.client(&["add", "sshd"]);
    assert_ne!(code, 0);
    assert!(out.contains("The jail 'sshd' already exists"), "{out}");
    let (code, _, err) = env.client(&["del", "sshd"]);
    assert_ne!(code, 0, "{err}");
    let (code, _, err) = env.client(&["get", "sshd", "nonsense"]);
    assert_ne!(code, 0);
    assert!(err.contains("Invalid command"), "{err}");
    let (code, _, err) = env.client(&["set", "sshd", "nonsense", "1"]);
    assert_ne!(code, 0);
    assert!(err.contains("no set action"), "{err}");
    assert_eq!(
        env.ok(&["get", "sshd", "bantime.maxtime"]).trim(),
        "3024000"
    );
    assert_eq!(env.ok(&["get", "sshd", "bantime.factor"]).trim(), "2");
    assert_eq!(env.ok(&["get", "sshd", "bantime.increment"]).trim(), "None");
    assert_eq!(env.ok(&["set", "dbmaxmatches", "7"]).trim(), "7");
    assert!(env.ok(&["get", "dbmaxmatches"]).contains('7'));
    let (code, _, err) = env.client(&["set", "dbfile", "/elsewhere.sqlite3"]);
    assert_ne!(code, 0);
    assert!(err.contains("jails present"), "{err}");
    let props = env.ok(&["get", "sshd", "actionproperties", "test"]);
    assert!(
        props.contains("actionban") && props.contains("actionunban"),
        "{props}"
    );
    let ban = env.ok(&["get", "sshd", "action", "test", "actionban"]);
    assert!(ban.contains("echo \"ban <ip> <failures>\""), "{ban}");
    let (code, _, _) = env.client(&["get", "sshd", "action", "nosuch", "actionban"]);
    assert_ne!(code, 0);
    for args in [
        &["get", "sshd", "actionproperties", "test"][..],
        &["get", "sshd", "actionmethods", "test"],
        &["get", "sshd", "action", "test", "actionban"],
        &["get", "sshd", "action", "test", "timeout"],
        &["get", "sshd", "bantime.maxtime"],
        &["get", "sshd", "bantime.factor"],
        &["get", "sshd", "bantime.increment"],
        &["status", "sshd", "short"],
        &["status", "sshd", "basic"],
        &["status"],
        &["get", "syslogsocket"],
    ] {
        assert_eq!(env.ok(args), env.fail2ban_client(args), "{args:?}");
    }
    // reload --restart JAIL: the jail comes back with its bans.
    env.ok(&["set", "sshd", "banip", "192.0.2.50"]);
    // Unbanning an address that is not banned, with --report-absent: the others are
    // unbanned, the missing ones named together, as fail2ban words it.
    env.ok(&["set", "sshd", "banip", "192.0.2.52"]);
    let (code, out, err) = env.client(&[
        "set",
        "sshd",
        "unbanip",
        "--report-absent",
        "192.0.2.52",
        "192.0.2.53",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not banned: ['192.0.2.53']"), "{out}{err}");
    assert!(!env.ok(&["get", "sshd", "banip"]).contains("192.0.2.52"));
    // A jail command without its value is fail2ban's IndexError.
    let (code, out, _) = env.client(&["set", "sshd", "prefregex"]);
    assert_ne!(code, 0);
    assert!(out.contains("Sorry but the command is invalid"), "{out}");
    // A log file that does not exist is refused, as fail2ban does.
    let (code, out, _) = env.client(&["set", "sshd", "addlogpath", "/nonexistent/x.log"]);
    assert_ne!(code, 0);
    assert!(out.contains("No such file or directory"), "{out}");
    assert_eq!(env.ok(&["get", "sshd", "banned", "192.0.2.50"]).trim(), "1");
    for args in [
        &["get", "sshd", "banned", "192.0.2.50"][..],
        &["get", "sshd", "banned", "192.0.2.50", "192.0.2.51"],
        &["banned", "192.0.2.50"],
    ] {
        assert_eq!(env.ok(args), env.fail2ban_client(args), "{args:?}");
    }
    env.ok(&["reload", "--restart", "sshd"]);
    env.wait_for(
        |e| e.ok(&["get", "sshd", "banip"]).contains("192.0.2.50"),
        "the ban after the restart",
    );
}

#[test]
fn failing_action_is_retried_after_repair_and_the_ban_kept() {
    // actionban fails until actionrepair has run; actioncheck fails until then too.
    let action = "actioncheck = test -f {d}/repaired\n\
                  actionrepair = echo repair >> {d}/actions; touch {d}/repaired\n\
                  actionban = test -f {d}/repaired || exit 3\n\
                  \x20           echo \"ban <ip>\" >> {d}/actions\n\
                  actionunban = echo \"unban <ip>\" >> {d}/actions\n";
    let env = Env::start("repair", action);
    env.failures("auth.log", "192.0.2.60", 5);
    env.wait_for(
        |e| e.actions().contains("ban 192.0.2.60"),
        "the retried ban",
    );
    assert_eq!(env.actions(), "repair\nban 192.0.2.60\n");
    let log = env.log();
    assert!(log.contains("ban 192.0.2.60: command"), "{log}");
    assert!(log.contains('3'), "the exit status is logged: {log}");
    assert!(log.contains("invariant check failed"), "{log}");
    assert!(env.ok(&["get", "sshd", "banip"]).contains("192.0.2.60"));

    // An action that keeps failing: logged, and the ban stays in the jail and the store.
    std::fs::remove_file(env.dir.join("repaired")).unwrap();
    std::fs::write(
        env.dir.join("conf/action.d/test.local"),
        "[Definition]\nactionrepair = false\n",
    )
    .unwrap();
    env.ok(&["reload", "sshd"]);
    env.wait_for(
        |e| e.ok(&["get", "sshd", "banip"]).contains("192.0.2.60"),
        "the ban restored from the store",
    );
    env.failures("auth.log", "192.0.2.61", 5);
    env.wait_for(
        |e| e.log().contains("ban 192.0.2.61 failed"),
        "the failed ban to be reported",
    );
    assert!(env.ok(&["get", "sshd", "banip"]).contains("192.0.2.61"));
    let db = rusqlite_bans(&env.dir.join("db.sqlite3"));
    assert!(db.contains("192.0.2.61"), "{db}");
}

/// The ips of the store's `bans` table, read with the sqlite3 tool if there is one,
/// else through the server's restore (stop and start).
fn rusqlite_bans(db: &std::path::Path) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("select ip from bans")
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => std::fs::read(db)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
    }
}

#[test]
fn garbage_on_the_socket_gets_an_error_and_the_server_carries_on() {
    let env = Env::start("garbage", RECORD);
    let sock = env.dir.join("sock");
    for garbage in [
        &b"\x80\x04this is not a pickle<F2B_END_COMMAND>"[..],
        b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f]<F2B_END_COMMAND>",
        b"hello<F2B_END_COMMAND>",
    ] {
        let mut stream = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(garbage).unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        while !reply.ends_with(b"<F2B_END_COMMAND>") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
        }
        assert!(
            reply.ends_with(b"<F2B_END_COMMAND>"),
            "a reply to {garbage:?}: {reply:?}"
        );
        // (1, exception): a pickled tuple whose code is 1.
        assert!(
            reply.windows(2).any(|w| w == b"K\x01"),
            "an error reply: {reply:?}"
        );
    }
    assert_eq!(env.ok(&["ping"]).trim(), "Server replied: pong");
    env.failures("auth.log", "192.0.2.70", 5);
    env.wait_for(|e| e.banned("192.0.2.70"), "a ban after the garbage");
}

#[test]
fn a_killed_server_flushes_its_actions_before_restoring_bans() {
    let action = format!(
        "{RECORD}actionstart = echo start >> {{d}}/actions\n\
         actionflush = echo flush >> {{d}}/actions\n\
         actionstop = echo stop >> {{d}}/actions\n"
    );
    let mut env = Env::start("unclean", &action);
    env.failures("auth.log", "192.0.2.80", 5);
    env.wait_for(|e| e.actions().contains("ban 192.0.2.80"), "the ban");
    env.kill();
    std::fs::write(env.dir.join("actions"), "").unwrap();
    env.spawn();
    env.wait_for(
        |e| e.actions().contains("ban 192.0.2.80"),
        "the restored ban",
    );
    // What the killed server left is flushed once, before the ban comes back, once.
    assert_eq!(env.actions(), "start\nflush\nban 192.0.2.80 5\n");
    assert!(env.log().contains("did not stop cleanly"), "{}", env.log());

    // After a clean stop nothing is stale: no flush at start.
    env.stop();
    std::fs::write(env.dir.join("actions"), "").unwrap();
    env.spawn();
    env.wait_for(
        |e| e.actions().contains("ban 192.0.2.80"),
        "the restored ban",
    );
    assert_eq!(env.actions(), "start\nban 192.0.2.80 5\n");
}

#[test]
fn restart_and_reload_restart_bring_the_jails_back_with_their_bans() {
    let mut env = Env::start("restart", RECORD);
    env.ok(&["set", "sshd", "banip", "192.0.2.90"]);
    // reload --restart (every jail): the jail is rebuilt, its ban restored.
    assert_eq!(env.ok(&["reload", "--restart"]).trim(), "OK");
    env.wait_for(
        |e| e.log().matches("Jail 'sshd' started").count() == 2,
        "the jail to restart",
    );
    assert!(env.ok(&["get", "sshd", "banip"]).contains("192.0.2.90"));

    // restart: the server stops and a new one starts in the background.
    let old_pid = std::fs::read_to_string(env.dir.join("pid")).unwrap();
    let out = Command::new(RAMPART)
        .arg("-c")
        .arg(env.dir.join("conf"))
        .arg("-s")
        .arg(env.dir.join("sock"))
        .arg("restart")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Shutdown successful"), "{text}");
    if let Some(mut child) = env.server.take() {
        assert!(child.wait().unwrap().success());
    }
    env.wait_for(
        |e| {
            std::fs::read_to_string(e.dir.join("pid")).is_ok_and(|p| p != old_pid)
                && e.client(&["get", "sshd", "banip"]).1.contains("192.0.2.90")
        },
        "the new server with the ban",
    );
    // The new server waited for the old one to finish; nothing was taken for a crash.
    assert!(!env.log().contains("did not stop cleanly"), "{}", env.log());
}
