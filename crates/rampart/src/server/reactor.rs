//! The reactor: one thread reads the logs of every jail.
//!
//! It waits, in one `poll`, on the descriptors of every jail's log source (inotify, the
//! wake-up channel that control commands and journalctl's reader use) until the first of
//! the jails' deadlines (next unban, polling interval, sweep, retry, notice). Then each
//! jail whose source has news, or whose deadline came, gets one *turn*: what one round
//! of a jail thread's loop used to do (changes from the socket, the available lines,
//! failures and bans, unbans, positions). A turn is bounded ([`super::jail::TURN_LINES`]
//! lines or [`super::jail::TURN_TIME`]); a jail with more to read goes again after every
//! other jail due has had its turn, so a flood on one log delays the others by one turn.
//!
//! Nothing here waits for an action: bans go to each jail's [`rampart_action::BanQueue`],
//! whose worker runs the commands. The only locks a turn takes (the jail's state, the
//! store) are held for bookkeeping, never across a command.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rampart_source::{WakeListener, Waker};

use super::jail::Worker;
use super::log::{ERROR, Logger};

enum Command {
    Add(u64, Box<Worker>),
    /// Takes the jail out (positions saved, source closed), then answers.
    Remove(u64, Sender<()>),
    /// No turns until as many `Resume`s came (see [`Reactor::hold`]).
    Hold,
    Resume,
    Shutdown,
}

/// The handle on the reactor thread, kept in the server's `Shared`.
pub struct Reactor {
    inbox: Arc<Mutex<Vec<Command>>>,
    waker: Waker,
    thread: Mutex<Option<JoinHandle<()>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor").finish_non_exhaustive()
    }
}

impl Reactor {
    pub fn start(logger: Arc<Logger>) -> Result<Reactor> {
        let (waker, listener) =
            rampart_source::wake_channel().context("the reactor's wake-up channel")?;
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let for_thread = Arc::clone(&inbox);
        let thread = std::thread::Builder::new()
            .name("reactor".into())
            .spawn(move || run(&listener, &for_thread, &logger))
            .context("starting the reactor thread")?;
        Ok(Reactor {
            inbox,
            waker,
            thread: Mutex::new(Some(thread)),
            next_id: AtomicU64::new(1),
        })
    }

    fn send(&self, command: Command) {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(command);
        self.waker.wake();
    }

    /// Hands a started jail's reading over; its first turn (the catch-up read) follows
    /// at once. Returns the id to remove it by.
    pub fn add(&self, worker: Worker) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.send(Command::Add(id, Box::new(worker)));
        id
    }

    fn alive(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// Holds every jail's reading until the guard is dropped: the server starts its
    /// jails on every core, then the reactor reads what their logs hold, rather than
    /// the first jails' catch-up taking a core from the start of the others. Jails are
    /// still added and removed meanwhile.
    pub fn hold(&self) -> ReadingHeld<'_> {
        self.send(Command::Hold);
        ReadingHeld { reactor: self }
    }

    /// Takes a jail out and waits until it is: its positions are saved and its source
    /// closed. A turn in progress finishes first (it is bounded).
    pub fn remove(&self, id: u64) {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Remove(id, tx));
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                // A reactor that died would never answer.
                Err(RecvTimeoutError::Timeout) if !self.alive() => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Ends the thread (after the jails have been removed: any left are dropped with
    /// their positions saved).
    pub fn shutdown(&self) {
        self.send(Command::Shutdown);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// See [`Reactor::hold`].
#[derive(Debug)]
pub struct ReadingHeld<'a> {
    reactor: &'a Reactor,
}

impl Drop for ReadingHeld<'_> {
    fn drop(&mut self) {
        self.reactor.send(Command::Resume);
    }
}

struct Entry {
    id: u64,
    worker: Box<Worker>,
    /// A turn is due now: the source has news, or the last turn stopped at its bound.
    ready: bool,
    /// One of the source's descriptors was readable in the last wait.
    signalled: bool,
    /// The source's last poll failed: it is left alone until then, and read after.
    backoff: Option<Instant>,
}

impl Entry {
    /// When the reactor must look at this jail again whatever its descriptors say.
    fn deadline(&self) -> Instant {
        let own = self.worker.next_turn();
        self.backoff
            .or_else(|| self.worker.source_deadline())
            .map_or(own, |at| own.min(at))
    }
}

/// Returns the free pages of the heap to the system: glibc keeps what is freed in the
/// middle of its heap, so the engines of quiet jails would stay resident otherwise.
#[allow(unsafe_code)]
fn give_back_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim(3) only walks the allocator's own free lists, under its lock.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How late a deadline may be met so that it is met together with an earlier one.
const COALESCE: Duration = Duration::from_millis(100);

/// How long a source whose poll failed is left alone.
const POLL_BACKOFF: Duration = Duration::from_millis(500);

