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
            ["status"] => Ok(server_status(&shared)),
            ["status", jail, ..] => with_jail(&shared, jail, |st| Ok(jail_status(st))),
            ["banned"] => Ok(banned(&shared, None)),
            ["banned", ips @ ..] => Ok(banned(&shared, Some(ips))),
            ["unban", "--all"] => Ok(int(unban_all(&shared))),
            ["unban", ips @ ..] if !ips.is_empty() => Ok(int(unban_everywhere(&shared, ips))),
            ["get", "loglevel"] => Ok(int(shared.logger.level())),
            ["get", "logtarget"] => Ok(s(shared.logger.target())),
            ["get", "syslogsocket"] => Ok(s(shared.syslogsocket.clone())),
            ["get", "dbfile"] => Ok(s(shared.dbfile.clone())),
            ["get", "dbpurgeage"] => Ok(int(shared.dbpurgeage.lock().map_or(0.0, |a| *a) as i64)),
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
                    .set_target(target, &shared.syslogsocket)
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
                    for ip in &ips {
                        let id = FailureId::parse(ip, AddrHint::Any);
                        match st.jail.bans_mut().unban(&id) {
                            Some(ticket) => {
                                unban_ticket(&jail, st, &shared, &ticket);
                                n += 1;
                            }
                            None if report_absent => {
                                return Err(PyException::value_error(format!(
                                    "{ip} is not banned"
                                )));
                            }
                            None => {}
                        }
                    }
                    Ok(int(n))
                })
            }
            ["get", jail, what] => with_jail(&shared, jail, |st| get_jail(st, what)),
            ["set", jail, what, value] => {
                with_jail_mut(&shared, jail, |st, _| set_jail(st, what, value))
            }
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
    let names: Vec<String> = shared
        .jails
        .lock()
        .map(|j| j.keys().cloned().collect())
        .unwrap_or_default();
    PyValue::List(vec![
        pair("Number of jail", int(names.len())),
        pair("Jail list", s(names.join(", "))),
    ])
}

fn jail_status(st: &JailState) -> PyValue {
    let banned: Vec<PyValue> = st
        .jail
        .bans()
        .banned()
        .map(|id| s(id.to_string()))
        .collect();
    let files: Vec<PyValue> = st.files.iter().map(|f| s(f.clone())).collect();
    PyValue::List(vec![
        pair(
            "Filter",
            PyValue::List(vec![
                pair("Currently failed", int(st.jail.failures().len())),
                pair("Total failed", int(st.jail.failures().total())),
                pair("File list", PyValue::List(files)),
            ]),
        ),
        pair(
            "Actions",
            PyValue::List(vec![
                pair("Currently banned", int(st.jail.bans().len())),
                pair("Total banned", int(st.jail.bans().total())),
                pair("Banned IP list", PyValue::List(banned)),
            ]),
        ),
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
        _ => return Err(invalid()),
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
        _ => return Err(invalid()),
    })
}
