//! One running jail: its reading side (log source → filter → failure counting → bans),
//! run in turns by the reactor, its ban queue, and the state the control socket reads.
//!
//! The [`Worker`] owns the log source and the filter; everything the control socket may
//! read or change (the jail's ban list and counters) sits behind one mutex, held only
//! for the bookkeeping of one turn or one command, never while an action runs: the
//! actions run on the ban queue's own worker thread.

use std::net::IpAddr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use rampart_action::{
    ActionContext, BanQueue, CommandAction, Family, IDLE_END, JailAction, QueueStarter,
};
use rampart_config::Value as ConfigValue;
use rampart_filter::{AddrHint, Failure, FailureId, Filter, FilterSpec, Mode, UseDns};
use rampart_jail::{BanOutcome, IgnoreCheck, JailConfig, PriorBans, Ticket};
use rampart_journal::{Follow, JournalSource};
use rampart_source::{
    FileSource, FileSourceOptions, LogPath, LogSource, Position, SavedPosition, Wake, Waker,
    parse_backend,
};
use rampart_store::{BanRecord, RestoreQuery};

use super::Shared;
use super::log::{DEBUG, ERROR, INFO, NOTICE, WARNING};
use super::settings::{Change, FilterSettings, RuntimeSettings};
use crate::engine::{LineFilter, SystemResolver, wall_clock};
use crate::logread::Encoding;

/// The longest a jail goes without a turn (looking at its state) when nothing happens.
const IDLE_WAIT: f64 = 30.0;

/// How long a jail keeps its filter's engines (automata, JIT code, caches) after its
/// last line. Most jails of a server see a line now and then: their engines, built at
/// the first line, go back after this, and the next line builds them again in a few
/// milliseconds. A jail under attack keeps them.
const ENGINES_KEPT: Duration = Duration::from_secs(30);

/// What the control socket sees of a jail.
#[derive(Debug)]
pub struct JailState {
    pub jail: rampart_jail::Jail,
    pub queue: Option<BanQueue>,
    /// Files currently followed.
    pub files: Vec<String>,
    /// The journal matches of a `backend = systemd` jail (groups of `FIELD=value`
    /// terms, alternatives of each other); `None` for a file jail.
    pub journal_matches: Option<Vec<Vec<String>>>,
    pub logpaths: Vec<String>,
    pub actions: Vec<String>,
    /// The `bantime.*` options as configured, without the prefix (`get JAIL bantime.X`).
    pub ban_time_extra: Vec<(String, String)>,
    /// Each action's properties as configured (`get JAIL action ACT PROP`).
    pub action_properties: Vec<(String, Vec<(String, String)>)>,
    pub lines_total: u64,
    pub undecodable: u64,
    /// Filter, encoding and idleness as the socket may change them.
    pub settings: RuntimeSettings,
    random: u64,
}

/// A jail's handle, kept by the server.
pub struct RunningJail {
    pub name: String,
    pub state: Arc<Mutex<JailState>>,
    pub use_increment: bool,
    /// The jail's id in the reactor, which reads its logs.
    reader: u64,
    waker: Waker,
}

impl std::fmt::Debug for RunningJail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningJail")
            .field("name", &self.name)
            .finish()
    }
}

fn text(options: &indexmap::IndexMap<String, ConfigValue>, key: &str) -> Option<String> {
    options.get(key).map(ConfigValue::to_py_str)
}

/// The host's own addresses, for `ignoreself`.
/// The machine's own addresses (`ignoreself`). Looked up once for a start or reload
/// of all jails rather than once per jail: the lookup asks the resolver, which is
/// slow or hangs where the network is down.
fn own_addresses() -> Vec<IpAddr> {
    static RECENT: Mutex<Option<(std::time::Instant, Vec<IpAddr>)>> = Mutex::new(None);
    let mut recent = RECENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((at, addrs)) = recent.as_ref()
        && at.elapsed() < Duration::from_secs(60)
    {
        return addrs.clone();
    }
    let addrs = look_up_own_addresses();
    *recent = Some((std::time::Instant::now(), addrs.clone()));
    addrs
}

