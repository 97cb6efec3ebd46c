//! Zone designations as fail2ban reads them: fixed offsets only.
//!
//! A `%z`/`%Z` field in a log line and the jail's `logtimezone` are both turned into a
//! fixed number of minutes east of UTC: an optional abbreviation from the table below
//! (no daylight-saving switch: `CET` is always +01:00) plus an optional `±hh[[:]mm]`.

use crate::pytext::{decimal_value, py_int};

/// Zone abbreviations fail2ban knows, with their offsets in minutes east of UTC, sorted by
/// code point so that they can be binary-searched.
const ABBREVIATIONS: [(&str, i32); 222] = [
    ("A", 60),
    ("ACDT", 630),
    ("ACST", 570),
    ("ACT", 480),
    ("ADT", -180),
    ("AEDT", 660),
    ("AEST", 600),
    ("AFT", 270),
    ("AKDT", -480),
    ("AKST", -540),
    ("ALMT", 360),
    ("AMST", 300),
    ("AMT", 240),
    ("ANAST", 720),
    ("ANAT", 720),
    ("AQTT", 300),
    ("ART", -180),
    ("AST", -240),
    ("AWDT", 540),
    ("AWST", 480),
    ("AZOT", -60),
    ("AZST", 300),
    ("AZT", 240),
    ("B", 120),
    ("BDT", 480),
    ("BIOT", 360),
    ("BNT", 480),
    ("BOT", -240),
    ("BRST", -120),
    ("BRT", -180),
    ("BTT", 360),
    ("C", 180),
    ("CAST", 480),
    ("CAT", 120),
    ("CCT", 390),
    ("CDT", -300),
    ("CEDT", 120),
    ("CEST", 120),
    ("CET", 60),
    ("CIST", -480),
    ("CKT", -600),
    ("CLST", -180),
    ("CLT", -240),
    ("COST", -240),
    ("COT", -300),
    ("CST", -360),
    ("CVT", -60),
    ("CXT", 420),
    ("ChST", 600),
    ("D", 240),
    ("DAVT", 420),
    ("DFT", 60),
    ("E", 300),
    ("EASST", -300),
    ("EAST", -360),
    ("EAT", 180),
    ("ECT", -300),
    ("EDT", -240),
    ("EEDT", 180),
    ("EEST", 180),
    ("EET", 120),
    ("EGST", 0),
    ("EGT", -60),
    ("EST", -300),
    ("ET", -300),
    ("F", 360),
    ("FJST", 780),
    ("FJT", 720),
    ("FKST", -180),
    ("FKT", -240),
    ("FNT", -120),
    ("G", 420),
    ("GALT", -360),
    ("GAMT", -540),
    ("GET", 240),
    ("GFT", -180),
    ("GILT", 720),
    ("GIT", -540),
    ("GMT", 0),
    ("GST", 240),
    ("GYT", -240),
    ("H", 480),
    ("HAA", -180),
    ("HAC", -300),
    ("HADT", -540),
    ("HAE", -240),
    ("HAP", -420),
    ("HAR", -360),
    ("HAST", -600),
    ("HAT", -150),
    ("HAY", -480),
    ("HKT", 480),
    ("HLV", -270),
    ("HMT", 300),
    ("HNA", -240),
    ("HNC", -360),
    ("HNE", -300),
    ("HNP", -480),
    ("HNR", -420),
    ("HNT", -210),
    ("HNY", -540),
    ("HOVT", 420),
    ("HST", -600),
    ("I", 540),
    ("ICT", 420),
    ("IDT", 180),
    ("IOT", 360),
    ("IRDT", 270),
    ("IRKST", 540),
    ("IRKT", 480),
    ("IRST", 210),
    ("JST", 540),
    ("K", 600),
    ("KGT", 360),
    ("KRAST", 480),
    ("KRAT", 420),
    ("KST", 540),
    ("KUYT", 240),
    ("L", 660),
    ("LHDT", 660),
    ("LHST", 630),
    ("M", 720),
    ("MAGST", 720),
    ("MAGT", 660),
    ("MART", -570),
    ("MAWT", 300),
    ("MDT", -360),
    ("MHT", 720),
    ("MIT", -570),
    ("MMT", 390),
    ("MSD", 240),
    ("MSK", 180),
    ("MST", -420),
    ("MUT", 240),
    ("MVT", 300),
    ("MYT", 480),
    ("N", -60),
    ("NCT", 660),
    ("NDT", -150),
    ("NFT", 690),
    ("NOVST", 420),
    ("NOVT", 360),
    ("NPT", 345),
    ("NST", -210),
    ("NT", -210),
    ("NUT", -660),
    ("NZDT", 780),
    ("NZST", 720),
    ("O", -120),
    ("OMSST", 420),
    ("OMST", 360),
    ("P", -180),
    ("PDT", -420),
    ("PET", -300),
    ("PETST", 720),
    ("PETT", 720),
    ("PGT", 600),
    ("PHT", 480),
    ("PKT", 300),
    ("PMDT", -120),
    ("PMST", -180),
    ("PONT", 660),
    ("PST", -480),
    ("PT", -480),
    ("PWT", 540),
    ("PYST", -180),
    ("PYT", -240),
    ("Q", -240),
    ("R", -300),
    ("RET", 240),
    ("S", -360),
    ("SAMT", 240),
    ("SAST", 120),
    ("SBT", 660),
    ("SCT", 240),
    ("SGT", 480),
    ("SLT", 330),
    ("SRT", -180),
    ("SST", -660),
    ("T", -420),
    ("TAHT", -600),
    ("TFT", 300),
    ("THA", 420),
    ("TJT", 300),
    ("TKT", -600),
    ("TLT", 540),
    ("TMT", 300),
    ("TVT", 720),
    ("U", -480),
    ("ULAT", 480),
    ("UTC", 0),
    ("UYST", -120),
    ("UYT", -180),
    ("UZT", 300),
    ("V", -540),
    ("VET", -270),
    ("VLAST", 660),
    ("VLAT", 600),
    ("VUT", 660),
    ("W", -600),
    ("WAST", 120),
    ("WAT", 60),
    ("WDT", 540),
    ("WEDT", 60),
    ("WEST", 60),
    ("WET", 0),
    ("WFT", 720),
    ("WGST", -120),
    ("WGT", -180),
    ("WIB", 420),
    ("WIT", 540),
    ("WITA", 480),
    ("WST", 480),
    ("WT", 0),
    ("X", -660),
    ("Y", -720),
    ("YAKST", 600),
    ("YAKT", 540),
    ("YAPT", 600),
    ("YEKST", 360),
    ("YEKT", 300),
    ("Z", 0),
];

