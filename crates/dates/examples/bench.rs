//! Cost of `DateDetector::match_time` per line, template cache warm.
//!
//! `cargo run --release -p rampart-dates --example bench`

use std::hint::black_box;
use std::time::Instant;

use rampart_dates::{DateDetector, TimeZone};

const NOW: f64 = 1_124_013_600.0;

fn bench(label: &str, datepattern: Option<&str>, lines: &[String], rounds: usize) {
    // An optional argument selects the scenarios whose label contains it.
    if std::env::args()
        .nth(1)
        .is_some_and(|only| !label.contains(&only))
    {
        return;
    }
    let local = TimeZone::from_tz_value(Some("CET-01CEST-02,M3.5.0,M10.5.0"));
    let mut detector = DateDetector::new(datepattern).expect("valid pattern");
    // Warm up: template order settles, caches fill.
    for line in lines.iter().take(1000) {
        black_box(detector.match_time(line, NOW, &local));
    }
    let started = Instant::now();
    let mut dated = 0usize;
    for _ in 0..rounds {
        for line in lines {
            if let Some(m) = detector.match_time(black_box(line), NOW, &local) {
                dated += usize::from(m.time.is_some());
            }
        }
    }
    let elapsed = started.elapsed();
    let count = lines.len() * rounds;
    // The share of the regex engine: the winning template's regex alone on the same lines.
    let winner = &detector.template_stats()[0];
    let regex = rampart_pyre::Regex::new(&winner.regex).expect("template regex compiles");
    let mut locations = rampart_pyre::Locations::new();
    let regex_started = Instant::now();
    for _ in 0..rounds {
        for line in lines {
            black_box(regex.captures(black_box(line), &mut locations));
        }
    }
    let regex_elapsed = regex_started.elapsed();
    println!(
        "{label:<52} {:>7.1} ns/line, of which {:>6.1} in the regex ({dated} of {count} dated)",
        elapsed.as_nanos() as f64 / count as f64,
        regex_elapsed.as_nanos() as f64 / count as f64,
    );
}

fn main() {
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug"];
    let syslog = |i: usize, per_second: usize| {
        let s = i / per_second;
        format!(
            "{} {:2} {:02}:{:02}:{:02} host sshd[{}]: Failed password for invalid user admin from 192.0.2.{} port {} ssh2",
            months[s / 86_400 % 8],
            1 + s / 3600 % 28,
            s / 3600 % 24,
            s / 60 % 60,
            s % 60,
            1000 + i % 5000,
            i % 250,
            1024 + i % 60_000,
        )
    };
    let n = 100_000;
    let same_second: Vec<String> = (0..n).map(|i| syslog(i, 10)).collect();
    let every_second: Vec<String> = (0..n).map(|i| syslog(i, 1)).collect();
    let iso: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "2005-08-{:02} {:02}:{:02}:{:02} app[1]: login failed for user x from 192.0.2.{}",
                1 + i / 36_000 % 28,
                i / 3600 % 24,
                i / 60 % 60,
                i % 60,
                i % 250
            )
        })
        .collect();
    let apache: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "192.0.2.{} - - [14/Aug/2005:{:02}:{:02}:{:02} +0200] \"GET /x HTTP/1.1\" 401 381",
                i % 250,
                i / 3600 % 24,
                i / 60 % 60,
                i % 60
            )
        })
        .collect();
    let no_date: Vec<String> = (0..n)
        .map(|i| format!("kernel: something happened {i} times"))
        .collect();

    bench(
        "defaults, syslog, 10 lines per second",
        None,
        &same_second,
        20,
    );
    bench(
        "defaults, syslog, new second every line",
        None,
        &every_second,
        20,
    );
    bench(
        "{^LN-BEG} (sshd), syslog, 10 lines per second",
        Some("{^LN-BEG}"),
        &same_second,
        20,
    );
    bench(
        "{^LN-BEG} (sshd), syslog, new second every line",
        Some("{^LN-BEG}"),
        &every_second,
        20,
    );
    bench("defaults, ISO 8601, new second every line", None, &iso, 20);
    bench(
        "defaults, apache access log (date inside the line)",
        None,
        &apache,
        20,
    );
    bench(
        "%d/%b[^/]*/%Y:%H:%M:%S %z, apache access log",
        Some("%d/%b[^/]*/%Y:%H:%M:%S %z"),
        &apache,
        20,
    );
    bench("defaults, lines without a date", None, &no_date, 2);
}
