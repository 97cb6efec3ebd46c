//! The server's side of the control socket: fail2ban's commands, answered the way
//! fail2ban's transmitter answers them, so that `fail2ban-client` prints the same.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use rampart_control::{PyException, PyValue, Request};
use rampart_filter::{AddrHint, FailureId};
use rampart_jail::Ticket;

use super::Shared;
use super::jail::{JailState, ban_ticket, unban_ticket};
use crate::engine::wall_clock;

pub struct Handler {
    shared: Weak<Shared>,
}

impl Handler {
    pub fn new(shared: &Arc<Shared>) -> Handler {
        Handler {
            shared: Arc::downgrade(shared),
        }
    }
}

fn s(text: impl Into<String>) -> PyValue {
    PyValue::Str(text.into())
}

fn pair(name: &str, value: PyValue) -> PyValue {
    PyValue::Tuple(vec![s(name), value])
}

fn int(n: impl TryInto<i64>) -> PyValue {
    PyValue::Int(n.try_into().unwrap_or(i64::MAX))
}

fn invalid() -> PyException {
    PyException::failed("Invalid command")
}

/// fail2ban's words for a `set` it does not know.
pub(super) fn invalid_set(what: &str) -> PyException {
    PyException::failed(format!(
        "Invalid command {} (no set action or not yet implemented)",
        rampart_control::str_repr(what)
    ))
}

/// Python's `int()` refusing a word.
pub(super) fn not_int(word: &str) -> PyException {
    PyException::value_error(format!(
        "invalid literal for int() with base 10: {}",
        rampart_control::str_repr(word)
    ))
}

/// Wakes a jail's thread when dropped, after the lock on its state is released.
struct WakeOnDrop<'a>(&'a Shared, &'a str);

impl Drop for WakeOnDrop<'_> {
    fn drop(&mut self) {
        wake_jail(self.0, self.1);
    }
}

fn wake_jail(shared: &Shared, name: &str) {
    if let Ok(jails) = shared.jails.lock()
        && let Some(jail) = jails.get(name)
    {
        jail.wake();
    }
}

/// `stop --all`: every jail, in reverse start order.
fn stop_all(shared: &Arc<Shared>) {
    let jails: Vec<super::jail::RunningJail> = match shared.jails.lock() {
        Ok(mut jails) => jails.drain(..).map(|(_, j)| j).collect(),
        Err(_) => Vec::new(),
    };
    for jail in jails.into_iter().rev() {
        jail.stop(shared);
    }
}

