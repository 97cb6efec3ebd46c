//! Test support: the fail2ban reference, fetched from Debian.
//!
//! rampart's compatibility tests compare against fail2ban 1.0.2 as Debian ships it: its
//! `/etc/fail2ban` tree, its annotated sample logs and, where a test wants to run the
//! reference side by side, its Python code. None of it is committed to this repository
//! (it is GPL and it is not ours); this crate downloads the package with
//! `apt-get download` and unpacks it with `dpkg-deb -x`, once, under `target/`.
//!
//! Set `RAMPART_FAIL2BAN_ROOT` to an unpacked package root to use that instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The Debian package version the tests are written against.
pub const PACKAGE_VERSION: &str = "1.0.2-2";

/// An unpacked fail2ban package.
#[derive(Clone, Debug)]
pub struct Reference {
    root: PathBuf,
}

impl Reference {
    /// The package root, containing `etc/` and `usr/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The stock configuration tree (`etc/fail2ban`).
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("etc/fail2ban")
    }

    /// Where the `fail2ban` Python package lives (for `PYTHONPATH`).
    pub fn python_path(&self) -> PathBuf {
        self.root.join("usr/lib/python3/dist-packages")
    }

    /// The annotated sample logs (`tests/files/logs`).
    pub fn sample_logs_dir(&self) -> PathBuf {
        self.python_path().join("fail2ban/tests/files/logs")
    }

    /// The test suite's own small configuration tree (`tests/config`).
    pub fn test_config_dir(&self) -> PathBuf {
        self.python_path().join("fail2ban/tests/config")
    }

    /// Other test files (`tests/files`).
    pub fn test_files_dir(&self) -> PathBuf {
        self.python_path().join("fail2ban/tests/files")
    }

    /// A command that runs one of fail2ban's scripts (`fail2ban-regex`, `fail2ban-client`, …)
    /// from the unpacked package with the system's Python 3, or `None` without a Python 3.
    pub fn script(&self, name: &str) -> Option<Command> {
        let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())?;
        let mut cmd = Command::new(python);
        cmd.arg(self.root.join("usr/bin").join(name))
            .env("PYTHONPATH", self.python_path());
        Some(cmd)
    }
}

/// Returns the reference, downloading and unpacking it on first use.
///
/// Panics with an explanation when it cannot be had: a compatibility test without its
/// reference must fail, not pass vacuously.
pub fn fail2ban() -> Reference {
    static REFERENCE: OnceLock<Result<Reference, String>> = OnceLock::new();
    match REFERENCE.get_or_init(locate_or_fetch) {
        Ok(r) => r.clone(),
        Err(e) => panic!("fail2ban reference unavailable: {e}"),
    }
}

fn locate_or_fetch() -> Result<Reference, String> {
    if let Some(root) = std::env::var_os("RAMPART_FAIL2BAN_ROOT") {
        let root = PathBuf::from(root);
        return check(root);
    }
    let dest = target_dir().join(format!("fail2ban-{PACKAGE_VERSION}"));
    if dest.join("etc/fail2ban/jail.conf").exists() {
        return check(dest);
    }
    fetch(&dest)?;
    check(dest)
}

fn check(root: PathBuf) -> Result<Reference, String> {
    let r = Reference { root };
    if !r.config_dir().join("jail.conf").is_file() || !r.sample_logs_dir().is_dir() {
        return Err(format!(
            "{} is not an unpacked fail2ban package",
            r.root.display()
        ));
    }
    Ok(r)
}

fn target_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// Downloads into a private directory, then renames it into place, so that test
/// processes racing to fetch never see a half-unpacked tree.
fn fetch(dest: &Path) -> Result<(), String> {
    let parent = dest
        .parent()
        .ok_or("no parent for the download directory")?;
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let work = parent.join(format!(".fail2ban-fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let pinned = format!("fail2ban={PACKAGE_VERSION}");
    let ok = |out: std::io::Result<std::process::Output>| match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(e.to_string()),
    };
    ok(Command::new("apt-get")
        .args(["download", &pinned])
        .current_dir(&work)
        .output())
    .map_err(|e| format!("apt-get download {pinned} failed: {e}"))?;
    let deb = std::fs::read_dir(&work)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or("apt-get download produced no .deb")?;
    let unpacked = work.join("root");
    ok(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .output())
    .map_err(|e| format!("dpkg-deb -x failed: {e}"))?;
    match std::fs::rename(&unpacked, dest) {
        Ok(()) => {}
        Err(_) if dest.join("etc/fail2ban/jail.conf").exists() => {}
        Err(e) => return Err(format!("rename to {}: {e}", dest.display())),
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
