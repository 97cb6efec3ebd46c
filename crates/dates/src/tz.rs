//! Time zones: the process's local zone the way libc finds it, fixed offsets, and the
//! jail's `logtimezone`.
//!
//! fail2ban converts zone-less log dates with `time.mktime`, i.e. glibc's `mktime` with
//! `tm_isdst = -1`. Around daylight-saving changes glibc's answer depends on the offset it
//! found in its *previous* call (a search seeded by that offset), so a [`TimeZone`] keeps
//! that seed too, shared by its clones, to give the same answers in the same order.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::Error;
use crate::civil::Civil;

/// A time zone: a fixed offset or rules (POSIX `TZ` string or zoneinfo data).
///
/// Cheap to clone; clones share the `mktime` seed described in the module docs.
#[derive(Clone)]
pub struct TimeZone {
    zone: Arc<Zone>,
}

struct Zone {
    /// Tells zones apart in caches keyed by zone.
    id: u64,
    description: String,
    rules: Rules,
    /// glibc's `localtime_offset`: the result of the last `mktime` minus its request.
    mktime_seed: AtomicI64,
}

enum Rules {
    /// Seconds east of UTC.
    Fixed(i32),
    Jiff(jiff::tz::TimeZone),
}

impl fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TimeZone")
            .field(&self.zone.description)
            .finish()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.zone.description)
    }
}

/// What the `mktime` calls of a zone with rules have learnt of it: while its seed is
/// `seed`, a request whose first probe (`local + seed`) falls in `[from, to)`, over
/// which the zone's offset is `-seed`, gets that probe as its answer and leaves the
/// seed alone. Zone 0 is no zone's: the default run tells nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MktimeRun {
    zone: u64,
    seed: i64,
    from: i64,
    to: i64,
}

/// Default directory of compiled zone files, as glibc's `TZDIR`.
const DEFAULT_TZDIR: &str = "/usr/share/zoneinfo";
/// glibc's zone when `TZ` is unset.
const DEFAULT_LOCALTIME: &str = "/etc/localtime";
/// Rules glibc takes from `posixrules` (America/New_York) when a `TZ` string names a
/// daylight-saving zone without saying when it applies.
const DEFAULT_DST_RULES: &str = ",M3.2.0,M11.1.0";

impl TimeZone {
    fn new(description: String, rules: Rules) -> TimeZone {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        TimeZone {
            zone: Arc::new(Zone {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                description,
                rules,
                mktime_seed: AtomicI64::new(0),
            }),
        }
    }

    /// Coordinated Universal Time.
    pub fn utc() -> TimeZone {
        TimeZone::new("UTC".to_string(), Rules::Fixed(0))
    }

    /// A fixed offset, in seconds east of UTC.
    pub fn fixed(seconds_east: i32) -> TimeZone {
        let sign = if seconds_east < 0 { '-' } else { '+' };
        let abs = seconds_east.unsigned_abs();
        TimeZone::new(
            format!("UTC{sign}{:02}{:02}", abs / 3600, abs / 60 % 60),
            Rules::Fixed(seconds_east),
        )
    }

