//! What the actions report to the server: commands run, repairs, failures. The library
//! logs nothing itself; the server decides where events go.

use std::fmt;
use std::sync::{Arc, mpsc};

use crate::exec::Outcome;

/// fail2ban's log levels, for the server's mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
}

/// One report from an action or the ban queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub level: Level,
    pub jail: String,
    /// The action's name (empty for reports of the queue itself).
    pub action: String,
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// A command ran. `Debug` when it succeeded, `Error` otherwise.
    Command {
        /// What it was for (`ban 192.0.2.1`, `start inet6`, `check inet4`).
        what: String,
        /// The script as run, with its variables.
        script: String,
        outcome: Outcome,
    },
    /// A command could not be started (no shell, no prefix program, …).
    Spawn { what: String, error: String },
    /// `actioncheck` failed after a failed command.
    InvariantFailed {
        family: String,
        /// Whether a repair is attempted (no repair for unbans and flushes at stop,
        /// unless `actionrepair_on_unban` is set).
        repairing: bool,
    },
    /// The repair (or restart) did not make `actioncheck` pass.
    RestoreFailed { family: String },
    /// A job failed for this action; the other actions still ran.
    Failed { what: String, error: String },
    /// Progress worth a line in the log (`Flush ticket(s)`, `Unban … each individually`).
    Note(String),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.jail)?;
        if !self.action.is_empty() {
            write!(f, " action {}:", self.action)?;
        }
        match &self.kind {
            EventKind::Command {
                what,
                script,
                outcome,
            } => {
                write!(f, " {what}: command {}", outcome.exit)?;
                if !outcome.success() {
                    write!(f, "\n  script: {script}")?;
                    for line in outcome.stdout.lines() {
                        write!(f, "\n  stdout: {line}")?;
                    }
                    for line in outcome.stderr.lines() {
                        write!(f, "\n  stderr: {line}")?;
                    }
                    if let Some(hint) = outcome.hint() {
                        write!(f, "\n  hint: {hint}")?;
                    }
                }
                Ok(())
            }
            EventKind::Spawn { what, error } => write!(f, " {what}: {error}"),
            EventKind::InvariantFailed { family, repairing } => {
                let fam = if family.is_empty() { "" } else { " " };
                write!(f, " invariant check failed{fam}{family}")?;
                if *repairing {
                    f.write_str(", trying to restore a sane environment")
                } else {
                    f.write_str(", no repair attempted")
                }
            }
            EventKind::RestoreFailed { family } => {
                write!(f, " unable to restore the environment {family}")
            }
            EventKind::Failed { what, error } => write!(f, " {what} failed: {error}"),
            EventKind::Note(text) => write!(f, " {text}"),
        }
    }
}

/// Where events go.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// A sink that drops everything.
pub fn discard_events() -> EventSink {
    Arc::new(|_| {})
}

/// A sink that sends every event to a channel.
pub fn channel_events(tx: mpsc::Sender<Event>) -> EventSink {
    Arc::new(move |event| {
        let _ = tx.send(event);
    })
}
