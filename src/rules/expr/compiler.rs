//! The compiler from evalexpr's tree to our typed [`Expr`]: every name resolved to a field,
//! aggregate, parameter or table, every operand type checked, common shapes specialised.

use super::{specialise, ArOp, CmpOp, Expr, Lit, Scope, N};
use crate::feature::{Field, Ty};
use compact_str::CompactString;
use evalexpr::{Operator, Value};

/// An expression with its static type (`None`: null, or a table without values).
type Typed = (Expr, Option<Ty>);

/// Why the compiler refuses a tree evalexpr parsed. [`super::compile`] quotes the expression
/// before the message, so the messages here never repeat it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(super) enum CompileError {
    #[error("empty expression")]
    Empty,
    #[error("unexpected sequence of values")]
    Sequence,
    #[error("operator needs one operand")]
    OneOperand,
    #[error("operator needs two operands")]
    TwoOperands,
    #[error("`{0}` is not a finite number")]
    NotFinite(f64),
    #[error("a list is only allowed in one_of()")]
    List,
    #[error("`&&` and `||` join conditions, not values")]
    JoinValues,
    #[error("`!` applies to a condition")]
    NotOfValue,
    #[error("arithmetic needs numbers")]
    ArithmeticOnText,
    #[error("`^` is not supported")]
    Power,
    /// An evalexpr operator rules have no use for (assignment, chaining...), as it prints.
    #[error("`{0}` is not allowed in a rule expression")]
    Operator(String),
    #[error("`label` is evaluation ground truth; rules may not read it")]
    Label,
    #[error("unknown name `{0}`")]
    UnknownName(String),
    #[error("malformed call")]
    MalformedCall,
    #[error("unknown function `{0}` (known: one_of, in_range, has)")]
    UnknownFunction(String),
    #[error("one_of(field, value, ...)")]
    OneOfArgs,
    #[error("one_of() takes constants after the first argument")]
    OneOfNotConst,
    #[error("one_of() needs at least one value")]
    OneOfEmpty,
    #[error("has(field) takes one argument")]
    HasArgs,
    #[error("in_range(x, low, high) takes three arguments")]
    InRangeArgs,
    #[error("in_range() needs a number")]
    InRangeNotNum,
    /// Text that is not an integer, compared with a numeric field.
    #[error("compares a number with text {0:?}")]
    NumberWithText(CompactString),
    /// Text outside a closed field's values (`pin == "entred"`).
    #[error("{value:?} is not a value of `{field}` (one of: {})", domain.join(", "))]
    NotInDomain {
        value: CompactString,
        field: &'static str,
        domain: Vec<&'static str>,
    },
    /// A number compared with a text field (`mcc`-like codes are text: `"05"` is not `5`).
    #[error("compares text field with the number {0}; quote it: \"{0:02}\"")]
    TextWithNumber(i64),
    #[error("compares a {0:?} with a {1:?}")]
    Mismatch(Ty, Ty),
}

pub(super) struct Compiler<'c, 's> {
    pub(super) scope: &'c Scope<'s>,
    pub(super) names: &'c mut Vec<String>,
}

