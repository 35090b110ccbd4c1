//! The inbox query: filters, sort and paging over cases, with a capped count.

use crate::console::store::cases::{case_of, severity_rank, Case, CASE_COLS};
use crate::console::store::{i, Db};
use anyhow::Result;

/// Inbox filters, sort and page (all from the query string).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct InboxQuery {
    pub rule: String,
    /// Minimum severity.
    pub severity: String,
    /// A status, `active` (open or investigating, the default) or `all`.
    pub status: String,
    /// A user name, `-` for unassigned, empty for anyone.
    pub assignee: String,
    pub entity: String,
    /// Search in the entity id or masked PAN (exact).
    pub q: String,
    /// `last` (default), `severity`, `alerts`, `opened`.
    pub sort: String,
    /// `asc`, else descending.
    pub dir: String,
    pub page: i64,
}

/// One inbox page.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxPage {
    pub cases: Vec<Case>,
    /// Matching cases, counted up to [`COUNT_CAP`].
    pub total: i64,
    /// More than [`COUNT_CAP`] cases match.
    pub capped: bool,
    pub page: i64,
    pub pages: i64,
}

/// Cases per inbox page.
pub const PER_PAGE: i64 = 50;

/// The inbox counts matching cases up to this many: an exact count of a filter over every
/// case of a large database cost most of a page's time (750 ms on 1M alerts), and nobody pages
/// past 200 pages.
pub const COUNT_CAP: i64 = 10_000;

enum Arg {
    S(String),
    I(i64),
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::S(s) => q.bind(s.as_str()),
            Arg::I(i) => q.bind(*i),
        };
    }
    q
}

/// The inbox: cases matching `f`, one page.
pub async fn inbox(db: &Db, f: &InboxQuery) -> Result<InboxPage> {
    let (wh, args) = inbox_filter(f);
    let count_sql = format!(
        "SELECT COUNT(*) AS n FROM (SELECT 1 AS x FROM cases c {wh} LIMIT {}) t",
        COUNT_CAP + 1
    );
    let counted: i64 = i(
        &bind_all(sqlx::query(&count_sql), &args)
            .fetch_one(&db.pool)
            .await?,
        "n",
    );
    let total = counted.min(COUNT_CAP);
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    let page = f.page.clamp(1, pages);
    let sql = format!(
        "SELECT {} FROM cases c {wh} ORDER BY {} LIMIT {PER_PAGE} OFFSET {}",
        CASE_COLS
            .split(", ")
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        inbox_order(f),
        (page - 1) * PER_PAGE
    );
    let rows = bind_all(sqlx::query(&sql), &args)
        .fetch_all(&db.pool)
        .await?;
    Ok(InboxPage {
        cases: rows.iter().map(case_of).collect(),
        total,
        capped: counted > COUNT_CAP,
        page,
        pages,
    })
}

/// The inbox's `WHERE` clause (empty without filters) and the arguments it binds, numbered
/// `$1`, `$2`... in the order they are pushed (the syntax both SQLite and PostgreSQL take).
fn inbox_filter(f: &InboxQuery) -> (String, Vec<Arg>) {
    let mut w: Vec<String> = Vec::new();
    let mut args: Vec<Arg> = Vec::new();
    let mut push = |cond: &str, a: Arg, w: &mut Vec<String>| {
        args.push(a);
        w.push(cond.replace('?', &format!("${}", args.len())));
    };
    match f.status.as_str() {
        "" | "active" => w.push("c.status <> 'closed'".into()),
        "all" => {}
        st => push("c.status = ?", Arg::S(st.into()), &mut w),
    }
    if !f.rule.is_empty() {
        push(
            "EXISTS (SELECT 1 FROM alerts a WHERE a.case_id = c.id AND a.rule = ?)",
            Arg::S(f.rule.clone()),
            &mut w,
        );
    }
    if !f.severity.is_empty() {
        let r = severity_rank(&f.severity);
        push("c.max_severity >= ?", Arg::I(r), &mut w);
    }
    match f.assignee.as_str() {
        "" => {}
        "-" => w.push("c.assignee IS NULL".into()),
        a => push("c.assignee = ?", Arg::S(a.into()), &mut w),
    }
    if !f.entity.is_empty() {
        push("c.entity = ?", Arg::S(f.entity.clone()), &mut w);
    }
    if !f.q.is_empty() {
        args.push(Arg::S(f.q.trim().to_string()));
        let n = args.len();
        w.push(format!("(c.entity_id = ${n} OR c.pan_masked = ${n})"));
    }
    let wh = if w.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", w.join(" AND "))
    };
    (wh, args)
}

/// The inbox's `ORDER BY`: the chosen sort, then newer (or older) cases first on ties.
fn inbox_order(f: &InboxQuery) -> String {
    let dir = if f.dir == "asc" { "ASC" } else { "DESC" };
    match f.sort.as_str() {
        "severity" => format!("c.max_severity {dir}, c.last_alert_ms {dir}, c.id {dir}"),
        "alerts" => format!("c.alert_count {dir}, c.id {dir}"),
        "opened" => format!("c.id {dir}"),
        _ => format!("c.last_alert_ms {dir}, c.id {dir}"),
    }
}
