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
