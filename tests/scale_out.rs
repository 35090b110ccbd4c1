//! Scale-out, without Kafka: the staged topology (`engine::shard`, `engine::shard_task`) run
//! on in-memory queues with 1, 2 and 4 shards per stage, records delivered in a seeded random
//! interleaving (as instances and partitions would), and restarts from snapshots mid-stream.
//! Every layout must give exactly the decisions of one engine over the same events.

mod common;

use common::*;
use std::collections::VecDeque;
use std::sync::Arc;
use switchguard::control::Input;
use switchguard::decision::Decisions;
use switchguard::engine::shard;
use switchguard::engine::shard_task::{self, Envelope, Forward, ShardTask, SourceMark};
use switchguard::engine::{Engine, EngineConfig, Pipeline};
use switchguard::keyed::Stage;
use switchguard::models::Models;
use switchguard::rules::RulePack;
use switchguard::service::runner::tasks::Saved;
use switchguard::sim::SimConfig;

/// A small deterministic generator (splitmix64), so the interleaving is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn engine(pack: &Arc<RulePack>, models: &Option<Arc<Models>>) -> Engine {
    let mut e = Engine::new(pack.clone(), EngineConfig::default());
    e.set_models(models.clone());
    e
}

fn one_engine(pack: &Arc<RulePack>, models: &Option<Arc<Models>>, inputs: &[Input]) -> Vec<String> {
    let mut p = Pipeline::new(engine(pack, models));
    let mut d = Decisions::default();
    for i in inputs {
        p.push_input(i.clone(), &mut d);
    }
    p.flush(&mut d);
    sorted(lines(&d))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The in-memory topology: tasks[stage][shard], their input queues, and per task the last
/// snapshot with the records delivered since (what a restart from that checkpoint re-reads).
struct Topo {
    tasks: Vec<Vec<ShardTask>>,
    queues: Vec<Vec<VecDeque<Envelope>>>,
    ckpt: Vec<Vec<(String, Vec<Envelope>)>>,
    sent_marks: Vec<Vec<Option<switchguard::time::EventTime>>>,
    d: Decisions,
}

impl Topo {
    fn deliver(&mut self, s: usize, k: usize, env: Envelope, log: bool) {
        let mut fwd: Vec<Forward> = Vec::new();
        if log {
            self.ckpt[s][k].1.push(env.clone());
        }
        self.tasks[s][k]
            .accept(env, &mut fwd, &mut self.d)
            .expect("known source");
        if s + 1 < self.tasks.len() {
            for f in fwd.drain(..) {
                self.queues[s + 1][f.shard as usize].push_back(f.env);
            }
            let wm = self.tasks[s][k].watermark();
            if wm > self.sent_marks[s][k] {
                self.sent_marks[s][k] = wm;
                let m = self.tasks[s][k].mark().expect("a watermark");
                for q in self.queues[s + 1].iter_mut() {
                    q.push_back(m.clone());
                }
            }
        }
        assert!(fwd.is_empty(), "the last stage forwards nothing");
    }
}

/// Run the staged topology: `parts` input partitions (events dealt at random, whatever their
/// keys), `shards` shards per stage, deliveries in a random order. With `crash_every` > 0,
/// shards checkpoint now and then, and every `crash_every` deliveries one shard crashes: it is
/// restored from its last checkpoint and re-reads what it had read since, re-sending (with the
/// same sequence numbers) what it sent, as the service does after kill -9.
fn topology(
    pack: &Arc<RulePack>,
    models: &Option<Arc<Models>>,
    all: &[Input],
    parts: u32,
    shards: u32,
    seed: u64,
    crash_every: usize,
) -> (Vec<String>, u64) {
    let lateness = EngineConfig::default().allowed_lateness;
    let mut rng = Rng(seed);
    let mut inputs: Vec<VecDeque<Input>> = vec![VecDeque::new(); parts as usize];
    for e in all {
        inputs[rng.below(parts as usize)].push_back(e.clone());
    }
    let stages = Stage::ALL.len();
    let sources = |s: usize| if s == 0 { parts } else { shards };
    let tasks: Vec<Vec<ShardTask>> = Stage::ALL
        .iter()
        .enumerate()
        .map(|(i, st)| {
            (0..shards)
                .map(|k| ShardTask::new(Some(*st), k, sources(i), shards, engine(pack, models)))
                .collect()
        })
        .collect();
    let ckpt = tasks
        .iter()
        .map(|row| {
            row.iter()
                .map(|t| {
                    (
                        hex(&Saved::of_shard(t, Some(0)).encode().unwrap()),
                        Vec::new(),
                    )
                })
                .collect()
        })
        .collect();
    let mut t = Topo {
        tasks,
        queues: vec![vec![VecDeque::new(); shards as usize]; stages],
        ckpt,
        sent_marks: vec![vec![None; shards as usize]; stages],
        d: Decisions::default(),
    };
    let mut offsets = vec![0u64; parts as usize];
    let mut max_ts: Vec<Option<switchguard::time::EventTime>> = vec![None; parts as usize];
    let mut deliveries = 0usize;
    loop {
        let pending: Vec<usize> = (0..parts as usize)
            .filter(|p| !inputs[*p].is_empty())
            .collect();
        let busy: Vec<(usize, usize)> = (0..stages)
            .flat_map(|s| (0..shards as usize).map(move |k| (s, k)))
            .filter(|(s, k)| !t.queues[*s][*k].is_empty())
            .collect();
        if pending.is_empty() && busy.is_empty() {
            break;
        }
        if !pending.is_empty() && (busy.is_empty() || rng.below(3) == 0) {
            // Ingest a few events of one partition, then its mark.
            let p = pending[rng.below(pending.len())];
            for _ in 0..1 + rng.below(40) {
                let Some(ev) = inputs[p].pop_front() else {
                    break;
                };
                max_ts[p] = max_ts[p].max(Some(ev.ts()));
                let f = shard_task::ingest(p as u32, offsets[p], ev, shards);
                offsets[p] += 1;
                t.queues[0][f.shard as usize].push_back(f.env);
            }
            let mark = SourceMark {
                wm: max_ts[p].map(|m| m.saturating_sub(lateness)),
                max_ts: max_ts[p],
                idle: inputs[p].is_empty(),
            };
            for q in t.queues[0].iter_mut() {
                q.push_back(Envelope::Mark {
                    src: p as u32,
                    mark,
                });
            }
            continue;
        }
        let (s, k) = busy[rng.below(busy.len())];
        let env = t.queues[s][k].pop_front().expect("busy");
        t.deliver(s, k, env, crash_every > 0);
        deliveries += 1;
        if crash_every == 0 {
            continue;
        }
        if deliveries.is_multiple_of(crash_every / 3 + 1) {
            // A checkpoint of one shard.
            let (s, k) = (rng.below(stages), rng.below(shards as usize));
            // Through the service's checkpoint record format, as the service stores it.
            let saved = Saved::of_shard(&t.tasks[s][k], Some(0)).encode().unwrap();
            t.ckpt[s][k] = (hex(&saved), Vec::new());
        }
        if deliveries.is_multiple_of(crash_every) {
            let (s, k) = (rng.below(stages), rng.below(shards as usize));
            let snap = match Saved::decode(&unhex(&t.ckpt[s][k].0)).unwrap() {
                Saved::Shard { shard, .. } => *shard,
                Saved::Ingest { .. } => panic!("a shard's checkpoint"),
            };
            let mut e = Engine::restore(pack.clone(), EngineConfig::default(), snap.engine.clone())
                .unwrap();
            e.set_models(models.clone());
            let repeats = t.tasks[s][k].repeats;
            t.tasks[s][k] = ShardTask::restore(snap, sources(s), shards, e).unwrap();
            t.tasks[s][k].repeats = repeats;
            t.sent_marks[s][k] = None;
            for env in t.ckpt[s][k].1.clone() {
                t.deliver(s, k, env, false);
            }
        }
    }
    let repeats: u64 = t.tasks.iter().flatten().map(|x| x.repeats).sum();
    for row in &t.tasks {
        for x in row {
            assert_eq!(
                x.buffered(),
                0,
                "{:?} shard {} still holds events",
                x.stage,
                x.shard
            );
        }
    }
    // Re-emitted decisions must be byte-identical: a reader dropping repeated ids then sees
    // each exactly once.
    let mut got = sorted(lines(&t.d));
    got.dedup();
    let ids: std::collections::BTreeSet<String> = got
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.get("command_id")
                .or(v.get("alert_id"))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        ids.len(),
        got.len(),
        "a repeated id carries a different record"
    );
    (got, repeats)
}

