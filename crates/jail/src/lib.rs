//! Failure counting and ban decisions for one jail: pure state, no IO, no clock of its
//! own.
//!
//! The daemon feeds every failure its filter finds and every tick of its clock; this
//! crate answers with fail2ban's decisions:
//!
//! - [`FailManager`] counts failures per id with fail2ban's rate-extrapolating rule
//!   (not a sliding window) and hands back the ticket to ban at `maxretry`;
//! - [`BanManager`] keeps the ban list: ban ends are the last failure's time plus the
//!   ban time, re-bans prolong, `unban_due(now)` releases;
//! - [`Increment`] computes `bantime.increment` ban times with a safe evaluator for
//!   `bantime.formula` ([`Formula`]: parsed once, a fixed grammar, never Python);
//! - [`IgnoreList`] answers `ignoreself`/`ignoreip` and tells the caller when to run
//!   `ignorecommand`;
//! - [`Jail`] ties them together from a jail's option strings ([`JailConfig`]).
//!
//! Time is always passed in (`now`, epoch seconds), randomness too (`rndtime`), host
//! names are resolved through the caller's [`Resolver`], and what the store knows about
//! earlier bans arrives as [`PriorBans`]. That keeps every rule testable with a frozen
//! clock and comparable with fail2ban's own code.
//!
//! ```
//! use rampart_jail::{BanOutcome, FailureId, IgnoreCheck, Jail, JailConfig, Resolver, Ticket};
//!
//! struct NoDns;
//! impl Resolver for NoDns {
//!     fn resolve(&mut self, _name: &str, _now: f64) -> Vec<std::net::IpAddr> {
//!         Vec::new()
//!     }
//! }
//!
//! let options = [("maxretry", "2"), ("findtime", "10m"), ("bantime", "1h"), ("ignoreip", "127.0.0.1/8")];
//! let mut jail = Jail::new(JailConfig::from_options(options, &[]).unwrap());
//! let id = FailureId::parse("192.0.2.7", rampart_filter::AddrHint::Any);
//! let mut to_ban = None;
//! for time in [1000.0, 1010.0] {
//!     // From the filter: `Ticket::from_failure(&failure, now)`.
//!     let ticket = Ticket::new(id.clone(), time);
//!     assert_eq!(jail.check_ignore(&ticket.id, time, &mut NoDns), IgnoreCheck::NotIgnored);
//!     to_ban = jail.add_failure(ticket, None);
//! }
//! let outcome = jail.ban(to_ban.unwrap(), None, 1011.0, || 0.5);
//! assert!(matches!(outcome, BanOutcome::Banned { record: true, .. }));
//! assert_eq!(jail.next_unban_at(), Some(1010.0 + 3600.0));
//! assert!(jail.tick(4610.0).is_empty());
//! assert_eq!(jail.tick(4611.0).len(), 1);
//! ```
//!
//! Where this differs from fail2ban on purpose:
//!
//! - fail2ban raises a known offender's ban time in a background thread after the ban
//!   actions started, so `<bantime>` may still show the base; [`Jail::ban`] returns the
//!   final ban time before the caller runs any action.
//! - fail2ban adds a known offender's extra attempts as a second failure, which counts
//!   its `failures` twice and, when other failures are pending, its matched lines
//!   twice; here the failure is counted once with the extra weight. The retry count, and
//!   so every ban decision, is the same.
//! - A formula may only use the grammar of [`Formula`]; fail2ban would evaluate any
//!   Python (and fail at ban time on what it cannot run). Integers beyond 128 bits and
//!   complex numbers are refused where Python would carry on.
//! - `ignorecache` is not implemented: the verdict of the lists is cheap, and caching
//!   `ignorecommand` is left to the caller that runs it.

mod ban;
mod bantime;
mod expr;
mod fail;
mod ignore;
mod jail;
mod ticket;

pub use ban::{BanManager, BanResult};
pub use bantime::{DEFAULT_FORMULA, Increment, IncrementOptions, PERMANENT};
pub use expr::{EvalError, Formula, Number, ParseError, Variables};
pub use fail::FailManager;
pub use ignore::{CachingResolver, IgnoreCheck, IgnoreList, IgnoreReason, Resolver};
pub use jail::{BanOutcome, Jail, JailConfig, PriorBans};
pub use rampart_filter::FailureId;
pub use ticket::Ticket;

/// A jail option that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value of the wrong form.
    #[error("invalid {option} = {value:?}: {reason}")]
    Option {
        option: &'static str,
        value: String,
        reason: String,
    },
    /// A formula outside the supported grammar.
    #[error("invalid {option}: {source}")]
    Formula {
        option: &'static str,
        source: ParseError,
    },
    /// A constant expression (`bantime.factor`) that fails to evaluate.
    #[error("invalid {option} = {text:?}: {source}")]
    Evaluate {
        option: &'static str,
        text: String,
        source: EvalError,
    },
}
