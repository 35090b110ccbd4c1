//! Ingest: parse records from the topics (or a replay output directory) and write them in one
//! transaction per batch, together with the consumer offsets that batch reaches. Idempotent:
//! alerts, commands, control and evidence records are keyed by their ids, so a batch read
//! twice (after a crash between the broker and the commit) changes nothing the second time.
//! An alert joins its entity's open case, or opens one.

use super::Db;
use crate::console::contract::{ts_ms, CommandRecord, ControlRecord, EvidenceRecord};
use crate::decision::Alert;
use anyhow::{Context, Result};
use sqlx::{Any, Row, Transaction};

/// Which contract a record follows (one per topic / replay file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Alert,
    Command,
    Control,
    Evidence,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Alert, Kind::Command, Kind::Control, Kind::Evidence];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Alert => "alert",
            Kind::Command => "command",
            Kind::Control => "control",
            Kind::Evidence => "evidence",
        }
    }
}

/// One parsed record, or a reject with its reason.
#[derive(Debug, Clone)]
pub enum Record {
    Alert(Box<Alert>, i64),
    Command(Box<CommandRecord>, i64),
    Control(Box<ControlRecord>, i64),
    Evidence(Box<EvidenceRecord>),
    Reject {
        source: String,
        reason: String,
        raw: String,
    },
}

/// Parse one record of `kind`. `source` names it for a reject (`topic/partition@offset` or
/// `file:line`). Never fails: bad input becomes a [`Record::Reject`].
pub fn parse(kind: Kind, bytes: &[u8], source: &str) -> Record {
    let reject = |reason: String| Record::Reject {
        source: source.to_string(),
        reason,
        raw: crate::pan::redact_truncated(bytes, 4096),
    };
    let bad_ts = || reject(format!("{}: missing or unreadable ts", kind.as_str()));
    match kind {
        Kind::Alert => match serde_json::from_slice::<Alert>(bytes) {
            Ok(a) => match super::super::contract::parse_ts(&a.ts) {
                Some(t) => Record::Alert(Box::new(a), t),
                None => bad_ts(),
            },
            Err(e) => reject(format!("alert: {e}")),
        },
        Kind::Command => match serde_json::from_slice::<CommandRecord>(bytes) {
            Ok(c) => match ts_ms(&c.ts) {
                Some(t) => Record::Command(Box::new(c), t),
                None => bad_ts(),
            },
            Err(e) => reject(format!("command: {e}")),
        },
        Kind::Control => match serde_json::from_slice::<ControlRecord>(bytes) {
            Ok(c) if c.id.is_empty() || c.id.len() > 128 => {
                reject("control: id empty or longer than 128 bytes".into())
            }
            Ok(c) => match ts_ms(&c.ts) {
                Some(t) => Record::Control(Box::new(c), t),
                None => bad_ts(),
            },
            Err(e) => reject(format!("control: {e}")),
        },
        Kind::Evidence => match serde_json::from_slice::<EvidenceRecord>(bytes) {
            Ok(mut e) => {
                e.scrub();
                Record::Evidence(Box::new(e))
            }
            Err(e) => reject(format!("evidence: {e}")),
        },
    }
}

/// A new alert as the live view shows it (sent to browsers after its batch commits).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewAlert {
    pub alert_id: String,
    pub ts: String,
    pub rule: String,
    pub severity: String,
    pub entity: String,
    pub entity_id: String,
    pub pan_masked: Option<String>,
    pub reason: String,
    pub case_id: i64,
}

/// What one batch changed, for the live view and the metrics.
#[derive(Debug, Default)]
pub struct Applied {
    pub new_alerts: Vec<NewAlert>,
    pub repeats: u64,
    pub commands: u64,
    pub controls: u64,
    pub evidence: u64,
    pub rejects: Vec<String>,
}

