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
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

/// An event buffered out of order (in the heap), with its arrival number. Ordered by (ts, id),
/// then arrival: the release order is deterministic, and events with equal (ts, id)
/// (duplicates) go out first come first.
#[derive(Debug)]
struct Pending {
    seq: u64,
    ev: Event,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.ev.ts, &self.ev.id, self.seq).cmp(&(o.ev.ts, &o.ev.id, o.seq))
    }
}

/// Reorder buffer + engine. This is what sources feed.
///
/// The buffer is two sorted parts: `run`, the events that arrived in order (each at or after
/// the one before it, the usual case, so pushing and releasing are a deque's ends and an event
/// is copied once, on the way in), and `heap`, the ones that arrived out of order. Release takes the
/// smaller head of the two, so events go out in exactly the order of one sorted buffer.
pub struct Pipeline {
    engine: Engine,
    run: VecDeque<Event>,
    /// Arrival numbers of the events in `run` (kept apart so an event is copied into the run
    /// as it is, not first into a wrapper).
    run_seq: VecDeque<u64>,
    heap: BinaryHeap<Reverse<Pending>>,
    /// Arrival number of the next event.
    seq: u64,
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
            run: VecDeque::new(),
            run_seq: VecDeque::new(),
            heap: BinaryHeap::new(),
            seq: 0,
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
        self.run.len() + self.heap.len()
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
            self.engine.process_late(&ev, self.watermark, out);
            return;
        }
        if ev.ts > self.max_ts {
            self.max_ts = ev.ts;
        }
        self.buffer(ev);
    }

    fn buffer(&mut self, ev: Event) {
        let seq = self.seq;
        self.seq += 1;
        // `seq` only grows, so (ts, id) at or after the run's last keeps the run sorted.
        match self.run.back() {
            Some(b) if (ev.ts, &ev.id) < (b.ts, &b.id) => {
                self.heap.push(Reverse(Pending { seq, ev }))
            }
            _ => {
                self.run.push_back(ev);
                self.run_seq.push_back(seq);
            }
        }
    }

    /// Move the watermark forward to `wm` (never back) and release what it passes.
    pub fn advance_to(&mut self, wm: Millis, out: &mut Decisions) {
        if wm > self.watermark {
            self.watermark = wm;
        }
        self.release(Some(self.watermark), out);
    }

    /// End of input: release everything buffered.
    pub fn flush(&mut self, out: &mut Decisions) {
        self.release(None, out);
    }

    /// Process buffered events in order while the next one is older than `below` (all: None).
    fn release(&mut self, below: Option<Millis>, out: &mut Decisions) {
        loop {
            let (head, from_run) = match (self.run.front(), self.heap.peek()) {
                (None, None) => return,
                (Some(a), None) => (a, true),
                (None, Some(Reverse(b))) => (&b.ev, false),
                (Some(a), Some(Reverse(b)))
                    if (a.ts, &a.id, self.run_seq[0]) <= (b.ev.ts, &b.ev.id, b.seq) =>
                {
                    (a, true)
                }
                (Some(_), Some(Reverse(b))) => (&b.ev, false),
            };
            if below.is_some_and(|w| head.ts >= w) {
                return;
            }
            // Processed in place, then dropped: the event is not moved out first.
            self.engine.process(head, out);
            if from_run {
                // Dropped where it lies (`pop_front` would copy it out first).
                self.run.drain(..1);
                self.run_seq.pop_front();
            } else {
                self.heap.pop();
            }
        }
    }

    pub fn snapshot(&self) -> PipelineSnapshot {
        let mut pending: Vec<(&Event, u64)> =
            self.run.iter().zip(self.run_seq.iter().copied()).collect();
        pending.extend(self.heap.iter().map(|Reverse(p)| (&p.ev, p.seq)));
        pending.sort_unstable_by(|(a, x), (b, y)| (a.ts, &a.id, x).cmp(&(b.ts, &b.id, y)));
        PipelineSnapshot {
            engine: self.engine.snapshot(),
            pending: pending.into_iter().map(|(e, _)| e.clone()).collect(),
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
        let mut p = Self::new(engine);
        p.max_ts = max_ts;
        p.watermark = watermark;
        for ev in snap_pending {
            p.buffer(ev);
        }
        p
    }
}
