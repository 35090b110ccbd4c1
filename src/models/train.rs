//! `switchguard train`: history → features (polars and per-entity passes, `batch.rs`) → five
//! models (priors and normals with group-bys, the mixture and the logistic regression with
//! linfa) → thresholds → holdout figures and training summaries → one model file per model.
//! Deterministic for a given input and seed: events are sorted by (ts, id), aggregates are
//! collected into ordered maps, and every random choice comes from a ChaCha stream seeded by
//! `--seed`. The replay evaluation across worlds is `evaluate.rs`; writing the set is
//! `app::train`.

use super::batch::{self, TerminalTotals};
use super::card_outlier::CardOutlier;
use super::density::Density;
use super::drift::{self, FeatureSummary};
use super::features::{self, CardFeatures, NF};
use super::file::{inputs_of, ModelFile, ModelKind, Training, FORMAT, FORMAT_VERSION};
use super::holdout::{evaluate, supervised_sample};
use super::labels::Labels;
use super::merchant_nopin::{MerchantCounts, MerchantNopin};
use super::pin::{PinCounts, PinWindows};
use super::score::{supervised_inputs, ModelOut};
use super::stats::recall_at_fpr;
use super::supervised::{Supervised, NI};
use super::terminal_pin::TerminalPin;
use crate::event::{format_ts, Event};
use crate::time::{EventTime, Span};
use anyhow::Result;
use polars::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// What `train` needs.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub seed: u64,
    /// Share of the history (the latest part) held out for evaluation.
    pub holdout: f64,
    /// False-positive rate (per event) all models together may spend on training traffic.
    pub fpr: f64,
    pub nopin_limit: i64,
    /// The terminal model's window (hours), resolve time (minutes) and baseline days.
    pub window_h: u32,
    pub resolve_min: u32,
    pub base_days: u32,
    pub components: usize,
    pub max_fit: usize,
    /// Weight of the MCC's normal in the card outlier score.
    pub mcc_weight: f64,
    /// Fit the Gaussian-mixture density too (off by default: measured, it adds nothing to the
    /// card outlier rule and costs the most per event; README "Models").
    pub density: bool,
    /// `Some(true)`: the history is simulated traffic; `None`: simulated when it carries the
    /// simulator's `label` field.
    pub simulated: Option<bool>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            seed: 7,
            holdout: 0.25,
            fpr: 1e-4,
            nopin_limit: 100_000,
            window_h: 12,
            resolve_min: 5,
            base_days: 28,
            components: 6,
            max_fit: 100_000,
            mcc_weight: 2.0,
            density: false,
            simulated: None,
        }
    }
}

impl TrainOptions {
    pub fn pin_windows(&self) -> PinWindows {
        PinWindows {
            window: features::HOUR * self.window_h as i64,
            resolve: Span::minutes(self.resolve_min as i64),
            base_days: self.base_days as i64,
        }
    }
}

