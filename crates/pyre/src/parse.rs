//! A parser for Python 3.11's `re` syntax (str patterns), modelled on the behaviour of
//! CPython's `re._parser`: the same tokens, the same quirks (a `{` that does not start
//! a valid quantifier is a literal, `[` inside a class is a literal, global flags only
//! at the very start) and the same errors, reported with the character position.

use crate::ast::{Assertion, Case, Class, ClassItem, Greed, Node, Perl};

/// Python's `MAXREPEAT` on 64-bit builds; repeat counts must stay below it.
const MAX_REPEAT: u64 = 4_294_967_295;
/// Python's `MAXGROUPS` on 64-bit builds.
const MAX_GROUPS: usize = 1_073_741_823;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FlagSet {
    pub ignore_case: bool,
    pub multiline: bool,
    pub dotall: bool,
    pub verbose: bool,
    pub ascii: bool,
}

impl FlagSet {
    fn case(&self) -> Case {
        match (self.ignore_case, self.ascii) {
            (false, _) => Case::Sensitive,
            (true, false) => Case::Unicode,
            (true, true) => Case::Ascii,
        }
    }
}

/// A parsed pattern.
#[derive(Clone, Debug)]
pub(crate) struct Parsed {
    pub root: Node,
    /// Number of capturing groups.
    pub groups: usize,
    /// Named groups, in order of their opening parenthesis.
    pub names: Vec<(usize, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Char(char),
    Escape(char),
}

struct Parser<'a> {
    chars: Vec<char>,
    /// Index just past the current token.
    index: usize,
    next: Option<Tok>,
    flags: FlagSet,
    groups: usize,
    names: Vec<(usize, String)>,
    open: Vec<usize>,
    cond_refs: Vec<(usize, usize)>,
    pattern: &'a str,
}

pub(crate) fn parse(pattern: &str, flags: FlagSet) -> Result<Parsed, String> {
    let mut p = Parser {
        chars: pattern.chars().collect(),
        index: 0,
        next: None,
        flags,
        groups: 0,
        names: Vec::new(),
        open: Vec::new(),
        cond_refs: Vec::new(),
        pattern,
    };
    p.advance()?;
    // Global flags can only appear first, but they govern the whole pattern, so scan
    // them before parsing anything else.
    p.scan_global_flags()?;
    let verbose = p.flags.verbose;
    let root = p.parse_alt(verbose, 0, p.flags)?;
    if p.next.is_some() {
        return Err(p.error("unbalanced parenthesis", 0));
    }
    for &(group, pos) in &p.cond_refs {
        if group > p.groups {
            return Err(format!("invalid group reference {group} at position {pos}"));
        }
    }
    let parsed = Parsed {
        root,
        groups: p.groups,
        names: p.names,
    };
    check_lookbehinds(&parsed)?;
    let _ = p.pattern;
    Ok(parsed)
}

