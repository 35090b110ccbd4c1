//! Running a world through the engine to judge a model set (the types, the units and the bars
//! are [`crate::models::evaluate`]): here because it drives the engine, which the models sit
//! below.

use crate::decision::Decisions;
use crate::engine::{Engine, EngineConfig, Pipeline};
use crate::event::Event;
use crate::models::evaluate::{RuleEval, WorldEval};
use crate::models::Models;
use crate::rules::RulePack;
use crate::time::EventTime;
use rustc_hash::FxHashMap;
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

/// One world's events by id, the start of the evaluated part and the look-alike markers.
struct World<'a> {
    by_id: FxHashMap<&'a str, &'a Event>,
    marks: &'a FxHashMap<String, String>,
    from: EventTime,
}

/// Instances: (scenario, entity) → caught; look-alikes: (kind, entity) → alerted.
type Caught = BTreeMap<(String, String), bool>;

impl<'a> World<'a> {
    fn new(events: &'a [Event], marks: &'a FxHashMap<String, String>, from: EventTime) -> Self {
        let mut by_id: FxHashMap<&str, &Event> = FxHashMap::default();
        for e in events {
            by_id.entry(e.id.as_str()).or_insert(e);
        }
        World { by_id, marks, from }
    }

    /// Whether the event `id` is part of an attack.
    fn attack(&self, id: &str) -> bool {
        self.by_id.get(id).is_some_and(|e| {
            !e.kind.is_management() && e.label.as_deref().is_some_and(|l| l != "legit")
        })
    }

    /// Whether the alert's last event is in the evaluated part.
    fn in_period(&self, a: &crate::decision::Alert) -> bool {
        a.event_ids
            .last()
            .and_then(|id| self.by_id.get(id.as_str()))
            .is_some_and(|e| e.ts >= self.from)
    }

    /// The share of the evaluated alerts that are on attacks (none without alerts).
    fn precision(&self, d: &Decisions) -> Option<f64> {
        let (n, tp) = d
            .alerts
            .iter()
            .filter(|a| self.in_period(a))
            .fold((0, 0), |c, a| {
                (
                    c.0 + 1,
                    c.1 + a.event_ids.iter().any(|i| self.attack(i)) as u64,
                )
            });
        (n > 0).then(|| tp as f64 / n as f64)
    }

    /// The look-alike kinds the event `e` is marked with.
    fn marks_of(&self, e: &Event) -> impl Iterator<Item = &'a str> {
        self.marks
            .get(e.id.as_str())
            .into_iter()
            .flat_map(|m| m.split(','))
    }

    /// Every attack instance and look-alike of the evaluated part, none caught yet.
    fn instances(&self) -> (Caught, Caught) {
        let mut inst = Caught::new();
        let mut look = Caught::new();
        for e in self
            .by_id
            .values()
            .filter(|e| e.ts >= self.from && !e.kind.is_management())
        {
            if let Some(l) = e.label.as_deref().filter(|l| *l != "legit") {
                let who = scenario_entity(l);
                inst.insert((l.to_string(), key(e, who)), false);
            }
            for k in self.marks_of(e) {
                look.insert((k.to_string(), key(e, entity(k))), false);
            }
        }
        (inst, look)
    }
}

/// Evaluate `models` with `pack` on one world's `events` (arrival order), counting from
/// `from`; `marks`: look-alike markers by event id (`sim::LOOKALIKES`).
pub fn evaluate_world(
    world: &str,
    events: &[Event],
    marks: &FxHashMap<String, String>,
    pack: &Arc<RulePack>,
    models: &Arc<Models>,
    from: EventTime,
) -> WorldEval {
    let w = World::new(events, marks, from);
    let model_rules: BTreeSet<&str> = pack
        .rules
        .iter()
        .filter(|r| r.reads.iter().any(|f| f.model().is_some()))
        .map(|r| r.id.as_str())
        .collect();
    let with = replay(events, pack, Some(models.clone()));
    let alone = replay(events, pack, None);
    let mut out = WorldEval {
        world: world.into(),
        events: w.by_id.len() as u64,
        from: crate::event::format_ts(from),
        evaluated_events: w.by_id.values().filter(|e| e.ts >= from).count() as u64,
        precision_with_models: w.precision(&with),
        precision_rules_alone: w.precision(&alone),
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
    let (mut inst, mut look) = w.instances();
    for a in with.alerts.iter().filter(|a| w.in_period(a)) {
        let model = model_rules.contains(a.rule.as_str());
        count_alert(&w, a, model, &mut out, &mut inst, &mut look);
    }
    tally(&mut out, inst, look);
    out
}

/// Counts one evaluated alert of the run with models: for its rule, and as catching the
/// instances and look-alikes its events belong to.
fn count_alert(
    w: &World<'_>,
    a: &crate::decision::Alert,
    model: bool,
    out: &mut WorldEval,
    inst: &mut Caught,
    look: &mut Caught,
) {
    let on_attack = a.event_ids.iter().any(|i| w.attack(i));
    let r = out.rules.entry(a.rule.clone()).or_default();
    r.alerts += 1;
    r.on_attacks += on_attack as u64;
    for e in a.event_ids.iter().filter_map(|i| w.by_id.get(i.as_str())) {
        if let Some(l) = e.label.as_deref().filter(|l| *l != "legit") {
            let model_only = MODEL_SCENARIOS.iter().any(|s| s.0 == l);
            if model || !model_only {
                if let Some(c) = inst.get_mut(&(l.to_string(), key(e, scenario_entity(l)))) {
                    *c = true;
                }
            }
        }
        if !on_attack {
            for k in w.marks_of(e) {
                if let Some(c) = look.get_mut(&(k.to_string(), key(e, entity(k)))) {
                    *c = true;
                }
            }
        }
    }
}

/// Rule precision, scenario recall and look-alike counts from the counts.
fn tally(out: &mut WorldEval, inst: Caught, look: Caught) {
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
}

fn scenario_entity(label: &str) -> Entity {
    MODEL_SCENARIOS
        .iter()
        .find(|s| s.0 == label)
        .map_or(Entity::Card, |s| s.1)
}
