//! The pickle subset fail2ban's control protocol uses.
//!
//! Written here rather than taken from `serde-pickle` because the protocol needs two
//! things that crate cannot do: an error reply is a pickled *exception object*
//! (`STACK_GLOBAL` + `REDUCE`), which its serializer cannot emit and its deserializer
//! reads back without the class name, and the class name is what tells the client to
//! print "Sorry but the jail 'x' does not exist". `serde-pickle` remains a test oracle.
//!
//! Decoding never runs code and never trusts a length: every read is bounds-checked,
//! objects live in an arena sized by the input, and shared or nested references are
//! materialised under a node budget and a depth limit, so a hostile pickle yields a
//! [`DecodeError`], never a panic or an unbounded allocation.

use std::collections::HashMap;

use crate::value::{PyException, PyValue};

/// Why a pickle could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("pickle ends early at byte {0}")]
    Truncated(usize),
    #[error("unsupported pickle opcode 0x{opcode:02x} at byte {pos}")]
    UnsupportedOpcode { opcode: u8, pos: usize },
    #[error("malformed pickle at byte {pos}: {what}")]
    Malformed { pos: usize, what: &'static str },
    #[error("pickle nests deeper than {0} levels or refers to itself")]
    TooDeep(usize),
    #[error("pickle expands to more than {0} bytes")]
    TooLarge(usize),
}

/// How deep containers may nest (fail2ban's deepest reply nests four levels).
pub const MAX_DEPTH: usize = 100;
/// How much memory one pickle may expand to once shared references are copied out
/// (a memoised string referenced a million times is a million strings).
pub const MAX_EXPANDED: usize = 256 << 20;

mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const FLOAT: u8 = b'F';
    pub const INT: u8 = b'I';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const LONG: u8 = b'L';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const REDUCE: u8 = b'R';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const GET: u8 = b'g';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const PUT: u8 = b'p';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
}

/// Encodes a value as a protocol-4 pickle (no frames, no memo), which every Python 3
/// unpickler reads.
pub fn encode(value: &PyValue) -> Vec<u8> {
    let mut out = vec![op::PROTO, 4];
    encode_into(&mut out, value);
    out.push(op::STOP);
    out
}

fn encode_into(out: &mut Vec<u8>, value: &PyValue) {
    match value {
        PyValue::None => out.push(op::NONE),
        PyValue::Bool(true) => out.push(op::NEWTRUE),
        PyValue::Bool(false) => out.push(op::NEWFALSE),
        PyValue::Int(i) => encode_int(out, *i),
        PyValue::Float(x) => {
            out.push(op::BINFLOAT);
            out.extend_from_slice(&x.to_be_bytes());
        }
        PyValue::Str(s) => encode_str(out, s),
        PyValue::Bytes(b) => {
            if let Ok(n) = u8::try_from(b.len()) {
                out.push(op::SHORT_BINBYTES);
                out.push(n);
            } else if let Ok(n) = u32::try_from(b.len()) {
                out.push(op::BINBYTES);
                out.extend_from_slice(&n.to_le_bytes());
            } else {
                out.push(op::BINBYTES8);
                out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            }
            out.extend_from_slice(b);
        }
        PyValue::List(items) => {
            out.push(op::EMPTY_LIST);
            if !items.is_empty() {
                out.push(op::MARK);
                items.iter().for_each(|v| encode_into(out, v));
                out.push(op::APPENDS);
            }
        }
        PyValue::Tuple(items) => encode_tuple(out, items),
        PyValue::Dict(items) => {
            out.push(op::EMPTY_DICT);
            if !items.is_empty() {
                out.push(op::MARK);
                for (k, v) in items {
                    encode_into(out, k);
                    encode_into(out, v);
                }
                out.push(op::SETITEMS);
            }
        }
        PyValue::Set(items) => {
            out.push(op::EMPTY_SET);
            if !items.is_empty() {
                out.push(op::MARK);
                items.iter().for_each(|v| encode_into(out, v));
                out.push(op::ADDITEMS);
            }
        }
        PyValue::Exception(e) => {
            encode_str(out, &e.module);
            encode_str(out, &e.name);
            out.push(op::STACK_GLOBAL);
            encode_tuple(out, &e.args);
            out.push(op::REDUCE);
        }
    }
}

