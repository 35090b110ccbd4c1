//! The runner's tasks and their checkpoint records. A task is one partition this instance
//! reads: an input partition (decode, route to the first stage) or, with scale-out, a stage
//! shard (a [`ShardTask`]). A single instance has one more task, in memory: the shard that
//! owns every stage, fed in-process by the input partitions.
//!
//! Checkpoints: with scale-out, one record per task (keyed by group, topic and partition), so
//! whichever instance owns the partition next restores exactly that task. A single instance
//! writes one record holding its input positions and its one shard together, so they can never
//! disagree.

use crate::engine::shard_task::{ShardSnapshot, ShardTask, SourceMark};
use crate::keyed::Stage;
use crate::service::checkpoint;
use crate::service::config::RunConfig;
use crate::time::{EventTime, Span};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Format version of checkpoint records.
pub const VERSION: u32 = 4;

/// Marks go to a stage topic at most this often per task (each is one record per partition).
pub const MARK_EVERY: Duration = Duration::from_millis(20);

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

/// The state-topic key of the scale-out task reading `topic`/`partition`.
pub fn task_key(cfg: &RunConfig, topic: &str, partition: i32) -> String {
    format!("scale/{}/{topic}/{partition}", cfg.group)
}

/// The state-topic key of a single instance's checkpoint.
pub fn single_key(cfg: &RunConfig) -> String {
    format!("checkpoint/{}/{}", cfg.topics.input, cfg.group)
}

/// An input partition: decodes its records and routes them to the first stage.
#[derive(Debug)]
pub struct Ingest {
    /// The newest event time seen.
    pub max_ts: Option<EventTime>,
    /// Confirmed idle: silent for `idle_timeout` and at the broker's high watermark (a control
    /// partition: caught up while every transactions partition is idle).
    pub idle: bool,
    pub last_msg: Instant,
    /// A control partition: it promises by the transactions' times (see [`super::promise`]).
    pub control: bool,
    /// A control partition's promise: the newest transaction time processed before its latest
    /// confirmed catch-up. `None` until one (it holds the watermark back until then).
    pub floor: Option<EventTime>,
}

impl Ingest {
    pub fn new(max_ts: Option<EventTime>, control: bool) -> Self {
        Self {
            max_ts,
            idle: false,
            last_msg: Instant::now(),
            control,
            floor: None,
        }
    }

    /// Its promise to the first stage, once it has one: its newest event time less the
    /// lateness (a control partition: its floor less the lateness), or idle.
    pub fn mark(&self, lateness: Span) -> Option<SourceMark> {
        if self.control && !self.idle {
            return self.floor.map(|f| SourceMark {
                wm: Some(f.saturating_sub(lateness)),
                max_ts: self.max_ts,
                idle: false,
            });
        }
        match (self.max_ts, self.idle) {
            (Some(t), idle) => Some(SourceMark {
                wm: Some(t.saturating_sub(lateness)),
                max_ts: Some(t),
                idle,
            }),
            (None, true) => Some(SourceMark {
                wm: None,
                max_ts: None,
                idle: true,
            }),
            (None, false) => None,
        }
    }
}

/// What a task does.
pub enum Work {
    Ingest(Ingest),
    Shard(Box<ShardTask>),
}

/// One partition this instance reads.
pub struct Task {
    pub topic: String,
    pub partition: i32,
    /// Its source number downstream: a transactions partition's number, a control
    /// partition's after them; a stage shard's own number.
    pub src: u32,
    /// Next offset to process; records below it are covered by the restored checkpoint.
    pub next_offset: Option<i64>,
    pub work: Work,
    /// The last mark sent downstream, and when.
    pub sent: Option<SourceMark>,
    pub sent_at: Instant,
}

impl Task {
    pub fn new(
        topic: &str,
        partition: i32,
        src: u32,
        next_offset: Option<i64>,
        work: Work,
    ) -> Self {
        Self {
            topic: topic.to_string(),
            partition,
            src,
            next_offset,
            work,
            sent: None,
            sent_at: Instant::now() - MARK_EVERY,
        }
    }
}

/// A scale-out task's checkpoint record. Externally tagged: serde's internally tagged enums
/// cannot read back maps with integer keys (the books' hashed keys).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Saved {
    Ingest {
        version: u32,
        next_offset: Option<i64>,
        max_ts: Option<EventTime>,
    },
    Shard {
        version: u32,
        next_offset: Option<i64>,
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
    pub fn of_shard(t: &ShardTask, next_offset: Option<i64>) -> Saved {
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

/// A single instance's checkpoint: its input positions and its one shard, in one record.
#[derive(Serialize, Deserialize)]
pub struct SingleSaved {
    pub version: u32,
    pub input_topic: String,
    /// Per input partition: the next offset to read and the newest event time seen.
    pub inputs: BTreeMap<i32, (Option<i64>, Option<EventTime>)>,
    /// The same per control partition.
    #[serde(default)]
    pub controls: BTreeMap<i32, (Option<i64>, Option<EventTime>)>,
    pub shard: ShardSnapshot,
}

impl SingleSaved {
    pub fn decode(bytes: &[u8]) -> Result<SingleSaved> {
        let s: SingleSaved = checkpoint::from_gzip_json(bytes, "checkpoint")?;
        anyhow::ensure!(
            s.version == VERSION,
            "checkpoint version {} is not supported (expected {VERSION})",
            s.version
        );
        Ok(s)
    }
}

/// One record to write at a checkpoint.
pub enum Record {
    Single(Box<SingleSaved>),
    Task(Box<Saved>),
}

impl Record {
    pub fn encode(&self) -> Result<Vec<u8>> {
        match self {
            Record::Single(s) => checkpoint::to_gzip_json(s.as_ref()),
            Record::Task(s) => checkpoint::to_gzip_json(s.as_ref()),
        }
    }
}
