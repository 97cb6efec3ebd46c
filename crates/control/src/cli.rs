//! `fail2ban-client`'s command line: options, then a command.
//!
//! Options are parsed as Python's `getopt.getopt` parses them, because scripts depend
//! on its quirks: parsing stops at the first word that is not an option (so in
//! `status -v` the `-v` belongs to the command), short options cluster (`-vvq`), an
//! option's value may be attached (`-s/run/x.sock`, `--socket=/run/x.sock`), and a long
//! option may be shortened to any unambiguous prefix (`--sock`).

use std::path::PathBuf;
use std::time::Duration;

use crate::value::PyValue;

/// Options given before the command. Unset paths are for the caller to fill in from
/// `fail2ban.conf`, as fail2ban-client does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// `-c/--conf DIR` (the caller's default is `/etc/fail2ban`).
    pub conf: Option<PathBuf>,
    /// `-s/--socket FILE`.
    pub socket: Option<PathBuf>,
    /// `-p/--pidfile FILE`.
    pub pidfile: Option<PathBuf>,
    /// `--pname NAME`.
    pub pname: Option<String>,
    /// `--loglevel LEVEL`.
    pub loglevel: Option<String>,
    /// `--logtarget TARGET`.
    pub logtarget: Option<String>,
    /// `--syslogsocket auto|FILE`.
    pub syslogsocket: Option<String>,
    /// `--timeout T`, unparsed (a fail2ban time abbreviation; the default is 30 s).
    pub timeout: Option<String>,
    /// 1 by default, plus one per `-v`, minus one per `-q`.
    pub verbose: i32,
    /// `-d` (1) or `--dp`/`--dump-pretty` (2).
    pub dump: u8,
    /// `-t/--test`.
    pub test: bool,
    /// `-i`.
    pub interactive: bool,
    /// `-x`.
    pub force: bool,
    /// `-b` (true, the default) or `-f` (false).
    pub background: bool,
    /// `--async`.
    pub async_mode: bool,
}

/// What the command line asks for.
// Built once per process; boxing the options would only make matching clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Invocation {
    /// `-h/--help`, or an option error (`usage_error` set): print usage.
    Help { usage_error: Option<String> },
    /// `-V` (short: the bare version) or `--version`.
    Version { short: bool },
    /// `--str2sec VALUE`: print the value converted to seconds.
    Str2Sec(String),
    /// Everything else: options and the command words that followed them.
    Run { options: Options, args: Vec<String> },
}

/// What a command asks the client to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// No command given: print usage and fail.
    Usage,
    /// `start`: read the configuration, start a server, send it the stream.
    Start,
    /// `restart`: stop the server, wait for it to go, start it again.
    Restart,
    /// `reload [--restart] [--unban] [--if-exists] [JAIL|--all]` (and
    /// `restart [--unban] [--if-exists] JAIL`): read the configuration (of `jail`, or
    /// all) and send [`reload_command`].
    Reload {
        jail: Option<String>,
        options: Vec<String>,
    },
    /// Send these commands in order on one connection, printing each reply.
    Send {
        commands: Vec<Vec<String>>,
        /// `ping TIMEOUT`'s timeout for each reply.
        timeout: Option<Duration>,
    },
    /// A malformed client-side command; the message is logged as an error.
    Invalid(String),
}

const SHORT_WITH_VALUE: &str = "csp";
const SHORT_FLAGS: &str = "hxfbdtviqV";
/// (name, takes a value)
const LONG: &[(&str, bool)] = &[
    ("loglevel", true),
    ("logtarget", true),
    ("syslogsocket", true),
    ("test", false),
    ("async", false),
    ("conf", true),
    ("pidfile", true),
    ("pname", true),
    ("socket", true),
    ("timeout", true),
    ("str2sec", true),
    ("help", false),
    ("version", false),
    ("dp", false),
    ("dump-pretty", false),
];

/// Parses the arguments after the program name.
pub fn parse_args(args: &[String]) -> Invocation {
    let mut options = Options {
        verbose: 1,
        background: true,
        ..Options::default()
    };
    let usage = |e: String| Invocation::Help {
        usage_error: Some(e),
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let (name, takes_value) = match match_long(name) {
                Ok(m) => m,
                Err(e) => return usage(e),
            };
            let value = if takes_value {
                match attached {
                    Some(v) => Some(v),
                    None => {
                        i += 1;
                        match args.get(i) {
                            Some(v) => Some(v.clone()),
                            None => return usage(format!("option --{name} requires argument")),
                        }
                    }
                }
            } else if attached.is_some() {
                return usage(format!("option --{name} must not have an argument"));
            } else {
                None
            };
            if let Some(done) = apply(&mut options, name, value) {
                return done;
            }
            i += 1;
            continue;
        }
        let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) else {
            break;
        };
        for (at, c) in cluster.char_indices() {
            if SHORT_WITH_VALUE.contains(c) {
                let rest = &cluster[at + c.len_utf8()..];
                let value = if !rest.is_empty() {
                    rest.to_string()
                } else {
                    i += 1;
                    match args.get(i) {
                        Some(v) => v.clone(),
                        None => return usage(format!("option -{c} requires argument")),
                    }
                };
                if let Some(done) = apply(&mut options, &c.to_string(), Some(value)) {
                    return done;
                }
                break;
            } else if SHORT_FLAGS.contains(c) {
                if let Some(done) = apply(&mut options, &c.to_string(), None) {
                    return done;
                }
            } else {
                return usage(format!("option -{c} not recognized"));
            }
        }
        i += 1;
    }
    Invocation::Run {
        options,
        args: args[i.min(args.len())..].to_vec(),
    }
}

