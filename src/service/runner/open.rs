//! Start-up and partition ownership: the clients, the topology, and the tasks, each restored
//! from its newest checkpoint before it processes anything.
//!
//! A single instance reads its one checkpoint record and assigns itself every input partition
//! at that record's offsets. With scale-out, every instance subscribes; on each assignment it
//! keeps the tasks it owned throughout, restores the new ones, and starts every partition at
//! its task's offset, whatever the group's committed offset.

use super::tasks::{self, Ingest, Saved, SingleSaved, Task, Work};
use super::topology::Topology;
use super::{Core, Ctx, Runner};
use crate::decision::Decisions;
use crate::decode::{Decoder, Tokenizer};
use crate::engine::shard_task::ShardTask;
use crate::engine::Engine;
use crate::keyed::Stage;
use crate::rules::{RuleErrors, RulePack};
use crate::service::background::Background;
use crate::service::checkpoint;
use crate::service::config::RunConfig;
use crate::service::highwater::HighWater;
use crate::service::kafka::{self, Deliveries};
use crate::service::reload::Reloader;
use crate::service::Start;
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::Producer as _;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set everything up: topics, rules and models, clients, the topology, the tasks (restored).
pub fn runner(cfg: RunConfig, tokenizer: Tokenizer, start: Start) -> Result<Runner> {
    anyhow::ensure!(
        !(cfg.exactly_once && cfg.scale_out),
        "exactly_once = true with scale_out = true is not supported: scale-out gives exactly-once \
         in effect through deterministic ids (see README \"Scaling out\")"
    );
    let pack = load_rules(&cfg)?;
    let stage_topics = ensure_topics(&cfg)?;
    let consumer = Arc::new(consumer(&cfg)?);
    let parts_in = count(&consumer, &cfg.topics.input)?;
    let parts_ctl = count(&consumer, &cfg.topics.control)?;
    let sources = parts_in + parts_ctl;
    let reloader = Reloader::new(&cfg.rules, &cfg.models);
    let core = Core {
        pack: Arc::new(pack),
        models: reloader.initial_models()?,
        engine_cfg: start.engine_cfg,
        lateness: start.lateness,
    };
    let topo = match cfg.scale_out {
        true => scaled_topology(&consumer, stage_topics, sources)?,
        false => Topology::Single {
            shard: Box::new(new_shard(&core, None, 0, sources, 0)),
        },
    };
    let deliveries = Arc::new(Deliveries::default());
    let latency = start.metrics.e2e_latency.clone();
    let producer = open_producer(&cfg, deliveries.clone(), latency)?;
    let inputs = (0..parts_in as i32).map(|p| (cfg.topics.input.clone(), p));
    let controls = (0..parts_ctl as i32).map(|p| (cfg.topics.control.clone(), p));
    let highwater = HighWater::spawn(&cfg, inputs.chain(controls).collect())?;
    let background = Background::new(&cfg, start.checkpoint_timeout, start.checkpoints)?;
    let mut r = Runner {
        state_reader: state_reader(&cfg)?,
        decoder: Decoder::new(tokenizer),
        metrics: start.metrics,
        health: start.health,
        idle: start.idle,
        every: start.every,
        positions: start.positions,
        core,
        topo,
        tasks: BTreeMap::new(),
        consumer,
        producer,
        deliveries,
        background,
        highwater,
        reloader,
        d: Decisions::default(),
        fwd: Vec::new(),
        last_checkpoint: Instant::now(),
        lag_due: Instant::now(),
        parts_in,
        input_times: super::promise::InputTimes::new(Instant::now(), None),
        cfg,
    };
    begin(&mut r, parts_in, parts_ctl)?;
    r.health.started();
    r.metrics.up.set(1);
    Ok(r)
}

/// The rule pack, refused with scale-out when it cannot run one of the rules exactly.
fn load_rules(cfg: &RunConfig) -> Result<RulePack> {
    let pack = RulePack::load_dir(&cfg.rules).map_err(anyhow::Error::new)?;
    if cfg.scale_out {
        let problems = crate::engine::shard::check(&pack);
        if !problems.is_empty() {
            return Err(anyhow::Error::new(RuleErrors(problems)));
        }
    }
    tracing::info!("{} rules loaded (digest {})", pack.rules.len(), pack.digest);
    Ok(pack)
}

