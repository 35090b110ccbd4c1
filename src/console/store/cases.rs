//! Cases: one open case per entity (card, terminal, merchant) gathering its alerts; status
//! (open, investigating, closed), assignee and disposition kept apart; comments; and an
//! append-only history of every change with its actor and time (rows are only ever
//! inserted). Every change is also written to the audit log in the same transaction.

use super::{i, now_ms, oi, os, s, Db};
use crate::console::contract::Disposition;
use crate::decision::Alert;
use anyhow::{bail, Result};
use sqlx::{Any, Transaction};

/// Case statuses, in workflow order.
pub const STATUSES: [&str; 3] = ["open", "investigating", "closed"];

/// Severity order, for a case's highest severity.
pub fn severity_rank(s: &str) -> i64 {
    match s {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

/// The name of a severity rank.
pub fn severity_name(r: i64) -> &'static str {
    ["info", "low", "medium", "high", "critical"][r.clamp(0, 4) as usize]
}

/// One case row.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: i64,
    pub entity: String,
    pub entity_id: String,
    pub pan_masked: Option<String>,
    pub status: String,
    pub assignee: Option<String>,
    pub disposition: Option<String>,
    pub disposed_at_ms: Option<i64>,
    pub disposed_by: Option<String>,
    pub opened_at_ms: i64,
    pub first_alert_ms: i64,
    pub last_alert_ms: i64,
    pub alert_count: i64,
    pub max_severity: i64,
    pub last_rule: String,
    pub last_reason: String,
}

pub(crate) const CASE_COLS: &str = "id, entity, entity_id, pan_masked, status, assignee, \
    disposition, disposed_at_ms, disposed_by, opened_at_ms, first_alert_ms, last_alert_ms, \
    alert_count, max_severity, last_rule, last_reason";

pub(crate) fn case_of(r: &sqlx::any::AnyRow) -> Case {
    Case {
        id: i(r, "id"),
        entity: s(r, "entity"),
        entity_id: s(r, "entity_id"),
        pan_masked: os(r, "pan_masked"),
        status: s(r, "status"),
        assignee: os(r, "assignee"),
        disposition: os(r, "disposition"),
        disposed_at_ms: oi(r, "disposed_at_ms"),
        disposed_by: os(r, "disposed_by"),
        opened_at_ms: i(r, "opened_at_ms"),
        first_alert_ms: i(r, "first_alert_ms"),
        last_alert_ms: i(r, "last_alert_ms"),
        alert_count: i(r, "alert_count"),
        max_severity: i(r, "max_severity"),
        last_rule: s(r, "last_rule"),
        last_reason: s(r, "last_reason"),
    }
}

/// Attach a new alert to its entity's open case, opening one if there is none. Returns the
/// case id. Runs inside the ingest transaction.
pub(crate) async fn attach(
    tx: &mut Transaction<'_, Any>,
    a: &Alert,
    t: i64,
    now: i64,
) -> Result<i64> {
    let open = sqlx::query(&format!(
        "SELECT {CASE_COLS} FROM cases WHERE entity = $1 AND entity_id = $2 AND status <> 'closed'"
    ))
    .bind(a.entity.as_str())
    .bind(&a.entity_id)
    .fetch_optional(&mut **tx)
    .await?;
    let sev = severity_rank(a.severity.as_str());
    let id = match open.map(|r| case_of(&r)) {
        Some(c) => {
            let newer = t >= c.last_alert_ms;
            sqlx::query(
                "UPDATE cases SET alert_count = alert_count + 1, first_alert_ms = $1, \
                 last_alert_ms = $2, max_severity = $3, last_rule = $4, last_reason = $5, \
                 pan_masked = $6, updated_at_ms = $7 WHERE id = $8",
            )
            .bind(c.first_alert_ms.min(t))
            .bind(c.last_alert_ms.max(t))
            .bind(c.max_severity.max(sev))
            .bind(if newer { &a.rule } else { &c.last_rule })
            .bind(if newer { &a.reason } else { &c.last_reason })
            .bind(c.pan_masked.clone().or_else(|| card_mask(a)))
            .bind(now)
            .bind(c.id)
            .execute(&mut **tx)
            .await?;
            c.id
        }
        None => {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO cases (entity, entity_id, pan_masked, status, opened_at_ms, \
                 updated_at_ms, first_alert_ms, last_alert_ms, alert_count, max_severity, \
                 last_rule, last_reason) VALUES ($1, $2, $3, 'open', $4, $4, $5, $5, 1, $6, $7, $8) \
                 RETURNING id",
            )
            .bind(a.entity.as_str())
            .bind(&a.entity_id)
            .bind(card_mask(a))
            .bind(now)
            .bind(t)
            .bind(sev)
            .bind(&a.rule)
            .bind(&a.reason)
            .fetch_one(&mut **tx)
            .await?;
            history(
                tx,
                id,
                now,
                "switchguard",
                "opened",
                &format!("first alert {}", a.alert_id),
            )
            .await?;
            id
        }
    };
    history(
        tx,
        id,
        now,
        "switchguard",
        "alert",
        &format!("{} {} ({})", a.alert_id, a.rule, a.severity.as_str()),
    )
    .await?;
    Ok(id)
}

