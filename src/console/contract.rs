//! The JSON contracts the console reads and writes besides alerts (which it reads with
//! [`crate::decision::Alert`]): commands with the lock-lifecycle fields, control records
//! (lock/unlock/extend written by the console, acks written by the switch), evidence records
//! (the events behind an alert, tokenised and masked), the lock view, and the labels file for
//! `switchguard train --labels`. All parsing is lenient: unknown fields are ignored and
//! optional fields optional (/work/notes/contracts.md). Kept in one file so it can move into
//! a shared contract module.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A command on `switch.commands`. [`crate::decision::Command`] requires `expires_at`, `rule`,
/// `alert_id` and `event_ids`, which manual and unlock commands do not carry, so the console
/// reads commands with this lenient copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub command_id: String,
    pub ts: Value,
    pub action: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pan_masked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
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

impl CommandRecord {
    /// `card` or `terminal`: from `target_kind`, else from the action's suffix.
    pub fn kind(&self) -> &str {
        match self.target_kind.as_deref() {
            Some(k) => k,
            None if self.action.ends_with("_terminal") => "terminal",
            None => "card",
        }
    }
}

/// A control record on `switch.control` (and `control.jsonl` of a replay output).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ControlRecord {
    pub id: String,
    /// RFC 3339 with offset, or epoch ms.
    pub ts: Value,
    /// `lock`, `unlock`, `extend` or `ack`.
    pub control: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// Present only in records written by others (the console never sends one); the console
    /// drops it at ingest and keeps its mask alone.
    #[serde(default, skip_serializing)]
    pub pan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Acks: the command acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// Acks: `applied`, `rejected` or `not_found`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ControlRecord {
    /// The record's target and its kind (`card`/`terminal`), if it names one. A `pan` is
    /// reported by its mask only.
    pub fn target(&self) -> Option<(String, &'static str)> {
        if let Some(c) = &self.card {
            return Some((c.clone(), "card"));
        }
        if let Some(t) = &self.terminal {
            return Some((t.clone(), "terminal"));
        }
        self.pan
            .as_deref()
            .map(|p| (crate::pan::redact(p).into_owned(), "card"))
    }
}

/// One event behind an alert, as the core emits it on `risk.evidence`: tokenised and masked.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvidenceEvent {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub ts: Value,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub card: Option<String>,
    #[serde(default)]
    pub pan_masked: Option<String>,
    #[serde(default)]
    pub terminal: Option<String>,
    #[serde(default)]
    pub merchant: Option<String>,
    #[serde(default)]
    pub mcc: Option<Value>,
    #[serde(default)]
    pub amount: Option<Value>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub entry_mode: Option<String>,
    #[serde(default)]
    pub pin: Option<String>,
    #[serde(default)]
    pub response_code: Option<String>,
    #[serde(default)]
    pub auth_ref: Option<String>,
    #[serde(default)]
    pub qr_ref: Option<String>,
    /// Fields the contract does not name, shown as they are (a clear `pan` is never kept).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The evidence record of one alert.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvidenceRecord {
    pub alert_id: String,
    #[serde(default)]
    pub ts: Value,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub events: Vec<EvidenceEvent>,
}

impl EvidenceRecord {
    /// Defence in depth: the core never sends a clear PAN, but if a record carries one the
    /// console keeps its mask alone, never the number.
    pub fn scrub(&mut self) {
        for e in &mut self.events {
            if let Some(Value::String(p)) = e.other.remove("pan") {
                if e.pan_masked.is_none() && crate::pan::is_pan(&p) {
                    e.pan_masked = Some(crate::pan::mask(&p).to_string());
                }
            }
        }
    }
}

/// Acknowledgement state of a command: the core's own type.
pub use crate::control::AckStatus;

/// One lock as the console reconstructs it from commands and acks (the lock view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockRecord {
    pub target: String,
    /// `card` or `terminal`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pan_masked: Option<String>,
    /// The rule id, or the actor of a manual lock.
    pub origin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    pub reason_code: String,
    /// The command that made the lock.
    pub command_id: String,
    /// Epoch ms (event time).
    pub issued_at: i64,
    /// Epoch ms after extends; `None` when no command gave one.
    pub expires_at: Option<i64>,
    pub released_at: Option<i64>,
    pub released_by: Option<String>,
    /// The lock command's acknowledgement.
    pub ack: AckStatus,
}

