//! `switchguard run` with `scale_out = true`: every instance of the group subscribes to the
//! input topic and to the six internal stage topics (`<group>-<stage>-repartition`, see
//! [`crate::engine::shard`]); Kafka's group protocol shares their partitions out, and each
//! partition an instance owns is one [`tasks::Task`]:
//!
//! - input partition → decode (rejects to the DLQ) → the `id` stage topic, partitioned by the
//!   event id, plus a mark (the partition's newest event time minus the allowed lateness) to
//!   every partition of it;
//! - stage partition → [`ShardTask`] → the next stage's topic, partitioned by that stage's key,
//!   and the shard's watermark as a mark to each of its partitions; alerts and commands from
//!   the rules the stage runs.
//!
//! Checkpoints (every `checkpoint_interval`): flush every output and see it acknowledged →
//! one record per task in the state topic → commit the offsets. A partition's new owner
//! (after a rebalance or a crash) restores its task from that record before it processes
//! anything, and skips records below the checkpoint's offset. What a restored task re-sends
//! is byte-identical (same sequence numbers), and the next stage drops it as a repeat.

mod ownership;
pub mod tasks;

use super::checkpoint_health::CheckpointHealth;
use super::config::RunConfig;
use super::highwater::HighWater;
use super::kafka::{self, Deliveries};
use super::metrics::{self, Metrics};
use super::out::Out;
use super::positions::Positions;
use super::{reload, Signals, POLL_MAX};
use crate::decision::Decisions;
use crate::decode::{Decoder, Tokenizer};
use crate::engine::shard;
use crate::engine::shard_task::{self, Envelope, Forward};
use crate::engine::{EngineConfig, Stats};
use crate::keyed::Stage;
use crate::models::Models;
use crate::rules::{RuleErrors, RulePack};
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Message};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tasks::{Task, Work};

/// Marks go downstream at most this often per task (each is one record per partition).
const MARK_EVERY: Duration = Duration::from_millis(20);

/// Consumer context: notes each new assignment for the loop (the callback runs inside poll).
#[derive(Default)]
struct Ctx {
    assigned: Mutex<Option<BTreeSet<(String, i32)>>>,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = r {
            let set = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            *self.assigned.lock().expect("lock") = Some(set);
        }
    }
}

/// Everything the loop shares.
struct Scaled {
    cfg: RunConfig,
    engine_cfg: EngineConfig,
    lateness: i64,
    pack: Arc<RulePack>,
    models: Option<Arc<Models>>,
    /// Stage topics in stage order.
    stage_topics: Vec<String>,
    parts_in: u32,
    shards: u32,
    tasks: BTreeMap<(String, i32), Task>,
    /// Where each owned partition's reads stand (checked record by record).
    positions: Positions,
    state_reader: BaseConsumer,
    /// Checkpoint records go on a producer of their own, so a refused one is told apart from
    /// a lost output.
    checkpoint_producer: kafka::Producer,
    checkpoint_deliveries: Arc<Deliveries>,
    checkpoint_timeout: Duration,
    checkpoints: CheckpointHealth,
}

