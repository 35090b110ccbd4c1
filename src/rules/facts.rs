//! A cheap pre-test that lets the engine skip rules that cannot match an event.
//!
//! Each event is summarised once as a word of facts with exactly one bit set in each group:
//! its type, its PIN outcome, its entry mode, a bucket of its response code, whether the
//! models said anything about it, and whether it has a `qr_ref`. Each rule gets, at load, the facts under which one of its
//! conditions can be true (worked out conservatively from the expressions: anything it cannot
//! reason about allows every fact). The engine runs a rule only when the event's facts are all
//! allowed, so a skipped rule is one whose conditions were all false anyway.

use super::compile::Logic;
use super::expr::{CmpOp, Expr};
use crate::event::{Event, EventType, Pin};
use crate::event::{PIN_ATTEMPT_TYPES, PIN_VERIFIED_CODES, WRONG_PIN_CODE};
use crate::feature::Features;
use crate::feature::Field;

const TYPE_AT: u32 = 0;
const PIN_AT: u32 = 9;
const ENTRY_AT: u32 = PIN_AT + 5;
const RC_AT: u32 = ENTRY_AT + 10;
const MODEL_AT: u32 = RC_AT + 8;
const QR_AT: u32 = MODEL_AT + 2;

fn group(at: u32, n: u32) -> u64 {
    ((1u64 << n) - 1) << at
}

/// Every fact allowed: the rule always runs.
pub const ALL: u64 = (1u64 << (QR_AT + 2)) - 1;

/// The response code's bucket: 0 null, 1 exactly "00" (approved), 2..8 any other code by a
/// hash of its text (codes sharing a bucket are told apart by the rule itself).
fn rc_bucket(rc: Option<&str>) -> u32 {
    match rc {
        None => 0,
        Some("00") => 1,
        Some(s) => 2 + s.bytes().fold(0u32, |h, b| h.wrapping_mul(31) ^ b as u32) % 6,
    }
}

/// Nothing from the models about this event: every score field reads null.
fn models_silent(f: &Features) -> bool {
    f.model.says_nothing()
}

/// The facts of one event (with the features the books and models gave it).
pub fn of_event(ev: &Event, f: &Features) -> u64 {
    let pin = ev.pin.map_or(4, |p| p as u32);
    let entry = ev.entry_mode.map_or(9, |m| m as u32);
    let rc = rc_bucket(ev.response_code.as_deref());
    let model = if models_silent(f) { 0 } else { 1 };
    let qr = ev.qr_ref.is_some() as u32;
    1u64 << (TYPE_AT + ev.kind as u32)
        | 1u64 << (PIN_AT + pin)
        | 1u64 << (ENTRY_AT + entry)
        | 1u64 << (RC_AT + rc)
        | 1u64 << (MODEL_AT + model)
        | 1u64 << (QR_AT + qr)
}

/// The facts under which some condition of a rule's logic can be true.
pub fn of_logic(logic: &Logic) -> u64 {
    match logic {
        Logic::Match { when } | Logic::Window { when, .. } => allowed(when),
        Logic::Consecutive { when, reset, .. } => allowed(when) | reset.as_ref().map_or(0, allowed),
        Logic::Sequence { first, then, .. } => allowed(first) | allowed(then),
    }
}

/// Within `field`'s group, the facts for which a value in `mask` (bit per discriminant) holds;
/// `None` when `field` has no group.
fn in_group(field: Field, mask: u16, null: bool) -> Option<u64> {
    let (at, n) = match field {
        Field::Type => (TYPE_AT, 9),
        Field::Pin => (PIN_AT, 4),
        Field::EntryMode => (ENTRY_AT, 9),
        _ => return None,
    };
    // Type is never null; the other groups have a null bit after their values.
    let width = if field == Field::Type { n } else { n + 1 };
    let vals = (mask as u64 & ((1 << n) - 1)) << at;
    let null_bit = if null && width > n {
        1u64 << (at + n)
    } else {
        0
    };
    Some(ALL & !group(at, width) | vals | null_bit)
}

/// Only the given response-code buckets.
fn rc_only(buckets: u64) -> u64 {
    ALL & !group(RC_AT, 8) | buckets << RC_AT
}

/// A score field of the models: null whenever the models said nothing about the event.
fn model_score(e: &Expr) -> bool {
    matches!(e, Expr::Field(f) if f.is_model_score())
}

/// The facts of a PIN attempt: one of [`PIN_ATTEMPT_TYPES`], PIN entered.
fn pin_attempt() -> u64 {
    let types = PIN_ATTEMPT_TYPES
        .iter()
        .fold(0u16, |m, t| m | 1 << *t as u16);
    let entered = 1u16 << Pin::Entered as u16;
    in_group(Field::Type, types, false).unwrap_or(ALL)
        & in_group(Field::Pin, entered, false).unwrap_or(ALL)
}

