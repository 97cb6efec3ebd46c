//! rampart's own configuration tree (`config/`): it must do everything fail2ban's
//! does, under the same names, with regexes written here.
//!
//! - fail2ban's annotated corpus passes with our filters, every check;
//! - our own annotated samples (`tests/data/samples`) hit every failregex we ship;
//! - no failregex puts a greedy catch-all before the host unless anchored at the end
//!   (fail2ban's rule against log injection);
//! - every filter survives adversarial 64 KiB lines in under 25 ms each (7-9 ms at worst
//!   on an idle machine): linear behaviour, not catastrophic backtracking.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rampart::corpus;
use rampart::engine::LineFilter;
use rampart_filter::{Filter, FilterSpec, Mode, NoResolver, UseDns};

fn own_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

fn own_samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/samples")
}

/// One of our filters, read as a jail would read it.
fn read_own_filter(name: &str) -> rampart_config::ResolvedFilter {
    rampart_config::read_filter(
        &rampart_config::OsFs,
        &own_config().to_string_lossy(),
        &rampart_config::FilterRequest {
            spec: name,
            jail_name: "jail",
            jail_vars: &indexmap::IndexMap::new(),
            backend: "auto",
        },
    )
    .expect("our filter reads")
    .0
}

/// Filters of ours that are real filters (not `*-common` includes).
fn own_filters() -> Vec<String> {
    corpus::filter_names(&own_config(), None).expect("config/filter.d is readable")
}

#[test]
fn fail2ban_corpus_with_our_filters() {
    let reference = rampart_reference::fail2ban();
    let samples = reference.sample_logs_dir();
    // Every filter fail2ban ships with samples must exist here under the same name.
    let theirs = corpus::filter_names(&reference.config_dir(), None).expect("reference filter.d");
    let ours = own_filters();
    let missing: Vec<&String> = theirs
        .iter()
        .filter(|n| corpus::sample_path(&samples, n).is_file() && !ours.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "filters fail2ban has and we do not: {missing:?}"
    );
    let results: Vec<corpus::FilterResult> = ours
        .iter()
        .filter(|n| corpus::sample_path(&samples, n).is_file())
        .map(|n| corpus::check_filter(n, &own_config(), &samples))
        .collect();
    let report = corpus::report(&results);
    println!("{report}");
    let checks: usize = results.iter().map(|r| r.checks).sum();
    assert!(checks > 1000, "only {checks} checks ran");
    assert!(results.iter().all(corpus::FilterResult::ok), "{report}");
}

#[test]
fn our_samples_cover_every_failregex() {
    let names = own_filters();
    let without: Vec<&String> = names
        .iter()
        .filter(|n| !corpus::sample_path(&own_samples(), n).is_file())
        .collect();
    assert!(
        without.is_empty(),
        "filters without samples of our own: {without:?}"
    );
    let results: Vec<corpus::FilterResult> = names
        .iter()
        .map(|n| corpus::check_filter(n, &own_config(), &own_samples()))
        .collect();
    let report = corpus::report(&results);
    println!("{report}");
    assert!(results.iter().all(corpus::FilterResult::ok), "{report}");
}

/// fail2ban's `RE_WRONG_GREED` rule: a greedy `.*` or `.+` before the host tag lets
/// text an attacker writes after it decide which address is captured, unless the
/// regex is anchored at the end.
fn greedy_before_host(regex: &str) -> bool {
    let Some(host) = [
        "<HOST>", "<ADDR>", "<IP4>", "<IP6>", "<DNS>", "<CIDR>", "<SUBNET>",
    ]
    .iter()
    .filter_map(|tag| regex.find(tag))
    .min() else {
        return false;
    };
    let before = &regex.as_bytes()[..host];
    let greedy = before.windows(2).enumerate().any(|(i, w)| {
        w[0] == b'.'
            && (w[1] == b'*' || w[1] == b'+')
            && (i == 0 || before[i - 1] != b'\\')
            && before.get(i + 2) != Some(&b'?')
    });
    greedy && !regex.trim_end().ends_with('$')
}

#[test]
fn no_greedy_catch_all_before_the_host() {
    assert!(greedy_before_host("^Failed .* from <HOST> port"));
    assert!(!greedy_before_host("^Failed .* from <HOST> port \\d+$"));
    assert!(!greedy_before_host("^Failed .*? from <HOST>"));
    assert!(!greedy_before_host("^Failed \\.* from <HOST>"));
    let mut wrong = Vec::new();
    for name in own_filters() {
        let filter = read_own_filter(&name);
        wrong.extend(
            filter
                .failregex
                .iter()
                .filter(|r| greedy_before_host(r))
                .map(|r| format!("{name}: {r}")),
        );
    }
    assert!(
        wrong.is_empty(),
        "greedy catch-alls before the host:\n{}",
        wrong.join("\n")
    );
}

/// Lines built to make a backtracking engine work: long runs of what the filters'
/// classes accept, of separators, and real sample lines with such runs inserted.
fn adversarial_lines(samples: &[String]) -> Vec<String> {
    const RUN: usize = 64 * 1024;
    let mut lines: Vec<String> = [
        " ", ":", "[", "a", "0", ".", "-", "/", "\"", "=", " from ", "x ",
    ]
    .iter()
    .map(|unit| unit.repeat(RUN / unit.len()))
    .collect();
    for sample in samples.iter().take(6) {
        for unit in [" ", "a", ":"] {
            // In the middle of the message and at its end.
            let mid = sample.len() / 2;
            let mid = (0..=mid)
                .rev()
                .find(|i| sample.is_char_boundary(*i))
                .unwrap_or(0);
            lines.push(format!(
                "{}{}{}",
                &sample[..mid],
                unit.repeat(RUN),
                &sample[mid..]
            ));
            lines.push(format!("{sample}{}", unit.repeat(RUN)));
        }
    }
    lines
}

