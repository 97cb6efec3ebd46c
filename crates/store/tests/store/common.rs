//! Shared test helpers: private temporary directories and raw access to database files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::Connection;

/// A directory under the system temp dir, removed (with its contents) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("rampart-store-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A plain connection to a database file, bypassing the store (to plant odd rows or
/// inspect what the store wrote).
pub fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

/// The schema as SQLite understands it (columns, keys, indexes), independent of how the
/// CREATE statements were formatted.
pub fn schema_of(path: &Path) -> Vec<String> {
    let conn = raw(path);
    let mut out = Vec::new();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for table in tables {
        out.push(format!("table {table}"));
        for pragma in ["table_info", "foreign_key_list"] {
            out.extend(rows_as_text(
                &conn,
                &format!("PRAGMA {pragma}('{table}')"),
                pragma,
            ));
        }
        let mut indexes: Vec<(String, i64, String, i64)> = conn
            .prepare(&format!("PRAGMA index_list('{table}')"))
            .unwrap()
            .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        indexes.sort();
        for (name, unique, origin, partial) in indexes {
            out.push(format!(
                "index {name} unique={unique} origin={origin} partial={partial}"
            ));
            out.extend(rows_as_text(
                &conn,
                &format!("PRAGMA index_info('{name}')"),
                "  column",
            ));
        }
    }
    out
}

/// Every row of every table, sorted, with SQLite's storage classes visible.
pub fn contents_of(path: &Path) -> Vec<String> {
    let conn = raw(path);
    let mut out = Vec::new();
    for table in ["fail2banDb", "jails", "logs", "bans", "bips"] {
        let exists: bool = conn
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        if !exists {
            continue;
        }
        let mut rows = rows_as_text(&conn, &format!("SELECT * FROM {table}"), table);
        rows.sort();
        out.extend(rows);
    }
    out
}

fn rows_as_text(conn: &Connection, sql: &str, label: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    let columns = stmt.column_count();
    stmt.query_map([], |r| {
        let mut line = String::from(label);
        for i in 0..columns {
            let v: rusqlite::types::Value = r.get(i)?;
            line.push_str(&format!(" {v:?}"));
        }
        Ok(line)
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}
