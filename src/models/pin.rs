//! The terminal PIN model's streaming state: per terminal, its PIN attempts and wrong-PIN
//! *episodes* over the trailing window, whether each episode was resolved by the same card's
//! verified PIN soon after, and daily counts over the last weeks (the terminal's own normal,
//! learnt as the stream goes, so a terminal never seen in training still has a baseline).
//!
//! Definitions (the batch side in `batch.rs` computes the same from whole histories):
//! - a *PIN attempt* is an auth, pre-auth or transfer with a PIN entered ([`Event::pin_attempt`]);
//!   a wrong PIN is one answered `55`, a verified PIN one answered `00`, `51`, `61` or `65`;
//! - a wrong PIN starts an *episode* unless the same card had a wrong PIN at this terminal
//!   within the window before it (one customer mistyping twice is one episode);
//! - an episode is *resolved* when the same card's verified PIN at this terminal follows it
//!   within `resolve` (a mistype, then the right PIN); until then it counts as unresolved, and
//!   once `resolve` has passed without one it is unresolved for good (probing, a garbling pad,
//!   a customer giving up); a wrong PIN is scored on the earlier episodes' state, its own
//!   resolution being unknown yet;
//! - a day's counts are its attempts and episodes (by the day they happened) and its final
//!   unresolved episodes (by the day their `resolve` ran out), days in UTC.

use crate::event::Event;
use crate::keyed::key_hash;
use crate::time::{EventTime, Span};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// One terminal's PIN history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TermPin {
    /// PIN attempts within the window (event times).
    attempts: VecDeque<EventTime>,
    /// Wrong PINs within the window (and episodes awaiting their resolution).
    wrong: VecDeque<WrongPin>,
    /// Today's counts inline (every attempt touches them), and the earlier days' counts,
    /// oldest first, for the last `base_days` days.
    #[serde(default)]
    today: DayPin,
    days: VecDeque<DayPin>,
    last: EventTime,
    /// Episodes awaiting their resolution (so most attempts skip the scan for them).
    #[serde(default)]
    open: u32,
}

/// A wrong PIN at the terminal.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WrongPin {
    ts: EventTime,
    card: u64,
    /// Starts an episode.
    new: bool,
    /// A verified PIN of the same card followed within `resolve`.
    resolved: bool,
    /// Its `resolve` has run out (only episodes are ever open).
    closed: bool,
    id: CompactString,
}

/// One day's counts at a terminal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DayPin {
    pub day: i64,
    pub attempts: u32,
    pub episodes: u32,
    pub unresolved: u32,
}

impl DayPin {
    /// The totals of `days` and how many of them had PIN attempts: a terminal's baseline
    /// (the streaming state and the batch side add it up alike).
    pub fn baseline<'a>(days: impl Iterator<Item = &'a DayPin>) -> (DayPin, u32) {
        let mut base = DayPin::default();
        let mut active = 0;
        for d in days {
            base.attempts += d.attempts;
            base.episodes += d.episodes;
            base.unresolved += d.unresolved;
            active += (d.attempts > 0) as u32;
        }
        (base, active)
    }
}

/// The model's windows, from its file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PinWindows {
    pub window: Span,
    pub resolve: Span,
    pub base_days: i64,
}

/// What the state says about a wrong PIN, before it is folded in.
#[derive(Debug, Clone, PartialEq)]
pub struct PinCounts {
    /// PIN attempts in `[ts - window, ts)`, plus this one.
    pub attempts: u32,
    /// Episodes in the window, plus this one if it starts one.
    pub episodes: u32,
    /// Of the earlier episodes in the window, the ones not resolved before this event (this
    /// one is not counted: whether it will be resolved is not known yet).
    pub unresolved: u32,
    /// The terminal's totals over the `base_days` whole days before today, and how many of
    /// those days it had PIN attempts on.
    pub base: DayPin,
    pub base_active_days: u32,
}

