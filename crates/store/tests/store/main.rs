//! rampart-store against real SQLite files: round trips of every operation, hostile
//! database contents, and differential runs against fail2ban's own `Fail2BanDb`.

// Helpers outside #[test] functions set up fixtures; a failed setup should panic there.
#![allow(clippy::unwrap_used)]

mod common;
mod fail2ban;
mod robustness;
mod roundtrip;
