//! The ban queue: the server pushes jobs and returns at once; a worker thread of the
//! jail's own runs them in order, so that a slow action never delays log reading nor
//! another jail. The thread exists only while there is work (see [`BanQueue`]).
//!
//! The worker takes everything that is queued at once and hands runs of consecutive
//! bans (or unbans) to each action as a batch: a native firewall backend can apply a
//! batch in one transaction, a command action runs its commands one by one.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
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

/// How long a worker with nothing to do waits for more before it ends and parks the
/// actions: long enough that a burst of bans (or bans and their unbans) is served by one
/// thread, short enough that ninety idle jails hold no thread at all.
pub const IDLE_END: Duration = Duration::from_secs(2);

/// A jail's queue, and its worker thread while it has work.
///
/// The worker exists only while jobs are queued or have just run: it starts with the
/// first job (at [`BanQueue::start`], the actions' start), ends after [`IDLE_END`] with
/// nothing to do, leaving the actions (and their state: started families, ban epochs)
/// parked in the queue, and the next job spawns a new one that takes them up. At most
/// one worker holds the actions at any time, so jobs run one at a time, in push order.
///
/// Dropping the queue without [`BanQueue::stop`] lets the worker finish the queued jobs
/// and end without stopping the actions (the bans stay, as after a crash).
pub struct BanQueue {
    jail: String,
    shared: Arc<Shared>,
}

impl fmt::Debug for BanQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BanQueue")
            .field("jail", &self.jail)
            .finish_non_exhaustive()
    }
}

/// What the queue's handle and its worker share.
struct Shared {
    jail: String,
    idle_end: Duration,
    state: Mutex<State>,
    /// Signalled on every new message (for the worker) and when the queue closes.
    changed: Condvar,
}

struct State {
    messages: VecDeque<Message>,
    /// The actions while no worker holds them.
    parked: Option<Worker>,
    /// A worker runs (or is being spawned) and holds, or is about to take, the actions.
    running: bool,
    /// The running worker's thread.
    thread: Option<JoinHandle<()>>,
    /// A `Stop` ran (or a worker died): the actions are gone.
    closed: bool,
    /// The handle was dropped: the worker ends as soon as the queue is empty.
    abandoned: bool,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every change to the state is a whole operation under the lock; a panic elsewhere
    // in the holder leaves it consistent.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BanQueue {
    /// Starts a worker, which first starts every action.
    pub fn start(
        jail: impl Into<String>,
        actions: Vec<Box<dyn JailAction>>,
        events: EventSink,
    ) -> io::Result<BanQueue> {
        BanQueue::with_idle_end(jail, actions, events, IDLE_END)
    }

    /// [`BanQueue::start`] with another idle time before the worker ends.
    pub fn with_idle_end(
        jail: impl Into<String>,
        actions: Vec<Box<dyn JailAction>>,
        events: EventSink,
        idle_end: Duration,
    ) -> io::Result<BanQueue> {
        let queue = BanQueue::deferred(jail, actions, events, idle_end);
        // The actions' start is the first work: it runs now, not with the first ban.
        spawn_worker(&queue.shared, &mut lock(&queue.shared.state))?;
        Ok(queue)
    }

    /// A queue whose actions are not started yet: the first job starts them, or
    /// [`QueueStarter::start_here`] does. A daemon starting many jails at once makes
    /// them all read their logs first, then starts their actions a few at a time
    /// rather than in one worker thread (and a burst of shells) per jail.
    pub fn deferred(
        jail: impl Into<String>,
        actions: Vec<Box<dyn JailAction>>,
        events: EventSink,
        idle_end: Duration,
    ) -> BanQueue {
        let jail = jail.into();
        let worker = Worker {
            jail: jail.clone(),
            actions,
            events,
            started: false,
        };
        let shared = Arc::new(Shared {
            jail: jail.clone(),
            idle_end,
            state: Mutex::new(State {
                messages: VecDeque::new(),
                parked: Some(worker),
                running: false,
                thread: None,
                closed: false,
                abandoned: false,
            }),
            changed: Condvar::new(),
        });
        BanQueue { jail, shared }
    }

