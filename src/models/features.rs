//! One feature definition, two evaluators: [`FeatureState`] computes the features of each event
//! as the engine streams it, and [`batch`] computes the same columns for a whole history with
//! polars (lazy) for training. Per-event features that need no history are one Rust function
//! ([`stateless`]) called by both; windowed features are defined here once (window, key,
//! filter, aggregate) and written twice, and `tests/models.rs` checks on a replay that both
//! give the same values for every event (no train/serve skew).
//!
//! Windows are half-open on event time, `[ts - w, ts)`, so the order of events that share a
//! timestamp never changes a count; the running average and daily counters follow the engine's
//! (ts, id) order, which the batch side reproduces by sorting on (ts, id).

use crate::event::{EntryMode, Event, EventType, Millis, Pin};
use crate::keyed::{key_hash, CowMap};
use polars::prelude::*;
use polars_time::prelude::{ClosedWindow, RollingOptionsDynamicWindow};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Number of per-event features of a card purchase (the density and supervised inputs).
pub const NF: usize = 13;

/// Their names, in vector order (model files store this list and are refused if it differs).
pub const NAMES: [&str; NF] = [
    "log_amount",
    "hour_sin",
    "hour_cos",
    "em_chip",
    "em_contactless",
    "em_keyed",
    "em_magstripe",
    "em_qr",
    "mcc_high_value",
    "card_tx_1h",
    "card_tx_24h",
    "amount_dev",
    "amount_z",
];

/// Index of each windowed feature in the vector.
pub const CARD_TX_1H: usize = 9;
pub const CARD_TX_24H: usize = 10;
pub const AMOUNT_DEV: usize = 11;
pub const AMOUNT_Z: usize = 12;
/// Floor of the card's spread of log amounts in `amount_z` (a card with a few equal amounts
/// is not infinitely surprised by the next one).
pub const MIN_SPREAD: f64 = 0.5;
/// Velocity counts saturate here (and the card keeps at most this many recent timestamps).
pub const CARD_CAP: usize = 100;
/// Weight of the newest purchase in the card's running average of log amounts.
pub const EWMA_ALPHA: f64 = 0.1;
pub const HOUR: Millis = 3_600_000;
pub const DAY: Millis = 24 * HOUR;

/// MCCs where a stolen card is cashed out (jewellery, electronics, quasi-cash, gambling...).
const HIGH_VALUE_MCC: [u16; 8] = [4829, 5045, 5094, 5732, 5944, 6051, 7995, 5999];

/// Does the card profile follow this event? Purchase attempts (auth, pre-auth) with a card.
pub fn is_card_purchase(ev: &Event) -> bool {
    matches!(ev.kind, EventType::Auth | EventType::Preauth) && ev.card.is_some()
}

/// A wrong PIN (DE39 `55`): the terminal PIN baseline counts these.
pub fn is_wrong_pin(ev: &Event) -> bool {
    ev.response_code.as_deref() == Some("55")
}

/// An approved card-present auth at a merchant: the denominator of the merchant no-PIN share.
pub fn is_cp_approved(ev: &Event) -> bool {
    ev.kind == EventType::Auth
        && ev.approved()
        && ev.merchant.is_some()
        && matches!(
            ev.entry_mode,
            Some(
                EntryMode::Chip
                    | EntryMode::Contactless
                    | EntryMode::Magstripe
                    | EntryMode::Fallback
            )
        )
}

/// ... and approved without a PIN where one was due: bypassed, timed out, or absent above
/// the no-PIN limit (`limit`, minor units).
pub fn is_forced_nopin(ev: &Event, limit: i64) -> bool {
    is_cp_approved(ev)
        && match ev.pin {
            Some(Pin::Bypassed | Pin::Timeout) => true,
            Some(Pin::Absent) => ev.amount.unwrap_or(0) > limit,
            _ => false,
        }
}

/// ln(1 + amount in major units).
pub fn log_amount(ev: &Event) -> f64 {
    (ev.amount.unwrap_or(0).max(0) as f64 / 100.0).ln_1p()
}

/// Hour of day (UTC) of an event time.
pub fn hour_of_day(ts: Millis) -> usize {
    ts.rem_euclid(DAY).div_euclid(HOUR) as usize
}

/// The features that need no history (indices 0..9), shared by both evaluators.
pub fn stateless(ev: &Event) -> [f64; 9] {
    let h = hour_of_day(ev.ts) as f64 * std::f64::consts::TAU / 24.0;
    let m = ev.entry_mode;
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    [
        log_amount(ev),
        h.sin(),
        h.cos(),
        b(m == Some(EntryMode::Chip)),
        b(m == Some(EntryMode::Contactless)),
        b(matches!(
            m,
            Some(EntryMode::Manual | EntryMode::Ecom | EntryMode::CardOnFile)
        )),
        b(matches!(
            m,
            Some(EntryMode::Magstripe | EntryMode::Fallback)
        )),
        b(m == Some(EntryMode::Qr)),
        b(ev.mcc.is_some_and(|c| HIGH_VALUE_MCC.contains(&c))),
    ]
}

