//! Per-rule keyed state and the evaluation of one event against one rule.
//!
//! Semantics (documented in README.md):
//! - window: events matching `when` enter the key's window; aggregates cover the window ending
//!   at the event; when `fire` holds the rule fires with every event in the window, and fires
//!   again on each further matching event while it holds (each new card tried at a probing
//!   terminal, each further split tap, is evidence the risk team wants);
//! - consecutive: an event matching `when` extends the key's run (events older than `within`
//!   fall off); any other event matching `reset` clears it; at `threshold` it fires and clears;
//! - sequence: an event matching `then` fires if the key had a `first` within `within` before
//!   it (those firsts are consumed); an event matching `first` is remembered.

use super::compile::{Agg, Logic, Rule};
use super::expr::Ctx;
use crate::event::Event;
use crate::feature::Features;
use crate::feature::{Field, Val};
use crate::keyed::{key_hash, CowMap};
use crate::time::{EventTime, Span};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::collections::VecDeque;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Most aggregates a window rule may have (keeps entries fixed-size).
pub const MAX_AGGS: usize = 4;
/// Most pending `first` events a sequence keeps per key.
const MAX_FIRSTS: usize = 16;

/// One event remembered by a rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mark {
    pub ts: EventTime,
    pub id: CompactString,
}

/// One event in a window, with its contribution to each aggregate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WinEntry {
    pub ts: EventTime,
    pub id: CompactString,
    pub vals: [i64; MAX_AGGS],
}

/// A rule's keyed state. Snapshot-able; maps serialise in key order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuleState {
    windows: CowMap<VecDeque<WinEntry>>,
    marks: CowMap<VecDeque<Mark>>,
}

/// A rule firing: the evidence and the numbers behind it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub event_ids: Vec<CompactString>,
    /// Each event's time where the rule knew it (parallel to `event_ids`).
    pub event_ts: Vec<Option<EventTime>>,
    pub features: serde_json::Map<String, serde_json::Value>,
}

impl RuleState {
    pub fn len(&self) -> usize {
        self.windows.len() + self.marks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop keys with nothing newer than `horizon` before `now`.
    pub fn evict(&mut self, now: EventTime, horizon: Span) {
        let cut = now - horizon;
        self.windows
            .retain(|_, q| q.back().is_some_and(|e| e.ts > cut));
        self.marks
            .retain(|_, q| q.back().is_some_and(|e| e.ts > cut));
    }
}

/// How far back a rule's state matters.
pub fn horizon(rule: &Rule) -> Span {
    match &rule.logic {
        Logic::Match { .. } => Span::ZERO,
        Logic::Window { window, .. } => *window,
        Logic::Consecutive { within, .. } | Logic::Sequence { within, .. } => *within,
    }
}

fn key_of(rule: &Rule, ev: &Event, f: &Features) -> Option<u64> {
    let mut h = 0u64;
    for (i, field) in rule.key.iter().enumerate() {
        match field.read(ev, f) {
            Val::Str(s) if i == 0 => h = key_hash(s),
            Val::Str(s) => h = xxh3_64_with_seed(s.as_bytes(), h),
            _ => return None,
        }
    }
    Some(h)
}

/// Evaluate `ev` against `rule`, updating `st`. Returns a hit when the rule fires. A table
/// lookup that falls back to its default sets the table's bit in `misses`.
pub fn eval(
    rule: &Rule,
    st: &mut RuleState,
    ev: &Event,
    f: &Features,
    misses: &Cell<u64>,
) -> Option<Hit> {
    let ctx = Ctx {
        ev,
        f,
        aggs: &[],
        misses,
    };
    match &rule.logic {
        Logic::Match { when } => {
            if !when.test(&ctx) {
                return None;
            }
            // The joined pre-auth (its time known), the original QR payment, the events a
            // model's score rests on, then the trigger.
            let preauth_ts = f.preauth.as_ref().map(|v| v.ts);
            let mut ids: Vec<(CompactString, Option<EventTime>)> = f
                .related()
                .map(|id| {
                    let ts = (f.preauth_id.as_ref() == Some(id)).then_some(preauth_ts);
                    (id.clone(), ts.flatten())
                })
                .collect();
            ids.push((ev.id.clone(), Some(ev.ts)));
            Some(hit(rule, ids, ev, f, &[]))
        }
        Logic::Window { when, .. } => {
            if !when.test(&ctx) {
                return None;
            }
            window(rule, st, &ctx)
        }
        Logic::Consecutive { .. } => consecutive(rule, st, &ctx),
        Logic::Sequence { .. } => sequence(rule, st, &ctx),
    }
}

/// Each aggregate's contribution of the event entering a window.
fn contributions(aggs: &[Agg], ctx: &Ctx<'_>) -> [i64; MAX_AGGS] {
    let (ev, f) = (ctx.ev, ctx.f);
    let mut vals = [0i64; MAX_AGGS];
    for (i, a) in aggs.iter().enumerate() {
        vals[i] = match a {
            Agg::Count => 1,
            Agg::CountIf(c) => c.test(ctx) as i64,
            Agg::Sum(field) => match field.read(ev, f) {
                Val::Int(v) => v,
                Val::Float(v) => v as i64,
                _ => 0,
            },
            Agg::Distinct(field) => match field.read(ev, f) {
                Val::Str(s) => key_hash(s) as i64,
                Val::Int(v) => v,
                _ => i64::MIN,
            },
        };
    }
    vals
}

/// The aggregates over the entries in a window.
fn aggregate<'e>(
    aggs: &[Agg],
    entries: impl Iterator<Item = &'e WinEntry> + Clone,
) -> [Val<'static>; MAX_AGGS] {
    let mut out: [Val; MAX_AGGS] = [Val::Null; MAX_AGGS];
    for (i, a) in aggs.iter().enumerate() {
        let mut vals = entries.clone().map(|e| e.vals[i]);
        out[i] = match a {
            Agg::Count => Val::Int(vals.count() as i64),
            Agg::CountIf(_) | Agg::Sum(_) => sum(vals),
            Agg::Distinct(_) => {
                let mut d: Vec<i64> = vals.by_ref().filter(|v| *v != i64::MIN).collect();
                d.sort_unstable();
                d.dedup();
                Val::Int(d.len() as i64)
            }
        };
    }
    out
}

