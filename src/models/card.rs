//! The model card: a short Markdown page beside each model file saying what the model learned,
//! on what, how well it did on the holdout, and how to use its score in a rule.

use super::card_outlier::CardOutlierParams;
use super::density::DensityParams;
use super::evaluate::WorldEval;
use super::features::NAMES;
use super::file::{ModelFile, ModelKind};
use super::merchant_nopin::MerchantNopinParams;
use super::supervised::SupervisedParams;
use super::terminal_pin::TerminalPinParams;
use std::fmt::Write as _;

/// The replay evaluation a card reports: every world judged, and the rules that read this
/// model's scores.
#[derive(Debug, Clone, Copy)]
pub struct CardEval<'a> {
    pub worlds: &'a [WorldEval],
    pub rules: &'a [String],
}

fn pct(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{:.4}", v))
}

/// Render the card of `m`, with the replay evaluation when there is one.
pub fn render(m: &ModelFile, eval: Option<CardEval>) -> String {
    let mut s = String::new();
    header(&mut s, m);
    holdout(&mut s, m);
    if let Some(ev) = eval {
        replay_section(&mut s, ev);
    }
    summary(&mut s, m);
    learned(&mut s, m);
    let _ = writeln!(s, "\n## Reading it\n\nA score at or above the threshold sets the `_anomalous` field; rules in `rules/models.toml` turn that into alerts whose reason names the contributing features, their values and the entity's normal values. Retrain with `switchguard train` when the card base, terminal estate or merchant mix changes.");
    s
}

/// A model kind's title, what it does, and the rule fields it fills.
fn describe(kind: ModelKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        ModelKind::TerminalPin => (
            "Terminal PIN baseline",
            "On each wrong PIN (a PIN attempt answered 55), the terminal's PIN attempts, wrong-PIN episodes (one per card) and unresolved episodes (no verified PIN from that card within a few minutes) over the trailing window, scored against the terminal's own rates over its last weeks (learnt as the stream goes), shrunk toward its MCC peers' rates (beta priors fitted on training terminals): the larger of the two beta-binomial upper tails, score = -log10 p. A terminal without history is judged by its peers.",
            "terminal_pin_score / terminal_pin_anomalous",
        ),
        ModelKind::CardOutlier => (
            "Card outlier (robust per-card profile)",
            "On each card purchase, its amount against the card's own normal (median and spread of its last 16 approved purchases, per merchant category group once it has 4 there; needs 5 purchases of history) and against the MCC's normal among all shoppers (from training). Score = min(z against the card, mcc_weight x z against the MCC), where the card's z is the larger of the amount's z and its excess over the card's largest recent purchase in units of 0.5: far above what this card spends here, and above what anyone spends at this kind of shop. card_outlier_score_all is the same score against the card's whole profile (all 16 purchases), for a card whose group normal is itself high.",
            "card_outlier_score / card_outlier_anomalous",
        ),
        ModelKind::MerchantNopin => (
            "Merchant no-PIN profile",
            "Each merchant's share of approved card-present sales without a PIN where one was due (bypassed, timed out, absent above the no-PIN limit): its own share over its last weeks (learnt as the stream goes), shrunk toward a beta prior fitted on its MCC peers in training. Live, every forced no-PIN approval is scored by how improbable the merchant's count so far today is (beta-binomial upper tail, score = -log10 p).",
            "merchant_nopin_score / merchant_nopin_anomalous",
        ),
        ModelKind::Density => (
            "Transaction density (Gaussian mixture)",
            "A Gaussian mixture over each card purchase's standardised features. The score is the negative log density; density_pct is its percentile among training purchases.",
            "density_score / density_pct / density_anomalous",
        ),
        ModelKind::Supervised => (
            "Supervised fraud scorer (logistic regression)",
            "A logistic regression on labelled history over the purchase features, the wrong-PIN and forced-no-PIN traits and the three unsupervised scores.",
            "fraud_probability / fraud_anomalous",
        ),
    }
}

