//! Model 2, the merchant no-PIN profile: each merchant's share of approved card-present sales
//! that went through without a PIN where one was due (bypassed, timed out, or absent above the
//! no-PIN limit). The MCC peer group gives a beta prior (fitted by moments on training
//! merchants, with binomial noise removed); the merchant's own last weeks (learnt as the stream
//! goes, by UTC day, today excluded) update it, capped so that a merchant cannot teach the
//! model that forcing no-PIN is its normal, and so that a merchant never seen in training has a
//! normal of its own after a few weeks. Live, each forced no-PIN approval is scored by how
//! improbable the merchant's count so far today is (beta-binomial upper tail, -log10 p): a
//! merchant drifting into forced no-PIN approvals (walkaway collusion) climbs day by day, while
//! a busy day (a sale, a festival) raises the count and the sales together.

use super::params::ParamsError;
pub use super::stats::BetaShare;
use super::stats::{beta_binomial_tail_score, moments};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A merchant's own history counts as at most this many sales against the peer prior.
const OWN_CAP: f64 = 300.0;
/// Merchants with fewer sales do not shape their peer group's prior.
const MIN_PEER_SALES: f64 = 30.0;

/// Learned parameters (the model file's `params`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MerchantNopinParams {
    /// Amounts (minor units) above which an absent PIN counts as forced no-PIN.
    pub nopin_limit: i64,
    /// Whole days of the merchant's own history its normal is learnt from.
    pub base_days: u32,
    /// Most sales the merchant's own history weighs against its peers.
    pub own_cap: f64,
    pub global: BetaShare,
    /// Prior by MCC.
    pub peers: BTreeMap<u16, BetaShare>,
}

/// The loaded model.
#[derive(Debug, Clone)]
pub struct MerchantNopin {
    pub params: MerchantNopinParams,
}

/// Days of the longer window (today and the days before it): a drift over several days adds
/// up there where one small day of it is not enough.
pub const RECENT_DAYS: i64 = 3;

/// A merchant's counts as the score needs them: (approved card-present, forced no-PIN) today
/// so far, over the last [`RECENT_DAYS`] days with today, and over the baselines before each.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MerchantCounts {
    pub today: (u32, u32),
    pub recent: (u32, u32),
    pub base_today: (u32, u32),
    pub base_recent: (u32, u32),
}

impl MerchantCounts {
    /// The counts of a merchant's day `d` (`MerchantDay` streaming, `batch` on histories).
    pub fn of(today: (u32, u32), past: impl Fn(i64, i64) -> (u32, u32), base_days: u32) -> Self {
        let b = base_days as i64;
        let add = |a: (u32, u32), c: (u32, u32)| (a.0 + c.0, a.1 + c.1);
        Self {
            today,
            recent: add(today, past(1, RECENT_DAYS - 1)),
            base_today: past(1, b),
            base_recent: past(RECENT_DAYS, b),
        }
    }
}

/// One scored forced no-PIN approval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MerchantNopinScore {
    /// Approved card-present sales today so far, and how many were forced no-PIN.
    pub n: u32,
    pub k: u32,
    /// The same over the last [`RECENT_DAYS`] days with today.
    #[serde(default)]
    pub n_recent: u32,
    #[serde(default)]
    pub k_recent: u32,
    /// The merchant's normal share and its peer group's.
    pub normal: f64,
    pub peer: f64,
    pub score: f64,
}

impl MerchantNopin {
    pub fn new(params: MerchantNopinParams) -> Result<Self, ParamsError> {
        let ok = |b: &BetaShare| b.alpha > 0.0 && b.beta > 0.0;
        if !ok(&params.global) || !params.peers.values().all(ok) {
            return Err(ParamsError::Beta);
        }
        ParamsError::check_range("base_days", params.base_days, 366)?;
        Ok(Self { params })
    }

    /// The merchant's normal: its peers' prior updated by its own earlier days.
    fn normal(&self, peer: BetaShare, (base_n, base_k): (u32, u32)) -> BetaShare {
        let bn = base_n as f64;
        let w = if bn > self.params.own_cap {
            self.params.own_cap / bn
        } else {
            1.0
        };
        BetaShare {
            alpha: peer.alpha + w * base_k as f64,
            beta: peer.beta + w * (bn - base_k as f64).max(0.0),
        }
    }

    /// Score a forced no-PIN approval at a merchant of `mcc`: the larger of the tails of today
    /// so far and of the last [`RECENT_DAYS`] days, each against the merchant's normal before
    /// it.
    pub fn score(&self, mcc: Option<u16>, c: &MerchantCounts) -> MerchantNopinScore {
        let peer = mcc
            .and_then(|m| self.params.peers.get(&m).copied())
            .unwrap_or(self.params.global);
        let own = self.normal(peer, c.base_today);
        let own3 = self.normal(peer, c.base_recent);
        let (n, k) = c.today;
        let (n3, k3) = c.recent;
        MerchantNopinScore {
            n,
            k,
            n_recent: n3,
            k_recent: k3,
            normal: own.mean(),
            peer: peer.mean(),
            score: beta_binomial_tail_score(k, n, own.alpha, own.beta)
                .max(beta_binomial_tail_score(k3, n3, own3.alpha, own3.beta)),
        }
    }

    /// The peers' priors from training rows of approved card-present sales (`merchant`,
    /// `mcc`, `forced_nopin`).
    pub fn fit(
        rows: LazyFrame,
        nopin_limit: i64,
        base_days: u32,
    ) -> PolarsResult<MerchantNopinParams> {
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
        let global = moments(rows.iter().map(|r| (r.2, r.3)), MIN_PEER_SALES);
        let mut by_mcc: BTreeMap<u16, Vec<(f64, f64)>> = BTreeMap::new();
        for r in &rows {
            by_mcc.entry(r.1).or_default().push((r.2, r.3));
        }
        let peers: BTreeMap<u16, BetaShare> = by_mcc
            .into_iter()
            .filter(|(_, v)| v.iter().filter(|(n, _)| *n >= MIN_PEER_SALES).count() >= 3)
            .map(|(mcc, v)| (mcc, moments(v.into_iter(), MIN_PEER_SALES)))
            .collect();
        Ok(MerchantNopinParams {
            nopin_limit,
            base_days,
            own_cap: OWN_CAP,
            global,
            peers,
        })
    }

    pub fn explain(&self, s: &MerchantNopinScore) -> (String, Vec<(String, f64, f64)>) {
        let share = s.k as f64 / s.n.max(1) as f64;
        let text = format!(
            "{} of {} approved card-present sales today without a PIN ({:.1}%), {} of {} over {RECENT_DAYS} days, where this merchant's normal is {:.1}% and its MCC peers' {:.1}% (p = 1e-{:.1})",
            s.k,
            s.n,
            share * 100.0,
            s.k_recent,
            s.n_recent,
            s.normal * 100.0,
            s.peer * 100.0,
            s.score
        );
        (text, vec![("nopin_share_today".into(), share, s.normal)])
    }
}
