//! Errors and warnings, each naming the file and line where there is one.

use std::fmt;
use std::sync::Arc;

/// Where a value was written: file (relative to the configuration directory when it
/// lies inside), line, section and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: usize,
    pub section: String,
    pub key: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: [{}] {}",
            self.file, self.line, self.section, self.key
        )
    }
}

/// A configuration that cannot be read. fail2ban refuses to start on each of these.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file that is not valid INI.
    #[error("{file}:{line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
    /// A `%(name)s` reference that cannot be resolved, a lone `%`, or a chain of
    /// references deeper than fail2ban allows.
    #[error("{}: {message}{}", origin_text(.origin, .section, .option), context_text(.section, .option, .origin))]
    Interpolation {
        /// Where the faulty text was written, when it comes from a file.
        origin: Option<Box<Origin>>,
        /// The section and option being read when the error occurred.
        section: String,
        option: String,
        message: String,
    },
    /// None of the files of a logical name exists.
    #[error("found no accessible config files for {name:?} under {basedir}")]
    NotFound { name: String, basedir: String },
    /// The configuration directory itself is missing.
    #[error("configuration directory {0} does not exist")]
    NoBaseDir(String),
    /// `[INCLUDES]` nested too deeply (a cycle through differently spelled paths).
    #[error("{file}: [INCLUDES] nested too deeply")]
    IncludeDepth { file: String },
    /// Tags that refer to themselves.
    #[error("{file}: {message}")]
    Tags { file: String, message: String },
    /// An action definition fail2ban rejects as a whole (not just for its jail).
    #[error("[{jail}] {message}")]
    Jail { jail: String, message: String },
    /// Log files missing for an enabled jail, when that is an error.
    #[error("[{jail}] no log file found (logpath = {logpath:?})")]
    NoLogFile { jail: String, logpath: String },
    /// A value fail2ban rejects (an unknown log level, a journal match it cannot split).
    #[error("{0}")]
    Invalid(String),
}

fn origin_text(origin: &Option<Box<Origin>>, section: &str, option: &str) -> String {
    match origin {
        Some(o) => o.to_string(),
        None => format!("[{section}] {option}"),
    }
}

fn context_text(section: &str, option: &str, origin: &Option<Box<Origin>>) -> String {
    match origin {
        Some(o) if o.section == section && o.key == option => String::new(),
        Some(_) => format!(" (while reading [{section}] {option})"),
        None => String::new(),
    }
}

/// Something worth telling the user that does not stop the configuration from loading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The file (and line) concerned, when there is one.
    pub file: Option<String>,
    pub line: Option<usize>,
    /// The jail concerned, when there is one.
    pub jail: Option<String>,
    pub message: String,
}

impl Warning {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Warning {
            file: None,
            line: None,
            jail: None,
            message: message.into(),
        }
    }

    pub(crate) fn jail(jail: &str, message: impl Into<String>) -> Self {
        Warning {
            jail: Some(jail.to_string()),
            ..Warning::new(message)
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            _ => {}
        }
        if let Some(jail) = &self.jail {
            write!(f, "[{jail}] ")?;
        }
        f.write_str(&self.message)
    }
}
