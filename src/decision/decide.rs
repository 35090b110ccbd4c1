//! A rule hit becomes an alert, and for an enforcing rule with an action a lockout command,
//! unless the target is locked already or the guard holds it back.

use super::locks::{CommandState, LockRecord, Origin};
use super::{id128, Alert, Command, Decisions, Guard, LockBook};
use crate::control::TargetKind;
use crate::event::{format_ts, Event, Millis};
use crate::feature::{Features, Field, Val};
use crate::rules::compile::Piece;
use crate::rules::config::ActionKind;
use crate::rules::exec::Hit;
use crate::rules::{Entity, Mode, Rule, Severity};
use compact_str::CompactString;

/// Outcome of building a decision, for the engine's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    None,
    Issued,
    AlreadyLocked,
    Shadow,
    HeldByGuard,
}

/// What a decision needs besides the rule, the hit and the event: the lock records, the
/// guard and its limit, stream time, and how long the switch has to acknowledge a command.
pub struct Ctx<'a> {
    pub locks: &'a mut LockBook,
    pub guard: &'a mut Guard,
    pub limit: Option<u32>,
    /// Stream time (the newest event time processed, at least the event's): a lock starts
    /// then. For an event processed in order that is its own time; for a late one (beyond the
    /// allowed lateness) it is later, so the lock the switch receives has not already expired
    /// by the stream's clock.
    pub now: Millis,
    pub ack_timeout: Millis,
}

/// Build the alert (and command, and evidence) for `hit` of `rule` on `ev`.
pub fn decide(
    rule: &Rule,
    hit: Hit,
    ev: &Event,
    f: &Features,
    cx: Ctx<'_>,
    out: &mut Decisions,
) -> LockOutcome {
    let now = cx.now.max(ev.ts);
    let (guard, limit, locks) = (cx.guard, cx.limit, cx.locks);
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
        let (target, kind): (Option<&CompactString>, TargetKind) = match action.kind {
            ActionKind::LockCard => (ev.card.as_ref(), TargetKind::Card),
            ActionKind::LockTerminal => (Some(&ev.terminal), TargetKind::Terminal),
        };
        if let Some(target) = target {
            outcome = if rule.mode == Mode::Shadow {
                LockOutcome::Shadow
            } else if locks.is_locked(kind, target, now) {
                LockOutcome::AlreadyLocked
            } else if !guard.allow(&rule.id, ev.ts, limit) {
                LockOutcome::HeldByGuard
            } else {
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
                let c = Command {
                    command_id: id128("cmd_", &[&alert_id, action.kind.as_str(), target]),
                    ts: format_ts(ev.ts),
                    action: action.kind.as_str().to_string(),
                    target: target.to_string(),
                    target_kind: kind,
                    pan_masked: match kind {
                        TargetKind::Card => ev.pan_masked.as_ref().map(|s| s.to_string()),
                        TargetKind::Terminal => None,
                    },
                    expires_at: Some(format_ts(now + action.ttl)),
                    reason_code: action.reason_code.to_string(),
                    rule: Some(rule.id.to_string()),
                    alert_id: Some(alert_id.clone()),
                    event_ids: hit.event_ids.iter().map(|s| s.to_string()).collect(),
                    control_id: None,
                    actor: None,
                    reason: None,
                };
                locks.place(
                    lock_record(&c, rule, ev.ts, now + action.ttl),
                    cx.ack_timeout,
                );
                command = Some(c);
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
    out.evidence.push(super::Evidence::of(
        &alert_id,
        &rule.id,
        ev,
        f,
        &hit.event_ids,
        &hit.event_ts,
    ));
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

/// The record of a lock a rule placed.
fn lock_record(c: &Command, rule: &Rule, issued: Millis, expires: Millis) -> LockRecord {
    LockRecord {
        target: c.target.clone(),
        kind: c.target_kind,
        pan_masked: c.pan_masked.clone(),
        origin: Origin::Rule(rule.id.to_string()),
        alert_id: c.alert_id.clone(),
        reason_code: c.reason_code.clone(),
        reason: None,
        issued_at: issued,
        expires_at: expires,
        released_at: None,
        released_by: None,
        release_reason: None,
        commands: vec![CommandState::new(&c.command_id, &c.action, issued)],
    }
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
    let currency = ev.currency.as_deref();
    let mut s = String::new();
    for p in t {
        match p {
            Piece::Text(x) => s.push_str(x),
            Piece::Name(n) => {
                let v = match features.get(n) {
                    Some(v) => v.clone(),
                    None => match Field::lookup(n).map(|(fl, _)| fl.read(ev, f)) {
                        Some(Val::Str(x)) => x.into(),
                        Some(Val::Int(x)) => x.into(),
                        Some(Val::Float(x)) => x.into(),
                        Some(Val::Bool(x)) => x.into(),
                        _ => serde_json::Value::Null,
                    },
                };
                s.push_str(&super::words::word(n, &v, currency));
            }
        }
    }
    s
}
