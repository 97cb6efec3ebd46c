//! Running one shell script: its own process group, captured output, a timeout that
//! kills the whole group.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How much of each output stream is kept; the rest is read and dropped so that the
/// command never blocks on a full pipe.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// How long to wait for the output pipes to close once the command has ended. A
/// command that left a daemon holding them open does not hold up its caller.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// A script for `sh -c` with the values it reads from its positional parameters.
///
/// Values from log lines never appear in `script`: they are passed as arguments and the
/// script starts by copying them into variables (`f2bV_name=${0}`), so the shell sees
/// them only as the result of a parameter expansion, never as code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShellScript {
    /// The script, with `$f2bV_…` references where unsafe values go.
    pub script: String,
    /// `(variable, value)` pairs, in the order of the positional parameters.
    pub vars: Vec<(String, String)>,
}

impl ShellScript {
    /// A script without variables.
    pub fn new(script: impl Into<String>) -> Self {
        ShellScript {
            script: script.into(),
            vars: Vec::new(),
        }
    }

    /// The `-c` argument: the variable assignments, a newline, then the script.
    pub fn command_text(&self) -> String {
        if self.vars.is_empty() {
            return self.script.clone();
        }
        let mut text = String::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            text.push_str(&format!("{name}=${{{i}}} "));
        }
        text.push('\n');
        text.push_str(&self.script);
        text
    }

    /// The arguments after the `-c` text (the values, with NUL bytes removed since an
    /// argument cannot hold them).
    pub fn arguments(&self) -> Vec<String> {
        self.vars.iter().map(|(_, v)| v.replace('\0', "")).collect()
    }
}

impl fmt::Display for ShellScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.script)?;
        for (name, value) in &self.vars {
            write!(f, "\n  ({name} = {value:?})")?;
        }
        Ok(())
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal (not by us).
    Signal(i32),
    /// It ran past its timeout and its process group was killed.
    TimedOut,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "returned {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
            Exit::TimedOut => f.write_str("timed out"),
        }
    }
}

/// The result of a command that could be started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub exit: Exit,
    /// Standard output (at most 64 KiB, lossily decoded).
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    /// Advice for statuses that usually mean a setup problem.
    pub fn hint(&self) -> Option<&'static str> {
        match self.exit {
            Exit::Code(127) => Some(
                "command not found: make sure every program of the action is in the PATH of the rampart server",
            ),
            Exit::Code(126) => Some("command found but not executable (permissions?)"),
            _ => None,
        }
    }
}

/// A command that could not be started at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot run {program}: {source}")]
pub struct SpawnError {
    pub program: String,
    #[source]
    pub source: io::Error,
}

/// Runs scripts with `/bin/sh -c`, optionally behind a prefix (`ip netns exec NS`).
#[derive(Clone, Debug)]
pub struct Executor {
    prefix: Vec<String>,
    shell: String,
    kill_grace: Duration,
    lock: Option<Arc<Mutex<()>>>,
}

impl Default for Executor {
    fn default() -> Self {
        Executor {
            prefix: Vec::new(),
            shell: "/bin/sh".to_string(),
            kill_grace: Duration::from_millis(200),
            lock: None,
        }
    }
}

