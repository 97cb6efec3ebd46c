//! A configuration merged from several files, read the way fail2ban reads one logical
//! name: overlays, `[INCLUDES]`, conditional sections, `KNOWN/` bookkeeping, and lazy
//! `%(name)s` interpolation.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use indexmap::IndexMap;
use rampart_ini::{DEFAULT_SECTION, Document, lower};

use crate::error::{ConfigError, Origin, Warning};
use crate::fs::FileSystem;
use crate::glob::glob;
use crate::pypath;

/// Python's `MAX_INTERPOLATION_DEPTH`.
const MAX_INTERPOLATION_DEPTH: usize = 10;
const MAX_INCLUDE_DEPTH: usize = 64;

/// A value and where it was written (values made up by the reader have no origin).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Val {
    pub text: String,
    pub origin: Option<Arc<Origin>>,
}

impl Val {
    pub fn synthetic(text: impl Into<String>) -> Self {
        Val {
            text: text.into(),
            origin: None,
        }
    }
}

pub type SectionMap = IndexMap<String, Val>;

/// Caller-supplied values, consulted before the section (`vars` in configparser).
/// Keys are lower-cased.
pub type Vars = IndexMap<String, Val>;

/// Builds [`Vars`] from a map whose keys may have any case (later keys win).
pub fn vars_from<'a>(items: impl IntoIterator<Item = (&'a String, &'a Val)>) -> Vars {
    let mut vars = Vars::new();
    for (k, v) in items {
        vars.insert(lower(k), v.clone());
    }
    vars
}

/// Why a value could not be had.
#[derive(Debug)]
pub enum GetError {
    NoSection,
    NoOption,
    Fatal(ConfigError),
}

impl From<ConfigError> for GetError {
    fn from(e: ConfigError) -> Self {
        GetError::Fatal(e)
    }
}

/// The merged sections of one logical configuration.
#[derive(Clone, Debug, Default)]
pub struct Ini {
    pub defaults: SectionMap,
    pub sections: IndexMap<String, SectionMap>,
}

/// `^(\w+)(\?.+)$`: a conditional section or key name, split into base and condition.
pub fn split_conditional(name: &str) -> Option<(&str, &str)> {
    let q = name.find('?')?;
    let (base, cond) = name.split_at(q);
    let base_ok = !base.is_empty() && base.chars().all(|c| c.is_alphanumeric() || c == '_');
    (base_ok && cond.len() > 1).then_some((base, cond))
}

impl Ini {
    fn from_document(doc: &Document, file: &Arc<str>) -> Ini {
        let mut ini = Ini::default();
        for section in &doc.sections {
            let map: SectionMap = section
                .entries
                .iter()
                .map(|e| {
                    let origin = Origin {
                        file: file.clone(),
                        line: e.line,
                        section: section.name.clone(),
                        key: e.key.clone(),
                    };
                    (
                        e.key.clone(),
                        Val {
                            text: e.value.clone(),
                            origin: Some(Arc::new(origin)),
                        },
                    )
                })
                .collect();
            if section.name == DEFAULT_SECTION {
                ini.defaults.extend(map);
            } else {
                ini.sections.insert(section.name.clone(), map);
            }
        }
        ini
    }

