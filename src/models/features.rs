//! One feature definition, two evaluators: [`FeatureState`] computes the features of each event
//! as the engine streams it, and `batch` computes the same columns for a whole history for
//! training (polars for the windowed counts, per-entity passes over the sorted history for the
//! card profile and the PIN episodes). Per-event features that need no history are one Rust
//! function ([`stateless`]) called by both; `tests/models.rs` checks on a replay that both give
//! the same values for every event (no train/serve skew).
//!
//! Windows are half-open on event time, `[ts - w, ts)`, so the order of events that share a
//! timestamp never changes a count; profiles follow the engine's (ts, id) order, which the
//! batch side reproduces by sorting on (ts, id).

use super::pin::{PinCounts, PinWindows, TermPin};
pub use super::robust::{normals, usual, Normals};
use crate::event::{EntryMode, Event, EventType, Pin};
use crate::keyed::{key_hash, CowMap};
use crate::time::{EventTime, Span};
use compact_str::CompactString;
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
/// Floor of a card's spread of log amounts in `amount_z` (a card with a few equal amounts
/// is not infinitely surprised by the next one).
pub const MIN_SPREAD: f64 = 0.5;
/// Velocity counts saturate here (and the card keeps at most this many recent timestamps,
/// inline: sixteen purchases in a day is already far outside any card's normal).
pub const CARD_CAP: usize = 16;
/// The card profile keeps its last this many approved purchases.
pub const HISTORY: usize = 16;
/// A card needs this many approved purchases in its profile before `amount_z` is set (and
/// before the card model may alert on it).
pub const MIN_HISTORY: usize = 5;
/// A category group needs this many of the card's last purchases (a quarter) to be its own
/// normal, a habit rather than a visit; below, the card's whole profile is.
pub const GROUP_MIN: usize = 4;
/// Log amounts are kept in 1/256 steps (0.4 % of an amount): small, and exact on both sides.
pub const LOG_STEP: f64 = 256.0;
pub const HOUR: Span = Span::HOUR;
pub const DAY: Span = Span::DAY;
/// Card profiles idle this long are forgotten (event time).
pub const CARD_RETENTION: Span = Span::days(90);

/// MCCs where a stolen card is cashed out (jewellery, electronics, quasi-cash, gambling...).
const HIGH_VALUE_MCC: [u16; 8] = [4829, 5045, 5094, 5732, 5944, 6051, 7995, 5999];

/// The merchant category group a card's normal is kept per: 0 everyday (food, groceries,
/// misc retail), 1 fuel and transport, 2 travel (lodging, car rental, airlines), 3 high-value
/// retail (department stores, electronics, jewellery, quasi-cash), 4 anything else.
pub fn mcc_group(mcc: Option<u16>) -> u8 {
    match mcc {
        Some(5411 | 5412 | 5422 | 5441 | 5451 | 5462 | 5499 | 5812 | 5813 | 5814 | 5999) => 0,
        Some(4111 | 4121 | 4131 | 5541 | 5542 | 5172) => 1,
        Some(3000..=3999 | 4511 | 7011 | 7512 | 4722) => 2,
        Some(5311 | 5045 | 5094 | 5732 | 5944 | 6051 | 4829 | 7995) => 3,
        _ => 4,
    }
}

