//! The statistical models end to end: training is deterministic, a model set round-trips and
//! is loaded as one consistent set (a stale, mixed, altered or partial set is refused with every
//! problem named), the streaming features equal the batch features on a replay (no train/serve
//! skew), dispositions from the risk console train the supervised model, and a models
//! directory that is missing or empty is loud (an error for `run`). The replay evaluation
//! across worlds is `tests/cross_world.rs`.

mod common;

use common::*;
use std::path::Path;
use std::sync::Arc;
use switchguard::app::train::{in_memory, write_models};
use switchguard::decision::Decisions;
use switchguard::engine::{Engine, EngineConfig};
use switchguard::event::Event;
use switchguard::models::labels::Labels;
use switchguard::models::manifest::{self, Manifest};
use switchguard::models::train::{batch_features, engine_order, train, TrainOptions};
use switchguard::models::{Empty, ModelError, ModelFile, Models};
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

fn trained(events: &[Event], labels: Option<&Labels>) -> Vec<ModelFile> {
    train(events, &TrainOptions::default(), labels, |_| {})
        .unwrap()
        .files
}

fn write(dir: &Path, files: &[ModelFile]) {
    write_models(dir, files, None).unwrap();
}

fn kinds(m: &Models) -> Vec<&'static str> {
    m.names()
}

#[test]
fn training_is_deterministic_and_a_set_round_trips() {
    let ev = history();
    let a = trained(&ev, None);
    let b = trained(&ev, None);
    let names: Vec<&str> = a.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(
        names,
        [
            "terminal_pin",
            "merchant_nopin",
            "card_outlier",
            "supervised"
        ],
        "the default set from labelled history (the mixture only with --density)"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            serde_json::to_string(x).unwrap(),
            serde_json::to_string(y).unwrap(),
            "{} differs between two runs",
            x.kind.as_str()
        );
        assert_eq!(
            x.training.source, "simulated",
            "labelled history is simulated"
        );
        assert!(
            !x.summary.is_empty(),
            "{}: no training summary",
            x.kind.as_str()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &a);
    let again = tempfile::tempdir().unwrap();
    write(again.path(), &b);
    for k in &names {
        let p = format!("{k}.model.json");
        let x = std::fs::read(dir.path().join(&p)).unwrap();
        assert_eq!(
            x,
            std::fs::read(again.path().join(&p)).unwrap(),
            "{p} bytes"
        );
        let card = std::fs::read_to_string(dir.path().join(format!("{k}.md"))).unwrap();
        assert!(card.contains("## Holdout evaluation"), "{k} card");
        assert!(
            card.contains("simulated traffic"),
            "{k} card says what it was trained on"
        );
        let parsed: ModelFile = serde_json::from_slice(&x).unwrap();
        assert!(&parsed == a.iter().find(|m| m.kind.as_str() == *k).unwrap());
    }
    let m = Models::load_dir(dir.path()).unwrap();
    assert_eq!(kinds(&m), names);
    assert!(m.simulated(), "`run` warns about these");
    let mf = Manifest::read(dir.path()).unwrap().unwrap();
    assert_eq!(mf.files.len(), 4);
    assert_eq!(Some(mf.set), m.set);
}

