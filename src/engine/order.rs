//! Event-time ordering: the one component behind replay's pipeline, the service and every
//! scale-out shard.
//!
//! - [`Watermarks`]: the watermark over N sources (input partitions, upstream shards, or the
//!   single stream of a replay). Each source promises "nothing more before `wm`" with a
//!   [`SourceMark`]; the watermark is the minimum over the live sources, nothing until every
//!   live source has spoken, and just past the newest event seen once every source is idle.
//! - [`Reorder`]: the buffer the watermark releases, in (ts, id, arrival) order. Events that
//!   arrive in order (the usual case) go to a deque, the others to a heap; release takes the
//!   smaller head of the two, so the order is exactly that of one sorted buffer.

use crate::control::Input;
use crate::event::Event;
use crate::time::{EventTime, Span};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

/// A source's promise: no more events before `wm` (unless late). An idle source (caught up and
/// silent) stops holding the watermark back. Both times serialise as the bare numbers earlier
/// checkpoints and stage topics carried (`i64::MIN` for none).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SourceMark {
    /// None only for an idle source that never saw an event (it promises nothing; a live
    /// source without a promise sends no mark).
    #[serde(with = "crate::time::opt_min")]
    pub wm: Option<EventTime>,
    /// The newest event time the source has seen (none yet).
    #[serde(with = "crate::time::opt_min")]
    pub max_ts: Option<EventTime>,
    #[serde(default)]
    pub idle: bool,
}

/// The watermark over a fixed set of sources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Watermarks {
    marks: Vec<Option<SourceMark>>,
}

impl Watermarks {
    pub fn new(sources: usize) -> Self {
        Self {
            marks: vec![None; sources],
        }
    }

    pub fn sources(&self) -> usize {
        self.marks.len()
    }

    pub fn marks(&self) -> &[Option<SourceMark>] {
        &self.marks
    }

    /// Record source `src`'s mark; a mark never moves a source back. False for an unknown
    /// source.
    pub fn mark(&mut self, src: usize, mark: SourceMark) -> bool {
        let Some(slot) = self.marks.get_mut(src) else {
            return false;
        };
        let mut m = mark;
        if let Some(old) = slot {
            m.wm = m.wm.max(old.wm);
            m.max_ts = m.max_ts.max(old.max_ts);
        }
        *slot = Some(m);
        true
    }

    /// Forget source `src`'s promise: nothing passes it until it speaks again (a restarted
    /// source whose promise cannot be trusted across the restart).
    pub fn forget(&mut self, src: usize) {
        if let Some(slot) = self.marks.get_mut(src) {
            *slot = None;
        }
    }

    /// The watermark the sources allow: the minimum over live sources; when every source is
    /// idle, just past the newest event any of them saw. `None` while a live source has not
    /// spoken (or none has seen an event).
    pub fn allowed(&self) -> Option<EventTime> {
        let mut live: Option<EventTime> = None;
        let mut newest: Option<EventTime> = None;
        for m in &self.marks {
            let m = (*m)?;
            newest = newest.max(m.max_ts);
            if !m.idle {
                let wm = m.wm?;
                live = Some(live.map_or(wm, |l| l.min(wm)));
            }
        }
        match live {
            Some(l) => Some(l),
            None => newest.map(|n| n.saturating_add(Span::ms(1))),
        }
    }
}

/// What the reorder buffer orders: an event time and an id.
pub trait Timed {
    fn ts(&self) -> EventTime;
    fn id(&self) -> &CompactString;
}

impl Timed for Event {
    fn ts(&self) -> EventTime {
        self.ts
    }
    fn id(&self) -> &CompactString {
        &self.id
    }
}

impl Timed for Input {
    fn ts(&self) -> EventTime {
        Input::ts(self)
    }
    fn id(&self) -> &CompactString {
        Input::id(self)
    }
}

impl<T: Timed, C> Timed for (T, C) {
    fn ts(&self) -> EventTime {
        self.0.ts()
    }
    fn id(&self) -> &CompactString {
        self.0.id()
    }
}

/// An item buffered out of order, with its arrival number: equal (ts, id) go out first come
/// first served, so the release order is deterministic.
#[derive(Debug)]
struct Pending<T> {
    seq: u64,
    item: T,
}

impl<T: Timed> PartialEq for Pending<T> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl<T: Timed> Eq for Pending<T> {}
impl<T: Timed> PartialOrd for Pending<T> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<T: Timed> Ord for Pending<T> {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.item.ts(), self.item.id(), self.seq).cmp(&(o.item.ts(), o.item.id(), o.seq))
    }
}

/// The reorder buffer (see the module docs).
#[derive(Debug)]
pub struct Reorder<T: Timed> {
    run: VecDeque<T>,
    /// Arrival numbers of the items in `run` (kept apart so an item is copied in as it is).
    run_seq: VecDeque<u64>,
    heap: BinaryHeap<Reverse<Pending<T>>>,
    seq: u64,
}

