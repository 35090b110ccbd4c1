//! The batch half of the feature definition (`features.rs` has the streaming half): the
//! features of every event of a whole history, for training. Windowed counts are polars
//! expressions (`rolling_sum_by` over half-open event-time windows, cumulative sums per
//! merchant and day); the card profile and the PIN episodes are passes over each entity's
//! sorted history (slices and sorts over the whole history, where the engine keeps rings and
//! queues per entity as events arrive). `tests/models.rs` checks both give the same values
//! on every event of a replay.

use super::features::{
    amount_devs, hour_of_day, is_card_purchase, is_cp_approved, is_forced_nopin, mcc_group,
    normals, quantise, stateless, CardFeatures, AMOUNT_DEV, AMOUNT_Z, CARD_CAP, CARD_RETENTION,
    CARD_TX_1H, CARD_TX_24H, DAY, HISTORY, HOUR, NAMES, NF,
};
use super::merchant_nopin::MerchantCounts;
use super::pin::{DayPin, PinCounts, PinWindows};
use crate::event::Event;
use crate::time::{EventTime, Span};
use polars::prelude::*;
use polars_time::prelude::{ClosedWindow, RollingOptionsDynamicWindow};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// Decoded events as a frame: the raw columns the batch features need, with the stateless
/// features and event flags computed by the same functions the engine calls.
pub fn frame(events: &[Event], nopin_limit: i64) -> PolarsResult<DataFrame> {
    let n = events.len();
    let mut stat: Vec<Vec<f64>> = (0..9).map(|_| Vec::with_capacity(n)).collect();
    for ev in events {
        for (c, v) in stat.iter_mut().zip(stateless(ev)) {
            c.push(v);
        }
    }
    let s = |f: &dyn Fn(&Event) -> Option<String>| events.iter().map(f).collect::<Vec<_>>();
    let mut cols = vec![
        Column::new("row".into(), (0..n as u32).collect::<Vec<_>>()),
        Column::new(
            "ts".into(),
            events.iter().map(|e| e.ts.as_ms()).collect::<Vec<_>>(),
        ),
        Column::new(
            "day".into(),
            events.iter().map(|e| e.ts.day()).collect::<Vec<_>>(),
        ),
        Column::new(
            "hour".into(),
            events
                .iter()
                .map(|e| hour_of_day(e.ts) as i64)
                .collect::<Vec<_>>(),
        ),
        Column::new("id".into(), s(&|e| Some(e.id.to_string()))),
        Column::new(
            "card".into(),
            s(&|e| e.card.as_ref().map(|c| c.to_string())),
        ),
        Column::new("terminal".into(), s(&|e| Some(e.terminal.to_string()))),
        Column::new(
            "merchant".into(),
            s(&|e| e.merchant.as_ref().map(|c| c.to_string())),
        ),
        Column::new(
            "mcc".into(),
            events
                .iter()
                .map(|e| e.mcc.map(|m| m as i32))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "amount".into(),
            events.iter().map(|e| e.amount).collect::<Vec<_>>(),
        ),
        Column::new(
            "label".into(),
            s(&|e| e.label.as_ref().map(|c| c.to_string())),
        ),
        Column::new("one".into(), vec![1i64; n]),
    ];
    let flag = |name: &str, f: &dyn Fn(&Event) -> bool| {
        Column::new(name.into(), events.iter().map(f).collect::<Vec<bool>>())
    };
    cols.push(flag("purchase", &is_card_purchase));
    cols.push(flag("approved", &|e| e.approved()));
    cols.push(flag("pin_attempt", &Event::pin_attempt));
    cols.push(flag("wrong_pin", &Event::wrong_pin));
    cols.push(flag("cp_approved", &is_cp_approved));
    cols.push(flag("forced_nopin", &|e| is_forced_nopin(e, nopin_limit)));
    for (name, c) in NAMES.iter().zip(stat) {
        cols.push(Column::new((*name).into(), c));
    }
    DataFrame::new(n, cols)
}

fn window(w: Span) -> RollingOptionsDynamicWindow {
    RollingOptionsDynamicWindow {
        window_size: Duration::parse(&format!("{}i", w.as_ms())),
        min_periods: 0,
        closed_window: ClosedWindow::Left,
        fn_params: None,
    }
}

/// Prior events of the partition within `[ts - w, ts)` (the rolling count of `one`).
fn prior_count(w: Span, key: &str) -> PolarsResult<Expr> {
    col("one")
        .rolling_sum_by(col("ts"), window(w))
        .fill_null(lit(0i64))
        .over([col(key)])
}

/// min(count, cap) as a float.
fn capped(count: Expr, cap: Expr) -> Expr {
    when(count.clone().gt(cap.clone()))
        .then(cap)
        .otherwise(count)
        .cast(DataType::Float64)
}