fn match_long(name: &str) -> Result<(&'static str, bool), String> {
    if let Some(&(n, v)) = LONG.iter().find(|(n, _)| *n == name) {
        return Ok((n, v));
    }
    let mut candidates = LONG.iter().filter(|(n, _)| n.starts_with(name));
    match (candidates.next(), candidates.next()) {
        (Some(&(n, v)), None) if !name.is_empty() => Ok((n, v)),
        (Some(_), Some(_)) => Err(format!("option --{name} not a unique prefix")),
        _ => Err(format!("option --{name} not recognized")),
    }
}

/// Applies one option; `Some` when the option ends parsing (help, version, str2sec).
fn apply(o: &mut Options, name: &str, value: Option<String>) -> Option<Invocation> {
    let value = value.unwrap_or_default();
    match name {
        "c" | "conf" => o.conf = Some(value.into()),
        "s" | "socket" => o.socket = Some(value.into()),
        "p" | "pidfile" => o.pidfile = Some(value.into()),
        "d" => o.dump = 1,
        "dp" | "dump-pretty" => o.dump = 2,
        "t" | "test" => o.test = true,
        "v" => o.verbose += 1,
        "q" => o.verbose -= 1,
        "x" => o.force = true,
        "i" => o.interactive = true,
        "b" => o.background = true,
        "f" => o.background = false,
        "async" => o.async_mode = true,
        "timeout" => o.timeout = Some(value),
        "str2sec" => return Some(Invocation::Str2Sec(value)),
        "h" | "help" => return Some(Invocation::Help { usage_error: None }),
        "V" => return Some(Invocation::Version { short: true }),
        "version" => return Some(Invocation::Version { short: false }),
        "pname" => o.pname = Some(value),
        "loglevel" => o.loglevel = Some(value),
        "logtarget" => o.logtarget = Some(value),
        "syslogsocket" => o.syslogsocket = Some(value),
        _ => {}
    }
    None
}

/// Turns the command words into what the client must do.
pub fn plan(args: &[String]) -> Plan {
    let Some(verb) = args.first() else {
        return Plan::Usage;
    };
    match verb.as_str() {
        "start" if args.len() == 1 => Plan::Start,
        "restart" if args.len() == 1 => Plan::Restart,
        // `restart … JAIL` is `reload --restart … JAIL`.
        "restart" => {
            let mut words = vec!["reload".to_string(), "--restart".to_string()];
            words.extend_from_slice(&args[1..]);
            plan(&words)
        }
        "reload" => {
            let mut options = Vec::new();
            let mut rest = &args[1..];
            while let Some(first) = rest.first() {
                if matches!(first.as_str(), "--restart" | "--unban" | "--if-exists") {
                    options.push(first.clone());
                    rest = &rest[1..];
                } else {
                    break;
                }
            }
            if rest.len() > 1 {
                let words = PyValue::str_list(rest.iter().cloned()).repr();
                return Plan::Invalid(format!("Unexpected argument(s) for reload: {words}"));
            }
            let jail = rest.first().filter(|j| *j != "--all").cloned();
            Plan::Reload { jail, options }
        }
        "ping" if args.len() > 1 => match args[1].trim().parse::<f64>() {
            // -1 is Python's "no timeout".
            Ok(-1.0) => Plan::Send {
                commands: vec![args.to_vec()],
                timeout: None,
            },
            Ok(t) if t.is_finite() && t >= 0.0 => Plan::Send {
                commands: vec![args.to_vec()],
                timeout: Some(Duration::from_secs_f64(t)),
            },
            Ok(t) if t.is_finite() => Plan::Invalid("Timeout value must be non-negative".into()),
            _ => Plan::Invalid(format!(
                "could not convert string to float: {}",
                PyValue::str(args[1].clone()).repr()
            )),
        },
        _ => Plan::Send {
            commands: vec![args.to_vec()],
            timeout: None,
        },
    }
}

