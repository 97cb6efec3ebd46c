//! fail2ban's configuration semantics on top of [`rampart_ini`].
//!
//! `.conf` → `.d/*.conf` → `.local` → `.d/*.local` overlays, `[INCLUDES] before/after`,
//! `%(name)s` interpolation (with `section/`, `known/` and `default/` forms), `<tag>`
//! substitution, `name[opt=val]` arguments, and the readers that turn a tree into
//! resolved jails, filters and actions. File access goes through a trait so that the
//! semantics can be tested without a disk.