/// Create the topics that are missing (with scale-out, also one per stage); returns the
/// stage topics' names.
fn ensure_topics(cfg: &RunConfig) -> Result<Vec<String>> {
    let stage_topics: Vec<String> = Stage::ALL
        .iter()
        .map(|s| tasks::stage_topic(cfg, *s))
        .collect();
    let want = match cfg.stage_partitions {
        0 => cfg.partitions,
        n => n,
    };
    let extra: Vec<(String, i32)> = match cfg.scale_out {
        true => stage_topics.iter().map(|t| (t.clone(), want)).collect(),
        false => Vec::new(),
    };
    kafka::ensure_topics(cfg, &extra)?;
    Ok(stage_topics)
}

/// The producer, with its first transaction begun under exactly-once.
fn open_producer(
    cfg: &RunConfig,
    deliveries: Arc<Deliveries>,
    latency: prometheus::Histogram,
) -> Result<kafka::Producer> {
    let producer = kafka::producer(cfg, deliveries, Some(latency))?;
    if cfg.exactly_once {
        producer
            .init_transactions(Duration::from_secs(30))
            .context("init_transactions")?;
        producer.begin_transaction()?;
    }
    Ok(producer)
}

/// Subscribe (scale-out), or restore the single checkpoint and assign every input partition.
fn begin(r: &mut Runner, parts_in: u32, parts_ctl: u32) -> Result<()> {
    if matches!(r.topo, Topology::Scaled { .. }) {
        let mut topics = vec![r.cfg.topics.input.clone(), r.cfg.topics.control.clone()];
        topics.extend((0..Stage::ALL.len()).map(|i| tasks::stage_topic(&r.cfg, Stage::ALL[i])));
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        r.consumer.subscribe(&names).context("subscribing")?;
        tracing::info!(
            "scale-out: input {} ({parts_in} partitions), {} stages, group {}",
            r.cfg.topics.input,
            Stage::ALL.len(),
            r.cfg.group
        );
        return Ok(());
    }
    let key = tasks::single_key(&r.cfg);
    let keys = BTreeSet::from([key.clone()]);
    let mut found = checkpoint::load_latest_many(&r.state_reader, &r.cfg.topics.state, &keys)?;
    let saved = found
        .remove(&key)
        .map(|b| SingleSaved::decode(&b))
        .transpose()?;
    let (mut inputs, mut controls) = (BTreeMap::new(), BTreeMap::new());
    if let Some(s) = saved {
        // Event times as text: a bare 13-digit millisecond count is PAN-shaped, and the log
        // writer masks it.
        let at: Vec<String> = s
            .inputs
            .iter()
            .map(|(p, (next, ts))| {
                let ts = ts.map_or("-".to_string(), crate::event::format_ts);
                format!("{p}: offset {next:?}, newest {ts}")
            })
            .collect();
        tracing::info!("restoring the checkpoint at {}", at.join("; "));
        let Topology::Single { shard } = &mut r.topo else {
            unreachable!("single")
        };
        **shard = restore_shard(&r.core, s.shard, parts_in + parts_ctl, 0)?;
        // A control partition's promise holds for what the last life had read; records written
        // since may be older. It promises again once caught up (runner::promise).
        for p in 0..parts_ctl {
            shard.forget_source(parts_in + p);
        }
        inputs = s.inputs;
        controls = s.controls;
    }
    let input = r.cfg.topics.input.clone();
    let control = r.cfg.topics.control.clone();
    let all_inputs = (0..parts_in as i32).map(|p| (&input, p, &inputs));
    let all_controls = (0..parts_ctl as i32).map(|p| (&control, p, &controls));
    for (topic, p, saved) in all_inputs.chain(all_controls) {
        let (next, max_ts) = saved.get(&p).copied().unwrap_or((None, None));
        let work = Work::Ingest(Ingest::new(max_ts, topic == &control));
        let src = r.src_of(topic, p);
        r.tasks
            .insert((topic.clone(), p), Task::new(topic, p, src, next, work));
    }
    let all: BTreeSet<(String, i32)> = r.tasks.keys().cloned().collect();
    position(r, &all)?;
    tracing::info!("consuming {input} ({parts_in} partitions) and {control} ({parts_ctl})");
    Ok(())
}

