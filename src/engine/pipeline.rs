//! Event-time ordering in front of the engine: a reorder buffer released by the watermark.
//!
//! The watermark is the newest event time seen minus the allowed lateness. Events are held
//! until the watermark passes them and then processed in (ts, id) order, so any arrival order
//! within the lateness gives the same decisions. An event older than the watermark on arrival
//! is late: it is counted and processed at once (never dropped). The streaming edge may also
//! advance the watermark explicitly (e.g. the minimum over its partitions).

use super::{Engine, EngineSnapshot};
use crate::decision::Decisions;
use crate::event::{Event, Millis};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Heap entry ordered by (ts, id): deterministic regardless of arrival order.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending(Event);

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.0.ts == o.0.ts && self.0.id == o.0.id
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0.ts, &self.0.id).cmp(&(o.0.ts, &o.0.id))
    }
}

/// Reorder buffer + engine. This is what sources feed.
pub struct Pipeline {
    engine: Engine,
    heap: BinaryHeap<Reverse<Pending>>,
    max_ts: Millis,
    watermark: Millis,
}

/// Everything needed to resume a pipeline exactly: engine state and buffered events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineSnapshot {
    pub engine: EngineSnapshot,
    pub pending: Vec<Event>,
    pub max_ts: Millis,
    pub watermark: Millis,
}

impl Pipeline {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            heap: BinaryHeap::new(),
            max_ts: Millis::MIN,
            watermark: Millis::MIN,
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

    /// Accept one event; decisions for every event released are appended to `out`.
    pub fn push(&mut self, ev: Event, out: &mut Decisions) {
        self.insert(ev, out);
        let wm = self
            .max_ts
            .saturating_sub(self.engine.config().allowed_lateness);
        self.advance_to(wm, out);
    }

    /// Accept one event without moving the watermark (the streaming edge advances it from its
    /// per-partition watermarks). A late event is processed at once.
    pub fn insert(&mut self, ev: Event, out: &mut Decisions) {
        if ev.ts < self.watermark {
            self.engine.stats_mut().late += 1;
            self.engine.process(&ev, out);
            return;
        }
        if ev.ts > self.max_ts {
            self.max_ts = ev.ts;
        }
        self.heap.push(Reverse(Pending(ev)));
    }

    /// Move the watermark forward to `wm` (never back) and release what it passes.
    pub fn advance_to(&mut self, wm: Millis, out: &mut Decisions) {
        if wm > self.watermark {
            self.watermark = wm;
        }
        while self
            .heap
            .peek()
            .is_some_and(|Reverse(p)| p.0.ts < self.watermark)
        {
            let Reverse(Pending(ev)) = self.heap.pop().expect("peeked");
            self.engine.process(&ev, out);
        }
    }

    /// End of input: release everything buffered.
    pub fn flush(&mut self, out: &mut Decisions) {
        while let Some(Reverse(Pending(ev))) = self.heap.pop() {
            self.engine.process(&ev, out);
        }
    }

    pub fn snapshot(&self) -> PipelineSnapshot {
        let mut pending: Vec<Event> = self.heap.iter().map(|Reverse(p)| p.0.clone()).collect();
        pending.sort_by(|a, b| (a.ts, &a.id).cmp(&(b.ts, &b.id)));
        PipelineSnapshot {
            engine: self.engine.snapshot(),
            pending,
            max_ts: self.max_ts,
            watermark: self.watermark,
        }
    }

    pub fn restore(
        engine: Engine,
        snap_pending: Vec<Event>,
        max_ts: Millis,
        watermark: Millis,
    ) -> Self {
        Self {
            engine,
            heap: snap_pending
                .into_iter()
                .map(|e| Reverse(Pending(e)))
                .collect(),
            max_ts,
            watermark,
        }
    }
}
