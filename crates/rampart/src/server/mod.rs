//! `rampart server`: the daemon.
//!
//! One thread, the reactor, follows the logs of every jail and decides, a bounded turn
//! per jail at a time; each jail's ban queue runs its actions on a worker thread that
//! exists while it has work; the control socket has its own threads; the main thread
//! only starts things, waits for signals and stops things. See `ARCHITECTURE.md`.

mod control;
mod jail;
pub mod log;
mod reactor;
mod runtime;
mod settings;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indexmap::IndexMap;
use rampart_action::QueueStarter;
use rampart_store::Store;

use self::jail::RunningJail;
use self::log::{ERROR, INFO, Logger, WARNING};

/// Arguments of `rampart server` (and of `fail2ban-server`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServerArgs {
    /// Stay in the foreground (the default for `rampart server`).
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,
    /// Detach and run in the background (the default for `fail2ban-server`).
    #[arg(short = 'b', long = "background", conflicts_with = "foreground")]
    pub background: bool,
    /// Configuration directory.
    #[arg(
        short = 'c',
        long = "conf",
        visible_alias = "config",
        value_name = "DIR"
    )]
    pub config: Option<PathBuf>,
    /// Control socket path (overrides the configuration).
    #[arg(short = 's', long = "socket", value_name = "FILE")]
    pub socket: Option<PathBuf>,
    /// PID file path (overrides the configuration).
    #[arg(short = 'p', long = "pidfile", value_name = "FILE")]
    pub pidfile: Option<PathBuf>,
    /// Remove a stale socket even if something answers on it.
    #[arg(short = 'x', long = "force")]
    pub force: bool,
    /// Log level (overrides the configuration).
    #[arg(long = "loglevel", value_name = "LEVEL")]
    pub loglevel: Option<String>,
    /// Log target: a file, STDOUT, STDERR or SYSLOG (overrides the configuration).
    #[arg(long = "logtarget", value_name = "TARGET")]
    pub logtarget: Option<String>,
    /// Syslog socket for `logtarget = SYSLOG`.
    #[arg(long = "syslogsocket", value_name = "PATH")]
    pub syslogsocket: Option<String>,
}

/// What every part of the server shares.
pub struct Shared {
    pub logger: Arc<Logger>,
    pub store: Arc<Mutex<Option<Store>>>,
    pub jails: Mutex<IndexMap<String, RunningJail>>,
    /// The thread that reads every jail's logs.
    pub reactor: reactor::Reactor,
    pub config_dir: PathBuf,
    pub dbfile: String,
    pub dbpurgeage: Mutex<f64>,
    pub syslogsocket: Mutex<String>,
    /// `dbmaxmatches` (fail2ban's default 10), as `get`/`set` see it.
    pub dbmaxmatches: std::sync::atomic::AtomicI64,
    /// Set by `stop` on the socket or by a signal.
    pub stopping: AtomicBool,
    /// Set by `reload` on the socket or by SIGHUP.
    pub reload: AtomicBool,
    /// The previous server left its pid file behind (it was killed): the jails started
    /// now flush their actions once before restoring bans. Cleared once they have.
    pub unclean_start: AtomicBool,
}

impl Shared {
    /// The syslog socket now set.
    pub fn syslog_socket(&self) -> String {
        self.syslogsocket
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config_dir", &self.config_dir)
            .finish_non_exhaustive()
    }
}

pub(super) fn read_configuration(dir: &Path) -> Result<rampart_config::Configuration> {
    let basedir = dir.to_string_lossy();
    rampart_config::read_configuration(
        &rampart_config::OsFs,
        &basedir,
        &rampart_config::ReadOptions::default(),
    )
    .with_context(|| format!("reading the configuration in {}", dir.display()))
}