/// The masked PAN a case shows: a card case's own (a terminal's alerts carry the PAN of
/// whichever card triggered them, which is not the case's entity).
fn card_mask(a: &Alert) -> Option<String> {
    (a.entity == crate::rules::Entity::Card)
        .then(|| a.pan_masked.clone())
        .flatten()
}

/// Append one history row.
pub(crate) async fn history(
    tx: &mut Transaction<'_, Any>,
    case_id: i64,
    at: i64,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO case_history (case_id, at_ms, actor, action, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(case_id)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Append one audit row.
pub(crate) async fn audit(
    tx: &mut Transaction<'_, Any>,
    at: i64,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit (at_ms, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A change an analyst makes to a case.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Status(String),
    Assign(Option<String>),
    Dispose(Disposition),
    Comment(String),
}

/// Why a change was refused (shown to the analyst).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    #[error("no case {0}")]
    NoCase(i64),
    #[error("unknown status {0:?}")]
    BadStatus(String),
    #[error("case {0} cannot be reopened: case {1} is already open for the same entity")]
    OtherOpen(i64, i64),
    #[error("empty comment")]
    EmptyComment,
}

/// Apply `change` to `case_id` as `actor`: the update, a history row and an audit row in one
/// transaction.
pub async fn change(db: &Db, case_id: i64, actor: &str, change: &Change) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let now = now_ms();
    let Some(row) = sqlx::query(&format!("SELECT {CASE_COLS} FROM cases WHERE id = $1"))
        .bind(case_id)
        .fetch_optional(&mut *tx)
        .await?
    else {
        bail!(Refused::NoCase(case_id));
    };
    let case = case_of(&row);
    let (action, detail) = match change {
        Change::Status(st) => {
            if !STATUSES.contains(&st.as_str()) {
                bail!(Refused::BadStatus(st.clone()));
            }
            if case.status == "closed" && st != "closed" {
                let other: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM cases WHERE entity = $1 AND entity_id = $2 AND status <> 'closed'",
                )
                .bind(&case.entity)
                .bind(&case.entity_id)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(o) = other {
                    bail!(Refused::OtherOpen(case_id, o));
                }
            }
            sqlx::query("UPDATE cases SET status = $1, updated_at_ms = $2 WHERE id = $3")
                .bind(st)
                .bind(now)
                .bind(case_id)
                .execute(&mut *tx)
                .await?;
            ("status", format!("{} → {st}", case.status))
        }
        Change::Assign(who) => {
            sqlx::query("UPDATE cases SET assignee = $1, updated_at_ms = $2 WHERE id = $3")
                .bind(who)
                .bind(now)
                .bind(case_id)
                .execute(&mut *tx)
                .await?;
            ("assign", who.clone().unwrap_or_else(|| "(nobody)".into()))
        }
        Change::Dispose(d) => {
            sqlx::query(
                "UPDATE cases SET disposition = $1, disposed_at_ms = $2, disposed_by = $3, \
                 updated_at_ms = $2 WHERE id = $4",
            )
            .bind(d.as_str())
            .bind(now)
            .bind(actor)
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
            ("disposition", d.as_str().to_string())
        }
        Change::Comment(text) => {
            if text.trim().is_empty() {
                bail!(Refused::EmptyComment);
            }
            ("comment", text.clone())
        }
    };
    history(&mut tx, case_id, now, actor, action, &detail).await?;
    audit(
        &mut tx,
        now,
        actor,
        action,
        &format!("case {case_id}"),
        &detail,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One history row.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// A case's history, oldest first.
pub async fn history_of(db: &Db, case_id: i64) -> Result<Vec<HistoryRow>> {
    let rows = sqlx::query(
        "SELECT at_ms, actor, action, detail FROM case_history WHERE case_id = $1 ORDER BY id",
    )
    .bind(case_id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| HistoryRow {
            at_ms: i(r, "at_ms"),
            actor: s(r, "actor"),
            action: s(r, "action"),
            detail: s(r, "detail"),
        })
        .collect())
}

/// One case by id.
pub async fn get(db: &Db, id: i64) -> Result<Option<Case>> {
    let r = sqlx::query(&format!("SELECT {CASE_COLS} FROM cases WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(r.map(|r| case_of(&r)))
}

/// The other cases of the same entity, newest first.
pub async fn earlier(db: &Db, c: &Case) -> Result<Vec<Case>> {
    let rows = sqlx::query(&format!(
        "SELECT {CASE_COLS} FROM cases WHERE entity = $1 AND entity_id = $2 AND id <> $3 \
         ORDER BY id DESC LIMIT 50"
    ))
    .bind(&c.entity)
    .bind(&c.entity_id)
    .bind(c.id)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.iter().map(case_of).collect())
}
