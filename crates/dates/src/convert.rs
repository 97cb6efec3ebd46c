//! From the fields of a matched date to a Unix time, as fail2ban's
//! `strptime.reGroupDictStrptime` does it.
//!
//! - Two-digit years (and any year up to 2000 given by `%y`) are in the 2000s.
//! - No year: the current one, or the previous one if the date would then be more than a
//!   day in the future (a year-less syslog date read just after New Year).
//! - No month and day: today, or yesterday if the time is still to come.
//! - `%z`/`%Z` give a fixed offset; else the jail's `logtimezone`; else the local zone
//!   through `mktime`. The "future" checks compare with the *local* wall clock even when
//!   the date was shifted to UTC, exactly as fail2ban does.
//! - Sub-seconds (`%f`) are dropped.
//!
//! fail2ban tells two failures apart, and so do we: a date that does not exist (`Feb 30`)
//! raises `ValueError` and the line goes on without a date; other exceptions (an unknown
//! zone abbreviation, `%I` with an AM/PM group that did not match, month without day, …)
//! abort the processing of the whole line.

use crate::civil::{Civil, SECONDS_PER_DAY, civil_from_days, days_from_civil, in_datetime_range};
use crate::codes::{MONTH_ABBRS, MONTH_NAMES, WEEKDAY_ABBRS, WEEKDAY_NAMES};
use crate::pytext::py_int;
use crate::template::Field;
use crate::tz::MktimeRun;
use crate::zones::{ZoneError, fixed_offset_minutes};

const MICROS: i64 = 1_000_000;
/// `date.max.toordinal()`.
const MAX_ORDINAL: i64 = 3_652_059;

/// Why no time came out of a date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// fail2ban's `ValueError`: the line is processed without a date.
    Invalid,
    /// Any other exception in fail2ban: the line is not processed at all. The text names
    /// the Python exception.
    Fatal(&'static str),
}

/// The AM/PM group of a template, as `found_dict.get('p', '')` sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AmPm<'a> {
    NoGroup,
    Unmatched,
    Text(&'a str),
}

/// Where zone-less dates are taken to be.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DefaultZone<'a> {
    /// `logtimezone`: a fixed offset in minutes.
    Fixed(i64),
    /// The local zone (or a `logtimezone` with rules): `mktime`.
    Rules(&'a crate::TimeZone),
}

/// A conversion result and the local wall-clock interval (microseconds, half-open) of
/// "now" over which the same fields would give the same result.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Converted {
    pub epoch: f64,
    pub valid_from: i64,
    pub valid_to: i64,
    /// How the same fields with other seconds convert, when that is simple.
    pub shift: Option<Shift>,
}

/// What a conversion leaves for the same fields with other seconds (0 to 59), when it
/// did not take "today" for the date. Nothing before the year inference looks at the
/// seconds but the validity and range checks, so the naive time only moves by the
/// difference; the inference decides again against the clock, and going to the year
/// before keeps the time of day, which moves by the difference too (offsets are whole
/// minutes: no day boundary is crossed). `mktime` is asked again, so it answers as it
/// would have (its seed included).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shift {
    second: i64,
    /// The naive time after the offset, before the year inference, and after it.
    shifted: i64,
    inferred: i64,
    /// An offset was given or configured: `inferred` is UTC (else local, for `mktime`).
    fixed: bool,
    /// For a date without a year: the local wall-clock bounds (microseconds) of the
    /// year of "now" it was taken in, and whether the date went to the year before.
    year: Option<(i64, i64, bool)>,
}

impl Shift {
    /// The same shift giving times a day late: tells whether a result came from it.
    #[cfg(test)]
    pub(crate) fn a_day_late(self) -> Shift {
        Shift {
            inferred: self.inferred + SECONDS_PER_DAY,
            ..self
        }
    }

