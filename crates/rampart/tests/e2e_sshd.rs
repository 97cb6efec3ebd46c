//! The classic scenario with real parts only: a real OpenSSH server in a network
//! namespace logs through a real rsyslogd, a real ssh client in a second namespace fails
//! to log in, `rampart server` (running inside the server's namespace, on a copy of
//! Debian's stock fail2ban tree) bans the client with the stock nftables action and mails
//! root through the local exim with the whois and log-line report.
//!
//! What is checked: four counted failures do not ban, the fifth does; the address is in
//! the namespace's nft set and the client's TCP connections to port 22 fail; the mail
//! arrives once with the address, the jail and the log lines; the unmodified
//! `fail2ban-client` of the package reports the ban; a SIGKILL of the daemon and a restart
//! restore the ban once; the ban ends by itself after bantime and port 22 answers again.
//! The same attack then comes from the client's IPv6 address (the action's own ip6 set).
//! A second run plays the whole scenario with Debian's `iptables-multiport` action
//! instead, where "banned" means a rule for the address in the jail's `f2b-sshd` chain of
//! `iptables -S` / `ip6tables -S` inside the server namespace. There the daemon is ended
//! with SIGTERM instead of SIGKILL before the restart: the stock iptables actionban
//! inserts a rule without checking for one (fail2ban does the same), so a rule left by a
//! SIGKILL would sit beside the restored one and outlive the unban.
//! Each login gives the stock filter two failures ("Invalid user", "Failed password"),
//! so two logins are four failures and the third login's first line is the fifth.
//!
//! Everything a run creates (two namespaces, a veth pair between them, the daemons, a
//! temporary directory, an empty `/dev/log` placeholder) is removed by a guard, also when
//! an assertion fails. The host's own firewall is never touched: every `nft`, `iptables`
//! and `ip6tables` runs inside the server namespace. The two runs go in parallel: each has
//! its own namespaces, subnets and directory, tells its mails apart by its addresses, and
//! the `/dev/log` placeholder stays until the last run using it ends. Needs root and the
//! packages openssh-server, sshpass, rsyslog, exim4-daemon-light, whois, nftables,
//! iptables and iproute2.

// Test support code: a failed setup step should stop the test where it happened.
#![allow(clippy::unwrap_used)]

use std::net::Ipv6Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const RAMPART: &str = env!("CARGO_BIN_EXE_rampart");
const BANTIME_SECS: u64 = 20;
/// Generous: the machine is shared and each failed ssh login takes about 2 s of PAM delay.
const PATIENCE: Duration = Duration::from_secs(60);
/// Debian routes root's mail to `mail` when root has no alias; `root` covers an alias.
const MAILBOXES: [&str; 2] = ["/var/mail/mail", "/var/mail/root"];

/// How many runs use `/dev/log` now, and whether a run created the placeholder: the last
/// run to end removes it, never while a parallel run's sshd still needs it.
static DEV_LOG: Mutex<(usize, bool)> = Mutex::new((0, false));

/// The stock ban action a run configures, and so where a ban shows in the firewall.
#[derive(Clone, Copy, Debug)]
enum Banaction {
    Nftables,
    Iptables,
}

impl Banaction {
    fn name(self) -> &'static str {
        match self {
            Banaction::Nftables => "nftables-multiport",
            Banaction::Iptables => "iptables-multiport",
        }
    }

    /// Sets the runs apart in namespace, interface and directory names and in subnets.
    fn index(self) -> u8 {
        match self {
            Banaction::Nftables => 0,
            Banaction::Iptables => 1,
        }
    }
}

/// The server's and the attacker's address in one family.
#[derive(Clone)]
struct Pair {
    server: String,
    attacker: String,
}

/// Owns everything the scenario creates; dropping it removes all of it.
struct Scenario {
    banaction: Banaction,
    dir: PathBuf,
    server_ns: String,
    attacker_ns: String,
    namespaces: Vec<String>,
    v4: Pair,
    v6: Pair,
    rsyslogd: Option<Child>,
    sshd: Option<Child>,
    rampart: Option<Child>,
    uses_dev_log: bool,
    /// Where each mailbox ended when the test began: only mail after that is ours.
    mailbox_starts: Vec<(PathBuf, u64)>,
}