impl Executor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs every command as `PREFIX… /bin/sh -c …` (for instance `ip netns exec NS`).
    pub fn with_prefix<I, S>(mut self, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.prefix = prefix.into_iter().map(Into::into).collect();
        self
    }

    /// Runs at most one command at a time among all executors sharing `lock`. fail2ban
    /// serialises every action command of the daemon this way; rampart leaves it to
    /// the caller (firewall tools with `-w` lock by themselves).
    pub fn serialized(mut self, lock: Arc<Mutex<()>>) -> Self {
        self.lock = Some(lock);
        self
    }

    /// How long a timed-out command has between SIGTERM and SIGKILL.
    pub fn with_kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// The command line that runs `script` (for messages and tests).
    pub fn argv(&self, script: &ShellScript) -> Vec<String> {
        let mut argv = self.prefix.clone();
        argv.push(self.shell.clone());
        argv.push("-c".to_string());
        argv.push(script.command_text());
        argv.extend(script.arguments());
        argv
    }

    /// Runs the script and waits for it, at most `timeout`; then its process group gets
    /// SIGTERM and, after the grace period, SIGKILL.
    pub fn run(&self, script: &ShellScript, timeout: Duration) -> Result<Outcome, SpawnError> {
        let _serial = self
            .lock
            .as_ref()
            .map(|l| l.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let argv = self.argv(script);
        let (program, args) = argv.split_first().ok_or_else(|| SpawnError {
            program: String::new(),
            source: io::Error::other("empty command line"),
        })?;
        let started = Instant::now();
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A group of its own: the timeout kills the whole tree, and a terminal's
            // Ctrl-C aimed at the daemon does not reach the firewall commands.
            .process_group(0)
            .spawn()
            .map_err(|source| SpawnError {
                program: program.clone(),
                source,
            })?;
        let pid = child.id();
        let mut watch = Watch::new(&mut child);
        let exit = match watch.until_exit(&mut child, started + timeout) {
            Some(status) => exit_of(status),
            None => {
                signal_group(pid, libc::SIGTERM);
                let grace = Instant::now() + self.kill_grace;
                if watch.until_exit(&mut child, grace).is_none() {
                    signal_group(pid, libc::SIGKILL);
                    let _ = child.wait();
                } else {
                    // The leader is gone; anything it left in its group goes too.
                    signal_group(pid, libc::SIGKILL);
                }
                Exit::TimedOut
            }
        };
        watch.drain(Instant::now() + OUTPUT_GRACE);
        Ok(Outcome {
            exit,
            stdout: String::from_utf8_lossy(&watch.stdout.kept).into_owned(),
            stderr: String::from_utf8_lossy(&watch.stderr.kept).into_owned(),
            elapsed: started.elapsed(),
        })
    }
}

fn exit_of(status: ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signal(s),
        (None, None) => Exit::Code(-1),
    }
}

/// One output pipe of the command, read as it fills.
struct Pipe {
    fd: Option<OwnedFd>,
    kept: Vec<u8>,
}

impl Pipe {
    fn new(fd: Option<OwnedFd>) -> Pipe {
        Pipe {
            fd,
            kept: Vec::new(),
        }
    }

    /// Reads what the pipe holds (poll said it would not block); closes it at its end.
    fn read(&mut self) {
        let Some(fd) = self.fd.as_ref() else {
            return;
        };
        let mut buf = [0u8; 8192];
        match read_fd(fd.as_fd(), &mut buf) {
            Ok(0) => self.fd = None,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(self.kept.len());
                self.kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => self.fd = None,
        }
    }
}

/// Everything a running command is watched through, on the calling thread: both output
/// pipes and, where the kernel has them (Linux 5.3), a pidfd that becomes readable when
/// the command exits, so the end of a command is seen at once and no thread is spent on
/// it.
struct Watch {
    stdout: Pipe,
    stderr: Pipe,
    exited: Option<OwnedFd>,
}

impl Watch {
    fn new(child: &mut Child) -> Watch {
        Watch {
            stdout: Pipe::new(child.stdout.take().map(OwnedFd::from)),
            stderr: Pipe::new(child.stderr.take().map(OwnedFd::from)),
            exited: pidfd_open(child.id()),
        }
    }

    /// Reads the output until the command exits (its status) or `deadline` passes (None).
    fn until_exit(&mut self, child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
        // Without a pidfd the exit is looked for between waits that grow from 200 µs.
        let mut pause = Duration::from_micros(200);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => {}
                Err(_) => return None,
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let mut wait = deadline - now;
            if self.exited.is_none() {
                wait = wait.min(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            self.poll_once(wait, true);
        }
    }

    /// Reads the output until both pipes are closed or `deadline` passes (a process the
    /// command left in the background may hold them open for long).
    fn drain(&mut self, deadline: Instant) {
        while self.stdout.fd.is_some() || self.stderr.fd.is_some() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            self.poll_once(deadline - now, false);
        }
    }