    /// The conversion of the fields this shift was left by with the seconds `second`
    /// instead; `None` where this cannot tell it (a second out of range, a result at
    /// the end of the range, another year of "now", the other side of the inference).
    #[inline]
    pub(crate) fn seconds(
        self,
        second: i128,
        zone: DefaultZone<'_>,
        now_local: &mut impl FnMut() -> Option<i64>,
        run: &mut MktimeRun,
    ) -> Option<Result<Converted, Failure>> {
        let second = i64::try_from(second).ok().filter(|s| (0..60).contains(s))?;
        let d = second - self.second;
        let shifted = self.shifted + d;
        if self.fixed && !in_datetime_range(shifted) {
            return None;
        }
        let (mut valid_from, mut valid_to) = (i64::MIN, i64::MAX);
        if let Some((year_from, year_to, went_back)) = self.year {
            let n = now_local()?;
            let threshold = shifted * MICROS - SECONDS_PER_DAY * MICROS;
            if !(year_from..year_to).contains(&n) || (n < threshold) != went_back {
                return None;
            }
            (valid_from, valid_to) = if went_back {
                (year_from, year_to.min(threshold))
            } else {
                (year_from.max(threshold), year_to)
            };
        }
        let inferred = self.inferred + d;
        let epoch = match zone {
            DefaultZone::Rules(tz) if !self.fixed => match tz.mktime_naive_along(inferred, run) {
                Some(epoch) => epoch,
                None => return Some(Err(Failure::Fatal("OverflowError"))),
            },
            _ => inferred,
        };
        Some(Ok(Converted {
            epoch: epoch as f64,
            valid_from,
            valid_to,
            shift: Some(Shift {
                second,
                shifted,
                inferred,
                ..self
            }),
        }))
    }
}

fn int(value: &str) -> Result<i128, Failure> {
    py_int(value).ok_or(Failure::Invalid)
}

fn position(names: &[&str], value: &str) -> Result<i128, Failure> {
    // The names are lower-case ASCII: for an ASCII value, comparing without case is
    // comparing with its `lower()`, and needs no copy.
    if value.is_ascii() {
        return names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(value))
            .map(|i| i as i128)
            .ok_or(Failure::Invalid);
    }
    let lower = value.to_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .map(|i| i as i128)
        .ok_or(Failure::Invalid)
}

/// Python refuses to pass integers beyond a C `int` to `datetime`.
fn c_int(value: i128) -> Result<i64, Failure> {
    i32::try_from(value)
        .map(i64::from)
        .map_err(|_| Failure::Fatal("OverflowError"))
}

fn weekday_of(days: i64) -> i64 {
    // 1970-01-01 was a Thursday; Monday is 0.
    (days + 3).rem_euclid(7)
}

/// Day of the year (1 = January 1st, may fall outside the year) for a week number and a
/// weekday, weeks starting on Monday (`%W`) or Sunday (`%U`); week 0 is the part of the
/// year before the first such day.
fn julian_from_week(year: i64, week: i64, weekday: i64, weeks_start_monday: bool) -> i64 {
    let mut first_weekday = weekday_of(days_from_civil(year, 1, 1));
    let mut weekday = weekday;
    if !weeks_start_monday {
        first_weekday = (first_weekday + 1) % 7;
        weekday = (weekday + 1) % 7;
    }
    let week_0_length = (7 - first_weekday) % 7;
    if week == 0 {
        1 + weekday - first_weekday
    } else {
        1 + week_0_length + 7 * (week - 1) + weekday
    }
}

fn ordinal(year: i64, month: i64, day: i64) -> i64 {
    days_from_civil(year, month, day) - days_from_civil(1, 1, 1) + 1
}

/// Converts the date fields (in group order, `None` for groups that did not take part).
///
/// `now_local` yields the local wall clock of "now" in microseconds; it is only called when
/// the date lacks a year or a day.
#[cfg(test)]
pub(crate) fn fields_to_epoch<'a>(
    fields: impl IntoIterator<Item = (Field, Option<&'a str>)>,
    am_pm: AmPm<'_>,
    zone: DefaultZone<'_>,
    now_local: impl FnMut() -> Option<i64>,
) -> Result<Converted, Failure> {
    Fields::read(fields, am_pm)?.resolve(zone, now_local, &mut MktimeRun::default())
}

/// The values of a date's fields as read from its text: what the conversion does before
/// anything depends on the clock or the zone. Reading a field depends on its text alone
/// (and the hour on the AM/PM text), so a date whose text differs from another one's
/// only in one field has the other one's values but for that field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Fields {
    year: Option<i128>,
    month: Option<i128>,
    day: Option<i128>,
    zone_minutes: Option<i64>,
    weekday: Option<i128>,
    julian: Option<i128>,
    week: Option<(i128, bool)>,
    hour: i128,
    minute: i128,
    second: i128,
}

