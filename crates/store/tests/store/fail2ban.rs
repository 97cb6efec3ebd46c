//! Differential tests against fail2ban's own database class.
//!
//! One scenario (jails, bans, removals, log and journal positions) is written twice: by
//! fail2ban's `Fail2BanDb` (through `tests/data/fail2ban_db.py`) and by rampart's store.
//! Each file is then queried by both implementations — bans, bans to restore, ban counts,
//! merged bans, positions — and all four answers must be identical. The same is done
//! after a purge, for fresh schemas and for upgrades of fail2ban's own old databases.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rampart_store::{BanRecord, Opened, RestoreQuery, Store};
use serde_json::{Value, json};

use crate::common::{TempDir, contents_of, schema_of};

const NOW: i64 = 1_700_000_000;

struct Python {
    exe: PathBuf,
    python_path: PathBuf,
    script: PathBuf,
}

impl Python {
    /// fail2ban's Python code with a system Python 3; a test without it fails.
    fn get() -> Python {
        let exe = ["/usr/bin/python3", "/usr/local/bin/python3"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("python3 is required to run fail2ban's Fail2BanDb (install python3)");
        Python {
            exe,
            python_path: rampart_reference::fail2ban().python_path(),
            script: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fail2ban_db.py"),
        }
    }

    fn run(&self, mode: &str, db: &Path, scenario: &Value) -> String {
        let mut child = Command::new(&self.exe)
            .arg(&self.script)
            .arg(mode)
            .arg(db)
            .env("PYTHONPATH", &self.python_path)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting python3");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(scenario.to_string().as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "fail2ban_db.py {mode} {} failed: {}",
            db.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn read(&self, db: &Path, scenario: &Value) -> Value {
        // fail2ban's addLog inserts the rows it looks up: read a copy.
        let copy = db.with_extension("pyread");
        std::fs::copy(db, &copy).unwrap();
        let out = self.run("read", &copy, scenario);
        std::fs::remove_file(&copy).unwrap();
        serde_json::from_str(&out).unwrap()
    }
}

fn jail_spec(name: &str, bantime: i64, increment: bool, maxtime: i64) -> Value {
    json!({"name": name, "bantime": bantime, "increment": increment, "maxtime": maxtime})
}

fn ban(jail: &str, ip: &str, ago: i64, bantime: i64, bancount: i64, data: Value) -> Value {
    json!({"jail": jail, "ip": ip, "time": NOW - ago, "bantime": bantime,
           "bancount": bancount, "data": data})
}

fn lines(ip: &str, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                Value::from(format!(
                    "Nov 14 22:{i:02}:00 host sshd[1]: Failed password for root from {ip}"
                ))
            })
            .collect(),
    )
}