fn run(listener: &WakeListener, inbox: &Mutex<Vec<Command>>, logger: &Logger) {
    let mut jails: Vec<Entry> = Vec::new();
    let mut held = 0u32;
    loop {
        listener.take();
        let commands = std::mem::take(&mut *inbox.lock().unwrap_or_else(PoisonError::into_inner));
        for command in commands {
            match command {
                Command::Add(id, worker) => jails.push(Entry {
                    id,
                    worker,
                    ready: true,
                    signalled: false,
                    backoff: None,
                }),
                Command::Remove(id, done) => {
                    if let Some(at) = jails.iter().position(|e| e.id == id) {
                        let mut entry = jails.remove(at);
                        entry.worker.finish();
                    }
                    let _ = done.send(());
                }
                Command::Hold => held += 1,
                Command::Resume => held = held.saturating_sub(1),
                Command::Shutdown => {
                    for entry in &mut jails {
                        entry.worker.finish();
                    }
                    return;
                }
            }
        }
        if held > 0 {
            // Only the inbox matters until the reading resumes.
            if rampart_source::wait_readable(&[listener.fd()], Duration::from_secs(3600)).is_err() {
                std::thread::sleep(POLL_BACKOFF);
            }
            continue;
        }

        let now = Instant::now();
        for entry in &mut jails {
            if entry.backoff.is_some_and(|at| now >= at) {
                entry.backoff = None;
                entry.ready = true;
            }
            let due = entry.worker.source_deadline().is_some_and(|at| now >= at);
            if entry.backoff.is_none() && (std::mem::take(&mut entry.signalled) || due) {
                match entry.worker.poll_source() {
                    Ok(news) => entry.ready |= news,
                    Err(()) => entry.backoff = Some(now + POLL_BACKOFF),
                }
            }
        }

        // Each due jail gets one bounded turn per round, in start order.
        let mut failed = Vec::new();
        let mut released = false;
        for (at, entry) in jails.iter_mut().enumerate() {
            if !entry.ready && Instant::now() < entry.worker.next_turn() {
                continue;
            }
            match catch_unwind(AssertUnwindSafe(|| entry.worker.turn())) {
                Ok(more) => {
                    entry.ready = more;
                    // Right after the turn, so that the next jail's catch-up reuses the
                    // memory. A release that falls due brings a turn of its own (it is
                    // part of `next_turn`).
                    released |= entry.worker.release_engines_if_quiet(Instant::now());
                }
                Err(_) => failed.push(at),
            }
        }
        if released {
            give_back_freed_memory();
        }
        for at in failed.into_iter().rev() {
            let entry = jails.remove(at);
            // Its state may be half-updated: positions are not saved, so the lines of
            // this turn are read again if the jail is restarted.
            logger.log(
                ERROR,
                "fail2ban.filter",
                &format!(
                    "[{}] reading the logs failed unexpectedly; the jail reads nothing \
                     until it is restarted",
                    entry.worker.name()
                ),
            );
            // A second panic while closing its source must not take the reactor along.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(entry)));
        }

        let timeout = if jails.iter().any(|e| e.ready) {
            Duration::ZERO
        } else {
            let deadlines: Vec<Instant> = jails.iter().map(Entry::deadline).collect();
            // Deadlines a little after the earliest are met together with it, late by
            // at most COALESCE: the jails' periodic sweeps then fall into step, and
            // ninety idle jails wake the thread a few times per sweep interval instead
            // of ninety. Log lines and commands come through the descriptors, never late.
            let earliest = deadlines.iter().min().copied();
            let at = earliest.and_then(|first| {
                deadlines
                    .iter()
                    .filter(|d| **d <= first + COALESCE)
                    .max()
                    .copied()
            });
            at.map_or(Duration::from_secs(3600), |at| {
                at.saturating_duration_since(Instant::now())
            })
        };
        let mut owners: Vec<usize> = Vec::with_capacity(jails.len() * 2 + 1);
        let readable = {
            let mut fds = vec![listener.fd()];
            owners.push(usize::MAX);
            for (at, entry) in jails.iter().enumerate() {
                if entry.backoff.is_some() {
                    continue;
                }
                for fd in entry.worker.source_fds() {
                    fds.push(fd);
                    owners.push(at);
                }
            }
            rampart_source::wait_readable(&fds, timeout)
        };
        match readable {
            Ok(readable) => {
                for (owner, readable) in owners.into_iter().zip(readable) {
                    if readable && let Some(entry) = jails.get_mut(owner) {
                        entry.signalled = true;
                    }
                }
            }
            Err(e) => {
                logger.log(
                    ERROR,
                    "fail2ban.filter",
                    &format!("waiting for the logs failed: {e}"),
                );
                std::thread::sleep(POLL_BACKOFF);
            }
        }
    }
}
