//! `rampart`: the one binary. Invoked as `fail2ban-regex`, `fail2ban-client` or
//! `fail2ban-server` (through a link of that name) it behaves as that program.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use rampart::cli::{self, Cli};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let program = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let result = match program.as_str() {
        "fail2ban-regex" => cli::fail2ban_regex(&args),
        "fail2ban-server" => cli::fail2ban_server(&args),
        "fail2ban-client" => client_run(&args, cli::FAIL2BAN_CONFIG, "fail2ban-client"),
        _ if is_client_command(&args) => client_run(&args, cli::RAMPART_CONFIG, "rampart"),
        _ => cli::run(Cli::parse_from(&args)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::from(255)
        }
    }
}

/// `rampart status`, `rampart -s SOCK ping`, …: anything that is not one of rampart's
/// own subcommands is a client command line, as fail2ban-client would take it.
fn is_client_command(args: &[std::ffi::OsString]) -> bool {
    const OWN: &[&str] = &[
        "server",
        "regex",
        "config",
        "samples",
        "help",
        "-h",
        "--help",
        "-V",
        "--version",
    ];
    args.get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|first| !OWN.contains(&first))
}

fn client_run(args: &[std::ffi::OsString], config: &str, program: &str) -> anyhow::Result<u8> {
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    rampart::client::run(&words, Path::new(config), program)
}
