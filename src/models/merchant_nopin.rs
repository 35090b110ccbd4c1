//! Model 2, the merchant no-PIN profile: each merchant's share of approved card-present sales
//! that went through without a PIN where one was due (bypassed, timed out, or absent above the
//! no-PIN limit). The MCC peer group gives a beta prior (fitted by moments, with binomial noise
//! removed); the merchant's own history updates it, capped so that a merchant cannot teach the
//! model that forcing no-PIN is its normal. Live, each forced no-PIN approval is scored by how
//! improbable the merchant's count so far today is (beta-binomial upper tail, -log10 p): a
//! merchant drifting into forced no-PIN approvals (walkaway collusion) climbs day by day.

use super::stats::beta_binomial_tail_score;
use crate::keyed::key_hash;
use polars::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A merchant's own history counts as at most this many sales against the peer prior.
const OWN_CAP: f64 = 300.0;
/// Merchants with fewer sales do not shape their peer group's prior.
const MIN_PEER_SALES: f64 = 30.0;

/// Beta prior / posterior of a share.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BetaShare {
    pub alpha: f64,
    pub beta: f64,
}

impl BetaShare {
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }
}

/// Learned parameters (the model file's `params`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MerchantNopinParams {
    /// Amounts (minor units) above which an absent PIN counts as forced no-PIN.
    pub nopin_limit: i64,
    pub global: BetaShare,
    /// Prior by MCC.
    pub peers: BTreeMap<u16, BetaShare>,
    /// Posterior by merchant, with its MCC.
    pub merchants: BTreeMap<String, (u16, BetaShare)>,
}

/// The loaded model, keyed by merchant hash for the hot path.
#[derive(Debug, Clone)]
pub struct MerchantNopin {
    pub params: MerchantNopinParams,
    merchants: FxHashMap<u64, (BetaShare, BetaShare)>,
}

/// One scored forced no-PIN approval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MerchantNopinScore {
    /// Approved card-present sales today so far, and how many were forced no-PIN.
    pub n: u32,
    pub k: u32,
    /// The merchant's normal share and its peer group's.
    pub normal: f64,
    pub peer: f64,
    pub score: f64,
}

impl MerchantNopin {
    pub fn new(params: MerchantNopinParams) -> Result<Self, String> {
        let ok = |b: &BetaShare| b.alpha > 0.0 && b.beta > 0.0;
        if !ok(&params.global) || !params.peers.values().all(ok) {
            return Err("beta parameters must be positive".into());
        }
        if !params.merchants.values().all(|(_, b)| ok(b)) {
            return Err("beta parameters must be positive".into());
        }
        let merchants = params
            .merchants
            .iter()
            .map(|(m, (mcc, b))| {
                let peer = params.peers.get(mcc).copied().unwrap_or(params.global);
                (key_hash(m), (*b, peer))
            })
            .collect();
        Ok(Self { params, merchants })
    }

    pub fn score(&self, merchant: &str, mcc: Option<u16>, n: u32, k: u32) -> MerchantNopinScore {
        let (own, peer) = self
            .merchants
            .get(&key_hash(merchant))
            .copied()
            .unwrap_or_else(|| {
                let p = mcc
                    .and_then(|m| self.params.peers.get(&m).copied())
                    .unwrap_or(self.params.global);
                (p, p)
            });
        MerchantNopinScore {
            n,
            k,
            normal: own.mean(),
            peer: peer.mean(),
            score: beta_binomial_tail_score(k, n, own.alpha, own.beta),
        }
    }

