//! The console's metrics for Prometheus and Grafana, served on their own loopback address
//! (`--metrics-addr`) so the web port shows nothing without a login. Counters move as
//! records are ingested and analysts act; the gauges from the database (cases per status,
//! per-rule dispositions and precision, unacknowledged commands, active locks) are read at
//! each scrape. Labels are rule ids, statuses, kinds — never a card or terminal.

use super::store::{views, Db};
use anyhow::Result;
use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// Every console metric.
pub struct Metrics {
    pub registry: Registry,
    /// Records ingested, by kind and outcome (`new`, `repeat`, `reject`).
    pub records: IntCounterVec,
    pub logins: IntCounterVec,
    pub actions: IntCounterVec,
    cases: IntGaugeVec,
    dispositions: IntGaugeVec,
    precision: GaugeVec,
    unacknowledged: IntGauge,
    active_locks: IntGaugeVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
    r.register(Box::new(c.clone())).expect("register");
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric");
    r.register(Box::new(g.clone())).expect("register");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let precision = GaugeVec::new(
            Opts::new(
                "switchguard_console_rule_precision",
                "Per rule: alerts in cases disposed confirmed_fraud / (confirmed_fraud + false_positive)",
            ),
            &["rule"],
        )
        .expect("metric");
        r.register(Box::new(precision.clone())).expect("register");
        let unacknowledged = IntGauge::new(
            "switchguard_console_unacknowledged_commands",
            "Commands with no ack from the switch yet",
        )
        .expect("metric");
        r.register(Box::new(unacknowledged.clone()))
            .expect("register");
        Metrics {
            records: counter(
                &r,
                "switchguard_console_records_total",
                "Records ingested by kind and outcome",
                &["kind", "outcome"],
            ),
            logins: counter(
                &r,
                "switchguard_console_logins_total",
                "Login attempts by outcome",
                &["outcome"],
            ),
            actions: counter(
                &r,
                "switchguard_console_actions_total",
                "Analyst actions by kind",
                &["action"],
            ),
            cases: gauge(
                &r,
                "switchguard_console_cases",
                "Cases by status",
                &["status"],
            ),
            dispositions: gauge(
                &r,
                "switchguard_console_disposed_alerts",
                "Alerts in disposed cases by rule and disposition",
                &["rule", "disposition"],
            ),
            active_locks: gauge(
                &r,
                "switchguard_console_active_locks",
                "Locks in force at stream time, by kind",
                &["kind"],
            ),
            precision,
            unacknowledged,
            registry: r,
        }
    }

    /// Count one ingested batch.
    pub fn ingested(&self, a: &super::store::ingest::Applied) {
        let r = &self.records;
        r.with_label_values(&["alert", "new"])
            .inc_by(a.new_alerts.len() as u64);
        r.with_label_values(&["alert", "repeat"]).inc_by(a.repeats);
        r.with_label_values(&["command", "new"]).inc_by(a.commands);
        r.with_label_values(&["control", "new"]).inc_by(a.controls);
        r.with_label_values(&["evidence", "new"]).inc_by(a.evidence);
        r.with_label_values(&["any", "reject"])
            .inc_by(a.rejects.len() as u64);
    }

    /// Read the database gauges and render every metric.
    pub async fn render(&self, db: &Db) -> Result<String> {
        self.cases.reset();
        for (status, n) in views::case_counts(db).await? {
            self.cases.with_label_values(&[&status]).set(n);
        }
        self.dispositions.reset();
        self.precision.reset();
        for p in views::precision(db).await? {
            for (d, n) in [
                ("confirmed_fraud", p.confirmed),
                ("false_positive", p.false_positive),
                ("inconclusive", p.inconclusive),
            ] {
                self.dispositions.with_label_values(&[&p.rule, d]).set(n);
            }
            if let Some(x) = p.precision() {
                self.precision.with_label_values(&[&p.rule]).set(x);
            }
        }
        self.unacknowledged
            .set(views::unacknowledged_count(db).await?);
        self.active_locks.reset();
        let now = views::stream_time(db).await?;
        for l in views::active_locks(db, now).await? {
            self.active_locks.with_label_values(&[&l.kind]).inc();
        }
        let mut out = String::new();
        TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}