    /// What starts the actions of a [`BanQueue::deferred`] queue, on whichever thread.
    pub fn starter(&self) -> QueueStarter {
        QueueStarter {
            shared: Arc::clone(&self.shared),
        }
    }

    pub fn jail(&self) -> &str {
        &self.jail
    }

    fn closed(&self) -> QueueClosed {
        QueueClosed {
            jail: self.jail.clone(),
        }
    }

    /// Queues a job and returns at once (spawning the worker if there is none).
    pub fn push(&self, job: Job) -> Result<(), QueueClosed> {
        let mut st = lock(&self.shared.state);
        if st.closed {
            return Err(self.closed());
        }
        st.messages.push_back(Message::Job(job));
        self.ensure_worker(&mut st);
        Ok(())
    }

    /// Wakes the running worker, or spawns one. A failed spawn (the process is out of
    /// threads) is reported and leaves the jobs queued: the next push, or the stop,
    /// runs them.
    fn ensure_worker(&self, st: &mut State) {
        if st.running {
            self.shared.changed.notify_all();
            return;
        }
        if let Err(e) = spawn_worker(&self.shared, st)
            && let Some(worker) = &st.parked
        {
            worker.emit(
                Level::Error,
                "",
                EventKind::Failed {
                    what: "starting the action worker".to_string(),
                    error: e.to_string(),
                },
            );
        }
    }

    pub fn ban(&self, ticket: Ticket) -> Result<(), QueueClosed> {
        self.push(Job::Ban(ticket))
    }

    pub fn unban(&self, ticket: Ticket) -> Result<(), QueueClosed> {
        self.push(Job::Unban(ticket))
    }

    /// Waits until every job queued before this call has run; false on timeout or
    /// when the queue has stopped.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let rx = {
            let mut st = lock(&self.shared.state);
            if st.closed {
                return false;
            }
            if !st.running && st.messages.is_empty() {
                return true;
            }
            let (tx, rx) = mpsc::channel();
            st.messages.push_back(Message::Barrier(tx));
            self.ensure_worker(&mut st);
            rx
        };
        rx.recv_timeout(timeout).is_ok()
    }

    /// Queues a `Stop` with the jail's current bans and waits until it has run. With no
    /// worker running, the calling thread runs the queue itself rather than spawning
    /// one only to wait for it.
    pub fn stop(self, banned: Vec<Ticket>) {
        let (thread, run_here) = {
            let mut st = lock(&self.shared.state);
            if st.closed {
                return;
            }
            st.messages.push_back(Message::Job(Job::Stop(banned)));
            if st.running {
                self.shared.changed.notify_all();
                (st.thread.take(), false)
            } else {
                st.running = true;
                (None, true)
            }
        };
        if run_here {
            work(&self.shared, self.shared.idle_end);
        } else if let Some(thread) = thread {
            let _ = thread.join();
        } else {
            // A starter thread runs the queue and takes the stop in turn; should it park
            // the actions first, the stop runs here.
            let mut st = lock(&self.shared.state);
            loop {
                if st.closed {
                    return;
                }
                if !st.running {
                    st.running = true;
                    drop(st);
                    work(&self.shared, self.shared.idle_end);
                    return;
                }
                st = self
                    .shared
                    .changed
                    .wait_timeout(st, Duration::from_millis(100))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }
}

impl Drop for BanQueue {
    fn drop(&mut self) {
        lock(&self.shared.state).abandoned = true;
        self.shared.changed.notify_all();
    }
}

/// Starts the actions of a deferred queue (see [`BanQueue::starter`]).
pub struct QueueStarter {
    shared: Arc<Shared>,
}

impl fmt::Debug for QueueStarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueStarter")
            .field("jail", &self.shared.jail)
            .finish_non_exhaustive()
    }
}

