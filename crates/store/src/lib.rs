//! Ban persistence in SQLite, schema-compatible with fail2ban's database (version 4).
