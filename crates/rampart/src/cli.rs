//! Command-line interface: subcommands and their dispatch.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::regex_cmd::{self, RegexArgs};

/// rampart's own configuration tree.
pub const RAMPART_CONFIG: &str = "/etc/rampart";
/// fail2ban's configuration tree, the default when invoked under fail2ban's names.
pub const FAIL2BAN_CONFIG: &str = "/etc/fail2ban";

/// rampart: watches logs, counts failures, bans offenders (a successor to fail2ban).
#[derive(Parser, Debug)]
#[command(name = "rampart", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon (fail2ban-server).
    Server(crate::server::ServerArgs),
    /// Test filters against a log file or lines (fail2ban-regex).
    Regex(Box<RegexArgs>),
    /// Check filters against annotated sample logs (fail2ban's `# failJSON:` format),
    /// with the rules of fail2ban's own sample test harness.
    #[command(hide = true)]
    Samples {
        /// Configuration directory whose `filter.d` is checked.
        #[arg(short = 'c', long = "config", value_name = "DIR")]
        config: PathBuf,
        /// Directory of annotated sample logs, one file per filter name.
        #[arg(long = "samples", value_name = "DIR")]
        samples: PathBuf,
        /// Only these filters (default: every filter that has a sample log).
        names: Vec<String>,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the fully resolved configuration as the command stream the server runs
    /// (what `fail2ban-client -d` prints).
    Dump {
        /// Configuration directory.
        #[arg(
            short = 'c',
            long = "conf",
            visible_alias = "config",
            value_name = "DIR"
        )]
        config: Option<PathBuf>,
    },
}

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Server(args) => crate::server::run(&args, Path::new(RAMPART_CONFIG)),
        Command::Regex(args) => regex_cmd::run(&args, Path::new(RAMPART_CONFIG)),
        Command::Samples {
            config,
            samples,
            names,
        } => {
            let names = if names.is_empty() {
                crate::corpus::filter_names(&config, None)?
                    .into_iter()
                    .filter(|n| crate::corpus::sample_path(&samples, n).is_file())
                    .collect()
            } else {
                names
            };
            let results: Vec<_> = names
                .iter()
                .map(|n| crate::corpus::check_filter(n, &config, &samples))
                .collect();
            print!("{}", crate::corpus::report(&results));
            Ok(u8::from(
                !results.iter().all(crate::corpus::FilterResult::ok),
            ))
        }
        Command::Config {
            command: ConfigCommand::Dump { config },
        } => crate::config_cmd::dump(&config.unwrap_or_else(|| PathBuf::from(RAMPART_CONFIG))),
    }
}

/// `fail2ban-regex ARGS`: the regex tester under fail2ban's name and defaults.
pub fn fail2ban_regex(args: &[OsString]) -> Result<u8> {
    #[derive(Parser, Debug)]
    #[command(name = "fail2ban-regex", disable_version_flag = true)]
    struct Fail2banRegex {
        #[command(flatten)]
        args: RegexArgs,
    }
    let parsed = Fail2banRegex::parse_from(args);
    regex_cmd::run(&parsed.args, Path::new(FAIL2BAN_CONFIG))
}

/// `fail2ban-server ARGS`: the daemon under fail2ban's name, defaults and habits
/// (background unless `-f`, configuration in `/etc/fail2ban`).
pub fn fail2ban_server(args: &[OsString]) -> Result<u8> {
    #[derive(Parser, Debug)]
    #[command(name = "fail2ban-server", version)]
    struct Fail2banServer {
        #[command(flatten)]
        args: crate::server::ServerArgs,
    }
    let mut parsed = Fail2banServer::parse_from(args).args;
    if !parsed.foreground {
        parsed.background = true;
    }
    crate::server::run(&parsed, Path::new(FAIL2BAN_CONFIG))
}