fn look_up_own_addresses() -> Vec<IpAddr> {
    let mut out = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        use std::net::ToSocketAddrs;
        if let Ok(addrs) = (name.trim(), 0).to_socket_addrs() {
            out.extend(addrs.map(|a| a.ip()));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Resolves `ignoreip` names with the system resolver.
struct IgnoreResolver;

impl rampart_jail::Resolver for IgnoreResolver {
    fn resolve(&mut self, name: &str, _now: f64) -> Vec<IpAddr> {
        use std::net::ToSocketAddrs;
        (name, 0)
            .to_socket_addrs()
            .map(|a| a.map(|s| s.ip()).collect())
            .unwrap_or_default()
    }
}

/// The action ticket of a jail ticket.
pub fn action_ticket(ticket: &Ticket, jail_ban_time: i64) -> rampart_action::Ticket {
    let ip = ticket
        .ip()
        .map_or_else(|| ticket.id.to_string(), |ip| ip.to_string());
    let mut data: Vec<(String, String)> = ticket
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !ticket.users.is_empty() && !ticket.data.contains_key("user") {
        data.push(("user".into(), ticket.users.join(", ")));
    }
    #[allow(clippy::cast_possible_truncation)]
    let bantime = ticket
        .ban_time
        .map_or(jail_ban_time, |t| if t < 0.0 { -1 } else { t as i64 });
    rampart_action::Ticket {
        family: Family::of(&ip),
        ip,
        fid: ticket.id.to_string(),
        failures: u64::from(ticket.failures),
        time: ticket.time,
        bantime,
        bancount: u64::from(ticket.ban_count.max(1)),
        restored: ticket.restored,
        matches: ticket.matches.clone(),
        data,
    }
}

fn lock(state: &Mutex<JailState>) -> MutexGuard<'_, JailState> {
    // A panic while holding the lock leaves consistent-enough data: the ban list is
    // only ever changed by whole operations.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A log source and, for the journal, its matches.
type BuiltSource = (Box<dyn LogSource>, Option<Vec<Vec<String>>>);

/// The jail's log source, resuming where the store says: files (`logpath` with the
/// file backends) or the systemd journal (`backend = systemd[...]`). The skip of what
/// is older than findtime (fail2ban's seek to the start time) comes with the jail's
/// first turn in the reactor, off the start-up's path.
fn build_source(
    config: &rampart_config::Jail,
    filter: &rampart_config::ResolvedFilter,
    find_time: f64,
    shared: &Arc<Shared>,
) -> Result<BuiltSource> {
    let name = config.name.as_str();
    if crate::journal::is_journal_backend(&config.backend) {
        let spec = crate::journal::spec_for(&config.backend, &filter.journalmatch)
            .with_context(|| format!("jail {name}"))?;
        if spec.matches.is_empty() {
            shared.logger.log(
                NOTICE,
                "fail2ban.filtersystemd",
                &format!(
                    "[{name}] Jail started without 'journalmatch' set: every journal entry \
                     is matched against the filter, which costs more than needed"
                ),
            );
        } else {
            shared.logger.log(
                INFO,
                "fail2ban.filtersystemd",
                &format!(
                    "[{name}] Added journal match for: {:?}",
                    spec.describe_matches()
                ),
            );
        }
        let saved = shared.store.lock().ok().and_then(|store| {
            store
                .as_ref()?
                .journal_cursor(name, rampart_journal::JOURNAL_NAME)
                .ok()?
        });
        let start = crate::journal::start_at(saved.as_ref(), wall_clock(), find_time);
        let matches = spec.matches.clone();
        let source = JournalSource::new(spec, start, Follow::Live)
            .with_context(|| format!("journal source of jail {name}"))?;
        return Ok((Box::new(source), Some(matches)));
    }
    let logpaths: Vec<LogPath> = config
        .logpaths
        .iter()
        .map(|lp| {
            LogPath::parse(&format!("{} {}", lp.path, lp.position))
                .or_else(|_| LogPath::parse(&lp.path))
        })
        .collect::<Result<_, _>>()
        .with_context(|| format!("logpath of jail {name}"))?;
    let backend_word = config
        .backend
        .split('[')
        .next()
        .unwrap_or("auto")
        .trim()
        .to_string();
    let backend = parse_backend(&backend_word).with_context(|| format!("jail {name}"))?;
    let source_options = FileSourceOptions {
        backend,
        ..FileSourceOptions::default()
    };
    let store = Arc::clone(&shared.store);
    let mut saved = |path: &Path| -> Option<SavedPosition> {
        let store = store.lock().ok()?;
        let pos = store
            .as_ref()?
            .log_position(name, &path.to_string_lossy())
            .ok()??;
        Some(SavedPosition {
            first_line_hash: pos.first_line_hash,
            offset: u64::try_from(pos.position).unwrap_or(0),
        })
    };
    let source = FileSource::new(&logpaths, source_options, &mut saved)
        .with_context(|| format!("log source of jail {name}"))?;
    // On a journal-only machine (Debian 12 and later) a file jail finds nothing: say once
    // what would work.
    let any_file = logpaths
        .iter()
        .any(|lp| glob::glob(&lp.pattern).is_ok_and(|mut paths| paths.any(|p| p.is_ok())));
    if !any_file {
        let dirs = crate::journal::journal_dirs();
        let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
        if let Some(dir) = crate::journal::journal_with_files(&dirs) {
            shared.logger.log(
                WARNING,
                "fail2ban.jail",
                &format!(
                    "[{name}] none of its log files exist, but a systemd journal does ({}): \
                     set `backend = systemd` for this jail",
                    dir.display()
                ),
            );
        }
    }
    Ok((Box::new(source), None))
}

impl RunningJail {
    /// Builds and starts a jail from its configuration; restores its bans from the store.
    pub fn start(config: &rampart_config::Jail, shared: &Arc<Shared>) -> Result<RunningJail> {
        let name = config.name.clone();
        let filter_conf = config
            .filter
            .as_ref()
            .ok_or_else(|| anyhow!("jail {name} has no filter"))?;
        let options: Vec<(String, String)> = config
            .options
            .iter()
            .map(|(k, v)| (k.clone(), v.to_py_str()))
            .collect();
        let jail_config = JailConfig::from_options(
            options.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &own_addresses(),
        )
        .with_context(|| format!("jail {name}"))?;
        let use_increment = jail_config.increment.is_some();
        let find_time = jail_config.find_time;
        let jail_ban_time = jail_config.ban_time;
        let max_ban_time = jail_config.max_ban_time();

        // The filter, as the daemon runs it.
        let use_dns = text(&config.options, "usedns")
            .or_else(|| filter_conf.usedns.clone())
            .map_or(UseDns::Warn, |v| UseDns::parse(&v));
        let spec = FilterSpec {
            prefregex: filter_conf.prefregex.clone(),
            failregex: filter_conf.failregex.clone(),
            ignoreregex: filter_conf.ignoreregex.clone(),
            maxlines: filter_conf.maxlines.unwrap_or(1).max(1),
            use_dns,
        };
        let mode = Mode {
            check_all: false,
            raw_hosts: use_dns == UseDns::Raw,
            ignore_pending: true,
            check_find_time: true,
            find_time,
        };
        let filter = Filter::new(&spec, mode).with_context(|| format!("filter of jail {name}"))?;
        let logtimezone = text(&config.options, "logtimezone").filter(|s| !s.is_empty());
        let filter_settings = FilterSettings {
            spec: spec.clone(),
            datepattern: filter_conf.datepattern.clone(),
            logtimezone: logtimezone.clone(),
        };
        let mut engine = LineFilter::new(
            filter,
            filter_conf.datepattern.as_deref(),
            logtimezone.as_deref(),
        )?;
        let encoding = text(&config.options, "logencoding")
            .and_then(|e| Encoding::parse(&e))
            .unwrap_or(Encoding::Utf8);

        // The actions and their queue.
        let mut ctx = ActionContext::new(name.clone());
        ctx.bantime = jail_ban_time;
        ctx.flush_stale = shared.unclean_start.load(Ordering::SeqCst);
        let logger = Arc::clone(&shared.logger);
        ctx.events = Arc::new(move |event: rampart_action::Event| {
            let level = match event.level {
                rampart_action::Level::Error => ERROR,
                rampart_action::Level::Warning => WARNING,
                rampart_action::Level::Info => INFO,
                _ => DEBUG,
            };
            logger.log(
                level,
                "fail2ban.actions",
                &format!("[{}] {event}", event.jail),
            );
        });
        let mut actions: Vec<Box<dyn JailAction>> = Vec::new();
        let mut action_names = Vec::new();
        for action in &config.actions {
            match CommandAction::from_config(action, ctx.clone()) {
                Ok(a) => {
                    action_names.push(action.name.clone());
                    actions.push(Box::new(a));
                }
                Err(e) => shared.logger.log(
                    ERROR,
                    "fail2ban.actions",
                    &format!("[{name}] action {} is skipped: {e}", action.name),
                ),
            }
        }
        // The actions start once the jail reads its log (see `start_actions`).
        let queue = BanQueue::deferred(name.clone(), actions, ctx.events.clone(), IDLE_END);

        let (source, journal_matches) = build_source(config, filter_conf, find_time, shared)?;
        let waker = source.waker();

        let seed = (wall_clock().to_bits() ^ u64::from(std::process::id())) | 1;
        let state = Arc::new(Mutex::new(JailState {
            jail: rampart_jail::Jail::new(jail_config),
            queue: Some(queue),
            files: Vec::new(),
            journal_matches,
            logpaths: config.logpaths.iter().map(|l| l.path.clone()).collect(),
            ban_time_extra: options
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("bantime.")?.to_string(), v.clone())))
                .collect(),
            action_properties: config
                .actions
                .iter()
                .filter(|a| action_names.contains(&a.name))
                .map(|a| {
                    let props = a
                        .properties
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_py_str()))
                        .collect();
                    (a.name.clone(), props)
                })
                .collect(),
            actions: action_names,
            lines_total: 0,
            undecodable: 0,
            settings: RuntimeSettings::new(filter_settings, encoding),
            random: seed,
        }));

        // Bans that outlive a restart.
        if let Ok(mut store) = shared.store.lock()
            && let Some(store) = store.as_mut()
        {
            if let Err(e) = store.add_jail(&name) {
                shared
                    .logger
                    .log(ERROR, "fail2ban.database", &format!("{e}"));
            }
            let now = wall_clock();
            #[allow(clippy::cast_possible_truncation)]
            let query = RestoreQuery {
                now: now as i64,
                window: (!use_increment).then_some(jail_ban_time),
                max_ban_time,
                unknown_ban_time: jail_ban_time,
            };
            match store.current_bans(&name, &query) {
                Ok(bans) => {
                    let mut st = lock(&state);
                    for ban in bans {
                        let id = FailureId::parse(&ban.ip, AddrHint::Any);
                        #[allow(clippy::cast_precision_loss)]
                        let ticket = Ticket::from_stored(
                            id,
                            ban.time_of_ban as f64,
                            ban.ban_time as f64,
                            u32::try_from(ban.ban_count).unwrap_or(u32::MAX),
                            &ban.data,
                        );
                        let Some(ticket) = st.jail.restore(ticket, now) else {
                            continue;
                        };
                        if let BanOutcome::Banned { ticket, .. } =
                            st.jail.ban(ticket, None, now, || 0.5)
                        {
                            shared.logger.log(
                                NOTICE,
                                "fail2ban.actions",
                                &format!("[{name}] Restore Ban {}", ticket.id),
                            );
                            if let Some(q) = &st.queue {
                                let _ = q.ban(action_ticket(&ticket, jail_ban_time));
                            }
                        }
                    }
                }
                Err(e) => shared.logger.log(
                    ERROR,
                    "fail2ban.database",
                    &format!("[{name}] cannot restore bans: {e}"),
                ),
            }
        }

        // A journal that gives this jail nothing (a journalmatch for a unit that never
        // logs, an empty journal) is worth one line, not silence.
        let quiet_journal_since = lock(&state).journal_matches.is_some().then(Instant::now);
        // The first read catches up with what the logs already hold: as in fail2ban,
        // lines older than findtime are dropped then, and only afterwards do far-off
        // dates count as "now".
        engine.filter.set_in_operation(false);
        let worker = Worker {
            name: name.clone(),
            engine,
            encoding,
            source,
            state: Arc::clone(&state),
            shared: Arc::clone(shared),
            use_increment,
            resolver: SystemResolver::default(),
            ignore_resolver: rampart_jail::CachingResolver::new(IgnoreResolver, 300.0),
            dirty: false,
            caught_up: false,
            dates: crate::journal::DateTexts::default(),
            quiet_journal_since,
            idle: false,
            next_turn: Instant::now(),
            engines_used: None,
            skip_before: Some(wall_clock() - find_time),
        };
        let reader = shared.reactor.add(worker);
        shared
            .logger
            .log(INFO, "fail2ban.jail", &format!("Jail '{name}' started"));
        Ok(RunningJail {
            name,
            state,
            use_increment,
            reader,
            waker,
        })
    }

    /// What starts the jail's actions (unless a ban has started them already).
    pub fn action_starter(&self) -> Option<QueueStarter> {
        lock(&self.state).queue.as_ref().map(BanQueue::starter)
    }

    /// Makes the reactor give the jail a turn now (to take its pending changes).
    pub fn wake(&self) {
        self.waker.wake();
    }

    /// Takes the jail out of the reactor (positions saved), flushes the bans from the
    /// firewall (they stay in the store) and stops the actions.
    pub fn stop(self, shared: &Shared) {
        shared.reactor.remove(self.reader);
        let (queue, banned, ban_time) = {
            let mut st = lock(&self.state);
            let ban_time = st.jail.config().ban_time;
            let banned: Vec<Ticket> = st.jail.bans_mut().unban_all();
            (st.queue.take(), banned, ban_time)
        };
        if let Some(q) = queue {
            q.stop(banned.iter().map(|t| action_ticket(t, ban_time)).collect());
        }
        shared.logger.log(
            INFO,
            "fail2ban.jail",
            &format!("Jail '{}' stopped", self.name),
        );
    }
}