/// Does the card profile follow this event? Purchase attempts (auth, pre-auth) with a card.
pub fn is_card_purchase(ev: &Event) -> bool {
    matches!(ev.kind, EventType::Auth | EventType::Preauth) && ev.card.is_some()
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

/// A log amount in the profile's steps.
pub fn quantise(la: f64) -> u16 {
    (la * LOG_STEP).round().clamp(0.0, u16::MAX as f64) as u16
}

/// Hour of day (UTC) of an event time.
pub fn hour_of_day(ts: EventTime) -> usize {
    ts.as_ms().rem_euclid(DAY.as_ms()).div_euclid(HOUR.as_ms()) as usize
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

/// `amount_dev` and `amount_z` of a purchase with log amount `la` against the card's normal
/// (both 0 without one).
pub fn amount_devs(la: f64, usual: Option<(f64, f64)>) -> (f64, f64) {
    match usual {
        None => (0.0, 0.0),
        Some((med, spread)) => (la - med, (la - med) / spread),
    }
}

/// A card's history as the features need it. Laid out by hand (`repr(C)`, hottest first) so
/// that scoring a purchase touches as few cache lines of it as it can: the amounts profile
/// fits one line beside the counters, the recent timestamps the next two.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[repr(C)]
pub struct CardProfile {
    #[serde(default)]
    last: EventTime,
    /// Its last [`HISTORY`] approved purchases, a ring held inline (no allocation, no
    /// shuffling): quantised log amounts and category groups; the first `n` slots are used,
    /// `head` is the oldest once full.
    #[serde(default)]
    n: u8,
    #[serde(default)]
    head: u8,
    #[serde(default)]
    rn: u8,
    #[serde(default)]
    rhead: u8,
    #[serde(default)]
    q: [u16; HISTORY],
    #[serde(default)]
    g: [u8; HISTORY],
    /// Timestamps of its latest purchases (at most `CARD_CAP`), a ring like `q`: `rn` used,
    /// `rhead` the oldest once full.
    #[serde(default)]
    recent: [EventTime; CARD_CAP],
}

impl CardProfile {
    fn push_recent(&mut self, ts: EventTime) {
        let i = if (self.rn as usize) < CARD_CAP {
            self.rn += 1;
            self.rn as usize - 1
        } else {
            let h = self.rhead as usize;
            self.rhead = ((h + 1) % CARD_CAP) as u8;
            h
        };
        self.recent[i] = ts;
    }

    fn push(&mut self, q: u16, g: u8) {
        let i = if (self.n as usize) < HISTORY {
            self.n += 1;
            self.n as usize - 1
        } else {
            let h = self.head as usize;
            self.head = ((h + 1) % HISTORY) as u8;
            h
        };
        self.q[i] = q;
        self.g[i] = g;
    }
}

/// A merchant's counters for the current UTC day, and its earlier days' (its own normal).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MerchantDay {
    day: i64,
    pub n: u32,
    pub k: u32,
    /// The latest forced no-PIN approvals of the recent days (the evidence of an alert):
    /// (day, id), oldest first.
    #[serde(default)]
    pub forced: VecDeque<(i64, CompactString)>,
    /// Earlier days with sales: (day, approved card-present, forced no-PIN), oldest first.
    #[serde(default)]
    past: VecDeque<(i64, u32, u32)>,
}

impl MerchantDay {
    /// (approved card-present, forced no-PIN) on the whole days `from..to` days before today
    /// (`1..=28`: the 28 days before today).
    pub fn past(&self, from: i64, to: i64) -> (u32, u32) {
        self.past
            .iter()
            .filter(|p| p.0 >= self.day - to && p.0 <= self.day - from)
            .fold((0, 0), |a, p| (a.0 + p.1, a.1 + p.2))
    }
}

/// Forced no-PIN approvals a merchant's day keeps as evidence.
pub const MERCHANT_EVIDENCE: usize = 20;

/// Streaming feature state: per card, per terminal (PIN attempts), per merchant (today).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FeatureState {
    cards: CowMap<CardProfile>,
    #[serde(default)]
    terminals: CowMap<TermPin>,
    merchants: CowMap<MerchantDay>,
    /// Event time at which cards, terminals and merchants are next swept.
    #[serde(default)]
    next_sweep: [EventTime; 3],
}

/// What the streaming evaluator says about one card purchase.
#[derive(Debug, Clone, Copy)]
pub struct CardFeatures {
    pub x: [f64; NF],
    /// The card's normal log amount for this purchase, if it has one (`usual_amount` turns it
    /// into minor units, only when an explanation needs it).
    pub usual_log: Option<f64>,
    /// The card's normals (here, over its whole profile, its largest recent purchase).
    pub normals: Option<Normals>,
}

