//! The screens: inbox, case page, overview, per-rule precision, audit log, and the labels
//! download. Every value reaches the page through askama's HTML escaping: nothing from an
//! alert, an event or a user is ever inserted as markup.

use super::auth::User;
use super::model::{alert_view, case_row, cmd_view, hist_view, lock_view, AlertView, CaseRow};
use super::model::{CmdView, HistView, LockView, Nav};
use super::{charts, html, internal, Shared};
use crate::console::store::users::Role;
use crate::console::store::{cases, views};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

pub async fn root() -> Redirect {
    Redirect::to("/inbox")
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxTpl {
    nav: Nav,
    f: views::InboxQuery,
    rows: Vec<CaseRow>,
    total: i64,
    capped: bool,
    page: i64,
    pages: i64,
    prev: String,
    next: String,
    rules: Vec<String>,
}

fn query_string(f: &views::InboxQuery, page: i64) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("rule", &f.rule),
        ("severity", &f.severity),
        ("status", &f.status),
        ("assignee", &f.assignee),
        ("entity", &f.entity),
        ("q", &f.q),
        ("sort", &f.sort),
        ("dir", &f.dir),
    ] {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    s.append_pair("page", &page.to_string());
    format!("/inbox?{}", s.finish())
}

async fn rules_seen(st: &Shared) -> anyhow::Result<Vec<String>> {
    let mut cached = st.rules.lock().await;
    if let Some((at, rules)) = cached.as_ref() {
        if at.elapsed() < std::time::Duration::from_secs(30) {
            return Ok(rules.clone());
        }
    }
    let rules = views::rules(&st.db).await?;
    *cached = Some((std::time::Instant::now(), rules.clone()));
    Ok(rules)
}

