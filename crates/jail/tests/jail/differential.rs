//! Differential test: the same operations through fail2ban's `FailManager`,
//! `BanManager` and `bantime.*` formula code (run by `tests/data/reference.py` with
//! fail2ban's clock frozen per step) and through ours. Operation sequences are
//! generated from a fixed seed, so a failure is reproducible.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rampart_jail::{
    BanManager, BanResult, FailManager, FailureId, Increment, IncrementOptions, Ticket,
};
use serde_json::{Value, json};

/// xorshift64*: enough randomness for case generation, no dependency.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub(crate) fn python(requests: &Value) -> Vec<Value> {
    let reference = rampart_reference::fail2ban();
    let mut child = Command::new("/usr/bin/python3")
        .arg(data_dir().join("reference.py"))
        .env("PYTHONPATH", reference.python_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = requests.to_string();
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
    let value: Value = serde_json::from_slice(&output.stdout).expect("reference prints JSON");
    value.as_array().expect("a list of results").clone()
}

fn id(text: &str) -> FailureId {
    FailureId::parse(text, rampart_filter::AddrHint::Any)
}

const IDS: [&str; 4] = ["192.0.2.1", "192.0.2.2", "2001:db8::7", "198.51.100.9"];

fn fail_case(rng: &mut Rng) -> Value {
    let maxretry = 1 + rng.below(6);
    let findtime = *rng.pick(&[60.0, 600.0, 601.5, 3600.0]);
    let maxmatches = rng.below(4);
    let mut now = 1_000_000.0;
    let mut ops = Vec::new();
    for n in 0..(20 + rng.below(60)) {
        if rng.below(8) == 0 {
            ops.push(json!(["cleanup", now]));
            continue;
        }
        // Mostly forward in time, by up to two findtimes; sometimes a late line.
        let step = (rng.unit() * 2.0 * findtime / maxretry as f64).round();
        now += step;
        let time = if rng.below(10) == 0 {
            now - (rng.unit() * findtime).round()
        } else {
            now
        };
        let matches: Vec<String> = (0..rng.below(3)).map(|m| format!("line {n}.{m}")).collect();
        let weight = if rng.below(6) == 0 {
            1 + rng.below(4)
        } else {
            1
        };
        ops.push(json!(["fail", rng.pick(&IDS[..3]), time, matches, weight]));
    }
    json!({"kind": "fail", "maxretry": maxretry, "findtime": findtime,
           "maxmatches": maxmatches, "ops": ops})
}

fn run_fail(case: &Value) -> Value {
    let mut fm = FailManager::new(
        case["maxretry"].as_u64().unwrap() as u32,
        case["findtime"].as_f64().unwrap(),
        case["maxmatches"].as_u64().unwrap() as usize,
    );
    let mut steps = Vec::new();
    for op in case["ops"].as_array().unwrap() {
        if op[0] == "cleanup" {
            fm.cleanup(op[1].as_f64().unwrap());
            steps.push(json!(fm.len()));
            continue;
        }
        let fid = id(op[1].as_str().unwrap());
        let mut ticket = Ticket::new(fid.clone(), op[2].as_f64().unwrap());
        ticket.matches = op[3]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect();
        let weight = op[4].as_u64().unwrap() as u32;
        match fm.add_failure(ticket, weight) {
            Some(t) => steps.push(json!(["banned", t.time, t.failures, t.matches])),
            None => steps.push(json!([fm.retry(&fid), null])),
        }
    }
    json!({"steps": steps, "total": fm.total()})
}

/// Python reports the attempt count also on the ban step; ours reports the ticket only.
fn normalise_fail(reference: &Value) -> Value {
    let steps: Vec<Value> = reference["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| match s {
            Value::Array(a) if !a[1].is_null() => {
                let b = &a[1];
                json!(["banned", b[0].as_f64(), b[1], b[2]])
            }
            Value::Array(a) => json!([a[0], null]),
            other => other.clone(),
        })
        .collect();
    json!({"steps": steps, "total": reference["total"]})
}

