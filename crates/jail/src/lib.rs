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
