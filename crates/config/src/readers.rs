//! Filter and action files: `[Definition]` options, `[Init]` overrides, `name[...]`
//! arguments, and their conversion to commands.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use indexmap::IndexMap;

use crate::error::{ConfigError, Warning};
use crate::ini::{GetError, Ini, Val, Vars, split_conditional, vars_from};
use crate::stream::{Command, Stream, Value};
use crate::tags::{TagOptions, substitute_in_place};

/// The type an option is converted to once resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
}

/// The options a filter file defines, with their types.
pub const FILTER_OPTIONS: &[(Kind, &str)] = &[
    (Kind::Str, "usedns"),
    (Kind::Str, "prefregex"),
    (Kind::Str, "ignoreregex"),
    (Kind::Str, "failregex"),
    (Kind::Int, "maxlines"),
    (Kind::Str, "datepattern"),
    (Kind::Str, "journalmatch"),
];

/// The options an action file defines, with their types.
pub const ACTION_OPTIONS: &[(Kind, &str)] = &[
    (Kind::Str, "actionstart"),
    (Kind::Bool, "actionstart_on_demand"),
    (Kind::Str, "actionstop"),
    (Kind::Str, "actionflush"),
    (Kind::Str, "actionreload"),
    (Kind::Str, "actioncheck"),
    (Kind::Str, "actionrepair"),
    (Kind::Bool, "actionrepair_on_unban"),
    (Kind::Str, "actionban"),
    (Kind::Str, "actionprolong"),
    (Kind::Str, "actionreban"),
    (Kind::Str, "actionunban"),
    (Kind::Bool, "norestored"),
];

/// Tags an action keeps for run time.
const ACTION_RUNTIME_TAGS: &[&str] = &[
    "matches",
    "ipmatches",
    "ipjailmatches",
    "timeout",
    "bantime",
];

/// Python's `int(text)`: blanks around, a sign, digits with single underscores between.
pub fn py_int(text: &str) -> Option<i64> {
    let t = rampart_ini::py_strip(text);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let n: i64 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -n } else { n })
}

/// fail2ban's boolean: `1`, `on`, `true`, `yes` in any case; anything else is false.
pub fn py_bool(text: &str) -> bool {
    matches!(text.to_lowercase().as_str(), "1" | "on" | "true" | "yes")
}

/// Converts a resolved string to its option type; `None` (with a warning) when the
/// text is not a number.
pub fn convert(kind: Kind, text: &str, what: &str, warnings: &mut Vec<Warning>) -> Value {
    match kind {
        Kind::Str => Value::Str(text.to_string()),
        Kind::Bool => Value::Bool(py_bool(text)),
        Kind::Int => match py_int(text) {
            Some(i) => Value::Int(i),
            None => {
                warnings.push(Warning::new(format!(
                    "{what}: {text:?} is not a number, ignored"
                )));
                Value::None
            }
        },
    }
}

/// A `[Definition]`/`[Init]` file (filter or action) as one jail uses it.
#[derive(Debug)]
pub struct DefInit {
    pub cfg: Rc<Ini>,
    /// The logical name (`filter.d/sshd`).
    pub logical: String,
    pub jail: String,
    /// Arguments, then `[Init]` values and their `known/` copies.
    pub init_opts: IndexMap<String, Val>,
    /// `[Definition]` options; `None` when the file has no `[Definition]`.
    pub opts: IndexMap<String, Option<Val>>,
    /// The values `get` sees before the file's own (jail options and `init_opts`).
    p_opts: IndexMap<String, Val>,
    /// Results of tag look-ups in `[Definition]`, kept for the reader's lifetime.
    def_cache: RefCell<HashMap<String, Option<String>>>,
    options: &'static [(Kind, &'static str)],
}

