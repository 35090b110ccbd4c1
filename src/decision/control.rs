//! Control records applied: a person's lock, release or extension becomes a command for the
//! switch and a change to the lock records; the switch's acknowledgement is recorded, and a
//! refusal reported. A command the switch has not acknowledged when its deadline passes (event
//! time, so replay agrees) is reported once.

use super::locks::{AckOutcome, CommandState, LockRecord, Origin};
use super::{id128, Alert, Command, Decisions, LockBook};
use crate::control::{AckStatus, Action, Control, Target, TargetKind, Until};
use crate::event::format_ts;
use crate::rules::{Entity, Mode, Severity};
use crate::time::{EventTime, Span};
use serde::Serialize;

/// The alert raised for a command not acknowledged in time.
pub const ACK_RULE: &str = "command_unacknowledged";
/// The alert raised for a command the switch refused.
pub const REJECTED_RULE: &str = "command_rejected";

/// A control record the engine refused, with why (written beside the decoder's rejects).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlReject {
    pub control_id: String,
    pub reason_code: &'static str,
    pub reason: String,
}

/// The reason codes a manual command carries.
fn reason_code(a: &Action) -> &'static str {
    match a {
        Action::Lock { .. } => "MANUAL_LOCK",
        Action::Unlock { .. } => "MANUAL_UNLOCK",
        Action::Extend { .. } => "MANUAL_EXTEND",
        Action::Ack { .. } => "ACK",
    }
}

/// The command of a manual control record; its id depends on the record alone, so a repeat
/// gives the same id.
fn manual_command(
    c: &Control,
    target: &Target,
    action: &str,
    expires: Option<EventTime>,
) -> Command {
    let (actor, reason) = match &c.action {
        Action::Lock { actor, reason, .. }
        | Action::Unlock { actor, reason, .. }
        | Action::Extend { actor, reason, .. } => (actor.to_string(), reason.to_string()),
        Action::Ack { .. } => unreachable!("an acknowledgement sends no command"),
    };
    Command {
        command_id: command_id(c, target, action),
        ts: format_ts(c.ts),
        action: action.into(),
        target: target.id.to_string(),
        target_kind: target.kind,
        pan_masked: target.pan_masked.as_ref().map(|p| p.to_string()),
        expires_at: expires.map(format_ts),
        reason_code: reason_code(&c.action).into(),
        rule: None,
        alert_id: None,
        event_ids: Vec::new(),
        control_id: Some(c.id.to_string()),
        actor: Some(actor),
        reason: Some(reason),
    }
}

/// Apply one control record at `now` (the engine passes its own time). `Ok(false)` for a
/// repeat of a manual record already applied (its command id is in the lock records, which
/// are kept far longer than the event-id dedup window); `Err` when the engine refuses it,
/// the caller counts and writes the reject.
pub fn apply_control(
    c: &Control,
    book: &mut LockBook,
    now: EventTime,
    ack_timeout: Span,
    out: &mut Decisions,
) -> Result<bool, ControlReject> {
    let now = now.max(c.ts);
    if let Some((target, action)) = manual_target(c) {
        let id = command_id(c, target, action);
        if book.has_command(&id) {
            return Ok(false);
        }
    }
    let cx = Apply {
        c,
        now,
        ack_timeout,
    };
    match &c.action {
        Action::Lock {
            target,
            ttl,
            reason,
            actor,
        } => cx.lock(target, *ttl, reason, actor, book, out),
        Action::Unlock {
            target,
            reason,
            actor,
        } => cx.unlock(target, reason, actor, book, out),
        Action::Extend { target, until, .. } => cx.extend(target, *until, book, out)?,
        Action::Ack {
            command_id,
            status,
            detail,
        } => ack(c, command_id, *status, detail.as_deref(), book, now, out)?,
    }
    Ok(true)
}

/// One manual control record being applied at `now`.
struct Apply<'a> {
    c: &'a Control,
    now: EventTime,
    ack_timeout: Span,
}

impl Apply<'_> {
    fn lock(
        &self,
        target: &Target,
        ttl: Span,
        reason: &str,
        actor: &str,
        book: &mut LockBook,
        out: &mut Decisions,
    ) {
        let now = self.now;
        let cmd = manual_command(self.c, target, target.kind.lock_action(), Some(now + ttl));
        let rec = LockRecord {
            target: target.id.to_string(),
            kind: target.kind,
            pan_masked: target.pan_masked.as_ref().map(|p| p.to_string()),
            origin: Origin::Manual(actor.to_string()),
            alert_id: None,
            reason_code: cmd.reason_code.clone(),
            reason: Some(reason.to_string()),
            issued_at: now,
            expires_at: now + ttl,
            released_at: None,
            released_by: None,
            release_reason: None,
            commands: vec![CommandState::new(&cmd.command_id, &cmd.action, now)],
        };
        book.place(rec, self.ack_timeout);
        out.commands.push(cmd);
    }

    fn unlock(
        &self,
        target: &Target,
        reason: &str,
        actor: &str,
        book: &mut LockBook,
        out: &mut Decisions,
    ) {
        let now = self.now;
        let cmd = manual_command(self.c, target, target.kind.unlock_action(), None);
        let state = CommandState::new(&cmd.command_id, &cmd.action, now);
        let released = book.update_active(
            target.kind,
            &target.id,
            now,
            state.clone(),
            self.ack_timeout,
            |r| {
                r.released_at = Some(now);
                r.released_by = Some(actor.to_string());
                r.release_reason = Some(reason.to_string());
            },
        );
        if released.is_none() {
            // Not locked by switchguard (perhaps by the switch team): the release is sent and
            // recorded all the same, so "who released it" has an answer.
            book.place(
                external(target, actor, reason, now, state),
                self.ack_timeout,
            );
        }
        out.commands.push(cmd);
    }

    fn extend(
        &self,
        target: &Target,
        until: Until,
        book: &mut LockBook,
        out: &mut Decisions,
    ) -> Result<(), ControlReject> {
        let now = self.now;
        let expires = match until {
            Until::Ttl(t) => now + t,
            Until::At(at) => at,
        };
        let cmd = manual_command(self.c, target, "extend", Some(expires));
        let state = CommandState::new(&cmd.command_id, &cmd.action, now);
        book.update_active(target.kind, &target.id, now, state, self.ack_timeout, |r| {
            r.expires_at = expires;
        })
        .ok_or_else(|| ControlReject {
            control_id: self.c.id.to_string(),
            reason_code: "no_active_lock",
            reason: format!(
                "extend: no lock in force on {} {} at {}",
                target.kind.as_str(),
                target.id,
                format_ts(now)
            ),
        })?;
        out.commands.push(cmd);
        Ok(())
    }
}

