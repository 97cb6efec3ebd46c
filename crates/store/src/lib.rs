//! Ban persistence in SQLite, schema-compatible with fail2ban's database (version 4).
//!
//! One job: keep what must survive a restart of the daemon — the jails, each jail's log
//! positions, and its bans with their ban counts — in the file `dbfile` names, in exactly
//! the layout fail2ban uses. `dbfile` may therefore point at an existing
//! `fail2ban.sqlite3`: rampart restores its bans and resumes its log positions, and
//! fail2ban could read rampart's file in turn.
//!
//! Key points:
//! - **fail2ban's schema, fail2ban's semantics.** Two ban tables: `bans` is the history
//!   (one row per ban, trimmed by [`Store::purge`]), `bips` the latest ban of each address
//!   in each jail (what is restored at start and what `bantime.increment` counts). Every
//!   query here is the one fail2ban runs, and a differential test runs fail2ban's own
//!   `Fail2BanDb` over the same files to keep it that way.
//! - **Opening is checked.** A new or empty file gets the schema; a version-4 database is
//!   used as it is; versions 1–3 are upgraded in place after a backup copy named as
//!   fail2ban names it (`<dbfile>.YYYYmmdd-HHMMSS`); a newer version, a file that is not
//!   SQLite, a damaged one, or another program's database is refused with an error naming
//!   the file. Unlike fail2ban, nothing is ever deleted or recreated to "repair" it: the
//!   operator decides.
//! - **The database is input.** Values of the wrong type (float times, JSON stored as
//!   bytes, undecodable JSON, missing addresses) never panic: rows are converted when the
//!   meaning is clear, and otherwise skipped or kept without their data, each case recorded
//!   as a [`RowIssue`] the caller drains with [`Store::take_issues`] and logs.
//! - **Write-ahead log.** The database runs in WAL mode (see `open_file` for why), so
//!   `<dbfile>-wal` and `<dbfile>-shm` sit beside it while it is open, and its directory
//!   must be writable.
//! - **One owner.** [`Store`] is `Send` (not `Sync`): the daemon moves it to a dedicated
//!   thread and sends it requests. Each write is one small transaction.
//!
//! Times are Unix seconds as `i64`, as fail2ban stores them; the caller passes `now`
//! wherever a query depends on it, so the store never reads the clock for its answers.
//!
//! The daemon's life with a store:
//!
//! ```
//! use rampart_store::{BanRecord, RestoreQuery, Store};
//! # fn main() -> Result<(), rampart_store::StoreError> {
//! let mut store = Store::open(":memory:")?; // the `dbfile` path
//! store.set_max_matches(10); // dbmaxmatches
//! store.disable_all_jails()?; // once, at start
//! store.add_jail("sshd")?; // each configured jail
//! let now = 1_700_000_000;
//!
//! // Jail start: bans to restore (bantime.increment off: window and cut = bantime).
//! let restore = RestoreQuery {
//!     now,
//!     window: Some(600),
//!     max_ban_time: Some(600),
//!     unknown_ban_time: 600,
//! };
//! for ban in store.current_bans("sshd", &restore)? {
//!     let _remaining = ban.end().map(|end| end - now); // None: permanent
//! }
//! // Resume a log if its first line is unchanged.
//! let _resume_at = store
//!     .log_position("sshd", "/var/log/auth.log")?
//!     .filter(|p| p.first_line_hash.as_deref() == Some("3f78…"))
//!     .map(|p| p.position);
//!
//! // A ban: the previous count feeds bantime.increment, then the ban is recorded.
//! let count = store.ban_stats("192.0.2.1", Some("sshd"))?.map_or(0, |s| s.ban_count);
//! store.add_ban(&BanRecord {
//!     jail: "sshd".into(),
//!     ip: "192.0.2.1".into(),
//!     time_of_ban: now,
//!     ban_time: 600,
//!     ban_count: count + 1,
//!     data: serde_json::json!({"matches": ["… Failed password …"], "failures": 5}),
//! })?;
//! let _ipmatches = store.merged_bans("192.0.2.1", None)?.map(|m| m.matches().join("\n"));
//!
//! // Periodically: positions, purge (dbpurgeage), and a log line per odd row seen.
//! store.set_log_position("sshd", "/var/log/auth.log", Some("3f78…"), 4096)?;
//! store.purge(now - 86_400)?;
//! for issue in store.take_issues().0 {
//!     eprintln!("warning: {issue}");
//! }
//! # Ok(()) }
//! ```

mod decode;
mod schema;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde_json::{Map, Value};

pub use decode::{IssueOutcome, RowIssue};
pub use schema::{Opened, SCHEMA_VERSION};