    /// Merges one file over what was read so far: key by key, conditional sections
    /// folded into their base with renamed keys, overridden values kept in `KNOWN/`.
    fn merge(&mut self, file: &Ini) {
        self.defaults
            .extend(file.defaults.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (name, section) in &file.sections {
            let (name, section) = match split_conditional(name) {
                Some((base, cond)) => (
                    base.to_string(),
                    section
                        .iter()
                        .map(|(k, v)| (format!("{k}{cond}"), v.clone()))
                        .collect::<SectionMap>(),
                ),
                None => (name.clone(), section.clone()),
            };
            if let Some(existing) = self.sections.get(&name) {
                let known: SectionMap = existing
                    .iter()
                    .filter(|(k, _)| section.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                self.merge_section(&format!("KNOWN/{name}"), known, "");
                if let Some(existing) = self.sections.get_mut(&name) {
                    existing.extend(section);
                }
            } else {
                self.sections.insert(name, section);
            }
        }
    }

    /// Adds options to a section (created when missing); with a prefix, options that
    /// already carry it are skipped and the others get it.
    pub fn merge_section(&mut self, section: &str, options: SectionMap, prefix: &str) {
        let target = self.sections.entry(section.to_string()).or_default();
        for (k, v) in options {
            if prefix.is_empty() {
                target.insert(k, v);
            } else if !k.starts_with(prefix) && k != "__name__" {
                target.insert(format!("{prefix}{k}"), v);
            }
        }
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(section)
    }

    /// Whether the section itself (not `[DEFAULT]`) has the option.
    pub fn has_own_option(&self, section: &str, option: &str) -> bool {
        self.sections
            .get(section)
            .is_some_and(|s| s.contains_key(option))
    }

    /// The section's own option names, in order.
    pub fn own_options(&self, section: &str) -> Vec<String> {
        self.sections
            .get(section)
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The raw (uninterpolated) value, looked up in vars, the section, then `[DEFAULT]`.
    pub fn get_raw(&self, section: &str, option: &str, vars: &Vars) -> Result<Val, GetError> {
        let own = if section == DEFAULT_SECTION {
            None
        } else {
            Some(self.sections.get(section).ok_or(GetError::NoSection)?)
        };
        let key = lower(option);
        vars.get(&key)
            .or_else(|| own.and_then(|s| s.get(&key)))
            .or_else(|| self.defaults.get(&key))
            .cloned()
            .ok_or(GetError::NoOption)
    }

    /// `ConfigParser.get`: the value with its `%(...)s` references resolved.
    pub fn get(&self, section: &str, option: &str, vars: &Vars) -> Result<Val, GetError> {
        let raw = self.get_raw(section, option, vars)?;
        let key = lower(option);
        let mut out = String::new();
        let ctx = Ctx {
            ini: self,
            section,
            option: &key,
            vars,
        };
        ctx.interpolate(&raw, &[], 1, &mut out)?;
        Ok(Val {
            text: out,
            origin: raw.origin,
        })
    }

    /// `get_ex`: also understands `sec/opt`, `known/opt` and `default/opt` as names.
    pub fn get_ex(&self, section: &str, option: &str, vars: &Vars) -> Result<Val, GetError> {
        if let Some((sec, opt)) = split_section_option(option) {
            let candidates: Vec<String> = match sec.to_lowercase().as_str() {
                "known" => vec![format!("KNOWN/{section}"), section.to_string()],
                "default" => vec![DEFAULT_SECTION.to_string()],
                _ => vec![sec.to_string()],
            };
            for candidate in candidates {
                match self.get(&candidate, opt, &Vars::new()) {
                    Ok(v) => return Ok(v),
                    Err(GetError::NoSection | GetError::NoOption) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.get(section, option, vars)
    }
}

/// `^([\w\-]+)/([^\s>]+)$`.
fn split_section_option(option: &str) -> Option<(&str, &str)> {
    let slash = option.find('/')?;
    let (sec, opt) = (&option[..slash], &option[slash + 1..]);
    let sec_ok = !sec.is_empty()
        && sec
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    let opt_ok = !opt.is_empty() && !opt.chars().any(|c| rampart_ini::is_py_space(c) || c == '>');
    (sec_ok && opt_ok).then_some((sec, opt))
}

/// One `get` call: the section and option asked for, and the caller's vars.
struct Ctx<'a> {
    ini: &'a Ini,
    section: &'a str,
    option: &'a str,
    vars: &'a Vars,
}

impl Ctx<'_> {
    fn error(&self, at: &Val, message: String) -> ConfigError {
        ConfigError::Interpolation {
            origin: at.origin.as_deref().cloned().map(Box::new),
            section: self.section.to_string(),
            option: self.option.to_string(),
            message,
        }
    }

    /// Looks a (lower-cased) name up: `__name__` and the section references of this
    /// value first, then vars, the section, `[DEFAULT]`.
    fn lookup(&self, name: &str, extras: &[(String, Val)]) -> Option<Val> {
        if let Some((_, v)) = extras.iter().rev().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        self.chain(name)
    }

    fn chain(&self, key: &str) -> Option<Val> {
        self.vars
            .get(key)
            .or_else(|| {
                (self.section != DEFAULT_SECTION)
                    .then(|| self.ini.sections.get(self.section).and_then(|s| s.get(key)))
                    .flatten()
            })
            .or_else(|| self.ini.defaults.get(key))
            .cloned()
    }

    fn interpolate(
        &self,
        rest: &Val,
        parent_extras: &[(String, Val)],
        depth: usize,
        out: &mut String,
    ) -> Result<(), ConfigError> {
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(self.error(
                rest,
                format!("%(...)s references nested deeper than {MAX_INTERPOLATION_DEPTH} levels"),
            ));
        }
        let mut extras = parent_extras.to_vec();
        extras.push(("__name__".to_string(), Val::synthetic(self.section)));
        self.map_section_options(&rest.text, &mut extras);
        let text = rest.text.as_str();
        let mut pos = 0;
        while let Some(found) = text[pos..].find('%') {
            let at = pos + found;
            out.push_str(&text[pos..at]);
            let after = &text[at + 1..];
            if after.starts_with('%') {
                out.push('%');
                pos = at + 2;
            } else if let Some(inner) = after.strip_prefix('(') {
                let name_len = inner
                    .find(')')
                    .filter(|&n| n > 0 && inner[n + 1..].starts_with('s'));
                let Some(name_len) = name_len else {
                    let shown: String = text[at..].chars().take(40).collect();
                    return Err(self.error(rest, format!("bad interpolation reference {shown:?}")));
                };
                let name = &inner[..name_len];
                pos = at + 2 + name_len + 2;
                let var = lower(name);
                let Some(value) = self.lookup(&var, &extras) else {
                    return Err(self.error(rest, format!("unknown interpolation %({name})s")));
                };
                if value.text.contains('%') {
                    self.interpolate(&value, &extras, depth + 1, out)?;
                } else {
                    out.push_str(&value.text);
                }
            } else {
                let shown: String = text[at..].chars().take(40).collect();
                return Err(self.error(
                    rest,
                    format!(
                        "'%' must be followed by '%' or '(' (use %% for a literal %): {shown:?}"
                    ),
                ));
            }
        }
        out.push_str(&text[pos..]);
        Ok(())
    }

    /// Makes `%(sec/opt)s`, `%(known/opt)s` and `%(default/opt)s` of this value
    /// resolvable (raw values; they are interpolated in the current section).
    fn map_section_options(&self, rest: &str, extras: &mut Vec<(String, Val)>) {
        if !rest.contains('/') || !rest.contains("%(") {
            return;
        }
        let mut pos = 0;
        while let Some(found) = rest[pos..].find("%(") {
            let start = pos + found + 2;
            pos = pos + found + 1;
            let body = &rest[start..];
            let sec_len = body
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(body.len());
            if sec_len == 0 || !body[sec_len..].starts_with('/') {
                continue;
            }
            let opt_part = &body[sec_len + 1..];
            let Some(close) = opt_part.find(')') else {
                continue;
            };
            if close == 0 || !opt_part[close + 1..].starts_with('s') {
                continue;
            }
            let sec = &body[..sec_len];
            let opt = &opt_part[..close];
            let sopt = &body[..sec_len + 1 + close];
            pos = start + sopt.len() + 2;
            if extras.iter().any(|(k, _)| k == sopt) || self.chain(sopt).is_some() {
                continue;
            }
            let from_default = || self.ini.defaults.get(opt).cloned();
            let value = match sec.to_lowercase().as_str() {
                "default" => from_default(),
                "known" => self
                    .ini
                    .sections
                    .get(&format!("KNOWN/{}", self.section))
                    .and_then(|s| s.get(opt))
                    .cloned()
                    .or_else(from_default),
                _ => match self.ini.sections.get(sec) {
                    None => None,
                    Some(s) => s.get(opt).cloned().or_else(from_default),
                },
            };
            if let Some(v) = value {
                extras.push((sopt.to_string(), v));
            }
        }
    }
}

/// Reads files for the readers, caching parsed files and shared configurations.
pub struct Loader<'a> {
    pub fs: &'a dyn FileSystem,
    pub basedir: String,
    files: HashMap<String, Option<Rc<Ini>>>,
    shared: HashMap<String, Option<Rc<Ini>>>,
    pub warnings: Vec<Warning>,
}

impl std::fmt::Debug for Loader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("basedir", &self.basedir)
            .finish()
    }
}