#[test]
fn every_filter_is_fast_on_adversarial_lines() {
    // A bound for catastrophic behaviour, not a speed claim (the benchmarks make
    // those): backtracking that is quadratic or worse takes seconds on 64 KiB, while
    // the slowest filter takes 7-9 ms here, and a loaded CI machine adds to that.
    let limit = Duration::from_millis(25);
    let mut slow = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    for name in own_filters() {
        let resolved = read_own_filter(&name);
        let spec = FilterSpec {
            prefregex: resolved.prefregex.clone(),
            failregex: resolved.failregex.clone(),
            ignoreregex: resolved.ignoreregex.clone(),
            maxlines: resolved.maxlines.unwrap_or(1),
            use_dns: UseDns::Raw,
        };
        let mode = Mode {
            check_all: true,
            raw_hosts: true,
            ignore_pending: true,
            check_find_time: false,
            find_time: 600.0,
        };
        let filter = Filter::new(&spec, mode).expect("our filter compiles");
        let mut engine = LineFilter::new(filter, resolved.datepattern.as_deref(), None)
            .expect("our date pattern compiles");
        let samples: Vec<String> = std::fs::read_to_string(own_samples().join(&name))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        for line in adversarial_lines(&samples) {
            // Warm once (the first line of a kind may build lazy automata), then keep
            // the best of three, and of ten more when that is over the limit: a busy
            // machine adds time, never removes it.
            engine.process(&line, corpus::TEST_NOW, &NoResolver);
            let mut best = |runs: usize| {
                (0..runs)
                    .map(|_| {
                        let started = Instant::now();
                        engine.process(&line, corpus::TEST_NOW, &NoResolver);
                        started.elapsed()
                    })
                    .min()
                    .unwrap_or_default()
            };
            let mut took = best(3);
            if took > limit {
                took = took.min(best(10));
            }
            if took > slowest.0 {
                slowest = (took, name.clone());
            }
            if took > limit {
                let shown: String = line.chars().take(60).collect();
                slow.push(format!(
                    "{name}: {took:?} on {shown:?}… ({} bytes)",
                    line.len()
                ));
            }
        }
    }
    println!("slowest line: {:?} ({})", slowest.0, slowest.1);
    assert!(
        slow.is_empty(),
        "lines over {limit:?}:\n{}",
        slow.join("\n")
    );
}

/// The jail sections of a jail.conf (`[INCLUDES]` and `[DEFAULT]` are not jails).
fn jail_sections(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix('[')?.trim_end().strip_suffix(']'))
        .filter(|name| !matches!(*name, "INCLUDES" | "DEFAULT"))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_debian_jail_has_a_counterpart() {
    let theirs =
        std::fs::read_to_string(rampart_reference::fail2ban().config_dir().join("jail.conf"))
            .expect("Debian's jail.conf");
    let ours = std::fs::read_to_string(own_config().join("jail.conf")).expect("our jail.conf");
    let (theirs, ours) = (jail_sections(&theirs), jail_sections(&ours));
    assert!(
        theirs.len() > 80,
        "only {} jails in Debian's jail.conf",
        theirs.len()
    );
    let missing: Vec<&String> = theirs.iter().filter(|j| !ours.contains(j)).collect();
    assert!(
        missing.is_empty(),
        "Debian jails without a counterpart: {missing:?}"
    );
}

#[test]
fn the_tree_resolves_with_every_jail_enabled() {
    // Enable everything in a copy: each jail must resolve (filter, actions, log paths
    // as variables), and only sshd is enabled as shipped.
    let shipped = rampart_config::read_configuration(
        &rampart_config::OsFs,
        &own_config().to_string_lossy(),
        &rampart_config::ReadOptions::default(),
    )
    .expect("the shipped tree reads");
    let enabled: Vec<&str> = shipped
        .jails
        .iter()
        .filter(|j| j.enabled)
        .map(|j| j.name.as_str())
        .collect();
    assert_eq!(enabled, ["sshd"]);
    assert!(shipped.jails.iter().all(|j| j.config_error.is_none()));
    let copy = std::env::temp_dir().join(format!("rampart-tree-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    support::copy_tree(&own_config(), &copy);
    let ours = std::fs::read_to_string(own_config().join("jail.conf")).expect("our jail.conf");
    let local: String = jail_sections(&ours)
        .iter()
        .map(|j| format!("[{j}]\nenabled = true\n"))
        .collect();
    std::fs::write(copy.join("jail.local"), local).expect("jail.local");
    let all = rampart_config::read_configuration(
        &rampart_config::OsFs,
        &copy.to_string_lossy(),
        &rampart_config::ReadOptions::default(),
    )
    .expect("the tree reads with every jail enabled");
    let _ = std::fs::remove_dir_all(&copy);
    let broken: Vec<String> = all
        .jails
        .iter()
        .filter_map(|j| j.config_error.as_ref().map(|e| format!("{}: {e}", j.name)))
        .collect();
    assert!(
        broken.is_empty(),
        "jails that do not resolve:\n{}",
        broken.join("\n")
    );
    assert_eq!(
        all.jails.iter().filter(|j| j.enabled).count(),
        jail_sections(&ours).len()
    );
}
