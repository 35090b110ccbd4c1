//! `switchguard train`: history → features (polars, lazy) → four models (baselines with polars
//! group-bys, the mixture and the logistic regression with linfa) → thresholds → holdout
//! evaluation → one model file and one model card per model. Deterministic for a given input
//! and seed: events are sorted by (ts, id), aggregates are collected into ordered maps, and
//! every random choice comes from a ChaCha stream seeded by `--seed`.

use super::density::Density;
use super::features::{self, NAMES, NF};
use super::file::{Evaluation, ModelFile, ModelKind, Training, FORMAT, FORMAT_VERSION};
use super::merchant_nopin::MerchantNopin;
use super::score::supervised_inputs;
use super::stats::{pr_auc, recall_at_fpr};
use super::supervised::{self, Supervised, NI};
use super::terminal_pin::TerminalPin;
use crate::event::{format_ts, Event, Millis};
use anyhow::Result;
use polars::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// What `train` needs.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub seed: u64,
    /// Share of the span (the latest part) held out for evaluation.
    pub holdout: f64,
    /// False-positive rate (per event) all models together may spend on training traffic.
    pub fpr: f64,
    pub nopin_limit: i64,
    pub window_h: u32,
    pub components: usize,
    pub max_fit: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            seed: 7,
            holdout: 0.25,
            fpr: 1e-4,
            nopin_limit: 100_000,
            window_h: 6,
            components: 6,
            max_fit: 100_000,
        }
    }
}

/// The inputs each model kind is trained on (stored in its file and checked at load).
pub fn inputs_of(kind: ModelKind) -> Vec<String> {
    let v: Vec<&str> = match kind {
        ModelKind::TerminalPin => vec!["terminal", "hour_of_day", "wrong_pins_in_window"],
        ModelKind::MerchantNopin => {
            vec!["merchant", "mcc", "cp_approved_today", "forced_nopin_today"]
        }
        ModelKind::Density => NAMES.to_vec(),
        ModelKind::Supervised => return supervised::input_names(),
    };
    v.into_iter().map(String::from).collect()
}

/// Per-event columns the batch side computed, indexed like the sorted events.
#[derive(Debug, Default)]
pub struct BatchFeatures {
    pub card: Vec<Option<[f64; NF]>>,
    pub wrong_pins: Vec<Option<u32>>,
    pub merchant_day: Vec<Option<(u32, u32)>>,
}

fn take_f64(df: &DataFrame, name: &str) -> PolarsResult<Vec<f64>> {
    Ok(df
        .column(name)?
        .cast(&DataType::Float64)?
        .f64()?
        .iter()
        .map(|v| v.unwrap_or(0.0))
        .collect())
}

fn rows_of(df: &DataFrame) -> PolarsResult<Vec<usize>> {
    Ok(df
        .column("row")?
        .u32()?
        .iter()
        .map(|v| v.unwrap_or(0) as usize)
        .collect())
}

/// The windowed features of every event, by polars (the batch half of the one definition).
pub fn batch_features(events: &[Event], opts: &TrainOptions) -> PolarsResult<BatchFeatures> {
    Ok(batch_features_of(&features::frame(events, opts.nopin_limit)?, opts)?.0)
}

/// [`batch_features`] of an already built [`features::frame`], with the wrong-PIN rows and
/// their window counts ([`features::batch_wrong_pins`]), which the terminal model's fit reuses.
fn batch_features_of(
    df: &DataFrame,
    opts: &TrainOptions,
) -> PolarsResult<(BatchFeatures, DataFrame)> {
    let n = df.height();
    let mut out = BatchFeatures {
        card: vec![None; n],
        wrong_pins: vec![None; n],
        merchant_day: vec![None; n],
    };
    let card = features::batch_card(df.clone().lazy())?.collect()?;
    let rows = rows_of(&card)?;
    let cols: Vec<Vec<f64>> = NAMES[..features::AMOUNT_DEV]
        .iter()
        .map(|c| take_f64(&card, c))
        .collect::<PolarsResult<_>>()?;
    let m1 = card.column("usual_m1")?.f64()?.clone();
    let m2 = card.column("usual_m2")?.f64()?.clone();
    for (i, r) in rows.iter().enumerate() {
        let mut x = [0.0; NF];
        for (j, c) in cols.iter().enumerate() {
            x[j] = c[i];
        }
        let usual = m1.get(i).zip(m2.get(i));
        (x[features::AMOUNT_DEV], x[features::AMOUNT_Z]) = features::amount_devs(x[0], usual);
        out.card[*r] = Some(x);
    }
    let window = opts.window_h as Millis * features::HOUR;
    let wp = features::batch_wrong_pins(df.clone().lazy(), window)?.collect()?;
    for (r, k) in rows_of(&wp)?
        .into_iter()
        .zip(take_f64(&wp, "term_wrong_pins")?)
    {
        out.wrong_pins[r] = Some(k as u32);
    }
    let md = features::batch_merchant_day(df.clone().lazy())?.collect()?;
    let (mn, mk) = (take_f64(&md, "merchant_n")?, take_f64(&md, "merchant_k")?);
    for (i, r) in rows_of(&md)?.into_iter().enumerate() {
        out.merchant_day[r] = Some((mn[i] as u32, mk[i] as u32));
    }
    Ok((out, wp))
}

