//! Proleptic Gregorian calendar arithmetic on naive date-times, with the range and the
//! checks of Python's `datetime` (years 1 to 9999).
//!
//! A naive date-time is kept as seconds since 1970-01-01 00:00:00 of the same wall clock
//! (as if it were UTC); that makes "local wall clock" and "UTC" values comparable the way
//! fail2ban compares them, and keeps everything in plain integers.

pub(crate) const SECONDS_PER_DAY: i64 = 86_400;

/// 0001-01-01 00:00:00 and 9999-12-31 23:59:59 as naive seconds.
pub(crate) const MIN_NAIVE: i64 = -62_135_596_800;
pub(crate) const MAX_NAIVE: i64 = 253_402_300_799;

pub(crate) fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub(crate) fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 1970-01-01 to the given date (any year; no range check).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Shift the year so that it starts in March: the leap day is then its last day.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01, as (year, month, day).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Broken-down naive date-time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

impl Civil {
    /// Python's `datetime(year, month, day, hour, minute, second)` checks.
    pub(crate) fn is_valid(&self) -> bool {
        (1..=9999).contains(&self.year)
            && (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && (0..24).contains(&self.hour)
            && (0..60).contains(&self.minute)
            && (0..60).contains(&self.second)
    }

    /// Naive seconds since 1970-01-01 00:00:00.
    pub(crate) fn to_naive(self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * SECONDS_PER_DAY
            + self.hour * 3600
            + self.minute * 60
            + self.second
    }

    pub(crate) fn from_naive(naive: i64) -> Civil {
        let days = naive.div_euclid(SECONDS_PER_DAY);
        let secs = naive.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }
}

/// Whether a naive value is inside Python's `datetime` range.
pub(crate) fn in_datetime_range(naive: i64) -> bool {
    (MIN_NAIVE..=MAX_NAIVE).contains(&naive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_over_the_whole_range() {
        for days in (-719_162..=2_932_896).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2005, 8, 14), 13_009);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(Civil::from_naive(MIN_NAIVE).year, 1);
        assert_eq!(Civil::from_naive(MAX_NAIVE).second, 59);
    }

    #[test]
    fn validity_follows_datetime() {
        let c = |year, month, day| Civil {
            year,
            month,
            day,
            hour: 0,
            minute: 0,
            second: 0,
        };
        assert!(c(2004, 2, 29).is_valid());
        assert!(!c(2005, 2, 29).is_valid());
        assert!(!c(1900, 2, 29).is_valid());
        assert!(c(2000, 2, 29).is_valid());
        assert!(!c(0, 1, 1).is_valid());
        assert!(!c(2005, 13, 1).is_valid());
        assert!(!c(2005, 4, 31).is_valid());
    }
}
