//! One shard of one stage of the scale-out topology ([`super::shard`]), pure: records in,
//! records for the next stage and decisions out. The service feeds it from the stage's topic
//! partition; tests feed it from in-memory queues. A single instance runs one task that owns
//! every stage (`stage: None`), fed in-process by the input partitions: the same component,
//! so one loop serves both.
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

use super::order::{Ordered, OrderedSnapshot};
use super::{Engine, EngineSnapshot, RestoreError, ShardError};
use crate::control::{Action, Control, Input};
use crate::decision::Decisions;
use crate::event::Event;
use crate::feature::Carried;
use crate::keyed::Stage;
use crate::time::EventTime;
use serde::{Deserialize, Serialize};

pub use super::order::SourceMark;

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
    /// A control record (manual lock, release, extension, or the switch's acknowledgement).
    Control { src: u32, seq: u64, ctl: Control },
    Mark {
        src: u32,
        #[serde(flatten)]
        mark: SourceMark,
    },
}

/// An envelope bound for one shard of the next stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub shard: u32,
    pub env: Envelope,
}

/// The first stage's record for the input at `offset` of input source `src` (a partition of
/// the transactions topic, or of the control topic numbered after them).
pub fn ingest(src: u32, offset: u64, input: Input, shards: u32) -> Forward {
    match input {
        Input::Event(ev) => Forward {
            shard: Stage::Id.shard(&ev, shards),
            env: Envelope::Event {
                src,
                seq: offset,
                ev,
                c: Carried::default(),
            },
        },
        Input::Control(ctl) => Forward {
            shard: Stage::Id.control_shard(&ctl, shards),
            env: Envelope::Control {
                src,
                seq: offset,
                ctl,
            },
        },
    }
}

/// Where a control record leaving a shard of `from` goes among the `shards` of the next stage.
/// Manual records follow their target (the card or terminal stage holds its locks). An
/// acknowledgement names only its command, so it goes to every shard of the stages that hold
/// locks (each ignores a command it did not send); one terminal shard passes it on, so each
/// card shard gets it once.
fn control_route(ctl: &Control, from: Stage, shard: u32, next: Stage, shards: u32) -> Vec<u32> {
    match &ctl.action {
        Action::Ack { .. } if matches!(next, Stage::Terminal | Stage::Card) => {
            (0..shards).collect()
        }
        Action::Ack { .. } if from == Stage::Terminal && shard != 0 => Vec::new(),
        _ => vec![next.control_shard(ctl, shards)],
    }
}

/// One stage shard: reorder by the sources' marks, drop repeats, run the stage's engine.
pub struct ShardTask {
    /// The stage it runs (`None`: every stage, a single instance's one task).
    pub stage: Option<Stage>,
    pub shard: u32,
    engine: Engine,
    order: Ordered<(Input, Carried)>,
    last_seq: Vec<Option<u64>>,
    next_seq: u64,
    /// Shards of the next stage.
    shards_out: u32,
    /// Repeated records dropped (after an upstream restart).
    pub repeats: u64,
}

/// Everything needed to resume a shard exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardSnapshot {
    pub stage: Option<Stage>,
    pub shard: u32,
    pub engine: EngineSnapshot,
    pub order: OrderedSnapshot<(Input, Carried)>,
    pub last_seq: Vec<Option<u64>>,
    pub next_seq: u64,
}