/// A new scale-out assignment: keep the tasks still owned, restore the new ones, and start
/// every partition at its task's position.
pub fn assigned(r: &mut Runner, a: BTreeSet<(String, i32)>) -> Result<()> {
    r.tasks.retain(|k, _| a.contains(k));
    r.positions.retain(&a);
    let missing: BTreeSet<(String, i32)> = a
        .iter()
        .filter(|k| !r.tasks.contains_key(*k))
        .cloned()
        .collect();
    let opened = missing.len();
    open_tasks(r, missing)?;
    position(r, &a)?;
    r.metrics.rebalances.inc();
    tracing::info!("assigned {} partitions ({opened} tasks opened)", a.len());
    Ok(())
}

/// A record of a partition with no task yet (delivered before its assignment was noted).
pub fn missing(r: &mut Runner, k: &(String, i32)) -> Result<()> {
    let mut want: BTreeSet<(String, i32)> = r
        .consumer
        .assignment()
        .map(|a| {
            a.elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect()
        })
        .unwrap_or_default();
    want.insert(k.clone());
    want.retain(|w| !r.tasks.contains_key(w));
    open_tasks(r, want)
}

/// Assign `parts` at their tasks' positions (kept tasks too: an assignment is a seek,
/// possibly to inside a record batch, so positions check them again).
fn position(r: &mut Runner, parts: &BTreeSet<(String, i32)>) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for (t, p) in parts {
        let next = r.tasks[&(t.clone(), *p)].next_offset;
        let off = next.map_or(Offset::Beginning, Offset::Offset);
        tpl.add_partition_offset(t, *p, off)?;
        r.positions.start(t, *p, next);
    }
    r.consumer
        .assign(&tpl)
        .context("assigning at the tasks' positions")?;
    if matches!(r.topo, Topology::Single { .. }) {
        r.metrics.rebalances.inc();
    }
    Ok(())
}

/// Create the scale-out tasks of `parts`, each restored from its newest checkpoint.
fn open_tasks(r: &mut Runner, parts: BTreeSet<(String, i32)>) -> Result<()> {
    let keys: BTreeSet<String> = parts
        .iter()
        .map(|(t, p)| tasks::task_key(&r.cfg, t, *p))
        .collect();
    let mut found = checkpoint::load_latest_many(&r.state_reader, &r.cfg.topics.state, &keys)?;
    for (topic, p) in parts {
        let saved = found
            .remove(&tasks::task_key(&r.cfg, &topic, p))
            .map(|b| Saved::decode(&b))
            .transpose()
            .with_context(|| format!("checkpoint of {topic}/{p}"))?;
        let restored = saved.is_some();
        let (next, work) = open_task(r, &topic, p, saved)?;
        tracing::info!(
            "task {topic}/{p} {} at offset {next:?}",
            if restored { "restored" } else { "new" }
        );
        let src = r.src_of(&topic, p);
        r.tasks
            .insert((topic.clone(), p), Task::new(&topic, p, src, next, work));
    }
    Ok(())
}