fn normalise_times(mut ours: Value) -> Value {
    for step in ours["steps"].as_array_mut().unwrap() {
        if let Some(a) = step.as_array_mut()
            && a.first() == Some(&json!("banned"))
        {
            a[1] = json!(a[1].as_f64());
        }
    }
    ours
}

#[test]
fn fail_manager_counts_like_fail2ban() {
    let mut rng = Rng(0x5EED_0001);
    let cases: Vec<Value> = (0..150).map(|_| fail_case(&mut rng)).collect();
    let reference = python(&Value::Array(cases.clone()));
    let mut bans = 0;
    for (case, theirs) in cases.iter().zip(&reference) {
        let ours = normalise_times(run_fail(case));
        let theirs = normalise_fail(theirs);
        assert_eq!(ours, theirs, "case {case}");
        bans += ours["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s[0] == "banned")
            .count();
    }
    assert!(
        bans > 100,
        "the cases should ban often, banned {bans} times"
    );
}

fn ban_case(rng: &mut Rng) -> Value {
    let bantime = *rng.pick(&[600i64, 60, 3600, -1]);
    let mut now = 1_000_000.0;
    let mut ops = Vec::new();
    for _ in 0..(10 + rng.below(40)) {
        // On a 30 s grid, so that unbans often fall exactly on a ban's end.
        now += 30.0 * rng.below(14) as f64;
        if rng.below(4) == 0 {
            ops.push(json!(["unban", now]));
            continue;
        }
        let time = now - 30.0 * rng.below(24) as f64;
        let own: Value = match rng.below(6) {
            0 => json!(-1),
            1 => json!(1200),
            2 => json!(30.5),
            3 => json!(-2),
            _ => Value::Null,
        };
        ops.push(json!(["ban", rng.pick(&IDS), time, own, now]));
    }
    json!({"kind": "ban", "bantime": bantime, "ops": ops})
}

fn run_ban(case: &Value) -> Value {
    let ban_time = case["bantime"].as_i64().unwrap();
    let mut bm = BanManager::new(ban_time);
    let mut steps = Vec::new();
    for op in case["ops"].as_array().unwrap() {
        if op[0] == "unban" {
            let mut released: Vec<String> = bm
                .unban_due(op[1].as_f64().unwrap())
                .iter()
                .map(|t| t.id.to_string())
                .collect();
            released.sort();
            steps.push(json!(released));
            continue;
        }
        let mut ticket = Ticket::new(id(op[1].as_str().unwrap()), op[2].as_f64().unwrap());
        ticket.ban_time = op[3].as_f64();
        let kind = match bm.ban(ticket, op[4].as_f64().unwrap()) {
            BanResult::Banned => "banned",
            BanResult::Expired => "expired",
            BanResult::AlreadyBanned {
                prolonged: true, ..
            } => "prolonged",
            BanResult::AlreadyBanned { .. } => "already",
        };
        steps.push(json!(kind));
    }
    #[allow(clippy::cast_precision_loss)]
    let default = ban_time as f64;
    let mut state: Vec<Value> = bm
        .banned()
        .map(|fid| {
            let t = bm.get(fid).unwrap();
            // fail2ban's stand-in end for permanent bans.
            let end = t.end_of_ban(default).unwrap_or(0x7FFF_FFFF_FFFF_i64 as f64);
            json!([t.id.to_string(), t.time, end, t.ban_count])
        })
        .collect();
    state.sort_by_key(|v| v[0].as_str().unwrap().to_string());
    json!({"steps": steps, "state": state, "total": bm.total()})
}

/// Numbers compared as floats: Python prints `1000` and `1000.0` for equal values.
fn floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(floats).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), floats(v))).collect()),
        other => other.clone(),
    }
}

#[test]
fn ban_manager_bans_and_releases_like_fail2ban() {
    let mut rng = Rng(0x5EED_0002);
    let cases: Vec<Value> = (0..150).map(|_| ban_case(&mut rng)).collect();
    let reference = python(&Value::Array(cases.clone()));
    let mut kinds = std::collections::BTreeSet::new();
    for (case, theirs) in cases.iter().zip(&reference) {
        let ours = run_ban(case);
        assert_eq!(floats(&ours), floats(theirs), "case {case}");
        for s in ours["steps"].as_array().unwrap() {
            if let Some(k) = s.as_str() {
                kinds.insert(k.to_string());
            }
        }
    }
    assert_eq!(kinds.len(), 4, "all outcomes exercised: {kinds:?}");
}

