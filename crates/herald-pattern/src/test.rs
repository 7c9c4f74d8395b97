//! The tests a pattern leaf applies to one value of the event, and the values
//! they apply to.

use crate::wildcard::Wildcard;
use serde_json::{Number, Value};
use std::net::IpAddr;

/// One leaf value of an event: what a pattern's tests look at.
#[derive(Debug, Clone, Copy)]
pub enum Leaf<'a> {
    Str(&'a str),
    Num(&'a Number),
    Bool(bool),
    Null,
}

impl<'a> Leaf<'a> {
    /// The leaf a JSON scalar is; `None` for arrays and objects.
    pub fn of(v: &'a Value) -> Option<Leaf<'a>> {
        Some(match v {
            Value::String(s) => Leaf::Str(s),
            Value::Number(n) => Leaf::Num(n),
            Value::Bool(b) => Leaf::Bool(*b),
            Value::Null => Leaf::Null,
            Value::Array(_) | Value::Object(_) => return None,
        })
    }
}

/// An exact value in a pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    /// Exact numbers compare by value (`300` equals `300.0` and `3e2`), as
    /// AWS's `TestEventPattern` answers.
    Num(f64),
    Bool(bool),
    Null,
}

impl Literal {
    pub fn equals(&self, leaf: Leaf<'_>) -> bool {
        match (self, leaf) {
            (Literal::Str(a), Leaf::Str(b)) => a == b,
            (Literal::Num(a), Leaf::Num(b)) => b.as_f64() == Some(*a),
            (Literal::Bool(a), Leaf::Bool(b)) => *a == b,
            (Literal::Null, Leaf::Null) => true,
            _ => false,
        }
    }
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Cmp::Eq => value == bound,
            Cmp::Lt => value < bound,
            Cmp::Le => value <= bound,
            Cmp::Gt => value > bound,
            Cmp::Ge => value >= bound,
        }
    }
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, PartialEq)]
pub struct Cidr {
    pub net: IpAddr,
    pub bits: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.bits)
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.bits)
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// What `anything-but` excludes. The string forms exclude only strings: a
/// number or null passes `anything-but: {prefix: ...}`, as AWS answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Excluded {
    /// Values (all strings or all numbers).
    Values(Vec<Literal>),
    Prefix(Vec<String>),
    Suffix(Vec<String>),
    Wildcard(Vec<Wildcard>),
    /// Strings, compared lowercased.
    IgnoreCase(Vec<String>),
}

/// One element of a leaf's array: a value or an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Exact(Literal),
    /// `prefix` (lowercased when `ignore_case`).
    Prefix {
        text: String,
        ignore_case: bool,
    },
    Suffix {
        text: String,
        ignore_case: bool,
    },
    /// Lowercased.
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    AnythingBut(Excluded),
    Numeric(Vec<(Cmp, f64)>),
    Exists(bool),
    Cidr(Cidr),
}

impl Test {
    /// Whether this test accepts one present value. (`exists` is decided by
    /// presence, not by a value: see [`crate::compile::Condition`].)
    pub fn accepts(&self, leaf: Leaf<'_>) -> bool {
        match self {
            Test::Exact(lit) => lit.equals(leaf),
            Test::Prefix { text, ignore_case } => match leaf {
                Leaf::Str(s) if *ignore_case => s.to_lowercase().starts_with(text.as_str()),
                Leaf::Str(s) => s.starts_with(text.as_str()),
                _ => false,
            },
            Test::Suffix { text, ignore_case } => match leaf {
                Leaf::Str(s) if *ignore_case => s.to_lowercase().ends_with(text.as_str()),
                Leaf::Str(s) => s.ends_with(text.as_str()),
                _ => false,
            },
            Test::EqualsIgnoreCase(text) => {
                matches!(leaf, Leaf::Str(s) if s.to_lowercase() == *text)
            }
            Test::Wildcard(w) => matches!(leaf, Leaf::Str(s) if w.matches(s)),
            Test::AnythingBut(excluded) => match excluded {
                Excluded::Values(values) => {
                    // A value of another type than the list's is "anything but".
                    !values.iter().any(|v| v.equals(leaf))
                }
                Excluded::Prefix(ps) => match leaf {
                    Leaf::Str(s) => !ps.iter().any(|p| s.starts_with(p.as_str())),
                    _ => true,
                },
                Excluded::Suffix(ps) => match leaf {
                    Leaf::Str(s) => !ps.iter().any(|p| s.ends_with(p.as_str())),
                    _ => true,
                },
                Excluded::Wildcard(ws) => match leaf {
                    Leaf::Str(s) => !ws.iter().any(|w| w.matches(s)),
                    _ => true,
                },
                Excluded::IgnoreCase(values) => match leaf {
                    Leaf::Str(s) => !values.contains(&s.to_lowercase()),
                    _ => true,
                },
            },
            Test::Numeric(bounds) => match leaf {
                Leaf::Num(n) => n
                    .as_f64()
                    .is_some_and(|v| bounds.iter().all(|(cmp, b)| cmp.holds(v, *b))),
                _ => false,
            },
            Test::Exists(_) => false,
            Test::Cidr(c) => match leaf {
                Leaf::Str(s) => s.parse::<IpAddr>().is_ok_and(|ip| c.contains(ip)),
                _ => false,
            },
        }
    }
}

/// The canonical text of a number for hashing and exact lookups: equal values
/// have equal texts (`300`, `300.0` and `3e2` are all "300").
pub fn number_key(v: f64, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    let v = if v == 0.0 { 0.0 } else { v };
    let _ = write!(out, "{v}");
}
