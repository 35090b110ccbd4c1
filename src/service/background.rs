//! Checkpoints that do not stop the loop (at-least-once mode; a Kafka transaction commits
//! synchronously instead). The order is the same as the blocking path's, only waited for by
//! polling instead of flushing:
//!
//! 1. snapshot now, on the loop (a copy), and note the output sequence number reached;
//! 2. encode it (JSON + gzip) on a worker thread;
//! 3. once every output before that number is acknowledged, produce the checkpoint record;
//! 4. once it is acknowledged, commit the offsets it covers.
//!
//! Meanwhile the loop goes on consuming and producing: a flush every second made every event
//! near a checkpoint wait for it (hundreds of milliseconds at p99). A checkpoint still
//! incomplete `checkpoint_timeout` after its snapshot, or failing, is reported to
//! [`CheckpointHealth`] (log line, metric, readiness); an incomplete one is kept waiting for,
//! a failed one is dropped and the next interval tries again.

use super::checkpoint::Checkpoint;
use super::checkpoint_health::{CheckpointHealth, Failure};
use super::config::RunConfig;
use super::kafka::{self, Deliveries, Producer};
use super::metrics::Metrics;
use super::out::check_deliveries;
use anyhow::{Context, Result};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The checkpoint on its way.
struct Pending {
    /// Outputs with a lower sequence number precede the snapshot.
    barrier: u64,
    offsets: BTreeMap<i32, i64>,
    encoding: Option<JoinHandle<Result<Vec<u8>>>>,
    bytes: Option<Vec<u8>>,
    /// Sequence number of the checkpoint record once produced.
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
    key: String,
    timeout: Duration,
    pub health: CheckpointHealth,
    pending: Option<Pending>,
}

impl Background {
    pub fn new(
        cfg: &RunConfig,
        key: &str,
        timeout: Duration,
        health: CheckpointHealth,
    ) -> Result<Self> {
        let deliveries = Arc::new(Deliveries::default());
        Ok(Self {
            producer: kafka::checkpoint_producer(cfg, deliveries.clone())?,
            deliveries,
            key: key.to_string(),
            timeout,
            health,
            pending: None,
        })
    }

    pub fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// Start a checkpoint of `c` (taken just now), after every output registered so far.
    pub fn start(&mut self, c: Checkpoint, outputs: &Deliveries) {
        let barrier = outputs.barrier();
        let offsets = c.offsets.clone();
        let encoding = std::thread::spawn(move || c.encode());
        let now = Instant::now();
        self.pending = Some(Pending {
            barrier,
            offsets,
            encoding: Some(encoding),
            bytes: None,
            record: None,
            started: now,
            due: now + self.timeout,
        });
    }

    /// Move the checkpoint in progress along; true when one completed now. An error only when
    /// outputs were lost (no checkpoint may ever cover them: the process must restart).
    pub fn poll(
        &mut self,
        cfg: &RunConfig,
        consumer: &BaseConsumer,
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
                for (part, o) in &p.offsets {
                    tpl.add_partition_offset(&cfg.topics.input, *part, Offset::Offset(*o))?;
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
            let bytes = p.bytes.as_deref().expect("encoded");
            let seq = self.deliveries.register();
            let rec = BaseRecord::with_opaque_to(&cfg.topics.state, Box::new((0i64, seq)))
                .key(&self.key)
                .payload(bytes);
            return Ok(match self.producer.send(rec) {
                Ok(()) => {
                    p.record = Some(seq);
                    Step::Record
                }
                Err((e, _)) => {
                    // Not produced: nothing will acknowledge it.
                    self.deliveries.forget(seq);
                    if let KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) = e {
                        Step::Record // try again on the next pass
                    } else {
                        let size = bytes.len();
                        Step::Failed(
                            Failure::ProduceError,
                            format!("producing the {size}-byte checkpoint record: {e}"),
                        )
                    }
                }
            });
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

    /// Wait for a checkpoint record in flight (before the final, blocking checkpoint).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .context("flushing the checkpoint producer")
    }
}
