//! Model 5, the card outlier: is a purchase's amount far above what this card normally spends
//! *in this kind of shop*, and above what shoppers normally spend at this MCC? The card's
//! normal is robust (median and spread of its last purchases, per merchant category group
//! once it has three there; see `features::usual`) and needs [`MIN_HISTORY`] purchases
//! before it may alert, so a card's first large purchase at a category it uses, or a single
//! past splurge, does not make its next ordinary purchase an outlier. The population's normal
//! per MCC (median and spread of log amounts of approved training purchases) keeps a purchase
//! that is ordinary for the shop (a hotel deposit, a television) from alerting just because
//! the card usually buys coffee.
//!
//! Score: `min(z_card, mcc_weight × z_mcc)`, where `z_card` is the purchase's `amount_z`
//! against the card's normal and `z_mcc` its z against the MCC's; the robust profile is
//! learnt as the stream goes, so it holds on cards the training never saw.

use super::features::{CardFeatures, AMOUNT_Z, MIN_HISTORY, MIN_SPREAD};
use super::params::ParamsError;
use super::stats::quantile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// MCCs with fewer training purchases use the global normal.
const MIN_MCC_PURCHASES: usize = 30;

/// A population normal: median and spread of log amounts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normal {
    pub median: f64,
    pub spread: f64,
}

/// Learned parameters (the model file's `params`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CardOutlierParams {
    /// Weight of the population z in the score.
    pub mcc_weight: f64,
    pub global: Normal,
    pub mcc: BTreeMap<u16, Normal>,
}

/// The loaded model.
#[derive(Debug, Clone)]
pub struct CardOutlier {
    pub params: CardOutlierParams,
}

/// One scored purchase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CardOutlierScore {
    /// z against the card's normal here (the larger of `amount_z` and the excess over its
    /// largest recent purchase in units of [`MIN_SPREAD`]) and against the MCC's.
    pub z_card: f64,
    pub z_mcc: f64,
    pub score: f64,
    /// The same against the card's whole profile (all category groups): `score_all` is
    /// `min(z, mcc_weight × z_mcc)` with that z, `dev_all` the ln of the amount over the
    /// whole profile's median.
    #[serde(default)]
    pub score_all: f64,
    #[serde(default)]
    pub dev_all: f64,
    /// The MCC's usual log amount (for the explanation).
    pub mcc_usual_log: f64,
}

impl CardOutlier {
    pub fn new(params: CardOutlierParams) -> Result<Self, ParamsError> {
        let ok = |n: &Normal| n.median.is_finite() && n.spread.is_finite() && n.spread > 0.0;
        if !ok(&params.global) || !params.mcc.values().all(ok) {
            return Err(ParamsError::Normals);
        }
        if !(params.mcc_weight.is_finite() && params.mcc_weight > 0.0) {
            return Err(ParamsError::MccWeight);
        }
        Ok(Self { params })
    }

    fn normal(&self, mcc: Option<u16>) -> Normal {
        mcc.and_then(|m| self.params.mcc.get(&m).copied())
            .unwrap_or(self.params.global)
    }

    /// Score a card purchase; `None` when the card has too little history to have a normal.
    pub fn score(&self, cf: &CardFeatures, mcc: Option<u16>) -> Option<CardOutlierScore> {
        let nm = cf.normals?;
        let la = cf.x[0];
        // A profile that mixes everyday and occasional large purchases has a wide spread, so
        // its z understates a purchase far above anything the card bought recently: that
        // excess, in units of the narrowest spread a card may have, counts as a z too.
        let over_max = (la - nm.max) / MIN_SPREAD;
        let z_card = cf.x[AMOUNT_Z].max(over_max);
        let dev_all = la - nm.all.0;
        let z_all = (dev_all / nm.all.1).max(over_max);
        let n = self.normal(mcc);
        let z_mcc = (la - n.median) / n.spread;
        let w = self.params.mcc_weight * z_mcc;
        Some(CardOutlierScore {
            z_card,
            z_mcc,
            score: z_card.min(w),
            score_all: z_all.min(w),
            dev_all,
            mcc_usual_log: n.median,
        })
    }

