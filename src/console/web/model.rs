//! View models: stored rows turned into the plain strings the templates print (times
//! formatted, JSON values flattened, the events behind each alert lined up with its ids).

use super::auth::User;
use crate::console::contract::{ts_ms, EvidenceEvent, EvidenceRecord, LockRecord};
use crate::console::store::cases::{severity_name, Case, HistoryRow};
use crate::console::store::users::Role;
use crate::console::store::views::CommandView;
use crate::decision::Alert;
use crate::event::format_ts;
use serde_json::Value;

/// The navigation bar: who is logged in, their CSRF token for the logout and action forms.
pub struct Nav {
    pub user: String,
    pub role: &'static str,
    pub csrf: String,
    pub can_act: bool,
    pub is_admin: bool,
    pub active: &'static str,
}

impl Nav {
    pub fn of(u: &User, active: &'static str) -> Nav {
        Nav {
            user: u.0.name.clone(),
            role: u.0.role.as_str(),
            csrf: u.0.csrf.clone(),
            can_act: u.0.role >= Role::Analyst,
            is_admin: u.0.role >= Role::Admin,
            active,
        }
    }
}

/// A case as the inbox and case page print it.
pub struct CaseRow {
    pub id: i64,
    pub entity: String,
    pub entity_id: String,
    pub pan_masked: String,
    pub status: String,
    pub assignee: String,
    pub disposition: String,
    pub disposed: String,
    pub severity: &'static str,
    pub last_rule: String,
    pub last_reason: String,
    pub alerts: i64,
    pub first_alert: String,
    pub last_alert: String,
}

pub fn case_row(c: &Case) -> CaseRow {
    CaseRow {
        id: c.id,
        entity: c.entity.clone(),
        entity_id: c.entity_id.clone(),
        pan_masked: c.pan_masked.clone().unwrap_or_default(),
        status: c.status.clone(),
        assignee: c.assignee.clone().unwrap_or_default(),
        disposition: c.disposition.clone().unwrap_or_default(),
        disposed: match (&c.disposed_by, c.disposed_at_ms) {
            (Some(by), Some(at)) => format!("by {by} at {}", format_ts(at)),
            _ => String::new(),
        },
        severity: severity_name(c.max_severity),
        last_rule: c.last_rule.clone(),
        last_reason: c.last_reason.clone(),
        alerts: c.alert_count,
        first_alert: format_ts(c.first_alert_ms),
        last_alert: format_ts(c.last_alert_ms),
    }
}

/// One event behind an alert.
pub struct EventView {
    pub id: String,
    pub ts: String,
    pub kind: String,
    pub card: String,
    pub terminal: String,
    pub merchant: String,
    pub mcc: String,
    pub amount: String,
    pub entry_mode: String,
    pub pin: String,
    pub response_code: String,
    pub extra: String,
    pub trigger: bool,
}

/// A model's contribution to a score.
pub struct Contribution {
    pub model: String,
    pub feature: String,
    pub value: String,
    pub normal: String,
}

/// One alert on the case timeline, with its explanation, features and events.
pub struct AlertView {
    pub alert_id: String,
    pub ts: String,
    pub rule: String,
    pub severity: String,
    pub mode: String,
    pub reason: String,
    pub explain: String,
    pub features: Vec<(String, String)>,
    pub contributions: Vec<Contribution>,
    pub events: Vec<EventView>,
    /// Event ids the evidence did not carry (the engine no longer held them).
    pub missing: Vec<String>,
    pub has_evidence: bool,
}

/// A JSON value as text: strings bare, everything else as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn event_view(e: &EvidenceEvent, trigger: bool) -> EventView {
    let amount = match (&e.amount, &e.currency) {
        (Some(a), Some(c)) => format!("{} {c}", text(a)),
        (Some(a), None) => text(a),
        _ => String::new(),
    };
    EventView {
        id: e.id.clone(),
        ts: ts_ms(&e.ts).map(format_ts).unwrap_or_else(|| text(&e.ts)),
        kind: opt(&e.kind),
        card: match (&e.pan_masked, &e.card) {
            (Some(m), Some(t)) => format!("{m} {t}"),
            (m, t) => opt(m) + &opt(t),
        },
        terminal: opt(&e.terminal),
        merchant: opt(&e.merchant),
        mcc: e.mcc.as_ref().map(text).unwrap_or_default(),
        amount,
        entry_mode: opt(&e.entry_mode),
        pin: opt(&e.pin),
        response_code: opt(&e.response_code),
        extra: [("auth_ref", &e.auth_ref), ("qr_ref", &e.qr_ref)]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .chain(e.other.iter().map(|(k, v)| format!("{k}={}", text(v))))
            .collect::<Vec<_>>()
            .join(" "),
        trigger,
    }
}

