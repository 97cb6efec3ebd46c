//! `fail2ban.conf` and `fail2ban.local`: the server's own settings.

use indexmap::IndexMap;

use crate::error::{ConfigError, Warning};
use crate::ini::{Ini, Loader};
use crate::jails::get_options;
use crate::readers::Kind;
use crate::stream::{Stream, Value};

/// The `[Definition]` (and `[Thread]`) settings of `fail2ban.conf`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    pub socket: String,
    pub pidfile: String,
    pub loglevel: String,
    pub logtarget: String,
    pub syslogsocket: String,
    pub allowipv6: String,
    pub dbfile: String,
    pub dbmaxmatches: Option<i64>,
    pub dbpurgeage: String,
    /// `[Thread] stacksize`, in KiB.
    pub thread_stacksize: Option<i64>,
    /// The settings as fail2ban's client sends them (the start of the stream).
    pub stream: Stream,
}

/// The numeric level of a log level name or number, as fail2ban accepts them.
pub fn log_level(value: &str) -> Option<i64> {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
        return value.parse().ok();
    }
    Some(match value.to_uppercase().as_str() {
        "CRITICAL" | "FATAL" => 50,
        "ERROR" => 40,
        "WARNING" | "WARN" => 30,
        "NOTICE" => 25,
        "INFO" => 20,
        "MSG" => 18,
        "DEBUG" => 10,
        "TRACEDEBUG" => 7,
        "HEAVYDEBUG" => 5,
        "NOTSET" => 0,
        _ => return None,
    })
}

fn text(opts: &IndexMap<String, Value>, key: &str) -> String {
    opts.get(key).map(Value::to_py_str).unwrap_or_default()
}

/// The name of the server settings file under `basedir`: rampart's own tree has
/// `rampart.conf`, a fail2ban tree `fail2ban.conf`; the first whose `.conf` or
/// `.local` exists wins.
pub fn server_file_name(fs: &dyn crate::FileSystem, basedir: &str) -> &'static str {
    let has = |name: &str| {
        ["conf", "local"]
            .iter()
            .any(|ext| fs.is_file(&crate::pypath::join(basedir, &format!("{name}.{ext}"))))
    };
    if has("rampart") {
        "rampart"
    } else {
        "fail2ban"
    }
}

pub(crate) fn read_server(loader: &mut Loader<'_>) -> Result<ServerSettings, ConfigError> {
    let name = server_file_name(loader.fs, &loader.basedir);
    let ini = match loader.read(name)? {
        Some((ini, _)) => ini,
        None => {
            loader.warnings.push(Warning::new(format!(
                "found no accessible config files for \"{name}\" under {}",
                loader.basedir
            )));
            Ini::default()
        }
    };
    let mut warnings = Vec::new();
    let early = get_options(
        &ini,
        "Definition",
        &[
            (Kind::Str, "socket", Some("/var/run/fail2ban/fail2ban.sock")),
            (Kind::Str, "pidfile", Some("/var/run/fail2ban/fail2ban.pid")),
            (Kind::Str, "loglevel", Some("INFO")),
            (Kind::Str, "logtarget", Some("/var/log/fail2ban.log")),
            (Kind::Str, "syslogsocket", Some("auto")),
        ],
        &mut warnings,
    )?;
    let mut opts = get_options(
        &ini,
        "Definition",
        &[
            (Kind::Str, "loglevel", Some("INFO")),
            (Kind::Str, "logtarget", Some("STDERR")),
            (Kind::Str, "syslogsocket", Some("auto")),
            (Kind::Str, "allowipv6", Some("auto")),
            (
                Kind::Str,
                "dbfile",
                Some("/var/lib/fail2ban/fail2ban.sqlite3"),
            ),
            (Kind::Int, "dbmaxmatches", None),
            (Kind::Str, "dbpurgeage", Some("1d")),
        ],
        &mut Vec::new(),
    )?;
    // The client's own settings (read first, with their own defaults) win.
    for (k, v) in &early {
        opts.insert(k.clone(), v.clone());
    }
    // Warnings for the second read repeat the first, except for the keys only it reads.
    let mut second = Vec::new();
    let _ = get_options(
        &ini,
        "Definition",
        &[
            (Kind::Str, "allowipv6", Some("auto")),
            (
                Kind::Str,
                "dbfile",
                Some("/var/lib/fail2ban/fail2ban.sqlite3"),
            ),
            (Kind::Int, "dbmaxmatches", None),
            (Kind::Str, "dbpurgeage", Some("1d")),
        ],
        &mut second,
    )?;
    warnings.extend(second);
    let loglevel = text(&opts, "loglevel");
    if log_level(&loglevel).is_none() {
        return Err(ConfigError::Invalid(format!(
            "fail2ban: invalid log level {loglevel:?}"
        )));
    }
    let mut thread_stacksize = None;
    if ini.has_section("Thread") {
        let thread = get_options(
            &ini,
            "Thread",
            &[(Kind::Int, "stacksize", None)],
            &mut warnings,
        )?;
        if !thread.is_empty() {
            if let Some(Value::Int(i)) = thread.get("stacksize") {
                thread_stacksize = Some(*i);
            }
            opts.insert("thread".into(), Value::Dict(thread.into_iter().collect()));
        }
    }
    loader.warnings.extend(warnings);
    let order = [
        ("thread", 0),
        ("syslogsocket", 11),
        ("loglevel", 12),
        ("logtarget", 13),
        ("allowipv6", 14),
        ("dbfile", 50),
        ("dbmaxmatches", 51),
        ("dbpurgeage", 51),
    ];
    let mut ordered: Vec<(i32, &str, Value)> = opts
        .iter()
        .filter_map(|(k, v)| {
            order
                .iter()
                .find(|(n, _)| n == k)
                .map(|(n, rank)| (*rank, *n, v.clone()))
        })
        .collect();
    ordered.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    let stream = ordered
        .into_iter()
        .map(|(_, k, v)| vec!["set".into(), k.into(), v])
        .collect();
    Ok(ServerSettings {
        socket: text(&opts, "socket"),
        pidfile: text(&opts, "pidfile"),
        loglevel,
        logtarget: text(&opts, "logtarget"),
        syslogsocket: text(&opts, "syslogsocket"),
        allowipv6: text(&opts, "allowipv6"),
        dbfile: text(&opts, "dbfile"),
        dbmaxmatches: match opts.get("dbmaxmatches") {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        },
        dbpurgeage: text(&opts, "dbpurgeage"),
        thread_stacksize,
        stream,
    })
}