/// Bans `ticket` now (a failure count reached, or `set JAIL banip`): the ban list, the
/// store, the log and the action queue.
pub fn ban_ticket(
    name: &str,
    st: &mut JailState,
    shared: &Shared,
    ticket: Ticket,
    use_increment: bool,
    now: f64,
) -> bool {
    let overall = st
        .jail
        .config()
        .increment
        .as_ref()
        .is_some_and(rampart_jail::Increment::overall_jails);
    let prior = if use_increment {
        prior_bans(shared, name, &ticket, overall)
    } else {
        None
    };
    st.random ^= st.random << 13;
    st.random ^= st.random >> 7;
    st.random ^= st.random << 17;
    #[allow(clippy::cast_precision_loss)]
    let random = (st.random >> 11) as f64 / (1u64 << 53) as f64;
    let jail_ban_time = st.jail.config().ban_time;
    let id = ticket.id.clone();
    match st.jail.ban(ticket, prior, now, || random) {
        BanOutcome::Banned {
            ticket,
            increased,
            record,
            formula_error,
        } => {
            if let Some(e) = formula_error {
                shared.logger.log(
                    ERROR,
                    "fail2ban.observer",
                    &format!("[{name}] bantime.formula failed: {e}"),
                );
            }
            if let Some((_, new)) = increased {
                shared.logger.log(
                    NOTICE,
                    "fail2ban.observer",
                    &format!("[{name}] Increase Ban {} ({new:.0} s)", ticket.id),
                );
            }
            shared.logger.log(
                NOTICE,
                "fail2ban.actions",
                &format!("[{name}] Ban {}", ticket.id),
            );
            if record {
                store_ban(shared, name, &ticket, jail_ban_time);
            }
            if let Some(q) = &st.queue
                && q.ban(action_ticket(&ticket, jail_ban_time)).is_err()
            {
                shared.logger.log(
                    ERROR,
                    "fail2ban.actions",
                    &format!(
                        "[{name}] the actions have stopped; {} not banned",
                        ticket.id
                    ),
                );
            }
            true
        }
        BanOutcome::AlreadyBanned { .. } => {
            shared.logger.log(
                NOTICE,
                "fail2ban.actions",
                &format!("[{name}] {id} already banned"),
            );
            false
        }
        BanOutcome::Expired => false,
    }
}

