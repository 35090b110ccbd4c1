//! The streaming service (`switchguard run`): Kafka in, alerts and lockout commands out.
//!
//! One loop on one thread: poll the input partitions → decode (rejects to the DLQ with the
//! original bytes and the reason in headers) → the same [`Pipeline`] replay uses, its
//! watermark the minimum over the partitions' newest event times minus the allowed lateness
//! → produce alerts (keyed by entity) and commands (keyed by target) → checkpoint.
//!
//! Checkpoint order: flush outputs and see every one acknowledged → write the pipeline
//! snapshot with the input offsets it covers to the compacted state topic → commit offsets.
//! On start the newest checkpoint is restored and consumption resumes at *its* offsets, so a
//! crash at any point re-emits only byte-identical records (deterministic ids). With
//! `exactly_once = true` outputs, checkpoint and offsets go in one Kafka transaction instead.

mod background;
pub mod checkpoint;
pub mod checkpoint_health;
pub mod config;
pub mod health;
mod highwater;
pub mod kafka;
pub mod metrics;
mod out;
pub mod positions;
mod reload;
pub mod scale;

use crate::decision::Decisions;
use crate::decode::{Decoder, Tokenizer};
use crate::engine::{Engine, EngineConfig, Pipeline};
use crate::rules::RulePack;
use anyhow::{Context, Result};
use checkpoint::Checkpoint;
use checkpoint_health::{CheckpointHealth, Failure};
use config::RunConfig;
use health::Health;
use kafka::{Deliveries, Producer};
use metrics::Metrics;
use out::{check_deliveries, Out};
use positions::Positions;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer as _};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most consumer results one loop pass takes.
const POLL_MAX: usize = 2048;

/// Flags the outside world sets: stop (SIGTERM/SIGINT), reload rules (SIGHUP).
#[derive(Clone, Default)]
pub struct Signals {
    pub shutdown: Arc<AtomicBool>,
    pub reload: Arc<AtomicBool>,
}

impl Signals {
    /// Hook SIGTERM, SIGINT and SIGHUP to the flags.
    pub fn install() -> Result<Self> {
        let s = Self::default();
        signal_hook::flag::register(signal_hook::consts::SIGTERM, s.shutdown.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGINT, s.shutdown.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGHUP, s.reload.clone())?;
        Ok(s)
    }
}

/// Per input partition: where we are and what we have seen.
#[derive(Debug, Clone)]
struct Part {
    next_offset: i64,
    max_ts: i64,
    /// The consumer reported end of partition since the last message.
    eof: bool,
    last_msg: Instant,
    /// Confirmed idle: silent for `idle_timeout` and at the broker's high watermark.
    idle: bool,
}

/// What both service loops start with: the metrics endpoint (not ready yet), the parsed
/// timings, the engine settings, and the watchers of input positions and checkpoints.
struct Start {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    lateness: i64,
    idle: Duration,
    every: Duration,
    checkpoint_timeout: Duration,
    engine_cfg: EngineConfig,
    positions: Positions,
    checkpoints: CheckpointHealth,
}

impl Start {
    fn new(cfg: &RunConfig) -> Result<Self> {
        let t = cfg.timings()?;
        let metrics = Metrics::new();
        let health = Arc::new(Health::default());
        let addr = metrics::serve(&cfg.metrics_addr, metrics.clone(), health.clone())?;
        eprintln!("switchguard: metrics on http://{addr}/metrics");
        Ok(Self {
            positions: Positions::new(cfg.on_offset_gap, metrics.clone(), health.clone()),
            checkpoints: CheckpointHealth::new(
                cfg.max_checkpoint_failures,
                metrics.clone(),
                health.clone(),
            ),
            metrics,
            health,
            lateness: t.lateness,
            idle: t.idle,
            every: t.checkpoint_every,
            checkpoint_timeout: t.checkpoint_timeout,
            engine_cfg: EngineConfig {
                allowed_lateness: t.lateness,
                max_lockouts_per_minute: (cfg.max_lockouts_per_minute > 0)
                    .then_some(cfg.max_lockouts_per_minute),
                ..EngineConfig::default()
            },
        })
    }
}