impl Parser<'_> {
    fn advance(&mut self) -> Result<(), String> {
        let Some(&c) = self.chars.get(self.index) else {
            self.next = None;
            return Ok(());
        };
        if c == '\\' {
            let Some(&e) = self.chars.get(self.index + 1) else {
                return Err(format!(
                    "bad escape (end of pattern) at position {}",
                    self.chars.len().saturating_sub(1)
                ));
            };
            self.index += 2;
            self.next = Some(Tok::Escape(e));
        } else {
            self.index += 1;
            self.next = Some(Tok::Char(c));
        }
        Ok(())
    }

    fn get(&mut self) -> Result<Option<Tok>, String> {
        let t = self.next;
        self.advance()?;
        Ok(t)
    }

    fn matches(&mut self, c: char) -> Result<bool, String> {
        if self.next == Some(Tok::Char(c)) {
            self.advance()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Position of the current token (Python's `tell()`).
    fn tell(&self) -> usize {
        let len = match self.next {
            None => 0,
            Some(Tok::Char(_)) => 1,
            Some(Tok::Escape(_)) => 2,
        };
        self.index - len
    }

    fn seek(&mut self, index: usize) -> Result<(), String> {
        self.index = index;
        self.advance()
    }

    fn error(&self, msg: &str, offset: usize) -> String {
        format!("{msg} at position {}", self.tell().saturating_sub(offset))
    }

    fn get_while(&mut self, n: usize, pred: fn(char) -> bool) -> Result<String, String> {
        let mut out = String::new();
        for _ in 0..n {
            match self.next {
                Some(Tok::Char(c)) if pred(c) => {
                    out.push(c);
                    self.advance()?;
                }
                _ => break,
            }
        }
        Ok(out)
    }

    fn get_until(&mut self, terminator: char, what: &str) -> Result<String, String> {
        let mut out = String::new();
        loop {
            let t = self.get()?;
            match t {
                None if out.is_empty() => return Err(self.error(&format!("missing {what}"), 0)),
                None => {
                    return Err(self.error(
                        &format!("missing {terminator}, unterminated name"),
                        out.chars().count(),
                    ));
                }
                Some(Tok::Char(c)) if c == terminator => {
                    if out.is_empty() {
                        return Err(self.error(&format!("missing {what}"), 1));
                    }
                    return Ok(out);
                }
                Some(Tok::Char(c)) => out.push(c),
                Some(Tok::Escape(c)) => {
                    out.push('\\');
                    out.push(c);
                }
            }
        }
    }

    fn scan_global_flags(&mut self) -> Result<(), String> {
        // Only `(?flags)` groups (and comments, and whitespace in verbose mode) may
        // come first; look ahead without consuming anything else.
        let save = self.index;
        let save_next = self.next;
        let mut i = self.tell();
        loop {
            if self.flags.verbose {
                while let Some(&c) = self.chars.get(i) {
                    if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c') {
                        i += 1;
                    } else if c == '#' {
                        while let Some(&c) = self.chars.get(i) {
                            i += 1;
                            if c == '\n' {
                                break;
                            }
                        }
                    } else {
                        break;
                    }
                }
            }
            if self.chars.get(i) != Some(&'(') || self.chars.get(i + 1) != Some(&'?') {
                break;
            }
            if self.chars.get(i + 2) == Some(&'#') {
                let mut j = i + 3;
                while j < self.chars.len() && self.chars[j] != ')' {
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            let mut j = i + 2;
            let mut flags = self.flags;
            let mut ok = false;
            while let Some(&c) = self.chars.get(j) {
                match c {
                    'i' => flags.ignore_case = true,
                    'm' => flags.multiline = true,
                    's' => flags.dotall = true,
                    'x' => flags.verbose = true,
                    'a' => flags.ascii = true,
                    'u' => {}
                    ')' => {
                        ok = j > i + 2;
                        break;
                    }
                    _ => break,
                }
                j += 1;
            }
            if !ok {
                break;
            }
            self.flags = flags;
            i = j + 1;
        }
        self.index = save;
        self.next = save_next;
        Ok(())
    }

    fn parse_alt(&mut self, verbose: bool, nested: usize, flags: FlagSet) -> Result<Node, String> {
        let mut items = Vec::new();
        loop {
            let first = nested == 0 && items.is_empty();
            items.push(self.parse_seq(verbose, nested + 1, first, flags)?);
            if !self.matches('|')? {
                break;
            }
        }
        if items.len() == 1 {
            return Ok(items.pop().unwrap_or(Node::Empty));
        }
        Ok(Node::Alt(items))
    }

    fn parse_seq(
        &mut self,
        verbose: bool,
        nested: usize,
        first: bool,
        flags: FlagSet,
    ) -> Result<Node, String> {
        let mut seq: Vec<Node> = Vec::new();
        // Whether the last item came from a quantifier (for "multiple repeat").
        let mut last_repeat = false;
        loop {
            let this = match self.next {
                None => break,
                Some(Tok::Char('|' | ')')) => break,
                Some(t) => t,
            };
            self.advance()?;
            if verbose && let Tok::Char(c) = this {
                if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c') {
                    continue;
                }
                if c == '#' {
                    loop {
                        match self.get()? {
                            None | Some(Tok::Char('\n')) => break,
                            _ => {}
                        }
                    }
                    continue;
                }
            }
            let mut was_repeat = false;
            match this {
                Tok::Escape(e) => seq.push(self.escape(e, flags)?),
                Tok::Char('[') => seq.push(self.class(flags)?),
                Tok::Char(c @ ('*' | '+' | '?' | '{')) => {
                    let here = self.tell();
                    let (min, max) = match c {
                        '?' => (0, Some(1)),
                        '*' => (0, None),
                        '+' => (1, None),
                        _ => {
                            if self.next == Some(Tok::Char('}')) {
                                seq.push(literal('{', flags));
                                last_repeat = false;
                                continue;
                            }
                            let lo = self.get_while(usize::MAX, |c| c.is_ascii_digit())?;
                            let hi = if self.matches(',')? {
                                Some(self.get_while(usize::MAX, |c| c.is_ascii_digit())?)
                            } else {
                                None
                            };
                            if !self.matches('}')? {
                                seq.push(literal('{', flags));
                                self.seek(here)?;
                                last_repeat = false;
                                continue;
                            }
                            let min = if lo.is_empty() { 0 } else { repeat_count(&lo)? };
                            let max = match &hi {
                                None => Some(min),
                                Some(h) if h.is_empty() => None,
                                Some(h) => Some(repeat_count(h)?),
                            };
                            if let Some(max) = max
                                && max < min
                            {
                                return Err(format!(
                                    "min repeat greater than max repeat at position {here}"
                                ));
                            }
                            (min, max)
                        }
                    };
                    let pos = here.saturating_sub(1);
                    let Some(item) = seq.pop() else {
                        return Err(format!("nothing to repeat at position {pos}"));
                    };
                    if matches!(item, Node::Assert(_)) {
                        return Err(format!("nothing to repeat at position {pos}"));
                    }
                    if last_repeat {
                        return Err(format!("multiple repeat at position {pos}"));
                    }
                    let greed = if self.matches('?')? {
                        Greed::Lazy
                    } else if self.matches('+')? {
                        Greed::Possessive
                    } else {
                        Greed::Greedy
                    };
                    seq.push(Node::Repeat {
                        min,
                        max,
                        greed,
                        sub: Box::new(item),
                    });
                    was_repeat = true;
                }
                Tok::Char('.') => seq.push(Node::Any {
                    dotall: flags.dotall,
                }),
                Tok::Char('^') => seq.push(Node::Assert(if flags.multiline {
                    Assertion::LineStart
                } else {
                    Assertion::TextStart
                })),
                Tok::Char('$') => seq.push(Node::Assert(if flags.multiline {
                    Assertion::LineEnd
                } else {
                    Assertion::EndOrFinalNewline
                })),
                Tok::Char('(') => {
                    if let Some(node) =
                        self.group(verbose, nested, first && seq.is_empty(), flags)?
                    {
                        seq.push(node);
                    } else {
                        // A comment or leading global flags: nothing to add, and a
                        // following quantifier applies to whatever came before.
                        continue;
                    }
                }
                Tok::Char(c) => seq.push(literal(c, flags)),
            }
            last_repeat = was_repeat;
        }
        Ok(match seq.len() {
            0 => Node::Empty,
            1 => seq.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(seq),
        })
    }

    /// Parses after `(`; `None` for comments and global flags.
    fn group(
        &mut self,
        verbose: bool,
        nested: usize,
        first: bool,
        flags: FlagSet,
    ) -> Result<Option<Node>, String> {
        let start = self.tell().saturating_sub(1);
        let mut capture = true;
        let mut atomic = false;
        let mut name = None;
        let mut inner = flags;
        if self.matches('?')? {
            let Some(t) = self.get()? else {
                return Err(self.error("unexpected end of pattern", 0));
            };
            match t {
                Tok::Char('P') => {
                    if self.matches('<')? {
                        let n = self.get_until('>', "group name")?;
                        check_group_name(&n).map_err(|m| self.error(&m, n.chars().count() + 1))?;
                        name = Some(n);
                    } else if self.matches('=')? {
                        let n = self.get_until(')', "group name")?;
                        check_group_name(&n).map_err(|m| self.error(&m, n.chars().count() + 1))?;
                        let Some(gid) = self.names.iter().find(|(_, x)| *x == n).map(|(i, _)| *i)
                        else {
                            return Err(self.error(
                                &format!("unknown group name '{n}'"),
                                n.chars().count() + 1,
                            ));
                        };
                        if self.open.contains(&gid) {
                            return Err(
                                self.error("cannot refer to an open group", n.chars().count() + 1)
                            );
                        }
                        return Ok(Some(Node::Backref {
                            group: gid,
                            case: flags.case(),
                        }));
                    } else {
                        let t = self.get()?;
                        return Err(match t {
                            None => self.error("unexpected end of pattern", 0),
                            Some(Tok::Char(c) | Tok::Escape(c)) => {
                                self.error(&format!("unknown extension ?P{c}"), 3)
                            }
                        });
                    }
                }
                Tok::Char(':') => capture = false,
                Tok::Char('#') => {
                    loop {
                        match self.get()? {
                            None => {
                                return Err(format!(
                                    "missing ), unterminated comment at position {start}"
                                ));
                            }
                            Some(Tok::Char(')')) => break,
                            _ => {}
                        }
                    }
                    return Ok(None);
                }
                Tok::Char(c @ ('=' | '!' | '<')) => {
                    let mut kind = c;
                    let behind = c == '<';
                    if behind {
                        match self.get()? {
                            Some(Tok::Char(k @ ('=' | '!'))) => kind = k,
                            None => return Err(self.error("unexpected end of pattern", 0)),
                            Some(Tok::Char(k) | Tok::Escape(k)) => {
                                return Err(self.error(&format!("unknown extension ?<{k}"), 3));
                            }
                        }
                    }
                    let sub = self.parse_alt(verbose, nested + 1, flags)?;
                    if !self.matches(')')? {
                        return Err(format!(
                            "missing ), unterminated subpattern at position {start}"
                        ));
                    }
                    return Ok(Some(Node::Look {
                        behind,
                        negate: kind == '!',
                        sub: Box::new(sub),
                    }));
                }
                Tok::Char('(') => {
                    let cond = self.get_until(')', "group name")?;
                    let group = if is_identifier(&cond) {
                        match self.names.iter().find(|(_, x)| *x == cond) {
                            Some((i, _)) => *i,
                            None => {
                                return Err(self.error(
                                    &format!("unknown group name '{cond}'"),
                                    cond.chars().count() + 1,
                                ));
                            }
                        }
                    } else {
                        let n: usize = match cond.parse() {
                            Ok(n) if cond.chars().all(|c| c.is_ascii_digit()) => n,
                            _ => {
                                return Err(self.error(
                                    &format!("bad character in group name '{cond}'"),
                                    cond.chars().count() + 1,
                                ));
                            }
                        };
                        if n == 0 {
                            return Err(self.error("bad group number", cond.chars().count() + 1));
                        }
                        if n >= MAX_GROUPS {
                            return Err(self.error(
                                &format!("invalid group reference {n}"),
                                cond.chars().count() + 1,
                            ));
                        }
                        self.cond_refs
                            .push((n, self.tell().saturating_sub(cond.chars().count() + 1)));
                        n
                    };
                    let yes = self.parse_seq(verbose, nested + 1, false, flags)?;
                    let no = if self.matches('|')? {
                        let no = self.parse_seq(verbose, nested + 1, false, flags)?;
                        if self.next == Some(Tok::Char('|')) {
                            return Err(
                                self.error("conditional backref with more than two branches", 0)
                            );
                        }
                        no
                    } else {
                        Node::Empty
                    };
                    if !self.matches(')')? {
                        return Err(format!(
                            "missing ), unterminated subpattern at position {start}"
                        ));
                    }
                    return Ok(Some(Node::Cond {
                        group,
                        yes: Box::new(yes),
                        no: Box::new(no),
                    }));
                }
                Tok::Char('>') => {
                    capture = false;
                    atomic = true;
                }
                Tok::Char(c) if "aiLmsux-".contains(c) => {
                    match self.parse_flags(c)? {
                        None => {
                            if !first {
                                return Err(format!(
                                    "global flags not at the start of the expression at position {start}"
                                ));
                            }
                            // Already applied by `scan_global_flags`.
                            return Ok(None);
                        }
                        Some((add, del)) => {
                            capture = false;
                            inner = combine(flags, add, del);
                        }
                    }
                }
                Tok::Char(c) | Tok::Escape(c) => {
                    return Err(self.error(&format!("unknown extension ?{c}"), 2));
                }
            }
        }
        let index = if capture {
            self.groups += 1;
            if self.groups >= MAX_GROUPS {
                return Err(self.error("too many groups", 0));
            }
            if let Some(n) = &name {
                if self.names.iter().any(|(_, x)| x == n) {
                    return Err(self.error(
                        &format!(
                            "redefinition of group name '{n}' as group {}; was group {}",
                            self.groups,
                            self.names
                                .iter()
                                .find(|(_, x)| x == n)
                                .map(|(i, _)| *i)
                                .unwrap_or(0)
                        ),
                        n.chars().count() + 1,
                    ));
                }
                self.names.push((self.groups, n.clone()));
            }
            self.open.push(self.groups);
            Some(self.groups)
        } else {
            None
        };
        let sub = self.parse_alt(inner.verbose, nested + 1, inner)?;
        if !self.matches(')')? {
            return Err(format!(
                "missing ), unterminated subpattern at position {start}"
            ));
        }
        if let Some(i) = index {
            self.open.retain(|g| *g != i);
        }
        if atomic {
            return Ok(Some(Node::Atomic(Box::new(sub))));
        }
        Ok(Some(Node::group(index, sub)))
    }

    /// Parses inline flags after `(?c`; `None` for global flags `(?flags)`.
    fn parse_flags(&mut self, first: char) -> Result<Option<(FlagSet, FlagSet)>, String> {
        let mut add = FlagSet::default();
        let mut del = FlagSet::default();
        let mut type_flags = 0;
        let mut c = Some(Tok::Char(first));
        if first != '-' {
            loop {
                let Some(Tok::Char(f)) = c else {
                    return Err(self.error("missing -, : or )", 0));
                };
                match f {
                    'L' => {
                        return Err(self.error(
                            "bad inline flags: cannot use 'L' flag with a str pattern",
                            0,
                        ));
                    }
                    'a' | 'u' => {
                        let bit = if f == 'a' { 1 } else { 2 };
                        if type_flags != 0 && type_flags != bit {
                            return Err(self.error(
                                "bad inline flags: flags 'a', 'u' and 'L' are incompatible",
                                0,
                            ));
                        }
                        type_flags = bit;
                        if f == 'a' {
                            add.ascii = true;
                        }
                    }
                    _ => set_flag(&mut add, f),
                }
                c = self.get()?;
                match c {
                    None => return Err(self.error("missing -, : or )", 0)),
                    Some(Tok::Char(')' | '-' | ':')) => break,
                    Some(Tok::Char(f)) if "aiLmsux".contains(f) => {}
                    Some(Tok::Char(f) | Tok::Escape(f)) => {
                        let msg = if f.is_alphabetic() {
                            "unknown flag"
                        } else {
                            "missing -, : or )"
                        };
                        return Err(self.error(msg, 1));
                    }
                }
            }
        }
        if c == Some(Tok::Char(')')) {
            if type_flags != 0 && self.flags.ascii != add.ascii {
                // `(?u)` is the default for str patterns; `(?a)` was applied by the scan.
            }
            return Ok(None);
        }
        if c == Some(Tok::Char('-')) {
            let mut f = self.get()?;
            match f {
                Some(Tok::Char(x)) if "aiLmsux".contains(x) => {}
                None | Some(Tok::Char(_) | Tok::Escape(_)) => {
                    return Err(self.error("missing flag", 0));
                }
            }
            loop {
                let Some(Tok::Char(x)) = f else {
                    return Err(self.error("missing :", 0));
                };
                if matches!(x, 'a' | 'u' | 'L') {
                    return Err(self.error(
                        "bad inline flags: cannot turn off flags 'a', 'u' and 'L'",
                        0,
                    ));
                }
                set_flag(&mut del, x);
                f = self.get()?;
                match f {
                    None => return Err(self.error("missing :", 0)),
                    Some(Tok::Char(':')) => break,
                    Some(Tok::Char(x)) if "aiLmsux".contains(x) => {}
                    Some(Tok::Char(x) | Tok::Escape(x)) => {
                        let msg = if x.is_alphabetic() {
                            "unknown flag"
                        } else {
                            "missing :"
                        };
                        return Err(self.error(msg, 1));
                    }
                }
            }
        }
        if (add.ignore_case && del.ignore_case)
            || (add.multiline && del.multiline)
            || (add.dotall && del.dotall)
            || (add.verbose && del.verbose)
        {
            return Err(self.error("bad inline flags: flag turned on and off", 1));
        }
        // `(?u:…)` resets ASCII; remember it as a request to clear.
        if type_flags == 2 {
            del.ascii = true;
        }
        Ok(Some((add, del)))
    }

    fn escape(&mut self, e: char, flags: FlagSet) -> Result<Node, String> {
        let perl = |kind, negated| {
            Node::Class(Class {
                negated: false,
                items: vec![ClassItem::Perl {
                    kind,
                    negated,
                    ascii: flags.ascii,
                }],
                case: Case::Sensitive,
            })
        };
        Ok(match e {
            'A' => Node::Assert(Assertion::TextStart),
            'Z' => Node::Assert(Assertion::TextEnd),
            'b' => Node::Assert(Assertion::Boundary { ascii: flags.ascii }),
            'B' => Node::Assert(Assertion::NotBoundary { ascii: flags.ascii }),
            'd' => perl(Perl::Digit, false),
            'D' => perl(Perl::Digit, true),
            'w' => perl(Perl::Word, false),
            'W' => perl(Perl::Word, true),
            's' => perl(Perl::Space, false),
            'S' => perl(Perl::Space, true),
            '0' => {
                let digits = self.get_while(2, |c| ('0'..='7').contains(&c))?;
                let v = u32::from_str_radix(&digits, 8).unwrap_or(0);
                literal(char::from_u32(v).unwrap_or('\0'), flags)
            }
            '1'..='9' => {
                let mut text = String::from(e);
                if let Some(Tok::Char(d)) = self.next
                    && d.is_ascii_digit()
                {
                    text.push(d);
                    self.advance()?;
                    let octal = |c: char| ('0'..='7').contains(&c);
                    if let Some(Tok::Char(d3)) = self.next {
                        let b: Vec<char> = text.chars().collect();
                        if octal(b[0]) && octal(b[1]) && octal(d3) {
                            text.push(d3);
                            self.advance()?;
                            let v = u32::from_str_radix(&text, 8).unwrap_or(0);
                            if v > 0o377 {
                                return Err(self.error(
                                    &format!(
                                        "octal escape value \\{text} outside of range 0-0o377"
                                    ),
                                    4,
                                ));
                            }
                            return Ok(literal(char::from_u32(v).unwrap_or('\0'), flags));
                        }
                    }
                }
                let group: usize = text.parse().unwrap_or(usize::MAX);
                if group <= self.groups {
                    if self.open.contains(&group) {
                        return Err(self.error("cannot refer to an open group", text.len() + 1));
                    }
                    return Ok(Node::Backref {
                        group,
                        case: flags.case(),
                    });
                }
                return Err(self.error(&format!("invalid group reference {group}"), text.len()));
            }
            _ => literal(self.simple_escape(e, false)?, flags),
        })
    }

    /// Escapes that denote one character (shared by classes and the main syntax).
    fn simple_escape(&mut self, e: char, in_class: bool) -> Result<char, String> {
        let hex = |p: &mut Self, n: usize| -> Result<char, String> {
            let digits = p.get_while(n, |c| c.is_ascii_hexdigit())?;
            if digits.len() != n {
                return Err(p.error(
                    &format!("incomplete escape \\{e}{digits}"),
                    digits.len() + 2,
                ));
            }
            let v = u32::from_str_radix(&digits, 16).unwrap_or(u32::MAX);
            char::from_u32(v).ok_or_else(|| p.error(&format!("bad escape \\{e}{digits}"), n + 2))
        };
        Ok(match e {
            'a' => '\x07',
            'b' if in_class => '\x08',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            '\\' => '\\',
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            'N' => return Err(self.error("named Unicode escapes \\N{...} are not supported", 2)),
            c if c.is_ascii_alphabetic() => {
                return Err(self.error(&format!("bad escape \\{c}"), 2));
            }
            c if c.is_ascii_digit() => {
                return Err(self.error(&format!("bad escape \\{c}"), 2));
            }
            c => c,
        })
    }

    fn class(&mut self, flags: FlagSet) -> Result<Node, String> {
        let here = self.tell().saturating_sub(1);
        let negated = self.matches('^')?;
        let mut items: Vec<ClassItem> = Vec::new();
        let unterminated = format!("unterminated character set at position {here}");
        loop {
            let Some(this) = self.get()? else {
                return Err(unterminated);
            };
            if this == Tok::Char(']') && !items.is_empty() {
                break;
            }
            let code1 = self.class_item(this, flags)?;
            if self.matches('-')? {
                let Some(that) = self.get()? else {
                    return Err(unterminated);
                };
                if that == Tok::Char(']') {
                    items.push(code1);
                    items.push(ClassItem::Range('-', '-'));
                    break;
                }
                let code2 = self.class_item(that, flags)?;
                match (code1, code2) {
                    (ClassItem::Range(lo, lo2), ClassItem::Range(hi, hi2))
                        if lo == lo2 && hi == hi2 =>
                    {
                        if hi < lo {
                            return Err(self.error(
                                &format!("bad character range {}-{}", show(this), show(that)),
                                0,
                            ));
                        }
                        items.push(ClassItem::Range(lo, hi));
                    }
                    _ => {
                        return Err(self.error(
                            &format!("bad character range {}-{}", show(this), show(that)),
                            0,
                        ));
                    }
                }
            } else {
                items.push(code1);
            }
        }
        let mut unique: Vec<ClassItem> = Vec::with_capacity(items.len());
        for item in items {
            if !unique.contains(&item) {
                unique.push(item);
            }
        }
        Ok(Node::Class(Class {
            negated,
            items: unique,
            case: flags.case(),
        }))
    }

    fn class_item(&mut self, tok: Tok, flags: FlagSet) -> Result<ClassItem, String> {
        let perl = |kind, negated| ClassItem::Perl {
            kind,
            negated,
            ascii: flags.ascii,
        };
        Ok(match tok {
            Tok::Char(c) => ClassItem::Range(c, c),
            Tok::Escape(e) => match e {
                'd' => perl(Perl::Digit, false),
                'D' => perl(Perl::Digit, true),
                'w' => perl(Perl::Word, false),
                'W' => perl(Perl::Word, true),
                's' => perl(Perl::Space, false),
                'S' => perl(Perl::Space, true),
                '0'..='7' => {
                    let mut digits = String::from(e);
                    digits.push_str(&self.get_while(2, |c| ('0'..='7').contains(&c))?);
                    let v = u32::from_str_radix(&digits, 8).unwrap_or(u32::MAX);
                    if v > 0o377 {
                        return Err(self.error(
                            &format!("octal escape value \\{digits} outside of range 0-0o377"),
                            digits.len() + 1,
                        ));
                    }
                    let c = char::from_u32(v).unwrap_or('\0');
                    ClassItem::Range(c, c)
                }
                _ => {
                    let c = self.simple_escape(e, true)?;
                    ClassItem::Range(c, c)
                }
            },
        })
    }
}

fn show(t: Tok) -> String {
    match t {
        Tok::Char(c) => c.to_string(),
        Tok::Escape(c) => format!("\\{c}"),
    }
}

fn literal(c: char, flags: FlagSet) -> Node {
    Node::Char {
        c,
        case: flags.case(),
    }
}

fn set_flag(f: &mut FlagSet, c: char) {
    match c {
        'i' => f.ignore_case = true,
        'm' => f.multiline = true,
        's' => f.dotall = true,
        'x' => f.verbose = true,
        'a' => f.ascii = true,
        _ => {}
    }
}

fn combine(flags: FlagSet, add: FlagSet, del: FlagSet) -> FlagSet {
    FlagSet {
        ignore_case: (flags.ignore_case || add.ignore_case) && !del.ignore_case,
        multiline: (flags.multiline || add.multiline) && !del.multiline,
        dotall: (flags.dotall || add.dotall) && !del.dotall,
        verbose: (flags.verbose || add.verbose) && !del.verbose,
        ascii: add.ascii || (flags.ascii && !del.ascii),
    }
}

fn repeat_count(digits: &str) -> Result<u32, String> {
    match digits.parse::<u64>() {
        Ok(n) if n < MAX_REPEAT => {
            u32::try_from(n).map_err(|_| "the repetition number is too large".into())
        }
        _ => Err("the repetition number is too large".into()),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => {}
        _ => return false,
    }
    chars.all(|c| c == '_' || c.is_alphanumeric())
}

fn check_group_name(name: &str) -> Result<(), String> {
    if is_identifier(name) {
        Ok(())
    } else {
        Err(format!("bad character in group name '{name}'"))
    }
}

/// Python refuses lookbehinds whose width is not fixed.
fn check_lookbehinds(parsed: &Parsed) -> Result<(), String> {
    let mut widths = vec![(0u64, Some(0u64)); parsed.groups + 1];
    // Group widths for back-references inside lookbehinds; groups are defined before
    // they can be referenced, so one pass in pattern order suffices.
    parsed.root.walk(&mut |n| {
        if let Node::Group {
            index: Some(i),
            sub,
        } = n
            && let Some(w) = widths.get_mut(*i)
        {
            *w = sub.width(&|_| (0, None));
        }
    });
    let lookup = |g: usize| widths.get(g).copied().unwrap_or((0, None));
    let mut bad = false;
    parsed.root.walk(&mut |n| {
        if let Node::Look {
            behind: true, sub, ..
        } = n
        {
            let (lo, hi) = sub.width(&lookup);
            if hi != Some(lo) {
                bad = true;
            }
        }
    });
    if bad {
        return Err("look-behind requires fixed-width pattern".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(p: &str) -> String {
        parse(p, FlagSet::default()).expect_err(p)
    }

    fn ok(p: &str) -> Parsed {
        parse(p, FlagSet::default()).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn python_errors_with_positions() {
        assert_eq!(err("*a"), "nothing to repeat at position 0");
        assert_eq!(err("a**"), "multiple repeat at position 2");
        assert_eq!(err(r"^*"), "nothing to repeat at position 1");
        assert!(err(r"\q").starts_with("bad escape \\q"));
        assert!(err("a(?i)b").starts_with("global flags not at the start"));
        assert!(err("(a").starts_with("missing ), unterminated subpattern"));
        assert!(err("a)").starts_with("unbalanced parenthesis"));
        assert!(err("[a").starts_with("unterminated character set"));
        assert!(err("[z-a]").starts_with("bad character range z-a"));
        assert!(err("(?<=a+)b").starts_with("look-behind requires fixed-width"));
        assert!(err(r"(a)\2").starts_with("invalid group reference 2"));
        assert!(err("(?P<1>a)").starts_with("bad character in group name"));
        assert!(err("(?P=x)").starts_with("unknown group name"));
        assert!(err("a{3,2}").starts_with("min repeat greater than max repeat"));
        assert!(err(r"\").starts_with("bad escape (end of pattern)"));
    }

    #[test]
    fn braces_that_are_not_quantifiers_are_literals() {
        for p in ["a{", "a{}", "a{,", "a{1,2", "a{x}", "{1}"] {
            let parsed = parse(p, FlagSet::default());
            if p == "{1}" {
                assert!(parsed.is_err(), "{p}");
            } else {
                assert!(!parsed.expect(p).root.is_fancy(), "{p}");
            }
        }
        let p = ok("a{,3}");
        assert!(matches!(
            p.root,
            Node::Repeat {
                min: 0,
                max: Some(3),
                ..
            }
        ));
    }

    #[test]
    fn classes_follow_python() {
        let p = ok(r"[]a-]");
        let Node::Class(c) = p.root else { panic!() };
        assert_eq!(
            c.items,
            [
                ClassItem::Range(']', ']'),
                ClassItem::Range('a', 'a'),
                ClassItem::Range('-', '-')
            ]
        );
        let Node::Class(c) = ok(r"[[\b]").root else {
            panic!()
        };
        assert_eq!(
            c.items,
            [ClassItem::Range('[', '['), ClassItem::Range('\x08', '\x08')]
        );
        assert!(matches!(ok(r"\<").root, Node::Char { c: '<', .. }));
    }

    #[test]
    fn escapes_and_references() {
        assert!(matches!(ok(r"\x41").root, Node::Char { c: 'A', .. }));
        assert!(matches!(ok(r"\u00e9").root, Node::Char { c: 'é', .. }));
        assert!(matches!(ok(r"\0").root, Node::Char { c: '\0', .. }));
        assert!(matches!(ok(r"\101").root, Node::Char { c: 'A', .. }));
        let p = ok(r"(a)\1");
        let Node::Concat(items) = p.root else {
            panic!()
        };
        assert!(matches!(items[1], Node::Backref { group: 1, .. }));
        let p = ok(r"(?P<x>a)(?(x)b|c)");
        let Node::Concat(items) = p.root else {
            panic!()
        };
        assert!(matches!(items[1], Node::Cond { group: 1, .. }));
    }

    #[test]
    fn flags_apply_to_their_scope() {
        let p = ok("(?i)a(?-i:b)");
        let Node::Concat(items) = p.root else {
            panic!()
        };
        assert!(matches!(
            items[0],
            Node::Char {
                case: Case::Unicode,
                ..
            }
        ));
        let Node::Group { sub, .. } = &items[1] else {
            panic!()
        };
        assert!(matches!(
            **sub,
            Node::Char {
                case: Case::Sensitive,
                ..
            }
        ));
        let p = ok("(?x) a b # comment\n c");
        assert!(matches!(p.root, Node::Concat(ref v) if v.len() == 3));
        assert!(err("(?L)a").contains("'L' flag"));
        let p = ok("(?iu)x");
        assert!(matches!(
            p.root,
            Node::Char {
                case: Case::Unicode,
                ..
            }
        ));
    }
}