fn open_store(dbfile: &str, logger: &Logger) -> Option<Store> {
    if dbfile.is_empty() || dbfile.eq_ignore_ascii_case("none") {
        logger.log(
            WARNING,
            "fail2ban.server",
            "No database: bans are not persistent",
        );
        return None;
    }
    if dbfile != ":memory:"
        && let Some(parent) = Path::new(dbfile).parent()
        && !parent.as_os_str().is_empty()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        logger.log(
            ERROR,
            "fail2ban.database",
            &format!("{}: {e}", parent.display()),
        );
    }
    match Store::open(dbfile) {
        Ok(mut store) => {
            if let Err(e) = store.disable_all_jails() {
                logger.log(ERROR, "fail2ban.database", &format!("{e}"));
            }
            logger.log(INFO, "fail2ban.database", &format!("Connected to {dbfile}"));
            Some(store)
        }
        Err(e) => {
            logger.log(
                ERROR,
                "fail2ban.database",
                &format!("{e}; running without a database (bans are not persistent)"),
            );
            None
        }
    }
}

/// Starts every enabled jail of `config`; a broken jail is reported and skipped. The
/// jails read nothing until the returned guard is dropped.
fn start_jails<'a>(
    shared: &'a Arc<Shared>,
    config: &rampart_config::Configuration,
) -> reactor::ReadingHeld<'a> {
    let reading = shared.reactor.hold();
    for warning in &config.warnings {
        shared
            .logger
            .log(WARNING, "fail2ban.configreader", &warning.to_string());
    }
    let mut wanted = Vec::new();
    for jail in &config.jails {
        if let Some(error) = &jail.config_error {
            shared.logger.log(
                ERROR,
                "fail2ban.jailreader",
                &format!("Errors in jail {:?}. Skipping... ({error})", jail.name),
            );
        } else if jail.enabled {
            wanted.push(jail);
        }
    }
    let started = start_in_parallel(shared, &wanted);
    let mut starters = Vec::new();
    for (jail, result) in wanted.iter().zip(started) {
        match result {
            Ok(running) => {
                starters.extend(running.action_starter());
                if let Ok(mut jails) = shared.jails.lock() {
                    jails.insert(jail.name.clone(), running);
                }
            }
            Err(e) => shared.logger.log(
                ERROR,
                "fail2ban.jail",
                &format!("Jail {:?} is skipped: {e:#}", jail.name),
            ),
        }
    }
    start_actions(shared, starters);
    reading
}

/// Starts the actions of jails that read their logs already, in the background and a
/// few at a time: ninety jails' `actionstart` shells at once would take the cores from
/// the daemon's start-up, and a thread per jail the memory. A jail whose first ban
/// comes before its turn starts its actions then, on its own worker; a slow
/// `actionstart` delays only the starts queued behind it, never a ban.
pub(crate) fn start_actions(shared: &Shared, starters: Vec<QueueStarter>) {
    if starters.is_empty() {
        return;
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(starters.len());
    let queue = Arc::new(Mutex::new(starters.into_iter()));
    for _ in 0..threads {
        let queue = Arc::clone(&queue);
        let spawned = std::thread::Builder::new()
            .name("action-start".to_string())
            .spawn(move || {
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some(starter) = next else { break };
                    starter.start_here();
                }
            });
        if let Err(e) = spawned {
            // Without a thread the actions start with their first ban, as on demand.
            shared.logger.log(
                ERROR,
                "fail2ban.actions",
                &format!("cannot start a thread for the actions' start: {e}"),
            );
            break;
        }
    }
}

/// Starts `jails` on as many threads as there are cores: compiling a jail's filter is
/// most of the start-up, and jails do not depend on each other. Results come back in
/// the order given, so the jail list keeps the configuration's order.
fn start_in_parallel(
    shared: &Arc<Shared>,
    jails: &[&rampart_config::Jail],
) -> Vec<Result<RunningJail>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(jails.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<RunningJail>>>> =
        jails.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(jail) = jails.get(i) else { break };
                    let result = RunningJail::start(jail, shared);
                    if let Some(slot) = slots.get(i)
                        && let Ok(mut slot) = slot.lock()
                    {
                        *slot = Some(result);
                    }
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(anyhow::anyhow!("the jail's start did not finish")))
        })
        .collect()
}

