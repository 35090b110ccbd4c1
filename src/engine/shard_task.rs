//! One shard of one stage of the scale-out topology ([`super::shard`]), pure: records in,
//! records for the next stage and decisions out. The Kafka edge (`service::scale`) feeds it
//! from the stage's topic partition; tests feed it from in-memory queues.
//!
//! Ordering: each source (an upstream shard, or an input partition for the first stage)
//! sends its events in (ts, id) order followed by watermark marks, so a shard releases an
//! event once the minimum mark over all its sources has passed it, and every shard processes
//! its events in (ts, id) order whatever the interleaving of its sources. The first stage's
//! sources are input partitions, whose events are in arrival order: their marks are the
//! partition's newest event time minus the allowed lateness, as in the one-engine service.
//!
//! Repeats: a restarted upstream shard re-sends what it sent since its last checkpoint, with
//! the same sequence numbers (its output is a function of its input log); a shard drops every
//! event whose sequence number it has already seen from that source.

use super::shard::{Carried, Stage};
use super::{Engine, EngineSnapshot};
use crate::decision::Decisions;
use crate::event::{Event, Millis};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A record on a stage topic: an event with what earlier stages learnt, or a watermark mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // built and sent at once, never stored in bulk
pub enum Envelope {
    Event {
        /// The sending shard (or input partition).
        src: u32,
        /// The sender's sequence number (the input offset for the first stage).
        seq: u64,
        ev: Event,
        #[serde(default)]
        c: Carried,
    },
    Mark {
        src: u32,
        #[serde(flatten)]
        mark: SourceMark,
    },
}

/// A source's promise: no more events before `wm` (unless late). An idle input partition
/// stops holding the watermark back; when every source is idle, everything seen is released.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SourceMark {
    pub wm: Millis,
    pub max_ts: Millis,
    #[serde(default)]
    pub idle: bool,
}

/// An envelope bound for one shard of the next stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub shard: u32,
    pub env: Envelope,
}

/// The first stage's record for the event at `offset` of input partition `partition`.
pub fn ingest(partition: u32, offset: u64, ev: Event, shards: u32) -> Forward {
    Forward {
        shard: Stage::Id.shard(&ev, shards),
        env: Envelope::Event {
            src: partition,
            seq: offset,
            ev,
            c: Carried::default(),
        },
    }
}

/// Heap entry ordered by (ts, id).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Held(Event, Carried);

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        self.0.ts == o.0.ts && self.0.id == o.0.id
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0.ts, &self.0.id).cmp(&(o.0.ts, &o.0.id))
    }
}

/// One stage shard: reorder by the sources' marks, drop repeats, run the stage's engine.
pub struct ShardTask {
    pub stage: Stage,
    pub shard: u32,
    engine: Engine,
    heap: BinaryHeap<Reverse<Held>>,
    marks: Vec<Option<SourceMark>>,
    last_seq: Vec<Option<u64>>,
    next_seq: u64,
    watermark: Millis,
    /// Shards of the next stage.
    shards_out: u32,
    /// Repeated records dropped (after an upstream restart).
    pub repeats: u64,
}

/// Everything needed to resume a shard exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardSnapshot {
    pub stage: Stage,
    pub shard: u32,
    pub engine: EngineSnapshot,
    pub pending: Vec<(Event, Carried)>,
    pub marks: Vec<Option<SourceMark>>,
    pub last_seq: Vec<Option<u64>>,
    pub next_seq: u64,
    pub watermark: Millis,
}

impl ShardTask {
    /// A fresh shard; `engine` is set to run `stage` only.
    pub fn new(stage: Stage, shard: u32, sources: u32, shards_out: u32, engine: Engine) -> Self {
        let mut engine = engine;
        engine.set_stage(Some(stage));
        Self {
            stage,
            shard,
            engine,
            heap: BinaryHeap::new(),
            marks: vec![None; sources as usize],
            last_seq: vec![None; sources as usize],
            next_seq: 0,
            watermark: Millis::MIN,
            shards_out,
            repeats: 0,
        }
    }

    /// Resume from a snapshot (`engine` restored from `snap.engine` by the caller, who owns the
    /// rules and models).
    pub fn restore(
        snap: ShardSnapshot,
        sources: u32,
        shards_out: u32,
        engine: Engine,
    ) -> Result<Self, String> {
        if snap.marks.len() != sources as usize {
            return Err(format!(
                "the {} stage's checkpoint has {} sources, the topics now give {sources}: \
                 partition counts cannot change under a running group (start a new group)",
                snap.stage.as_str(),
                snap.marks.len()
            ));
        }
        let mut t = Self::new(snap.stage, snap.shard, 0, shards_out, engine);
        t.heap = snap
            .pending
            .into_iter()
            .map(|(e, c)| Reverse(Held(e, c)))
            .collect();
        t.marks = snap.marks;
        t.last_seq = snap.last_seq;
        t.next_seq = snap.next_seq;
        t.watermark = snap.watermark;
        Ok(t)
    }

