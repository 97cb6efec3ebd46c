//! strptime-style `%` codes in date patterns: what each one matches, what it is called in
//! template names, and how a pattern is expanded into a regex.
//!
//! The set of codes and their languages follow fail2ban (Python's `_strptime.TimeRE` in the
//! C locale, with fail2ban's replacements and `%Ex…` additions). Alternation order inside
//! each regex matters (the first alternative that lets the whole pattern match wins), so
//! the alternatives below keep fail2ban's order.

/// One `%` code.
struct Code {
    /// Text after `%`.
    key: &'static str,
    /// The regex; `{Y}` stands for the century prefixes of `%ExY`.
    regex: &'static str,
    /// Its name in template names, as `fail2ban-regex` prints them.
    name: &'static str,
}

const WEEKDAYS: &str = "mon|tue|wed|thu|fri|sat|sun";
const MONTHS: &str = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec";

/// Lower-case C-locale names, index = Python's value (months from 1, weekdays from Monday=0).
pub(crate) const MONTH_ABBRS: [&str; 13] = [
    "", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
pub(crate) const MONTH_NAMES: [&str; 13] = [
    "",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
pub(crate) const WEEKDAY_ABBRS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
pub(crate) const WEEKDAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Multi-letter codes first: they are tried before single letters.
const CODES: &[Code] = &[
    Code {
        key: "%",
        regex: "%",
        name: "%",
    },
    Code {
        key: "ExZ",
        regex: r"(?P<Z>[A-Z](?:[A-Z]{2,4})?)",
        name: "ExZone name",
    },
    Code {
        key: "Exz",
        regex: r"(?P<z>(?:[A-Z](?:[A-Z]{2,4})?)?[+-][01]\d(?::?\d{2})?|[A-Z](?:[A-Z]{2,4})?)",
        name: "ExZone offset",
    },
    Code {
        key: "Exd",
        regex: r"(?P<d>[12]\d|0[1-9]|3[01])",
        name: "ExDay",
    },
    Code {
        key: "Exm",
        regex: r"(?P<m>0[1-9]|1[0-2])",
        name: "ExMonth",
    },
    Code {
        key: "ExH",
        regex: r"(?P<H>[01]\d|2[0-3])",
        name: "Ex24hour",
    },
    Code {
        key: "Exk",
        regex: r" ?(?P<H>[01]?\d|2[0-3])",
        name: "%Exk",
    },
    Code {
        key: "Exl",
        regex: r" ?(?P<I>1[0-2]|\d)",
        name: "%Exl",
    },
    Code {
        key: "ExM",
        regex: r"(?P<M>[0-5]\d)",
        name: "ExMinute",
    },
    Code {
        key: "ExS",
        regex: r"(?P<S>[0-5]\d|6[01])",
        name: "ExSecond",
    },
    Code {
        key: "ExY",
        regex: r"(?P<Y>{Y}\d)",
        name: "ExYear",
    },
    Code {
        key: "Exy",
        regex: r"(?P<y>\d{2})",
        name: "ExYear2",
    },
    Code {
        key: "a",
        regex: "(?P<a>{a})",
        name: "DAY",
    },
    Code {
        key: "A",
        regex: "(?P<A>wednesday|thursday|saturday|tuesday|monday|friday|sunday)",
        name: "DAYNAME",
    },
    Code {
        key: "b",
        regex: "(?P<b>{b})",
        name: "MON",
    },
    Code {
        key: "B",
        regex: "(?P<B>september|february|november|december|january|october|august|march|april|june|july|may)",
        name: "MONTH",
    },
    Code {
        key: "c",
        regex: r"(?P<a>{a})\s+(?P<b>{b})\s+(?P<d>3[01]|[12]\d|0[1-9]|[1-9]| [1-9])\s+(?P<H>2[0-3]|[01]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[01]|[0-5]\d|\d)\s+(?P<Y>\d\d\d\d)",
        name: "%c",
    },
    Code {
        key: "d",
        regex: r"(?P<d>[12]\d|[0 ]?[1-9]|3[01])",
        name: "Day",
    },
    Code {
        key: "f",
        regex: "(?P<f>[0-9]{1,6})",
        name: "Microseconds",
    },
    Code {
        key: "G",
        regex: r"(?P<G>\d\d\d\d)",
        name: "%G",
    },
    Code {
        key: "H",
        regex: r"(?P<H>[01]?\d|2[0-3])",
        name: "24hour",
    },
    Code {
        key: "I",
        regex: "(?P<I>1[0-2]|0[1-9]|[1-9])",
        name: "12hour",
    },
    Code {
        key: "j",
        regex: r"(?P<j>36[0-6]|3[0-5]\d|[12]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])",
        name: "Yearday",
    },
    Code {
        key: "k",
        regex: r" ?(?P<H>[0-2]?\d)",
        name: "%k",
    },
    Code {
        key: "l",
        regex: r" ?(?P<I>1?\d)",
        name: "%l",
    },
    Code {
        key: "m",
        regex: "(?P<m>0?[1-9]|1[0-2])",
        name: "Month",
    },
    Code {
        key: "M",
        regex: r"(?P<M>[0-5]?\d)",
        name: "Minute",
    },
    Code {
        key: "p",
        regex: "(?P<p>am|pm)",
        name: "AMPM",
    },
    Code {
        key: "S",
        regex: r"(?P<S>[0-5]?\d|6[01])",
        name: "Second",
    },
    Code {
        key: "U",
        regex: r"(?P<U>5[0-3]|[0-4]\d|\d)",
        name: "Yearweek",
    },
    Code {
        key: "u",
        regex: "(?P<u>[1-7])",
        name: "%u",
    },
    Code {
        key: "V",
        regex: r"(?P<V>5[0-3]|0[1-9]|[1-4]\d|\d)",
        name: "%V",
    },
    Code {
        key: "w",
        regex: "(?P<w>[0-6])",
        name: "Weekday",
    },
    Code {
        key: "W",
        regex: r"(?P<W>5[0-3]|[0-4]\d|\d)",
        name: "Yearweek",
    },
    Code {
        key: "x",
        regex: r"(?P<m>1[0-2]|0[1-9]|[1-9])/(?P<d>3[01]|[12]\d|0[1-9]|[1-9]| [1-9])/(?P<y>\d\d)",
        name: "%x",
    },
    Code {
        key: "X",
        regex: r"(?P<H>2[0-3]|[01]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[01]|[0-5]\d|\d)",
        name: "%X",
    },
    Code {
        key: "y",
        regex: r"(?P<y>\d\d)",
        name: "Year2",
    },
    Code {
        key: "Y",
        regex: r"(?P<Y>\d{4})",
        name: "Year",
    },
    Code {
        key: "z",
        regex: r"(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)",
        name: "Zone offset",
    },
    Code {
        key: "Z",
        regex: "(?P<Z>Z|[A-Z]{3,5})",
        name: "Zone name",
    },
];

/// The code at the start of `after_percent` (the text following a `%`).
fn code_at(after_percent: &str) -> Option<&'static Code> {
    // `CODES` lists the `Ex…` codes before the single letters, so the longest code wins.
    CODES.iter().find(|c| after_percent.starts_with(c.key))
}

/// A pattern with its codes replaced.
#[derive(Debug)]
pub(crate) struct Expanded {
    pub regex: String,
    pub name: String,
}

/// Replaces every `%` code of `pattern`; `year_prefixes` is the regex for the first three
/// digits of an `%ExY` year. A `%` that does not start a code is an error (fail2ban fails
/// on it while formatting).
pub(crate) fn expand(pattern: &str, year_prefixes: &str) -> Result<Expanded, String> {
    let mut regex = String::with_capacity(pattern.len() * 4);
    let mut name = String::with_capacity(pattern.len() * 2);
    let mut rest = pattern;
    while let Some(at) = rest.find('%') {
        regex.push_str(&rest[..at]);
        name.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let code = code_at(after).ok_or_else(|| {
            let shown: String = after.chars().take(1).collect();
            format!("unsupported format code %{shown} (a literal percent sign is written %%)")
        })?;
        regex.push_str(
            &code
                .regex
                .replace("{Y}", year_prefixes)
                .replace("{a}", WEEKDAYS)
                .replace("{b}", MONTHS),
        );
        name.push_str(code.name);
        rest = &after[code.key.len()..];
    }
    regex.push_str(rest);
    name.push_str(rest);
    Ok(Expanded { regex, name })
}

/// Whether the pattern uses a code that matches names (`%a %A %b %B %p %c`), which makes
/// fail2ban compile the template case-insensitively. Like fail2ban, a code preceded by a
/// `%` is not counted (so `%%a` is rightly ignored, and `%%%a` wrongly so).
pub(crate) fn uses_names(pattern: &str) -> bool {
    let b = pattern.as_bytes();
    b.windows(2).enumerate().any(|(i, w)| {
        w[0] == b'%'
            && matches!(w[1], b'a' | b'A' | b'b' | b'B' | b'p' | b'c')
            && (i == 0 || b[i - 1] != b'%')
    })
}

/// Regex for the first three digits of the years `%ExY` accepts, given the current year:
/// the centuries-and-decades of last year and of three years ahead, and every third year
/// from 2000 up to now (fail2ban's choice, so that old test logs still match).
pub(crate) fn year_prefixes(current_year: i64) -> String {
    let mut years = vec![current_year - 1, current_year + 3];
    years.extend((2000..=current_year).step_by(3));
    let mut prefixes: Vec<String> = years
        .iter()
        .map(|y| y.to_string().chars().take(3).collect())
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let digit_class = prefixes.len() > 1
        && prefixes
            .iter()
            .all(|p| p.len() == 3 && p[..2] == prefixes[0][..2]);
    if digit_class {
        let last_digits: String = prefixes.iter().filter_map(|p| p.chars().nth(2)).collect();
        format!("{}[{last_digits}]", &prefixes[0][..2])
    } else if prefixes.len() == 1 {
        prefixes.remove(0)
    } else {
        format!("(?:{})", prefixes.join("|"))
    }
}

/// `%ExY` prefixes when no current year is known: any year 2000-2099.
pub(crate) const ANY_21ST_CENTURY: &str = r"20\d";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_prefixes_cover_last_year_to_three_ahead() {
        assert_eq!(year_prefixes(2026), "20[012]");
        assert_eq!(year_prefixes(2027), "20[0123]");
        assert_eq!(year_prefixes(2005), "200");
        assert_eq!(
            year_prefixes(2097),
            "(?:200|201|202|203|204|205|206|207|208|209|210)"
        );
    }

    #[test]
    fn names_and_regexes_are_substituted() {
        let e = expand(
            r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
            &year_prefixes(2026),
        )
        .expect("valid pattern");
        assert_eq!(
            e.name,
            r"(?:DAY )?MON Day %k:Minute:Second(?:\.Microseconds)?(?: ExYear)?"
        );
        assert!(e.regex.contains(r"(?P<Y>20[012]\d)"));
        assert!(e.regex.starts_with("(?:(?P<a>mon|tue|"));
        let e = expand("%%Y %Exy%Exl", "20").expect("valid pattern");
        assert_eq!(e.name, "%Y ExYear2%Exl");
        assert!(e.regex.starts_with("%Y (?P<y>"));
    }

    #[test]
    fn stray_percent_is_an_error() {
        assert!(expand("%q", "20").is_err());
        assert!(expand("100%", "20").is_err());
        assert!(expand("%E", "20").is_err());
        assert!(expand("%Ex", "20").is_err());
    }

    #[test]
    fn name_codes_make_templates_case_insensitive() {
        assert!(uses_names("%b %d"));
        assert!(uses_names("x%p"));
        assert!(!uses_names("%%b"));
        assert!(!uses_names("%%%b"));
        assert!(!uses_names("%Y-%m-%d"));
    }
}