impl CardFeatures {
    /// The card's usual amount for this purchase (minor units), if it has history.
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
        if p.last < ev.ts - CARD_RETENTION {
            // Idle past retention: forgotten, whether or not a sweep has run since.
            *p = CardProfile::default();
        }
        // One pass counts both windows over the latest CARD_CAP purchases (a late event can
        // leave them out of order, so each bound is tested).
        let (mut hour, mut day) = (0u32, 0u32);
        for t in p.recent[..p.rn as usize].iter().filter(|t| **t < ev.ts) {
            day += u32::from(*t >= ev.ts - DAY);
            hour += u32::from(*t >= ev.ts - HOUR);
        }
        x[CARD_TX_1H] = f64::from(hour);
        x[CARD_TX_24H] = f64::from(day);
        let group = mcc_group(ev.mcc);
        let n = p.n as usize;
        let nm = normals(&p.q[..n], &p.g[..n], group);
        let u = nm.map(|n| n.here);
        (x[AMOUNT_DEV], x[AMOUNT_Z]) = amount_devs(x[0], u);
        if ev.approved() {
            p.push(quantise(x[0]), group);
        }
        p.push_recent(ev.ts);
        p.last = ev.ts;
        CardFeatures {
            x,
            usual_log: u.map(|u| u.0),
            normals: nm,
        }
    }

    /// Fold a PIN attempt into its terminal's history; for a wrong PIN, the counts it is
    /// scored on (see [`TermPin::observe`]).
    pub fn pin(
        &mut self,
        ev: &Event,
        w: PinWindows,
        evidence: Option<&mut Vec<CompactString>>,
    ) -> Option<PinCounts> {
        self.terminals
            .entry_or_default(key_hash(&ev.terminal))
            .observe(ev, w, evidence)
    }

    /// Fold an approved card-present auth into its merchant's day (keeping `base_days` earlier
    /// days); the day's (n, k) so far. A late event of an earlier day counts with the current
    /// day (the batch side, on sorted history, never sees one).
    pub fn merchant(&mut self, ev: &Event, forced_nopin: bool, base_days: u32) -> &MerchantDay {
        let m = self
            .merchants
            .entry_or_default(key_hash(ev.merchant.as_deref().unwrap_or_default()));
        let day = ev.ts.day();
        if day > m.day {
            if m.n > 0 {
                m.past.push_back((m.day, m.n, m.k));
            }
            while m.past.front().is_some_and(|p| p.0 < day - base_days as i64) {
                m.past.pop_front();
            }
            m.day = day;
            m.n = 0;
            m.k = 0;
            let recent = day - super::merchant_nopin::RECENT_DAYS;
            while m.forced.front().is_some_and(|f| f.0 <= recent) {
                m.forced.pop_front();
            }
        }
        m.n += 1;
        if forced_nopin {
            m.k += 1;
            if m.forced.len() == MERCHANT_EVIDENCE {
                m.forced.pop_front();
            }
            m.forced.push_back((m.day, ev.id.clone()));
        }
        m
    }

    /// Drop what no feature can read any more at event time `now`.
    /// Each map is swept every eighth of its retention (`state::sweep_interval`), not on every
    /// call: sweeping a million card profiles every minute of event time would make replay
    /// quadratic.
    pub fn evict(&mut self, now: EventTime, pin_retention: Span, merchant_days: i64) {
        use crate::keyed::sweep_interval;
        if now >= self.next_sweep[0] {
            self.cards.retain(|_, p| p.last >= now - CARD_RETENTION);
            self.next_sweep[0] = now + sweep_interval(CARD_RETENTION);
        }
        if now >= self.next_sweep[1] {
            self.terminals
                .retain(|_, t| t.last() >= now - pin_retention);
            self.next_sweep[1] = now + sweep_interval(pin_retention);
        }
        if now >= self.next_sweep[2] {
            let today = now.day();
            self.merchants
                .retain(|_, m| m.day >= today - merchant_days - 1);
            self.next_sweep[2] = now + sweep_interval(DAY);
        }
    }

    /// Entries held (cards, terminals, merchants).
    pub fn len(&self) -> usize {
        self.cards.len() + self.terminals.len() + self.merchants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::models::robust::{sort16, twice_median};

    #[test]
    fn the_usual_amount_is_the_groups_median_once_it_has_four() {
        let q = |a: f64| quantise((a / 100.0f64).ln_1p());
        let u = |h: &[(u16, u8)], g: u8| {
            let (a, b): (Vec<u16>, Vec<u8>) = h.iter().copied().unzip();
            usual(&a, &b, g)
        };
        // Four groceries around 60, one electronics purchase: too few electronics to be
        // their own normal, so the whole profile is.
        let mut h = vec![
            (q(6000.0), 0),
            (q(5000.0), 0),
            (q(7000.0), 0),
            (q(6500.0), 0),
        ];
        assert_eq!(u(&h, 3), None, "under MIN_HISTORY");
        h.push((q(80_000.0), 3));
        let (med, spread) = u(&h, 3).unwrap();
        assert!(((med.exp_m1()) - 65.0).abs() < 1.0, "{}", med.exp_m1());
        assert!(spread >= MIN_SPREAD);
        h.extend([(q(90_000.0), 3), (q(70_000.0), 3), (q(85_000.0), 3)]);
        let (med, _) = u(&h, 3).unwrap();
        assert!((med.exp_m1() - 825.0).abs() < 5.0, "{}", med.exp_m1());
        // An even count: the mean of the two middle values.
        assert_eq!(twice_median(&[1u16, 2, 3, 10]), 5);
        // The network sorts any sixteen values.
        let mut rng = 0x1234_5678u64;
        for _ in 0..2000 {
            let mut v = [0u32; HISTORY];
            for x in v.iter_mut() {
                rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                *x = (rng >> 40) as u32 % 50;
            }
            let mut want = v;
            want.sort_unstable();
            sort16(&mut v);
            assert_eq!(v, want);
        }
        // The spread is the median absolute deviation (x 1.4826): values 0, 100, 200, 300,
        // 1000 (in 1/256 steps) have median 200 and deviations 200, 100, 0, 100, 800.
        let v = [0u16, 100, 200, 300, 1000];
        let (med, spread) = usual(&v, &[0; 5], 0).unwrap();
        assert_eq!(med, 200.0 / LOG_STEP);
        assert!((spread - (1.4826 * 100.0 / LOG_STEP).max(MIN_SPREAD)).abs() < 1e-12);
        let w = [0u16, 1000, 1100, 1200, 1300, 1400];
        let (_, spread) = usual(&w, &[0; 6], 0).unwrap();
        // Median 1150; deviations 1150, 150, 50, 50, 150, 250: their median is 150.
        assert!(
            (spread - 1.4826 * 150.0 / LOG_STEP).abs() < 1e-12,
            "{spread}"
        );
    }
}