/// The `bantime` of a ban that never ends.
pub const PERMANENT: i64 = -1;

/// The `bantime` that upgrades from schema versions below 3 give old bans, whose ban time
/// was never recorded. [`Store::current_bans`] replaces it with the jail's ban time.
pub const UNKNOWN_BAN_TIME: i64 = -2;

/// fail2ban's default `dbmaxmatches`: how many matched lines a stored ban keeps.
pub const DEFAULT_MAX_MATCHES: usize = 10;

/// How long a write waits for a lock another process (an administrator's `sqlite3`, a
/// fail2ban client) holds before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many [`RowIssue`]s are kept between two [`Store::take_issues`]; the rest
/// are only counted, so that a badly damaged table cannot exhaust memory.
const MAX_KEPT_ISSUES: usize = 100;

/// `bips` rows are purged only once they are this many ban times old (fail2ban's
/// `outDatedFactor`), so that `bantime.increment` remembers repeat offenders.
const OUTDATED_FACTOR: i64 = 3;

/// Errors of the store. Each names the database file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `dbfile` is empty (SQLite would silently use a temporary database).
    #[error("the ban database path is empty")]
    EmptyPath,
    /// The directory that should hold the database does not exist (it is not created:
    /// a typo in `dbfile` should not silently create a tree somewhere).
    #[error("cannot create the ban database {path}: directory {dir} does not exist")]
    MissingDirectory { path: PathBuf, dir: PathBuf },
    /// SQLite cannot open or read the file: not a database, unreadable, a directory, …
    #[error("cannot use {path} as the ban database: {source}")]
    Unreadable {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// SQLite's integrity check found damage.
    #[error(
        "the ban database {path} is damaged ({detail}); move it away or repair it with sqlite3's .recover"
    )]
    Corrupt { path: PathBuf, detail: String },
    /// A SQLite database, but not fail2ban's or rampart's.
    #[error(
        "{path} is not a fail2ban or rampart database: it has tables ({tables}) but no fail2banDb table"
    )]
    Foreign { path: PathBuf, tables: String },
    /// Written by a newer fail2ban (or rampart) than this one.
    #[error(
        "the ban database {path} has schema version {found}; this rampart understands versions up to {SCHEMA_VERSION}"
    )]
    NewerVersion { path: PathBuf, found: i64 },
    /// The version row holds something that is not a version.
    #[error("the ban database {path} has an invalid schema version {found}")]
    BadVersion { path: PathBuf, found: String },
    /// The backup copy made before an upgrade failed, so nothing was upgraded.
    #[error(
        "cannot back up the ban database {path} to {backup} before upgrading it from schema version {from}: {source}"
    )]
    Backup {
        path: PathBuf,
        backup: PathBuf,
        from: i64,
        source: rusqlite::Error,
    },
    /// The upgrade itself failed; the transaction was rolled back.
    #[error("cannot upgrade the ban database {path} from schema version {from}: {source}")]
    Upgrade {
        path: PathBuf,
        from: i64,
        source: rusqlite::Error,
    },
    /// Any other SQLite failure, with what was being done.
    #[error("ban database {path}: {doing}: {source}")]
    Sqlite {
        path: PathBuf,
        doing: String,
        source: rusqlite::Error,
    },
}

/// One ban as stored in `bans` (history) and `bips` (latest per address and jail).
#[derive(Debug, Clone, PartialEq)]
pub struct BanRecord {
    /// The jail that banned.
    pub jail: String,
    /// The banned id as text (an address, or whatever the filter captured as `<HOST>`).
    pub ip: String,
    /// When the ban started, Unix seconds (fail2ban rounds the ticket time).
    pub time_of_ban: i64,
    /// Seconds the ban lasts; [`PERMANENT`] for ever, [`UNKNOWN_BAN_TIME`] after upgrades.
    pub ban_time: i64,
    /// How many times this id has been banned in this jail, this ban included.
    pub ban_count: i64,
    /// The ticket data as fail2ban stores it: a JSON object with `matches` (the matched
    /// lines, a list of strings or of lists of string parts), `failures` (the attempt
    /// count) and captured fields such as `user`.
    pub data: Value,
}

impl BanRecord {
    /// When the ban ends (`None` for a permanent or unknown ban time).
    pub fn end(&self) -> Option<i64> {
        (self.ban_time >= 0).then(|| self.time_of_ban.saturating_add(self.ban_time))
    }
}

