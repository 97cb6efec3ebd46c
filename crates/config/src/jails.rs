//! `jail.conf` and friends: every jail's options, its filter and actions, and its part
//! of the command stream.

use std::rc::Rc;

use indexmap::IndexMap;

use crate::args::{extract_options, split_with_options};
use crate::error::{ConfigError, Warning};
use crate::glob::glob;
use crate::ini::{GetError, Ini, Loader, Val, Vars};
use crate::readers::{
    ACTION_OPTIONS, ActionReader, DefInit, FILTER_OPTIONS, Kind, action_identity, action_stream,
    apply_auto_options, convert, fill_filter_stream, filter_stream,
};
use crate::stream::{Command, Stream, Value, py_json_dumps};
use crate::{
    Action, Jail, LogPath, MissingLogs, ReadOptions, ResolvedFilter, filter_from_commands,
};

/// The options a jail reads, with their types and defaults, in fail2ban's order.
const JAIL_OPTIONS: &[(Kind, &str, Option<&str>)] = &[
    (Kind::Bool, "enabled", Some("false")),
    (Kind::Str, "backend", Some("auto")),
    (Kind::Int, "maxretry", None),
    (Kind::Int, "maxmatches", None),
    (Kind::Str, "findtime", None),
    (Kind::Str, "bantime", None),
    (Kind::Bool, "bantime.increment", None),
    (Kind::Str, "bantime.factor", None),
    (Kind::Str, "bantime.formula", None),
    (Kind::Str, "bantime.multipliers", None),
    (Kind::Str, "bantime.maxtime", None),
    (Kind::Str, "bantime.rndtime", None),
    (Kind::Bool, "bantime.overalljails", None),
    (Kind::Str, "ignorecommand", None),
    (Kind::Bool, "ignoreself", None),
    (Kind::Str, "ignoreip", None),
    (Kind::Str, "ignorecache", None),
    (Kind::Str, "filter", Some("")),
    (Kind::Str, "logtimezone", None),
    (Kind::Str, "logencoding", None),
    (Kind::Str, "logpath", None),
    (Kind::Str, "action", Some("")),
];

/// What is read before anything else, to know whether the jail is enabled.
const FIRST_OPTIONS: &[(Kind, &str, Option<&str>)] = &[
    (Kind::Bool, "enabled", Some("false")),
    (Kind::Str, "backend", Some("auto")),
    (Kind::Str, "filter", Some("")),
];

fn all_jail_options() -> Vec<(Kind, &'static str, Option<&'static str>)> {
    let mut v = JAIL_OPTIONS.to_vec();
    v.extend(FILTER_OPTIONS.iter().map(|&(k, n)| (k, n, None)));
    v
}

/// Reads typed options of a section the way fail2ban's `getOptions` does: a missing
/// option takes its default (with a warning) or is left out.
pub fn get_options(
    cfg: &Ini,
    section: &str,
    spec: &[(Kind, &str, Option<&str>)],
    warnings: &mut Vec<Warning>,
) -> Result<IndexMap<String, Value>, ConfigError> {
    let mut values = IndexMap::new();
    let default_value = |kind: Kind, d: Option<&str>| match (kind, d) {
        (_, None) => Value::None,
        (Kind::Bool, Some(d)) => Value::Bool(d == "true"),
        (_, Some(d)) => Value::Str(d.to_string()),
    };
    for &(kind, name, default) in spec {
        match cfg.get(section, name, &Vars::new()) {
            Ok(v) => {
                let what = format!("[{section}] {name}");
                let mut local = Vec::new();
                let value = convert(kind, &v.text, &what, &mut local);
                if !local.is_empty() {
                    warnings.extend(local.into_iter().map(|mut w| {
                        if let Some(o) = &v.origin {
                            w.file = Some(o.file.to_string());
                            w.line = Some(o.line);
                        }
                        w
                    }));
                    values.insert(name.to_string(), default_value(kind, default));
                } else {
                    values.insert(name.to_string(), value);
                }
            }
            Err(GetError::NoSection) => {
                warnings.push(Warning::new(format!("no section [{section}]")));
                values.insert(name.to_string(), default_value(kind, default));
            }
            Err(GetError::NoOption) => {
                if default.is_some() {
                    warnings.push(Warning::new(format!(
                        "[{section}] {name} is not set, using {}",
                        default_value(kind, default)
                    )));
                    values.insert(name.to_string(), default_value(kind, default));
                }
            }
            Err(GetError::Fatal(e)) => return Err(e),
        }
    }
    Ok(values)
}

