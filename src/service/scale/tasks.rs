//! Scale-out tasks and their checkpoints: one task per partition this instance owns, either an
//! input partition (decode and route to the first stage) or a stage shard (a [`ShardTask`]).
//! Each task's checkpoint is its own record in the state topic, keyed by group, topic and
//! partition, so whichever instance owns the partition next restores exactly that task.

use crate::engine::shard_task::{ShardSnapshot, ShardTask, SourceMark};
use crate::event::Millis;
use crate::keyed::Stage;
use crate::service::checkpoint;
use crate::service::config::RunConfig;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Format version of scale-out checkpoints.
pub const VERSION: u32 = 1;

/// The internal topic of `stage` for this group (Kafka Streams' naming:
/// `<group>-<stage>-repartition`).
pub fn stage_topic(cfg: &RunConfig, stage: Stage) -> String {
    let group: String = cfg
        .group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{group}-{}-repartition", stage.as_str())
}

/// The state-topic key of the task reading `topic`/`partition`.
pub fn key(cfg: &RunConfig, topic: &str, partition: i32) -> String {
    format!("scale/{}/{topic}/{partition}", cfg.group)
}

/// An input partition: decodes its events and routes them to the first stage.
pub struct Ingest {
    pub max_ts: Millis,
    /// Confirmed idle: silent for `idle_timeout` and at the broker's high watermark.
    pub idle: bool,
    pub last_msg: Instant,
}

impl Ingest {
    /// Its mark for the first stage, once it has something to promise.
    pub fn mark(&self, lateness: Millis) -> Option<SourceMark> {
        (self.max_ts > Millis::MIN || self.idle).then(|| SourceMark {
            wm: self.max_ts.saturating_sub(lateness),
            max_ts: self.max_ts,
            idle: self.idle,
        })
    }
}

/// What a task does.
pub enum Work {
    Ingest(Ingest),
    Shard(Box<ShardTask>),
}

/// One partition this instance owns.
pub struct Task {
    pub topic: String,
    pub partition: i32,
    /// Next offset to process; records below it are covered by the restored checkpoint.
    pub next_offset: i64,
    pub work: Work,
    /// The last mark sent downstream, and when.
    pub sent: Option<SourceMark>,
    pub sent_at: Instant,
}

/// A task's checkpoint record. Externally tagged: serde's internally tagged enums cannot read
/// back maps with integer keys (the books' hashed keys).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Saved {
    Ingest {
        version: u32,
        next_offset: i64,
        max_ts: Millis,
    },
    Shard {
        version: u32,
        next_offset: i64,
        shard: Box<ShardSnapshot>,
    },
}

impl Saved {
    pub fn of(t: &Task) -> Saved {
        match &t.work {
            Work::Ingest(i) => Saved::Ingest {
                version: VERSION,
                next_offset: t.next_offset,
                max_ts: i.max_ts,
            },
            Work::Shard(s) => Saved::of_shard(s, t.next_offset),
        }
    }

    /// The record of a stage shard positioned at `next_offset`.
    pub fn of_shard(t: &ShardTask, next_offset: i64) -> Saved {
        Saved::Shard {
            version: VERSION,
            next_offset,
            shard: Box::new(t.snapshot()),
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        checkpoint::to_gzip_json(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Saved> {
        let s: Saved = checkpoint::from_gzip_json(bytes, "task checkpoint")?;
        let v = match &s {
            Saved::Ingest { version, .. } | Saved::Shard { version, .. } => *version,
        };
        anyhow::ensure!(
            v == VERSION,
            "task checkpoint version {v} is not supported (expected {VERSION})"
        );
        Ok(s)
    }
}
