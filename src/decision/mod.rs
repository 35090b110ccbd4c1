//! Decisions: what the engine tells the world. A rule hit becomes an alert for the risk team
//! and, for an enforcing rule with an action, a lockout command for the switch ([`decide`]);
//! a control record becomes a manual lock, release or extension, or records the switch's
//! acknowledgement ([`control`]); every lock is a record in the [`LockBook`]. Ids are content
//! hashes, so the same decision always has the same id (the switch and readers drop repeats).
//!
//! - [`decide`]: rule hits; [`guard`]: the lockout guard;
//! - [`locks`]: lock records; [`control`]: control records and unacknowledged commands;
//! - [`evidence`]: the events behind each alert, for the risk console;
//! - [`words`]: how a reason sentence writes a value.

mod control;
pub mod decide;
pub mod evidence;
mod guard;
pub mod locks;
pub mod words;

pub use control::{apply_control, overdue_alerts, ControlReject, ACK_RULE, REJECTED_RULE};
pub use decide::{decide, LockOutcome};
pub use evidence::Evidence;
pub use guard::{Guard, GUARD_WINDOW};
pub use locks::LockBook;

use crate::control::TargetKind;
use crate::rules::{Entity, Mode, Severity};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

/// An alert (output contract). Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub ts: String,
    pub rule: String,
    pub severity: Severity,
    pub mode: Mode,
    pub entity: Entity,
    pub entity_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pan_masked: Option<String>,
    pub terminal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant: Option<String>,
    pub event_ids: Vec<String>,
    pub reason: String,
    pub features: serde_json::Map<String, serde_json::Value>,
}

/// A command for the switch (output contract): lock, unlock or extend a card or a terminal.
/// A rule's lock names its rule, alert and events; a person's command its control record,
/// actor and reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub command_id: String,
    pub ts: String,
    /// `lock_card`, `lock_terminal`, `unlock_card`, `unlock_terminal` or `extend`.
    pub action: String,
    pub target: String,
    pub target_kind: TargetKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pan_masked: Option<String>,
    /// When the lock ends (locks and extensions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub reason_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What one input produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decisions {
    pub alerts: Vec<Alert>,
    pub commands: Vec<Command>,
    /// The events behind each alert (one per alert).
    pub evidence: Vec<Evidence>,
    /// Control records the engine refused (an acknowledgement of an unknown command, an
    /// extension of a lock that is not in force).
    pub rejects: Vec<ControlReject>,
}

impl Decisions {
    pub fn clear(&mut self) {
        self.alerts.clear();
        self.commands.clear();
        self.evidence.clear();
        self.rejects.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
            && self.commands.is_empty()
            && self.evidence.is_empty()
            && self.rejects.is_empty()
    }
}

/// A content id: `prefix` and 32 hex digits of xxh3-128 over `parts`.
pub fn id128(prefix: &str, parts: &[&str]) -> String {
    let mut buf = String::new();
    for p in parts {
        buf.push_str(p);
        buf.push('\u{1f}');
    }
    format!("{prefix}{:032x}", xxh3_128(buf.as_bytes()))
}

#[cfg(test)]
mod tests;
