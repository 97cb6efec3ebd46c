//! The INI dialect of Python's `configparser`, as fail2ban configures it.
//!
//! Lossless enough for error messages: every section and entry keeps its line number.
//! No fail2ban knowledge (includes, overlays, interpolation) and no IO: text in,
//! document out.
