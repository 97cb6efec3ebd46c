//! Gluing the engine crates together: configuration to filter, date detection to filter.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use indexmap::IndexMap;
use rampart_dates::{DateDetector, TimeZone};
use rampart_filter::{DateSpan, Failure, Filter, FilterSpec, Resolver};

/// A filter with its date detection: log lines in, failures out.
#[derive(Debug)]
pub struct LineFilter {
    pub filter: Filter,
    dates: DateDetector,
    local: TimeZone,
}

impl LineFilter {
    /// Drops the engines the filter and the date detection built (see
    /// `Filter::release_engines`); the next line builds them again.
    pub fn release_engines(&mut self) {
        self.filter.release_engines();
        self.dates.release_engines();
    }

    /// Combines `filter` with date detection for `datepattern` (`None`: the default
    /// templates); `logtimezone` applies to dates that carry no zone.
    pub fn new(
        filter: Filter,
        datepattern: Option<&str>,
        logtimezone: Option<&str>,
    ) -> Result<LineFilter> {
        LineFilter::with_local_zone(filter, datepattern, logtimezone, TimeZone::from_env())
    }

    /// As [`LineFilter::new`], with `local` as the zone of the machine (instead of `TZ`).
    pub fn with_local_zone(
        filter: Filter,
        datepattern: Option<&str>,
        logtimezone: Option<&str>,
        local: TimeZone,
    ) -> Result<LineFilter> {
        let mut dates = DateDetector::new(datepattern)
            .with_context(|| format!("invalid datepattern {datepattern:?}"))?;
        if let Some(tz) = logtimezone {
            let zone = TimeZone::from_log_timezone(tz)
                .with_context(|| format!("invalid time zone {tz:?}"))?;
            dates.set_log_timezone(Some(zone));
        }
        Ok(LineFilter {
            filter,
            dates,
            local,
        })
    }

    /// The time of a line by date detection alone (seeking in a log at start).
    pub fn line_time(&mut self, line: &str, now: f64) -> Option<f64> {
        self.dates.match_time(line, now, &self.local)?.time
    }

    /// Finds the failures in one line (without its line end).
    pub fn process(&mut self, line: &str, now: f64, resolver: &dyn Resolver) -> Vec<Failure> {
        let mut found = Vec::new();
        self.process_into(line, now, resolver, &mut found);
        found
    }

    /// [`LineFilter::process`] appending to `found`.
    pub fn process_into(
        &mut self,
        line: &str,
        now: f64,
        resolver: &dyn Resolver,
        found: &mut Vec<Failure>,
    ) {
        let span = self
            .dates
            .match_time(line, now, &self.local)
            .map(|m| DateSpan {
                start: m.start,
                end: m.end,
                time: m.time,
            });
        self.filter
            .process_line_into(line, span, now, resolver, found);
    }

    /// How the date pattern is described in reports (`Default Detectors`, a template name).
    pub fn date_description(&self) -> String {
        self.dates.description()
    }

    /// Hits per date template, in the detector's current order.
    pub fn template_hits(&self) -> Vec<(String, u64)> {
        self.dates.template_hits()
    }

    /// A time as `2005-08-14 12:00:00` in the local zone.
    pub fn format_time(&self, t: f64) -> String {
        self.local.format_local(t)
    }
}

/// The current time as epoch seconds.
pub fn wall_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Resolves host names with the system resolver, remembering answers for the run.
#[derive(Debug, Default)]
pub struct SystemResolver {
    cache: Mutex<HashMap<String, Vec<IpAddr>>>,
}

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str) -> Vec<IpAddr> {
        if let Ok(cache) = self.cache.lock()
            && let Some(ips) = cache.get(host)
        {
            return ips.clone();
        }
        let mut ips: Vec<IpAddr> = (host, 0)
            .to_socket_addrs()
            .map(|addrs| addrs.map(|a| a.ip()).collect())
            .unwrap_or_default();
        ips.dedup();
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(host.to_string(), ips.clone());
        }
        ips
    }
}

/// Where `rampart regex` took its regexes from.
#[derive(Debug)]
pub enum RegexSource {
    /// A filter read through the configuration loader.
    Filter {
        /// The options given with the filter name.
        options: Vec<(String, String)>,
        /// The configuration directory, for filters found in its `filter.d`.
        basedir: Option<PathBuf>,
        resolved: Box<rampart_config::ResolvedFilter>,
    },
    /// A regex given on the command line.
    Literal(String),
}