fn encode_int(out: &mut Vec<u8>, i: i64) {
    if let Ok(b) = u8::try_from(i) {
        out.push(op::BININT1);
        out.push(b);
    } else if let Ok(w) = u16::try_from(i) {
        out.push(op::BININT2);
        out.extend_from_slice(&w.to_le_bytes());
    } else if let Ok(d) = i32::try_from(i) {
        out.push(op::BININT);
        out.extend_from_slice(&d.to_le_bytes());
    } else {
        // LONG1: minimal two's-complement, little-endian.
        let bytes = i.to_le_bytes();
        let mut n = 8;
        while n > 1 {
            let top = bytes[n - 1];
            let next_sign = bytes[n - 2] & 0x80;
            if (top == 0 && next_sign == 0) || (top == 0xff && next_sign != 0) {
                n -= 1;
            } else {
                break;
            }
        }
        out.push(op::LONG1);
        out.push(n as u8);
        out.extend_from_slice(&bytes[..n]);
    }
}

fn encode_str(out: &mut Vec<u8>, s: &str) {
    if let Ok(n) = u8::try_from(s.len()) {
        out.push(op::SHORT_BINUNICODE);
        out.push(n);
    } else if let Ok(n) = u32::try_from(s.len()) {
        out.push(op::BINUNICODE);
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        out.push(op::BINUNICODE8);
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn encode_tuple(out: &mut Vec<u8>, items: &[PyValue]) {
    match items.len() {
        0 => out.push(op::EMPTY_TUPLE),
        1..=3 => {
            items.iter().for_each(|v| encode_into(out, v));
            out.push([op::TUPLE1, op::TUPLE2, op::TUPLE3][items.len() - 1]);
        }
        _ => {
            out.push(op::MARK);
            items.iter().for_each(|v| encode_into(out, v));
            out.push(op::TUPLE);
        }
    }
}

/// Decodes one pickle from the start of `data` (any protocol Python 3 writes for
/// these types); bytes after its STOP opcode are ignored, as Python ignores them.
pub fn decode(data: &[u8]) -> Result<PyValue, DecodeError> {
    let mut d = Decoder {
        data,
        pos: 0,
        arena: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = d.run()?;
    let mut budget = MAX_EXPANDED;
    d.materialize(root, 0, &mut budget)
}

/// An object under construction. Containers refer to other nodes by index so that a
/// list memoised while empty and filled afterwards is seen filled through every
/// reference, as in Python.
enum Node {
    Leaf(PyValue),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    Class {
        module: String,
        name: String,
    },
    Object {
        module: String,
        name: String,
        args: Vec<usize>,
    },
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    arena: Vec<Node>,
    stack: Vec<usize>,
    marks: Vec<usize>,
    memo: HashMap<u64, usize>,
}

impl Decoder<'_> {
    fn run(&mut self) -> Result<usize, DecodeError> {
        loop {
            let at = self.pos;
            let code = self.byte()?;
            match code {
                op::PROTO => {
                    self.byte()?;
                }
                op::FRAME => {
                    self.take(8)?;
                }
                op::STOP => return self.pop(at),
                op::MARK => self.marks.push(self.stack.len()),
                op::POP => {
                    self.pop(at)?;
                }
                op::POP_MARK => {
                    self.pop_mark(at)?;
                }
                op::DUP => {
                    let top = *self
                        .stack
                        .last()
                        .ok_or(malformed(at, "DUP on empty stack"))?;
                    self.stack.push(top);
                }
                op::NONE => self.push(Node::Leaf(PyValue::None)),
                op::NEWTRUE => self.push(Node::Leaf(PyValue::Bool(true))),
                op::NEWFALSE => self.push(Node::Leaf(PyValue::Bool(false))),
                op::BININT1 => {
                    let v = self.byte()?;
                    self.push(Node::Leaf(PyValue::Int(v.into())));
                }
                op::BININT2 => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push(Node::Leaf(PyValue::Int(v.into())));
                }
                op::BININT => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push(Node::Leaf(PyValue::Int(v.into())));
                }
                op::LONG1 => {
                    let n = usize::from(self.byte()?);
                    let bytes = self.take(n)?;
                    let v = long_from_bytes(bytes).ok_or(malformed(at, "integer too large"))?;
                    self.push(Node::Leaf(PyValue::Int(v)));
                }
                op::LONG4 => {
                    let n = self.len32()?;
                    let bytes = self.take(n)?;
                    let v = long_from_bytes(bytes).ok_or(malformed(at, "integer too large"))?;
                    self.push(Node::Leaf(PyValue::Int(v)));
                }
                op::INT => {
                    let line = self.line()?;
                    let v = match line {
                        b"00" => PyValue::Bool(false),
                        b"01" => PyValue::Bool(true),
                        _ => PyValue::Int(parse_text(line).ok_or(malformed(at, "bad INT"))?),
                    };
                    self.push(Node::Leaf(v));
                }
                op::LONG => {
                    let line = self.line()?;
                    let line = line.strip_suffix(b"L").unwrap_or(line);
                    let v = parse_text(line).ok_or(malformed(at, "bad LONG"))?;
                    self.push(Node::Leaf(PyValue::Int(v)));
                }
                op::FLOAT => {
                    let line = self.line()?;
                    let v = parse_text(line).ok_or(malformed(at, "bad FLOAT"))?;
                    self.push(Node::Leaf(PyValue::Float(v)));
                }
                op::BINFLOAT => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.push(Node::Leaf(PyValue::Float(v)));
                }
                op::SHORT_BINUNICODE => {
                    let n = usize::from(self.byte()?);
                    let s = self.utf8(n, at)?;
                    self.push(Node::Leaf(PyValue::Str(s)));
                }
                op::BINUNICODE => {
                    let n = self.len32()?;
                    let s = self.utf8(n, at)?;
                    self.push(Node::Leaf(PyValue::Str(s)));
                }
                op::BINUNICODE8 => {
                    let n = self.len64(at)?;
                    let s = self.utf8(n, at)?;
                    self.push(Node::Leaf(PyValue::Str(s)));
                }
                op::SHORT_BINBYTES => {
                    let n = usize::from(self.byte()?);
                    let b = self.take(n)?.to_vec();
                    self.push(Node::Leaf(PyValue::Bytes(b)));
                }
                op::BINBYTES => {
                    let n = self.len32()?;
                    let b = self.take(n)?.to_vec();
                    self.push(Node::Leaf(PyValue::Bytes(b)));
                }
                op::BINBYTES8 => {
                    let n = self.len64(at)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Node::Leaf(PyValue::Bytes(b)));
                }
                op::EMPTY_LIST => self.push(Node::List(Vec::new())),
                op::LIST => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::List(items));
                }
                op::APPEND => {
                    let item = self.pop(at)?;
                    match self.top_node(at)? {
                        Node::List(items) => items.push(item),
                        _ => return Err(malformed(at, "APPEND to a non-list")),
                    }
                }
                op::APPENDS => {
                    let new = self.pop_mark(at)?;
                    match self.top_node(at)? {
                        Node::List(items) => items.extend(new),
                        _ => return Err(malformed(at, "APPENDS to a non-list")),
                    }
                }
                op::EMPTY_TUPLE => self.push(Node::Tuple(Vec::new())),
                op::TUPLE => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Tuple(items));
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = usize::from(code - op::TUPLE1 + 1);
                    if self.stack.len() < n + self.marks.last().copied().unwrap_or(0) {
                        return Err(malformed(at, "tuple of missing items"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Node::Tuple(items));
                }
                op::EMPTY_DICT => self.push(Node::Dict(Vec::new())),
                op::DICT => {
                    let items = self.pop_mark(at)?;
                    let pairs = pairs(&items, at)?;
                    self.push(Node::Dict(pairs));
                }
                op::SETITEM => {
                    let v = self.pop(at)?;
                    let k = self.pop(at)?;
                    match self.top_node(at)? {
                        Node::Dict(items) => items.push((k, v)),
                        _ => return Err(malformed(at, "SETITEM on a non-dict")),
                    }
                }
                op::SETITEMS => {
                    let items = self.pop_mark(at)?;
                    let new = pairs(&items, at)?;
                    match self.top_node(at)? {
                        Node::Dict(items) => items.extend(new),
                        _ => return Err(malformed(at, "SETITEMS on a non-dict")),
                    }
                }
                op::EMPTY_SET => self.push(Node::Set(Vec::new())),
                op::FROZENSET => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Set(items));
                }
                op::ADDITEMS => {
                    let new = self.pop_mark(at)?;
                    match self.top_node(at)? {
                        Node::Set(items) => items.extend(new),
                        _ => return Err(malformed(at, "ADDITEMS on a non-set")),
                    }
                }
                op::MEMOIZE => {
                    let top = *self
                        .stack
                        .last()
                        .ok_or(malformed(at, "MEMOIZE on empty stack"))?;
                    let id = self.memo.len() as u64;
                    self.memo.insert(id, top);
                }
                op::PUT => {
                    let id = parse_text(self.line()?).ok_or(malformed(at, "bad PUT"))?;
                    self.put(id, at)?;
                }
                op::BINPUT => {
                    let id = self.byte()?.into();
                    self.put(id, at)?;
                }
                op::LONG_BINPUT => {
                    let id = u32::from_le_bytes(self.array()?).into();
                    self.put(id, at)?;
                }
                op::GET => {
                    let id = parse_text(self.line()?).ok_or(malformed(at, "bad GET"))?;
                    self.get(id, at)?;
                }
                op::BINGET => {
                    let id = self.byte()?.into();
                    self.get(id, at)?;
                }
                op::LONG_BINGET => {
                    let id = u32::from_le_bytes(self.array()?).into();
                    self.get(id, at)?;
                }
                op::GLOBAL => {
                    let module = python3_module(text(self.line()?, at)?);
                    let name = text(self.line()?, at)?;
                    self.push(Node::Class { module, name });
                }
                op::STACK_GLOBAL => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    let (Node::Leaf(PyValue::Str(module)), Node::Leaf(PyValue::Str(name))) =
                        (&self.arena[module], &self.arena[name])
                    else {
                        return Err(malformed(at, "STACK_GLOBAL of non-strings"));
                    };
                    let node = Node::Class {
                        module: python3_module(module.clone()),
                        name: name.clone(),
                    };
                    self.push(node);
                }
                op::REDUCE | op::NEWOBJ => {
                    let args = self.pop(at)?;
                    let class = self.pop(at)?;
                    let Node::Tuple(args) = &self.arena[args] else {
                        return Err(malformed(at, "constructor arguments are not a tuple"));
                    };
                    let Node::Class { module, name } = &self.arena[class] else {
                        return Err(malformed(at, "call of a non-class"));
                    };
                    let node = match (module.as_str(), name.as_str(), args.as_slice()) {
                        // What `pickle` writes for sets below protocol 4.
                        // Built-in types called on a value of their own kind: what
                        // fail2ban's IPAddr (a str subclass) reduces to, and what
                        // `pickle` writes for sets below protocol 4.
                        (
                            "builtins",
                            class @ ("str" | "int" | "float" | "list" | "tuple" | "set"
                            | "frozenset"),
                            [arg],
                        ) => match (class, &self.arena[*arg]) {
                            ("str", Node::Leaf(v @ PyValue::Str(_)))
                            | ("int", Node::Leaf(v @ PyValue::Int(_)))
                            | ("float", Node::Leaf(v @ PyValue::Float(_))) => Node::Leaf(v.clone()),
                            ("float", Node::Leaf(PyValue::Int(i))) => {
                                Node::Leaf(PyValue::Float(*i as f64))
                            }
                            ("list", Node::List(items) | Node::Tuple(items)) => {
                                Node::List(items.clone())
                            }
                            ("tuple", Node::List(items) | Node::Tuple(items)) => {
                                Node::Tuple(items.clone())
                            }
                            (
                                "set" | "frozenset",
                                Node::List(items) | Node::Tuple(items) | Node::Set(items),
                            ) => Node::Set(items.clone()),
                            _ => return Err(malformed(at, "unsupported built-in call")),
                        },
                        // What `pickle` writes for bytes below protocol 3.
                        ("_codecs", "encode", [text, codec]) => {
                            match (&self.arena[*text], &self.arena[*codec]) {
                                (
                                    Node::Leaf(PyValue::Str(text)),
                                    Node::Leaf(PyValue::Str(codec)),
                                ) if codec == "latin1" => {
                                    let bytes = text.chars().map(|c| u8::try_from(u32::from(c)));
                                    let bytes: Result<Vec<u8>, _> = bytes.collect();
                                    let bytes =
                                        bytes.map_err(|_| malformed(at, "latin1 out of range"))?;
                                    Node::Leaf(PyValue::Bytes(bytes))
                                }
                                _ => return Err(malformed(at, "unsupported encode call")),
                            }
                        }
                        _ => Node::Object {
                            module: module.clone(),
                            name: name.clone(),
                            args: args.clone(),
                        },
                    };
                    self.push(node);
                }
                op::BUILD => {
                    // Instance state (an exception's __dict__) is not part of the value.
                    self.pop(at)?;
                    self.top_node(at)?;
                }
                opcode => return Err(DecodeError::UnsupportedOpcode { opcode, pos: at }),
            }
        }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or(DecodeError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or(DecodeError::Truncated(self.data.len()))?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn len32(&mut self) -> Result<usize, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn len64(&mut self, at: usize) -> Result<usize, DecodeError> {
        usize::try_from(u64::from_le_bytes(self.array()?)).map_err(|_| malformed(at, "length"))
    }

    fn line(&mut self) -> Result<&[u8], DecodeError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or(DecodeError::Truncated(self.data.len()))?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn utf8(&mut self, n: usize, at: usize) -> Result<String, DecodeError> {
        let bytes = self.take(n)?;
        // Python writes lone surrogates as "surrogatepass"; they have no Rust form.
        String::from_utf8(bytes.to_vec()).map_err(|_| malformed(at, "string is not UTF-8"))
    }

    fn push(&mut self, node: Node) {
        self.arena.push(node);
        self.stack.push(self.arena.len() - 1);
    }

    fn pop(&mut self, at: usize) -> Result<usize, DecodeError> {
        if self.stack.len() <= self.marks.last().copied().unwrap_or(0) {
            return Err(malformed(at, "stack underflow"));
        }
        self.stack.pop().ok_or(malformed(at, "stack underflow"))
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<usize>, DecodeError> {
        let mark = self.marks.pop().ok_or(malformed(at, "no MARK"))?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn top_node(&mut self, at: usize) -> Result<&mut Node, DecodeError> {
        if self.stack.len() <= self.marks.last().copied().unwrap_or(0) {
            return Err(malformed(at, "stack underflow"));
        }
        let id = *self.stack.last().ok_or(malformed(at, "stack underflow"))?;
        Ok(&mut self.arena[id])
    }

    fn put(&mut self, id: u64, at: usize) -> Result<(), DecodeError> {
        let top = *self
            .stack
            .last()
            .ok_or(malformed(at, "PUT on empty stack"))?;
        self.memo.insert(id, top);
        Ok(())
    }

    fn get(&mut self, id: u64, at: usize) -> Result<(), DecodeError> {
        let node = *self
            .memo
            .get(&id)
            .ok_or(malformed(at, "GET of unknown memo"))?;
        self.stack.push(node);
        Ok(())
    }

    fn materialize(
        &self,
        id: usize,
        depth: usize,
        budget: &mut usize,
    ) -> Result<PyValue, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep(MAX_DEPTH));
        }
        let cost = std::mem::size_of::<PyValue>()
            + match &self.arena[id] {
                Node::Leaf(PyValue::Str(s)) => s.len(),
                Node::Leaf(PyValue::Bytes(b)) => b.len(),
                _ => 0,
            };
        *budget = budget
            .checked_sub(cost)
            .ok_or(DecodeError::TooLarge(MAX_EXPANDED))?;
        let all = |ids: &[usize], budget: &mut usize| -> Result<Vec<PyValue>, DecodeError> {
            ids.iter()
                .map(|i| self.materialize(*i, depth + 1, budget))
                .collect()
        };
        Ok(match &self.arena[id] {
            Node::Leaf(v) => v.clone(),
            Node::List(ids) => PyValue::List(all(ids, budget)?),
            Node::Tuple(ids) => PyValue::Tuple(all(ids, budget)?),
            Node::Set(ids) => PyValue::Set(all(ids, budget)?),
            Node::Dict(pairs) => {
                let mut out = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    out.push((
                        self.materialize(*k, depth + 1, budget)?,
                        self.materialize(*v, depth + 1, budget)?,
                    ));
                }
                PyValue::Dict(out)
            }
            Node::Object { module, name, args } => PyValue::Exception(PyException {
                module: module.clone(),
                name: name.clone(),
                args: all(args, budget)?,
            }),
            // A bare class object: no Python value of ours; show its name.
            Node::Class { module, name } => PyValue::Str(format!("<class '{module}.{name}'>")),
        })
    }
}