/// The title, what the model does, and the table of its training and use.
fn header(s: &mut String, m: &ModelFile) {
    let (title, what, field) = describe(m.kind);
    let t = &m.training;
    let _ = writeln!(s, "# Model card: {title}\n");
    let _ = writeln!(s, "{what}\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| kind | `{}` (format v{}) |",
        m.kind.as_str(),
        m.version
    );
    let _ = writeln!(
        s,
        "| training window | {} to {} |",
        t.window_start, t.window_end
    );
    let _ = writeln!(s, "| holdout | events from {} |", t.holdout_from);
    let _ = writeln!(s, "| events read | {} |", t.events);
    let _ = writeln!(s, "| seed | {} |", t.seed);
    let _ = writeln!(
        s,
        "| trained on | {} traffic{} |",
        if t.source.is_empty() {
            "unknown"
        } else {
            &t.source
        },
        if t.simulated() {
            " (retrain on your own history before relying on it)"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "| inputs | {} |", m.features.join(", "));
    let _ = writeln!(s, "| threshold | {:.4} |", m.threshold);
    let _ = writeln!(s, "| rule fields | {field} |\n");
}

/// The holdout figures.
fn holdout(s: &mut String, m: &ModelFile) {
    let e = &m.evaluation;
    let _ = writeln!(s, "## Holdout evaluation\n");
    let _ = writeln!(s, "| measure | value |\n|---|---|");
    let _ = writeln!(
        s,
        "| holdout events (fraud) | {} ({}) |",
        e.holdout_events, e.holdout_fraud
    );
    let _ = writeln!(s, "| PR-AUC | {} |", pct(e.pr_auc));
    let _ = writeln!(s, "| recall at FPR 1e-4 | {} |", pct(e.recall_at_fpr_1e4));
    let _ = writeln!(s, "| FPR of the threshold | {} |", pct(e.threshold_fpr));
    for (l, r) in &e.scenario_recall {
        let _ = writeln!(s, "| recall, {l} | {r:.3} |");
    }
}

/// The training distribution of the model's inputs.
fn summary(s: &mut String, m: &ModelFile) {
    if !m.summary.is_empty() {
        let _ = writeln!(
            s,
            "\n## Training inputs (for drift)\n\nLive traffic is compared with these by the \
             population stability index (`switchguard_model_feature_psi`, `report.json`).\n"
        );
        let _ = writeln!(s, "| input | rows | mean | bins |\n|---|---|---|---|");
        for (n, f) in &m.summary {
            let _ = writeln!(
                s,
                "| {n} | {} | {:.3} | {} |",
                f.count,
                f.mean,
                f.shares.len()
            );
        }
    }
}

/// What the model learned, from its parameters (nothing when they do not parse).
fn learned(s: &mut String, m: &ModelFile) {
    let _ = writeln!(s, "\n## What it learned\n");
    let p = m.params.clone();
    let _ = match m.kind {
        ModelKind::TerminalPin => serde_json::from_value(p).map(|p| learned_terminal_pin(s, &p)),
        ModelKind::CardOutlier => serde_json::from_value(p).map(|p| learned_card_outlier(s, &p)),
        ModelKind::MerchantNopin => {
            serde_json::from_value(p).map(|p| learned_merchant_nopin(s, &p))
        }
        ModelKind::Density => serde_json::from_value(p).map(|p| learned_density(s, &p)),
        ModelKind::Supervised => serde_json::from_value(p).map(|p| learned_supervised(s, &p)),
    };
}

fn learned_terminal_pin(s: &mut String, p: &TerminalPinParams) {
    let _ = writeln!(
        s,
        "Window {}h, resolved within {} min, the terminal's own last {} days \
         (weighing at most {:.0} attempts). Peers' rates per PIN attempt \
         (prior strength in attempts):\n",
        p.window_h, p.resolve_min, p.base_days, p.own_cap
    );
    let _ = writeln!(
        s,
        "| MCC | resolved | unresolved | strength |\n|---|---|---|---|"
    );
    let row = |s: &mut String, k: &str, r: &super::terminal_pin::PinPrior| {
        let _ = writeln!(
            s,
            "| {k} | {:.3}% | {:.3}% | {:.0} |",
            r.resolved.mean() * 100.0,
            r.unresolved.mean() * 100.0,
            r.resolved.alpha + r.resolved.beta
        );
    };
    row(s, "all", &p.global);
    for (mcc, r) in &p.peers {
        row(s, &mcc.to_string(), r);
    }
}

fn learned_card_outlier(s: &mut String, p: &CardOutlierParams) {
    let _ = writeln!(
        s,
        "MCC weight {}. Usual amount by MCC among all shoppers (median, spread of \
         log amounts):\n",
        p.mcc_weight
    );
    let _ = writeln!(s, "| MCC | usual amount | spread |\n|---|---|---|");
    let _ = writeln!(
        s,
        "| all | {:.2} | {:.2} |",
        p.global.median.exp_m1(),
        p.global.spread
    );
    for (mcc, n) in &p.mcc {
        let _ = writeln!(s, "| {mcc} | {:.2} | {:.2} |", n.median.exp_m1(), n.spread);
    }
}

fn learned_merchant_nopin(s: &mut String, p: &MerchantNopinParams) {
    let _ = writeln!(
        s,
        "No-PIN limit {:.2}; the merchant's own last {} days weigh at most {:.0} \
         sales; all merchants' normal share {:.2}% (prior strength {:.0} sales).\n",
        p.nopin_limit as f64 / 100.0,
        p.base_days,
        p.own_cap,
        p.global.mean() * 100.0,
        p.global.alpha + p.global.beta
    );
    let _ = writeln!(s, "| MCC | peer share | prior strength |\n|---|---|---|");
    for (mcc, b) in &p.peers {
        let _ = writeln!(
            s,
            "| {mcc} | {:.2}% | {:.0} |",
            b.mean() * 100.0,
            b.alpha + b.beta
        );
    }
}

fn learned_density(s: &mut String, p: &DensityParams) {
    let _ = writeln!(
        s,
        "{} components. Component means in raw units:\n",
        p.weights.len()
    );
    let _ = writeln!(s, "| weight | {} |", NAMES.join(" | "));
    let _ = writeln!(s, "|---{}|", "|---".repeat(NAMES.len()));
    for (w, mu) in p.weights.iter().zip(&p.means) {
        let raw: Vec<String> = mu
            .iter()
            .enumerate()
            .map(|(j, z)| format!("{:.2}", z * p.std[j] + p.mean[j]))
            .collect();
        let _ = writeln!(s, "| {w:.3} | {} |", raw.join(" | "));
    }
}

fn learned_supervised(s: &mut String, p: &SupervisedParams) {
    let _ = writeln!(
        s,
        "Coefficients on standardised inputs (positive = more likely fraud), intercept {:.3}:\n",
        p.intercept
    );
    let mut c: Vec<(&String, f64)> = p.inputs.iter().zip(p.coef.iter().copied()).collect();
    c.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    let _ = writeln!(s, "| input | coefficient |\n|---|---|");
    for (n, v) in c {
        let _ = writeln!(s, "| {n} | {v:+.3} |");
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.3}"))
}

/// The replay evaluation: per world, the model's rules and the model scenarios.
fn replay_section(s: &mut String, ev: CardEval) {
    let _ = writeln!(
        s,
        "\n## Replay evaluation (later weeks, and worlds it never saw)\n\nEach world replayed \
         from its first event with the default rules and this model set; alerts counted from \
         `from` on (README \"Models\" says how to reproduce).\n"
    );
    if ev.rules.is_empty() {
        let _ = writeln!(s, "No rule of the evaluated rule set reads this model.");
        return;
    }
    let _ = writeln!(
        s,
        "| world | from | rule | alerts | on attacks | precision |\n|---|---|---|---|---|---|"
    );
    for w in ev.worlds {
        for r in ev.rules {
            if let Some(e) = w.rules.get(r) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {r} | {} | {} | {} |",
                    w.world,
                    &w.from[..10.min(w.from.len())],
                    e.alerts,
                    e.on_attacks,
                    opt(e.precision)
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\n| world | model scenario | instances | caught | recall |\n|---|---|---|---|---|"
    );
    for w in ev.worlds {
        for (n, v) in w.scenarios.iter().filter(|(_, v)| v.model_only) {
            let _ = writeln!(
                s,
                "| {} | {n} | {} | {} | {} |",
                w.world,
                v.instances,
                v.caught,
                opt(v.recall)
            );
        }
    }
    let _ = writeln!(
        s,
        "\n| world | look-alike | instances | alerted |\n|---|---|---|---|"
    );
    for w in ev.worlds {
        for (n, v) in &w.lookalikes {
            let _ = writeln!(s, "| {} | {n} | {} | {} |", w.world, v.instances, v.alerted);
        }
    }
}