/// Per-event features the batch side computed, indexed like the sorted events.
#[derive(Debug, Default)]
pub struct BatchFeatures {
    pub card: Vec<Option<CardFeatures>>,
    pub pin: Vec<Option<PinCounts>>,
    pub merchant_day: Vec<Option<(u32, u32)>>,
    /// The merchant's counts the score needs, for the same rows.
    pub merchant: Vec<Option<MerchantCounts>>,
    /// Each terminal's totals before the split (the terminal model's fit).
    pub terminals: Vec<TerminalTotals>,
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

/// The features of every event, by the batch side (`batch.rs`); `split`: terminal totals
/// count only events before it.
pub fn batch_features(
    events: &[Event],
    opts: &TrainOptions,
    split: EventTime,
) -> PolarsResult<BatchFeatures> {
    let df = batch::frame(events, opts.nopin_limit)?;
    let card = batch::batch_card_tx(df.clone().lazy())?.collect()?;
    let (h1, h24) = (
        take_f64(&card, "card_tx_1h")?,
        take_f64(&card, "card_tx_24h")?,
    );
    let tx: FxHashMap<usize, (f64, f64)> = rows_of(&card)?
        .into_iter()
        .enumerate()
        .map(|(k, r)| (r, (h1[k], h24[k])))
        .collect();
    let w = opts.pin_windows();
    let (wrong, attempts) = batch::batch_pin(df.clone().lazy(), w.window)?;
    let (wrong, attempts) = (wrong.collect()?, attempts.collect()?);
    let new: FxHashMap<usize, bool> = rows_of(&wrong)?
        .into_iter()
        .zip(wrong.column("pin_new")?.bool()?.iter())
        .map(|(r, n)| (r, n.unwrap_or(false)))
        .collect();
    let in_window: FxHashMap<usize, u32> = rows_of(&attempts)?
        .into_iter()
        .zip(take_f64(&attempts, "term_attempts")?)
        .map(|(r, n)| (r, n as u32))
        .collect();
    let (pin, terminals) = batch::pin_counts(events, &new, &in_window, w, split);
    let md = batch::batch_merchant_day(df.lazy())?.collect()?;
    let (mn, mk) = (take_f64(&md, "merchant_n")?, take_f64(&md, "merchant_k")?);
    let mut merchant_day = vec![None; events.len()];
    for (i, r) in rows_of(&md)?.into_iter().enumerate() {
        merchant_day[r] = Some((mn[i] as u32, mk[i] as u32));
    }
    Ok(BatchFeatures {
        card: batch::card_features(events, &tx),
        pin,
        merchant: batch::merchant_counts(events, &merchant_day, opts.nopin_limit, opts.base_days),
        merchant_day,
        terminals,
    })
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
    /// Events from this time on were the holdout.
    pub holdout_from: EventTime,
}

/// Put history in the engine's order: by (ts, id), each id once (the first read).
pub fn engine_order(events: &mut Vec<Event>) {
    let mut seen = rustc_hash::FxHashSet::default();
    events.retain(|e| seen.insert(crate::keyed::key_hash(&e.id)));
    events.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.id.cmp(&b.id)));
}

/// Is `ev` fraud: a disposition from the risk console first, else the simulator's label.
fn is_fraud(ev: &Event, labels: Option<&Labels>) -> bool {
    if let Some(v) = labels.and_then(|l| l.of(&ev.id)) {
        return v;
    }
    ev.label.as_deref().is_some_and(|l| l != "legit")
}

/// The history being trained on and what is known of each of its events, as the fits share
/// them.
struct History<'a> {
    events: &'a [Event],
    opts: &'a TrainOptions,
    /// Events from this time on are the holdout.
    split: EventTime,
    /// Per event: before the split.
    train_mask: Vec<bool>,
    fraud: Vec<bool>,
    /// Whether any event has a label or a disposition.
    labelled: bool,
    /// Per event: a forced no-PIN card-present sale.
    forced: Vec<bool>,
}

/// A fitted model: its kind, the floor of its threshold and its parameters.
type Fitted = (ModelKind, f64, serde_json::Value);

/// Fit every model on `events` (sorted by (ts, id), duplicates removed).
pub fn train(
    events: &[Event],
    opts: &TrainOptions,
    labels: Option<&Labels>,
    mut stage: impl FnMut(&str),
) -> Result<Trained> {
    anyhow::ensure!(
        events.len() >= 1000,
        "{} events are too few to train on",
        events.len()
    );
    // Split by count, not by span: a few far-away events (a completion of a month-old
    // pre-auth) must not move the split.
    let cut = ((events.len() as f64 * (1.0 - opts.holdout)) as usize).min(events.len() - 1);
    let split = events[cut].ts;
    stage("features (polars)");
    let bf = anyhow::Context::context(batch_features(events, opts, split), "computing features")?;
    let h = History {
        events,
        opts,
        split,
        train_mask: events.iter().map(|e| e.ts < split).collect(),
        fraud: events.iter().map(|e| is_fraud(e, labels)).collect(),
        labelled: events.iter().any(|e| e.label.is_some())
            || labels.is_some_and(|l| events.iter().any(|e| l.of(&e.id).is_some())),
        forced: events
            .iter()
            .map(|e| features::is_forced_nopin(e, opts.nopin_limit))
            .collect(),
    };
    // What each model says about every event, as the engine would put it in `ModelOut`:
    // each fit fills its own part.
    let mut outs: Vec<ModelOut> = bf
        .card
        .iter()
        .map(|c| ModelOut {
            card: *c,
            ..ModelOut::default()
        })
        .collect();
    stage("terminal PIN baseline");
    let mut all = vec![fit_terminal_pin(&h, &bf, &mut outs)?];
    stage("merchant no-PIN profile");
    all.push(fit_merchant_nopin(&h, &bf, &mut outs)?);
    stage("card outlier (robust profile)");
    all.push(fit_card_outlier(&h, &bf, &mut outs)?);
    if opts.density {
        stage("density (linfa Gaussian mixture)");
        all.push(fit_density(&h, &bf, &mut outs)?);
    }
    all.extend(fit_supervised(&h, &mut outs, &mut stage)?);

    stage("thresholds, holdout evaluation, training summaries");
    let (files, combined) = thresholds_and_files(&h, all, &outs);
    Ok(Trained {
        files,
        combined,
        events: events.len(),
        holdout_from: split,
    })
}