/// One scale-out task: an input partition's, or a stage shard's.
fn open_task(r: &Runner, topic: &str, p: i32, saved: Option<Saved>) -> Result<(Option<i64>, Work)> {
    let Topology::Scaled {
        stage_topics,
        sources: parts_in,
        shards,
    } = &r.topo
    else {
        anyhow::bail!("a single instance was assigned {topic}/{p}");
    };
    if topic == r.cfg.topics.input || topic == r.cfg.topics.control {
        let control = topic == r.cfg.topics.control;
        return match saved {
            Some(Saved::Ingest {
                next_offset,
                max_ts,
                ..
            }) => Ok((next_offset, Work::Ingest(Ingest::new(max_ts, control)))),
            Some(_) => anyhow::bail!("checkpoint of {topic}/{p} is not an input task's"),
            None => Ok((None, Work::Ingest(Ingest::new(None, control)))),
        };
    }
    let Some(ix) = stage_topics.iter().position(|t| t == topic) else {
        anyhow::bail!("assigned {topic}, which this service does not read");
    };
    let stage = Stage::ALL[ix];
    let sources = if stage == Stage::Id {
        *parts_in
    } else {
        *shards
    };
    match saved {
        Some(Saved::Shard {
            next_offset, shard, ..
        }) => {
            anyhow::ensure!(
                shard.stage == Some(stage) && shard.shard == p as u32,
                "checkpoint of {topic}/{p} belongs to another shard"
            );
            let t = restore_shard(&r.core, *shard, sources, *shards)
                .with_context(|| format!("restoring {topic}/{p}"))?;
            Ok((next_offset, Work::Shard(Box::new(t))))
        }
        Some(_) => anyhow::bail!("checkpoint of {topic}/{p} is not a stage task's"),
        None => {
            let t = new_shard(&r.core, Some(stage), p as u32, sources, *shards);
            Ok((None, Work::Shard(Box::new(t))))
        }
    }
}

fn new_shard(core: &Core, stage: Option<Stage>, shard: u32, sources: u32, out: u32) -> ShardTask {
    let mut e = Engine::new(core.pack.clone(), core.engine_cfg);
    e.set_models(core.models.clone());
    ShardTask::new(stage, shard, sources, out, e)
}

fn restore_shard(
    core: &Core,
    snap: crate::engine::shard_task::ShardSnapshot,
    sources: u32,
    out: u32,
) -> Result<ShardTask> {
    let mut e = Engine::restore(core.pack.clone(), core.engine_cfg, snap.engine.clone())?;
    e.set_models(core.models.clone());
    Ok(ShardTask::restore(snap, sources, out, e)?)
}

/// Scale-out's topology: every stage topic must have the same partition count.
fn scaled_topology(
    consumer: &BaseConsumer<Ctx>,
    stage_topics: Vec<String>,
    sources: u32,
) -> Result<Topology> {
    let shards = count(consumer, &stage_topics[0])?;
    for t in &stage_topics[1..] {
        let n = count(consumer, t)?;
        anyhow::ensure!(
            n == shards,
            "stage topic {t} has {n} partitions, {} has {shards}: every stage topic needs the same count",
            stage_topics[0]
        );
    }
    Ok(Topology::Scaled {
        stage_topics,
        sources,
        shards,
    })
}

fn count(consumer: &BaseConsumer<Ctx>, topic: &str) -> Result<u32> {
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("reading metadata of {topic}"))?;
    let n = meta.topics().first().map_or(0, |t| t.partitions().len());
    anyhow::ensure!(n > 0, "topic {topic} has no partitions");
    Ok(n as u32)
}

fn consumer(cfg: &RunConfig) -> Result<BaseConsumer<Ctx>> {
    let mut c = kafka::base_config(cfg);
    c.set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        // Small per-partition fetches keep partitions progressing together, so the reorder
        // buffer (held until the slowest partition's watermark passes) stays small.
        .set("max.partition.fetch.bytes", "131072")
        .set("fetch.max.bytes", "1048576")
        // Latency: a fetch that finds nothing new returns after 5 ms, not librdkafka's 500 ms
        // (brokers that do not wake a waiting fetch on new data would add up to that per hop).
        .set("fetch.wait.max.ms", "5");
    c.extend(cfg.kafka.clone()); // -X properties win over these defaults
    c.create_with_context(Ctx::default())
        .context("creating consumer")
}

fn state_reader(cfg: &RunConfig) -> Result<BaseConsumer> {
    kafka::base_config(cfg)
        .set("group.id", format!("{}-state", cfg.group))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .context("creating state reader")
}
