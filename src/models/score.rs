//! Scoring in the engine's hot path: [`Scorer`] keeps the streaming feature state and fills a
//! [`ModelOut`] per event, which rules read through fields (`density_pct`, ...), and which
//! [`explain`] turns into an alert's explanation when a rule that reads a score fires.

use super::card_outlier::CardOutlierScore;
use super::density::{Density, DensityScore};
use super::drift::Drift;
use super::features::{self, CardFeatures, FeatureState, NAMES, NF};
use super::merchant_nopin::{MerchantCounts, MerchantNopinScore};
use super::supervised::{Supervised, NI};
use super::terminal_pin::TerminalPinScore;
use super::Models;
use crate::event::Event;
use crate::keyed::{Stage, Stages};
use crate::time::EventTime;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most earlier events a terminal or merchant score lists as its evidence.
const MAX_EVIDENCE: usize = 20;
/// Scores from which the evidence is listed (below any sensible alert threshold).
const EVIDENCE_FROM: f64 = 3.0;

/// What the models say about one event (all `None` when no model applies).
#[derive(Debug, Clone, Default)]
pub struct ModelOut {
    pub card: Option<CardFeatures>,
    pub card_outlier: Option<CardOutlierScore>,
    pub terminal_pin: Option<TerminalPinScore>,
    pub merchant_nopin: Option<MerchantNopinScore>,
    pub density: Option<DensityScore>,
    pub fraud_probability: Option<f64>,
    /// Supervised inputs, kept for the explanation.
    pub inputs: Option<[f64; NI]>,
    /// Earlier events behind a terminal or merchant score high enough to alert on (the wrong
    /// PINs of the episodes, the forced no-PIN sales of the day): an alert lists them.
    pub evidence: Vec<CompactString>,
    pub models: Option<Arc<Models>>,
}

impl ModelOut {
    /// Forget the last event's scores (keeping the models): field by field, which writes a few
    /// tags where rebuilding the whole value wrote all of it on every event.
    pub fn clear(&mut self) {
        self.card = None;
        self.card_outlier = None;
        self.terminal_pin = None;
        self.merchant_nopin = None;
        self.density = None;
        self.fraud_probability = None;
        self.inputs = None;
        self.evidence.clear();
    }

    /// No model said anything about the event: every model score field reads null (the
    /// field table's model columns; `feature` tests the two agree).
    pub fn says_nothing(&self) -> bool {
        self.card.is_none()
            && self.card_outlier.is_none()
            && self.terminal_pin.is_none()
            && self.merchant_nopin.is_none()
            && self.density.is_none()
            && self.fraud_probability.is_none()
    }

    fn threshold(&self, f: impl Fn(&Models) -> Option<f64>) -> Option<f64> {
        self.models.as_deref().and_then(f)
    }

    pub fn terminal_pin_anomalous(&self) -> Option<bool> {
        let t = self.threshold(|m| m.terminal_pin.as_ref().map(|l| l.threshold))?;
        Some(self.terminal_pin.is_some_and(|s| s.score >= t))
    }

    pub fn merchant_nopin_anomalous(&self) -> Option<bool> {
        let t = self.threshold(|m| m.merchant_nopin.as_ref().map(|l| l.threshold))?;
        Some(self.merchant_nopin.is_some_and(|s| s.score >= t))
    }

    pub fn card_outlier_anomalous(&self) -> Option<bool> {
        let t = self.threshold(|m| m.card_outlier.as_ref().map(|l| l.threshold))?;
        Some(self.card_outlier.is_some_and(|s| s.score >= t))
    }

    pub fn density_anomalous(&self) -> Option<bool> {
        let t = self.threshold(|m| m.density.as_ref().map(|l| l.threshold))?;
        Some(self.density.is_some_and(|s| s.score >= t))
    }

    pub fn fraud_anomalous(&self) -> Option<bool> {
        let t = self.threshold(|m| m.supervised.as_ref().map(|l| l.threshold))?;
        Some(self.fraud_probability.is_some_and(|p| p >= t))
    }
}

/// The models plus their streaming state: one per engine, snapshotted with it (the drift
/// sample is not: it never changes a decision).
#[derive(Debug, Clone)]
pub struct Scorer {
    pub models: Arc<Models>,
    pub state: FeatureState,
    drift: Drift,
    evidence: Vec<CompactString>,
}

impl Scorer {
    pub fn new(models: Arc<Models>) -> Self {
        Self::with_state(models, FeatureState::default())
    }

    /// Score with `models` from `state` on (a restore, or a models reload).
    pub fn with_state(models: Arc<Models>, state: FeatureState) -> Self {
        let drift = Drift::new(models.files.iter().map(|f| (f.kind, &f.summary)));
        Self {
            models,
            state,
            drift,
            evidence: Vec::new(),
        }
    }

    /// The live sample of the models' inputs (PSI against training).
    pub fn drift(&self) -> &Drift {
        &self.drift
    }

