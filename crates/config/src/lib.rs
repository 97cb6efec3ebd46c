//! fail2ban's configuration semantics on top of [`rampart_ini`].
//!
//! `.conf` → `.d/*.conf` → `.local` → `.d/*.local` overlays, `[INCLUDES] before/after`,
//! `%(name)s` interpolation (with `section/`, `known/` and `default/` forms), `<tag>`
//! substitution, `name[opt=val]` arguments, and the readers that turn a tree into
//! resolved jails, filters and actions. File access goes through a trait so that the
//! semantics can be tested without a disk.
//!
//! The main entry points:
//!
//! - [`read_configuration`]: the whole tree (server settings and every enabled jail),
//!   with the command stream fail2ban's client would send to its server;
//!   [`format_stream`] prints it exactly like `fail2ban-client -d`.
//! - [`read_filter`]: one filter, named with options (`sshd[mode=aggressive]`) or given
//!   as a file, the way `fail2ban-regex` loads it.
//! - [`read_server_settings`]: the settings of `fail2ban.conf`.
//! - [`substitute_tags`], [`extract_options`], [`split_with_options`]: the building
//!   blocks, reusable at run time (actions substitute tags per ban).
//!
//! Severity follows fail2ban: a bad `%(...)s` reference, a syntax error in any file or
//! self-referencing tags fail the whole read; a filter or action that cannot be read or
//! a malformed `name[...]` skips only its jail (a `config-error` command); missing log
//! files are warnings (or errors, see [`MissingLogs`]). Warnings are returned, never
//! printed.

mod args;
mod error;
mod fs;
mod glob;
mod ini;
mod jails;
mod pypath;
mod readers;
mod server;
mod shlex;
mod stream;
mod tags;

use indexmap::IndexMap;

pub use args::{Args, ArgsError, extract_options, split_with_options};
pub use error::{ConfigError, Origin, Warning};
pub use fs::{DirEntry, FileSystem, MemFs, OsFs};
pub use glob::{Pattern, glob};
pub use server::{ServerSettings, log_level, server_file_name};
pub use shlex::{ShlexError, split as shlex_split};
pub use stream::{Command, Stream, Value, format_command, format_stream, py_repr_str};
pub use tags::{MAX_TAG_REPLACE_COUNT, TagError, TagOptions, find_tag, substitute_tags};

/// The fail2ban version whose behaviour is reproduced; jails see it as
/// `%(fail2ban_version)s`.
pub const FAIL2BAN_VERSION: &str = "1.0.2";

/// What to do when an enabled jail has no log file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingLogs {
    /// Warn and keep the jail, as `fail2ban-client -d` does.
    #[default]
    Warn,
    /// Fail the whole read, as fail2ban 1.0.2 does when it starts.
    Error,
}

/// Settings of a read.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    pub missing_logs: MissingLogs,
    /// The value of `%(fail2ban_version)s`.
    pub fail2ban_version: String,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            missing_logs: MissingLogs::Warn,
            fail2ban_version: FAIL2BAN_VERSION.to_string(),
        }
    }
}

/// A filter with every option resolved, as the server receives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedFilter {
    /// The filter name (`sshd`), or the path of a filter file read directly.
    pub name: String,
    /// The first file of the filter that exists (`…/filter.d/sshd.conf`).
    pub file: String,
    /// The arguments given with the name, then the `[Init]` values.
    pub args: IndexMap<String, String>,
    pub prefregex: Option<String>,
    /// One regex per entry, empty lines dropped.
    pub failregex: Vec<String>,
    pub ignoreregex: Vec<String>,
    pub datepattern: Option<String>,
    pub maxlines: Option<usize>,
    pub usedns: Option<String>,
    /// Each `journalmatch` line split like a shell does.
    pub journalmatch: Vec<Vec<String>>,
    /// `file` or `journal` (or what the filter or its arguments say).
    pub logtype: Option<String>,
    /// Every combined option of the filter (tags resolved, `maxlines` an integer).
    pub options: IndexMap<String, Value>,
}

/// An action of a jail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// The name the action is registered under (`iptables-multiport`, or suffixed).
    pub name: String,
    /// The action file name (`iptables-multiport`), or the path of a Python action.
    pub file: String,
    /// For a Python action (`name.py[...]`): its arguments as JSON.
    pub python: Option<String>,
    /// Commands and parameters (`actionban`, `port`, `blocktype?family=inet6`, …) in
    /// the order they are sent.
    pub properties: Vec<(String, Value)>,
}

/// A monitored log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPath {
    pub path: String,
    /// `head` (read from the start) or `tail`, or any other last word of the line.
    pub position: String,
}