/// Put `bytes` in `dir/name` and list it in the manifest as it is (so only the file's own
/// problem is left to find).
fn plant(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
    let mut m = Manifest::read(dir).unwrap().unwrap();
    m.files.insert(name.into(), manifest::digest(bytes));
    std::fs::write(
        dir.join(manifest::FILE),
        serde_json::to_vec_pretty(&m).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_set_is_loaded_whole_or_not_at_all_with_every_problem_named() {
    let ev = history();
    let files = trained(&ev, None);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &files);
    let good = Models::reload(dir.path()).unwrap().expect("models");
    let density = dir.path().join("card_outlier.model.json");
    let text = std::fs::read_to_string(&density).unwrap();

    // Altered after training: the digest says so.
    std::fs::write(
        &density,
        text.replace("\"mcc_weight\": 2.0", "\"mcc_weight\": 3.0"),
    )
    .unwrap();
    let e = Models::reload(dir.path()).unwrap_err();
    assert!(
        matches!(&e.0[..], [ModelError::Digest { file }] if file.ends_with("card_outlier.model.json")),
        "{e}"
    );
    // Corrupt JSON (listed as it is): refused as a parse error naming the file.
    plant(
        dir.path(),
        "card_outlier.model.json",
        &text.as_bytes()[..text.len() / 2],
    );
    let e = Models::reload(dir.path()).unwrap_err();
    assert!(matches!(&e.0[..], [ModelError::Parse { .. }]), "{e}");
    // A newer format version.
    plant(
        dir.path(),
        "card_outlier.model.json",
        text.replacen("\"version\": 2", "\"version\": 9", 1)
            .as_bytes(),
    );
    let e = Models::reload(dir.path()).unwrap_err();
    assert!(
        matches!(&e.0[..], [ModelError::Version { found: 9, .. }]),
        "{e}"
    );
    assert!(e.to_string().contains("retrain"), "{e}");
    // Trained on other features.
    plant(
        dir.path(),
        "card_outlier.model.json",
        text.replacen("\"amount_z\"", "\"amount_q\"", 1).as_bytes(),
    );
    let e = Models::reload(dir.path()).unwrap_err();
    assert!(matches!(&e.0[..], [ModelError::Incompatible { .. }]), "{e}");
    plant(dir.path(), "card_outlier.model.json", text.as_bytes());
    assert!(Models::reload(dir.path()).is_ok());

    // A model file of another set beside this one, and a listed file gone: both reported.
    std::fs::write(dir.path().join("old.model.json"), "{}").unwrap();
    std::fs::remove_file(dir.path().join("merchant_nopin.model.json")).unwrap();
    let e = Models::reload(dir.path()).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
    assert!(
        e.0.iter().any(|x| matches!(x, ModelError::Unlisted { .. })),
        "{e}"
    );
    assert!(
        e.0.iter().any(|x| matches!(x, ModelError::Missing { .. })),
        "{e}"
    );
    // Model files without a manifest: not a set this build wrote.
    std::fs::remove_file(dir.path().join(manifest::FILE)).unwrap();
    let e = Models::reload(dir.path()).unwrap_err();
    assert!(matches!(&e.0[..], [ModelError::Manifest { .. }]), "{e}");

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
    assert_eq!(engine.stats().events, 5000);
}

#[test]
fn retraining_on_unlabelled_history_removes_the_stale_supervised_model() {
    let mut ev = history();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &trained(&ev, None));
    assert!(dir.path().join("supervised.model.json").exists());
    for e in &mut ev {
        e.label = None;
    }
    let unlabelled = trained(&ev, None);
    assert!(unlabelled.iter().all(|m| m.training.source == "recorded"));
    write(dir.path(), &unlabelled);
    assert!(!dir.path().join("supervised.model.json").exists());
    assert!(!dir.path().join("supervised.md").exists());
    let m = Models::load_dir(dir.path()).unwrap();
    assert_eq!(
        kinds(&m),
        ["terminal_pin", "merchant_nopin", "card_outlier"]
    );
    assert!(!m.simulated());
}

#[test]
fn a_missing_or_empty_models_directory_is_loud_and_an_error_for_run() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo");
    assert!(matches!(Models::load_set(&typo), Ok(Err(Empty::NoDir))));
    assert!(matches!(
        Models::load_set(dir.path()),
        Ok(Err(Empty::NoSet))
    ));
    // `run` (strict) refuses both; replay, demo and `rules test` carry on with rules alone.
    let e = Models::open(&typo, true).unwrap_err();
    assert!(
        e.contains("does not exist") && e.contains("--models none"),
        "{e}"
    );
    assert!(Models::open(dir.path(), true)
        .unwrap_err()
        .contains("no model set"));
    assert!(Models::open(&typo, false).unwrap().is_none());
    // `none` is rules alone on purpose, for every command.
    assert!(Models::open(Path::new("none"), true).unwrap().is_none());
}