/// How to select and correct the bans a jail restores when it starts (fail2ban's
/// `Jail.restoreCurrentBans` with `getCurrentBans`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreQuery {
    /// The current time.
    pub now: i64,
    /// Only bans that started less than this many seconds before `now`. fail2ban passes
    /// the jail's `bantime` when `bantime.increment` is off, and no window when it is on.
    /// `None` or a negative value: no window.
    pub window: Option<i64>,
    /// The longest ban time a restored ban may keep: longer and permanent bans are cut to
    /// it (and dropped if that makes them expired). fail2ban passes the jail's `bantime`,
    /// or `bantime.maxtime` with increment on. `None` or a negative value: no cut.
    pub max_ban_time: Option<i64>,
    /// The ban time given to bans whose ban time is unknown ([`UNKNOWN_BAN_TIME`]):
    /// the jail's `bantime`.
    pub unknown_ban_time: i64,
}

/// The bans of one id merged into one ticket (fail2ban's `getBansMerged`), which feeds
/// the `<ipmatches>`, `<ipjailmatches>`, `<ipfailures>` and `<ipjailfailures>` tags.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedBans {
    /// The id.
    pub ip: String,
    /// The start of the oldest ban merged.
    pub first_ban: i64,
    /// The merged ticket data: every key of every ban (the older ban's value wins, as in
    /// fail2ban), with `failures` the sum of the bans' failures (1 for a ban without a
    /// count) and `matches` the most recent matched lines, oldest first, at most the
    /// store's `max_matches`.
    pub data: Value,
}

impl MergedBans {
    /// The summed failures (`<ipfailures>`).
    pub fn failures(&self) -> i64 {
        self.data
            .get("failures")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// The merged matched lines (`<ipmatches>` joins them with newlines). Lines stored as
    /// lists of parts are joined, as fail2ban's ticket does.
    pub fn matches(&self) -> Vec<String> {
        self.data
            .get("matches")
            .and_then(Value::as_array)
            .map(|lines| lines.iter().map(line_text).collect())
            .unwrap_or_default()
    }
}

fn line_text(line: &Value) -> String {
    match line {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().map(line_text).collect(),
        other => other.to_string(),
    }
}

/// How often and how recently an id was banned (fail2ban's `getBan`), for
/// `bantime.increment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanStats {
    /// The ban count (summed over jails for an all-jails query).
    pub ban_count: i64,
    /// The start of the latest ban.
    pub last_ban: i64,
    /// The ban time of the latest ban in one jail; summed over jails for an all-jails
    /// query (fail2ban's arithmetic: a permanent ban contributes -1).
    pub ban_time: i64,
}

/// Where a jail stopped reading a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    /// The hash of the file's first line, newline included, as hex. The column is called
    /// `firstlinemd5`, but fail2ban on Python 3 stores a SHA-1 there (its MD5 self-test
    /// fails and it falls back); compare with whatever the source computes.
    pub first_line_hash: Option<String>,
    /// The byte offset to resume at.
    pub position: i64,
}

/// Where a jail stopped reading a journal: fail2ban keeps it in `logs` under the journal's
/// name (`systemd-journal`), with the time as text in the hash column and as epoch float
/// in the position column.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalPosition {
    /// The time as ISO text (informational).
    pub iso_time: Option<String>,
    /// The time of the last entry read, Unix seconds.
    pub time: f64,
}

/// Where a jail stopped reading a journal, with the cursor rampart keeps.
///
/// It is fail2ban's row (`logs`, path `systemd-journal`, the time as epoch float in
/// `lastfilepos`) with the entry's cursor in the hash column where fail2ban writes the
/// time as ISO text: fail2ban only reads the time, so either program resumes from the
/// other's row, and rampart resumes exactly when it finds a cursor there.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalCursor {
    /// The journal cursor of the last entry read (`s=…;i=…;…`), when the row has one.
    pub cursor: Option<String>,
    /// The time of the last entry read, Unix seconds.
    pub time: f64,
}

/// A jail known to the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailEntry {
    pub name: String,
    /// Disabled jails are kept while they have bans; [`Store::purge`] removes the others.
    pub enabled: bool,
}

/// What [`Store::purge`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Rows of the ban history.
    pub bans: usize,
    /// Latest-ban rows (repeat offenders forgotten).
    pub bips: usize,
    /// Disabled jails without bans (their log positions go with them).
    pub jails: usize,
}

/// A `logs` row: the hash column and the raw position column (`None` when NULL).
type PositionRow = (Option<String>, Option<SqlValue>);

#[derive(Debug, Default)]
struct Issues {
    kept: Vec<RowIssue>,
    dropped: usize,
}

/// The ban database. See the crate documentation.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    opened: Opened,
    max_matches: usize,
    issues: RefCell<Issues>,
}

// The daemon hands the store to its database thread.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Store>();
};

