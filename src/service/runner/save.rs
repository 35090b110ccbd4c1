//! Checkpoints. Every `checkpoint_interval`: the records (one for a single instance, one per
//! task with scale-out) are snapshotted on the loop and written in the background, after every
//! output before them is acknowledged; the offsets they cover are committed once they are.
//! With `exactly_once` the outputs, the record and the offsets go in one Kafka transaction
//! instead. At shutdown a last checkpoint is written and waited for.

use super::tasks::{self, Record, Saved, SingleSaved, Work, VERSION};
use super::topology::Topology;
use super::Runner;
use crate::service::background::Offsets;
use crate::service::checkpoint;
use crate::service::checkpoint_health::Failure;
use crate::service::out::check_deliveries;
use anyhow::{Context, Result};
use rdkafka::consumer::Consumer;
use rdkafka::producer::{BaseRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

impl Runner {
    /// Move the checkpoint in progress along, and start one when due.
    pub(super) fn checkpoint(&mut self) -> Result<()> {
        if self.cfg.exactly_once {
            if self.last_checkpoint.elapsed() >= self.every {
                now(self)?;
                self.last_checkpoint = Instant::now();
            }
            return Ok(());
        }
        self.background
            .poll(&self.cfg, &self.consumer, &self.deliveries, &self.metrics)?;
        if !self.background.busy() && self.last_checkpoint.elapsed() >= self.every {
            let t = Instant::now();
            let (records, offsets) = records(self);
            self.metrics
                .snapshot_stall
                .observe(t.elapsed().as_secs_f64());
            if !records.is_empty() {
                self.background.start(records, offsets, &self.deliveries);
            }
            self.last_checkpoint = Instant::now();
        }
        Ok(())
    }
}

/// The records of a checkpoint taken now, and the offsets they cover.
fn records(r: &Runner) -> (Vec<(String, Record)>, Offsets) {
    let offsets: Offsets = r
        .tasks
        .values()
        .filter_map(|t| t.next_offset.map(|o| (t.topic.clone(), t.partition, o)))
        .collect();
    let records = match &r.topo {
        Topology::Single { shard } => {
            let of_topic = |topic: &str| {
                r.tasks
                    .values()
                    .filter(|t| t.topic == topic)
                    .filter_map(|t| match &t.work {
                        Work::Ingest(i) => Some((t.partition, (t.next_offset, i.max_ts))),
                        Work::Shard(_) => None,
                    })
                    .collect()
            };
            let s = SingleSaved {
                version: VERSION,
                input_topic: r.cfg.topics.input.clone(),
                inputs: of_topic(&r.cfg.topics.input),
                controls: of_topic(&r.cfg.topics.control),
                shard: shard.snapshot(),
            };
            vec![(tasks::single_key(&r.cfg), Record::Single(Box::new(s)))]
        }
        Topology::Scaled { .. } => r
            .tasks
            .values()
            .map(|t| {
                let key = tasks::task_key(&r.cfg, &t.topic, t.partition);
                (key, Record::Task(Box::new(Saved::of(t))))
            })
            .collect(),
    };
    (records, offsets)
}

/// Write a checkpoint now and wait for it. `Ok(false)` when it failed (reported to the
/// checkpoint health; the next one tries again); an error only when outputs were lost, which
/// no checkpoint may ever cover, or a transaction failed (the process restarts from the last
/// committed checkpoint).
pub fn now(r: &mut Runner) -> Result<bool> {
    let (records, offsets) = records(r);
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in &offsets {
        tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
    }
    if r.cfg.exactly_once {
        return transaction(r, records, &tpl).map(|()| true);
    }
    let timeout = r.background.timeout();
    if let Err(e) = r.producer.flush(timeout) {
        let n = r.deliveries.in_flight_before(r.deliveries.barrier());
        let detail = format!("{n} output(s) not acknowledged within {timeout:?}: {e}");
        r.background.health.failed(Failure::Timeout, &detail);
        return Ok(false);
    }
    if let Err(e) = check_deliveries(&r.deliveries) {
        r.background
            .health
            .failed(Failure::OutputsFailed, &format!("{e:#}"));
        return Err(e);
    }
    if !r.background.write_now(&r.cfg, records)? {
        return Ok(false);
    }
    checkpoint::acknowledged(&r.consumer, &tpl, &r.metrics);
    r.background.health.ok();
    Ok(true)
}

/// Outputs, checkpoint records and offsets in one Kafka transaction (single instance only).
fn transaction(
    r: &mut Runner,
    records: Vec<(String, Record)>,
    tpl: &TopicPartitionList,
) -> Result<()> {
    let t = Duration::from_secs(30);
    let res = (|| -> Result<()> {
        for (key, rec) in &records {
            let bytes = rec.encode()?;
            let seq = r.deliveries.register();
            let state = BaseRecord::with_opaque_to(&r.cfg.topics.state, Box::new((0i64, seq)))
                .key(key)
                .payload(&bytes);
            r.producer.send(state).map_err(|(e, _)| e)?;
        }
        if let Some(g) = r.consumer.group_metadata() {
            if tpl.count() > 0 {
                r.producer.send_offsets_to_transaction(tpl, &g, t)?;
            }
        }
        r.producer.commit_transaction(t)?;
        Ok(())
    })();
    match res {
        Ok(()) => {
            r.metrics
                .transactions
                .with_label_values(&["committed"])
                .inc();
            r.metrics.checkpoints.inc();
            r.background.health.ok();
            r.producer
                .begin_transaction()
                .context("beginning the next transaction")?;
            Ok(())
        }
        Err(e) => {
            r.metrics.transactions.with_label_values(&["aborted"]).inc();
            r.background
                .health
                .failed(Failure::Transaction, &format!("{e:#}"));
            let _ = r.producer.abort_transaction(t);
            // The engine has moved past what was aborted: restart from the last commit.
            Err(e.context("transaction aborted; restart resumes from the last checkpoint"))
        }
    }
}