impl Drop for Scenario {
    fn drop(&mut self) {
        for child in [self.rampart.take(), self.sshd.take(), self.rsyslogd.take()]
            .into_iter()
            .flatten()
        {
            kill_group(child);
        }
        for ns in &self.namespaces {
            // sshd's per-connection processes call setsid(), leaving the group; one whose
            // client was banned mid-login would wait for LoginGraceTime. Only processes
            // this test started live in its namespaces.
            kill_namespace_processes(ns);
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if self.uses_dev_log {
            let mut dev_log_state = DEV_LOG.lock().unwrap_or_else(PoisonError::into_inner);
            let (users, created) = &mut *dev_log_state;
            *users -= 1;
            if *users == 0 && *created {
                *created = false;
                // Only the empty placeholder a run made; a real socket stays untouched.
                let dev_log = Path::new("/dev/log");
                if let Ok(meta) = std::fs::symlink_metadata(dev_log)
                    && meta.is_file()
                    && meta.len() == 0
                {
                    let _ = std::fs::remove_file(dev_log);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every daemon is started as the leader of its own process group, so this also ends
/// the children it forked (sshd's per-connection processes, rampart's action shells).
fn kill_group(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn kill_namespace_processes(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = Command::new("kill")
            .args(["-KILL", pid])
            .stderr(Stdio::null())
            .status();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn require_tools(banaction: Banaction) {
    let id = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&id.stdout).trim(),
        "0",
        "this test needs root (network namespaces, nft, sshd, mail delivery); CI runs it as root"
    );
    for (tool, package) in [
        ("/usr/sbin/sshd", "openssh-server"),
        ("/usr/bin/sshpass", "sshpass"),
        ("/usr/sbin/rsyslogd", "rsyslog"),
        ("/usr/sbin/sendmail", "exim4-daemon-light"),
        ("/usr/bin/whois", "whois"),
        ("/usr/sbin/nft", "nftables"),
        ("/usr/bin/ssh", "openssh-client"),
    ] {
        assert!(
            Path::new(tool).exists(),
            "this test needs {tool}: apt-get install {package}"
        );
    }
    if let Banaction::Iptables = banaction {
        for tool in ["/usr/sbin/iptables", "/usr/sbin/ip6tables"] {
            assert!(
                Path::new(tool).exists(),
                "this test needs {tool}: apt-get install iptables"
            );
        }
    }
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ip(args: &[&str]) {
    run(
        Command::new("ip").args(args),
        &format!("ip {}", args.join(" ")),
    );
}

impl Scenario {
    fn new(banaction: Banaction) -> Scenario {
        require_tools(banaction);
        let pid = std::process::id();
        let run = banaction.index();
        let dir = std::env::temp_dir().join(format!("rampart-e2e-sshd-{pid}-{}", banaction.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A subnet per test process and run, so a mail of this run is told apart by its
        // addresses (198.18.0.0/15 and 2001:db8::/32 are for tests and documentation).
        let octet = pid % 250 + 1;
        let v4_net = format!("198.{}.{octet}", 18 + run);
        // Written the way the daemon and the firewall print it, so text searches match.
        let v6 = |host| Ipv6Addr::new(0x2001, 0xdb8, octet as u16, run.into(), 0, 0, 0, host);
        let mut scenario = Scenario {
            banaction,
            dir,
            server_ns: format!("rt-e2e-srv-{pid}-{run}"),
            attacker_ns: format!("rt-e2e-att-{pid}-{run}"),
            namespaces: Vec::new(),
            v4: Pair {
                server: format!("{v4_net}.1"),
                attacker: format!("{v4_net}.2"),
            },
            v6: Pair {
                server: v6(1).to_string(),
                attacker: v6(2).to_string(),
            },
            rsyslogd: None,
            sshd: None,
            rampart: None,
            uses_dev_log: false,
            mailbox_starts: MAILBOXES
                .iter()
                .map(|m| {
                    let len = std::fs::metadata(m).map(|m| m.len()).unwrap_or(0);
                    (PathBuf::from(m), len)
                })
                .collect(),
        };
        scenario.network(pid, run);
        scenario
    }

    fn network(&mut self, pid: u32, run: u8) {
        for ns in [self.server_ns.clone(), self.attacker_ns.clone()] {
            let out = Command::new("ip").args(["netns", "add", &ns]).output();
            match out {
                Ok(o) if o.status.success() => self.namespaces.push(ns),
                other => panic!("this test needs `ip netns add` (root, iproute2): {other:?}"),
            }
        }
        let (veth_s, veth_a) = (format!("e2s{pid}r{run}"), format!("e2a{pid}r{run}"));
        let (s, a) = (self.server_ns.clone(), self.attacker_ns.clone());
        ip(&[
            "link", "add", &veth_s, "netns", &s, "type", "veth", "peer", "name", &veth_a, "netns",
            &a,
        ]);
        for (ns, dev, v4, v6) in [
            (&s, &veth_s, &self.v4.server, &self.v6.server),
            (&a, &veth_a, &self.v4.attacker, &self.v6.attacker),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev]);
            // nodad: usable at once, no duplicate-address wait.
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
        }
        for (ns, dev) in [
            (&s, veth_s.as_str()),
            (&a, veth_a.as_str()),
            (&s, "lo"),
            (&a, "lo"),
        ] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
    }

    fn in_ns(&self, ns: &str, argv: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(argv);
        cmd
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn auth_log(&self) -> String {
        std::fs::read_to_string(self.path("auth.log")).unwrap_or_default()
    }

    fn rampart_log(&self) -> String {
        std::fs::read_to_string(self.path("rampart.log")).unwrap_or_default()
    }

    fn diagnostics(&self) -> String {
        let listing = |argv: &[&str]| {
            self.in_ns(&self.server_ns, argv)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let mut firewall = format!("--- nft ruleset:\n{}", listing(&["nft", "list", "ruleset"]));
        if let Banaction::Iptables = self.banaction {
            firewall += &format!(
                "--- iptables -S:\n{}--- ip6tables -S:\n{}",
                listing(&["iptables", "-w", "-S"]),
                listing(&["ip6tables", "-w", "-S"])
            );
        }
        format!(
            "--- auth.log:\n{}\n--- rampart log:\n{}\n{firewall}",
            self.auth_log(),
            self.rampart_log()
        )
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&Scenario) -> bool) -> Duration {
        let started = Instant::now();
        while started.elapsed() < PATIENCE {
            if cond(self) {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}\n{}", self.diagnostics());
    }

    /// Waits until `cond` has held at every poll for `hold`: after an unclean stop the
    /// new server first flushes what the old one left in the firewall and then restores
    /// the bans, so a ban seen at once may be the old server's, about to be flushed.
    fn wait_steady(&self, what: &str, hold: Duration, cond: impl Fn(&Scenario) -> bool) {
        let started = Instant::now();
        let mut since: Option<Instant> = None;
        while started.elapsed() < PATIENCE {
            if cond(self) {
                let first = *since.get_or_insert_with(Instant::now);
                if first.elapsed() >= hold {
                    return;
                }
            } else {
                since = None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}\n{}", self.diagnostics());
    }

    /// rsyslogd with only a private log socket and one file in the traditional format.
    fn start_syslog(&mut self) {
        let conf = self.path("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "module(load=\"imuxsock\" SysSock.Name=\"{sock}\")\n\
                 *.* action(type=\"omfile\" file=\"{log}\" template=\"RSYSLOG_TraditionalFileFormat\")\n",
                sock = self.path("log.sock").display(),
                log = self.path("auth.log").display(),
            ),
        )
        .unwrap();
        let child = self
            .in_ns(&self.server_ns, &["/usr/sbin/rsyslogd", "-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(self.path("rsyslogd.pid"))
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .expect("rsyslogd starts");
        self.rsyslogd = Some(child);
        self.wait_for("rsyslogd's socket", |s| s.path("log.sock").exists());
    }

    /// sshd with its own key and config, in its own mount namespace where `/dev/log` is
    /// rsyslogd's private socket (glibc's syslog() only knows that path).
    fn start_sshd(&mut self) {
        std::fs::create_dir_all("/run/sshd").unwrap();
        let key = self.path("ssh_host_ed25519_key");
        run(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key),
            "ssh-keygen for the host key",
        );
        let conf = self.path("sshd_config");
        std::fs::write(
            &conf,
            format!(
                "ListenAddress {}\nListenAddress {}\nPort 22\nHostKey {}\nPidFile {}\n\
                 PasswordAuthentication yes\nUsePAM yes\nSyslogFacility AUTH\nLogLevel INFO\n",
                self.v4.server,
                self.v6.server,
                key.display(),
                self.path("sshd.pid").display()
            ),
        )
        .unwrap();
        run(
            Command::new("/usr/sbin/sshd")
                .arg("-t")
                .arg("-f")
                .arg(&conf),
            "sshd -t (configuration check)",
        );
        // The bind mount needs a file to mount over; it is created here, outside any
        // private namespace, so the guard can remove it.
        {
            let mut dev_log_state = DEV_LOG.lock().unwrap_or_else(PoisonError::into_inner);
            let (users, created) = &mut *dev_log_state;
            if std::fs::symlink_metadata("/dev/log").is_err() {
                std::fs::write("/dev/log", "").unwrap();
                *created = true;
            }
            *users += 1;
            self.uses_dev_log = true;
        }
        let script = format!(
            "mount --bind '{}' /dev/log && exec /usr/sbin/sshd -D -f '{}'",
            self.path("log.sock").display(),
            conf.display()
        );
        let child = self
            .in_ns(&self.server_ns, &["unshare", "-m", "sh", "-c", &script])
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .expect("sshd starts");
        self.sshd = Some(child);
        for address in [&self.v4.server, &self.v6.server] {
            let listening = format!("Server listening on {address} port 22");
            self.wait_for("sshd listening (logged through rsyslogd)", |s| {
                s.auth_log().contains(&listening)
            });
        }
    }

    /// A copy of Debian's stock tree with the jail turned on the way an admin would.
    fn write_config(&self) {
        let conf = self.path("conf");
        copy_tree(&rampart_reference::fail2ban().config_dir(), &conf);
        let d = self.dir.display();
        std::fs::write(
            conf.join("fail2ban.local"),
            format!(
                "[Definition]\ndbfile = {d}/db.sqlite3\nsocket = {d}/sock\npidfile = {d}/pid\n\
                 logtarget = {d}/rampart.log\n"
            ),
        )
        .unwrap();
        std::fs::write(
            conf.join("jail.local"),
            format!(
                "[sshd]\nenabled = true\nlogpath = {d}/auth.log\nmaxretry = 5\nfindtime = 600\n\
                 bantime = {BANTIME_SECS}\nbanaction = {banaction}\n\
                 action = %(action_mwl)s\ndestemail = root@localhost\n",
                banaction = self.banaction.name()
            ),
        )
        .unwrap();
    }

    fn start_rampart(&mut self) {
        let before = self.rampart_log().matches("Server ready").count();
        let conf = self.path("conf");
        let child = self
            .in_ns(&self.server_ns, &[RAMPART, "server", "-f", "-c"])
            .arg(&conf)
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .expect("rampart server starts");
        self.rampart = Some(child);
        self.wait_for("rampart to be ready", |s| {
            s.rampart_log().matches("Server ready").count() > before
        });
    }

    /// SIGKILL: no stop actions run, the firewall and the database stay as they were.
    fn kill_rampart(&mut self) {
        if let Some(mut child) = self.rampart.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM: the daemon runs its stop actions and exits; the bans stay in the database.
    fn terminate_rampart(&mut self) {
        let Some(child) = self.rampart.as_mut() else {
            return;
        };
        run(
            Command::new("kill").args(["-TERM", &child.id().to_string()]),
            "kill -TERM rampart",
        );
        // The child stays with the guard while it winds down, so a hang is still killed.
        self.wait_for("rampart to exit on SIGTERM", |s| {
            s.rampart_log().contains("Exiting rampart")
        });
        let mut child = self.rampart.take().unwrap();
        child.wait().unwrap();
    }

    /// Ends the daemon while `pair.attacker` is banned, the harshest way the action lets
    /// the restore be counted exactly; returns how it was ended.
    fn stop_while_banned(&mut self, pair: &Pair) -> &'static str {
        match self.banaction {
            // The set element stays; the restore adds it again, and a set holds it once.
            Banaction::Nftables => {
                self.kill_rampart();
                "killed with SIGKILL"
            }
            // After a SIGKILL the stale rule would stay beside the restored one (the stock
            // actionban inserts without checking, as in fail2ban) and outlive the unban;
            // a clean stop removes the chain, so the restored ban is the only rule.
            Banaction::Iptables => {
                self.terminate_rampart();
                assert_eq!(
                    self.in_firewall(&pair.attacker),
                    0,
                    "the stop actions should remove the ban from the chain\n{}",
                    self.diagnostics()
                );
                "stopped with SIGTERM"
            }
        }
    }

    /// An ssh client in the attacker namespace trying one wrong password.
    fn ssh_client(&self, pair: &Pair) -> Command {
        let mut cmd = self.in_ns(
            &self.attacker_ns,
            &[
                "timeout",
                "60",
                "sshpass",
                "-p",
                "wrong",
                "ssh",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=30",
                &format!("baduser@{}", pair.server),
                "true",
            ],
        );
        cmd.stdin(Stdio::null());
        cmd
    }

    /// One failed password login; returns once sshd has logged its failed password.
    fn failed_login(&self, pair: &Pair) {
        let failed = format!(
            "Failed password for invalid user baduser from {} ",
            pair.attacker
        );
        let logged = |s: &Scenario| s.auth_log().matches(&failed).count();
        let before = logged(self);
        let out = self.ssh_client(pair).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Permission denied"),
            "the ssh login should be refused by sshd, got {}: {stderr}\n{}",
            out.status,
            self.diagnostics()
        );
        // sshd logs the failure before it answers the client, so this comes quickly.
        self.wait_for("sshd to log the failed password", |s| logged(s) > before);
    }

    /// How many of the log's lines the stock sshd filter counts as failures of
    /// `address`, as `rampart regex` reads the file (lets the test wait until the daemon
    /// has seen everything instead of sleeping).
    fn failures_in_log(&self, address: &str) -> usize {
        let filter = self.path("conf/filter.d/sshd.conf");
        let out = run(
            Command::new(RAMPART)
                .args(["regex", "-o", "ip"])
                .arg(self.path("auth.log"))
                .arg(&filter),
            "rampart regex on the sshd log",
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.trim() == address)
            .count()
    }

    fn found_by_daemon(&self, address: &str) -> usize {
        self.rampart_log()
            .matches(&format!("Found {address}"))
            .count()
    }

    /// How often `address` is banned in the server's firewall: as an element of the nft
    /// ruleset (the nftables action's sets), or as the source of a rule in the jail's
    /// chain (the iptables action; `-s` shows it with its prefix length).
    fn in_firewall(&self, address: &str) -> usize {
        let text = match self.banaction {
            Banaction::Nftables => {
                let out = run(
                    &mut self.in_ns(&self.server_ns, &["nft", "list", "ruleset"]),
                    "nft list ruleset in the server namespace",
                );
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
            Banaction::Iptables => {
                let tool = if address.contains(':') {
                    "ip6tables"
                } else {
                    "iptables"
                };
                let out = run(
                    &mut self.in_ns(&self.server_ns, &[tool, "-w", "-S"]),
                    &format!("{tool} -S in the server namespace"),
                );
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|rule| rule.starts_with("-A f2b-sshd "))
                    .map(|rule| format!("{rule}\n"))
                    .collect()
            }
        };
        text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
            .filter(|word| *word == address)
            .count()
    }

    /// Whether a TCP connection from the attacker to the server's port 22 opens.
    fn port_22_open(&self, pair: &Pair) -> bool {
        let script = format!("exec 3<>/dev/tcp/{}/22", pair.server);
        self.in_ns(&self.attacker_ns, &["timeout", "3", "bash", "-c", &script])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// The mails delivered since the test began, one string per message.
    fn new_mails(&self) -> Vec<String> {
        let mut mails = Vec::new();
        for (path, start) in &self.mailbox_starts {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            // A mailbox that shrank was rewritten by someone else: read all of it.
            let from = if (bytes.len() as u64) < *start {
                0
            } else {
                *start as usize
            };
            let text = String::from_utf8_lossy(&bytes[from..]).into_owned();
            for message in text.split("\nFrom ") {
                if !message.trim().is_empty() {
                    mails.push(message.to_string());
                }
            }
        }
        mails
    }

    fn ban_mails(&self, address: &str) -> Vec<String> {
        let subject = format!("[Fail2Ban] sshd: banned {address} ");
        self.new_mails()
            .into_iter()
            .filter(|m| m.contains(&subject))
            .collect()
    }

    fn fail2ban_client_status(&self) -> String {
        let reference = rampart_reference::fail2ban();
        let out = run(
            reference
                .script("fail2ban-client")
                .expect("python3 runs the reference client")
                .arg("-c")
                .arg(self.path("conf"))
                .arg("-s")
                .arg(self.path("sock"))
                .args(["status", "sshd"]),
            "fail2ban-client status sshd",
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Failed logins from `pair.attacker` until the stock filter counts exactly four failures
/// of it, and the daemon has counted them too. Returns the number of logins.
fn four_failures(s: &Scenario, pair: &Pair) -> usize {
    let mut logins = 0;
    while s.failures_in_log(&pair.attacker) < 4 {
        s.failed_login(pair);
        logins += 1;
        assert!(
            logins <= 4,
            "four logins gave fewer than four failures\n{}",
            s.diagnostics()
        );
    }
    // Each login gives the stock filter an "Invalid user" and a "Failed password" line:
    // two logins are four failures. Anything else would skip the count of four.
    assert_eq!(
        s.failures_in_log(&pair.attacker),
        4,
        "the logins should stop exactly at four failures\n{}",
        s.diagnostics()
    );
    s.wait_for("the daemon to count four failures", |s| {
        s.found_by_daemon(&pair.attacker) == 4
    });
    assert!(
        !s.rampart_log().contains(&format!("Ban {}", pair.attacker)),
        "banned before maxretry\n{}",
        s.diagnostics()
    );
    assert_eq!(
        s.in_firewall(&pair.attacker),
        0,
        "in the firewall before maxretry\n{}",
        s.diagnostics()
    );
    assert!(s.port_22_open(pair), "port 22 closed before the ban");
    logins
}

/// The fifth failure bans: the address lands in the firewall and port 22 closes for it.
/// Returns how long the ban took from the login's start and when it was seen.
fn fifth_failure_bans(s: &Scenario, pair: &Pair) -> (Duration, Instant) {
    // This login's first line is already the fifth failure: its connection may hang
    // once the ban drops its packets, so it runs on the side and is ended afterwards.
    let client = s
        .ssh_client(pair)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let waited = s.wait_for("the address in the firewall", |s| {
        s.in_firewall(&pair.attacker) == 1
    });
    let banned_at = Instant::now();
    kill_group(client);
    assert!(
        s.rampart_log()
            .contains(&format!("NOTICE  [sshd] Ban {}", pair.attacker)),
        "{}",
        s.diagnostics()
    );
    assert!(
        !s.port_22_open(pair),
        "port 22 still open for {} while banned\n{}",
        pair.attacker,
        s.diagnostics()
    );
    (waited, banned_at)
}

/// The report mail of the ban: whois has no network and fails fast, the mail still goes
/// out with the address, the jail and the attacker's log lines.
fn check_ban_mail(s: &Scenario, pair: &Pair, banned_at: Instant) {
    s.wait_for("the ban mail", |s| !s.ban_mails(&pair.attacker).is_empty());
    // A whois waiting on an unreachable server would hold the mail back for minutes.
    assert!(
        banned_at.elapsed() < Duration::from_secs(20),
        "the mail took {:?} after the ban",
        banned_at.elapsed()
    );
    let mail = s.ban_mails(&pair.attacker).remove(0);
    assert!(mail.contains("To: root@localhost"), "{mail}");
    assert!(
        mail.contains(&format!("The IP {} has just been banned", pair.attacker)),
        "{mail}"
    );
    assert!(mail.contains("attempts against sshd"), "{mail}");
    assert!(
        mail.contains(&format!(
            "Failed password for invalid user baduser from {}",
            pair.attacker
        )),
        "the log lines are missing from the mail:\n{mail}"
    );
}

/// The ban ends by itself after bantime (counted from the failure's log time, which has
/// whole seconds, hence the slack) and port 22 answers again.
fn unbanned_on_time(s: &Scenario, pair: &Pair, banned_at: Instant) {
    s.wait_for("the unban after bantime", |s| {
        s.in_firewall(&pair.attacker) == 0
    });
    let lasted = banned_at.elapsed();
    assert!(
        lasted >= Duration::from_secs(BANTIME_SECS - 2),
        "{} unbanned after {lasted:?}, bantime is {BANTIME_SECS} s\n{}",
        pair.attacker,
        s.diagnostics()
    );
    assert!(
        s.rampart_log()
            .contains(&format!("NOTICE  [sshd] Unban {}", pair.attacker)),
        "{}",
        s.diagnostics()
    );
    assert!(
        s.port_22_open(pair),
        "port 22 still closed for {} after the unban\n{}",
        pair.attacker,
        s.diagnostics()
    );
}

#[test]
fn a_real_sshd_attack_is_banned_by_nftables_and_mailed() {
    attack_is_banned_and_mailed(Banaction::Nftables);
}

#[test]
fn a_real_sshd_attack_is_banned_by_iptables_and_mailed() {
    attack_is_banned_and_mailed(Banaction::Iptables);
}

/// The whole scenario with one stock ban action, over IPv4 and then IPv6.
fn attack_is_banned_and_mailed(banaction: Banaction) {
    let started = Instant::now();
    let name = banaction.name();
    let lap = |what: &str| eprintln!("[{name} {:6.1} s] {what}", started.elapsed().as_secs_f64());
    let mut s = Scenario::new(banaction);
    s.start_syslog();
    s.start_sshd();
    s.write_config();
    s.start_rampart();
    let (v4, v6) = (s.v4.clone(), s.v6.clone());
    lap("namespaces, rsyslogd, sshd and rampart up");
    assert!(
        s.port_22_open(&v4) && s.port_22_open(&v6),
        "port 22 closed before any ban\n{}",
        s.diagnostics()
    );

    let logins = four_failures(&s, &v4);
    lap(&format!(
        "IPv4: {logins} logins, 4 failures counted, no ban"
    ));
    let (waited, v4_banned_at) = fifth_failure_bans(&s, &v4);
    lap(&format!(
        "IPv4: banned at the fifth failure ({:.1} s from the login to the firewall)",
        waited.as_secs_f64()
    ));
    assert!(
        s.port_22_open(&v6),
        "the IPv4 ban closed port 22 for the IPv6 address too"
    );

    let status = s.fail2ban_client_status();
    assert!(status.contains("Status for the jail: sshd"), "{status}");
    assert!(status.contains("Currently banned:\t1"), "{status}");
    assert!(
        status.contains(&format!("Banned IP list:\t{}", v4.attacker)),
        "{status}"
    );
    lap("fail2ban-client reports the ban");

    // Ended while banned, then started again: the database brings the ban back, once.
    let ended = s.stop_while_banned(&v4);
    s.start_rampart();
    let restore = format!("Restore Ban {}", v4.attacker);
    s.wait_for("the restored ban", |s| s.rampart_log().contains(&restore));
    assert_eq!(
        s.rampart_log().matches(&restore).count(),
        1,
        "{}",
        s.diagnostics()
    );
    // The log line comes before the action has run.
    s.wait_steady(
        "the restored ban in the firewall",
        Duration::from_secs(1),
        |s| s.in_firewall(&v4.attacker) >= 1 && !s.port_22_open(&v4),
    );
    assert_eq!(
        s.in_firewall(&v4.attacker),
        1,
        "the address once in the firewall\n{}",
        s.diagnostics()
    );
    assert!(
        !s.port_22_open(&v4),
        "port 22 open after the restore\n{}",
        s.diagnostics()
    );
    lap(&format!("{ended}, restarted, ban restored once"));

    check_ban_mail(&s, &v4, v4_banned_at);
    lap("IPv4: ban mail delivered");

    // The same attack from the attacker's IPv6 address, while the IPv4 ban runs: the
    // action's inet6 family has its own set (nftables) or its own ip6tables chain.
    let logins = four_failures(&s, &v6);
    lap(&format!(
        "IPv6: {logins} logins, 4 failures counted, no ban"
    ));
    let (waited, v6_banned_at) = fifth_failure_bans(&s, &v6);
    lap(&format!(
        "IPv6: banned at the fifth failure ({:.1} s from the login to the firewall)",
        waited.as_secs_f64()
    ));
    let status = s.fail2ban_client_status();
    assert!(status.contains(&v6.attacker), "{status}");
    check_ban_mail(&s, &v6, v6_banned_at);
    lap("IPv6: fail2ban-client reports the ban, mail delivered");

    unbanned_on_time(&s, &v4, v4_banned_at);
    lap("IPv4: unbanned after bantime, port 22 open again");
    unbanned_on_time(&s, &v6, v6_banned_at);
    lap("IPv6: unbanned after bantime, port 22 open again");
    // A restored ban is not mailed again (the mail actions skip restored tickets).
    assert_eq!(
        s.ban_mails(&v4.attacker).len(),
        1,
        "{:#?}",
        s.ban_mails(&v4.attacker)
    );
    assert_eq!(
        s.ban_mails(&v6.attacker).len(),
        1,
        "{:#?}",
        s.ban_mails(&v6.attacker)
    );
}
