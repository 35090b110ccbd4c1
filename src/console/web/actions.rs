//! What an analyst does from a case: status, assignee, disposition, comment (stored with
//! history and audit), bulk assign/close from the inbox, and lock/unlock/extend, which are
//! written as control records to the control topic (the analyst as actor, a required reason)
//! and recorded only once the broker has acknowledged them. Every handler checks the role and
//! the session's CSRF token first.

use super::auth::{Denied, User};
use super::{internal, FormData, Shared};
use crate::console::contract::{ControlRecord, Disposition};
use crate::console::store::cases::{self, Change, Refused};
use crate::console::store::users::Role;
use crate::console::store::{ingest, now_ms};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

fn refused(msg: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, msg.to_string()).into_response()
}

/// Role and CSRF checks shared by every action; the parsed form on success.
fn gate(user: &User, body: &[u8]) -> Result<FormData, Denied> {
    user.require(Role::Analyst)?;
    let f = FormData::parse(body);
    user.check_csrf(f.get("csrf"))?;
    Ok(f)
}

/// Map a store error: a [`Refused`] is the analyst's to fix (400), anything else is ours.
fn store_error(e: anyhow::Error) -> Response {
    match e.downcast_ref::<Refused>() {
        Some(r) => refused(r),
        None => internal(e),
    }
}

/// POST /cases/{id}/act: `op` = status | assign | dispose | comment.
pub async fn case_action(
    State(st): State<Shared>,
    user: User,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let f = match gate(&user, &body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let change = match f.get("op") {
        "status" => Change::Status(f.get("status").to_string()),
        "assign" => {
            let who = f.get("assignee").trim();
            Change::Assign((!who.is_empty()).then(|| who.to_string()))
        }
        "dispose" => match Disposition::parse(f.get("disposition")) {
            Some(d) => Change::Dispose(d),
            None => return refused("choose a disposition"),
        },
        "comment" => {
            let text = f.get("comment");
            if text.chars().count() > 4000 {
                return refused("comment longer than 4000 characters");
            }
            Change::Comment(text.to_string())
        }
        _ => return refused("unknown action"),
    };
    if let Err(e) = cases::change(&st.db, id, &user.0.name, &change).await {
        return store_error(e);
    }
    let op = f.get("op");
    st.metrics.actions.with_label_values(&[op]).inc();
    Redirect::to(&format!("/cases/{id}#{op}")).into_response()
}

/// POST /cases/bulk: `op` = assign | close for every `id` ticked in the inbox.
pub async fn bulk(State(st): State<Shared>, user: User, body: Bytes) -> Response {
    let f = match gate(&user, &body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let ids: Vec<i64> = f.all("id").iter().filter_map(|s| s.parse().ok()).collect();
    if ids.is_empty() || ids.len() > 200 {
        return refused("tick between 1 and 200 cases");
    }
    let change = match f.get("op") {
        "assign" => {
            let who = f.get("assignee").trim();
            Change::Assign((!who.is_empty()).then(|| who.to_string()))
        }
        "close" => Change::Status("closed".into()),
        _ => return refused("unknown bulk action"),
    };
    for id in &ids {
        if let Err(e) = cases::change(&st.db, *id, &user.0.name, &change).await {
            return store_error(e);
        }
    }
    st.metrics
        .actions
        .with_label_values(&[&format!("bulk_{}", f.get("op"))])
        .inc_by(ids.len() as u64);
    Redirect::to("/inbox").into_response()
}

/// A TTL an analyst typed that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadTtl {
    /// Not humantime syntax: the text as typed, and humantime's reason.
    #[error("ttl {given:?}: {why}")]
    Syntax {
        given: String,
        why: humantime::DurationError,
    },
    #[error("ttl must be between 1m and 366d")]
    OutOfRange,
}

/// Why a lock action cannot become a control record: the analyst's to fix (400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadLockAction {
    #[error("a reason is required")]
    NoReason,
    #[error("reason longer than 500 characters")]
    LongReason,
    #[error("unknown lock action")]
    UnknownOp,
    #[error("only card and terminal cases can be locked")]
    NotLockable,
    #[error(transparent)]
    Ttl(#[from] BadTtl),
}

/// A TTL an analyst typed: humantime syntax, from one minute to a year.
fn valid_ttl(s: &str) -> Result<String, BadTtl> {
    let d = humantime::parse_duration(s.trim()).map_err(|why| BadTtl::Syntax {
        given: s.to_string(),
        why,
    })?;
    if d < std::time::Duration::from_secs(60) || d > std::time::Duration::from_secs(366 * 86_400) {
        return Err(BadTtl::OutOfRange);
    }
    Ok(s.trim().to_string())
}

/// Build the control record of a lock action on a case's entity.
pub fn control_record(
    op: &str,
    kind: &str,
    target: &str,
    ttl: &str,
    reason: &str,
    actor: &str,
    now: i64,
) -> Result<ControlRecord, BadLockAction> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(BadLockAction::NoReason);
    }
    if reason.chars().count() > 500 {
        return Err(BadLockAction::LongReason);
    }
    let ttl = match op {
        "lock" if ttl.trim().is_empty() => Some("24h".to_string()),
        "lock" | "extend" => Some(valid_ttl(ttl)?),
        "unlock" => None,
        _ => return Err(BadLockAction::UnknownOp),
    };
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    let mut rec = ControlRecord {
        id: format!(
            "console-{}",
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
        ts: crate::event::format_ts(now).into(),
        control: op.to_string(),
        ttl,
        reason: Some(reason.to_string()),
        actor: Some(actor.to_string()),
        ..Default::default()
    };
    match kind {
        "card" => rec.card = Some(target.to_string()),
        "terminal" => rec.terminal = Some(target.to_string()),
        _ => return Err(BadLockAction::NotLockable),
    }
    Ok(rec)
}