impl<T: Timed> Default for Reorder<T> {
    fn default() -> Self {
        Self {
            run: VecDeque::new(),
            run_seq: VecDeque::new(),
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T: Timed> Reorder<T> {
    pub fn len(&self) -> usize {
        self.run.len() + self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, item: T) {
        let seq = self.seq;
        self.seq += 1;
        // `seq` only grows, so (ts, id) at or after the run's last keeps the run sorted.
        match self.run.back() {
            Some(b) if (item.ts(), item.id()) < (b.ts(), b.id()) => {
                self.heap.push(Reverse(Pending { seq, item }))
            }
            _ => {
                self.run.push_back(item);
                self.run_seq.push_back(seq);
            }
        }
    }

    /// The next item in order, if it is older than `below` (any, for `None`).
    pub fn pop_before(&mut self, below: Option<EventTime>) -> Option<T> {
        let from_run = match (self.run.front(), self.heap.peek()) {
            (None, None) => return None,
            (Some(a), None) => (a.ts(), true),
            (None, Some(Reverse(b))) => (b.item.ts(), false),
            (Some(a), Some(Reverse(b))) => {
                if (a.ts(), a.id(), self.run_seq[0]) <= (b.item.ts(), b.item.id(), b.seq) {
                    (a.ts(), true)
                } else {
                    (b.item.ts(), false)
                }
            }
        };
        if below.is_some_and(|w| from_run.0 >= w) {
            return None;
        }
        if from_run.1 {
            self.run_seq.pop_front();
            self.run.pop_front()
        } else {
            self.heap.pop().map(|Reverse(p)| p.item)
        }
    }

    /// Every buffered item in release order (for a snapshot).
    pub fn sorted(&self) -> Vec<&T> {
        let mut v: Vec<(&T, u64)> = self.run.iter().zip(self.run_seq.iter().copied()).collect();
        v.extend(self.heap.iter().map(|Reverse(p)| (&p.item, p.seq)));
        v.sort_unstable_by(|(a, x), (b, y)| (a.ts(), a.id(), x).cmp(&(b.ts(), b.id(), y)));
        v.into_iter().map(|(t, _)| t).collect()
    }
}

/// The reorder buffer and the watermark of its sources, together: what replay's pipeline, the
/// service and every shard put in front of their engine. Items older than the watermark on
/// arrival are *late*: handed back to be processed at once (never dropped).
#[derive(Debug)]
pub struct Ordered<T: Timed> {
    buf: Reorder<T>,
    marks: Watermarks,
    /// How far release has gone: nothing before it is still buffered. `None` until the sources
    /// first allow anything.
    watermark: Option<EventTime>,
}

/// An [`Ordered`] as a checkpoint keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderedSnapshot<T> {
    pub pending: Vec<T>,
    pub marks: Watermarks,
    pub watermark: Option<EventTime>,
}

impl<T: Timed + Clone> Ordered<T> {
    pub fn new(sources: usize) -> Self {
        Self {
            buf: Reorder::default(),
            marks: Watermarks::new(sources),
            watermark: None,
        }
    }

    pub fn watermark(&self) -> Option<EventTime> {
        self.watermark
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn marks(&self) -> &Watermarks {
        &self.marks
    }

    /// Take `item`: buffered, or handed back with the watermark it is late against.
    pub fn accept(&mut self, item: T) -> Result<(), (T, EventTime)> {
        match self.watermark {
            Some(w) if item.ts() < w => Err((item, w)),
            _ => {
                self.buf.push(item);
                Ok(())
            }
        }
    }

    /// Record source `src`'s promise; false for an unknown source.
    pub fn mark(&mut self, src: usize, m: SourceMark) -> bool {
        self.marks.mark(src, m)
    }

    /// See [`Watermarks::forget`]. The watermark already reached stays.
    pub fn forget(&mut self, src: usize) {
        self.marks.forget(src)
    }

    /// Move the watermark as far as the sources allow (never back), then hand out the next
    /// item it passes, in order. Call until `None`.
    pub fn next_ready(&mut self) -> Option<T> {
        if let Some(a) = self.marks.allowed() {
            if self.watermark.is_none_or(|w| a > w) {
                self.watermark = Some(a);
            }
        }
        let w = self.watermark?;
        self.buf.pop_before(Some(w))
    }

    /// End of input: the next buffered item, whatever the watermark.
    pub fn next_any(&mut self) -> Option<T> {
        self.buf.pop_before(None)
    }

    pub fn snapshot(&self) -> OrderedSnapshot<T> {
        OrderedSnapshot {
            pending: self.buf.sorted().into_iter().cloned().collect(),
            marks: self.marks.clone(),
            watermark: self.watermark,
        }
    }

    /// Resume from a snapshot taken with the same number of sources; `Err` with the two
    /// counts otherwise.
    pub fn restore(snap: OrderedSnapshot<T>, sources: usize) -> Result<Self, (usize, usize)> {
        if snap.marks.sources() != sources {
            return Err((snap.marks.sources(), sources));
        }
        let mut o = Self::new(sources);
        o.marks = snap.marks;
        o.watermark = snap.watermark;
        for item in snap.pending {
            o.buf.push(item);
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq)]
    struct It(EventTime, CompactString, u32);

    fn t(ms: i64) -> EventTime {
        EventTime::from_ms(ms)
    }
    impl Timed for It {
        fn ts(&self) -> EventTime {
            self.0
        }
        fn id(&self) -> &CompactString {
            &self.1
        }
    }

    proptest! {
        /// Any pushes, released below any rising watermarks, give exactly the order of one
        /// sorted buffer (stable for equal keys).
        #[test]
        fn releases_like_one_sorted_buffer(
            items in prop::collection::vec((0i64..50, 0u8..4), 0..200),
            cuts in prop::collection::vec(0i64..60, 0..20),
        ) {
            let mut r = Reorder::default();
            let mut all: Vec<It> = Vec::new();
            let mut out = Vec::new();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let per = items.len() / (cuts.len() + 1) + 1;
            for (i, (ts, id)) in items.iter().enumerate() {
                let it = It(t(*ts), CompactString::from(format!("e{id}")), i as u32);
                all.push(it.clone());
                r.push(it);
                if i % per == per - 1 {
                    if let Some(c) = cuts.pop() {
                        while let Some(x) = r.pop_before(Some(t(c))) { out.push(x); }
                    }
                }
            }
            prop_assert_eq!(r.sorted().len(), r.len());
            while let Some(x) = r.pop_before(None) { out.push(x); }
            // Released items come out sorted within each release; overall each is released
            // only once and nothing is lost.
            prop_assert_eq!(out.len(), all.len());
            let mut want = all.clone();
            want.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
            let mut got = out.clone();
            got.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
            prop_assert_eq!(got, want);
        }

        /// Released in one go below the same watermark, the order is the sorted order.
        #[test]
        fn one_release_is_sorted(items in prop::collection::vec((0i64..20, 0u8..3), 0..100)) {
            let mut r = Reorder::default();
            let mut want = Vec::new();
            for (i, (ts, id)) in items.iter().enumerate() {
                let it = It(t(*ts), CompactString::from(format!("e{id}")), i as u32);
                want.push(it.clone());
                r.push(it);
            }
            want.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
            let mut got = Vec::new();
            while let Some(x) = r.pop_before(None) { got.push(x); }
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn the_watermark_waits_for_every_live_source_and_ignores_idle_ones() {
        let m = |wm: i64, idle| SourceMark {
            wm: Some(t(wm)),
            max_ts: Some(t(wm + 5)),
            idle,
        };
        let mut w = Watermarks::new(3);
        assert_eq!(w.allowed(), None);
        w.mark(0, m(100, false));
        w.mark(1, m(50, false));
        assert_eq!(w.allowed(), None, "source 2 has not spoken");
        w.mark(2, m(200, false));
        assert_eq!(w.allowed(), Some(t(50)));
        w.mark(1, m(40, false));
        assert_eq!(w.allowed(), Some(t(50)), "a mark never moves a source back");
        w.mark(1, m(60, true));
        assert_eq!(
            w.allowed(),
            Some(t(100)),
            "an idle source stops holding it back"
        );
        w.mark(0, m(100, true));
        w.mark(2, m(200, true));
        assert_eq!(
            w.allowed(),
            Some(t(206)),
            "all idle: just past the newest event"
        );
        assert!(!w.mark(7, m(1, false)));
    }

    #[test]
    fn a_forgotten_source_holds_release_until_it_speaks_again() {
        let m = |wm: i64, idle| SourceMark {
            wm: Some(t(wm)),
            max_ts: Some(t(wm)),
            idle,
        };
        let mut o: Ordered<It> = Ordered::new(2);
        o.mark(0, m(100, false));
        o.mark(1, m(0, true)); // an idle control partition, as a checkpoint kept it
        assert!(o.accept(It(t(150), "a".into(), 0)).is_ok());
        assert_eq!(o.next_ready(), None);
        assert_eq!(o.watermark(), Some(t(100)));
        o.forget(1);
        o.mark(0, m(300, false));
        assert_eq!(o.next_ready(), None, "source 1 has not spoken since");
        assert_eq!(o.watermark(), Some(t(100)), "the watermark reached stays");
        o.mark(1, m(200, false));
        assert_eq!(o.next_ready().map(|i| i.0), Some(t(150)));
        assert_eq!(o.watermark(), Some(t(200)));
    }
}