#[test]
fn streaming_features_equal_the_batch_features() {
    let ev = history();
    let files = trained(&ev, None);
    let models = Arc::new(in_memory(&files).unwrap());
    let batch = batch_features(
        &ev,
        &TrainOptions::default(),
        switchguard::time::EventTime::from_ms(i64::MAX),
    )
    .unwrap();
    let tp = &models.terminal_pin.as_ref().unwrap().model;
    let empty = Arc::new(RulePack::default());
    let mut engine = Engine::new(empty, EngineConfig::default());
    engine.set_models(Some(models.clone()));
    let mut d = Decisions::default();
    let (mut cards, mut pins, mut unresolved, mut merchants) = (0, 0, 0, 0);
    for (i, e) in ev.iter().enumerate() {
        engine.process(e, &mut d);
        let m = &engine.last_features().model;
        match (m.card, batch.card[i]) {
            (Some(s), Some(b)) => {
                for (j, (sv, bv)) in s.x.iter().zip(b.x).enumerate() {
                    assert!(
                        (sv - bv).abs() <= 1e-9 * (1.0 + bv.abs()),
                        "event {} feature {}: streaming {sv} batch {bv}",
                        e.id,
                        switchguard::models::features::NAMES[j],
                    );
                }
                assert_eq!(s.usual_log, b.usual_log, "event {}", e.id);
                assert_eq!(s.normals, b.normals, "event {}", e.id);
                cards += 1;
            }
            (None, None) => {}
            (s, b) => panic!("event {}: streaming {s:?} batch {b:?}", e.id),
        }
        // Every wrong PIN: the same counts, the same daily baseline (so the same score).
        let want = batch.pin[i].as_ref().map(|c| tp.score(e.mcc, c));
        assert_eq!(m.terminal_pin, want, "event {}", e.id);
        if let Some(c) = &batch.pin[i] {
            pins += 1;
            unresolved += (c.unresolved > 0) as usize;
        }
        if let Some(s) = m.merchant_nopin {
            assert_eq!(Some((s.n, s.k)), batch.merchant_day[i], "event {}", e.id);
            merchants += 1;
        }
    }
    assert!(
        cards > 50_000 && pins > 100 && unresolved > 5 && merchants > 50,
        "{cards} {pins} {unresolved} {merchants}"
    );
}

#[test]
fn dispositions_from_the_console_train_the_supervised_model() {
    // Unlabelled history: no supervised model...
    let mut ev = history();
    let attacks: Vec<String> = ev
        .iter()
        .filter(|e| e.label.as_deref().is_some_and(|l| l != "legit"))
        .map(|e| e.id.to_string())
        .collect();
    let cleared: Vec<String> = ev
        .iter()
        .filter(|e| e.label.as_deref() == Some("legit") && e.amount.unwrap_or(0) > 50_000)
        .take(50)
        .map(|e| e.id.to_string())
        .collect();
    for e in &mut ev {
        e.label = None;
    }
    assert!(trained(&ev, None)
        .iter()
        .all(|m| m.kind.as_str() != "supervised"));
    // ... until the console's dispositions say which alerts were fraud.
    let mut text = String::new();
    for (i, chunk) in attacks.chunks(3).enumerate() {
        text.push_str(
            &serde_json::json!({"alert_id": format!("al_{i}"), "rule": "pin_consecutive_wrong",
                "entity": "card", "entity_id": "tok_x", "event_ids": chunk,
                "disposition": "confirmed_fraud", "disposed_at": "2026-10-02T09:00:00.000Z",
                "actor": "alice"})
            .to_string(),
        );
        text.push('\n');
    }
    text.push_str(
        &serde_json::json!({"alert_id": "al_fp", "rule": "model_card_outlier",
            "event_ids": cleared, "disposition": "false_positive", "actor": "bob"})
        .to_string(),
    );
    text.push_str("\n{\"not\": \"a disposition\"}\n");
    let mut labels = Labels::default();
    labels.add("labels.jsonl", &text);
    assert_eq!(labels.problems.len(), 1, "{:?}", labels.problems);
    let files = trained(&ev, Some(&labels));
    let sup = files
        .iter()
        .find(|m| m.kind.as_str() == "supervised")
        .expect("a supervised model from the dispositions");
    assert!(sup.evaluation.pr_auc.is_some(), "labelled holdout figures");
    let ids: std::collections::HashSet<&str> = ev.iter().map(|e| e.id.as_str()).collect();
    let r = labels.report(vec!["labels.jsonl".into()], &|id| ids.contains(id));
    assert_eq!(r.negative_events, 50);
    assert_eq!(r.not_in_history, 0);
    assert_eq!(r.per_rule["model_card_outlier"].false_positive, 1);
    assert_eq!(r.per_rule["model_card_outlier"].precision, Some(0.0));
    assert_eq!(r.per_rule["pin_consecutive_wrong"].precision, Some(1.0));
}