/// `amount_dev` and `amount_z` of a purchase with log amount `la`, given the card's running
/// averages of log amounts and their squares before it (both 0 without history).
pub fn amount_devs(la: f64, usual: Option<(f64, f64)>) -> (f64, f64) {
    match usual {
        None => (0.0, 0.0),
        Some((m1, m2)) => {
            let spread = (m2 - m1 * m1).max(MIN_SPREAD * MIN_SPREAD).sqrt();
            (la - m1, (la - m1) / spread)
        }
    }
}

/// A card's history as the features need it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CardProfile {
    /// Timestamps of its latest purchases within a day (at most `CARD_CAP`).
    recent: VecDeque<Millis>,
    /// Running averages of log amounts and of their squares (polars `ewm_mean`, adjust =
    /// false).
    ewma: Option<(f64, f64)>,
    last: Millis,
}

/// A merchant's counters for the current UTC day.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct MerchantDay {
    day: i64,
    pub n: u32,
    pub k: u32,
}

/// Streaming feature state: per card, per terminal (wrong PINs), per merchant (today).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FeatureState {
    cards: CowMap<CardProfile>,
    /// Per terminal: its recent wrong PINs (ts, card hash, counted).
    wrong_pins: CowMap<VecDeque<(Millis, u64, bool)>>,
    merchants: CowMap<MerchantDay>,
    /// Event time at which cards, wrong PINs and merchants are next swept.
    #[serde(default)]
    next_sweep: [Millis; 3],
}

/// What the streaming evaluator says about one card purchase.
#[derive(Debug, Clone, Copy)]
pub struct CardFeatures {
    pub x: [f64; NF],
    /// The card's usual log amount before this event, if it has history (`usual_amount`
    /// turns it into minor units, only when an explanation needs it).
    pub usual_log: Option<f64>,
}

impl CardFeatures {
    /// The card's usual amount before this event (minor units), if it has history.
    pub fn usual_amount(&self) -> Option<f64> {
        self.usual_log.map(|m| m.exp_m1() * 100.0)
    }
}

impl FeatureState {
    /// Features of a card purchase, then fold it into the card's profile.
    pub fn card(&mut self, ev: &Event) -> CardFeatures {
        let mut x = [0.0; NF];
        x[..9].copy_from_slice(&stateless(ev));
        let card = ev.card.as_deref().unwrap_or_default();
        let p = self.cards.entry_or_default(key_hash(card));
        while p.recent.front().is_some_and(|t| *t < ev.ts - DAY) {
            p.recent.pop_front();
        }
        // One pass counts both windows (`recent` never holds more than CARD_CAP; a late event
        // can leave it out of order, so each bound is tested).
        let (mut hour, mut day) = (0u32, 0u32);
        for t in p.recent.iter().filter(|t| **t < ev.ts) {
            day += u32::from(*t >= ev.ts - DAY);
            hour += u32::from(*t >= ev.ts - HOUR);
        }
        x[CARD_TX_1H] = f64::from(hour);
        x[CARD_TX_24H] = f64::from(day);
        let la = x[0];
        (x[AMOUNT_DEV], x[AMOUNT_Z]) = amount_devs(la, p.ewma);
        let usual_log = p.ewma.map(|(m, _)| m);
        // The same arithmetic as polars' ewm_mean (adjust = false), so values match exactly.
        let step = |m: f64, v: f64| {
            let w = 1.0 - EWMA_ALPHA;
            m + (v - m) * (EWMA_ALPHA / (w + EWMA_ALPHA))
        };
        p.ewma = Some(match p.ewma {
            None => (la, la * la),
            Some((m1, m2)) => (step(m1, la), step(m2, la * la)),
        });
        if p.recent.len() == CARD_CAP {
            p.recent.pop_front();
        }
        p.recent.push_back(ev.ts);
        p.last = ev.ts;
        CardFeatures { x, usual_log }
    }

    /// Wrong PINs at this event's terminal within `[ts - window, ts)`, plus this one, counting
    /// each card once: a wrong PIN counts only if the same card had none at this terminal
    /// within the window before it (one customer mistyping twice is one event, not two).
    pub fn wrong_pin(&mut self, ev: &Event, window: Millis) -> u32 {
        let card = key_hash(ev.card.as_deref().unwrap_or_default());
        let q = self.wrong_pins.entry_or_default(key_hash(&ev.terminal));
        while q.front().is_some_and(|e| e.0 < ev.ts - window) {
            q.pop_front();
        }
        let new = !q.iter().any(|e| e.1 == card);
        let k = q.iter().filter(|e| e.0 < ev.ts && e.2).count() as u32 + new as u32;
        q.push_back((ev.ts, card, new));
        k
    }