/// Run until `signals.shutdown`; returns after a final checkpoint.
pub fn run(cfg: RunConfig, tokenizer: Tokenizer, signals: Signals) -> Result<()> {
    anyhow::ensure!(
        !cfg.exactly_once,
        "exactly_once = true with scale_out = true is not supported: scale-out gives exactly-once \
         in effect through deterministic ids (see README \"Scaling out\")"
    );
    let super::Start {
        metrics,
        health,
        lateness,
        idle,
        every,
        checkpoint_timeout,
        engine_cfg,
        positions,
        checkpoints,
    } = super::Start::new(&cfg)?;
    let pack = RulePack::load_dir(&cfg.rules).map_err(anyhow::Error::new)?;
    let problems = shard::check(&pack);
    if !problems.is_empty() {
        return Err(anyhow::Error::new(RuleErrors(problems)));
    }
    let stage_topics: Vec<String> = Stage::ALL
        .iter()
        .map(|s| tasks::stage_topic(&cfg, *s))
        .collect();
    let want = if cfg.stage_partitions > 0 {
        cfg.stage_partitions
    } else {
        cfg.partitions
    };
    let extra: Vec<(String, i32)> = stage_topics.iter().map(|t| (t.clone(), want)).collect();
    kafka::ensure_topics(&cfg, &extra)?;
    let ctx = Ctx::default();
    let mut consumer_cfg = kafka::base_config(&cfg);
    consumer_cfg
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("max.partition.fetch.bytes", "131072")
        .set("fetch.max.bytes", "1048576")
        // Latency: a fetch that finds nothing new returns after 5 ms, not librdkafka's 500 ms
        // (brokers that do not wake a waiting fetch on new data would add up to that per hop).
        .set("fetch.wait.max.ms", "5");
    consumer_cfg.extend(cfg.kafka.clone());
    let consumer: BaseConsumer<Ctx> = consumer_cfg
        .create_with_context(ctx)
        .context("creating consumer")?;
    let count = |topic: &str| -> Result<u32> {
        let meta = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("reading metadata of {topic}"))?;
        let n = meta.topics().first().map_or(0, |t| t.partitions().len());
        anyhow::ensure!(n > 0, "topic {topic} has no partitions");
        Ok(n as u32)
    };
    let parts_in = count(&cfg.topics.input)?;
    let highwater = HighWater::spawn(&cfg, (0..parts_in as i32).collect())?;
    let shards = count(&stage_topics[0])?;
    for t in &stage_topics[1..] {
        let n = count(t)?;
        anyhow::ensure!(
            n == shards,
            "stage topic {t} has {n} partitions, {} has {shards}: every stage topic needs the same count",
            stage_topics[0]
        );
    }
    let mut subscribed: Vec<&str> = vec![cfg.topics.input.as_str()];
    subscribed.extend(stage_topics.iter().map(String::as_str));
    consumer.subscribe(&subscribed).context("subscribing")?;
    let state_reader: BaseConsumer = kafka::base_config(&cfg)
        .set("group.id", format!("{}-state", cfg.group))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .context("creating state reader")?;
    let deliveries = Arc::new(Deliveries::default());
    let producer = kafka::producer(&cfg, deliveries.clone(), Some(metrics.e2e_latency.clone()))?;
    let checkpoint_deliveries = Arc::new(Deliveries::default());
    let checkpoint_producer = kafka::checkpoint_producer(&cfg, checkpoint_deliveries.clone())?;
    let mut reloader = reload::Reloader::new(&cfg.rules, &cfg.models);
    let mut s = Scaled {
        models: reloader.initial_models(),
        cfg: cfg.clone(),
        engine_cfg,
        lateness,
        pack: Arc::new(pack),
        stage_topics,
        parts_in,
        shards,
        tasks: BTreeMap::new(),
        positions,
        state_reader,
        checkpoint_producer,
        checkpoint_deliveries,
        checkpoint_timeout,
        checkpoints,
    };
    eprintln!(
        "switchguard: scale-out: {} rules, input {} ({parts_in} partitions), {} stages x {shards} shards, group {}",
        s.pack.rules.len(),
        cfg.topics.input,
        Stage::ALL.len(),
        cfg.group
    );
    let decoder = Decoder::new(tokenizer);
    let mut out = Out {
        cfg: &cfg,
        producer: &producer,
        deliveries: &deliveries,
    };
    let mut d = Decisions::default();
    let mut fwd: Vec<Forward> = Vec::new();
    let mut last_checkpoint = Instant::now();
    let mut lag_due = Instant::now();
    health.started();
    metrics.up.set(1);
    while !signals.shutdown.load(Ordering::Relaxed) {
        let forced = signals.reload.swap(false, Ordering::Relaxed);
        let check = |p: &RulePack| shard::check(p);
        let changes = reloader.changes(forced, &metrics, Some(&check));
        if let Some(p) = &changes.rules {
            s.pack = p.clone();
        }
        if let Some(m) = &changes.models {
            s.models = m.clone();
        }
        for t in s.tasks.values_mut() {
            if let Work::Shard(st) = &mut t.work {
                changes.apply(st.engine_mut());
            }
        }
        let mut polled = 0;
        for res in kafka::poll_batch(&consumer, Duration::from_millis(20), POLL_MAX) {
            polled += 1;
            if let Some(a) = consumer.context().assigned.lock().expect("lock").take() {
                s.assigned(&consumer, a, &metrics)?;
                // Fetched before the assignment put every partition at its task's position:
                // the broker delivers it again if it is still wanted.
                continue;
            }
            let m = match res {
                Ok(m) => m,
                Err(KafkaError::PartitionEOF(_)) => continue,
                Err(e) => {
                    eprintln!("switchguard: consumer: {e}");
                    continue;
                }
            };
            let k = (m.topic().to_string(), m.partition());
            if !s.tasks.contains_key(&k) {
                let mut want: BTreeSet<(String, i32)> = consumer
                    .assignment()
                    .map(|a| {
                        a.elements()
                            .iter()
                            .map(|e| (e.topic().to_string(), e.partition()))
                            .collect()
                    })
                    .unwrap_or_default();
                want.insert(k.clone());
                want.retain(|w| !s.tasks.contains_key(w));
                s.open(want)?;
            }
            let shards = s.shards;
            if !s.positions.accept(&consumer, &k.0, k.1, m.offset())? {
                continue; // covered by the restored checkpoint, or seeking back to it
            }
            let task = s.tasks.get_mut(&k).expect("opened");
            task.next_offset = m.offset() + 1;
            let started = Instant::now();
            let bytes = m.payload().unwrap_or(b"");
            match &mut task.work {
                Work::Ingest(i) => {
                    i.idle = false;
                    i.last_msg = Instant::now();
                    match decoder.decode_json(bytes) {
                        Ok(ev) => {
                            i.max_ts = i.max_ts.max(ev.ts);
                            let f = shard_task::ingest(
                                m.partition() as u32,
                                m.offset() as u64,
                                ev,
                                shards,
                            );
                            send_forward(&mut out, &s.stage_topics[0], Stage::Id, &f)?;
                        }
                        Err(e) => {
                            metrics.rejects.with_label_values(&[e.code()]).inc();
                            let source = format!("{}@{}", m.partition(), m.offset());
                            out.dlq(bytes, m.key(), &e, &format!("{}/{source}", k.0))?;
                        }
                    }
                }
                Work::Shard(st) => {
                    let env: Envelope = match serde_json::from_slice(bytes) {
                        Ok(e) => e,
                        Err(e) => {
                            eprintln!(
                                "switchguard: unreadable record at {}/{}@{}: {e}",
                                k.0,
                                k.1,
                                m.offset()
                            );
                            continue;
                        }
                    };
                    let repeats = st.repeats;
                    if let Err(e) = st.accept(env, &mut fwd, &mut d) {
                        eprintln!("switchguard: {}/{}@{}: {e}", k.0, k.1, m.offset());
                    }
                    metrics.repeats.inc_by(st.repeats - repeats);
                    if let Some(next) = st.stage.next() {
                        for f in fwd.drain(..) {
                            send_forward(&mut out, &s.stage_topics[next.index()], next, &f)?;
                        }
                    }
                    out.decisions(&d)?;
                    d.clear();
                }
            }
            metrics
                .decision_latency
                .observe(started.elapsed().as_secs_f64());
        }
        highwater.watch(s.positions.seeking());
        if polled < POLL_MAX {
            s.positions
                .check_stalls(&consumer, |t, p| highwater.high(t, p));
        }
        s.send_marks(&highwater, &mut out, idle)?;
        kafka::poll_deliveries(&producer, &deliveries);
        s.observe(&metrics);
        if Instant::now() >= lag_due {
            lag_due = Instant::now() + Duration::from_secs(1);
            for t in s
                .tasks
                .values()
                .filter(|t| matches!(t.work, Work::Ingest(_)))
            {
                if let Some((_, high, _)) = highwater.get(t.partition) {
                    let lag = high - t.next_offset.max(0);
                    metrics
                        .consumer_lag
                        .with_label_values(&[&t.partition.to_string()])
                        .set(lag.max(0));
                }
            }
        }
        if last_checkpoint.elapsed() >= every {
            s.checkpoint(&consumer, &producer, &deliveries, &metrics)?;
            last_checkpoint = Instant::now();
        }
    }
    eprintln!("switchguard: shutting down ({} tasks)", s.tasks.len());
    anyhow::ensure!(
        s.checkpoint(&consumer, &producer, &deliveries, &metrics)?,
        "the final checkpoint was not written (see above); a restart resumes from the last one"
    );
    metrics.up.set(0);
    Ok(())
}