pub async fn inbox(
    State(st): State<Shared>,
    user: User,
    Query(f): Query<views::InboxQuery>,
) -> Response {
    let page = match views::inbox(&st.db, &f).await {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let rules = match rules_seen(&st).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let t = InboxTpl {
        nav: Nav::of(&user, "inbox"),
        prev: if page.page > 1 {
            query_string(&f, page.page - 1)
        } else {
            String::new()
        },
        next: if page.page < page.pages {
            query_string(&f, page.page + 1)
        } else {
            String::new()
        },
        rows: page.cases.iter().map(case_row).collect(),
        total: page.total,
        capped: page.capped,
        page: page.page,
        pages: page.pages,
        rules,
        f,
    };
    html(&t)
}

#[derive(Template)]
#[template(path = "case.html")]
struct CaseTpl {
    nav: Nav,
    c: CaseRow,
    lockable: bool,
    has_control: bool,
    alerts: Vec<AlertView>,
    locks: Vec<LockView>,
    commands: Vec<CmdView>,
    controls: Vec<views::ControlView>,
    earlier: Vec<CaseRow>,
    history: Vec<HistView>,
    comments: Vec<HistView>,
    dispositions: Vec<&'static str>,
    statuses: Vec<&'static str>,
}

pub async fn case(State(st): State<Shared>, user: User, Path(id): Path<i64>) -> Response {
    match case_page(&st, &user, id).await {
        Ok(Some(t)) => html(&t),
        Ok(None) => (axum::http::StatusCode::NOT_FOUND, "no such case").into_response(),
        Err(e) => internal(e),
    }
}

async fn case_page(st: &Shared, user: &User, id: i64) -> anyhow::Result<Option<CaseTpl>> {
    let Some(c) = cases::get(&st.db, id).await? else {
        return Ok(None);
    };
    let alerts = views::case_alerts(&st.db, id).await?;
    let evidence = views::case_evidence(&st.db, id).await?;
    let (cmds, locks) = views::case_locks(&st.db, &c).await?;
    let controls = views::controls_on(&st.db, &c.entity_id).await?;
    let earlier = cases::earlier(&st.db, &c).await?;
    let history = cases::history_of(&st.db, id).await?;
    let lockable = matches!(c.entity.as_str(), "card" | "terminal");
    Ok(Some(CaseTpl {
        nav: Nav::of(user, "inbox"),
        c: case_row(&c),
        lockable,
        has_control: st.control.is_some(),
        alerts: alerts
            .iter()
            .map(|a| alert_view(a, evidence.get(&a.alert_id)))
            .collect(),
        locks: locks.iter().map(lock_view).collect(),
        commands: cmds.iter().map(cmd_view).collect(),
        controls,
        earlier: earlier.iter().map(case_row).collect(),
        comments: history
            .iter()
            .filter(|h| h.action == "comment")
            .map(hist_view)
            .collect(),
        history: history.iter().map(hist_view).collect(),
        dispositions: crate::console::contract::Disposition::ALL
            .iter()
            .map(|d| d.as_str())
            .collect(),
        statuses: cases::STATUSES.to_vec(),
    }))
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewTpl {
    nav: Nav,
    now: String,
    chart: charts::Chart,
    counts: Vec<(String, i64)>,
    locks: Vec<LockView>,
    unacked: i64,
    unacked_rows: Vec<CmdView>,
    precision: Vec<PrecisionRow>,
}

/// One rule's feedback row.
pub struct PrecisionRow {
    pub rule: String,
    pub alerts: i64,
    pub confirmed: i64,
    pub false_positive: i64,
    pub inconclusive: i64,
    pub precision: String,
    /// Bar width in pixels (0-200).
    pub bar: f64,
}

fn precision_rows(rows: &[views::RulePrecision]) -> Vec<PrecisionRow> {
    rows.iter()
        .map(|r| PrecisionRow {
            rule: r.rule.clone(),
            alerts: r.alerts,
            confirmed: r.confirmed,
            false_positive: r.false_positive,
            inconclusive: r.inconclusive,
            precision: r
                .precision()
                .map(|p| format!("{:.0}%", p * 100.0))
                .unwrap_or_else(|| "–".into()),
            bar: r.precision().unwrap_or(0.0) * 200.0,
        })
        .collect()
}

pub async fn overview(State(st): State<Shared>, user: User) -> Response {
    let r: anyhow::Result<OverviewTpl> = async {
        let now = views::stream_time(&st.db).await?;
        let (unacked, rows) = views::unacknowledged(&st.db).await?;
        Ok(OverviewTpl {
            nav: Nav::of(&user, "overview"),
            now: crate::event::format_ts(now),
            chart: charts::hourly(&views::alerts_per_hour(&st.db, now).await?, now),
            counts: views::case_counts(&st.db).await?,
            locks: views::active_locks(&st.db, now)
                .await?
                .iter()
                .map(lock_view)
                .collect(),
            unacked,
            unacked_rows: rows.iter().map(cmd_view).collect(),
            precision: precision_rows(&views::precision(&st.db).await?),
        })
    }
    .await;
    match r {
        Ok(t) => html(&t),
        Err(e) => internal(e),
    }
}

#[derive(Template)]
#[template(path = "precision.html")]
struct PrecisionTpl {
    nav: Nav,
    rows: Vec<PrecisionRow>,
    labels: usize,
}

pub async fn precision(State(st): State<Shared>, user: User) -> Response {
    let r: anyhow::Result<PrecisionTpl> = async {
        Ok(PrecisionTpl {
            nav: Nav::of(&user, "precision"),
            rows: precision_rows(&views::precision(&st.db).await?),
            labels: views::labels(&st.db).await?.len(),
        })
    }
    .await;
    match r {
        Ok(t) => html(&t),
        Err(e) => internal(e),
    }
}

/// GET /labels.jsonl: the labels file for `switchguard train --labels` (audited).
pub async fn labels(State(st): State<Shared>, user: User) -> Response {
    let r: anyhow::Result<String> = async {
        let labels = views::labels(&st.db).await?;
        let mut out = String::new();
        for l in &labels {
            out.push_str(&serde_json::to_string(l)?);
            out.push('\n');
        }
        let mut tx = st.db.begin_write().await?;
        let now = crate::console::store::now_ms();
        cases::audit(
            &mut tx,
            now,
            &user.0.name,
            "labels_export",
            "labels",
            &format!("{} lines", labels.len()),
        )
        .await?;
        tx.commit().await?;
        Ok(out)
    }
    .await;
    match r {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/x-ndjson"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"labels.jsonl\"",
                ),
            ],
            body,
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditTpl {
    nav: Nav,
    rows: Vec<HistView>,
}

pub async fn audit(State(st): State<Shared>, user: User) -> Response {
    if let Err(r) = user.require(Role::Admin) {
        return r.into_response();
    }
    match views::audit_log(&st.db, 500).await {
        Ok(rows) => html(&AuditTpl {
            nav: Nav::of(&user, "audit"),
            rows: rows
                .into_iter()
                .map(|r| HistView {
                    at: crate::event::format_ts(r.at_ms),
                    actor: r.actor,
                    action: r.action,
                    detail: format!("{} {}", r.target, r.detail),
                })
                .collect(),
        }),
        Err(e) => internal(e),
    }
}