/// Offset in minutes of a known zone abbreviation.
pub(crate) fn abbreviation_offset(abbr: &str) -> Option<i32> {
    ABBREVIATIONS
        .binary_search_by(|(name, _)| (*name).cmp(abbr))
        .ok()
        .map(|i| ABBREVIATIONS[i].1)
}

/// Why a zone designation could not be turned into an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ZoneError {
    /// Not of the accepted shape (fail2ban raises `ValueError`).
    Shape,
    /// Well-formed abbreviation missing from the table (fail2ban raises `KeyError`).
    UnknownAbbreviation,
}

/// Minutes east of UTC for a designation such as `CET`, `UTC+0200`, `-05:00` or `GMT-01`.
///
/// The accepted shape is an optional abbreviation of 1 or 3 to 5 ASCII capitals followed by
/// an optional `[+-][01]d[[:]dd]`, and nothing else but an optional final newline. Where
/// several readings exist, the first one in regex backtracking order is taken (longest
/// abbreviation first, then the longest offset).
pub(crate) fn fixed_offset_minutes(text: &str) -> Result<i32, ZoneError> {
    let (abbr, offset) = split_designation(text).ok_or(ZoneError::Shape)?;
    let base = match abbr {
        None => 0,
        Some(a) => abbreviation_offset(a).ok_or(ZoneError::UnknownAbbreviation)?,
    };
    let Some(offset) = offset else {
        return Ok(base);
    };
    let chars: Vec<char> = offset.chars().collect();
    let number = |from: usize, to: usize| -> Result<i32, ZoneError> {
        let s: String = chars.get(from..to).unwrap_or_default().iter().collect();
        py_int(&s)
            .and_then(|v| i32::try_from(v).ok())
            .ok_or(ZoneError::Shape)
    };
    let sign = if chars.first() == Some(&'-') { -1 } else { 1 };
    Ok(match chars.len() {
        // `±hh`: the sign belongs to the number.
        0..=3 => base + number(0, chars.len())? * 60,
        _ if chars[3] != ':' => base + sign * (number(1, 3)? * 60 + number(3, 5)?),
        _ => base + sign * (number(1, 3)? * 60 + number(4, 6)?),
    })
}