/// Run until `signals.shutdown`. Returns after a final checkpoint.
pub fn run(cfg: RunConfig, tokenizer: Tokenizer, signals: Signals) -> Result<()> {
    let Start {
        metrics,
        health,
        lateness,
        idle,
        every,
        checkpoint_timeout,
        engine_cfg,
        mut positions,
        checkpoints,
    } = Start::new(&cfg)?;
    kafka::ensure_topics(&cfg, &[])?;
    let pack = Arc::new(RulePack::load_dir(&cfg.rules).map_err(anyhow::Error::new)?);
    eprintln!(
        "switchguard: {} rules loaded (digest {})",
        pack.rules.len(),
        pack.digest
    );
    let key = Checkpoint::key(&cfg.topics.input, &cfg.group);
    let state_reader: BaseConsumer = kafka::base_config(&cfg)
        .set("group.id", format!("{}-state", cfg.group))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .context("creating state reader")?;
    let restored = checkpoint::load_latest(&state_reader, &cfg.topics.state, &key)?;
    drop(state_reader);

    let mut consumer_cfg = kafka::base_config(&cfg);
    consumer_cfg
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        // Small per-partition fetches keep partitions progressing together, so the reorder
        // buffer (held until the slowest partition's watermark passes) stays small.
        .set("max.partition.fetch.bytes", "131072")
        .set("fetch.max.bytes", "1048576")
        // Latency: a fetch that finds nothing new returns after 5 ms, not librdkafka's 500 ms
        // (brokers that do not wake a waiting fetch on new data would add up to that per hop).
        .set("fetch.wait.max.ms", "5");
    consumer_cfg.extend(cfg.kafka.clone()); // -X properties win over these defaults
    let consumer: BaseConsumer = consumer_cfg.create().context("creating consumer")?;
    let meta = consumer
        .fetch_metadata(Some(&cfg.topics.input), Duration::from_secs(10))
        .context("reading input topic metadata")?;
    let partitions: Vec<i32> = meta
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(
        !partitions.is_empty(),
        "input topic {} has no partitions",
        cfg.topics.input
    );

    let mut parts: BTreeMap<i32, Part> = partitions
        .iter()
        .map(|p| {
            (
                *p,
                Part {
                    next_offset: -1,
                    max_ts: i64::MIN,
                    eof: false,
                    last_msg: Instant::now(),
                    idle: false,
                },
            )
        })
        .collect();
    let mut pipeline = match restored {
        Some(c) => {
            eprintln!(
                "switchguard: restoring checkpoint at offsets {:?}",
                c.offsets
            );
            for (p, o) in &c.offsets {
                if let Some(part) = parts.get_mut(p) {
                    part.next_offset = *o;
                }
            }
            for (p, t) in &c.partition_max {
                if let Some(part) = parts.get_mut(p) {
                    part.max_ts = *t;
                }
            }
            let s = c.pipeline;
            let engine = Engine::restore(pack.clone(), engine_cfg, s.engine)?;
            Pipeline::restore(engine, s.order, s.max_ts, parts.len()).map_err(anyhow::Error::msg)?
        }
        None => Pipeline::with_sources(Engine::new(pack.clone(), engine_cfg), parts.len()),
    };
    let mut tpl = TopicPartitionList::new();
    for (p, part) in &parts {
        let off = if part.next_offset >= 0 {
            Offset::Offset(part.next_offset)
        } else {
            Offset::Beginning
        };
        tpl.add_partition_offset(&cfg.topics.input, *p, off)?;
        positions.start(
            &cfg.topics.input,
            *p,
            (part.next_offset >= 0).then_some(part.next_offset),
        );
    }
    consumer.assign(&tpl)?;
    metrics.rebalances.inc();

    let deliveries = Arc::new(Deliveries::default());
    let producer = kafka::producer(&cfg, deliveries.clone(), Some(metrics.e2e_latency.clone()))?;
    if cfg.exactly_once {
        producer
            .init_transactions(Duration::from_secs(30))
            .context("init_transactions")?;
        producer.begin_transaction()?;
    }
    let decoder = Decoder::new(tokenizer);
    let mut d = Decisions::default();
    let mut reloader = reload::Reloader::new(&cfg.rules, &cfg.models);
    pipeline.engine_mut().set_models(reloader.initial_models());
    let mut last_checkpoint = Instant::now();
    // At-least-once checkpoints go on their own connection (a transaction cannot).
    let mut background = background::Background::new(&cfg, &key, checkpoint_timeout, checkpoints)?;
    // Lag and idleness read the high watermarks a background thread keeps fetching.
    let highwater = highwater::HighWater::spawn(&cfg, partitions.clone())?;
    let mut lag_due = Instant::now();
    health.started();
    metrics.up.set(1);
    eprintln!(
        "switchguard: consuming {} ({} partitions)",
        cfg.topics.input,
        parts.len()
    );

    let save = |pipeline: &Pipeline, parts: &BTreeMap<i32, Part>, health: &mut CheckpointHealth| {
        let r = checkpoint(
            &cfg,
            &key,
            &consumer,
            &producer,
            &deliveries,
            pipeline,
            parts,
            &metrics,
        );
        let reason = match cfg.exactly_once {
            true => Failure::Transaction,
            false => Failure::NotAcknowledged,
        };
        health.report(&r, reason);
        r
    };
    let mut out = Out {
        cfg: &cfg,
        producer: &producer,
        deliveries: &deliveries,
    };
    while !signals.shutdown.load(Ordering::Relaxed) {
        // Rules and models: SIGHUP or an edited file. Validated first; a bad set leaves the
        // old one in force.
        let forced = signals.reload.swap(false, Ordering::Relaxed);
        reloader.poll(forced, pipeline.engine_mut(), &metrics);
        let mut polled = 0;
        for res in kafka::poll_batch(&consumer, Duration::from_millis(50), POLL_MAX) {
            polled += 1;
            match res {
                Ok(m) => {
                    let p = m.partition();
                    let part = parts.get_mut(&p).expect("assigned partition");
                    part.eof = false;
                    part.idle = false;
                    part.last_msg = Instant::now();
                    if !positions.accept(&consumer, &cfg.topics.input, p, m.offset())? {
                        continue; // before the resume point, or the consumer is seeking back
                    }
                    part.next_offset = m.offset() + 1;
                    let started = Instant::now();
                    let bytes = m.payload().unwrap_or(b"");
                    match decoder.decode_json(bytes) {
                        Ok(ev) => {
                            part.max_ts = part.max_ts.max(ev.ts);
                            pipeline.insert(ev, &mut d);
                        }
                        Err(e) => {
                            metrics.rejects.with_label_values(&[e.code()]).inc();
                            let source = format!("{}/{}@{}", cfg.topics.input, p, m.offset());
                            out.dlq(bytes, m.key(), &e, &source)?;
                        }
                    }
                    metrics
                        .decision_latency
                        .observe(started.elapsed().as_secs_f64());
                }
                Err(KafkaError::PartitionEOF(p)) => {
                    if let Some(part) = parts.get_mut(&p) {
                        part.eof = true;
                    }
                }
                Err(e) => eprintln!("switchguard: consumer: {e}"),
            }
        }
        if polled < POLL_MAX {
            positions.check_stalls(&consumer, |t, p| highwater.high(t, p));
        }
        // Watermark: the slowest live partition. A partition stops holding it back only when it
        // is confirmed idle: end of partition reported, silent for `idle_timeout`, and its
        // position at the broker's high watermark (an end-of-partition report alone can come
        // early while the client is busy with other partitions).
        for (p, part) in parts.iter_mut() {
            if part.eof && !part.idle && part.last_msg.elapsed() >= idle {
                part.idle = highwater
                    .caught_up(*p, part.next_offset, part.last_msg)
                    .unwrap_or(false);
                if part.idle {
                    eprintln!(
                        "switchguard: partition {p} idle at offset {}",
                        part.next_offset
                    );
                }
            }
        }
        // Each partition's promise: its newest event time less the lateness, or idle.
        for (i, part) in parts.values().enumerate() {
            if part.max_ts > i64::MIN || part.idle {
                let m = crate::engine::order::SourceMark {
                    wm: part.max_ts.saturating_sub(lateness),
                    max_ts: part.max_ts,
                    idle: part.idle,
                };
                pipeline.mark(i, m);
            }
        }
        pipeline.release(&mut d);
        out.decisions(&d)?;
        d.clear();
        kafka::poll_deliveries(&producer, &deliveries);
        let rules_now = pipeline.engine().pack().clone();
        metrics.observe(pipeline.engine().stats(), &|id| {
            rules_now.rule(id).map(|r| metrics::RuleInfo {
                severity: r.severity.as_str(),
                action: r.action.as_ref().map(|a| a.kind.as_str()),
            })
        });
        if Instant::now() >= lag_due {
            lag_due = Instant::now() + Duration::from_secs(1);
            for (p, part) in &parts {
                if let Some((_, high, _)) = highwater.get(*p) {
                    let lag = high - part.next_offset.max(0);
                    metrics
                        .consumer_lag
                        .with_label_values(&[&p.to_string()])
                        .set(lag.max(0));
                }
            }
        }
        for (kind, n) in pipeline.engine().state_sizes() {
            metrics
                .state_entries
                .with_label_values(&[kind])
                .set(n as i64);
        }
        metrics.buffered.set(pipeline.buffered() as i64);
        if cfg.exactly_once {
            if last_checkpoint.elapsed() >= every {
                save(&pipeline, &parts, &mut background.health)?;
                last_checkpoint = Instant::now();
            }
        } else {
            background.poll(&cfg, &consumer, &deliveries, &metrics)?;
            if !background.busy() && last_checkpoint.elapsed() >= every {
                let t = Instant::now();
                let snap = snapshot(&cfg, &pipeline, &parts);
                metrics.snapshot_stall.observe(t.elapsed().as_secs_f64());
                background.start(snap, &deliveries);
                last_checkpoint = Instant::now();
            }
        }
    }
    eprintln!(
        "switchguard: shutting down ({} events processed, {} buffered awaiting the watermark)",
        pipeline.engine().stats().events,
        pipeline.buffered()
    );
    // A background checkpoint still in flight lands before the final one, not after it.
    background.flush(Duration::from_secs(30))?;
    save(&pipeline, &parts, &mut background.health)?;
    metrics.up.set(0);
    Ok(())
}

