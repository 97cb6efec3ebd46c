//! Ban times: the jail's base `bantime` and the `bantime.*` increment options.
//!
//! fail2ban builds one function from the options: formula (or multipliers), then the
//! `maxtime` cap, then the random extra of `rndtime`. The same chain is kept here, in
//! the same order, because each step sees the previous one's result (the cap applies
//! before the random part is added, so a capped ban can still exceed `maxtime`).

use crate::Error;
use crate::expr::{EvalError, Formula, Number, Variables, multiply};

/// fail2ban's formula when `bantime.formula` is not set: the ban time doubles with each
/// previous ban, up to 2^20 times the base.
pub const DEFAULT_FORMULA: &str = "ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor";

/// A permanent ban (`bantime = -1`).
pub const PERMANENT: f64 = -1.0;

/// How a re-offender's ban grows (`bantime.increment = true` and its companions).
#[derive(Clone, Debug)]
pub struct Increment {
    factor: Number,
    growth: Growth,
    max_time: Option<f64>,
    rnd_time: Option<f64>,
    overall_jails: bool,
}

#[derive(Clone, Debug)]
enum Growth {
    Formula(Formula),
    /// Indexed by the previous ban count; the last entry repeats.
    Multipliers(Vec<i64>),
}

/// The option values of the increment, as text from the configuration. Unset and empty
/// options are `None` (fail2ban treats an empty value as unset).
#[derive(Clone, Debug, Default)]
pub struct IncrementOptions<'a> {
    pub factor: Option<&'a str>,
    pub formula: Option<&'a str>,
    pub multipliers: Option<&'a str>,
    pub max_time: Option<&'a str>,
    pub rnd_time: Option<&'a str>,
    pub overall_jails: bool,
}

fn set(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

impl Increment {
    /// Reads the options; every malformed value is an error naming the option.
    pub fn from_options(options: &IncrementOptions<'_>) -> Result<Increment, Error> {
        let factor = match set(options.factor) {
            None => Number::Int(1),
            Some(text) => {
                let formula = Formula::parse(text).map_err(|e| Error::Formula {
                    option: "bantime.factor",
                    source: e,
                })?;
                formula
                    .eval(&Variables::default())
                    .map_err(|e| Error::Evaluate {
                        option: "bantime.factor",
                        text: text.to_string(),
                        source: e,
                    })?
            }
        };
        let multipliers = match set(options.multipliers) {
            None => Vec::new(),
            Some(text) => text
                .split_whitespace()
                .map(|m| {
                    m.parse::<i64>().map_err(|_| Error::Option {
                        option: "bantime.multipliers",
                        value: text.to_string(),
                        reason: format!("{m:?} is not a whole number"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let growth = if multipliers.is_empty() {
            let text = set(options.formula).unwrap_or(DEFAULT_FORMULA);
            Growth::Formula(Formula::parse(text).map_err(|e| Error::Formula {
                option: "bantime.formula",
                source: e,
            })?)
        } else {
            Growth::Multipliers(multipliers)
        };
        let seconds = |option: &'static str, value: Option<&str>| {
            set(value).map(|v| parse_seconds(option, v)).transpose()
        };
        Ok(Increment {
            factor,
            growth,
            max_time: seconds("bantime.maxtime", options.max_time)?,
            rnd_time: seconds("bantime.rndtime", options.rnd_time)?,
            overall_jails: options.overall_jails,
        })
    }

    /// Whether previous bans are counted over all jails (`bantime.overalljails`): the
    /// caller then asks the store for the id's bans in every jail, else in this one.
    pub fn overall_jails(&self) -> bool {
        self.overall_jails
    }

    /// The longest ban this increment gives (`bantime.maxtime`), if capped.
    pub fn max_time(&self) -> Option<f64> {
        self.max_time
    }

    /// The ban time for an id banned `previous_bans` times before (`> 0`), from the
    /// jail's `base` ban time; `random` supplies a number in `[0, 1)` for `rndtime`.
    pub fn ban_time(
        &self,
        base: i64,
        previous_bans: u32,
        random: impl FnOnce() -> f64,
    ) -> Result<f64, EvalError> {
        let grown = match &self.growth {
            Growth::Multipliers(m) => {
                let index = usize::try_from(previous_bans)
                    .unwrap_or(usize::MAX)
                    .min(m.len().saturating_sub(1));
                let multiplier = m.get(index).copied().unwrap_or(1);
                let base = Number::Int(i128::from(base));
                multiply(
                    multiply(base, self.factor)?,
                    Number::Int(i128::from(multiplier)),
                )?
                .to_f64()
            }
            Growth::Formula(f) => {
                let vars = Variables {
                    ban_time: Some(Number::Int(i128::from(base))),
                    ban_count: Some(Number::Int(i128::from(previous_bans))),
                    ban_factor: Some(self.factor),
                };
                let value = f.eval(&vars)?.to_f64();
                // `max(ban.Time, formula)`: a formula can lengthen a ban, never shorten it.
                #[allow(clippy::cast_precision_loss)]
                let base = base as f64;
                if value > base { value } else { base }
            }
        };
        let capped = match self.max_time {
            Some(max) if max < grown => max,
            _ => grown,
        };
        let total = match self.rnd_time {
            Some(rnd) => capped + random() * rnd,
            None => capped,
        };
        if total.is_finite() {
            Ok(total)
        } else {
            Err(EvalError(format!(
                "ban time {total} is not a number of seconds"
            )))
        }
    }

    /// How many attempts one failure of an id banned `previous_bans` times in this
    /// jail counts for: 1, then 2, 3, 5, 9, … (`2^(n-1) + 1`, from 20 bans on fixed),
    /// never more than `max_retry`.
    pub fn failure_weight(previous_bans: u32, max_retry: u32) -> u32 {
        if previous_bans == 0 {
            return 1;
        }
        let weight = (1u32 << (previous_bans.min(20) - 1)) + 1;
        weight.min(max_retry).max(1)
    }
}

/// A time option through fail2ban's `str2seconds`.
pub(crate) fn parse_seconds(option: &'static str, value: &str) -> Result<f64, Error> {
    rampart_dates::str2seconds(value).map_err(|e| Error::Option {
        option,
        value: value.to_string(),
        reason: e.to_string(),
    })
}

/// `bantime` as fail2ban's ban manager keeps it: seconds truncated to a whole number.
pub(crate) fn parse_ban_time(value: &str) -> Result<i64, Error> {
    let seconds = parse_seconds("bantime", value)?;
    if !seconds.is_finite() || seconds.abs() > 9.0e15 {
        return Err(Error::Option {
            option: "bantime",
            value: value.to_string(),
            reason: "out of range".to_string(),
        });
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok(seconds.trunc() as i64)
}