/// What the store knows of `ticket`'s earlier bans: in this jail, or in every jail
/// (`bantime.overalljails`, for the ban time only; counting always uses this jail's).
fn prior_bans(shared: &Shared, name: &str, ticket: &Ticket, overall: bool) -> Option<PriorBans> {
    let store = shared.store.lock().ok()?;
    let store = store.as_ref()?;
    let stats = store
        .ban_stats(&ticket.id.to_string(), (!overall).then_some(name))
        .ok()??;
    #[allow(clippy::cast_precision_loss)]
    Some(PriorBans {
        count: u32::try_from(stats.ban_count.max(0)).unwrap_or(u32::MAX),
        last_ban: stats.last_ban as f64,
    })
}

fn store_ban(shared: &Shared, name: &str, ticket: &Ticket, jail_ban_time: i64) {
    let Ok(mut store) = shared.store.lock() else {
        return;
    };
    let Some(store) = store.as_mut() else {
        return;
    };
    #[allow(clippy::cast_possible_truncation)]
    let record = BanRecord {
        jail: name.to_string(),
        ip: ticket.id.to_string(),
        time_of_ban: ticket.time.round() as i64,
        ban_time: ticket.ban_time.map_or(jail_ban_time, |t| t as i64),
        ban_count: i64::from(ticket.ban_count.max(1)),
        data: ticket.data_json(),
    };
    if let Err(e) = store.add_ban(&record) {
        shared.logger.log(
            ERROR,
            "fail2ban.database",
            &format!("[{name}] cannot record the ban of {}: {e}", ticket.id),
        );
    }
}