/// Jail options as the values other files see (`str()` of each, `None` left out).
fn as_vals(opts: &IndexMap<String, Value>) -> IndexMap<String, Val> {
    opts.iter()
        .filter(|(_, v)| **v != Value::None)
        .map(|(k, v)| (k.clone(), Val::synthetic(v.to_py_str())))
        .collect()
}

fn str_opt<'a>(opts: &'a IndexMap<String, Value>, key: &str) -> &'a str {
    opts.get(key).and_then(Value::as_str).unwrap_or("")
}

enum JailAction {
    File(Box<ActionReader>),
    Python {
        actname: String,
        path: String,
        json: String,
    },
}

/// One jail after reading, before conversion.
struct JailState {
    name: String,
    opts: IndexMap<String, Value>,
    filter: Option<(String, DefInit)>,
    actions: Vec<JailAction>,
    error: Option<String>,
}

/// Reads every jail section; returns the enabled jails and those with errors.
pub(crate) fn read_jails(
    loader: &mut Loader<'_>,
    options: &ReadOptions,
) -> Result<(Vec<Jail>, Stream), ConfigError> {
    let mut cfg = match loader.read("jail")? {
        Some((ini, _)) => ini,
        None => {
            loader.warnings.push(Warning::new(format!(
                "found no accessible config files for \"jail\" under {}",
                loader.basedir
            )));
            Ini::default()
        }
    };
    for (k, v) in [
        ("fail2ban_version", options.fail2ban_version.clone()),
        ("fail2ban_confpath", loader.basedir.clone()),
    ] {
        cfg.defaults.insert(k.to_string(), Val::synthetic(v));
    }
    let names: Vec<String> = cfg
        .sections
        .keys()
        .filter(|n| !n.starts_with("KNOWN/") && n.as_str() != "INCLUDES")
        .cloned()
        .collect();
    let referenced = referenced_names(&cfg);
    let mut states = Vec::new();
    for name in names {
        if let Some(state) = read_jail(loader, &mut cfg, &name)? {
            warn_unknown_options(loader, &cfg, &name, &referenced);
            states.push(state);
        }
    }
    let mut jails = Vec::new();
    let mut stream = Stream::new();
    for state in states {
        let jail = convert_jail(loader, state, options)?;
        stream.extend(jail.stream.iter().cloned());
        jails.push(jail);
    }
    for jail in &jails {
        if jail.config_error.is_none() {
            stream.push(vec!["start".into(), jail.name.as_str().into()]);
        }
    }
    Ok((jails, stream))
}

/// Every name used as `%(name)s` (or `%(section/name)s`) anywhere in the jail files.
fn referenced_names(cfg: &Ini) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    let values = cfg
        .defaults
        .values()
        .chain(cfg.sections.values().flat_map(|s| s.values()));
    for v in values {
        let mut rest = v.text.as_str();
        while let Some(at) = rest.find("%(") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(")s") {
                let name = &rest[..end];
                let name = name.rsplit('/').next().unwrap_or(name);
                names.insert(name.to_lowercase());
            }
        }
    }
    names
}