impl ShardTask {
    /// A fresh shard; `engine` is set to run `stage` only (every stage for `None`).
    pub fn new(
        stage: Option<Stage>,
        shard: u32,
        sources: u32,
        shards_out: u32,
        engine: Engine,
    ) -> Self {
        let mut engine = engine;
        engine.set_stage(stage);
        Self {
            stage,
            shard,
            engine,
            order: Ordered::new(sources as usize),
            last_seq: vec![None; sources as usize],
            next_seq: 0,
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
    ) -> Result<Self, RestoreError> {
        let order = Ordered::restore(snap.order, sources as usize)
            .map_err(|(was, now)| RestoreError::Sources { was, now })?;
        let mut t = Self::new(snap.stage, snap.shard, 0, shards_out, engine);
        t.order = order;
        t.last_seq = snap.last_seq;
        t.next_seq = snap.next_seq;
        Ok(t)
    }

    /// Forget source `src`'s promise (see [`crate::engine::order::Watermarks::forget`]).
    pub fn forget_source(&mut self, src: u32) {
        self.order.forget(src as usize)
    }

    pub fn snapshot(&self) -> ShardSnapshot {
        ShardSnapshot {
            stage: self.stage,
            shard: self.shard,
            engine: self.engine.snapshot(),
            order: self.order.snapshot(),
            last_seq: self.last_seq.clone(),
            next_seq: self.next_seq,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn watermark(&self) -> Option<EventTime> {
        self.order.watermark()
    }

    pub fn buffered(&self) -> usize {
        self.order.buffered()
    }

    /// This shard's promise to the next stage: its watermark, once it has one.
    pub fn source_mark(&self) -> Option<SourceMark> {
        self.watermark().map(|w| SourceMark {
            wm: Some(w),
            max_ts: Some(w),
            idle: false,
        })
    }

    /// This shard's mark for the next stage, as a record.
    pub fn mark(&self) -> Option<Envelope> {
        self.source_mark().map(|mark| Envelope::Mark {
            src: self.shard,
            mark,
        })
    }

    /// Accept one record; inputs released are processed, what goes on is appended to `fwd`,
    /// decisions to `d`. A record from a source this shard does not know is refused.
    pub fn accept(
        &mut self,
        env: Envelope,
        fwd: &mut Vec<Forward>,
        d: &mut Decisions,
    ) -> Result<(), ShardError> {
        let (src, seq, input, c) = match env {
            Envelope::Event { src, seq, ev, c } => (src, seq, Input::Event(ev), c),
            Envelope::Control { src, seq, ctl } => {
                (src, seq, Input::Control(ctl), Carried::default())
            }
            Envelope::Mark { src, mark } => {
                if !self.order.mark(src as usize, mark) {
                    return Err(ShardError::UnknownSource { what: "mark", src });
                }
                while let Some((input, c)) = self.order.next_ready() {
                    self.process(input, c, None, fwd, d);
                }
                if let Some(w) = self.order.watermark() {
                    self.engine.advance(w, d);
                }
                return Ok(());
            }
        };
        let last = self
            .last_seq
            .get_mut(src as usize)
            .ok_or(ShardError::UnknownSource { what: "input", src })?;
        if last.is_some_and(|l| seq <= l) {
            self.repeats += 1;
            return Ok(());
        }
        *last = Some(seq);
        if let Err(((input, c), wm)) = self.order.accept((input, c)) {
            self.engine.stats_mut().late += 1;
            self.process(input, c, Some(wm), fwd, d);
        }
        Ok(())
    }

    /// Process one input (`late`: it arrived behind this watermark) and pass it on.
    fn process(
        &mut self,
        input: Input,
        mut c: Carried,
        late: Option<EventTime>,
        fwd: &mut Vec<Forward>,
        d: &mut Decisions,
    ) {
        if !self.engine.process_input(&input, late, Some(&mut c), d) {
            return;
        }
        let (Some(stage), Some(next)) = (self.stage, self.stage.and_then(Stage::next)) else {
            return;
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        match input {
            Input::Event(ev) => fwd.push(Forward {
                shard: next.shard(&ev, self.shards_out),
                env: Envelope::Event {
                    src: self.shard,
                    seq,
                    ev,
                    c,
                },
            }),
            Input::Control(ctl) => {
                for shard in control_route(&ctl, stage, self.shard, next, self.shards_out) {
                    let env = Envelope::Control {
                        src: self.shard,
                        seq,
                        ctl: ctl.clone(),
                    };
                    fwd.push(Forward { shard, env });
                }
            }
        }
    }
}
