//! Read-side queries: the inbox (filters, sort, paging), a case's alerts, evidence, commands
//! and locks, the overview's figures, per-rule precision from dispositions, the audit log and
//! the labels export.

use super::cases::Case;
use super::{i, oi, os, s, Db};
use crate::console::contract::{AckStatus, Disposition, EvidenceRecord, Label, LockRecord};
use crate::console::locks::{fold, CommandRow};
use crate::decision::Alert;
use crate::event::format_ts;
use anyhow::Result;
use sqlx::any::AnyRow;
use std::collections::HashMap;

mod inbox;
pub use inbox::{inbox, InboxPage, InboxQuery, COUNT_CAP, PER_PAGE};

/// The alerts of a case, oldest first.
pub async fn case_alerts(db: &Db, case_id: i64) -> Result<Vec<Alert>> {
    let rows = sqlx::query("SELECT body FROM alerts WHERE case_id = $1 ORDER BY ts_ms, alert_id")
        .bind(case_id)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| serde_json::from_str(&s(r, "body")).ok())
        .collect())
}

/// The evidence of a case's alerts, by alert id.
pub async fn case_evidence(db: &Db, case_id: i64) -> Result<HashMap<String, EvidenceRecord>> {
    let rows = sqlx::query(
        "SELECT e.body AS body FROM evidence e JOIN alerts a ON a.alert_id = e.alert_id \
         WHERE a.case_id = $1",
    )
    .bind(case_id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| serde_json::from_str::<EvidenceRecord>(&s(r, "body")).ok())
        .map(|e| (e.alert_id.clone(), e))
        .collect())
}

/// A stored command with its latest acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandView {
    pub row: CommandRow,
    pub control_id: Option<String>,
    pub reason: Option<String>,
    pub ack: AckStatus,
    pub ack_detail: Option<String>,
}

const CMD_SQL: &str = "SELECT c.command_id, c.ts_ms, c.action, c.target, c.kind, c.pan_masked, \
    c.expires_ms, c.reason_code, c.rule, c.alert_id, c.actor, c.control_id, c.reason, \
    (SELECT k.status FROM control k WHERE k.control = 'ack' AND k.command_id = c.command_id \
     ORDER BY k.ts_ms DESC LIMIT 1) AS ack_status, \
    (SELECT k.body FROM control k WHERE k.control = 'ack' AND k.command_id = c.command_id \
     ORDER BY k.ts_ms DESC LIMIT 1) AS ack_body FROM commands c";

fn command_of(r: &AnyRow) -> CommandView {
    let ack_detail = os(r, "ack_body")
        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(String::from));
    CommandView {
        row: CommandRow {
            command_id: s(r, "command_id"),
            ts_ms: i(r, "ts_ms"),
            action: s(r, "action"),
            target: s(r, "target"),
            kind: s(r, "kind"),
            pan_masked: os(r, "pan_masked"),
            expires_ms: oi(r, "expires_ms"),
            reason_code: s(r, "reason_code"),
            rule: os(r, "rule"),
            alert_id: os(r, "alert_id"),
            actor: os(r, "actor"),
        },
        control_id: os(r, "control_id"),
        reason: os(r, "reason"),
        ack: os(r, "ack_status")
            .and_then(|s| AckStatus::parse(&s))
            .unwrap_or(AckStatus::None),
        ack_detail,
    }
}

/// Commands on a case's entity or caused by its alerts, oldest first, and the lock records
/// they make.
pub async fn case_locks(db: &Db, c: &Case) -> Result<(Vec<CommandView>, Vec<LockRecord>)> {
    let rows = sqlx::query(&format!(
        "{CMD_SQL} WHERE c.target = $1 OR c.alert_id IN \
         (SELECT alert_id FROM alerts WHERE case_id = $2) ORDER BY c.ts_ms, c.command_id"
    ))
    .bind(&c.entity_id)
    .bind(c.id)
    .fetch_all(&db.pool)
    .await?;
    let cmds: Vec<CommandView> = rows.iter().map(command_of).collect();
    let locks = fold_views(&cmds);
    Ok((cmds, locks))
}

