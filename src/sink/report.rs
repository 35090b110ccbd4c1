//! `report.json` and the summary table of a replay, with label-based evaluation when the input
//! carries ground truth: per-rule precision, per-scenario recall, benign lockouts.
//!
//! Evaluation units: an *attack instance* is the set of events with the same non-`legit` label
//! and the same card (or terminal, for events without a card); sign-on/sign-off messages are
//! set-up, not evidence, and are not counted. An instance is caught when any
//! of its events is in some alert's `event_ids`. An alert is a true positive when any of its
//! events belongs to an attack. A lockout is benign when none of its events does.

use crate::decision::Decisions;
use crate::engine::Stats;
use crate::event::Event;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use compact_str::CompactString;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use std::collections::BTreeMap;

/// Collects what the evaluation needs while the replay runs.
#[derive(Default)]
pub struct Evaluator {
    labelled: bool,
    /// Attack event id → instance index.
    attack_events: FxHashMap<CompactString, u32>,
    instances: Vec<(CompactString, CompactString)>,
    instance_idx: FxHashMap<(CompactString, CompactString), u32>,
    caught: FxHashSet<u32>,
    /// Alerts seen, as (rule, event ids), judged at the end (attack events may come later).
    alerts: Vec<(String, Vec<String>)>,
    lock_events: Vec<Vec<String>>,
}

impl Evaluator {
    pub fn observe_event(&mut self, ev: &Event) {
        let Some(label) = ev.label.as_ref() else {
            return;
        };
        self.labelled = true;
        // Terminal management messages set an attack up but are never its evidence.
        if label == "legit" || ev.kind.is_management() {
            return;
        }
        let who = ev.card.clone().unwrap_or_else(|| ev.terminal.clone());
        let key = (label.clone(), who);
        let n = self.instances.len() as u32;
        let idx = *self.instance_idx.entry(key.clone()).or_insert_with(|| n);
        if idx == n {
            self.instances.push(key);
        }
        self.attack_events.insert(ev.id.clone(), idx);
    }

    pub fn observe_decisions(&mut self, d: &Decisions) {
        // Alerts about commands (unacknowledged, rejected) judge the switch, not traffic;
        // manual commands and releases are people's, not the rules'.
        let operational = [crate::decision::ACK_RULE, crate::decision::REJECTED_RULE];
        for a in d
            .alerts
            .iter()
            .filter(|a| !operational.contains(&a.rule.as_str()))
        {
            self.alerts.push((a.rule.clone(), a.event_ids.clone()));
        }
        for c in d.commands.iter().filter(|c| c.rule.is_some()) {
            self.lock_events.push(c.event_ids.clone());
        }
    }

