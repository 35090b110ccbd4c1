//! State and features: the keyed books every rule shares, and the per-event features they
//! yield. Books are keyed by a 64-bit hash of the key text and evicted by event time, so memory
//! is bounded by what happened within each retention, not by how long the stream has run.
//!
//! - dedup: event ids seen within `dedup_retention` (a repeated id is dropped);
//! - pre-auth book: open pre-auths by `auth_ref`, joined to completions and cancels;
//! - QR book: approved payments by `qr_ref`;
//! - terminal sessions: last sign-on / sign-off per terminal.

mod books;
mod dedup;

pub use books::{PreAuth, QrEntry, TermSession};
use dedup::DedupOrder;

use crate::event::{Event, EventType};
use crate::keyed::{key_hash, sweep_interval, CowMap, Stage, Stages};
use crate::time::{EventTime, Span};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Retention of each book, in event-time milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Retention {
    pub dedup: Span,
    /// Open pre-auths (must exceed the pre-auth validity the completion rules check).
    pub preauth: Span,
    /// Completed / cancelled pre-auths (long enough to see a second completion).
    pub preauth_closed: Span,
    pub qr: Span,
    pub terminal: Span,
}

impl Default for Retention {
    fn default() -> Self {
        const H: Span = Span::HOUR;
        Self {
            dedup: H,
            preauth: H * (45 * 24),
            preauth_closed: H * (7 * 24),
            qr: H * 48,
            terminal: H * (7 * 24),
        }
    }
}

/// A copy of the joined pre-auth, as the rules see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreAuthView {
    pub ts: EventTime,
    pub amount: i64,
    pub merchant: CompactString,
    pub open: bool,
}

/// All shared books. Snapshot-able (serde) for the streaming service's checkpoints.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Books {
    pub retention: Retention,
    dedup: CowMap<EventTime>,
    /// The dedup entries in time order, so a sweep pops the expired ones off the front instead
    /// of scanning the whole map. Derived from `dedup` (not serialised; rebuilt when short).
    #[serde(skip)]
    dedup_order: DedupOrder,
    preauths: CowMap<PreAuth>,
    qr: CowMap<QrEntry>,
    terminals: CowMap<TermSession>,
    /// Event time at which each book (dedup, preauth, qr, terminal) is next swept.
    next_sweep: [EventTime; 4],
}

/// Entry counts per book, for metrics and the report.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct BookSizes {
    pub dedup: usize,
    pub preauths: usize,
    pub qr: usize,
    pub terminals: usize,
}

impl Books {
    pub fn new(retention: Retention) -> Self {
        Self {
            retention,
            ..Default::default()
        }
    }

    /// Record the id; false if it was already seen (a duplicate to drop).
    pub fn first_sighting(&mut self, ev: &Event) -> bool {
        self.first_of(key_hash(&ev.id), ev.ts)
    }