/// Keys of a jail section that fail2ban ignores: neither a jail option nor used by an
/// interpolation (usually a typo such as `maxretries`).
fn warn_unknown_options(
    loader: &mut Loader<'_>,
    cfg: &Ini,
    jail: &str,
    referenced: &std::collections::HashSet<String>,
) {
    let Some(section) = cfg.sections.get(jail) else {
        return;
    };
    for (key, val) in section {
        let known = JAIL_OPTIONS.iter().any(|(_, n, _)| n == key)
            || FILTER_OPTIONS.iter().any(|(_, n)| n == key)
            || key.starts_with("known/")
            || referenced.contains(key);
        if !known {
            let mut w = Warning::jail(jail, format!("unknown option {key:?} is ignored"));
            if let Some(o) = &val.origin {
                w.file = Some(o.file.to_string());
                w.line = Some(o.line);
            }
            loader.warnings.push(w);
        }
    }
}

/// Why reading a jail stopped: a reason to skip only this jail, or a fatal error.
enum JailFail {
    Skip(String),
    Fatal(ConfigError),
}

impl From<ConfigError> for JailFail {
    fn from(e: ConfigError) -> Self {
        JailFail::Fatal(e)
    }
}

fn read_jail(
    loader: &mut Loader<'_>,
    cfg: &mut Ini,
    name: &str,
) -> Result<Option<JailState>, ConfigError> {
    let mut warnings = Vec::new();
    let first = get_options(cfg, name, FIRST_OPTIONS, &mut warnings)?;
    if first.get("enabled") != Some(&Value::Bool(true)) {
        // Warnings of disabled jails are noise: fail2ban reads them too, but nobody
        // asked about these jails.
        return Ok(None);
    }
    loader.warnings.append(&mut warnings);
    let mut state = JailState {
        name: name.to_string(),
        opts: first.clone(),
        filter: None,
        actions: Vec::new(),
        error: None,
    };
    match read_jail_parts(loader, cfg, &mut state, &first) {
        Ok(()) => {}
        Err(JailFail::Skip(msg)) => {
            loader
                .warnings
                .push(Warning::jail(name, format!("skipped: {msg}")));
            state.error = Some(msg);
        }
        Err(JailFail::Fatal(e)) => return Err(e),
    }
    Ok(Some(state))
}

type JailResult = Result<(), JailFail>;

fn read_jail_parts(
    loader: &mut Loader<'_>,
    cfg: &mut Ini,
    state: &mut JailState,
    first: &IndexMap<String, Value>,
) -> JailResult {
    let name = state.name.clone();
    let filter_spec = str_opt(first, "filter").to_string();
    if !filter_spec.is_empty() {
        let (filter_name, args) = extract_options(&filter_spec).map_err(|e| {
            JailFail::Skip(format!("invalid filter definition {filter_spec:?}: {e}"))
        })?;
        let logical = crate::pypath::join("filter.d", &filter_name);
        let Some(fcfg) = loader.shared(&logical)? else {
            return Err(JailFail::Skip(format!(
                "unable to read the filter {filter_name:?}"
            )));
        };
        let args = args
            .into_iter()
            .map(|(k, v)| (k, Val::synthetic(v)))
            .collect();
        let mut reader = DefInit::new(fcfg, logical, &name, args, FILTER_OPTIONS);
        apply_auto_options(&mut reader, str_opt(first, "backend"));
        reader.get_options(&as_vals(first), true, &mut loader.warnings)?;
        let combined = reader.combined(&[], &mut loader.warnings)?;
        let known = combined
            .into_iter()
            .map(|(k, v)| (k, Val::synthetic(v.to_py_str())))
            .collect();
        cfg.merge_section(&name, known, "known/");
        state.filter = Some((filter_name, reader));
    } else {
        loader.warnings.push(Warning::jail(&name, "no filter set"));
    }
    let opts = get_options(cfg, &name, &all_jail_options(), &mut loader.warnings)?;
    state.opts = opts.clone();
    if let Some((_, reader)) = state.filter.as_mut() {
        reader.get_options(&as_vals(&opts), false, &mut loader.warnings)?;
    }
    for act in split_with_options(str_opt(&opts, "action")) {
        let act = rampart_ini::py_strip(&act);
        if act.is_empty() {
            continue;
        }
        let (act_name, args) = extract_options(act)
            .map_err(|e| JailFail::Skip(format!("invalid action definition {act:?}: {e}")))?;
        if act_name.ends_with(".py") {
            let mut args = args;
            let actname = args
                .shift_remove("actname")
                .unwrap_or_else(|| crate::pypath::splitext(&act_name).0.to_string());
            let json_args: Vec<(String, String)> = args.into_iter().collect();
            state.actions.push(JailAction::Python {
                actname,
                path: crate::pypath::join(
                    &crate::pypath::join(&loader.basedir, "action.d"),
                    &act_name,
                ),
                json: py_json_dumps(&json_args),
            });
            continue;
        }
        let mut args: IndexMap<String, Val> = args
            .into_iter()
            .map(|(k, v)| (k, Val::synthetic(v)))
            .collect();
        let actname = action_identity(&act_name, &name, &mut args);
        let logical = crate::pypath::join("action.d", &act_name);
        let Some(acfg) = loader.shared(&logical)? else {
            return Err(JailFail::Skip(format!(
                "unable to read action {act_name:?}"
            )));
        };
        let mut reader = DefInit::new(acfg, logical, &name, args, ACTION_OPTIONS);
        reader.get_options(&as_vals(&opts), false, &mut loader.warnings)?;
        state.actions.push(JailAction::File(Box::new(ActionReader {
            actname,
            file: act_name,
            reader,
        })));
    }
    if state.actions.is_empty() {
        loader
            .warnings
            .push(Warning::jail(&name, "no actions defined"));
    }
    Ok(())
}