impl TermPin {
    /// Fold a PIN attempt into the terminal's history; for a wrong PIN, first return the
    /// counts it is scored on (and, in `evidence`, the ids of the episodes in the window).
    pub fn observe(
        &mut self,
        ev: &Event,
        w: PinWindows,
        evidence: Option<&mut Vec<CompactString>>,
    ) -> Option<PinCounts> {
        debug_assert!(ev.pin_attempt());
        let ts = ev.ts;
        let card = key_hash(ev.card.as_deref().unwrap_or_default());
        let today = ts.day();
        self.forget_before(ts, today, w);
        let wrong = ev.wrong_pin();
        let mut out = None;
        let mut new = false;
        if wrong {
            new = !self
                .wrong
                .iter()
                .any(|e| e.card == card && e.ts >= ts - w.window);
            out = Some(self.counts(ts, today, new, w, evidence));
        } else if ev.pin_verified() {
            for e in self.wrong.iter_mut() {
                if e.card == card && e.new && !e.closed {
                    e.resolved = true;
                }
            }
        }
        self.attempts.push_back(ts);
        self.today.attempts += 1;
        self.today.episodes += new as u32;
        if wrong {
            self.open += new as u32;
            self.wrong.push_back(WrongPin {
                ts,
                card,
                new,
                resolved: false,
                closed: !new,
                id: ev.id.clone(),
            });
        }
        self.last = self.last.max(ts);
        out
    }

    /// Before an attempt at `ts`: close the episodes whose `resolve` ran out, drop what left
    /// the window and the baseline, and start `today` if it is a new day.
    fn forget_before(&mut self, ts: EventTime, today: i64, w: PinWindows) {
        self.close(ts, w);
        while self.attempts.front().is_some_and(|t| *t < ts - w.window) {
            self.attempts.pop_front();
        }
        while self
            .wrong
            .front()
            .is_some_and(|e| e.ts < ts - w.window && (e.closed || !e.new))
        {
            self.wrong.pop_front();
        }
        if self.today.day != today {
            self.roll(today);
        }
        while self
            .days
            .front()
            .is_some_and(|d| d.day < today - w.base_days)
        {
            self.days.pop_front();
        }
    }

    /// The counts a wrong PIN at `ts` is scored on (`new`: it starts an episode); the ids of
    /// the window's earlier episodes go to `evidence`.
    fn counts(
        &self,
        ts: EventTime,
        today: i64,
        new: bool,
        w: PinWindows,
        mut evidence: Option<&mut Vec<CompactString>>,
    ) -> PinCounts {
        let (mut episodes, mut unresolved) = (new as u32, 0);
        for e in self.wrong.iter().filter(|e| e.new && e.ts < ts) {
            if e.ts >= ts - w.window {
                episodes += 1;
                unresolved += !e.resolved as u32;
                if let Some(ids) = evidence.as_deref_mut() {
                    ids.push(e.id.clone());
                }
            }
        }
        let attempts = self.attempts.iter().filter(|t| **t < ts).count() as u32 + 1;
        let days = self
            .days
            .iter()
            .filter(|d| d.day < today && d.day >= today - w.base_days);
        let (base, base_active_days) = DayPin::baseline(days);
        PinCounts {
            attempts,
            episodes,
            unresolved,
            base,
            base_active_days,
        }
    }

    /// Close the episodes whose `resolve` has run out before `ts`; an unresolved one counts
    /// on the day its `resolve` ran out.
    fn close(&mut self, ts: EventTime, w: PinWindows) {
        if self.open == 0 {
            return;
        }
        // Allocates only when an unresolved episode closes (rare).
        let mut ended = Vec::new();
        for e in self.wrong.iter_mut() {
            if e.new && !e.closed && e.ts + w.resolve < ts {
                e.closed = true;
                self.open -= 1;
                if !e.resolved {
                    ended.push((e.ts + w.resolve).day());
                }
            }
        }
        for day in ended {
            self.day_mut(day).unresolved += 1;
        }
    }

