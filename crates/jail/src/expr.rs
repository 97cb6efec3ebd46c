//! A safe evaluator for `bantime.formula` and `bantime.factor`.
//!
//! fail2ban hands these options to Python's `eval`. Here they are parsed into a small
//! tree once, when the jail is configured, and only that tree is ever evaluated: the
//! grammar is the part of Python's expression syntax that ban-time formulas use
//! (numbers, `ban.Time`, `ban.Count`, `banFactor`, arithmetic, bit shifts, comparisons,
//! `and`/`or`/`not`, `X if C else Y`, a few builtins and `math` functions). Anything
//! else — other names, attribute access, strings, subscripts, lambdas — is rejected with
//! an error naming the position, so a formula can never reach outside its numbers.
//!
//! Python's numeric rules are kept where they change results: integers stay exact
//! integers (`1 << n`, `//`, `%` floor towards minus infinity), `/` always gives a
//! float, `**` with a negative integer exponent gives a float, and bit operations on a
//! float are type errors.

use std::fmt;

/// Nesting deeper than this is refused, so hostile text cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// A formula that could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("cannot parse {text:?} at character {position}: {reason}")]
pub struct ParseError {
    /// The formula text.
    pub text: String,
    /// Character offset of the problem.
    pub position: usize,
    /// What is wrong there.
    pub reason: String,
}

/// A formula that failed while being evaluated (Python would raise an exception).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// A value during evaluation: Python's `bool`, `int` or `float`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Bool(bool),
    Int(i128),
    Float(f64),
}