/// `card_tx_1h` and `card_tx_24h` of card purchases (`row` and the two counts), for the rows
/// where `purchase` holds.
pub fn batch_card_tx(lf: LazyFrame) -> PolarsResult<LazyFrame> {
    let cap = lit(CARD_CAP as i64);
    Ok(lf
        .filter(col("purchase"))
        .sort(["ts", "id"], SortMultipleOptions::default())
        .with_columns([
            capped(prior_count(HOUR, "card")?, cap.clone()).alias("card_tx_1h"),
            capped(prior_count(DAY, "card")?, cap).alias("card_tx_24h"),
        ]))
}

/// Every card purchase's features: the stateless ones, the velocity counts (`tx`: row →
/// (1h, 24h) from [`batch_card_tx`]), and the amount against the card's normal: its last
/// [`HISTORY`] approved purchases since it was last idle past retention (see
/// `features::usual`). `events` are in (ts, id) order.
pub fn card_features(
    events: &[Event],
    tx: &FxHashMap<usize, (f64, f64)>,
) -> Vec<Option<CardFeatures>> {
    let mut out = vec![None; events.len()];
    let mut by_card: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        if is_card_purchase(e) {
            by_card
                .entry(e.card.as_deref().unwrap_or_default())
                .or_default()
                .push(i);
        }
    }
    for rows in by_card.values() {
        let mut start = 0;
        for (k, &i) in rows.iter().enumerate() {
            let e = &events[i];
            if k > 0 && e.ts - events[rows[k - 1]].ts > CARD_RETENTION {
                start = k;
            }
            let (q, g): (Vec<u16>, Vec<u8>) = rows[start..k]
                .iter()
                .filter(|&&j| events[j].approved())
                .map(|&j| {
                    let ej = &events[j];
                    (quantise(stateless(ej)[0]), mcc_group(ej.mcc))
                })
                .unzip();
            let from = q.len().saturating_sub(HISTORY);
            let mut x = [0.0; NF];
            x[..9].copy_from_slice(&stateless(e));
            let (h1, h24) = tx.get(&i).copied().unwrap_or((0.0, 0.0));
            x[CARD_TX_1H] = h1;
            x[CARD_TX_24H] = h24;
            let nm = normals(&q[from..], &g[from..], mcc_group(e.mcc));
            let u = nm.map(|n| n.here);
            (x[AMOUNT_DEV], x[AMOUNT_Z]) = amount_devs(x[0], u);
            out[i] = Some(CardFeatures {
                x,
                usual_log: u.map(|u| u.0),
                normals: nm,
            });
        }
    }
    out
}

/// For wrong-PIN rows: `pin_new` (the card's first wrong PIN at this terminal within the
/// window: it starts an episode) and, for every PIN attempt, `term_attempts` (attempts at the
/// terminal within `[ts - window, ts)`).
pub fn batch_pin(lf: LazyFrame, w: Span) -> PolarsResult<(LazyFrame, LazyFrame)> {
    let prev = col("ts")
        .shift(lit(1))
        .over([col("terminal"), col("card")])?;
    let wrong = lf
        .clone()
        .filter(col("wrong_pin"))
        .sort(["ts", "id"], SortMultipleOptions::default())
        .with_columns([prev
            .clone()
            .is_null()
            .or((col("ts") - prev).gt(lit(w.as_ms())))
            .alias("pin_new")]);
    let attempts = lf
        .filter(col("pin_attempt"))
        .sort(["ts", "id"], SortMultipleOptions::default())
        .with_columns([prior_count(w, "terminal")?.alias("term_attempts")]);
    Ok((wrong, attempts))
}

/// A terminal's totals over a history (the terminal model's fit): (MCC, PIN attempts,
/// episodes, unresolved episodes).
pub type TerminalTotals = (u16, f64, f64, f64);

/// The PIN counts of every wrong PIN (see `pin.rs`), given each wrong PIN's `pin_new` and
/// each PIN attempt's window count from [`batch_pin`]; and each terminal's totals over the
/// events before `split` (for the fit). `events` are in (ts, id) order.
pub fn pin_counts(
    events: &[Event],
    new: &FxHashMap<usize, bool>,
    attempts_in_window: &FxHashMap<usize, u32>,
    w: PinWindows,
    split: EventTime,
) -> (Vec<Option<PinCounts>>, Vec<TerminalTotals>) {
    let mut out = vec![None; events.len()];
    let mut totals = Vec::new();
    let mut by_term: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        if e.pin_attempt() {
            by_term.entry(e.terminal.as_str()).or_default().push(i);
        }
    }
    for rows in by_term.values() {
        let is_new = |i: usize| events[i].wrong_pin() && new.get(&i).copied().unwrap_or(false);
        let resolved_at = resolutions(events, rows, &is_new, w);
        let (days, tot) = daily(events, rows, &is_new, &resolved_at, w, split);
        let mcc = events[rows[0]].mcc.unwrap_or(0);
        totals.push((mcc, tot.0, tot.1, tot.2));
        let mut lo = 0;
        for (p, &i) in rows.iter().enumerate() {
            let e = &events[i];
            if !e.wrong_pin() {
                continue;
            }
            while events[rows[lo]].ts < e.ts - w.window {
                lo += 1;
            }
            let (mut episodes, mut unresolved) = (0u32, 0u32);
            for (q, &j) in rows.iter().enumerate().take(p).skip(lo) {
                let ej = &events[j];
                if is_new(j) && ej.ts < e.ts {
                    episodes += 1;
                    unresolved += resolved_at.get(&q).is_none_or(|r| *r > p) as u32;
                }
            }
            let own = is_new(i) as u32;
            let today = e.ts.day();
            let (base, active) =
                DayPin::baseline(days.range(today - w.base_days..today).map(|(_, d)| d));
            out[i] = Some(PinCounts {
                attempts: attempts_in_window.get(&i).copied().unwrap_or(0) + 1,
                episodes: episodes + own,
                unresolved,
                base,
                base_active_days: active,
            });
        }
    }
    (out, totals)
}

