//! Model 1, the terminal PIN baseline. What signals probing or a tampered pad is not a wrong
//! PIN as such (a busy lane sees several mistypes a day) but wrong PINs *out of proportion to
//! the terminal's own PIN traffic*, and above all wrong PINs that the same card never follows
//! with its right PIN. On each wrong PIN the engine counts, over the trailing window, the
//! terminal's PIN attempts `n`, its wrong-PIN episodes `w` (one per card) and the earlier ones
//! still unresolved `u` (no verified PIN from that card within a few minutes; see `pin.rs`),
//! and scores how improbable `u` unresolved and `w − u` other episodes out of `n` attempts are
//! under the terminal's own rates (two beta-binomial upper tails on disjoint counts, combined
//! by Fisher's method; −log10 p).
//!
//! The terminal's rates are learnt as the stream goes (its last `base_days` days), shrunk
//! toward its peers': a beta prior per MCC fitted on training terminals (global when the MCC
//! is unknown), with the terminal's own history weighing at most `own_cap` attempts. A
//! terminal with little history (a new lane, a terminal never seen in training) is judged by
//! its peers' rates on unresolved episodes alone, never on its mistypes, instead of alerting
//! on a cold start ([`MIN_OWN_DAYS`]); a lane with 40 PIN customers an hour expects ten times
//! the mistypes of one with 4.

use super::merchant_nopin::BetaShare;
use super::params::ParamsError;
use super::pin::{PinCounts, PinWindows};
use super::stats::{beta_binomial_tail_score, moments};
use crate::time::Span;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A terminal's own history counts as at most this many PIN attempts against its peers' prior.
const OWN_CAP: f64 = 3_000.0;
/// Terminals with fewer training attempts do not shape their peers' prior.
const MIN_PEER_ATTEMPTS: f64 = 50.0;
/// Resolved episodes (a mistype, then the right PIN) count as evidence only at a terminal with
/// PIN attempts on this many of its last days: how often customers mistype varies thirty-fold
/// from a quiet shop to a busy lane, so a new terminal's mistypes say nothing until it has a
/// week of its own (a cold start is judged on unresolved episodes alone).
pub const MIN_OWN_DAYS: u32 = 7;
/// Peers' priors hold at most this many attempts: most terminals of an MCC are quiet and much
/// alike, which makes a moments fit confident, but a new busy lane is not like them; a few
/// days of its own history must outweigh them.
const MAX_PRIOR_ATTEMPTS: f64 = 200.0;

/// The peers' rates of resolved and of unresolved wrong-PIN episodes, per PIN attempt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PinPrior {
    pub resolved: BetaShare,
    pub unresolved: BetaShare,
}

/// Learned parameters (the model file's `params`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TerminalPinParams {
    /// Trailing window the live counts cover, in hours.
    pub window_h: u32,
    /// An episode is resolved by the card's verified PIN within this many minutes.
    pub resolve_min: u32,
    /// Days of the terminal's own history its rates are learnt from.
    pub base_days: u32,
    /// Most PIN attempts the terminal's own history weighs against its peers.
    pub own_cap: f64,
    /// Prior for terminals of an MCC not listed.
    pub global: PinPrior,
    /// Prior by MCC.
    pub peers: BTreeMap<u16, PinPrior>,
}

/// The loaded model.
#[derive(Debug, Clone)]
pub struct TerminalPin {
    pub params: TerminalPinParams,
}

/// One scored wrong PIN: the window's counts, what the terminal's rates expected, the score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TerminalPinScore {
    pub attempts: u32,
    pub episodes: u32,
    pub unresolved: u32,
    pub expected_episodes: f64,
    pub expected_unresolved: f64,
    pub score: f64,
}

impl TerminalPin {
    pub fn new(params: TerminalPinParams) -> Result<Self, ParamsError> {
        ParamsError::check_range("window_h", params.window_h, 24)?;
        ParamsError::check_range("resolve_min", params.resolve_min, 60 * params.window_h)?;
        ParamsError::check_range("base_days", params.base_days, 366)?;
        let ok = |p: &PinPrior| {
            [p.resolved, p.unresolved]
                .iter()
                .all(|b| b.alpha > 0.0 && b.beta > 0.0 && b.alpha.is_finite() && b.beta.is_finite())
        };
        if !ok(&params.global) || !params.peers.values().all(ok) {
            return Err(ParamsError::Beta);
        }
        Ok(Self { params })
    }

    pub fn windows(&self) -> PinWindows {
        PinWindows {
            window: Span::hours(self.params.window_h as i64),
            resolve: Span::minutes(self.params.resolve_min as i64),
            base_days: self.params.base_days as i64,
        }
    }

    /// How long a terminal's state matters after its last PIN attempt.
    pub fn retention(&self) -> Span {
        Span::days(self.params.base_days as i64 + 1)
    }

    pub fn score(&self, mcc: Option<u16>, c: &PinCounts) -> TerminalPinScore {
        let prior = mcc
            .and_then(|m| self.params.peers.get(&m))
            .unwrap_or(&self.params.global);
        let a = c.base.attempts as f64;
        let weight = if a > self.params.own_cap {
            self.params.own_cap / a
        } else {
            1.0
        };
        let post = |p: BetaShare, k: u32| BetaShare {
            alpha: p.alpha + weight * k as f64,
            beta: p.beta + weight * (a - k as f64).max(0.0),
        };
        let base_resolved = c.base.episodes.saturating_sub(c.base.unresolved);
        let pr = post(prior.resolved, base_resolved);
        let pu = post(prior.unresolved, c.base.unresolved);
        let others = c.episodes.saturating_sub(c.unresolved);
        let se = beta_binomial_tail_score(others, c.attempts, pr.alpha, pr.beta);
        let su = beta_binomial_tail_score(c.unresolved, c.attempts, pu.alpha, pu.beta);
        // Fisher's combination of the two tails (in -log10 units): evidence from too many
        // episodes and from too many unresolved ones adds up; when nothing is unresolved the
        // score is that of the episodes alone, slightly discounted.
        let se = if c.base_active_days >= MIN_OWN_DAYS {
            se
        } else {
            0.0
        };
        let x = (se + su) * std::f64::consts::LN_10;
        let score = (se + su) - (1.0 + x).log10();
        TerminalPinScore {
            attempts: c.attempts,
            episodes: c.episodes,
            unresolved: c.unresolved,
            expected_episodes: c.attempts as f64 * (pr.mean() + pu.mean()),
            expected_unresolved: c.attempts as f64 * pu.mean(),
            score: score.max(0.0),
        }
    }