/// A manual record's target and the action of the command it sends.
fn manual_target(c: &Control) -> Option<(&Target, &'static str)> {
    match &c.action {
        Action::Lock { target, .. } => Some((target, target.kind.lock_action())),
        Action::Unlock { target, .. } => Some((target, target.kind.unlock_action())),
        Action::Extend { target, .. } => Some((target, "extend")),
        Action::Ack { .. } => None,
    }
}

/// The id of the command a manual record sends: from the record alone.
fn command_id(c: &Control, target: &Target, action: &str) -> String {
    id128("cmd_", &["control", &c.id, action, &target.id])
}

/// A record for a release of a lock switchguard did not place.
fn external(
    target: &Target,
    actor: &str,
    reason: &str,
    now: EventTime,
    cmd: CommandState,
) -> LockRecord {
    LockRecord {
        target: target.id.to_string(),
        kind: target.kind,
        pan_masked: target.pan_masked.as_ref().map(|p| p.to_string()),
        origin: Origin::External,
        alert_id: None,
        reason_code: "MANUAL_UNLOCK".into(),
        reason: None,
        issued_at: now,
        expires_at: now,
        released_at: Some(now),
        released_by: Some(actor.to_string()),
        release_reason: Some(reason.to_string()),
        commands: vec![cmd],
    }
}

fn ack(
    c: &Control,
    command_id: &str,
    status: AckStatus,
    detail: Option<&str>,
    book: &mut LockBook,
    now: EventTime,
    out: &mut Decisions,
) -> Result<(), ControlReject> {
    match book.ack(command_id, status, detail.map(str::to_string), now) {
        AckOutcome::UnknownCommand => Err(ControlReject {
            control_id: c.id.to_string(),
            reason_code: "unknown_command",
            reason: format!("ack: no command {command_id} is known (never issued, or evicted)"),
        }),
        AckOutcome::Recorded { report, record } => {
            if report {
                let why = format!(
                    "the switch answered {} to {command_id}{}",
                    status.as_str(),
                    detail.map(|d| format!(" ({d})")).unwrap_or_default()
                );
                let id = id128("al_", &[REJECTED_RULE, command_id, &c.id]);
                let a = command_alert(id, REJECTED_RULE, now, &record, command_id, why);
                push_with_evidence(a, out);
            }
            Ok(())
        }
    }
}

/// Alerts for every command whose acknowledgement deadline passed by `now`. The alert's time
/// is the deadline, whenever it is noticed: a single engine and scale-out's shards notice it
/// at different moments (their watermarks move differently) and must say the same.
pub fn overdue_alerts(book: &mut LockBook, now: EventTime, ack_timeout: Span, out: &mut Decisions) {
    for (cmd, record) in book.overdue(now) {
        let deadline = cmd.issued_at + ack_timeout;
        let why = format!(
            "the switch has not acknowledged {} {} sent at {}",
            cmd.action,
            cmd.command_id,
            format_ts(cmd.issued_at)
        );
        let id = id128("al_", &[ACK_RULE, &cmd.command_id]);
        let a = command_alert(id, ACK_RULE, deadline, &record, &cmd.command_id, why);
        push_with_evidence(a, out);
    }
}

/// An alert about a command, with its evidence record: one per alert, as for every alert
/// (README "Output"); no transaction is behind it, so the record has no events.
fn push_with_evidence(a: Alert, out: &mut Decisions) {
    out.evidence.push(super::Evidence {
        alert_id: a.alert_id.clone(),
        ts: a.ts.clone(),
        rule: a.rule.clone(),
        events: Vec::new(),
    });
    out.alerts.push(a);
}

/// An alert about a command, on its lock's target.
fn command_alert(
    alert_id: String,
    rule: &str,
    at: EventTime,
    record: &LockRecord,
    command_id: &str,
    reason: String,
) -> Alert {
    let action = record
        .commands
        .iter()
        .find(|c| c.command_id == command_id)
        .map_or("", |c| c.action.as_str());
    let mut features = serde_json::Map::new();
    features.insert("command_id".into(), command_id.into());
    features.insert("action".into(), action.into());
    features.insert("target".into(), record.target.clone().into());
    let card = record.kind == TargetKind::Card;
    Alert {
        alert_id,
        ts: format_ts(at),
        rule: rule.into(),
        severity: Severity::High,
        mode: Mode::Enforce,
        entity: if card { Entity::Card } else { Entity::Terminal },
        entity_id: record.target.clone(),
        card: card.then(|| record.target.clone()),
        pan_masked: record.pan_masked.clone(),
        terminal: if card {
            String::new()
        } else {
            record.target.clone()
        },
        merchant: None,
        event_ids: Vec::new(),
        reason,
        features,
    }
}
