//! `get JAIL …` and `set JAIL …` of a running jail's ignore rules, filter, log paths and
//! idleness, answered with the values fail2ban's server returns so that
//! `fail2ban-client` prints the same. Changes to what the jail's thread owns go through
//! [`super::settings`]; the counting rules change in place under the jail's lock.

use rampart_control::{PyException, PyValue};
use rampart_filter::{AddrHint, FailureId, UseDns};
use rampart_jail::Ticket;
use rampart_source::LogPath;

use super::Shared;
use super::control::not_int;
use super::jail::{JailState, ban_ticket};
use super::log::INFO;
use super::settings::{Change, FilterSettings, use_dns_word};
use crate::engine::wall_clock;
use crate::logread::Encoding;

fn s(text: impl Into<String>) -> PyValue {
    PyValue::Str(text.into())
}

fn list<'a>(items: impl IntoIterator<Item = &'a String>) -> PyValue {
    PyValue::List(items.into_iter().map(|i| s(i.clone())).collect())
}

fn int(n: impl TryInto<i64>) -> PyValue {
    PyValue::Int(n.try_into().unwrap_or(i64::MAX))
}

/// fail2ban's reading of a boolean option.
fn as_bool(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "on" | "true" | "yes"
    )
}

/// `get JAIL datepattern` as fail2ban answers it: `(None, "Default Detectors")` while
/// the default templates are in use (also anchored by `{^LN-BEG}`), else the pattern and
/// its template's name.
fn date_pattern(f: &FilterSettings) -> PyValue {
    let defaults = || PyValue::Tuple(vec![PyValue::None, s("Default Detectors")]);
    let Some(pattern) = &f.datepattern else {
        return defaults();
    };
    match rampart_dates::DateDetector::new(Some(pattern)).map(|d| d.description()) {
        Ok(name) if name != "Default Detectors" => {
            PyValue::Tuple(vec![s(pattern.clone()), s(name)])
        }
        _ => defaults(),
    }
}

/// `get JAIL WHAT` for what this module keeps; `None` for the rest.
pub fn get(st: &JailState, what: &str) -> Option<PyValue> {
    let f = &st.settings.filter;
    let ignore = &st.jail.config().ignore;
    Some(match what {
        "logencoding" => s(st.settings.encoding.name()),
        "journalmatch" => PyValue::List(st.journal_matches.iter().flatten().map(list).collect()),
        "ignoreself" => PyValue::Bool(ignore.ignore_self()),
        "ignoreip" => list(&ignore.entries()),
        "ignorecommand" => s(ignore.command().unwrap_or("")),
        "ignorecache" => PyValue::None,
        "prefregex" => s(f.spec.prefregex.clone().unwrap_or_default()),
        "failregex" => list(&f.spec.failregex),
        "ignoreregex" => list(&f.spec.ignoreregex),
        "usedns" => s(use_dns_word(f.spec.use_dns)),
        "datepattern" => date_pattern(f),
        "logtimezone" => f.logtimezone.clone().map_or(PyValue::None, s),
        "maxlines" => int(f.spec.maxlines),
        extra if extra.starts_with("bantime.") => ban_time_extra(st, &extra["bantime.".len()..]),
        _ => return None,
    })
}

/// `get JAIL bantime.X` as fail2ban keeps it: `increment` a boolean, `maxtime` and
/// `rndtime` in seconds, the others as written; `None` when not set.
fn ban_time_extra(st: &JailState, option: &str) -> PyValue {
    let Some((_, value)) = st
        .ban_time_extra
        .iter()
        .rev()
        .find(|(k, v)| k == option && !v.is_empty())
    else {
        return PyValue::None;
    };
    match option {
        "increment" => PyValue::Bool(as_bool(value)),
        "maxtime" | "rndtime" => match rampart_dates::str2seconds(value) {
            #[allow(clippy::cast_possible_truncation)]
            Ok(secs) if secs.fract() == 0.0 => int(secs as i64),
            Ok(secs) => PyValue::Float(secs),
            Err(_) => s(value.clone()),
        },
        _ => s(value.clone()),
    }
}

/// `get JAIL banip [--with-time]`: by ban end, as fail2ban orders them.
pub fn ban_list(st: &JailState, with_time: bool) -> PyValue {
    let jail_ban_time = st.jail.config().ban_time;
    let zone = rampart_dates::TimeZone::from_env();
    PyValue::List(
        st.jail
            .bans()
            .by_end()
            .into_iter()
            .map(|t| {
                if !with_time {
                    return s(t.id.to_string());
                }
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                let ban_time = t.ban_time.unwrap_or(jail_ban_time as f64) as i64;
                // A permanent ban ends at fail2ban's "never" (the largest 32-bit time).
                #[allow(clippy::cast_precision_loss)]
                let end = if ban_time < 0 {
                    f64::from(i32::MAX)
                } else {
                    t.time + ban_time as f64
                };
                s(format!(
                    "{} \t{} + {ban_time} = {}",
                    t.id,
                    zone.format_local(t.time),
                    zone.format_local(end)
                ))
            })
            .collect(),
    )
}

