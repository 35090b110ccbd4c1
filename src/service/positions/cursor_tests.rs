//! The cursor against simulated brokers: a log of record batches, fetched the way Apache
//! Kafka fetches (the batch holding the offset, the client dropping what lies before it) and
//! the way tansu 0.6 does (the first batch starting at or after the offset; nothing when the
//! offset is inside the last batch).

use super::*;
use proptest::prelude::*;

/// A partition's log: batches of (base offset, offsets present), in order.
struct Log {
    batches: Vec<(i64, Vec<i64>)>,
}

#[derive(Clone, Copy, Debug)]
enum Broker {
    Kafka,
    Tansu,
}

impl Log {
    /// Contiguous offsets from 0, cut into batches of the given sizes.
    fn of_sizes(sizes: &[i64]) -> Self {
        let mut base = 0;
        let batches = sizes
            .iter()
            .map(|n| {
                let b = (base, (base..base + n).collect());
                base += n;
                b
            })
            .collect();
        Self { batches }
    }

    fn high(&self) -> i64 {
        self.batches
            .last()
            .map_or(0, |(b, o)| o.last().map_or(*b, |l| l + 1))
    }

    /// What a fetch at `at` delivers, to the end of the log.
    fn fetch(&self, broker: Broker, at: i64) -> Vec<i64> {
        let start = match broker {
            Broker::Kafka => self
                .batches
                .iter()
                .position(|(b, o)| o.last().is_some_and(|l| *l >= at) || *b >= at),
            Broker::Tansu => self.batches.iter().position(|(b, _)| *b >= at),
        };
        let Some(i) = start else { return vec![] };
        let all = self.batches[i..]
            .iter()
            .flat_map(|(_, o)| o.iter().copied());
        match broker {
            Broker::Kafka => all.filter(|o| *o >= at).collect(),
            Broker::Tansu => all.collect(),
        }
    }
}

/// Drive a cursor resumed at `resume` over `log` on `broker`, re-seeking as told (and when
/// the broker gives nothing while records remain): the offsets processed, the gaps noted and
/// the number of seeks.
fn drive(log: &Log, broker: Broker, resume: Option<i64>) -> (Vec<i64>, Vec<Note>, usize) {
    let t0 = Instant::now();
    let mut c = Cursor::new(resume, t0);
    let (mut processed, mut notes, mut seeks) = (vec![], vec![], 0);
    let mut at = resume.unwrap_or(0);
    let mut clock = t0;
    'fetch: for _ in 0..200 {
        let delivered = log.fetch(broker, at);
        if delivered.is_empty() {
            clock += Duration::from_secs(2);
            match c.stalled(clock, log.high(), Duration::from_secs(1)) {
                Some(to) => {
                    seeks += 1;
                    at = to;
                    continue 'fetch;
                }
                None => break,
            }
        }
        for o in delivered {
            let (v, note) = c.accept(o, clock);
            notes.extend(note);
            match v {
                Verdict::Process => processed.push(o),
                Verdict::Discard => {}
                Verdict::SeekTo(to) => {
                    seeks += 1;
                    at = to;
                    continue 'fetch;
                }
            }
        }
        break;
    }
    (processed, notes, seeks)
}

#[test]
fn in_order_delivery_passes_through_untouched() {
    let now = Instant::now();
    let mut c = Cursor::new(Some(10), now);
    for o in 10..20 {
        assert_eq!(c.accept(o, now), (Verdict::Process, None));
    }
    assert_eq!(c.next(), Some(20));
    assert!(!c.seeking());
    let mut fresh = Cursor::new(None, now);
    assert_eq!(fresh.accept(7, now), (Verdict::Process, None));
    assert_eq!(fresh.accept(8, now), (Verdict::Process, None));
    assert_eq!(fresh.next(), Some(9));
}

#[test]
fn a_first_offset_past_the_request_seeks_back_doubling_never_below_zero() {
    let now = Instant::now();
    let mut c = Cursor::new(Some(100), now);
    assert_eq!(c.accept(120, now), (Verdict::SeekTo(100 - 32), None));
    assert!(c.seeking());
    assert_eq!(c.accept(120, now), (Verdict::SeekTo(100 - 64), None));
    assert_eq!(
        c.accept(110, now),
        (Verdict::SeekTo(0), None),
        "clamped at 0"
    );
    assert_eq!(c.next(), Some(100), "nothing processed while seeking");
    // From offset 0 the broker still starts past 100: those offsets are gone.
    assert_eq!(
        c.accept(105, now),
        (Verdict::Process, Some(Note::Gap { from: 100, to: 105 }))
    );
    assert_eq!(c.next(), Some(106));
}

#[test]
fn records_below_the_resume_point_are_discarded_then_processing_resumes() {
    let now = Instant::now();
    let mut c = Cursor::new(Some(50), now);
    assert_eq!(c.accept(60, now), (Verdict::SeekTo(18), None));
    let verdicts: Vec<Verdict> = (40..55).map(|o| c.accept(o, now).0).collect();
    assert_eq!(&verdicts[..10], &[Verdict::Discard; 10]);
    assert_eq!(&verdicts[10..], &[Verdict::Process; 5]);
    assert_eq!(c.next(), Some(55));
}

