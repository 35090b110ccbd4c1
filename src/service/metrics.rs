//! Every metric the service exports, named in one place (prometheus crate), and the HTTP
//! endpoint serving them with `/healthz` and `/readyz` (tiny_http: a small synchronous server
//! on its own thread; the service has no async runtime to share). Keys (cards, terminals)
//! never become labels: labels are rule ids, reasons, types, severities, partitions.

use crate::engine::shard_task::ShardTask;
use crate::engine::Stats;
use crate::event::EventType;
use crate::keyed::Stage;
use crate::rules::RulePack;
use crate::rules::Severity;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The `outcome` label of `switchguard_events_total`.
const OUTCOMES: [&str; 2] = ["approved", "declined"];
/// Every `reason` of `switchguard_rejects_total`: the decoder's own list.
const REJECT_REASONS: [&str; 9] = crate::decode::DecodeError::CODES;
/// Every `reason` of `switchguard_checkpoint_failures_total`.
const CHECKPOINT_FAILURES: [&str; 6] = crate::service::checkpoint_health::Failure::REASONS;
/// The `rule` label of the lockout guard's own alerts.
const GUARD_RULE: &str = "lockout_guard";

/// What [`Metrics::observe`] needs to know about a rule of the loaded set.
pub struct RuleInfo {
    pub severity: &'static str,
    pub action: Option<&'static str>,
}