    pub fn finish(mut self) -> Option<Evaluation> {
        if !self.labelled {
            return None;
        }
        let mut per_rule: BTreeMap<String, RuleEval> = BTreeMap::new();
        for (rule, ids) in &self.alerts {
            let mut tp = false;
            for id in ids {
                if let Some(i) = self.attack_events.get(id.as_str()) {
                    tp = true;
                    self.caught.insert(*i);
                }
            }
            let r = per_rule.entry(rule.clone()).or_default();
            r.alerts += 1;
            r.true_positives += tp as u64;
        }
        for r in per_rule.values_mut() {
            r.precision = r.true_positives as f64 / r.alerts.max(1) as f64;
        }
        let mut per_scenario: BTreeMap<String, ScenarioEval> = BTreeMap::new();
        for (i, (label, _)) in self.instances.iter().enumerate() {
            let s = per_scenario.entry(label.to_string()).or_default();
            s.instances += 1;
            s.caught += self.caught.contains(&(i as u32)) as u64;
        }
        for s in per_scenario.values_mut() {
            s.recall = s.caught as f64 / s.instances.max(1) as f64;
        }
        let benign_lockouts = self
            .lock_events
            .iter()
            .filter(|ids| {
                !ids.iter()
                    .any(|id| self.attack_events.contains_key(id.as_str()))
            })
            .count() as u64;
        Some(Evaluation {
            per_rule,
            per_scenario,
            benign_lockouts,
        })
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct RuleEval {
    pub alerts: u64,
    pub true_positives: u64,
    pub precision: f64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ScenarioEval {
    pub instances: u64,
    pub caught: u64,
    pub recall: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub per_rule: BTreeMap<String, RuleEval>,
    pub per_scenario: BTreeMap<String, ScenarioEval>,
    pub benign_lockouts: u64,
}

/// The replay report (`report.json`). Every record read is accounted for:
/// `records == events + duplicates + rejects + blank`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub inputs: Vec<String>,
    pub rules_digest: String,
    /// Records read: lines of JSONL and CSV (blank ones included, CSV headers not), Parquet rows.
    pub records: u64,
    pub events: u64,
    /// Records rejected (a CSV file with an unusable header counts each of its rows).
    pub rejects: u64,
    pub rejects_by_reason: BTreeMap<String, u64>,
    pub duplicates: u64,
    /// Blank lines.
    pub blank: u64,
    pub late: u64,
    pub alerts: u64,
    pub lockouts: u64,
    pub rules: Vec<crate::engine::RuleStats>,
    /// By lookup table: events on which a rule used the table's default (key not listed).
    pub table_defaults: BTreeMap<String, u64>,
    pub state_entries: BTreeMap<String, usize>,
    pub elapsed_s: f64,
    pub events_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
    /// Population stability index of each model input against training: model → input → PSI.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub model_drift: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Report {
    pub fn new(
        inputs: Vec<String>,
        digest: String,
        stats: &Stats,
        rejects: BTreeMap<String, u64>,
    ) -> Self {
        Self {
            inputs,
            rules_digest: digest,
            records: 0,
            events: stats.events,
            rejects: rejects.values().sum(),
            rejects_by_reason: rejects,
            duplicates: stats.duplicates,
            blank: 0,
            late: stats.late,
            alerts: stats.alerts(),
            lockouts: stats.lockouts(),
            rules: stats.rules.clone(),
            table_defaults: stats.table_defaults(),
            state_entries: BTreeMap::new(),
            elapsed_s: 0.0,
            events_per_s: 0.0,
            evaluation: None,
            model_drift: BTreeMap::new(),
        }
    }

    /// The human summary printed at the end of a replay.
    pub fn table(&self) -> String {
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        let eval = self.evaluation.as_ref();
        let mut header = vec!["rule", "enforce", "shadow", "lockouts"];
        if eval.is_some() {
            header.push("precision");
        }
        t.set_header(header);
        for r in &self.rules {
            let mut row = vec![
                r.rule.clone(),
                r.enforce.to_string(),
                r.shadow.to_string(),
                r.lockouts.to_string(),
            ];
            if let Some(e) = eval {
                row.push(
                    e.per_rule
                        .get(&r.rule)
                        .map_or("-".into(), |x| format!("{:.3}", x.precision)),
                );
            }
            t.add_row(row);
        }
        let mut s = format!(
            "records {}  events {}  rejects {}  duplicates {}  blank {}  late {}  alerts {}  lockouts {}  ({:.0} records/s, {:.2}s)\n{t}\n",
            self.records,
            self.events,
            self.rejects,
            self.duplicates,
            self.blank,
            self.late,
            self.alerts,
            self.lockouts,
            self.events_per_s,
            self.elapsed_s
        );
        let defaults: Vec<String> = self
            .table_defaults
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        if !defaults.is_empty() {
            s.push_str(&format!(
                "table defaults used (keys the tables do not list; see rules check): {}\n",
                defaults.join(", ")
            ));
        }
        if let Some(e) = eval {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(vec!["scenario", "instances", "caught", "recall"]);
            for (k, v) in &e.per_scenario {
                t.add_row(vec![
                    k.clone(),
                    v.instances.to_string(),
                    v.caught.to_string(),
                    format!("{:.3}", v.recall),
                ]);
            }
            s.push_str(&format!("{t}\nbenign lockouts: {}\n", e.benign_lockouts));
        }
        s
    }
}