/// Every case the daemon meets: running, expired, renewed, permanent, outside the restore
/// window, over-long ban times, many matched lines, IPv6, captured fields, non-ASCII text,
/// matches stored as lists of parts, removals, a jail dropped from the configuration.
fn scenario() -> Value {
    let mut scenario = json!({
        "now": NOW,
        "purge_age": 3600,
        "max_matches": 10,
        "extra_jails": ["retired"],
        "jails": [
            jail_spec("sshd", 600, false, -1),
            jail_spec("recidive", 604_800, true, 2_592_000),
            jail_spec("nginx auth", 86_400, true, -1),
        ],
        "bans": [
            ban("sshd", "192.0.2.1", 100, 600, 1, json!({"matches": lines("192.0.2.1", 3), "failures": 3})),
            ban("sshd", "192.0.2.2", 1000, 600, 1, json!({"matches": lines("192.0.2.2", 5), "failures": 5})),
            ban("sshd", "192.0.2.3", 5000, 600, 1, json!({"matches": lines("192.0.2.3", 4), "failures": 4, "user": "admin"})),
            ban("sshd", "192.0.2.3", 200, 1200, 2, json!({"matches": lines("192.0.2.3", 8), "failures": 8, "user": "root"})),
            ban("sshd", "192.0.2.4", 500, -1, 1, json!({"matches": lines("192.0.2.4", 1), "failures": 1})),
            ban("sshd", "192.0.2.5", 700, 3600, 3, json!({"matches": [], "failures": 6})),
            ban("sshd", "192.0.2.6", 100_000, 600, 1, json!({"matches": lines("192.0.2.6", 2), "failures": 2})),
            ban("sshd", "192.0.2.7", 5000, 3600, 1, json!({"failures": 5})),
            // Ends exactly now: expired.
            ban("sshd", "192.0.2.9", 600, 600, 1, json!({"failures": 2})),
            // Cut to the jail's 600 s by a correcting restore, it ends exactly now.
            ban("sshd", "192.0.2.10", 600, 1200, 2, json!({"failures": 2})),
            // Purged from bips only once three ban times old, not two.
            ban("sshd", "192.0.2.8", 6000, 1000, 1, json!({"failures": 5})),
            ban("sshd", "192.0.2.99", 50, 600, 1, json!({"matches": lines("192.0.2.99", 2), "failures": 2})),
            ban("sshd", "2001:db8::1", 50, 600, 1, json!({"matches": lines("2001:db8::1", 15), "failures": 15, "user": "root"})),
            ban("recidive", "192.0.2.3", 150, 604_800, 1, json!({"matches": lines("192.0.2.3", 5), "failures": 5})),
            ban("recidive", "198.51.100.7", 3_000_000, -1, 4, json!({"matches": [], "failures": 5})),
            ban("nginx auth", "203.0.113.9", 10, 86_400, 1,
                json!({"matches": [["10.0.0.1 - ", "bob [14/Nov/2023] \"GET /ünïcode\" 401"]], "failures": 1, "user": "bob ✓"})),
            ban("nginx auth", "198.18.0.1", 20, 86_400, 1, json!({"matches": lines("198.18.0.1", 1), "failures": 1})),
        ],
        "removals": [{"jail": "sshd", "ip": "192.0.2.99"}],
        "logs": [
            {"jail": "sshd", "path": "/var/log/auth.log", "hash": "3f786850e387550fdab836ed7e6dc881de23001b", "pos": 123_456},
            {"jail": "recidive", "path": "/var/log/fail2ban.log", "hash": "89e6c98d92887913cadf06b2adb97f26cde4849b", "pos": 0},
        ],
        "journals": [
            {"jail": "nginx auth", "name": "systemd-journal", "time": 1_699_999_999.123_456, "iso": "2023-11-14 22:13:19.123456"},
        ],
        "queries": {
            "now": NOW,
            "jails": ["sshd", "recidive", "nginx auth"],
            "ips": [],
            "current": [
                {"jail": "sshd", "window": 600, "correct": true},
                {"jail": "sshd", "window": null, "correct": false},
                {"jail": "sshd", "window": null, "correct": true},
                {"jail": "recidive", "window": null, "correct": true},
                {"jail": "recidive", "window": null, "correct": false},
                {"jail": "nginx auth", "window": null, "correct": true},
            ],
            "logs": [
                {"jail": "sshd", "path": "/var/log/auth.log", "hash": "3f786850e387550fdab836ed7e6dc881de23001b"},
                {"jail": "sshd", "path": "/var/log/auth.log", "hash": "0000000000000000000000000000000000000000"},
                {"jail": "recidive", "path": "/var/log/fail2ban.log", "hash": "89e6c98d92887913cadf06b2adb97f26cde4849b"},
                {"jail": "sshd", "path": "/var/log/other.log", "hash": "3f786850e387550fdab836ed7e6dc881de23001b"},
            ],
            "journals": [
                {"jail": "nginx auth", "name": "systemd-journal"},
                {"jail": "sshd", "name": "systemd-journal"},
            ],
        },
    });
    // Every id the scenario bans, and one it never does.
    let mut ips: Vec<Value> = Vec::new();
    for ban in scenario["bans"].as_array().unwrap() {
        if !ips.contains(&ban["ip"]) {
            ips.push(ban["ip"].clone());
        }
    }
    ips.push(json!("10.9.9.9"));
    scenario["queries"]["ips"] = Value::Array(ips);
    scenario
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap()
}

fn jail_of<'a>(scenario: &'a Value, name: &str) -> &'a Value {
    scenario["jails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == name)
        .unwrap()
}