/// The help text for `-h`, for a usage error, or for no command at all.
pub fn usage(program: &str) -> String {
    let mut text = format!(
        "Usage: {program} [OPTIONS] <COMMAND>\n\n\
         Talks to the rampart (or fail2ban) server over its control socket.\n\n\
         Options:\n"
    );
    let options = [
        (
            "-c, --conf <DIR>",
            "configuration directory (default /etc/fail2ban)",
        ),
        (
            "-s, --socket <FILE>",
            "control socket (default: from fail2ban.conf)",
        ),
        ("-p, --pidfile <FILE>", "pid file of the server"),
        ("--pname <NAME>", "process name of a server this starts"),
        ("--loglevel <LEVEL>", "log level for a server this starts"),
        (
            "--logtarget <TARGET>",
            "log target: a file, STDOUT, STDERR, SYSLOG, SYSTEMD-JOURNAL",
        ),
        (
            "--syslogsocket auto|<FILE>",
            "syslog socket for a server this starts",
        ),
        (
            "-d, --dp, --dump-pretty",
            "print the configuration as the commands sent to the server",
        ),
        ("-t, --test", "check the configuration"),
        ("-i", "interactive: read commands from the terminal"),
        ("-v, -q", "more or less output"),
        ("-x", "remove a stale socket when starting the server"),
        (
            "-b, -f",
            "start the server in the background (default) or foreground",
        ),
        (
            "--async",
            "internal: start the server without reading the configuration",
        ),
        (
            "--timeout <TIME>",
            "how long to wait for the server to start",
        ),
        (
            "--str2sec <TIME>",
            "print a time abbreviation (1h30m) in seconds",
        ),
        ("-h, --help", "this text"),
        ("-V, --version", "the version (-V: machine-readable)"),
    ];
    let commands = [
        (
            "start | restart | stop",
            "start, restart or stop the server and its jails",
        ),
        (
            "reload [--restart] [--unban] [--all|JAIL]",
            "re-read the configuration",
        ),
        (
            "status [JAIL [FLAVOR]]",
            "the server's jails, or one jail's counters and bans",
        ),
        (
            "ping | version",
            "check that the server answers; its version",
        ),
        (
            "banned [IP...]",
            "banned addresses by jail, or the jails banning each IP",
        ),
        (
            "unban --all | IP...",
            "lift bans in every jail and the database",
        ),
        ("start JAIL | stop JAIL", "start or remove one jail"),
        ("set JAIL banip|unbanip IP...", "ban or unban by hand"),
        (
            "get JAIL OPTION, set JAIL OPTION VALUE",
            "read or change a jail's settings",
        ),
        (
            "set JAIL addignoreip|delignoreip IP, ignoreself, ignorecommand",
            "ignore rules",
        ),
        (
            "set JAIL addlogpath FILE [tail|head] | dellogpath FILE",
            "log files followed",
        ),
        (
            "set JAIL addfailregex|addignoreregex RE, del...regex INDEX",
            "filter regexes",
        ),
        (
            "set JAIL prefregex|datepattern|usedns|maxlines|logencoding V",
            "filter settings",
        ),
        (
            "set JAIL idle on|off, set JAIL attempt IP [MATCH...]",
            "pause reading; count a failure",
        ),
        (
            "get JAIL banip [--with-time], actions, action ACT PROP",
            "bans and actions",
        ),
        (
            "get|set loglevel|logtarget|syslogsocket|dbfile|dbmaxmatches|dbpurgeage",
            "server settings",
        ),
        ("flushlogs", "reopen the log file (after rotation)"),
    ];
    for (name, what) in options {
        text.push_str(&format!("    {name:<28} {what}\n"));
    }
    text.push_str("\nCommands:\n");
    for (name, what) in commands {
        text.push_str(&format!("    {name:<64} {what}\n"));
    }
    text
}

/// The `reload` command as fail2ban-client sends it: the jail (or `--all`), the
/// options, and the configuration stream read by the client.
pub fn reload_command(
    jail: Option<&str>,
    options: &[String],
    stream: Vec<PyValue>,
) -> Vec<PyValue> {
    vec![
        PyValue::str("reload"),
        PyValue::str(jail.unwrap_or("--all")),
        PyValue::str_list(options.iter().cloned()),
        PyValue::List(stream),
    ]
}

/// Splits an interactive command line into words as Python's `shlex.split` does (the
/// same splitting the configuration applies to `journalmatch`), with Python's messages.
pub fn split_line(line: &str) -> Result<Vec<String>, String> {
    rampart_config::shlex_split(line).map_err(|e| e.to_string())
}