/// A window rule, for an event that matched `when`.
fn window(rule: &Rule, st: &mut RuleState, ctx: &Ctx<'_>) -> Option<Hit> {
    let Logic::Window {
        window,
        aggs,
        agg_names,
        fire,
        ..
    } = &rule.logic
    else {
        unreachable!("a window rule")
    };
    let (ev, f) = (ctx.ev, ctx.f);
    let key = key_of(rule, ev, f)?;
    let q = st.windows.entry_or_default(key);
    while q.front().is_some_and(|e| e.ts <= ev.ts - *window) {
        q.pop_front();
    }
    let entry = WinEntry {
        ts: ev.ts,
        id: ev.id.clone(),
        vals: contributions(aggs, ctx),
    };
    let pos = q.partition_point(|e| e.ts <= ev.ts);
    q.insert(pos, entry);
    let lo = ev.ts - *window;
    let in_win = || q.iter().filter(|e| e.ts > lo && e.ts <= ev.ts);
    let out = aggregate(aggs, in_win());
    let aggs_v = &out[..aggs.len()];
    let fctx = Ctx {
        ev,
        f,
        aggs: aggs_v,
        misses: ctx.misses,
    };
    if !fire.test(&fctx) {
        return None;
    }
    let ids: Vec<(CompactString, Option<EventTime>)> =
        in_win().map(|e| (e.id.clone(), Some(e.ts))).collect();
    let named: Vec<(&str, Val)> = agg_names
        .iter()
        .map(String::as_str)
        .zip(aggs_v.iter().copied())
        .collect();
    let mut h = hit(rule, ids, ev, f, &named);
    h.features.insert("window".into(), human(*window).into());
    Some(h)
}

/// A consecutive rule: `when` extends the key's run, `reset` clears it.
fn consecutive(rule: &Rule, st: &mut RuleState, ctx: &Ctx<'_>) -> Option<Hit> {
    let Logic::Consecutive {
        when,
        reset,
        threshold,
        within,
    } = &rule.logic
    else {
        unreachable!("a consecutive rule")
    };
    let (ev, f) = (ctx.ev, ctx.f);
    if !when.test(ctx) {
        // A reset clears the key's run; the key is only worked out when it applies.
        if let Some(r) = reset {
            if !st.marks.is_empty() && r.test(ctx) {
                if let Some(key) = key_of(rule, ev, f) {
                    st.marks.remove(&key);
                }
            }
        }
        return None;
    }
    let key = key_of(rule, ev, f)?;
    let q = st.marks.entry_or_default(key);
    let pos = q.partition_point(|m| m.ts <= ev.ts);
    q.insert(
        pos,
        Mark {
            ts: ev.ts,
            id: ev.id.clone(),
        },
    );
    while q.front().is_some_and(|m| m.ts <= ev.ts - *within) {
        q.pop_front();
    }
    if q.len() < *threshold as usize {
        return None;
    }
    let ids: Vec<(CompactString, Option<EventTime>)> =
        q.iter().map(|m| (m.id.clone(), Some(m.ts))).collect();
    st.marks.remove(&key);
    let n = ids.len() as i64;
    let mut h = hit(rule, ids, ev, f, &[("count", Val::Int(n))]);
    h.features.insert("threshold".into(), (*threshold).into());
    h.features.insert("within".into(), human(*within).into());
    Some(h)
}