impl Store {
    /// Opens (creating if needed) the database at `path`, or an in-memory database for
    /// `":memory:"`. See the crate documentation for what is checked and upgraded.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let (conn, opened) = if path == Path::new(":memory:") {
            let unreadable = |source| StoreError::Unreadable {
                path: path.to_path_buf(),
                source,
            };
            let mut conn = Connection::open_in_memory().map_err(unreadable)?;
            conn.execute_batch("PRAGMA foreign_keys = ON;")
                .map_err(unreadable)?;
            let opened = schema::check(&conn, path)?;
            schema::prepare(&mut conn, path, opened, unix_now())?;
            (conn, opened)
        } else {
            open_file(path)?
        };
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            opened,
            max_matches: DEFAULT_MAX_MATCHES,
            issues: RefCell::new(Issues::default()),
        })
    }

    /// The database file (or `:memory:`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether opening created, used or upgraded the schema (worth a log line).
    pub fn opened(&self) -> Opened {
        self.opened
    }

    /// Sets `dbmaxmatches`: how many matched lines [`Store::add_ban`] keeps with a ban and
    /// [`Store::merged_bans`] merges; 0 stores none.
    pub fn set_max_matches(&mut self, max_matches: usize) {
        self.max_matches = max_matches;
    }

    /// Closes the database, reporting a failure to flush it.
    pub fn close(self) -> Result<(), StoreError> {
        let path = self.path;
        self.conn.close().map_err(|(_, source)| StoreError::Sqlite {
            path,
            doing: "closing".to_string(),
            source,
        })
    }

    /// The rows that could not be used as they were since the last call, and how many more
    /// were seen but not kept (only the first hundred are).
    pub fn take_issues(&self) -> (Vec<RowIssue>, usize) {
        let mut issues = self.issues.borrow_mut();
        let dropped = std::mem::take(&mut issues.dropped);
        (std::mem::take(&mut issues.kept), dropped)
    }

    // ----- jails -----

    /// Registers a jail, or enables it again. Log positions and bans need their jail.
    pub fn add_jail(&mut self, jail: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO jails(name, enabled) VALUES(?1, 1)
                 ON CONFLICT(name) DO UPDATE SET enabled = 1",
            )
            .and_then(|mut s| s.execute([jail]))
            .map(|_| ())
            .map_err(|e| self.fail(e, || format!("adding jail {jail:?}")))
    }

    /// Marks a jail disabled (it stopped); its rows stay until [`Store::purge`].
    pub fn disable_jail(&mut self, jail: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE jails SET enabled = 0 WHERE name = ?1")
            .and_then(|mut s| s.execute([jail]))
            .map(|_| ())
            .map_err(|e| self.fail(e, || format!("disabling jail {jail:?}")))
    }

    /// Marks every jail disabled: done once at start, before the configured jails are
    /// added again, so that jails removed from the configuration end up purged.
    pub fn disable_all_jails(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute("UPDATE jails SET enabled = 0", [])
            .map(|_| ())
            .map_err(|e| self.fail(e, || "disabling all jails".to_string()))
    }

    /// The jails in the database, by name.
    pub fn jails(&self) -> Result<Vec<JailEntry>, StoreError> {
        let read = || -> rusqlite::Result<Vec<JailEntry>> {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT name, enabled FROM jails ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                let enabled = decode::seconds(r.get_ref(1)?).is_some_and(|e| e != 0);
                Ok(decode::text(r.get_ref(0)?).map(|name| JailEntry { name, enabled }))
            })?;
            rows.filter_map(Result::transpose).collect()
        };
        read().map_err(|e| self.fail(e, || "listing jails".to_string()))
    }

    // ----- log positions -----

    /// The saved position of a jail in a log file, if any. The caller resumes there only
    /// if the file's first-line hash still equals the saved one.
    pub fn log_position(&self, jail: &str, path: &str) -> Result<Option<LogPosition>, StoreError> {
        Ok(self.position_row(jail, path)?.and_then(|(hash, pos)| {
            let position = match &pos {
                None => Some(0),
                Some(p) => decode::seconds(ValueRef::from(p)),
            };
            match position {
                Some(position) => Some(LogPosition {
                    first_line_hash: hash,
                    position,
                }),
                None => {
                    self.note(RowIssue {
                        table: "logs",
                        jail: Some(jail.to_string()),
                        key: Some(path.to_string()),
                        problem: format!(
                            "lastfilepos {} is not a number",
                            pos.as_ref()
                                .map_or("NULL".to_string(), |p| decode::describe(p.into()))
                        ),
                        outcome: IssueOutcome::Skipped,
                    });
                    None
                }
            }
        }))
    }

    /// Saves the position of a jail in a log file (the jail must have been added).
    pub fn set_log_position(
        &mut self,
        jail: &str,
        path: &str,
        first_line_hash: Option<&str>,
        position: i64,
    ) -> Result<(), StoreError> {
        self.write_position(jail, path, first_line_hash, SqlValue::Integer(position))
    }

    /// The saved position of a jail in a journal (fail2ban's name: `systemd-journal`).
    pub fn journal_position(
        &self,
        jail: &str,
        name: &str,
    ) -> Result<Option<JournalPosition>, StoreError> {
        Ok(self.position_row(jail, name)?.and_then(|(iso, pos)| {
            match pos.as_ref().map(|p| decode::float(ValueRef::from(p))) {
                Some(Some(time)) => Some(JournalPosition {
                    iso_time: iso,
                    time,
                }),
                _ => {
                    self.note(RowIssue {
                        table: "logs",
                        jail: Some(jail.to_string()),
                        key: Some(name.to_string()),
                        problem: format!(
                            "journal time {} is not a number",
                            pos.as_ref()
                                .map_or("NULL".to_string(), |p| decode::describe(p.into()))
                        ),
                        outcome: IssueOutcome::Skipped,
                    });
                    None
                }
            }
        }))
    }

    /// Saves the position of a jail in a journal: the time of the last entry read, as
    /// epoch seconds and as ISO text.
    pub fn set_journal_position(
        &mut self,
        jail: &str,
        name: &str,
        time: f64,
        iso_time: &str,
    ) -> Result<(), StoreError> {
        self.write_position(jail, name, Some(iso_time), SqlValue::Real(time))
    }

    /// The saved journal position of a jail under `name` (`systemd-journal`): a cursor
    /// when rampart wrote the row, the time alone when fail2ban did.
    pub fn journal_cursor(
        &self,
        jail: &str,
        name: &str,
    ) -> Result<Option<JournalCursor>, StoreError> {
        Ok(self.journal_position(jail, name)?.map(|p| JournalCursor {
            // journald's cursors are `s=…;i=…;b=…;m=…;t=…;x=…`; fail2ban's ISO times
            // never contain `;`.
            cursor: p
                .iso_time
                .filter(|c| c.starts_with("s=") && c.contains(';')),
            time: p.time,
        }))
    }

    /// Saves a jail's journal position: the cursor and time of the last entry read.
    pub fn set_journal_cursor(
        &mut self,
        jail: &str,
        name: &str,
        cursor: &str,
        time: f64,
    ) -> Result<(), StoreError> {
        self.write_position(jail, name, Some(cursor), SqlValue::Real(time))
    }

    fn position_row(&self, jail: &str, path: &str) -> Result<Option<PositionRow>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT firstlinemd5, lastfilepos FROM logs WHERE jail = ?1 AND path = ?2",
            )
            .and_then(|mut s| {
                s.query_row([jail, path], |r| {
                    let hash = decode::text(r.get_ref(0)?);
                    let pos: SqlValue = r.get(1)?;
                    let pos = (pos != SqlValue::Null).then_some(pos);
                    Ok((hash, pos))
                })
                .optional()
            })
            .map_err(|e| {
                self.fail(e, || {
                    format!("reading the position of jail {jail:?} in {path:?}")
                })
            })
    }

    fn write_position(
        &mut self,
        jail: &str,
        path: &str,
        hash: Option<&str>,
        pos: SqlValue,
    ) -> Result<(), StoreError> {
        let write = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            // An UPDATE first: the table has two UNIQUE constraints, and an upsert can
            // name only one of them.
            let updated = tx
                .prepare_cached(
                    "UPDATE logs SET firstlinemd5 = ?1, lastfilepos = ?2 WHERE jail = ?3 AND path = ?4",
                )?
                .execute(params![hash, pos, jail, path])?;
            if updated == 0 {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO logs(jail, path, firstlinemd5, lastfilepos)
                     VALUES(?1, ?2, ?3, ?4)",
                )?
                .execute(params![jail, path, hash, pos])?;
            }
            tx.commit()
        };
        write(&mut self.conn).map_err(|e| {
            self.fail(e, || {
                format!("saving the position of jail {jail:?} in {path:?}")
            })
        })
    }

    // ----- bans -----

    /// Records a ban: a new history row in `bans`, and the latest ban of the id in the
    /// jail in `bips`, in one transaction. `matches` in the data is cut to the last
    /// `max_matches` lines (removed when that is 0). The jail must have been added.
    pub fn add_ban(&mut self, ban: &BanRecord) -> Result<(), StoreError> {
        let data = self.trimmed_data(&ban.data);
        let json = serde_json::to_string(&data).unwrap_or_else(|_| "{}".to_string());
        let write = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            let values = params![
                ban.jail,
                ban.ip,
                ban.time_of_ban,
                ban.ban_time,
                ban.ban_count,
                json
            ];
            tx.prepare_cached(
                "INSERT INTO bans(jail, ip, timeofban, bantime, bancount, data)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(values)?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO bips(jail, ip, timeofban, bantime, bancount, data)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(values)?;
            tx.commit()
        };
        write(&mut self.conn).map_err(|e| {
            self.fail(e, || {
                format!("recording the ban of {:?} in jail {:?}", ban.ip, ban.jail)
            })
        })
    }

    fn trimmed_data(&self, data: &Value) -> Value {
        let Some(matches) = data.get("matches").and_then(Value::as_array) else {
            return data.clone();
        };
        let mut data = data.clone();
        if let Some(object) = data.as_object_mut() {
            if self.max_matches == 0 {
                if !matches.is_empty() {
                    object.remove("matches");
                }
            } else if matches.len() > self.max_matches {
                let kept = matches[matches.len() - self.max_matches..].to_vec();
                object.insert("matches".to_string(), Value::Array(kept));
            }
        }
        data
    }

    /// Forgets the bans of one id in one jail (history and latest), e.g. after `unban`.
    pub fn remove_ban(&mut self, jail: &str, ip: &str) -> Result<(), StoreError> {
        let write = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.prepare_cached("DELETE FROM bips WHERE jail = ?1 AND ip = ?2")?
                .execute([jail, ip])?;
            tx.prepare_cached("DELETE FROM bans WHERE jail = ?1 AND ip = ?2")?
                .execute([jail, ip])?;
            tx.commit()
        };
        write(&mut self.conn)
            .map_err(|e| self.fail(e, || format!("removing the ban of {ip:?} in jail {jail:?}")))
    }

    /// Forgets every ban of a jail (history and latest), e.g. after `unban --all`.
    pub fn remove_jail_bans(&mut self, jail: &str) -> Result<(), StoreError> {
        let write = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM bips WHERE jail = ?1", [jail])?;
            tx.execute("DELETE FROM bans WHERE jail = ?1", [jail])?;
            tx.commit()
        };
        write(&mut self.conn)
            .map_err(|e| self.fail(e, || format!("removing the bans of jail {jail:?}")))
    }

    /// The bans a jail restores at start: its latest ban of each id that is still running
    /// at `query.now` or permanent, each id once, by id, with ban times corrected as
    /// [`RestoreQuery`] describes. The caller still applies its ignore list and computes
    /// the remaining time (`time_of_ban + ban_time - now`).
    pub fn current_bans(
        &self,
        jail: &str,
        query: &RestoreQuery,
    ) -> Result<Vec<BanRecord>, StoreError> {
        let window_start = query
            .window
            .filter(|w| *w >= 0)
            .map(|w| query.now.saturating_sub(w));
        let max_ban_time = query.max_ban_time.filter(|m| *m >= 0);
        let rows = self
            .ban_rows(
                "bips",
                "SELECT jail, ip, timeofban, bantime, bancount, data FROM bips
                 WHERE jail = ?1 AND (timeofban + bantime > ?2 OR bantime <= -1)
                   AND (?3 IS NULL OR timeofban > ?3)
                 ORDER BY ip",
                params![jail, query.now, window_start],
            )
            .map_err(|e| self.fail(e, || format!("reading the current bans of jail {jail:?}")))?;
        Ok(rows
            .into_iter()
            .filter_map(|mut ban| {
                if ban.ban_time == UNKNOWN_BAN_TIME {
                    ban.ban_time = query.unknown_ban_time;
                } else if let Some(max) = max_ban_time
                    && (ban.ban_time == PERMANENT || ban.ban_time > max)
                {
                    ban.ban_time = max;
                }
                let expired = ban.ban_time != PERMANENT
                    && ban.time_of_ban.saturating_add(ban.ban_time) <= query.now;
                (!expired).then_some(ban)
            })
            .collect())
    }

    /// The ban history (`bans`), optionally of one jail and/or one id and only bans that
    /// started after `started_after`; by id, newest first.
    pub fn bans(
        &self,
        jail: Option<&str>,
        ip: Option<&str>,
        started_after: Option<i64>,
    ) -> Result<Vec<BanRecord>, StoreError> {
        let mut sql =
            String::from("SELECT jail, ip, timeofban, bantime, bancount, data FROM bans WHERE 1");
        let mut args: Vec<SqlValue> = Vec::new();
        if let Some(jail) = jail {
            args.push(jail.to_string().into());
            sql.push_str(&format!(" AND jail = ?{}", args.len()));
        }
        if let Some(ip) = ip {
            args.push(ip.to_string().into());
            sql.push_str(&format!(" AND ip = ?{}", args.len()));
        }
        if let Some(after) = started_after {
            args.push(after.into());
            sql.push_str(&format!(" AND timeofban > ?{}", args.len()));
        }
        sql.push_str(" ORDER BY ip, timeofban DESC");
        self.ban_rows("bans", &sql, rusqlite::params_from_iter(args))
            .map_err(|e| self.fail(e, || "reading the ban history".to_string()))
    }

    /// The bans of `ip` in `jail` (or in all jails) merged into one ticket, or `None` if
    /// there are none. See [`MergedBans`].
    pub fn merged_bans(
        &self,
        ip: &str,
        jail: Option<&str>,
    ) -> Result<Option<MergedBans>, StoreError> {
        let history = self.bans(jail, Some(ip), None)?;
        let Some(oldest) = history.last() else {
            return Ok(None);
        };
        let first_ban = oldest.time_of_ban;
        let mut merged = Map::new();
        let mut matches: Vec<Value> = Vec::new();
        let mut failures: i64 = 0;
        // Newest first: older lines go in front, until max_matches is reached.
        for ban in &history {
            let room = self.max_matches.saturating_sub(matches.len());
            if room > 0
                && let Some(lines) = ban.data.get("matches").and_then(Value::as_array)
            {
                let take = lines.len().min(room);
                let mut front = lines[lines.len() - take..].to_vec();
                front.append(&mut matches);
                matches = front;
            }
            failures = failures.saturating_add(match ban.data.get("failures") {
                None => 1,
                Some(n) => n
                    .as_i64()
                    .or_else(|| n.as_f64().map(|f| f as i64))
                    .unwrap_or(1),
            });
            if let Some(object) = ban.data.as_object() {
                merged.extend(object.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        merged.insert("failures".to_string(), Value::from(failures));
        merged.insert("matches".to_string(), Value::Array(matches));
        Ok(Some(MergedBans {
            ip: ip.to_string(),
            first_ban,
            data: Value::Object(merged),
        }))
    }

    /// The ban count, last ban and ban time of `ip` in `jail`, or summed over all jails
    /// with `None` (fail2ban's `bantime.overalljails`). `None` if it was never banned (or
    /// its record was purged).
    pub fn ban_stats(&self, ip: &str, jail: Option<&str>) -> Result<Option<BanStats>, StoreError> {
        let read = || -> rusqlite::Result<Option<BanStats>> {
            let map = |r: &Row<'_>| {
                Ok((
                    decode::seconds(r.get_ref(0)?),
                    decode::seconds(r.get_ref(1)?),
                    decode::seconds(r.get_ref(2)?),
                ))
            };
            let row = match jail {
                Some(jail) => self
                    .conn
                    .prepare_cached(
                        "SELECT bancount, timeofban, bantime FROM bips WHERE ip = ?1 AND jail = ?2",
                    )?
                    .query_row([ip, jail], map)
                    .optional()?,
                None => self
                    .conn
                    .prepare_cached(
                        "SELECT sum(bancount), max(timeofban), sum(bantime) FROM bips
                         WHERE ip = ?1 GROUP BY ip",
                    )?
                    .query_row([ip], map)
                    .optional()?,
            };
            Ok(match row {
                None => None,
                Some((Some(ban_count), Some(last_ban), Some(ban_time))) => Some(BanStats {
                    ban_count,
                    last_ban,
                    ban_time,
                }),
                Some(_) => {
                    self.note(RowIssue {
                        table: "bips",
                        jail: jail.map(str::to_string),
                        key: Some(ip.to_string()),
                        problem: "the ban count, time of ban or ban time is not a number"
                            .to_string(),
                        outcome: IssueOutcome::Skipped,
                    });
                    None
                }
            })
        };
        read().map_err(|e| self.fail(e, || format!("reading the ban count of {ip:?}")))
    }

    /// Removes what is older than `before` (the caller passes `now - dbpurgeage`): ban
    /// history rows that started before it; latest-ban rows that started before it and
    /// ended more than three ban times before it (never permanent ones); then disabled
    /// jails left without bans, with their log positions.
    pub fn purge(&mut self, before: i64) -> Result<Purged, StoreError> {
        let write = |conn: &mut Connection| -> rusqlite::Result<Purged> {
            let tx = conn.transaction()?;
            let bans = tx.execute("DELETE FROM bans WHERE timeofban < ?1", [before])?;
            let bips = tx.execute(
                "DELETE FROM bips WHERE timeofban < ?1 AND bantime != -1
                   AND timeofban + bantime * ?2 < ?1",
                [before, OUTDATED_FACTOR],
            )?;
            let jails = tx.execute(
                "DELETE FROM jails WHERE enabled = 0
                   AND NOT EXISTS (SELECT 1 FROM bans WHERE bans.jail = jails.name)
                   AND NOT EXISTS (SELECT 1 FROM bips WHERE bips.jail = jails.name)",
                [],
            )?;
            tx.commit()?;
            Ok(Purged { bans, bips, jails })
        };
        write(&mut self.conn).map_err(|e| self.fail(e, || "purging old bans".to_string()))
    }

    // ----- helpers -----

    /// Runs a query returning `jail, ip, timeofban, bantime, bancount, data` and decodes
    /// the rows, noting (and skipping, or keeping without data) those it cannot use.
    fn ban_rows(
        &self,
        table: &'static str,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> rusqlite::Result<Vec<BanRecord>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(args, |r| self.decode_ban(table, r))?;
        rows.filter_map(Result::transpose).collect()
    }

    fn decode_ban(&self, table: &'static str, r: &Row<'_>) -> rusqlite::Result<Option<BanRecord>> {
        let jail = decode::text(r.get_ref(0)?);
        let ip = decode::text(r.get_ref(1)?);
        let issue = |problem: String, outcome| RowIssue {
            table,
            jail: jail.clone(),
            key: ip.clone(),
            problem,
            outcome,
        };
        let (Some(jail_name), Some(ip_text)) = (&jail, &ip) else {
            self.note(issue("no jail or no ip".to_string(), IssueOutcome::Skipped));
            return Ok(None);
        };
        let number = |i: usize, column: &str| -> rusqlite::Result<Result<i64, String>> {
            let v = r.get_ref(i)?;
            Ok(decode::seconds(v)
                .ok_or_else(|| format!("{column} {} is not a number", decode::describe(v))))
        };
        let numbers = (
            number(2, "timeofban")?,
            number(3, "bantime")?,
            number(4, "bancount")?,
        );
        let (time_of_ban, ban_time, ban_count) = match numbers {
            (Ok(t), Ok(b), Ok(c)) => (t, b, c),
            (t, b, c) => {
                let problem = [t.err(), b.err(), c.err()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ");
                self.note(issue(problem, IssueOutcome::Skipped));
                return Ok(None);
            }
        };
        let data = match decode::data(r.get_ref(5)?) {
            Ok(data) => data,
            Err(problem) => {
                self.note(issue(problem, IssueOutcome::DataDropped));
                Value::Object(Map::new())
            }
        };
        Ok(Some(BanRecord {
            jail: jail_name.clone(),
            ip: ip_text.clone(),
            time_of_ban,
            ban_time,
            ban_count,
            data,
        }))
    }

    fn note(&self, issue: RowIssue) {
        let mut issues = self.issues.borrow_mut();
        if issues.kept.len() < MAX_KEPT_ISSUES {
            issues.kept.push(issue);
        } else {
            issues.dropped += 1;
        }
    }

    fn fail(&self, source: rusqlite::Error, doing: impl FnOnce() -> String) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            doing: doing(),
            source,
        }
    }
}

