//! `rampart config dump`: the resolved configuration, as `fail2ban-client -d` shows it.

use std::path::Path;

use anyhow::{Context, Result};

/// Prints the command stream of the configuration under `dir`.
pub fn dump(dir: &Path) -> Result<u8> {
    let basedir = dir.to_string_lossy();
    let options = rampart_config::ReadOptions::default();
    let config = rampart_config::read_configuration(&rampart_config::OsFs, &basedir, &options)
        .with_context(|| format!("reading the configuration in {}", dir.display()))?;
    for w in &config.warnings {
        eprintln!("WARNING: {w}");
    }
    print!("{}", rampart_config::format_stream(&config.stream));
    Ok(0)
}