/// The checkpoint of the pipeline and the input position it covers, as of now.
fn snapshot(cfg: &RunConfig, pipeline: &Pipeline, parts: &BTreeMap<i32, Part>) -> Checkpoint {
    Checkpoint {
        version: checkpoint::VERSION,
        input_topic: cfg.topics.input.clone(),
        offsets: parts
            .iter()
            .filter(|(_, p)| p.next_offset >= 0)
            .map(|(k, p)| (*k, p.next_offset))
            .collect(),
        partition_max: parts.iter().map(|(k, p)| (*k, p.max_ts)).collect(),
        pipeline: pipeline.snapshot(),
    }
}

#[allow(clippy::too_many_arguments)]
fn checkpoint(
    cfg: &RunConfig,
    key: &str,
    consumer: &BaseConsumer,
    producer: &Producer,
    deliveries: &Deliveries,
    pipeline: &Pipeline,
    parts: &BTreeMap<i32, Part>,
    metrics: &Metrics,
) -> Result<()> {
    let t = Instant::now();
    let c = snapshot(cfg, pipeline, parts);
    metrics.snapshot_stall.observe(t.elapsed().as_secs_f64());
    let bytes = c.encode()?;
    let mut tpl = TopicPartitionList::new();
    for (p, o) in &c.offsets {
        tpl.add_partition_offset(&cfg.topics.input, *p, Offset::Offset(*o))?;
    }
    let state_rec =
        BaseRecord::with_opaque_to(&cfg.topics.state, Box::new((0i64, deliveries.register())))
            .key(key)
            .payload(&bytes);
    if cfg.exactly_once {
        let res = (|| -> Result<()> {
            producer.send(state_rec).map_err(|(e, _)| e)?;
            if let Some(g) = consumer.group_metadata() {
                if tpl.count() > 0 {
                    producer.send_offsets_to_transaction(&tpl, &g, Duration::from_secs(30))?;
                }
            }
            producer.commit_transaction(Duration::from_secs(30))?;
            Ok(())
        })();
        match res {
            Ok(()) => {
                metrics.transactions.with_label_values(&["committed"]).inc();
                metrics.checkpoint_written();
                producer.begin_transaction()?;
            }
            Err(e) => {
                metrics.transactions.with_label_values(&["aborted"]).inc();
                let _ = producer.abort_transaction(Duration::from_secs(30));
                // The engine has moved past what was aborted: restart from the last commit.
                return Err(
                    e.context("transaction aborted; restart resumes from the last checkpoint")
                );
            }
        }
    } else {
        // 1. Every output so far acknowledged.
        producer
            .flush(Duration::from_secs(30))
            .context("flushing outputs")?;
        check_deliveries(deliveries)?;
        // 2. The checkpoint.
        producer
            .send(state_rec)
            .map_err(|(e, _)| e)
            .context("producing checkpoint")?;
        producer
            .flush(Duration::from_secs(30))
            .context("flushing checkpoint")?;
        check_deliveries(deliveries)?;
        // 3. Offsets.
        checkpoint::acknowledged(consumer, &tpl, metrics);
    }
    Ok(())
}
