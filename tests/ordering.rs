//! Event-time determinism: reordering arrivals within the allowed lateness, or splitting the
//! input at any point through a snapshot and restore, leaves every decision unchanged.

mod common;

use common::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;
use switchguard::decision::Decisions;
use switchguard::engine::{Engine, EngineConfig, Pipeline, PipelineSnapshot};
use switchguard::event::Event;
use switchguard::sim::SimConfig;

fn events() -> &'static (Vec<Event>, Vec<String>) {
    static E: OnceLock<(Vec<Event>, Vec<String>)> = OnceLock::new();
    E.get_or_init(|| {
        let ev = sim_events(&SimConfig {
            seed: 3,
            cards: 400,
            days: 3,
            terminals: 100,
            attack_rate: 3.0,
            ..SimConfig::default()
        });
        let base = run_events(&default_pack(), ev.clone());
        assert!(
            base.len() > 30,
            "the stream must produce decisions to compare"
        );
        (ev, base)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn reordering_within_lateness_changes_nothing(seed in any::<u64>()) {
        let (ev, base) = events();
        let lateness = EngineConfig::default().allowed_lateness;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut keyed: Vec<(i64, usize)> = ev
            .iter()
            .enumerate()
            .map(|(i, e)| (e.ts + rng.gen_range(0..=lateness), i))
            .collect();
        keyed.sort();
        let shuffled: Vec<Event> = keyed.iter().map(|(_, i)| ev[*i].clone()).collect();
        prop_assert_ne!(&shuffled, ev);
        let got = run_events(&default_pack(), shuffled);
        prop_assert_eq!(&got, base);
    }

    #[test]
    fn splitting_through_a_snapshot_changes_nothing(cut in 0.0f64..1.0) {
        let (ev, base) = events();
        let pack = default_pack();
        let k = (ev.len() as f64 * cut) as usize;
        let mut d = Decisions::default();
        let mut p = Pipeline::new(Engine::new(pack.clone(), EngineConfig::default()));
        for e in &ev[..k] {
            p.push(e.clone(), &mut d);
        }
        // Through JSON, as a checkpoint would be stored.
        let json = serde_json::to_vec(&p.snapshot()).unwrap();
        let snap: PipelineSnapshot = serde_json::from_slice(&json).unwrap();
        let again = serde_json::to_vec(&snap).unwrap();
        prop_assert_eq!(&json, &again, "snapshots are byte-stable");
        let engine = Engine::restore(pack.clone(), EngineConfig::default(), snap.engine).unwrap();
        let mut p = Pipeline::restore(engine, snap.pending, snap.max_ts, snap.watermark);
        for e in &ev[k..] {
            p.push(e.clone(), &mut d);
        }
        p.flush(&mut d);
        prop_assert_eq!(&lines(&d), base);
    }
}

#[test]
fn late_events_are_counted_and_still_processed() {
    let pack = default_pack();
    let dec = switchguard::decode::Decoder::default();
    let mk = |id: &str, ts: &str| {
        dec.decode_json(format!(r#"{{"id":"{id}","ts":"{ts}","type":"auth","card":"C1","terminal":"T1","merchant":"M1","pin":"entered","response_code":"55"}}"#).as_bytes()).unwrap()
    };
    let mut p = Pipeline::new(Engine::new(pack, EngineConfig::default()));
    let mut d = Decisions::default();
    p.push(mk("a", "2026-10-01T10:00:00Z"), &mut d);
    p.push(mk("b", "2026-10-01T10:10:00Z"), &mut d);
    p.push(mk("c", "2026-10-01T10:20:00Z"), &mut d);
    // 15 minutes late: far beyond the 5 s lateness, yet processed (and it completes the run).
    p.push(mk("late", "2026-10-01T10:05:00Z"), &mut d);
    p.flush(&mut d);
    assert_eq!(p.engine().stats().late, 1);
    assert_eq!(p.engine().stats().events, 4);
    assert!(d.alerts.iter().any(|a| a.rule == "pin_consecutive_wrong"));
    // A duplicate id is dropped and counted.
    p.push(mk("a", "2026-10-01T10:00:00Z"), &mut d);
    assert_eq!(p.engine().stats().duplicates, 1);
}