fn fold_views(cmds: &[CommandView]) -> Vec<LockRecord> {
    let acks: HashMap<&str, AckStatus> = cmds
        .iter()
        .map(|c| (c.row.command_id.as_str(), c.ack))
        .collect();
    let rows: Vec<CommandRow> = cmds.iter().map(|c| c.row.clone()).collect();
    fold(&rows, |id| acks.get(id).copied().unwrap_or(AckStatus::None))
}

/// A control record as the case page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlView {
    pub id: String,
    pub ts: String,
    pub control: String,
    pub actor: String,
    pub reason: String,
    pub origin: String,
    pub body: String,
}

/// Manual control records on `target`, oldest first.
pub async fn controls_on(db: &Db, target: &str) -> Result<Vec<ControlView>> {
    let rows = sqlx::query(
        "SELECT id, ts_ms, control, actor, reason, origin, body FROM control WHERE target = $1 \
         ORDER BY ts_ms, id",
    )
    .bind(target)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| ControlView {
            id: s(r, "id"),
            ts: format_ts(i(r, "ts_ms")),
            control: s(r, "control"),
            actor: s(r, "actor"),
            reason: s(r, "reason"),
            origin: s(r, "origin"),
            body: s(r, "body"),
        })
        .collect())
}

/// The newest event time the console has seen (its "now" for lock activity: a replay loaded
/// offline is judged at its own time, a live stream at the stream's).
pub async fn stream_time(db: &Db) -> Result<i64> {
    let r = sqlx::query(
        "SELECT (SELECT MAX(ts_ms) FROM alerts) AS a, (SELECT MAX(ts_ms) FROM commands) AS c",
    )
    .fetch_one(&db.pool)
    .await?;
    Ok(oi(&r, "a").unwrap_or(0).max(oi(&r, "c").unwrap_or(0)))
}

/// Locks in force at `now`.
pub async fn active_locks(db: &Db, now: i64) -> Result<Vec<LockRecord>> {
    let rows = sqlx::query(&format!(
        "{CMD_SQL} WHERE c.target IN (SELECT target FROM commands WHERE expires_ms > $1) \
         ORDER BY c.ts_ms, c.command_id"
    ))
    .bind(now)
    .fetch_all(&db.pool)
    .await?;
    let cmds: Vec<CommandView> = rows.iter().map(command_of).collect();
    Ok(fold_views(&cmds)
        .into_iter()
        .filter(|l| crate::console::locks::active(l, now))
        .collect())
}

const UNACKED: &str =
    "NOT EXISTS (SELECT 1 FROM control k WHERE k.control = 'ack' AND k.command_id = c.command_id)";

/// How many commands have no acknowledgement yet.
pub async fn unacknowledged_count(db: &Db) -> Result<i64> {
    let r = sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM commands c WHERE {UNACKED}"
    ))
    .fetch_one(&db.pool)
    .await?;
    Ok(i(&r, "n"))
}

/// Commands with no acknowledgement yet: (count, newest 100).
pub async fn unacknowledged(db: &Db) -> Result<(i64, Vec<CommandView>)> {
    let n = unacknowledged_count(db).await?;
    let rows = sqlx::query(&format!(
        "{CMD_SQL} WHERE {UNACKED} ORDER BY c.ts_ms DESC, c.command_id LIMIT 100"
    ))
    .fetch_all(&db.pool)
    .await?;
    Ok((n, rows.iter().map(command_of).collect()))
}

/// Alerts per rule per hour over the 48 hours up to `now`: (rule, hour start ms, count).
pub async fn alerts_per_hour(db: &Db, now: i64) -> Result<Vec<(String, i64, i64)>> {
    let rows = sqlx::query(
        "SELECT rule, ts_ms / 3600000 AS h, COUNT(*) AS n FROM alerts WHERE ts_ms > $1 \
         GROUP BY rule, ts_ms / 3600000 ORDER BY rule, h",
    )
    .bind(now - 48 * 3_600_000)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| (s(r, "rule"), i(r, "h") * 3_600_000, i(r, "n")))
        .collect())
}

/// Per-rule feedback from dispositions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulePrecision {
    pub rule: String,
    pub alerts: i64,
    pub confirmed: i64,
    pub false_positive: i64,
    pub inconclusive: i64,
}