/// Produce one envelope to its shard of `stage`'s topic, keyed by the stage's key.
fn send_forward(out: &mut Out<'_>, topic: &str, stage: Stage, f: &Forward) -> Result<()> {
    let (key, ts) = match &f.env {
        Envelope::Event { ev, .. } => (stage.key(ev).to_string(), 0),
        Envelope::Mark { .. } => (String::new(), 0),
    };
    let payload = serde_json::to_vec(&f.env)?;
    out.send_to(topic, f.shard as i32, key.as_bytes(), &payload, ts)
}

impl Scaled {
    /// Idle detection on input partitions, then every task's mark downstream when it moved.
    fn send_marks(
        &mut self,
        highwater: &HighWater,
        out: &mut Out<'_>,
        idle: Duration,
    ) -> Result<()> {
        let lateness = self.lateness;
        for t in self.tasks.values_mut() {
            let (mark, stage) = match &mut t.work {
                Work::Ingest(i) => {
                    if !i.idle && i.last_msg.elapsed() >= idle {
                        i.idle = highwater
                            .caught_up(t.partition, t.next_offset, i.last_msg)
                            .unwrap_or(false);
                    }
                    (i.mark(lateness), Stage::Id)
                }
                Work::Shard(st) => match st.stage.next() {
                    Some(next) if st.watermark().is_some() => (st.source_mark(), next),
                    _ => (None, Stage::Card),
                },
            };
            let Some(mark) = mark else { continue };
            let changed = t.sent != Some(mark);
            let idle_flip = t.sent.map(|m| m.idle) != Some(mark.idle);
            if changed && (idle_flip || t.sent_at.elapsed() >= MARK_EVERY) {
                let env = Envelope::Mark {
                    src: t.partition as u32,
                    mark,
                };
                for shard in 0..self.shards {
                    let f = Forward {
                        shard,
                        env: env.clone(),
                    };
                    send_forward(out, &self.stage_topics[stage.index()], stage, &f)?;
                }
                t.sent = Some(mark);
                t.sent_at = Instant::now();
            }
        }
        Ok(())
    }

