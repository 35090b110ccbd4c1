//! Several files replayed as one stream in event-time order: a k-way merge on the head event
//! of each file (each file is assumed roughly ordered; the pipeline's reorder buffer absorbs
//! disorder within the allowed lateness); control records are ordered with the events. Rejects
//! and blank lines pass through as soon as they are read.

use super::Item;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

type Src = Box<dyn Iterator<Item = Item> + Send>;

/// Merges sources by the `ts` of their next event; ties go to the earlier file.
pub struct MergedSource {
    sources: Vec<Src>,
    heads: BinaryHeap<Reverse<(crate::time::EventTime, usize)>>,
    held: Vec<Option<Item>>,
    pending_rejects: std::collections::VecDeque<Item>,
}

impl MergedSource {
    pub fn new(sources: Vec<Src>) -> Self {
        let n = sources.len();
        let mut m = Self {
            sources,
            heads: BinaryHeap::new(),
            held: (0..n).map(|_| None).collect(),
            pending_rejects: Default::default(),
        };
        for i in 0..n {
            m.refill(i);
        }
        m
    }

    fn refill(&mut self, i: usize) {
        for item in self.sources[i].by_ref() {
            let ts = match &item {
                Item::Event(ev) => ev.ts,
                Item::Control(c) => c.ts,
                _ => {
                    self.pending_rejects.push_back(item);
                    continue;
                }
            };
            self.heads.push(Reverse((ts, i)));
            self.held[i] = Some(item);
            return;
        }
    }
}

impl Iterator for MergedSource {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        if let Some(r) = self.pending_rejects.pop_front() {
            return Some(r);
        }
        let Reverse((_, i)) = self.heads.pop()?;
        let item = self.held[i].take();
        self.refill(i);
        item
    }
}
