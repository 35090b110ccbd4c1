//! Decisions: turn a rule hit into an alert for the risk team and, for enforcing rules with an
//! action, a lockout command for the switch. Ids are content hashes, so the same decision always
//! has the same id (the switch and readers drop repeats); the lock table makes sure an entity
//! already locked is not locked again until its lock expires.

pub mod locks;

use crate::event::{format_ts, Event, Millis};
use crate::feature::Features;
use crate::feature::{Field, Val};
use crate::keyed::{key_hash, sorted};
use crate::rules::compile::Piece;
use crate::rules::config::ActionKind;
use crate::rules::exec::Hit;
use crate::rules::{Entity, Mode, Rule, Severity};
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

    /// Is a lock of this kind on `target` in force at `now`?
    pub fn is_locked(&self, kind: ActionKind, target: &str, now: Millis) -> bool {
        self.held
            .get(&Self::slot(kind, target))
            .is_some_and(|exp| *exp > now)
    }

    pub fn lock(&mut self, kind: ActionKind, target: &str, until: Millis) {
        self.held.insert(Self::slot(kind, target), until);
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

/// Lockout safety: at most `limit` lockouts per rule per minute of event time. Past it, the
/// rule's lockouts are held back (its alerts say `held_by_guard`) and one critical alert per
/// minute says why, so a bad rule cannot lock thousands of cards. Event time keeps replay and
/// live identical.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Guard {
    /// Lockouts issued within the last minute, per rule id.
    issued: std::collections::BTreeMap<String, std::collections::VecDeque<Millis>>,
    /// Until when the "guard tripped" alert for a rule is not repeated.
    quiet_until: std::collections::BTreeMap<String, Millis>,
}

/// The guard's window.
pub const GUARD_WINDOW: Millis = 60_000;

impl Guard {
    /// May `rule` issue one more lockout at `now`? Records it if so.
    fn allow(&mut self, rule: &str, now: Millis, limit: Option<u32>) -> bool {
        let Some(limit) = limit else { return true };
        let q = self.issued.entry(rule.to_string()).or_default();
        while q.front().is_some_and(|t| *t <= now - GUARD_WINDOW) {
            q.pop_front();
        }
        if q.len() as u32 >= limit {
            return false;
        }
        q.push_back(now);
        true
    }

    /// True once per window while a rule is held: time to say so.
    fn announce(&mut self, rule: &str, now: Millis) -> bool {
        let until = self
            .quiet_until
            .entry(rule.to_string())
            .or_insert(Millis::MIN);
        if now >= *until {
            *until = now + GUARD_WINDOW;
            true
        } else {
            false
        }
    }

    pub fn evict(&mut self, now: Millis) {
        self.issued
            .retain(|_, q| q.back().is_some_and(|t| *t > now - GUARD_WINDOW));
        self.quiet_until.retain(|_, t| *t > now);
    }
}

/// Outcome of building a decision, for the engine's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    None,
    Issued,
    AlreadyLocked,
    Shadow,
    HeldByGuard,
}

/// Build the alert (and command) for `hit` of `rule` on `ev`. `now` is stream time (the newest
/// event time processed, at least `ev.ts`): a lock starts then. For an event processed in
/// order that is its own time; for a late one (beyond the allowed lateness) it is later, so
/// the lock the switch receives has not already expired by the stream's clock.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    rule: &Rule,
    hit: Hit,
    ev: &Event,
    f: &Features,
    now: Millis,
    locks: &mut Locks,
    guard: (&mut Guard, Option<u32>),
    out: &mut Decisions,
) -> LockOutcome {
    let now = now.max(ev.ts);
    let (guard, limit) = guard;
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
            } else if locks.is_locked(action.kind, target, now) {
                LockOutcome::AlreadyLocked
            } else if !guard.allow(&rule.id, ev.ts, limit) {
                LockOutcome::HeldByGuard
            } else {
                locks.lock(action.kind, target, now + action.ttl);
                LockOutcome::Issued
            };
            let status = match outcome {
                LockOutcome::Issued => "issued",
                LockOutcome::AlreadyLocked => "already_locked",
                LockOutcome::HeldByGuard => "held_by_guard",
                _ => "shadow",
            };
            if outcome == LockOutcome::HeldByGuard && guard.announce(&rule.id, ev.ts) {
                out.alerts.push(guard_alert(rule, ev, limit.unwrap_or(0)));
            }
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
                    expires_at: format_ts(now + action.ttl),
                    reason_code: action.reason_code.to_string(),
                    rule: rule.id.to_string(),
                    alert_id: alert_id.clone(),
                    event_ids: hit.event_ids.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
    }
    let models: Vec<&str> = {
        let mut v: Vec<&str> = rule.reads.iter().filter_map(|r| r.model()).collect();
        v.dedup();
        v
    };
    if !models.is_empty() {
        let (text, rows) = crate::models::explain(&f.model, &models, ev.amount);
        features.insert("explain".into(), text.into());
        features.insert(
            "contributions".into(),
            serde_json::to_value(rows).unwrap_or_default(),
        );
    }
    let reason = render(&rule.reason, &features, ev, f);
    out.alerts.push(Alert {
        alert_id,
        ts: format_ts(ev.ts),
        rule: rule.id.to_string(),
        severity: rule.severity,
        mode: rule.mode,
        entity: rule.entity,
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

/// The critical alert raised when the guard starts holding a rule's lockouts back.
fn guard_alert(rule: &Rule, ev: &Event, limit: u32) -> Alert {
    let mut features = serde_json::Map::new();
    features.insert("held_rule".into(), rule.id.as_str().into());
    features.insert("limit_per_minute".into(), limit.into());
    Alert {
        alert_id: id128("al_", &["lockout_guard", &rule.id, &ev.id]),
        ts: format_ts(ev.ts),
        rule: "lockout_guard".into(),
        severity: Severity::Critical,
        mode: Mode::Enforce,
        entity: rule.entity,
        entity_id: rule.id.to_string(),
        card: None,
        pan_masked: None,
        terminal: ev.terminal.to_string(),
        merchant: ev.merchant.as_ref().map(|s| s.to_string()),
        event_ids: vec![ev.id.to_string()],
        reason: format!(
            "lockout guard: rule {} reached {limit} lockouts within 1m; its further lockouts are held back as alerts until the rate falls (possible bad rule)",
            rule.id
        ),
        features,
    }
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