    /// Start `today`: the day held inline joins the earlier days (a late event of an earlier
    /// day is counted with that day).
    fn roll(&mut self, today: i64) {
        let held = std::mem::replace(
            &mut self.today,
            DayPin {
                day: today,
                ..DayPin::default()
            },
        );
        if held != DayPin::default() {
            let d = self.day_mut(held.day);
            d.attempts += held.attempts;
            d.episodes += held.episodes;
            d.unresolved += held.unresolved;
        }
        if let Some(i) = self.days.iter().position(|d| d.day == today) {
            // Back to a day already rolled away (a late event): hold it inline again.
            self.today = self.days.remove(i).unwrap_or_default();
        }
    }

    /// The counts of `day`, created in order if missing.
    fn day_mut(&mut self, day: i64) -> &mut DayPin {
        if self.today.day == day {
            return &mut self.today;
        }
        let i = self.days.partition_point(|d| d.day < day);
        if self.days.get(i).is_none_or(|d| d.day != day) {
            self.days.insert(
                i,
                DayPin {
                    day,
                    ..DayPin::default()
                },
            );
        }
        &mut self.days[i]
    }

    /// Event time of the terminal's last PIN attempt.
    pub fn last(&self) -> EventTime {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, ts: i64, card: &str, rc: &str) -> Event {
        crate::decode::Decoder::default()
            .decode_json(
                format!(
                    r#"{{"id":"{id}","ts":{ts},"type":"auth","card":"{card}","terminal":"T",
                    "merchant":"M","amount":100,"entry_mode":"chip","pin":"entered",
                    "response_code":"{rc}"}}"#
                )
                .as_bytes(),
            )
            .expect("valid event")
    }

    const MIN: i64 = 60_000;
    const W: PinWindows = PinWindows {
        window: Span::ms(6 * 60 * MIN),
        resolve: Span::ms(5 * MIN),
        base_days: 28,
    };

    #[test]
    fn a_mistype_resolved_by_the_right_pin_is_an_episode_but_not_unresolved() {
        let mut t = TermPin::default();
        let t0 = 1_790_000_000_000;
        let c = t.observe(&ev("1", t0, "A", "55"), W, None).unwrap();
        assert_eq!((c.attempts, c.episodes, c.unresolved), (1, 1, 0));
        // A second wrong PIN of the same card is the same episode, still open.
        let c = t.observe(&ev("2", t0 + MIN, "A", "55"), W, None).unwrap();
        assert_eq!((c.attempts, c.episodes, c.unresolved), (2, 1, 1));
        assert!(t
            .observe(&ev("3", t0 + 2 * MIN, "A", "00"), W, None)
            .is_none());
        // Another card: A's episode is resolved; the evidence lists A's wrong PIN.
        let mut ids = Vec::new();
        let c = t
            .observe(&ev("4", t0 + 3 * MIN, "B", "55"), W, Some(&mut ids))
            .unwrap();
        assert_eq!((c.attempts, c.episodes, c.unresolved), (4, 2, 0));
        assert_eq!(ids, ["1"]);
        // B never comes back: ten minutes on, it is unresolved for good, on today's count;
        // the next day's baseline sees it.
        let day = Span::DAY.as_ms();
        let next = (t0 / day + 1) * day + 9 * 60 * MIN;
        let c = t.observe(&ev("5", next, "C", "55"), W, None).unwrap();
        assert_eq!(
            c.base,
            DayPin {
                day: 0,
                attempts: 4,
                episodes: 2,
                unresolved: 1
            }
        );
        assert_eq!(c.base_active_days, 1);
        assert_eq!((c.attempts, c.episodes, c.unresolved), (1, 1, 0));
    }

    #[test]
    fn a_verified_pin_after_the_resolve_window_does_not_resolve() {
        let mut t = TermPin::default();
        let t0 = 1_790_000_000_000;
        t.observe(&ev("1", t0, "A", "55"), W, None);
        t.observe(&ev("2", t0 + 6 * MIN, "A", "00"), W, None);
        let c = t
            .observe(&ev("3", t0 + 7 * MIN, "B", "55"), W, None)
            .unwrap();
        assert_eq!((c.episodes, c.unresolved), (2, 1));
    }
}
