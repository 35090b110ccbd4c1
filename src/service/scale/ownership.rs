//! Partition ownership in scale-out: opening tasks on a new assignment (each restored from
//! its newest checkpoint before it processes anything) and writing every task's checkpoint.

use super::tasks::{self, Ingest, Saved, Task, Work};
use super::{Ctx, Scaled, MARK_EVERY};
use crate::keyed::Stage;
use crate::engine::shard_task::ShardTask;
use crate::engine::Engine;
use crate::service::checkpoint;
use crate::service::kafka::{Deliveries, Producer};
use crate::service::metrics::Metrics;
use crate::service::out::check_deliveries;
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

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
        let missing: BTreeSet<(String, i32)> = a
            .iter()
            .filter(|k| !self.tasks.contains_key(*k))
            .cloned()
            .collect();
        let opened = missing.len();
        self.open(missing)?;
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &a {
            let off = self.tasks[&(t.clone(), *p)].next_offset;
            let off = if off >= 0 {
                Offset::Offset(off)
            } else {
                Offset::Beginning
            };
            tpl.add_partition_offset(t, *p, off)?;
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

    /// Outputs acknowledged → one checkpoint record per task → offsets committed.
    pub(super) fn checkpoint(
        &self,
        consumer: &BaseConsumer<Ctx>,
        producer: &Producer,
        deliveries: &Deliveries,
        metrics: &Metrics,
    ) -> Result<()> {
        producer
            .flush(Duration::from_secs(30))
            .context("flushing outputs")?;
        check_deliveries(deliveries)?;
        let mut tpl = TopicPartitionList::new();
        for t in self.tasks.values() {
            let bytes = Saved::of(t).encode()?;
            let key = tasks::key(&self.cfg, &t.topic, t.partition);
            let rec = BaseRecord::with_opaque_to(
                &self.cfg.topics.state,
                Box::new((0i64, deliveries.register())),
            )
            .key(&key)
            .payload(&bytes);
            producer
                .send(rec)
                .map_err(|(e, _)| e)
                .context("producing checkpoint")?;
            if t.next_offset >= 0 {
                tpl.add_partition_offset(&t.topic, t.partition, Offset::Offset(t.next_offset))?;
            }
        }
        producer
            .flush(Duration::from_secs(30))
            .context("flushing checkpoints")?;
        check_deliveries(deliveries)?;
        checkpoint::acknowledged(consumer, &tpl, metrics);
        Ok(())
    }
}