/// POST /cases/{id}/lock: `op` = lock | unlock | extend, `reason`, `ttl`.
pub async fn lock_action(
    State(st): State<Shared>,
    user: User,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let f = match gate(&user, &body) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    let Some(writer) = st.control.clone() else {
        return refused("this console has no control topic (started without --brokers)");
    };
    let c = match cases::get(&st.db, id).await {
        Ok(Some(c)) => c,
        Ok(None) => return refused(Refused::NoCase(id)),
        Err(e) => return internal(e),
    };
    let now = now_ms();
    let op = f.get("op").to_string();
    let rec = match control_record(
        &op,
        &c.entity,
        &c.entity_id,
        f.get("ttl"),
        f.get("reason"),
        &user.0.name,
        now,
    ) {
        Ok(r) => r,
        Err(m) => return refused(m),
    };
    let sent = {
        let rec = rec.clone();
        tokio::task::spawn_blocking(move || writer.send(&rec)).await
    };
    match sent {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("the control record was not written ({e:#}); nothing was recorded"),
            )
                .into_response()
        }
        Err(e) => return internal(e.into()),
    }
    let r: anyhow::Result<()> = async {
        let mut tx = st.db.begin_write().await?;
        ingest::control(&mut tx, &rec, now, "console").await?;
        let detail = format!(
            "{} {}{}: {}",
            rec.id,
            op,
            rec.ttl
                .as_deref()
                .map(|t| format!(" {t}"))
                .unwrap_or_default(),
            rec.reason.as_deref().unwrap_or_default()
        );
        cases::history(
            &mut tx,
            id,
            now,
            &user.0.name,
            &format!("{op}_requested"),
            &detail,
        )
        .await?;
        cases::audit(&mut tx, now, &user.0.name, &op, &c.entity_id, &detail).await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    if let Err(e) = r {
        return internal(e);
    }
    st.metrics.actions.with_label_values(&[&op]).inc();
    Redirect::to(&format!("/cases/{id}#locks")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_records_carry_actor_reason_and_target() {
        let r = control_record(
            "unlock",
            "card",
            "tok_a",
            "",
            " customer verified ",
            "alice",
            0,
        )
        .unwrap();
        assert_eq!(r.control, "unlock");
        assert_eq!(r.card.as_deref(), Some("tok_a"));
        assert_eq!(r.actor.as_deref(), Some("alice"));
        assert_eq!(r.reason.as_deref(), Some("customer verified"));
        assert!(r.id.starts_with("console-") && r.id.len() == 40);
        assert_eq!(r.ttl, None);
        let l = control_record("lock", "terminal", "T1", "", "x", "a", 0).unwrap();
        assert_eq!(
            (l.terminal.as_deref(), l.ttl.as_deref()),
            (Some("T1"), Some("24h"))
        );
        assert_ne!(l.id, r.id);
    }

    #[test]
    fn bad_lock_actions_are_refused() {
        assert!(
            control_record("lock", "card", "t", "", "  ", "a", 0).is_err(),
            "no reason"
        );
        assert!(
            control_record("extend", "card", "t", "", "r", "a", 0).is_err(),
            "extend needs ttl"
        );
        assert!(control_record("extend", "card", "t", "5s", "r", "a", 0).is_err());
        assert!(control_record("lock", "merchant", "M", "", "r", "a", 0).is_err());
        assert!(control_record("delete", "card", "t", "", "r", "a", 0).is_err());
    }

    #[test]
    fn refusals_say_why_in_the_analysts_words() {
        let why = |op, kind, ttl, reason| {
            control_record(op, kind, "t", ttl, reason, "a", 0)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(why("lock", "card", "", " "), "a reason is required");
        assert_eq!(
            why("lock", "card", "5s", "r"),
            "ttl must be between 1m and 366d"
        );
        assert!(why("lock", "card", "soon", "r").starts_with("ttl \"soon\": "));
        assert_eq!(
            why("lock", "merchant", "", "r"),
            "only card and terminal cases can be locked"
        );
        assert_eq!(
            control_record("extend", "card", "t", "5s", "r", "a", 0),
            Err(BadLockAction::Ttl(BadTtl::OutOfRange))
        );
    }
}