impl Fields {
    /// Reads the date fields (in group order, `None` for groups that did not take part).
    pub(crate) fn read<'a>(
        fields: impl IntoIterator<Item = (Field, Option<&'a str>)>,
        am_pm: AmPm<'_>,
    ) -> Result<Fields, Failure> {
        let mut f = Fields {
            year: None,
            month: None,
            day: None,
            zone_minutes: None,
            weekday: None,
            julian: None,
            week: None,
            hour: 0,
            minute: 0,
            second: 0,
        };
        for (field, value) in fields {
            let Some(v) = value else { continue };
            match field {
                Field::Year2 => {
                    let y = int(v)?;
                    f.year = Some(if y <= 2000 { y + 2000 } else { y });
                }
                Field::Year => f.year = Some(int(v)?),
                Field::Month => f.month = Some(int(v)?),
                Field::MonthName => f.month = Some(position(&MONTH_NAMES, v)?),
                Field::MonthAbbr => f.month = Some(position(&MONTH_ABBRS, v)?),
                Field::Day => f.day = Some(int(v)?),
                Field::Hour24 => f.hour = int(v)?,
                Field::Hour12 => {
                    f.hour = int(v)?;
                    let marker = match am_pm {
                        AmPm::NoGroup => String::new(),
                        AmPm::Unmatched => return Err(Failure::Fatal("AttributeError")),
                        AmPm::Text(t) => t.to_lowercase(),
                    };
                    if marker.is_empty() || marker == "am" {
                        if f.hour == 12 {
                            f.hour = 0;
                        }
                    } else if marker == "pm" && f.hour != 12 {
                        f.hour += 12;
                    }
                }
                Field::Minute => f.minute = int(v)?,
                Field::Second => f.second = int(v)?,
                Field::WeekdayName => f.weekday = Some(position(&WEEKDAY_NAMES, v)?),
                Field::WeekdayAbbr => f.weekday = Some(position(&WEEKDAY_ABBRS, v)?),
                Field::Weekday => {
                    let w = int(v)? - 1;
                    f.weekday = Some(if w < 0 { 6 } else { w });
                }
                Field::YearDay => f.julian = Some(int(v)?),
                Field::WeekOfYearSunday => f.week = Some((int(v)?, false)),
                Field::WeekOfYearMonday => f.week = Some((int(v)?, true)),
                Field::ZoneOffset | Field::ZoneName => {
                    f.zone_minutes = Some(if matches!(v, "Z" | "UTC" | "GMT") {
                        0
                    } else {
                        match fixed_offset_minutes(v) {
                            Ok(m) => i64::from(m),
                            Err(ZoneError::Shape) => return Err(Failure::Invalid),
                            Err(ZoneError::UnknownAbbreviation) => {
                                return Err(Failure::Fatal("KeyError"));
                            }
                        }
                    });
                }
            }
        }
        Ok(f)
    }

    /// [`Fields::resolve`] for fields that differ at most in the seconds from those
    /// whose conversion left `shift`, in the same zone.
    pub(crate) fn resolve_after(
        self,
        shift: Option<Shift>,
        zone: DefaultZone<'_>,
        mut now_local: impl FnMut() -> Option<i64>,
        run: &mut MktimeRun,
    ) -> Result<Converted, Failure> {
        let shifted = shift.and_then(|s| s.seconds(self.second, zone, &mut now_local, run));
        if let Some(converted) = shifted {
            return converted;
        }
        self.resolve(zone, now_local, run)
    }

    /// These fields with the seconds read from `text` instead, as [`Fields::read`]
    /// reads the one seconds field of a template.
    pub(crate) fn with_second(self, text: &str) -> Result<Fields, Failure> {
        Ok(Fields {
            second: int(text)?,
            ..self
        })
    }

    /// Sets the seconds to `second`, as [`Fields::with_second`] does for its text.
    pub(crate) fn set_second(&mut self, second: i128) {
        self.second = second;
    }

