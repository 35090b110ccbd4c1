//! Drift: is live traffic still the traffic a model was trained on? Each model file carries a
//! summary of its training inputs ([`FeatureSummary`]: decile edges and the training share in
//! each bin); the engine keeps a sample of the same inputs as it scores ([`Drift`]), and the
//! population stability index of each input against training ([`psi`]) is exported by replay
//! (`report.json`) and the service (`switchguard_model_feature_psi{model,feature}`).
//!
//! PSI = Σ (live − train) × ln(live / train) over the bins: under 0.1 the population is stable,
//! 0.1–0.25 it has moved, above 0.25 the model is scoring traffic it was not built for.
//!
//! The live side samples every 8th scored event per model and halves its counts at every new
//! event-time day, so it reads the last day or two of traffic. It is not checkpointed (a
//! restart starts sampling afresh) and never changes a decision.

use super::features::NAMES;
use super::file::ModelKind;
use super::score::ModelOut;
use super::supervised::EXTRA;
use crate::time::EventTime;
use serde::{Deserialize, Serialize};

/// Bins of a summary: up to ten (deciles; fewer for inputs with repeated values).
const DECILES: usize = 10;
/// One scored event in this many is sampled.
const SAMPLE_EVERY: u32 = 8;
/// Shares are floored at this before taking logs (an empty bin is not infinitely surprising).
const FLOOR: f64 = 1e-4;

/// The training distribution of one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSummary {
    /// Bin edges: bin i holds values v with edges[i-1] <= v < edges[i].
    pub edges: Vec<f64>,
    /// Share of training values in each bin (edges.len() + 1 of them).
    pub shares: Vec<f64>,
    pub count: u64,
    pub mean: f64,
}

impl FeatureSummary {
    /// Summarise `values` (the training rows of one input).
    pub fn of(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_unstable_by(f64::total_cmp);
        let mut edges: Vec<f64> = (1..DECILES)
            .filter_map(|i| v.get(v.len() * i / DECILES).copied())
            .collect();
        edges.dedup();
        // An edge at the minimum would leave the first bin empty by construction.
        if edges.first() == v.first() {
            edges.remove(0);
        }
        let mut counts = vec![0u64; edges.len() + 1];
        for x in &v {
            counts[bin(&edges, *x)] += 1;
        }
        let n = v.len().max(1) as f64;
        Self {
            shares: counts.iter().map(|c| *c as f64 / n).collect(),
            count: v.len() as u64,
            mean: v.iter().sum::<f64>() / n,
            edges,
        }
    }
}

fn bin(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|e| *e <= x)
}

