//! Event-time determinism: reordering arrivals within the allowed lateness, or splitting the
//! input at any point through a snapshot and restore, leaves every decision unchanged; a
//! snapshot keeps its content while the engine goes on.

mod common;

use common::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;
use switchguard::decision::Decisions;
use switchguard::engine::{Engine, EngineConfig, Pipeline, PipelineSnapshot};
use switchguard::event::Event;
use switchguard::sim::SimConfig;
use switchguard::time::{EventTime, Span};

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
        let lateness = EngineConfig::default().allowed_lateness.as_ms();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut keyed: Vec<(i64, usize)> = ev
            .iter()
            .enumerate()
            .map(|(i, e)| (e.ts.as_ms() + rng.gen_range(0..=lateness), i))
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
        let mut p = Pipeline::restore(engine, snap.order, snap.max_ts, 1).unwrap();
        for e in &ev[k..] {
            p.push(e.clone(), &mut d);
        }
        p.flush(&mut d);
        prop_assert_eq!(&lines(&d), base);
    }

    #[test]
    fn a_snapshot_stays_put_while_the_engine_goes_on(cut in 0.0f64..1.0) {
        // The service encodes a snapshot on a worker thread while its loop keeps processing, and
        // the two share storage until the loop writes (copy on write): the snapshot must read
        // the same after the engine has moved on, and the engine decide as if none was taken.
        let (ev, base) = events();
        let k = (ev.len() as f64 * cut) as usize;
        let mut d = Decisions::default();
        let mut p = Pipeline::new(Engine::new(default_pack(), EngineConfig::default()));
        for e in &ev[..k] {
            p.push(e.clone(), &mut d);
        }
        let snap = p.snapshot();
        let at_cut = serde_json::to_vec(&snap).unwrap();
        for e in &ev[k..] {
            p.push(e.clone(), &mut d);
        }
        p.flush(&mut d);
        prop_assert_eq!(&lines(&d), base);
        prop_assert!(serde_json::to_vec(&snap).unwrap() == at_cut, "the snapshot moved");
    }

    #[test]
    fn reorder_buffer_releases_like_one_sorted_buffer(seed in any::<u64>()) {
        // Mostly in order (the buffer's fast path), with some events displaced by up to a
        // minute (out of order within the lateness, or late), some repeated, and a snapshot
        // taken and restored midway: the decisions and counts are those of a plain sorted
        // buffer in front of the engine, releasing in (ts, id) order.
        let (ev, _) = events();
        let ev = &ev[..ev.len().min(3000)];
        let cfg = EngineConfig::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut keyed: Vec<(i64, usize)> = Vec::new();
        for (i, e) in ev.iter().enumerate() {
            let shift = match rng.gen_range(0..10) {
                0 => rng.gen_range(-60_000..=60_000),
                1 => rng.gen_range(0..=cfg.allowed_lateness.as_ms()),
                _ => 0,
            };
            keyed.push((e.ts.as_ms() + shift, i));
            if rng.gen_range(0..40) == 0 {
                keyed.push((e.ts.as_ms() + rng.gen_range(0..=2 * cfg.allowed_lateness.as_ms()), i));
            }
        }
        keyed.sort();
        let arrivals: Vec<Event> = keyed.iter().map(|(_, i)| ev[*i].clone()).collect();
        let cut = rng.gen_range(0..arrivals.len());

        let pack = default_pack();
        let mut d = Decisions::default();
        let mut p = Pipeline::new(Engine::new(pack.clone(), cfg));
        for (k, e) in arrivals.iter().enumerate() {
            if k == cut {
                let snap = p.snapshot();
                let sorted = snap
                    .order
                    .pending
                    .windows(2)
                    .all(|w| (w[0].ts(), w[0].id()) <= (w[1].ts(), w[1].id()));
                prop_assert!(sorted, "snapshot pending is sorted");
                let engine = Engine::restore(pack.clone(), cfg, snap.engine).unwrap();
                p = Pipeline::restore(engine, snap.order, snap.max_ts, 1).unwrap();
            }
            p.push(e.clone(), &mut d);
        }
        p.flush(&mut d);

        let mut want = Decisions::default();
        let mut engine = Engine::new(pack, cfg);
        let mut buf: Vec<Event> = vec![];
        let (mut max_ts, mut wm): (Option<EventTime>, Option<EventTime>) = (None, None);
        for e in arrivals {
            if let Some(wm) = wm.filter(|wm| e.ts < *wm) {
                engine.stats_mut().late += 1;
                engine.process_late(&e, wm, &mut want);
                continue;
            }
            let max = max_ts.map_or(e.ts, |m| m.max(e.ts));
            max_ts = Some(max);
            let wm_now = wm.max(Some(max - cfg.allowed_lateness)).expect("a watermark");
            wm = Some(wm_now);
            buf.push(e);
            buf.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
            let n = buf.iter().take_while(|e| e.ts < wm_now).count();
            for e in buf.drain(..n) {
                engine.process(&e, &mut want);
            }
            engine.advance(wm_now, &mut want);
        }
        for e in buf.drain(..) {
            engine.process(&e, &mut want);
        }
        if let Some(max) = max_ts {
            engine.advance(max.saturating_add(Span::ms(1)), &mut want);
        }
        prop_assert_eq!(lines(&d), lines(&want));
        let (got, exp) = (p.engine().stats(), engine.stats());
        prop_assert_eq!(
            (got.events, got.late, got.duplicates),
            (exp.events, exp.late, exp.duplicates)
        );
        prop_assert!(exp.late > 0 && exp.duplicates > 0, "the arrivals exercise both");
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
