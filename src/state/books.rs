//! Entry types of the shared books.

use crate::time::EventTime;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// An approved pre-auth, kept until its retention passes so late and mismatched completions
/// can still be explained (the completion rules decide what "too late" means).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreAuth {
    pub id: CompactString,
    pub ts: EventTime,
    pub amount: i64,
    pub merchant: CompactString,
    /// Completed, cancelled or reversed.
    pub closed: bool,
    pub last_seen: EventTime,
}

impl PreAuth {
    pub fn view(&self) -> super::PreAuthView {
        super::PreAuthView {
            ts: self.ts,
            amount: self.amount,
            merchant: self.merchant.clone(),
            open: !self.closed,
        }
    }
}

/// Approved payments of one QR payload: a second one is a replay.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QrEntry {
    pub count: u32,
    /// The first payment's id, so an alert can point at the original payment.
    pub first_id: CompactString,
    pub last_seen: EventTime,
}

/// Sign-on state of one terminal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TermSession {
    pub sign_on: Option<EventTime>,
    pub sign_off: Option<EventTime>,
    pub last_seen: EventTime,
}

impl TermSession {
    pub fn signed_off(&self) -> bool {
        match (self.sign_on, self.sign_off) {
            (Some(on), Some(off)) => off >= on,
            (None, Some(_)) => true,
            _ => false,
        }
    }
}
