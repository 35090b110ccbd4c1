//! The statistical models end to end: training is deterministic, model files round-trip and
//! bad ones are refused with a clear error, the streaming features equal the polars batch
//! features on a replay (no train/serve skew), and the trained models catch the scenarios no
//! rule catches while benign traffic stays quiet.

mod common;

use common::*;
use std::sync::Arc;
use switchguard::decision::Decisions;
use switchguard::engine::{Engine, EngineConfig};
use switchguard::event::Event;
use switchguard::models::train::{batch_features, engine_order, train, TrainOptions};
use switchguard::models::{ModelError, Models};
use switchguard::rules::RulePack;
use switchguard::sim::SimConfig;

fn history() -> Vec<Event> {
    let mut ev = sim_events(&SimConfig {
        seed: 11,
        cards: 3_000,
        days: 16,
        terminals: 400,
        ..SimConfig::default()
    });
    engine_order(&mut ev);
    ev
}

fn trained(events: &[Event]) -> Vec<switchguard::models::ModelFile> {
    train(events, &TrainOptions::default(), |_| {})
        .unwrap()
        .files
}

fn write(dir: &std::path::Path, files: &[switchguard::models::ModelFile]) {
    switchguard::app::train::write_models(dir, files).unwrap();
}

#[test]
fn training_is_deterministic_and_files_round_trip() {
    let ev = history();
    let a = trained(&ev);
    let b = trained(&ev);
    assert_eq!(a.len(), 4, "four models from labelled history");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            serde_json::to_string(x).unwrap(),
            serde_json::to_string(y).unwrap(),
            "{} differs between two runs",
            x.kind.as_str()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &a);
    let again = tempfile::tempdir().unwrap();
    write(again.path(), &b);
    for k in ["terminal_pin", "merchant_nopin", "density", "supervised"] {
        let p = format!("{k}.model.json");
        let x = std::fs::read(dir.path().join(&p)).unwrap();
        assert_eq!(
            x,
            std::fs::read(again.path().join(&p)).unwrap(),
            "{p} bytes"
        );
        let card = std::fs::read_to_string(dir.path().join(format!("{k}.md"))).unwrap();
        assert!(card.contains("## Holdout evaluation"), "{k} card");
        // Parsed back, a file serialises to the same value.
        let parsed: switchguard::models::ModelFile = serde_json::from_slice(&x).unwrap();
        let orig = a.iter().find(|m| m.kind.as_str() == k).unwrap();
        assert!(
            &parsed == orig,
            "{k}: the parsed file differs from the model written"
        );
    }
    let m = Models::load_dir(dir.path()).unwrap();
    assert_eq!(
        m.names(),
        ["terminal_pin", "merchant_nopin", "density", "supervised"]
    );
}

#[test]
fn bad_model_files_are_refused_with_the_file_named_and_old_models_kept() {
    let ev = history();
    let files = trained(&ev);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &files);
    let good = Models::reload(dir.path()).unwrap().expect("models");

    let density = dir.path().join("density.model.json");
    let text = std::fs::read_to_string(&density).unwrap();
    // Corrupt JSON.
    std::fs::write(&density, &text[..text.len() / 2]).unwrap();
    let e = Models::reload(dir.path()).unwrap_err();
    assert!(
        matches!(&e.0[..], [ModelError::Parse { file, .. }] if file.ends_with("density.model.json")),
        "{e}"
    );
    // A newer format version.
    std::fs::write(
        &density,
        text.replacen("\"version\": 1", "\"version\": 9", 1),
    )
    .unwrap();
    let e = Models::reload(dir.path()).unwrap_err();
    assert!(
        matches!(&e.0[..], [ModelError::Version { found: 9, .. }]),
        "{e}"
    );
    assert!(e.to_string().contains("retrain"), "{e}");
    // Trained on other features.
    std::fs::write(&density, text.replacen("\"amount_z\"", "\"amount_q\"", 1)).unwrap();
    let e = Models::reload(dir.path()).unwrap_err();
    assert!(matches!(&e.0[..], [ModelError::Incompatible { .. }]), "{e}");
    // Two problems at once are both reported.
    std::fs::write(dir.path().join("x.model.json"), "{}").unwrap();
    assert_eq!(Models::reload(dir.path()).unwrap_err().0.len(), 2);

    // The engine keeps scoring with the models it had, and rules keep running.
    let mut engine = Engine::new(default_pack(), EngineConfig::default());
    engine.set_models(Some(good.clone()));
    if let Ok(Some(m)) = Models::reload(dir.path()) {
        engine.set_models(Some(m));
    }
    assert!(Arc::ptr_eq(engine.models().unwrap(), &good));
    let mut d = Decisions::default();
    for e in &ev[..5000] {
        engine.process(e, &mut d);
    }
    assert!(engine.stats().events == 5000);
}

