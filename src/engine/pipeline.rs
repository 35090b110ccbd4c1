//! Event-time ordering in front of the engine ([`super::order::Ordered`]): events are held
//! until the watermark passes them and then processed in (ts, id) order, so any arrival order
//! within the lateness gives the same decisions. An event older than the watermark on arrival
//! is late: it is counted and processed at once (never dropped), at stream time.
//!
//! Replay has one source, whose promise is its newest event time minus the allowed lateness
//! ([`Pipeline::push`]). The service puts the same component in front of its engine through
//! [`super::shard_task::ShardTask`], with one source per input partition.

use super::order::{Ordered, OrderedSnapshot, SourceMark};
use super::{Engine, EngineSnapshot, RestoreError};
use crate::control::Input;
use crate::decision::Decisions;
use crate::event::Event;
use crate::time::EventTime;
use serde::{Deserialize, Serialize};

/// Reorder buffer + engine. This is what sources feed.
pub struct Pipeline {
    engine: Engine,
    order: Ordered<Input>,
    /// Newest event time pushed (replay's one source).
    max_ts: Option<EventTime>,
}

/// Everything needed to resume a pipeline exactly: engine state and buffered events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineSnapshot {
    pub engine: EngineSnapshot,
    pub order: OrderedSnapshot<Input>,
    pub max_ts: Option<EventTime>,
}

impl Pipeline {
    /// A pipeline with one source (replay: [`Pipeline::push`]).
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            order: Ordered::new(1),
            max_ts: None,
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

    /// Accept one event of the single source and release what its watermark (the newest event
    /// time minus the allowed lateness) passes; decisions are appended to `out`.
    pub fn push(&mut self, ev: Event, out: &mut Decisions) {
        self.push_input(Input::Event(ev), out);
    }

    /// [`Pipeline::push`] for any input (an event or a control record).
    pub fn push_input(&mut self, input: Input, out: &mut Decisions) {
        let ts = input.ts();
        self.insert(input, out);
        let max = self.max_ts.map_or(ts, |m| m.max(ts));
        self.max_ts = Some(max);
        let lateness = self.engine.config().allowed_lateness;
        let wm = max.saturating_sub(lateness);
        self.order.mark(
            0,
            SourceMark {
                wm: Some(wm),
                max_ts: Some(max),
                idle: false,
            },
        );
        self.release(out);
    }

    /// Accept one input without moving the watermark. A late one is processed at once.
    fn insert(&mut self, input: Input, out: &mut Decisions) {
        if let Err((input, wm)) = self.order.accept(input) {
            self.engine.stats_mut().late += 1;
            self.engine.process_input(&input, Some(wm), None, out);
        }
    }

    /// Process, in order, every buffered event the watermark passes.
    fn release(&mut self, out: &mut Decisions) {
        while let Some(input) = self.order.next_ready() {
            self.engine.process_input(&input, None, None, out);
        }
        if let Some(w) = self.order.watermark() {
            self.engine.advance(w, out);
        }
    }

    /// End of input: release everything buffered.
    pub fn flush(&mut self, out: &mut Decisions) {
        while let Some(input) = self.order.next_any() {
            self.engine.process_input(&input, None, None, out);
        }
        // The end-of-input watermark, as scale-out's shards reach it when every source is idle.
        if let Some(max) = self.max_ts {
            self.engine
                .advance(max.saturating_add(crate::time::Span::ms(1)), out);
        }
    }

    pub fn snapshot(&self) -> PipelineSnapshot {
        PipelineSnapshot {
            engine: self.engine.snapshot(),
            order: self.order.snapshot(),
            max_ts: self.max_ts,
        }
    }

    /// Resume from a snapshot's ordering state, with its engine restored by the caller (who
    /// owns rules and models) from the snapshot's engine part.
    pub fn restore(
        engine: Engine,
        order: OrderedSnapshot<Input>,
        max_ts: Option<EventTime>,
        sources: usize,
    ) -> Result<Self, RestoreError> {
        let order = Ordered::restore(order, sources)
            .map_err(|(was, now)| RestoreError::Sources { was, now })?;
        Ok(Self {
            engine,
            order,
            max_ts,
        })
    }
}
