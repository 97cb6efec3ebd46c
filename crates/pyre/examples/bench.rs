//! Throughput of the sshd filter pipeline on realistic syslog lines.
//!
//! Run with `cargo run --release -p rampart-pyre --example bench`. The regexes are
//! taken at run time from the fail2ban reference (tags expanded by fail2ban itself),
//! so nothing of fail2ban is compiled in. The pipeline mirrors fail2ban's per-line work
//! after the date is cut out: prefregex with its `content` group, then the failregexes
//! on the content, first match wins, with a literal prefilter in front.

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use rampart_pyre::{Candidates, Engine, Locations, Prefilter, Regex};

const DUMP: &str = r#"
import json, sys
from fail2ban.client.filterreader import FilterReader
from fail2ban.server.failregex import Regex
r = FilterReader("sshd", "bench", {}, share_config={}, basedir=sys.argv[1])
r.read(); r.getOptions({})
o = r.getCombined()
fail = [Regex(x)._regex for x in o["failregex"].split("\n") if x.strip()]
print(json.dumps({"prefregex": Regex(o["prefregex"])._regex, "failregex": fail}))
"#;

fn lines() -> Vec<String> {
    let failures = [
        "Failed password for invalid user admin from 192.0.2.7 port 4321 ssh2",
        "Failed password for root from 198.51.100.23 port 50022 ssh2",
        "Invalid user oracle from 203.0.113.9 port 39910",
        "Failed password for invalid user test from 2001:db8::7:1 port 2222 ssh2",
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.44  user=root",
        "Disconnecting: Too many authentication failures for root [preauth]",
    ];
    let others = [
        "Accepted publickey for deploy from 10.0.0.5 port 51234 ssh2: ED25519 SHA256:abcdefghijklmnop",
        "pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)",
        "Received disconnect from 10.0.0.5 port 51234:11: disconnected by user",
        "Disconnected from user deploy 10.0.0.5 port 51234",
        "Connection closed by 192.0.2.80 port 41234 [preauth]",
        "Server listening on 0.0.0.0 port 22.",
        "pam_unix(sshd:session): session closed for user deploy",
        "rexec line 15: Deprecated option UsePrivilegeSeparation",
        "error: kex_exchange_identification: Connection closed by remote host",
        "User child is on pid 4242",
        "Postponed publickey for deploy from 10.0.0.5 port 51234 ssh2 [preauth]",
        "Starting session: shell on pts/0 for deploy from 10.0.0.5 port 51234 id 0",
    ];
    let mut out = Vec::new();
    for i in 0..30_000usize {
        let pid = 1000 + (i * 7919) % 50_000;
        let msg = if i % 3 == 0 {
            failures[i / 3 % failures.len()]
        } else {
            others[i % others.len()]
        };
        out.push(format!("host sshd[{pid}]: {msg}\n"));
    }
    out
}

fn per_call(label: &str, n: usize, mut f: impl FnMut()) {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("{label:<58} {ns:>9.0} ns");
}

fn main() {
    let reference = rampart_reference::fail2ban();
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(DUMP)
        .arg(reference.config_dir())
        .env("PYTHONPATH", reference.python_path())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let prefregex = Regex::new(json["prefregex"].as_str().expect("prefregex")).expect("compiles");
    let failregex: Vec<Regex> = json["failregex"]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| Regex::new(r.as_str().expect("str")).expect("compiles"))
        .collect();
    let linear = failregex
        .iter()
        .filter(|r| r.engine() == Engine::Linear)
        .count();
    println!(
        "sshd: prefregex {:?}, {} failregexes ({linear} linear)",
        prefregex.engine(),
        failregex.len()
    );
    let refs: Vec<&Regex> = failregex.iter().collect();
    let prefilter = Prefilter::new(&refs);
    let content = prefregex.group_index("content").expect("content group");
    let lines = lines();
    let mut locs = Locations::new();
    let mut inner = Locations::new();
    let mut cands = Candidates::new();

    let mut run = |count: &mut usize| {
        for line in &lines {
            if !prefregex.captures(line, &mut locs) {
                continue;
            }
            let Some(text) = locs.text(line, content) else {
                continue;
            };
            // fail2ban matches the failregexes against the content plus a newline.
            let (s, _) = locs.get(content).unwrap_or((0, 0));
            let body = &line[s..];
            let _ = text;
            prefilter.candidates(body, &mut cands);
            for i in cands.iter() {
                if failregex[i].captures(body, &mut inner) {
                    *count += 1;
                    break;
                }
            }
        }
    };
    let mut count = 0;
    run(&mut count); // warm-up
    let rounds = 20;
    let start = Instant::now();
    let mut total = 0;
    for _ in 0..rounds {
        count = 0;
        run(&mut count);
        total += lines.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "pipeline: {:.2} M lines/s ({} failures per {} lines)",
        total as f64 / secs / 1e6,
        count,
        lines.len()
    );

    // The same, with the prefilter run over the whole line first: the content is part
    // of the line, so a line without any failregex literal cannot produce a failure
    // and its prefregex captures can be skipped.
    let start = Instant::now();
    let mut found = 0;
    for _ in 0..rounds {
        for line in &lines {
            prefilter.candidates(line, &mut cands);
            if cands.is_empty() || !prefregex.captures(line, &mut locs) {
                continue;
            }
            let Some((s, _)) = locs.get(content) else {
                continue;
            };
            let body = &line[s..];
            prefilter.candidates(body, &mut cands);
            for i in cands.iter() {
                if failregex[i].captures(body, &mut inner) {
                    found += 1;
                    break;
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "pipeline, line prefilter first: {:.2} M lines/s ({} failures)",
        total as f64 / secs / 1e6,
        found / rounds
    );

    let failed = "Failed password for invalid user admin from 192.0.2.7 port 4321 ssh2\n";
    let root = "Failed password for root from 198.51.100.23 port 50022 ssh2\n";
    let other = "pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)\n";
    let line =
        "host sshd[1234]: Failed password for invalid user admin from 192.0.2.7 port 4321 ssh2\n";
    let hot = failregex
        .iter()
        .find(|r| r.as_str().starts_with("^Failed (?:(?P<nofail>"))
        .expect("the Failed regex");
    println!("hot failregex engine: {:?}", hot.engine());
    per_call("prefregex captures (sshd line)", 200_000, || {
        black_box(prefregex.captures(black_box(line), &mut locs));
    });
    per_call(
        "Failed-regex captures, invalid user (match)",
        200_000,
        || {
            black_box(hot.captures(black_box(failed), &mut inner));
        },
    );
    per_call("Failed-regex captures, root (match)", 200_000, || {
        black_box(hot.captures(black_box(root), &mut inner));
    });
    per_call(
        "Failed-regex is_match, invalid user (match)",
        200_000,
        || {
            black_box(hot.is_match(black_box(failed)));
        },
    );
    per_call("prefregex is_match (sshd line)", 200_000, || {
        black_box(prefregex.is_match(black_box(line)));
    });
    per_call("Failed-regex captures (no match)", 200_000, || {
        black_box(hot.captures(black_box(other), &mut inner));
    });
    per_call("Failed-regex is_match (no match)", 200_000, || {
        black_box(hot.is_match(black_box(other)));
    });
    per_call("prefilter candidates (failure content)", 200_000, || {
        prefilter.candidates(black_box(failed), &mut cands);
    });
    per_call("prefilter candidates (other content)", 200_000, || {
        prefilter.candidates(black_box(other), &mut cands);
    });
}
