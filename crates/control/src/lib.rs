//! fail2ban's control protocol, both ends: the socket `fail2ban-client` talks to, and
//! a client that talks and prints like `fail2ban-client`.
//!
//! The unmodified Python `fail2ban-client` must be able to drive `rampart server`, and
//! `rampart`'s own client commands must work against either server. So this crate
//! speaks the wire format exactly:
//!
//! - **Wire** ([`wire`]): a request is a pickled list of arguments followed by
//!   `<F2B_END_COMMAND>`; the reply is a pickled `(code, result)` with the same
//!   terminator, code 0 for a result and 1 for a pickled exception. One connection may
//!   carry many commands and ends with `<F2B_CLOSE_COMMAND>`.
//! - **Values** ([`PyValue`], [`pickle`]): the pickle subset Python 3 writes for these
//!   values (protocols 2 to 5 read, protocol 4 written), including exception objects
//!   in error replies, decoded without ever trusting a length or a reference.
//! - **Server** ([`ControlServer`]): a Unix socket created owner-only (mode 0600), an
//!   accept thread, a thread per connection, bounded request size and connection
//!   count. Each command goes to a [`Handler`] the daemon implements; the crate knows
//!   nothing of jails.
//! - **Client** ([`Client`], [`cli`], [`beautify`]): fail2ban-client's command-line
//!   grammar, the commands it sends, and the text it prints for every reply (status
//!   trees, "Current …" answers, Python's `print()` of everything else), with its exit
//!   codes (0, or 255 on any failure).
//!
//! ```no_run
//! use rampart_control::{ControlServer, PyException, PyValue, Request};
//!
//! let server = ControlServer::start("/run/rampart/rampart.sock", |r: &Request| {
//!     match r.words() {
//!         [w] if w == "ping" => Ok(PyValue::str("pong")),
//!         [w] if w == "stop" => {
//!             r.stop_server(); // after this reply has been sent
//!             Ok(PyValue::None)
//!         }
//!         [w, jail] if w == "status" => Err(PyException::unknown_jail(jail.as_str())),
//!         _ => Err(PyException::failed("Invalid command")),
//!     }
//! })?;
//! server.wait();
//! # Ok::<(), rampart_control::ServerError>(())
//! ```

pub mod beautify;
pub mod cli;
mod client;
pub mod pickle;
mod server;
mod value;
pub mod wire;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

pub use client::{Client, ClientError, MAX_REPLY_BYTES, Reply};
pub use server::{ControlServer, Handler, Limits, Request, ServerError, ShutdownHandle};
pub use value::{PyException, PyValue, float_repr, str_repr};

/// fail2ban-client's exit code on success.
pub const EXIT_OK: i32 = 0;
/// fail2ban-client's exit code on any failure.
pub const EXIT_FAILURE: i32 = 255;

/// Sends `commands` in order over one connection, printing each reply to `out` as
/// fail2ban-client does and its errors to `err`. Returns whether every command
/// succeeded (fail2ban-client then exits 0, else 255).
///
/// `show` false prints nothing but errors reaching the server, as fail2ban-client's
/// internal pings do.
pub fn run_commands(
    socket: &Path,
    commands: &[Vec<PyValue>],
    timeout: Option<Duration>,
    show: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> bool {
    let mut client = match Client::connect(socket) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "ERROR   {e}");
            return false;
        }
    };
    if let Err(e) = client.set_timeout(timeout) {
        let _ = writeln!(err, "ERROR   {e}");
        return false;
    }
    let mut all_ok = true;
    for command in commands {
        let words: Vec<String> = command.iter().map(PyValue::to_string).collect();
        match client.send_values(command) {
            Ok(reply) if reply.is_ok() => {
                if show {
                    if beautify::beautify_strict(&words, &reply.value).is_none() {
                        let _ = writeln!(
                            err,
                            "WARNING unexpected reply to {}: {}",
                            words.first().map(String::as_str).unwrap_or(""),
                            reply.value.repr()
                        );
                    }
                    let text = beautify::beautify(&words, &reply.value);
                    let _ = writeln!(out, "{text}");
                }
            }
            Ok(reply) => {
                let args = match &reply.value {
                    PyValue::Exception(e) => e.args_repr(),
                    other => other.repr(),
                };
                let _ = writeln!(err, "ERROR   NOK: {args}");
                if show {
                    let _ = writeln!(out, "{}", beautify::beautify_error(&reply.value));
                }
                all_ok = false;
            }
            Err(e) => {
                let _ = writeln!(err, "ERROR   {e}");
                return false;
            }
        }
    }
    let _ = out.flush();
    all_ok
}

/// [`run_commands`] for commands of plain words.
pub fn run_words(
    socket: &Path,
    commands: &[Vec<String>],
    timeout: Option<Duration>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> bool {
    let commands: Vec<Vec<PyValue>> = commands
        .iter()
        .map(|c| c.iter().map(|w| PyValue::Str(w.clone())).collect())
        .collect();
    run_commands(socket, &commands, timeout, true, out, err)
}
