//! Judging a model set the way it will be used: replay a world's traffic through the engine
//! with the rules and the models (from the world's first event, so the models' per-entity
//! state warms up as it would live), and count only what happens in its later part (from
//! `from`). Run on the later weeks of the training history and on worlds the models never saw
//! (other simulated worlds: other merchants, MCC mix, card base, PIN pads, feed), it says
//! whether the models hold up on traffic they were not built on (`evaluation.json`, model
//! cards, README "Models").
//!
//! Units: an alert is on an attack when any of its events carries a non-`legit` label; a rule's
//! precision is the share of its alerts on attacks. An attack instance is a scenario's events
//! on one entity: the terminal for `terminal_pin_drift`, the merchant for
//! `merchant_bypass_drift`, the card for the others (the terminal without a card); it is caught
//! when an alert lists one of its events (for the model-only scenarios, an alert of a rule
//! that reads a model). A look-alike instance is a benign look-alike marked by the simulator
//! (`sim::LOOKALIKES`) on one entity; it is alerted when an alert on no attack lists one of
//! its events.
//!
//! The types and the bars live here (the model cards print them); running a world through the
//! engine is [`crate::app::evaluate`], above the engine.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleEval {
    pub alerts: u64,
    pub on_attacks: u64,
    pub precision: Option<f64>,
    /// The rule reads a model's score.
    pub model: bool,
    /// In [`Bars`]: the lowest precision of any one world, and which.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub world_min: Option<WorldMin>,
}

/// The lowest per-world figure behind a pooled one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorldMin {
    pub world: String,
    pub value: f64,
}

/// Keep the lower of `m` and (`world`, `v`).
fn lower(m: &mut Option<WorldMin>, world: &str, v: Option<f64>) {
    if let Some(v) = v.filter(|v| m.as_ref().is_none_or(|m| *v < m.value)) {
        *m = Some(WorldMin {
            world: world.to_string(),
            value: v,
        });
    }
}

/// One scenario's instances in the evaluated part.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScenarioEval {
    pub instances: u64,
    pub caught: u64,
    pub recall: Option<f64>,
    pub model_only: bool,
    /// In [`Bars`]: the lowest recall of any one world, and which.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub world_min: Option<WorldMin>,
}

/// One kind of look-alike in the evaluated part.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LookalikeEval {
    pub instances: u64,
    pub alerted: u64,
    /// The first few alerted entities (tokens, TIDs, MIDs: never a PAN).
    pub examples: Vec<String>,
}

/// A world's evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WorldEval {
    pub world: String,
    pub events: u64,
    /// Counted from this time (the earlier events only warm the state up).
    pub from: String,
    pub evaluated_events: u64,
    pub rules: BTreeMap<String, RuleEval>,
    pub scenarios: BTreeMap<String, ScenarioEval>,
    pub lookalikes: BTreeMap<String, LookalikeEval>,
    /// Precision of all alerts, with the models and with the rules alone.
    pub precision_with_models: Option<f64>,
    pub precision_rules_alone: Option<f64>,
}

/// Replay `events` (in arrival order) through `pack` with `models` (`None`: rules alone).
/// The bars of issue 14 over a set of evaluated worlds, and how each fares.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bars {
    pub precision_min: f64,
    pub recall_min: f64,
    /// Per model rule: alerts and precision over all worlds.
    pub model_rules: BTreeMap<String, RuleEval>,
    /// Per model-only scenario: instances and recall over all worlds.
    pub model_scenarios: BTreeMap<String, ScenarioEval>,
    /// Look-alike instances alerted over all worlds (the bar is none).
    pub lookalikes_alerted: u64,
    pub lookalike_instances: u64,
    /// Every bar missed pooled over the worlds, in words (empty: all met).
    pub missed: Vec<String>,
    /// Every bar missed in one world (`world_min`), in words. Reported beside the pooled
    /// figures: a world with a few dozen instances swings by a few points on one instance.
    pub missed_in_a_world: Vec<String>,
}

/// Sum `worlds` and check the bars: each model rule's precision, each model scenario's recall,
/// pooled and in every world (`world_min`), no look-alike alerted.
pub fn bars(worlds: &[WorldEval], precision_min: f64, recall_min: f64) -> Bars {
    let mut b = Bars {
        precision_min,
        recall_min,
        ..Bars::default()
    };
    for w in worlds {
        for (id, r) in w.rules.iter().filter(|(_, r)| r.model) {
            let t = b.model_rules.entry(id.clone()).or_default();
            t.model = true;
            t.alerts += r.alerts;
            t.on_attacks += r.on_attacks;
            lower(&mut t.world_min, &w.world, r.precision);
        }
        for (s, v) in w.scenarios.iter().filter(|(_, v)| v.model_only) {
            let t = b.model_scenarios.entry(s.clone()).or_default();
            t.model_only = true;
            t.instances += v.instances;
            t.caught += v.caught;
            lower(&mut t.world_min, &w.world, v.recall);
        }
        for v in w.lookalikes.values() {
            b.lookalikes_alerted += v.alerted;
            b.lookalike_instances += v.instances;
        }
    }
    for (id, r) in &mut b.model_rules {
        r.precision = (r.alerts > 0).then(|| r.on_attacks as f64 / r.alerts as f64);
        if r.precision.is_some_and(|p| p < precision_min) {
            b.missed.push(format!(
                "{id}: precision {:.3} < {precision_min} ({} of {} alerts on attacks)",
                r.precision.unwrap_or(0.0),
                r.on_attacks,
                r.alerts
            ));
        }
        if let Some(m) = r.world_min.as_ref().filter(|m| m.value < precision_min) {
            b.missed_in_a_world.push(format!(
                "{id}: precision {:.3} < {precision_min} in {}",
                m.value, m.world
            ));
        }
    }
    for (s, v) in &mut b.model_scenarios {
        v.recall = (v.instances > 0).then(|| v.caught as f64 / v.instances as f64);
        if v.recall.unwrap_or(0.0) < recall_min {
            b.missed.push(format!(
                "{s}: recall {:.3} < {recall_min} ({} of {} instances caught)",
                v.recall.unwrap_or(0.0),
                v.caught,
                v.instances
            ));
        }
        if let Some(m) = v.world_min.as_ref().filter(|m| m.value < recall_min) {
            b.missed_in_a_world.push(format!(
                "{s}: recall {:.3} < {recall_min} in {}",
                m.value, m.world
            ));
        }
    }
    if b.lookalikes_alerted > 0 {
        b.missed.push(format!(
            "{} of {} look-alike instances alerted",
            b.lookalikes_alerted, b.lookalike_instances
        ));
    }
    b
}