    /// Learn from training rows of approved card-present sales (`merchant`, `mcc`,
    /// `forced_nopin`).
    pub fn fit(rows: LazyFrame, nopin_limit: i64) -> PolarsResult<MerchantNopinParams> {
        let agg = rows
            .group_by([col("merchant")])
            .agg([
                len().cast(DataType::Float64).alias("n"),
                col("forced_nopin").cast(DataType::Float64).sum().alias("k"),
                col("mcc").first().alias("mcc"),
            ])
            .sort(["merchant"], SortMultipleOptions::default())
            .collect()?;
        let m = agg.column("merchant")?.str()?.clone();
        let n = agg.column("n")?.f64()?.clone();
        let k = agg.column("k")?.f64()?.clone();
        let mcc = agg.column("mcc")?.i32()?.clone();
        // (merchant, mcc, n, k), merchant order.
        let rows: Vec<(String, u16, f64, f64)> = (0..agg.height())
            .filter_map(|i| {
                Some((
                    m.get(i)?.to_string(),
                    mcc.get(i).unwrap_or(0) as u16,
                    n.get(i)?,
                    k.get(i)?,
                ))
            })
            .collect();
        let global = moments(rows.iter().map(|r| (r.2, r.3)));
        let mut by_mcc: BTreeMap<u16, Vec<(f64, f64)>> = BTreeMap::new();
        for r in &rows {
            by_mcc.entry(r.1).or_default().push((r.2, r.3));
        }
        let peers: BTreeMap<u16, BetaShare> = by_mcc
            .into_iter()
            .filter(|(_, v)| v.iter().filter(|(n, _)| *n >= MIN_PEER_SALES).count() >= 3)
            .map(|(mcc, v)| (mcc, moments(v.into_iter())))
            .collect();
        let merchants = rows
            .into_iter()
            .map(|(m, mcc, n, k)| {
                let p = peers.get(&mcc).copied().unwrap_or(global);
                let w = (OWN_CAP / n.max(1.0)).min(1.0);
                let post = BetaShare {
                    alpha: p.alpha + w * k,
                    beta: p.beta + w * (n - k),
                };
                (m, (mcc, post))
            })
            .collect();
        Ok(MerchantNopinParams {
            nopin_limit,
            global,
            peers,
            merchants,
        })
    }

    pub fn explain(&self, s: &MerchantNopinScore) -> (String, Vec<(String, f64, f64)>) {
        let share = s.k as f64 / s.n.max(1) as f64;
        let text = format!(
            "{} of {} approved card-present sales today without a PIN ({:.1}%) where this merchant's normal is {:.1}% and its MCC peers' {:.1}% (p = 1e-{:.1})",
            s.k,
            s.n,
            share * 100.0,
            s.normal * 100.0,
            s.peer * 100.0,
            s.score
        );
        (text, vec![("nopin_share_today".into(), share, s.normal)])
    }
}

/// Beta prior by the method of moments over merchants' (n, k), with the binomial sampling
/// variance taken out; weak, defaulted priors when there is too little to go on.
fn moments(it: impl Iterator<Item = (f64, f64)>) -> BetaShare {
    let v: Vec<(f64, f64)> = it.filter(|(n, _)| *n >= MIN_PEER_SALES).collect();
    let (tn, tk): (f64, f64) = v.iter().fold((0.0, 0.0), |a, (n, k)| (a.0 + n, a.1 + k));
    let mu = if tn > 0.0 {
        (tk / tn).clamp(1e-4, 0.5)
    } else {
        0.01
    };
    let mut strength = 200.0;
    if v.len() >= 3 {
        let shares: Vec<f64> = v.iter().map(|(n, k)| k / n).collect();
        let m = shares.iter().sum::<f64>() / shares.len() as f64;
        let var = shares.iter().map(|s| (s - m).powi(2)).sum::<f64>() / shares.len() as f64;
        let noise = v.iter().map(|(n, _)| mu * (1.0 - mu) / n).sum::<f64>() / v.len() as f64;
        let true_var = var - noise;
        if true_var > 1e-12 {
            strength = (mu * (1.0 - mu) / true_var - 1.0).clamp(10.0, 2000.0);
        } else {
            strength = 2000.0;
        }
    }
    BetaShare {
        alpha: mu * strength,
        beta: (1.0 - mu) * strength,
    }
}