impl RegexSource {
    /// The report line saying where the regexes come from.
    pub fn describe(&self, kind: &str) -> String {
        match self {
            RegexSource::Filter {
                options,
                basedir,
                resolved,
            } => {
                let mut s = match basedir {
                    Some(dir) => format!(
                        "Use {kind:>11} filter file : {}, basedir: {}",
                        resolved.name,
                        dir.display()
                    ),
                    None => format!("Use {kind:>11} file : {}", resolved.name),
                };
                if !options.is_empty() {
                    s.push_str(&format!("\nUse   filter options : {}", py_dict(options)));
                }
                s
            }
            RegexSource::Literal(r) => {
                let short: String = if r.chars().count() > 53 {
                    r.chars().take(50).collect::<String>() + "..."
                } else {
                    r.clone()
                };
                format!("Use {kind:>11} line : {short}")
            }
        }
    }

    /// Puts the regexes into `spec`: a filter gives everything it defines; a literal
    /// regex is one failregex (or ignoreregex).
    pub fn apply(&self, spec: &mut FilterSpec, datepattern: &mut Option<String>, fail: bool) {
        match self {
            RegexSource::Filter { resolved, .. } => {
                spec.prefregex.clone_from(&resolved.prefregex);
                spec.failregex.extend(resolved.failregex.iter().cloned());
                spec.ignoreregex
                    .extend(resolved.ignoreregex.iter().cloned());
                if let Some(n) = resolved.maxlines {
                    spec.maxlines = n;
                }
                if resolved.datepattern.is_some() {
                    datepattern.clone_from(&resolved.datepattern);
                }
            }
            RegexSource::Literal(r) if fail => spec.failregex.push(r.clone()),
            RegexSource::Literal(r) => spec.ignoreregex.push(r.clone()),
        }
    }
}

fn py_dict(options: &[(String, String)]) -> String {
    let items: Vec<String> = options
        .iter()
        .map(|(k, v)| format!("'{k}': '{v}'"))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Reads REGEX the way fail2ban-regex does: a filter name (with options) or a filter
/// file path when one exists, otherwise a literal regex. IGNOREREGEX is always literal.
pub fn load_regex_source(value: &str, config_dir: &Path, fail: bool) -> Result<RegexSource> {
    load_regex_source_for(value, config_dir, fail, "auto")
}

/// As [`load_regex_source`], for a log read through `backend` (`systemd` makes the
/// filter's default `logtype` `journal`, as fail2ban-regex does for `systemd-journal`).
pub fn load_regex_source_for(
    value: &str,
    config_dir: &Path,
    fail: bool,
    backend: &str,
) -> Result<RegexSource> {
    if !fail {
        return Ok(RegexSource::Literal(value.to_string()));
    }
    let basedir = config_dir.to_string_lossy();
    let request = rampart_config::FilterRequest {
        spec: value,
        jail_name: "fail2ban-regex-jail",
        jail_vars: &IndexMap::new(),
        backend,
    };
    match rampart_config::read_filter(&rampart_config::OsFs, &basedir, &request) {
        Ok((resolved, warnings)) => {
            for w in warnings {
                eprintln!("WARNING: {w}");
            }
            let options = rampart_config::extract_options(value)
                .map(|(_, args)| args.into_iter().collect())
                .unwrap_or_default();
            let within_tree = !resolved.name.contains('/');
            let basedir = within_tree.then(|| {
                let file = Path::new(&resolved.file);
                file.parent()
                    .and_then(Path::parent)
                    .map_or_else(|| config_dir.to_path_buf(), Path::to_path_buf)
            });
            Ok(RegexSource::Filter {
                options,
                basedir,
                resolved: Box::new(resolved),
            })
        }
        Err(rampart_config::ConfigError::NotFound { .. }) => {
            Ok(RegexSource::Literal(value.to_string()))
        }
        Err(e) => Err(anyhow::Error::from(e).context(format!("failed to load filter {value}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_regexes_stay_literal() {
        let dir = std::env::temp_dir();
        let src = load_regex_source("^Failed .* from <HOST>$", &dir, true).unwrap();
        assert!(matches!(src, RegexSource::Literal(_)));
        let src = load_regex_source("no-such-filter-here", &dir, true).unwrap();
        assert!(matches!(src, RegexSource::Literal(_)));
    }
}