#[test]
fn streaming_features_equal_the_polars_batch_features() {
    let ev = history();
    let files = trained(&ev);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &files);
    let models = Arc::new(Models::load_dir(dir.path()).unwrap());
    let batch = batch_features(&ev, &TrainOptions::default()).unwrap();
    let empty = Arc::new(RulePack::default());
    let mut engine = Engine::new(empty, EngineConfig::default());
    engine.set_models(Some(models));
    let mut d = Decisions::default();
    let (mut cards, mut pins, mut merchants) = (0, 0, 0);
    for (i, e) in ev.iter().enumerate() {
        engine.process(e, &mut d);
        let m = &engine.last_features().model;
        match (m.card, batch.card[i]) {
            (Some(s), Some(b)) => {
                for (j, (sv, bv)) in s.x.iter().zip(b).enumerate() {
                    assert!(
                        (sv - bv).abs() <= 1e-9 * (1.0 + bv.abs()),
                        "event {} feature {}: streaming {sv} batch {bv}",
                        e.id,
                        switchguard::models::features::NAMES[j],
                    );
                }
                cards += 1;
            }
            (None, None) => {}
            (s, b) => panic!("event {}: streaming {s:?} batch {b:?}", e.id),
        }
        assert_eq!(
            m.terminal_pin.map(|s| s.count),
            batch.wrong_pins[i],
            "event {}",
            e.id
        );
        pins += batch.wrong_pins[i].is_some() as usize;
        if let Some(s) = m.merchant_nopin {
            assert_eq!(Some((s.n, s.k)), batch.merchant_day[i], "event {}", e.id);
            merchants += 1;
        }
    }
    assert!(
        cards > 50_000 && pins > 100 && merchants > 50,
        "{cards} {pins} {merchants}"
    );
}

/// The committed models (trained on another simulated month, `models/README.md`) run with the
/// default rulepack over fresh traffic: the model rules find the drifting terminals and
/// merchants and the outlier cards that no default rule catches, and stay quiet on benign
/// traffic (no lockout, and few alerts on legitimate events).
#[test]
fn trained_models_catch_what_rules_miss_and_benign_traffic_stays_quiet() {
    use std::collections::{BTreeMap, BTreeSet};
    let models = Arc::new(Models::load_dir(&root().join("models")).expect("committed models"));
    // The world the committed models were trained on (same seed and size), two weeks past
    // the four the models saw: terminals, merchants and cards are the same ones.
    let mut ev = sim_events(&SimConfig {
        seed: 2026,
        cards: 20_000,
        days: 42,
        terminals: 2_000,
        ..SimConfig::default()
    });
    let cut = ev.iter().map(|e| e.ts).min().unwrap() + 28 * 86_400_000;
    ev.retain(|e| e.ts >= cut);
    let label: BTreeMap<String, String> = ev
        .iter()
        .map(|e| {
            (
                e.id.to_string(),
                e.label.as_deref().unwrap_or("legit").to_string(),
            )
        })
        .collect();
    // Instances: the entity each model-only scenario is about.
    let mut instances: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for e in &ev {
        let (scenario, entity) = match e.label.as_deref() {
            Some("terminal_pin_drift") => ("terminal_pin_drift", e.terminal.to_string()),
            Some("merchant_bypass_drift") => (
                "merchant_bypass_drift",
                e.merchant.as_deref().unwrap_or_default().to_string(),
            ),
            Some("card_spend_outlier") => (
                "card_spend_outlier",
                e.card.as_deref().unwrap_or_default().to_string(),
            ),
            _ => continue,
        };
        instances.entry(scenario).or_default().insert(entity);
    }
    let n = ev.len();
    let mut engine = Engine::new(default_pack(), EngineConfig::default());
    engine.set_models(Some(models));
    let mut p = switchguard::engine::Pipeline::new(engine);
    let mut d = Decisions::default();
    for e in ev {
        p.push(e, &mut d);
    }
    p.flush(&mut d);
    let model_alerts: Vec<_> = d
        .alerts
        .iter()
        .filter(|a| a.rule.starts_with("model_"))
        .collect();
    let mut caught: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut benign = 0usize;
    let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &model_alerts {
        let l = label[a.event_ids.last().unwrap()].as_str();
        if l == "legit" {
            benign += 1;
            *by_rule.entry(a.rule.as_str()).or_default() += 1;
        }
        if let Some(s) = instances.keys().find(|s| **s == l) {
            caught.entry(s).or_default().insert(a.entity_id.clone());
        }
        // Every model alert explains itself with contributing features and normal values.
        assert!(a.features.contains_key("contributions"), "{a:?}");
        assert!(!a.reason.contains('?'), "{}", a.reason);
    }
    for (s, all) in &instances {
        let got = caught.get(s).map_or(0, |c| c.intersection(all).count());
        let share = got as f64 / all.len() as f64;
        println!("{s}: {got} of {} instances caught", all.len());
        // Drifting PIN pads are the hardest: a tripled rate over a few hours is a small
        // count; half of the terminals (and most drift days) within the first days is the bar.
        let bar = match *s {
            "merchant_bypass_drift" => 0.9,
            "card_spend_outlier" => 0.6,
            _ => 0.5,
        };
        assert!(share >= bar, "{s}: {got} of {} instances caught", all.len());
    }
    assert_eq!(instances.len(), 3);
    // Benign traffic stays quiet: model alerts on legitimate events under 3 in 10,000 events
    // (measured: about 2.5; mostly large legitimate purchases at jewellers and electronics
    // shops), and no lockout from a model rule.
    println!("{benign} model alerts on legitimate events out of {n} events: {by_rule:?}");
    assert!(
        (benign as f64) < 3e-4 * n as f64,
        "{benign} benign model alerts in {n} events"
    );
    assert!(d
        .commands
        .iter()
        .all(|c| !c.rule.as_deref().unwrap_or("").starts_with("model_")));
}