impl Compiler<'_, '_> {
    pub(super) fn node(&mut self, n: &N) -> Result<Typed, CompileError> {
        let ch = n.children();
        Ok(match n.operator() {
            Operator::RootNode => match ch {
                [one] => self.node(one)?,
                [] => return Err(CompileError::Empty),
                _ => return Err(CompileError::Sequence),
            },
            Operator::Const { value } => constant(value)?,
            Operator::VariableIdentifierRead { identifier } => self.ident(identifier)?,
            op @ (Operator::And | Operator::Or) => self.logic(op, ch)?,
            Operator::Not => {
                let (a, ta) = self.one(ch)?;
                if ta != Some(Ty::Bool) {
                    return Err(CompileError::NotOfValue);
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
            | Operator::Geq) => self.compare(op, ch)?,
            op
            @ (Operator::Add | Operator::Sub | Operator::Mul | Operator::Div | Operator::Mod) => {
                self.arith(op, ch)?
            }
            Operator::FunctionIdentifier { identifier } => self.func(identifier, ch)?,
            Operator::Tuple => return Err(CompileError::List),
            Operator::Exp => return Err(CompileError::Power),
            other => return Err(CompileError::Operator(other.to_string())),
        })
    }

    fn one(&mut self, ch: &[N]) -> Result<Typed, CompileError> {
        match ch {
            [one] => self.node(one),
            _ => Err(CompileError::OneOperand),
        }
    }

    /// The two operands of a binary operator, compiled left first.
    fn two(&mut self, ch: &[N]) -> Result<(Typed, Typed), CompileError> {
        if ch.len() != 2 {
            return Err(CompileError::TwoOperands);
        }
        Ok((self.node(&ch[0])?, self.node(&ch[1])?))
    }

    /// `&&` or `||`: both sides must be conditions.
    fn logic(&mut self, op: &Operator, ch: &[N]) -> Result<Typed, CompileError> {
        let ((a, ta), (b, tb)) = self.two(ch)?;
        if ta != Some(Ty::Bool) || tb != Some(Ty::Bool) {
            return Err(CompileError::JoinValues);
        }
        let e = if matches!(op, Operator::And) {
            Expr::And(Box::new(a), Box::new(b))
        } else {
            Expr::Or(Box::new(a), Box::new(b))
        };
        Ok((e, Some(Ty::Bool)))
    }

    fn compare(&mut self, op: &Operator, ch: &[N]) -> Result<Typed, CompileError> {
        let cmp = match op {
            Operator::Eq => CmpOp::Eq,
            Operator::Neq => CmpOp::Ne,
            Operator::Lt => CmpOp::Lt,
            Operator::Leq => CmpOp::Le,
            Operator::Gt => CmpOp::Gt,
            _ => CmpOp::Ge,
        };
        let ((a, ta), (b, tb)) = self.two(ch)?;
        let (a, b) = check_cmp(a, ta, b, tb)?;
        Ok((
            specialise(Expr::Cmp(cmp, Box::new(a), Box::new(b))),
            Some(Ty::Bool),
        ))
    }

    /// Arithmetic: operands must be numbers or null (a null operand makes the result null).
    fn arith(&mut self, op: &Operator, ch: &[N]) -> Result<Typed, CompileError> {
        let ar = match op {
            Operator::Add => ArOp::Add,
            Operator::Sub => ArOp::Sub,
            Operator::Mul => ArOp::Mul,
            Operator::Div => ArOp::Div,
            _ => ArOp::Mod,
        };
        let ((a, ta), (b, tb)) = self.two(ch)?;
        for t in [ta, tb] {
            if t.is_some_and(|t| t != Ty::Num) {
                return Err(CompileError::ArithmeticOnText);
            }
        }
        Ok((Expr::Arith(ar, Box::new(a), Box::new(b)), Some(Ty::Num)))
    }

    fn ident(&mut self, name: &str) -> Result<Typed, CompileError> {
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
            return Err(CompileError::Label);
        }
        match Field::lookup(name) {
            Some((f, ty)) => Ok((Expr::Field(f), Some(ty))),
            None => Err(CompileError::UnknownName(name.to_string())),
        }
    }

