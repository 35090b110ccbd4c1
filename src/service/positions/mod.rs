//! Input positions of both service loops, per (topic, partition): no offset is skipped
//! unnoticed, and none is skipped because of where the broker starts a fetch. The loops call
//! [`Positions::start`] when they position a partition (assignment or seek), ask
//! [`Positions::accept`] about every record, and call [`Positions::check_stalls`] once a pass;
//! the logic is [`cursor::Cursor`]'s (pure, tested against simulated brokers).
//!
//! What it does with what the cursor notes:
//! - a broker starting past the resume point: the consumer seeks further back
//!   (`switchguard_input_reseeks_total`), and records below the resume point are dropped;
//! - a genuine gap: `switchguard_input_offset_gaps_total` and
//!   `switchguard_input_offsets_skipped_total`, a log line with topic, partition and offsets
//!   (at most one a minute per partition; the rest are summed into the next one), then
//!   `on_offset_gap`: `log` (only that), `unready` (readiness withdrawn until restart), `stop`
//!   (the loop ends with an error; a restart resumes from the last checkpoint).

pub mod cursor;

use super::health::Health;
use super::metrics::Metrics;
use anyhow::Result;
use cursor::{Cursor, Note, Verdict};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::Offset;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A seek that delivered nothing this long, while the partition has records past the resume
/// point, steps back (tansu gives nothing for a fetch inside the last batch). Apache Kafka
/// never stalls so; a slow fetch taken for a stall only costs a few records read again.
const STALL: Duration = Duration::from_secs(1);
/// At most one gap log line per partition this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// What a genuine input offset gap does besides the metric and the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GapPolicy {
    /// Count and log only (the default: a transactional switch producer leaves a gap at every
    /// commit marker, and stopping would stop the screening of everything else).
    #[default]
    Log,
    /// Also withdraw readiness until the process restarts.
    Unready,
    /// Also stop the process (exit 2); a restart resumes from the last checkpoint.
    Stop,
}

impl GapPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Unready => "unready",
            Self::Stop => "stop",
        }
    }
}

/// Gap reports held back by the log limit.
#[derive(Default)]
struct Held {
    last: Option<Instant>,
    gaps: u64,
    offsets: i64,
}

/// Every partition's cursor, with what the notes lead to.
pub struct Positions {
    /// By topic, then partition (looked up per record without allocating a key).
    cursors: BTreeMap<String, BTreeMap<i32, Cursor>>,
    held: BTreeMap<(String, i32), Held>,
    policy: GapPolicy,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl Positions {
    pub fn new(policy: GapPolicy, metrics: Arc<Metrics>, health: Arc<Health>) -> Self {
        Self {
            cursors: BTreeMap::new(),
            held: BTreeMap::new(),
            policy,
            metrics,
            health,
        }
    }

    /// `topic`/`partition` was just positioned at `next` (`None`: its beginning).
    pub fn start(&mut self, topic: &str, partition: i32, next: Option<i64>) {
        let p = partition.to_string();
        for c in [
            &self.metrics.offset_gaps,
            &self.metrics.offsets_skipped,
            &self.metrics.reseeks,
        ] {
            c.with_label_values(&[topic, &p]);
        }
        self.cursors
            .entry(topic.to_string())
            .or_default()
            .insert(partition, Cursor::new(next, Instant::now()));
    }

    /// Forget every partition not in `keep` (a new assignment).
    pub fn retain(&mut self, keep: &BTreeSet<(String, i32)>) {
        for (topic, parts) in self.cursors.iter_mut() {
            parts.retain(|p, _| keep.contains(&(topic.clone(), *p)));
        }
    }

    /// Whether to process the record at `offset`. Seeks the consumer back when the broker
    /// started past the resume point; an error only under `on_offset_gap = "stop"`.
    pub fn accept<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<bool> {
        let Some(c) = self
            .cursors
            .get_mut(topic)
            .and_then(|parts| parts.get_mut(&partition))
        else {
            return Ok(true); // not positioned by us: nothing to check against
        };
        let (verdict, note) = c.accept(offset, Instant::now());
        if verdict == Verdict::Process && note.is_none() {
            return Ok(true); // the usual case, kept cheap
        }
        let key = (topic.to_string(), partition);
        if let Verdict::SeekTo(to) = verdict {
            self.seek(consumer, &key, to);
        }
        if let Some(n) = note {
            self.noted(&key, n)?;
        }
        Ok(verdict == Verdict::Process)
    }

    /// Partitions waiting for their first record after a seek.
    pub fn seeking(&self) -> BTreeSet<(String, i32)> {
        let all = self.cursors.iter().flat_map(|(t, parts)| {
            parts
                .iter()
                .filter(|(_, c)| c.seeking())
                .map(move |(p, _)| (t.clone(), *p))
        });
        all.collect()
    }

    /// Step back on partitions whose seek delivered nothing for a while although records
    /// remain past the resume point (`high`: a partition's high watermark, if known). Call it
    /// only after a pass that emptied the consumer's queue, so no record of theirs is waiting.
    pub fn check_stalls<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        high: impl Fn(&str, i32) -> Option<i64>,
    ) {
        let now = Instant::now();
        let mut seeks = Vec::new();
        for (t, parts) in self.cursors.iter_mut() {
            for (p, c) in parts.iter_mut().filter(|(_, c)| c.seeking()) {
                if let Some(to) = high(t, *p).and_then(|h| c.stalled(now, h, STALL)) {
                    seeks.push(((t.clone(), *p), to));
                }
            }
        }
        for (k, to) in seeks {
            self.seek(consumer, &k, to);
        }
    }

