//! Date detection in log lines, with fail2ban's templates and rules.
//!
//! Default templates in fail2ban's order with hit-based reordering, custom
//! `datepattern`s with strptime codes, `{^LN-BEG}`, `{DATE}`, `{EPOCH}`, `{TAI64N}`,
//! `{NONE}`, year inference for year-less dates, time zones. Pure: the clock and the
//! local time zone are passed in.
