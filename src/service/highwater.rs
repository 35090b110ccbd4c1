//! The input partitions' high watermarks, fetched by a background thread with its own client,
//! so the service loop never waits on a broker round trip (a blocking `fetch_watermarks` per
//! partition in the loop stalled it for up to a second at a time). The loop reads them for
//! consumer lag and for idle detection. Other partitions can be watched for a while
//! ([`HighWater::watch`]): scale-out's stage partitions waiting for their first record after a
//! seek, which [`super::positions::Positions::check_stalls`] needs.

use super::config::RunConfig;
use super::kafka;
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often each partition's high watermark is fetched.
const EVERY: Duration = Duration::from_millis(200);
/// How often the control partitions' are: the watermark waits for them (runner::promise).
const FAST: Duration = Duration::from_millis(20);

/// A topic and partition.
type Partition = (String, i32);
/// The low and high watermarks, and when they were asked for.
type Marks = (i64, i64, Instant);

/// Latest (low, high) watermarks per input partition (transactions and control), with when
/// they were asked for.
pub struct HighWater {
    map: Mutex<BTreeMap<Partition, Marks>>,
    inputs: BTreeSet<(String, i32)>,
    /// Other partitions to fetch, and their latest high watermarks.
    watched: Mutex<BTreeSet<(String, i32)>>,
    others: Mutex<BTreeMap<(String, i32), i64>>,
    stop: AtomicBool,
}

impl HighWater {
    /// Start fetching the high watermarks of the input `partitions` (topic, partition).
    pub fn spawn(cfg: &RunConfig, partitions: Vec<(String, i32)>) -> Result<Arc<Self>> {
        let client: BaseConsumer = kafka::base_config(cfg)
            .set("group.id", format!("{}-highwater", cfg.group))
            .set("enable.auto.commit", "false")
            .create()
            .context("creating the high-watermark client")?;
        let hw = Arc::new(Self {
            map: Mutex::new(BTreeMap::new()),
            inputs: partitions.iter().cloned().collect(),
            watched: Mutex::new(BTreeSet::new()),
            others: Mutex::new(BTreeMap::new()),
            stop: AtomicBool::new(false),
        });
        let me = hw.clone();
        let control = cfg.topics.control.clone();
        std::thread::Builder::new()
            .name("switchguard-highwater".into())
            .spawn(move || {
                for round in 0u64.. {
                    if me.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let started = Instant::now();
                    // The control partitions every round: their confirmations let the
                    // watermark follow the transactions (runner::promise). The rest less often.
                    let all = round % (EVERY.as_millis() / FAST.as_millis()) as u64 == 0;
                    let due = partitions.iter().filter(|(t, _)| all || *t == control);
                    me.fetch(&client, due);
                    if all {
                        me.fetch_watched(&client);
                    }
                    std::thread::sleep(FAST.saturating_sub(started.elapsed()));
                }
            })
            .context("starting the high-watermark thread")?;
        Ok(hw)
    }

    /// Ask for the watermarks of `partitions`, each stamped with when it was asked.
    fn fetch<'a>(&self, client: &BaseConsumer, partitions: impl Iterator<Item = &'a Partition>) {
        for (topic, p) in partitions {
            let asked = Instant::now();
            if let Ok((low, high)) = client.fetch_watermarks(topic, *p, Duration::from_secs(2)) {
                let k = (topic.clone(), *p);
                self.map.lock().expect("lock").insert(k, (low, high, asked));
            }
        }
    }

    /// Ask for the high watermarks of the partitions being watched.
    fn fetch_watched(&self, client: &BaseConsumer) {
        let watched = self.watched.lock().expect("lock").clone();
        for (t, p) in watched {
            if let Ok((_, high)) = client.fetch_watermarks(&t, p, Duration::from_secs(2)) {
                self.others.lock().expect("lock").insert((t, p), high);
            }
        }
    }

    /// Whether a partition silent since `last_msg` is confirmed idle: its position
    /// (`next_offset`, or the low watermark before anything was read) is at the high watermark
    /// asked for after its last message. `None` until such a watermark is known.
    pub fn caught_up(
        &self,
        topic: &str,
        partition: i32,
        next_offset: i64,
        last_msg: Instant,
    ) -> Option<bool> {
        let (low, high, asked) = self.get(topic, partition)?;
        let pos = if next_offset < 0 { low } else { next_offset };
        (asked >= last_msg).then_some(pos >= high)
    }

    /// When the partition, read up to `next_offset`, was last confirmed at the broker's high
    /// watermark: the instant that watermark was asked for (every record written before it
    /// has been read). `None` while behind, or before a watermark is known.
    pub fn read_through(&self, topic: &str, partition: i32, next_offset: i64) -> Option<Instant> {
        let (low, high, asked) = self.get(topic, partition)?;
        let pos = if next_offset < 0 { low } else { next_offset };
        (pos >= high).then_some(asked)
    }

    /// Fetch the high watermarks of `partitions` too (input partitions always are), until the
    /// next call.
    pub fn watch(&self, partitions: BTreeSet<(String, i32)>) {
        let partitions: BTreeSet<(String, i32)> = partitions
            .into_iter()
            .filter(|k| !self.inputs.contains(k))
            .collect();
        self.others
            .lock()
            .expect("lock")
            .retain(|k, _| partitions.contains(k));
        *self.watched.lock().expect("lock") = partitions;
    }

    /// The latest high watermark of any partition fetched, if known.
    pub fn high(&self, topic: &str, partition: i32) -> Option<i64> {
        if let Some((_, high, _)) = self.get(topic, partition) {
            return Some(high);
        }
        let others = self.others.lock().expect("lock");
        others.get(&(topic.to_string(), partition)).copied()
    }

    /// The partition's (low, high) watermarks and when they were asked for, if known.
    pub fn get(&self, topic: &str, partition: i32) -> Option<(i64, i64, Instant)> {
        let k = (topic.to_string(), partition);
        self.map.lock().expect("lock").get(&k).copied()
    }
}

impl Drop for HighWater {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
