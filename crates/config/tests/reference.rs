//! Differential tests against fail2ban 1.0.2: the command stream of whole trees,
//! compared line by line with what `fail2ban-client -d` prints.

// Helpers outside #[test] functions panic on setup failures, which is what a test wants.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use rampart_config::{OsFs, ReadOptions, format_stream, read_configuration};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-config-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the reference prints for `-d` on a tree (stdout lines).
fn reference_dump(dir: &Path) -> Vec<String> {
    let out = rampart_reference::fail2ban()
        .script("fail2ban-client")
        .expect("python3 is needed to run the reference")
        .arg("-c")
        .arg(dir)
        .arg("-d")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn our_dump(dir: &Path) -> Vec<String> {
    let config = read_configuration(&OsFs, dir.to_str().unwrap(), &ReadOptions::default())
        .unwrap_or_else(|e| panic!("our read failed: {e}"));
    format_stream(&config.stream)
        .lines()
        .map(String::from)
        .collect()
}

/// `config-error` messages are worded by each implementation; the jail must agree.
fn comparable(line: &str) -> String {
    match line.strip_prefix("['config-error', ") {
        Some(rest) => {
            let after = rest.split_once("Jail ").map_or("", |(_, a)| a);
            let jail: String = after
                .trim_start_matches(['\\', '\''])
                .chars()
                .take_while(|&c| c != '\'' && c != '\\')
                .collect();
            format!("config-error {jail}")
        }
        None => line.to_string(),
    }
}

/// Compares line by line; returns the number of matching lines.
fn compare(name: &str, theirs: &[String], ours: &[String]) -> usize {
    let matching = theirs
        .iter()
        .zip(ours)
        .filter(|(a, b)| comparable(a) == comparable(b))
        .count();
    let first_diff = theirs
        .iter()
        .zip(ours)
        .position(|(a, b)| comparable(a) != comparable(b));
    eprintln!(
        "{name}: {matching} of {} reference lines match ({} ours)",
        theirs.len(),
        ours.len()
    );
    if let Some(i) = first_diff {
        panic!(
            "{name}: first difference at line {}:\nreference: {}\nours:      {}",
            i + 1,
            theirs[i],
            ours[i]
        );
    }
    assert_eq!(theirs.len(), ours.len(), "{name}: line counts differ");
    matching
}

fn jail_names(jail_conf: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(jail_conf).unwrap();
    let doc = rampart_ini::parse(&text).unwrap();
    doc.sections
        .iter()
        .map(|s| s.name.clone())
        .filter(|n| n != "INCLUDES" && n != "DEFAULT")
        .collect()
}

#[test]
fn stock_tree_with_every_jail_enabled() {
    let reference = rampart_reference::fail2ban();
    let dir = temp_dir("stock");
    copy_tree(&reference.config_dir(), &dir);
    let mut local = String::new();
    for name in jail_names(&dir.join("jail.conf")) {
        local.push_str(&format!("[{name}]\nenabled = true\n\n"));
    }
    std::fs::write(dir.join("jail.local"), local).unwrap();
    let theirs = reference_dump(&dir);
    let ours = our_dump(&dir);
    let n = compare("stock", &theirs, &ours);
    assert!(n > 1000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn debian_test_tree() {
    let reference = rampart_reference::fail2ban();
    let dir = temp_dir("testcfg");
    copy_tree(&reference.test_config_dir(), &dir);
    let theirs = reference_dump(&dir);
    let ours = our_dump(&dir);
    let n = compare("tests/config", &theirs, &ours);
    assert!(n > 20);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Copies `tests/data/<name>` over `dir`, with `LOGDIR` replaced by `logdir`.
fn overlay(name: &str, dir: &Path, logdir: &Path) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let target = dir.join(path.strip_prefix(&data).unwrap());
            if path.is_dir() {
                std::fs::create_dir_all(&target).unwrap();
                stack.push(path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                std::fs::write(target, text.replace("LOGDIR", logdir.to_str().unwrap())).unwrap();
            }
        }
    }
}

#[test]
fn stock_tree_with_overlays_and_arguments() {
    let reference = rampart_reference::fail2ban();
    let root = temp_dir("overlays");
    let dir = root.join("etc");
    let logs = root.join("log");
    copy_tree(&reference.config_dir(), &dir);
    std::fs::create_dir_all(logs.join("nginx")).unwrap();
    for f in [
        "auth.log",
        "secure1.log",
        "secure2.log",
        "nginx/a.log",
        "nginx/b.log",
    ] {
        std::fs::write(logs.join(f), "").unwrap();
    }
    let mut local = String::new();
    for name in jail_names(&dir.join("jail.conf")) {
        local.push_str(&format!("[{name}]\nenabled = true\n\n"));
    }
    std::fs::write(dir.join("jail.local"), local).unwrap();
    overlay("overlays", &dir, &logs);
    let theirs = reference_dump(&dir);
    let ours = our_dump(&dir);
    let n = compare("overlays", &theirs, &ours);
    assert!(n > 1000);
    let _ = std::fs::remove_dir_all(&root);
}
