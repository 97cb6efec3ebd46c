//! A fail2ban command action: `actionstart`, `actionban`, … run through the shell.
//!
//! The state machine follows fail2ban 1.0: per family a flag word (started, holds
//! bans); actions with `?family=` keys start on demand at the first ban of a family;
//! a failed ban or unban runs `actioncheck`, then `actionrepair` (or stop and start),
//! and retries the command once; the same resolved start/stop command is not run twice
//! for two families.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indexmap::IndexMap;
use rampart_config::Value;

use crate::error::ActionError;
use crate::event::{Event, EventKind, EventSink, Level, discard_events};
use crate::exec::{Executor, ShellScript};
use crate::queue::JailAction;
use crate::subst::{Dynamic, StaticTags, dynamic};
use crate::ticket::{Family, Hostnames, NoLookups, TagSource, Ticket, py_float};

/// The commands an action may define; the missing ones are empty (`actionprolong`
/// has no default in fail2ban either: a missing one is simply not prolongable).
const COMMANDS: [&str; 9] = [
    "actionstart",
    "actionstop",
    "actionflush",
    "actioncheck",
    "actionrepair",
    "actionban",
    "actionreban",
    "actionunban",
    "actionreload",
];

/// The default `timeout` of a command, seconds.
const DEFAULT_TIMEOUT: &str = "60";

const STARTED: u8 = 1;
const HOLDS_BANS: u8 = 2;

/// What every action of a jail shares.
#[derive(Clone)]
pub struct ActionContext {
    pub jail: String,
    pub executor: Executor,
    pub events: EventSink,
    pub lookups: Arc<dyn TagSource>,
    pub hostnames: Hostnames,
    /// `<bantime>` in commands without a ticket (start, stop, flush).
    pub bantime: i64,
    /// Whether actions with `?family=` keys also start for IPv6.
    pub ipv6: bool,
    /// The previous server did not stop cleanly (it was killed): what the firewall
    /// holds for this jail is stale, and restored bans would be added a second time
    /// (Debian's iptables `actionban` inserts a rule per call). Each family's
    /// `actionflush` then runs once, right after its `actionstart`. fail2ban never
    /// flushes at start; this is rampart's own rule.
    pub flush_stale: bool,
}

impl ActionContext {
    /// A context for a jail: plain `/bin/sh`, no events, no lookups, the system's names.
    pub fn new(jail: impl Into<String>) -> Self {
        ActionContext {
            jail: jail.into(),
            executor: Executor::new(),
            events: discard_events(),
            lookups: Arc::new(NoLookups),
            hostnames: Hostnames::from_system(),
            bantime: 600,
            ipv6: true,
            flush_stale: false,
        }
    }
}

impl fmt::Debug for ActionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionContext")
            .field("jail", &self.jail)
            .field("executor", &self.executor)
            .field("hostnames", &self.hostnames)
            .field("bantime", &self.bantime)
            .field("ipv6", &self.ipv6)
            .finish_non_exhaustive()
    }
}

/// Whether a failed invariant check may be repaired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    Allowed,
    /// Only when the action sets `actionrepair_on_unban` (unbans, flushes at stop).
    OnlyIfRepairOnUnban,
}

/// An action made of shell commands.
#[derive(Debug)]
pub struct CommandAction {
    name: String,
    ctx: ActionContext,
    tags: StaticTags,
    timeout: Duration,
    start_on_demand: bool,
    families: Vec<String>,
    norestored: bool,
    repair_on_unban: bool,
    /// Flags per family key (`""`, `inet4`, `inet6`), in the order first seen.
    started: IndexMap<String, u8>,
    /// Per operation, the resolved command last run successfully for each family.
    executed: HashMap<&'static str, HashMap<String, String>>,
    ban_epoch: u64,
    /// Families flushed after an unclean stop (see [`ActionContext::flush_stale`]).
    stale_flushed: Vec<String>,
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::None => false,
        Value::Str(s) => !matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "false" | "no" | "off"
        ),
        Value::List(l) => !l.is_empty(),
        Value::Dict(d) => !d.is_empty(),
    }
}