/// A sequence rule: a `then` fires on the key's remembered `first`s; a `first` is remembered.
fn sequence(rule: &Rule, st: &mut RuleState, ctx: &Ctx<'_>) -> Option<Hit> {
    let Logic::Sequence {
        first,
        then,
        within,
    } = &rule.logic
    else {
        unreachable!("a sequence rule")
    };
    let (ev, f) = (ctx.ev, ctx.f);
    let is_then = then.test(ctx);
    let is_first = first.test(ctx);
    // A `then` with no `first` remembered under any key can neither fire nor consume.
    if !is_first && (!is_then || st.marks.is_empty()) {
        return None;
    }
    let key = key_of(rule, ev, f)?;
    let mut fired = None;
    if is_then {
        if let Some(q) = st.marks.get_mut(&key) {
            q.retain(|m| m.ts > ev.ts - *within && m.ts <= ev.ts && m.id != ev.id);
            if !q.is_empty() {
                let mut ids: Vec<(CompactString, Option<EventTime>)> =
                    q.drain(..).map(|m| (m.id, Some(m.ts))).collect();
                ids.push((ev.id.clone(), Some(ev.ts)));
                let n = ids.len() as i64;
                let mut h = hit(rule, ids, ev, f, &[("count", Val::Int(n))]);
                h.features.insert("within".into(), human(*within).into());
                fired = Some(h);
            }
            if q.is_empty() {
                st.marks.remove(&key);
            }
        }
    }
    if is_first {
        let q = st.marks.entry_or_default(key);
        let pos = q.partition_point(|m| m.ts <= ev.ts);
        q.insert(
            pos,
            Mark {
                ts: ev.ts,
                id: ev.id.clone(),
            },
        );
        if q.len() > MAX_FIRSTS {
            q.pop_front();
        }
    }
    fired
}

/// A window sum without wrapping: added up in i128 (no overflow below 2^64 entries), an i64
/// when it fits, else the nearest f64, so `total > limit` stays true for a huge total (three
/// taps of 2^62 used to wrap negative and silence the split-tap rule). See `expr::arith`.
fn sum<'a>(vals: impl Iterator<Item = i64>) -> Val<'a> {
    let s: i128 = vals.map(i128::from).sum();
    i64::try_from(s).map_or(Val::Float(s as f64), Val::Int)
}

/// Format a duration the way rule files write it (`24h`, `10m`, `90s`).
pub fn human(span: Span) -> String {
    const S: i64 = Span::SECOND.as_ms();
    const M: i64 = Span::MINUTE.as_ms();
    const H: i64 = Span::HOUR.as_ms();
    const D: i64 = Span::DAY.as_ms();
    match span.as_ms() {
        x if x >= 2 * D && x % D == 0 => format!("{}d", x / D),
        x if x >= H && x % H == 0 => format!("{}h", x / H),
        x if x >= M && x % M == 0 => format!("{}m", x / M),
        x if x % S == 0 => format!("{}s", x / S),
        x => format!("{x}ms"),
    }
}

fn hit(
    rule: &Rule,
    ids: Vec<(CompactString, Option<EventTime>)>,
    ev: &Event,
    f: &Features,
    named: &[(&str, Val)],
) -> Hit {
    let mut features = serde_json::Map::new();
    for (k, v) in named {
        features.insert((*k).to_string(), v.to_json());
    }
    for (k, v) in &rule.params {
        features.insert(k.clone(), v.val().to_json());
    }
    for t in &rule.tables {
        features.insert(t.name.clone(), t.lookup(ev, f).to_json());
    }
    for field in &rule.reads {
        if !matches!(field, Field::Id | Field::Ts) {
            features.insert(field.name().to_string(), field.read(ev, f).to_json());
        }
    }
    let (event_ids, event_ts) = ids.into_iter().unzip();
    Hit {
        event_ids,
        event_ts,
        features,
    }
}