    /// The time of these fields (see the module docs).
    ///
    /// `now_local` yields the local wall clock of "now" in microseconds; it is only
    /// called when the date lacks a year or a day.
    pub(crate) fn resolve(
        self,
        zone: DefaultZone<'_>,
        mut now_local: impl FnMut() -> Option<i64>,
        run: &mut MktimeRun,
    ) -> Result<Converted, Failure> {
        let Fields {
            year,
            mut month,
            mut day,
            zone_minutes,
            weekday,
            mut julian,
            week,
            hour,
            minute,
            second,
        } = self;
        let mut valid_from = i64::MIN;
        let mut valid_to = i64::MAX;
        let mut now_us: Option<i64> = None;
        let mut now = || -> Result<i64, Failure> {
            if let Some(n) = now_us {
                return Ok(n);
            }
            let n = now_local().ok_or(Failure::Fatal("OverflowError"))?;
            now_us = Some(n);
            Ok(n)
        };

        let assume_year = year.is_none();
        let mut year = match year {
            Some(y) => y,
            None => {
                let n = now()?;
                let (y, _, _) = civil_from_days(n.div_euclid(SECONDS_PER_DAY * MICROS));
                valid_from = valid_from.max(days_from_civil(y, 1, 1) * SECONDS_PER_DAY * MICROS);
                valid_to = valid_to.min(days_from_civil(y + 1, 1, 1) * SECONDS_PER_DAY * MICROS);
                i128::from(y)
            }
        };
        let year_bounds = (valid_from, valid_to);
        if month.is_none() || day.is_none() {
            if julian.is_none()
                && let (Some((w, monday)), Some(wd)) = (week, weekday)
            {
                let y = c_int(year)?;
                if !(1..=9999).contains(&y) {
                    return Err(Failure::Invalid);
                }
                julian = Some(i128::from(julian_from_week(
                    y,
                    c_int(w)?,
                    c_int(wd)?,
                    monday,
                )));
            }
            if let Some(j) = julian {
                let y = c_int(year)?;
                if !(1..=9999).contains(&y) {
                    return Err(Failure::Invalid);
                }
                let ord = i128::from(ordinal(y, 1, 1)) + j - 1;
                let ord = i64::try_from(ord).map_err(|_| Failure::Fatal("OverflowError"))?;
                if !(1..=MAX_ORDINAL).contains(&ord) {
                    return Err(Failure::Invalid);
                }
                let (y2, m2, d2) = civil_from_days(ord - 1 + days_from_civil(1, 1, 1));
                year = i128::from(y2);
                month = Some(i128::from(m2));
                day = Some(i128::from(d2));
            }
        }
        let assume_today = month.is_none() && day.is_none();
        if assume_today {
            let n = now()?;
            let today = n.div_euclid(SECONDS_PER_DAY * MICROS);
            let (_, m, d) = civil_from_days(today);
            month = Some(i128::from(m));
            day = Some(i128::from(d));
            valid_from = valid_from.max(today * SECONDS_PER_DAY * MICROS);
            valid_to = valid_to.min((today + 1) * SECONDS_PER_DAY * MICROS);
        }
        let (Some(month), Some(day)) = (month, day) else {
            // `datetime()` with a `None` month or day.
            return Err(Failure::Fatal("TypeError"));
        };
        let civil = Civil {
            year: c_int(year)?,
            month: c_int(month)?,
            day: c_int(day)?,
            hour: c_int(hour)?,
            minute: c_int(minute)?,
            second: c_int(second)?,
        };
        if !civil.is_valid() {
            return Err(Failure::Invalid);
        }
        let mut result = civil.to_naive();
        let offset = match (zone_minutes, zone) {
            (Some(m), _) => Some(m),
            (None, DefaultZone::Fixed(m)) => Some(m),
            (None, DefaultZone::Rules(_)) => None,
        };
        if let Some(m) = offset {
            result -= m * 60;
            if !in_datetime_range(result) {
                return Err(Failure::Fatal("OverflowError"));
            }
        }
        if assume_today {
            let n = now()?;
            let at = result * MICROS;
            if at > n {
                valid_to = valid_to.min(at);
                result -= SECONDS_PER_DAY;
                if !in_datetime_range(result) {
                    return Err(Failure::Fatal("OverflowError"));
                }
            } else {
                valid_from = valid_from.max(at);
            }
        }
        let shifted = result;
        let mut went_back = false;
        if assume_year {
            let n = now()?;
            let threshold = result * MICROS - SECONDS_PER_DAY * MICROS;
            went_back = n < threshold;
            if went_back {
                valid_to = valid_to.min(threshold);
                // `replace(year=year - 1, month=month, day=day)`, keeping the time of day.
                let time_of_day = result.rem_euclid(SECONDS_PER_DAY);
                let previous = Civil {
                    year: civil.year - 1,
                    month: civil.month,
                    day: civil.day,
                    hour: time_of_day / 3600,
                    minute: time_of_day / 60 % 60,
                    second: time_of_day % 60,
                };
                if !previous.is_valid() {
                    return Err(Failure::Invalid);
                }
                result = previous.to_naive();
            } else {
                valid_from = valid_from.max(threshold);
            }
        }
        let epoch = match (offset, zone) {
            (Some(_), _) => result,
            (None, DefaultZone::Rules(tz)) => tz
                .mktime_naive_along(result, run)
                .ok_or(Failure::Fatal("OverflowError"))?,
            (None, DefaultZone::Fixed(_)) => result,
        };
        let shift = (!assume_today).then_some(Shift {
            second: civil.second,
            shifted,
            inferred: result,
            fixed: offset.is_some(),
            year: assume_year.then_some((year_bounds.0, year_bounds.1, went_back)),
        });
        Ok(Converted {
            epoch: epoch as f64,
            valid_from,
            valid_to,
            shift,
        })
    }
}

