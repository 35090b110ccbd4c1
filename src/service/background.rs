//! Checkpoints that do not stop the loop (at-least-once mode; a Kafka transaction commits
//! synchronously instead). The order is the same as the blocking path's, only waited for by
//! polling instead of flushing:
//!
//! 1. snapshot now, on the loop (a copy), and note the output sequence number reached;
//! 2. encode its records (JSON + gzip: one for a single instance, one per task with
//!    scale-out) on a worker thread;
//! 3. once every output before that number is acknowledged, produce the checkpoint records;
//! 4. once they are acknowledged, commit the offsets they cover.
//!
//! Meanwhile the loop goes on consuming and producing: a flush every second made every event
//! near a checkpoint wait for it (hundreds of milliseconds at p99). A checkpoint still
//! incomplete `checkpoint_timeout` after its snapshot, or failing, is reported to
//! [`CheckpointHealth`] (log line, metric, readiness); an incomplete one is kept waiting for,
//! a failed one is dropped and the next interval tries again.

use super::checkpoint_health::{CheckpointHealth, Failure};
use super::config::RunConfig;
use super::kafka::{self, Deliveries, Producer};
use super::metrics::Metrics;
use super::out::check_deliveries;
use super::runner::tasks::Record;
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A checkpoint's records by state-topic key, encoded.
type Encoded = Vec<(String, Vec<u8>)>;

/// The input positions a checkpoint covers: (topic, partition, next offset).
pub type Offsets = Vec<(String, i32, i64)>;

/// The checkpoint on its way.
struct Pending {
    /// Outputs with a lower sequence number precede the snapshot.
    barrier: u64,
    offsets: Offsets,
    encoding: Option<JoinHandle<Result<Encoded>>>,
    bytes: Option<Encoded>,
    /// Records produced so far, and the sequence number of the last one once all are.
    produced: usize,
    record: Option<u64>,
    started: Instant,
    /// When it next counts as failed for being incomplete.
    due: Instant,
}

/// What a checkpoint in progress waits for.
enum Step {
    Encoding,
    Outputs,
    Record,
    Done,
    Failed(Failure, String),
}

/// At most one checkpoint in progress at a time, on a producer connection of its own.
pub struct Background {
    /// The checkpoint producer (`kafka::checkpoint_producer`), with its own delivery reports,
    /// so a refused checkpoint record is told apart from a lost output.
    producer: Producer,
    deliveries: Arc<Deliveries>,
    timeout: Duration,
    pub health: CheckpointHealth,
    pending: Option<Pending>,
}

impl Background {
    pub fn new(cfg: &RunConfig, timeout: Duration, health: CheckpointHealth) -> Result<Self> {
        let deliveries = Arc::new(Deliveries::default());
        Ok(Self {
            producer: kafka::checkpoint_producer(cfg, deliveries.clone())?,
            deliveries,
            timeout,
            health,
            pending: None,
        })
    }

    pub fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// How long a checkpoint may take before it counts as failed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Write `records` now and wait for them (the final checkpoint); outputs before them must
    /// be acknowledged already. `Ok(false)` when they were not written (reported to `health`).
    pub fn write_now(&mut self, cfg: &RunConfig, records: Vec<(String, Record)>) -> Result<bool> {
        let failed_before = self.deliveries.failed.load(Ordering::Relaxed);
        for (key, rec) in &records {
            let bytes = match rec.encode() {
                Ok(b) => b,
                Err(e) => {
                    let detail = format!("encoding {key}: {e:#}");
                    self.health.failed(Failure::EncodeError, &detail);
                    return Ok(false);
                }
            };
            let seq = self.deliveries.register();
            let rec = BaseRecord::with_opaque_to(&cfg.topics.state, Box::new((0i64, seq)))
                .key(key)
                .payload(&bytes);
            if let Err((e, _)) = self.producer.send(rec) {
                self.deliveries.forget(seq);
                let detail = format!("producing the {}-byte record {key}: {e}", bytes.len());
                self.health.failed(Failure::ProduceError, &detail);
                return Ok(false);
            }
        }
        if let Err(e) = self.producer.flush(self.timeout) {
            let detail = format!(
                "checkpoint records not acknowledged within {:?}: {e}",
                self.timeout
            );
            self.health.failed(Failure::Timeout, &detail);
            return Ok(false);
        }
        if self.deliveries.failed.load(Ordering::Relaxed) > failed_before {
            let last = self.deliveries.last_error.lock().expect("lock").clone();
            let detail = format!(
                "the broker did not acknowledge a checkpoint record: {}",
                last.unwrap_or_default()
            );
            self.health.failed(Failure::NotAcknowledged, &detail);
            return Ok(false);
        }
        Ok(true)
    }