/// Write `records` and the offsets they reach (topic, partition, next offset) in one
/// transaction: after a crash either both are there or neither.
pub async fn apply(
    db: &Db,
    records: Vec<Record>,
    offsets: &[(String, i64, i64)],
) -> Result<Applied> {
    let mut tx = db
        .begin_write()
        .await
        .context("starting an ingest transaction")?;
    let mut out = Applied::default();
    let now = super::now_ms();
    for r in records {
        match r {
            Record::Alert(a, t) => match alert(&mut tx, &a, t, now).await? {
                Some(case_id) => out.new_alerts.push(NewAlert {
                    alert_id: a.alert_id,
                    ts: a.ts,
                    rule: a.rule,
                    severity: a.severity.as_str().to_string(),
                    entity: a.entity.as_str().to_string(),
                    entity_id: a.entity_id,
                    pan_masked: a.pan_masked,
                    reason: a.reason,
                    case_id,
                }),
                None => out.repeats += 1,
            },
            Record::Command(c, t) => out.commands += command(&mut tx, &c, t).await?,
            Record::Control(c, t) => out.controls += control(&mut tx, &c, t, "topic").await?,
            Record::Evidence(e) => out.evidence += evidence(&mut tx, &e).await?,
            Record::Reject {
                source,
                reason,
                raw,
            } => {
                sqlx::query(
                    "INSERT INTO ingest_rejects (at_ms, source, reason, raw) VALUES ($1, $2, $3, $4)",
                )
                .bind(now)
                .bind(&source)
                .bind(&reason)
                .bind(&raw)
                .execute(&mut *tx)
                .await?;
                out.rejects.push(reason);
            }
        }
    }
    for (topic, part, next) in offsets {
        sqlx::query(
            "INSERT INTO ingest_offsets (topic, part, next_offset) VALUES ($1, $2, $3) \
             ON CONFLICT (topic, part) DO UPDATE SET next_offset = excluded.next_offset",
        )
        .bind(topic)
        .bind(*part)
        .bind(*next)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await.context("committing an ingest batch")?;
    Ok(out)
}

/// Insert an alert unless already stored; returns its case id when it is new.
async fn alert(tx: &mut Transaction<'_, Any>, a: &Alert, t: i64, now: i64) -> Result<Option<i64>> {
    let seen = sqlx::query("SELECT 1 AS x FROM alerts WHERE alert_id = $1")
        .bind(&a.alert_id)
        .fetch_optional(&mut **tx)
        .await?;
    if seen.is_some() {
        return Ok(None);
    }
    let case_id = super::cases::attach(tx, a, t, now).await?;
    let body = serde_json::to_string(a)?;
    sqlx::query(
        "INSERT INTO alerts (alert_id, ts_ms, rule, severity, mode, entity, entity_id, pan_masked, \
         terminal, merchant, reason, case_id, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&a.alert_id)
    .bind(t)
    .bind(&a.rule)
    .bind(a.severity.as_str())
    .bind(a.mode.as_str())
    .bind(a.entity.as_str())
    .bind(&a.entity_id)
    .bind(&a.pan_masked)
    .bind(&a.terminal)
    .bind(&a.merchant)
    .bind(&a.reason)
    .bind(case_id)
    .bind(&body)
    .execute(&mut **tx)
    .await?;
    Ok(Some(case_id))
}

async fn command(tx: &mut Transaction<'_, Any>, c: &CommandRecord, t: i64) -> Result<u64> {
    let body = serde_json::to_string(c)?;
    let r = sqlx::query(
        "INSERT INTO commands (command_id, ts_ms, action, target, kind, pan_masked, expires_ms, \
         reason_code, rule, alert_id, control_id, actor, reason, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (command_id) DO NOTHING",
    )
    .bind(&c.command_id)
    .bind(t)
    .bind(&c.action)
    .bind(&c.target)
    .bind(c.kind())
    .bind(&c.pan_masked)
    .bind(c.expires_at.as_ref().and_then(ts_ms))
    .bind(c.reason_code.clone().unwrap_or_default())
    .bind(&c.rule)
    .bind(&c.alert_id)
    .bind(&c.control_id)
    .bind(&c.actor)
    .bind(&c.reason)
    .bind(&body)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected())
}

/// Insert a control record unless already stored (`origin`: `topic`, or `console` for the
/// records the console wrote itself).
pub async fn control(
    tx: &mut Transaction<'_, Any>,
    c: &ControlRecord,
    t: i64,
    origin: &str,
) -> Result<u64> {
    let body = serde_json::to_string(c)?;
    let (target, kind) = match c.target() {
        Some((t, k)) => (Some(t), Some(k)),
        None => (None, None),
    };
    let r = sqlx::query(
        "INSERT INTO control (id, ts_ms, control, target, kind, command_id, status, actor, reason, \
         origin, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&c.id)
    .bind(t)
    .bind(&c.control)
    .bind(target)
    .bind(kind)
    .bind(&c.command_id)
    .bind(&c.status)
    .bind(&c.actor)
    .bind(&c.reason)
    .bind(origin)
    .bind(&body)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected())
}

async fn evidence(tx: &mut Transaction<'_, Any>, e: &EvidenceRecord) -> Result<u64> {
    let r = sqlx::query(
        "INSERT INTO evidence (alert_id, body) VALUES ($1, $2) ON CONFLICT (alert_id) DO NOTHING",
    )
    .bind(&e.alert_id)
    .bind(serde_json::to_string(e)?)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected())
}

/// The stored next offset of every partition of `topic`.
pub async fn offsets(db: &Db, topic: &str) -> Result<Vec<(i64, i64)>> {
    let rows = sqlx::query("SELECT part, next_offset FROM ingest_offsets WHERE topic = $1")
        .bind(topic)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<i64, _>("part"), r.get::<i64, _>("next_offset")))
        .collect())
}