/// A case's disposition, kept apart from its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    ConfirmedFraud,
    FalsePositive,
    Inconclusive,
}

impl Disposition {
    pub const ALL: [Disposition; 3] = [
        Self::ConfirmedFraud,
        Self::FalsePositive,
        Self::Inconclusive,
    ];
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfirmedFraud => "confirmed_fraud",
            Self::FalsePositive => "false_positive",
            Self::Inconclusive => "inconclusive",
        }
    }
}

/// One line of the labels file (`console labels export` → `switchguard train --labels`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub alert_id: String,
    pub rule: String,
    pub entity: String,
    pub entity_id: String,
    pub event_ids: Vec<String>,
    pub disposition: Disposition,
    pub disposed_at: String,
    pub actor: String,
}

/// Event time of a contract `ts`: RFC 3339 with offset, or epoch ms (number or digits).
pub fn ts_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => parse_ts(s),
        _ => None,
    }
}

/// [`ts_ms`] for text.
pub fn parse_ts(s: &str) -> Option<i64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_and_rule_commands_parse_leniently() {
        let rule: CommandRecord = serde_json::from_str(
            r#"{"command_id":"cmd_1","ts":"2026-10-01T01:05:00.000Z","action":"lock_card",
            "target":"tok_a","pan_masked":"622588******0018","expires_at":"2026-10-02T01:05:00.000Z",
            "reason_code":"PIN_BRUTE_FORCE","rule":"pin_consecutive_wrong","alert_id":"al_1",
            "event_ids":["e1"],"future_field":1}"#,
        )
        .unwrap();
        assert_eq!(rule.kind(), "card");
        assert_eq!(rule.rule.as_deref(), Some("pin_consecutive_wrong"));
        let manual: CommandRecord = serde_json::from_str(
            r#"{"command_id":"cmd_2","ts":1790000000000,"action":"unlock_terminal",
            "target":"T1","reason_code":"MANUAL_UNLOCK","control_id":"console-1","actor":"alice",
            "reason":"verified"}"#,
        )
        .unwrap();
        assert_eq!(manual.kind(), "terminal");
        assert_eq!(ts_ms(&manual.ts), Some(1_790_000_000_000));
        assert!(manual.expires_at.is_none() && manual.rule.is_none());
    }

    #[test]
    fn a_clear_pan_in_evidence_is_kept_as_its_mask_only() {
        let mut ev: EvidenceRecord = serde_json::from_str(
            r#"{"alert_id":"al_1","events":[{"id":"e1","pan":"6225880000000018","mcc":"5411","x":2}]}"#,
        )
        .unwrap();
        ev.scrub();
        let text = serde_json::to_string(&ev).unwrap();
        assert!(!text.contains("6225880000000018"), "{text}");
        assert_eq!(ev.events[0].pan_masked.as_deref(), Some("622588******0018"));
        assert_eq!(ev.events[0].other.get("x"), Some(&Value::from(2)));
    }

    #[test]
    fn control_records_name_their_target_and_never_write_a_pan() {
        let c: ControlRecord = serde_json::from_str(
            r#"{"id":"c1","ts":"2026-10-01T01:05:00+08:00","control":"lock","pan":"6225880000000018","ttl":"24h","actor":"a","reason":"r"}"#,
        )
        .unwrap();
        assert_eq!(c.target(), Some(("622588******0018".into(), "card")));
        assert_eq!(ts_ms(&c.ts), Some(1_790_787_900_000));
        assert!(!serde_json::to_string(&c)
            .unwrap()
            .contains("6225880000000018"));
    }

    #[test]
    fn labels_round_trip_in_the_contract_shape() {
        let l = Label {
            alert_id: "al_1".into(),
            rule: "r".into(),
            entity: "card".into(),
            entity_id: "tok_a".into(),
            event_ids: vec!["e1".into()],
            disposition: Disposition::ConfirmedFraud,
            disposed_at: "2026-10-02T09:00:00.000Z".into(),
            actor: "alice".into(),
        };
        let s = serde_json::to_string(&l).unwrap();
        assert!(s.contains(r#""disposition":"confirmed_fraud""#), "{s}");
        assert_eq!(serde_json::from_str::<Label>(&s).unwrap(), l);
    }
}