    fn args(&mut self, ch: &[N]) -> Result<Vec<N>, CompileError> {
        // evalexpr gives a function one child: a tuple for several arguments, else the argument.
        let arg = match ch {
            [a] => a,
            _ => return Err(CompileError::MalformedCall),
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

    fn func(&mut self, name: &str, ch: &[N]) -> Result<Typed, CompileError> {
        let args = self.args(ch)?;
        match name {
            "one_of" => self.one_of(&args),
            "has" => {
                let [a] = args.as_slice() else {
                    return Err(CompileError::HasArgs);
                };
                let (x, _) = self.node(a)?;
                Ok((Expr::Has(Box::new(x)), Some(Ty::Bool)))
            }
            "in_range" => self.in_range(&args),
            other => Err(CompileError::UnknownFunction(other.to_string())),
        }
    }

    /// `one_of(x, c1, c2, ...)`: each constant checked (and coerced) as in `x == c`.
    fn one_of(&mut self, args: &[N]) -> Result<Typed, CompileError> {
        let (first, rest) = args.split_first().ok_or(CompileError::OneOfArgs)?;
        let (x, tx) = self.node(first)?;
        let mut lits = Vec::new();
        for a in rest {
            let (e, te) = self.node(a)?;
            let Expr::Const(l) = e else {
                return Err(CompileError::OneOfNotConst);
            };
            let (_, l) = check_cmp(x.clone(), tx, Expr::Const(l), te)?;
            let Expr::Const(l) = l else { unreachable!() };
            lits.push(l);
        }
        if lits.is_empty() {
            return Err(CompileError::OneOfEmpty);
        }
        Ok((specialise(Expr::OneOf(Box::new(x), lits)), Some(Ty::Bool)))
    }

    /// `in_range(x, lo, hi)`: `x >= lo && x <= hi`.
    fn in_range(&mut self, args: &[N]) -> Result<Typed, CompileError> {
        let [a, lo, hi] = args else {
            return Err(CompileError::InRangeArgs);
        };
        let (x, tx) = self.node(a)?;
        if tx != Some(Ty::Num) {
            return Err(CompileError::InRangeNotNum);
        }
        let (lo, _) = self.node(lo)?;
        let (hi, _) = self.node(hi)?;
        let ge = Expr::Cmp(CmpOp::Ge, Box::new(x.clone()), Box::new(lo));
        let le = Expr::Cmp(CmpOp::Le, Box::new(x), Box::new(hi));
        Ok((Expr::And(Box::new(ge), Box::new(le)), Some(Ty::Bool)))
    }
}

/// A literal of the expression text.
fn constant(value: &Value) -> Result<Typed, CompileError> {
    let lit = match value {
        Value::String(s) => Lit::Str(s.as_str().into()),
        Value::Int(i) => Lit::Int(*i),
        Value::Float(f) if f.is_finite() => Lit::Float(*f),
        Value::Float(f) => return Err(CompileError::NotFinite(*f)),
        Value::Boolean(b) => Lit::Bool(*b),
        Value::Empty => Lit::Null,
        Value::Tuple(_) => return Err(CompileError::List),
    };
    let ty = lit.ty();
    Ok((Expr::Const(lit), ty))
}

/// Check a comparison's operand types; coerce digit strings to numbers for numeric fields
/// (`mcc == "7011"`), and check text constants against closed domains (`pin == "entred"`).
fn check_cmp(
    a: Expr,
    ta: Option<Ty>,
    b: Expr,
    tb: Option<Ty>,
) -> Result<(Expr, Expr), CompileError> {
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
            return Err(CompileError::Mismatch(x, y));
        }
    }
    Ok((a, b))
}

/// The constant `c`, compared with `field` (of type `tf`), as the comparison needs it.
fn coerce(field: &Expr, tf: Option<Ty>, c: Expr) -> Result<Expr, CompileError> {
    match (tf, &c) {
        (Some(Ty::Num), Expr::Const(Lit::Str(s))) => s
            .parse::<i64>()
            .map(|i| Expr::Const(Lit::Int(i)))
            .map_err(|_| CompileError::NumberWithText(s.clone())),
        (Some(Ty::Str), Expr::Const(Lit::Str(s))) => {
            if let Expr::Field(f) = field {
                if let Some(domain) = f.domain() {
                    if !domain.contains(&s.as_str()) {
                        return Err(CompileError::NotInDomain {
                            value: s.clone(),
                            field: f.name(),
                            domain,
                        });
                    }
                }
            }
            Ok(c)
        }
        (Some(Ty::Str), Expr::Const(Lit::Int(i))) => Err(CompileError::TextWithNumber(*i)),
        _ => Ok(c),
    }
}
