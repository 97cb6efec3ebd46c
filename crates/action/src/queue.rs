//! The ban queue: the server pushes jobs and returns at once; one worker thread per
//! jail runs them in order, so that a slow action never delays log reading.
//!
//! The worker takes everything that is queued at once and hands runs of consecutive
//! bans (or unbans) to each action as a batch: a native firewall backend can apply a
//! batch in one transaction, a command action runs its commands one by one.

use std::fmt;
use std::io;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::command::Repair;
use crate::error::ActionError;
use crate::event::{Event, EventKind, EventSink, Level};
use crate::ticket::Ticket;

/// How many queued messages the worker takes in one round.
const ROUND: usize = 1024;

/// One action of a jail, as the worker drives it. [`crate::CommandAction`] is the
/// fail2ban kind; a native backend implements the batch methods.
pub trait JailAction: Send {
    fn name(&self) -> &str;
    /// Runs when the worker starts.
    fn start(&mut self) -> Result<(), ActionError>;
    /// Runs when the jail stops, after the flush.
    fn stop(&mut self) -> Result<(), ActionError>;
    fn ban(&mut self, ticket: &Ticket) -> Result<(), ActionError>;
    /// Bans several tickets, one result per ticket.
    fn ban_batch(&mut self, tickets: &[&Ticket]) -> Vec<Result<(), ActionError>> {
        tickets.iter().map(|t| self.ban(t)).collect()
    }
    fn unban(&mut self, ticket: &Ticket) -> Result<(), ActionError>;
    fn unban_batch(&mut self, tickets: &[&Ticket]) -> Vec<Result<(), ActionError>> {
        tickets.iter().map(|t| self.unban(t)).collect()
    }
    /// Bans again a ticket that may have been lost (after a repair).
    fn reban(&mut self, ticket: &Ticket) -> Result<(), ActionError> {
        self.ban(ticket)
    }
    /// Whether [`JailAction::prolong`] does anything.
    fn prolongable(&self) -> bool {
        false
    }
    /// The ban of `ticket` got longer (`bantime.increment`).
    fn prolong(&mut self, _ticket: &Ticket) -> Result<(), ActionError> {
        Ok(())
    }
    /// Removes every ban at once; `Ok(false)` when the action cannot, and the worker
    /// unbans ticket by ticket instead.
    fn flush(&mut self) -> Result<bool, ActionError> {
        Ok(false)
    }
    fn reload(&mut self) -> Result<(), ActionError> {
        Ok(())
    }
    /// Checks that the action's firewall objects are still there (repairing them if
    /// allowed); false when they are not and could not be restored.
    fn consistency_check(&mut self, _repair: Repair) -> bool {
        true
    }
    /// Whether bans restored from the database at start are skipped (`norestored`).
    fn skips_restored(&self) -> bool {
        false
    }
    /// Grows when a repair may have lost bans; tickets banned under an older epoch
    /// should be re-banned.
    fn ban_epoch(&self) -> u64 {
        0
    }
}

/// Work for a jail's actions.
#[derive(Clone, Debug, PartialEq)]
pub enum Job {
    Ban(Ticket),
    Unban(Ticket),
    Reban(Ticket),
    Prolong(Ticket),
    /// Removes every ban: `actionflush` where the action has one, else an unban for
    /// each of these tickets (the jail's current bans).
    Flush(Vec<Ticket>),
    /// Runs `actioncheck` (with repair) for every started family.
    ConsistencyCheck,
    Reload,
    /// Flushes as at shutdown (no repair unless `actionrepair_on_unban`), stops the
    /// actions in reverse order and ends the worker.
    Stop(Vec<Ticket>),
}

enum Message {
    Job(Job),
    Barrier(Sender<()>),
}

/// The queue has stopped (a `Stop` job ran, or the worker is gone).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the ban queue of jail {jail} has stopped")]
pub struct QueueClosed {
    pub jail: String,
}

/// A jail's queue and its worker thread.
///
/// Dropping the queue without [`BanQueue::stop`] lets the worker finish the queued jobs
/// and end without stopping the actions (the bans stay, as after a crash).
pub struct BanQueue {
    jail: String,
    tx: Sender<Message>,
    worker: Option<JoinHandle<()>>,
}