impl rampart_control::Handler for Handler {
    fn handle(&self, request: &Request) -> Result<PyValue, PyException> {
        let Some(shared) = self.shared.upgrade() else {
            return Err(PyException::failed("the server is shutting down"));
        };
        let words = request.words();
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["ping", ..] => Ok(s("pong")),
            ["version"] => Ok(s(env!("CARGO_PKG_VERSION"))),
            ["stop"] => {
                shared.stopping.store(true, Ordering::SeqCst);
                request.stop_server();
                Ok(PyValue::None)
            }
            ["reload", jail, ..] if *jail != "--all" => {
                let unban = matches!(request.values().get(2), Some(PyValue::List(opts))
                    if opts.iter().any(|o| o.to_string() == "--unban"));
                let jail = jail.to_string();
                if let Some(running) = take_jail(&shared, &jail) {
                    running.stop(&shared);
                }
                if unban {
                    forget_bans(&shared, &jail);
                }
                start_jail(&shared, &jail)?;
                Ok(s("OK"))
            }
            ["reload", ..] => {
                shared.reload.store(true, Ordering::SeqCst);
                Ok(s("OK"))
            }
            ["stop", "--all"] => {
                stop_all(&shared);
                Ok(PyValue::None)
            }
            ["stop", jail] => {
                let running =
                    take_jail(&shared, jail).ok_or_else(|| PyException::unknown_jail(*jail))?;
                running.stop(&shared);
                Ok(PyValue::None)
            }
            ["start", jail] => {
                let running = shared.jails.lock().is_ok_and(|j| j.contains_key(*jail));
                if running {
                    return Err(PyException::duplicate_jail(*jail));
                }
                start_jail(&shared, jail)?;
                Ok(PyValue::None)
            }
            ["flushlogs"] => match shared.logger.reopen() {
                Ok(true) => Ok(s("rolled over")),
                Ok(false) => Ok(s("flushed")),
                Err(e) => Err(PyException::failed(e.to_string())),
            },
            ["echo", rest @ ..] => Ok(PyValue::str_list(rest.iter().map(|w| w.to_string()))),
            ["server-status"] => Ok(s("Server ready")),
            ["add", "--all", ..] => Err(PyException::failed("Reserved name '--all'")),
            ["add", jail, ..] => {
                if shared.jails.lock().is_ok_and(|j| j.contains_key(*jail)) {
                    return Err(PyException::duplicate_jail(*jail));
                }
                // fail2ban builds an empty jail here for the client's stream to fill;
                // rampart's jails come whole from the configuration.
                Err(PyException::failed(format!(
                    "jail {jail:?} is not running; rampart starts jails from the configuration: use 'start {jail}'"
                )))
            }
            ["status"] => Ok(server_status(&shared)),
            ["status", jail] => with_jail(&shared, jail, |st| Ok(jail_status(st, "basic"))),
            ["status", jail, flavor] => {
                if !matches!(*flavor, "basic" | "short" | "cymru") {
                    shared.logger.log(
                        super::log::WARNING,
                        "fail2ban.actions",
                        &format!(
                            "Unsupported extended jail status flavor {:?}. Supported: ['short', 'basic', 'cymru']",
                            flavor
                        ),
                    );
                }
                with_jail(&shared, jail, |st| Ok(jail_status(st, flavor)))
            }
            ["banned"] => Ok(banned(&shared, None)),
            ["banned", ips @ ..] => Ok(banned(&shared, Some(ips))),
            ["unban", "--all"] => Ok(int(unban_all(&shared))),
            ["unban", ips @ ..] if !ips.is_empty() => Ok(int(unban_everywhere(&shared, ips))),
            ["get", "loglevel"] => Ok(int(shared.logger.level())),
            ["get", "logtarget"] => Ok(s(shared.logger.target())),
            ["get", "syslogsocket"] => Ok(s(shared.syslog_socket())),
            ["get", "dbfile"] => Ok(s(shared.dbfile.clone())),
            ["get", "dbpurgeage"] => Ok(int(shared.dbpurgeage.lock().map_or(0.0, |a| *a) as i64)),
            ["get", "dbmaxmatches"] => Ok(int(shared.dbmaxmatches.load(Ordering::Relaxed))),
            ["set", "dbmaxmatches", n] => {
                let n: i64 = n.trim().parse().map_err(|_| not_int(n))?;
                shared.dbmaxmatches.store(n, Ordering::Relaxed);
                Ok(int(n))
            }
            ["set", "dbfile", file] => {
                if *file == shared.dbfile {
                    return Ok(s(*file));
                }
                if shared.jails.lock().is_ok_and(|j| !j.is_empty()) {
                    return Err(PyException::new(
                        "builtins",
                        "RuntimeError",
                        "Cannot change database when there are jails present",
                    ));
                }
                Err(PyException::failed(
                    "rampart opens its database at start: set dbfile in the configuration and restart",
                ))
            }
            ["set", "syslogsocket", socket] => {
                let target = shared.logger.target();
                if target.eq_ignore_ascii_case("SYSLOG") {
                    shared
                        .logger
                        .set_target(&target, socket)
                        .map_err(|_| PyException::failed("Failed to change syslog socket"))?;
                }
                if let Ok(mut current) = shared.syslogsocket.lock() {
                    *current = socket.to_string();
                }
                Ok(s(*socket))
            }
            ["set", "loglevel", level] => {
                let n = rampart_config::log_level(level).ok_or_else(|| {
                    PyException::value_error(format!("Invalid log level {level:?}"))
                })?;
                shared.logger.set_level(n);
                Ok(int(n))
            }
            ["set", "logtarget", target] => {
                shared
                    .logger
                    .set_target(target, &shared.syslog_socket())
                    .map_err(|e| PyException::failed(e.to_string()))?;
                Ok(s(*target))
            }
            ["set", "dbpurgeage", age] => {
                let secs = rampart_dates::str2seconds(age)
                    .map_err(|e| PyException::value_error(e.to_string()))?;
                if let Ok(mut a) = shared.dbpurgeage.lock() {
                    *a = secs;
                }
                Ok(int(secs as i64))
            }
            ["set", jail, "banip", ips @ ..] => {
                let jail = jail.to_string();
                // The jail's thread must learn of the new ban end.
                let _wake = WakeOnDrop(&shared, &jail);
                with_jail_mut(&shared, &jail, |st, inc| {
                    let now = wall_clock();
                    let mut n = 0;
                    for ip in ips {
                        let id = FailureId::parse(ip, AddrHint::Any);
                        let mut ticket = Ticket::new(id, now);
                        ticket.failures = st.jail.config().max_retry;
                        if ban_ticket(&jail, st, &shared, ticket, inc, now) {
                            n += 1;
                        }
                    }
                    Ok(int(n))
                })
            }
            ["set", jail, "unbanip", rest @ ..] => {
                let report_absent = rest.first() == Some(&"--report-absent");
                let ips: Vec<&str> = rest
                    .iter()
                    .copied()
                    .filter(|i| !i.starts_with("--"))
                    .collect();
                let jail = jail.to_string();
                with_jail_mut(&shared, &jail, |st, _| {
                    let mut n = 0;
                    let mut missed = Vec::new();
                    for ip in &ips {
                        let id = FailureId::parse(ip, AddrHint::Any);
                        match st.jail.bans_mut().unban(&id) {
                            Some(ticket) => {
                                unban_ticket(&jail, st, &shared, &ticket);
                                n += 1;
                            }
                            None => missed.push(ip.to_string()),
                        }
                    }
                    // As fail2ban: the others are unbanned all the same, then the
                    // missing ones are reported together.
                    if report_absent && !missed.is_empty() {
                        return Err(PyException::value_error(format!(
                            "not banned: {}",
                            PyValue::str_list(missed).repr()
                        )));
                    }
                    Ok(int(n))
                })
            }
            ["set", jail, "attempt", ip, matches @ ..] => {
                let jail = jail.to_string();
                let _wake = WakeOnDrop(&shared, &jail);
                with_jail_mut(&shared, &jail, |st, inc| {
                    super::runtime::attempt(&jail, st, &shared, ip, matches, inc);
                    Ok(int(1))
                })
            }
            ["get", jail, "banip", rest @ ..] => {
                let with_time = rest.first() == Some(&"--with-time");
                with_jail(&shared, jail, |st| {
                    Ok(super::runtime::ban_list(st, with_time))
                })
            }
            ["get", jail, "banned", ips @ ..] if !ips.is_empty() => {
                with_jail(&shared, jail, |st| {
                    let flags: Vec<PyValue> = ips
                        .iter()
                        .map(|ip| {
                            let id = FailureId::parse(ip, AddrHint::Any);
                            int(i64::from(st.jail.bans().is_banned(&id)))
                        })
                        .collect();
                    // fail2ban answers one address with a bare 0 or 1.
                    Ok(match <[PyValue; 1]>::try_from(flags) {
                        Ok([one]) => one,
                        Err(flags) => PyValue::List(flags),
                    })
                })
            }
            ["get", jail, "action", act, property] => with_jail(&shared, jail, |st| {
                super::runtime::action_property(st, act, property)
            }),
            ["get", jail, "actionproperties", act] => with_jail(&shared, jail, |st| {
                super::runtime::action_properties(st, act)
            }),
            ["get", jail, "actionmethods", act] => {
                with_jail(&shared, jail, |st| super::runtime::action_methods(st, act))
            }
            ["get", jail, what] => {
                with_jail(&shared, jail, |st| match super::runtime::get(st, what) {
                    Some(v) => Ok(v),
                    None => get_jail(st, what),
                })
            }
            ["get", jail] if shared.jails.lock().is_ok_and(|j| j.contains_key(*jail)) => {
                Err(PyException::missing_argument("list index out of range"))
            }
            ["get", _, ..] => Err(PyException::failed(
                "Invalid command (no get action or not yet implemented)",
            )),
            ["set", jail, what, values @ ..] if !values.is_empty() => {
                let jail = jail.to_string();
                let result = with_jail_mut(&shared, &jail, |st, _| {
                    match super::runtime::set(st, what, values)? {
                        Some(v) => Ok(v),
                        None => match values {
                            [value] => set_jail(st, what, value),
                            _ => Err(invalid_set(what)),
                        },
                    }
                });
                if result.is_ok() {
                    wake_jail(&shared, &jail);
                }
                result
            }
            // A jail command without its value: Python's IndexError in fail2ban.
            ["set", jail, _] if shared.jails.lock().is_ok_and(|j| j.contains_key(*jail)) => {
                Err(PyException::missing_argument("list index out of range"))
            }
            ["set", what, ..] => Err(invalid_set(what)),
            _ => Err(invalid()),
        }
    }
}

