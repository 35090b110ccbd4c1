//! One partition's read position, checked record by record: the pure logic behind
//! [`super::Positions`] (no Kafka, no clock: the caller passes the time).
//!
//! Why it exists: a restored task asks the broker for its checkpoint's offset, which can fall
//! inside a record batch. Apache Kafka answers with the containing batch (the client drops the
//! records before the offset); tansu 0.6 answers with the *following* batch (or nothing, when
//! the offset is in the last one), so the rest of the batch would be skipped without a word.
//! Here the first offset delivered after a seek is compared with the resume point: past it,
//! the cursor seeks further back (doubling the distance, never below 0) until the broker
//! starts at or before it, and what lies below the resume point is discarded (the checkpoint
//! already covers it). Every later offset is checked against the one expected; offsets the
//! broker skips while reading contiguously, or that are missing at the start of the log, are
//! a genuine gap (compaction, transaction markers, aborted transactions, retention).

use std::time::{Duration, Instant};

/// First distance of a re-seek back from the resume point. A switch's producer batches tens
/// to hundreds of records per partition (linger 20 ms); starting at 32 finds the batch start
/// in a few doublings without re-reading much.
pub const FIRST_STEP_BACK: i64 = 32;

/// What the loop does with one delivered record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not processed yet: process it.
    Process,
    /// Below the resume point (the checkpoint covers it): drop it.
    Discard,
    /// The broker started past the resume point: drop the record and seek to this offset.
    SeekTo(i64),
}

/// Something the loop should report about a delivered record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// Offsets `from..to` at or after the resume point will not be delivered.
    Gap { from: i64, to: i64 },
    /// The broker delivered `got`, below the offset `asked` for after a seek: it reset the
    /// position (the log was truncated or recreated); records below the resume point are
    /// still treated as processed.
    Rewound { asked: i64, got: i64 },
}

/// Where the reads stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Positioned at `asked` (by assignment or seek; `None`: the log's start) at `since`;
    /// nothing delivered since.
    Seeking { asked: Option<i64>, since: Instant },
    /// Reading contiguously: the broker should deliver `expected` next.
    Reading { expected: i64 },
}

/// One partition's position.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// The next offset to process; everything below it is processed. `None`: no checkpoint,
    /// so whatever the broker delivers first is where processing starts.
    next: Option<i64>,
    state: State,
    /// Distance back from `next` of the next re-seek.
    step_back: i64,
}

impl Cursor {
    /// A partition just positioned (assigned or sought) at `next` (`None`: the beginning).
    pub fn new(next: Option<i64>, now: Instant) -> Self {
        Self {
            next,
            state: State::Seeking {
                asked: next,
                since: now,
            },
            step_back: FIRST_STEP_BACK,
        }
    }

    /// The next offset to process (the checkpoint position), if known.
    pub fn next(&self) -> Option<i64> {
        self.next
    }

    /// Waiting for the first record after a seek.
    pub fn seeking(&self) -> bool {
        matches!(self.state, State::Seeking { .. })
    }

    /// Judge the record at `offset`, delivered at `now`.
    pub fn accept(&mut self, offset: i64, now: Instant) -> (Verdict, Option<Note>) {
        match self.state {
            State::Seeking { asked, .. } => self.first(asked, offset, now),
            State::Reading { expected } => self.following(expected, offset),
        }
    }

    /// The first record after a seek to `asked`.
    fn first(&mut self, asked: Option<i64>, offset: i64, now: Instant) -> (Verdict, Option<Note>) {
        let rewound = asked
            .filter(|a| offset < *a)
            .map(|asked| Note::Rewound { asked, got: offset });
        let Some(next) = self.next else {
            self.state = State::Reading {
                expected: offset + 1,
            };
            self.next = Some(offset + 1);
            return (Verdict::Process, rewound);
        };
        if offset <= next {
            self.state = State::Reading {
                expected: offset + 1,
            };
            return (self.take(offset), rewound);
        }
        // Past the resume point. Unless the seek already went to the log's start, the
        // broker may have started at the batch after the one holding `next`: look further
        // back.
        if asked.is_some_and(|a| a > 0) {
            return (Verdict::SeekTo(self.step_back(now)), None);
        }
        self.state = State::Reading {
            expected: offset + 1,
        };
        self.next = Some(offset + 1);
        let gap = Note::Gap {
            from: next,
            to: offset,
        };
        (Verdict::Process, Some(gap))
    }

    /// A record after the first: contiguous, or a gap the broker will not fill.
    fn following(&mut self, expected: i64, offset: i64) -> (Verdict, Option<Note>) {
        if offset < expected {
            return (Verdict::Discard, None); // delivered again: the position never goes back
        }
        self.state = State::Reading {
            expected: offset + 1,
        };
        let from = self.next.map_or(expected, |n| n.max(expected));
        let gap = (offset > from).then_some(Note::Gap { from, to: offset });
        (self.take(offset), gap)
    }

    /// Process `offset` if it is at or past the resume point.
    fn take(&mut self, offset: i64) -> Verdict {
        match self.next {
            Some(n) if offset < n => Verdict::Discard,
            _ => {
                self.next = Some(offset + 1);
                Verdict::Process
            }
        }
    }

    /// Seek further back from the resume point; the offset to seek to.
    fn step_back(&mut self, now: Instant) -> i64 {
        let next = self.next.unwrap_or(0);
        let to = next.saturating_sub(self.step_back).max(0);
        self.step_back = self.step_back.saturating_mul(2);
        self.state = State::Seeking {
            asked: Some(to),
            since: now,
        };
        to
    }

    /// A seek that delivered nothing for `after` while the partition holds records at or past
    /// the resume point (`high`, its high watermark): tansu answers a fetch inside the last
    /// batch with nothing at all. The offset to seek back to, if so.
    pub fn stalled(&mut self, now: Instant, high: i64, after: Duration) -> Option<i64> {
        let State::Seeking {
            asked: Some(asked),
            since,
        } = self.state
        else {
            return None;
        };
        let next = self.next?;
        let waited = now.saturating_duration_since(since) >= after;
        (waited && high > next && asked > 0).then(|| self.step_back(now))
    }
}

#[cfg(test)]
#[path = "cursor_tests.rs"]
mod tests;
