//! The client: `rampart status sshd`, `rampart set sshd banip …`, and rampart invoked as
//! `fail2ban-client`. Grammar, wire and output come from `rampart-control`; this module
//! adds what needs the configuration (the socket to use, `-d`, `start`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rampart_control::cli::{self, Invocation, Plan};
use rampart_control::{EXIT_FAILURE, EXIT_OK, PyValue};

fn code(ok: bool) -> u8 {
    u8::try_from(if ok { EXIT_OK } else { EXIT_FAILURE }).unwrap_or(255)
}

/// Runs a client command line (`argv` without the program name).
pub fn run(argv: &[String], default_config: &Path, program: &str) -> Result<u8> {
    let (options, args) = match cli::parse_args(argv) {
        Invocation::Help { usage_error } => {
            print!("{}", cli::usage(program));
            if let Some(e) = usage_error {
                eprintln!("ERROR   {e}");
                return Ok(code(false));
            }
            return Ok(code(true));
        }
        Invocation::Version { short } => {
            if short {
                println!("{}", env!("CARGO_PKG_VERSION"));
            } else {
                println!(
                    "rampart v{} (fail2ban {} compatible)",
                    env!("CARGO_PKG_VERSION"),
                    rampart_config::FAIL2BAN_VERSION
                );
            }
            return Ok(code(true));
        }
        Invocation::Str2Sec(value) => {
            let secs = rampart_dates::str2seconds(&value)
                .with_context(|| format!("invalid time {value:?}"))?;
            println!("{secs}");
            return Ok(code(true));
        }
        Invocation::Run { options, args } => (options, args),
    };
    let config = options
        .conf
        .clone()
        .unwrap_or_else(|| default_config.to_path_buf());
    if options.dump > 0 {
        return crate::config_cmd::dump(&config);
    }
    let socket = match &options.socket {
        Some(s) => s.clone(),
        // No tree here (a checkout run with `-c config` on the server side, say): the
        // server's default socket.
        None if !config.exists() => PathBuf::from(if program == "fail2ban-client" {
            "/var/run/fail2ban/fail2ban.sock"
        } else {
            "/run/rampart/rampart.sock"
        }),
        None => {
            let basedir = config.to_string_lossy();
            rampart_config::read_server_settings(&rampart_config::OsFs, &basedir)
                .map(|(s, _)| PathBuf::from(s.socket))
                .with_context(|| format!("reading the server settings in {}", config.display()))?
        }
    };
    let timeout = options
        .timeout
        .as_deref()
        .and_then(|t| rampart_dates::str2seconds(t).ok())
        .map(Duration::from_secs_f64);
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    match cli::plan(&args) {
        Plan::Usage => {
            let _ = write!(out, "{}", cli::usage(program));
            Ok(code(false))
        }
        Plan::Invalid(message) => {
            let _ = writeln!(err, "ERROR   {message}");
            Ok(code(false))
        }
        Plan::Send {
            commands,
            timeout: t,
        } => Ok(code(rampart_control::run_words(
            &socket,
            &commands,
            t.or(timeout),
            &mut out,
            &mut err,
        ))),
        Plan::Reload {
            jail,
            options: opts,
        } => {
            let command = cli::reload_command(jail.as_deref(), &opts, Vec::new());
            Ok(code(rampart_control::run_commands(
                &socket,
                &[command],
                timeout,
                true,
                &mut out,
                &mut err,
            )))
        }
        Plan::Start => start(&config, &socket, &options, &mut err),
        Plan::Restart => {
            let stopped = rampart_control::run_words(
                &socket,
                &[vec!["stop".to_string()]],
                timeout,
                &mut out,
                &mut err,
            );
            if stopped {
                wait_gone(&socket, Duration::from_secs(30));
            }
            start(&config, &socket, &options, &mut err)
        }
    }
}

fn ping(socket: &Path) -> bool {
    let ping = vec![vec![PyValue::str("ping")]];
    rampart_control::run_commands(
        socket,
        &ping,
        Some(Duration::from_secs(2)),
        false,
        &mut io::sink(),
        &mut io::sink(),
    )
}

fn wait_gone(socket: &Path, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit && ping(socket) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `start`: the server in the background, then wait until it answers.
fn start(config: &Path, socket: &Path, options: &cli::Options, err: &mut dyn Write) -> Result<u8> {
    if ping(socket) {
        let _ = writeln!(err, "ERROR   Server already running");
        return Ok(code(false));
    }
    let exe = std::env::current_exe().context("locating the rampart binary")?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("server")
        .arg("-b")
        .arg("-c")
        .arg(config)
        .arg("-s")
        .arg(socket);
    if let Some(p) = &options.pidfile {
        command.arg("-p").arg(p);
    }
    if let Some(l) = &options.loglevel {
        command.arg("--loglevel").arg(l);
    }
    if let Some(t) = &options.logtarget {
        command.arg("--logtarget").arg(t);
    }
    if options.force {
        command.arg("-x");
    }
    let status = command.status().context("starting the server")?;
    if !status.success() {
        let _ = writeln!(err, "ERROR   Could not start the server");
        return Ok(code(false));
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if ping(socket) {
            return Ok(code(true));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = writeln!(
        err,
        "ERROR   The server did not answer on {} in time",
        socket.display()
    );
    Ok(code(false))
}