/// Takes a running jail out of the server's map (the caller stops it, outside the lock).
fn take_jail(shared: &Shared, name: &str) -> Option<super::jail::RunningJail> {
    shared.jails.lock().ok()?.shift_remove(name)
}

/// Starts jail `name` as the configuration on disk defines it now.
fn start_jail(shared: &Arc<Shared>, name: &str) -> Result<(), PyException> {
    let config = super::read_configuration(&shared.config_dir)
        .map_err(|e| PyException::failed(format!("{e:#}")))?;
    let jail = config
        .jails
        .iter()
        .find(|j| j.name == name)
        .ok_or_else(|| PyException::unknown_jail(name))?;
    if let Some(error) = &jail.config_error {
        return Err(PyException::failed(format!("jail {name}: {error}")));
    }
    let running = super::jail::RunningJail::start(jail, shared)
        .map_err(|e| PyException::failed(format!("{e:#}")))?;
    super::start_actions(shared, running.action_starter().into_iter().collect());
    if let Ok(mut jails) = shared.jails.lock() {
        jails.insert(name.to_string(), running);
    }
    Ok(())
}

/// `reload --unban JAIL`: its bans are not restored.
fn forget_bans(shared: &Shared, name: &str) {
    if let Ok(mut store) = shared.store.lock()
        && let Some(store) = store.as_mut()
        && let Err(e) = store.remove_jail_bans(name)
    {
        shared.logger.log(
            super::log::ERROR,
            "fail2ban.database",
            &format!("[{name}] {e}"),
        );
    }
}

