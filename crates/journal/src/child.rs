//! One `journalctl` process and the thread that turns its output into lines.
//!
//! The thread parses and formats (so the jail's thread only matches) and hands batches
//! over a bounded channel: a jail that falls behind slows journalctl down instead of
//! buffering the journal in memory. Dropping a [`Child`] kills the process, reaps it and
//! joins the thread, so no process outlives its jail and none is left a zombie.

use std::ffi::OsString;
use std::io::{BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use rampart_source::Waker;

use crate::export::{Entry, ExportReader};
use crate::format::{entry_time, format_entry};

/// Lines per batch; a batch is also sent whenever journalctl has nothing more buffered,
/// so a single new entry is not held back.
const BATCH: usize = 512;
/// Batches in flight between the reader thread and the jail.
const IN_FLIGHT: usize = 16;
/// How much of journalctl's stderr is kept for the report.
const STDERR_KEPT: u64 = 4096;

/// One journal entry as a line.
#[derive(Debug, Clone)]
pub struct JournalLine {
    pub bytes: Vec<u8>,
    pub time: Option<SystemTime>,
    /// `__REALTIME_TIMESTAMP` in µs: the journal's own order, used for positions.
    pub realtime: Option<u64>,
    pub cursor: Option<String>,
    /// A field was too long and was cut.
    pub cut: bool,
}

#[derive(Debug)]
pub(crate) enum Message {
    Lines(Vec<JournalLine>),
    /// journalctl's output ended; `malformed` says why it ended early, if it did.
    End {
        malformed: Option<String>,
        stderr: String,
    },
}

/// A running journalctl.
#[derive(Debug)]
pub(crate) struct Child {
    process: std::process::Child,
    rx: Option<Receiver<Message>>,
    thread: Option<JoinHandle<()>>,
    pub started: Instant,
}

impl Child {
    pub(crate) fn spawn(program: &Path, args: &[OsString], waker: Waker) -> std::io::Result<Child> {
        let mut process = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("SYSTEMD_PAGER", "")
            .env("SYSTEMD_COLORS", "0")
            // Its own process group: a Ctrl-C or a `kill` of the daemon's group reaches
            // the daemon, which stops its jails and ends this child itself, instead of
            // killing journalctl first and logging that as a failure.
            .process_group(0)
            .spawn()?;
        let stdout = process.stdout.take();
        let stderr = process.stderr.take();
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("journalctl-reader".into())
            .spawn(move || read_output(stdout, stderr, &tx, &waker));
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                let _ = process.kill();
                let _ = process.wait();
                return Err(e);
            }
        };
        Ok(Child {
            process,
            rx: Some(rx),
            thread: Some(thread),
            started: Instant::now(),
        })
    }

    /// The next message, if one is ready. `None` also once the thread is gone.
    pub(crate) fn try_next(&self) -> Option<Message> {
        self.rx.as_ref()?.try_recv().ok()
    }

    /// Waits for the process after its output ended.
    pub(crate) fn finish(mut self) -> Option<ExitStatus> {
        // The output has ended, so the process is exiting; a kill only hurries a
        // journalctl that stopped writing because its output was malformed.
        let status = match self.process.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                let _ = self.process.kill();
                self.process.wait().ok()
            }
        };
        self.shutdown();
        status
    }

    fn shutdown(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        // Dropping the receiver makes a reader thread blocked on a full channel return.
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn read_output(
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
    tx: &SyncSender<Message>,
    waker: &Waker,
) {
    // stderr is drained on its own thread: a journalctl with much to complain about must
    // never block on it while we wait for its stdout.
    let stderr_thread = stderr.and_then(|stderr| {
        std::thread::Builder::new()
            .name("journalctl-stderr".into())
            .spawn(move || {
                let mut text = Vec::new();
                let mut stderr = stderr;
                let _ = (&mut stderr).take(STDERR_KEPT).read_to_end(&mut text);
                let _ = std::io::copy(&mut stderr, &mut std::io::sink());
                String::from_utf8_lossy(&text).trim().to_string()
            })
            .ok()
    });
    let mut malformed = None;
    if let Some(stdout) = stdout {
        let mut reader = ExportReader::new(BufReader::with_capacity(256 * 1024, stdout));
        let mut batch = Vec::with_capacity(BATCH);
        let mut entry = Entry::default();
        loop {
            match reader.next_into(&mut entry) {
                Ok(true) => {
                    batch.push(JournalLine {
                        bytes: format_entry(&entry),
                        time: entry_time(&entry),
                        realtime: entry.realtime,
                        cut: entry.cut,
                        cursor: (!entry.cursor.is_empty()).then(|| entry.cursor.clone()),
                    });
                    if batch.len() >= BATCH || reader.get_ref().buffer().is_empty() {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if tx.send(Message::Lines(full)).is_err() {
                            return;
                        }
                        waker.wake();
                    }
                }
                Ok(false) => break,
                Err(e) => {
                    malformed = Some(e.to_string());
                    break;
                }
            }
        }
        if !batch.is_empty() && tx.send(Message::Lines(batch)).is_err() {
            return;
        }
    }
    // Without its stdout (dropped above) journalctl cannot go on writing; stderr ends
    // when it exits.
    let stderr = stderr_thread
        .and_then(|t| t.join().ok())
        .unwrap_or_default();
    let _ = tx.send(Message::End { malformed, stderr });
    waker.wake();
}