#[test]
fn a_genuine_gap_is_noted_with_its_offsets() {
    let now = Instant::now();
    let mut c = Cursor::new(Some(0), now);
    assert_eq!(c.accept(0, now).0, Verdict::Process);
    assert_eq!(c.accept(1, now).0, Verdict::Process);
    // A transaction marker at 2.
    assert_eq!(
        c.accept(3, now),
        (Verdict::Process, Some(Note::Gap { from: 2, to: 3 }))
    );
    // Compacted away, while still below the resume point after a restore: no gap that
    // matters, unless it reaches past the resume point.
    let mut r = Cursor::new(Some(20), now);
    assert_eq!(r.accept(25, now).0, Verdict::SeekTo(0));
    assert_eq!(r.accept(10, now).0, Verdict::Discard);
    assert_eq!(r.accept(15, now), (Verdict::Discard, None));
    assert_eq!(
        r.accept(22, now),
        (Verdict::Process, Some(Note::Gap { from: 20, to: 22 }))
    );
    assert_eq!(r.accept(23, now), (Verdict::Process, None));
}

#[test]
fn a_record_delivered_again_is_discarded() {
    let now = Instant::now();
    let mut c = Cursor::new(Some(5), now);
    assert_eq!(c.accept(5, now).0, Verdict::Process);
    assert_eq!(c.accept(6, now).0, Verdict::Process);
    assert_eq!(c.accept(6, now), (Verdict::Discard, None));
    assert_eq!(c.next(), Some(7));
}

#[test]
fn a_position_reset_below_the_request_is_noted() {
    let now = Instant::now();
    let mut c = Cursor::new(Some(500), now);
    assert_eq!(
        c.accept(0, now),
        (Verdict::Discard, Some(Note::Rewound { asked: 500, got: 0 }))
    );
}

#[test]
fn a_silent_seek_inside_the_last_batch_steps_back_after_the_wait() {
    let t0 = Instant::now();
    let mut c = Cursor::new(Some(150), t0);
    let wait = Duration::from_secs(1);
    assert_eq!(c.stalled(t0 + wait / 2, 200, wait), None, "not yet");
    assert_eq!(
        c.stalled(t0 + wait, 150, wait),
        None,
        "caught up: nothing to read"
    );
    assert_eq!(c.stalled(t0 + wait, 200, wait), Some(118));
    assert_eq!(c.stalled(t0 + wait, 200, wait), None, "the wait restarts");
    assert_eq!(c.stalled(t0 + wait * 2, 200, wait), Some(86));
    assert_eq!(c.accept(100, t0).0, Verdict::Discard);
    assert_eq!(c.stalled(t0 + wait * 9, 200, wait), None, "reading");
}

#[test]
fn both_brokers_resume_mid_batch_without_loss() {
    let log = Log::of_sizes(&[40, 300, 7, 1, 120, 90]);
    for broker in [Broker::Kafka, Broker::Tansu] {
        for resume in [0, 1, 39, 40, 41, 200, 339, 340, 347, 348, 400, 557, 558] {
            let (processed, notes, _) = drive(&log, broker, Some(resume));
            assert_eq!(
                processed,
                (resume..558).collect::<Vec<_>>(),
                "{broker:?} {resume}"
            );
            assert!(notes.is_empty(), "{broker:?} {resume}: {notes:?}");
        }
    }
    let (_, _, seeks) = drive(&log, Broker::Kafka, Some(200));
    assert_eq!(seeks, 0, "Apache Kafka needs no re-seek");
    let (_, _, seeks) = drive(&log, Broker::Tansu, Some(200));
    assert!(seeks >= 3, "tansu needs to step back to offset 40: {seeks}");
}

#[test]
fn missing_offsets_are_one_gap_on_either_broker() {
    // Offsets 100..105 were compacted away; a transaction marker at 300.
    let mut log = Log::of_sizes(&[100, 200, 100]);
    log.batches[1].1.retain(|o| !(100..105).contains(o));
    log.batches[1].0 = 100;
    log.batches[2].1.retain(|o| *o != 300);
    for broker in [Broker::Kafka, Broker::Tansu] {
        let (processed, notes, _) = drive(&log, broker, Some(50));
        assert_eq!(processed.len(), 350 - 5 - 1, "{broker:?}");
        assert_eq!(
            notes,
            vec![
                Note::Gap { from: 100, to: 105 },
                Note::Gap { from: 300, to: 301 }
            ],
            "{broker:?}"
        );
    }
}

proptest! {
    /// Any batch layout, any resume point, either broker: exactly the offsets from the resume
    /// point on are processed, in order, and no gap is reported on a contiguous log.
    #[test]
    fn resume_anywhere_processes_exactly_the_rest(
        sizes in proptest::collection::vec(1i64..200, 1..30),
        at in 0.0f64..1.0,
        tansu in any::<bool>(),
    ) {
        let log = Log::of_sizes(&sizes);
        let resume = (log.high() as f64 * at) as i64;
        let broker = if tansu { Broker::Tansu } else { Broker::Kafka };
        let (processed, notes, _) = drive(&log, broker, Some(resume));
        prop_assert_eq!(processed, (resume..log.high()).collect::<Vec<_>>());
        prop_assert!(notes.is_empty());
    }
}