    /// Fold an approved card-present auth into its merchant's day; the day's (n, k) so far.
    pub fn merchant(&mut self, ev: &Event, forced_nopin: bool) -> MerchantDay {
        let m = self
            .merchants
            .entry_or_default(key_hash(ev.merchant.as_deref().unwrap_or_default()));
        let day = ev.ts.div_euclid(DAY);
        if m.day != day {
            *m = MerchantDay { day, n: 0, k: 0 };
        }
        m.n += 1;
        m.k += forced_nopin as u32;
        *m
    }

    /// Drop what no feature can read any more at event time `now`.
    /// Each map is swept every eighth of its retention (`state::sweep_interval`), not on every
    /// call: sweeping a million card profiles every minute of event time would make replay
    /// quadratic.
    pub fn evict(&mut self, now: Millis, card_retention: Millis, pin_window: Millis) {
        use crate::keyed::sweep_interval;
        if now >= self.next_sweep[0] {
            self.cards.retain(|_, p| p.last >= now - card_retention);
            self.next_sweep[0] = now + sweep_interval(card_retention);
        }
        if now >= self.next_sweep[1] {
            self.wrong_pins
                .retain(|_, q| q.back().is_some_and(|e| e.0 >= now - pin_window));
            self.next_sweep[1] = now + sweep_interval(pin_window);
        }
        if now >= self.next_sweep[2] {
            let today = now.div_euclid(DAY);
            self.merchants.retain(|_, m| m.day >= today - 1);
            self.next_sweep[2] = now + sweep_interval(DAY);
        }
    }

    /// Entries held (cards, terminals, merchants).
    pub fn len(&self) -> usize {
        self.cards.len() + self.wrong_pins.len() + self.merchants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

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
        Column::new("ts".into(), events.iter().map(|e| e.ts).collect::<Vec<_>>()),
        Column::new(
            "day".into(),
            events
                .iter()
                .map(|e| e.ts.div_euclid(DAY))
                .collect::<Vec<_>>(),
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
    cols.push(flag("wrong_pin", &is_wrong_pin));
    cols.push(flag("cp_approved", &is_cp_approved));
    cols.push(flag("forced_nopin", &|e| is_forced_nopin(e, nopin_limit)));
    for (name, c) in NAMES.iter().zip(stat) {
        cols.push(Column::new((*name).into(), c));
    }
    DataFrame::new(n, cols)
}

fn window(ms: Millis) -> RollingOptionsDynamicWindow {
    RollingOptionsDynamicWindow {
        window_size: Duration::parse(&format!("{ms}i")),
        min_periods: 0,
        closed_window: ClosedWindow::Left,
        fn_params: None,
    }
}

/// Prior events of the partition within `[ts - w, ts)` (the rolling count of `one`).
fn prior_count(w: Millis, key: &str) -> PolarsResult<Expr> {
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

/// The windowed features of card purchases (`row`, `card_tx_1h`, `card_tx_24h`, and the
/// card's running averages before the event, `usual_m1` / `usual_m2`, from which
/// [`amount_devs`] derives the rest), for the rows where `purchase` holds.
pub fn batch_card(lf: LazyFrame) -> PolarsResult<LazyFrame> {
    let ewm = EWMOptions {
        alpha: EWMA_ALPHA,
        adjust: false,
        bias: false,
        min_periods: 1,
        ignore_nulls: true,
    };
    let cap = lit(CARD_CAP as i64);
    Ok(lf
        .filter(col("purchase"))
        .sort(["ts", "id"], SortMultipleOptions::default())
        .with_columns([
            capped(prior_count(HOUR, "card")?, cap.clone()).alias("card_tx_1h"),
            capped(prior_count(DAY, "card")?, cap).alias("card_tx_24h"),
            col("log_amount")
                .ewm_mean(ewm)
                .shift(lit(1))
                .over([col("card")])?
                .alias("usual_m1"),
            (col("log_amount") * col("log_amount"))
                .ewm_mean(ewm)
                .shift(lit(1))
                .over([col("card")])?
                .alias("usual_m2"),
        ]))
}

/// For wrong-PIN rows: `pin_new` (the card's first wrong PIN at this terminal within the
/// window) and `term_wrong_pins` (counted wrong PINs within `[ts - window, ts)` plus this
/// one if counted), as [`FeatureState::wrong_pin`] defines them.
pub fn batch_wrong_pins(lf: LazyFrame, w: Millis) -> PolarsResult<LazyFrame> {
    let prev = col("ts")
        .shift(lit(1))
        .over([col("terminal"), col("card")])?;
    Ok(lf
        .filter(col("wrong_pin"))
        .sort(["ts", "id"], SortMultipleOptions::default())
        .with_columns([prev
            .clone()
            .is_null()
            .or((col("ts") - prev).gt(lit(w)))
            .alias("pin_new")])
        .with_columns([col("pin_new").cast(DataType::Int64).alias("pin_new_n")])
        .with_columns([(col("pin_new_n")
            .rolling_sum_by(col("ts"), window(w))
            .fill_null(lit(0i64))
            .over([col("terminal")])?
            + col("pin_new_n"))
        .alias("term_wrong_pins")]))
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