    fn seek<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>, k: &(String, i32), to: i64) {
        let p = k.1.to_string();
        self.metrics.reseeks.with_label_values(&[&k.0, &p]).inc();
        // A failed seek leaves the cursor waiting at `to`: the next record delivered from the
        // old position, or the stall check, makes it step back again.
        if let Err(e) = consumer.seek(&k.0, k.1, Offset::Offset(to), Duration::from_secs(5)) {
            eprintln!("switchguard: seeking {}/{} to {to}: {e}", k.0, k.1);
        }
    }

    fn noted(&mut self, k: &(String, i32), note: Note) -> Result<()> {
        let (from, to) = match note {
            Note::Rewound { asked, got } => {
                eprintln!(
                    "switchguard: {}/{}: asked for offset {asked}, the broker delivered from {got}: \
                     it reset the position (log truncated or recreated?); offsets below {} are \
                     taken as already processed",
                    k.0,
                    k.1,
                    self.cursors
                        .get(&k.0)
                        .and_then(|parts| parts.get(&k.1))
                        .and_then(Cursor::next)
                        .unwrap_or(asked)
                );
                return Ok(());
            }
            Note::Gap { from, to } => (from, to),
        };
        let p = k.1.to_string();
        self.metrics
            .offset_gaps
            .with_label_values(&[&k.0, &p])
            .inc();
        self.metrics
            .offsets_skipped
            .with_label_values(&[&k.0, &p])
            .inc_by((to - from) as u64);
        let what = format!(
            "input offset gap on {}/{}: offsets {from}..{} ({} offsets) were not delivered",
            k.0,
            k.1,
            to - 1,
            to - from
        );
        let h = self.held.entry(k.clone()).or_default();
        let now = Instant::now();
        if h.last.is_none_or(|t| now.duration_since(t) >= LOG_EVERY) {
            let more = if h.gaps > 0 {
                format!(
                    " (and {} more gaps, {} offsets, since the last report)",
                    h.gaps, h.offsets
                )
            } else {
                String::new()
            };
            eprintln!(
                "switchguard: {what}{more}; on_offset_gap = \"{}\"",
                self.policy.as_str()
            );
            *h = Held {
                last: Some(now),
                ..Held::default()
            };
        } else {
            h.gaps += 1;
            h.offsets += to - from;
        }
        match self.policy {
            GapPolicy::Log => Ok(()),
            GapPolicy::Unready => {
                self.health.offset_gap(what);
                Ok(())
            }
            GapPolicy::Stop => anyhow::bail!("{what} (on_offset_gap = \"stop\")"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(policy: GapPolicy) -> (Positions, Arc<Metrics>, Arc<Health>) {
        let (m, h) = (Metrics::new(), Arc::new(Health::default()));
        h.started();
        let mut p = Positions::new(policy, m.clone(), h.clone());
        p.start("in", 3, Some(10));
        (p, m, h)
    }

    fn gap(p: &mut Positions, from: i64, to: i64) -> Result<()> {
        p.noted(&("in".to_string(), 3), Note::Gap { from, to })
    }

    #[test]
    fn a_gap_is_counted_with_its_offsets_and_logged_at_most_once_a_minute() {
        let (mut p, m, h) = positions(GapPolicy::Log);
        let text = m.render();
        for name in [
            "switchguard_input_offset_gaps_total",
            "switchguard_input_offsets_skipped_total",
            "switchguard_input_reseeks_total",
        ] {
            let series = format!("{name}{{partition=\"3\",topic=\"in\"}} 0");
            assert!(text.contains(&series), "{series} exists from the start");
        }
        gap(&mut p, 10, 13).unwrap();
        gap(&mut p, 20, 21).unwrap();
        let key = ["in", "3"];
        assert_eq!(m.offset_gaps.with_label_values(&key).get(), 2);
        assert_eq!(m.offsets_skipped.with_label_values(&key).get(), 4);
        let held = &p.held[&("in".to_string(), 3)];
        assert_eq!(
            (held.gaps, held.offsets),
            (1, 1),
            "the second waits for the next line"
        );
        assert!(h.status().is_ok(), "log only");
    }

    #[test]
    fn unready_withdraws_readiness_and_stop_ends_the_loop() {
        let (mut p, _, h) = positions(GapPolicy::Unready);
        gap(&mut p, 10, 11).unwrap();
        let why = h.status().unwrap_err().to_string();
        assert!(why.contains("in/3: offsets 10..10 (1 offsets)"), "{why}");
        let (mut p, _, h) = positions(GapPolicy::Stop);
        let e = gap(&mut p, 10, 12).unwrap_err().to_string();
        assert!(
            e.contains("offsets 10..11") && e.contains("\"stop\""),
            "{e}"
        );
        assert!(h.status().is_ok());
        let policy: GapPolicy = toml::from_str::<toml::Table>("p = \"unready\"").unwrap()["p"]
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(policy, GapPolicy::Unready);
    }
}
