//! Differential test of the formula evaluator: random expressions over the supported
//! grammar, evaluated by Python's `eval` (with fail2ban's names in scope) and by ours.
//! Values must agree in type and value; where Python raises, we must refuse too.

use rampart_jail::{Formula, Number, Variables};
use serde_json::{Value, json};

use crate::differential::{Rng, python};

const LEAVES: [&str; 16] = [
    "0",
    "1",
    "2",
    "3",
    "7",
    "20",
    "600",
    "1000000",
    "0.5",
    "2.5",
    ".25",
    "1e3",
    "ban.Time",
    "ban.Count",
    "banFactor",
    "True",
];
const BINARY: [&str; 20] = [
    "+", "-", "*", "/", "//", "%", "**", "<<", ">>", "&", "|", "^", "<", "<=", ">", ">=", "==",
    "!=", "and", "or",
];
const UNARY: [&str; 4] = ["-", "+", "~", "not "];
const CALLS: [&str; 13] = [
    "min",
    "max",
    "abs",
    "int",
    "float",
    "round",
    "math.exp",
    "math.log",
    "math.sqrt",
    "math.floor",
    "math.ceil",
    "math.log2",
    "math.pow",
];

fn expression(rng: &mut Rng, depth: u32) -> String {
    let text = if depth == 0 || rng.below(5) == 0 {
        rng.pick(&LEAVES).to_string()
    } else {
        match rng.below(10) {
            0 => format!("{}{}", rng.pick(&UNARY), expression(rng, depth - 1)),
            1 => format!(
                "{} if {} else {}",
                expression(rng, depth - 1),
                expression(rng, depth - 1),
                expression(rng, depth - 1)
            ),
            2 | 3 => {
                let name = *rng.pick(&CALLS);
                let args = match name {
                    "min" | "max" => 2 + rng.below(2),
                    "round" | "math.log" => 1 + rng.below(2),
                    "math.pow" => 2,
                    _ => 1,
                };
                let args: Vec<String> = (0..args)
                    .map(|i| {
                        if name == "round" && i == 1 {
                            rng.below(3).to_string()
                        } else {
                            expression(rng, depth - 1)
                        }
                    })
                    .collect();
                format!("{name}({})", args.join(", "))
            }
            _ => {
                let op = *rng.pick(&BINARY);
                let left = expression(rng, depth - 1);
                if op == "**" || op == "<<" {
                    // Small exponents and shifts, parenthesised so that `**` cannot chain
                    // to the right: Python would compute astronomically large integers.
                    let right =
                        rng.pick(&["0", "1", "2", "3", "7", "20", "ban.Count", "0.5", "-1"]);
                    format!("({left} {op} {right})")
                } else {
                    format!("{left} {op} {}", expression(rng, depth - 1))
                }
            }
        }
    };
    if depth > 0 && rng.below(2) == 0 {
        format!("({text})")
    } else {
        text
    }
}

fn describe(n: Number) -> String {
    match n {
        Number::Bool(b) => format!("b:{}", if b { "True" } else { "False" }),
        Number::Int(i) => format!("i:{i}"),
        Number::Float(f) => format!("f:{f}"),
    }
}

/// Whether our answer is the reference's, allowing for float formatting, last-bit
/// differences of libm functions, and Python's unbounded integers (we refuse integers
/// beyond 128 bits).
fn agrees(ours: &str, theirs: &str) -> bool {
    if ours == theirs {
        return true;
    }
    let theirs_huge = theirs
        .strip_prefix("i:")
        .is_some_and(|digits| digits.trim_start_matches('-').len() > 36);
    if ours.starts_with("error:") {
        // Refused on purpose even where Python goes on: integers beyond 128 bits (also
        // intermediate ones, `x % 600 ** 20`) and complex numbers (`(-1.5) ** 0.5`).
        // No ban time needs them.
        return theirs.starts_with("error:")
            || theirs_huge
            || ours.contains("too large")
            || ours.contains("fractional power");
    }
    match (ours.strip_prefix("f:"), theirs.strip_prefix("f:")) {
        (Some(a), Some(b)) => {
            let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
            (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
        }
        _ => false,
    }
}

#[test]
fn formulas_evaluate_like_python() {
    let mut rng = Rng(0x5EED_0004);
    let var_sets = [
        (600i64, 3i64, json!(1)),
        (3600, 1, json!(1.5)),
        (1, 21, json!(2)),
    ];
    let mut requests = Vec::new();
    let mut batches = Vec::new();
    for (time, count, factor) in &var_sets {
        let exprs: Vec<String> = (0..1500).map(|_| expression(&mut rng, 4)).collect();
        requests.push(json!({"kind": "expr", "vars": [time, count, factor], "exprs": exprs}));
        batches.push((*time, *count, factor.clone(), exprs));
    }
    let reference = python(&Value::Array(requests));
    let (mut values, mut errors) = (0, 0);
    for ((time, count, factor, exprs), theirs) in batches.iter().zip(&reference) {
        let vars = Variables {
            ban_time: Some(Number::Int(i128::from(*time))),
            ban_count: Some(Number::Int(i128::from(*count))),
            ban_factor: Some(match factor.as_i64() {
                Some(i) => Number::Int(i128::from(i)),
                None => Number::Float(factor.as_f64().unwrap()),
            }),
        };
        for (text, theirs) in exprs.iter().zip(theirs["values"].as_array().unwrap()) {
            let theirs = theirs.as_str().unwrap();
            let ours = match Formula::parse(text) {
                Ok(f) => match f.eval(&vars) {
                    Ok(n) => describe(n),
                    Err(e) => format!("error:{e}"),
                },
                Err(e) => format!("error:{e}"),
            };
            assert!(
                agrees(&ours, theirs),
                "{text:?} with {vars:?}: ours {ours}, Python {theirs}"
            );
            if theirs.starts_with("error:") {
                errors += 1;
            } else {
                values += 1;
            }
        }
    }
    assert!(
        values > 1500 && errors > 300,
        "{values} values, {errors} errors"
    );
}