impl<'a> Loader<'a> {
    pub fn new(fs: &'a dyn FileSystem, basedir: &str) -> Self {
        let trimmed = basedir.trim_end_matches('/');
        Loader {
            fs,
            basedir: if trimmed.is_empty() && basedir.starts_with('/') {
                String::new()
            } else {
                trimmed.to_string()
            },
            files: HashMap::new(),
            shared: HashMap::new(),
            warnings: Vec::new(),
        }
    }

    /// A path as shown in messages: relative to the configuration directory when inside.
    pub fn display(&self, path: &str) -> String {
        path.strip_prefix(&self.basedir)
            .and_then(|p| p.strip_prefix('/'))
            .filter(|_| !self.basedir.is_empty())
            .unwrap_or(path)
            .to_string()
    }

    /// One file parsed on its own; `None` when it cannot be read.
    fn file(&mut self, path: &str) -> Result<Option<Rc<Ini>>, ConfigError> {
        if let Some(cached) = self.files.get(path) {
            return Ok(cached.clone());
        }
        let display: Arc<str> = Arc::from(self.display(path).as_str());
        let parsed = match self.fs.read(path) {
            Err(_) => None,
            Ok(bytes) => match String::from_utf8(bytes) {
                Err(e) => {
                    self.warnings.push(Warning {
                        file: Some(display.to_string()),
                        line: None,
                        jail: None,
                        message: format!("skipped: not valid UTF-8 ({e})"),
                    });
                    None
                }
                Ok(text) => {
                    let doc = rampart_ini::parse(&text).map_err(|e| ConfigError::Parse {
                        file: display.to_string(),
                        line: e.line,
                        message: e.message,
                    })?;
                    Some(Rc::new(Ini::from_document(&doc, &display)))
                }
            },
        };
        self.files.insert(path.to_string(), parsed.clone());
        Ok(parsed)
    }

