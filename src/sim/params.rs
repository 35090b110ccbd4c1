//! What makes one simulated world differ from another beyond the seed: the merchant mix, how
//! many terminals a merchant has and how busy they are, how often customers mistype or give up
//! at the PIN pad, how cards spend, the share of contactless and QR, the feed's resends and
//! timestamp formats, the attack variants and the benign look-alikes that appear.
//!
//! [`WorldParams::preset`] names four worlds: `default` (the one the committed models are
//! trained on) and three others (`metro`, `rural`, `tourist`) that the models are judged on
//! without ever having seen them (`switchguard train --evaluate`, README "Models").

use serde::{Deserialize, Serialize};

/// The parameters of a world. `default()` is the `default` preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldParams {
    /// Preset name, for reports.
    pub name: String,
    /// Merchant population: (MCC, relative weight). Every MCC of the default mix appears at
    /// least once (the first merchants cover them all).
    pub mcc_mix: Vec<(u16, u32)>,
    /// Relative weights of merchants with 1, 2, 3, 4 and 5 terminals.
    pub terminals_per_merchant: [u32; 5],
    /// Busy checkout lanes: share of the fleet, walk-ins per day (range), and the probability
    /// that a chip + PIN walk-in starts with a mistyped PIN (range, per lane).
    pub busy_share: f64,
    pub busy_volume: (f64, f64),
    pub busy_mistype: (f64, f64),
    /// Benign one-off PIN mistype episodes per 1,000 cards per day at everyday terminals.
    pub mistypes_per_1000_cards: f64,
    /// Share of benign mistype episodes where the customer does not retry (pays another way).
    pub give_up: f64,
    /// Everyday card transactions per card per day, and the log-normal spread of how active
    /// cards are.
    pub tx_per_card_day: f64,
    pub activity_sigma: f64,
    /// Purchase amounts: a multiplier on every MCC's median, the log-normal spread of one
    /// card's purchases around its own level, the log-normal spread of cards' levels (the
    /// population's spread is both together), and the share of 5x baskets at everyday shops.
    pub amount_scale: f64,
    pub amount_sigma: f64,
    pub card_sigma: f64,
    pub big_basket: f64,
    /// Shares of everyday payments made by QR and by contactless tap.
    pub qr_share: f64,
    pub contactless_share: f64,
    /// The feed: share of events the switch sends twice (same id), and whether timestamps come
    /// in mixed formats (UTC `Z`, `+08:00`, with and without milliseconds).
    pub resend: f64,
    pub mixed_ts: bool,
    /// Disorder of the feed (ms) unless the caller sets one.
    pub disorder_ms: i64,
    /// Attack variants the `default` world never shows (see `attacks_model`).
    pub variants: bool,
    /// Benign look-alikes of the model scenarios: terminals installed mid-run (cold start),
    /// merchant traffic surges (per 1,000 merchants per day), and the share of cards that
    /// make large purchases as a matter of course.
    pub cold_start_share: f64,
    pub surges_per_1000_merchants_day: f64,
    pub big_spender_share: f64,
    /// Namespace of terminal and merchant ids (0..=7), so two worlds never share an entity.
    pub id_space: u32,
}

/// The default world's merchant mix.
const DEFAULT_MIX: [(u16, u32); 11] = [
    (5411, 20),
    (5812, 16),
    (5541, 8),
    (5311, 5),
    (5732, 5),
    (5999, 11),
    (7011, 6),
    (7512, 3),
    (4121, 8),
    (5814, 16),
    (5944, 2),
];

/// A merchant mix with the default mix's MCCs, in its order, and these weights.
fn mix(w: [u32; 11]) -> Vec<(u16, u32)> {
    DEFAULT_MIX.iter().zip(w).map(|(m, w)| (m.0, w)).collect()
}

/// Preset names, in the order `--world` lists them.
pub const PRESETS: [&str; 4] = ["default", "metro", "rural", "tourist"];

