//! Every regex fail2ban 1.0.2 compiles for its stock filters (all modes, tags
//! expanded) and every default date-template regex, run over fail2ban's annotated
//! sample lines and our own edge cases, by Python and by us: match or not, and the span
//! of every group, must agree.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use rampart_pyre::{Engine, Flags, Locations, Regex};
use serde_json::Value;

/// The corpus as `corpus.py` prints it; with `patterns_only`, without Python's answers.
pub(crate) fn corpus_with(patterns_only: bool) -> Value {
    let reference = rampart_reference::fail2ban();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let output = Command::new("/usr/bin/python3")
        .arg(data.join("corpus.py"))
        .arg(reference.config_dir())
        .arg(reference.sample_logs_dir())
        .arg(data.join("edge_lines.txt"))
        .env("PYTHONPATH", reference.python_path())
        .env("CORPUS_PATTERNS_ONLY", if patterns_only { "1" } else { "" })
        .output()
        .expect("python3 must be installed for the differential test");
    assert!(
        output.status.success(),
        "corpus.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("corpus.py prints JSON")
}

type Spans = Vec<Option<(usize, usize)>>;

fn python_spans(value: &Value) -> Spans {
    value
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| {
            s.as_array().map(|p| {
                (
                    p[0].as_u64().expect("start") as usize,
                    p[1].as_u64().expect("end") as usize,
                )
            })
        })
        .collect()
}

#[test]
fn agrees_with_python_on_fail2ban_regexes() {
    let corpus = corpus_with(false);
    let lines: Vec<&str> = corpus["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l.as_str().expect("line"))
        .collect();
    let patterns = corpus["patterns"].as_array().expect("patterns");
    let mut pairs = 0usize;
    let mut matches = 0usize;
    let mut disagreements = Vec::new();
    let mut engines: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut backtracking = Vec::new();
    let mut hot_on_backtracking = Vec::new();
    let mut locations = Locations::new();
    for p in patterns {
        let pattern = p["pattern"].as_str().expect("pattern");
        let origin = p["origin"].as_str().expect("origin");
        let flags = Flags {
            multiline: p["multiline"].as_bool().unwrap_or(false),
            ignore_case: false,
        };
        assert!(p.get("error").is_none(), "Python rejects {pattern}");
        let regex = match Regex::with_flags(pattern, flags) {
            Ok(r) => r,
            Err(e) => {
                disagreements.push(format!("{origin}: compile error {e}"));
                continue;
            }
        };
        assert_eq!(
            regex.group_count() as u64,
            p["groups"].as_u64().expect("groups"),
            "{pattern}"
        );
        for (name, index) in p["names"].as_object().expect("names") {
            assert_eq!(
                regex.group_index(name).map(|i| i as u64),
                index.as_u64(),
                "{pattern}: group {name}"
            );
        }
        let entry = engines.entry(origin.to_string()).or_default();
        match regex.engine() {
            Engine::Linear => entry.0 += 1,
            Engine::Backtracking => {
                entry.1 += 1;
                if origin == "sshd" && p["default"].as_bool() == Some(true) {
                    hot_on_backtracking.push(pattern.to_string());
                }
                backtracking.push(format!("{origin}: {pattern}"));
            }
        }
        let expected: BTreeMap<usize, Spans> = p["matches"]
            .as_array()
            .expect("matches")
            .iter()
            .map(|m| (m[0].as_u64().expect("line") as usize, python_spans(&m[1])))
            .collect();
        for (i, line) in lines.iter().enumerate() {
            pairs += 1;
            let found = regex
                .try_captures(line, &mut locations)
                .unwrap_or_else(|e| panic!("{e}"));
            let ours: Option<Spans> = found.then(|| {
                (0..=regex.group_count())
                    .map(|g| locations.get(g))
                    .collect()
            });
            if ours.is_some() {
                matches += 1;
            }
            if regex.is_match(line) != found {
                disagreements.push(format!("{origin}: is_match/captures differ on {line:?}"));
            }
            if ours.as_ref() != expected.get(&i) {
                disagreements.push(format!(
                    "{origin}: {pattern}\n  line {line:?}\n  python {:?}\n  ours   {ours:?}",
                    expected.get(&i)
                ));
            }
        }
    }
    let linear: usize = engines.values().map(|e| e.0).sum();
    let total: usize = engines.values().map(|e| e.0 + e.1).sum();
    eprintln!(
        "differential: {} patterns ({linear} linear, {} backtracking), {} lines, {pairs} pairs, {matches} matches, {} disagreements",
        total,
        total - linear,
        lines.len(),
        disagreements.len()
    );
    for (origin, (l, b)) in &engines {
        if *b > 0 {
            eprintln!("  {origin}: {l} linear, {b} backtracking");
        }
    }
    if std::env::var_os("PYRE_SHOW_BACKTRACKING").is_some() {
        for b in &backtracking {
            eprintln!("  backtracking: {b}");
        }
    }
    let shown: Vec<&String> = disagreements.iter().take(20).collect();
    assert!(
        disagreements.is_empty(),
        "{} disagreements with Python, first ones:\n{}",
        disagreements.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // sshd is the hot path: its default-mode regexes must all run on the linear engine.
    assert!(
        hot_on_backtracking.is_empty(),
        "default sshd regexes on the backtracking engine: {hot_on_backtracking:#?}"
    );
}