fn open_file(path: &Path) -> Result<(Connection, Opened), StoreError> {
    if path.as_os_str().is_empty() {
        return Err(StoreError::EmptyPath);
    }
    let dir = match path.parent() {
        Some(dir) if dir.as_os_str().is_empty() => Path::new("."),
        Some(dir) => dir,
        None => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(StoreError::MissingDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    let unreadable = |source| StoreError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    // No URI interpretation: `dbfile` is a path, whatever characters it contains.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(unreadable)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unreadable)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;")
        .map_err(unreadable)?;
    // Damage found now is an error at start, not a failed ban hours later. The database
    // stays small (purged daily), so the check is quick. Nothing is written before the
    // checks pass: a refused file is left exactly as it was.
    let problems: Vec<String> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
        .map_err(unreadable)?;
    if problems.first().map(String::as_str) != Some("ok") {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: problems
                .iter()
                .flat_map(|p| p.lines())
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    let opened = schema::check(&conn, path)?;
    // fail2ban runs with `synchronous = OFF` and the rollback journal in memory: fast, but
    // a crash or power loss in the middle of a write can corrupt the file (hence its
    // repair-or-recreate code). WAL with `synchronous = NORMAL` costs no fsync per commit
    // either (only at checkpoints), cannot corrupt the file (a power loss loses at most the
    // last commits), and lets an administrator's `sqlite3` read while the daemon writes.
    // The mode is recorded in the file; fail2ban, should it open the file again, switches
    // it back to its own, which SQLite allows.
    let _mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(unreadable)?;
    conn.execute_batch("PRAGMA synchronous = NORMAL;")
        .map_err(unreadable)?;
    schema::prepare(&mut conn, path, opened, unix_now())?;
    Ok((conn, opened))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