impl Default for WorldParams {
    fn default() -> Self {
        Self {
            name: "default".into(),
            mcc_mix: DEFAULT_MIX.to_vec(),
            terminals_per_merchant: [35, 30, 15, 10, 10],
            busy_share: 0.015,
            busy_volume: (50.0, 130.0),
            busy_mistype: (0.04, 0.09),
            mistypes_per_1000_cards: 2.0,
            give_up: 0.05,
            tx_per_card_day: 1.5,
            activity_sigma: 0.6,
            amount_scale: 1.0,
            amount_sigma: 0.5,
            card_sigma: 0.6,
            big_basket: 0.03,
            qr_share: 0.25,
            contactless_share: 0.33,
            resend: 0.0,
            mixed_ts: false,
            disorder_ms: 0,
            variants: false,
            cold_start_share: 0.01,
            surges_per_1000_merchants_day: 1.0,
            big_spender_share: 0.01,
            id_space: 0,
        }
    }
}

impl WorldParams {
    /// A named world, or `None` for an unknown name.
    pub fn preset(name: &str) -> Option<Self> {
        Some(match name {
            "default" => Self::default(),
            "metro" => Self::metro(),
            "rural" => Self::rural(),
            "tourist" => Self::tourist(),
            _ => return None,
        })
    }

    /// A big city: busy lanes and multi-lane shops, taps and QR, more spending, a messy
    /// feed (resends, mixed timestamps, disorder).
    fn metro() -> Self {
        Self {
            name: "metro".into(),
            //       5411 5812 5541 5311 5732 5999 7011 7512 4121 5814 5944
            mcc_mix: mix([22, 20, 4, 7, 6, 10, 4, 1, 12, 22, 2]),
            terminals_per_merchant: [15, 20, 20, 20, 25],
            busy_share: 0.03,
            busy_volume: (80.0, 200.0),
            busy_mistype: (0.03, 0.07),
            mistypes_per_1000_cards: 2.5,
            give_up: 0.08,
            tx_per_card_day: 2.0,
            activity_sigma: 0.7,
            amount_scale: 1.3,
            amount_sigma: 0.55,
            card_sigma: 0.7,
            big_basket: 0.04,
            qr_share: 0.35,
            contactless_share: 0.40,
            resend: 0.002,
            mixed_ts: true,
            disorder_ms: 1_500,
            variants: true,
            cold_start_share: 0.03,
            surges_per_1000_merchants_day: 1.0,
            big_spender_share: 0.02,
            id_space: 1,
        }
    }

    /// Quiet shops with one terminal, chip and PIN, older pads (more mistypes, more
    /// customers giving up), smaller amounts.
    fn rural() -> Self {
        Self {
            name: "rural".into(),
            mcc_mix: mix([30, 14, 16, 3, 2, 14, 3, 1, 4, 10, 1]),
            terminals_per_merchant: [60, 25, 10, 4, 1],
            busy_share: 0.008,
            busy_volume: (30.0, 70.0),
            busy_mistype: (0.06, 0.12),
            mistypes_per_1000_cards: 3.0,
            give_up: 0.12,
            tx_per_card_day: 1.0,
            activity_sigma: 0.5,
            amount_scale: 0.6,
            amount_sigma: 0.45,
            card_sigma: 0.5,
            big_basket: 0.02,
            qr_share: 0.15,
            contactless_share: 0.15,
            resend: 0.001,
            mixed_ts: true,
            disorder_ms: 0,
            variants: true,
            cold_start_share: 0.01,
            surges_per_1000_merchants_day: 0.3,
            big_spender_share: 0.005,
            id_space: 2,
        }
    }