/// Seconds of a Unix-time match (`EPOCH`, `LEPOCH`): milliseconds and microseconds of the
/// long form are scaled down; fractions are kept.
pub(crate) fn epoch_value(text: &str, long: bool) -> Result<f64, Failure> {
    let value = crate::pytext::py_float(text).ok_or(Failure::Invalid)?;
    let chars = crate::pytext::char_len(text);
    if long && chars >= 13 {
        if chars >= 16 && !text.contains('.') {
            return Ok(value / 1_000_000.0);
        }
        return Ok(value / 1000.0);
    }
    Ok(value)
}

/// Seconds of a TAI64N label `@4000000037c219bf2ef02e94`: hex digits 2 to 16 (the TAI
/// offset is not removed, as in fail2ban).
pub(crate) fn tai64n_value(label: &str) -> Result<f64, Failure> {
    let hex = label.get(2..17).ok_or(Failure::Invalid)?;
    u64::from_str_radix(hex, 16)
        .map(|v| v as f64)
        .map_err(|_| Failure::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TimeZone;

    const NOW: i64 = 1_124_013_600; // 2005-08-14 12:00:00 CEST

    fn corpus_zone() -> TimeZone {
        TimeZone::from_tz_value(Some("CET-01CEST-02,M3.5.0,M10.5.0"))
    }

    fn convert(fields: &[(Field, &str)], zone: DefaultZone<'_>) -> Result<f64, Failure> {
        fields_to_epoch(
            fields.iter().map(|(f, v)| (*f, Some(*v))),
            AmPm::NoGroup,
            zone,
            || Some((NOW + 7200) * MICROS),
        )
        .map(|c| c.epoch)
    }

    #[test]
    fn yearless_dates_in_the_future_are_last_year() {
        let tz = corpus_zone();
        let f = |m: &str, d: &str| {
            convert(
                &[
                    (Field::MonthAbbr, m),
                    (Field::Day, d),
                    (Field::Hour24, "10"),
                ],
                DefaultZone::Rules(&tz),
            )
        };
        // Aug 15 10:00 is within a day of now: this year.
        assert_eq!(f("Aug", "15"), Ok(1_124_092_800.0));
        // Aug 16 is more than a day ahead: last year.
        assert_eq!(f("aug", "16"), Ok(1_092_643_200.0));
        assert_eq!(f("Augu", "16"), Err(Failure::Invalid));
    }

    #[test]
    fn explicit_zones_shift_to_utc() {
        let tz = corpus_zone();
        let base = [
            (Field::Year, "2005"),
            (Field::Month, "01"),
            (Field::Day, "23"),
            (Field::Hour24, "21"),
        ];
        let with = |z: &'static str| {
            let mut f = base.to_vec();
            f.push((Field::ZoneOffset, z));
            convert(&f, DefaultZone::Rules(&tz))
        };
        assert_eq!(with("Z"), Ok(1_106_514_000.0));
        assert_eq!(with("+02:00"), Ok(1_106_506_800.0));
        assert_eq!(with("CEST"), Ok(1_106_506_800.0));
        assert_eq!(with("ERROR"), Err(Failure::Fatal("KeyError")));
        assert_eq!(with("error"), Err(Failure::Invalid));
        assert_eq!(convert(&base, DefaultZone::Fixed(-60)), Ok(1_106_517_600.0));
        assert_eq!(convert(&base, DefaultZone::Rules(&tz)), Ok(1_106_510_400.0));
    }

    #[test]
    fn impossible_dates_are_invalid_not_fatal() {
        let tz = corpus_zone();
        let z = DefaultZone::Rules(&tz);
        let f = |d: &str, h: &str| {
            convert(
                &[
                    (Field::Year, "2005"),
                    (Field::Month, "2"),
                    (Field::Day, d),
                    (Field::Hour24, h),
                ],
                z,
            )
        };
        assert_eq!(f("30", "10"), Err(Failure::Invalid));
        assert_eq!(f("28", "24"), Err(Failure::Invalid));
        assert_eq!(
            f("28", "99999999999999"),
            Err(Failure::Fatal("OverflowError"))
        );
        assert_eq!(
            convert(&[(Field::Month, "2")], z),
            Err(Failure::Fatal("TypeError"))
        );
    }

    #[test]
    fn twelve_hour_clock() {
        let z = DefaultZone::Fixed(0);
        let at = |h: &str, p: AmPm<'_>| {
            fields_to_epoch(
                [
                    (Field::Year, Some("2005")),
                    (Field::Month, Some("1")),
                    (Field::Day, Some("1")),
                    (Field::Hour12, Some(h)),
                ],
                p,
                z,
                || None,
            )
            .map(|c| c.epoch)
        };
        let midnight = 1_104_537_600.0;
        assert_eq!(at("12", AmPm::Text("AM")), Ok(midnight));
        assert_eq!(at("12", AmPm::Text("pm")), Ok(midnight + 43_200.0));
        assert_eq!(at("1", AmPm::Text("PM")), Ok(midnight + 46_800.0));
        assert_eq!(at("12", AmPm::NoGroup), Ok(midnight));
        assert_eq!(
            at("1", AmPm::Unmatched),
            Err(Failure::Fatal("AttributeError"))
        );
    }

    #[test]
    fn time_only_is_today_or_yesterday() {
        let z = DefaultZone::Fixed(0);
        let at = |h: &str| {
            fields_to_epoch([(Field::Hour24, Some(h))], AmPm::NoGroup, z, || {
                Some((NOW + 7200) * MICROS)
            })
        };
        // Now is 12:00 local: 11:00 is today, 13:00 was yesterday.
        let today = at("11").expect("valid");
        assert_eq!(today.epoch, 1_124_017_200.0);
        let yesterday = at("13").expect("valid");
        assert_eq!(yesterday.epoch, 1_123_938_000.0);
        assert!(today.valid_to <= (NOW + 7200 + 12 * 3600) * MICROS);
    }

    #[test]
    fn week_numbers_and_year_days() {
        let z = DefaultZone::Fixed(0);
        let at = |f: &[(Field, &str)]| {
            fields_to_epoch(
                f.iter().map(|(a, b)| (*a, Some(*b))),
                AmPm::NoGroup,
                z,
                || None,
            )
            .map(|c| c.epoch)
        };
        // Day 45 of 2005 is February 14th.
        assert_eq!(
            at(&[(Field::Year, "2005"), (Field::YearDay, "45")]),
            Ok(1_108_339_200.0)
        );
        // Monday of week 7 (weeks from Monday) of 2005 is February 14th as well.
        assert_eq!(
            at(&[
                (Field::Year, "2005"),
                (Field::WeekOfYearMonday, "7"),
                (Field::WeekdayAbbr, "mon")
            ]),
            Ok(1_108_339_200.0)
        );
        assert_eq!(
            at(&[(Field::Year, "2005"), (Field::YearDay, "9999999")]),
            Err(Failure::Invalid)
        );
    }

    #[test]
    fn epochs_and_labels() {
        assert_eq!(epoch_value("1138943654.123", false), Ok(1_138_943_654.123));
        assert_eq!(epoch_value("1138943654123", true), Ok(1_138_943_654.123));
        assert_eq!(
            epoch_value("1138943654123456", true),
            Ok(1_138_943_654.123_456)
        );
        assert_eq!(tai64n_value("@4000000037c219bf2ef02e94"), Ok(935_467_455.0));
        assert_eq!(tai64n_value("@40"), Err(Failure::Invalid));
    }
}
