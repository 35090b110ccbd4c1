//! Replaying the simulator's output: every labelled attack is caught, no benign card is locked,
//! benign traffic raises no alert, no clear PAN appears in any output, and Parquet input gives
//! the same decisions as JSONL. The model-only scenarios (`sim::MODEL_ONLY`) are the exception:
//! no default rule may catch them.

mod common;

use common::*;
use std::io::Write;
use switchguard::app::replay::{self, Threads};
use switchguard::decode::Tokenizer;
use switchguard::engine::EngineConfig;
use switchguard::sim::{self, SimConfig, LABELS, MODEL_ONLY};

fn cfg() -> SimConfig {
    SimConfig {
        seed: 7,
        cards: 600,
        days: 35,
        terminals: 150,
        ..SimConfig::default()
    }
}

#[test]
fn replay_of_simulated_traffic_catches_every_attack_and_locks_no_benign_card() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("traffic.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    let n = sim::write_jsonl(&cfg(), &mut f).unwrap();
    // Bad records mixed in, one carrying a clear PAN.
    writeln!(
        f,
        r#"{{"id":"bad1","pan":"6225881111222233","ts":"not a time","type":"auth"}}"#
    )
    .unwrap();
    writeln!(f, "{{truncated").unwrap();
    f.flush().unwrap();
    drop(f);
    assert!(n > 20_000, "{n} events");

    let out = dir.path().join("out");
    let report = replay::run(
        std::slice::from_ref(&input),
        default_pack(),
        None,
        EngineConfig::default(),
        Tokenizer::default(),
        &out,
        false,
        Threads::Two,
    )
    .unwrap();
    assert_eq!(report.events, n);
    assert_eq!(report.rejects, 2);
    let eval = report
        .evaluation
        .as_ref()
        .expect("labelled input is evaluated");
    for label in LABELS.iter().filter(|l| **l != "legit") {
        let s = eval
            .per_scenario
            .get(*label)
            .unwrap_or_else(|| panic!("scenario {label} missing from the traffic"));
        assert!(s.instances >= 2, "{label}: {s:?}");
        if MODEL_ONLY.contains(label) {
            assert_eq!(s.caught, 0, "{label} is meant for the models only: {s:?}");
        } else {
            assert_eq!(s.caught, s.instances, "{label} not all caught: {s:?}");
        }
    }
    assert_eq!(
        eval.benign_lockouts, 0,
        "a benign card or terminal was locked"
    );
    for (rule, r) in &eval.per_rule {
        assert_eq!(
            r.true_positives, r.alerts,
            "rule {rule} alerted on benign traffic: {r:?}"
        );
    }
    assert!(report.lockouts > 0);

    // No clear PAN anywhere in the outputs.
    let mut pans = std::collections::BTreeSet::new();
    for line in read(&input).lines() {
        if let Some(p) = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("pan").and_then(|p| p.as_str()).map(String::from))
        {
            pans.insert(p);
        }
    }
    assert!(pans.len() > 500);
    for name in [
        "alerts.jsonl",
        "commands.jsonl",
        "rejects.jsonl",
        "report.json",
    ] {
        let text = read(&out.join(name));
        for p in &pans {
            assert!(!text.contains(p.as_str()), "clear PAN found in {name}");
        }
    }
    let rejects = read(&out.join("rejects.jsonl"));
    assert!(
        rejects.contains("622588******2233"),
        "reject keeps the masked PAN: {rejects}"
    );
    let alerts = read(&out.join("alerts.jsonl"));
    assert!(
        alerts.contains("\"pan_masked\":\"6"),
        "alerts carry masked PANs"
    );
}

#[test]
fn default_rules_raise_no_alert_on_the_model_only_scenarios() {
    // Many instances of each: five times the usual attack rate.
    let cfg = SimConfig {
        seed: 21,
        cards: 1_500,
        days: 21,
        terminals: 300,
        attack_rate: 5.0,
        ..SimConfig::default()
    };
    let events = sim_events(&cfg);
    let mut model_only = std::collections::BTreeMap::new();
    for e in &events {
        if let Some(l) = e.label.as_deref().filter(|l| MODEL_ONLY.contains(l)) {
            model_only.insert(e.id.to_string(), l.to_string());
        }
    }
    for l in MODEL_ONLY {
        let n = model_only.values().filter(|v| *v == l).count();
        assert!(n >= 20, "{l}: only {n} events");
    }
    let decisions = run_events(&default_pack(), events);
    assert!(!decisions.is_empty(), "the rule scenarios still alert");
    for line in decisions {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        for id in v["event_ids"].as_array().unwrap() {
            let id = id.as_str().unwrap();
            assert!(
                !model_only.contains_key(id),
                "{} caught by a default rule: {line}",
                model_only[id]
            );
        }
    }
}

#[test]
fn parquet_input_gives_the_same_decisions_as_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let small = SimConfig {
        seed: 11,
        cards: 300,
        days: 4,
        terminals: 80,
        ..SimConfig::default()
    };
    let mut outs = Vec::new();
    for ext in ["jsonl", "parquet"] {
        let input = dir.path().join(format!("t.{ext}"));
        let f = std::fs::File::create(&input).unwrap();
        if ext == "parquet" {
            switchguard::sink::parquet::write_sim(&small, f).unwrap();
        } else {
            let mut w = std::io::BufWriter::new(f);
            sim::write_jsonl(&small, &mut w).unwrap();
            w.flush().unwrap();
        }
        let out = dir.path().join(ext);
        let r = replay::run(
            &[input],
            default_pack(),
            None,
            EngineConfig::default(),
            Tokenizer::default(),
            &out,
            false,
            Threads::Two,
        )
        .unwrap();
        assert!(r.alerts > 0);
        assert_eq!(r.rejects, 0);
        outs.push((
            read(&out.join("alerts.jsonl")),
            read(&out.join("commands.jsonl")),
        ));
    }
    assert_eq!(outs[0], outs[1]);
}
