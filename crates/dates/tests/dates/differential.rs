//! Differential test: the same line sequences through fail2ban's `DateDetector` (run by
//! `tests/data/reference.py` with fail2ban's clock frozen) and through ours, comparing the
//! date span, the time or failure of every line, and the final template order and hits.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rampart_dates::{DateDetector, DateError, TimeZone};
use serde_json::{Value, json};

/// The zone and clock of fail2ban's sample-log tests.
const CORPUS_TZ: &str = "CET-01CEST-02,M3.5.0,M10.5.0";
const TEST_NOW: f64 = 1_124_013_600.0;

struct Case {
    id: String,
    datepattern: Option<String>,
    logtimezone: Option<String>,
    now: f64,
    lines: Vec<String>,
}

/// One line's outcome, in a form both sides can produce.
#[derive(Debug, PartialEq)]
enum Outcome {
    NoMatch,
    /// Character span, time, failure (exception name or "ValueError" for no time).
    Date(usize, usize, Option<f64>, Option<String>),
    LineFailed(String),
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn python(reference: &rampart_reference::Reference, args: &[&str], input: Option<&str>) -> Value {
    let mut child = Command::new("/usr/bin/python3")
        .arg(data_dir().join("reference.py"))
        .args(args)
        .env("PYTHONPATH", reference.python_path())
        .env("TZ", CORPUS_TZ)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.unwrap_or("").to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("python3 finishes");
    writer
        .join()
        .expect("writer thread")
        .expect("request written");
    assert!(
        output.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("reference prints JSON")
}

/// Test lines of a sample log: what fail2ban's sample tests feed (no comments, no blanks).
fn sample_lines(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).expect("sample log readable");
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn crafted_lines() -> Vec<String> {
    let text = std::fs::read_to_string(data_dir().join("crafted.txt")).expect("crafted lines");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("##") && !l.is_empty())
        .map(str::to_string)
        .collect();
    // Lines awkward to write in a file.
    lines.push("Jan 14\t08:03:07 tab inside".to_string());
    lines.push("Jan 14 08:03:07\u{1c}information separator after".to_string());
    lines.push(format!(
        "{} Jan 14 08:03:07 after a long prefix",
        "x".repeat(300)
    ));
    lines.push(format!("Jan 14 08:03:07 {}", "é".repeat(200)));
    lines.push(String::new());
    lines
}

fn custom_patterns() -> Vec<String> {
    let text = std::fs::read_to_string(data_dir().join("patterns.txt")).expect("patterns");
    text.lines()
        .filter(|l| !l.starts_with("##") && !l.is_empty())
        .map(|l| l.replace("<NL>", "\n"))
        .collect()
}

fn python_outcome(v: &Value) -> Outcome {
    match v {
        Value::Null => Outcome::NoMatch,
        Value::Object(o) => Outcome::LineFailed(o["fatal"].as_str().unwrap_or("?").to_string()),
        Value::Array(a) => {
            let time = a[2].as_f64();
            let error = match (&a[3], time) {
                (Value::String(e), _) => Some(e.clone()),
                (_, None) if a[0] != a[1] => Some("ValueError".to_string()),
                _ => None,
            };
            let pos = |i: usize| a[i].as_u64().expect("index") as usize;
            Outcome::Date(pos(0), pos(1), time, error)
        }
        other => panic!("unexpected reference result {other}"),
    }
}

fn chars(line: &str, byte: usize) -> usize {
    line[..byte].chars().count()
}

/// Outcomes of a case's lines and the final template names and hits.
type CaseRun = (Vec<Outcome>, Vec<(String, u64)>);

/// Runs a case through our detector; `Err` when the detector cannot be set up.
fn run_ours(case: &Case, year: i32, local: &TimeZone) -> Result<CaseRun, String> {
    let mut detector = DateDetector::with_current_year(case.datepattern.as_deref(), year)
        .map_err(|e| e.to_string())?;
    if let Some(tz) = &case.logtimezone {
        detector.set_log_timezone(Some(
            TimeZone::from_log_timezone(tz).map_err(|e| e.to_string())?,
        ));
    }
    let outcomes = case
        .lines
        .iter()
        .map(|line| match detector.match_time(line, case.now, local) {
            None => Outcome::NoMatch,
            Some(m) => match m.error {
                Some(DateError::LineFailed(e))
                    if m.start == 0 && m.end == 0 && m.time.is_none() && e == "IndexError" =>
                {
                    Outcome::LineFailed(e.to_string())
                }
                error => Outcome::Date(
                    chars(line, m.start),
                    chars(line, m.end),
                    m.time,
                    error.map(|e| match e {
                        DateError::Unparsable => "ValueError".to_string(),
                        DateError::LineFailed(name) => name.to_string(),
                    }),
                ),
            },
        })
        .collect();
    Ok((outcomes, detector.template_hits()))
}

/// Names of `%Exk`/`%Exl` depend on Python's set ordering; compare them in one spelling.
fn normalise_name(name: &str) -> String {
    name.replace("Ex%k", "%Exk").replace("Ex%l", "%Exl")
}

fn current_year(local: &TimeZone) -> i32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    local.format_local(now)[..4].parse().expect("year")
}

