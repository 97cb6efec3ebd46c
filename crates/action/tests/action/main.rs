//! Integration tests of rampart-action with real shells, real firewalls in network
//! namespaces, and Debian's fail2ban actions.

// Helpers outside #[test] functions unwrap too: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

mod fail2ban;
mod firewall;
mod lifecycle;
mod queue;
mod safety;
mod support;
mod timeout;