fn is_family_conditional(key: &str) -> bool {
    key.split_once('?').is_some_and(|(name, cond)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_alphanumeric() || c == '_')
            && cond.starts_with("family=")
    })
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl CommandAction {
    /// Builds the action from what `rampart_config` read for a jail.
    pub fn from_config(
        action: &rampart_config::Action,
        ctx: ActionContext,
    ) -> Result<Self, ActionError> {
        if action.python.is_some() {
            return Err(ActionError::Unsupported {
                action: action.name.clone(),
                file: action.file.clone(),
            });
        }
        Self::new(&action.name, action.properties.iter().cloned(), ctx)
    }

    /// Builds an action from its properties (`actionban`, `[Init]` values, …).
    pub fn new(
        name: &str,
        properties: impl IntoIterator<Item = (String, Value)>,
        ctx: ActionContext,
    ) -> Result<Self, ActionError> {
        let mut values: IndexMap<String, String> = IndexMap::new();
        let mut flags: HashMap<String, bool> = HashMap::new();
        for (key, value) in properties {
            // fail2ban drops a `bantime` parameter: `<bantime>` is always the ticket's.
            // A value the reader could not convert counts as unset: fail2ban would
            // leave the literal `<actionstart>` in the script for the shell to choke on.
            if key == "bantime" || value == Value::None {
                continue;
            }
            if matches!(
                key.as_str(),
                "actionstart_on_demand" | "norestored" | "actionrepair_on_unban"
            ) {
                flags.insert(key.clone(), truthy(&value));
            }
            values.insert(key, value.to_py_str());
        }
        for command in COMMANDS {
            values.entry(command.to_string()).or_default();
        }
        let timeout_text = values
            .entry("timeout".to_string())
            .or_insert_with(|| DEFAULT_TIMEOUT.to_string())
            .clone();
        let timeout = parse_timeout(&timeout_text).map_err(|reason| ActionError::Timeout {
            action: name.to_string(),
            value: timeout_text.clone(),
            reason,
        })?;
        let conditional = values.keys().any(|k| is_family_conditional(k));
        let families = match values.get("families").filter(|v| !v.trim().is_empty()) {
            Some(list) => list
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            None if conditional && ctx.ipv6 => vec!["inet4".to_string(), "inet6".to_string()],
            None if conditional => vec!["inet4".to_string()],
            None => vec![String::new()],
        };
        Ok(CommandAction {
            name: name.to_string(),
            start_on_demand: flags
                .get("actionstart_on_demand")
                .copied()
                .unwrap_or(conditional),
            norestored: flags.get("norestored").copied().unwrap_or(false),
            repair_on_unban: flags.get("actionrepair_on_unban").copied().unwrap_or(false),
            tags: StaticTags::new(values),
            timeout,
            families,
            ctx,
            started: IndexMap::new(),
            executed: HashMap::new(),
            ban_epoch: 0,
            stale_flushed: Vec::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The timeout of each command.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether `actionstart` waits for the first ban of each family.
    pub fn starts_on_demand(&self) -> bool {
        self.start_on_demand
    }

    /// The families started so far (`""` for an action without family variants).
    pub fn started_families(&self) -> Vec<&str> {
        self.started
            .iter()
            .filter(|(_, f)| **f & STARTED != 0)
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// The command `name` resolved for a family, ticket tags still in place (for
    /// `rampart config dump`-like displays and tests).
    pub fn resolved_command(
        &mut self,
        name: &str,
        family: Option<Family>,
    ) -> Result<String, ActionError> {
        let key = family.map(Family::as_str).unwrap_or("");
        self.static_command(name, key)
    }

    /// The script that `name` runs for `ticket` (variables and all).
    pub fn script_for(&mut self, name: &str, ticket: &Ticket) -> Result<ShellScript, ActionError> {
        let command = self.static_command(name, ticket.family_key())?;
        Ok(self.dynamic_script(&command, ticket))
    }

    fn has(&self, command: &str) -> bool {
        self.tags.get(command).is_some_and(|c| !c.trim().is_empty())
    }

    fn flag(&self, family: &str) -> u8 {
        self.started.get(family).copied().unwrap_or(0)
    }

    fn emit(&self, level: Level, kind: EventKind) {
        (self.ctx.events)(Event {
            level,
            jail: self.ctx.jail.clone(),
            action: self.name.clone(),
            kind,
        });
    }

    fn static_command(&mut self, name: &str, family: &str) -> Result<String, ActionError> {
        let conditional = if family.is_empty() {
            String::new()
        } else {
            format!("family={family}")
        };
        self.tags
            .command(name, &conditional, &self.ctx.hostnames)
            .map_err(|source| ActionError::Substitution {
                action: self.name.clone(),
                command: name.to_string(),
                source,
            })
    }

    /// `_getOperation`: the command of an operation for a family, with `<family>` in.
    fn operation(&mut self, name: &str, family: &str) -> Result<String, ActionError> {
        let command = self.static_command(name, family)?;
        if family.is_empty() {
            return Ok(command);
        }
        Ok(command.replace("<family>", family))
    }

    fn pseudo_ticket(&self, family: &str) -> Ticket {
        Ticket {
            family: match family {
                "inet4" => Some(Family::Inet4),
                "inet6" => Some(Family::Inet6),
                _ => None,
            },
            time: now(),
            bantime: self.ctx.bantime,
            failures: 0,
            bancount: 0,
            ..Ticket::default()
        }
    }

    fn dynamic_script(&self, command: &str, ticket: &Ticket) -> ShellScript {
        let lookups = Arc::clone(&self.ctx.lookups);
        let jail = self.ctx.jail.as_str();
        let mut memo: HashMap<String, Option<String>> = HashMap::new();
        let mut lazy = |tag: &str| -> Option<String> {
            memo.entry(tag.to_string())
                .or_insert_with(|| lookups.lookup(tag, jail, ticket))
                .clone()
        };
        let mut lookup = |tag: &str| {
            let value = match tag {
                "ip" => ticket.ip.clone(),
                "fid" => ticket.fid.clone(),
                "family" => ticket.family_key().to_string(),
                "ip-rev" => ticket.ip_rev(),
                "failures" => ticket.failures.to_string(),
                "time" => py_float(ticket.time),
                "bantime" => ticket.bantime.to_string(),
                "bancount" => ticket.bancount.to_string(),
                "matches" => ticket.matches.join("\n"),
                "restored" => u8::from(ticket.restored).to_string(),
                "raw-ticket" => format!("{ticket:?}"),
                "ipmatches" | "ipjailmatches" => {
                    lazy(tag).unwrap_or_else(|| ticket.matches.join("\n"))
                }
                "ipfailures" | "ipjailfailures" => {
                    lazy(tag).unwrap_or_else(|| ticket.failures.to_string())
                }
                "ip-host" => lazy(tag).unwrap_or_default(),
                "jail.banned" | "jail.banned_total" | "jail.found" | "jail.found_total" => {
                    lazy(tag).unwrap_or_else(|| "0".to_string())
                }
                _ if crate::subst::constant(tag, &self.ctx.hostnames).is_some() => {
                    return Dynamic::Unknown;
                }
                _ => match lazy(tag) {
                    Some(v) => v,
                    None => return Dynamic::Unknown,
                },
            };
            Dynamic::Value(value)
        };
        let mut field = |tag: &str| ticket.field(tag).map(str::to_string);
        dynamic(command, &self.ctx.hostnames, &mut lookup, &mut field)
    }

    /// Runs a script, reports it, and says whether it succeeded; `detail` receives a
    /// description of the failure.
    fn run(&self, script: &ShellScript, what: &str, detail: &mut String) -> bool {
        match self.ctx.executor.run(script, self.timeout) {
            Ok(outcome) => {
                let ok = outcome.success();
                if !ok {
                    *detail = format!("command {}", outcome.exit);
                }
                self.emit(
                    if ok { Level::Debug } else { Level::Error },
                    EventKind::Command {
                        what: what.to_string(),
                        script: script.to_string(),
                        outcome,
                    },
                );
                ok
            }
            Err(e) => {
                *detail = e.to_string();
                self.emit(
                    Level::Error,
                    EventKind::Spawn {
                        what: what.to_string(),
                        error: e.to_string(),
                    },
                );
                false
            }
        }
    }

    fn executed_elsewhere(&self, op: &'static str, family: &str, command: &str) -> bool {
        self.executed
            .get(op)
            .is_some_and(|m| m.iter().any(|(f, c)| f != family && c == command))
    }

    fn set_executed(&mut self, op: &'static str, family: &str, command: Option<String>) {
        let per_family = self.executed.entry(op).or_default();
        match command {
            Some(c) => {
                per_family.insert(family.to_string(), c);
            }
            None => {
                if let Some(c) = per_family.remove(family) {
                    per_family.retain(|_, v| *v != c);
                }
            }
        }
    }

    /// `_executeOperation`: runs `op` for each family, skipping a command already run
    /// for another family, and calls `after` with each family's result.
    fn execute_operation(
        &mut self,
        op: &'static str,
        verb: &str,
        families: Vec<String>,
        after: fn(&mut CommandAction, &str, bool),
    ) -> Result<(), ActionError> {
        let mut ok = true;
        let mut detail = String::new();
        for family in families {
            let command = match self.operation(op, &family) {
                Ok(c) => c,
                Err(e) => {
                    ok = false;
                    detail = e.to_string();
                    continue;
                }
            };
            let mut ran_ok = true;
            if !command.trim().is_empty() && !self.executed_elsewhere(op, &family, &command) {
                let ticket = self.pseudo_ticket(&family);
                let script = self.dynamic_script(&command, &ticket);
                let what = format!("{verb} {family}").trim_end().to_string();
                ran_ok = self.run(&script, &what, &mut detail);
                ok &= ran_ok;
            }
            after(self, &family, ran_ok);
            self.set_executed(op, &family, ran_ok.then_some(command));
        }
        if ok {
            Ok(())
        } else {
            Err(ActionError::Failed {
                action: self.name.clone(),
                what: verb.to_string(),
                detail,
            })
        }
    }

    fn start_family(&mut self, family: Option<&str>, force: bool) -> Result<(), ActionError> {
        if self.start_on_demand {
            if !force {
                return Ok(());
            }
        } else if let Some(f) = family
            && !force
            && self.flag(f) != 0
        {
            return Ok(());
        }
        let families = match family {
            Some(f) => vec![f.to_string()],
            None => self.families.clone(),
        };
        let result = self.execute_operation(
            "actionstart",
            "start",
            families.clone(),
            |me, family, ok| {
                if ok {
                    me.set_executed("actionstop", family, None);
                    me.started.insert(family.to_string(), STARTED);
                }
            },
        );
        self.flush_stale(&families);
        result
    }

    /// After an unclean stop, empties what the firewall still holds for the families
    /// just started, once each (see [`ActionContext::flush_stale`]).
    fn flush_stale(&mut self, families: &[String]) {
        if !self.ctx.flush_stale || !self.has("actionflush") {
            return;
        }
        let stale: Vec<String> = families
            .iter()
            .filter(|f| {
                self.started
                    .get(f.as_str())
                    .is_some_and(|v| v & STARTED != 0)
            })
            .filter(|f| !self.stale_flushed.contains(f))
            .cloned()
            .collect();
        if stale.is_empty() {
            return;
        }
        self.stale_flushed.extend(stale.iter().cloned());
        self.emit(
            Level::Warning,
            EventKind::Note(
                "the previous server did not stop cleanly: flushing what it left in place"
                    .to_string(),
            ),
        );
        // A failure is logged by the operation; the bans are restored either way.
        let _ = self.execute_operation("actionflush", "flush", stale, |_, _, _| {});
    }

    fn stop_family(&mut self, family: Option<&str>) -> Result<(), ActionError> {
        let families = match family {
            None => {
                let list: Vec<String> = self
                    .started
                    .iter()
                    .filter(|(_, v)| **v != 0)
                    .map(|(k, _)| k.clone())
                    .collect();
                if list.is_empty() {
                    return Ok(());
                }
                self.started.clear();
                list
            }
            Some(f) => match self.started.get_mut(f) {
                Some(flags) => {
                    *flags = 0;
                    vec![f.to_string()]
                }
                None => return Ok(()),
            },
        };
        self.execute_operation("actionstop", "stop", families, |me, family, ok| {
            if ok {
                me.set_executed("actionstart", family, None);
            }
        })
    }

    /// The family under which a ticket's bans are tracked. fail2ban uses the ticket's
    /// family even for actions without family variants, whose start ran for no family;
    /// a restart after a failed check then skips the start (it "already ran" for the
    /// other key) and the action stays broken. One key for such actions avoids that.
    fn state_key(&self, ticket: &Ticket) -> &'static str {
        if self.families.len() == 1 && self.families[0].is_empty() {
            ""
        } else {
            ticket.family_key()
        }
    }

    fn ban_with(&mut self, command: &str, ticket: &Ticket) -> Result<(), ActionError> {
        let key = self.state_key(ticket);
        if self.start_on_demand && self.flag(key) == 0 {
            self.start_family(Some(key), true)?;
        }
        self.process(command, ticket)?;
        let flags = self.flag(key) | STARTED | HOLDS_BANS;
        self.started.insert(key.to_string(), flags);
        Ok(())
    }

    /// `_processCmd`: runs a ticket command; after a failure, checks (and repairs) the
    /// environment and tries once more.
    fn process(&mut self, command: &str, ticket: &Ticket) -> Result<(), ActionError> {
        let what = format!("{} {}", command.trim_start_matches("action"), ticket.ip);
        if !self.has(command) {
            return Ok(());
        }
        let family = ticket.family_key();
        let key = self.state_key(ticket);
        let mut detail = String::new();
        for attempt in 0..2 {
            if attempt > 0 && self.has("actioncheck") {
                let repair = if command == "actionunban" {
                    Repair::OnlyIfRepairOnUnban
                } else {
                    Repair::Allowed
                };
                if !self.invariant_check(key, repair, command != "actionunban") {
                    return Err(ActionError::Failed {
                        action: self.name.clone(),
                        what,
                        detail: format!("{detail}; actioncheck failed"),
                    });
                }
            }
            let resolved = self.static_command(command, family)?;
            let script = self.dynamic_script(&resolved, ticket);
            if self.run(&script, &what, &mut detail) {
                return Ok(());
            }
        }
        Err(ActionError::Failed {
            action: self.name.clone(),
            what,
            detail,
        })
    }

    /// `_invariantCheck`: true when `actioncheck` passes, at once or after a repair.
    fn invariant_check(&mut self, family: &str, repair: Repair, force_start: bool) -> bool {
        // An unban must not start a family that never ran (a broken inet6 must not
        // restart inet4).
        if !force_start && !self.started.contains_key(family) {
            return true;
        }
        let mut detail = String::new();
        let check = match self.operation("actioncheck", family) {
            Ok(c) => c,
            Err(e) => {
                self.emit(
                    Level::Error,
                    EventKind::Failed {
                        what: "check".to_string(),
                        error: e.to_string(),
                    },
                );
                return false;
            }
        };
        if check.trim().is_empty() {
            return true;
        }
        let what = format!("check {family}").trim_end().to_string();
        let check_script = self.dynamic_script(&check, &self.pseudo_ticket(family));
        if self.run(&check_script, &what, &mut detail) {
            return true;
        }
        let repairing = repair == Repair::Allowed || self.repair_on_unban;
        self.emit(
            Level::Error,
            EventKind::InvariantFailed {
                family: family.to_string(),
                repairing,
            },
        );
        if !repairing {
            return false;
        }
        // Tickets banned before this point may be missing from the firewall now: a
        // new epoch lets the server re-ban them.
        self.ban_epoch += 1;
        let restore_failed = |me: &CommandAction| {
            me.emit(
                Level::Critical,
                EventKind::RestoreFailed {
                    family: family.to_string(),
                },
            );
            false
        };
        match self.operation("actionrepair", family) {
            Ok(repair) if !repair.trim().is_empty() => {
                let script = self.dynamic_script(&repair, &self.pseudo_ticket(family));
                let what = format!("repair {family}").trim_end().to_string();
                if !self.run(&script, &what, &mut detail) {
                    self.started.insert(family.to_string(), 0);
                    return restore_failed(self);
                }
                self.started.insert(family.to_string(), STARTED);
            }
            Ok(_) => {
                let _ = self.stop_family(Some(family));
                let force = force_start || !self.start_on_demand;
                if self.start_family(Some(family), force).is_err() {
                    return restore_failed(self);
                }
            }
            Err(_) => return restore_failed(self),
        }
        if self.flag(family) != 0 && !self.run(&check_script, &what, &mut detail) {
            return restore_failed(self);
        }
        true
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds = rampart_dates::str2seconds(text).map_err(|e| e.to_string())?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err("not a positive number of seconds".to_string());
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

impl JailAction for CommandAction {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&mut self) -> Result<(), ActionError> {
        self.start_family(None, false)
    }

    fn stop(&mut self) -> Result<(), ActionError> {
        self.stop_family(None)
    }

    fn ban(&mut self, ticket: &Ticket) -> Result<(), ActionError> {
        self.ban_with("actionban", ticket)
    }

    fn reban(&mut self, ticket: &Ticket) -> Result<(), ActionError> {
        if self.has("actionreban") {
            self.ban_with("actionreban", ticket)
        } else {
            self.ban_with("actionban", ticket)
        }
    }

    fn unban(&mut self, ticket: &Ticket) -> Result<(), ActionError> {
        if self.flag(self.state_key(ticket)) & HOLDS_BANS != 0 {
            self.process("actionunban", ticket)?;
        }
        Ok(())
    }

    fn prolongable(&self) -> bool {
        self.has("actionprolong")
    }

    fn prolong(&mut self, ticket: &Ticket) -> Result<(), ActionError> {
        if self.prolongable() {
            self.process("actionprolong", ticket)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<bool, ActionError> {
        if !self.has("actionflush") {
            return Ok(false);
        }
        let families: Vec<String> = self
            .started
            .iter()
            .filter(|(_, v)| **v & (STARTED | HOLDS_BANS) == STARTED | HOLDS_BANS)
            .map(|(k, _)| k.clone())
            .collect();
        if families.is_empty() {
            return Ok(true);
        }
        self.execute_operation("actionflush", "flush", families, |me, family, ok| {
            if ok && let Some(flags) = me.started.get_mut(family) {
                *flags &= !HOLDS_BANS;
            }
        })?;
        Ok(true)
    }

    fn reload(&mut self) -> Result<(), ActionError> {
        let families: Vec<String> = self
            .started
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|(k, _)| k.clone())
            .collect();
        self.execute_operation("actionreload", "reload", families, |_, _, _| {})
    }

    fn consistency_check(&mut self, repair: Repair) -> bool {
        if !self.has("actioncheck") {
            return true;
        }
        let mut ok = true;
        let families: Vec<(String, u8)> =
            self.started.iter().map(|(k, v)| (k.clone(), *v)).collect();
        for (family, flags) in families {
            if flags != 0 && !self.invariant_check(&family, repair, true) {
                self.started.insert(family.clone(), 0);
                self.set_executed("actionstart", &family, None);
                ok = false;
            }
        }
        ok
    }

    fn skips_restored(&self) -> bool {
        self.norestored
    }

    fn ban_epoch(&self) -> u64 {
        self.ban_epoch
    }
}