fn convert_jail(
    loader: &mut Loader<'_>,
    state: JailState,
    options: &ReadOptions,
) -> Result<Jail, ConfigError> {
    let name = state.name.clone();
    let mut jail = Jail {
        name: name.clone(),
        enabled: state.opts.get("enabled") == Some(&Value::Bool(true)),
        backend: String::new(),
        filter: None,
        actions: Vec::new(),
        logpaths: Vec::new(),
        options: state.opts.clone(),
        config_error: state.error.clone(),
        stream: Stream::new(),
    };
    if let Some(e) = &state.error {
        jail.stream.push(vec![
            "config-error".into(),
            format!("Jail '{name}' skipped, because of wrong configuration: {e}").into(),
        ]);
        return Ok(jail);
    }
    let mut stream = Stream::new();
    let mut filter_opts = IndexMap::new();
    if let Some((_, reader)) = &state.filter {
        let (s, opts) = filter_stream(reader, &mut loader.warnings)?;
        stream.extend(s);
        filter_opts = opts;
    }
    fill_filter_stream(&mut stream, &state.opts, &name)?;
    let mut logpath_cmds = Stream::new();
    let mut backend = String::new();
    let systemd = str_opt(&state.opts, "backend").starts_with("systemd");
    for (opt, value) in &state.opts {
        match opt.as_str() {
            "logpath" => {
                if systemd {
                    continue;
                }
                let mut found = 0;
                let text = value.to_py_str();
                for line in text.split('\n') {
                    let (path, position) = match line.rsplit_once(' ') {
                        Some((p, t)) => (p, t),
                        None => (line, "head"),
                    };
                    let matches = glob(loader.fs, path);
                    if matches.is_empty() {
                        loader
                            .warnings
                            .push(Warning::jail(&name, format!("no file found for {path:?}")));
                    }
                    for p in matches {
                        if !loader.fs.exists(&p) {
                            loader.warnings.push(Warning::jail(
                                &name,
                                format!("{p} is a dangling link, not monitored"),
                            ));
                            continue;
                        }
                        found += 1;
                        logpath_cmds.push(vec![
                            "set".into(),
                            name.as_str().into(),
                            "addlogpath".into(),
                            p.as_str().into(),
                            position.into(),
                        ]);
                        jail.logpaths.push(LogPath {
                            path: p,
                            position: position.to_string(),
                        });
                    }
                }
                if found == 0 {
                    match options.missing_logs {
                        MissingLogs::Error => {
                            return Err(ConfigError::NoLogFile {
                                jail: name.clone(),
                                logpath: text,
                            });
                        }
                        MissingLogs::Warn => loader
                            .warnings
                            .push(Warning::jail(&name, "have not found any log file")),
                    }
                }
            }
            "backend" => backend = value.to_py_str(),
            "ignoreip" => {
                let mut cmd: Command =
                    vec!["set".into(), name.as_str().into(), "addignoreip".into()];
                let text = value.to_py_str();
                cmd.extend(
                    text.split([' ', ',', '\n'])
                        .map(rampart_ini::py_strip)
                        .filter(|w| !w.is_empty())
                        .map(Value::from),
                );
                stream.push(cmd);
            }
            "action" | "filter" | "enabled" => {}
            o if FILTER_OPTIONS.iter().any(|(_, n)| *n == o) => {}
            _ => stream.push(vec![
                "set".into(),
                name.as_str().into(),
                opt.as_str().into(),
                value.clone(),
            ]),
        }
    }
    stream.extend(logpath_cmds);
    for action in &state.actions {
        match action {
            JailAction::File(reader) => {
                let (s, props) = action_stream(reader, &mut loader.warnings)?;
                stream.extend(s);
                jail.actions.push(Action {
                    name: reader.actname.clone(),
                    file: reader.file.clone(),
                    python: None,
                    properties: props,
                });
            }
            JailAction::Python {
                actname,
                path,
                json,
            } => {
                stream.push(vec![
                    "set".into(),
                    name.as_str().into(),
                    "addaction".into(),
                    actname.as_str().into(),
                    path.as_str().into(),
                    json.as_str().into(),
                ]);
                jail.actions.push(Action {
                    name: actname.clone(),
                    file: path.clone(),
                    python: Some(json.clone()),
                    properties: Vec::new(),
                });
            }
        }
    }
    stream.insert(
        0,
        vec!["add".into(), name.as_str().into(), backend.as_str().into()],
    );
    jail.backend = backend;
    if let Some((filter_name, reader)) = &state.filter {
        let mut filter = filter_from_commands(&stream);
        filter.name = filter_name.clone();
        filter.file = loader.main_file(&reader.logical).unwrap_or_default();
        filter.args = reader
            .init_opts
            .iter()
            .filter(|(k, _)| !k.starts_with("known/"))
            .map(|(k, v)| (k.clone(), v.text.clone()))
            .collect();
        filter.logtype = filter_opts.get("logtype").map(Value::to_py_str);
        filter.options = filter_opts;
        jail.filter = Some(filter);
    }
    jail.stream = stream;
    Ok(jail)
}