impl RulePrecision {
    /// confirmed / (confirmed + false positive), when any was disposed either way.
    pub fn precision(&self) -> Option<f64> {
        let d = self.confirmed + self.false_positive;
        (d > 0).then(|| self.confirmed as f64 / d as f64)
    }
}

/// Alerts and dispositions per rule (every rule with an alert).
pub async fn precision(db: &Db) -> Result<Vec<RulePrecision>> {
    let mut by: std::collections::BTreeMap<String, RulePrecision> = Default::default();
    for r in sqlx::query("SELECT rule, COUNT(*) AS n FROM alerts GROUP BY rule")
        .fetch_all(&db.pool)
        .await?
    {
        let e = by.entry(s(&r, "rule")).or_default();
        e.rule = s(&r, "rule");
        e.alerts = i(&r, "n");
    }
    for r in sqlx::query(
        "SELECT a.rule AS rule, c.disposition AS d, COUNT(*) AS n FROM alerts a \
         JOIN cases c ON c.id = a.case_id WHERE c.disposition IS NOT NULL \
         GROUP BY a.rule, c.disposition",
    )
    .fetch_all(&db.pool)
    .await?
    {
        let e = by.entry(s(&r, "rule")).or_default();
        match Disposition::parse(&s(&r, "d")) {
            Some(Disposition::ConfirmedFraud) => e.confirmed += i(&r, "n"),
            Some(Disposition::FalsePositive) => e.false_positive += i(&r, "n"),
            Some(Disposition::Inconclusive) => e.inconclusive += i(&r, "n"),
            None => {}
        }
    }
    Ok(by.into_values().collect())
}

/// Every rule id with an alert, sorted.
pub async fn rules(db: &Db) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT DISTINCT rule FROM alerts ORDER BY rule")
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.iter().map(|r| s(r, "rule")).collect())
}

/// Cases per status.
pub async fn case_counts(db: &Db) -> Result<Vec<(String, i64)>> {
    let rows =
        sqlx::query("SELECT status, COUNT(*) AS n FROM cases GROUP BY status ORDER BY status")
            .fetch_all(&db.pool)
            .await?;
    Ok(rows.iter().map(|r| (s(r, "status"), i(r, "n"))).collect())
}

/// The labels file: one line per alert of a disposed case, in event-time order.
pub async fn labels(db: &Db) -> Result<Vec<Label>> {
    let rows = sqlx::query(
        "SELECT a.alert_id AS alert_id, a.rule AS rule, a.entity AS entity, \
         a.entity_id AS entity_id, a.body AS body, c.disposition AS d, \
         c.disposed_at_ms AS at, c.disposed_by AS actor FROM alerts a \
         JOIN cases c ON c.id = a.case_id WHERE c.disposition IS NOT NULL \
         ORDER BY a.ts_ms, a.alert_id",
    )
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let alert: Alert = serde_json::from_str(&s(r, "body")).ok()?;
            Some(Label {
                alert_id: s(r, "alert_id"),
                rule: s(r, "rule"),
                entity: s(r, "entity"),
                entity_id: s(r, "entity_id"),
                event_ids: alert.event_ids,
                disposition: Disposition::parse(&s(r, "d"))?,
                disposed_at: format_ts(i(r, "at")),
                actor: s(r, "actor"),
            })
        })
        .collect())
}

/// One audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// The newest `limit` audit rows.
pub async fn audit_log(db: &Db, limit: i64) -> Result<Vec<AuditRow>> {
    let rows = sqlx::query(
        "SELECT at_ms, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| AuditRow {
            at_ms: i(r, "at_ms"),
            actor: s(r, "actor"),
            action: s(r, "action"),
            target: s(r, "target"),
            detail: s(r, "detail"),
        })
        .collect())
}

/// Totals for the metrics endpoint: alerts, cases, rejects, unacknowledged commands.
pub async fn totals(db: &Db) -> Result<[i64; 3]> {
    let r = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM alerts) AS a, (SELECT COUNT(*) FROM ingest_rejects) AS r, \
         (SELECT COUNT(*) FROM commands) AS c",
    )
    .fetch_one(&db.pool)
    .await?;
    Ok([i(&r, "a"), i(&r, "r"), i(&r, "c")])
}
