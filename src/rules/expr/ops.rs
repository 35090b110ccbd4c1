//! What operators do with values: null semantics, exact comparisons across integers and reals,
//! and integer arithmetic that never wraps.

use super::{ArOp, CmpOp};
use crate::feature::Val;

pub(in crate::rules) fn truthy(v: Val) -> bool {
    matches!(v, Val::Bool(true))
}

fn num(v: Val) -> Option<f64> {
    match v {
        Val::Int(i) => Some(i as f64),
        Val::Float(f) => Some(f),
        _ => None,
    }
}

/// An integer against a real number, exactly: through f64 alone, i64::MAX equals
/// i64::MAX + 1 (both round to 2^63), so an overflowed sum would compare equal to its bound.
fn cmp_int_float(i: i64, f: f64) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        None
    } else if f >= TWO_63 {
        Some(Ordering::Less)
    } else if f < -TWO_63 {
        Some(Ordering::Greater)
    } else {
        // In range, truncation is exact; the fraction breaks a tie.
        Some(
            i.cmp(&(f.trunc() as i64))
                .then(0.0.partial_cmp(&f.fract())?),
        )
    }
}

pub(in crate::rules) fn cmp_vals(op: CmpOp, a: Val, b: Val) -> bool {
    use std::cmp::Ordering;
    let ord = match (a, b) {
        (Val::Null, _) | (_, Val::Null) => return op == CmpOp::Ne,
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(&y)),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(&y)),
        (Val::Int(x), Val::Float(y)) => cmp_int_float(x, y),
        (Val::Float(x), Val::Int(y)) => cmp_int_float(y, x).map(Ordering::reverse),
        (x, y) => match (num(x), num(y)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    match ord {
        None => op == CmpOp::Ne,
        Some(o) => match op {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
        },
    }
}

/// Integer arithmetic is checked: a result that does not fit an i64 is computed in f64
/// instead of wrapping. A wrapped sum turns a huge amount negative and flips every comparison
/// it feeds (three taps of 2^62 read as below the limit); in f64 it stays huge, so a decision
/// keeps its direction, losing only digits no threshold distinguishes. Saturating would also
/// keep the direction but makes unequal values equal; f64 keeps their order.
pub(super) fn arith<'a>(op: ArOp, a: Val<'a>, b: Val<'a>) -> Val<'a> {
    if let (Val::Int(x), Val::Int(y)) = (a, b) {
        let r = match op {
            ArOp::Add => x.checked_add(y),
            ArOp::Sub => x.checked_sub(y),
            ArOp::Mul => x.checked_mul(y),
            ArOp::Mod => x.checked_rem(y),
            ArOp::Div => None,
        };
        if let Some(r) = r {
            return Val::Int(r);
        }
    }
    let (Some(x), Some(y)) = (num(a), num(b)) else {
        return Val::Null;
    };
    let r = match op {
        ArOp::Add => x + y,
        ArOp::Sub => x - y,
        ArOp::Mul => x * y,
        ArOp::Div | ArOp::Mod if y == 0.0 => return Val::Null,
        ArOp::Div => x / y,
        ArOp::Mod => x % y,
    };
    Val::Float(r)
}