fn with_jail(
    shared: &Shared,
    name: &str,
    f: impl FnOnce(&JailState) -> Result<PyValue, PyException>,
) -> Result<PyValue, PyException> {
    let jails = shared.jails.lock().map_err(|_| invalid())?;
    let jail = jails
        .get(name)
        .ok_or_else(|| PyException::unknown_jail(name))?;
    let st = jail.state.lock().map_err(|_| invalid())?;
    f(&st)
}

fn with_jail_mut(
    shared: &Shared,
    name: &str,
    f: impl FnOnce(&mut JailState, bool) -> Result<PyValue, PyException>,
) -> Result<PyValue, PyException> {
    let jails = shared.jails.lock().map_err(|_| invalid())?;
    let jail = jails
        .get(name)
        .ok_or_else(|| PyException::unknown_jail(name))?;
    let mut st = jail.state.lock().map_err(|_| invalid())?;
    f(&mut st, jail.use_increment)
}

fn server_status(shared: &Shared) -> PyValue {
    let mut names: Vec<String> = shared
        .jails
        .lock()
        .map(|j| j.keys().cloned().collect())
        .unwrap_or_default();
    // fail2ban lists them sorted.
    names.sort();
    PyValue::List(vec![
        pair("Number of jail", int(names.len())),
        pair("Jail list", s(names.join(", "))),
    ])
}

fn jail_status(st: &JailState, flavor: &str) -> PyValue {
    let banned: Vec<PyValue> = st
        .jail
        .bans()
        .banned()
        .map(|id| s(id.to_string()))
        .collect();
    let files: Vec<PyValue> = st.files.iter().map(|f| s(f.clone())).collect();
    let mut actions = vec![
        pair("Currently banned", int(st.jail.bans().len())),
        pair("Total banned", int(st.jail.bans().total())),
    ];
    if flavor != "short" {
        actions.push(pair("Banned IP list", PyValue::List(banned)));
    }
    if flavor == "cymru" {
        // fail2ban asks Team Cymru's DNS for these; rampart does not, and says so the
        // way fail2ban does when it cannot: an "error" entry per list.
        for name in ["Banned ASN list", "Banned Country list", "Banned RIR list"] {
            actions.push(pair(name, PyValue::List(vec![s("error")])));
        }
    }
    PyValue::List(vec![
        pair(
            "Filter",
            PyValue::List(vec![
                pair("Currently failed", int(st.jail.failures().len())),
                pair("Total failed", int(st.jail.failures().total())),
                match &st.journal_matches {
                    // fail2ban's systemd filter shows its matches where files would be.
                    Some(matches) => pair(
                        "Journal matches",
                        PyValue::List(vec![s(matches
                            .iter()
                            .map(|m| m.join(" "))
                            .collect::<Vec<_>>()
                            .join(" + "))]),
                    ),
                    None => pair("File list", PyValue::List(files)),
                },
            ]),
        ),
        pair("Actions", PyValue::List(actions)),
    ])
}