/// Unbans `ticket` (its time is up, or a command said so): the store, the log, the
/// queue. The caller has already taken it off the ban list.
pub fn unban_ticket(name: &str, st: &JailState, shared: &Shared, ticket: &Ticket) {
    shared.logger.log(
        NOTICE,
        "fail2ban.actions",
        &format!("[{name}] Unban {}", ticket.id),
    );
    if let Ok(mut store) = shared.store.lock()
        && let Some(store) = store.as_mut()
        && let Err(e) = store.remove_ban(name, &ticket.id.to_string())
    {
        shared
            .logger
            .log(ERROR, "fail2ban.database", &format!("[{name}] {e}"));
    }
    if let Some(q) = &st.queue {
        let _ = q.unban(action_ticket(ticket, st.jail.config().ban_time));
    }
}

/// How long a journal jail may read nothing before it says so (once).
const QUIET_JOURNAL_NOTICE: Duration = Duration::from_secs(10);

/// Lines one turn of a jail reads at most before the reactor moves on to the others.
pub const TURN_LINES: u64 = 4096;
/// Time one turn of a jail reads at most (checked every [`TURN_CHECK`] lines).
pub const TURN_TIME: Duration = Duration::from_millis(5);
const TURN_CHECK: u64 = 64;

/// A jail's reading side: its log source and filter, driven by the reactor one turn at
/// a time.
pub struct Worker {
    name: String,
    engine: LineFilter,
    encoding: Encoding,
    source: Box<dyn LogSource>,
    state: Arc<Mutex<JailState>>,
    shared: Arc<Shared>,
    use_increment: bool,
    resolver: SystemResolver,
    ignore_resolver: rampart_jail::CachingResolver<IgnoreResolver>,
    /// Lines were consumed since the positions were last saved.
    dirty: bool,
    /// The first complete read (the catch-up) is done.
    caught_up: bool,
    dates: crate::journal::DateTexts,
    quiet_journal_since: Option<Instant>,
    /// `set JAIL idle on` as of the last turn: the source is not read.
    idle: bool,
    /// When the jail needs a turn whatever its source says: its next unban, the quiet
    /// journal notice, or a look at its state every [`IDLE_WAIT`].
    next_turn: Instant,
    /// The last line read while the filter's engines may be built; `None` once they
    /// have been released (see [`ENGINES_KEPT`]).
    engines_used: Option<Instant>,
    /// Until the first read: lines older than this are skipped without being read
    /// (found by bisection with the jail's own date detection), as fail2ban seeks to
    /// now - findtime in a log read from its beginning or a saved position.
    skip_before: Option<f64>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// See [`Worker::next_turn`](Worker#structfield.next_turn); the release of the
    /// engines is due then too.
    pub fn next_turn(&self) -> Instant {
        self.engines_used
            .map_or(self.next_turn, |t| self.next_turn.min(t + ENGINES_KEPT))
    }