/// The scenario written through rampart's store (the same steps as the Python writer).
fn rust_write(db: &Path, scenario: &Value) {
    let mut store = Store::open(db).unwrap();
    store.set_max_matches(scenario["max_matches"].as_u64().unwrap() as usize);
    for name in scenario["extra_jails"].as_array().unwrap() {
        store.add_jail(s(name)).unwrap();
    }
    store.disable_all_jails().unwrap();
    for jail in scenario["jails"].as_array().unwrap() {
        store.add_jail(s(&jail["name"])).unwrap();
    }
    for b in scenario["bans"].as_array().unwrap() {
        store
            .add_ban(&BanRecord {
                jail: s(&b["jail"]).to_string(),
                ip: s(&b["ip"]).to_string(),
                time_of_ban: i(&b["time"]),
                ban_time: i(&b["bantime"]),
                ban_count: i(&b["bancount"]),
                data: b["data"].clone(),
            })
            .unwrap();
    }
    for r in scenario["removals"].as_array().unwrap() {
        match r["ip"].as_str() {
            Some(ip) => store.remove_ban(s(&r["jail"]), ip).unwrap(),
            None => store.remove_jail_bans(s(&r["jail"])).unwrap(),
        }
    }
    for l in scenario["logs"].as_array().unwrap() {
        store
            .set_log_position(
                s(&l["jail"]),
                s(&l["path"]),
                Some(s(&l["hash"])),
                i(&l["pos"]),
            )
            .unwrap();
    }
    for j in scenario["journals"].as_array().unwrap() {
        store
            .set_journal_position(
                s(&j["jail"]),
                s(&j["name"]),
                j["time"].as_f64().unwrap(),
                s(&j["iso"]),
            )
            .unwrap();
    }
    store.close().unwrap();
}

/// What a fail2ban ticket built from stored data holds: `matches` and `failures` always.
fn as_ticket(mut data: Value) -> Value {
    let object = data.as_object_mut().unwrap();
    object.entry("matches").or_insert(json!([]));
    object.entry("failures").or_insert(json!(0));
    data
}

/// The scenario's queries answered by rampart's store, in the Python reader's shapes.
fn rust_read(db: &Path, scenario: &Value) -> Value {
    let store = Store::open(db).unwrap();
    let queries = &scenario["queries"];
    let now = i(&queries["now"]);
    let jails: Vec<&str> = queries["jails"].as_array().unwrap().iter().map(s).collect();
    let scopes = jails.iter().map(|j| Some(*j)).chain([None]);

    let mut bans = serde_json::Map::new();
    for scope in scopes.clone() {
        let rows = store.bans(scope, None, None).unwrap();
        let rows: Vec<Value> = rows
            .into_iter()
            .map(|b| json!([b.ip, b.time_of_ban, b.data]))
            .collect();
        bans.insert(scope.unwrap_or("*").to_string(), Value::Array(rows));
    }

    let mut current = Vec::new();
    for q in queries["current"].as_array().unwrap() {
        let jail = jail_of(scenario, s(&q["jail"]));
        let max = if jail["increment"].as_bool().unwrap() {
            i(&jail["maxtime"])
        } else {
            i(&jail["bantime"])
        };
        let query = RestoreQuery {
            now,
            window: q["window"].as_i64(),
            max_ban_time: q["correct"].as_bool().unwrap().then_some(max),
            unknown_ban_time: i(&jail["bantime"]),
        };
        let rows = store.current_bans(s(&q["jail"]), &query).unwrap();
        current.push(Value::Array(
            rows.into_iter()
                .map(|b| {
                    json!([
                        b.ip,
                        b.time_of_ban,
                        b.ban_time,
                        b.ban_count,
                        as_ticket(b.data)
                    ])
                })
                .collect(),
        ));
    }

    let mut stats = serde_json::Map::new();
    let mut merged = serde_json::Map::new();
    for ip in queries["ips"].as_array().unwrap().iter().map(s) {
        for scope in scopes.clone() {
            let key = format!("{ip} {}", scope.unwrap_or("*"));
            let row = store.ban_stats(ip, scope).unwrap();
            stats.insert(
                key.clone(),
                json!(
                    row.map(|r| vec![json!([r.ban_count, r.last_ban, r.ban_time])])
                        .unwrap_or_default()
                ),
            );
            let m = store.merged_bans(ip, scope).unwrap();
            merged.insert(
                key,
                m.map(|m| json!([m.ip, m.first_ban, m.data]))
                    .unwrap_or(Value::Null),
            );
        }
    }

    let logs: Vec<Value> = queries["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            let pos = store.log_position(s(&q["jail"]), s(&q["path"])).unwrap();
            match pos {
                Some(p) if p.first_line_hash.as_deref() == Some(s(&q["hash"])) => json!(p.position),
                _ => Value::Null,
            }
        })
        .collect();
    let journals: Vec<Value> = queries["journals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            store
                .journal_position(s(&q["jail"]), s(&q["name"]))
                .unwrap()
                .map(|p| json!(p.time))
                .unwrap_or(Value::Null)
        })
        .collect();
    let (issues, more) = store.take_issues();
    assert!(
        issues.is_empty() && more == 0,
        "unexpected row issues: {issues:?}"
    );
    json!({"bans": bans, "current": current, "stats": stats, "merged": merged,
           "logs": logs, "journals": journals})
}

