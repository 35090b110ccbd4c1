//! Rule expressions: parsed by `evalexpr` (a well-kept expression crate: precedence, string
//! and number literals, function-call syntax, good parse errors), then compiled by us into a
//! small typed tree with every name resolved to a field, aggregate, parameter or table. The hot
//! path never looks a name up, never allocates, and never sees an unknown identifier.
//!
//! Null semantics: a missing field is `null`; `==`, `<`, `>`... with `null` are false, `!=` is
//! true, arithmetic with `null` is `null`, and `null` is false in a boolean position.

use crate::event::Event;
use crate::feature::Features;
use crate::feature::{Field, Ty, Val};
use compact_str::CompactString;
use evalexpr::{DefaultNumericTypes, Node};
use rustc_hash::FxHashMap;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

type N = Node<DefaultNumericTypes>;

/// An owned constant: rule parameters, table entries, literals.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(CompactString),
}

impl Lit {
    pub fn val(&self) -> Val<'_> {
        match self {
            Lit::Null => Val::Null,
            Lit::Bool(b) => Val::Bool(*b),
            Lit::Int(i) => Val::Int(*i),
            Lit::Float(f) => Val::Float(*f),
            Lit::Str(s) => Val::Str(s),
        }
    }
    fn ty(&self) -> Option<Ty> {
        match self {
            Lit::Null => None,
            Lit::Bool(_) => Some(Ty::Bool),
            Lit::Int(_) | Lit::Float(_) => Some(Ty::Num),
            Lit::Str(_) => Some(Ty::Str),
        }
    }
    /// A TOML scalar as a constant; `None` for tables, arrays, dates and non-finite floats
    /// (a `nan` threshold would make every comparison false and silently disable a rule).
    pub fn from_toml(v: &toml::Value) -> Option<Lit> {
        Some(match v {
            toml::Value::String(s) => Lit::Str(s.as_str().into()),
            toml::Value::Integer(i) => Lit::Int(*i),
            toml::Value::Float(f) if f.is_finite() => Lit::Float(*f),
            toml::Value::Boolean(b) => Lit::Bool(*b),
            _ => return None,
        })
    }
}

/// A lookup table shared by the pack (e.g. the no-CVM limit per currency).
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub key: Field,
    pub values: FxHashMap<CompactString, Lit>,
    /// What an unlisted or missing key gets (`Lit::Null` when the table has no default).
    pub default: Lit,
    /// The table's place in the pack (< 64): its bit in [`Ctx::misses`] and its counter.
    pub slot: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl Table {
    /// The entry for this event's key field (or the default).
    pub fn lookup<'a>(&'a self, ev: &'a Event, f: &'a Features) -> Val<'a> {
        self.entry(ev, f).unwrap_or(&self.default).val()
    }

    /// The entry listed for this event's key, if any.
    fn entry<'a>(&'a self, ev: &'a Event, f: &'a Features) -> Option<&'a Lit> {
        match self.key.read(ev, f) {
            Val::Str(k) => self.values.get(k),
            _ => None,
        }
    }

    /// [`Table::lookup`] for a rule's decision: a fall-back to the default is marked in
    /// `c.misses`, so the engine can count decisions that rested on a default.
    fn lookup_counted<'a>(&'a self, c: &Ctx<'a>) -> Val<'a> {
        match self.entry(c.ev, c.f) {
            Some(l) => l.val(),
            None => {
                c.misses.set(c.misses.get() | 1u64 << (self.slot % 64));
                self.default.val()
            }
        }
    }
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub enum Expr {
    Const(Lit),
    Field(Field),
    Agg(usize),
    Table(Arc<Table>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Arith(ArOp, Box<Expr>, Box<Expr>),
    OneOf(Box<Expr>, Vec<Lit>),
    Has(Box<Expr>),
    /// `field == "text"` (or `!=` when `neg`): the common case, without building values.
    StrEq {
        field: Field,
        text: CompactString,
        neg: bool,
    },
    /// `one_of(field, "a", "b", ...)` on a text field.
    StrIn(Field, Vec<CompactString>),
    /// `StrEq` / `StrIn` on a field with a closed set of values (type, entry_mode, pin):
    /// a bit test on the value's discriminant (`mask`), no text compared. Null gives `neg`.
    EnumIn {
        field: Field,
        mask: u16,
        neg: bool,
    },
}

/// What an expression is evaluated against.
pub struct Ctx<'a> {
    pub ev: &'a Event,
    pub f: &'a Features,
    pub aggs: &'a [Val<'a>],
    /// Bit `slot` set: table `slot` fell back to its default for this event.
    pub misses: &'a Cell<u64>,
}

