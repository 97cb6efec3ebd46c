//! The client side: one connection to a control socket, any number of commands.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::pickle::{self, DecodeError};
use crate::value::PyValue;
use crate::wire::{CLOSE, END, FrameError, Framer};

/// The largest reply read (a ban list with times for a million addresses is ~60 MB).
pub const MAX_REPLY_BYTES: usize = 256 << 20;

/// A server's answer: `code` 0 with the result, or 1 with the exception raised.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub code: i64,
    pub value: PyValue,
}

impl Reply {
    pub fn is_ok(&self) -> bool {
        self.code == 0
    }
}

/// Why talking to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server at {}: {}", path.display(), describe_connect(source))]
    Connect { path: PathBuf, source: io::Error },
    #[error("lost the connection to the server at {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("no reply from the server at {} within the timeout", path.display())]
    Timeout { path: PathBuf },
    #[error("the server at {} closed the connection without replying", path.display())]
    Closed { path: PathBuf },
    #[error("the server at {} sent a reply larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: usize },
    #[error("unreadable reply from the server at {}: {source}", path.display())]
    Decode { path: PathBuf, source: DecodeError },
    #[error("the server at {} answered: {message}", path.display())]
    Server { path: PathBuf, message: String },
}

fn describe_connect(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no socket there (is the server running?)".into(),
        io::ErrorKind::ConnectionRefused => {
            "connection refused (a stale socket: is the server running?)".into()
        }
        io::ErrorKind::PermissionDenied => "permission denied (you must be root)".into(),
        _ => e.to_string(),
    }
}

impl ClientError {
    /// Whether the server could not be reached at all (as opposed to failing later).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Connect { .. })
    }
}

/// A connection to a control socket.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
    framer: Framer,
}

impl Client {
    /// Connects to the server's socket.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, ClientError> {
        let path = path.as_ref().to_path_buf();
        match UnixStream::connect(&path) {
            Ok(stream) => Ok(Client {
                stream,
                path,
                framer: Framer::default(),
            }),
            Err(source) => Err(ClientError::Connect { path, source }),
        }
    }

    /// Limits how long one reply may take (`None`: wait as long as it takes).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let timeout = timeout.filter(|t| !t.is_zero());
        self.stream.set_read_timeout(timeout).map_err(io)?;
        self.stream.set_write_timeout(timeout).map_err(io)
    }

    /// Sends one command of string arguments and returns the reply.
    pub fn send(&mut self, command: &[String]) -> Result<Reply, ClientError> {
        let values: Vec<PyValue> = command.iter().map(|s| PyValue::Str(s.clone())).collect();
        self.send_values(&values)
    }

    /// Sends one command whose arguments may be lists (`reload`'s stream).
    pub fn send_values(&mut self, command: &[PyValue]) -> Result<Reply, ClientError> {
        let mut bytes = pickle::encode(&PyValue::List(command.to_vec()));
        bytes.extend_from_slice(END);
        self.stream
            .write_all(&bytes)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        // A reply cut at terminator bytes inside its text decodes as truncated; the
        // real end is further on.
        let decoded =
            self.framer.next_frame(
                &mut self.stream,
                MAX_REPLY_BYTES,
                |m| match pickle::decode(m) {
                    Err(DecodeError::Truncated(_)) => None,
                    other => Some(other),
                },
            );
        let decoded = match decoded {
            Ok(Some(d)) => d,
            Ok(None) | Err(FrameError::Truncated) => {
                return Err(ClientError::Closed {
                    path: self.path.clone(),
                });
            }
            Err(FrameError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ClientError::Timeout {
                    path: self.path.clone(),
                });
            }
            Err(FrameError::Io(source)) => {
                return Err(ClientError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
            Err(FrameError::TooLarge(limit)) => {
                return Err(ClientError::TooLarge {
                    path: self.path.clone(),
                    limit,
                });
            }
        };
        let value = decoded.map_err(|source| ClientError::Decode {
            path: self.path.clone(),
            source,
        })?;
        match value {
            PyValue::Tuple(mut pair) if pair.len() == 2 => {
                let value = pair.pop().unwrap_or(PyValue::None);
                match pair.pop() {
                    Some(PyValue::Int(code)) => Ok(Reply { code, value }),
                    Some(PyValue::Bool(b)) => Ok(Reply {
                        code: i64::from(b),
                        value,
                    }),
                    other => Err(ClientError::Server {
                        path: self.path.clone(),
                        message: format!("a reply without a status code: {other:?}"),
                    }),
                }
            }
            // fail2ban answers a request it cannot unpickle with a bare "ERROR: …".
            other => Err(ClientError::Server {
                path: self.path.clone(),
                message: other.to_string(),
            }),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let mut bye = CLOSE.to_vec();
        bye.extend_from_slice(END);
        let _ = self.stream.write_all(&bye);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}