/// Splits a designation into its abbreviation and offset parts, or `None` if it has
/// neither shape.
fn split_designation(text: &str) -> Option<(Option<&str>, Option<&str>)> {
    let at_end = |rest: &str| rest.is_empty() || rest == "\n";
    let capitals = text.bytes().take_while(u8::is_ascii_uppercase).count();
    let abbreviation_lengths = [5, 4, 3, 1]
        .into_iter()
        .filter(|&n| n <= capitals)
        .map(Some)
        .chain([None]);
    for abbr_len in abbreviation_lengths {
        let rest = &text[abbr_len.unwrap_or(0)..];
        let abbr = abbr_len.map(|n| &text[..n]);
        for offset_len in offset_lengths(rest) {
            if at_end(&rest[offset_len..]) {
                return Some((abbr, Some(&rest[..offset_len])));
            }
        }
        if at_end(rest) {
            return Some((abbr, None));
        }
    }
    None
}

/// Byte lengths of the `[+-][01]\d(?::?\d{2})?` prefixes of `s`, longest first.
fn offset_lengths(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut chars = s.char_indices();
    let (Some((_, sign)), Some((_, tens)), Some((_, unit))) =
        (chars.next(), chars.next(), chars.next())
    else {
        return out;
    };
    if !matches!(sign, '+' | '-') || !matches!(tens, '0' | '1') || decimal_value(unit).is_none() {
        return out;
    }
    let hours_end = 2 + unit.len_utf8();
    let rest = &s[hours_end..];
    let two_digits = |t: &str| -> Option<usize> {
        let mut it = t.chars();
        let a = it.next().filter(|&c| decimal_value(c).is_some())?;
        let b = it.next().filter(|&c| decimal_value(c).is_some())?;
        Some(a.len_utf8() + b.len_utf8())
    };
    if let Some(n) = rest.strip_prefix(':').and_then(two_digits) {
        out.push(hours_end + 1 + n);
    }
    if let Some(n) = two_digits(rest) {
        out.push(hours_end + n);
    }
    out.push(hours_end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(ABBREVIATIONS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(abbreviation_offset("CEST"), Some(120));
        assert_eq!(abbreviation_offset("NPT"), Some(345));
        assert_eq!(abbreviation_offset("ChST"), Some(600));
        assert_eq!(abbreviation_offset("XYZ"), None);
    }

    #[test]
    fn designations_become_minutes() {
        assert_eq!(fixed_offset_minutes("UTC"), Ok(0));
        assert_eq!(fixed_offset_minutes("CET"), Ok(60));
        assert_eq!(fixed_offset_minutes("UTC+0200"), Ok(120));
        assert_eq!(fixed_offset_minutes("GMT-0100"), Ok(-60));
        assert_eq!(fixed_offset_minutes("CET+0100"), Ok(120));
        assert_eq!(fixed_offset_minutes("-05:30"), Ok(-330));
        assert_eq!(fixed_offset_minutes("+01"), Ok(60));
        assert_eq!(fixed_offset_minutes("-01"), Ok(-60));
        assert_eq!(fixed_offset_minutes("Z"), Ok(0));
        assert_eq!(fixed_offset_minutes(""), Ok(0));
        assert_eq!(fixed_offset_minutes("EST\n"), Ok(-300));
    }

    #[test]
    fn bad_designations_are_told_apart() {
        assert_eq!(fixed_offset_minutes("cet"), Err(ZoneError::Shape));
        assert_eq!(fixed_offset_minutes("AB+01"), Err(ZoneError::Shape));
        assert_eq!(fixed_offset_minutes("+2000"), Err(ZoneError::Shape));
        assert_eq!(fixed_offset_minutes("Europe/Paris"), Err(ZoneError::Shape));
        assert_eq!(
            fixed_offset_minutes("ERROR"),
            Err(ZoneError::UnknownAbbreviation)
        );
        assert_eq!(fixed_offset_minutes("QQ"), Err(ZoneError::Shape));
    }
}
