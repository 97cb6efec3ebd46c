//! fail2ban's annotated sample logs as a compatibility check.
//!
//! fail2ban ships, for every filter, a sample log in which lines are annotated with
//! what the filter must find (`# failJSON: {"match": true, "host": "…", "time": …}`),
//! under which filter options (`# filterOptions:`, `# fileOptions:`), with more files
//! pulled in by `# addFILE:`. This module runs a configuration tree's filters over those
//! samples with the rules of fail2ban's own harness (`samplestestcase.py`): a frozen
//! clock, a fixed time zone, raw hosts, every regex tried, exactly one failure where one
//! is expected and none where none is, and every failregex exercised by some sample.
//! It is used by the test suite (against fail2ban's tree and against rampart's own).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use rampart_dates::TimeZone;
use rampart_filter::{Failure, Filter, FilterSpec, Mode, NoResolver, UseDns, Value};
use serde_json::Value as Json;

use crate::engine::LineFilter;

/// fail2ban's frozen test clock: 2005-08-14 12:00:00 CEST.
pub const TEST_NOW: f64 = 1_124_013_600.0;
/// The time zone fail2ban's tests run in.
pub const TEST_TZ: &str = "CET-01CEST-02,M3.5.0,M10.5.0";
/// `TEST_NOW` in UTC, as the harness passes it with journal lines.
const TEST_NOW_UTC: &str = "2005-08-14T10:00:00";

/// The outcome for one filter.
#[derive(Debug, Default, Clone)]
pub struct FilterResult {
    pub name: String,
    pub checks: usize,
    pub passed: usize,
    /// Failed checks and other problems, one line each.
    pub problems: Vec<String>,
}

impl FilterResult {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The filters of `config_dir/filter.d` that have a sample log in `samples_dir`
/// (`*.conf` except the shared `*common.conf` includes), with the prefix filter applied.
pub fn filter_names(config_dir: &Path, prefix: Option<&str>) -> Result<Vec<String>> {
    let dir = config_dir.join("filter.d");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".conf") else {
            continue;
        };
        if name.ends_with("common.conf") || stem.starts_with('.') {
            continue;
        }
        if prefix.is_some_and(|p| !stem.starts_with(p)) {
            continue;
        }
        names.push(stem.to_string());
    }
    names.sort();
    Ok(names)
}

struct Instance {
    engine: LineFilter,
    /// Indices of failregexes some sample hit.
    used: BTreeSet<usize>,
    journal: bool,
    regexes: Vec<String>,
}

/// Runs the samples of filter `name` from `config_dir` against `samples_dir`.
pub fn check_filter(name: &str, config_dir: &Path, samples_dir: &Path) -> FilterResult {
    let mut result = FilterResult {
        name: name.to_string(),
        ..FilterResult::default()
    };
    if let Err(e) = run_filter(name, config_dir, samples_dir, &mut result) {
        result.problems.push(format!("{e:#}"));
    }
    result
}