fn banned(shared: &Shared, ips: Option<&[&str]>) -> PyValue {
    let Ok(jails) = shared.jails.lock() else {
        return PyValue::List(Vec::new());
    };
    match ips {
        None => PyValue::List(
            jails
                .iter()
                .filter_map(|(name, j)| {
                    let st = j.state.lock().ok()?;
                    let list = st
                        .jail
                        .bans()
                        .banned()
                        .map(|id| s(id.to_string()))
                        .collect();
                    Some(PyValue::Dict(vec![(s(name.clone()), PyValue::List(list))]))
                })
                .collect(),
        ),
        Some(ips) => PyValue::List(
            ips.iter()
                .map(|ip| {
                    let id = FailureId::parse(ip, AddrHint::Any);
                    PyValue::List(
                        jails
                            .iter()
                            .filter(|(_, j)| {
                                j.state.lock().is_ok_and(|st| st.jail.bans().is_banned(&id))
                            })
                            .map(|(name, _)| s(name.clone()))
                            .collect(),
                    )
                })
                .collect(),
        ),
    }
}

fn unban_everywhere(shared: &Shared, ips: &[&str]) -> usize {
    let Ok(jails) = shared.jails.lock() else {
        return 0;
    };
    let mut n = 0;
    for (name, j) in jails.iter() {
        let Ok(mut st) = j.state.lock() else { continue };
        for ip in ips {
            let id = FailureId::parse(ip, AddrHint::Any);
            if let Some(ticket) = st.jail.bans_mut().unban(&id) {
                unban_ticket(name, &st, shared, &ticket);
                n += 1;
            }
        }
    }
    n
}

fn unban_all(shared: &Shared) -> usize {
    let Ok(jails) = shared.jails.lock() else {
        return 0;
    };
    let mut n = 0;
    for (name, j) in jails.iter() {
        let Ok(mut st) = j.state.lock() else { continue };
        let tickets = st.jail.bans_mut().unban_all();
        for ticket in &tickets {
            unban_ticket(name, &st, shared, ticket);
        }
        n += tickets.len();
    }
    n
}

fn get_jail(st: &JailState, what: &str) -> Result<PyValue, PyException> {
    let c = st.jail.config();
    Ok(match what {
        "bantime" => int(c.ban_time),
        "findtime" => int(c.find_time as i64),
        "maxretry" => int(c.max_retry),
        "maxmatches" => int(c.max_matches),
        "logpath" => PyValue::List(st.logpaths.iter().map(|p| s(p.clone())).collect()),
        "actions" => PyValue::List(st.actions.iter().map(|a| s(a.clone())).collect()),
        "banned" => PyValue::List(
            st.jail
                .bans()
                .banned()
                .map(|id| s(id.to_string()))
                .collect(),
        ),
        _ => {
            return Err(PyException::failed(
                "Invalid command (no get action or not yet implemented)",
            ));
        }
    })
}

fn set_jail(st: &mut JailState, what: &str, value: &str) -> Result<PyValue, PyException> {
    let seconds = |v: &str| {
        rampart_dates::str2seconds(v).map_err(|e| PyException::value_error(e.to_string()))
    };
    let count = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| PyException::value_error(format!("invalid literal for int(): {v:?}")))
    };
    Ok(match what {
        "bantime" => {
            let secs = seconds(value)? as i64;
            st.jail.set_ban_time(secs);
            int(secs)
        }
        "findtime" => {
            let secs = seconds(value)?;
            st.jail.set_find_time(secs);
            // The filter drops lines older than findtime: it runs with the new one too.
            st.settings
                .change_filter(secs, |_| {})
                .map_err(|e| PyException::failed(format!("{e:#}")))?;
            int(secs as i64)
        }
        "maxretry" => {
            let n = count(value)?;
            st.jail.set_max_retry(n);
            int(n)
        }
        "maxmatches" => {
            let n = count(value)?;
            st.jail.set_max_matches(n as usize);
            int(n)
        }
        _ => return Err(invalid_set(what)),
    })
}