/// Reads one filter for `fail2ban-regex`-like use.
pub(crate) fn read_one_filter(
    loader: &mut Loader<'_>,
    cfg: Rc<Ini>,
    logical: String,
    args: IndexMap<String, String>,
    jail_name: &str,
    jail_vars: &IndexMap<String, String>,
    backend: &str,
) -> Result<ResolvedFilter, ConfigError> {
    let args: IndexMap<String, Val> = args
        .into_iter()
        .map(|(k, v)| (k, Val::synthetic(v)))
        .collect();
    let mut reader = DefInit::new(cfg, logical, jail_name, args, FILTER_OPTIONS);
    apply_auto_options(&mut reader, backend);
    let vars: IndexMap<String, Val> = jail_vars
        .iter()
        .map(|(k, v)| (k.clone(), Val::synthetic(v.clone())))
        .collect();
    reader.get_options(&vars, false, &mut loader.warnings)?;
    let (stream, opts) = filter_stream(&reader, &mut loader.warnings)?;
    let mut filter = filter_from_commands(&stream);
    filter.logtype = opts.get("logtype").map(Value::to_py_str);
    filter.options = opts;
    filter.args = reader
        .init_opts
        .iter()
        .filter(|(k, _)| !k.starts_with("known/"))
        .map(|(k, v)| (k.clone(), v.text.clone()))
        .collect();
    Ok(filter)
}
