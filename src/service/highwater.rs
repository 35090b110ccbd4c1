//! The input partitions' high watermarks, fetched by a background thread with its own client,
//! so the service loop never waits on a broker round trip (a blocking `fetch_watermarks` per
//! partition in the loop stalled it for up to a second at a time). The loop reads them for
//! consumer lag and for idle detection.

use super::config::RunConfig;
use super::kafka;
use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often each partition's high watermark is fetched.
const EVERY: Duration = Duration::from_millis(200);

/// Latest (low, high) watermarks per input partition, with when they were asked for.
pub struct HighWater {
    map: Mutex<BTreeMap<i32, (i64, i64, Instant)>>,
    stop: AtomicBool,
}

impl HighWater {
    /// Start fetching the high watermarks of `partitions` of the input topic.
    pub fn spawn(cfg: &RunConfig, partitions: Vec<i32>) -> Result<Arc<Self>> {
        let client: BaseConsumer = kafka::base_config(cfg)
            .set("group.id", format!("{}-highwater", cfg.group))
            .set("enable.auto.commit", "false")
            .create()
            .context("creating the high-watermark client")?;
        let hw = Arc::new(Self {
            map: Mutex::new(BTreeMap::new()),
            stop: AtomicBool::new(false),
        });
        let me = hw.clone();
        let topic = cfg.topics.input.clone();
        std::thread::Builder::new()
            .name("switchguard-highwater".into())
            .spawn(move || {
                while !me.stop.load(Ordering::Relaxed) {
                    let round = Instant::now();
                    for p in &partitions {
                        let asked = Instant::now();
                        if let Ok((low, high)) =
                            client.fetch_watermarks(&topic, *p, Duration::from_secs(2))
                        {
                            me.map.lock().expect("lock").insert(*p, (low, high, asked));
                        }
                    }
                    std::thread::sleep(EVERY.saturating_sub(round.elapsed()));
                }
            })
            .context("starting the high-watermark thread")?;
        Ok(hw)
    }

    /// Whether a partition silent since `last_msg` is confirmed idle: its position
    /// (`next_offset`, or the low watermark before anything was read) is at the high watermark
    /// asked for after its last message. `None` until such a watermark is known.
    pub fn caught_up(&self, partition: i32, next_offset: i64, last_msg: Instant) -> Option<bool> {
        let (low, high, asked) = self.get(partition)?;
        let pos = if next_offset < 0 { low } else { next_offset };
        (asked >= last_msg).then_some(pos >= high)
    }

    /// The partition's (low, high) watermarks and when they were asked for, if known.
    pub fn get(&self, partition: i32) -> Option<(i64, i64, Instant)> {
        self.map.lock().expect("lock").get(&partition).copied()
    }
}

impl Drop for HighWater {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