impl QueueStarter {
    /// Starts the actions on the calling thread, with whatever jobs came meanwhile,
    /// and returns when the queue is empty; nothing when a worker has the actions or
    /// they have started already.
    pub fn start_here(&self) {
        {
            let mut st = lock(&self.shared.state);
            let pending = st.parked.as_ref().is_some_and(|w| !w.started);
            if st.closed || st.running || !pending {
                return;
            }
            st.running = true;
        }
        work(&self.shared, Duration::ZERO);
    }
}

/// Spawns the worker thread; the caller holds the lock and no worker runs.
fn spawn_worker(shared: &Arc<Shared>, st: &mut State) -> io::Result<()> {
    // The previous worker has parked the actions and is returning: its handle is only
    // dropped (the thread ends on its own), never joined under the lock.
    st.thread = None;
    let for_thread = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name(format!("actions-{}", shared.jail))
        .spawn(move || work(&for_thread, for_thread.idle_end));
    match spawned {
        Ok(handle) => {
            st.running = true;
            st.thread = Some(handle);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Marks the queue closed if the worker unwinds (a panicking action): the actions are
/// lost with the thread, and pushes must fail as they did when the worker was gone.
struct Unwinding<'a>(&'a Shared, bool);

impl Drop for Unwinding<'_> {
    fn drop(&mut self) {
        if self.1 {
            let mut st = lock(&self.0.state);
            st.running = false;
            st.closed = true;
            answer_barriers(&mut st.messages);
            drop(st);
            self.0.changed.notify_all();
        }
    }
}

fn answer_barriers(messages: &mut VecDeque<Message>) {
    for message in messages.drain(..) {
        if let Message::Barrier(tx) = message {
            let _ = tx.send(());
        }
    }
}

/// A worker's life: take the actions, start them the first time, run rounds of
/// messages until none comes for `linger`, park the actions.
fn work(shared: &Shared, linger: Duration) {
    let mut guard = Unwinding(shared, true);
    let parked = {
        let mut st = lock(&shared.state);
        let parked = st.parked.take();
        st.running = parked.is_some();
        parked
    };
    let Some(mut worker) = parked else {
        guard.1 = false;
        return;
    };
    if !worker.started {
        worker.started = true;
        worker.start_all();
    }
    loop {
        let round: Vec<Message> = {
            let mut st = lock(&shared.state);
            loop {
                if !st.messages.is_empty() {
                    let n = st.messages.len().min(ROUND);
                    break st.messages.drain(..n).collect();
                }
                if st.abandoned {
                    st.parked = Some(worker);
                    st.running = false;
                    guard.1 = false;
                    return;
                }
                let (next, waited) = shared
                    .changed
                    .wait_timeout(st, linger)
                    .unwrap_or_else(PoisonError::into_inner);
                st = next;
                if waited.timed_out() && st.messages.is_empty() {
                    st.parked = Some(worker);
                    st.running = false;
                    guard.1 = false;
                    return;
                }
            }
        };
        if worker.run_round(round) {
            // Stopped: answer the waiters, drop the rest; the actions end here.
            let mut st = lock(&shared.state);
            st.closed = true;
            st.running = false;
            answer_barriers(&mut st.messages);
            guard.1 = false;
            drop(st);
            shared.changed.notify_all();
            return;
        }
    }
}

struct Worker {
    jail: String,
    actions: Vec<Box<dyn JailAction>>,
    events: EventSink,
    /// The actions' `start` has run (in the first worker).
    started: bool,
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

    fn start_all(&mut self) {
        for i in 0..self.actions.len() {
            if let Err(e) = self.actions[i].start() {
                let name = self.actions[i].name().to_string();
                self.failed(&name, "start".to_string(), &e);
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
