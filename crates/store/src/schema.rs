//! The on-disk layout (fail2ban's schema, version 4) and the checks and upgrades run when
//! a database is opened.
//!
//! Table and index names, column names, types and constraints must stay exactly those of
//! fail2ban: fail2ban recreates whatever it believes missing with `IF NOT EXISTS`, so any
//! name that differed would leave a database with two copies of an index, and any column
//! that differed would break its queries.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use crate::StoreError;

/// The schema version this crate reads and writes (fail2ban 0.10 and later).
pub const SCHEMA_VERSION: i64 = 4;

/// Tables in creation order (parents before children, for the foreign keys).
const TABLES: &[(&str, &str)] = &[
    (
        "fail2banDb",
        "CREATE TABLE IF NOT EXISTS fail2banDb(version INTEGER);",
    ),
    (
        "jails",
        "CREATE TABLE IF NOT EXISTS jails(
            name TEXT NOT NULL UNIQUE,
            enabled INTEGER NOT NULL DEFAULT 1
        );
        CREATE INDEX IF NOT EXISTS jails_name ON jails(name);",
    ),
    (
        "logs",
        "CREATE TABLE IF NOT EXISTS logs(
            jail TEXT NOT NULL,
            path TEXT,
            firstlinemd5 TEXT,
            lastfilepos INTEGER DEFAULT 0,
            FOREIGN KEY(jail) REFERENCES jails(name) ON DELETE CASCADE,
            UNIQUE(jail, path),
            UNIQUE(jail, path, firstlinemd5)
        );
        CREATE INDEX IF NOT EXISTS logs_path ON logs(path);
        CREATE INDEX IF NOT EXISTS logs_jail_path ON logs(jail, path);",
    ),
    (
        "bans",
        "CREATE TABLE IF NOT EXISTS bans(
            jail TEXT NOT NULL,
            ip TEXT,
            timeofban INTEGER NOT NULL,
            bantime INTEGER NOT NULL,
            bancount INTEGER NOT NULL DEFAULT 1,
            data JSON,
            FOREIGN KEY(jail) REFERENCES jails(name)
        );
        CREATE INDEX IF NOT EXISTS bans_jail_timeofban_ip ON bans(jail, timeofban);
        CREATE INDEX IF NOT EXISTS bans_jail_ip ON bans(jail, ip);
        CREATE INDEX IF NOT EXISTS bans_ip ON bans(ip);",
    ),
    (
        "bips",
        "CREATE TABLE IF NOT EXISTS bips(
            ip TEXT NOT NULL,
            jail TEXT NOT NULL,
            timeofban INTEGER NOT NULL,
            bantime INTEGER NOT NULL,
            bancount INTEGER NOT NULL DEFAULT 1,
            data JSON,
            PRIMARY KEY(ip, jail),
            FOREIGN KEY(jail) REFERENCES jails(name)
        );
        CREATE INDEX IF NOT EXISTS bips_timeofban ON bips(timeofban);
        CREATE INDEX IF NOT EXISTS bips_ip ON bips(ip);",
    ),
];

fn create_script(table: &str) -> &'static str {
    TABLES
        .iter()
        .find(|(name, _)| *name == table)
        .map(|(_, sql)| *sql)
        .unwrap_or("")
}

/// What an opened database turned out to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// The file was empty (or new) and the schema was created.
    Created,
    /// A version-4 database, used as it is.
    Current,
    /// An older fail2ban database, upgraded in place after a backup copy.
    Upgraded { from: i64 },
}

/// Decides what opening `conn` means, without writing anything: a database that is
/// refused must be left exactly as it was.
pub(crate) fn check(conn: &Connection, path: &Path) -> Result<Opened, StoreError> {
    let tables = table_names(conn).map_err(|e| sql_err(path, "listing tables", e))?;
    if tables.is_empty() {
        return Ok(Opened::Created);
    }
    if !tables.iter().any(|t| t == "fail2banDb") {
        // Someone else's database: writing fail2ban's tables into it would be vandalism.
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
            tables: tables.join(", "),
        });
    }
    let version: Option<rusqlite::types::Value> = conn
        .query_row("SELECT version FROM fail2banDb LIMIT 1", [], |r| r.get(0))
        .optional()
        .map_err(|e| sql_err(path, "reading the schema version", e))?;
    match version {
        // An empty version table is what an interrupted creation leaves behind.
        None => Ok(Opened::Created),
        Some(rusqlite::types::Value::Integer(v)) if v == SCHEMA_VERSION => Ok(Opened::Current),
        Some(rusqlite::types::Value::Integer(v)) if v > SCHEMA_VERSION => {
            Err(StoreError::NewerVersion {
                path: path.to_path_buf(),
                found: v,
            })
        }
        Some(rusqlite::types::Value::Integer(v)) if v >= 1 => Ok(Opened::Upgraded { from: v }),
        Some(other) => Err(StoreError::BadVersion {
            path: path.to_path_buf(),
            found: format!("{other:?}"),
        }),
    }
}

