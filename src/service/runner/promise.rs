//! What a control partition may promise the watermark.
//!
//! A transactions partition promises by its own newest event (less the lateness): the switch
//! writes each partition in event-time order. A control partition cannot: its records are
//! sparse and come from other producers (the switch's acknowledgements, the console). Treating
//! it as idle as soon as it was caught up let the transactions carry the watermark past a
//! control record that was already in the topic but not yet fetched (a release applied after
//! the lock it released, an acknowledgement after its deadline): live and replay disagreed.
//!
//! So its promise is taken from the transactions. Once the partition is confirmed read up to
//! the high watermark asked for at instant `A`, every control record written before `A` has
//! been processed; and a producer that keeps the control contract (a control record is written
//! before any transaction stamped more than `allowed_lateness` after it, README "Control
//! records") writes nothing after `A` older than the newest transaction processed before `A`,
//! less the lateness. [`InputTimes`] remembers when each newest transaction time was reached,
//! so the promise can be read at `A`. The cost: the watermark follows the transactions one
//! confirmation behind (the control partitions' high watermarks are asked for every 20 ms).

use crate::time::EventTime;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long the history goes back: control partitions' high watermarks are asked for every
/// 20 ms, so an older confirmation is stale and the next one will do.
const HORIZON: Duration = Duration::from_secs(10);
/// At most one entry per this much time: the loop may pass thousands of times a second, and a
/// skipped entry only makes a promise read between two entries a little older (safe).
const GRAIN: Duration = Duration::from_millis(5);

/// The newest transaction time this instance had processed, by instant.
#[derive(Debug)]
pub struct InputTimes {
    seen: VecDeque<(Instant, EventTime)>,
}

impl InputTimes {
    /// Start with what the restored checkpoint had processed (before `now`).
    pub fn new(now: Instant, newest: Option<EventTime>) -> Self {
        let mut t = Self {
            seen: VecDeque::new(),
        };
        t.note(now, newest);
        t
    }

    /// By `now`, transactions up to `newest` have been processed.
    pub fn note(&mut self, now: Instant, newest: Option<EventTime>) {
        let Some(newest) = newest else { return };
        if let Some(&(at, ts)) = self.seen.back() {
            if ts >= newest || now.duration_since(at) < GRAIN {
                return;
            }
        }
        self.seen.push_back((now, newest));
        // Keep one entry at or before the horizon, so a confirmation just inside it is read.
        while self.seen.len() > 1 && now.duration_since(self.seen[1].0) > HORIZON {
            self.seen.pop_front();
        }
    }

    /// The newest transaction time processed by `asked`: `None` when nothing known was
    /// processed by then.
    pub fn at(&self, asked: Instant) -> Option<EventTime> {
        self.seen
            .iter()
            .rev()
            .find(|(at, _)| *at <= asked)
            .map(|&(_, ts)| ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn et(ms: i64) -> Option<EventTime> {
        Some(EventTime::from_ms(ms))
    }

    #[test]
    fn a_promise_is_read_at_the_instant_the_high_watermark_was_asked_for() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = InputTimes::new(t0, et(1_000));
        t.note(ms(10), et(2_000));
        t.note(ms(12), et(9_000)); // within the grain: not noted (a later entry carries it)
        t.note(ms(20), et(3_000));
        t.note(ms(30), et(2_500)); // older than what was seen: nothing new
        assert_eq!(
            t.at(t0 - Duration::from_millis(1)),
            None,
            "asked before anything known"
        );
        assert_eq!(t.at(t0), et(1_000));
        assert_eq!(t.at(ms(9)), et(1_000));
        assert_eq!(
            t.at(ms(15)),
            et(2_000),
            "9_000 was processed, but not noted by then"
        );
        assert_eq!(t.at(ms(40)), et(3_000));
    }

    #[test]
    fn history_is_bounded_and_keeps_one_entry_behind_the_horizon() {
        let t0 = Instant::now();
        let mut t = InputTimes::new(t0, et(0));
        for i in 1..=5_000u64 {
            t.note(t0 + Duration::from_millis(i * 10), et(i as i64));
        }
        assert!(t.seen.len() <= 1_002, "{}", t.seen.len());
        let end = t0 + Duration::from_millis(50_000);
        assert_eq!(t.at(end), et(5_000));
        assert_eq!(t.at(end - HORIZON), et(4_000));
        assert_eq!(
            t.at(t0),
            None,
            "forgotten: the next confirmation will be newer"
        );
    }

    #[test]
    fn nothing_processed_promises_nothing() {
        let t0 = Instant::now();
        let mut t = InputTimes::new(t0, None);
        t.note(t0 + Duration::from_millis(50), None);
        assert_eq!(t.at(t0 + Duration::from_secs(1)), None);
    }
}