/// `set JAIL attempt IP [MATCH…]`: a failure of IP now, counted once per match line
/// (once without), banning at `maxretry` as fail2ban's `addAttempt` does.
pub fn attempt(
    name: &str,
    st: &mut JailState,
    shared: &Shared,
    ip: &str,
    matches: &[&str],
    use_increment: bool,
) {
    let now = wall_clock();
    let mut ticket = Ticket::new(FailureId::parse(ip, AddrHint::Any), now);
    ticket.matches = matches.iter().map(|m| m.to_string()).collect();
    shared.logger.log(
        INFO,
        "fail2ban.filter",
        &format!(
            "[{name}] Attempt {} - {}",
            ticket.id,
            rampart_dates::TimeZone::from_env().format_local(now)
        ),
    );
    let weight = u32::try_from(matches.len().max(1)).unwrap_or(u32::MAX);
    if let Some(to_ban) = st.jail.failures_mut().add_failure(ticket, weight) {
        ban_ticket(name, st, shared, to_ban, use_increment, now);
    }
}

/// `set JAIL WHAT VALUE…` for what this module keeps: `Ok(None)` for the rest.
pub fn set(
    st: &mut JailState,
    what: &str,
    values: &[&str],
) -> Result<Option<PyValue>, PyException> {
    let value = values.first().copied().unwrap_or("");
    let find_time = st.jail.config().find_time;
    // The compiler's own words (which regex, what is wrong), as fail2ban gives them.
    let refused = |e: anyhow::Error| PyException::failed(e.root_cause().to_string());
    let index = |v: &str| v.trim().parse::<i64>().map_err(|_| not_int(v));
    // Python's `del list[i]`, negative from the end; fail2ban logs a bad index and
    // carries on.
    let remove_at = |items: &mut Vec<String>, i: i64| {
        let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
        let at = if i < 0 { len + i } else { i };
        if (0..len).contains(&at) {
            items.remove(usize::try_from(at).unwrap_or(0));
        }
    };
    Ok(Some(match what {
        "addignoreip" => {
            for v in values {
                st.jail.ignore_mut().add(v);
            }
            list(&st.jail.config().ignore.entries())
        }
        "delignoreip" => {
            st.jail.ignore_mut().remove(value);
            list(&st.jail.config().ignore.entries())
        }
        "ignoreself" => {
            st.jail.ignore_mut().set_ignore_self(as_bool(value));
            PyValue::Bool(st.jail.config().ignore.ignore_self())
        }
        "ignorecommand" => {
            st.jail.ignore_mut().set_command(value);
            s(st.jail.config().ignore.command().unwrap_or(""))
        }
        "idle" => {
            st.settings.idle = match value {
                "on" => true,
                "off" => false,
                _ => {
                    return Err(PyException::failed(
                        "Invalid idle option, must be 'on' or 'off'",
                    ));
                }
            };
            PyValue::Bool(st.settings.idle)
        }
        "addlogpath" => {
            let tail = match values.get(1).map(|w| w.to_ascii_lowercase()) {
                _ if values.len() > 2 => {
                    return Err(PyException::value_error(
                        "Only one file can be added at a time",
                    ));
                }
                None => false,
                Some(w) if w == "tail" => true,
                Some(w) if w == "head" => false,
                Some(_) => {
                    return Err(PyException::value_error(
                        "File option must be 'head' or 'tail'",
                    ));
                }
            };
            // fail2ban opens the file at once and refuses a missing one; a glob (which
            // fail2ban's client expands before sending) is followed as it matches.
            if !value.contains(['*', '?', '[']) && !std::path::Path::new(value).is_file() {
                return Err(PyException {
                    module: "builtins".into(),
                    name: "FileNotFoundError".into(),
                    args: vec![PyValue::Int(2), s("No such file or directory"), s(value)],
                });
            }
            let spec = format!("{value} {}", if tail { "tail" } else { "head" });
            let path =
                LogPath::parse(&spec).map_err(|e| PyException::value_error(e.to_string()))?;
            if !st.logpaths.iter().any(|p| p == value) {
                st.logpaths.push(value.to_string());
                st.settings.pending.push(Change::AddPath(path));
            }
            list(&st.logpaths)
        }
        "dellogpath" => {
            if let Some(at) = st.logpaths.iter().position(|p| p == value) {
                st.logpaths.remove(at);
                st.settings
                    .pending
                    .push(Change::RemovePath(value.to_string()));
            }
            list(&st.logpaths)
        }
        "logencoding" => {
            let encoding = Encoding::parse(value).ok_or_else(|| {
                PyException::new(
                    "builtins",
                    "LookupError",
                    format!("unknown encoding: {value}"),
                )
            })?;
            st.settings.encoding = encoding;
            st.settings.pending.push(Change::Encoding(encoding));
            s(encoding.name())
        }
        "prefregex" => {
            st.settings
                .change_filter(find_time, |f| {
                    f.spec.prefregex = Some(value.to_string()).filter(|v| !v.is_empty());
                })
                .map_err(refused)?;
            s(value)
        }
        "addfailregex" => {
            st.settings
                .change_filter(find_time, |f| f.spec.failregex.push(value.to_string()))
                .map_err(refused)?;
            list(&st.settings.filter.spec.failregex)
        }
        "delfailregex" => {
            let i = index(value)?;
            st.settings
                .change_filter(find_time, |f| remove_at(&mut f.spec.failregex, i))
                .map_err(refused)?;
            list(&st.settings.filter.spec.failregex)
        }
        "addignoreregex" => {
            st.settings
                .change_filter(find_time, |f| f.spec.ignoreregex.push(value.to_string()))
                .map_err(refused)?;
            list(&st.settings.filter.spec.ignoreregex)
        }
        "delignoreregex" => {
            let i = index(value)?;
            st.settings
                .change_filter(find_time, |f| remove_at(&mut f.spec.ignoreregex, i))
                .map_err(refused)?;
            list(&st.settings.filter.spec.ignoreregex)
        }
        "usedns" => {
            let use_dns = UseDns::parse(value);
            st.settings
                .change_filter(find_time, |f| f.spec.use_dns = use_dns)
                .map_err(refused)?;
            s(use_dns_word(use_dns))
        }
        "datepattern" => {
            st.settings
                .change_filter(find_time, |f| {
                    f.datepattern = Some(value.to_string()).filter(|v| !v.is_empty());
                })
                .map_err(refused)?;
            date_pattern(&st.settings.filter)
        }
        "logtimezone" => {
            st.settings
                .change_filter(find_time, |f| {
                    f.logtimezone = Some(value.to_string()).filter(|v| !v.is_empty());
                })
                .map_err(refused)?;
            st.settings
                .filter
                .logtimezone
                .clone()
                .map_or(PyValue::None, s)
        }
        "maxlines" => {
            let n = index(value)?;
            let n = usize::try_from(n.max(1)).unwrap_or(1);
            st.settings
                .change_filter(find_time, |f| f.spec.maxlines = n)
                .map_err(refused)?;
            int(n)
        }
        _ => return Ok(None),
    }))
}

