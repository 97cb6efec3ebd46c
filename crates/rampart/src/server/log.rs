//! The server's log, in fail2ban's format.
//!
//! `2005-08-14 12:00:00,123 fail2ban.actions        [1234]: NOTICE  [sshd] Ban 192.0.2.1`:
//! the same layout as fail2ban's, so that the `recidive` jail, log watchers and people
//! reading it find what they expect. Targets are fail2ban's: a file path, `STDOUT`,
//! `STDERR` or `SYSLOG` (the local syslog socket).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Mutex;

use rampart_dates::TimeZone;

/// fail2ban's level numbers.
pub const CRITICAL: i64 = 50;
pub const ERROR: i64 = 40;
pub const WARNING: i64 = 30;
pub const NOTICE: i64 = 25;
pub const INFO: i64 = 20;
pub const DEBUG: i64 = 10;

fn level_name(level: i64) -> &'static str {
    match level {
        l if l >= CRITICAL => "CRITICAL",
        l if l >= ERROR => "ERROR",
        l if l >= WARNING => "WARNING",
        l if l >= NOTICE => "NOTICE",
        l if l >= INFO => "INFO",
        l if l >= DEBUG => "DEBUG",
        _ => "HEAVY",
    }
}

enum Target {
    File { path: PathBuf, file: File },
    Stdout,
    Stderr,
    Syslog { socket: UnixDatagram, path: PathBuf },
}

struct State {
    target: Target,
    spec: String,
    level: i64,
}

/// The process's log; shared by every thread.
pub struct Logger {
    state: Mutex<State>,
    zone: TimeZone,
    pid: u32,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger").finish_non_exhaustive()
    }
}

fn open_target(spec: &str, syslog_socket: &str) -> io::Result<Target> {
    Ok(match spec.trim().to_ascii_uppercase().as_str() {
        "STDOUT" => Target::Stdout,
        "STDERR" => Target::Stderr,
        "SYSLOG" => {
            let path = if syslog_socket.is_empty() || syslog_socket == "auto" {
                PathBuf::from("/dev/log")
            } else {
                PathBuf::from(syslog_socket)
            };
            let socket = UnixDatagram::unbound()?;
            socket.connect(&path)?;
            Target::Syslog { socket, path }
        }
        _ => {
            let path = PathBuf::from(spec.trim());
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            Target::File { path, file }
        }
    })
}

impl Logger {
    /// A log to `target` (path, `STDOUT`, `STDERR`, `SYSLOG`) at `level`.
    pub fn open(target: &str, syslog_socket: &str, level: i64) -> io::Result<Logger> {
        Ok(Logger {
            state: Mutex::new(State {
                target: open_target(target, syslog_socket)?,
                spec: target.to_string(),
                level,
            }),
            zone: TimeZone::from_env(),
            pid: std::process::id(),
        })
    }

    pub fn level(&self) -> i64 {
        self.state.lock().map_or(INFO, |s| s.level)
    }

    pub fn set_level(&self, level: i64) {
        if let Ok(mut s) = self.state.lock() {
            s.level = level;
        }
    }

    pub fn target(&self) -> String {
        self.state
            .lock()
            .map(|s| s.spec.clone())
            .unwrap_or_default()
    }

    /// Switches to another target; the old one stays on failure.
    pub fn set_target(&self, target: &str, syslog_socket: &str) -> io::Result<()> {
        let new = open_target(target, syslog_socket)?;
        if let Ok(mut s) = self.state.lock() {
            s.target = new;
            s.spec = target.to_string();
        }
        Ok(())
    }

    /// Reopens a log file (after logrotate moved it away); `true` when there was one.
    pub fn reopen(&self) -> io::Result<bool> {
        let Ok(mut s) = self.state.lock() else {
            return Ok(false);
        };
        if let Target::File { path, .. } = &s.target {
            let path = path.clone();
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            s.target = Target::File { path, file };
            return Ok(true);
        }
        Ok(false)
    }

    /// Writes one record from the component `name` (`fail2ban.actions`, …).
    pub fn log(&self, level: i64, name: &str, message: &str) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if level < s.level {
            return;
        }
        let now = crate::engine::wall_clock();
        let millis = ((now.fract() * 1000.0) as u32).min(999);
        // One record is one line: text from logs never starts a forged record.
        let message = message.replace('\n', "\\n");
        let body = format!(
            "{:<24}[{}]: {:<7} {message}",
            name,
            self.pid,
            level_name(level)
        );
        let result = match &mut s.target {
            Target::Syslog { socket, path } => {
                let severity = match level {
                    l if l >= CRITICAL => 2,
                    l if l >= ERROR => 3,
                    l if l >= WARNING => 4,
                    l if l >= NOTICE => 5,
                    l if l >= INFO => 6,
                    _ => 7,
                };
                // Facility daemon (3).
                let datagram = format!("<{}>{body}", 3 * 8 + severity);
                match socket.send(datagram.as_bytes()) {
                    Ok(_) => Ok(()),
                    Err(e) => Err(io::Error::other(format!("{}: {e}", path.display()))),
                }
            }
            target => {
                let line = format!("{},{millis:03} {body}\n", self.zone.format_local(now));
                match target {
                    Target::File { file, .. } => file.write_all(line.as_bytes()),
                    Target::Stdout => io::stdout().lock().write_all(line.as_bytes()),
                    _ => io::stderr().lock().write_all(line.as_bytes()),
                }
            }
        };
        if let Err(e) = result {
            let _ = writeln!(
                io::stderr(),
                "rampart: cannot write the log: {e}: {message}"
            );
        }
    }
}
