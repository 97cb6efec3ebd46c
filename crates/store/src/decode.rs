//! Tolerant reading of column values.
//!
//! SQLite stores whatever it is given, and fail2ban has given it floats for times
//! (version-1 databases, journal positions), bytes for JSON (Python's adapter returns
//! `bytes`) and `NULL` data. A database is input like any other: odd values are converted
//! when the meaning is clear and reported as a [`RowIssue`] otherwise, never a panic.

use std::fmt;

use rusqlite::types::ValueRef;
use serde_json::{Map, Value};

/// Seconds (or a byte offset) from an INTEGER, REAL or numeric TEXT value.
/// REAL values are truncated towards zero and saturate at the `i64` range.
pub(crate) fn seconds(value: ValueRef<'_>) -> Option<i64> {
    match value {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(f) if f.is_finite() => Some(f as i64),
        ValueRef::Text(t) => {
            let text = std::str::from_utf8(t).ok()?.trim();
            text.parse::<i64>().ok().or_else(|| {
                text.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            })
        }
        _ => None,
    }
}

/// A float from an INTEGER, REAL or numeric TEXT value (journal positions are epoch floats).
pub(crate) fn float(value: ValueRef<'_>) -> Option<f64> {
    match value {
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) => Some(f),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// Text from a TEXT or BLOB value (invalid UTF-8 replaced), `None` for anything else.
pub(crate) fn text(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A column value as a person would write it, for messages (long text is cut).
pub(crate) fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => {
            let text = String::from_utf8_lossy(t);
            let cut: String = text.chars().take(40).collect();
            let ellipsis = if cut.len() < text.len() { "…" } else { "" };
            format!("{cut:?}{ellipsis}")
        }
        ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

/// The ticket data of a ban row: a JSON object. `NULL` is an empty object (the column is
/// nullable); anything that is not a JSON object is an error message for a [`RowIssue`].
pub(crate) fn data(value: ValueRef<'_>) -> Result<Value, String> {
    let raw = match value {
        ValueRef::Null => return Ok(Value::Object(Map::new())),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t),
        ValueRef::Integer(_) | ValueRef::Real(_) => {
            return Err("data is a number, not a JSON object".to_string());
        }
    };
    match serde_json::from_str::<Value>(&raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("data is JSON but not an object".to_string()),
        Err(e) => Err(format!("data is not valid JSON ({e})")),
    }
}

/// A row of the database that could not be used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIssue {
    /// The table the row is in (`bans`, `bips` or `logs`).
    pub table: &'static str,
    /// The jail column of the row, when readable.
    pub jail: Option<String>,
    /// The ip column (bans) or path column (logs), when readable.
    pub key: Option<String>,
    /// What is wrong with it.
    pub problem: String,
    /// What was done about it.
    pub outcome: IssueOutcome,
}

/// What the store did with a row it could not use as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    /// The row was left out of the result.
    Skipped,
    /// The row was used with empty ticket data (`{}`), as fail2ban does with data it cannot
    /// decode: losing a ban's matched lines is better than losing the ban.
    DataDropped,
}

impl fmt::Display for RowIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} row", self.table)?;
        if let Some(key) = &self.key {
            write!(f, " for {key:?}")?;
        }
        if let Some(jail) = &self.jail {
            write!(f, " in jail {jail:?}")?;
        }
        let outcome = match self.outcome {
            IssueOutcome::Skipped => "row skipped",
            IssueOutcome::DataDropped => "ban kept without its data",
        };
        write!(f, ": {}; {outcome}", self.problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_from_any_numeric_form() {
        assert_eq!(seconds(ValueRef::Integer(7)), Some(7));
        assert_eq!(seconds(ValueRef::Real(1388009242.9)), Some(1388009242));
        assert_eq!(seconds(ValueRef::Real(-2.5)), Some(-2));
        assert_eq!(seconds(ValueRef::Real(f64::NAN)), None);
        assert_eq!(seconds(ValueRef::Real(1e300)), Some(i64::MAX));
        assert_eq!(seconds(ValueRef::Text(b" 600 ")), Some(600));
        assert_eq!(seconds(ValueRef::Text(b"600.7")), Some(600));
        assert_eq!(seconds(ValueRef::Text(b"ten")), None);
        assert_eq!(seconds(ValueRef::Null), None);
        assert_eq!(seconds(ValueRef::Blob(b"1")), None);
    }

    #[test]
    fn data_must_be_an_object() {
        assert_eq!(data(ValueRef::Null), Ok(serde_json::json!({})));
        assert_eq!(
            data(ValueRef::Blob(br#"{"failures": 3}"#)),
            Ok(serde_json::json!({"failures": 3}))
        );
        assert!(data(ValueRef::Text(b"[1, 2]")).is_err());
        assert!(data(ValueRef::Text(b"{\"matches\": [")).is_err());
        assert!(data(ValueRef::Text(b"NaN")).is_err());
        assert!(data(ValueRef::Integer(3)).is_err());
        // Invalid UTF-8 is replaced, as Python's decode(errors='replace') would.
        assert_eq!(
            data(ValueRef::Blob(b"{\"user\": \"\xff\"}")),
            Ok(serde_json::json!({"user": "\u{fffd}"}))
        );
    }
}