    /// Start a checkpoint of `records` (snapshots taken just now) covering `offsets`, after
    /// every output registered so far.
    pub fn start(
        &mut self,
        records: Vec<(String, Record)>,
        offsets: Offsets,
        outputs: &Deliveries,
    ) {
        let barrier = outputs.barrier();
        let encoding = std::thread::spawn(move || {
            records
                .into_iter()
                .map(|(k, r)| Ok((k, r.encode()?)))
                .collect::<Result<Encoded>>()
        });
        let now = Instant::now();
        self.pending = Some(Pending {
            barrier,
            offsets,
            encoding: Some(encoding),
            bytes: None,
            produced: 0,
            record: None,
            started: now,
            due: now + self.timeout,
        });
    }

    /// Move the checkpoint in progress along; true when one completed now. An error only when
    /// outputs were lost (no checkpoint may ever cover them: the process must restart).
    pub fn poll<C: ConsumerContext>(
        &mut self,
        cfg: &RunConfig,
        consumer: &BaseConsumer<C>,
        outputs: &Deliveries,
        metrics: &Metrics,
    ) -> Result<bool> {
        if self.pending.is_none() {
            return Ok(false);
        }
        kafka::poll_deliveries(&self.producer, &self.deliveries);
        let step = self.advance(cfg, outputs)?;
        let p = self.pending.as_mut().expect("pending");
        match step {
            Step::Done => {
                let mut tpl = TopicPartitionList::new();
                for (topic, part, o) in &p.offsets {
                    tpl.add_partition_offset(topic, *part, Offset::Offset(*o))?;
                }
                super::checkpoint::acknowledged(consumer, &tpl, metrics);
                self.health.ok();
                self.pending = None;
                return Ok(true);
            }
            Step::Failed(Failure::OutputsFailed, detail) => {
                self.health.failed(Failure::OutputsFailed, &detail);
                anyhow::bail!("{detail}");
            }
            Step::Failed(reason, detail) => {
                self.health.failed(reason, &detail);
                self.pending = None;
            }
            waiting => {
                let now = Instant::now();
                if now >= p.due {
                    p.due = now + self.timeout;
                    let what = match waiting {
                        Step::Encoding => "the snapshot is still being encoded".to_string(),
                        Step::Outputs => format!(
                            "{} output(s) produced before the snapshot are not acknowledged yet",
                            outputs.in_flight_before(p.barrier)
                        ),
                        _ => "the checkpoint record is not acknowledged yet".to_string(),
                    };
                    let age = now.duration_since(p.started).as_secs_f64();
                    let detail = format!("incomplete {age:.1}s after its snapshot: {what}");
                    self.health.failed(Failure::Timeout, &detail);
                }
            }
        }
        Ok(false)
    }

    /// One step of the checkpoint in progress.
    fn advance(&mut self, cfg: &RunConfig, outputs: &Deliveries) -> Result<Step> {
        let p = self.pending.as_mut().expect("pending");
        if p.encoding.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(Step::Encoding);
        }
        if let Some(h) = p.encoding.take() {
            match h.join() {
                Ok(Ok(bytes)) => p.bytes = Some(bytes),
                Ok(Err(e)) => return Ok(Step::Failed(Failure::EncodeError, format!("{e:#}"))),
                Err(_) => anyhow::bail!("checkpoint encoder panicked"),
            }
        }
        let Some(record) = p.record else {
            if !outputs.settled_before(p.barrier) {
                return Ok(Step::Outputs);
            }
            if let Err(e) = check_deliveries(outputs) {
                return Ok(Step::Failed(Failure::OutputsFailed, format!("{e:#}")));
            }
            return Ok(self.produce(cfg));
        };
        if !self.deliveries.settled_before(record + 1) {
            return Ok(Step::Record);
        }
        if self.deliveries.failed.swap(0, Ordering::Relaxed) > 0 {
            let last = self.deliveries.last_error.lock().expect("lock").take();
            let why = last.unwrap_or_else(|| "unknown error".into());
            return Ok(Step::Failed(
                Failure::NotAcknowledged,
                format!("the broker did not acknowledge the checkpoint record: {why}"),
            ));
        }
        Ok(Step::Done)
    }

    /// Produce the records not produced yet; `Step::Record` once all are (or to retry).
    fn produce(&mut self, cfg: &RunConfig) -> Step {
        let p = self.pending.as_mut().expect("pending");
        let records = p.bytes.as_deref().expect("encoded");
        while p.produced < records.len() {
            let (key, bytes) = &records[p.produced];
            let seq = self.deliveries.register();
            let rec = BaseRecord::with_opaque_to(&cfg.topics.state, Box::new((0i64, seq)))
                .key(key)
                .payload(bytes);
            match self.producer.send(rec) {
                Ok(()) => {
                    p.produced += 1;
                    if p.produced == records.len() {
                        p.record = Some(seq);
                    }
                }
                Err((e, _)) => {
                    // Not produced: nothing will acknowledge it.
                    self.deliveries.forget(seq);
                    if let KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) = e {
                        return Step::Record; // try again on the next pass
                    }
                    let size = bytes.len();
                    return Step::Failed(
                        Failure::ProduceError,
                        format!("producing the {size}-byte checkpoint record {key}: {e}"),
                    );
                }
            }
        }
        Step::Record
    }

    /// Wait for a checkpoint record in flight (before the final, blocking checkpoint).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .context("flushing the checkpoint producer")
    }
}
