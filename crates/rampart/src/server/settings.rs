//! What of a running jail the control socket may change besides its counters: the
//! filter's regexes and dates, its log paths and encoding, and whether it is idle.
//!
//! The jail's thread owns its filter and its log source, so a command never touches
//! them: it validates the change here (a new filter is compiled in full, so a bad regex
//! is refused with the command's reply), leaves it in [`RuntimeSettings::pending`] and
//! wakes the thread, which applies it before its next read.

use anyhow::{Context, Result};
use rampart_filter::{Filter, FilterSpec, Mode, UseDns};
use rampart_source::LogPath;

use crate::engine::LineFilter;
use crate::logread::Encoding;

/// A change for the jail's thread to apply.
#[derive(Debug)]
pub enum Change {
    /// A new filter (regexes, dates, maxlines, usedns), ready to run.
    Engine(Box<LineFilter>),
    AddPath(LogPath),
    RemovePath(String),
    Encoding(Encoding),
}

/// The filter as configured, so that it can be rebuilt with one setting changed.
#[derive(Clone, Debug)]
pub struct FilterSettings {
    pub spec: FilterSpec,
    pub datepattern: Option<String>,
    pub logtimezone: Option<String>,
}

impl FilterSettings {
    /// Compiles the filter as the daemon runs it (first-hit failregex, findtime checked
    /// against `find_time`), already in operation (past the first catch-up read).
    pub fn build(&self, find_time: f64) -> Result<LineFilter> {
        let mode = Mode {
            check_all: false,
            raw_hosts: self.spec.use_dns == UseDns::Raw,
            ignore_pending: true,
            check_find_time: true,
            find_time,
        };
        let filter = Filter::new(&self.spec, mode).context("compiling the filter")?;
        // A change made by a command is checked in full, so that the reply refuses a
        // pattern no engine takes; a jail's start leaves that to its first lines.
        filter.check().context("compiling the filter")?;
        let mut engine = LineFilter::new(
            filter,
            self.datepattern.as_deref(),
            self.logtimezone.as_deref(),
        )?;
        engine.filter.set_in_operation(true);
        Ok(engine)
    }
}

/// The changeable part of a jail, kept in its [`super::jail::JailState`].
pub struct RuntimeSettings {
    pub filter: FilterSettings,
    pub encoding: Encoding,
    /// `set JAIL idle on`: the thread stops reading (unbans still happen on time);
    /// what the logs gain meanwhile is read when it goes off, as in fail2ban.
    pub idle: bool,
    pub pending: Vec<Change>,
}

impl std::fmt::Debug for RuntimeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeSettings")
            .field("filter", &self.filter)
            .field("idle", &self.idle)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl RuntimeSettings {
    pub fn new(filter: FilterSettings, encoding: Encoding) -> Self {
        RuntimeSettings {
            filter,
            encoding,
            idle: false,
            pending: Vec::new(),
        }
    }

    /// Rebuilds the filter with `change` applied to a copy of its settings; keeps the
    /// new settings and queues the new filter only if it compiles.
    pub fn change_filter(
        &mut self,
        find_time: f64,
        change: impl FnOnce(&mut FilterSettings),
    ) -> Result<()> {
        let mut next = self.filter.clone();
        change(&mut next);
        let engine = next.build(find_time)?;
        self.filter = next;
        self.pending.push(Change::Engine(Box::new(engine)));
        Ok(())
    }
}

/// fail2ban's word for a `usedns` setting.
pub fn use_dns_word(use_dns: UseDns) -> &'static str {
    match use_dns {
        UseDns::Yes => "yes",
        UseDns::Warn => "warn",
        UseDns::Raw => "raw",
        UseDns::No => "no",
    }
}