/// Asserts two answers are equal, naming the first part that differs.
fn assert_same(what: &str, left: &Value, right: &Value) {
    if left == right {
        return;
    }
    for key in ["bans", "current", "stats", "merged", "logs", "journals"] {
        if left[key] != right[key] {
            let (l, r) = (&left[key], &right[key]);
            if let (Some(lo), Some(ro)) = (l.as_object(), r.as_object()) {
                for (k, lv) in lo {
                    if ro.get(k) != Some(lv) {
                        panic!("{what}: {key}[{k:?}] differs:\n  {lv}\n  {:?}", ro.get(k));
                    }
                }
            }
            panic!("{what}: {key} differs:\n  {l}\n  {r}");
        }
    }
    panic!("{what}: answers differ:\n  {left}\n  {right}");
}

/// Writes the scenario with both implementations; returns (fail2ban's file, rampart's).
fn write_both(dir: &TempDir, python: &Python, scenario: &Value) -> (PathBuf, PathBuf) {
    let by_fail2ban = dir.file("fail2ban.sqlite3");
    let by_rampart = dir.file("rampart.sqlite3");
    python.run("write", &by_fail2ban, scenario);
    rust_write(&by_rampart, scenario);
    (by_fail2ban, by_rampart)
}

fn read_all_four(
    python: &Python,
    by_fail2ban: &Path,
    by_rampart: &Path,
    scenario: &Value,
) -> Value {
    let reference = python.read(by_fail2ban, scenario);
    assert_same(
        "rampart reading fail2ban's file vs fail2ban reading it",
        &rust_read(by_fail2ban, scenario),
        &reference,
    );
    assert_same(
        "fail2ban reading rampart's file vs fail2ban reading its own",
        &python.read(by_rampart, scenario),
        &reference,
    );
    assert_same(
        "rampart reading its own file vs fail2ban reading its own",
        &rust_read(by_rampart, scenario),
        &reference,
    );
    reference
}

fn ips_of(rows: &Value) -> Vec<&str> {
    rows.as_array().unwrap().iter().map(|r| s(&r[0])).collect()
}

