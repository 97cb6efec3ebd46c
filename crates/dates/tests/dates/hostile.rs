//! Hostile inputs: no panic on any line, pattern or time value, and long lines stay cheap.

use std::time::{Duration, Instant};

use rampart_dates::{DateDetector, TimeZone, str2seconds};

const NOW: f64 = 1_124_013_600.0;

fn zone() -> TimeZone {
    TimeZone::from_tz_value(Some("CET-01CEST-02,M3.5.0,M10.5.0"))
}

fn hostile_lines() -> Vec<String> {
    let mut lines = vec![
        "Feb 30 10:00:00 x".to_string(),
        "2005-02-30 10:00:00 x".to_string(),
        "9999-12-31 23:59:59 +1200".to_string(),
        "0000-01-01 00:00:00".to_string(),
        "99999999999 huge epoch".to_string(),
        "[99999999999.999999] huge epoch".to_string(),
        "99999999999999999 huge long epoch".to_string(),
        "@ffffffffffffffffffffffff tai64n".to_string(),
        "ERROR Jan 14 08:03:07 unknown zone".to_string(),
        "\u{0}\u{1}\u{7f}\u{feff}".to_string(),
        String::new(),
    ];
    for unit in [
        " ",
        "0",
        "1",
        "-",
        ":",
        "Jan ",
        "2005-01-23 ",
        "12:00:00 ",
        "é",
        "\u{663}",
        "@",
    ] {
        lines.push(unit.repeat(65_536 / unit.len()));
    }
    lines.push(format!("{}Jan 14 08:03:07", " ".repeat(65_536)));
    lines.push(format!("Jan 14 08:03:07 {}", "x".repeat(65_536)));
    lines.push(format!("{}2005-01-23 21:59:59", "1 ".repeat(32_768)));
    lines
}

#[test]
fn hostile_lines_never_panic_and_stay_fast() {
    let local = zone();
    let patterns = [
        None,
        Some("{^LN-BEG}"),
        Some("^[^\\[]*\\[({DATE})"),
        Some("%Y-%m-%d %H:%M:%S"),
        Some("(?P<Y>\\d+)-(?P<m>\\d+)-(?P<d>\\d+) (?P<H>\\d+)"),
        Some("EPOCH\nLEPOCH"),
        Some("{NONE}"),
        Some("%j %Y %U %W %w"),
    ];
    let lines = hostile_lines();
    for pattern in patterns {
        let mut detector = DateDetector::new(pattern).expect("valid pattern");
        let started = Instant::now();
        for line in &lines {
            if let Some(m) = detector.match_time(line, NOW, &local) {
                assert!(m.start <= m.end && m.end <= line.len(), "{pattern:?}");
                assert!(line.is_char_boundary(m.start) && line.is_char_boundary(m.end));
                if let Some(t) = m.time {
                    assert!(t.is_finite());
                }
            }
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(20),
            "{pattern:?}: {} hostile lines took {elapsed:?}",
            lines.len()
        );
    }
}

#[test]
fn hostile_clocks_never_panic() {
    let local = zone();
    let mut detector = DateDetector::new(Some("%H:%M:%S")).expect("valid pattern");
    for now in [
        f64::NAN,
        f64::INFINITY,
        -1e300,
        1e300,
        0.0,
        -62_135_596_800.0,
        253_402_300_799.0,
    ] {
        let m = detector.match_time("12:00:00 x", now, &local);
        assert!(m.is_some_and(|m| m.time.is_none_or(f64::is_finite)));
    }
}

#[test]
fn hostile_patterns_are_errors_not_panics() {
    for pattern in [
        "%",
        "%q",
        "(",
        "[",
        "{DATE",
        "%Ex",
        "\\",
        "(?P<y>",
        "**",
        "{^LN-BEG}",
        "(?P=_sep)",
    ] {
        let _ = DateDetector::new(Some(pattern));
        // Deeper nesting is the regex crate's concern (it recurses per parenthesis).
        let _ = DateDetector::new(Some(&pattern.repeat(100)));
    }
    let _ = TimeZone::from_log_timezone(&"+".repeat(10_000));
    let _ = TimeZone::posix(&"CET-01CEST".repeat(1000));
}

#[test]
fn hostile_time_values_are_errors_not_panics() {
    for value in [
        "(".repeat(10_000),
        "1".repeat(10_000),
        "9".repeat(100) + "**99",
        "1e999".into(),
        "--1".into(),
        "-(-(-1))".into(),
    ] {
        let _ = str2seconds(&value);
    }
    assert_eq!(str2seconds("-(-(-1))").ok(), Some(-1.0));
}