fn fit_terminal_pin(h: &History, bf: &BatchFeatures, outs: &mut [ModelOut]) -> Result<Fitted> {
    let o = h.opts;
    let params = TerminalPin::fit(&bf.terminals, o.window_h, o.resolve_min, o.base_days);
    let tp = TerminalPin::new(params.clone())?;
    for ((out, e), c) in outs.iter_mut().zip(h.events).zip(&bf.pin) {
        out.terminal_pin = c.as_ref().map(|c| tp.score(e.mcc, c));
    }
    Ok((ModelKind::TerminalPin, 3.0, serde_json::to_value(&params)?))
}

fn fit_merchant_nopin(h: &History, bf: &BatchFeatures, outs: &mut [ModelOut]) -> Result<Fitted> {
    let df = batch::frame(h.events, h.opts.nopin_limit)?;
    let train_lf = df.lazy().filter(col("ts").lt(lit(h.split.as_ms())));
    let params = MerchantNopin::fit(
        train_lf.filter(col("cp_approved")),
        h.opts.nopin_limit,
        h.opts.base_days,
    )?;
    let mn = MerchantNopin::new(params.clone())?;
    for (i, out) in outs.iter_mut().enumerate() {
        out.merchant_nopin = match (&bf.merchant[i], h.forced[i]) {
            (Some(c), true) => Some(mn.score(h.events[i].mcc, c)),
            _ => None,
        };
    }
    Ok((
        ModelKind::MerchantNopin,
        3.0,
        serde_json::to_value(&params)?,
    ))
}

fn fit_card_outlier(h: &History, bf: &BatchFeatures, outs: &mut [ModelOut]) -> Result<Fitted> {
    let approved: Vec<(Option<u16>, f64)> = h
        .events
        .iter()
        .zip(&bf.card)
        .zip(&h.train_mask)
        .filter(|((e, c), t)| **t && c.is_some() && e.approved())
        .map(|((e, c), _)| (e.mcc, c.as_ref().map_or(0.0, |c| c.x[0])))
        .collect();
    let params = CardOutlier::fit(&approved, h.opts.mcc_weight);
    let co = CardOutlier::new(params.clone())?;
    for ((out, e), c) in outs.iter_mut().zip(h.events).zip(&bf.card) {
        out.card_outlier = c.as_ref().and_then(|c| co.score(c, e.mcc));
    }
    Ok((ModelKind::CardOutlier, 3.0, serde_json::to_value(&params)?))
}

fn fit_density(h: &History, bf: &BatchFeatures, outs: &mut [ModelOut]) -> Result<Fitted> {
    let train_x: Vec<[f64; NF]> = bf
        .card
        .iter()
        .zip(&h.train_mask)
        .filter_map(|(c, t)| c.filter(|_| *t).map(|c| c.x))
        .collect();
    let rng = ChaCha8Rng::seed_from_u64(h.opts.seed);
    let params = Density::fit(&train_x, h.opts.components, h.opts.max_fit, rng)?;
    let dens = Density::new(params.clone())?;
    for (o, c) in outs.iter_mut().zip(&bf.card) {
        o.density = c.as_ref().map(|c| dens.score(&c.x));
    }
    Ok((
        ModelKind::Density,
        f64::NEG_INFINITY,
        serde_json::to_value(&params)?,
    ))
}

