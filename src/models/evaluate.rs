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

use super::Models;
use crate::decision::Decisions;
use crate::engine::{Engine, EngineConfig, Pipeline};
use crate::event::{Event, Millis};
use crate::rules::RulePack;
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The model-only scenarios and the entity their instances are counted by.
const MODEL_SCENARIOS: [(&str, Entity); 3] = [
    ("terminal_pin_drift", Entity::Terminal),
    ("merchant_bypass_drift", Entity::Merchant),
    ("card_spend_outlier", Entity::Card),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Entity {
    Terminal,
    Merchant,
    Card,
}

fn entity(kind: &str) -> Entity {
    match kind {
        "busy_lane" | "cold_start_terminal" => Entity::Terminal,
        "merchant_surge" => Entity::Merchant,
        _ => Entity::Card,
    }
}

fn key(e: &Event, who: Entity) -> String {
    match who {
        Entity::Terminal => e.terminal.to_string(),
        Entity::Merchant => e.merchant.as_deref().unwrap_or_default().to_string(),
        Entity::Card => e.card.as_deref().unwrap_or(e.terminal.as_str()).to_string(),
    }
}

/// One rule's alerts in the evaluated part.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleEval {
    pub alerts: u64,
    pub on_attacks: u64,
    pub precision: Option<f64>,
    /// The rule reads a model's score.
    pub model: bool,
}

/// One scenario's instances in the evaluated part.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScenarioEval {
    pub instances: u64,
    pub caught: u64,
    pub recall: Option<f64>,
    pub model_only: bool,
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
pub fn replay(events: &[Event], pack: &Arc<RulePack>, models: Option<Arc<Models>>) -> Decisions {
    let mut engine = Engine::new(pack.clone(), EngineConfig::default());
    engine.set_models(models);
    let mut p = Pipeline::new(engine);
    let mut d = Decisions::default();
    for e in events {
        p.push(e.clone(), &mut d);
    }
    p.flush(&mut d);
    d
}

/// Evaluate `models` with `pack` on one world's `events` (arrival order), counting from
/// `from`; `marks`: look-alike markers by event id (`sim::LOOKALIKES`).
pub fn evaluate_world(
    world: &str,
    events: &[Event],
    marks: &FxHashMap<String, String>,
    pack: &Arc<RulePack>,
    models: &Arc<Models>,
    from: Millis,
) -> WorldEval {
    let mut by_id: FxHashMap<&str, &Event> = FxHashMap::default();
    for e in events {
        by_id.entry(e.id.as_str()).or_insert(e);
    }
    let attack = |id: &str| {
        by_id.get(id).is_some_and(|e| {
            !e.kind.is_management() && e.label.as_deref().is_some_and(|l| l != "legit")
        })
    };
    let model_rules: BTreeSet<&str> = pack
        .rules
        .iter()
        .filter(|r| r.reads.iter().any(|f| f.model().is_some()))
        .map(|r| r.id.as_str())
        .collect();
    let in_period = |a: &crate::decision::Alert| {
        a.event_ids
            .last()
            .and_then(|id| by_id.get(id.as_str()))
            .is_some_and(|e| e.ts >= from)
    };
    let with = replay(events, pack, Some(models.clone()));
    let alone = replay(events, pack, None);
    let precision = |d: &Decisions| {
        let (n, tp) = d
            .alerts
            .iter()
            .filter(|a| in_period(a))
            .fold((0, 0), |c, a| {
                (c.0 + 1, c.1 + a.event_ids.iter().any(|i| attack(i)) as u64)
            });
        (n > 0).then(|| tp as f64 / n as f64)
    };
    let mut out = WorldEval {
        world: world.into(),
        events: by_id.len() as u64,
        from: crate::event::format_ts(from),
        evaluated_events: by_id.values().filter(|e| e.ts >= from).count() as u64,
        precision_with_models: precision(&with),
        precision_rules_alone: precision(&alone),
        ..WorldEval::default()
    };
    for r in &pack.rules {
        out.rules.insert(
            r.id.to_string(),
            RuleEval {
                model: model_rules.contains(r.id.as_str()),
                ..RuleEval::default()
            },
        );
    }
    // Instances: (scenario, entity) → caught; look-alikes: (kind, entity) → alerted.
    let mut inst: BTreeMap<(String, String), bool> = BTreeMap::new();
    let mut look: BTreeMap<(String, String), bool> = BTreeMap::new();
    for e in by_id
        .values()
        .filter(|e| e.ts >= from && !e.kind.is_management())
    {
        if let Some(l) = e.label.as_deref().filter(|l| *l != "legit") {
            let who = scenario_entity(l);
            inst.insert((l.to_string(), key(e, who)), false);
        }
        for k in marks
            .get(e.id.as_str())
            .into_iter()
            .flat_map(|m| m.split(','))
        {
            look.insert((k.to_string(), key(e, entity(k))), false);
        }
    }
    for a in with.alerts.iter().filter(|a| in_period(a)) {
        let on_attack = a.event_ids.iter().any(|i| attack(i));
        let r = out.rules.entry(a.rule.clone()).or_default();
        r.alerts += 1;
        r.on_attacks += on_attack as u64;
        let model = model_rules.contains(a.rule.as_str());
        for e in a.event_ids.iter().filter_map(|i| by_id.get(i.as_str())) {
            if let Some(l) = e.label.as_deref().filter(|l| *l != "legit") {
                let model_only = MODEL_SCENARIOS.iter().any(|s| s.0 == l);
                if model || !model_only {
                    if let Some(c) = inst.get_mut(&(l.to_string(), key(e, scenario_entity(l)))) {
                        *c = true;
                    }
                }
            }
            if !on_attack {
                for k in marks
                    .get(e.id.as_str())
                    .into_iter()
                    .flat_map(|m| m.split(','))
                {
                    if let Some(c) = look.get_mut(&(k.to_string(), key(e, entity(k)))) {
                        *c = true;
                    }
                }
            }
        }
    }
    for r in out.rules.values_mut() {
        r.precision = (r.alerts > 0).then(|| r.on_attacks as f64 / r.alerts as f64);
    }
    for ((s, _), caught) in inst {
        let v = out.scenarios.entry(s.clone()).or_default();
        v.model_only = MODEL_SCENARIOS.iter().any(|m| m.0 == s);
        v.instances += 1;
        v.caught += caught as u64;
    }
    for v in out.scenarios.values_mut() {
        v.recall = (v.instances > 0).then(|| v.caught as f64 / v.instances as f64);
    }
    for ((k, who), alerted) in look {
        let v = out.lookalikes.entry(k).or_default();
        v.instances += 1;
        if alerted {
            v.alerted += 1;
            if v.examples.len() < 5 {
                v.examples.push(who);
            }
        }
    }
    out
}

fn scenario_entity(label: &str) -> Entity {
    MODEL_SCENARIOS
        .iter()
        .find(|s| s.0 == label)
        .map_or(Entity::Card, |s| s.1)
}

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
    /// Every bar missed, in words (empty: all met).
    pub missed: Vec<String>,
}

/// Sum `worlds` and check the bars: each model rule's precision, each model scenario's recall,
/// no look-alike alerted.
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
        }
        for (s, v) in w.scenarios.iter().filter(|(_, v)| v.model_only) {
            let t = b.model_scenarios.entry(s.clone()).or_default();
            t.model_only = true;
            t.instances += v.instances;
            t.caught += v.caught;
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
    }
    if b.lookalikes_alerted > 0 {
        b.missed.push(format!(
            "{} of {} look-alike instances alerted",
            b.lookalikes_alerted, b.lookalike_instances
        ));
    }
    b
}