/// One jail: enabled, or skipped because of a configuration error.
#[derive(Clone, Debug, PartialEq)]
pub struct Jail {
    pub name: String,
    pub enabled: bool,
    /// The backend as written, with its arguments (`systemd[journalfiles=…]`).
    pub backend: String,
    pub filter: Option<ResolvedFilter>,
    pub actions: Vec<Action>,
    pub logpaths: Vec<LogPath>,
    /// Every jail option read (`maxretry`, `findtime`, `logpath`, …), typed.
    pub options: IndexMap<String, Value>,
    /// Why the jail is skipped.
    pub config_error: Option<String>,
    /// The jail's part of the command stream (without `start`).
    pub stream: Stream,
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Configuration {
    pub server: ServerSettings,
    /// Enabled jails and jails with configuration errors, in file order.
    pub jails: Vec<Jail>,
    /// Everything fail2ban's client would send, server settings first.
    pub stream: Stream,
    pub warnings: Vec<Warning>,
}

/// Reads `fail2ban.conf` and every jail under `basedir`.
pub fn read_configuration(
    fs: &dyn FileSystem,
    basedir: &str,
    options: &ReadOptions,
) -> Result<Configuration, ConfigError> {
    let mut loader = ini::Loader::new(fs, basedir);
    let server = server::read_server(&mut loader)?;
    let (jails, jail_stream) = jails::read_jails(&mut loader, options)?;
    let mut stream = server.stream.clone();
    stream.extend(jail_stream);
    Ok(Configuration {
        server,
        jails,
        stream,
        warnings: dedup(loader.warnings),
    })
}

/// The command stream of the configuration under `basedir`, and the warnings.
pub fn read_stream(
    fs: &dyn FileSystem,
    basedir: &str,
    options: &ReadOptions,
) -> Result<(Stream, Vec<Warning>), ConfigError> {
    let config = read_configuration(fs, basedir, options)?;
    Ok((config.stream, config.warnings))
}

/// Reads `fail2ban.conf`/`fail2ban.local` under `basedir`.
pub fn read_server_settings(
    fs: &dyn FileSystem,
    basedir: &str,
) -> Result<(ServerSettings, Vec<Warning>), ConfigError> {
    let mut loader = ini::Loader::new(fs, basedir);
    let server = server::read_server(&mut loader)?;
    Ok((server, dedup(loader.warnings)))
}

fn dedup(warnings: Vec<Warning>) -> Vec<Warning> {
    let mut out: Vec<Warning> = Vec::new();
    for w in warnings {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// What `fail2ban-regex` should do with its filter argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterRequest<'a> {
    /// A filter name with options (`sshd[mode=aggressive]`, looked up in
    /// `basedir/filter.d`), or a path to a filter file (with or without options).
    pub spec: &'a str,
    /// The jail name the filter is read for (`fail2ban-regex-jail` in fail2ban-regex).
    pub jail_name: &'a str,
    /// Jail options visible to the filter (they also replace the filter's own
    /// `failregex`, `datepattern`, … when given).
    pub jail_vars: &'a IndexMap<String, String>,
    /// The backend, which decides the default `logtype` (`systemd*` → `journal`).
    pub backend: &'a str,
}

/// Reads one filter the way `fail2ban-regex` does: a name found in `basedir/filter.d`
/// (or a path inside a `filter.d`) gets the full overlay treatment; a file elsewhere is
/// read on its own with its includes and its `.local`. Returns
/// [`ConfigError::NotFound`] when `spec` names no filter file (fail2ban-regex then
/// takes it as a regular expression).
pub fn read_filter(
    fs: &dyn FileSystem,
    basedir: &str,
    request: &FilterRequest<'_>,
) -> Result<(ResolvedFilter, Vec<Warning>), ConfigError> {
    let spec = request.spec;
    let not_found = || ConfigError::NotFound {
        name: spec.to_string(),
        basedir: basedir.to_string(),
    };
    if !looks_like_filter_name(spec) {
        return Err(not_found());
    }
    let (name, args) =
        extract_options(spec).map_err(|e| ConfigError::Invalid(format!("filter {spec:?}: {e}")))?;
    let tail: String = {
        let chars: Vec<char> = name.chars().collect();
        chars[chars.len().saturating_sub(6)..].iter().collect()
    };
    let candidates: Vec<String> = if tail.contains('.') {
        vec![name.clone()]
    } else {
        vec![
            name.clone(),
            format!("{name}.conf"),
            format!("{name}.local"),
        ]
    };
    let mut dir = basedir.trim_end_matches('/').to_string();
    let mut found = None;
    for candidate in candidates {
        let path = if !candidate.contains('/') {
            if pypath::basename(&dir) == "filter.d" {
                pypath::join(&dir, &candidate)
            } else {
                pypath::join(&pypath::join(&dir, "filter.d"), &candidate)
            }
        } else {
            dir = pypath::dirname(&candidate).to_string();
            candidate
        };
        if fs.is_file(&path) {
            found = Some(path);
            break;
        }
    }
    let Some(path) = found else {
        return Err(not_found());
    };
    let standard = dir == basedir.trim_end_matches('/')
        || pypath::basename(&dir) == "filter.d"
        || (!tail.contains('.') && !name.contains('/'));
    if standard {
        let root = if pypath::basename(&dir) == "filter.d" {
            pypath::dirname(&dir).to_string()
        } else {
            dir.clone()
        };
        let short = pypath::splitext(pypath::basename(&name)).0.to_string();
        let mut loader = ini::Loader::new(fs, &root);
        let logical = pypath::join("filter.d", &short);
        let Some(cfg) = loader.shared(&logical)? else {
            return Err(not_found());
        };
        let mut filter = jails::read_one_filter(
            &mut loader,
            cfg,
            logical.clone(),
            args,
            request.jail_name,
            request.jail_vars,
            request.backend,
        )?;
        filter.name = short;
        filter.file = loader.main_file(&logical).unwrap_or(path);
        Ok((filter, dedup(loader.warnings)))
    } else {
        let mut loader = ini::Loader::new(fs, pypath::dirname(&name));
        let Some((ini, _)) = loader.read_files(std::slice::from_ref(&name))? else {
            return Err(not_found());
        };
        let mut filter = jails::read_one_filter(
            &mut loader,
            std::rc::Rc::new(ini),
            name.clone(),
            args,
            request.jail_name,
            request.jail_vars,
            request.backend,
        )?;
        filter.name = name.clone();
        filter.file = name;
        Ok((filter, dedup(loader.warnings)))
    }
}

/// A line of `spec` that is a path-like name (`/{0,3}[\w/.-]+`), optionally followed by
/// `[...]` up to a line end: what fail2ban-regex tries as a filter before taking the
/// value as a regular expression.
fn looks_like_filter_name(spec: &str) -> bool {
    let name_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '/' | '-' | '.');
    let mut offset = 0;
    for line in spec.split('\n') {
        let rest = &spec[offset..];
        offset += line.len() + 1;
        let trimmed = line.trim_start_matches('/');
        if line.len() - trimmed.len() > 3 {
            continue;
        }
        let name_len = trimmed
            .find(|c: char| !name_char(c))
            .unwrap_or(trimmed.len());
        if name_len == 0 {
            continue;
        }
        let after = &trimmed[name_len..];
        if after.is_empty() {
            return true;
        }
        if after.starts_with('[') {
            // `\[.*\]$` across lines: a `]` ending a line (or the text) further on.
            let start = line.len() - after.len();
            let tail = &rest[start..];
            if tail
                .match_indices(']')
                .any(|(i, _)| tail[i + 1..].is_empty() || tail[i + 1..].starts_with('\n'))
            {
                return true;
            }
        }
    }
    false
}

/// The filter settings found in a stream (the server's view of a jail's filter).
pub fn filter_from_commands(stream: &Stream) -> ResolvedFilter {
    let mut filter = ResolvedFilter::default();
    for cmd in stream {
        let (Some(verb), Some(opt)) = (
            cmd.first().and_then(Value::as_str),
            cmd.get(2).and_then(Value::as_str),
        ) else {
            continue;
        };
        let values: Vec<Value> = match (verb, cmd.get(3)) {
            ("multi-set", Some(Value::List(list))) => list.clone(),
            ("set", _) => cmd[3..].to_vec(),
            _ => continue,
        };
        let first = values.first().map(Value::to_py_str);
        match opt {
            "prefregex" => filter.prefregex = first,
            "addfailregex" => filter.failregex.extend(values.iter().map(Value::to_py_str)),
            "addignoreregex" => filter
                .ignoreregex
                .extend(values.iter().map(Value::to_py_str)),
            "datepattern" => filter.datepattern = first,
            "maxlines" => {
                filter.maxlines = match values.first() {
                    Some(Value::Int(i)) => usize::try_from(*i).ok(),
                    _ => None,
                }
            }
            "usedns" => filter.usedns = first,
            "addjournalmatch" => filter
                .journalmatch
                .push(values.iter().map(Value::to_py_str).collect()),
            _ => {}
        }
    }
    filter
}

#[cfg(test)]
mod tests;
