//! The model card: a short Markdown page beside each model file saying what the model learned,
//! on what, how well it did on the holdout, and how to use its score in a rule.

use super::density::DensityParams;
use super::features::NAMES;
use super::file::{ModelFile, ModelKind};
use super::merchant_nopin::MerchantNopinParams;
use super::supervised::SupervisedParams;
use super::terminal_pin::TerminalPinParams;
use std::fmt::Write as _;

fn pct(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{:.4}", v))
}

/// Render the card of `m`.
pub fn render(m: &ModelFile) -> String {
    let mut s = String::new();
    let (title, what, field) = match m.kind {
        ModelKind::TerminalPin => (
            "Terminal PIN-failure baseline",
            "Each terminal's normal rate of wrong PINs (DE39 55) per hour of day, shrunk toward all terminals' rate. Live, every wrong PIN is scored by how improbable the terminal's wrong-PIN count over the trailing window is under that rate (Poisson upper tail, score = -log10 p).",
            "terminal_pin_score / terminal_pin_anomalous",
        ),
        ModelKind::MerchantNopin => (
            "Merchant no-PIN profile",
            "Each merchant's share of approved card-present sales without a PIN where one was due (bypassed, timed out, absent above the no-PIN limit), against a beta prior fitted on its MCC peers. Live, every forced no-PIN approval is scored by how improbable the merchant's count so far today is (beta-binomial upper tail, score = -log10 p).",
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
    };
    let t = &m.training;
    let e = &m.evaluation;
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
    let _ = writeln!(s, "| inputs | {} |", m.features.join(", "));
    let _ = writeln!(s, "| threshold | {:.4} |", m.threshold);
    let _ = writeln!(s, "| rule fields | {field} |\n");
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
    let _ = writeln!(s, "\n## What it learned\n");
    match m.kind {
        ModelKind::TerminalPin => {
            if let Ok(p) = serde_json::from_value::<TerminalPinParams>(m.params.clone()) {
                let _ = writeln!(
                    s,
                    "Window {}h, {:.1} days of history, {} terminals.\n",
                    p.window_h,
                    p.days,
                    p.terminals.len()
                );
                let _ = writeln!(
                    s,
                    "All terminals, wrong PINs per terminal-hour by hour of day (UTC):\n"
                );
                let _ = writeln!(
                    s,
                    "{}\n",
                    p.global
                        .iter()
                        .enumerate()
                        .map(|(h, r)| format!("{h:02}h {r:.3}"))
                        .collect::<Vec<_>>()
                        .join(" · ")
                );
                let mut top: Vec<(&String, f64)> = p
                    .terminals
                    .iter()
                    .map(|(t, r)| (t, r.iter().sum::<f64>()))
                    .collect();
                top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
                let _ = writeln!(
                    s,
                    "Terminals with the highest normal rate (wrong PINs per day): {}",
                    top.iter()
                        .take(5)
                        .map(|(t, r)| format!("{t} {r:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        ModelKind::MerchantNopin => {
            if let Ok(p) = serde_json::from_value::<MerchantNopinParams>(m.params.clone()) {
                let _ = writeln!(s, "No-PIN limit {:.2}; all merchants' normal share {:.2}% (prior strength {:.0} sales).\n", p.nopin_limit as f64 / 100.0, p.global.mean() * 100.0, p.global.alpha + p.global.beta);
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
        }
        ModelKind::Density => {
            if let Ok(p) = serde_json::from_value::<DensityParams>(m.params.clone()) {
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
        }
        ModelKind::Supervised => {
            if let Ok(p) = serde_json::from_value::<SupervisedParams>(m.params.clone()) {
                let _ = writeln!(s, "Coefficients on standardised inputs (positive = more likely fraud), intercept {:.3}:\n", p.intercept);
                let mut c: Vec<(&String, f64)> =
                    p.inputs.iter().zip(p.coef.iter().copied()).collect();
                c.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
                let _ = writeln!(s, "| input | coefficient |\n|---|---|");
                for (n, v) in c {
                    let _ = writeln!(s, "| {n} | {v:+.3} |");
                }
            }
        }
    }
    let _ = writeln!(s, "\n## Reading it\n\nA score at or above the threshold sets the `_anomalous` field; rules in `rules/models.toml` turn that into alerts whose reason names the contributing features, their values and the entity's normal values. Retrain with `switchguard train` when the card base, terminal estate or merchant mix changes.");
    s
}
