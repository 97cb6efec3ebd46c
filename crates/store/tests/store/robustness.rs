//! Databases that are not what they should be: missing, foreign, damaged, too new, too
//! old, or holding rows of the wrong shape. Each gives a clear error naming the file, an
//! upgrade, or a counted issue — never a panic.

use std::path::Path;

use rampart_store::{IssueOutcome, Opened, RestoreQuery, Store, StoreError, UNKNOWN_BAN_TIME};
use serde_json::json;

use crate::common::{TempDir, contents_of, raw};

const NOW: i64 = 1_700_000_000;

fn open_err(path: &Path) -> StoreError {
    match Store::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

fn assert_names(err: &StoreError, path: &Path) {
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn a_missing_directory_is_not_created() {
    let dir = TempDir::new("nodir");
    let db = dir.file("no/such/dir/bans.sqlite3");
    let err = open_err(&db);
    assert!(matches!(err, StoreError::MissingDirectory { .. }), "{err}");
    assert_names(&err, &db);
    assert!(err.to_string().contains("no/such/dir"), "{err}");
    assert!(!dir.file("no").exists());
}

#[test]
fn an_empty_path_is_refused_and_an_empty_file_initialised() {
    let err = open_err(Path::new(""));
    assert!(matches!(err, StoreError::EmptyPath), "{err}");
    let dir = TempDir::new("emptyfile");
    let db = dir.file("bans.sqlite3");
    std::fs::write(&db, b"").unwrap();
    let mut store = Store::open(&db).unwrap();
    assert_eq!(store.opened(), Opened::Created);
    store.add_jail("sshd").unwrap();
    store.close().unwrap();
    assert_eq!(Store::open(&db).unwrap().jails().unwrap().len(), 1);
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_untouched() {
    let dir = TempDir::new("garbage");
    let db = dir.file("bans.sqlite3");
    let garbage = "this is a log file, not a database\n".repeat(200);
    std::fs::write(&db, &garbage).unwrap();
    let err = open_err(&db);
    assert!(matches!(err, StoreError::Unreadable { .. }), "{err}");
    assert_names(&err, &db);
    assert!(err.to_string().contains("not a database"), "{err}");
    assert_eq!(std::fs::read_to_string(&db).unwrap(), garbage);
}

#[test]
fn a_directory_is_refused() {
    let dir = TempDir::new("isdir");
    let db = dir.file("bans.sqlite3");
    std::fs::create_dir(&db).unwrap();
    let err = open_err(&db);
    assert!(matches!(err, StoreError::Unreadable { .. }), "{err}");
    assert_names(&err, &db);
}

#[test]
fn a_damaged_database_is_refused() {
    let dir = TempDir::new("damaged");
    let db = dir.file("bans.sqlite3");
    let mut store = Store::open(&db).unwrap();
    store.add_jail("sshd").unwrap();
    for n in 0..2000 {
        let ban = rampart_store::BanRecord {
            jail: "sshd".to_string(),
            ip: format!("10.{}.{}.1", n / 256, n % 256),
            time_of_ban: NOW + n,
            ban_time: 600,
            ban_count: 1,
            data: json!({"matches": ["x".repeat(100)], "failures": 1}),
        };
        store.add_ban(&ban).unwrap();
    }
    store.close().unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    assert!(bytes.len() > 20 * page, "{}", bytes.len());
    for b in &mut bytes[5 * page..12 * page] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();
    let err = open_err(&db);
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::Unreadable { .. }
        ),
        "{err}"
    );
    assert_names(&err, &db);
    assert!(
        !err.to_string().contains('\n'),
        "one line for the log: {err}"
    );
}

#[test]
fn another_programs_database_is_refused_untouched() {
    let dir = TempDir::new("foreign");
    let db = dir.file("app.sqlite3");
    raw(&db)
        .execute_batch("CREATE TABLE users(name TEXT); INSERT INTO users VALUES('alice');")
        .unwrap();
    let before = std::fs::read(&db).unwrap();
    let err = open_err(&db);
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    assert_names(&err, &db);
    assert!(err.to_string().contains("users"), "{err}");
    let tables: i64 = raw(&db)
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 1);
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn newer_and_invalid_versions_are_refused() {
    let dir = TempDir::new("version");
    let db = dir.file("bans.sqlite3");
    Store::open(&db).unwrap().close().unwrap();
    raw(&db)
        .execute("UPDATE fail2banDb SET version = 5", [])
        .unwrap();
    let err = open_err(&db);
    assert!(
        matches!(err, StoreError::NewerVersion { found: 5, .. }),
        "{err}"
    );
    assert_names(&err, &db);
    let version: i64 = raw(&db)
        .query_row("SELECT version FROM fail2banDb", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5, "a refused database is left as it was");

    raw(&db)
        .execute("UPDATE fail2banDb SET version = 'four'", [])
        .unwrap();
    let err = open_err(&db);
    assert!(matches!(err, StoreError::BadVersion { .. }), "{err}");
    assert_names(&err, &db);
}

/// Old layouts, written from fail2ban's upgrade history: version 1 without the second
/// UNIQUE on logs, versions 1-2 without bantime/bancount, versions 1-3 without bips.
fn old_database(db: &Path, version: i64) {
    let logs_unique = if version >= 2 {
        ", UNIQUE(jail, path, firstlinemd5)"
    } else {
        ""
    };
    let ban_columns = if version >= 3 {
        "bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, "
    } else {
        ""
    };
    let conn = raw(db);
    conn.execute_batch(&format!(
        "CREATE TABLE fail2banDb(version INTEGER);
         INSERT INTO fail2banDb VALUES({version});
         CREATE TABLE jails(name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1);
         CREATE TABLE logs(jail TEXT NOT NULL, path TEXT, firstlinemd5 TEXT,
             lastfilepos INTEGER DEFAULT 0,
             FOREIGN KEY(jail) REFERENCES jails(name) ON DELETE CASCADE,
             UNIQUE(jail, path){logs_unique});
         CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL,
             {ban_columns}data JSON, FOREIGN KEY(jail) REFERENCES jails(name));
         INSERT INTO jails VALUES('sshd', 1);
         INSERT INTO logs VALUES('sshd', '/var/log/auth.log', 'abc', 1234);"
    ))
    .unwrap();
    let bans: &[(&str, f64, &str)] = &[
        (
            "192.0.2.1",
            (NOW - 5000) as f64 + 0.25,
            r#"{"matches": ["a"], "failures": 1}"#,
        ),
        (
            "192.0.2.1",
            (NOW - 100) as f64,
            r#"{"matches": ["b"], "failures": 2}"#,
        ),
        (
            "192.0.2.2",
            (NOW - 50) as f64,
            r#"{"matches": [], "failures": 3}"#,
        ),
    ];
    for (ip, time, data) in bans {
        if version >= 3 {
            conn.execute(
                "INSERT INTO bans VALUES('sshd', ?1, ?2, 3600, 2, ?3)",
                rusqlite::params![ip, time, data],
            )
            .unwrap();
        } else {
            conn.execute(
                "INSERT INTO bans VALUES('sshd', ?1, ?2, ?3)",
                rusqlite::params![ip, time, data],
            )
            .unwrap();
        }
    }
}