/// Scores of one model over all events (`NEG_INFINITY` where it does not score).
type Scores = Vec<f64>;

/// Everything `train` produced.
#[derive(Debug)]
pub struct Trained {
    pub files: Vec<ModelFile>,
    /// Per-scenario recall on the holdout when any model's threshold fires (and its
    /// false-positive rate on holdout legitimate events, under "legit").
    pub combined: BTreeMap<String, f64>,
    pub events: usize,
}

/// Put history in the engine's order: by (ts, id), each id once (the first read).
pub fn engine_order(events: &mut Vec<Event>) {
    let mut seen = rustc_hash::FxHashSet::default();
    events.retain(|e| seen.insert(crate::keyed::key_hash(&e.id)));
    events.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.id.cmp(&b.id)));
}

fn is_fraud(ev: &Event) -> bool {
    ev.label.as_deref().is_some_and(|l| l != "legit")
}

/// Fit every model on `events` (sorted by (ts, id), duplicates removed).
pub fn train(
    events: &[Event],
    opts: &TrainOptions,
    mut stage: impl FnMut(&str),
) -> Result<Trained> {
    anyhow::ensure!(
        events.len() >= 1000,
        "{} events are too few to train on",
        events.len()
    );
    stage("features (polars)");
    let df = features::frame(events, opts.nopin_limit)?;
    let (bf, wrong_pins) =
        anyhow::Context::context(batch_features_of(&df, opts), "computing features")?;
    let (t0, t1) = (events[0].ts, events[events.len() - 1].ts);
    // Split by count, not by span: a few far-away events (a completion of a month-old
    // pre-auth) must not move the split.
    let cut = ((events.len() as f64 * (1.0 - opts.holdout)) as usize).min(events.len() - 1);
    let split = events[cut].ts;
    let train_mask: Vec<bool> = events.iter().map(|e| e.ts < split).collect();
    let fraud: Vec<bool> = events.iter().map(is_fraud).collect();
    let labelled = events.iter().any(|e| e.label.is_some());
    let train_lf = df.lazy().filter(col("ts").lt(lit(split)));

    stage("terminal PIN baseline");
    let terminals: Vec<String> = {
        let mut t: Vec<String> = events
            .iter()
            .filter(|e| e.ts < split)
            .map(|e| e.terminal.to_string())
            .collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    // The wrong-PIN window looks only back, so a training row's count and `pin_new` are the
    // same computed over all of history or over the training part alone.
    let counted = wrong_pins
        .lazy()
        .filter(col("ts").lt(lit(split)).and(col("pin_new")))
        .select([col("terminal"), col("hour")]);
    let tp_params = TerminalPin::fit(counted, &terminals, split - t0, opts.window_h)?;
    let tp = TerminalPin::new(tp_params.clone()).map_err(anyhow::Error::msg)?;
    let tp_scores: Scores = events
        .iter()
        .zip(&bf.wrong_pins)
        .map(|(e, k)| k.map_or(f64::NEG_INFINITY, |k| tp.score(&e.terminal, e.ts, k).score))
        .collect();

    stage("merchant no-PIN profile");
    let mn_params = MerchantNopin::fit(
        train_lf.clone().filter(col("cp_approved")),
        opts.nopin_limit,
    )?;
    let mn = MerchantNopin::new(mn_params.clone()).map_err(anyhow::Error::msg)?;
    let forced: Vec<bool> = events
        .iter()
        .map(|e| features::is_forced_nopin(e, opts.nopin_limit))
        .collect();
    let mn_scores: Scores = events
        .iter()
        .zip(&bf.merchant_day)
        .zip(&forced)
        .map(|((e, d), f)| match (d, f) {
            (Some((n, k)), true) => {
                mn.score(e.merchant.as_deref().unwrap_or_default(), e.mcc, *n, *k)
                    .score
            }
            _ => f64::NEG_INFINITY,
        })
        .collect();

    stage("density (linfa Gaussian mixture)");
    let train_x: Vec<[f64; NF]> = bf
        .card
        .iter()
        .zip(&train_mask)
        .filter_map(|(x, t)| x.filter(|_| *t))
        .collect();
    let rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let d_params =
        Density::fit(&train_x, opts.components, opts.max_fit, rng).map_err(anyhow::Error::msg)?;
    let dens = Density::new(d_params.clone()).map_err(anyhow::Error::msg)?;
    let d_scores: Scores = bf
        .card
        .iter()
        .map(|x| x.map_or(f64::NEG_INFINITY, |x| dens.raw_score(&x).0))
        .collect();

    let finite = |s: f64| if s.is_finite() { s } else { 0.0 };
    let inputs: Vec<Option<[f64; NI]>> = (0..events.len())
        .map(|i| {
            bf.card[i].map(|x| {
                supervised_inputs(
                    &x,
                    features::is_wrong_pin(&events[i]),
                    forced[i],
                    finite(tp_scores[i]),
                    finite(mn_scores[i]),
                    finite(d_scores[i]),
                )
            })
        })
        .collect();
    let train_has_both = {
        let (mut p, mut n) = (false, false);
        for i in 0..events.len() {
            if train_mask[i] && inputs[i].is_some() {
                if fraud[i] {
                    p = true
                } else {
                    n = true
                }
            }
        }
        p && n
    };
    let mut sup = None;
    if labelled && train_has_both {
        stage("supervised (linfa logistic regression)");
        let (x, y) = supervised_sample(&inputs, &fraud, &train_mask, opts.seed);
        let p = Supervised::fit(&x, &y).map_err(anyhow::Error::msg)?;
        sup = Some(Supervised::new(p).map_err(anyhow::Error::msg)?);
    }
    let s_scores: Option<Scores> = sup.as_ref().map(|s| {
        inputs
            .iter()
            .map(|x| x.map_or(f64::NEG_INFINITY, |x| s.probability(&x)))
            .collect()
    });

    stage("thresholds and holdout evaluation");
    let models = 3 + s_scores.is_some() as usize;
    let fpr_each = opts.fpr / models as f64;
    let mut all: Vec<(ModelKind, &Scores, f64, serde_json::Value)> = vec![
        (
            ModelKind::TerminalPin,
            &tp_scores,
            3.0,
            serde_json::to_value(&tp_params)?,
        ),
        (
            ModelKind::MerchantNopin,
            &mn_scores,
            3.0,
            serde_json::to_value(&mn_params)?,
        ),
        (
            ModelKind::Density,
            &d_scores,
            f64::NEG_INFINITY,
            serde_json::to_value(&d_params)?,
        ),
    ];
    if let (Some(s), Some(m)) = (&s_scores, &sup) {
        all.push((
            ModelKind::Supervised,
            s,
            0.5,
            serde_json::to_value(&m.params)?,
        ));
    }
    let hold: Vec<usize> = (0..events.len()).filter(|i| !train_mask[*i]).collect();
    let hold_fraud: Vec<bool> = hold.iter().map(|i| fraud[*i]).collect();
    let training = Training {
        window_start: format_ts(t0),
        window_end: format_ts(t1),
        holdout_from: format_ts(split),
        events: events.len() as u64,
        seed: opts.seed,
    };
    let mut files = Vec::new();
    let mut fired = vec![false; hold.len()];
    for (kind, scores, floor, params) in all {
        let tr: Vec<f64> = (0..events.len())
            .filter(|i| train_mask[*i])
            .map(|i| scores[i])
            .collect();
        let tr_f: Vec<bool> = (0..events.len())
            .filter(|i| train_mask[*i])
            .map(|i| fraud[i])
            .collect();
        let threshold = recall_at_fpr(&tr, &tr_f, fpr_each).0.max(floor);
        let hs: Vec<f64> = hold.iter().map(|i| scores[*i]).collect();
        for (f, s) in fired.iter_mut().zip(&hs) {
            *f |= *s >= threshold;
        }
        files.push(ModelFile {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            kind,
            features: inputs_of(kind),
            training: training.clone(),
            threshold,
            evaluation: evaluate(events, &hold, &hs, &hold_fraud, threshold, labelled),
            params,
        });
    }
    let hs_any: Vec<f64> = fired.iter().map(|f| *f as u8 as f64).collect();
    let combined = evaluate(events, &hold, &hs_any, &hold_fraud, 0.5, labelled);
    let mut c = combined.scenario_recall;
    c.insert(
        "legit (false-positive rate)".into(),
        combined.threshold_fpr.unwrap_or(0.0),
    );
    Ok(Trained {
        files,
        combined: c,
        events: events.len(),
    })
}

/// Every fraud row of the training part and a seeded sample of at most 300k legitimate rows.
fn supervised_sample(
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
fn evaluate(
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
