//! Checkpoints: the engine state plus the input position it covers, kept in a compacted Kafka
//! topic (one key per single instance, or per scale-out task; the records themselves are
//! `runner::tasks`), gzip-compressed JSON.
//!
//! Why a state topic rather than re-reading the input window: pre-auths live 45 days and QR
//! references 48 h, far longer than input retention can be assumed to be; a snapshot restores
//! in one read whatever the windows. Why the order outputs → checkpoint → offsets: a crash
//! anywhere re-processes at most the events after the last checkpoint, from exactly the state
//! that first processed them, so every re-emitted record is byte-identical (same ids).

use super::metrics::Metrics;
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::time::Duration;

/// A state-topic record: JSON, gzip-compressed (fast level). Buffered: serde_json writes in
/// small pieces, and each write straight into the encoder ran a deflate step (a 9.5 MB
/// checkpoint took 470 ms to encode that way, 166 ms buffered).
pub fn to_gzip_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut w = std::io::BufWriter::with_capacity(1 << 16, gz);
    serde_json::to_writer(&mut w, v)?;
    let r = w.into_inner().map_err(|e| e.into_error())?.finish()?;
    Ok(r)
}

/// Read a state-topic record back; `what` names it in errors.
pub fn from_gzip_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut json)
        .with_context(|| format!("{what} is not gzip"))?;
    serde_json::from_slice(&json).with_context(|| format!("{what} is not valid JSON"))
}

/// The newest record of each of `keys` in the state topic (partition 0), read backwards from
/// the end until every key is found or the start is reached.
pub fn load_latest_many<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    keys: &BTreeSet<String>,
) -> Result<BTreeMap<String, Vec<u8>>> {
    const WINDOW: i64 = 64;
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .context("reading state topic watermarks")?;
    let mut found = BTreeMap::new();
    let mut end = high;
    while end > low && found.len() < keys.len() {
        let start = (end - WINDOW).max(low);
        read_window(consumer, topic, keys, start, end, &mut found)?;
        end = start;
    }
    Ok(found)
}

/// Into `found`: the payload of the last record of each key not yet found, in `start..end`.
fn read_window<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    keys: &BTreeSet<String>,
    start: i64,
    end: i64,
    found: &mut BTreeMap<String, Vec<u8>>,
) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(start))?;
    consumer.assign(&tpl)?;
    let mut window: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut next = start;
    while next < end {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "timed out reading the state topic"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                next = m.offset() + 1;
                let key = m.key().and_then(|k| std::str::from_utf8(k).ok());
                if let Some(k) = key.filter(|k| m.offset() < end && keys.contains(*k)) {
                    if !found.contains_key(k) {
                        if let Some(p) = m.payload() {
                            window.insert(k.to_string(), p.to_vec());
                        }
                    }
                }
            }
            Some(Err(e)) => anyhow::bail!("reading state topic: {e}"),
            None => {}
        }
    }
    consumer.unassign()?;
    found.append(&mut window);
    Ok(())
}

/// A checkpoint (or a task's set of them) is acknowledged: commit the input offsets it covers
/// to the group and count it. The commit is for lag monitoring only (a restart resumes from
/// the checkpoint's own offsets), so a failed one is reported, not fatal.
pub fn acknowledged<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    offsets: &TopicPartitionList,
    metrics: &Metrics,
) {
    if offsets.count() > 0 {
        if let Err(e) = consumer.commit(offsets, CommitMode::Async) {
            tracing::warn!("offset commit failed (monitoring only; restarts use the checkpoint's offsets): {e}");
        }
    }
    metrics.transactions.with_label_values(&["committed"]).inc();
    metrics.checkpoint_written();
}