    /// Releases the filter's engines once the jail has been quiet for [`ENGINES_KEPT`];
    /// true when it did (the caller gives the freed memory back to the system).
    pub fn release_engines_if_quiet(&mut self, now: Instant) -> bool {
        match self.engines_used {
            Some(at) if now >= at + ENGINES_KEPT => {
                self.engine.release_engines();
                self.engines_used = None;
                true
            }
            _ => false,
        }
    }

    /// When the source must be polled whatever its descriptors say; none while idle
    /// (its news wait until the jail reads again).
    pub fn source_deadline(&self) -> Option<Instant> {
        if self.idle {
            None
        } else {
            self.source.poll_deadline()
        }
    }

    pub fn source_fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        self.source.poll_fds()
    }

    /// Polls the source (its descriptors were readable, or its deadline came): whether
    /// a turn is due. A failure is logged; the caller leaves the source alone a while.
    pub fn poll_source(&mut self) -> Result<bool, ()> {
        match self.source.poll() {
            Ok(Wake::Woken) => Ok(true),
            Ok(Wake::Ready) => Ok(!self.idle),
            Ok(Wake::Timeout) => Ok(false),
            Err(e) => {
                self.shared
                    .logger
                    .log(ERROR, "fail2ban.filter", &format!("[{}] {e}", self.name));
                Err(())
            }
        }
    }

    /// The jail leaves the reactor.
    pub fn finish(&mut self) {
        self.save_positions();
    }

    /// One turn: the changes queued by the control socket, then (unless idle) the lines
    /// available, up to [`TURN_LINES`] or [`TURN_TIME`], their failures and bans, the
    /// unbans that are due, the positions. True when the read stopped at that bound
    /// with lines left: the reactor comes back once the other jails had their turn.
    pub fn turn(&mut self) -> bool {
        let more = if self.apply_changes() {
            false
        } else {
            self.read()
        };
        let now = wall_clock();
        {
            let state = Arc::clone(&self.state);
            let mut st = lock(&state);
            for ticket in st.jail.tick(now) {
                unban_ticket(&self.name, &st, &self.shared, &ticket);
            }
            let next = st.jail.next_unban_at();
            // With no unban due the jail waits long: log changes and commands reach it
            // through its source's descriptors, so that ninety idle jails cost nothing.
            let wait = next.map_or(IDLE_WAIT, |t| (t - wall_clock()).clamp(0.01, IDLE_WAIT));
            let mut at = Instant::now() + Duration::from_secs_f64(wait);
            if let Some(since) = self.quiet_journal_since {
                at = at.min(since + QUIET_JOURNAL_NOTICE);
            }
            self.next_turn = at;
        }
        more
    }

    /// Reads what the source has (bounded), counts failures, saves positions.
    fn read(&mut self) -> bool {
        let mut failures: Vec<Failure> = Vec::new();
        // Each line's failures, in room kept for the whole turn.
        let mut found: Vec<Failure> = Vec::new();
        let mut lines = 0u64;
        let mut undecodable = 0u64;
        let mut more = false;
        let started = Instant::now();
        let engine = &mut self.engine;
        let encoding = self.encoding;
        if let Some(not_before) = self.skip_before.take() {
            self.source.skip_older_than(not_before, &mut |bytes| {
                let (line, _) = encoding.decode(bytes);
                engine.line_time(&line, wall_clock())
            });
        }
        let resolver = &self.resolver;
        let dates = &mut self.dates;
        let read = self.source.read_available(&mut |line| {
            let (text, replaced) = encoding.decode(line.bytes);
            undecodable += u64::from(replaced);
            lines += 1;
            let now = wall_clock();
            match line.time {
                // A journal entry: its own time, no date in the text.
                Some(time) => found.extend(engine.filter.process_dated_line(
                    dates.text(engine, time),
                    &text,
                    crate::journal::epoch(time),
                    now,
                    resolver,
                )),
                None => engine.process_into(&text, now, resolver, &mut found),
            }
            failures.extend(found.drain(..).filter(|f| f.id.is_some() && !f.is_nofail()));
            // Bounded turns keep one flooded log from starving the other jails.
            if lines >= TURN_LINES
                || (lines.is_multiple_of(TURN_CHECK) && started.elapsed() >= TURN_TIME)
            {
                more = true;
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        match read {
            Ok(stats) => {
                for notice in stats.notices {
                    self.shared.logger.log(
                        INFO,
                        "fail2ban.filter",
                        &format!("[{}] {notice}", self.name),
                    );
                }
                self.dirty |= stats.lines > 0;
            }
            Err(e) => self.shared.logger.log(
                ERROR,
                "fail2ban.filter",
                &format!("[{}] reading the logs failed: {e}", self.name),
            ),
        }
        // The catch-up is one read in fail2ban: it is over when a turn read everything.
        let caught_up_now = !self.caught_up && !more;
        if caught_up_now {
            self.caught_up = true;
            self.engine.filter.set_in_operation(true);
        }
        if let Some(since) = self.quiet_journal_since {
            if lines > 0 {
                self.quiet_journal_since = None;
            } else if since.elapsed() >= QUIET_JOURNAL_NOTICE {
                self.quiet_journal_since = None;
                self.shared.logger.log(
                    WARNING,
                    "fail2ban.filtersystemd",
                    &format!(
                        "[{}] no journal entry has matched this jail's journalmatch \
                         since it started ({} s)",
                        self.name,
                        QUIET_JOURNAL_NOTICE.as_secs()
                    ),
                );
            }
        }
        for notice in self.engine.filter.take_notices() {
            let (level, text) = describe(&notice);
            self.shared
                .logger
                .log(level, "fail2ban.filter", &format!("[{}] {text}", self.name));
        }
        if lines > 0 {
            // What the catch-up built goes right after it: every jail reads its old lines
            // at start, and most then stay quiet; a jail whose log goes on builds its
            // engines again with its next line.
            let now = Instant::now();
            self.engines_used = Some(if caught_up_now {
                now.checked_sub(ENGINES_KEPT).unwrap_or(now)
            } else {
                now
            });
        }
        let now = wall_clock();
        {
            let state = Arc::clone(&self.state);
            let mut st = lock(&state);
            st.lines_total += lines;
            st.undecodable += undecodable;
            for failure in &failures {
                self.on_failure(&mut st, failure, now);
            }
            st.files = self
                .source
                .positions()
                .iter()
                .filter_map(|p| match p {
                    Position::File(f) => Some(f.path.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect();
        }
        // After every read that consumed lines, as fail2ban does, so that a crash
        // re-reads nothing. A read takes what is there (up to a turn's bound), so under
        // a flood this is one small write per batch, not per line.
        if self.dirty {
            self.save_positions();
            self.dirty = false;
        }
        more
    }

    fn on_failure(&mut self, st: &mut JailState, failure: &Failure, now: f64) {
        let Some(ticket) = Ticket::from_failure(failure, now) else {
            return;
        };
        match st
            .jail
            .check_ignore(&ticket.id, now, &mut self.ignore_resolver)
        {
            IgnoreCheck::Ignored(reason) => {
                self.shared.logger.log(
                    INFO,
                    "fail2ban.filter",
                    &format!(
                        "[{}] Ignore {} by {}",
                        self.name,
                        ticket.id,
                        reason.source()
                    ),
                );
                return;
            }
            IgnoreCheck::AskCommand => {
                if let Some(cmd) = st.jail.config().ignore.command()
                    && run_ignore_command(cmd, &ticket)
                {
                    self.shared.logger.log(
                        INFO,
                        "fail2ban.filter",
                        &format!("[{}] Ignore {} by command", self.name, ticket.id),
                    );
                    return;
                }
            }
            IgnoreCheck::NotIgnored => {}
        }
        self.shared.logger.log(
            INFO,
            "fail2ban.filter",
            &format!(
                "[{}] Found {} - {}",
                self.name,
                ticket.id,
                self.engine.format_time(ticket.time)
            ),
        );
        let prior = if self.use_increment {
            prior_bans(&self.shared, &self.name, &ticket, false)
        } else {
            None
        };
        if let Some(to_ban) = st.jail.add_failure(ticket, prior) {
            ban_ticket(
                &self.name,
                st,
                &self.shared,
                to_ban,
                self.use_increment,
                now,
            );
        }
    }

    fn save_positions(&self) {
        let Ok(mut store) = self.shared.store.lock() else {
            return;
        };
        let Some(store) = store.as_mut() else {
            return;
        };
        for position in self.source.positions() {
            let p = match position {
                Position::File(p) => p,
                Position::Journal(j) => {
                    let time = crate::journal::epoch(j.time);
                    let name = rampart_journal::JOURNAL_NAME;
                    if let Err(e) = store.set_journal_cursor(&self.name, name, &j.cursor, time) {
                        self.shared.logger.log(
                            ERROR,
                            "fail2ban.database",
                            &format!("[{}] {e}", self.name),
                        );
                    }
                    continue;
                }
                _ => continue,
            };
            #[allow(clippy::cast_possible_wrap)]
            let result = store.set_log_position(
                &self.name,
                &p.path.to_string_lossy(),
                // fail2ban writes '' for "no first line yet", and only resumes from that.
                Some(p.first_line_hash.as_str()),
                p.offset as i64,
            );
            if let Err(e) = result {
                self.shared
                    .logger
                    .log(ERROR, "fail2ban.database", &format!("[{}] {e}", self.name));
            }
        }
    }
}

impl Worker {
    /// Applies what the control socket changed; true while the jail is idle: the turn
    /// skips its read (unbans still happen on time).
    fn apply_changes(&mut self) -> bool {
        let (changes, idle) = {
            let mut st = lock(&self.state);
            (std::mem::take(&mut st.settings.pending), st.settings.idle)
        };
        for change in changes {
            match change {
                Change::Engine(engine) => {
                    // Checked, so built: released in turn once the jail is quiet.
                    self.engine = *engine;
                    self.engines_used = Some(Instant::now());
                }
                Change::Encoding(encoding) => self.encoding = encoding,
                Change::AddPath(path) => {
                    if let Err(e) = self.source.add_path(&path) {
                        self.shared.logger.log(
                            ERROR,
                            "fail2ban.filter",
                            &format!("[{}] {e}", self.name),
                        );
                    }
                }
                Change::RemovePath(pattern) => {
                    self.source.remove_path(&pattern);
                }
            }
        }
        self.idle = idle;
        idle
    }
}

/// `ignorecommand`: exit status 0 ignores. Only an address is ever put in the command
/// line; any other id is passed as a positional parameter, never as shell text.
fn run_ignore_command(command: &str, ticket: &Ticket) -> bool {
    let ip = ticket
        .ip()
        .map_or_else(|| ticket.id.to_string(), |a| a.to_string());
    let script = command.replace("<ip>", "\"$1\"");
    std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .arg("rampart-ignorecommand")
        .arg(&ip)
        .stdin(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// How the log words what a filter noticed (fail2ban's levels: old lines are debug).
fn describe(notice: &rampart_filter::Notice) -> (i64, String) {
    use rampart_filter::Notice;
    match notice {
        Notice::TooOld { line } => (DEBUG, format!("Ignore line older than findtime: {line}")),
        Notice::TimeSkew { delta, line } => (
            WARNING,
            format!(
                "Simulate NOW in operation since found time has too large deviation {delta:.0} s: {line}"
            ),
        ),
        Notice::MatchWithoutDate { line } => (
            WARNING,
            format!("Found a match but no valid date/time in: {line}"),
        ),
        Notice::UnparsableDate { text } => (WARNING, format!("Cannot convert the date {text:?}")),
        Notice::RegexGaveUp { regex } => (
            WARNING,
            format!("The regex engine gave up on a line (counted, skipped): {regex}"),
        ),
    }
}