/// The logistic regression on the other models' scores, when the history is labelled and
/// its training part has both fraud and legitimate events.
fn fit_supervised(
    h: &History,
    outs: &mut [ModelOut],
    stage: &mut impl FnMut(&str),
) -> Result<Option<Fitted>> {
    let score_of = |f: Option<f64>| f.unwrap_or(0.0);
    let inputs: Vec<Option<[f64; NI]>> = outs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            o.card.map(|c| {
                supervised_inputs(
                    &c.x,
                    h.events[i].wrong_pin(),
                    h.forced[i],
                    score_of(o.terminal_pin.map(|s| s.score)),
                    score_of(o.merchant_nopin.map(|s| s.score)),
                    score_of(o.density.map(|s| s.score)),
                )
            })
        })
        .collect();
    let train_has_both = {
        let rows = || (0..inputs.len()).filter(|i| h.train_mask[*i] && inputs[*i].is_some());
        rows().any(|i| h.fraud[i]) && rows().any(|i| !h.fraud[i])
    };
    if !(h.labelled && train_has_both) {
        return Ok(None);
    }
    stage("supervised (linfa logistic regression)");
    let (x, y) = supervised_sample(&inputs, &h.fraud, &h.train_mask, h.opts.seed);
    let p = Supervised::fit(&x, &y)?;
    let sup = Supervised::new(p)?;
    for (o, x) in outs.iter_mut().zip(&inputs) {
        o.fraud_probability = x.as_ref().map(|x| sup.probability(x));
        o.inputs = *x;
    }
    Ok(Some((
        ModelKind::Supervised,
        0.5,
        serde_json::to_value(&sup.params)?,
    )))
}

/// One model's score of every event (`NEG_INFINITY` where it does not score).
fn scores(kind: ModelKind, outs: &[ModelOut]) -> Scores {
    outs.iter()
        .map(|o| {
            match kind {
                ModelKind::TerminalPin => o.terminal_pin.map(|s| s.score),
                ModelKind::MerchantNopin => o.merchant_nopin.map(|s| s.score),
                ModelKind::CardOutlier => o.card_outlier.map(|s| s.score),
                ModelKind::Density => o.density.map(|s| s.score),
                ModelKind::Supervised => o.fraud_probability,
            }
            .unwrap_or(f64::NEG_INFINITY)
        })
        .collect()
}

/// Each model's threshold (its share of the false-positive budget on the training part, at
/// least its floor), its holdout figures and training summaries, as model files; and the
/// per-scenario recall on the holdout when any model fires.
fn thresholds_and_files(
    h: &History,
    all: Vec<Fitted>,
    outs: &[ModelOut],
) -> (Vec<ModelFile>, BTreeMap<String, f64>) {
    let events = h.events;
    let simulated = h
        .opts
        .simulated
        .unwrap_or_else(|| events.iter().any(|e| e.label.is_some()));
    let training = Training {
        window_start: format_ts(events[0].ts),
        window_end: format_ts(events[events.len() - 1].ts),
        holdout_from: format_ts(h.split),
        events: events.len() as u64,
        seed: h.opts.seed,
        source: if simulated { "simulated" } else { "recorded" }.into(),
    };
    let fpr_each = h.opts.fpr / all.len() as f64;
    let hold: Vec<usize> = (0..events.len()).filter(|i| !h.train_mask[*i]).collect();
    let hold_fraud: Vec<bool> = hold.iter().map(|i| h.fraud[*i]).collect();
    let mut files = Vec::new();
    let mut fired = vec![false; hold.len()];
    for (kind, floor, params) in all {
        let scores = scores(kind, outs);
        let (tr, tr_f): (Vec<f64>, Vec<bool>) = (0..events.len())
            .filter(|i| h.train_mask[*i])
            .map(|i| (scores[i], h.fraud[i]))
            .unzip();
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
            evaluation: evaluate(events, &hold, &hs, &hold_fraud, threshold, h.labelled),
            summary: summaries(kind, outs, &h.train_mask),
            params,
        });
    }
    let hs_any: Vec<f64> = fired.iter().map(|f| *f as u8 as f64).collect();
    let combined = evaluate(events, &hold, &hs_any, &hold_fraud, 0.5, h.labelled);
    let mut c = combined.scenario_recall;
    c.insert(
        "legit (false-positive rate)".into(),
        combined.threshold_fpr.unwrap_or(0.0),
    );
    (files, c)
}

/// The training distribution of each of a model's summarised inputs (`drift::names`).
fn summaries(
    kind: ModelKind,
    outs: &[ModelOut],
    train_mask: &[bool],
) -> BTreeMap<String, FeatureSummary> {
    let names = drift::names(kind);
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut v = Vec::with_capacity(names.len());
    for (o, t) in outs.iter().zip(train_mask) {
        if *t && drift::inputs(kind, o, &mut v) {
            for (c, x) in cols.iter_mut().zip(&v) {
                c.push(*x);
            }
        }
    }
    names
        .into_iter()
        .zip(cols)
        .filter(|(_, c)| !c.is_empty())
        .map(|(n, c)| (n.to_string(), FeatureSummary::of(&c)))
        .collect()
}