/// Commands every command action has, set or not (fail2ban's class attributes).
const ACTION_COMMANDS: [&str; 9] = [
    "actionban",
    "actioncheck",
    "actionflush",
    "actionreban",
    "actionreload",
    "actionrepair",
    "actionstart",
    "actionstop",
    "actionunban",
];

fn action<'a>(st: &'a JailState, name: &str) -> Result<&'a [(String, String)], PyException> {
    st.action_properties
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.as_slice())
        .ok_or_else(|| PyException::key_error(name))
}

/// `get JAIL action ACT PROP`: the property as configured (tags not yet replaced).
pub fn action_property(st: &JailState, name: &str, property: &str) -> Result<PyValue, PyException> {
    let props = action(st, name)?;
    if let Some((_, v)) = props.iter().rev().find(|(k, _)| k == property) {
        return Ok(s(v.clone()));
    }
    match property {
        "timeout" => Ok(int(60)),
        p if ACTION_COMMANDS.contains(&p) => Ok(s("")),
        _ => Err(PyException::new(
            "builtins",
            "AttributeError",
            format!(
                "'CommandAction' object has no attribute {}",
                rampart_control::str_repr(property)
            ),
        )),
    }
}

/// `get JAIL actionproperties ACT`: sorted, as Python's `dir()` lists them.
pub fn action_properties(st: &JailState, name: &str) -> Result<PyValue, PyException> {
    let props = action(st, name)?;
    let mut names: Vec<String> = ACTION_COMMANDS.iter().map(|c| c.to_string()).collect();
    names.push("timeout".to_string());
    names.extend(props.iter().map(|(k, _)| k.clone()));
    names.sort();
    names.dedup();
    Ok(list(&names))
}

/// `get JAIL actionmethods ACT`: the operations a rampart command action performs.
pub fn action_methods(st: &JailState, name: &str) -> Result<PyValue, PyException> {
    action(st, name)?;
    let methods: Vec<String> = [
        "ban", "flush", "prolong", "reban", "reload", "start", "stop", "unban",
    ]
    .iter()
    .map(|m| m.to_string())
    .collect();
    Ok(list(&methods))
}
