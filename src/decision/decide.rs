//! A rule hit becomes an alert, and for an enforcing rule with an action a lockout command,
//! unless the target is locked already or the guard holds it back.

use super::locks::{CommandState, LockRecord, Origin};
use super::{id128, Alert, Command, Decisions, Guard, LockBook};
use crate::control::TargetKind;
use crate::event::{format_ts, Event};
use crate::feature::{Features, Field, Val};
use crate::rules::compile::Piece;
use crate::rules::config::ActionKind;
use crate::rules::exec::Hit;
use crate::rules::{Entity, Mode, Rule, Severity};
use crate::time::{EventTime, Span};
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
    pub now: EventTime,
    pub ack_timeout: Span,
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
    let mut features = hit.features;
    let alert_id = id128("al_", &[&rule.id, &ev.id]);
    let (outcome, command) = match &rule.action {
        Some(action) => {
            let lock = Lockout {
                rule,
                action,
                ev,
                alert_id: &alert_id,
                event_ids: &hit.event_ids,
                now,
            };
            lock.decide(cx, &mut features, out)
        }
        None => (LockOutcome::None, None),
    };
    explain(rule, f, ev, &mut features);
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
        entity_id: entity_id(rule.entity, ev),
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

/// The alert's entity id: the card (token), terminal or merchant; the terminal when the
/// event has no card or merchant.
fn entity_id(entity: Entity, ev: &Event) -> String {
    match entity {
        Entity::Card => ev.card.as_deref().unwrap_or(&ev.terminal).to_string(),
        Entity::Terminal => ev.terminal.to_string(),
        Entity::Merchant => ev.merchant.as_deref().unwrap_or(&ev.terminal).to_string(),
    }
}

/// A rule's lockout on one event, about to be decided.
struct Lockout<'a> {
    rule: &'a Rule,
    action: &'a crate::rules::compile::Action,
    ev: &'a Event,
    alert_id: &'a str,
    event_ids: &'a [CompactString],
    now: EventTime,
}

impl Lockout<'_> {
    /// Shadow, already locked, held by the guard, or issued (the command, its lock record).
    fn decide(
        &self,
        cx: Ctx<'_>,
        features: &mut serde_json::Map<String, serde_json::Value>,
        out: &mut Decisions,
    ) -> (LockOutcome, Option<Command>) {
        let (rule, ev, now) = (self.rule, self.ev, self.now);
        let (target, kind): (Option<&CompactString>, TargetKind) = match self.action.kind {
            ActionKind::LockCard => (ev.card.as_ref(), TargetKind::Card),
            ActionKind::LockTerminal => (Some(&ev.terminal), TargetKind::Terminal),
        };
        let Some(target) = target else {
            return (LockOutcome::None, None);
        };
        let outcome = if rule.mode == Mode::Shadow {
            LockOutcome::Shadow
        } else if cx.locks.is_locked(kind, target, now) {
            LockOutcome::AlreadyLocked
        } else if !cx.guard.allow(&rule.id, ev.ts, cx.limit) {
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
        if outcome == LockOutcome::HeldByGuard && cx.guard.announce(&rule.id, ev.ts) {
            out.alerts
                .push(guard_alert(rule, ev, cx.limit.unwrap_or(0)));
        }
        features.insert("action".into(), self.action.kind.as_str().into());
        features.insert("action_status".into(), status.into());
        if outcome != LockOutcome::Issued {
            return (outcome, None);
        }
        let c = self.command(target, kind);
        let expires = now + self.action.ttl;
        cx.locks
            .place(lock_record(&c, rule, ev.ts, expires), cx.ack_timeout);
        (outcome, Some(c))
    }

    /// The lock command; its id depends on the alert, the action and the target alone.
    fn command(&self, target: &str, kind: TargetKind) -> Command {
        let (ev, action) = (self.ev, self.action);
        Command {
            command_id: id128("cmd_", &[self.alert_id, action.kind.as_str(), target]),
            ts: format_ts(ev.ts),
            action: action.kind.as_str().to_string(),
            target: target.to_string(),
            target_kind: kind,
            pan_masked: match kind {
                TargetKind::Card => ev.pan_masked.as_ref().map(|s| s.to_string()),
                TargetKind::Terminal => None,
            },
            expires_at: Some(format_ts(self.now + action.ttl)),
            reason_code: action.reason_code.to_string(),
            rule: Some(self.rule.id.to_string()),
            alert_id: Some(self.alert_id.to_string()),
            event_ids: self.event_ids.iter().map(|s| s.to_string()).collect(),
            control_id: None,
            actor: None,
            reason: None,
        }
    }
}

/// For a rule that reads model scores: the models' explanation and each input's part.
fn explain(
    rule: &Rule,
    f: &Features,
    ev: &Event,
    features: &mut serde_json::Map<String, serde_json::Value>,
) {
    let mut models: Vec<&str> = rule.reads.iter().filter_map(|r| r.model()).collect();
    models.dedup();
    if models.is_empty() {
        return;
    }
    let (text, rows) = crate::models::explain(&f.model, &models, ev.amount);
    features.insert("explain".into(), text.into());
    features.insert(
        "contributions".into(),
        serde_json::to_value(rows).unwrap_or_default(),
    );
}

/// The record of a lock a rule placed.
fn lock_record(c: &Command, rule: &Rule, issued: EventTime, expires: EventTime) -> LockRecord {
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