impl Number {
    /// The value as a float (Python's `float(x)`).
    pub fn to_f64(self) -> f64 {
        match self {
            Number::Bool(b) => f64::from(u8::from(b)),
            #[allow(clippy::cast_precision_loss)]
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    fn truthy(self) -> bool {
        match self {
            Number::Bool(b) => b,
            Number::Int(i) => i != 0,
            Number::Float(f) => f != 0.0,
        }
    }

    /// Integers (bools included) for integer-only operations.
    fn as_int(self) -> Option<i128> {
        match self {
            Number::Bool(b) => Some(i128::from(b)),
            Number::Int(i) => Some(i),
            Number::Float(_) => None,
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Bool(true) => f.write_str("True"),
            Number::Bool(false) => f.write_str("False"),
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// The names a formula may read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Variables {
    /// `ban.Time`: the jail's base ban time.
    pub ban_time: Option<Number>,
    /// `ban.Count`: how many times the id was banned before.
    pub ban_count: Option<Number>,
    /// `banFactor`: the evaluated `bantime.factor`.
    pub ban_factor: Option<Number>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    Time,
    Count,
    Factor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Min,
    Max,
    Abs,
    Int,
    Float,
    Round,
    Pow,
    Exp,
    Log,
    Log2,
    Log10,
    Sqrt,
    MathPow,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Shl,
    Shr,
    BitAnd,
    BitOr,
    BitXor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UnOp {
    Neg,
    Pos,
    Invert,
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Const(Number),
    Var(Var),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Compare(Box<Expr>, Vec<(CmpOp, Expr)>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    IfElse {
        cond: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Call(Func, Vec<Expr>),
}

/// A parsed formula, ready to be evaluated any number of times.
#[derive(Clone, Debug, PartialEq)]
pub struct Formula {
    text: String,
    expr: Expr,
}

impl Formula {
    /// Parses `text`. Names outside [`Variables`], `True`, `False`, the builtins `min`,
    /// `max`, `abs`, `int`, `float`, `round`, `pow` and `math.{exp, log, log2, log10,
    /// sqrt, pow, floor, ceil, e, pi}` are rejected here, not at evaluation.
    pub fn parse(text: &str) -> Result<Formula, ParseError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            text,
            tokens,
            pos: 0,
            depth: 0,
        };
        let expr = parser.expression()?;
        if let Some(tok) = parser.tokens.get(parser.pos) {
            return Err(parser.error_at(tok.start, "unexpected text after the expression"));
        }
        Ok(Formula {
            text: text.to_string(),
            expr,
        })
    }

    /// The text the formula was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates the formula. A name whose variable is `None` is an error, as is any
    /// operation Python would raise on (division by zero, shifting a float, …).
    pub fn eval(&self, vars: &Variables) -> Result<Number, EvalError> {
        eval(&self.expr, vars)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(Number),
    Name(String),
    Op(&'static str),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    start: usize,
}

const OPERATORS: [&str; 25] = [
    "**", "//", "<<", ">>", "<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/", "%", "(", ")",
    ",", ".", "&", "|", "^", "~", "[", "]",
];

fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let fail = |position: usize, reason: &str| ParseError {
        text: text.to_string(),
        position,
        reason: reason.to_string(),
    };
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let next_is_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if c.is_ascii_digit() || (c == '.' && next_is_digit) {
            let mut j = i;
            while let Some(&d) = chars.get(j) {
                let exponent_sign = matches!(d, '+' | '-')
                    && matches!(chars[j - 1], 'e' | 'E')
                    && !is_radix_prefixed(&chars[i..j]);
                if d.is_ascii_alphanumeric() || d == '_' || d == '.' || exponent_sign {
                    j += 1;
                } else {
                    break;
                }
            }
            let literal: String = chars[i..j].iter().collect();
            let number =
                parse_number(&literal).ok_or_else(|| fail(start, "invalid number literal"))?;
            tokens.push(Token {
                tok: Tok::Num(number),
                start,
            });
            i = j;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            tokens.push(Token {
                tok: Tok::Name(chars[i..j].iter().collect()),
                start,
            });
            i = j;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match OPERATORS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                tokens.push(Token {
                    tok: Tok::Op(op),
                    start,
                });
                i += op.chars().count();
            }
            None => return Err(fail(start, &format!("unexpected character {c:?}"))),
        }
    }
    Ok(tokens)
}

fn is_radix_prefixed(chars: &[char]) -> bool {
    chars.len() >= 2 && chars[0] == '0' && matches!(chars[1], 'x' | 'X' | 'o' | 'O' | 'b' | 'B')
}

/// Python's numeric literals: decimal, `0x`/`0o`/`0b` integers, floats with `.` or an
/// exponent; `_` between digits.
fn parse_number(literal: &str) -> Option<Number> {
    if literal.starts_with('_') || literal.ends_with('_') || literal.contains("__") {
        return None;
    }
    let clean: String = literal.chars().filter(|c| *c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = lower.strip_prefix(prefix) {
            return i128::from_str_radix(digits, radix).ok().map(Number::Int);
        }
    }
    if lower.contains(['.', 'e']) {
        if !lower
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'))
        {
            return None;
        }
        return lower.parse::<f64>().ok().map(Number::Float);
    }
    if !lower.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    // Python forbids leading zeros in non-zero decimal integers (`010`).
    if lower.len() > 1 && lower.starts_with('0') && lower.chars().any(|c| c != '0') {
        return None;
    }
    lower.parse::<i128>().ok().map(Number::Int)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error_at(&self, position: usize, reason: &str) -> ParseError {
        ParseError {
            text: self.text.to_string(),
            position,
            reason: reason.to_string(),
        }
    }

    fn here(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.text.chars().count(), |t| t.start)
    }

    fn error(&self, reason: &str) -> ParseError {
        self.error_at(self.here(), reason)
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Name(n)) if n == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<(), ParseError> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(self.error(&format!("expected {op:?}")))
        }
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("expression nested too deeply"));
        }
        let result = f(self);
        self.depth -= 1;
        result
    }

    /// `or_test ["if" or_test "else" expression]`
    fn expression(&mut self) -> Result<Expr, ParseError> {
        self.nested(|p| {
            let value = p.or_test()?;
            if !p.eat_keyword("if") {
                return Ok(value);
            }
            let cond = p.or_test()?;
            if !p.eat_keyword("else") {
                return Err(p.error("expected \"else\""));
            }
            let otherwise = p.expression()?;
            Ok(Expr::IfElse {
                cond: Box::new(cond),
                then: Box::new(value),
                otherwise: Box::new(otherwise),
            })
        })
    }

    fn or_test(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and_test()?;
        while self.eat_keyword("or") {
            let right = self.and_test()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_test(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not_test()?;
        while self.eat_keyword("and") {
            let right = self.not_test()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not_test(&mut self) -> Result<Expr, ParseError> {
        if self.eat_keyword("not") {
            let inner = self.nested(Self::not_test)?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let first = self.bit_or()?;
        let mut rest = Vec::new();
        loop {
            let op = match self.peek() {
                Some(Tok::Op("<")) => CmpOp::Lt,
                Some(Tok::Op("<=")) => CmpOp::Le,
                Some(Tok::Op(">")) => CmpOp::Gt,
                Some(Tok::Op(">=")) => CmpOp::Ge,
                Some(Tok::Op("==")) => CmpOp::Eq,
                Some(Tok::Op("!=")) => CmpOp::Ne,
                _ => break,
            };
            self.pos += 1;
            rest.push((op, self.bit_or()?));
        }
        Ok(if rest.is_empty() {
            first
        } else {
            Expr::Compare(Box::new(first), rest)
        })
    }

    fn binary_level(
        &mut self,
        ops: &[(&str, BinOp)],
        next: fn(&mut Self) -> Result<Expr, ParseError>,
    ) -> Result<Expr, ParseError> {
        let mut left = next(self)?;
        'outer: loop {
            for (text, op) in ops {
                if self.eat_op(text) {
                    let right = next(self)?;
                    left = Expr::Binary(*op, Box::new(left), Box::new(right));
                    continue 'outer;
                }
            }
            return Ok(left);
        }
    }

    fn bit_or(&mut self) -> Result<Expr, ParseError> {
        self.binary_level(&[("|", BinOp::BitOr)], Self::bit_xor)
    }

    fn bit_xor(&mut self) -> Result<Expr, ParseError> {
        self.binary_level(&[("^", BinOp::BitXor)], Self::bit_and)
    }

    fn bit_and(&mut self) -> Result<Expr, ParseError> {
        self.binary_level(&[("&", BinOp::BitAnd)], Self::shift)
    }

    fn shift(&mut self) -> Result<Expr, ParseError> {
        self.binary_level(&[("<<", BinOp::Shl), (">>", BinOp::Shr)], Self::arith)
    }

    fn arith(&mut self) -> Result<Expr, ParseError> {
        self.binary_level(&[("+", BinOp::Add), ("-", BinOp::Sub)], Self::term)
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        self.binary_level(
            &[
                ("*", BinOp::Mul),
                ("//", BinOp::FloorDiv),
                ("/", BinOp::Div),
                ("%", BinOp::Mod),
            ],
            Self::unary,
        )
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let op = match self.peek() {
            Some(Tok::Op("-")) => UnOp::Neg,
            Some(Tok::Op("+")) => UnOp::Pos,
            Some(Tok::Op("~")) => UnOp::Invert,
            _ => return self.power(),
        };
        self.pos += 1;
        let inner = self.nested(Self::unary)?;
        Ok(Expr::Unary(op, Box::new(inner)))
    }

    /// `primary ["**" unary]`: the exponent binds to the right and may carry a sign.
    fn power(&mut self) -> Result<Expr, ParseError> {
        let base = self.primary()?;
        if self.eat_op("**") {
            let exponent = self.nested(Self::unary)?;
            return Ok(Expr::Binary(BinOp::Pow, Box::new(base), Box::new(exponent)));
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let start = self.here();
        let Some(tok) = self.peek().cloned() else {
            return Err(self.error("expression ends too early"));
        };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Expr::Const(n)),
            Tok::Op("(") => {
                let inner = self.expression()?;
                self.expect_op(")")?;
                Ok(inner)
            }
            Tok::Op(op) => Err(self.error_at(start, &format!("unexpected {op:?}"))),
            Tok::Name(first) => {
                let mut path = first;
                while self.eat_op(".") {
                    match self.peek().cloned() {
                        Some(Tok::Name(part)) => {
                            self.pos += 1;
                            path.push('.');
                            path.push_str(&part);
                        }
                        _ => return Err(self.error("expected a name after \".\"")),
                    }
                }
                if self.eat_op("(") {
                    let func = function(&path).ok_or_else(|| {
                        self.error_at(start, &format!("unknown function {path:?}"))
                    })?;
                    let mut args = Vec::new();
                    if !self.eat_op(")") {
                        loop {
                            args.push(self.expression()?);
                            if self.eat_op(")") {
                                break;
                            }
                            self.expect_op(",")?;
                            // Python allows a trailing comma.
                            if self.eat_op(")") {
                                break;
                            }
                        }
                    }
                    check_arity(func, args.len())
                        .map_err(|reason| self.error_at(start, &reason))?;
                    return Ok(Expr::Call(func, args));
                }
                name(&path).ok_or_else(|| {
                    let reason = if is_keyword(&path) {
                        format!("unexpected keyword {path:?}")
                    } else {
                        format!(
                            "unknown name {path:?} (a formula may use ban.Time, ban.Count, banFactor, math.e, math.pi)"
                        )
                    };
                    self.error_at(start, &reason)
                })
            }
        }
    }
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "if" | "else" | "and" | "or" | "not" | "in" | "is" | "lambda"
    )
}

fn name(path: &str) -> Option<Expr> {
    Some(match path {
        "ban.Time" => Expr::Var(Var::Time),
        "ban.Count" => Expr::Var(Var::Count),
        "banFactor" => Expr::Var(Var::Factor),
        "True" => Expr::Const(Number::Bool(true)),
        "False" => Expr::Const(Number::Bool(false)),
        "math.e" => Expr::Const(Number::Float(std::f64::consts::E)),
        "math.pi" => Expr::Const(Number::Float(std::f64::consts::PI)),
        _ => return None,
    })
}

fn function(path: &str) -> Option<Func> {
    Some(match path {
        "min" => Func::Min,
        "max" => Func::Max,
        "abs" => Func::Abs,
        "int" => Func::Int,
        "float" => Func::Float,
        "round" => Func::Round,
        "pow" => Func::Pow,
        "math.exp" => Func::Exp,
        "math.log" => Func::Log,
        "math.log2" => Func::Log2,
        "math.log10" => Func::Log10,
        "math.sqrt" => Func::Sqrt,
        "math.pow" => Func::MathPow,
        "math.floor" => Func::Floor,
        "math.ceil" => Func::Ceil,
        _ => return None,
    })
}

fn check_arity(func: Func, n: usize) -> Result<(), String> {
    let (lo, hi) = match func {
        // With one argument Python wants an iterable, which a formula cannot build.
        Func::Min | Func::Max => (2, usize::MAX),
        Func::Abs | Func::Int | Func::Float => (1, 1),
        Func::Exp | Func::Log2 | Func::Log10 | Func::Sqrt | Func::Floor | Func::Ceil => (1, 1),
        Func::Round | Func::Log => (1, 2),
        Func::Pow | Func::MathPow => (2, 2),
    };
    if n < lo || n > hi {
        return Err(format!("{func:?} takes {lo}..{hi} arguments, got {n}").to_lowercase());
    }
    Ok(())
}

fn eval(expr: &Expr, vars: &Variables) -> Result<Number, EvalError> {
    match expr {
        Expr::Const(n) => Ok(*n),
        Expr::Var(v) => {
            let (value, name) = match v {
                Var::Time => (vars.ban_time, "ban.Time"),
                Var::Count => (vars.ban_count, "ban.Count"),
                Var::Factor => (vars.ban_factor, "banFactor"),
            };
            value.ok_or_else(|| EvalError(format!("name {name:?} is not defined here")))
        }
        Expr::Unary(op, inner) => unary(*op, eval(inner, vars)?),
        Expr::Binary(op, l, r) => binary(*op, eval(l, vars)?, eval(r, vars)?),
        Expr::Compare(first, rest) => {
            let mut left = eval(first, vars)?;
            for (op, right) in rest {
                let right = eval(right, vars)?;
                if !compare(*op, left, right) {
                    return Ok(Number::Bool(false));
                }
                left = right;
            }
            Ok(Number::Bool(true))
        }
        Expr::And(l, r) => {
            let left = eval(l, vars)?;
            if left.truthy() {
                eval(r, vars)
            } else {
                Ok(left)
            }
        }
        Expr::Or(l, r) => {
            let left = eval(l, vars)?;
            if left.truthy() {
                Ok(left)
            } else {
                eval(r, vars)
            }
        }
        Expr::Not(inner) => Ok(Number::Bool(!eval(inner, vars)?.truthy())),
        Expr::IfElse {
            cond,
            then,
            otherwise,
        } => {
            if eval(cond, vars)?.truthy() {
                eval(then, vars)
            } else {
                eval(otherwise, vars)
            }
        }
        Expr::Call(func, args) => {
            let values = args
                .iter()
                .map(|a| eval(a, vars))
                .collect::<Result<Vec<_>, _>>()?;
            call(*func, &values)
        }
    }
}

/// Python's `a * b`.
pub(crate) fn multiply(a: Number, b: Number) -> Result<Number, EvalError> {
    binary(BinOp::Mul, a, b)
}

fn overflow() -> EvalError {
    EvalError("integer result too large".to_string())
}

fn finite(x: f64, what: &str) -> Result<Number, EvalError> {
    if x.is_finite() {
        Ok(Number::Float(x))
    } else {
        Err(EvalError(format!("{what}: result out of range")))
    }
}

fn unary(op: UnOp, n: Number) -> Result<Number, EvalError> {
    match (op, n) {
        (UnOp::Pos, Number::Bool(b)) => Ok(Number::Int(i128::from(b))),
        (UnOp::Pos, n) => Ok(n),
        (UnOp::Neg, Number::Float(f)) => Ok(Number::Float(-f)),
        (UnOp::Neg, n) => n
            .as_int()
            .and_then(i128::checked_neg)
            .map(Number::Int)
            .ok_or_else(overflow),
        (UnOp::Invert, n) => n
            .as_int()
            .map(|i| Number::Int(!i))
            .ok_or_else(|| EvalError("bad operand type for unary ~: 'float'".to_string())),
    }
}

fn py_floor_div(a: i128, b: i128) -> Option<i128> {
    let q = a.checked_div(b)?;
    if a % b != 0 && ((a < 0) != (b < 0)) {
        q.checked_sub(1)
    } else {
        Some(q)
    }
}

fn py_mod_int(a: i128, b: i128) -> Option<i128> {
    let r = a.checked_rem(b)?;
    Some(if r != 0 && ((r < 0) != (b < 0)) {
        r + b
    } else {
        r
    })
}

fn py_mod_float(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r != 0.0 && ((r < 0.0) != (b < 0.0)) {
        r + b
    } else if r == 0.0 {
        // Python gives the zero the divisor's sign.
        0.0_f64.copysign(b)
    } else {
        r
    }
}

/// CPython's `float_floor_div`: from the exact `fmod`, not from `floor(a / b)`, which
/// can be one off when the quotient rounds.
fn py_floor_div_float(a: f64, b: f64) -> f64 {
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div == 0.0 {
        return 0.0_f64.copysign(a / b);
    }
    let mut floor = div.floor();
    if div - floor > 0.5 {
        floor += 1.0;
    }
    floor
}

fn binary(op: BinOp, l: Number, r: Number) -> Result<Number, EvalError> {
    let zero_div = || EvalError("division by zero".to_string());
    let ints = l.as_int().zip(r.as_int());
    match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul => {
            if let Some((a, b)) = ints {
                let v = match op {
                    BinOp::Add => a.checked_add(b),
                    BinOp::Sub => a.checked_sub(b),
                    _ => a.checked_mul(b),
                };
                return v.map(Number::Int).ok_or_else(overflow);
            }
            let (a, b) = (l.to_f64(), r.to_f64());
            let v = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                _ => a * b,
            };
            Ok(Number::Float(v))
        }
        BinOp::Div => {
            let b = r.to_f64();
            if b == 0.0 {
                return Err(zero_div());
            }
            finite(l.to_f64() / b, "division")
        }
        BinOp::FloorDiv => {
            if let Some((a, b)) = ints {
                if b == 0 {
                    return Err(zero_div());
                }
                return py_floor_div(a, b).map(Number::Int).ok_or_else(overflow);
            }
            let (a, b) = (l.to_f64(), r.to_f64());
            if b == 0.0 {
                return Err(zero_div());
            }
            Ok(Number::Float(py_floor_div_float(a, b)))
        }
        BinOp::Mod => {
            if let Some((a, b)) = ints {
                if b == 0 {
                    return Err(zero_div());
                }
                return py_mod_int(a, b).map(Number::Int).ok_or_else(overflow);
            }
            let (a, b) = (l.to_f64(), r.to_f64());
            if b == 0.0 {
                return Err(zero_div());
            }
            Ok(Number::Float(py_mod_float(a, b)))
        }
        BinOp::Pow => power(l, r),
        BinOp::Shl | BinOp::Shr | BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor => {
            let Some((a, b)) = ints else {
                return Err(EvalError(
                    "unsupported operand type for a bit operation: 'float'".to_string(),
                ));
            };
            if let (Number::Bool(x), Number::Bool(y)) = (l, r) {
                // `bool & bool` stays a bool in Python; shifts do not.
                match op {
                    BinOp::BitAnd => return Ok(Number::Bool(x & y)),
                    BinOp::BitOr => return Ok(Number::Bool(x | y)),
                    BinOp::BitXor => return Ok(Number::Bool(x ^ y)),
                    _ => {}
                }
            }
            match op {
                BinOp::BitAnd => Ok(Number::Int(a & b)),
                BinOp::BitOr => Ok(Number::Int(a | b)),
                BinOp::BitXor => Ok(Number::Int(a ^ b)),
                _ if b < 0 => Err(EvalError("negative shift count".to_string())),
                BinOp::Shr => Ok(Number::Int(if b >= 127 {
                    if a < 0 { -1 } else { 0 }
                } else {
                    a >> b
                })),
                _ => {
                    if a == 0 {
                        return Ok(Number::Int(0));
                    }
                    let shift = u32::try_from(b).map_err(|_| overflow())?;
                    let shifted = a.checked_shl(shift).ok_or_else(overflow)?;
                    if shifted >> shift != a {
                        return Err(overflow());
                    }
                    Ok(Number::Int(shifted))
                }
            }
        }
    }
}