#[test]
fn both_implementations_read_both_files_alike() {
    let python = Python::get();
    let dir = TempDir::new("diff");
    let scenario = scenario();
    let (by_fail2ban, by_rampart) = write_both(&dir, &python, &scenario);
    let answers = read_all_four(&python, &by_fail2ban, &by_rampart, &scenario);

    // The agreement is about something: the scenario's cases show up as designed.
    let sshd_restore = ips_of(&answers["current"][0]);
    assert_eq!(
        sshd_restore,
        ["192.0.2.1", "192.0.2.3", "192.0.2.4", "2001:db8::1"]
    );
    let permanent_cut = answers["current"][0][2].clone();
    assert_eq!(
        (s(&permanent_cut[0]), i(&permanent_cut[2])),
        ("192.0.2.4", 600)
    );
    let sshd_all = ips_of(&answers["current"][1]);
    assert!(sshd_all.contains(&"192.0.2.5") && !sshd_all.contains(&"192.0.2.2"));
    assert!(sshd_all.contains(&"192.0.2.10") && !sshd_all.contains(&"192.0.2.9"));
    assert!(!ips_of(&answers["current"][2]).contains(&"192.0.2.10"));
    assert_eq!(ips_of(&answers["current"][3]), ["192.0.2.3"]);
    assert_eq!(
        ips_of(&answers["current"][4]),
        ["192.0.2.3", "198.51.100.7"]
    );
    assert_eq!(
        answers["stats"]["192.0.2.3 *"],
        json!([[3, NOW - 150, 606_000]])
    );
    assert_eq!(
        answers["merged"]["2001:db8::1 sshd"][2]["matches"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    assert_eq!(
        answers["merged"]["192.0.2.3 sshd"][2]["failures"],
        json!(12)
    );
    assert_eq!(answers["merged"]["192.0.2.99 sshd"], Value::Null);
    assert_eq!(answers["logs"], json!([123_456, null, 0, null]));
    assert_eq!(answers["journals"], json!([1_699_999_999.123_456, null]));
}

#[test]
fn purge_removes_the_same_rows() {
    let python = Python::get();
    let dir = TempDir::new("purge");
    let scenario = scenario();
    let (by_fail2ban, by_rampart) = write_both(&dir, &python, &scenario);
    let before = contents_of(&by_rampart);
    python.run("purge", &by_fail2ban, &scenario);
    let mut store = Store::open(&by_rampart).unwrap();
    let purged = store.purge(NOW - i(&scenario["purge_age"])).unwrap();
    let jails_after = store.jails().unwrap();
    store.close().unwrap();
    assert!(
        purged.bans > 0 && purged.bips > 0 && purged.jails == 1,
        "{purged:?}"
    );
    assert!(jails_after.iter().all(|j| j.name != "retired"));
    assert_ne!(before, contents_of(&by_rampart));

    read_all_four(&python, &by_fail2ban, &by_rampart, &scenario);
    let jails_of = |db: &Path| Store::open(db).unwrap().jails().unwrap();
    assert_eq!(jails_of(&by_fail2ban), jails_of(&by_rampart));
}

#[test]
fn fresh_schema_is_fail2bans() {
    let python = Python::get();
    let dir = TempDir::new("schema");
    let by_fail2ban = dir.file("fail2ban.sqlite3");
    let by_rampart = dir.file("rampart.sqlite3");
    python.run("open", &by_fail2ban, &json!({}));
    let store = Store::open(&by_rampart).unwrap();
    assert_eq!(store.opened(), Opened::Created);
    store.close().unwrap();
    let ours = schema_of(&by_rampart);
    assert!(ours.iter().any(|l| l == "table bips"), "{ours:?}");
    assert_eq!(ours, schema_of(&by_fail2ban));
    assert_eq!(contents_of(&by_rampart), contents_of(&by_fail2ban));

    // Each accepts the other's fresh file as current (fail2ban would log an upgrade).
    assert_eq!(Store::open(&by_fail2ban).unwrap().opened(), Opened::Current);
    python.run("open", &by_rampart, &json!({}));
    assert_eq!(schema_of(&by_rampart), schema_of(&by_fail2ban));
}

#[test]
fn upgrades_fail2bans_old_databases_as_fail2ban_does() {
    let python = Python::get();
    let files = rampart_reference::fail2ban().test_files_dir();
    for (name, version) in [("database_v1.db", 1), ("database_v2.db", 2)] {
        let dir = TempDir::new("upgrade");
        let by_fail2ban = dir.file("fail2ban.sqlite3");
        let by_rampart = dir.file("rampart.sqlite3");
        std::fs::copy(files.join(name), &by_fail2ban).unwrap();
        std::fs::copy(files.join(name), &by_rampart).unwrap();
        let original = contents_of(&by_rampart);

        python.run("open", &by_fail2ban, &json!({}));
        let store = Store::open(&by_rampart).unwrap();
        assert_eq!(store.opened(), Opened::Upgraded { from: version }, "{name}");
        let restored = store.bans(None, None, None).unwrap();
        store.close().unwrap();
        assert!(!restored.is_empty(), "{name}: no bans after the upgrade");

        assert_eq!(schema_of(&by_rampart), schema_of(&by_fail2ban), "{name}");
        assert_eq!(
            contents_of(&by_rampart),
            contents_of(&by_fail2ban),
            "{name}"
        );
        // A backup of the original, named as fail2ban names it, holding the old rows.
        let backups: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .strip_prefix("rampart.sqlite3.")
                    .is_some_and(|stamp| stamp.len() == 15 && stamp.as_bytes()[8] == b'-')
            })
            .collect();
        assert_eq!(backups.len(), 1, "{name}: {backups:?}");
        assert_eq!(contents_of(&backups[0]), original, "{name}");
    }
}