/// Names an expression may use besides fields: aggregates (window `fire` only), rule params,
/// and pack tables.
pub struct Scope<'s> {
    pub aggs: &'s [String],
    pub params: &'s BTreeMap<String, Lit>,
    pub tables: &'s BTreeMap<String, Arc<Table>>,
}

/// Why an expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// Over one of the bounds of [`limits`] (checked before parsing, and on the tree).
    #[error(transparent)]
    Limit(#[from] limits::LimitError),
    /// evalexpr's parse error, or a name, type or construct the compiler refuses: the
    /// message quotes the expression (at most 120 characters), 400 characters in all.
    #[error("{0}")]
    Invalid(String),
    /// A value where a condition is needed; the expression, quoted as above.
    #[error("`{0}` must be a condition (true/false), not a value")]
    NotCondition(String),
}

/// Compile `src`, requiring a boolean result. Also returns every name it reads (for alerts'
/// `features`).
pub fn compile_bool(src: &str, scope: &Scope) -> Result<(Expr, Vec<String>), ExprError> {
    let (e, ty, names) = compile(src, scope)?;
    if ty != Some(Ty::Bool) {
        return Err(ExprError::NotCondition(shown(src)));
    }
    Ok((e, names))
}

/// Compile `src` to an expression of any type.
pub fn compile(src: &str, scope: &Scope) -> Result<(Expr, Option<Ty>, Vec<String>), ExprError> {
    // Bounded before evalexpr (whose parser recurses) and our compiler see it.
    limits::check_text(src)?;
    let shown = shown(src);
    // Messages quote the expression and what evalexpr found, both clipped.
    let fail = |e: &dyn std::fmt::Display| {
        ExprError::Invalid(super::clip(&format!("`{shown}`: {e}"), 400))
    };
    let tree: N = evalexpr::build_operator_tree(src).map_err(|e| fail(&e))?;
    limits::check_tree(&tree)?;
    let mut names = Vec::new();
    let (e, ty) = Compiler {
        scope,
        names: &mut names,
    }
    .node(&tree)
    .map_err(|e| fail(&e))?;
    names.sort();
    names.dedup();
    Ok((e, ty, names))
}

/// An expression as quoted in a message: at most 120 characters.
fn shown(src: &str) -> String {
    super::clip(src, 120)
}

impl Expr {
    pub fn eval<'a>(&'a self, c: &Ctx<'a>) -> Val<'a> {
        match self {
            Expr::Const(l) => l.val(),
            Expr::Field(f) => f.read(c.ev, c.f),
            Expr::Agg(i) => c.aggs.get(*i).copied().unwrap_or(Val::Null),
            Expr::Table(t) => t.lookup_counted(c),
            Expr::Not(a) => Val::Bool(!a.test(c)),
            // -i64::MIN does not fit: it becomes a real number, like every overflow.
            Expr::Neg(a) => match a.eval(c) {
                Val::Int(i) => i.checked_neg().map_or(Val::Float(-(i as f64)), Val::Int),
                Val::Float(f) => Val::Float(-f),
                _ => Val::Null,
            },
            Expr::And(a, b) => Val::Bool(a.test(c) && b.test(c)),
            Expr::Or(a, b) => Val::Bool(a.test(c) || b.test(c)),
            Expr::Cmp(op, a, b) => Val::Bool(cmp_vals(*op, a.eval(c), b.eval(c))),
            Expr::Arith(op, a, b) => arith(*op, a.eval(c), b.eval(c)),
            Expr::OneOf(a, lits) => {
                let v = a.eval(c);
                Val::Bool(lits.iter().any(|l| cmp_vals(CmpOp::Eq, v, l.val())))
            }
            Expr::Has(a) => Val::Bool(!matches!(a.eval(c), Val::Null)),
            Expr::StrEq { .. } | Expr::StrIn(..) | Expr::EnumIn { .. } => Val::Bool(self.test(c)),
        }
    }
}

mod compiler;
pub mod limits;
mod ops;
mod shape;
use compiler::Compiler;
use ops::arith;
pub(super) use ops::{cmp_vals, truthy};
use shape::specialise;

#[cfg(test)]
mod tests;