/// Keeps every thread's allocations in one glibc arena. The reactor thread makes nearly
/// all of them; the start-up threads, action workers and control connections come and
/// go, and each would otherwise leave an arena of its own holding freed memory (about
/// 2 MiB with Debian's 91 jails). Called before any thread exists.
#[allow(unsafe_code)]
fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt(3) changes an allocator setting; no thread is running yet that
    // could be allocating, and M_ARENA_MAX takes any positive value.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn stop_jails(shared: &Arc<Shared>) {
    let jails: Vec<RunningJail> = match shared.jails.lock() {
        Ok(mut jails) => jails.drain(..).map(|(_, j)| j).collect(),
        Err(_) => Vec::new(),
    };
    // In reverse start order, as fail2ban does.
    for jail in jails.into_iter().rev() {
        jail.stop(shared);
    }
}

/// Runs the server; returns the exit code.
pub fn run(args: &ServerArgs, default_config: &Path) -> Result<u8> {
    if args.background {
        return detach();
    }
    one_malloc_arena();
    let config_dir = args
        .config
        .clone()
        .unwrap_or_else(|| default_config.to_path_buf());
    let config = read_configuration(&config_dir)?;
    let settings = &config.server;
    let loglevel_text = args
        .loglevel
        .clone()
        .unwrap_or_else(|| settings.loglevel.clone());
    let level = rampart_config::log_level(&loglevel_text)
        .with_context(|| format!("unknown log level {loglevel_text:?}"))?;
    let logtarget = args
        .logtarget
        .clone()
        .unwrap_or_else(|| settings.logtarget.clone());
    let syslogsocket = args
        .syslogsocket
        .clone()
        .unwrap_or_else(|| settings.syslogsocket.clone());
    let logger = Arc::new(
        Logger::open(&logtarget, &syslogsocket, level)
            .with_context(|| format!("opening the log {logtarget}"))?,
    );
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(&settings.socket));
    let pidfile = args
        .pidfile
        .clone()
        .unwrap_or_else(|| PathBuf::from(&settings.pidfile));
    logger.log(
        INFO,
        "fail2ban.server",
        &format!(
            "Starting rampart v{} (fail2ban {} compatible)",
            env!("CARGO_PKG_VERSION"),
            rampart_config::FAIL2BAN_VERSION
        ),
    );
    let started = Instant::now();

    let store = open_store(&settings.dbfile, &logger);
    let dbpurgeage = rampart_dates::str2seconds(&settings.dbpurgeage).unwrap_or(86_400.0);
    let shared = Arc::new(Shared {
        logger: Arc::clone(&logger),
        store: Arc::new(Mutex::new(store)),
        jails: Mutex::new(IndexMap::new()),
        reactor: reactor::Reactor::start(Arc::clone(&logger))?,
        config_dir: config_dir.clone(),
        dbfile: settings.dbfile.clone(),
        dbpurgeage: Mutex::new(dbpurgeage),
        syslogsocket: Mutex::new(syslogsocket),
        dbmaxmatches: std::sync::atomic::AtomicI64::new(settings.dbmaxmatches.unwrap_or(10)),
        stopping: AtomicBool::new(false),
        reload: AtomicBool::new(false),
        unclean_start: AtomicBool::new(false),
    });

    // The socket first: a second server must fail before it touches any firewall.
    for path in [&socket, &pidfile] {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    if args.force && socket.exists() {
        let _ = std::fs::remove_file(&socket);
    }
    let control = rampart_control::ControlServer::start(&socket, control::Handler::new(&shared))
        .with_context(|| format!("control socket {}", socket.display()))?;
    if previous_server_was_killed(&pidfile, &logger) {
        logger.log(
            WARNING,
            "fail2ban.server",
            &format!(
                "{} is left from a server that did not stop cleanly; the actions are flushed as they start",
                pidfile.display()
            ),
        );
        shared.unclean_start.store(true, Ordering::SeqCst);
    }
    std::fs::write(&pidfile, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing {}", pidfile.display()))?;

    let reading = start_jails(&shared, &config);
    // The jails hold what they need; the whole resolved tree is not kept for the
    // daemon's lifetime (a reload reads the files again), and goes before the reading
    // (with its engines built for the catch-up) begins.
    drop(config);
    drop(reading);
    shared.unclean_start.store(false, Ordering::SeqCst);
    logger.log(
        INFO,
        "fail2ban.server",
        &format!(
            "Server ready ({} jails, {:.1} ms)",
            shared.jails.lock().map_or(0, |j| j.len()),
            started.elapsed().as_secs_f64() * 1000.0
        ),
    );

    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&term)).context("signal handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .context("signal handler")?;

    let mut last_purge = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if term.load(Ordering::SeqCst) || shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        if hup.swap(false, Ordering::SeqCst) || shared.reload.swap(false, Ordering::SeqCst) {
            logger.log(INFO, "fail2ban.server", "Reloading the configuration");
            match read_configuration(&config_dir) {
                Ok(config) => {
                    stop_jails(&shared);
                    drop(start_jails(&shared, &config));
                }
                Err(e) => logger.log(
                    ERROR,
                    "fail2ban.server",
                    &format!("reload failed, jails left as they were: {e:#}"),
                ),
            }
        }
        if last_purge.elapsed() >= Duration::from_secs(3600) {
            last_purge = Instant::now();
            purge(&shared);
        }
    }
    logger.log(INFO, "fail2ban.server", "Shutdown in progress...");
    control.shutdown();
    stop_jails(&shared);
    shared.reactor.shutdown();
    if let Ok(mut store) = shared.store.lock()
        && let Some(store) = store.take()
        && let Err(e) = store.close()
    {
        logger.log(ERROR, "fail2ban.database", &format!("{e}"));
    }
    // A server started while this one was stopping may have written its own pid.
    if read_pid(&pidfile) == Some(std::process::id()) {
        let _ = std::fs::remove_file(&pidfile);
    }
    logger.log(INFO, "fail2ban.server", "Exiting rampart");
    Ok(0)
}