const FORMULAS: [Option<&str>; 7] = [
    None,
    Some("ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)"),
    Some("ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor"),
    Some("min(ban.Time * 2 ** ban.Count, 86400) if ban.Count < 10 else 86400 * banFactor"),
    Some("ban.Time + ban.Count * 3600 // banFactor - ban.Count % 3"),
    Some("ban.Time * (ban.Count + 1) / 2 * banFactor"),
    Some(
        "max(ban.Time, 10 ** (ban.Count / 4)) * math.log(ban.Count + 1, 2) + round(2.5 * ban.Count)",
    ),
];

fn ban_time_case(rng: &mut Rng) -> Value {
    let formula = *rng.pick(&FORMULAS);
    let multipliers = match rng.below(4) {
        0 => Some(*rng.pick(&["1 2 4 8 16 32 64", "1 5 30 60 300 720 1440 2880", "3"])),
        _ => None,
    };
    let factor = *rng.pick(&[
        None,
        Some("1"),
        Some("2"),
        Some("1.5"),
        Some("2/3"),
        Some("0.5"),
    ]);
    let maxtime = *rng.pick(&[None, Some("1d"), Some("5h"), Some("2000")]);
    let rndtime = *rng.pick(&[None, Some("10m"), Some("5")]);
    let cases: Vec<Value> = (0..30)
        .map(|_| {
            let base = *rng.pick(&[600i64, 3600, 1, 86400, 45]);
            let count = 1 + rng.below(26);
            json!([base, count, rng.unit()])
        })
        .collect();
    json!({"kind": "bantime", "options": {"formula": formula, "multipliers": multipliers,
        "factor": factor, "maxtime": maxtime, "rndtime": rndtime}, "cases": cases})
}

fn run_ban_time(case: &Value) -> Value {
    let o = &case["options"];
    let options = IncrementOptions {
        factor: o["factor"].as_str(),
        formula: o["formula"].as_str(),
        multipliers: o["multipliers"].as_str(),
        max_time: o["maxtime"].as_str(),
        rnd_time: o["rndtime"].as_str(),
        overall_jails: false,
    };
    let increment = match Increment::from_options(&options) {
        Ok(i) => i,
        Err(e) => return json!({"config_error": e.to_string()}),
    };
    let values: Vec<Value> = case["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let rnd = c[2].as_f64().unwrap();
            match increment.ban_time(
                c[0].as_i64().unwrap(),
                c[1].as_u64().unwrap() as u32,
                || rnd,
            ) {
                Ok(v) => json!(v),
                Err(e) => json!(e.to_string()),
            }
        })
        .collect();
    json!({"values": values})
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

#[test]
fn ban_time_increment_computes_like_fail2ban() {
    let mut rng = Rng(0x5EED_0003);
    let cases: Vec<Value> = (0..120).map(|_| ban_time_case(&mut rng)).collect();
    let reference = python(&Value::Array(cases.clone()));
    let mut compared = 0;
    for (case, theirs) in cases.iter().zip(&reference) {
        let ours = run_ban_time(case);
        assert_eq!(
            ours.get("config_error").is_some(),
            theirs.get("config_error").is_some(),
            "case {case}: ours {ours}, fail2ban {theirs}"
        );
        let (Some(ours), Some(theirs)) = (ours["values"].as_array(), theirs["values"].as_array())
        else {
            continue;
        };
        for ((o, t), input) in ours
            .iter()
            .zip(theirs)
            .zip(case["cases"].as_array().unwrap())
        {
            match (o.as_f64(), t.as_f64()) {
                (Some(o), Some(t)) => assert!(
                    close(o, t),
                    "options {} input {input}: ours {o}, fail2ban {t}",
                    case["options"]
                ),
                (None, None) => {}
                _ => panic!(
                    "options {} input {input}: ours {o}, fail2ban {t}",
                    case["options"]
                ),
            }
            compared += 1;
        }
    }
    assert!(compared > 3000, "compared {compared} values");
}