impl DefInit {
    pub fn new(
        cfg: Rc<Ini>,
        logical: String,
        jail: &str,
        init_opts: IndexMap<String, Val>,
        options: &'static [(Kind, &'static str)],
    ) -> Self {
        DefInit {
            cfg,
            logical,
            jail: jail.to_string(),
            init_opts,
            opts: IndexMap::new(),
            p_opts: IndexMap::new(),
            def_cache: RefCell::new(HashMap::new()),
            options,
        }
    }

    /// Reads the `[Definition]` options not given by the caller, and `[Init]`.
    pub fn get_options(
        &mut self,
        p_opts: &IndexMap<String, Val>,
        all: bool,
        warnings: &mut Vec<Warning>,
    ) -> Result<(), ConfigError> {
        let mut merged = p_opts.clone();
        for (k, v) in &self.init_opts {
            merged.insert(k.clone(), v.clone());
        }
        let vars = vars_from(&merged);
        let mut opts = IndexMap::new();
        for &(_, name) in self.options {
            if merged.contains_key(name) {
                continue;
            }
            match self.cfg.get("Definition", name, &vars) {
                Ok(v) => {
                    opts.insert(name.to_string(), Some(v));
                }
                Err(GetError::NoSection) => {
                    warnings.push(Warning::new(format!(
                        "{}: no [Definition] section",
                        self.logical
                    )));
                    opts.insert(name.to_string(), None);
                }
                Err(GetError::NoOption) => {}
                Err(GetError::Fatal(e)) => return Err(e),
            }
        }
        self.opts = opts;
        self.p_opts = merged;
        if self.cfg.has_section("Init") {
            for opt in self.cfg.own_options("Init") {
                if opt.starts_with("known/") {
                    if !self.init_opts.contains_key(&opt) {
                        let v = self.get_plain("Init", &opt)?;
                        self.init_opts.insert(opt, v);
                    }
                    continue;
                }
                let v = self.get_plain("Init", &opt)?;
                self.init_opts.insert(format!("known/{opt}"), v.clone());
                if !self.init_opts.contains_key(&opt) {
                    self.init_opts.insert(opt, v);
                }
            }
        }
        if all && self.cfg.has_section("Definition") {
            for opt in self.cfg.own_options("Definition") {
                if self.opts.contains_key(&opt) {
                    continue;
                }
                let v = self.get_plain("Definition", &opt)?;
                self.opts.insert(opt, Some(v));
            }
        }
        Ok(())
    }

    fn get_plain(&self, section: &str, option: &str) -> Result<Val, ConfigError> {
        match self.cfg.get(section, option, &Vars::new()) {
            Ok(v) => Ok(v),
            Err(GetError::Fatal(e)) => Err(e),
            Err(_) => Ok(Val::synthetic("")),
        }
    }

    /// A `[Definition]` value with the caller's values visible, for tags that are not
    /// among the combined options (`<lt_file/__prefix_line>`, `<__prefix_line>`).
    fn comb_option(&self, name: &str) -> Result<Option<String>, ConfigError> {
        if let Some(cached) = self.def_cache.borrow().get(name) {
            return Ok(cached.clone());
        }
        let vars = vars_from(&self.p_opts);
        let value = match self.cfg.get_ex("Definition", name, &vars) {
            Ok(v) => Some(v.text),
            Err(GetError::Fatal(e)) => return Err(e),
            Err(_) => None,
        };
        self.def_cache
            .borrow_mut()
            .insert(name.to_string(), value.clone());
        Ok(value)
    }

    /// `[Definition]` and `[Init]` merged (arguments first), tags resolved, types
    /// converted.
    pub fn combined(
        &self,
        ignore: &[&str],
        warnings: &mut Vec<Warning>,
    ) -> Result<IndexMap<String, Value>, ConfigError> {
        let mut combined: IndexMap<String, Option<String>> = self
            .opts
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.text.clone())))
            .collect();
        for (k, v) in &self.init_opts {
            combined.insert(k.clone(), Some(v.text.clone()));
        }
        if combined.is_empty() {
            return Ok(IndexMap::new());
        }
        let mut ignored: HashSet<String> = ignore.iter().map(|s| s.to_string()).collect();
        for key in combined.keys() {
            if let Some((base, _)) = split_conditional(key) {
                ignored.insert(base.to_string());
            }
        }
        let failure: RefCell<Option<ConfigError>> = RefCell::new(None);
        let mut extra = |name: &str| match self.comb_option(name) {
            Ok(v) => v,
            Err(e) => {
                failure.borrow_mut().get_or_insert(e);
                None
            }
        };
        substitute_in_place(
            &mut combined,
            TagOptions {
                conditional: None,
                ignore: Some(&ignored),
            },
            &mut extra,
        )
        .map_err(|e| ConfigError::Tags {
            file: self.logical.clone(),
            message: e.to_string(),
        })?;
        if let Some(e) = failure.into_inner() {
            return Err(e);
        }
        let mut out = IndexMap::new();
        for (k, v) in combined {
            let kind = self
                .options
                .iter()
                .find(|(_, n)| *n == k)
                .map_or(Kind::Str, |(kind, _)| *kind);
            let value = match v {
                None => Value::None,
                Some(text) => convert(kind, &text, &format!("{} {k}", self.logical), warnings),
            };
            out.insert(k, value);
        }
        Ok(out)
    }
}

