//! Thresholds and the holdout figures of `train`: each model's threshold is set on the
//! training part, and judged per event on the holdout (the newest part of the history): PR-AUC,
//! recall at a false-positive rate of 1e-4, the live threshold's false-positive rate, recall by
//! labelled scenario. (The replay evaluation across worlds is `evaluate.rs`.)

use super::file::Evaluation;
use super::stats::{pr_auc, recall_at_fpr};
use super::supervised::NI;
use crate::event::Event;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Every fraud row of the training part and a seeded sample of at most 300k legitimate rows.
pub fn supervised_sample(
    inputs: &[Option<[f64; NI]>],
    fraud: &[bool],
    train: &[bool],
    seed: u64,
) -> (Vec<[f64; NI]>, Vec<bool>) {
    use rand::Rng;
    let legit = (0..inputs.len())
        .filter(|i| train[*i] && inputs[*i].is_some() && !fraud[*i])
        .count();
    let keep = (300_000.0 / legit.max(1) as f64).min(1.0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..inputs.len() {
        if let (true, Some(v)) = (train[i], inputs[i]) {
            if fraud[i] || rng.gen::<f64>() < keep {
                x.push(v);
                y.push(fraud[i]);
            }
        }
    }
    (x, y)
}

/// Holdout figures of one score.
pub fn evaluate(
    events: &[Event],
    hold: &[usize],
    scores: &[f64],
    fraud: &[bool],
    threshold: f64,
    labelled: bool,
) -> Evaluation {
    let mut e = Evaluation {
        holdout_events: hold.len() as u64,
        holdout_fraud: fraud.iter().filter(|f| **f).count() as u64,
        ..Default::default()
    };
    let legit = fraud.iter().filter(|f| !**f).count().max(1);
    let fp = scores
        .iter()
        .zip(fraud)
        .filter(|(s, f)| !**f && **s >= threshold)
        .count();
    e.threshold_fpr = Some(fp as f64 / legit as f64);
    if !labelled {
        return e;
    }
    e.pr_auc = Some(pr_auc(scores, fraud));
    e.recall_at_fpr_1e4 = Some(recall_at_fpr(scores, fraud, 1e-4).1);
    let mut by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (k, i) in hold.iter().enumerate() {
        if let Some(l) = events[*i].label.as_deref().filter(|l| *l != "legit") {
            let c = by.entry(l.to_string()).or_default();
            c.0 += 1;
            c.1 += (scores[k] >= threshold) as u64;
        }
    }
    e.scenario_recall = by
        .into_iter()
        .map(|(l, (n, h))| (l, h as f64 / n as f64))
        .collect();
    e
}