/// PSI of live bin counts against a training summary.
pub fn psi(s: &FeatureSummary, live: &[f64]) -> Option<f64> {
    let total: f64 = live.iter().sum();
    if total <= 0.0 || live.len() != s.shares.len() {
        return None;
    }
    Some(
        s.shares
            .iter()
            .zip(live)
            .map(|(e, a)| {
                let (e, a) = (e.max(FLOOR), (a / total).max(FLOOR));
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

/// The inputs summarised for each model kind, in the order [`inputs`] gives their values.
pub fn names(kind: ModelKind) -> Vec<&'static str> {
    match kind {
        ModelKind::TerminalPin => vec![
            "pin_attempts_in_window",
            "wrong_pin_episodes_in_window",
            "unresolved_in_window",
        ],
        ModelKind::MerchantNopin => vec!["cp_approved_today", "forced_nopin_today"],
        ModelKind::CardOutlier => vec!["log_amount", "card_amount_z", "mcc_amount_z"],
        ModelKind::Density => NAMES.to_vec(),
        ModelKind::Supervised => EXTRA.to_vec(),
    }
}

/// The values of a model's summarised inputs on one event, if the model scored it.
pub fn inputs(kind: ModelKind, o: &ModelOut, out: &mut Vec<f64>) -> bool {
    out.clear();
    match kind {
        ModelKind::TerminalPin => {
            if let Some(s) = &o.terminal_pin {
                out.extend([s.attempts as f64, s.episodes as f64, s.unresolved as f64]);
            }
        }
        ModelKind::MerchantNopin => {
            if let Some(s) = &o.merchant_nopin {
                out.extend([s.n as f64, s.k as f64]);
            }
        }
        ModelKind::CardOutlier => {
            if let (Some(s), Some(c)) = (&o.card_outlier, &o.card) {
                out.extend([c.x[0], s.z_card, s.z_mcc]);
            }
        }
        ModelKind::Density => {
            if let (Some(c), Some(_)) = (&o.card, &o.density) {
                out.extend(c.x);
            }
        }
        ModelKind::Supervised => {
            if let Some(x) = &o.inputs {
                out.extend(&x[NAMES.len()..]);
            }
        }
    }
    !out.is_empty()
}

/// One model's live sample: its training summaries and the live counts per input.
#[derive(Debug, Clone)]
struct Sample {
    kind: ModelKind,
    /// Training summaries by input (None: not in the file).
    sums: Vec<Option<FeatureSummary>>,
    /// Live (decayed) counts per input and bin.
    counts: Vec<Vec<f64>>,
    /// Events the model scored (one in [`SAMPLE_EVERY`] is counted).
    tick: u32,
}

/// Live bin counts of every loaded model's inputs.
#[derive(Debug, Clone, Default)]
pub struct Drift {
    models: Vec<Sample>,
    /// The event-time day of the newest sample (none yet: nothing to decay).
    day: Option<i64>,
    scratch: Vec<f64>,
}

impl Drift {
    /// Set up for `models`: (kind, training summaries by input name).
    pub fn new<'a>(
        models: impl Iterator<
            Item = (
                ModelKind,
                &'a std::collections::BTreeMap<String, FeatureSummary>,
            ),
        >,
    ) -> Self {
        let models = models
            .map(|(kind, sum)| {
                let s: Vec<Option<FeatureSummary>> =
                    names(kind).iter().map(|n| sum.get(*n).cloned()).collect();
                let counts = s
                    .iter()
                    .map(|s| vec![0.0; s.as_ref().map_or(0, |s| s.shares.len())])
                    .collect();
                Sample {
                    kind,
                    sums: s,
                    counts,
                    tick: 0,
                }
            })
            .collect();
        Self {
            models,
            day: None,
            scratch: Vec::new(),
        }
    }

    /// Sample what the models said about an event at `ts`.
    pub fn observe(&mut self, o: &ModelOut, ts: EventTime) {
        let day = ts.day();
        if let Some(last) = self.day.filter(|last| day > *last) {
            let halve = 0.5f64.powi((day - last).min(60) as i32);
            for m in &mut self.models {
                for c in m.counts.iter_mut().flatten() {
                    *c *= halve;
                }
            }
        }
        if self.day.is_none_or(|last| day > last) {
            self.day = Some(day);
        }
        let scratch = &mut self.scratch;
        for Sample {
            kind,
            sums,
            counts,
            tick,
        } in &mut self.models
        {
            if !inputs(*kind, o, scratch) {
                continue;
            }
            *tick += 1;
            if *tick % SAMPLE_EVERY != 0 {
                continue;
            }
            for ((s, c), x) in sums.iter().zip(counts.iter_mut()).zip(scratch.iter()) {
                if let Some(s) = s {
                    if x.is_finite() {
                        c[bin(&s.edges, *x)] += 1.0;
                    }
                }
            }
        }
    }

    /// Add another engine's counts (a scale-out instance holds several shards).
    pub fn merge(&mut self, other: &Drift) {
        for (m, o) in self.models.iter_mut().zip(&other.models) {
            if m.kind == o.kind {
                for (a, b) in m.counts.iter_mut().zip(&o.counts) {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                }
            }
        }
    }

    /// PSI of every input with a training summary and live samples: (model, input, psi).
    pub fn psi(&self) -> Vec<(&'static str, &'static str, f64)> {
        let mut out = Vec::new();
        for m in &self.models {
            for ((name, s), c) in names(m.kind).into_iter().zip(&m.sums).zip(&m.counts) {
                if let Some(v) = s.as_ref().and_then(|s| psi(s, c)) {
                    out.push((m.kind.as_str(), name, v));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_is_zero_on_the_training_distribution_and_large_when_it_shifts() {
        let train: Vec<f64> = (0..10_000).map(|i| (i % 100) as f64).collect();
        let s = FeatureSummary::of(&train);
        assert_eq!(s.shares.len(), 10);
        let counts = |vals: &[f64]| {
            let mut c = vec![0.0; s.shares.len()];
            for v in vals {
                c[bin(&s.edges, *v)] += 1.0;
            }
            c
        };
        assert!(psi(&s, &counts(&train)).unwrap() < 1e-9);
        let shifted: Vec<f64> = train.iter().map(|v| v + 30.0).collect();
        assert!(psi(&s, &counts(&shifted)).unwrap() > 0.25);
        // A count input with repeated values gets fewer bins, none empty by construction.
        let few = FeatureSummary::of(&[0.0, 0.0, 0.0, 1.0, 1.0, 2.0]);
        assert!(few.shares.iter().all(|x| *x > 0.0), "{few:?}");
        assert!(psi(&s, &[0.0; 10]).is_none());
    }
}
