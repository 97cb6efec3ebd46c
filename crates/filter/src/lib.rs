//! From log lines to failures: fail2ban's filter semantics.
//!
//! `prefregex`, `failregex` and `ignoreregex` with fail2ban's tags (`<HOST>`, `<F-*>`),
//! multi-line buffers, multi-line failure ids (`<F-MLFID>`), `usedns` and address
//! normalisation. Pure: no IO, no clock of its own.