    /// Fit the peers' priors from training terminals: (MCC, PIN attempts, episodes, unresolved
    /// episodes) per terminal.
    pub fn fit(
        terminals: &[(u16, f64, f64, f64)],
        window_h: u32,
        resolve_min: u32,
        base_days: u32,
    ) -> TerminalPinParams {
        let weak = |b: BetaShare| {
            let s = (b.alpha + b.beta).min(MAX_PRIOR_ATTEMPTS);
            BetaShare {
                alpha: b.mean() * s,
                beta: (1.0 - b.mean()) * s,
            }
        };
        let prior = |rows: &[&(u16, f64, f64, f64)]| PinPrior {
            resolved: weak(moments(
                rows.iter().map(|r| (r.1, (r.2 - r.3).max(0.0))),
                MIN_PEER_ATTEMPTS,
            )),
            unresolved: weak(moments(rows.iter().map(|r| (r.1, r.3)), MIN_PEER_ATTEMPTS)),
        };
        let all: Vec<&(u16, f64, f64, f64)> = terminals.iter().collect();
        let mut by_mcc: BTreeMap<u16, Vec<&(u16, f64, f64, f64)>> = BTreeMap::new();
        for t in terminals {
            by_mcc.entry(t.0).or_default().push(t);
        }
        let peers = by_mcc
            .into_iter()
            .filter(|(_, v)| v.iter().filter(|r| r.1 >= MIN_PEER_ATTEMPTS).count() >= 3)
            .map(|(mcc, v)| (mcc, prior(&v)))
            .collect();
        TerminalPinParams {
            window_h,
            resolve_min,
            base_days,
            own_cap: OWN_CAP,
            global: prior(&all),
            peers,
        }
    }

    /// Why a score is high, in words and as (feature, value, normal) rows.
    pub fn explain(&self, s: &TerminalPinScore) -> (String, Vec<(String, f64, f64)>) {
        let h = self.params.window_h;
        let text = format!(
            "{} of {} PIN attempts at this terminal in the last {h}h were wrong-PIN episodes \
             (its normal: {:.1}), {} earlier ones not followed by the card's right PIN within \
             {} min (normal: {:.1}) (p = 1e-{:.1})",
            s.episodes,
            s.attempts,
            s.expected_episodes,
            s.unresolved,
            self.params.resolve_min,
            s.expected_unresolved,
            s.score
        );
        let rows = vec![
            (
                format!("wrong_pin_episodes_{h}h"),
                s.episodes as f64,
                s.expected_episodes,
            ),
            (
                format!("unresolved_wrong_pins_{h}h"),
                s.unresolved as f64,
                s.expected_unresolved,
            ),
        ];
        (text, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::pin::DayPin;

    fn model() -> TerminalPin {
        // Peers: about 1 episode in 100 attempts, 1 unresolved in 1,000, loosely held.
        let rows: Vec<(u16, f64, f64, f64)> = (0..20)
            .map(|i| (5411, 1000.0, 5.0 + i as f64, 0.5 + (i % 3) as f64))
            .collect();
        TerminalPin::new(TerminalPin::fit(&rows, 6, 5, 28)).unwrap()
    }

    fn counts(attempts: u32, episodes: u32, unresolved: u32, base: (u32, u32, u32)) -> PinCounts {
        PinCounts {
            attempts,
            episodes,
            unresolved,
            base: DayPin {
                day: 0,
                attempts: base.0,
                episodes: base.1,
                unresolved: base.2,
            },
            base_active_days: if base.0 > 0 { 28 } else { 0 },
        }
    }

    #[test]
    fn a_busy_lanes_mistypes_are_normal_for_it_and_the_same_at_a_quiet_terminal_are_not() {
        let m = model();
        // A lane with 40 PIN customers in six hours and a 6 % mistype rate over four weeks.
        let lane = m.score(Some(5411), &counts(40, 3, 0, (1200, 72, 3)));
        assert!(lane.score < 2.0, "{lane:?}");
        // Three episodes out of five attempts at a terminal whose history has none.
        let quiet = m.score(Some(5411), &counts(5, 3, 3, (150, 0, 0)));
        assert!(quiet.score > 5.0, "{quiet:?}");
    }

    #[test]
    fn a_cold_start_terminal_is_judged_by_its_peers() {
        let m = model();
        // No history: two episodes in 30 attempts is within the peers' spread...
        let s = m.score(Some(5411), &counts(30, 2, 1, (0, 0, 0)));
        assert!(s.score < 3.0, "{s:?}");
        // ... eight unresolved in 30 is not.
        let s = m.score(Some(5411), &counts(30, 8, 8, (0, 0, 0)));
        assert!(s.score > 5.0, "{s:?}");
        // Unknown MCC: the global prior.
        let g = m.score(Some(1234), &counts(30, 2, 1, (0, 0, 0)));
        assert!(g.score < 3.0);
    }
}