fn events(seed: u64) -> Vec<Input> {
    sim_events(&SimConfig {
        seed,
        cards: 3_000,
        days: 3,
        terminals: 200,
        attack_rate: 3.0,
        ..SimConfig::default()
    })
    .into_iter()
    .map(Input::Event)
    .collect()
}

/// What the risk team and the switch would send about the locks one engine issues over
/// `inputs`: releases, extensions, acknowledgements (applied, rejected, and some never), and
/// manual terminal locks; merged with the events by time.
fn with_controls(pack: &Arc<RulePack>, inputs: Vec<Input>) -> Vec<Input> {
    let mut p = Pipeline::new(engine(pack, &None));
    let mut d = Decisions::default();
    for i in &inputs {
        p.push_input(i.clone(), &mut d);
    }
    p.flush(&mut d);
    let decoder = switchguard::decode::Decoder::default();
    let at = |ts: &str, plus: i64| {
        let t = chrono::DateTime::parse_from_rfc3339(ts)
            .unwrap()
            .timestamp_millis()
            + plus;
        switchguard::event::format_ts(t)
    };
    let mut json = Vec::new();
    for (n, c) in d.commands.iter().enumerate() {
        let (kind, id) = (c.target_kind.as_str(), &c.command_id);
        let t = &c.target;
        match n % 2 {
            0 => json.push(format!(r#"{{"id":"u{n}","ts":"{}","control":"unlock","{kind}":"{t}","reason":"cleared","actor":"alice"}}"#, at(&c.ts, 600_000))),
            1 => json.push(format!(r#"{{"id":"x{n}","ts":"{}","control":"extend","{kind}":"{t}","ttl":"48h","reason":"open case","actor":"bob"}}"#, at(&c.ts, 3_600_000))),
            _ => {}
        }
        match n % 3 {
            0 => json.push(format!(r#"{{"id":"k{n}","ts":"{}","control":"ack","command_id":"{id}","status":"applied"}}"#, at(&c.ts, 2_000))),
            1 => json.push(format!(r#"{{"id":"k{n}","ts":"{}","control":"ack","command_id":"{id}","status":"rejected","detail":"busy"}}"#, at(&c.ts, 4_000))),
            _ => {} // never acknowledged
        }
        if n % 2 == 0 {
            json.push(format!(r#"{{"id":"m{n}","ts":"{}","control":"lock","terminal":"T{n}","ttl":"2h","reason":"suspect","actor":"carol"}}"#, at(&c.ts, 30_000)));
        }
    }
    assert!(
        json.len() >= 8,
        "the stream must give locks to act on ({} commands)",
        d.commands.len()
    );
    let mut all = inputs;
    all.extend(
        json.iter()
            .map(|j| decoder.decode_input(j.as_bytes()).unwrap()),
    );
    all.sort_by_key(Input::ts);
    all
}

#[test]
fn one_two_and_four_shards_give_exactly_the_decisions_of_one_engine() {
    let pack = default_pack();
    assert!(shard::check(&pack).is_empty(), "{:?}", shard::check(&pack));
    let evs = events(5);
    let want = one_engine(&pack, &None, &evs);
    assert!(
        want.len() > 50,
        "the stream must make decisions ({} made)",
        want.len()
    );
    assert!(want.iter().any(|l| l.contains("lock_card")), "and lockouts");
    for (parts, shards, seed) in [(1, 1, 1), (4, 2, 2), (3, 4, 3), (4, 4, 4)] {
        let (got, _) = topology(&pack, &None, &evs, parts, shards, seed, 0);
        assert_eq!(got.len(), want.len(), "{parts} partitions, {shards} shards");
        assert!(
            got == want,
            "{parts} partitions, {shards} shards: decisions differ"
        );
    }
}

#[test]
fn model_scores_carried_between_stages_match_one_engine() {
    let pack = default_pack();
    let models = Models::load_or_rules_alone(&root().join("models"));
    assert!(models.is_some(), "the committed models load");
    let evs = events(6);
    let want = one_engine(&pack, &models, &evs);
    assert!(
        want.iter().any(|l| l.contains("\"rule\":\"model_")),
        "the stream must make model alerts"
    );
    let (got, _) = topology(&pack, &models, &evs, 4, 3, 9, 0);
    assert!(got == want, "decisions with models differ");
}

#[test]
fn shards_restored_from_snapshots_mid_stream_change_nothing() {
    let pack = default_pack();
    let evs = events(7);
    let want = one_engine(&pack, &None, &evs);
    let (got, repeats) = topology(&pack, &None, &evs, 4, 2, 11, 997);
    assert!(
        repeats > 100,
        "restarts must re-send records ({repeats} repeats dropped)"
    );
    assert!(got == want, "decisions after restores differ");
}

#[test]
fn control_records_give_exactly_the_decisions_of_one_engine_with_restarts() {
    let pack = default_pack();
    let all = with_controls(&pack, events(8));
    let want = one_engine(&pack, &None, &all);
    for kind in [
        "unlock_card",
        "extend",
        "lock_terminal",
        "command_rejected",
        "command_unacknowledged",
    ] {
        assert!(
            want.iter().any(|l| l.contains(kind)),
            "the stream must give {kind}"
        );
    }
    for (parts, shards, seed, crash) in [(3, 2, 21, 0), (4, 3, 22, 0), (4, 2, 23, 997)] {
        let (got, _) = topology(&pack, &None, &all, parts, shards, seed, crash);
        assert!(
            got == want,
            "{parts} partitions, {shards} shards, crash {crash}: decisions differ"
        );
    }
}