    /// One poll over the open pipes (and the pidfd when `for_exit`), then reads.
    fn poll_once(&mut self, timeout: Duration, for_exit: bool) {
        let mut fds = Vec::with_capacity(3);
        let pipes = [&self.stdout.fd, &self.stderr.fd];
        for fd in pipes.iter().copied().flatten() {
            fds.push(pollfd(fd));
        }
        if for_exit && let Some(fd) = &self.exited {
            fds.push(pollfd(fd));
        }
        if fds.is_empty() {
            thread::sleep(timeout);
            return;
        }
        let ready = poll(&mut fds, timeout);
        if ready.is_err() {
            // EINTR or a resource shortage: look again after a short pause.
            thread::sleep(timeout.min(Duration::from_millis(1)));
            return;
        }
        let mut at = 0;
        for pipe in [&mut self.stdout, &mut self.stderr] {
            if pipe.fd.is_some() {
                let revents = fds.get(at).map_or(0, |p| p.revents);
                at += 1;
                if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    pipe.read();
                }
            }
        }
    }
}

fn pollfd(fd: &OwnedFd) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }
}

#[allow(unsafe_code)]
fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<()> {
    let count = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"))?;
    // Round up so that a sub-millisecond remainder does not turn into a busy loop.
    let millis = libc::c_int::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
    // SAFETY: `fds` is an exclusively borrowed slice of `count` pollfd structs for the
    // whole call, and its descriptors are owned by the caller's `Watch`, open throughout.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), count, millis) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[allow(unsafe_code)]
fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, exclusively borrowed buffer of `buf.len()` bytes and `fd`
    // is an open descriptor for the duration of the call.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// A descriptor that becomes readable when the child `pid` exits; None where the kernel
/// has no pidfd (before Linux 5.3) or the call fails.
#[allow(unsafe_code)]
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open(2) takes two integers and returns a new descriptor or -1; the
    // pid is our own unreaped child, so it cannot name another process.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = libc::c_int::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `fd` was just returned by the kernel, is open, and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends a signal to a process group.
#[allow(unsafe_code)]
fn signal_group(pgid: u32, signal: i32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative
    // pid addresses the process group the child was put in at spawn.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_come_from_positional_parameters() {
        let script = ShellScript {
            script: "printf '%s|%s' \"$f2bV_a\" \"$f2bV_b\"".to_string(),
            vars: vec![
                ("f2bV_a".to_string(), "$(echo no)".to_string()),
                ("f2bV_b".to_string(), "x\0y".to_string()),
            ],
        };
        let out = Executor::new()
            .run(&script, Duration::from_secs(10))
            .unwrap();
        assert!(out.success(), "{out:?}");
        assert_eq!(out.stdout, "$(echo no)|xy");
    }

    #[test]
    fn status_output_and_hint() {
        let out = Executor::new()
            .run(
                &ShellScript::new("echo out; echo err >&2; exit 3"),
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(out.exit, Exit::Code(3));
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str()),
            ("out\n", "err\n")
        );
        let missing = Executor::new()
            .run(
                &ShellScript::new("no-such-program-rampart"),
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(missing.exit, Exit::Code(127));
        assert!(missing.hint().is_some());
    }

    #[test]
    fn a_background_process_holding_the_pipe_does_not_hold_the_caller() {
        let started = Instant::now();
        let out = Executor::new()
            .run(
                &ShellScript::new("sleep 5 & echo hi"),
                Duration::from_secs(10),
            )
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, "hi\n");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn large_output_does_not_block() {
        let out = Executor::new()
            .run(
                &ShellScript::new("head -c 1000000 /dev/zero; echo done >&2"),
                Duration::from_secs(20),
            )
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout.len(), OUTPUT_LIMIT);
        assert_eq!(out.stderr, "done\n");
    }
}