    pub fn snapshot(&self) -> ShardSnapshot {
        let mut pending: Vec<(Event, Carried)> = self
            .heap
            .iter()
            .map(|Reverse(Held(e, c))| (e.clone(), c.clone()))
            .collect();
        pending.sort_by(|a, b| (a.0.ts, &a.0.id).cmp(&(b.0.ts, &b.0.id)));
        ShardSnapshot {
            stage: self.stage,
            shard: self.shard,
            engine: self.engine.snapshot(),
            pending,
            marks: self.marks.clone(),
            last_seq: self.last_seq.clone(),
            next_seq: self.next_seq,
            watermark: self.watermark,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn watermark(&self) -> Millis {
        self.watermark
    }

    pub fn buffered(&self) -> usize {
        self.heap.len()
    }

    /// This shard's promise to the next stage: its watermark.
    pub fn source_mark(&self) -> SourceMark {
        SourceMark {
            wm: self.watermark,
            max_ts: self.watermark,
            idle: false,
        }
    }

    /// This shard's mark for the next stage, as a record.
    pub fn mark(&self) -> Envelope {
        Envelope::Mark {
            src: self.shard,
            mark: self.source_mark(),
        }
    }

    /// Accept one record; events released are processed, what goes on is appended to `fwd`,
    /// decisions to `d`. A record from a source this shard does not know is refused.
    pub fn accept(
        &mut self,
        env: Envelope,
        fwd: &mut Vec<Forward>,
        d: &mut Decisions,
    ) -> Result<(), String> {
        match env {
            Envelope::Event { src, seq, ev, c } => {
                let last = self
                    .last_seq
                    .get_mut(src as usize)
                    .ok_or_else(|| format!("event from unknown source {src}"))?;
                if last.is_some_and(|l| seq <= l) {
                    self.repeats += 1;
                    return Ok(());
                }
                *last = Some(seq);
                if ev.ts < self.watermark {
                    self.engine.stats_mut().late += 1;
                    self.process(ev, c, Some(self.watermark), fwd, d);
                } else {
                    self.heap.push(Reverse(Held(ev, c)));
                }
            }
            Envelope::Mark { src, mark } => {
                let slot = self
                    .marks
                    .get_mut(src as usize)
                    .ok_or_else(|| format!("mark from unknown source {src}"))?;
                let mut m = mark;
                if let Some(old) = slot {
                    m.wm = m.wm.max(old.wm);
                    m.max_ts = m.max_ts.max(old.max_ts);
                }
                *slot = Some(m);
                self.advance(fwd, d);
            }
        }
        Ok(())
    }

    /// The watermark the sources allow: the minimum over live sources; when all are idle,
    /// just past the newest event any of them saw. Nothing until every source has spoken.
    fn allowed(&self) -> Millis {
        let mut live = Millis::MAX;
        let mut newest = Millis::MIN;
        let mut any_live = false;
        for m in &self.marks {
            let Some(m) = m else { return Millis::MIN };
            newest = newest.max(m.max_ts);
            if !m.idle {
                any_live = true;
                live = live.min(m.wm);
            }
        }
        if any_live {
            live
        } else {
            newest.saturating_add(1)
        }
    }

    fn advance(&mut self, fwd: &mut Vec<Forward>, d: &mut Decisions) {
        let wm = self.allowed();
        if wm <= self.watermark {
            return;
        }
        self.watermark = wm;
        while self
            .heap
            .peek()
            .is_some_and(|Reverse(h)| h.0.ts < self.watermark)
        {
            let Reverse(Held(ev, c)) = self.heap.pop().expect("peeked");
            self.process(ev, c, None, fwd, d);
        }
    }

    /// Process one event (`late`: it arrived behind this watermark).
    fn process(
        &mut self,
        ev: Event,
        mut c: Carried,
        late: Option<Millis>,
        fwd: &mut Vec<Forward>,
        d: &mut Decisions,
    ) {
        let fresh = match late {
            Some(wm) => self.engine.process_carried_late(&ev, &mut c, wm, d),
            None => self.engine.process_carried(&ev, &mut c, d),
        };
        if !fresh {
            return;
        }
        if let Some(next) = self.stage.next() {
            let seq = self.next_seq;
            self.next_seq += 1;
            fwd.push(Forward {
                shard: next.shard(&ev, self.shards_out),
                env: Envelope::Event {
                    src: self.shard,
                    seq,
                    ev,
                    c,
                },
            });
        }
    }
}