fn run_filter(
    name: &str,
    config_dir: &Path,
    samples_dir: &Path,
    result: &mut FilterResult,
) -> Result<()> {
    let local = TimeZone::posix(TEST_TZ).map_err(|e| anyhow!("test time zone: {e}"))?;
    let mut instances: BTreeMap<String, Instance> = BTreeMap::new();
    let mut files: Vec<String> = vec![name.to_string()];
    let mut used_regexes: BTreeSet<String> = BTreeSet::new();
    let mut i = 0;
    while i < files.len() {
        let file = samples_dir.join(&files[i]);
        i += 1;
        if !file.is_file() {
            bail!("no sample log {}", file.display());
        }
        let text = std::fs::read(&file).with_context(|| file.display().to_string())?;
        let text = String::from_utf8_lossy(&text).into_owned();
        let mut lines = text.split_inclusive('\n').enumerate().peekable();
        let mut common_opts: BTreeMap<String, Json> = BTreeMap::new();
        let mut current: Vec<(String, BTreeMap<String, Json>)> = Vec::new();
        let mut ignore_block = false;
        while let Some((index, raw)) = lines.next() {
            let lineno = index + 1;
            let mut faildata: BTreeMap<String, Json> = BTreeMap::new();
            let mut line = raw;
            if let Some((kind, payload)) = annotation(raw) {
                let json: Json = serde_json::from_str(payload)
                    .with_context(|| format!("{}:{lineno}: bad JSON", files[i - 1]))?;
                match kind {
                    "fileOptions" => {
                        common_opts = as_map(&json);
                        continue;
                    }
                    "filterOptions" => {
                        current.clear();
                        ignore_block = false;
                        let sets = match &json {
                            Json::Array(a) => a.clone(),
                            other => vec![other.clone()],
                        };
                        for set in sets {
                            let mut opts = common_opts.clone();
                            opts.extend(as_map(&set));
                            if let Some(cond) = opts.get("test.condition").and_then(Json::as_str) {
                                ignore_block = !eval_condition(cond, name, &opts)?;
                            }
                            if ignore_block {
                                continue;
                            }
                            let flt_opts: BTreeMap<String, Json> = opts
                                .iter()
                                .filter(|(k, _)| !k.starts_with("test."))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect();
                            let flt_name = match opts.get("test.filter-name").and_then(Json::as_str)
                            {
                                Some(n) => format!("{name}{n}"),
                                None if flt_opts.is_empty() => name.to_string(),
                                None => format!("{name}{}", py_repr_map(&flt_opts)),
                            };
                            if !instances.contains_key(&flt_name) {
                                let inst = build_instance(name, config_dir, &flt_opts)
                                    .with_context(|| format!("filter {flt_name}"))?;
                                instances.insert(flt_name.clone(), inst);
                            }
                            current.push((flt_name, opts));
                        }
                        continue;
                    }
                    "addFILE" => {
                        if let Some(f) = json.as_str() {
                            files.push(f.to_string());
                        }
                        continue;
                    }
                    _ => {
                        faildata = as_map(&json);
                        match lines.next() {
                            Some((_, next)) => line = next,
                            None => break,
                        }
                    }
                }
            } else if ignore_block || raw.starts_with('#') || raw.trim().is_empty() {
                continue;
            }
            if ignore_block {
                continue;
            }
            if current.is_empty() {
                if !instances.contains_key(name) {
                    let inst = build_instance(name, config_dir, &BTreeMap::new())?;
                    instances.insert(name.to_string(), inst);
                }
                current.push((name.to_string(), BTreeMap::new()));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            for (flt_name, opts) in &current {
                if let Some(c) = faildata.get("constraint").and_then(Json::as_str)
                    && !eval_condition(c, name, opts)?
                {
                    continue;
                }
                let Some(inst) = instances.get_mut(flt_name) else {
                    continue;
                };
                result.checks += 1;
                let prefix = opts
                    .get("test.prefix-line")
                    .and_then(Json::as_str)
                    .unwrap_or("");
                let failures = if inst.journal {
                    let full = format!("{prefix}{line}");
                    inst.engine.filter.process_dated_line(
                        TEST_NOW_UTC,
                        &full,
                        TEST_NOW,
                        TEST_NOW,
                        &NoResolver,
                    )
                } else {
                    inst.engine.process(line, TEST_NOW, &NoResolver)
                };
                let mut found: Vec<&Failure> = Vec::new();
                for f in &failures {
                    if f.id.is_none() || f.is_nofail() {
                        inst.used.insert(f.regex);
                        if let Some(r) = inst.regexes.get(f.regex) {
                            used_regexes.insert(r.clone());
                        }
                    } else {
                        found.push(f);
                    }
                }
                let verdict = judge(&faildata, &found, &local);
                match verdict {
                    Ok(()) => {
                        result.passed += 1;
                        for f in &found {
                            inst.used.insert(f.regex);
                            if let Some(r) = inst.regexes.get(f.regex) {
                                used_regexes.insert(r.clone());
                            }
                        }
                    }
                    Err(why) => result.problems.push(format!(
                        "{flt_name}: {}:{lineno}: {why}\n    line: {line}",
                        files[i - 1]
                    )),
                }
            }
        }
    }
    for (flt_name, inst) in &instances {
        for (idx, regex) in inst.regexes.iter().enumerate() {
            if !inst.used.contains(&idx) && !used_regexes.contains(regex) {
                result.problems.push(format!(
                    "{flt_name}: failregex {idx} has no samples: {regex}"
                ));
            }
        }
    }
    Ok(())
}

fn annotation(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start_matches('#');
    if rest.len() == line.len() {
        return None;
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    for kind in ["failJSON", "fileOptions", "filterOptions", "addFILE"] {
        if let Some(payload) = rest.strip_prefix(kind).and_then(|r| r.strip_prefix(':')) {
            let payload = payload.trim_end_matches(['\r', '\n']);
            if !payload.is_empty() {
                return Some((kind, payload));
            }
        }
    }
    None
}

fn as_map(json: &Json) -> BTreeMap<String, Json> {
    match json {
        Json::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => BTreeMap::new(),
    }
}

/// `str(dict)` of the options, as the reference names its filter instances.
fn py_repr_map(m: &BTreeMap<String, Json>) -> String {
    let items: Vec<String> = m
        .iter()
        .map(|(k, v)| {
            format!(
                "'{k}': {}",
                v.as_str().map_or(v.to_string(), |s| format!("'{s}'"))
            )
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn build_instance(
    name: &str,
    config_dir: &Path,
    opts: &BTreeMap<String, Json>,
) -> Result<Instance> {
    // The harness passes the options as the filter's initial options, which is what
    // `name[k="v", ...]` means to the reader.
    let options: Vec<String> = opts
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().map_or(v.to_string(), str::to_string);
            format!("{k}=\"{}\"", v.replace('"', "\\\""))
        })
        .collect();
    let spec = if options.is_empty() {
        name.to_string()
    } else {
        format!("{name}[{}]", options.join(", "))
    };
    let basedir = config_dir.to_string_lossy();
    let request = rampart_config::FilterRequest {
        spec: &spec,
        jail_name: "jail",
        jail_vars: &indexmap::IndexMap::new(),
        backend: "auto",
    };
    let (resolved, _warnings) =
        rampart_config::read_filter(&rampart_config::OsFs, &basedir, &request)
            .with_context(|| format!("reading filter {spec} from {}", config_dir.display()))?;
    let journal = opts.get("logtype").and_then(Json::as_str) == Some("journal");
    let spec = FilterSpec {
        prefregex: resolved.prefregex.clone(),
        failregex: resolved.failregex.clone(),
        ignoreregex: resolved.ignoreregex.clone(),
        maxlines: resolved.maxlines.unwrap_or(1),
        use_dns: UseDns::Warn,
    };
    let mode = Mode {
        check_all: true,
        raw_hosts: true,
        ignore_pending: true,
        check_find_time: false,
        find_time: 600.0,
    };
    let filter = Filter::new(&spec, mode)?;
    let engine = LineFilter::with_local_zone(
        filter,
        resolved.datepattern.as_deref(),
        None,
        TimeZone::posix(TEST_TZ).map_err(|e| anyhow!("{e}"))?,
    )?;
    Ok(Instance {
        engine,
        used: BTreeSet::new(),
        journal,
        regexes: resolved.failregex.clone(),
    })
}

/// Compares what was found with what the annotation expects.
fn judge(
    faildata: &BTreeMap<String, Json>,
    found: &[&Failure],
    local: &TimeZone,
) -> Result<(), String> {
    let expect_match = faildata
        .get("match")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    if found.is_empty() {
        return if expect_match {
            Err("line not matched when it should have been".into())
        } else {
            Ok(())
        };
    }
    if !expect_match {
        return Err(format!(
            "line matched when it should not have been (by failregex {})",
            found[0].regex
        ));
    }
    if found.len() != 1 {
        let which: Vec<usize> = found.iter().map(|f| f.regex).collect();
        return Err(format!("several regexes matched: {which:?}"));
    }
    let f = found[0];
    for (k, expected) in faildata {
        if matches!(k.as_str(), "time" | "match" | "desc" | "constraint") {
            continue;
        }
        let actual: Option<Json> = match f.data.get(k) {
            Some(Value::Text(t)) => Some(Json::String(t.to_string())),
            Some(Value::Users(u)) => Some(Json::Array(
                u.iter().map(|u| Json::String(u.to_string())).collect(),
            )),
            Some(Value::Addr(a)) => Some(Json::String(a.to_string())),
            Some(Value::Flag) => Some(Json::from(1)),
            Some(Value::Lines(l)) => Some(Json::from(l.len())),
            Some(Value::Tuple(t)) => Some(Json::Array(
                t.iter()
                    .map(|x| x.clone().map_or(Json::Null, Json::String))
                    .collect(),
            )),
            Some(Value::None) | None => match k.as_str() {
                "host" => f.id.as_ref().map(|id| Json::String(id.to_string())),
                "attempts" => Some(Json::from(f.data.matches().len())),
                _ => None,
            },
        };
        let same = match (expected, &actual) {
            // The reference compares the ticket's id as an address object: spelling
            // (case, zero compression) does not matter.
            (Json::String(e), Some(Json::String(a))) if k == "host" => {
                e == a
                    || matches!(
                        (e.parse::<std::net::IpAddr>(), a.parse::<std::net::IpAddr>()),
                        (Ok(x), Ok(y)) if x == y
                    )
            }
            (Json::Array(e), Some(Json::Array(a))) => {
                let mut e: Vec<String> = e.iter().map(Json::to_string).collect();
                let mut a: Vec<String> = a.iter().map(Json::to_string).collect();
                e.sort();
                a.sort();
                e == a
            }
            (Json::Null, None) => true,
            (e, Some(a)) => e == a,
            _ => false,
        };
        if !same {
            return Err(format!(
                "{k}: expected {expected}, got {}",
                actual.map_or("nothing".to_string(), |a| a.to_string())
            ));
        }
    }
    if let Some(t) = faildata.get("time").and_then(Json::as_str) {
        let expected = local
            .local_iso_to_epoch(t)
            .ok_or_else(|| format!("bad time {t:?}"))?;
        match f.time {
            Some(got) if got == expected => {}
            got => {
                return Err(format!(
                    "time: expected {t} ({expected}), got {}",
                    got.map_or("none".into(), |g| g.to_string())
                ));
            }
        }
    }
    Ok(())
}

/// A tiny evaluator for the constraints the samples use:
/// `name == 'x'`, `opts.get('k') != 'v'` (and the same without spaces).
fn eval_condition(expr: &str, name: &str, opts: &BTreeMap<String, Json>) -> Result<bool> {
    let (lhs, op, rhs) = if let Some((l, r)) = expr.split_once("==") {
        (l, "==", r)
    } else if let Some((l, r)) = expr.split_once("!=") {
        (l, "!=", r)
    } else {
        bail!("unsupported constraint {expr:?}");
    };
    let literal = |s: &str| -> Result<String> {
        let s = s.trim();
        let inner = s
            .strip_prefix('\'')
            .and_then(|x| x.strip_suffix('\''))
            .or_else(|| s.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
            .ok_or_else(|| anyhow!("unsupported constraint operand {s:?}"))?;
        Ok(inner.to_string())
    };
    let lhs = lhs.trim();
    let value: Option<String> = if lhs == "name" {
        Some(name.to_string())
    } else if let Some(key) = lhs
        .strip_prefix("opts.get(")
        .and_then(|x| x.strip_suffix(')'))
    {
        let key = literal(key)?;
        opts.get(&key)
            .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
    } else {
        bail!("unsupported constraint {expr:?}");
    };
    let rhs = literal(rhs)?;
    let equal = value.as_deref() == Some(rhs.as_str());
    Ok(if op == "==" { equal } else { !equal })
}

/// A table of results, one filter a row, with the problems after it.
pub fn report(results: &[FilterResult]) -> String {
    let mut s = String::new();
    let (mut checks, mut passed) = (0, 0);
    let _ = writeln!(s, "{:<32} {:>7} {:>7}", "filter", "passed", "checks");
    for r in results {
        checks += r.checks;
        passed += r.passed;
        let mark = if r.ok() { "" } else { "  <-- problems" };
        let _ = writeln!(s, "{:<32} {:>7} {:>7}{mark}", r.name, r.passed, r.checks);
    }
    let _ = writeln!(
        s,
        "{:<32} {:>7} {:>7}   ({} of {} filters without problems)",
        "total",
        passed,
        checks,
        results.iter().filter(|r| r.ok()).count(),
        results.len()
    );
    for r in results.iter().filter(|r| !r.ok()) {
        for p in &r.problems {
            let _ = writeln!(s, "{}: {p}", r.name);
        }
    }
    s
}

/// Where a sample file for `name` lives.
pub fn sample_path(samples_dir: &Path, name: &str) -> PathBuf {
    samples_dir.join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions() {
        let mut opts = BTreeMap::new();
        opts.insert("mode".to_string(), Json::String("aggressive".into()));
        assert!(eval_condition("name == 'sshd'", "sshd", &opts).unwrap());
        assert!(!eval_condition("name=='sshd'", "dropbear", &opts).unwrap());
        assert!(eval_condition("opts.get('mode') == 'aggressive'", "x", &opts).unwrap());
        assert!(eval_condition("opts.get('logtype') != 'journal'", "x", &opts).unwrap());
        assert!(eval_condition("__import__('os')", "x", &opts).is_err());
    }

    #[test]
    fn annotations() {
        assert_eq!(
            annotation("# failJSON: {\"match\": true}\n"),
            Some(("failJSON", " {\"match\": true}"))
        );
        assert_eq!(
            annotation("## filterOptions: [{}]"),
            Some(("filterOptions", " [{}]"))
        );
        assert_eq!(annotation("# just a comment"), None);
    }
}