    /// `X.local` beside each `X.conf` that exists and is not already listed.
    fn expand_with_local(&self, files: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for f in files {
            out.push(f.clone());
            let local = format!("{}.local", pypath::splitext(f).0);
            if !files.contains(&local) && self.fs.is_file(&local) {
                out.push(local);
            }
        }
        out
    }

    fn includes(&mut self, files: &[String], seen: &[String]) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for f in self.expand_with_local(files) {
            out.extend(self.includes_of(&f, seen)?);
        }
        Ok(out)
    }

    /// The file with its `before` includes ahead and its `after` includes behind.
    fn includes_of(&mut self, resource: &str, seen: &[String]) -> Result<Vec<String>, ConfigError> {
        if seen.len() > MAX_INCLUDE_DEPTH {
            return Err(ConfigError::IncludeDepth {
                file: self.display(resource),
            });
        }
        let Some(ini) = self.file(resource)? else {
            return Ok(Vec::new());
        };
        let dir = pypath::dirname(resource).to_string();
        let mut before = Vec::new();
        let mut after = Vec::new();
        if ini.has_section("INCLUDES") {
            for (option, list) in [("before", &mut before), ("after", &mut after)] {
                if !ini.has_own_option("INCLUDES", option) && !ini.defaults.contains_key(option) {
                    continue;
                }
                let value = match ini.get("INCLUDES", option, &Vars::new()) {
                    Ok(v) => v.text,
                    Err(GetError::Fatal(e)) => return Err(e),
                    Err(_) => continue,
                };
                for name in value.split('\n') {
                    let path = if pypath::is_abs(name) {
                        name.to_string()
                    } else {
                        pypath::join(&dir, name)
                    };
                    if seen.contains(&path) {
                        continue;
                    }
                    let mut chain = seen.to_vec();
                    chain.push(resource.to_string());
                    list.extend(self.includes(&[path], &chain)?);
                }
            }
        }
        before.push(resource.to_string());
        before.extend(after);
        Ok(before)
    }

    /// Reads a logical name (`jail`, `filter.d/sshd`): `.conf`, `.d/*.conf`, `.local`,
    /// `.d/*.local`, each with its includes. `None` when none of them can be read.
    pub fn read(&mut self, name: &str) -> Result<Option<(Ini, Vec<String>)>, ConfigError> {
        if !self.fs.exists(if self.basedir.is_empty() {
            "/"
        } else {
            &self.basedir
        }) {
            return Err(ConfigError::NoBaseDir(self.basedir.clone()));
        }
        let base = pypath::join(&self.basedir, name);
        self.read_files(&self.overlay_files(&base))
    }

    /// The existing overlay files of a base path, in reading order.
    fn overlay_files(&self, base: &str) -> Vec<String> {
        let sorted_glob = |pattern: String| {
            let mut v = glob(self.fs, &pattern);
            v.sort();
            v
        };
        let mut files = vec![format!("{base}.conf")];
        files.extend(sorted_glob(format!("{base}.d/*.conf")));
        files.push(format!("{base}.local"));
        files.extend(sorted_glob(format!("{base}.d/*.local")));
        files.retain(|f| self.fs.exists(f));
        files
    }

    /// Reads the given files with their includes and merges them in order.
    pub fn read_files(
        &mut self,
        files: &[String],
    ) -> Result<Option<(Ini, Vec<String>)>, ConfigError> {
        if files.is_empty() {
            return Ok(None);
        }
        let all = self.includes(files, &[])?;
        let mut merged = Ini::default();
        let mut read = Vec::new();
        for path in all {
            if let Some(file) = self.file(&path)? {
                merged.merge(&file);
                read.push(path);
            }
        }
        Ok((!read.is_empty()).then_some((merged, read)))
    }

    /// A filter or action configuration, read once and shared by every jail using it.
    pub fn shared(&mut self, name: &str) -> Result<Option<Rc<Ini>>, ConfigError> {
        if let Some(cached) = self.shared.get(name) {
            return Ok(cached.clone());
        }
        let ini = self.read(name)?.map(|(ini, _)| Rc::new(ini));
        if ini.is_none() {
            self.warnings.push(Warning::new(format!(
                "found no accessible config files for {name:?} under {}",
                self.basedir
            )));
        }
        self.shared.insert(name.to_string(), ini.clone());
        Ok(ini)
    }

    /// The first existing file of a logical name (for "the file it came from").
    pub fn main_file(&self, name: &str) -> Option<String> {
        self.overlay_files(&pypath::join(&self.basedir, name))
            .into_iter()
            .next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::MemFs;

    fn load(fs: &MemFs, name: &str) -> Ini {
        let mut loader = Loader::new(fs, "/c");
        loader.read(name).unwrap().unwrap().0
    }

    fn get(ini: &Ini, section: &str, option: &str) -> String {
        ini.get(section, option, &Vars::new()).unwrap().text
    }

    fn get_err(ini: &Ini, section: &str, option: &str) -> String {
        match ini.get(section, option, &Vars::new()) {
            Err(GetError::Fatal(e)) => e.to_string(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn overlay_order_conf_d_local_d_local() {
        let fs = MemFs::new()
            .file(
                "/c/jail.conf",
                "[s]\na = conf\nb = conf\nc = conf\nd = conf\n",
            )
            .file("/c/jail.d/2.conf", "[s]\nb = d2\n")
            .file("/c/jail.d/1.conf", "[s]\nb = d1\nc = d1\n")
            .file("/c/jail.local", "[s]\nc = local\nd = local\n")
            .file("/c/jail.d/1.local", "[s]\nd = dlocal\n");
        let mut loader = Loader::new(&fs, "/c/");
        let (ini, files) = loader.read("jail").unwrap().unwrap();
        assert_eq!(
            files,
            [
                "/c/jail.conf",
                "/c/jail.d/1.conf",
                "/c/jail.d/2.conf",
                "/c/jail.local",
                "/c/jail.d/1.local"
            ]
        );
        assert_eq!(
            ["a", "b", "c", "d"].map(|k| get(&ini, "s", k)),
            ["conf", "d2", "local", "dlocal"]
        );
        let known = &ini.sections["KNOWN/s"];
        assert_eq!(known["d"].text, "local");
        assert_eq!(known["b"].text, "d1");
    }

    #[test]
    fn nothing_to_read() {
        let fs = MemFs::new().dir("/c");
        let mut loader = Loader::new(&fs, "/c");
        assert!(loader.read("jail").unwrap().is_none());
        let mut loader = Loader::new(&fs, "/missing");
        assert!(matches!(
            loader.read("jail"),
            Err(ConfigError::NoBaseDir(_))
        ));
    }

    #[test]
    fn includes_before_after_with_local_and_cycles() {
        let fs = MemFs::new()
            .file(
                "/c/f.conf",
                "[INCLUDES]\nbefore = common.conf\nafter = post.conf\n[D]\nx = main\ny = main\n",
            )
            .file(
                "/c/common.conf",
                "[INCLUDES]\nbefore = f.conf\n[D]\nx = common\nz = common\n",
            )
            .file("/c/common.local", "[D]\nz = common-local\n")
            .file("/c/post.conf", "[D]\ny = post\n");
        let mut loader = Loader::new(&fs, "/c");
        let (ini, files) = loader.read("f").unwrap().unwrap();
        assert_eq!(
            files,
            [
                "/c/common.conf",
                "/c/common.local",
                "/c/f.conf",
                "/c/post.conf"
            ]
        );
        assert_eq!(
            ["x", "y", "z"].map(|k| get(&ini, "D", k)),
            ["main", "post", "common-local"]
        );
    }

    #[test]
    fn conditional_sections_become_conditional_keys() {
        let fs = MemFs::new().file(
            "/c/a.conf",
            "[Init]\nblocktype = REJECT\n[Init?family=inet6]\nblocktype = REJECT6\n",
        );
        let ini = load(&fs, "a");
        assert_eq!(get(&ini, "Init", "blocktype?family=inet6"), "REJECT6");
        assert_eq!(get(&ini, "Init", "blocktype"), "REJECT");
    }

    #[test]
    fn interpolation_forms() {
        let fs = MemFs::new()
            .file(
                "/c/j.conf",
                "[DEFAULT]\nport = 22\nmsg = %(__name__)s:%(port)s\nd = dflt\n\
                 [lt_file]\nprefix = file-%(port)s\n\
                 [sshd]\nport = 2222\nm = %(msg)s %(lt_file/prefix)s %(default/port)s %%x\n\
                 v = %(known/port)s\nw = %(known/d)s\n",
            )
            .file("/c/j.local", "[sshd]\nport = 3333\n");
        let ini = load(&fs, "j");
        // The section reference is interpolated in the asking section (port = 3333).
        assert_eq!(get(&ini, "sshd", "m"), "sshd:3333 file-3333 22 %x");
        assert_eq!(get(&ini, "sshd", "v"), "2222");
        assert_eq!(get(&ini, "sshd", "w"), "dflt");
        let mut vars = Vars::new();
        vars.insert("port".into(), Val::synthetic("1"));
        assert_eq!(
            ini.get("sshd", "m", &vars).unwrap().text,
            "sshd:1 file-1 22 %x"
        );
    }

    #[test]
    fn interpolation_errors_name_file_and_line() {
        let fs = MemFs::new().file(
            "/c/jail.local",
            "[DEFAULT]\nbad = x %(foo)s\n[sshd]\naction = %(bad)s\nlone = 5%\nloop = %(loop)s\nopen = %(x\n",
        );
        let ini = load(&fs, "jail");
        assert_eq!(
            get_err(&ini, "sshd", "action"),
            "jail.local:2: [DEFAULT] bad: unknown interpolation %(foo)s (while reading [sshd] action)"
        );
        assert!(get_err(&ini, "sshd", "lone").starts_with("jail.local:5: [sshd] lone: '%' must"));
        assert!(get_err(&ini, "sshd", "loop").contains("deeper than 10"));
        assert!(get_err(&ini, "sshd", "open").contains("bad interpolation reference"));
    }

    #[test]
    fn get_ex_section_names() {
        let fs = MemFs::new()
            .file(
                "/c/a.conf",
                "[DEFAULT]\nk = dk\n[Definition]\nk = one\n[Init]\ni = I\n[x]\ny = Y\n",
            )
            .file("/c/a.local", "[Definition]\nk = two\n");
        let ini = load(&fs, "a");
        let get_ex = |o: &str| ini.get_ex("Definition", o, &Vars::new()).unwrap().text;
        assert_eq!(get_ex("known/k"), "one");
        assert_eq!(get_ex("default/k"), "dk");
        assert_eq!(get_ex("x/y"), "Y");
        assert_eq!(get_ex("k"), "two");
    }
}