    /// The population normals from training purchases: (MCC, log amount) of approved ones.
    pub fn fit(purchases: &[(Option<u16>, f64)], mcc_weight: f64) -> CardOutlierParams {
        let normal = |v: &mut Vec<f64>| {
            v.sort_unstable_by(f64::total_cmp);
            let median = quantile(v, 0.5);
            let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
            dev.sort_unstable_by(f64::total_cmp);
            Normal {
                median,
                spread: (1.4826 * quantile(&dev, 0.5)).max(MIN_SPREAD),
            }
        };
        let mut all: Vec<f64> = purchases.iter().map(|p| p.1).collect();
        let mut by: BTreeMap<u16, Vec<f64>> = BTreeMap::new();
        for (m, la) in purchases {
            if let Some(m) = m {
                by.entry(*m).or_default().push(*la);
            }
        }
        let global = if all.is_empty() {
            Normal {
                median: 4.0,
                spread: 1.0,
            }
        } else {
            normal(&mut all)
        };
        CardOutlierParams {
            mcc_weight,
            global,
            mcc: by
                .into_iter()
                .filter(|(_, v)| v.len() >= MIN_MCC_PURCHASES)
                .map(|(m, mut v)| (m, normal(&mut v)))
                .collect(),
        }
    }

    /// Why a score is high: the amount against the card's and the MCC's normal.
    pub fn explain(
        &self,
        s: &CardOutlierScore,
        cf: &CardFeatures,
        amount: Option<i64>,
    ) -> (String, Vec<(String, f64, f64)>) {
        let a = amount.unwrap_or(0) as f64;
        let card = cf.usual_amount().unwrap_or(0.0);
        let shop = s.mcc_usual_log.exp_m1() * 100.0;
        let whole = cf.normals.map_or(0.0, |n| n.all.0.exp_m1() * 100.0);
        let top = cf.normals.map_or(0.0, |n| n.max.exp_m1() * 100.0);
        let text = format!(
            "amount {:.2} is {:.0}x the card's usual {:.2} here ({:+.1} sd of its own spread, \
             needs {MIN_HISTORY} purchases of history), {:.0}x its usual {:.2} over all its \
             purchases, {:.1}x its largest recent {:.2}, and {:.1}x the usual {:.2} at this MCC",
            a / 100.0,
            a / card.max(1.0),
            card / 100.0,
            s.z_card,
            a / whole.max(1.0),
            whole / 100.0,
            a / top.max(1.0),
            top / 100.0,
            a / shop.max(1.0),
            shop / 100.0
        );
        let rows = vec![
            ("amount_vs_card".to_string(), a, card),
            ("amount_vs_card_all".to_string(), a, whole),
            ("amount_vs_card_max".to_string(), a, top),
            ("amount_vs_mcc".to_string(), a, shop),
        ];
        (text, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::features::NF;

    fn cf(la: f64, usual: Option<f64>, z: f64) -> CardFeatures {
        let mut x = [0.0; NF];
        x[0] = la;
        x[AMOUNT_Z] = z;
        CardFeatures {
            x,
            usual_log: usual,
            normals: usual.map(|u| crate::models::robust::Normals {
                here: (u, (la - u) / z.max(1e-9)),
                all: (u, 1.0),
                max: u + 1.0,
            }),
        }
    }

    #[test]
    fn an_amount_ordinary_for_the_shop_scores_low_whatever_the_card() {
        let purchases: Vec<(Option<u16>, f64)> = (0..100)
            .map(|i| (Some(5944), 7.3 + (i % 7) as f64 * 0.1))
            .chain((0..100).map(|i| (Some(5411), 4.5 + (i % 5) as f64 * 0.1)))
            .collect();
        let m = CardOutlier::new(CardOutlier::fit(&purchases, 2.0)).unwrap();
        // A jeweller's usual ticket on a grocery card: far from the card, not from the shop.
        let s = m.score(&cf(7.6, Some(4.5), 6.0), Some(5944)).unwrap();
        assert!(s.score < 1.0, "{s:?}");
        // 150x the card's usual at the jeweller, far above the shop's usual too.
        let s = m.score(&cf(9.8, Some(4.5), 10.6), Some(5944)).unwrap();
        assert!(s.score > 5.0, "{s:?}");
        // No history, no score.
        assert!(m.score(&cf(9.8, None, 0.0), Some(5944)).is_none());
    }
}
