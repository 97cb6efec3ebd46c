//! Test support: temporary directories, network namespaces, the reference actions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rampart_action::{ActionContext, Event, EventSink, Executor, Hostnames};
use rampart_config::{OsFs, ReadOptions, Value, read_configuration};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    format!(
        "rampart-action-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn str(&self, name: &str) -> String {
        self.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A network namespace of the test's own, deleted on drop (also when the test fails),
/// so that no firewall rule can reach the host's.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates the namespace; fails the test with an explanation when `ip netns` is not
    /// usable here (it needs root and iproute2).
    pub fn new() -> NetNs {
        let name = unique("ns");
        let out = Command::new("ip").args(["netns", "add", &name]).output();
        match out {
            Ok(o) if o.status.success() => NetNs { name },
            Ok(o) => panic!(
                "this test needs a network namespace, but `ip netns add {name}` failed \
                 (run as root): {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!(
                "this test needs a network namespace, but `ip` cannot run ({e}); \
                 install iproute2 and run as root"
            ),
        }
    }

    /// The prefix that runs a command inside the namespace.
    pub fn prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", self.name.as_str()]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Runs a program inside the namespace and returns its standard output; fails the
    /// test with a hint when the program is missing.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !err.contains("No such file"),
                "{args:?} is missing here: apt-get install -y nftables iptables ({err})"
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Events collected by a test.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Event>>>);

impl Recorder {
    pub fn sink(&self) -> EventSink {
        let events = Arc::clone(&self.0);
        Arc::new(move |e| events.lock().unwrap().push(e))
    }

    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.events()
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub fn context(jail: &str, executor: Executor, events: &Recorder) -> ActionContext {
    let mut ctx = ActionContext::new(jail);
    ctx.executor = executor;
    ctx.events = events.sink();
    ctx.hostnames = Hostnames {
        fq: "host.example.org".to_string(),
        short: "host".to_string(),
    };
    ctx
}

pub fn props(list: &[(&str, &str)]) -> Vec<(String, Value)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The jails of Debian's stock tree with `jail_local` added (`LOGFILE` replaced by an
/// existing file), read the way the server reads them.
pub fn reference_jails(dir: &TempDir, jail_local: &str) -> Vec<rampart_config::Jail> {
    let tree = dir.join("fail2ban");
    copy_tree(&rampart_reference::fail2ban().config_dir(), &tree);
    let log = dir.str("auth.log");
    std::fs::write(&log, "").unwrap();
    std::fs::write(tree.join("jail.local"), jail_local.replace("LOGFILE", &log)).unwrap();
    let config =
        read_configuration(&OsFs, &tree.to_string_lossy(), &ReadOptions::default()).unwrap();
    config.jails
}

/// The actions of jail `sshd` in the stock tree with `jail_local`.
pub fn reference_actions(dir: &TempDir, jail_local: &str) -> Vec<rampart_config::Action> {
    let jail = reference_jails(dir, jail_local)
        .into_iter()
        .find(|j| j.name == "sshd")
        .expect("jail sshd in the configuration");
    assert_eq!(jail.config_error, None);
    jail.actions
}