fn power(l: Number, r: Number) -> Result<Number, EvalError> {
    if let (Some(a), Some(b)) = (l.as_int(), r.as_int()) {
        if b >= 0 {
            let exp = u32::try_from(b).map_err(|_| overflow())?;
            return a.checked_pow(exp).map(Number::Int).ok_or_else(overflow);
        }
        if a == 0 {
            return Err(EvalError(
                "0.0 cannot be raised to a negative power".to_string(),
            ));
        }
    }
    let (a, b) = (l.to_f64(), r.to_f64());
    if a == 0.0 && b < 0.0 {
        return Err(EvalError(
            "0.0 cannot be raised to a negative power".to_string(),
        ));
    }
    if a < 0.0 && b.fract() != 0.0 {
        return Err(EvalError(
            "a negative number cannot be raised to a fractional power".to_string(),
        ));
    }
    finite(a.powf(b), "power")
}

fn compare(op: CmpOp, l: Number, r: Number) -> bool {
    if let (Some(a), Some(b)) = (l.as_int(), r.as_int()) {
        return match op {
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
        };
    }
    let (a, b) = (l.to_f64(), r.to_f64());
    match op {
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
    }
}

fn float_to_int(x: f64, what: &str) -> Result<Number, EvalError> {
    if !x.is_finite() {
        return Err(EvalError(format!(
            "{what}: cannot convert {x} to an integer"
        )));
    }
    if x.abs() >= 1.7e38 {
        return Err(EvalError(format!("{what}: integer result too large")));
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok(Number::Int(x as i128))
}

fn call(func: Func, args: &[Number]) -> Result<Number, EvalError> {
    let arg = |i: usize| args.get(i).copied().unwrap_or(Number::Int(0));
    match func {
        Func::Min | Func::Max => {
            // Python keeps the first of equal extremes, with its type.
            let mut best = arg(0);
            for &candidate in &args[1..] {
                let better = match func {
                    Func::Min => compare(CmpOp::Lt, candidate, best),
                    _ => compare(CmpOp::Gt, candidate, best),
                };
                if better {
                    best = candidate;
                }
            }
            Ok(best)
        }
        Func::Abs => match arg(0) {
            Number::Float(f) => Ok(Number::Float(f.abs())),
            n => n
                .as_int()
                .and_then(i128::checked_abs)
                .map(Number::Int)
                .ok_or_else(overflow),
        },
        Func::Int => match arg(0) {
            Number::Float(f) => float_to_int(f.trunc(), "int()"),
            n => Ok(Number::Int(n.as_int().unwrap_or(0))),
        },
        Func::Float => Ok(Number::Float(arg(0).to_f64())),
        Func::Round => round(arg(0), args.get(1).copied()),
        Func::Pow => power(arg(0), arg(1)),
        Func::MathPow => {
            let (a, b) = (arg(0).to_f64(), arg(1).to_f64());
            if a == 0.0 && b < 0.0 || a < 0.0 && b.fract() != 0.0 {
                return Err(EvalError("math domain error".to_string()));
            }
            finite(a.powf(b), "math.pow")
        }
        Func::Exp => finite(arg(0).to_f64().exp(), "math.exp"),
        Func::Log | Func::Log2 | Func::Log10 | Func::Sqrt => {
            let x = arg(0).to_f64();
            let domain = || EvalError("math domain error".to_string());
            match func {
                Func::Sqrt if x < 0.0 => Err(domain()),
                Func::Sqrt => Ok(Number::Float(x.sqrt())),
                _ if x <= 0.0 => Err(domain()),
                Func::Log2 => Ok(Number::Float(x.log2())),
                Func::Log10 => Ok(Number::Float(x.log10())),
                _ => match args.get(1) {
                    None => Ok(Number::Float(x.ln())),
                    Some(base) => {
                        let base = base.to_f64();
                        if base <= 0.0 {
                            return Err(domain());
                        }
                        let denominator = base.ln();
                        if denominator == 0.0 {
                            return Err(EvalError("float division by zero".to_string()));
                        }
                        Ok(Number::Float(x.ln() / denominator))
                    }
                },
            }
        }
        Func::Floor => match arg(0) {
            Number::Float(f) => float_to_int(f.floor(), "math.floor"),
            n => Ok(Number::Int(n.as_int().unwrap_or(0))),
        },
        Func::Ceil => match arg(0) {
            Number::Float(f) => float_to_int(f.ceil(), "math.ceil"),
            n => Ok(Number::Int(n.as_int().unwrap_or(0))),
        },
    }
}

/// Python's `round`: halves go to the even neighbour; without digits the result is an
/// integer.
fn round(x: Number, digits: Option<Number>) -> Result<Number, EvalError> {
    let digits = match digits {
        None => None,
        Some(d) => Some(d.as_int().ok_or_else(|| {
            EvalError("round(): the number of digits must be an integer".to_string())
        })?),
    };
    match (x, digits) {
        (Number::Float(f), None) => float_to_int(f.round_ties_even(), "round()"),
        (Number::Float(f), Some(d)) => Ok(Number::Float(round_float(f, d))),
        (n, None) => Ok(Number::Int(n.as_int().unwrap_or(0))),
        (n, Some(d)) => {
            let i = n.as_int().unwrap_or(0);
            if d >= 0 {
                return Ok(Number::Int(i));
            }
            let Some(scale) = u32::try_from(-d).ok().and_then(|e| 10i128.checked_pow(e)) else {
                return Ok(Number::Int(0));
            };
            let q = py_floor_div(i, scale).unwrap_or(0);
            let rem = i - q * scale;
            let twice = rem * 2;
            let q = if twice > scale || (twice == scale && q % 2 != 0) {
                q + 1
            } else {
                q
            };
            q.checked_mul(scale).map(Number::Int).ok_or_else(overflow)
        }
    }
}

/// `round(x, digits)` for a float: the exact binary value rounded in decimal, halves
/// to even, as CPython does through its exact decimal conversion (so `round(0.05, 1)`
/// is `0.1`, since 0.05 is slightly more than a half tenth, and `round(2.675, 2)` is
/// `2.67`).
fn round_float(x: f64, digits: i128) -> f64 {
    if !x.is_finite() || x == 0.0 || digits > 323 {
        return x;
    }
    if digits < -308 {
        return 0.0_f64.copysign(x);
    }
    // Every double has a finite decimal expansion of at most 1074 fraction digits.
    let exact = format!("{:.1100}", x.abs());
    let (int_part, frac_part) = exact.split_once('.').unwrap_or((&exact, ""));
    let all: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).collect();
    let keep = i128::try_from(int_part.len()).unwrap_or(0) + digits;
    if keep < 0 {
        return 0.0_f64.copysign(x);
    }
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    if keep >= all.len() {
        return x;
    }
    let (kept, rest) = all.split_at(keep);
    let mut kept = kept.to_vec();
    let last_odd = kept.last().is_some_and(|d| (d - b'0') % 2 == 1);
    let round_up = match rest.first() {
        Some(b'6'..=b'9') => true,
        Some(b'5') => rest[1..].iter().any(|d| *d != b'0') || last_odd,
        _ => false,
    };
    if round_up {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    if kept.is_empty() {
        kept.push(b'0');
    }
    let text = format!("{}e{}", String::from_utf8_lossy(&kept), -digits);
    text.parse::<f64>().map_or(x, |v| v.copysign(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(time: i128, count: i128, factor: Number) -> Variables {
        Variables {
            ban_time: Some(Number::Int(time)),
            ban_count: Some(Number::Int(count)),
            ban_factor: Some(factor),
        }
    }

    fn eval_text(text: &str, v: &Variables) -> Number {
        Formula::parse(text).unwrap().eval(v).unwrap()
    }

    #[test]
    fn fail2ban_default_formula_doubles_up_to_twenty() {
        let f = Formula::parse("ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor")
            .unwrap();
        let at = |count| f.eval(&vars(600, count, Number::Int(1))).unwrap();
        assert_eq!(at(1), Number::Int(1200));
        assert_eq!(at(3), Number::Int(4800));
        assert_eq!(at(20), Number::Int(600 << 20));
        assert_eq!(at(50), Number::Int(600 << 20));
    }

    #[test]
    fn python_precedence_and_associativity() {
        let v = Variables::default();
        assert_eq!(eval_text("-2**2", &v), Number::Int(-4));
        assert_eq!(eval_text("2**-1", &v), Number::Float(0.5));
        assert_eq!(eval_text("2**3**2", &v), Number::Int(512));
        assert_eq!(eval_text("1 + 2 * 3 << 1", &v), Number::Int(14));
        assert_eq!(eval_text("7 // -2", &v), Number::Int(-4));
        assert_eq!(eval_text("-7 % 3", &v), Number::Int(2));
        assert_eq!(eval_text("7.5 % -2", &v), Number::Float(-0.5));
        assert_eq!(eval_text("1 < 2 < 3", &v), Number::Bool(true));
        assert_eq!(eval_text("3 > 2 > 2", &v), Number::Bool(false));
        assert_eq!(eval_text("1 if 0 else 2 if 1 else 3", &v), Number::Int(2));
        assert_eq!(eval_text("0 or 5", &v), Number::Int(5));
        assert_eq!(eval_text("not 0 and 3", &v), Number::Int(3));
        assert_eq!(eval_text("True + 1", &v), Number::Int(2));
        assert_eq!(eval_text("10 / 4", &v), Number::Float(2.5));
        assert_eq!(eval_text("0x10 + 0b11 + 1_000", &v), Number::Int(1019));
        assert_eq!(eval_text("1e3 + .5", &v), Number::Float(1000.5));
        assert_eq!(eval_text("round(2.5) + round(3.5)", &v), Number::Int(6));
        assert_eq!(eval_text("round(0.05, 1)", &v), Number::Float(0.1));
        assert_eq!(eval_text("round(2.675, 2)", &v), Number::Float(2.67));
        assert_eq!(eval_text("round(1250.0, -2)", &v), Number::Float(1200.0));
        assert_eq!(eval_text("round(-1350.0, -2)", &v), Number::Float(-1400.0));
        assert_eq!(eval_text("round(99.96, 1)", &v), Number::Float(100.0));
        assert_eq!(eval_text("max(1, 2.0, 2)", &v), Number::Float(2.0));
        assert_eq!(eval_text("min(3, 3.0)", &v), Number::Int(3));
        assert_eq!(
            eval_text("math.floor(2.7) + math.ceil(2.1)", &v),
            Number::Int(5)
        );
        assert_eq!(eval_text("math.log(8, 2)", &v), Number::Float(3.0));
        assert_eq!(eval_text("int(-2.7)", &v), Number::Int(-2));
    }

    #[test]
    fn rejects_anything_outside_the_grammar() {
        for text in [
            "__import__('os').system('id')",
            "open('/etc/passwd')",
            "ban.__class__",
            "ban",
            "random.random()",
            "[1, 2][0]",
            "lambda: 1",
            "1 +",
            "(1",
            "1 2",
            "'text'",
            "min(1)",
            "010",
            "x if y",
        ] {
            let err = Formula::parse(text).expect_err(text);
            assert!(!err.reason.is_empty(), "{text}: {err}");
        }
        let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        assert!(Formula::parse(&deep).unwrap_err().reason.contains("deeply"));
        let signs = format!("{}1", "-".repeat(200));
        assert!(Formula::parse(&signs).is_err());
    }

    #[test]
    fn runtime_errors_are_values() {
        let v = vars(600, 2, Number::Float(1.5));
        for text in [
            "1 / 0",
            "1 % 0",
            "1 << banFactor",
            "1 << -1",
            "1 << 200",
            "10 ** 100",
            "math.log(0)",
            "math.exp(1000)",
            "0 ** -1",
        ] {
            assert!(Formula::parse(text).unwrap().eval(&v).is_err(), "{text}");
        }
        let missing = Formula::parse("ban.Time").unwrap();
        assert!(missing.eval(&Variables::default()).is_err());
    }
}
