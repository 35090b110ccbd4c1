//! Decisions: turn a rule hit into an alert for the risk team and, for enforcing rules with an
//! action, a lockout command for the switch. Ids are content hashes, so the same decision always
//! has the same id (the switch and readers drop repeats); the lock table makes sure an entity
//! already locked is not locked again until its lock expires.

use crate::event::{format_ts, Event, Millis};
use crate::rules::compile::Piece;
use crate::rules::config::ActionKind;
use crate::rules::exec::Hit;
use crate::rules::fields::{Field, Val};
use crate::rules::{Entity, Mode, Rule};
use crate::state::{key_hash, sorted, Features};
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

/// An alert (output contract). Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub ts: String,
    pub rule: String,
    pub severity: String,
    pub mode: String,
    pub entity: String,
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

/// A lockout command for the switch (output contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub command_id: String,
    pub ts: String,
    pub action: String,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pan_masked: Option<String>,
    pub expires_at: String,
    pub reason_code: String,
    pub rule: String,
    pub alert_id: String,
    pub event_ids: Vec<String>,
}

/// What one event produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decisions {
    pub alerts: Vec<Alert>,
    pub commands: Vec<Command>,
}

impl Decisions {
    pub fn clear(&mut self) {
        self.alerts.clear();
        self.commands.clear();
    }
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.commands.is_empty()
    }
}

/// Locks in force, by (action, target hash) → expiry (event time).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Locks {
    #[serde(serialize_with = "sorted")]
    held: FxHashMap<u64, Millis>,
}

impl Locks {
    fn slot(kind: ActionKind, target: &str) -> u64 {
        key_hash(target) ^ (kind as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Take the lock if free (or expired); false if it is already held at `now`.
    pub fn try_lock(&mut self, kind: ActionKind, target: &str, now: Millis, until: Millis) -> bool {
        let slot = Self::slot(kind, target);
        match self.held.get(&slot) {
            Some(exp) if *exp > now => false,
            _ => {
                self.held.insert(slot, until);
                true
            }
        }
    }

    pub fn evict(&mut self, now: Millis) {
        self.held.retain(|_, exp| *exp > now);
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

fn id128(prefix: &str, parts: &[&str]) -> String {
    let mut buf = String::new();
    for p in parts {
        buf.push_str(p);
        buf.push('\u{1f}');
    }
    format!("{prefix}{:032x}", xxh3_128(buf.as_bytes()))
}

/// Outcome of building a decision, for the engine's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    None,
    Issued,
    AlreadyLocked,
    Shadow,
}

/// Build the alert (and command) for `hit` of `rule` on `ev`.
pub fn decide(
    rule: &Rule,
    hit: Hit,
    ev: &Event,
    f: &Features,
    locks: &mut Locks,
    out: &mut Decisions,
) -> LockOutcome {
    let mut features = hit.features;
    let entity_id: String = match rule.entity {
        Entity::Card => ev.card.as_deref().unwrap_or(&ev.terminal).to_string(),
        Entity::Terminal => ev.terminal.to_string(),
        Entity::Merchant => ev.merchant.as_deref().unwrap_or(&ev.terminal).to_string(),
    };
    let alert_id = id128("al_", &[&rule.id, &ev.id]);
    let mut outcome = LockOutcome::None;
    let mut command = None;
    if let Some(action) = &rule.action {
        let target: Option<&CompactString> = match action.kind {
            ActionKind::LockCard => ev.card.as_ref(),
            ActionKind::LockTerminal => Some(&ev.terminal),
        };
        if let Some(target) = target {
            outcome = if rule.mode == Mode::Shadow {
                LockOutcome::Shadow
            } else if locks.try_lock(action.kind, target, ev.ts, ev.ts + action.ttl) {
                LockOutcome::Issued
            } else {
                LockOutcome::AlreadyLocked
            };
            let status = match outcome {
                LockOutcome::Issued => "issued",
                LockOutcome::AlreadyLocked => "already_locked",
                _ => "shadow",
            };
            features.insert("action".into(), action.kind.as_str().into());
            features.insert("action_status".into(), status.into());
            if outcome == LockOutcome::Issued {
                command = Some(Command {
                    command_id: id128("cmd_", &[&alert_id, action.kind.as_str(), target]),
                    ts: format_ts(ev.ts),
                    action: action.kind.as_str().to_string(),
                    target: target.to_string(),
                    pan_masked: match action.kind {
                        ActionKind::LockCard => ev.pan_masked.as_ref().map(|s| s.to_string()),
                        ActionKind::LockTerminal => None,
                    },
                    expires_at: format_ts(ev.ts + action.ttl),
                    reason_code: action.reason_code.to_string(),
                    rule: rule.id.to_string(),
                    alert_id: alert_id.clone(),
                    event_ids: hit.event_ids.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
    }
    let reason = render(&rule.reason, &features, ev, f);
    out.alerts.push(Alert {
        alert_id,
        ts: format_ts(ev.ts),
        rule: rule.id.to_string(),
        severity: rule.severity.as_str().to_string(),
        mode: rule.mode.as_str().to_string(),
        entity: rule.entity.as_str().to_string(),
        entity_id,
        card: ev.card.as_ref().map(|s| s.to_string()),
        pan_masked: ev.pan_masked.as_ref().map(|s| s.to_string()),
        terminal: ev.terminal.to_string(),
        merchant: ev.merchant.as_ref().map(|s| s.to_string()),
        event_ids: hit.event_ids.into_iter().map(|s| s.to_string()).collect(),
        reason,
        features,
    });
    out.commands.extend(command);
    outcome
}

fn render(
    t: &[Piece],
    features: &serde_json::Map<String, serde_json::Value>,
    ev: &Event,
    f: &Features,
) -> String {
    let mut s = String::new();
    for p in t {
        match p {
            Piece::Text(x) => s.push_str(x),
            Piece::Name(n) => {
                if let Some(v) = features.get(n) {
                    match v {
                        serde_json::Value::String(x) => s.push_str(x),
                        serde_json::Value::Null => s.push('?'),
                        other => s.push_str(&other.to_string()),
                    }
                } else {
                    match Field::lookup(n).map(|(fl, _)| fl.read(ev, f)) {
                        Some(Val::Str(x)) => s.push_str(x),
                        Some(Val::Int(x)) => s.push_str(&x.to_string()),
                        Some(Val::Float(x)) => s.push_str(&format!("{x:.1}")),
                        Some(Val::Bool(x)) => s.push_str(&x.to_string()),
                        _ => s.push('?'),
                    }
                }
            }
        }
    }
    s
}