fn malformed(pos: usize, what: &'static str) -> DecodeError {
    DecodeError::Malformed { pos, what }
}

fn pairs(items: &[usize], at: usize) -> Result<Vec<(usize, usize)>, DecodeError> {
    if !items.len().is_multiple_of(2) {
        return Err(malformed(at, "odd number of dictionary items"));
    }
    Ok(items.chunks_exact(2).map(|kv| (kv[0], kv[1])).collect())
}

fn long_from_bytes(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() {
        return Some(0);
    }
    if bytes.len() > 8 {
        // Longer encodings are fine if they only sign-extend.
        let (low, high) = bytes.split_at(8);
        let fill = if low[7] & 0x80 != 0 { 0xff } else { 0 };
        if high.iter().any(|b| *b != fill) {
            return None;
        }
        return long_from_bytes(low);
    }
    let fill = if bytes[bytes.len() - 1] & 0x80 != 0 {
        0xff
    } else {
        0
    };
    let mut buf = [fill; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    Some(i64::from_le_bytes(buf))
}

fn parse_text<T: std::str::FromStr>(line: &[u8]) -> Option<T> {
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

/// Protocols below 3 name Python 2's modules for built-in classes.
fn python3_module(module: String) -> String {
    match module.as_str() {
        "__builtin__" | "exceptions" => "builtins".into(),
        _ => module,
    }
}

fn text(line: &[u8], at: usize) -> Result<String, DecodeError> {
    String::from_utf8(line.to_vec()).map_err(|_| malformed(at, "name is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PyValue {
        PyValue::List(vec![
            PyValue::None,
            PyValue::Bool(true),
            PyValue::Int(0),
            PyValue::Int(255),
            PyValue::Int(256),
            PyValue::Int(70000),
            PyValue::Int(-1),
            PyValue::Int(i64::MIN),
            PyValue::Int(i64::MAX),
            PyValue::Int(1 << 40),
            PyValue::Float(-2.5),
            PyValue::str("é".repeat(300)),
            PyValue::Bytes(vec![0, 1, 2]),
            PyValue::Tuple(vec![]),
            PyValue::Tuple(vec![PyValue::Int(1); 5]),
            PyValue::Dict(vec![(PyValue::str("k"), PyValue::List(vec![]))]),
            PyValue::Set(vec![PyValue::Int(3)]),
            PyValue::Exception(PyException::unknown_jail("sshd")),
        ])
    }

    #[test]
    fn round_trips() {
        let v = sample();
        assert_eq!(decode(&encode(&v)), Ok(v));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode(&sample());
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
        }
    }

    #[test]
    fn shared_references_see_later_appends() {
        // EMPTY_LIST MEMOIZE DUP ... : a list memoised while empty, filled afterwards,
        // then referenced again through the memo.
        let p = [
            op::PROTO,
            4,
            op::EMPTY_LIST,
            op::MEMOIZE,
            op::BININT1,
            7,
            op::APPEND,
            op::BINGET,
            0,
            op::TUPLE2,
            op::STOP,
        ];
        let seven = PyValue::List(vec![PyValue::Int(7)]);
        assert_eq!(decode(&p), Ok(PyValue::Tuple(vec![seven.clone(), seven])));
    }

    #[test]
    fn fail2ban_addresses_read_as_strings() {
        // pickle.dumps([IPAddr('10.0.0.0/8')], 5): IPAddr reduces to str(value).
        let mut p = vec![
            op::PROTO,
            5,
            op::FRAME,
            40,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            op::EMPTY_LIST,
            op::MEMOIZE,
        ];
        for s in ["builtins", "str"] {
            p.extend([op::SHORT_BINUNICODE, s.len() as u8]);
            p.extend(s.bytes());
            p.push(op::MEMOIZE);
        }
        p.extend([op::STACK_GLOBAL, op::MEMOIZE, op::SHORT_BINUNICODE, 10]);
        p.extend(b"10.0.0.0/8");
        p.extend([
            op::MEMOIZE,
            op::TUPLE1,
            op::MEMOIZE,
            op::REDUCE,
            op::MEMOIZE,
            op::APPEND,
            op::STOP,
        ]);
        assert_eq!(decode(&p), Ok(PyValue::str_list(["10.0.0.0/8"])));
    }

    #[test]
    fn self_reference_and_blowup_are_refused() {
        // A list that contains itself.
        let cyclic = [
            op::EMPTY_LIST,
            op::MEMOIZE,
            op::BINGET,
            0,
            op::APPEND,
            op::STOP,
        ];
        assert_eq!(decode(&cyclic), Err(DecodeError::TooDeep(MAX_DEPTH)));
        // 2^60 copies through doubling references, in a few hundred bytes.
        let mut p = vec![op::NONE];
        for _ in 0..60 {
            p.extend([op::MEMOIZE, op::DUP, op::TUPLE2]);
        }
        p.push(op::STOP);
        assert!(matches!(
            decode(&p),
            Err(DecodeError::TooLarge(_) | DecodeError::TooDeep(_))
        ));
    }

    #[test]
    fn hostile_lengths_do_not_allocate() {
        let p = [
            op::BINUNICODE8,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x7f,
        ];
        assert!(decode(&p).is_err());
        let p = [op::LONG4, 0xff, 0xff, 0xff, 0xff];
        assert!(decode(&p).is_err());
    }

    #[test]
    fn odd_byte_soup_never_panics() {
        // A cheap deterministic generator: every opcode in every position, many times.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let len = (state % 40) as usize;
            let mut p = Vec::with_capacity(len);
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                p.push((state >> 24) as u8);
            }
            let _ = decode(&p);
        }
    }
}