    /// Record a control record's id (apart from event ids); false if it was seen already.
    pub fn first_control(&mut self, id: &str, ts: EventTime) -> bool {
        self.first_of(
            xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), 0xC0_47_01),
            ts,
        )
    }

    fn first_of(&mut self, h: u64, ts: EventTime) -> bool {
        let (_, new) = self.dedup.get_or_insert_with(h, || ts);
        if new {
            self.dedup_order.push(ts, h);
        }
        new
    }

    /// The pre-auth `ev`'s `auth_ref` names, if in the book.
    pub fn preauth(&self, ev: &Event) -> Option<&PreAuth> {
        ev.auth_ref
            .as_deref()
            .and_then(|r| self.preauths.get(&key_hash(r)))
    }

    /// The approved payments of `ev`'s `qr_ref`, if any.
    pub fn qr(&self, ev: &Event) -> Option<&QrEntry> {
        ev.qr_ref.as_deref().and_then(|r| self.qr.get(&key_hash(r)))
    }

    /// The sign-on state of `ev`'s terminal, if known.
    pub fn terminal(&self, ev: &Event) -> Option<&TermSession> {
        self.terminals.get(&key_hash(&ev.terminal))
    }

    /// Fold the event into the books of the stages in `own` (after rules have seen it).
    pub fn update(&mut self, ev: &Event, own: Stages) {
        if own.has(Stage::Terminal) {
            self.update_terminal(ev);
        }
        if own.has(Stage::AuthRef) {
            self.update_preauth(ev);
        }
        if own.has(Stage::QrRef) {
            self.update_qr(ev);
        }
    }

    fn update_terminal(&mut self, ev: &Event) {
        match ev.kind {
            EventType::SignOn if ev.approved() || ev.response_code.is_none() => {
                let t = self.terminals.entry_or_default(key_hash(&ev.terminal));
                t.sign_on = Some(t.sign_on.map_or(ev.ts, |s| s.max(ev.ts)));
                t.last_seen = t.last_seen.max(ev.ts);
            }
            EventType::SignOff => {
                let t = self.terminals.entry_or_default(key_hash(&ev.terminal));
                t.sign_off = Some(t.sign_off.map_or(ev.ts, |s| s.max(ev.ts)));
                t.last_seen = t.last_seen.max(ev.ts);
            }
            _ => {}
        }
    }

    fn update_preauth(&mut self, ev: &Event) {
        match ev.kind {
            EventType::Preauth if ev.approved() => {
                if let (Some(r), Some(m)) = (ev.auth_ref.as_deref(), ev.merchant.as_ref()) {
                    self.preauths.insert(
                        key_hash(r),
                        PreAuth {
                            id: ev.id.clone(),
                            ts: ev.ts,
                            amount: ev.amount.unwrap_or(0),
                            merchant: m.clone(),
                            closed: false,
                            last_seen: ev.ts,
                        },
                    );
                }
            }
            EventType::Completion | EventType::PreauthCancel | EventType::Reversal
                if ev.approved() || ev.response_code.is_none() =>
            {
                if let Some(p) = ev
                    .auth_ref
                    .as_deref()
                    .and_then(|r| self.preauths.get_mut(&key_hash(r)))
                {
                    p.closed = true;
                    p.last_seen = p.last_seen.max(ev.ts);
                }
            }
            _ => {}
        }
    }

    fn update_qr(&mut self, ev: &Event) {
        if let Some(r) = ev.qr_ref.as_deref() {
            if ev.approved() && matches!(ev.kind, EventType::Auth | EventType::Transfer) {
                // A new entry is written whole (no read back of the line just missed).
                let (q, new) = self.qr.get_or_insert_with(key_hash(r), || QrEntry {
                    count: 1,
                    first_id: ev.id.clone(),
                    last_seen: ev.ts.max(EventTime::EPOCH),
                });
                if !new {
                    q.count += 1;
                    q.last_seen = q.last_seen.max(ev.ts);
                }
            }
        }
    }

    /// Drop what is older than each book's retention, measured back from `now` (event time).
    pub fn evict(&mut self, now: EventTime) {
        let r = self.retention;
        let due = |next: &mut EventTime, ret: Span| {
            let go = now >= *next;
            if go {
                *next = now + sweep_interval(ret);
            }
            go
        };
        if due(&mut self.next_sweep[0], r.dedup) {
            self.dedup_order.expire(&mut self.dedup, now - r.dedup);
        }
        if due(&mut self.next_sweep[1], r.preauth) {
            self.preauths.retain(|_, p| {
                p.last_seen
                    > now
                        - if p.closed {
                            r.preauth_closed
                        } else {
                            r.preauth
                        }
            });
        }
        if due(&mut self.next_sweep[2], r.qr) {
            self.qr.retain(|_, q| q.last_seen > now - r.qr);
        }
        if due(&mut self.next_sweep[3], r.terminal) {
            self.terminals.retain(|_, t| t.last_seen > now - r.terminal);
        }
    }

    pub fn sizes(&self) -> BookSizes {
        BookSizes {
            dedup: self.dedup.len(),
            preauths: self.preauths.len(),
            qr: self.qr.len(),
            terminals: self.terminals.len(),
        }
    }
}
