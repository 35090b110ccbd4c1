//! Common expression shapes, rewritten at load into cheaper forms of the same meaning, and the
//! condition fast path that evaluates them straight to `bool`.

use super::{cmp_vals, truthy, CmpOp, Ctx, Expr, Lit};
use crate::event::{EntryMode, Event, EventType, Pin};
use crate::feature::{Field, Val};
use compact_str::CompactString;

/// Rewrite common shapes into their specialised forms (same meaning, fewer branches).
pub(super) fn specialise(e: Expr) -> Expr {
    let e = match e {
        Expr::Cmp(op @ (CmpOp::Eq | CmpOp::Ne), a, b) => match (*a, *b) {
            (Expr::Field(field), Expr::Const(Lit::Str(text)))
            | (Expr::Const(Lit::Str(text)), Expr::Field(field)) => Expr::StrEq {
                field,
                text,
                neg: op == CmpOp::Ne,
            },
            (a, b) => Expr::Cmp(op, Box::new(a), Box::new(b)),
        },
        Expr::OneOf(a, lits) => match (*a, lits) {
            (Expr::Field(f), lits) if lits.iter().all(|l| matches!(l, Lit::Str(_))) => Expr::StrIn(
                f,
                lits.into_iter()
                    .map(|l| match l {
                        Lit::Str(s) => s,
                        _ => unreachable!(),
                    })
                    .collect(),
            ),
            (a, lits) => Expr::OneOf(Box::new(a), lits),
        },
        other => other,
    };
    // On a closed field, text comparisons become a bit test on the value's discriminant.
    let bits = |field: Field, texts: &[&CompactString]| {
        texts
            .iter()
            .try_fold(0u16, |m, t| Some(m | enum_bit(field, t)?))
    };
    match e {
        Expr::StrEq { field, text, neg } => match bits(field, &[&text]) {
            Some(mask) => Expr::EnumIn { field, mask, neg },
            None => Expr::StrEq { field, text, neg },
        },
        Expr::StrIn(field, texts) => match bits(field, &texts.iter().collect::<Vec<_>>()) {
            Some(mask) => Expr::EnumIn {
                field,
                mask,
                neg: false,
            },
            None => Expr::StrIn(field, texts),
        },
        other => other,
    }
}

/// The bit of `text` among the values of the closed field `field` (by discriminant), if it is
/// one: the bit [`enum_code`] reads from an event with that value.
fn enum_bit(field: Field, text: &str) -> Option<u16> {
    let code = match field {
        Field::Type => EventType::parse(text)? as u16,
        Field::EntryMode => EntryMode::parse(text)? as u16,
        Field::Pin => Pin::parse(text)? as u16,
        _ => return None,
    };
    Some(1 << code)
}

/// The discriminant of a closed field's value (`None`: null). Only called for the fields
/// [`enum_bit`] knows.
#[inline]
fn enum_code(field: Field, ev: &Event) -> Option<u16> {
    match field {
        Field::Type => Some(ev.kind as u16),
        Field::EntryMode => ev.entry_mode.map(|m| m as u16),
        Field::Pin => ev.pin.map(|p| p as u16),
        _ => None,
    }
}

/// Text equality for the short constants rules compare with (response codes, ids): a byte
/// loop, cheaper than a `memcmp` call at these lengths.
#[inline]
fn short_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

impl Expr {
    /// Evaluate as a condition: `eval` then "is it `true`", without building the values of
    /// the boolean nodes on the way.
    pub fn test(&self, c: &Ctx) -> bool {
        match self {
            Expr::And(a, b) => a.test(c) && b.test(c),
            Expr::Or(a, b) => a.test(c) || b.test(c),
            Expr::Not(a) => !a.test(c),
            Expr::EnumIn { field, mask, neg } => match enum_code(*field, c.ev) {
                Some(code) => ((mask >> code) & 1 == 1) != *neg,
                None => *neg,
            },
            Expr::StrEq { field, text, neg } => match field.read(c.ev, c.f) {
                Val::Str(s) => short_eq(s, text) != *neg,
                _ => *neg,
            },
            Expr::StrIn(field, texts) => match field.read(c.ev, c.f) {
                Val::Str(s) => texts.iter().any(|t| short_eq(t, s)),
                _ => false,
            },
            Expr::Field(f) => truthy(f.read(c.ev, c.f)),
            Expr::Cmp(op, a, b) => cmp_vals(*op, a.eval(c), b.eval(c)),
            other => truthy(other.eval(c)),
        }
    }
}
