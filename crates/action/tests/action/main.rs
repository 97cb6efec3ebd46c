//! Integration tests of rampart-action with real shells, real firewalls in network
//! namespaces, and Debian's fail2ban actions.

mod firewall;
mod lifecycle;
mod safety;
mod support;
mod timeout;
