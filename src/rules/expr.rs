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
use evalexpr::{DefaultNumericTypes, Node, Operator, Value};
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

struct Compiler<'c, 's> {
    scope: &'c Scope<'s>,
    names: &'c mut Vec<String>,
}

impl Compiler<'_, '_> {
    fn node(&mut self, n: &N) -> Result<(Expr, Option<Ty>), String> {
        let ch = n.children();
        type Typed = (Expr, Option<Ty>);
        let bin = |c: &mut Self| -> Result<(Typed, Typed), String> {
            if ch.len() != 2 {
                return Err("operator needs two operands".into());
            }
            Ok((c.node(&ch[0])?, c.node(&ch[1])?))
        };
        Ok(match n.operator() {
            Operator::RootNode => match ch {
                [one] => self.node(one)?,
                [] => return Err("empty expression".into()),
                _ => return Err("unexpected sequence of values".into()),
            },
            Operator::Const { value } => {
                let lit = match value {
                    Value::String(s) => Lit::Str(s.as_str().into()),
                    Value::Int(i) => Lit::Int(*i),
                    Value::Float(f) if f.is_finite() => Lit::Float(*f),
                    Value::Float(f) => return Err(format!("`{f}` is not a finite number")),
                    Value::Boolean(b) => Lit::Bool(*b),
                    Value::Empty => Lit::Null,
                    Value::Tuple(_) => return Err("a list is only allowed in one_of()".into()),
                };
                let ty = lit.ty();
                (Expr::Const(lit), ty)
            }
            Operator::VariableIdentifierRead { identifier } => self.ident(identifier)?,
            Operator::And | Operator::Or => {
                let ((a, ta), (b, tb)) = bin(self)?;
                if ta != Some(Ty::Bool) || tb != Some(Ty::Bool) {
                    return Err("`&&` and `||` join conditions, not values".into());
                }
                let e = if matches!(n.operator(), Operator::And) {
                    Expr::And(Box::new(a), Box::new(b))
                } else {
                    Expr::Or(Box::new(a), Box::new(b))
                };
                (e, Some(Ty::Bool))
            }
            Operator::Not => {
                let (a, ta) = self.one(ch)?;
                if ta != Some(Ty::Bool) {
                    return Err("`!` applies to a condition".into());
                }
                (Expr::Not(Box::new(a)), Some(Ty::Bool))
            }
            Operator::Neg => {
                let (a, _) = self.one(ch)?;
                (Expr::Neg(Box::new(a)), Some(Ty::Num))
            }
            op @ (Operator::Eq
            | Operator::Neq
            | Operator::Lt
            | Operator::Leq
            | Operator::Gt
            | Operator::Geq) => {
                let cmp = match op {
                    Operator::Eq => CmpOp::Eq,
                    Operator::Neq => CmpOp::Ne,
                    Operator::Lt => CmpOp::Lt,
                    Operator::Leq => CmpOp::Le,
                    Operator::Gt => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let ((a, ta), (b, tb)) = bin(self)?;
                let (a, b) = check_cmp(a, ta, b, tb)?;
                (
                    specialise(Expr::Cmp(cmp, Box::new(a), Box::new(b))),
                    Some(Ty::Bool),
                )
            }
            op
            @ (Operator::Add | Operator::Sub | Operator::Mul | Operator::Div | Operator::Mod) => {
                let ar = match op {
                    Operator::Add => ArOp::Add,
                    Operator::Sub => ArOp::Sub,
                    Operator::Mul => ArOp::Mul,
                    Operator::Div => ArOp::Div,
                    _ => ArOp::Mod,
                };
                let ((a, ta), (b, tb)) = bin(self)?;
                for t in [ta, tb] {
                    if t.is_some_and(|t| t != Ty::Num) {
                        return Err("arithmetic needs numbers".into());
                    }
                }
                (Expr::Arith(ar, Box::new(a), Box::new(b)), Some(Ty::Num))
            }
            Operator::FunctionIdentifier { identifier } => self.func(identifier, ch)?,
            Operator::Tuple => return Err("a list is only allowed in one_of()".into()),
            Operator::Exp => return Err("`^` is not supported".into()),
            other => return Err(format!("`{other}` is not allowed in a rule expression")),
        })
    }

    fn one(&mut self, ch: &[N]) -> Result<(Expr, Option<Ty>), String> {
        match ch {
            [one] => self.node(one),
            _ => Err("operator needs one operand".into()),
        }
    }

    fn ident(&mut self, name: &str) -> Result<(Expr, Option<Ty>), String> {
        self.names.push(name.to_string());
        if let Some(i) = self.scope.aggs.iter().position(|a| a == name) {
            return Ok((Expr::Agg(i), Some(Ty::Num)));
        }
        if let Some(p) = self.scope.params.get(name) {
            return Ok((Expr::Const(p.clone()), p.ty()));
        }
        if let Some(t) = self.scope.tables.get(name) {
            let ty = t.values.values().find_map(|v| v.ty());
            return Ok((Expr::Table(t.clone()), ty));
        }
        if name == "label" {
            return Err("`label` is evaluation ground truth; rules may not read it".into());
        }
        match Field::lookup(name) {
            Some((f, ty)) => Ok((Expr::Field(f), Some(ty))),
            None => Err(format!("unknown name `{name}`")),
        }
    }

    fn args(&mut self, ch: &[N]) -> Result<Vec<N>, String> {
        // evalexpr gives a function one child: a tuple for several arguments, else the argument.
        let arg = match ch {
            [a] => a,
            _ => return Err("malformed call".into()),
        };
        let arg = if matches!(arg.operator(), Operator::RootNode) && arg.children().len() == 1 {
            &arg.children()[0]
        } else {
            arg
        };
        Ok(if matches!(arg.operator(), Operator::Tuple) {
            arg.children().to_vec()
        } else {
            vec![arg.clone()]
        })
    }

    fn func(&mut self, name: &str, ch: &[N]) -> Result<(Expr, Option<Ty>), String> {
        let args = self.args(ch)?;
        match name {
            "one_of" => {
                let (first, rest) = args.split_first().ok_or("one_of(field, value, ...)")?;
                let (x, tx) = self.node(first)?;
                let mut lits = Vec::new();
                for a in rest {
                    let (e, te) = self.node(a)?;
                    let Expr::Const(l) = e else {
                        return Err("one_of() takes constants after the first argument".into());
                    };
                    let (_, l) = check_cmp(x.clone(), tx, Expr::Const(l), te)?;
                    let Expr::Const(l) = l else { unreachable!() };
                    lits.push(l);
                }
                if lits.is_empty() {
                    return Err("one_of() needs at least one value".into());
                }
                Ok((specialise(Expr::OneOf(Box::new(x), lits)), Some(Ty::Bool)))
            }
            "has" => {
                let [a] = args.as_slice() else {
                    return Err("has(field) takes one argument".into());
                };
                let (x, _) = self.node(a)?;
                Ok((Expr::Has(Box::new(x)), Some(Ty::Bool)))
            }
            "in_range" => {
                let [a, lo, hi] = args.as_slice() else {
                    return Err("in_range(x, low, high) takes three arguments".into());
                };
                let (x, tx) = self.node(a)?;
                if tx != Some(Ty::Num) {
                    return Err("in_range() needs a number".into());
                }
                let (lo, _) = self.node(lo)?;
                let (hi, _) = self.node(hi)?;
                let ge = Expr::Cmp(CmpOp::Ge, Box::new(x.clone()), Box::new(lo));
                let le = Expr::Cmp(CmpOp::Le, Box::new(x), Box::new(hi));
                Ok((Expr::And(Box::new(ge), Box::new(le)), Some(Ty::Bool)))
            }
            other => Err(format!(
                "unknown function `{other}` (known: one_of, in_range, has)"
            )),
        }
    }
}

/// Check a comparison's operand types; coerce digit strings to numbers for numeric fields
/// (`mcc == "7011"`), and check text constants against closed domains (`pin == "entred"`).
fn check_cmp(a: Expr, ta: Option<Ty>, b: Expr, tb: Option<Ty>) -> Result<(Expr, Expr), String> {
    let coerce = |field: &Expr, tf: Option<Ty>, c: Expr| -> Result<Expr, String> {
        match (tf, &c) {
            (Some(Ty::Num), Expr::Const(Lit::Str(s))) => s
                .parse::<i64>()
                .map(|i| Expr::Const(Lit::Int(i)))
                .map_err(|_| format!("compares a number with text {s:?}")),
            (Some(Ty::Str), Expr::Const(Lit::Str(s))) => {
                if let Expr::Field(f) = field {
                    if let Some(dom) = f.domain() {
                        if !dom.contains(&s.as_str()) {
                            return Err(format!(
                                "{s:?} is not a value of `{}` (one of: {})",
                                f.name(),
                                dom.join(", ")
                            ));
                        }
                    }
                }
                Ok(c)
            }
            (Some(Ty::Str), Expr::Const(Lit::Int(i))) => Err(format!(
                "compares text field with the number {i}; quote it: \"{i:02}\""
            )),
            _ => Ok(c),
        }
    };
    let b = coerce(&a, ta, b)?;
    let a = coerce(&b, tb, a)?;
    let tb2 = match &b {
        Expr::Const(l) => l.ty(),
        _ => tb,
    };
    let ta2 = match &a {
        Expr::Const(l) => l.ty(),
        _ => ta,
    };
    if let (Some(x), Some(y)) = (ta2, tb2) {
        if x != y {
            return Err(format!("compares a {x:?} with a {y:?}"));
        }
    }
    Ok((a, b))
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

pub mod limits;
mod ops;
mod shape;
use ops::arith;
pub(super) use ops::{cmp_vals, truthy};
use shape::specialise;

#[cfg(test)]
mod tests;