pub fn alert_view(a: &Alert, ev: Option<&EvidenceRecord>) -> AlertView {
    let explain = a.features.get("explain").map(text).unwrap_or_default();
    let contributions = a
        .features
        .get("contributions")
        .and_then(|v| v.as_array())
        .map(|rows| {
            rows.iter()
                .map(|r| Contribution {
                    model: r.get("model").map(text).unwrap_or_default(),
                    feature: r.get("feature").map(text).unwrap_or_default(),
                    value: r.get("value").map(text).unwrap_or_default(),
                    normal: r.get("normal").map(text).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let features = a
        .features
        .iter()
        .filter(|(k, _)| *k != "explain" && *k != "contributions")
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    let trigger = a.event_ids.last().cloned().unwrap_or_default();
    let events: Vec<EventView> = ev
        .map(|e| {
            e.events
                .iter()
                .map(|x| event_view(x, x.id == trigger))
                .collect()
        })
        .unwrap_or_default();
    let missing = a
        .event_ids
        .iter()
        .filter(|id| !events.iter().any(|e| &e.id == *id))
        .cloned()
        .collect();
    AlertView {
        alert_id: a.alert_id.clone(),
        ts: a.ts.clone(),
        rule: a.rule.clone(),
        severity: a.severity.as_str().to_string(),
        mode: a.mode.as_str().to_string(),
        reason: a.reason.clone(),
        explain,
        features,
        contributions,
        events,
        missing,
        has_evidence: ev.is_some(),
    }
}

/// A lock record as printed.
pub struct LockView {
    pub target: String,
    pub kind: String,
    pub origin: String,
    pub alert_id: String,
    pub reason_code: String,
    pub command_id: String,
    pub issued: String,
    pub expires: String,
    pub released: String,
    pub ack: &'static str,
}

pub fn lock_view(l: &LockRecord) -> LockView {
    LockView {
        target: match &l.pan_masked {
            Some(m) => format!("{m} {}", l.target),
            None => l.target.clone(),
        },
        kind: l.kind.clone(),
        origin: l.origin.clone(),
        alert_id: opt(&l.alert_id),
        reason_code: l.reason_code.clone(),
        command_id: l.command_id.clone(),
        issued: format_ts(l.issued_at),
        expires: l.expires_at.map(format_ts).unwrap_or_default(),
        released: match (&l.released_by, l.released_at) {
            (Some(by), Some(at)) => format!("{} by {by}", format_ts(at)),
            _ => String::new(),
        },
        ack: l.ack.as_str(),
    }
}

/// A command with its acknowledgement, as printed.
pub struct CmdView {
    pub command_id: String,
    pub ts: String,
    pub action: String,
    pub target: String,
    pub expires: String,
    pub origin: String,
    pub reason: String,
    pub ack: &'static str,
    pub ack_detail: String,
}

pub fn cmd_view(c: &CommandView) -> CmdView {
    let r = &c.row;
    CmdView {
        command_id: r.command_id.clone(),
        ts: format_ts(r.ts_ms),
        action: r.action.clone(),
        target: match &r.pan_masked {
            Some(m) => format!("{m} {}", r.target),
            None => r.target.clone(),
        },
        expires: r.expires_ms.map(format_ts).unwrap_or_default(),
        origin: r
            .rule
            .clone()
            .or_else(|| r.actor.clone())
            .unwrap_or_default(),
        reason: match (&c.reason, &c.control_id) {
            (Some(x), Some(id)) => format!("{} — {x} ({id})", r.reason_code),
            (Some(x), None) => format!("{} — {x}", r.reason_code),
            _ => r.reason_code.clone(),
        },
        ack: c.ack.as_str(),
        ack_detail: opt(&c.ack_detail),
    }
}

/// A history or audit row as printed.
pub struct HistView {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

pub fn hist_view(h: &HistoryRow) -> HistView {
    HistView {
        at: format_ts(h.at_ms),
        actor: h.actor.clone(),
        action: h.action.clone(),
        detail: h.detail.clone(),
    }
}