    /// Score `ev` into `out` and fold it into the state; a terminal or merchant score high
    /// enough to alert adds the earlier events behind it to `out.evidence`.
    /// With every stage owned this is the whole scoring; a stage shard scores only its own
    /// entity's model, and `out` already holds what earlier stages scored (see
    /// `engine::shard`).
    pub fn score(&mut self, ev: &Event, out: &mut ModelOut, own: Stages) {
        self.start(out, own);
        let wrong = ev.wrong_pin();
        if own.has(Stage::Terminal) {
            self.score_terminal(ev, out, wrong);
        }
        let forced = self.score_merchant(ev, out, own.has(Stage::Merchant));
        if own.has(Stage::Card) {
            self.score_card(ev, out, wrong, forced);
        }
        self.drift.observe(out, ev.ts);
    }

    /// Forget the last event's scores in `out`, except what earlier stages scored for this
    /// event when this is a stage shard (the terminal and merchant scores and their evidence).
    fn start(&self, out: &mut ModelOut, own: Stages) {
        let (tp_in, mn_in) = (out.terminal_pin, out.merchant_nopin);
        let evidence_in = std::mem::take(&mut out.evidence);
        out.clear();
        if out
            .models
            .as_ref()
            .is_none_or(|m| !Arc::ptr_eq(m, &self.models))
        {
            out.models = Some(self.models.clone());
        }
        if !own.is_all() {
            (out.terminal_pin, out.merchant_nopin) = (tp_in, mn_in);
            out.evidence = evidence_in;
        }
    }

    /// The terminal PIN score of a PIN attempt; the episodes' wrong PINs become evidence when
    /// the score is high enough to alert on.
    fn score_terminal(&mut self, ev: &Event, out: &mut ModelOut, wrong: bool) {
        let Some(tp) = self.models.terminal_pin.as_ref() else {
            return;
        };
        out.terminal_pin = None;
        if !ev.pin_attempt() {
            return;
        }
        self.evidence.clear();
        let ids = wrong.then_some(&mut self.evidence);
        if let Some(c) = self.state.pin(ev, tp.model.windows(), ids) {
            let s = tp.model.score(ev.mcc, &c);
            if s.score >= tp.threshold.min(EVIDENCE_FROM) {
                let skip = self.evidence.len().saturating_sub(MAX_EVIDENCE);
                out.evidence.extend(self.evidence.drain(skip..));
            }
            out.terminal_pin = Some(s);
        }
    }

    /// Whether `ev` is a forced no-PIN sale (an input of the supervised model, so decided
    /// whichever stages are owned), and with the merchant stage (`owned`), the merchant
    /// no-PIN score, whose day's forced sales become evidence when it is high enough.
    fn score_merchant(&mut self, ev: &Event, out: &mut ModelOut, owned: bool) -> bool {
        let Some(mn) = &self.models.merchant_nopin else {
            return false;
        };
        if !features::is_cp_approved(ev) {
            return false;
        }
        let forced = features::is_forced_nopin(ev, mn.model.params.nopin_limit);
        if owned {
            let days = mn.model.params.base_days;
            let d = self.state.merchant(ev, forced, days);
            out.merchant_nopin = None;
            if forced {
                let c = MerchantCounts::of((d.n, d.k), |a, b| d.past(a, b), days);
                let s = mn.model.score(ev.mcc, &c);
                if s.score >= mn.threshold.min(EVIDENCE_FROM) {
                    // The last one is this event: the alert lists it as its trigger.
                    let n = d.forced.len().saturating_sub(1);
                    out.evidence
                        .extend(d.forced.iter().take(n).map(|f| f.1.clone()));
                }
                out.merchant_nopin = Some(s);
            }
        }
        forced
    }

    /// The card models of a card purchase; the supervised one also reads the terminal and
    /// merchant scores, so it comes last.
    fn score_card(&mut self, ev: &Event, out: &mut ModelOut, wrong: bool, forced: bool) {
        let m = &*self.models;
        if !((m.density.is_some() || m.supervised.is_some() || m.card_outlier.is_some())
            && features::is_card_purchase(ev))
        {
            return;
        }
        let cf = self.state.card(ev);
        out.card = Some(cf);
        if let Some(co) = &m.card_outlier {
            out.card_outlier = co.model.score(&cf, ev.mcc);
        }
        if let Some(d) = &m.density {
            out.density = Some(d.model.score(&cf.x));
        }
        if let Some(s) = &m.supervised {
            let x = supervised_inputs(
                &cf.x,
                wrong,
                forced,
                out.terminal_pin.map_or(0.0, |s| s.score),
                out.merchant_nopin.map_or(0.0, |s| s.score),
                out.density.map_or(0.0, |s| s.score),
            );
            out.fraud_probability = Some(s.model.probability(&x));
            out.inputs = Some(x);
        }
    }

