//! Hostile haystacks must not make any engine take long: 64 KiB of repeated
//! separators against every fail2ban regex.

use std::time::{Duration, Instant};

use rampart_pyre::{Flags, Locations, Regex};

#[test]
fn long_runs_of_separators_stay_fast() {
    let corpus = crate::differential::corpus_with(true);
    let patterns: Vec<Regex> = corpus["patterns"]
        .as_array()
        .expect("patterns")
        .iter()
        .map(|p| {
            let flags = Flags {
                multiline: p["multiline"].as_bool().unwrap_or(false),
                ignore_case: false,
            };
            Regex::with_flags(p["pattern"].as_str().expect("pattern"), flags).expect("compiles")
        })
        .collect();
    let size = 64 * 1024;
    let haystacks: Vec<String> = [" ", ":", "1.", " from", "x\n"]
        .iter()
        .map(|unit| unit.repeat(size / unit.len()))
        .collect();
    let mut locations = Locations::new();
    let mut slowest = (Duration::ZERO, String::new());
    let mut gave_up = 0;
    let started = Instant::now();
    for regex in &patterns {
        for haystack in &haystacks {
            let t = Instant::now();
            if regex.try_captures(haystack, &mut locations).is_err() {
                gave_up += 1;
            }
            let spent = t.elapsed();
            if spent > slowest.0 {
                slowest = (spent, regex.as_str().chars().take(80).collect());
            }
        }
    }
    eprintln!(
        "hostile: {} patterns x {} haystacks of 64 KiB in {:?}; slowest {:?} ({}); {gave_up} gave up",
        patterns.len(),
        haystacks.len(),
        started.elapsed(),
        slowest.0,
        slowest.1
    );
    // Generous for unoptimised builds on a busy 2-core machine; a super-linear
    // engine takes minutes here.
    assert!(slowest.0 < Duration::from_secs(5), "slowest: {slowest:?}");
}