fn read_pid(pidfile: &Path) -> Option<u32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// Whether process `pid` runs (a zombie has finished).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        !matches!(state.and_then(|r| r.chars().next()), Some('Z' | 'X') | None)
    })
}

/// What the pid file left by the previous server says; the socket check has made sure
/// none answers any more. No file: it stopped cleanly. Its process still running: it
/// is finishing its stop (`restart` starts the next server as soon as the socket is
/// gone), so wait for it (at most 30 s), lest its actionstop undo this server's start.
/// The file left and the process gone: it was killed, and what it put in the firewall
/// is stale.
fn previous_server_was_killed(pidfile: &Path, logger: &Logger) -> bool {
    let Some(pid) = read_pid(pidfile).filter(|p| *p != std::process::id()) else {
        return pidfile.exists();
    };
    if is_running(pid) {
        logger.log(
            INFO,
            "fail2ban.server",
            &format!("Waiting for the previous server (pid {pid}) to finish stopping"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while is_running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if is_running(pid) {
            return false;
        }
    }
    pidfile.exists()
}

fn purge(shared: &Shared) {
    let age = shared.dbpurgeage.lock().map_or(86_400.0, |a| *a);
    if let Ok(mut store) = shared.store.lock()
        && let Some(store) = store.as_mut()
    {
        #[allow(clippy::cast_possible_truncation)]
        let before = (crate::engine::wall_clock() - age) as i64;
        if let Err(e) = store.purge(before) {
            shared
                .logger
                .log(ERROR, "fail2ban.database", &format!("purge failed: {e}"));
        }
    }
}

/// `-b`: starts the same command in the foreground, in a session of its own, with no
/// terminal, and returns at once.
fn detach() -> Result<u8> {
    let exe = std::env::current_exe().context("locating the rampart binary")?;
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    args.retain(|a| a != "-b" && a != "--background");
    // Keep the name the user called us by (fail2ban-server or `rampart server`).
    let program = std::env::args_os().next().unwrap_or_default();
    let program_name = Path::new(&program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut command = std::process::Command::new(exe);
    if program_name.starts_with("fail2ban-server") {
        command.arg("server");
    }
    use std::os::unix::process::CommandExt;
    let child = command
        .args(&args)
        .arg("-f")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting the server in the background")?;
    if child.id() == 0 {
        bail!("the background server did not start");
    }
    Ok(0)
}
