//! Partition ownership in scale-out: opening tasks on a new assignment (each restored from
//! its newest checkpoint before it processes anything) and writing every task's checkpoint.

use super::tasks::{self, Ingest, Saved, Task, Work};
use super::{Ctx, Scaled, MARK_EVERY};
use crate::engine::shard_task::ShardTask;
use crate::engine::Engine;
use crate::keyed::Stage;
use crate::service::checkpoint;
use crate::service::checkpoint_health::Failure;
use crate::service::kafka::{Deliveries, Producer};
use crate::service::metrics::Metrics;
use crate::service::out::check_deliveries;
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Scaled {
    /// A new assignment: keep the tasks still owned (owned throughout, so their state is
    /// current; one that comes back after another owner had it is restored afresh), restore
    /// the new ones from their checkpoints, and start each partition at its task's position
    /// (the beginning for a task without checkpoint), whatever the group's committed offset.
    pub(super) fn assigned(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        a: BTreeSet<(String, i32)>,
        metrics: &Metrics,
    ) -> Result<()> {
        self.tasks.retain(|k, _| a.contains(k));
        self.positions.retain(&a);
        let missing: BTreeSet<(String, i32)> = a
            .iter()
            .filter(|k| !self.tasks.contains_key(*k))
            .cloned()
            .collect();
        let opened = missing.len();
        self.open(missing)?;
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &a {
            let next = self.tasks[&(t.clone(), *p)].next_offset;
            let off = if next >= 0 {
                Offset::Offset(next)
            } else {
                Offset::Beginning
            };
            tpl.add_partition_offset(t, *p, off)?;
            // Kept tasks too: the assignment is a seek, possibly to inside a batch.
            self.positions.start(t, *p, (next >= 0).then_some(next));
        }
        consumer
            .assign(&tpl)
            .context("assigning at the tasks' positions")?;
        metrics.rebalances.inc();
        eprintln!(
            "switchguard: assigned {} partitions ({opened} tasks opened)",
            a.len()
        );
        Ok(())
    }

    /// Create the tasks of `parts`, each restored from its newest checkpoint when there is one.
    pub(super) fn open(&mut self, parts: BTreeSet<(String, i32)>) -> Result<()> {
        let keys: BTreeSet<String> = parts
            .iter()
            .map(|(t, p)| tasks::key(&self.cfg, t, *p))
            .collect();
        let mut found =
            checkpoint::load_latest_many(&self.state_reader, &self.cfg.topics.state, &keys)?;
        for (topic, p) in parts {
            let saved = found
                .remove(&tasks::key(&self.cfg, &topic, p))
                .map(|b| Saved::decode(&b))
                .transpose()
                .with_context(|| format!("checkpoint of {topic}/{p}"))?;
            let restored = saved.is_some();
            let (next_offset, work) = if topic == self.cfg.topics.input {
                let (next, max_ts) = match saved {
                    Some(Saved::Ingest {
                        next_offset,
                        max_ts,
                        ..
                    }) => (next_offset, max_ts),
                    Some(_) => anyhow::bail!("checkpoint of {topic}/{p} is not an input task's"),
                    None => (-1, i64::MIN),
                };
                let i = Ingest {
                    max_ts,
                    idle: false,
                    last_msg: Instant::now(),
                };
                (next, Work::Ingest(i))
            } else {
                let Some(ix) = self.stage_topics.iter().position(|t| *t == topic) else {
                    anyhow::bail!("assigned {topic}, which this service does not read");
                };
                let stage = Stage::ALL[ix];
                let sources = if stage == Stage::Id {
                    self.parts_in
                } else {
                    self.shards
                };
                match saved {
                    Some(Saved::Shard {
                        next_offset, shard, ..
                    }) => {
                        anyhow::ensure!(
                            shard.stage == stage && shard.shard == p as u32,
                            "checkpoint of {topic}/{p} belongs to another shard"
                        );
                        let mut e = Engine::restore(
                            self.pack.clone(),
                            self.engine_cfg,
                            shard.engine.clone(),
                        )?;
                        e.set_models(self.models.clone());
                        let t = ShardTask::restore(*shard, sources, self.shards, e)
                            .with_context(|| format!("restoring {topic}/{p}"))?;
                        (next_offset, Work::Shard(Box::new(t)))
                    }
                    Some(_) => anyhow::bail!("checkpoint of {topic}/{p} is not a stage task's"),
                    None => {
                        let mut e = Engine::new(self.pack.clone(), self.engine_cfg);
                        e.set_models(self.models.clone());
                        let t = ShardTask::new(stage, p as u32, sources, self.shards, e);
                        (-1, Work::Shard(Box::new(t)))
                    }
                }
            };
            eprintln!(
                "switchguard: task {topic}/{p} {} at offset {next_offset}",
                if restored { "restored" } else { "new" }
            );
            self.positions
                .start(&topic, p, (next_offset >= 0).then_some(next_offset));
            self.tasks.insert(
                (topic.clone(), p),
                Task {
                    topic,
                    partition: p,
                    next_offset,
                    work,
                    sent: None,
                    sent_at: Instant::now() - MARK_EVERY,
                },
            );
        }
        Ok(())
    }

    /// Outputs acknowledged → one checkpoint record per task → offsets committed. `Ok(false)`
    /// when this checkpoint failed (reported to `self.checkpoints`; the next one tries again);
    /// an error only when outputs were lost, which no checkpoint may ever cover.
    pub(super) fn checkpoint(
        &mut self,
        consumer: &BaseConsumer<Ctx>,
        producer: &Producer,
        deliveries: &Deliveries,
        metrics: &Metrics,
    ) -> Result<bool> {
        let timeout = self.checkpoint_timeout;
        if let Err(e) = producer.flush(timeout) {
            let n = deliveries.in_flight_before(deliveries.barrier());
            let detail = format!("{n} output(s) not acknowledged within {timeout:?}: {e}");
            self.checkpoints.failed(Failure::Timeout, &detail);
            return Ok(false);
        }
        if let Err(e) = check_deliveries(deliveries) {
            self.checkpoints
                .failed(Failure::OutputsFailed, &format!("{e:#}"));
            return Err(e);
        }
        let mut tpl = TopicPartitionList::new();
        let failed_before = self.checkpoint_deliveries.failed.load(Ordering::Relaxed);
        for t in self.tasks.values() {
            let bytes = match Saved::of(t).encode() {
                Ok(b) => b,
                Err(e) => {
                    let detail = format!("encoding task {}/{}: {e:#}", t.topic, t.partition);
                    self.checkpoints.failed(Failure::EncodeError, &detail);
                    return Ok(false);
                }
            };
            let key = tasks::key(&self.cfg, &t.topic, t.partition);
            let seq = self.checkpoint_deliveries.register();
            let rec = BaseRecord::with_opaque_to(&self.cfg.topics.state, Box::new((0i64, seq)))
                .key(&key)
                .payload(&bytes);
            if let Err((e, _)) = self.checkpoint_producer.send(rec) {
                self.checkpoint_deliveries.forget(seq);
                let detail = format!("producing the {}-byte record of {key}: {e}", bytes.len());
                self.checkpoints.failed(Failure::ProduceError, &detail);
                return Ok(false);
            }
            if t.next_offset >= 0 {
                tpl.add_partition_offset(&t.topic, t.partition, Offset::Offset(t.next_offset))?;
            }
        }
        if let Err(e) = self.checkpoint_producer.flush(timeout) {
            let detail = format!("checkpoint records not acknowledged within {timeout:?}: {e}");
            self.checkpoints.failed(Failure::Timeout, &detail);
            return Ok(false);
        }
        if self.checkpoint_deliveries.failed.load(Ordering::Relaxed) > failed_before {
            let last = self
                .checkpoint_deliveries
                .last_error
                .lock()
                .expect("lock")
                .clone();
            let detail = format!(
                "the broker did not acknowledge a checkpoint record: {}",
                last.unwrap_or_default()
            );
            self.checkpoints.failed(Failure::NotAcknowledged, &detail);
            return Ok(false);
        }
        checkpoint::acknowledged(consumer, &tpl, metrics);
        self.checkpoints.ok();
        Ok(true)
    }
}