/// Each episode's resolution at one terminal (`rows`: its PIN attempts): the position in
/// `rows` of the card's first verified PIN after it within `resolve`, by the episode's
/// position.
fn resolutions(
    events: &[Event],
    rows: &[usize],
    is_new: &dyn Fn(usize) -> bool,
    w: PinWindows,
) -> FxHashMap<usize, usize> {
    let mut resolved_at = FxHashMap::default();
    for (p, &i) in rows.iter().enumerate().filter(|(_, i)| is_new(**i)) {
        let card = events[i].card.as_deref();
        if let Some(q) = rows[p + 1..].iter().position(|&j| {
            events[j].ts > events[i].ts + w.resolve
                || (events[j].card.as_deref() == card && events[j].pin_verified())
        }) {
            let j = rows[p + 1 + q];
            if events[j].ts <= events[i].ts + w.resolve {
                resolved_at.insert(p, p + 1 + q);
            }
        }
    }
    resolved_at
}

/// One terminal's daily counts (an unresolved episode counts on the day its `resolve` ran
/// out), and its totals before `split`: (attempts, episodes, unresolved episodes).
fn daily(
    events: &[Event],
    rows: &[usize],
    is_new: &dyn Fn(usize) -> bool,
    resolved_at: &FxHashMap<usize, usize>,
    w: PinWindows,
    split: EventTime,
) -> (BTreeMap<i64, DayPin>, (f64, f64, f64)) {
    let mut days: BTreeMap<i64, DayPin> = BTreeMap::new();
    let mut tot = (0.0, 0.0, 0.0);
    for (p, &i) in rows.iter().enumerate() {
        let e = &events[i];
        let d = days.entry(e.ts.day()).or_default();
        d.attempts += 1;
        let before = e.ts < split;
        tot.0 += before as u8 as f64;
        if is_new(i) {
            d.episodes += 1;
            tot.1 += before as u8 as f64;
            if !resolved_at.contains_key(&p) {
                let end = e.ts + w.resolve;
                days.entry(end.day()).or_default().unresolved += 1;
                tot.2 += (end < split) as u8 as f64;
            }
        }
    }
    (days, tot)
}

/// The merchant's approved card-present auths (`merchant_n`) and forced no-PIN approvals
/// (`merchant_k`) so far today, for `cp_approved` rows.
pub fn batch_merchant_day(lf: LazyFrame) -> PolarsResult<LazyFrame> {
    let part = [col("merchant"), col("day")];
    Ok(lf
        .filter(col("cp_approved"))
        .sort(["ts", "id"], SortMultipleOptions::default())
        .with_columns([
            col("one")
                .cum_sum(false)
                .over(part.clone())?
                .alias("merchant_n"),
            col("forced_nopin")
                .cast(DataType::Int64)
                .cum_sum(false)
                .over(part)?
                .alias("merchant_k"),
        ]))
}

/// Each approved card-present auth's merchant counts (see `MerchantCounts`), given its
/// merchant's day so far (`today`, from [`batch_merchant_day`]). `events` are in (ts, id)
/// order.
pub fn merchant_counts(
    events: &[Event],
    today: &[Option<(u32, u32)>],
    nopin_limit: i64,
    base_days: u32,
) -> Vec<Option<MerchantCounts>> {
    let mut out = vec![None; events.len()];
    let mut by: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        if is_cp_approved(e) {
            by.entry(e.merchant.as_deref().unwrap_or_default())
                .or_default()
                .push(i);
        }
    }
    for rows in by.values() {
        let mut days: BTreeMap<i64, (u32, u32)> = BTreeMap::new();
        for &i in rows {
            let d = days.entry(events[i].ts.day()).or_default();
            d.0 += 1;
            d.1 += is_forced_nopin(&events[i], nopin_limit) as u32;
        }
        for &i in rows {
            let d = events[i].ts.day();
            let past = |from: i64, to: i64| {
                days.range(d - to..=d - from)
                    .fold((0, 0), |a, (_, c)| (a.0 + c.0, a.1 + c.1))
            };
            out[i] = today[i].map(|t| MerchantCounts::of(t, past, base_days));
        }
    }
    out
}
