//! `switchguard console bench`: how fast alerts go into the database (SQLite or PostgreSQL),
//! and how long an inbox page takes once many alerts are stored. Synthetic alerts in the
//! contract's shape, spread over entities so cases hold several alerts each. A measurement
//! for the README, not a test.

use super::store::ingest::{self, Record};
use super::store::{views, Db};
use crate::decision::Alert;
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;
use std::time::Instant;

/// Bench options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Database to fill (use a fresh one: SQLite path or postgres:// URL).
    #[arg(long)]
    pub database: String,
    /// Alerts to ingest.
    #[arg(long, default_value_t = 100_000)]
    pub alerts: usize,
    /// Alerts per transaction (the Kafka loop commits up to 2000 per batch).
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
    /// Distinct entities (cases).
    #[arg(long, default_value_t = 50_000)]
    pub entities: usize,
}

const RULES: [&str; 6] = [
    "pin_consecutive_wrong",
    "pin_spread_terminals",
    "contactless_split",
    "preauth_completion_mismatch",
    "no_pin_walkaway",
    "qr_replay",
];
use crate::rules::Severity;
const SEVERITIES: [Severity; 4] = [
    Severity::Low,
    Severity::Medium,
    Severity::High,
    Severity::Critical,
];

fn alert(n: usize, entities: usize) -> (Alert, i64) {
    let ts = 1_790_000_000_000i64 + n as i64 * 1_000;
    let e = (n.wrapping_mul(2_654_435_761)) % entities;
    let mut features = serde_json::Map::new();
    features.insert("count".into(), (n % 7).into());
    features.insert("threshold".into(), 3.into());
    let a = Alert {
        alert_id: format!("al_{n:032x}"),
        ts: crate::event::format_ts(ts),
        rule: RULES[n % RULES.len()].into(),
        severity: SEVERITIES[n % SEVERITIES.len()],
        mode: crate::rules::Mode::Enforce,
        entity: crate::rules::Entity::Card,
        entity_id: format!("tok_bench{e:08}"),
        card: Some(format!("tok_bench{e:08}")),
        pan_masked: Some(format!("622588******{:04}", e % 10_000)),
        terminal: format!("T{}", n % 5000),
        merchant: Some(format!("M{}", n % 3000)),
        event_ids: vec![format!("e{n}a"), format!("e{n}b"), format!("e{n}")],
        reason: "3 consecutive wrong PINs within 24h".into(),
        features,
    };
    (a, ts)
}

async fn time_ms<F: std::future::Future<Output = Result<T>>, T>(f: F) -> Result<f64> {
    let t = Instant::now();
    f.await?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// Run the bench and print its figures.
pub async fn run(a: BenchArgs) -> Result<ExitCode> {
    let db = Db::open(&a.database).await?;
    let start = Instant::now();
    let mut n = 0;
    while n < a.alerts {
        let end = (n + a.batch).min(a.alerts);
        let recs: Vec<Record> = (n..end)
            .map(|k| {
                let (al, ts) = alert(k, a.entities);
                Record::Alert(Box::new(al), ts)
            })
            .collect();
        ingest::apply(&db, recs, &[("bench".into(), 0, end as i64)]).await?;
        n = end;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "ingest: {} alerts in {secs:.1}s = {:.0} alerts/s ({:?})",
        a.alerts,
        a.alerts as f64 / secs,
        db.backend
    );
    let stored = views::totals(&db).await?[0];
    let q = views::InboxQuery::default();
    let by_rule = views::InboxQuery {
        rule: RULES[2].into(),
        ..Default::default()
    };
    let deep = views::InboxQuery {
        page: 200,
        sort: "severity".into(),
        ..Default::default()
    };
    for (name, f) in [
        ("first page", &q),
        ("rule filter", &by_rule),
        ("page 200 by severity", &deep),
    ] {
        views::inbox(&db, f).await?; // warm
        let mut best = f64::MAX;
        for _ in 0..5 {
            best = best.min(time_ms(views::inbox(&db, f)).await?);
        }
        println!("inbox {name}: {best:.1} ms (best of 5) with {stored} alerts stored");
    }
    Ok(ExitCode::SUCCESS)
}
