//! Date detection in log lines, with fail2ban's templates and rules.
//!
//! fail2ban finds the timestamp of every log line with a list of *date templates*: regexes
//! built from strptime-like patterns (`%b %d %H:%M:%S`), Unix times (`EPOCH`), TAI64N labels
//! or user regexes. The date text is cut from the line before the failure regexes run, and
//! converted to a Unix time with fail2ban's conventions (year inference, time zones).
//! [`DateDetector`] reproduces all of it:
//!
//! - the default templates in fail2ban's order (line-begin variants first) and the custom
//!   `datepattern` values fail2ban accepts (`{^LN-BEG}`, `{DATE}`, `{NONE}`, `EPOCH`,
//!   `LEPOCH`, `TAI64N`, `{EPOCH}` inside a regex, `%` codes, `**` and `{UNB}`);
//! - the order in which templates are tried and how it adapts (this changes results on
//!   real logs);
//! - the conversion of a match to a time, in the jail's `logtimezone` or
//!   the local zone ([`TimeZone`], which follows libc's `TZ` rules and `mktime`).
//!
//! [`str2seconds`] reads time values of the configuration (`bantime = 1d12h`).
//!
//! The crate is pure: the clock and the local zone are passed in (only
//! [`TimeZone::from_env`] looks at the environment and the zoneinfo files, for the caller
//! to use once). It never panics on a pattern or a line.

mod civil;
mod codes;
mod convert;
mod detector;
mod duration;
mod pytext;
mod template;
mod tz;
mod zones;

pub use detector::{DateDetector, TemplateStats};
pub use duration::str2seconds;
pub use tz::TimeZone;

/// The date found in a line.
#[derive(Clone, Debug, PartialEq)]
pub struct DateMatch {
    /// Byte span of the text to cut from the line. Empty when the template allows a
    /// missing date (`{NONE}`, an empty group); fail2ban then uses the last date if it is
    /// less than a minute old, else now.
    pub start: usize,
    pub end: usize,
    /// The time in Unix seconds, `None` when the span is empty or the text could not be
    /// converted (see `error`).
    pub time: Option<f64>,
    /// Why a non-empty date text gave no time.
    pub error: Option<DateError>,
}

/// Why a date text gave no time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateError {
    /// The text is not a valid date (e.g. `Feb 30`). fail2ban logs
    /// `findFailure failed to parse timeText: <text>` and processes the line without date.
    Unparsable,
    /// fail2ban fails on this line with the named Python exception (e.g. `KeyError` for a
    /// zone abbreviation it does not know): it logs the error, counts it, and does not
    /// process the line at all.
    LineFailed(&'static str),
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `datepattern` that cannot be turned into a template.
    #[error("invalid datepattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
    /// Two date patterns give templates with the same name.
    #[error("there is already a date template named {name:?}")]
    DuplicateTemplate { name: String },
    /// A time zone that cannot be used.
    #[error("unknown or unsupported time zone: {0:?}")]
    TimeZone(String),
    /// A time value that is not a valid expression.
    #[error("invalid time value {value:?}: {reason}")]
    Duration { value: String, reason: String },
}

/// A seeded xorshift generator for the randomized tests: `random(n)` is in `0..n`.
#[cfg(test)]
pub(crate) fn test_random(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}