/// Brings the schema to version 4 as [`check`] decided.
pub(crate) fn prepare(
    conn: &mut Connection,
    path: &Path,
    opened: Opened,
    now_utc: i64,
) -> Result<(), StoreError> {
    if let Opened::Upgraded { from } = opened {
        upgrade(conn, path, from, now_utc)?;
    }
    // Also on existing databases: cheap, idempotent, and it restores a missing index.
    let tx = conn
        .transaction()
        .map_err(|e| sql_err(path, "starting the schema transaction", e))?;
    for (_, sql) in TABLES {
        tx.execute_batch(sql)
            .map_err(|e| sql_err(path, "creating the schema", e))?;
    }
    tx.execute(
        "INSERT INTO fail2banDb(version) SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM fail2banDb)",
        [SCHEMA_VERSION],
    )
    .map_err(|e| sql_err(path, "recording the schema version", e))?;
    tx.commit()
        .map_err(|e| sql_err(path, "committing the schema", e))
}

fn sql_err(path: &Path, doing: &str, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        doing: doing.to_string(),
        source,
    }
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    names.collect()
}

/// Upgrades versions 1–3. Old layouts differ only in two tables: version 1 lacks the
/// `UNIQUE(jail, path, firstlinemd5)` constraint on `logs`, versions 1–2 lack the
/// `bantime` and `bancount` columns of `bans`, and versions 1–3 lack `bips`.
fn upgrade(conn: &mut Connection, path: &Path, from: i64, now_utc: i64) -> Result<(), StoreError> {
    let failed = |source| StoreError::Upgrade {
        path: path.to_path_buf(),
        from,
        source,
    };
    let tables = table_names(conn).map_err(failed)?;
    let has = |t: &str| tables.iter().any(|n| n == t);
    backup(conn, path, from, now_utc)?;
    let tx = conn.transaction().map_err(failed)?;
    if from < 2 && has("logs") {
        tx.execute_batch(&format!(
            "CREATE TEMPORARY TABLE logs_before_v2 AS SELECT * FROM logs;
             DROP TABLE logs;
             {}
             INSERT INTO logs SELECT * FROM logs_before_v2;
             DROP TABLE logs_before_v2;",
            create_script("logs")
        ))
        .map_err(failed)?;
    }
    if from < 3 && has("bans") {
        // The ban time of these rows was never recorded; -2 marks it unknown, and the
        // restore substitutes the jail's current ban time (as fail2ban does).
        tx.execute_batch(&format!(
            "CREATE TEMPORARY TABLE bans_before_v3 AS
                 SELECT jail, ip, timeofban, -2 AS bantime, 1 AS bancount, data FROM bans;
             DROP TABLE bans;
             {}
             INSERT INTO bans SELECT * FROM bans_before_v3;
             DROP TABLE bans_before_v3;",
            create_script("bans")
        ))
        .map_err(failed)?;
    }
    if !has("bips") {
        tx.execute_batch(create_script("bips")).map_err(failed)?;
        if has("bans") {
            // Oldest first, so that the latest ban of each address and jail wins.
            tx.execute(
                "INSERT OR REPLACE INTO bips(ip, jail, timeofban, bantime, bancount, data)
                 SELECT ip, jail, timeofban, bantime, bancount, data FROM bans
                 WHERE ip IS NOT NULL ORDER BY timeofban",
                [],
            )
            .map_err(failed)?;
        }
    }
    tx.execute("UPDATE fail2banDb SET version = ?1", [SCHEMA_VERSION])
        .map_err(failed)?;
    tx.commit().map_err(failed)
}

/// Copies the database to `<path>.YYYYmmdd-HHMMSS` (UTC) before an upgrade, the name
/// fail2ban gives its own backups, unless that copy already exists.
fn backup(conn: &Connection, path: &Path, from: i64, now_utc: i64) -> Result<(), StoreError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(utc_stamp(now_utc));
    let target = std::path::PathBuf::from(name);
    if target.exists() {
        return Ok(());
    }
    let Some(target_text) = target.to_str() else {
        return Err(StoreError::Backup {
            path: path.to_path_buf(),
            backup: target.clone(),
            from,
            source: rusqlite::Error::InvalidPath(target),
        });
    };
    conn.execute("VACUUM INTO ?1", [target_text])
        .map(|_| ())
        .map_err(|source| StoreError::Backup {
            path: path.to_path_buf(),
            backup: target.clone(),
            from,
            source,
        })
}

/// `YYYYmmdd-HHMMSS` for a Unix time, in UTC.
fn utc_stamp(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114-221320");
        assert_eq!(utc_stamp(-1), "19691231-235959");
    }
}
