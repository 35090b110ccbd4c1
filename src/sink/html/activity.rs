//! What the HTML report draws that `report.json` does not keep: when each rule fired and
//! locked (event time), and which entities drew the most alerts. Collected while the replay
//! runs, from the same decisions that go to `alerts.jsonl` and `commands.jsonl`.

use crate::decision::Decisions;
use crate::event::Event;
use crate::pan::redact;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

const DAY: i64 = 86_400_000;

/// Per-decision timestamps by rule and per-entity counts, gathered during a replay so the
/// report can draw them without re-reading the output files.
#[derive(Debug, Default, Clone)]
pub struct Activity {
    rules: Vec<String>,
    rule_idx: FxHashMap<String, u32>,
    /// (event time ms, rule index) of every alert.
    pub(super) alerts: Vec<(i64, u32)>,
    /// (event time ms, rule index) of every lockout command.
    pub(super) lockouts: Vec<(i64, u32)>,
    first: Option<i64>,
    last: Option<i64>,
    /// First and last decision time.
    decided: Option<(i64, i64)>,
    /// Events per UTC day, to keep a few stray old or future events from stretching the
    /// timeline; the current day is counted in `today` first (one map update per day change).
    days: BTreeMap<i64, u64>,
    today: (i64, u64),
    entities: FxHashMap<(String, String), EntityCount>,
}

/// Alert and lockout counts for one entity (card token, TID or MID).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EntityCount {
    /// `card`, `terminal` or `merchant`.
    pub kind: String,
    /// The token, TID or MID, with any PAN-shaped digit run masked.
    pub id: String,
    /// The masked PAN for cards (first 6 / last 4), when the alerts carried one.
    pub pan_masked: Option<String>,
    pub alerts: u64,
    pub lockouts: u64,
    /// Rules that fired on it, in first-seen order.
    pub rules: Vec<String>,
}

/// Parse an output timestamp (RFC 3339, as every alert and command carries) to epoch ms.
fn ts_ms(ts: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl Activity {
    fn rule(&mut self, rule: &str) -> u32 {
        if let Some(i) = self.rule_idx.get(rule) {
            return *i;
        }
        let i = self.rules.len() as u32;
        self.rules.push(rule.to_string());
        self.rule_idx.insert(rule.to_string(), i);
        i
    }

    fn see(&mut self, ts: i64) {
        self.first = Some(self.first.map_or(ts, |f| f.min(ts)));
        self.last = Some(self.last.map_or(ts, |l| l.max(ts)));
    }

    fn decided(&mut self, ts: i64) {
        self.see(ts);
        self.decided = Some(
            self.decided
                .map_or((ts, ts), |(f, l)| (f.min(ts), l.max(ts))),
        );
    }

    /// Widen the replay's time span to cover this event.
    pub fn observe_event(&mut self, ev: &Event) {
        self.see(ev.ts.as_ms());
        let day = ev.ts.day();
        if day != self.today.0 {
            if self.today.1 > 0 {
                *self.days.entry(self.today.0).or_default() += self.today.1;
            }
            self.today = (day, 0);
        }
        self.today.1 += 1;
    }

    pub fn observe_decisions(&mut self, d: &Decisions) {
        for a in &d.alerts {
            let r = self.rule(&a.rule);
            if let Some(t) = ts_ms(&a.ts) {
                self.decided(t);
                self.alerts.push((t, r));
            }
            let e = self
                .entities
                .entry((a.entity.as_str().to_string(), a.entity_id.clone()))
                .or_insert_with(|| EntityCount {
                    kind: a.entity.as_str().to_string(),
                    id: redact(&a.entity_id).into_owned(),
                    ..EntityCount::default()
                });
            e.alerts += 1;
            if a.entity == crate::rules::Entity::Card && e.pan_masked.is_none() {
                // Already masked by the decoder; masked again in case a caller sent anything else.
                e.pan_masked = a.pan_masked.as_deref().map(|p| redact(p).into_owned());
            }
            if !e.rules.iter().any(|x| x == &a.rule) {
                e.rules.push(a.rule.clone());
            }
        }
        // A rule's lockouts; manual commands and releases are in locks.json, not here.
        for c in d.commands.iter().filter(|c| c.action.starts_with("lock_")) {
            let Some(rule) = &c.rule else { continue };
            let r = self.rule(rule);
            if let Some(t) = ts_ms(&c.ts) {
                self.decided(t);
                self.lockouts.push((t, r));
            }
            let kind = c
                .action
                .strip_prefix("lock_")
                .unwrap_or(&c.action)
                .to_string();
            let e = self
                .entities
                .entry((kind.clone(), c.target.clone()))
                .or_insert_with(|| EntityCount {
                    kind,
                    id: redact(&c.target).into_owned(),
                    pan_masked: c.pan_masked.as_deref().map(|p| redact(p).into_owned()),
                    ..EntityCount::default()
                });
            e.lockouts += 1;
        }
    }

    /// Rule ids in first-fired order.
    pub fn rules(&self) -> &[String] {
        &self.rules
    }

    /// First and last event time seen (events and decisions), epoch ms.
    pub fn span(&self) -> Option<(i64, i64)> {
        Some((self.first?, self.last?))
    }

    /// The span the timeline covers: every decision, and the days holding all but the
    /// sparsest 0.5% of events at either end (history loaded ahead of the main period, a clock
    /// gone wrong on one terminal), so the buckets are sized for the bulk of the replay.
    pub fn timeline_span(&self) -> Option<(i64, i64)> {
        let (first, last) = self.span()?;
        let mut days = self.days.clone();
        if self.today.1 > 0 {
            *days.entry(self.today.0).or_default() += self.today.1;
        }
        let total: u64 = days.values().sum();
        let trim = total / 200;
        let edge = |it: &mut dyn Iterator<Item = (&i64, &u64)>| {
            let mut acc = 0;
            for (d, n) in it {
                acc += *n;
                if acc > trim {
                    return Some(*d);
                }
            }
            None
        };
        let mut span = match (edge(&mut days.iter()), edge(&mut days.iter().rev())) {
            (Some(lo), Some(hi)) => (first.max(lo * DAY), last.min((hi + 1) * DAY - 1)),
            _ => self.decided?,
        };
        if let Some((f, l)) = self.decided {
            span = (span.0.min(f), span.1.max(l));
        }
        Some(span)
    }

    /// The `n` entities with the most alerts (then lockouts, then id).
    pub fn top_entities(&self, n: usize) -> Vec<&EntityCount> {
        let mut v: Vec<&EntityCount> = self.entities.values().collect();
        v.sort_by(|a, b| {
            (b.alerts, b.lockouts)
                .cmp(&(a.alerts, a.lockouts))
                .then_with(|| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)))
        });
        v.truncate(n);
        v
    }
}