    /// The local zone of this process as libc determines it from the `TZ` environment
    /// variable (see [`TimeZone::from_tz_value`]); `TZDIR` is honoured.
    pub fn from_env() -> TimeZone {
        let tz = std::env::var("TZ").ok();
        let tzdir = std::env::var("TZDIR")
            .ok()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEFAULT_TZDIR.to_string());
        TimeZone::from_tz_value_in(tz.as_deref(), Path::new(&tzdir))
    }

    /// The zone glibc uses for a given value of `TZ` (`None`: unset).
    ///
    /// Unset: `/etc/localtime`. Empty: UTC. A leading `:` is ignored. Otherwise the value
    /// names a zone file (absolute, or under `/usr/share/zoneinfo`) if one exists, else it
    /// is read as a POSIX string such as `CET-01CEST-02,M3.5.0,M10.5.0`. Anything
    /// unusable falls back to UTC, as libc does.
    pub fn from_tz_value(tz: Option<&str>) -> TimeZone {
        TimeZone::from_tz_value_in(tz, Path::new(DEFAULT_TZDIR))
    }

    fn from_tz_value_in(tz: Option<&str>, tzdir: &Path) -> TimeZone {
        let Some(value) = tz else {
            return TimeZone::from_zone_file(DEFAULT_LOCALTIME, Path::new(DEFAULT_LOCALTIME))
                .unwrap_or_else(TimeZone::utc);
        };
        if value.is_empty() {
            return TimeZone::utc();
        }
        let value = value.strip_prefix(':').unwrap_or(value);
        let path = if value.starts_with('/') {
            Path::new(value).to_path_buf()
        } else {
            tzdir.join(value)
        };
        if let Some(zone) = TimeZone::from_zone_file(value, &path) {
            return zone;
        }
        TimeZone::posix(value).unwrap_or_else(|_| TimeZone::utc())
    }

    fn from_zone_file(name: &str, path: &Path) -> Option<TimeZone> {
        // Only regular files: a directory or a device is not zone data.
        if !path.is_file() {
            return None;
        }
        let data = std::fs::read(path).ok()?;
        let zone = jiff::tz::TimeZone::tzif(name, &data).ok()?;
        Some(TimeZone::new(name.to_string(), Rules::Jiff(zone)))
    }

    /// A zone from a POSIX `TZ` string (`CET-01CEST-02,M3.5.0,M10.5.0`, `UTC0`, `EST5EDT`).
    pub fn posix(spec: &str) -> Result<TimeZone, Error> {
        let invalid = || Error::TimeZone(spec.to_string());
        let zone = match jiff::tz::TimeZone::posix(spec) {
            Ok(zone) => zone,
            Err(_) => {
                // A daylight-saving name without rules gets glibc's default rules.
                let with_rules = format!("{spec}{DEFAULT_DST_RULES}");
                jiff::tz::TimeZone::posix(&with_rules).map_err(|_| invalid())?
            }
        };
        Ok(TimeZone::new(spec.to_string(), Rules::Jiff(zone)))
    }

    /// The jail's `logtimezone`, read as fail2ban reads it: a fixed offset given by an
    /// optional zone abbreviation and an optional `±hh[[:]mm]` (`UTC`, `UTC+0200`,
    /// `GMT-0100`, `CET+0100`, `-05:00`). Daylight saving is never applied.
    pub fn from_log_timezone(spec: &str) -> Result<TimeZone, Error> {
        let minutes = crate::zones::fixed_offset_minutes(spec)
            .map_err(|_| Error::TimeZone(spec.to_string()))?;
        Ok(TimeZone::new(
            spec.to_string(),
            Rules::Fixed(minutes.saturating_mul(60)),
        ))
    }

    /// The offset in seconds east of UTC if this zone is a fixed offset.
    pub fn fixed_offset(&self) -> Option<i32> {
        match self.zone.rules {
            Rules::Fixed(seconds) => Some(seconds),
            Rules::Jiff(_) => None,
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.zone.id
    }

    /// Offset (seconds east of UTC) and daylight-saving flag in force at `epoch`.
    pub fn offset_at(&self, epoch: i64) -> Option<(i32, bool)> {
        match &self.zone.rules {
            Rules::Fixed(seconds) => Some((*seconds, false)),
            Rules::Jiff(zone) => {
                let info = zone.to_offset_info(clamped_timestamp(epoch)?);
                Some((info.offset().seconds(), info.dst().is_dst()))
            }
        }
    }

    /// The offset in force at `epoch` and the interval `[start, end)` of epochs over which
    /// it stays in force.
    pub(crate) fn offset_span(&self, epoch: i64) -> Option<(i32, i64, i64)> {
        match &self.zone.rules {
            Rules::Fixed(seconds) => Some((*seconds, i64::MIN, i64::MAX)),
            Rules::Jiff(zone) => {
                let ts = clamped_timestamp(epoch)?;
                let offset = zone.to_offset(ts).seconds();
                let after = clamped_timestamp(epoch.saturating_add(1));
                let start = after
                    .and_then(|a| zone.preceding(a).next())
                    .map_or(i64::MIN, |t| t.timestamp().as_second());
                let end = zone
                    .following(ts)
                    .next()
                    .map_or(i64::MAX, |t| t.timestamp().as_second());
                Some((offset, start, end))
            }
        }
    }

    /// glibc's `mktime` for a local wall-clock time given as naive seconds (see
    /// [`crate::civil`]), with `tm_isdst = -1`.
    ///
    /// glibc seeds its search with the offset found by the previous call; in a gap it
    /// returns a time one gap away and in a fold the side the seed points to. This keeps
    /// the same seed and follows the same search, so that a sequence of calls gives
    /// glibc's sequence of answers.
    pub(crate) fn mktime_naive(&self, local: i64) -> Option<i64> {
        if let Rules::Fixed(seconds) = self.zone.rules {
            return local.checked_sub(i64::from(seconds));
        }
        let seed = self.zone.mktime_seed.load(Ordering::Relaxed);
        let t0 = local.checked_add(seed)?;
        let (mut t, mut t1, mut t2) = (t0, t0, t0);
        let mut previous_dst = false;
        let mut probes_left = 6;
        loop {
            let (offset, dst) = self.offset_at(t)?;
            let error = local - (t + i64::from(offset));
            if error == 0 {
                break;
            }
            // Oscillating between two times: the request is in a gap. Stop on the
            // daylight-saving side unless only the other one is.
            if t == t1 && t != t2 && previous_dst <= dst {
                break;
            }
            probes_left -= 1;
            if probes_left == 0 {
                return None;
            }
            t1 = t2;
            t2 = t;
            t = t.checked_add(error)?;
            previous_dst = dst;
        }
        self.zone.mktime_seed.store(t - local, Ordering::Relaxed);
        Some(t)
    }

    /// [`TimeZone::mktime_naive`], answered from `run` when it tells the answer (see
    /// [`MktimeRun`]), which a call that finds the same offset as the one before it
    /// sets for the calls to come.
    #[inline]
    pub(crate) fn mktime_naive_along(&self, local: i64, run: &mut MktimeRun) -> Option<i64> {
        if let Rules::Fixed(_) = self.zone.rules {
            return self.mktime_naive(local);
        }
        let seed = self.zone.mktime_seed.load(Ordering::Relaxed);
        if run.zone == self.zone.id
            && run.seed == seed
            && let Some(t) = local.checked_add(seed)
            && (run.from..run.to).contains(&t)
        {
            // Why this is exact: `mktime_naive` would probe `t` first, find the offset
            // `-seed` there (the zone keeps it over the run), so no error, stop, and
            // store `t - local`, which is the seed it already holds.
            return Some(t);
        }
        self.mktime_naive_learning(local, seed, run)
    }

    /// [`TimeZone::mktime_naive`] for a request the run does not tell (the zone's seed
    /// being `seed`), setting the run from its answer.
    #[cold]
    fn mktime_naive_learning(&self, local: i64, seed: i64, run: &mut MktimeRun) -> Option<i64> {
        let t = self.mktime_naive(local)?;
        // Only when the seed stays (the common case: no transition between this
        // request and the last one): a seed that keeps changing (another detector on
        // this zone, in another season) would pay for the span at every call.
        if t.checked_sub(local) == Some(seed)
            && let Some((offset, from, to)) = self.offset_span(t)
            && i64::from(offset) == -seed
        {
            *run = MktimeRun {
                zone: self.zone.id,
                seed,
                from,
                to,
            };
        }
        Some(t)
    }

    /// `time.mktime` of a local date and time; `None` where the fields are not a valid
    /// date-time or mktime fails.
    pub fn mktime(
        &self,
        year: i64,
        month: i64,
        day: i64,
        hour: i64,
        minute: i64,
        second: i64,
    ) -> Option<i64> {
        let civil = Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
        };
        civil
            .is_valid()
            .then(|| self.mktime_naive(civil.to_naive()))
            .flatten()
    }

    /// The epoch of a local ISO time `YYYY-MM-DDTHH:MM:SS[.ffffff]` (a space instead of
    /// `T` is accepted), as fail2ban's sample-log tests compute it: `strptime` (which
    /// takes one or two digits for every field but the year), `mktime`, plus the fraction.
    pub fn local_iso_to_epoch(&self, text: &str) -> Option<f64> {
        let (main, fraction) = match text.split_once('.') {
            Some((m, f)) => (m, Some(f)),
            None => (text, None),
        };
        let (date, time) = main.split_once(['T', ' '])?;
        let field = |s: &str, widths: std::ops::RangeInclusive<usize>| -> Option<i64> {
            (widths.contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit()))
                .then(|| s.parse().ok())?
        };
        let mut d = date.split('-');
        let mut t = time.split(':');
        let next = |it: &mut std::str::Split<'_, char>, widths| field(it.next()?, widths);
        let (year, month, day) = (
            next(&mut d, 4..=4)?,
            next(&mut d, 1..=2)?,
            next(&mut d, 1..=2)?,
        );
        let (hour, minute, second) = (
            next(&mut t, 1..=2)?,
            next(&mut t, 1..=2)?,
            next(&mut t, 1..=2)?,
        );
        if d.next().is_some() || t.next().is_some() {
            return None;
        }
        let epoch = self.mktime(year, month, day, hour, minute, second)?;
        let micros = match fraction {
            None => 0,
            Some(f) if !f.is_empty() && f.len() <= 6 && f.bytes().all(|c| c.is_ascii_digit()) => {
                f.parse::<i64>().ok()? * 10_i64.pow(6 - f.len() as u32)
            }
            Some(_) => return None,
        };
        Some(epoch as f64 + micros as f64 / 1_000_000.0)
    }

    /// The local wall clock at `epoch` in microseconds (naive, see [`crate::civil`]), as
    /// Python's `datetime.fromtimestamp` rounds it.
    pub(crate) fn local_micros(&self, epoch: f64) -> Option<i64> {
        let (seconds, micros) = split_timestamp(epoch)?;
        let (offset, _) = self.offset_at(seconds)?;
        Some((seconds + i64::from(offset)) * 1_000_000 + micros)
    }

    /// `YYYY-MM-DD HH:MM:SS` of `epoch` in this zone, as fail2ban's `MyTime.time2str`
    /// prints it (sub-seconds rounded to microseconds, then dropped).
    pub fn format_local(&self, epoch: f64) -> String {
        const LAST_PRINTABLE: f64 = 253_402_214_400.0;
        let naive = if epoch < LAST_PRINTABLE {
            self.local_micros(epoch)
                .map(|us| us.div_euclid(1_000_000))
                .unwrap_or(crate::civil::MIN_NAIVE)
        } else {
            crate::civil::MAX_NAIVE
        };
        let c = Civil::from_naive(naive);
        format!(
            "{}-{:02}-{:02} {:02}:{:02}:{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }
}

/// A timestamp for zone lookups, pinned to the range the zone library handles (a few hours
/// short of the ends of years 1 and 9999 fall outside it; the zone rules there are the
/// ones at the edge).
fn clamped_timestamp(epoch: i64) -> Option<jiff::Timestamp> {
    let (min, max) = (
        jiff::Timestamp::MIN.as_second(),
        jiff::Timestamp::MAX.as_second(),
    );
    jiff::Timestamp::from_second(epoch.clamp(min, max)).ok()
}

/// Splits an epoch float into whole seconds and microseconds the way CPython does for
/// `fromtimestamp` (round half to even on the microseconds).
fn split_timestamp(epoch: f64) -> Option<(i64, i64)> {
    if !epoch.is_finite() || epoch.abs() > 1e15 {
        return None;
    }
    let int_part = epoch.trunc();
    let mut frac = ((epoch - int_part) * 1e6).round_ties_even();
    let mut seconds = int_part as i64;
    if frac >= 1e6 {
        frac -= 1e6;
        seconds += 1;
    } else if frac < 0.0 {
        frac += 1e6;
        seconds -= 1;
    }
    Some((seconds, frac as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS_TZ: &str = "CET-01CEST-02,M3.5.0,M10.5.0";

    fn naive(y: i64, mo: i64, d: i64, h: i64, mi: i64) -> i64 {
        Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: 0,
        }
        .to_naive()
    }

    #[test]
    fn posix_rules_give_summer_and_winter_offsets() {
        let tz = TimeZone::from_tz_value(Some(CORPUS_TZ));
        assert_eq!(tz.offset_at(1_124_013_600), Some((7200, true)));
        assert_eq!(tz.offset_at(1_104_537_600), Some((3600, false)));
        assert_eq!(tz.format_local(1_124_013_600.0), "2005-08-14 12:00:00");
        assert_eq!(
            tz.local_iso_to_epoch("2005-08-14T12:00:00"),
            Some(1_124_013_600.0)
        );
        assert_eq!(
            tz.local_iso_to_epoch("2005-01-01T00:00:00.5"),
            Some(1_104_534_000.5)
        );
        assert_eq!(
            tz.local_iso_to_epoch("2005-1-1T0:0:0.5"),
            Some(1_104_534_000.5)
        );
        assert_eq!(tz.local_iso_to_epoch("2005-001-01T00:00:00"), None);
        assert_eq!(tz.local_iso_to_epoch("2005-01-01T00:00"), None);
    }

    #[test]
    fn gap_resolves_like_glibc() {
        // 02:30 on the spring-forward day does not exist: glibc answers 03:30 CEST.
        let tz = TimeZone::from_tz_value(Some(CORPUS_TZ));
        assert_eq!(
            tz.mktime_naive(naive(2005, 3, 27, 2, 30)),
            Some(1_111_887_000)
        );
        let tz = TimeZone::from_tz_value(Some(CORPUS_TZ));
        tz.mktime_naive(naive(2005, 8, 1, 12, 0));
        assert_eq!(
            tz.mktime_naive(naive(2005, 3, 27, 2, 30)),
            Some(1_111_887_000)
        );
    }

    #[test]
    fn fold_follows_the_previous_offset_like_glibc() {
        // 01:30 on the fall-back day happens twice (these rules switch at 02:00 CEST).
        let tz = TimeZone::from_tz_value(Some(CORPUS_TZ));
        tz.mktime_naive(naive(2005, 8, 1, 12, 0));
        assert_eq!(
            tz.mktime_naive(naive(2005, 10, 30, 1, 30)),
            Some(1_130_628_600)
        );
        tz.mktime_naive(naive(2005, 1, 1, 12, 0));
        assert_eq!(
            tz.mktime_naive(naive(2005, 10, 30, 1, 30)),
            Some(1_130_632_200)
        );
    }

    /// Requests around the gaps and folds of zones with rules (transitions at whole
    /// hours and at odd seconds), in runs and jumping between seasons: answered along
    /// a run, they get what `mktime_naive` gives in the same order, seeds included,
    /// and most of them from the run.
    #[test]
    fn mktime_along_a_run_equals_mktime() {
        let mut zones = vec!["CET-01CEST-02,M3.5.0/2:00:30,M10.5.0/3:00:30", CORPUS_TZ];
        if Path::new("/usr/share/zoneinfo/Europe/Berlin").is_file() {
            zones.push("Europe/Berlin");
        }
        let mut random = crate::test_random(0x9e37_79b9_7f4a_7c15_u64);
        let starts = [
            naive(2005, 3, 27, 1, 58),
            naive(2005, 10, 30, 1, 58),
            naive(2005, 10, 30, 2, 58),
            naive(2005, 12, 31, 23, 58),
            naive(2005, 8, 14, 12, 0),
        ];
        for zone in zones {
            let (along, plain) = (
                TimeZone::from_tz_value(Some(zone)),
                TimeZone::from_tz_value(Some(zone)),
            );
            let mut run = MktimeRun::default();
            let mut hits = 0;
            let mut local = starts[0];
            for i in 0..20_000 {
                local = match random(200) {
                    0 => starts[random(starts.len() as u64) as usize],
                    1 => local + 86_400 * 180,
                    2 => local - 3600,
                    _ => local + random(5) as i64,
                };
                let seed_before = along.zone.mktime_seed.load(Ordering::Relaxed);
                let hit = run.zone == along.id()
                    && run.seed == seed_before
                    && (run.from..run.to).contains(&(local + seed_before));
                let got = along.mktime_naive_along(local, &mut run);
                let want = plain.mktime_naive(local);
                assert_eq!(got, want, "{zone} request {i}: {local}");
                let seeds = [&along, &plain].map(|z| z.zone.mktime_seed.load(Ordering::Relaxed));
                assert_eq!(seeds[0], seeds[1], "{zone} request {i}: {local}");
                hits += usize::from(hit);
            }
            assert!(hits > 15_000, "{zone}: only {hits} answers from the run");
        }
    }

    #[test]
    fn tz_values_are_read_like_libc() {
        assert_eq!(TimeZone::from_tz_value(Some("")).fixed_offset(), Some(0));
        assert_eq!(
            TimeZone::from_tz_value(Some("no such zone, really")).fixed_offset(),
            Some(0)
        );
        let est = TimeZone::from_tz_value(Some("EST5EDT,M3.2.0,M11.1.0"));
        assert_eq!(est.offset_at(1_124_013_600), Some((-4 * 3600, true)));
        let no_rules = TimeZone::posix("CET-1CEST").expect("default rules apply");
        assert_eq!(no_rules.offset_at(1_124_013_600), Some((7200, true)));
        if Path::new("/usr/share/zoneinfo/Europe/Paris").is_file() {
            let paris = TimeZone::from_tz_value(Some(":Europe/Paris"));
            assert_eq!(paris.offset_at(1_124_013_600), Some((7200, true)));
            // Since 1996 the EU switches back at 01:00 UTC, not at 00:00 UTC.
            assert_eq!(paris.offset_at(1_130_634_000 - 1), Some((7200, true)));
        }
    }

    #[test]
    fn log_timezones_are_fixed_offsets() {
        let tz = |s| TimeZone::from_log_timezone(s).map(|z| z.fixed_offset());
        assert_eq!(tz("UTC").ok(), Some(Some(0)));
        assert_eq!(tz("UTC+0200").ok(), Some(Some(7200)));
        assert_eq!(tz("GMT-0100").ok(), Some(Some(-3600)));
        assert_eq!(tz("CET+0100").ok(), Some(Some(7200)));
        assert!(tz("Europe/Paris").is_err());
        assert!(tz("UTC+2").is_err());
    }

    #[test]
    fn timestamps_split_like_cpython() {
        assert_eq!(split_timestamp(1.5), Some((1, 500_000)));
        assert_eq!(split_timestamp(-1.25), Some((-2, 750_000)));
        assert_eq!(split_timestamp(0.999_999_9), Some((1, 0)));
        assert_eq!(split_timestamp(f64::NAN), None);
    }
}