impl fmt::Debug for BanQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BanQueue")
            .field("jail", &self.jail)
            .finish_non_exhaustive()
    }
}

impl BanQueue {
    /// Starts the worker, which first starts every action.
    pub fn start(
        jail: impl Into<String>,
        actions: Vec<Box<dyn JailAction>>,
        events: EventSink,
    ) -> io::Result<BanQueue> {
        let jail = jail.into();
        let (tx, rx) = mpsc::channel();
        let mut worker = Worker {
            jail: jail.clone(),
            actions,
            events,
        };
        let handle = thread::Builder::new()
            .name(format!("actions-{jail}"))
            .spawn(move || worker.run(rx))?;
        Ok(BanQueue {
            jail,
            tx,
            worker: Some(handle),
        })
    }

    pub fn jail(&self) -> &str {
        &self.jail
    }

    /// Queues a job and returns at once.
    pub fn push(&self, job: Job) -> Result<(), QueueClosed> {
        self.tx.send(Message::Job(job)).map_err(|_| QueueClosed {
            jail: self.jail.clone(),
        })
    }

    pub fn ban(&self, ticket: Ticket) -> Result<(), QueueClosed> {
        self.push(Job::Ban(ticket))
    }

    pub fn unban(&self, ticket: Ticket) -> Result<(), QueueClosed> {
        self.push(Job::Unban(ticket))
    }

    /// Waits until every job queued before this call has run; false on timeout or
    /// when the worker is gone.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Message::Barrier(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }

    /// Queues a `Stop` with the jail's current bans and waits for the worker to end.
    pub fn stop(mut self, banned: Vec<Ticket>) {
        let _ = self.tx.send(Message::Job(Job::Stop(banned)));
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

struct Worker {
    jail: String,
    actions: Vec<Box<dyn JailAction>>,
    events: EventSink,
}

impl Worker {
    fn emit(&self, level: Level, action: &str, kind: EventKind) {
        (self.events)(Event {
            level,
            jail: self.jail.clone(),
            action: action.to_string(),
            kind,
        });
    }

    fn failed(&self, action: &str, what: String, error: &ActionError) {
        self.emit(
            Level::Error,
            action,
            EventKind::Failed {
                what,
                error: error.to_string(),
            },
        );
    }

    fn run(&mut self, rx: Receiver<Message>) {
        for i in 0..self.actions.len() {
            if let Err(e) = self.actions[i].start() {
                let name = self.actions[i].name().to_string();
                self.failed(&name, "start".to_string(), &e);
            }
        }
        let mut round: Vec<Message> = Vec::new();
        loop {
            match rx.recv() {
                Ok(m) => round.push(m),
                Err(_) => return,
            }
            while round.len() < ROUND {
                match rx.try_recv() {
                    Ok(m) => round.push(m),
                    Err(_) => break,
                }
            }
            if self.run_round(std::mem::take(&mut round)) {
                // Stopped: answer the waiters, drop the rest.
                loop {
                    match rx.recv_timeout(Duration::ZERO) {
                        Ok(Message::Barrier(tx)) => {
                            let _ = tx.send(());
                        }
                        Ok(Message::Job(_)) => {}
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Runs one round of messages; true when a `Stop` ran.
    fn run_round(&mut self, round: Vec<Message>) -> bool {
        let mut bans: Vec<Ticket> = Vec::new();
        let mut unbans: Vec<Ticket> = Vec::new();
        let mut stopped = false;
        for message in round {
            if stopped {
                if let Message::Barrier(tx) = message {
                    let _ = tx.send(());
                }
                continue;
            }
            match message {
                Message::Job(Job::Ban(t)) => {
                    self.unban_all(&mut unbans);
                    bans.push(t);
                }
                Message::Job(Job::Unban(t)) => {
                    self.ban_all(&mut bans);
                    unbans.push(t);
                }
                other => {
                    self.ban_all(&mut bans);
                    self.unban_all(&mut unbans);
                    match other {
                        Message::Barrier(tx) => {
                            let _ = tx.send(());
                        }
                        Message::Job(job) => stopped = self.run_job(job),
                    }
                }
            }
        }
        self.ban_all(&mut bans);
        self.unban_all(&mut unbans);
        stopped
    }

    fn ban_all(&mut self, tickets: &mut Vec<Ticket>) {
        if tickets.is_empty() {
            return;
        }
        for i in 0..self.actions.len() {
            let skip_restored = self.actions[i].skips_restored();
            let batch: Vec<&Ticket> = tickets
                .iter()
                .filter(|t| !(skip_restored && t.restored))
                .collect();
            if batch.is_empty() {
                continue;
            }
            let results = self.actions[i].ban_batch(&batch);
            let name = self.actions[i].name().to_string();
            for (ticket, result) in batch.iter().zip(results) {
                if let Err(e) = result {
                    self.failed(&name, format!("ban {}", ticket.ip), &e);
                }
            }
        }
        tickets.clear();
    }

    fn unban_all(&mut self, tickets: &mut Vec<Ticket>) {
        if tickets.is_empty() {
            return;
        }
        let all: Vec<usize> = (0..self.actions.len()).collect();
        self.unban_with(&all, tickets);
        tickets.clear();
    }

    fn unban_with(&mut self, actions: &[usize], tickets: &[Ticket]) {
        let batch: Vec<&Ticket> = tickets.iter().collect();
        for &i in actions {
            let results = self.actions[i].unban_batch(&batch);
            let name = self.actions[i].name().to_string();
            for (ticket, result) in batch.iter().zip(results) {
                if let Err(e) = result {
                    self.failed(&name, format!("unban {}", ticket.ip), &e);
                }
            }
        }
    }

    /// Runs a job other than a plain ban or unban; true for `Stop`.
    fn run_job(&mut self, job: Job) -> bool {
        match job {
            Job::Ban(_) | Job::Unban(_) => {}
            Job::Reban(t) => {
                for i in 0..self.actions.len() {
                    if let Err(e) = self.actions[i].reban(&t) {
                        let name = self.actions[i].name().to_string();
                        self.failed(&name, format!("reban {}", t.ip), &e);
                    }
                }
            }
            Job::Prolong(t) => {
                for i in 0..self.actions.len() {
                    let action = &mut self.actions[i];
                    if (t.restored && action.skips_restored()) || !action.prolongable() {
                        continue;
                    }
                    if let Err(e) = action.prolong(&t) {
                        let name = self.actions[i].name().to_string();
                        self.failed(&name, format!("prolong {}", t.ip), &e);
                    }
                }
            }
            Job::Flush(tickets) => self.flush(&tickets, false),
            Job::ConsistencyCheck => {
                for action in &mut self.actions {
                    action.consistency_check(Repair::Allowed);
                }
            }
            Job::Reload => {
                for i in 0..self.actions.len() {
                    if let Err(e) = self.actions[i].reload() {
                        let name = self.actions[i].name().to_string();
                        self.failed(&name, "reload".to_string(), &e);
                    }
                }
            }
            Job::Stop(tickets) => {
                self.flush(&tickets, true);
                for i in (0..self.actions.len()).rev() {
                    if let Err(e) = self.actions[i].stop() {
                        let name = self.actions[i].name().to_string();
                        self.failed(&name, "stop".to_string(), &e);
                    }
                }
                return true;
            }
        }
        false
    }

    /// `__flushBan`: flush where possible, else unban each ticket. A failed flush
    /// leads to a consistency check instead of single unbans.
    fn flush(&mut self, tickets: &[Ticket], stopping: bool) {
        let mut one_by_one = Vec::new();
        for i in 0..self.actions.len() {
            let name = self.actions[i].name().to_string();
            match self.actions[i].flush() {
                Ok(true) => self.emit(
                    Level::Notice,
                    &name,
                    EventKind::Note("flushed all bans".to_string()),
                ),
                Ok(false) => one_by_one.push(i),
                Err(e) => {
                    self.failed(&name, "flush".to_string(), &e);
                    let repair = if stopping {
                        Repair::OnlyIfRepairOnUnban
                    } else {
                        Repair::Allowed
                    };
                    self.actions[i].consistency_check(repair);
                }
            }
        }
        if !one_by_one.is_empty() && !tickets.is_empty() {
            self.unban_with(&one_by_one, tickets);
        }
    }
}