    /// Hotels, car rentals, jewellers and electronics: large tickets, many big spenders.
    fn tourist() -> Self {
        Self {
            name: "tourist".into(),
            mcc_mix: mix([12, 18, 5, 6, 9, 8, 14, 6, 10, 8, 6]),
            terminals_per_merchant: [30, 30, 20, 10, 10],
            busy_share: 0.015,
            busy_volume: (50.0, 150.0),
            busy_mistype: (0.05, 0.10),
            mistypes_per_1000_cards: 2.0,
            give_up: 0.10,
            tx_per_card_day: 1.8,
            activity_sigma: 0.6,
            amount_scale: 1.5,
            amount_sigma: 0.65,
            card_sigma: 0.75,
            big_basket: 0.05,
            qr_share: 0.30,
            contactless_share: 0.30,
            resend: 0.003,
            mixed_ts: true,
            disorder_ms: 3_000,
            variants: true,
            cold_start_share: 0.02,
            surges_per_1000_merchants_day: 1.5,
            big_spender_share: 0.04,
            id_space: 3,
        }
    }

    /// Why these parameters cannot make a world, if they cannot (every problem at once).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let share = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        let mut check = |ok: bool, what: &str| {
            if !ok {
                p.push(what.to_string());
            }
        };
        check(
            !self.mcc_mix.is_empty() && self.mcc_mix.iter().any(|m| m.1 > 0),
            "mcc_mix needs a positive weight",
        );
        check(
            self.terminals_per_merchant.iter().any(|w| *w > 0),
            "terminals_per_merchant needs a positive weight",
        );
        for (name, v) in [
            ("busy_share", self.busy_share),
            ("give_up", self.give_up),
            ("big_basket", self.big_basket),
            ("qr_share", self.qr_share),
            ("contactless_share", self.contactless_share),
            ("resend", self.resend),
            ("cold_start_share", self.cold_start_share),
            ("big_spender_share", self.big_spender_share),
            ("busy_mistype.0", self.busy_mistype.0),
            ("busy_mistype.1", self.busy_mistype.1),
        ] {
            check(share(v), &format!("{name} must be in 0..=1 (is {v})"));
        }
        check(
            self.qr_share + self.contactless_share <= 0.9,
            "qr_share + contactless_share must leave room for chip (at most 0.9)",
        );
        for (name, v, max) in [
            ("busy_volume.0", self.busy_volume.0, 2_000.0),
            ("busy_volume.1", self.busy_volume.1, 2_000.0),
            (
                "mistypes_per_1000_cards",
                self.mistypes_per_1000_cards,
                100.0,
            ),
            ("tx_per_card_day", self.tx_per_card_day, 20.0),
            ("activity_sigma", self.activity_sigma, 3.0),
            ("amount_scale", self.amount_scale, 100.0),
            ("amount_sigma", self.amount_sigma, 3.0),
            ("card_sigma", self.card_sigma, 3.0),
            (
                "surges_per_1000_merchants_day",
                self.surges_per_1000_merchants_day,
                100.0,
            ),
        ] {
            check(
                v.is_finite() && (0.0..=max).contains(&v),
                &format!("{name} must be in 0..={max} (is {v})"),
            );
        }
        check(
            self.busy_volume.0 <= self.busy_volume.1 && self.busy_mistype.0 <= self.busy_mistype.1,
            "busy_volume and busy_mistype ranges must be (low, high)",
        );
        check(self.amount_scale > 0.0, "amount_scale must be positive");
        check(
            (0..=86_400_000).contains(&self.disorder_ms),
            "disorder_ms must be in 0..=86400000",
        );
        check(self.id_space <= 7, "id_space must be in 0..=7");
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid_and_distinct() {
        let all: Vec<WorldParams> = PRESETS
            .iter()
            .map(|n| WorldParams::preset(n).expect("preset"))
            .collect();
        for w in &all {
            assert!(w.problems().is_empty(), "{}: {:?}", w.name, w.problems());
        }
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.id_space, b.id_space, "{} and {}", a.name, b.name);
                assert_ne!(a.mcc_mix, b.mcc_mix, "{} and {}", a.name, b.name);
            }
        }
        assert_eq!(WorldParams::preset("default"), Some(WorldParams::default()));
        assert!(WorldParams::preset("nowhere").is_none());
        let bad = WorldParams {
            give_up: f64::NAN,
            amount_scale: -1.0,
            ..WorldParams::default()
        };
        assert_eq!(bad.problems().len(), 3, "{:?}", bad.problems());
    }
}
