//! The output side shared by both service loops: alerts (keyed by entity), commands (keyed by
//! target) and rejects (original bytes, PAN-shaped digits redacted, reason in headers), each
//! produced with its event time as the delivery opaque (for the end-to-end latency), waiting
//! for queue space instead of failing when the local queue is full.

use super::config::RunConfig;
use super::kafka::{Deliveries, Producer};
use crate::decision::Decisions;
use anyhow::{Context, Result};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Output side of the loop.
pub struct Out<'a> {
    pub cfg: &'a RunConfig,
    pub producer: &'a Producer,
    pub deliveries: &'a Deliveries,
}

impl Out<'_> {
    pub fn send(
        &mut self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: Option<OwnedHeaders>,
        ts: i64,
    ) -> Result<()> {
        let seq = self.deliveries.register();
        let rec = BaseRecord::with_opaque_to(topic, Box::new((ts, seq)))
            .key(key)
            .payload(payload);
        self.produce(topic, rec, headers)
    }

    /// Produce to one partition (scale-out's stage topics choose the partition themselves).
    pub fn send_to(
        &mut self,
        topic: &str,
        partition: i32,
        key: &[u8],
        payload: &[u8],
        ts: i64,
    ) -> Result<()> {
        let seq = self.deliveries.register();
        let rec = BaseRecord::with_opaque_to(topic, Box::new((ts, seq)))
            .partition(partition)
            .key(key)
            .payload(payload);
        self.produce(topic, rec, None)
    }

    fn produce(
        &mut self,
        topic: &str,
        rec: BaseRecord<'_, [u8], [u8], super::kafka::Opaque>,
        headers: Option<OwnedHeaders>,
    ) -> Result<()> {
        let mut rec = rec;
        if let Some(h) = headers {
            rec = rec.headers(h);
        }
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    rec = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e).context(format!("producing to {topic}")),
            }
        }
    }

    pub fn decisions(&mut self, d: &Decisions) -> Result<()> {
        let topics = &self.cfg.topics;
        for a in &d.alerts {
            self.send_json(&topics.alerts, &a.entity_id, a, &a.ts)?;
        }
        for c in &d.commands {
            self.send_json(&topics.commands, &c.target, c, &c.ts)?;
        }
        for e in &d.evidence {
            self.send_json(&topics.evidence, &e.alert_id, e, &e.ts)?;
        }
        for r in &d.rejects {
            self.control_reject(r)?;
        }
        Ok(())
    }

    /// A control record the engine refused (an acknowledgement of an unknown command, an
    /// extension of a lock not in force): on the DLQ like a bad record, with its reason. The
    /// record itself was consumed long before (reordered by event time), so the payload is
    /// the refusal.
    fn control_reject(&mut self, r: &crate::decision::ControlReject) -> Result<()> {
        let payload = crate::pan::masked_json(r)?;
        let reason = crate::pan::redact(&r.reason).into_owned();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason_code",
                value: Some(r.reason_code),
            })
            .insert(Header {
                key: "reason",
                value: Some(reason.as_str()),
            })
            .insert(Header {
                key: "source",
                value: Some("engine"),
            });
        let topic = self.cfg.topics.dlq.clone();
        self.send(&topic, r.control_id.as_bytes(), &payload, Some(headers), 0)
    }

    /// One alert or command: JSON, keyed, with its event time (RFC 3339) as the opaque.
    fn send_json<T: serde::Serialize>(
        &mut self,
        topic: &str,
        key: &str,
        record: &T,
        ts: &str,
    ) -> Result<()> {
        // Masked on the way out like every output (see `pan::masked_json`), the key too.
        let json = crate::pan::masked_json(record)?;
        let key = crate::pan::redact(key);
        self.send(topic, key.as_bytes(), &json, None, parse_ts(ts))
    }

    pub fn dlq(
        &mut self,
        bytes: &[u8],
        key: Option<&[u8]>,
        e: &crate::decode::DecodeError,
        source: &str,
    ) -> Result<()> {
        // The original bytes and key, except anything PAN-shaped (a clear PAN is never
        // re-emitted, in any field or shape).
        let payload = crate::pan::redact_bytes(bytes);
        let key = crate::pan::redact_bytes(key.unwrap_or(b""));
        let reason = crate::pan::redact(&e.to_string()).into_owned();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason_code",
                value: Some(e.code()),
            })
            .insert(Header {
                key: "reason",
                value: Some(reason.as_str()),
            })
            .insert(Header {
                key: "source",
                value: Some(source),
            });
        self.send(
            &self.cfg.topics.dlq.clone(),
            &key,
            &payload,
            Some(headers),
            0,
        )
    }
}

pub fn parse_ts(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

/// Fail when any output since start was not acknowledged: a checkpoint must not cover it.
pub fn check_deliveries(d: &Deliveries) -> Result<()> {
    let failed = d.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let last = d
            .last_error
            .lock()
            .expect("lock")
            .clone()
            .unwrap_or_default();
        anyhow::bail!(
            "{failed} output(s) were not acknowledged (last error: {last}); not checkpointing"
        );
    }
    Ok(())
}