    /// Engine counters and state sizes summed over this instance's shards.
    fn observe(&self, metrics: &Metrics) {
        let mut total = Stats::for_pack(&self.pack);
        let mut sizes: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut buffered = 0;
        let mut by_stage: BTreeMap<&str, i64> = BTreeMap::new();
        for t in self.tasks.values() {
            match &t.work {
                Work::Ingest(_) => *by_stage.entry("input").or_default() += 1,
                Work::Shard(st) => {
                    *by_stage.entry(st.stage.as_str()).or_default() += 1;
                    total.absorb(st.engine().stats());
                    for (k, n) in st.engine().state_sizes() {
                        *sizes.entry(k).or_default() += n;
                    }
                    buffered += st.buffered();
                }
            }
        }
        let pack = self.pack.clone();
        metrics.observe(&total, &|id| {
            pack.rule(id).map(|r| metrics::RuleInfo {
                severity: r.severity.as_str(),
                action: r.action.as_ref().map(|a| a.kind.as_str()),
            })
        });
        for (k, n) in sizes {
            metrics.state_entries.with_label_values(&[k]).set(n as i64);
        }
        metrics.buffered.set(buffered as i64);
        for stage in ["input"].into_iter().chain(Stage::ALL.map(Stage::as_str)) {
            let n = by_stage.get(stage).copied().unwrap_or(0);
            metrics.tasks.with_label_values(&[stage]).set(n);
        }
    }
}