#[test]
fn date_detection_agrees_with_fail2ban() {
    let reference = rampart_reference::fail2ban();
    let config_dir = reference.config_dir();
    let filter_patterns = python(
        &reference,
        &["datepatterns", config_dir.to_str().expect("utf-8 path")],
        None,
    );
    let filter_patterns = filter_patterns.as_object().expect("map of filters");

    let mut cases = Vec::new();
    let mut case = |id: String,
                    datepattern: Option<&str>,
                    logtimezone: Option<&str>,
                    now: f64,
                    lines: &[String]| {
        cases.push(Case {
            id,
            datepattern: datepattern.map(str::to_string),
            logtimezone: logtimezone.map(str::to_string),
            now,
            lines: lines.to_vec(),
        });
    };

    // Every annotated sample log, with the default templates and with its filter's own
    // datepattern.
    let mut samples: Vec<PathBuf> = std::fs::read_dir(reference.sample_logs_dir())
        .expect("sample logs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    samples.sort();
    let mut all_sample_lines = Vec::new();
    for path in &samples {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name")
            .to_string();
        let lines = sample_lines(path);
        all_sample_lines.extend(lines.iter().cloned());
        case(format!("defaults/{name}"), None, None, TEST_NOW, &lines);
        if let Some(p) = filter_patterns.get(&name).and_then(Value::as_str) {
            case(format!("filter/{name}"), Some(p), None, TEST_NOW, &lines);
        }
    }

    // Every distinct datepattern of the stock filters, and our own, over crafted lines.
    let crafted = crafted_lines();
    case(
        "defaults/crafted".to_string(),
        None,
        None,
        TEST_NOW,
        &crafted,
    );
    let mut stock: Vec<&str> = filter_patterns.values().filter_map(Value::as_str).collect();
    stock.sort();
    stock.dedup();
    for p in &stock {
        case(
            format!("stock pattern {p:?}"),
            Some(p),
            None,
            TEST_NOW,
            &crafted,
        );
    }
    for p in custom_patterns() {
        case(
            format!("custom pattern {p:?}"),
            Some(&p),
            None,
            TEST_NOW,
            &crafted,
        );
    }

    // logtimezone, and clocks around New Year and the daylight-saving changes.
    for tz in [
        "UTC",
        "UTC+0200",
        "GMT-0100",
        "CET+0100",
        "-05:30",
        "EST",
        "Europe/Paris",
    ] {
        case(
            format!("logtimezone {tz}"),
            None,
            Some(tz),
            TEST_NOW,
            &crafted,
        );
    }
    for now in [
        1_104_535_800.0,
        1_104_532_200.0,
        1_104_620_400.5,
        1_111_885_200.0,
        1_130_633_999.9,
    ] {
        case(format!("defaults at {now}"), None, None, now, &crafted);
        case(
            format!("time only at {now}"),
            Some("%H:%M:%S"),
            None,
            now,
            &crafted,
        );
    }
    // All sample lines in one sequence: many template switches.
    case(
        "defaults/all samples".to_string(),
        None,
        None,
        TEST_NOW,
        &all_sample_lines,
    );

    let request = json!({
        "cases": cases.iter().map(|c| json!({
            "id": c.id,
            "datepattern": c.datepattern,
            "logtimezone": c.logtimezone,
            "now": c.now,
            "lines": c.lines,
        })).collect::<Vec<_>>(),
    });
    let expected = python(&reference, &["run"], Some(&request.to_string()));
    let expected = expected.as_array().expect("one result per case");
    assert_eq!(expected.len(), cases.len());

    // One zone for the whole run: glibc's mktime seed carries over between calls, and the
    // reference ran every case in one process.
    let local = TimeZone::from_tz_value(Some(CORPUS_TZ));
    let year = current_year(&local);
    let (mut lines_total, mut lines_agreeing, mut dated) = (0, 0, 0);
    let mut mismatches = Vec::new();
    for (case, reference_case) in cases.iter().zip(expected) {
        let setup_error = reference_case["setup_error"].as_str();
        let ours = run_ours(case, year, &local);
        match (setup_error, ours) {
            (Some(_), Err(_)) => continue,
            (Some(e), Ok(_)) => {
                mismatches.push(format!(
                    "{}: fail2ban rejects it ({e}), we accept it",
                    case.id
                ));
                continue;
            }
            (None, Err(e)) => {
                mismatches.push(format!(
                    "{}: we reject it ({e}), fail2ban accepts it",
                    case.id
                ));
                continue;
            }
            (None, Ok((outcomes, templates))) => {
                let theirs = reference_case["results"].as_array().expect("results");
                for ((line, ours), theirs) in case.lines.iter().zip(&outcomes).zip(theirs) {
                    lines_total += 1;
                    let theirs = python_outcome(theirs);
                    if matches!(theirs, Outcome::Date(_, _, Some(_), _)) {
                        dated += 1;
                    }
                    if *ours == theirs {
                        lines_agreeing += 1;
                    } else {
                        mismatches.push(format!(
                            "{}: line {line:?}\n    fail2ban: {theirs:?}\n    rampart:  {ours:?}",
                            case.id
                        ));
                    }
                }
                let their_templates: Vec<(String, u64)> = reference_case["templates"]
                    .as_array()
                    .expect("templates")
                    .iter()
                    .map(|t| {
                        (
                            normalise_name(t[0].as_str().expect("name")),
                            t[1].as_u64().expect("hits"),
                        )
                    })
                    .collect();
                let ours: Vec<(String, u64)> = templates
                    .into_iter()
                    .map(|(n, h)| (normalise_name(&n), h))
                    .collect();
                if ours != their_templates {
                    mismatches.push(format!(
                        "{}: template order/hits differ\n    fail2ban: {their_templates:?}\n    rampart:  {ours:?}",
                        case.id
                    ));
                }
            }
        }
    }
    eprintln!(
        "date detection: {} cases, {lines_agreeing} of {lines_total} lines agree ({dated} dated by fail2ban), {} mismatches",
        cases.len(),
        mismatches.len()
    );
    for m in mismatches.iter().take(40) {
        eprintln!("{m}");
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches with fail2ban",
        mismatches.len()
    );
}
