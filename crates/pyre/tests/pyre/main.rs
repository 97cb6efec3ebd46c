//! Integration tests of rampart-pyre: the differential test against Python's own `re`
//! over fail2ban's regexes, and hostile inputs.

pub(crate) mod differential;
mod hostile;