/// Declares every metric once: its field, kind, name, help and labels. Gives the struct of
/// metrics ([`Declared`]) and its registration.
macro_rules! metrics {
    ($($(#[doc = $doc:literal])* $field:ident: $kind:ident($name:literal, $help:literal $(, [$($l:literal),*])?);)*) => {
        /// Every metric of the service (see [`Metrics`], which derefs to it).
        pub struct Declared {
            $($(#[doc = $doc])* pub $field: metrics!(@ty $kind),)*
        }

        impl Declared {
            fn register(r: &Registry) -> Self {
                Self {
                    $($field: metrics!(@new r, $kind, $name, $help $(, [$($l),*])?),)*
                }
            }
        }
    };
    (@ty counter) => { IntCounter };
    (@ty counter_vec) => { IntCounterVec };
    (@ty gauge) => { IntGauge };
    (@ty gauge_vec) => { IntGaugeVec };
    (@ty fgauge) => { prometheus::Gauge };
    (@ty fgauge_vec) => { prometheus::GaugeVec };
    (@ty hist) => { Histogram };
    (@new $r:ident, counter, $name:literal, $help:literal) => { reg($r, IntCounter::new($name, $help)) };
    (@new $r:ident, gauge, $name:literal, $help:literal) => { reg($r, IntGauge::new($name, $help)) };
    (@new $r:ident, fgauge, $name:literal, $help:literal) => { reg($r, prometheus::Gauge::new($name, $help)) };
    (@new $r:ident, hist, $name:literal, $help:literal) => { reg($r, Histogram::with_opts(HistogramOpts::new($name, $help).buckets(BUCKETS.to_vec()))) };
    (@new $r:ident, counter_vec, $name:literal, $help:literal, [$($l:literal),*]) => { reg($r, IntCounterVec::new(Opts::new($name, $help), &[$($l),*])) };
    (@new $r:ident, gauge_vec, $name:literal, $help:literal, [$($l:literal),*]) => { reg($r, IntGaugeVec::new(Opts::new($name, $help), &[$($l),*])) };
    (@new $r:ident, fgauge_vec, $name:literal, $help:literal, [$($l:literal),*]) => { reg($r, prometheus::GaugeVec::new(Opts::new($name, $help), &[$($l),*])) };
}

/// Latency buckets (seconds) of every histogram.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Register a new metric (the names are constants: a failure is a programming error).
fn reg<M: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    m: prometheus::Result<M>,
) -> M {
    let m = m.expect("valid metric");
    r.register(Box::new(m.clone())).expect("unique metric");
    m
}

metrics! {
    events: counter_vec("switchguard_events_total",
        "Events processed, by message type and outcome (approved/declined)", ["type", "outcome"]);
    rejects: counter_vec("switchguard_rejects_total", "Records set aside to the DLQ, by reason", ["reason"]);
    duplicates: counter("switchguard_duplicates_total", "Events dropped as repeated ids");
    late: counter("switchguard_late_events_total",
        "Events older than the watermark on arrival (processed anyway)");
    rule_hits: counter_vec("switchguard_rule_hits_total", "Rule hits by rule and mode", ["rule", "mode"]);
    alerts: counter_vec("switchguard_alerts_total",
        "Alerts by rule and severity (the guard's own alerts as rule lockout_guard)", ["rule", "severity"]);
    lockouts: counter_vec("switchguard_lockouts_total", "Lockout commands issued, by rule and action",
        ["rule", "action"]);
    lockouts_held: counter_vec("switchguard_lockouts_held_total",
        "Lockouts held back by the lockout guard, by rule", ["rule"]);
    /// Rule decisions that used a lookup table's default (the event's key is not listed).
    table_defaults: counter_vec("switchguard_table_defaults_total",
        "Events on which a rule's table lookup found no entry for the event's key and used the table's default, by table (configure the missing keys)",
        ["table"]);
    decision_latency: hist("switchguard_decision_latency_seconds", "Decode and engine time per input record");
    e2e_latency: hist("switchguard_end_to_end_latency_seconds",
        "Event ts to alert/command acknowledged by the broker");
    /// Time the event loop spends taking a checkpoint's snapshot (every event waits for it).
    snapshot_stall: hist("switchguard_checkpoint_snapshot_seconds",
        "Event-loop time taken by each checkpoint's state snapshot");
    consumer_lag: gauge_vec("switchguard_consumer_lag", "Messages behind the partition's high watermark",
        ["partition"]);
    state_entries: gauge_vec("switchguard_state_entries", "Entries held in engine state, by kind", ["kind"]);
    buffered: gauge("switchguard_buffered_events",
        "Events held in the reorder buffer until the watermark passes them");
    transactions: counter_vec("switchguard_transactions_total", "Checkpoints / Kafka transactions by outcome",
        ["outcome"]);
    checkpoints: counter("switchguard_checkpoints_total", "Checkpoints written");
    rebalances: counter("switchguard_rebalances_total", "Partition assignments");
    rule_reloads: counter_vec("switchguard_rule_reloads_total", "Rule reloads by outcome", ["outcome"]);
    model_reloads: counter_vec("switchguard_model_reloads_total", "Model reloads by outcome", ["outcome"]);
    /// Scale-out: repeated internal records dropped (re-sent by a restarted upstream shard).
    repeats: counter("switchguard_repeats_dropped_total",
        "Scale-out: internal records dropped as repeats after an upstream restart");
    /// Input partitions and shard tasks this instance runs.
    tasks: gauge_vec("switchguard_tasks",
        "Input partitions and shard tasks this instance runs, by stage (`all`: a single instance's one task)",
        ["stage"]);
    /// Genuine gaps in a consumed partition's offsets, and the offsets they skipped.
    offset_gaps: counter_vec("switchguard_input_offset_gaps_total",
        "Gaps in a consumed partition's offsets the broker will not fill (compaction, transaction markers, retention), by topic and partition",
        ["topic", "partition"]);
    offsets_skipped: counter_vec("switchguard_input_offsets_skipped_total",
        "Offsets skipped by those gaps, by topic and partition", ["topic", "partition"]);
    /// Seeks back after a broker started a fetch past the resume point.
    reseeks: counter_vec("switchguard_input_reseeks_total",
        "Seeks further back after the broker started a fetch past the resume point", ["topic", "partition"]);
    /// Checkpoints that failed or did not complete within `checkpoint_timeout`, by reason.
    checkpoint_failures: counter_vec("switchguard_checkpoint_failures_total",
        "Checkpoints that failed or did not complete within checkpoint_timeout, by reason", ["reason"]);
    /// Seconds since the last acknowledged checkpoint (since start before the first), set
    /// when scraped.
    checkpoint_age: fgauge("switchguard_checkpoint_age_seconds",
        "Seconds since the last acknowledged checkpoint (since start before the first)");
    /// Population stability index of each model input against its training distribution
    /// (model and input names are a closed set from the model files, never keys).
    model_psi: fgauge_vec("switchguard_model_feature_psi",
        "Population stability index of a model input on recent traffic against its training distribution (0.1: moved, 0.25: the model scores traffic it was not trained on)",
        ["model", "feature"]);
    up: gauge("switchguard_up", "1 while the service runs");
    /// Manual control records applied (README "Control records").
    control_records: counter_vec("switchguard_control_records_total",
        "Manual control records applied, by kind (lock, unlock, extend)", ["kind"]);
    command_acks: counter_vec("switchguard_command_acks_total",
        "The switch's acknowledgements of commands, by status (applied, rejected, not_found)", ["status"]);
    control_rejected: counter("switchguard_control_rejected_total",
        "Control records the engine refused: acknowledgement of an unknown command, extension of no lock in force");
    commands_overdue: counter("switchguard_commands_overdue_total",
        "Commands not acknowledged within ack_timeout (event time), each alerted once as command_unacknowledged");
    locks_active: gauge_vec("switchguard_locks_active", "Locks in force at stream time, by kind", ["kind"]);
    lock_commands: gauge_vec("switchguard_lock_commands",
        "Commands of the lock records held (retention window), by action and acknowledgement status", ["action", "status"]);
    commands_unacknowledged: gauge("switchguard_commands_unacknowledged",
        "Commands held that the switch has not acknowledged (yet)");
}

/// The service's metrics: every declared one, the registry, and what `observe` remembers.
pub struct Metrics {
    pub registry: Registry,
    declared: Declared,
    last_checkpoint: std::sync::Mutex<std::time::Instant>,
    last: std::sync::Mutex<Stats>,
    /// The lock records as `GET /locks` serves them.
    pub lock_view: super::lock_view::LockView,
}

impl std::ops::Deref for Metrics {
    type Target = Declared;
    fn deref(&self) -> &Declared {
        &self.declared
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let registry = Registry::new();
        let m = Arc::new(Self {
            declared: Declared::register(&registry),
            registry,
            last_checkpoint: std::sync::Mutex::new(std::time::Instant::now()),
            last: std::sync::Mutex::new(Stats::default()),
            lock_view: Default::default(),
        });
        m.init_series();
        m
    }

    /// The service's own counters of closed label sets exist from the start at 0, so a
    /// dashboard or alert sees "nothing happened yet" instead of "no data". Series counted by
    /// the engine (events, rule hits, alerts, lockouts) continue from the restored checkpoint:
    /// [`Metrics::observe`] creates every one of them on its first call, at its restored
    /// value, never at a 0 that would read as a counter reset.
    fn init_series(&self) {
        for reason in REJECT_REASONS {
            self.rejects.with_label_values(&[reason]);
        }
        for outcome in ["committed", "aborted"] {
            self.transactions.with_label_values(&[outcome]);
        }
        for outcome in ["ok", "rejected"] {
            self.rule_reloads.with_label_values(&[outcome]);
            self.model_reloads.with_label_values(&[outcome]);
        }
        for reason in CHECKPOINT_FAILURES {
            self.checkpoint_failures.with_label_values(&[reason]);
        }
        for kind in ["card", "terminal"] {
            self.locks_active.with_label_values(&[kind]);
        }
    }

    /// A checkpoint was acknowledged: count it and restart its age.
    pub fn checkpoint_written(&self) {
        self.checkpoints.inc();
        *self.last_checkpoint.lock().expect("lock") = std::time::Instant::now();
    }

    /// Add what the engine counted since the last call. `rules` gives a rule's severity and
    /// lockout action (if any) in the loaded rule set; every rule's series exist from the
    /// first call on, at 0 until it hits.
    /// Engine counters and state sizes summed over `shards` (a single instance's one task, or
    /// the stage shards a scale-out instance owns).
    pub fn observe_shards(&self, pack: &RulePack, shards: &[&ShardTask]) {
        let mut total = Stats::for_pack(pack);
        let mut sizes: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut buffered = 0;
        let mut drift: Option<crate::models::drift::Drift> = None;
        for st in shards {
            total.absorb(st.engine().stats());
            if let Some(d) = st.engine().model_drift() {
                match &mut drift {
                    Some(all) => all.merge(d),
                    None => drift = Some(d.clone()),
                }
            }
            for (k, n) in st.engine().state_sizes() {
                *sizes.entry(k).or_default() += n;
            }
            buffered += st.buffered();
        }
        self.observe(&total, &|id| {
            pack.rule(id).map(|r| RuleInfo {
                severity: r.severity.as_str(),
                action: r.action.as_ref().map(|a| a.kind.as_str()),
            })
        });
        for (k, n) in sizes {
            self.state_entries.with_label_values(&[k]).set(n as i64);
        }
        self.buffered.set(buffered as i64);
        self.observe_drift(drift.as_ref());
    }

    /// Set the PSI of every model input sampled so far.
    pub fn observe_drift(&self, drift: Option<&crate::models::drift::Drift>) {
        for (model, feature, psi) in drift.map(|d| d.psi()).unwrap_or_default() {
            self.model_psi.with_label_values(&[model, feature]).set(psi);
        }
    }

    /// Tasks by stage: `input` partitions, stage shards, `all` (a single instance's one task).
    pub fn observe_tasks(&self, inputs: usize, shards: &[&ShardTask]) {
        let mut by: BTreeMap<&str, i64> = BTreeMap::new();
        by.insert("input", inputs as i64);
        for st in shards {
            *by.entry(st.stage.map_or("all", Stage::as_str)).or_default() += 1;
        }
        for stage in ["input", "all"]
            .into_iter()
            .chain(Stage::ALL.map(Stage::as_str))
        {
            let n = by.get(stage).copied().unwrap_or(0);
            self.tasks.with_label_values(&[stage]).set(n);
        }
    }

    pub fn observe(&self, s: &Stats, rules: &dyn Fn(&str) -> Option<RuleInfo>) {
        let mut last = self.last.lock().expect("metrics lock");
        for (i, t) in EventType::ALL.iter().enumerate() {
            for (j, outcome) in OUTCOMES.iter().enumerate() {
                let d = s.by_type[i][j].saturating_sub(last.by_type[i][j]);
                self.events
                    .with_label_values(&[t.as_str(), outcome])
                    .inc_by(d);
            }
        }
        self.duplicates
            .inc_by(s.duplicates.saturating_sub(last.duplicates));
        self.late.inc_by(s.late.saturating_sub(last.late));
        // Every alert is one rule hit (at the rule's severity) or one guard alert. A rules
        // reload restarts the engine's guard-alert count (`Stats::merge_from` does not carry
        // it), so a count below the last one is new alerts since that restart.
        let guard = match s.guard_alerts.checked_sub(last.guard_alerts) {
            Some(d) => d,
            None => s.guard_alerts,
        };
        self.alerts
            .with_label_values(&[GUARD_RULE, Severity::Critical.as_str()])
            .inc_by(guard);
        for r in &s.rules {
            let old = last
                .rules
                .iter()
                .find(|o| o.rule == r.rule)
                .cloned()
                .unwrap_or_default();
            let enforce = r.enforce.saturating_sub(old.enforce);
            let shadow = r.shadow.saturating_sub(old.shadow);
            self.rule_hits
                .with_label_values(&[&r.rule, "enforce"])
                .inc_by(enforce);
            self.rule_hits
                .with_label_values(&[&r.rule, "shadow"])
                .inc_by(shadow);
            let Some(info) = rules(&r.rule) else { continue };
            self.alerts
                .with_label_values(&[&r.rule, info.severity])
                .inc_by(enforce + shadow);
            if let Some(action) = info.action {
                self.lockouts
                    .with_label_values(&[&r.rule, action])
                    .inc_by(r.lockouts.saturating_sub(old.lockouts));
                self.lockouts_held
                    .with_label_values(&[&r.rule])
                    .inc_by(r.held_by_guard.saturating_sub(old.held_by_guard));
            }
        }
        for t in &s.tables {
            let old = last
                .tables
                .iter()
                .find(|o| o.table == t.table)
                .map_or(0, |o| o.defaults);
            self.table_defaults
                .with_label_values(&[&t.table])
                .inc_by(t.defaults.saturating_sub(old));
        }
        self.observe_control(&s.control, &last.control);
        *last = s.clone();
    }

    pub fn render(&self) -> String {
        let age = self.last_checkpoint.lock().expect("lock").elapsed();
        self.checkpoint_age.set(age.as_secs_f64());
        let mut out = String::new();
        TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("text encoding");
        out
    }
}

/// Serve `/metrics`, `/healthz`, `/readyz` on `addr` from a background thread.
pub fn serve(
    addr: &str,
    metrics: Arc<Metrics>,
    health: Arc<super::health::Health>,
) -> anyhow::Result<std::net::SocketAddr> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("metrics endpoint {addr}: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| anyhow::anyhow!("metrics endpoint is not an IP socket"))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for req in server.incoming_requests() {
                let (code, body, ctype) = match req.url() {
                    "/metrics" => (200, metrics.render(), "text/plain; version=0.0.4"),
                    "/healthz" => (200, "ok\n".to_string(), "text/plain"),
                    "/readyz" => match health.status() {
                        Ok(()) => (200, "ready\n".to_string(), "text/plain"),
                        Err(why) => (503, format!("{why}\n"), "text/plain"),
                    },
                    url => match super::lock_view::route(&metrics.lock_view, url) {
                        Some((code, body)) => (code, body, "application/json"),
                        None => (404, "not found\n".to_string(), "text/plain"),
                    },
                };
                let header =
                    tiny_http::Header::from_bytes("Content-Type", ctype).expect("valid header");
                let _ = req.respond(
                    tiny_http::Response::from_string(body)
                        .with_status_code(code)
                        .with_header(header),
                );
            }
        })?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DecodeError;
    use crate::engine::RuleStats;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn closed_label_sets_exist_from_the_start() {
        let m = Metrics::new();
        let text = m.render();
        assert!(
            !text.contains("switchguard_events_total{"),
            "engine counts wait for observe"
        );
        m.observe(&Stats::default(), &|_| None);
        let text = m.render();
        for s in [
            r#"switchguard_events_total{outcome="declined",type="preauth_cancel"}"#,
            r#"switchguard_rejects_total{reason="too_large"}"#,
            r#"switchguard_transactions_total{outcome="aborted"}"#,
            r#"switchguard_rule_reloads_total{outcome="rejected"}"#,
            r#"switchguard_alerts_total{rule="lockout_guard",severity="critical"}"#,
        ] {
            assert_eq!(sample(&text, s), Some(0.0), "{s}");
        }
        let codes = [
            DecodeError::TooLarge(0),
            DecodeError::InvalidUtf8(0),
            DecodeError::MalformedJson(String::new()),
            DecodeError::NotAnObject,
            DecodeError::MissingField("id"),
            DecodeError::BadValue {
                field: "ts",
                reason: String::new(),
            },
            DecodeError::MalformedRow(String::new()),
            DecodeError::BadHeader(String::new()),
            DecodeError::ReadError(String::new()),
        ]
        .map(|e| e.code());
        assert_eq!(codes, REJECT_REASONS);
    }

    #[test]
    fn alerts_by_rule_and_severity_and_guard_alerts_across_a_reload() {
        let m = Metrics::new();
        let info = |id: &str| {
            Some(RuleInfo {
                severity: if id == "r1" { "high" } else { "low" },
                action: (id == "r1").then_some("lock_card"),
            })
        };
        let rule = |id: &str, enforce, shadow, lockouts| RuleStats {
            rule: id.into(),
            enforce,
            shadow,
            lockouts,
            ..Default::default()
        };
        let mut s = Stats {
            rules: vec![rule("r1", 0, 0, 0), rule("r2", 0, 0, 0)],
            ..Default::default()
        };
        m.observe(&s, &info);
        let text = m.render();
        assert_eq!(
            sample(
                &text,
                r#"switchguard_alerts_total{rule="r2",severity="low"}"#
            ),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"switchguard_lockouts_total{action="lock_card",rule="r1"}"#
            ),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, r#"switchguard_lockouts_held_total{rule="r1"}"#),
            Some(0.0)
        );
        s.rules = vec![rule("r1", 3, 0, 2), rule("r2", 1, 4, 0)];
        s.guard_alerts = 2;
        m.observe(&s, &info);
        // A reload: the engine's guard-alert count starts again.
        s.guard_alerts = 1;
        m.observe(&s, &info);
        let text = m.render();
        let get = |series: &str| sample(&text, series);
        assert_eq!(
            get(r#"switchguard_alerts_total{rule="r1",severity="high"}"#),
            Some(3.0)
        );
        assert_eq!(
            get(r#"switchguard_alerts_total{rule="r2",severity="low"}"#),
            Some(5.0)
        );
        assert_eq!(
            get(r#"switchguard_alerts_total{rule="lockout_guard",severity="critical"}"#),
            Some(3.0)
        );
        assert_eq!(
            get(r#"switchguard_rule_hits_total{mode="shadow",rule="r2"}"#),
            Some(4.0)
        );
        assert_eq!(
            get(r#"switchguard_lockouts_total{action="lock_card",rule="r1"}"#),
            Some(2.0)
        );
    }

    #[test]
    fn table_defaults_are_counted_by_table() {
        use crate::engine::TableStats;
        let m = Metrics::new();
        let t = |n: u64| TableStats {
            table: "nocvm_limit".into(),
            defaults: n,
        };
        let mut s = Stats {
            tables: vec![t(0)],
            ..Default::default()
        };
        m.observe(&s, &|_| None);
        let series = r#"switchguard_table_defaults_total{table="nocvm_limit"}"#;
        assert_eq!(sample(&m.render(), series), Some(0.0));
        s.tables = vec![t(4)];
        m.observe(&s, &|_| None);
        s.tables = vec![t(7)];
        m.observe(&s, &|_| None);
        assert_eq!(sample(&m.render(), series), Some(7.0));
    }
}