#[test]
fn older_versions_are_upgraded_after_a_backup() {
    for version in 1..=3 {
        let dir = TempDir::new("old");
        let db = dir.file("bans.sqlite3");
        old_database(&db, version);
        let original = contents_of(&db);
        let store = Store::open(&db).unwrap();
        assert_eq!(store.opened(), Opened::Upgraded { from: version });

        let history = store.bans(Some("sshd"), None, None).unwrap();
        assert_eq!(history.len(), 3, "v{version}");
        assert_eq!(
            history[1].time_of_ban,
            NOW - 5000,
            "v{version}: REAL times are read"
        );
        let expected_ban_time = if version >= 3 { 3600 } else { UNKNOWN_BAN_TIME };
        assert!(
            history.iter().all(|b| b.ban_time == expected_ban_time),
            "v{version}"
        );
        // bips holds the latest ban of each address.
        let query = RestoreQuery {
            now: NOW,
            window: None,
            max_ban_time: None,
            unknown_ban_time: 600,
        };
        let current = store.current_bans("sshd", &query).unwrap();
        assert_eq!(current.len(), 2, "v{version}");
        assert_eq!(current[0].data["failures"], 2, "v{version}");
        assert_eq!(current[0].ban_time, if version >= 3 { 3600 } else { 600 });
        let position = store
            .log_position("sshd", "/var/log/auth.log")
            .unwrap()
            .unwrap();
        assert_eq!(position.position, 1234);
        store.close().unwrap();

        let backup = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains("bans.sqlite3."))
            .unwrap_or_else(|| panic!("v{version}: no backup"));
        assert_eq!(contents_of(&backup), original, "v{version}");
        assert_eq!(Store::open(&db).unwrap().opened(), Opened::Current);
    }
}