/// The facts under which `e` can be true.
pub fn allowed(e: &Expr) -> u64 {
    let types = |pred: fn(EventType) -> bool| {
        let mask = EventType::ALL
            .iter()
            .filter(|t| pred(**t))
            .fold(0u16, |m, t| m | 1 << *t as u16);
        in_group(Field::Type, mask, false).unwrap_or(ALL)
    };
    match e {
        Expr::And(a, b) => allowed(a) & allowed(b),
        Expr::Or(a, b) => allowed(a) | allowed(b),
        Expr::EnumIn { field, mask, neg } => {
            let (mask, null) = if *neg { (!*mask, true) } else { (*mask, false) };
            in_group(*field, mask, null).unwrap_or(ALL)
        }
        Expr::Field(Field::Financial) => types(EventType::is_financial),
        Expr::Not(a) if matches!(**a, Expr::Field(Field::Financial)) => {
            types(|t| !t.is_financial())
        }
        Expr::Field(Field::PinAttempt) => pin_attempt(),
        Expr::Field(Field::WrongPin) => {
            pin_attempt() & rc_only(1 << rc_bucket(Some(WRONG_PIN_CODE)))
        }
        Expr::Field(Field::PinVerified) => {
            let buckets = PIN_VERIFIED_CODES
                .iter()
                .fold(0, |m, c| m | 1 << rc_bucket(Some(c)));
            pin_attempt() & rc_only(buckets)
        }
        Expr::Field(Field::Approved) => rc_only(1 << 1),
        Expr::Not(a) if matches!(**a, Expr::Field(Field::Approved)) => rc_only(!(1 << 1) & 0xff),
        Expr::StrEq {
            field: Field::ResponseCode,
            text,
            neg: false,
        } => rc_only(1 << rc_bucket(Some(text))),
        Expr::StrIn(Field::ResponseCode, texts) => {
            rc_only(texts.iter().fold(0, |m, t| m | 1 << rc_bucket(Some(t))))
        }
        Expr::Has(a) if matches!(**a, Expr::Field(Field::QrRef)) => ALL & !(1u64 << QR_AT),
        Expr::Cmp(op, a, b) if *op != CmpOp::Ne && (model_score(a) || model_score(b)) => {
            ALL & !(1u64 << MODEL_AT)
        }
        _ => ALL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EntryMode;

    #[test]
    fn groups_are_disjoint_and_cover_all() {
        let groups = [
            group(TYPE_AT, 9),
            group(PIN_AT, 5),
            group(ENTRY_AT, 10),
            group(RC_AT, 8),
            group(MODEL_AT, 2),
            group(QR_AT, 2),
        ];
        let mut seen = 0u64;
        for g in groups {
            assert_eq!(seen & g, 0);
            seen |= g;
        }
        assert_eq!(seen, ALL);
        assert_eq!(EventType::ALL.len(), 9);
        assert_eq!(Pin::ALL.len(), 4);
        assert_eq!(EntryMode::ALL.len(), 9);
    }

    /// Soundness: whenever the facts rule a rule out, each of its conditions is false.
    #[test]
    fn a_rule_ruled_out_has_no_true_condition() {
        use crate::rules::expr::Ctx;
        let pack = crate::rules::RulePack::load_dir(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"),
        )
        .unwrap();
        let cfg = crate::sim::SimConfig {
            cards: 300,
            days: 2,
            terminals: 60,
            attack_rate: 3.0,
            ..Default::default()
        };
        let dec = crate::decode::Decoder::default();
        let mut events = Vec::new();
        crate::sim::generate(&cfg, &mut |e| {
            events.push(dec.decode_json(&serde_json::to_vec(&e).unwrap()).unwrap());
        });
        let codes = [
            None,
            Some("00"),
            Some("55"),
            Some("75"),
            Some("38"),
            Some("51"),
            Some("05"),
        ];
        let f = Features::default();
        let (mut skipped, mut n) = (0, 0);
        for (i, mut ev) in events.into_iter().enumerate() {
            // Vary the grouped fields beyond what the simulator produces.
            if i % 3 == 0 {
                ev.response_code = codes[i / 3 % codes.len()].map(Into::into);
                ev.pin = [None, Some(Pin::ALL[i % 4])][i / 7 % 2];
                ev.entry_mode = [None, Some(EntryMode::ALL[i % 9])][i / 5 % 2];
                ev.kind = EventType::ALL[i / 11 % 9];
                ev.qr_ref = [None, Some("Q1".into())][i / 13 % 2].clone();
            }
            let facts = of_event(&ev, &f);
            let misses = std::cell::Cell::new(0);
            let ctx = Ctx {
                ev: &ev,
                f: &f,
                aggs: &[],
                misses: &misses,
            };
            for rule in &pack.rules {
                n += 1;
                if facts & !rule.facts == 0 {
                    continue;
                }
                skipped += 1;
                let conds: Vec<&Expr> = match &rule.logic {
                    Logic::Match { when } | Logic::Window { when, .. } => vec![when],
                    Logic::Consecutive { when, reset, .. } => {
                        std::iter::once(when).chain(reset).collect()
                    }
                    Logic::Sequence { first, then, .. } => vec![first, then],
                };
                for c in conds {
                    assert!(!c.test(&ctx), "{} ruled out but true on {ev:?}", rule.id);
                }
            }
        }
        assert!(
            skipped * 3 > n,
            "the facts rule out a good share ({skipped} of {n})"
        );
    }
}