/// The interactive loop of `-i`: prompts, reads a line, runs it with `run` (which
/// gets the words and prints the outcome), until `exit`, `quit` or end of input.
/// `help` prints `help_text`; a line that does not split is reported to `err`.
pub fn interactive(
    input: &mut dyn std::io::BufRead,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
    prompt: &str,
    help_text: &str,
    mut run: impl FnMut(&[String], &mut dyn std::io::Write, &mut dyn std::io::Write),
) -> std::io::Result<()> {
    let mut line = String::new();
    loop {
        write!(out, "{prompt}")?;
        out.flush()?;
        line.clear();
        if input.read_line(&mut line)? == 0 {
            writeln!(out)?;
            return Ok(());
        }
        let command = line.trim_end_matches(['\n', '\r']);
        match command {
            "exit" | "quit" => return Ok(()),
            "help" => write!(out, "{help_text}")?,
            "" => {}
            _ => match split_line(command) {
                Ok(words) if words.is_empty() => {}
                Ok(words) => run(&words, out, err),
                Err(e) => writeln!(err, "ERROR   {e}")?,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run(s: &str) -> (Options, Vec<String>) {
        match parse_args(&argv(s)) {
            Invocation::Run { options, args } => (options, args),
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn getopt_quirks() {
        let (o, a) = run("-vvq -s/tmp/s.sock --conf=/etc/x status -v");
        assert_eq!(o.verbose, 2);
        assert_eq!(o.socket, Some("/tmp/s.sock".into()));
        assert_eq!(o.conf, Some("/etc/x".into()));
        assert_eq!(a, argv("status -v"));
        let (o, a) = run("--sock /s --dump-p -- -x");
        assert_eq!((o.socket, o.dump, a), (Some("/s".into()), 2, argv("-x")));
        assert!(matches!(
            parse_args(&argv("--d")),
            Invocation::Help { usage_error: Some(e) } if e.contains("unique")
        ));
        assert!(matches!(
            parse_args(&argv("-s")),
            Invocation::Help {
                usage_error: Some(_)
            }
        ));
        assert!(matches!(
            parse_args(&argv("-y ping")),
            Invocation::Help {
                usage_error: Some(_)
            }
        ));
        assert_eq!(
            parse_args(&argv("-q -V -h")),
            Invocation::Version { short: true }
        );
        assert_eq!(
            parse_args(&argv("--str2sec 1h")),
            Invocation::Str2Sec("1h".into())
        );
    }

    #[test]
    fn interactive_loop() {
        let mut input = &b"status sshd\n\nhelp\nset x addfailregex 'a b' \"c\n"[..];
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut seen = Vec::new();
        interactive(
            &mut input,
            &mut out,
            &mut err,
            "> ",
            "HELP\n",
            |w, out, _| {
                seen.push(w.to_vec());
                let _ = writeln!(out, "ran");
            },
        )
        .unwrap();
        assert_eq!(seen, vec![argv("status sshd")]);
        assert_eq!(String::from_utf8(out).unwrap(), "> ran\n> > HELP\n> > \n");
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "ERROR   No closing quotation\n"
        );
        let mut input = &b"ping\nquit\nping\n"[..];
        let mut runs = 0;
        interactive(
            &mut input,
            &mut Vec::new(),
            &mut Vec::new(),
            "",
            "",
            |_, _, _| runs += 1,
        )
        .unwrap();
        assert_eq!(runs, 1);
    }

    #[test]
    fn usage_lists_every_option() {
        let text = usage("rampart");
        assert!(text.starts_with("Usage: rampart [OPTIONS] <COMMAND>"));
        for (name, _) in LONG {
            assert!(
                text.contains(&format!("--{name}")),
                "--{name} missing from usage"
            );
        }
        for c in SHORT_WITH_VALUE.chars().chain(SHORT_FLAGS.chars()) {
            assert!(text.contains(&format!("-{c}")), "-{c} missing from usage");
        }
    }

    #[test]
    fn client_verbs() {
        assert_eq!(plan(&[]), Plan::Usage);
        assert_eq!(plan(&argv("start")), Plan::Start);
        assert_eq!(
            plan(&argv("start sshd")),
            Plan::Send {
                commands: vec![argv("start sshd")],
                timeout: None
            }
        );
        assert_eq!(
            plan(&argv("restart --unban sshd")),
            Plan::Reload {
                jail: Some("sshd".into()),
                options: argv("--restart --unban")
            }
        );
        assert_eq!(
            plan(&argv("reload --all")),
            Plan::Reload {
                jail: None,
                options: vec![]
            }
        );
        assert_eq!(
            plan(&argv("reload sshd --unban")),
            Plan::Invalid("Unexpected argument(s) for reload: ['sshd', '--unban']".into())
        );
        assert!(matches!(plan(&argv("ping -3")), Plan::Invalid(_)));
        assert!(matches!(plan(&argv("ping soon")), Plan::Invalid(_)));
        assert_eq!(
            plan(&argv("ping 0.5")),
            Plan::Send {
                commands: vec![argv("ping 0.5")],
                timeout: Some(Duration::from_millis(500))
            }
        );
    }
}
