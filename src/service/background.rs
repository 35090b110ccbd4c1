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
//! near a checkpoint wait for it (hundreds of milliseconds at p99).

use super::checkpoint::Checkpoint;
use super::config::RunConfig;
use super::kafka::{Deliveries, Producer};
use super::metrics::Metrics;
use super::out::check_deliveries;
use anyhow::{Context, Result};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::BaseRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::thread::JoinHandle;

/// The checkpoint on its way.
struct Pending {
    /// Outputs with a lower sequence number precede the snapshot.
    barrier: u64,
    offsets: BTreeMap<i32, i64>,
    encoding: Option<JoinHandle<Result<Vec<u8>>>>,
    bytes: Option<Vec<u8>>,
    /// Sequence number of the checkpoint record once produced.
    record: Option<u64>,
}

/// At most one checkpoint in progress at a time.
#[derive(Default)]
pub struct Background {
    pending: Option<Pending>,
}

impl Background {
    pub fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// Start a checkpoint of `c` (taken just now).
    pub fn start(&mut self, c: Checkpoint, deliveries: &Deliveries) {
        let barrier = deliveries.barrier();
        let offsets = c.offsets.clone();
        let encoding = std::thread::spawn(move || c.encode());
        self.pending = Some(Pending {
            barrier,
            offsets,
            encoding: Some(encoding),
            bytes: None,
            record: None,
        });
    }

    /// Move the checkpoint in progress along; true when one completed now. `producer` is the
    /// checkpoint producer (`kafka::checkpoint_producer`), polled here for its acknowledgements.
    pub fn poll(
        &mut self,
        cfg: &RunConfig,
        key: &str,
        consumer: &BaseConsumer,
        producer: &Producer,
        deliveries: &Deliveries,
        metrics: &Metrics,
    ) -> Result<bool> {
        let Some(p) = &mut self.pending else {
            return Ok(false);
        };
        producer.poll(std::time::Duration::ZERO);
        if p.encoding.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(false);
        }
        if let Some(h) = p.encoding.take() {
            let bytes = h
                .join()
                .map_err(|_| anyhow::anyhow!("checkpoint encoder panicked"))??;
            p.bytes = Some(bytes);
        }
        let Some(record) = p.record else {
            if !deliveries.settled_before(p.barrier) {
                return Ok(false);
            }
            check_deliveries(deliveries)?;
            let bytes = p.bytes.as_deref().expect("encoded");
            let seq = deliveries.register();
            let rec = BaseRecord::with_opaque_to(&cfg.topics.state, Box::new((0i64, seq)))
                .key(key)
                .payload(bytes);
            match producer.send(rec) {
                Ok(()) => p.record = Some(seq),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // Not produced: nothing will acknowledge it. Try again on the next pass.
                    deliveries.forget(seq);
                }
                Err((e, _)) => return Err(e).context("producing checkpoint"),
            }
            return Ok(false);
        };
        if !deliveries.settled_before(record + 1) {
            return Ok(false);
        }
        check_deliveries(deliveries)?;
        let mut tpl = TopicPartitionList::new();
        for (part, o) in &p.offsets {
            tpl.add_partition_offset(&cfg.topics.input, *part, Offset::Offset(*o))?;
        }
        super::checkpoint::acknowledged(consumer, &tpl, metrics);
        self.pending = None;
        Ok(true)
    }
}
