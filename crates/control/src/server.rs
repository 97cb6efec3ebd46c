//! The server side: a Unix socket that answers fail2ban's control protocol.

use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::pickle;
use crate::value::{PyException, PyValue};
use crate::wire::{CLOSE, END, FrameError, Framer};

/// Answers one command. Implemented by the daemon; the control crate knows nothing of
/// jails.
///
/// An `Err` becomes fail2ban's error reply `(1, exception)`; pick the exception with
/// [`PyException`]'s constructors so that `fail2ban-client` prints what it prints for
/// fail2ban (`unknown_jail` → "Sorry but the jail 'x' does not exist",
/// `failed("Invalid command")` for an unknown command, …).
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &Request) -> Result<PyValue, PyException>;
}

impl<F> Handler for F
where
    F: Fn(&Request) -> Result<PyValue, PyException> + Send + Sync + 'static,
{
    fn handle(&self, request: &Request) -> Result<PyValue, PyException> {
        self(request)
    }
}

/// One command as received.
#[derive(Debug)]
pub struct Request {
    values: Vec<PyValue>,
    words: Vec<String>,
    shutdown: ShutdownHandle,
}

impl Request {
    /// A request as the server would build it from a received command, for calling a
    /// [`Handler`] directly (its [`Request::stop_server`] does nothing).
    pub fn new(values: Vec<PyValue>) -> Request {
        Request {
            words: values.iter().map(|v| v.to_string()).collect(),
            values,
            shutdown: ShutdownHandle {
                stopping: Arc::new(AtomicBool::new(false)),
                woken: Arc::new(AtomicBool::new(false)),
                path: PathBuf::new(),
                inode: None,
            },
        }
    }

    /// The command as strings: fail2ban's client sends strings, except for a float
    /// timeout in its internal `ping` and the nested lists of `reload` and
    /// `server-stream`; those are given here as Python's `str()` of the value.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The command as sent, for the arguments that are lists (`reload`'s options and
    /// configuration stream, `server-stream`, `multi-set`).
    pub fn values(&self) -> &[PyValue] {
        &self.values
    }

    /// Stops the server once the reply to this request has been sent (what `stop`
    /// does).
    pub fn stop_server(&self) {
        self.shutdown.shutdown();
    }
}

/// Resource limits of a [`ControlServer`].
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest request accepted; a `reload` of a large configuration is a few
    /// hundred kilobytes.
    pub max_request_bytes: usize,
    /// Connections beyond this many at once are closed unanswered.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 16 << 20,
            max_connections: 64,
            idle_timeout: Some(Duration::from_secs(600)),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("a server is already answering on {}", .0.display())]
    AlreadyRunning(PathBuf),
    #[error("{} exists and is not a socket; not removing it", .0.display())]
    NotASocket(PathBuf),
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Stops a running [`ControlServer`]; cheap to clone and to hand to the daemon.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    stopping: Arc<AtomicBool>,
    /// Whether the accept thread was reached (see [`ShutdownHandle::shutdown`]).
    woken: Arc<AtomicBool>,
    path: PathBuf,
    inode: Option<u64>,
}

