//! Features: what the books and the models say about one event, and every name a rule can read
//! of it, declared once.
//!
//! - [`table`]: the field table (name, type, the stage that computes it, the model that fills
//!   it, how it is read) from which [`Field`], [`FIELDS`] and [`Field::read`] come;
//! - [`Features`]: the per-event values, filled stage by stage ([`join`] from the books, the
//!   models' scorer for [`Features::model`]);
//! - [`Carried`]: what an event carries from one scale-out stage to the next, generated from
//!   the slot list, and checked against the field table by a test.
//!
//! Above the books (`state`) and the models, below the rules that read it.

mod carried;
mod table;

pub use carried::{Carried, SLOTS};
pub use table::{Field, FieldInfo, Ty, Val, FIELDS};

use crate::event::{Event, EventType};
use crate::keyed::{Stage, Stages};
use crate::models::ModelOut;
use crate::state::{Books, PreAuthView};
use crate::time::EventTime;
use compact_str::CompactString;

/// What the books and models say about one event, computed before rules run.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// The pre-auth this completion / cancel / reversal refers to, if in the book.
    pub preauth: Option<PreAuthView>,
    /// That pre-auth's event id (alerts list it among their events).
    pub preauth_id: Option<CompactString>,
    /// Approved payments of this event's `qr_ref` before it.
    pub qr_prior_payments: u32,
    /// The first of them (alerts list it).
    pub qr_first_id: Option<CompactString>,
    /// Last sign-on of the event's terminal.
    pub signon_ts: Option<EventTime>,
    /// The terminal signed off after its last sign-on.
    pub signed_off: bool,
    /// What the statistical models say about the event (empty without models).
    pub model: ModelOut,
}

impl Features {
    /// Earlier events this one is joined to (the pre-auth, the first payment of its QR
    /// payload, the events behind a terminal or merchant model score), in that order: an
    /// alert lists them before the event itself.
    pub fn related(&self) -> impl Iterator<Item = &CompactString> {
        self.preauth_id
            .iter()
            .chain(self.qr_first_id.iter())
            .chain(self.model.evidence.iter())
    }
}

/// Fill `f` with what the books say of `ev` as they were *before* it: the slots of every
/// stage when `own` is all of them, else only those of the stage `own` holds (the rest came
/// with the event from earlier stages).
pub fn join(books: &Books, ev: &Event, f: &mut Features, own: Stages) {
    if own.has(Stage::AuthRef) {
        f.preauth = None;
        f.preauth_id = None;
        if matches!(
            ev.kind,
            EventType::Completion | EventType::PreauthCancel | EventType::Reversal
        ) {
            if let Some(p) = books.preauth(ev) {
                f.preauth = Some(p.view());
                f.preauth_id = Some(p.id.clone());
            }
        }
    }
    if own.has(Stage::QrRef) {
        f.qr_prior_payments = 0;
        f.qr_first_id = None;
        if let Some(q) = books.qr(ev) {
            f.qr_prior_payments = q.count;
            f.qr_first_id = Some(q.first_id.clone());
        }
    }
    if own.has(Stage::Terminal) {
        f.signon_ts = None;
        f.signed_off = false;
        if ev.kind.is_financial() {
            if let Some(t) = books.terminal(ev) {
                f.signon_ts = t.sign_on;
                f.signed_off = t.signed_off();
            }
        }
    }
}