/// Appends the filter-related commands of `opts` (a filter's combined options or a
/// jail's options) the way fail2ban orders them: `usedns` first, then `prefregex` and
/// `maxlines`, regexes and the rest in option order.
pub fn fill_filter_stream(
    stream: &mut Stream,
    opts: &IndexMap<String, Value>,
    jail: &str,
) -> Result<(), ConfigError> {
    let mut priority = 0;
    let set =
        |opt: &str, value: Value| -> Command { vec!["set".into(), jail.into(), opt.into(), value] };
    for (opt, value) in opts {
        if *value == Value::None {
            continue;
        }
        match opt.as_str() {
            "failregex" | "ignoreregex" => {
                let text = value.to_py_str();
                let lines: Vec<Value> = text
                    .split('\n')
                    .filter(|l| !l.is_empty())
                    .map(Value::from)
                    .collect();
                let verb = format!("add{opt}");
                if lines.len() > 1 {
                    stream.push(vec![
                        "multi-set".into(),
                        jail.into(),
                        verb.into(),
                        Value::List(lines),
                    ]);
                } else if let Some(line) = lines.into_iter().next() {
                    stream.push(set(&verb, line));
                }
            }
            "usedns" | "maxlines" | "prefregex" => {
                let at = if opt == "usedns" { 0 } else { priority };
                stream.insert(at.min(stream.len()), set(opt, value.clone()));
                priority += 1;
            }
            // fail2ban tests `opt in ('datepattern')`, a substring test on a string.
            o if "datepattern".contains(o) => stream.push(set(opt, value.clone())),
            "journalmatch" => {
                for line in value.to_py_str().split('\n') {
                    if line.is_empty() {
                        continue;
                    }
                    let words = crate::shlex::split(line).map_err(|e| {
                        ConfigError::Invalid(format!("[{jail}] journalmatch {line:?}: {e}"))
                    })?;
                    let mut cmd: Command =
                        vec!["set".into(), jail.into(), "addjournalmatch".into()];
                    cmd.extend(words.into_iter().map(Value::Str));
                    stream.push(cmd);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The commands of a filter for one jail.
pub fn filter_stream(
    reader: &DefInit,
    warnings: &mut Vec<Warning>,
) -> Result<(Stream, IndexMap<String, Value>), ConfigError> {
    let opts = reader.combined(&[], warnings)?;
    let mut stream = Stream::new();
    if !opts.is_empty() {
        fill_filter_stream(&mut stream, &opts, &reader.jail)?;
    }
    Ok((stream, opts))
}

/// Sets `logtype` from the backend unless the arguments or the filter set it.
pub fn apply_auto_options(reader: &mut DefInit, backend: &str) {
    let given = reader
        .init_opts
        .get("logtype")
        .is_some_and(|v| !v.text.is_empty());
    if !given && !reader.cfg.has_own_option("Definition", "logtype") {
        let logtype = if backend.starts_with("systemd") {
            "journal"
        } else {
            "file"
        };
        reader
            .init_opts
            .insert("logtype".into(), Val::synthetic(logtype));
    }
}

/// An action as a jail uses it: the name it is registered under, and its reader.
#[derive(Debug)]
pub struct ActionReader {
    pub actname: String,
    pub file: String,
    pub reader: DefInit,
}

/// `name` defaults to the jail name; `actname` to the file name, suffixed when `name`
/// differs from the jail so that one jail can use the same action twice.
pub fn action_identity(file: &str, jail: &str, args: &mut IndexMap<String, Val>) -> String {
    let name = match args.get("name") {
        Some(v) => v.text.clone(),
        None => {
            args.insert("name".into(), Val::synthetic(jail));
            jail.to_string()
        }
    };
    match args.get("actname") {
        Some(v) => v.text.clone(),
        None => {
            let mut actname = file.to_string();
            if name != jail {
                match name.strip_prefix(jail) {
                    Some(rest) => actname.push_str(rest),
                    None => {
                        actname.push('-');
                        actname.push_str(&name);
                    }
                }
            }
            args.insert("actname".into(), Val::synthetic(actname.clone()));
            actname
        }
    }
}

/// The commands that register an action and set its properties; also returns the
/// properties.
pub fn action_stream(
    action: &ActionReader,
    warnings: &mut Vec<Warning>,
) -> Result<(Stream, Vec<(String, Value)>), ConfigError> {
    let reader = &action.reader;
    let opts = reader.combined(ACTION_RUNTIME_TAGS, warnings)?;
    let jail = reader.jail.as_str();
    let mut stream: Stream = vec![vec![
        "set".into(),
        jail.into(),
        "addaction".into(),
        action.actname.as_str().into(),
    ]];
    let is_option = |k: &str| ACTION_OPTIONS.iter().any(|(_, n)| *n == k);
    let mut props: Vec<(String, Value)> = opts
        .iter()
        .filter(|(k, _)| is_option(k) && !k.starts_with("known/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    props.extend(
        reader
            .init_opts
            .iter()
            .filter(|(k, _)| !is_option(k) && !k.starts_with("known/"))
            .map(|(k, v)| (k.clone(), Value::Str(v.text.clone()))),
    );
    if props.len() > 1 {
        let list = props
            .iter()
            .map(|(k, v)| Value::List(vec![k.as_str().into(), v.clone()]))
            .collect();
        stream.push(vec![
            "multi-set".into(),
            jail.into(),
            "action".into(),
            action.actname.as_str().into(),
            Value::List(list),
        ]);
    } else if let Some((k, v)) = props.first() {
        stream.push(vec![
            "set".into(),
            jail.into(),
            "action".into(),
            action.actname.as_str().into(),
            k.as_str().into(),
            v.clone(),
        ]);
    }
    Ok((stream, props))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int_and_bool() {
        assert_eq!(py_int(" 12 "), Some(12));
        assert_eq!(py_int("-1_000"), Some(-1000));
        assert_eq!(py_int("+3"), Some(3));
        for bad in ["", "1.5", "0x10", "_1", "1__0", "1 2", "-"] {
            assert_eq!(py_int(bad), None, "{bad:?}");
        }
        assert!(py_bool("Yes") && py_bool("1") && py_bool("ON"));
        assert!(!py_bool(" yes") && !py_bool("2") && !py_bool("false"));
    }

    #[test]
    fn action_names() {
        let mut args = IndexMap::new();
        assert_eq!(action_identity("iptables", "sshd", &mut args), "iptables");
        assert_eq!(args["name"].text, "sshd");
        let mut args: IndexMap<String, Val> =
            [("name".to_string(), Val::synthetic("sshd-udp"))].into();
        assert_eq!(
            action_identity("iptables", "sshd", &mut args),
            "iptables-udp"
        );
        let mut args: IndexMap<String, Val> =
            [("name".to_string(), Val::synthetic("other"))].into();
        assert_eq!(
            action_identity("iptables", "sshd", &mut args),
            "iptables-other"
        );
        let mut args: IndexMap<String, Val> =
            [("actname".to_string(), Val::synthetic("mine"))].into();
        assert_eq!(action_identity("iptables", "sshd", &mut args), "mine");
    }
}