#[test]
fn malformed_rows_are_skipped_or_kept_without_data_and_counted() {
    let dir = TempDir::new("rows");
    let db = dir.file("bans.sqlite3");
    let mut store = Store::open(&db).unwrap();
    store.add_jail("sshd").unwrap();
    store.close().unwrap();
    let conn = raw(&db);
    let rows: &[(&str, &str)] = &[
        ("'192.0.2.1', 1700000000, 600, 1", r#"'{"failures": 2}'"#), // fine
        ("'192.0.2.2', 1700000000, 600, 1", "'{\"matches\": ['"),    // truncated JSON
        ("'192.0.2.3', 1700000000, 600, 1", "'[1, 2]'"),             // not an object
        ("'192.0.2.4', 1700000000, 600, 1", "NULL"),                 // no data: fine
        (
            "'192.0.2.5', 1700000000, 600.75, 1",
            r#"CAST('{"a": 1}' AS BLOB)"#,
        ), // fine
        ("'192.0.2.6', 'yesterday', 600, 1", "'{}'"),                // unusable time
        ("NULL, 1700000000, 600, 1", "'{}'"),                        // no address
        ("'192.0.2.8', 1700000000, 600, 1", "42"),                   // a number
    ];
    for (values, data) in rows {
        conn.execute_batch(&format!(
            "INSERT INTO bans(ip, timeofban, bantime, bancount, jail, data) VALUES({values}, 'sshd', {data});"
        ))
        .unwrap();
    }
    conn.execute_batch(
        "INSERT INTO bips SELECT ip, jail, timeofban, bantime, bancount, data FROM bans WHERE ip IS NOT NULL;
         INSERT INTO logs VALUES('sshd', '/var/log/bad.log', 'h', 'middle');",
    )
    .unwrap();
    drop(conn);

    let store = Store::open(&db).unwrap();
    let history = store.bans(None, None, None).unwrap();
    let seen: Vec<(&str, String)> = history
        .iter()
        .map(|b| (b.ip.as_str(), b.data.to_string()))
        .collect();
    assert_eq!(
        seen,
        [
            ("192.0.2.1", r#"{"failures":2}"#.to_string()),
            ("192.0.2.2", "{}".to_string()),
            ("192.0.2.3", "{}".to_string()),
            ("192.0.2.4", "{}".to_string()),
            ("192.0.2.5", r#"{"a":1}"#.to_string()),
            ("192.0.2.8", "{}".to_string()),
        ]
    );
    assert_eq!(history[4].ban_time, 600);
    let (issues, more) = store.take_issues();
    assert_eq!(more, 0);
    let outcome = |ip: Option<&str>| {
        issues
            .iter()
            .filter(|i| i.key.as_deref() == ip)
            .map(|i| i.outcome)
            .collect::<Vec<_>>()
    };
    assert_eq!(outcome(Some("192.0.2.2")), [IssueOutcome::DataDropped]);
    assert_eq!(outcome(Some("192.0.2.3")), [IssueOutcome::DataDropped]);
    assert_eq!(outcome(Some("192.0.2.8")), [IssueOutcome::DataDropped]);
    assert_eq!(outcome(Some("192.0.2.6")), [IssueOutcome::Skipped]);
    assert_eq!(outcome(None), [IssueOutcome::Skipped]);
    assert_eq!(issues.len(), 5, "{issues:?}");
    let text = issues
        .iter()
        .find(|i| i.key.as_deref() == Some("192.0.2.6"))
        .unwrap()
        .to_string();
    assert!(
        text.contains("bans row")
            && text.contains("192.0.2.6")
            && text.contains("sshd")
            && text.contains("yesterday"),
        "{text}"
    );
    assert_eq!(store.take_issues(), (vec![], 0));

    // The same rows through the restore and the merge.
    let query = RestoreQuery {
        now: NOW,
        window: None,
        max_ban_time: None,
        unknown_ban_time: 600,
    };
    assert_eq!(store.current_bans("sshd", &query).unwrap().len(), 6);
    assert_eq!(store.take_issues().0.len(), 3);
    let merged = store
        .merged_bans("192.0.2.2", Some("sshd"))
        .unwrap()
        .unwrap();
    assert_eq!((merged.failures(), merged.matches().len()), (1, 0));
    assert_eq!(
        store.log_position("sshd", "/var/log/bad.log").unwrap(),
        None
    );
    let (issues, _) = store.take_issues();
    assert_eq!(issues.last().unwrap().table, "logs");
}

#[test]
fn issues_beyond_a_hundred_are_only_counted() {
    let dir = TempDir::new("many");
    let db = dir.file("bans.sqlite3");
    let mut store = Store::open(&db).unwrap();
    store.add_jail("sshd").unwrap();
    store.close().unwrap();
    let conn = raw(&db);
    for n in 0..150 {
        conn.execute(
            "INSERT INTO bans VALUES('sshd', ?1, 1700000000, 600, 1, 'garbage')",
            [format!("10.0.0.{n}")],
        )
        .unwrap();
    }
    drop(conn);
    let store = Store::open(&db).unwrap();
    assert_eq!(store.bans(None, None, None).unwrap().len(), 150);
    let (issues, more) = store.take_issues();
    assert_eq!((issues.len(), more), (100, 50));
}