    pub fn evict(&mut self, now: EventTime) {
        let m = &self.models;
        let pin = m
            .terminal_pin
            .as_ref()
            .map_or(crate::time::Span::ZERO, |t| t.model.retention());
        let days = m
            .merchant_nopin
            .as_ref()
            .map_or(0, |n| n.model.params.base_days as i64);
        self.state.evict(now, pin, days);
    }
}

/// The supervised model's input vector (one definition for training and scoring).
pub fn supervised_inputs(
    x: &[f64; NF],
    wrong_pin: bool,
    forced_nopin: bool,
    tp: f64,
    mn: f64,
    density: f64,
) -> [f64; NI] {
    let mut v = [0.0; NI];
    v[..NF].copy_from_slice(x);
    v[NF] = wrong_pin as u8 as f64;
    v[NF + 1] = forced_nopin as u8 as f64;
    v[NF + 2] = tp;
    v[NF + 3] = mn;
    v[NF + 4] = density;
    v
}

/// One line of an explanation: a feature, its value, and the entity's normal value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub model: String,
    pub feature: String,
    pub value: f64,
    pub normal: f64,
}

fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Explain the scores a rule read: text for the alert's reason (`{explain}`) and the top
/// contributing features with values and normal values (the alert's `explain` feature).
pub fn explain(out: &ModelOut, which: &[&str], amount: Option<i64>) -> (String, Vec<Contribution>) {
    let Some(models) = out.models.as_deref() else {
        return ("no models loaded".into(), Vec::new());
    };
    let mut text = Vec::new();
    let mut rows = Vec::new();
    let mut push = |model: &str, t: String, r: Vec<(String, f64, f64)>| {
        text.push(t);
        rows.extend(r.into_iter().map(|(feature, value, normal)| Contribution {
            model: model.into(),
            feature,
            value: round(value),
            normal: round(normal),
        }));
    };
    if which.contains(&"terminal_pin") {
        if let (Some(m), Some(s)) = (&models.terminal_pin, &out.terminal_pin) {
            let (t, r) = m.model.explain(s);
            push("terminal_pin", t, r);
        }
    }
    if which.contains(&"merchant_nopin") {
        if let (Some(m), Some(s)) = (&models.merchant_nopin, &out.merchant_nopin) {
            let (t, r) = m.model.explain(s);
            push("merchant_nopin", t, r);
        }
    }
    if which.contains(&"card_outlier") {
        if let (Some(m), Some(s), Some(cf)) = (&models.card_outlier, &out.card_outlier, &out.card) {
            let (t, r) = m.model.explain(s, cf, amount);
            push("card_outlier", t, r);
        }
    }
    if which.contains(&"density") {
        if let (Some(m), Some(s), Some(cf)) = (&models.density, &out.density, &out.card) {
            let (t, r) = explain_density(&m.model, s, cf, amount);
            push("density", t, r);
        }
    }
    if which.contains(&"supervised") {
        if let (Some(m), Some(p), Some(x)) =
            (&models.supervised, out.fraud_probability, &out.inputs)
        {
            let (t, r) = explain_supervised(&m.model, p, x);
            push("supervised", t, r);
        }
    }
    if text.is_empty() {
        return ("no model score for this event".into(), rows);
    }
    (text.join("; "), rows)
}

/// An explanation's text and its rows: (feature, value, normal value).
type Explained = (String, Vec<(String, f64, f64)>);

/// The density score's three most unusual features. The two amount features are shown once,
/// as the amount against the card's usual one (in major units), when the card has a usual
/// amount.
fn explain_density(
    model: &Density,
    s: &DensityScore,
    cf: &CardFeatures,
    amount: Option<i64>,
) -> Explained {
    let top = model.top_features(&cf.x, s.component, 3);
    let mut parts = Vec::new();
    let mut r: Vec<(String, f64, f64)> = Vec::new();
    for (j, value, normal, dev) in top {
        let name = NAMES[j];
        if j == features::AMOUNT_DEV || j == features::AMOUNT_Z {
            if let (Some(a), Some(u)) = (amount, cf.usual_amount()) {
                if r.iter().any(|(n, ..)| n == "amount") {
                    continue;
                }
                parts.push(format!(
                    "amount {:.2} vs the card's usual {:.2}",
                    a as f64 / 100.0,
                    u / 100.0
                ));
                r.push(("amount".to_string(), a as f64, u));
                continue;
            }
        }
        parts.push(format!(
            "{name} {value:.2} (normal {normal:.2}, {dev:+.1} sd)"
        ));
        r.push((name.to_string(), value, normal));
    }
    let t = format!(
        "unusual purchase for this card (density percentile {:.3}): {}",
        s.pct,
        parts.join("; ")
    );
    (t, r)
}

/// The fraud probability and the three inputs that drive it most.
fn explain_supervised(model: &Supervised, p: f64, x: &[f64; NI]) -> Explained {
    let top = model.top_inputs(x, 3);
    let t = format!(
        "fraud probability {:.3}, driven by {}",
        p,
        top.iter()
            .map(|(n, v, mean)| format!("{n} {v:.2} (mean {mean:.2})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    (t, top)
}
