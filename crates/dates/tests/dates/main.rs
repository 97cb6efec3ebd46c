//! Integration tests of rampart-dates: the differential test against fail2ban and the
//! hostile-input tests.

mod differential;
mod hostile;