impl ShutdownHandle {
    /// Stops accepting connections and ends every connection after its current
    /// reply. Returns at once; [`ControlServer::wait`] waits for the end.
    pub fn shutdown(&self) {
        if !self.stopping.swap(true, Ordering::SeqCst) && !self.path.as_os_str().is_empty() {
            // The accept thread sleeps in accept(); a connection of our own wakes it.
            // That needs our socket file: if it was removed or replaced, nothing can
            // wake the thread, and it ends with the process instead.
            let ours = std::fs::metadata(&self.path).map(|m| m.ino()).ok() == self.inode;
            if ours && UnixStream::connect(&self.path).is_ok() {
                self.woken.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Whether shutdown has been asked for.
    pub fn is_shutting_down(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// A control socket being served by an accept thread and one thread per connection.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    shutdown: ShutdownHandle,
    accept: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Binds `path` (owner-only, mode 0600) and starts answering with `handler`.
    ///
    /// An existing socket is removed only when no server answers on it; anything else
    /// at that path is left alone and is an error.
    pub fn start(path: impl AsRef<Path>, handler: impl Handler) -> Result<Self, ServerError> {
        Self::start_with(path, Arc::new(handler), Limits::default())
    }

    /// [`ControlServer::start`] with explicit limits and a shared handler.
    pub fn start_with(
        path: impl AsRef<Path>,
        handler: Arc<dyn Handler>,
        limits: Limits,
    ) -> Result<Self, ServerError> {
        let path = path.as_ref().to_path_buf();
        let listener = bind_private(&path)?;
        let inode = std::fs::metadata(&path).map(|m| m.ino()).ok();
        let shutdown = ShutdownHandle {
            stopping: Arc::new(AtomicBool::new(false)),
            woken: Arc::new(AtomicBool::new(false)),
            path: path.clone(),
            inode,
        };
        let accept = {
            let shutdown = shutdown.clone();
            let socket = path.clone();
            std::thread::Builder::new()
                .name("control-accept".into())
                .spawn(move || {
                    accept_loop(&listener, &handler, &limits, &shutdown);
                    drop(listener);
                    remove_if_ours(&socket, inode);
                })
                .map_err(|source| ServerError::Io {
                    what: "start the accept thread for",
                    path: path.clone(),
                    source,
                })?
        };
        Ok(ControlServer {
            path,
            shutdown,
            accept: Some(accept),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle that stops this server from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Asks the server to stop (see [`ShutdownHandle::shutdown`]).
    pub fn shutdown(&self) {
        self.shutdown.shutdown();
    }

    /// Blocks until the server has stopped (after a `stop` command whose handler
    /// called [`Request::stop_server`], or a [`ShutdownHandle::shutdown`]), and the
    /// socket file is gone.
    pub fn wait(mut self) {
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if let Some(t) = self.accept.take() {
            self.shutdown.shutdown();
            // Joining a thread nothing could wake would hang the daemon's exit.
            if self.shutdown.woken.load(Ordering::SeqCst) || t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ServerError + use<> {
    let path = path.to_path_buf();
    move |source| ServerError::Io { what, path, source }
}

/// Binds under a temporary name, restricts it to its owner and renames it into
/// place, so that there is no moment at which others could connect.
fn bind_private(path: &Path) -> Result<UnixListener, ServerError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ServerError::NotASocket(path.to_path_buf()));
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => return Err(ServerError::AlreadyRunning(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(io_error("remove the stale socket", path))?;
            }
            Err(e) => return Err(io_error("probe the existing socket", path)(e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("inspect", path)(e)),
    }
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(
        ".{}.{}.new",
        file_name.unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&temp);
    let listener = match UnixListener::bind(&temp) {
        Ok(l) => l,
        // The temporary name can exceed the 107 bytes a socket path may have when the
        // final one does not; fall back to binding in place.
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            let l = UnixListener::bind(path).map_err(io_error("bind", path))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(io_error("restrict the permissions of", path))?;
            return Ok(l);
        }
        Err(e) => return Err(io_error("bind", &temp)(e)),
    };
    let placed = std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))
        .map_err(io_error("restrict the permissions of", &temp))
        .and_then(|()| std::fs::rename(&temp, path).map_err(io_error("move the socket to", path)));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    Ok(listener)
}

fn remove_if_ours(path: &Path, inode: Option<u64>) {
    let current = std::fs::symlink_metadata(path).map(|m| m.ino()).ok();
    if current.is_some() && current == inode {
        let _ = std::fs::remove_file(path);
    }
}

fn accept_loop(
    listener: &UnixListener,
    handler: &Arc<dyn Handler>,
    limits: &Limits,
    shutdown: &ShutdownHandle,
) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut failures = 0u32;
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(_) if shutdown.is_shutting_down() => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // Out of descriptors and the like: back off rather than spin.
                failures = failures.saturating_add(1);
                std::thread::sleep(Duration::from_millis(10 * u64::from(failures.min(50))));
                continue;
            }
        };
        failures = 0;
        if shutdown.is_shutting_down() {
            break;
        }
        if active.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
            active.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let guard = ActiveGuard(Arc::clone(&active));
        let handler = Arc::clone(handler);
        let limits = limits.clone();
        let shutdown = shutdown.clone();
        let spawned = std::thread::Builder::new()
            .name("control-conn".into())
            .spawn(move || {
                let _guard = guard;
                serve_connection(stream, &*handler, &limits, &shutdown);
            });
        // A thread that cannot be spawned drops its closure, and the guard with it.
        drop(spawned);
    }
}

struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve_connection(
    mut stream: UnixStream,
    handler: &dyn Handler,
    limits: &Limits,
    shutdown: &ShutdownHandle,
) {
    let _ = stream.set_read_timeout(limits.idle_timeout);
    let mut framer = Framer::default();
    loop {
        let reply = match framer.next_message(&mut stream, limits.max_request_bytes) {
            Ok(None) | Err(FrameError::Io(_) | FrameError::Truncated) => break,
            Ok(Some(message)) if message == CLOSE => break,
            Ok(Some(message)) => answer(&message, handler, shutdown),
            Err(FrameError::TooLarge(limit)) => {
                let e = PyException::failed(format!("request larger than {limit} bytes"));
                let _ = send_reply(&mut stream, &error_reply(e));
                break;
            }
        };
        if send_reply(&mut stream, &reply).is_err() || shutdown.is_shutting_down() {
            break;
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn send_reply(stream: &mut UnixStream, reply: &PyValue) -> io::Result<()> {
    let mut bytes = pickle::encode(reply);
    bytes.extend_from_slice(END);
    stream.write_all(&bytes)
}

fn error_reply(e: PyException) -> PyValue {
    PyValue::Tuple(vec![PyValue::Int(1), PyValue::Exception(e)])
}

/// Decodes one request and runs it; every failure is an error reply.
fn answer(message: &[u8], handler: &dyn Handler, shutdown: &ShutdownHandle) -> PyValue {
    let values = match pickle::decode(message) {
        Ok(PyValue::List(v) | PyValue::Tuple(v)) => v,
        Ok(other) => {
            return error_reply(PyException::failed(format!(
                "invalid request: expected a list of arguments, got {}",
                other.repr()
            )));
        }
        Err(e) => return error_reply(PyException::failed(format!("invalid request: {e}"))),
    };
    if values.is_empty() {
        // What indexing an empty command raises in fail2ban.
        return error_reply(PyException::missing_argument("list index out of range"));
    }
    let request = Request {
        shutdown: shutdown.clone(),
        ..Request::new(values)
    };
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(&request)));
    match outcome {
        Ok(Ok(value)) => PyValue::Tuple(vec![PyValue::Int(0), value]),
        Ok(Err(e)) => error_reply(e),
        Err(_) => error_reply(PyException::failed(format!(
            "internal error while handling {}",
            request.words.first().map(String::as_str).unwrap_or("")
        ))),
    }
}