/// Event-time buckets for the timeline: a round width chosen so the span gives at most
/// [`Buckets::MAX`] buckets, aligned to UTC multiples of the width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Buckets {
    pub start: i64,
    pub width: i64,
    pub count: usize,
    pub label: &'static str,
}

impl Buckets {
    pub const MAX: i64 = 120;

    const WIDTHS: [(i64, &'static str); 12] = [
        (60_000, "1 minute"),
        (5 * 60_000, "5 minutes"),
        (15 * 60_000, "15 minutes"),
        (30 * 60_000, "30 minutes"),
        (3_600_000, "1 hour"),
        (3 * 3_600_000, "3 hours"),
        (6 * 3_600_000, "6 hours"),
        (12 * 3_600_000, "12 hours"),
        (86_400_000, "1 day"),
        (7 * 86_400_000, "7 days"),
        (30 * 86_400_000, "30 days"),
        (365 * 86_400_000, "365 days"),
    ];

    /// Buckets covering `first..=last` (epoch ms).
    pub fn for_span(first: i64, last: i64) -> Self {
        let span = (last - first).max(0);
        let (width, label) = Self::WIDTHS
            .iter()
            .copied()
            .find(|(w, _)| span / w < Self::MAX)
            .unwrap_or(Self::WIDTHS[Self::WIDTHS.len() - 1]);
        let start = first.div_euclid(width) * width;
        let count = ((last - start).div_euclid(width) + 1) as usize;
        Self {
            start,
            width,
            count,
            label,
        }
    }

    /// Bucket index of `ts`, clamped into range.
    pub fn index(&self, ts: i64) -> usize {
        ((ts - self.start).div_euclid(self.width)).clamp(0, self.count as i64 - 1) as usize
    }

    /// Counts per rule index per bucket for `points` of `(ts, rule)`.
    pub fn count(&self, points: &[(i64, u32)], rules: usize) -> Vec<Vec<u64>> {
        let mut out = vec![vec![0u64; self.count]; rules];
        for (t, r) in points {
            out[*r as usize][self.index(*t)] += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stray_events_do_not_stretch_the_timeline() {
        let mut a = Activity::default();
        let mut ev = crate::decode::Decoder::default()
            .decode_json(br#"{"id":"x","ts":1790000000000,"type":"sign_on","terminal":"T1"}"#)
            .unwrap();
        ev.ts = crate::time::EventTime::from_ms(2 * DAY + 5);
        a.observe_event(&ev);
        for i in 0..1000 {
            ev.ts = crate::time::EventTime::from_ms(40 * DAY + i * 60_000);
            a.observe_event(&ev);
        }
        assert_eq!(a.span(), Some((2 * DAY + 5, 40 * DAY + 999 * 60_000)));
        assert_eq!(a.timeline_span(), Some((40 * DAY, 40 * DAY + 999 * 60_000)));
    }

    #[test]
    fn buckets_are_round_and_bounded() {
        let day = 86_400_000;
        let b = Buckets::for_span(1_000, 3 * day);
        assert_eq!(b.label, "1 hour");
        assert_eq!(b.start, 0);
        assert_eq!(b.count, 73);
        assert_eq!(b.index(1_000), 0);
        assert_eq!(b.index(3 * day), 72);
        let b = Buckets::for_span(5 * day + 10, 5 * day + 10);
        assert_eq!((b.label, b.count), ("1 minute", 1));
        let b = Buckets::for_span(0, 35 * day);
        assert_eq!(b.label, "12 hours");
        assert!(b.count as i64 <= Buckets::MAX);
    }
}
